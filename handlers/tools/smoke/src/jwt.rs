//! Verifies an access token the way a relying party would, with nothing but the deployment's public
//! JWKS and discovery document: kid lookup, the algorithm taken from the JWK (never from the token
//! alone), signature, `typ: at+jwt`, iss, aud, sub and lifetime.

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde_json::Value;

/// RFC 9068 access tokens carry this `typ`; RFC 7515 lets it also be written with `application/`.
const ACCESS_TOKEN_TYPES: [&str; 2] = ["at+jwt", "application/at+jwt"];
/// The design's upper bound on an access token's lifetime (15 minutes).
pub const MAX_LIFETIME_SECS: i64 = 900;
/// Clock skew tolerated between this machine and the deployment for `iat` and `nbf`.
pub const SKEW_SECS: i64 = 60;
/// JWK members that only private or symmetric keys have: a public JWKS must never hold them.
const PRIVATE_MEMBERS: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "k"];

/// The signing keys published by the deployment.
#[derive(Debug, Clone)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

impl Jwks {
    /// Parses and vets a JWKS document: at least one key, every key with a `kid`, nothing secret.
    pub fn parse(document: &Value) -> Result<Self, String> {
        let entries = document
            .get("keys")
            .and_then(Value::as_array)
            .ok_or("the JWKS has no `keys` array")?;
        if entries.is_empty() {
            return Err("the JWKS lists no keys (an HS256 deployment publishes none and cannot be verified offline)".into());
        }
        let mut keys = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            let kid = entry
                .get("kid")
                .and_then(Value::as_str)
                .filter(|k| !k.is_empty());
            let name = kid.map_or_else(|| format!("#{i}"), |k| format!("`{k}`"));
            if let Some(member) = PRIVATE_MEMBERS.iter().find(|m| entry.get(**m).is_some()) {
                return Err(format!(
                    "JWKS key {name} publishes the private or secret member `{member}`"
                ));
            }
            if entry.get("kty").and_then(Value::as_str) == Some("oct") {
                return Err(format!("JWKS key {name} is a symmetric (oct) key"));
            }
            if kid.is_none() {
                return Err(format!("JWKS key {name} has no kid"));
            }
            let jwk: Jwk = serde_json::from_value(entry.clone())
                .map_err(|e| format!("JWKS key {name} is not a valid JWK: {e}"))?;
            keys.push(jwk);
        }
        Ok(Self { keys })
    }

    pub fn find(&self, kid: &str) -> Option<&Jwk> {
        self.keys
            .iter()
            .find(|k| k.common.key_id.as_deref() == Some(kid))
    }

    pub fn kids(&self) -> Vec<&str> {
        self.keys
            .iter()
            .filter_map(|k| k.common.key_id.as_deref())
            .collect()
    }
}

/// What the token must say.
pub struct Expected<'a> {
    pub issuer: &'a str,
    pub audience: &'a str,
    pub subject: &'a str,
    /// Seconds since the epoch on this machine.
    pub now: i64,
}

/// Facts about a verified token, for verbose output (nothing secret).
#[derive(Debug, Clone)]
pub struct Verified {
    pub kid: String,
    pub alg: Algorithm,
    pub expires_in: i64,
    pub lifetime: i64,
    /// RFC 8176 `amr` (empty when absent).
    pub amr: Vec<String>,
}

/// The `kid` in the token's header, so a caller can refresh its JWKS when the key is unknown.
pub fn token_kid(token: &str) -> Result<String, String> {
    let header = decode_header(token)
        .map_err(|e| format!("the access token is not a JWS compact JWT ({e})"))?;
    header
        .kid
        .filter(|k| !k.is_empty())
        .ok_or_else(|| "the access token's header has no kid".to_owned())
}

