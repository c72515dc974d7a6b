//! Second-factor secrets: TOTP (RFC 6238 over RFC 4226's HOTP), the data-key ring that seals TOTP
//! secrets at rest, recovery codes and the `mfa_token` of a login's second step: the primitives of
//! multi-factor authentication, tested against the RFC vectors. The endpoints that use them are in
//! `service/mfa.rs`; the stored state is [`crate::store::MfaState`].
//!
//! - TOTP: 160-bit secrets, HMAC-SHA-1, 6 digits, 30-second steps (the parameters every authenticator
//!   app reads from an `otpauth://` URI). A code is accepted for the current step or one step either
//!   side, and only for a step later than the factor's last accepted one (RFC 6238 section 5.2: a
//!   verifier must not accept the second attempt of a valid OTP); [`accepted_step`] is the rule, and
//!   the endpoints spend the step in a conditional write, so that one code on two requests at
//!   once succeeds once.
//! - Secrets at rest: AES-256-GCM under a data key named by a key id, the user id and factor id as
//!   associated data, so a sealed secret copied to another user's or factor's item does not open.
//!   The ring keeps retired keys, so rotating the data key keeps old factors readable.
//! - Recovery codes: 120 random bits each (24 base32 characters), shown once, stored as SHA-256 only.
//! - `mfa_token`: `kgmt_` + base64url of 32 random bytes | the normalised email (like a link token,
//!   [`crate::email_code`]); its record keeps the SHA-256 of the whole string.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::crypto::{random_bytes, sha256_hex};
use crate::email_code::{mint_token, open_token};
use crate::error::AuthError;

/// Digits of a TOTP code.
pub const TOTP_DIGITS: u32 = 6;
/// Seconds per TOTP time step.
pub const TOTP_PERIOD_SECS: i64 = 30;
/// Bytes of a TOTP secret (160 bits, RFC 4226 section 4's recommendation).
pub const TOTP_SECRET_LEN: usize = 20;
/// Steps accepted either side of the current one (clock skew and typing time).
pub const TOTP_SKEW_STEPS: i64 = 1;
/// Recovery codes issued per set.
pub const RECOVERY_CODE_COUNT: usize = 10;
/// Random bytes per recovery code (120 bits: 24 base32 characters).
const RECOVERY_CODE_BYTES: usize = 15;
const RECOVERY_CODE_CHARS: usize = RECOVERY_CODE_BYTES * 8 / 5;
/// The prefix of a login's second-step token.
pub const MFA_TOKEN_PREFIX: &str = "kgmt_";
/// The names of second factors as `factors` lists them.
pub const FACTOR_TOTP: &str = "totp";
pub const FACTOR_RECOVERY_CODE: &str = "recovery_code";

/// RFC 4226 HOTP: the `digits`-digit code of `secret` at `counter` (HMAC-SHA-1, dynamic truncation).
pub fn hotp(secret: &[u8], counter: u64, digits: u32) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let tag = hmac::sign(&key, &counter.to_be_bytes());
    let mac = tag.as_ref();
    let offset = (mac[mac.len() - 1] & 0x0f) as usize;
    let binary = u32::from_be_bytes([
        mac[offset] & 0x7f,
        mac[offset + 1],
        mac[offset + 2],
        mac[offset + 3],
    ]);
    let code = binary % 10u32.pow(digits);
    format!("{code:0width$}", width = digits as usize)
}

/// The TOTP time step of `now_ms` (T0 = 0).
pub fn totp_step(now_ms: i64) -> i64 {
    now_ms.div_euclid(1000).div_euclid(TOTP_PERIOD_SECS)
}

/// Whether `code` has the shape of a TOTP code (checked before any store read).
pub fn is_totp_shaped(code: &str) -> bool {
    code.len() == TOTP_DIGITS as usize && code.bytes().all(|b| b.is_ascii_digit())
}

/// The step at which `code` is `secret`'s code, among the current step and [`TOTP_SKEW_STEPS`]
/// either side, that is later than `last_step` (the factor's last accepted step): `None` for a wrong
/// code and for a replayed one. Every candidate is computed and compared in constant time.
pub fn accepted_step(secret: &[u8], code: &str, now_ms: i64, last_step: i64) -> Option<i64> {
    if !is_totp_shaped(code) {
        return None;
    }
    let now = totp_step(now_ms);
    let mut accepted = None;
    for step in now - TOTP_SKEW_STEPS..=now + TOTP_SKEW_STEPS {
        let Ok(counter) = u64::try_from(step) else {
            continue;
        };
        let matches = crate::crypto::hashes_match(&hotp(secret, counter, TOTP_DIGITS), code);
        if matches && step > last_step && accepted.is_none() {
            accepted = Some(step);
        }
    }
    accepted
}

