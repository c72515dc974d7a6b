//! The offline verifier against tokens from keygate-core's own issuing code, and against forgeries.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{EncodingKey, Header, encode};
use keygate_core::SigningAlgorithm;
use keygate_core::config::AuthConfig;
use keygate_core::keys::{KeySet, KeySetDocument, generate_key};
use keygate_core::tokens;
use keygate_smoke::jwt::{Expected, Jwks, verify};
use serde_json::{Value, json};

const ISSUER: &str = "https://abc.execute-api.eu-west-1.amazonaws.com/prod";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn keys(alg: SigningAlgorithm) -> KeySet {
    KeySet::from_documents(
        &KeySetDocument {
            keys: vec![generate_key(alg, 0).unwrap()],
        },
        None,
    )
    .unwrap()
}

fn expected(now: i64) -> Expected<'static> {
    Expected {
        issuer: ISSUER,
        audience: "keygate",
        subject: "user-1",
        now,
    }
}

fn claims(keys: &KeySet) -> Value {
    let token = tokens::issue(
        keys,
        &AuthConfig::with_issuer(ISSUER),
        "user-1",
        now(),
        keygate_core::tokens::SessionFlags::VERIFIED,
        now() * 1000,
    )
    .unwrap()
    .token;
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn sign(keys: &KeySet, header: Header, claims: &Value) -> String {
    encode(
        &header,
        claims,
        keys.signing_key(now() * 1000).encoding.as_ref().unwrap(),
    )
    .unwrap()
}

fn header(keys: &KeySet) -> Header {
    let key = keys.signing_key(now() * 1000);
    let mut header = Header::new(key.alg.jwt_algorithm());
    header.typ = Some("at+jwt".into());
    header.kid = Some(key.kid.clone());
    header
}

#[test]
fn core_tokens_verify_for_every_public_algorithm() {
    for alg in [
        SigningAlgorithm::Es256,
        SigningAlgorithm::Rs256,
        SigningAlgorithm::EdDsa,
    ] {
        let keys = keys(alg);
        let jwks = Jwks::parse(&keys.jwks()).unwrap();
        let token = tokens::issue(
            &keys,
            &AuthConfig::with_issuer(ISSUER),
            "user-1",
            now(),
            keygate_core::tokens::SessionFlags::VERIFIED,
            now() * 1000,
        )
        .unwrap()
        .token;
        let verified = verify(&token, &jwks, &expected(now())).unwrap();
        assert_eq!(verified.kid, keys.signing_key(now() * 1000).kid);
        assert_eq!(verified.lifetime, 900);
    }
}

#[test]
fn claim_mismatches_are_named() {
    let keys = keys(SigningAlgorithm::Es256);
    let jwks = Jwks::parse(&keys.jwks()).unwrap();
    let token = tokens::issue(
        &keys,
        &AuthConfig::with_issuer(ISSUER),
        "user-1",
        now(),
        keygate_core::tokens::SessionFlags::VERIFIED,
        now() * 1000,
    )
    .unwrap()
    .token;
    let check = |expected: Expected<'_>, needle: &str| {
        let err = verify(&token, &jwks, &expected).unwrap_err();
        assert!(err.contains(needle), "{err}");
    };
    check(
        Expected {
            issuer: "https://other.example.com",
            ..expected(now())
        },
        "iss is Some(",
    );
    check(
        Expected {
            audience: "other",
            ..expected(now())
        },
        "aud is \"keygate\", expected \"other\"",
    );
    check(
        Expected {
            subject: "user-2",
            ..expected(now())
        },
        "sub is Some(\"user-1\")",
    );
    check(expected(now() + 901), "expired");
}

