//! Access tokens: JWTs per RFC 9068 (`typ: at+jwt`), signed by the key that signs at the issue time and
//! verified against a strict allow-list (the algorithms of the loaded keys, matched per `kid`; never
//! `none`).

use jsonwebtoken::{Header, Validation};
use serde::{Deserialize, Serialize};

use crate::config::AuthConfig;
use crate::crypto::random_bytes;
use crate::error::AuthError;
use crate::keys::{KeySet, KeySource, LoadedKey};
pub use crate::refresh::SessionFlags;

pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";
/// Tokens longer than this are refused before any parsing.
const MAX_ACCESS_TOKEN_LEN: usize = 8 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    /// The user id; never the email.
    pub sub: String,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    pub auth_time: i64,
    /// A UUIDv7: unique, and its timestamp gives the issue time to the millisecond, which the
    /// revocation watermark needs (`iat` has one-second resolution).
    pub jti: String,
    pub client_id: String,
    /// Whether the user's email was verified when the session began. Absent in tokens issued before
    /// the claim existed, which still verify (read as false).
    #[serde(default)]
    pub email_verified: bool,
    /// How the session authenticated (RFC 8176): `pwd`, plus `otp` when the session's flags say a
    /// second factor was presented. Absent in tokens issued before the claim existed (read as empty).
    #[serde(default)]
    pub amr: Vec<String>,
}

/// RFC 8176 method names keygate puts in `amr`.
pub const AMR_PASSWORD: &str = "pwd";
pub const AMR_OTP: &str = "otp";

impl SessionFlags {
    /// The `amr` claim of a session with these flags (every session began with a password).
    pub fn amr(self) -> Vec<String> {
        let mut amr = vec![AMR_PASSWORD.to_owned()];
        if self.second_factor {
            amr.push(AMR_OTP.to_owned());
        }
        amr
    }
}

impl AccessClaims {
    /// Issue time in milliseconds, read from the UUIDv7 `jti`.
    pub fn issued_at_ms(&self) -> Option<i64> {
        let id = uuid::Uuid::try_parse(&self.jti).ok()?;
        if id.get_version_num() != 7 {
            return None;
        }
        let b = id.as_bytes();
        Some(i64::from_be_bytes([
            0, 0, b[0], b[1], b[2], b[3], b[4], b[5],
        ]))
    }
}

#[derive(Debug, Clone)]
pub struct IssuedAccessToken {
    pub token: String,
    pub expires_in: u64,
}

/// Signs an access token for `user_id` with the key that signs at `now_ms` (see [`KeySet::signing_key`]).
pub fn issue(
    keys: &KeySet,
    config: &AuthConfig,
    user_id: &str,
    auth_time_s: i64,
    session: SessionFlags,
    now_ms: i64,
) -> Result<IssuedAccessToken, AuthError> {
    issue_with_key(
        keys.signing_key(now_ms),
        config,
        user_id,
        auth_time_s,
        session,
        now_ms,
    )
}

/// Signs an access token for `user_id` with `key`, whatever its `not_before` (a rotation's test of its
/// new key).
pub fn issue_with_key(
    key: &LoadedKey,
    config: &AuthConfig,
    user_id: &str,
    auth_time_s: i64,
    session: SessionFlags,
    now_ms: i64,
) -> Result<IssuedAccessToken, AuthError> {
    let random: [u8; 10] = random_bytes()?;
    let jti = uuid::Builder::from_unix_timestamp_millis(now_ms.max(0) as u64, &random).into_uuid();
    let now_s = now_ms.div_euclid(1000);
    let claims = AccessClaims {
        iss: config.issuer.clone(),
        aud: config.audience.clone(),
        sub: user_id.to_owned(),
        exp: now_s + config.access_token_ttl_secs as i64,
        iat: now_s,
        nbf: now_s,
        auth_time: auth_time_s,
        jti: jti.hyphenated().to_string(),
        client_id: config.audience.clone(),
        email_verified: session.email_verified,
        amr: session.amr(),
    };
    let mut header = Header::new(key.alg.jwt_algorithm());
    header.typ = Some(ACCESS_TOKEN_TYPE.to_owned());
    header.kid = Some(key.kid.clone());
    // A verify-only key set (read from the public key secret) holds no private key: 503, not a panic.
    let encoding = key.encoding.as_ref().ok_or_else(|| {
        AuthError::Keys(crate::keys::KeyError::Unavailable(
            "this function holds public keys only and cannot sign".into(),
        ))
    })?;
    let token = jsonwebtoken::encode(&header, &claims, encoding)
        .map_err(|e| AuthError::Internal(format!("signing: {e}")))?;
    Ok(IssuedAccessToken {
        token,
        expires_in: config.access_token_ttl_secs,
    })
}