/// RFC 4648 base32 without padding (the `secret` parameter of an `otpauth://` URI).
pub fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The Key URI an authenticator app scans (Google Authenticator's Key Uri Format): the label is
/// `issuer:account`, and every parameter keygate uses is spelled out, defaults included.
pub fn otpauth_uri(issuer: &str, account: &str, secret: &[u8]) -> String {
    let issuer = percent_encode(issuer);
    format!(
        "otpauth://totp/{issuer}:{account}?secret={secret}&issuer={issuer}&algorithm=SHA1&digits={TOTP_DIGITS}&period={TOTP_PERIOD_SECS}",
        account = percent_encode(account),
        secret = base32(secret),
    )
}

/// A fresh TOTP secret, in clear: it goes to the enrolling client once and is stored only sealed.
pub struct TotpSecret(pub [u8; TOTP_SECRET_LEN]);

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret(..)")
    }
}

impl TotpSecret {
    pub fn generate() -> Result<Self, AuthError> {
        Ok(Self(random_bytes()?))
    }
}

/// A sealed TOTP secret could not be opened: an unknown key id, another user's or factor's item, or
/// a damaged value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the TOTP secret cannot be opened with this data-key ring")]
pub struct Unsealable;

/// A data-key ring could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("MFA data-key ring: {0}")]
pub struct KeyRingError(pub String);

/// The least length of a key's material: the ring's keys are generated (Secrets Manager's
/// `generateSecretString`, or [`FactorKeyRing::generate`]), never typed.
pub const MIN_KEY_MATERIAL_LEN: usize = 32;

/// The data keys that seal TOTP secrets: `current` seals, every key opens what it sealed.
///
/// Stored as one JSON object, `{"current": "<key id>", "<key id>": "<material>", ...}`: the shape
/// Secrets Manager generates from a template (`cdk/lib` creates the secret so), and the one the local
/// server keeps in its data folder. Each AES-256 key is HMAC-SHA256 of its material, so material of
/// any alphabet gives a uniform key. Rotating adds a key and points `current` at it.
#[derive(Clone)]
pub struct FactorKeyRing {
    current: String,
    keys: std::sync::Arc<Vec<(String, LessSafeKey)>>,
}

impl std::fmt::Debug for FactorKeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FactorKeyRing")
            .field("current", &self.current)
            .finish_non_exhaustive()
    }
}

/// The name of the member that names the sealing key.
const CURRENT: &str = "current";

fn data_key(material: &str) -> LessSafeKey {
    let prk = hmac::Key::new(hmac::HMAC_SHA256, material.as_bytes());
    let tag = hmac::sign(&prk, b"keygate totp data key\x01");
    let key = UnboundKey::new(&AES_256_GCM, tag.as_ref()).expect("a 32-byte AES-256 key");
    LessSafeKey::new(key)
}

fn aad(user_id: &str, factor_id: &str) -> Vec<u8> {
    let mut aad = b"keygate totp secret".to_vec();
    for part in [user_id, factor_id] {
        aad.extend_from_slice(&(part.len() as u64).to_be_bytes());
        aad.extend_from_slice(part.as_bytes());
    }
    aad
}

impl FactorKeyRing {
    /// Parses the ring's JSON document.
    pub fn parse(text: &str) -> Result<Self, KeyRingError> {
        let error = |m: &str| KeyRingError(m.to_owned());
        let value: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(text).map_err(|_| error("not a JSON object"))?;
        let current = value
            .get(CURRENT)
            .and_then(|v| v.as_str())
            .ok_or_else(|| error("`current` must name a key id"))?
            .to_owned();
        let mut keys = Vec::new();
        for (id, material) in &value {
            if id == CURRENT {
                continue;
            }
            let material = material
                .as_str()
                .filter(|m| m.len() >= MIN_KEY_MATERIAL_LEN)
                .ok_or_else(|| {
                    KeyRingError(format!(
                        "key `{id}` must be a string of at least {MIN_KEY_MATERIAL_LEN} characters"
                    ))
                })?;
            keys.push((id.clone(), data_key(material)));
        }
        if !keys.iter().any(|(id, _)| *id == current) {
            return Err(KeyRingError(format!(
                "`current` names `{current}`, which is not a key"
            )));
        }
        Ok(Self {
            current,
            keys: std::sync::Arc::new(keys),
        })
    }

