//! Email verification and password-reset secrets: a link token and an 8-digit code per mail, and how
//! a presented one is checked against its record. The records and the rules the stores apply to them
//! atomically are the storage port's ([`crate::store::EmailCode`], [`crate::store::MailRequest`]).
//!
//! A link token is `kgev_` (verification) or `kgpr_` (reset) + base64url of: 32 random bytes | the
//! normalised email (UTF-8, rest). It carries the email so its record is found without a lookup,
//! like a refresh token ([`crate::refresh`]); the record keeps only the SHA-256 of the whole string,
//! so every field read back from a presented token is authenticated by the store. The code is 8
//! decimal digits; the record keeps only its HMAC-SHA256 under the server key
//! ([`crate::audit::AuditKey`]), bound to the purpose and email, so a leaked table cannot be
//! brute-forced offline and a code of one purpose or user does not work for another.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::audit::AuditKey;
use crate::crypto::{hashes_match, random_bytes, sha256_hex};
use crate::email::{MAX_LEN as MAX_EMAIL_LEN, normalize_email};
use crate::error::AuthError;
pub use crate::store::{
    CodeConsumption, CodePurpose, EmailCode, MAX_CODE_ATTEMPTS, MailAction, MailOutcome,
    MailRequest, PasswordReset, SEND_WINDOW_MS, SendLimits,
};

/// Digits of a code.
pub const CODE_DIGITS: usize = 8;
const SECRET_LEN: usize = 32;

fn token_prefix(purpose: CodePurpose) -> &'static str {
    match purpose {
        CodePurpose::Verify => "kgev_",
        CodePurpose::Reset => "kgpr_",
    }
}

impl EmailCode {
    /// Whether `presented` is this record's live link token at `now_ms`.
    pub fn accepts_token(&self, presented: &PresentedToken, now_ms: i64) -> bool {
        self.usable(now_ms) && hashes_match(&self.token_hash, &presented.hash)
    }

    /// Whether the (reserved) attempt's `code` matches, in constant time.
    pub fn accepts_code(&self, key: &AuditKey, code: &str) -> bool {
        hashes_match(
            &self.code_mac,
            &code_mac(key, self.purpose, &self.email, code),
        )
    }
}

/// A freshly made link token and code, in clear: they go into one mail and nowhere else.
pub struct CodeSecrets {
    pub token: String,
    pub code: String,
    pub token_hash: String,
    pub code_mac: String,
}

impl std::fmt::Debug for CodeSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CodeSecrets(..)")
    }
}

impl CodeSecrets {
    /// A new token and code for `email`'s record of `purpose`.
    pub fn new(key: &AuditKey, purpose: CodePurpose, email: &str) -> Result<Self, AuthError> {
        let (token, token_hash) = mint_token(token_prefix(purpose), email)?;
        let code = random_code()?;
        Ok(Self {
            token_hash,
            code_mac: code_mac(key, purpose, email, &code),
            token,
            code,
        })
    }
}

/// A token that names its account: `prefix` + base64url of 32 random bytes | `email` (normalised),
/// and the SHA-256 its record keeps. Link tokens and the MFA step's token ([`crate::mfa`]) are made
/// so.
pub(crate) fn mint_token(prefix: &str, email: &str) -> Result<(String, String), AuthError> {
    let secret: [u8; SECRET_LEN] = random_bytes()?;
    let mut body = secret.to_vec();
    body.extend_from_slice(email.as_bytes());
    let token = format!("{prefix}{}", URL_SAFE_NO_PAD.encode(body));
    let hash = sha256_hex(token.as_bytes());
    Ok((token, hash))
}

/// The email and hash of a token [`mint_token`] made with `prefix` (5 characters), read strictly:
/// `None` for anything else.
pub(crate) fn open_token(prefix: &str, token: &str) -> Option<(String, String)> {
    if token.len() > MAX_TOKEN_LEN {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(token.strip_prefix(prefix)?).ok()?;
    if bytes.len() <= SECRET_LEN {
        return None;
    }
    let email = std::str::from_utf8(&bytes[SECRET_LEN..]).ok()?;
    // Only a normalised email was ever put in a token.
    if normalize_email(email).ok().as_deref() != Some(email) {
        return None;
    }
    Some((email.to_owned(), sha256_hex(token.as_bytes())))
}

/// Eight uniformly random decimal digits (rejection sampling, so no digit string is likelier).
fn random_code() -> Result<String, AuthError> {
    const LIMIT: u32 = 100_000_000;
    // The largest multiple of LIMIT that fits in u32: values at or above it are redrawn.
    const ZONE: u32 = (u32::MAX / LIMIT) * LIMIT;
    loop {
        let value = u32::from_be_bytes(random_bytes()?);
        if value < ZONE {
            return Ok(format!("{:0width$}", value % LIMIT, width = CODE_DIGITS));
        }
    }
}

/// The stored form of a code: HMAC-SHA256 under the server key of purpose, email and code.
pub fn code_mac(key: &AuditKey, purpose: CodePurpose, email: &str, code: &str) -> String {
    key.mac_hex(&[
        b"keygate email code",
        purpose.as_str().as_bytes(),
        email.as_bytes(),
        code.as_bytes(),
    ])
}

/// A presented link token: the purpose and email it names, and the hash its record must hold.
#[derive(Clone, PartialEq, Eq)]
pub struct PresentedToken {
    pub purpose: CodePurpose,
    pub email: String,
    pub hash: String,
}

impl std::fmt::Debug for PresentedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PresentedToken")
            .field("purpose", &self.purpose)
            .finish_non_exhaustive()
    }
}

