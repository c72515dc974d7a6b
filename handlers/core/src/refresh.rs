//! Refresh tokens: opaque strings that carry what is needed to find their record in one request.
//!
//! `kgrt_` + base64url of: version (1) | issued_at_ms (8) | auth_time_s (8) | family_expires_at_s (8) |
//! family_seq (8, versions 2 and 3) | flags (1, version 3 only: [`SessionFlags`]) |
//! user_id (16) | family_id (16) | token_id (16) | secret (32) | email (UTF-8, rest). Version 1, the
//! layout from before family sequence numbers, is family 0; version 2, from before the verified
//! flag, reads as unverified; both still parse and their children keep their version. Every family
//! opened since is written as version 3.
//! The store keeps only the SHA-256 of the whole string, and a rotation succeeds only if that hash
//! matches, so every field read back from a presented token is authenticated by the store.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::crypto::{hex, random_bytes, sha256_hex};
use crate::email::{MAX_LEN as MAX_EMAIL_LEN, normalize_email};
use crate::error::AuthError;
use crate::store::RefreshRecord;

pub const PREFIX: &str = "kgrt_";
/// Version 1 has no family sequence number (it is 0); version 2 carries it.
const UNNUMBERED: u8 = 1;
const NUMBERED: u8 = 2;
const FLAGGED: u8 = 3;
const UNNUMBERED_LEN: usize = 1 + 8 + 8 + 8 + 16 + 16 + 16 + 32;
const NUMBERED_LEN: usize = UNNUMBERED_LEN + 8;
const FLAGGED_LEN: usize = NUMBERED_LEN + 1;
const EMAIL_VERIFIED: u8 = 1;
const SECOND_FACTOR: u8 = 2;

/// What a session proved when it began, carried by every token of its family into the access tokens
/// it issues: bit 0 of the flags byte, the email was verified (`email_verified`); bit 1, a second
/// factor was presented (`amr` holds `otp`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionFlags {
    pub email_verified: bool,
    pub second_factor: bool,
}

impl SessionFlags {
    /// A verified email and no second factor (the session fixtures and tools usually start).
    pub const VERIFIED: SessionFlags = SessionFlags {
        email_verified: true,
        second_factor: false,
    };

    fn to_byte(self) -> u8 {
        (if self.email_verified {
            EMAIL_VERIFIED
        } else {
            0
        }) | (if self.second_factor { SECOND_FACTOR } else { 0 })
    }

    fn from_byte(byte: u8) -> Option<Self> {
        (byte & !(EMAIL_VERIFIED | SECOND_FACTOR) == 0).then_some(Self {
            email_verified: byte & EMAIL_VERIFIED != 0,
            second_factor: byte & SECOND_FACTOR != 0,
        })
    }
}
/// Longest possible encoded token, checked before decoding anything.
pub const MAX_LEN: usize = PREFIX.len() + (FLAGGED_LEN + MAX_EMAIL_LEN).div_ceil(3) * 4;

#[derive(Clone, PartialEq, Eq)]
pub struct RefreshToken {
    pub issued_at_ms: i64,
    /// When the user authenticated with a password (the family's start), seconds.
    pub auth_time_s: i64,
    pub family_expires_at_s: i64,
    /// The family's number among the user's families, in login order (see
    /// [`crate::store::User::family_seq`]); 0 for families opened before families were numbered.
    pub family_seq: u64,
    /// What the session proved when the family began; `None` in tokens from before version 3, read
    /// as nothing proved.
    pub flags: Option<SessionFlags>,
    pub user_id: [u8; 16],
    pub family_id: [u8; 16],
    pub token_id: [u8; 16],
    secret: [u8; 32],
    pub email: String,
}

impl std::fmt::Debug for RefreshToken {
    // The secret never reaches a log, even through debug formatting.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshToken")
            .field("family_id", &hex(&self.family_id))
            .field("token_id", &hex(&self.token_id))
            .finish_non_exhaustive()
    }
}

impl RefreshToken {
    /// The first token of a new family, numbered `family_seq` (at least 1).
    pub fn new_family(
        email: &str,
        user_id: [u8; 16],
        family_seq: u64,
        flags: SessionFlags,
        now_ms: i64,
        family_ttl_secs: u64,
    ) -> Result<Self, AuthError> {
        let now_s = now_ms.div_euclid(1000);
        Ok(Self {
            issued_at_ms: now_ms,
            auth_time_s: now_s,
            family_expires_at_s: now_s.saturating_add(family_ttl_secs as i64),
            family_seq,
            flags: Some(flags),
            user_id,
            family_id: random_bytes()?,
            token_id: random_bytes()?,
            secret: random_bytes()?,
            email: email.to_owned(),
        })
    }