    /// A new ring's document with one random key, `k1`, current.
    pub fn generate() -> Result<String, AuthError> {
        Self::rotate_document("{}")
    }

    /// `document` with a new random key added and made current (ids `k1`, `k2`, ...); the old keys
    /// stay, so what they sealed still opens. `{}` starts a ring.
    pub fn rotate_document(document: &str) -> Result<String, AuthError> {
        let mut value: serde_json::Map<String, serde_json::Value> = serde_json::from_str(document)
            .map_err(|_| AuthError::Internal("MFA data-key ring: not a JSON object".into()))?;
        let next = (1..)
            .map(|n| format!("k{n}"))
            .find(|id| !value.contains_key(id))
            .expect("an unused key id");
        let material: [u8; 32] = random_bytes()?;
        value.insert(next.clone(), crate::crypto::hex(&material).into());
        value.insert(CURRENT.to_owned(), next.into());
        serde_json::to_string_pretty(&value)
            .map_err(|e| AuthError::Internal(format!("MFA data-key ring: {e}")))
    }

    /// The id of the key that seals.
    pub fn current_key_id(&self) -> &str {
        &self.current
    }

    fn key(&self, key_id: &str) -> Option<&LessSafeKey> {
        self.keys
            .iter()
            .find(|(id, _)| id == key_id)
            .map(|(_, k)| k)
    }

    /// Seals `secret` for `user_id`'s factor `factor_id` with the current key: the key id and the
    /// standard base64 of nonce | ciphertext and tag.
    pub fn seal(
        &self,
        user_id: &str,
        factor_id: &str,
        secret: &TotpSecret,
    ) -> Result<(String, String), AuthError> {
        let key = self
            .key(&self.current)
            .expect("the current key is in the ring");
        let nonce: [u8; NONCE_LEN] = random_bytes()?;
        let mut data = secret.0.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad(user_id, factor_id)),
            &mut data,
        )
        .map_err(|_| AuthError::Internal("TOTP secret sealing failed".into()))?;
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&data);
        Ok((self.current.clone(), STANDARD.encode(sealed)))
    }

    /// Opens a secret [`Self::seal`] made, with the key `key_id` names.
    pub fn open(
        &self,
        key_id: &str,
        user_id: &str,
        factor_id: &str,
        sealed: &str,
    ) -> Result<TotpSecret, Unsealable> {
        let key = self.key(key_id).ok_or(Unsealable)?;
        let bytes = STANDARD.decode(sealed).map_err(|_| Unsealable)?;
        if bytes.len() < NONCE_LEN {
            return Err(Unsealable);
        }
        let (nonce, rest) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| Unsealable)?;
        let mut data = rest.to_vec();
        let plain = key
            .open_in_place(nonce, Aad::from(aad(user_id, factor_id)), &mut data)
            .map_err(|_| Unsealable)?;
        let secret: [u8; TOTP_SECRET_LEN] = plain.try_into().map_err(|_| Unsealable)?;
        Ok(TotpSecret(secret))
    }
}

/// A new set of recovery codes, in clear (shown once), and their hashes (stored).
pub struct RecoveryCodes {
    pub codes: Vec<String>,
    pub hashes: Vec<String>,
}

impl std::fmt::Debug for RecoveryCodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecoveryCodes(..)")
    }
}

impl RecoveryCodes {
    pub fn generate() -> Result<Self, AuthError> {
        let mut codes = Vec::with_capacity(RECOVERY_CODE_COUNT);
        for _ in 0..RECOVERY_CODE_COUNT {
            let bytes: [u8; RECOVERY_CODE_BYTES] = random_bytes()?;
            let plain = base32(&bytes).to_ascii_lowercase();
            // Groups of four, as people copy them; the hyphens are not part of the code.
            let grouped: Vec<&str> = (0..RECOVERY_CODE_CHARS)
                .step_by(4)
                .map(|at| &plain[at..at + 4])
                .collect();
            codes.push(grouped.join("-"));
        }
        let hashes = codes
            .iter()
            .map(|c| recovery_code_hash(c).expect("a generated code is well-formed"))
            .collect();
        Ok(Self { codes, hashes })
    }
}