pub fn verify(token: &str, jwks: &Jwks, expected: &Expected<'_>) -> Result<Verified, String> {
    let header = decode_header(token)
        .map_err(|e| format!("the access token is not a JWS compact JWT ({e})"))?;
    let typ = header.typ.as_deref().unwrap_or("");
    if !ACCESS_TOKEN_TYPES
        .iter()
        .any(|t| t.eq_ignore_ascii_case(typ))
    {
        return Err(format!(
            "the access token's header typ is {typ:?}, expected \"at+jwt\" (RFC 9068)"
        ));
    }
    let kid = token_kid(token)?;
    let jwk = jwks.find(&kid).ok_or_else(|| {
        format!(
            "the access token's kid `{kid}` is not in the JWKS (kids: {})",
            jwks.kids().join(", ")
        )
    })?;
    let jwk_alg = jwk
        .common
        .key_algorithm
        .ok_or_else(|| format!("JWK `{kid}` names no alg"))?;
    let alg = Algorithm::try_from(jwk_alg).map_err(|_| {
        format!("JWK `{kid}` has alg {jwk_alg}, which is not a JWS signing algorithm")
    })?;
    if matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
        || matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_))
    {
        return Err(format!(
            "JWK `{kid}` is a symmetric key; a public JWKS must hold public keys only"
        ));
    }
    if let Some(usage) = &jwk.common.public_key_use
        && *usage != PublicKeyUse::Signature
    {
        return Err(format!("JWK `{kid}` has use {usage:?}, expected \"sig\""));
    }
    if header.alg != alg {
        return Err(format!(
            "the access token's header alg {:?} differs from JWK `{kid}`'s alg {alg:?}",
            header.alg
        ));
    }
    let key = DecodingKey::from_jwk(jwk)
        .map_err(|e| format!("JWK `{kid}` is not a usable {alg:?} key: {e}"))?;

    // First the signature alone, so that a claim mismatch below can be reported precisely.
    let mut signature_only = Validation::new(alg);
    signature_only.required_spec_claims.clear();
    signature_only.validate_exp = false;
    signature_only.validate_aud = false;
    let claims = decode::<Value>(token, &key, &signature_only)
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                format!("the access token's signature does not verify with JWK `{kid}` ({alg:?})")
            }
            _ => format!("the access token does not verify with JWK `{kid}` ({alg:?}): {e}"),
        })?
        .claims;

    let claim_str = |name: &str| claims.get(name).and_then(Value::as_str);
    let claim_int = |name: &str| claims.get(name).and_then(Value::as_i64);
    match claim_str("iss") {
        Some(iss) if iss == expected.issuer => {}
        other => {
            return Err(format!(
                "the access token's iss is {other:?}, expected the discovery issuer {:?}",
                expected.issuer
            ));
        }
    }
    let aud_ok = match claims.get("aud") {
        Some(Value::String(aud)) => aud == expected.audience,
        Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(expected.audience)),
        _ => false,
    };
    if !aud_ok {
        return Err(format!(
            "the access token's aud is {}, expected {:?}",
            claims.get("aud").unwrap_or(&Value::Null),
            expected.audience
        ));
    }
    match claim_str("sub") {
        Some(sub) if sub == expected.subject => {}
        other => {
            return Err(format!(
                "the access token's sub is {other:?}, expected the registered user_id {:?}",
                expected.subject
            ));
        }
    }
    let exp = claim_int("exp").ok_or("the access token has no numeric exp")?;
    if exp <= expected.now {
        return Err(format!(
            "the access token expired {} s ago (exp {exp})",
            expected.now - exp
        ));
    }
    let iat = claim_int("iat").ok_or("the access token has no numeric iat")?;
    if iat > expected.now + SKEW_SECS {
        return Err(format!(
            "the access token's iat is {} s in the future (clock skew?)",
            iat - expected.now
        ));
    }
    if let Some(nbf) = claims.get("nbf") {
        let nbf = nbf
            .as_i64()
            .ok_or("the access token's nbf is not a number")?;
        if nbf > expected.now + SKEW_SECS {
            return Err(format!(
                "the access token's nbf is {} s in the future (clock skew?)",
                nbf - expected.now
            ));
        }
    }
    let lifetime = exp - iat;
    if lifetime > MAX_LIFETIME_SECS {
        return Err(format!(
            "the access token lives {lifetime} s (exp - iat), more than {MAX_LIFETIME_SECS} s"
        ));
    }
    if claim_str("jti").is_none_or(str::is_empty) {
        return Err("the access token has no jti".into());
    }

    // Then the library's own validation, configured as a relying party would configure it.
    let mut standard = Validation::new(alg);
    standard.set_issuer(&[expected.issuer]);
    standard.set_audience(&[expected.audience]);
    standard.sub = Some(expected.subject.to_owned());
    standard.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    standard.validate_nbf = true;
    standard.leeway = SKEW_SECS as u64;
    decode::<Value>(token, &key, &standard)
        .map_err(|e| format!("jsonwebtoken's standard validation refuses the access token: {e}"))?;

    let amr = claims
        .get("amr")
        .and_then(Value::as_array)
        .map(|methods| {
            methods
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    Ok(Verified {
        kid,
        alg,
        expires_in: exp - expected.now,
        lifetime,
        amr,
    })
}