    /// The token that replaces this one: same family, expiry and authentication time.
    pub fn child(&self, now_ms: i64) -> Result<Self, AuthError> {
        Ok(Self {
            issued_at_ms: now_ms,
            token_id: random_bytes()?,
            secret: random_bytes()?,
            ..self.clone()
        })
    }

    /// What the session's access tokens say it proved.
    pub fn session_flags(&self) -> SessionFlags {
        self.flags.unwrap_or_default()
    }

    fn version(&self) -> u8 {
        match (self.family_seq, self.flags) {
            (_, Some(_)) => FLAGGED,
            (0, None) => UNNUMBERED,
            (_, None) => NUMBERED,
        }
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(FLAGGED_LEN + self.email.len());
        let version = self.version();
        out.push(version);
        out.extend_from_slice(&self.issued_at_ms.to_be_bytes());
        out.extend_from_slice(&self.auth_time_s.to_be_bytes());
        out.extend_from_slice(&self.family_expires_at_s.to_be_bytes());
        if version != UNNUMBERED {
            out.extend_from_slice(&self.family_seq.to_be_bytes());
        }
        if let Some(flags) = self.flags {
            out.push(flags.to_byte());
        }
        out.extend_from_slice(&self.user_id);
        out.extend_from_slice(&self.family_id);
        out.extend_from_slice(&self.token_id);
        out.extend_from_slice(&self.secret);
        out.extend_from_slice(self.email.as_bytes());
        out
    }