/// The stored form of a presented recovery code: SHA-256 of its canonical spelling (case, hyphens
/// and spaces ignored), or `None` if it cannot be a recovery code.
pub fn recovery_code_hash(presented: &str) -> Option<String> {
    if presented.len() > 64 {
        return None;
    }
    let canonical: String = presented
        .chars()
        .filter(|c| *c != '-' && *c != ' ')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let well_formed = canonical.len() == RECOVERY_CODE_CHARS
        && canonical
            .bytes()
            .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b));
    well_formed.then(|| sha256_hex(canonical.as_bytes()))
}

/// A login's second-step token, in clear (it goes to the client once), and its stored hash.
pub struct MfaToken {
    pub token: String,
    pub hash: String,
}

impl std::fmt::Debug for MfaToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MfaToken(..)")
    }
}

impl MfaToken {
    pub fn new(email: &str) -> Result<Self, AuthError> {
        let (token, hash) = mint_token(MFA_TOKEN_PREFIX, email)?;
        Ok(Self { token, hash })
    }

    /// The email and hash a presented token names; anything malformed is `InvalidCode`.
    pub fn parse(token: &str) -> Result<(String, String), AuthError> {
        open_token(MFA_TOKEN_PREFIX, token).ok_or(AuthError::InvalidCode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1 rows: the 20-byte ASCII seed, 8 digits.
    #[test]
    fn rfc_6238_appendix_b_vectors() {
        let seed = b"12345678901234567890";
        for (time_s, code) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            let step = totp_step(time_s * 1000) as u64;
            assert_eq!(hotp(seed, step, 8), code, "T = {time_s}");
        }
    }

    /// RFC 4226 appendix D: HOTP values of the same seed for counters 0..=9, 6 digits.
    #[test]
    fn rfc_4226_appendix_d_vectors() {
        let expected = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489",
        ];
        for (counter, code) in expected.iter().enumerate() {
            assert_eq!(hotp(b"12345678901234567890", counter as u64, 6), *code);
        }
    }

    #[test]
    fn a_code_is_accepted_within_one_step_and_only_after_the_last_step() {
        let secret = [9u8; TOTP_SECRET_LEN];
        let now_ms = 1_700_000_000_000;
        let step = totp_step(now_ms);
        let code_at = |s: i64| hotp(&secret, s as u64, TOTP_DIGITS);
        assert_eq!(
            accepted_step(&secret, &code_at(step), now_ms, 0),
            Some(step)
        );
        assert_eq!(
            accepted_step(&secret, &code_at(step - 1), now_ms, 0),
            Some(step - 1)
        );
        assert_eq!(
            accepted_step(&secret, &code_at(step + 1), now_ms, 0),
            Some(step + 1)
        );
        assert_eq!(accepted_step(&secret, &code_at(step - 2), now_ms, 0), None);
        assert_eq!(accepted_step(&secret, &code_at(step + 2), now_ms, 0), None);
        // Replay: the step was already accepted, or a later one was.
        assert_eq!(accepted_step(&secret, &code_at(step), now_ms, step), None);
        assert_eq!(
            accepted_step(&secret, &code_at(step - 1), now_ms, step - 1),
            None
        );
        for bad in ["", "12345", "1234567", "12345a", "１２３４５６"] {
            assert_eq!(accepted_step(&secret, bad, now_ms, 0), None, "{bad}");
        }
    }

