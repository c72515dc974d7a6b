//! Device tokens: opaque strings a client keeps after a successful login and sends back with later
//! logins, so its attempts count on its own counter (see [`crate::store::DeviceRecord`]).
//!
//! `kgdt_` + base64url of 32 bytes from the OS CSPRNG. Unlike a refresh token it carries nothing: a
//! login names the user by email already, and the record is found under that user by the token's
//! SHA-256, which is all the store keeps.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::crypto::{random_bytes, sha256_hex};
use crate::error::AuthError;
use crate::store::{AttemptCounter, DeviceRecord};

pub const PREFIX: &str = "kgdt_";
const SECRET_LEN: usize = 32;
/// The length of every well-formed token: anything else is not one, and is not even hashed.
pub const LEN: usize = PREFIX.len() + (SECRET_LEN * 4).div_ceil(3);

/// A freshly issued device token and its record.
pub struct IssuedDevice {
    pub token: String,
    pub record: DeviceRecord,
}

impl std::fmt::Debug for IssuedDevice {
    // The token never reaches a log, even through debug formatting.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedDevice")
            .field("record", &self.record)
            .finish_non_exhaustive()
    }
}

/// A new device token for `email`, created at `now_ms`, living `ttl_secs`.
pub fn issue(email: &str, now_ms: i64, ttl_secs: u64) -> Result<IssuedDevice, AuthError> {
    let secret: [u8; SECRET_LEN] = random_bytes()?;
    let token = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(secret));
    let record = DeviceRecord {
        email: email.to_owned(),
        token_hash: sha256_hex(token.as_bytes()),
        created_at_ms: now_ms,
        expires_at_s: now_ms
            .div_euclid(1000)
            .saturating_add(i64::try_from(ttl_secs).unwrap_or(i64::MAX)),
        attempts: AttemptCounter::default(),
    };
    Ok(IssuedDevice { token, record })
}

/// The hash a presented device token is looked up by, or `None` when it is not shaped like one
/// (then the attempt counts as untrusted, exactly as an unknown token does).
pub fn presented_hash(token: &str) -> Option<String> {
    let body = token.strip_prefix(PREFIX).filter(|_| token.len() == LEN)?;
    // The engine refuses non-zero trailing bits, so one token has exactly one spelling and one hash.
    let decoded = URL_SAFE_NO_PAD.decode(body).ok()?;
    (decoded.len() == SECRET_LEN).then(|| sha256_hex(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_tokens_are_256_bit_and_found_by_their_hash() {
        let a = issue("ada@example.com", 5_000, 60).unwrap();
        let b = issue("ada@example.com", 5_000, 60).unwrap();
        assert_ne!(a.token, b.token);
        assert_eq!(a.token.len(), LEN);
        assert_eq!(presented_hash(&a.token), Some(a.record.token_hash.clone()));
        assert_ne!(a.record.token_hash, a.token);
        assert_eq!(a.record.expires_at_s, 5 + 60);
        assert!(!format!("{a:?}").contains(&a.token));
    }

    #[test]
    fn anything_else_is_not_a_device_token() {
        let good = issue("ada@example.com", 0, 60).unwrap().token;
        // The last character carries 2 bits and 4 zero bits: setting its lowest bit spells the same
        // bytes non-canonically.
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let last = ALPHABET
            .iter()
            .position(|&c| c == *good.as_bytes().last().unwrap())
            .unwrap();
        let non_canonical = format!("{}{}", &good[..good.len() - 1], ALPHABET[last | 1] as char);
        for bad in [
            String::new(),
            "kgdt_".into(),
            good[..good.len() - 1].to_owned(),
            format!("{good}A"),
            good.replacen("kgdt_", "kgrt_", 1),
            format!("kgdt_{}", "!".repeat(LEN - PREFIX.len())),
            non_canonical,
        ] {
            assert_eq!(presented_hash(&bad), None, "{bad}");
        }
    }
}