/// The longest token of any purpose, checked before decoding anything.
pub const MAX_TOKEN_LEN: usize = 5 + (SECRET_LEN + MAX_EMAIL_LEN).div_ceil(3) * 4;

impl PresentedToken {
    /// Strictly parses a token made for `purpose`; anything else is `InvalidCode`.
    pub fn parse(purpose: CodePurpose, token: &str) -> Result<Self, AuthError> {
        let (email, hash) =
            open_token(token_prefix(purpose), token).ok_or(AuthError::InvalidCode)?;
        Ok(Self {
            purpose,
            email,
            hash,
        })
    }
}

/// Whether `code` has the shape of a code (checked before any store read).
pub fn is_code_shaped(code: &str) -> bool {
    code.len() == CODE_DIGITS && code.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> AuditKey {
        AuditKey::from_bytes(&[7; AuditKey::LEN])
    }

    #[test]
    fn tokens_round_trip_and_are_bound_to_their_purpose() {
        let secrets = CodeSecrets::new(&key(), CodePurpose::Reset, "ada@example.com").unwrap();
        let presented = PresentedToken::parse(CodePurpose::Reset, &secrets.token).unwrap();
        assert_eq!(presented.email, "ada@example.com");
        assert_eq!(presented.hash, secrets.token_hash);
        assert!(PresentedToken::parse(CodePurpose::Verify, &secrets.token).is_err());
        // 256 bits of randomness: the base64 body of the secret alone is 43 characters.
        assert!(secrets.token.len() >= 5 + 43);
        for bad in ["", "kgpr_", "kgpr_!!", "kgpr_AAAA", &"kgpr_".repeat(200)] {
            assert!(
                PresentedToken::parse(CodePurpose::Reset, bad).is_err(),
                "{bad}"
            );
        }
        let mut upper = vec![0u8; SECRET_LEN];
        upper.extend_from_slice(b"Ada@Example.com");
        let unnormalised = format!("kgpr_{}", URL_SAFE_NO_PAD.encode(upper));
        assert!(PresentedToken::parse(CodePurpose::Reset, &unnormalised).is_err());
    }

    #[test]
    fn codes_are_eight_digits_and_keyed_by_purpose_email_and_server_key() {
        let s = CodeSecrets::new(&key(), CodePurpose::Verify, "ada@example.com").unwrap();
        assert!(is_code_shaped(&s.code), "{}", s.code);
        let mac = |k: &AuditKey, p, e: &str| code_mac(k, p, e, &s.code);
        assert_eq!(
            s.code_mac,
            mac(&key(), CodePurpose::Verify, "ada@example.com")
        );
        assert_ne!(
            s.code_mac,
            mac(&key(), CodePurpose::Reset, "ada@example.com")
        );
        assert_ne!(
            s.code_mac,
            mac(&key(), CodePurpose::Verify, "bob@example.com")
        );
        let other = AuditKey::from_bytes(&[8; AuditKey::LEN]);
        assert_ne!(
            s.code_mac,
            mac(&other, CodePurpose::Verify, "ada@example.com")
        );
        assert!(!s.code_mac.contains(&s.code));
        for bad in ["", "1234567", "123456789", "1234567a", "１２３４５６７８"] {
            assert!(!is_code_shaped(bad), "{bad}");
        }
    }

    #[test]
    fn codes_cover_every_digit_position() {
        let codes: Vec<String> = (0..200).map(|_| random_code().unwrap()).collect();
        for position in 0..CODE_DIGITS {
            let digits: std::collections::BTreeSet<u8> =
                codes.iter().map(|c| c.as_bytes()[position]).collect();
            assert!(digits.len() >= 8, "position {position}: {digits:?}");
        }
    }
}