    #[test]
    fn base32_matches_rfc_4648_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ] {
            assert_eq!(base32(plain.as_bytes()), encoded);
        }
    }

    #[test]
    fn the_key_uri_names_every_parameter_and_encodes_the_label() {
        let uri = otpauth_uri("Acme Corp", "ada+1@example.com", b"12345678901234567890");
        assert_eq!(
            uri,
            "otpauth://totp/Acme%20Corp:ada%2B1%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Acme%20Corp&algorithm=SHA1&digits=6&period=30"
        );
    }

    fn ring(document: &str) -> FactorKeyRing {
        FactorKeyRing::parse(document).unwrap()
    }

    #[test]
    fn sealed_secrets_open_only_for_their_user_and_factor() {
        let ring = ring(&FactorKeyRing::generate().unwrap());
        let secret = TotpSecret([5; TOTP_SECRET_LEN]);
        let (kid, sealed) = ring.seal("user-a", "factor-1", &secret).unwrap();
        assert_eq!(kid, "k1");
        assert_eq!(
            ring.open(&kid, "user-a", "factor-1", &sealed).unwrap().0,
            secret.0
        );
        // A wrong AAD (another user or factor) fails to decrypt.
        assert_eq!(
            ring.open(&kid, "user-b", "factor-1", &sealed).err(),
            Some(Unsealable)
        );
        assert_eq!(
            ring.open(&kid, "user-a", "factor-2", &sealed).err(),
            Some(Unsealable)
        );
        assert_eq!(
            ring.open("k9", "user-a", "factor-1", &sealed).err(),
            Some(Unsealable)
        );
        let mut damaged = STANDARD.decode(&sealed).unwrap();
        damaged[NONCE_LEN] ^= 1;
        let damaged = STANDARD.encode(damaged);
        assert!(ring.open(&kid, "user-a", "factor-1", &damaged).is_err());
        // The secret's bytes are nowhere in the sealed value.
        assert!(
            !STANDARD
                .decode(&sealed)
                .unwrap()
                .windows(20)
                .any(|w| w == secret.0)
        );
    }

    #[test]
    fn a_rotated_ring_seals_with_its_new_key_and_still_opens_the_old() {
        let first = FactorKeyRing::generate().unwrap();
        let old = ring(&first);
        let secret = TotpSecret([7; TOTP_SECRET_LEN]);
        let (old_kid, sealed) = old.seal("u", "f", &secret).unwrap();
        let rotated = ring(&FactorKeyRing::rotate_document(&first).unwrap());
        assert_eq!(rotated.current_key_id(), "k2");
        assert_eq!(
            rotated.open(&old_kid, "u", "f", &sealed).unwrap().0,
            secret.0
        );
        let (new_kid, resealed) = rotated.seal("u", "f", &secret).unwrap();
        assert_eq!(new_kid, "k2");
        assert!(old.open(&new_kid, "u", "f", &resealed).is_err());
    }

    #[test]
    fn a_malformed_ring_is_refused_with_its_reason() {
        for (document, reason) in [
            ("[]", "not a JSON object"),
            ("{}", "`current`"),
            (r#"{"current":"k1"}"#, "not a key"),
            (r#"{"current":"k1","k1":"short"}"#, "at least 32"),
            (r#"{"current":"k1","k1":7}"#, "at least 32"),
        ] {
            let error = FactorKeyRing::parse(document).unwrap_err();
            assert!(error.to_string().contains(reason), "{document}: {error}");
        }
        // Secrets Manager's generated shape: one generated member beside the template's `current`.
        let generated = r#"{"current":"k1","k1":"Zt3vPq9XwYb2LmN4kR7sT1uV6eH8jA0cDfGiK"}"#;
        assert_eq!(ring(generated).current_key_id(), "k1");
    }

    #[test]
    fn recovery_codes_carry_120_bits_and_are_stored_as_hashes_of_their_canonical_spelling() {
        let set = RecoveryCodes::generate().unwrap();
        assert_eq!(set.codes.len(), RECOVERY_CODE_COUNT);
        let distinct: std::collections::BTreeSet<_> = set.hashes.iter().collect();
        assert_eq!(distinct.len(), RECOVERY_CODE_COUNT);
        let code = &set.codes[0];
        assert_eq!(code.replace('-', "").len() * 5, 120);
        let hash = recovery_code_hash(code).unwrap();
        assert_eq!(hash, set.hashes[0]);
        assert!(!hash.contains(&code.replace('-', "")));
        let sloppy = code.to_uppercase().replace('-', " ");
        assert_eq!(recovery_code_hash(&sloppy), Some(hash));
        for bad in [
            "",
            "abcd",
            &"a".repeat(23),
            &"1".repeat(24),
            &"a".repeat(65),
        ] {
            assert_eq!(recovery_code_hash(bad), None, "{bad}");
        }
    }

    #[test]
    fn mfa_tokens_carry_the_email_and_are_checked_strictly() {
        let token = MfaToken::new("ada@example.com").unwrap();
        assert!(token.token.starts_with(MFA_TOKEN_PREFIX));
        let (email, hash) = MfaToken::parse(&token.token).unwrap();
        assert_eq!(
            (email.as_str(), hash.as_str()),
            ("ada@example.com", token.hash.as_str())
        );
        for bad in ["", "kgmt_", "kgev_AAAA", "kgmt_!!"] {
            assert!(MfaToken::parse(bad).is_err(), "{bad}");
        }
    }
}