    pub fn encode(&self) -> String {
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(self.to_bytes()))
    }

    /// Strictly parses a presented token; anything malformed is `InvalidRefreshToken`.
    pub fn parse(token: &str) -> Result<Self, AuthError> {
        let invalid = || AuthError::InvalidRefreshToken;
        if token.len() > MAX_LEN {
            return Err(invalid());
        }
        let body = token.strip_prefix(PREFIX).ok_or_else(invalid)?;
        let bytes = URL_SAFE_NO_PAD.decode(body).map_err(|_| invalid())?;
        let fixed_len = match bytes.first() {
            Some(&UNNUMBERED) => UNNUMBERED_LEN,
            Some(&NUMBERED) => NUMBERED_LEN,
            Some(&FLAGGED) => FLAGGED_LEN,
            _ => return Err(invalid()),
        };
        if bytes.len() <= fixed_len {
            return Err(invalid());
        }
        let (fixed, email) = bytes.split_at(fixed_len);
        let email = std::str::from_utf8(email).map_err(|_| invalid())?;
        if email.len() > MAX_EMAIL_LEN || !normalize_email(email).is_ok_and(|n| n == email) {
            return Err(invalid());
        }
        let bytes8 = |at: usize| -> [u8; 8] { fixed[at..at + 8].try_into().expect("8 bytes") };
        let (family_seq, flags, ids) = match fixed_len {
            FLAGGED_LEN => {
                let flags = SessionFlags::from_byte(fixed[33]).ok_or_else(invalid)?;
                (u64::from_be_bytes(bytes8(25)), Some(flags), 34)
            }
            NUMBERED_LEN => (u64::from_be_bytes(bytes8(25)), None, 33),
            _ => (0, None, 25),
        };
        let arr16 = |at: usize| -> [u8; 16] { fixed[at..at + 16].try_into().expect("16 bytes") };
        let parsed = Self {
            issued_at_ms: i64::from_be_bytes(bytes8(1)),
            auth_time_s: i64::from_be_bytes(bytes8(9)),
            family_expires_at_s: i64::from_be_bytes(bytes8(17)),
            family_seq,
            flags,
            user_id: arr16(ids),
            family_id: arr16(ids + 16),
            token_id: arr16(ids + 32),
            secret: fixed[ids + 48..ids + 80].try_into().expect("32 bytes"),
            email: email.to_owned(),
        };
        // The canonical encoding must round-trip, so one token has exactly one spelling (a version 2
        // token numbered 0 does not).
        if parsed.encode() != token {
            return Err(invalid());
        }
        Ok(parsed)
    }

    pub fn hash(&self) -> String {
        sha256_hex(self.encode().as_bytes())
    }

    pub fn family_id_hex(&self) -> String {
        hex(&self.family_id)
    }

    pub fn token_id_hex(&self) -> String {
        hex(&self.token_id)
    }

    pub fn user_id_string(&self) -> String {
        uuid::Uuid::from_bytes(self.user_id)
            .hyphenated()
            .to_string()
    }

    /// The record the store keeps for this token.
    pub fn record(&self, fingerprint_hash: Option<String>) -> RefreshRecord {
        RefreshRecord {
            email: self.email.clone(),
            family_id: self.family_id_hex(),
            token_id: self.token_id_hex(),
            token_hash: self.hash(),
            issued_at_ms: self.issued_at_ms,
            expires_at_s: self.family_expires_at_s,
            used_at_ms: None,
            replaced_by: None,
            fingerprint_hash,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> RefreshToken {
        RefreshToken::new_family(
            "ada@example.com",
            [7; 16],
            3,
            SessionFlags {
                email_verified: true,
                second_factor: false,
            },
            1_700_000_000_123,
            30 * 86400,
        )
        .unwrap()
    }

    #[test]
    fn unnumbered_tokens_from_before_family_numbers_still_parse() {
        let old = RefreshToken {
            family_seq: 0,
            flags: None,
            ..token()
        };
        let encoded = old.encode();
        assert_eq!(
            URL_SAFE_NO_PAD.decode(&encoded[PREFIX.len()..]).unwrap()[0],
            1
        );
        let parsed = RefreshToken::parse(&encoded).unwrap();
        assert_eq!(parsed, old);
        assert_eq!(parsed.child(1_700_000_100_000).unwrap().family_seq, 0);
        // The numbered layout with number 0 is not canonical: one token, one spelling.
        let version_2 = RefreshToken {
            flags: None,
            ..token()
        };
        let mut numbered = version_2.to_bytes();
        numbered[25..33].copy_from_slice(&0u64.to_be_bytes());
        let spelled = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(&numbered));
        assert!(RefreshToken::parse(&spelled).is_err());
        assert!(token().encode().len() > encoded.len());
    }

    #[test]
    fn version_2_tokens_read_as_unverified_and_keep_their_version() {
        let old = RefreshToken {
            flags: None,
            ..token()
        };
        let encoded = old.encode();
        assert_eq!(
            URL_SAFE_NO_PAD.decode(&encoded[PREFIX.len()..]).unwrap()[0],
            NUMBERED
        );
        let parsed = RefreshToken::parse(&encoded).unwrap();
        assert_eq!(parsed.session_flags(), SessionFlags::default());
        assert_eq!(parsed.child(1_700_000_100_000).unwrap().flags, None);
        let fresh = RefreshToken::parse(&token().encode()).unwrap();
        assert!(fresh.session_flags().email_verified);
        // Both flags round-trip, and a child keeps them.
        let both = SessionFlags {
            email_verified: true,
            second_factor: true,
        };
        let mfa = RefreshToken::new_family("ada@example.com", [7; 16], 3, both, 1, 60).unwrap();
        let parsed = RefreshToken::parse(&mfa.encode()).unwrap();
        assert_eq!(parsed.session_flags(), both);
        assert_eq!(parsed.child(2).unwrap().session_flags(), both);
        // A flags byte with a bit that has no meaning is refused.
        let mut bytes = token().to_bytes();
        bytes[33] = 4;
        let spelled = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(&bytes));
        assert!(RefreshToken::parse(&spelled).is_err());
    }

    #[test]
    fn round_trips_and_carries_its_family() {
        let t = token();
        let encoded = t.encode();
        assert!(encoded.starts_with(PREFIX) && encoded.len() <= MAX_LEN);
        let parsed = RefreshToken::parse(&encoded).unwrap();
        assert_eq!(parsed, t);
        assert_eq!(parsed.family_expires_at_s, 1_700_000_000 + 30 * 86400);
        let child = t.child(1_700_000_100_000).unwrap();
        assert_eq!(
            (
                child.family_id,
                child.family_expires_at_s,
                child.auth_time_s,
                child.family_seq
            ),
            (t.family_id, t.family_expires_at_s, t.auth_time_s, 3)
        );
        assert_ne!(child.token_id, t.token_id);
        assert_ne!(child.hash(), t.hash());
    }

    #[test]
    fn carries_256_random_bits_that_differ_every_time() {
        let a = token();
        let b = token();
        assert_ne!(a.secret, b.secret);
        assert_ne!(a.family_id, b.family_id);
        assert_eq!(a.secret.len() * 8, 256);
    }

    #[test]
    fn the_record_holds_a_hash_not_the_token() {
        let t = token();
        let record = t.record(None);
        assert_eq!(record.token_hash, sha256_hex(t.encode().as_bytes()));
        assert_eq!(record.token_hash.len(), 64);
        assert!(!format!("{record:?}").contains(&t.encode()[PREFIX.len()..]));
        assert!(!format!("{t:?}").contains(&hex(&t.secret)));
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let good = token().encode();
        let mut flipped = good.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        for bad in [
            "",
            "kgrt_",
            "kgrt_!!!!",
            &good[PREFIX.len()..],
            &format!("{good}="),
            &good[..good.len() - 4],
            &"A".repeat(MAX_LEN + 1),
        ] {
            assert!(RefreshToken::parse(bad).is_err(), "{bad}");
        }
        // A flipped character still parses when it stays canonical, but then its hash differs.
        if let Ok(t) = RefreshToken::parse(&flipped) {
            assert_ne!(t.hash(), token().hash());
        }
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(s in "kgrt_[A-Za-z0-9_-]{0,500}") {
            let _ = RefreshToken::parse(&s);
        }
    }
}