#[test]
fn forged_or_malformed_tokens_are_refused() {
    let keys = keys(SigningAlgorithm::Es256);
    let jwks = Jwks::parse(&keys.jwks()).unwrap();
    let claims = claims(&keys);
    let e = expected(now());

    let mut plain = header(&keys);
    plain.typ = Some("JWT".into());
    assert!(
        verify(&sign(&keys, plain, &claims), &jwks, &e)
            .unwrap_err()
            .contains("typ is \"JWT\"")
    );

    let mut unknown = header(&keys);
    unknown.kid = Some("nope".into());
    assert!(
        verify(&sign(&keys, unknown, &claims), &jwks, &e)
            .unwrap_err()
            .contains("kid `nope` is not in the JWKS")
    );

    // HS256 keyed with the public JWK: the alg comes from the JWK, so this is refused.
    let mut confused = header(&keys);
    confused.alg = jsonwebtoken::Algorithm::HS256;
    let forged = encode(
        &confused,
        &claims,
        &EncodingKey::from_secret(keys.jwks().to_string().as_bytes()).unwrap(),
    )
    .unwrap();
    assert!(
        verify(&forged, &jwks, &e)
            .unwrap_err()
            .contains("differs from JWK")
    );

    let mut long_lived = claims.clone();
    long_lived["exp"] = json!(claims["iat"].as_i64().unwrap() + 3600);
    assert!(
        verify(&sign(&keys, header(&keys), &long_lived), &jwks, &e)
            .unwrap_err()
            .contains("more than 900 s")
    );

    let mut no_jti = claims.clone();
    no_jti.as_object_mut().unwrap().remove("jti");
    assert!(
        verify(&sign(&keys, header(&keys), &no_jti), &jwks, &e)
            .unwrap_err()
            .contains("no jti")
    );

    let token = sign(&keys, header(&keys), &claims);
    let mut parts: Vec<&str> = token.split('.').collect();
    let other = sign(&keys, header(&keys), &json!({"sub": "admin"}));
    parts[1] = other.split('.').nth(1).unwrap();
    assert!(
        verify(&parts.join("."), &jwks, &e)
            .unwrap_err()
            .contains("signature does not verify")
    );

    assert!(
        verify("not-a-jwt", &jwks, &e)
            .unwrap_err()
            .contains("not a JWS")
    );
}

#[test]
fn unsafe_jwks_documents_are_refused() {
    let keys = keys(SigningAlgorithm::Es256);
    let good = keys.jwks();
    let cases: Vec<(Value, &str)> = vec![
        (json!({}), "no `keys` array"),
        (json!({"keys": []}), "lists no keys"),
        (
            json!({"keys": [{"kty": "oct", "kid": "a", "k": "c2VjcmV0", "alg": "HS256"}]}),
            "secret member `k`",
        ),
        (
            json!({"keys": [{"kty": "oct", "kid": "a", "alg": "HS256"}]}),
            "symmetric",
        ),
        (
            {
                let mut v = good.clone();
                v["keys"][0]["d"] = json!("AAAA");
                v
            },
            "private or secret member `d`",
        ),
        (
            {
                let mut v = good.clone();
                v["keys"][0].as_object_mut().unwrap().remove("kid");
                v
            },
            "has no kid",
        ),
    ];
    for (doc, needle) in cases {
        let err = Jwks::parse(&doc).unwrap_err();
        assert!(err.contains(needle), "{doc}: {err}");
    }
}

#[test]
fn a_jwk_without_alg_or_for_encryption_is_refused() {
    let keys = keys(SigningAlgorithm::Es256);
    let claims = claims(&keys);
    let token = sign(&keys, header(&keys), &claims);
    let mut no_alg = keys.jwks();
    no_alg["keys"][0].as_object_mut().unwrap().remove("alg");
    assert!(
        verify(&token, &Jwks::parse(&no_alg).unwrap(), &expected(now()))
            .unwrap_err()
            .contains("names no alg")
    );
    let mut enc = keys.jwks();
    enc["keys"][0]["use"] = json!("enc");
    assert!(
        verify(&token, &Jwks::parse(&enc).unwrap(), &expected(now()))
            .unwrap_err()
            .contains("expected \"sig\"")
    );
}