/// [`verify`] against the keys of `source`. A token that names a key the cached set does not know makes
/// the source reload first (rate-limited, see [`KeySource::key_set_knowing`]), so a process whose cache
/// predates a rotation still accepts the new key's tokens.
pub async fn verify_from<K: KeySource>(
    source: &K,
    config: &AuthConfig,
    token: &str,
    now_ms: i64,
) -> Result<AccessClaims, AuthError> {
    let kid = (token.len() <= MAX_ACCESS_TOKEN_LEN)
        .then(|| jsonwebtoken::decode_header(token).ok()?.kid)
        .flatten();
    let keys = match kid {
        Some(kid) => source.key_set_knowing(&kid).await?,
        None => source.key_set().await?,
    };
    verify(&keys, config, token, now_ms)
}

/// Verifies signature, header, issuer, audience and lifetime (with the configured leeway) at `now_ms`.
pub fn verify(
    keys: &KeySet,
    config: &AuthConfig,
    token: &str,
    now_ms: i64,
) -> Result<AccessClaims, AuthError> {
    let invalid = |_| AuthError::InvalidAccessToken;
    if token.len() > MAX_ACCESS_TOKEN_LEN {
        return Err(AuthError::InvalidAccessToken);
    }
    let header = jsonwebtoken::decode_header(token).map_err(invalid)?;
    if header.typ.as_deref() != Some(ACCESS_TOKEN_TYPE) {
        return Err(AuthError::InvalidAccessToken);
    }
    let key = header
        .kid
        .as_deref()
        .and_then(|kid| keys.find(kid))
        .ok_or(AuthError::InvalidAccessToken)?;
    // One algorithm per key: the header must name exactly the key's algorithm.
    if header.alg != key.alg.jwt_algorithm() {
        return Err(AuthError::InvalidAccessToken);
    }
    let mut validation = Validation::new(key.alg.jwt_algorithm());
    validation.set_issuer(&[&config.issuer]);
    validation.set_audience(&[&config.audience]);
    validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
    // Lifetime is checked below against the injected clock rather than the library's.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    let claims = jsonwebtoken::decode::<AccessClaims>(token, &key.decoding, &validation)
        .map_err(invalid)?
        .claims;
    let now_s = now_ms.div_euclid(1000);
    let leeway = config.leeway_secs as i64;
    if claims.exp + leeway <= now_s
        || claims.nbf - leeway > now_s
        || claims.issued_at_ms().is_none()
    {
        return Err(AuthError::InvalidAccessToken);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algorithm::SigningAlgorithm;
    use crate::keys::{KeyError, KeySetDocument, generate_key};
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    const NOW: i64 = 1_800_000_000_000;

    fn setup(alg: SigningAlgorithm) -> (KeySet, AuthConfig) {
        let keys = KeySet::from_documents(
            &KeySetDocument {
                keys: vec![generate_key(alg, 0).unwrap()],
            },
            None,
        )
        .unwrap();
        (keys, AuthConfig::with_issuer("https://auth.example.com"))
    }

    #[test]
    fn a_public_set_verifies_but_cannot_sign() {
        for alg in [
            SigningAlgorithm::Es256,
            SigningAlgorithm::Rs256,
            SigningAlgorithm::EdDsa,
        ] {
            let config = AuthConfig::with_issuer("https://auth.example.com");
            let (private, public_doc) = crate::keys::one_key_and_its_public_set(alg);
            let public = KeySet::from_public(&public_doc).unwrap();
            let token = issue(&private, &config, "u", 1, SessionFlags::VERIFIED, 1_000).unwrap();
            verify(&public, &config, &token.token, 1_000).unwrap();
            assert!(
                matches!(
                    issue(&public, &config, "u", 1, SessionFlags::VERIFIED, 1_000),
                    Err(AuthError::Keys(KeyError::Unavailable(_)))
                ),
                "{alg}: a public set cannot sign"
            );
        }
    }

    fn parts(token: &str) -> (serde_json::Value, serde_json::Value) {
        let mut it = token.split('.');
        let mut part = || {
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(it.next().unwrap()).unwrap()).unwrap()
        };
        (part(), part())
    }

    #[test]
    fn tokens_carry_the_rfc_9068_header_and_claims() {
        for alg in [
            SigningAlgorithm::Es256,
            SigningAlgorithm::Rs256,
            SigningAlgorithm::EdDsa,
            SigningAlgorithm::Hs256,
        ] {
            let (keys, config) = setup(alg);
            let issued = issue(
                &keys,
                &config,
                "user-1",
                1_799_999_000,
                SessionFlags::VERIFIED,
                NOW,
            )
            .unwrap();
            let (header, claims) = parts(&issued.token);
            assert_eq!(header["typ"], "at+jwt");
            assert_eq!(header["alg"], alg.name());
            assert_eq!(header["kid"], keys.signing_key(NOW).kid.as_str());
            for claim in ["iss", "aud", "sub", "exp", "iat", "nbf", "auth_time", "jti"] {
                assert!(claims.get(claim).is_some(), "{claim}");
            }
            assert_eq!(claims["sub"], "user-1");
            assert_eq!(claims["amr"], serde_json::json!(["pwd"]));
            assert_eq!(
                claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
                900
            );
            let second = SessionFlags {
                email_verified: true,
                second_factor: true,
            };
            let with_otp = issue(&keys, &config, "user-1", 1_799_999_000, second, NOW).unwrap();
            let amr = verify(&keys, &config, &with_otp.token, NOW + 1000)
                .unwrap()
                .amr;
            assert_eq!(amr, [AMR_PASSWORD, AMR_OTP]);
            let verified = verify(&keys, &config, &issued.token, NOW + 1000).unwrap();
            assert_eq!(verified.issued_at_ms(), Some(NOW));
        }
    }

    #[test]
    fn expiry_and_not_before_use_the_leeway() {
        let (keys, config) = setup(SigningAlgorithm::Es256);
        let token = issue(&keys, &config, "u", 0, SessionFlags::VERIFIED, NOW)
            .unwrap()
            .token;
        assert!(verify(&keys, &config, &token, NOW + 900_000 + 29_000).is_ok());
        assert!(verify(&keys, &config, &token, NOW + 900_000 + 30_000).is_err());
        assert!(verify(&keys, &config, &token, NOW - 30_000).is_ok());
        assert!(verify(&keys, &config, &token, NOW - 31_000).is_err());
    }

    #[test]
    fn wrong_issuer_audience_or_key_is_refused() {
        let (keys, config) = setup(SigningAlgorithm::Es256);
        let token = issue(&keys, &config, "u", 0, SessionFlags::VERIFIED, NOW)
            .unwrap()
            .token;
        let other_issuer = AuthConfig::with_issuer("https://evil.example.com");
        assert!(verify(&keys, &other_issuer, &token, NOW).is_err());
        let mut other_audience = config.clone();
        other_audience.audience = "someone-else".into();
        assert!(verify(&keys, &other_audience, &token, NOW).is_err());
        let (other_keys, _) = setup(SigningAlgorithm::Es256);
        assert!(verify(&other_keys, &config, &token, NOW).is_err());
    }

    #[test]
    fn alg_none_and_algorithm_confusion_are_refused() {
        let (keys, config) = setup(SigningAlgorithm::Es256);
        let token = issue(&keys, &config, "u", 0, SessionFlags::VERIFIED, NOW)
            .unwrap()
            .token;
        let (_, claims) = parts(&token);
        let kid = keys.signing_key(NOW).kid.clone();
        let enc = |v: serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
        // alg: none with an empty signature.
        let none = format!(
            "{}.{}.",
            enc(serde_json::json!({"alg": "none", "typ": "at+jwt", "kid": kid})),
            enc(claims.clone())
        );
        assert!(verify(&keys, &config, &none, NOW).is_err());
        // HS256 keyed with the public JWK (the classic confusion attack).
        let public = keys.jwks().to_string();
        let mut header = Header::new(jsonwebtoken::Algorithm::HS256);
        header.typ = Some("at+jwt".into());
        header.kid = Some(kid.clone());
        let forged = jsonwebtoken::encode(
            &header,
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(public.as_bytes()).unwrap(),
        )
        .unwrap();
        assert!(verify(&keys, &config, &forged, NOW).is_err());
        // Plain JWT type instead of at+jwt.
        let mut jwt_header = Header::new(jsonwebtoken::Algorithm::ES256);
        jwt_header.kid = Some(kid);
        let plain = jsonwebtoken::encode(
            &jwt_header,
            &claims,
            keys.signing_key(NOW).encoding.as_ref().unwrap(),
        )
        .unwrap();
        assert!(verify(&keys, &config, &plain, NOW).is_err());
    }

    #[test]
    fn tampered_claims_fail_the_signature() {
        let (keys, config) = setup(SigningAlgorithm::EdDsa);
        let token = issue(&keys, &config, "u", 0, SessionFlags::VERIFIED, NOW)
            .unwrap()
            .token;
        let mut pieces: Vec<String> = token.split('.').map(str::to_owned).collect();
        let (_, mut claims) = parts(&token);
        claims["sub"] = "admin".into();
        pieces[1] = URL_SAFE_NO_PAD.encode(claims.to_string());
        assert!(verify(&keys, &config, &pieces.join("."), NOW).is_err());
    }

    proptest::proptest! {
        #[test]
        fn verify_never_panics(s in "[A-Za-z0-9_.-]{0,400}") {
            let (keys, config) = setup(SigningAlgorithm::Es256);
            let _ = verify(&keys, &config, &s, NOW);
        }
    }
}
