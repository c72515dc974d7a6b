//! Signing keys: the stored key-set document, key generation, and the loaded set that signs and verifies.
//!
//! A key-set document (JSON) lists keys newest first. When a document is the current one, its first key
//! signs and the rest (the previous key) still verify; a pending document's first key is published before
//! it signs, so verifiers know it in advance. One algorithm per key.

use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SigningAlgorithm {
    #[serde(rename = "ES256")]
    Es256,
    #[serde(rename = "RS256")]
    Rs256,
    #[serde(rename = "EdDSA")]
    EdDsa,
    /// Shared-secret signing: only when explicitly chosen, and then nothing is published in the JWKS.
    #[serde(rename = "HS256")]
    Hs256,
}

impl SigningAlgorithm {
    pub fn name(self) -> &'static str {
        match self {
            SigningAlgorithm::Es256 => "ES256",
            SigningAlgorithm::Rs256 => "RS256",
            SigningAlgorithm::EdDsa => "EdDSA",
            SigningAlgorithm::Hs256 => "HS256",
        }
    }

    pub fn jwt_algorithm(self) -> Algorithm {
        match self {
            SigningAlgorithm::Es256 => Algorithm::ES256,
            SigningAlgorithm::Rs256 => Algorithm::RS256,
            SigningAlgorithm::EdDsa => Algorithm::EdDSA,
            SigningAlgorithm::Hs256 => Algorithm::HS256,
        }
    }

    /// Whether verifiers get this key through the JWKS (asymmetric keys only).
    pub fn is_public(self) -> bool {
        self != SigningAlgorithm::Hs256
    }
}

impl fmt::Display for SigningAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SigningAlgorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ES256" => Ok(SigningAlgorithm::Es256),
            "RS256" => Ok(SigningAlgorithm::Rs256),
            "EdDSA" => Ok(SigningAlgorithm::EdDsa),
            "HS256" => Ok(SigningAlgorithm::Hs256),
            other => Err(format!(
                "`{other}` is not one of ES256, RS256, EdDSA, HS256"
            )),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key store holds no usable key set yet (for example before the first rotation).
    #[error("no valid signing key set: {0}")]
    NoValidKeySet(String),
    /// The key store could not be reached and nothing is cached.
    #[error("signing keys unavailable: {0}")]
    Unavailable(String),
    #[error("key generation failed")]
    Generation,
}

/// One key as stored: `private_key` is base64url of PKCS#8 DER (ES256, EdDSA), PKCS#1 RSAPrivateKey
/// DER (RS256) or the raw secret (HS256).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyMaterial {
    pub kid: String,
    pub alg: SigningAlgorithm,
    pub private_key: String,
    /// Creation time, seconds since the epoch.
    pub created_at: i64,
}

impl fmt::Debug for KeyMaterial {
    // Never print private key material, not even in debug output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyMaterial")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// The JSON document stored in the key secret (or the local key file); newest key first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySetDocument {
    pub keys: Vec<KeyMaterial>,
}

impl KeySetDocument {
    pub fn parse(json: &str) -> Result<Self, KeyError> {
        let doc: KeySetDocument = serde_json::from_str(json)
            .map_err(|e| KeyError::NoValidKeySet(format!("not a key-set document: {e}")))?;
        if doc.keys.is_empty() {
            return Err(KeyError::NoValidKeySet("the document lists no keys".into()));
        }
        Ok(doc)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("key-set documents serialise")
    }

    /// The document that follows this one after a rotation: a new key first, then this document's
    /// signing key, kept so tokens it signed still verify.
    pub fn rotated(current: Option<&KeySetDocument>, new_key: KeyMaterial) -> KeySetDocument {
        let mut keys = vec![new_key];
        if let Some(previous) = current.and_then(|doc| doc.keys.first()) {
            keys.push(previous.clone());
        }
        KeySetDocument { keys }
    }
}

/// Generates a new key for `alg` from the OS CSPRNG.
pub fn generate_key(alg: SigningAlgorithm, now_secs: i64) -> Result<KeyMaterial, KeyError> {
    let rng = SystemRandom::new();
    let der: Vec<u8> = match alg {
        SigningAlgorithm::Es256 => {
            EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .map_err(|_| KeyError::Generation)?
                .as_ref()
                .to_vec()
        }
        SigningAlgorithm::EdDsa => Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(|_| KeyError::Generation)?
            .as_ref()
            .to_vec(),
        SigningAlgorithm::Rs256 => {
            use aws_lc_rs::encoding::AsDer;
            let pair = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                .map_err(|_| KeyError::Generation)?;
            let pkcs8 = pair.as_der().map_err(|_| KeyError::Generation)?;
            pkcs1_from_pkcs8(pkcs8.as_ref())
                .ok_or(KeyError::Generation)?
                .to_vec()
        }
        SigningAlgorithm::Hs256 => {
            let mut secret = vec![0u8; 32];
            aws_lc_rs::rand::fill(&mut secret).map_err(|_| KeyError::Generation)?;
            secret
        }
    };
    let mut kid = [0u8; 12];
    aws_lc_rs::rand::fill(&mut kid).map_err(|_| KeyError::Generation)?;
    Ok(KeyMaterial {
        kid: URL_SAFE_NO_PAD.encode(kid),
        alg,
        private_key: URL_SAFE_NO_PAD.encode(der),
        created_at: now_secs,
    })
}

/// Extracts the PKCS#1 RSAPrivateKey from a PKCS#8 PrivateKeyInfo (what aws-lc-rs exports and what
/// jsonwebtoken's RSA signer reads, respectively).
fn pkcs1_from_pkcs8(der: &[u8]) -> Option<&[u8]> {
    // Reads one DER TLV at the start of `input`: (tag, contents, rest).
    fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, rest) = input.split_first()?;
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (first as usize, rest)
        } else {
            let n = (first & 0x7f) as usize;
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | b as usize);
            (len, &rest[n..])
        };
        (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
    }
    let (0x30, info, _) = tlv(der)? else {
        return None;
    };
    let (0x02, _version, rest) = tlv(info)? else {
        return None;
    };
    let (0x30, _algorithm, rest) = tlv(rest)? else {
        return None;
    };
    let (0x04, key, _) = tlv(rest)? else {
        return None;
    };
    Some(key)
}

/// A key ready to sign and verify.
pub struct LoadedKey {
    pub kid: String,
    pub alg: SigningAlgorithm,
    pub encoding: EncodingKey,
    pub decoding: DecodingKey,
    /// The public JWK, for asymmetric keys.
    pub jwk: Option<Value>,
}

impl fmt::Debug for LoadedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl LoadedKey {
    pub fn load(material: &KeyMaterial) -> Result<Self, KeyError> {
        let invalid = |what: &str| KeyError::NoValidKeySet(format!("key {}: {what}", material.kid));
        if material.kid.is_empty() || material.kid.len() > 128 {
            return Err(invalid("kid must be 1-128 characters"));
        }
        let der = URL_SAFE_NO_PAD
            .decode(&material.private_key)
            .map_err(|_| invalid("private_key is not base64url"))?;
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        let kid = material.kid.clone();
        let (encoding, decoding, jwk) = match material.alg {
            SigningAlgorithm::Es256 => {
                let pair =
                    EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &der)
                        .map_err(|_| invalid("not a P-256 PKCS#8 key"))?;
                let point = pair.public_key().as_ref();
                let (x, y) = (b64(&point[1..33]), b64(&point[33..65]));
                let decoding = DecodingKey::from_ec_components(&x, &y)
                    .map_err(|_| invalid("bad public point"))?;
                let jwk = json!({"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid, "alg": "ES256", "use": "sig"});
                (EncodingKey::from_ec_der(&der), decoding, Some(jwk))
            }
            SigningAlgorithm::EdDsa => {
                let pair = Ed25519KeyPair::from_pkcs8(&der)
                    .map_err(|_| invalid("not an Ed25519 PKCS#8 key"))?;
                let x = b64(pair.public_key().as_ref());
                let decoding =
                    DecodingKey::from_ed_components(&x).map_err(|_| invalid("bad public key"))?;
                let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA", "use": "sig"});
                (EncodingKey::from_ed_der(&der), decoding, Some(jwk))
            }
            SigningAlgorithm::Rs256 => {
                let pair =
                    RsaKeyPair::from_der(&der).map_err(|_| invalid("not a PKCS#1 RSA key"))?;
                if pair.public_modulus_len() < 256 {
                    return Err(invalid("RSA keys must have at least 2048 bits"));
                }
                let public = pair.public_key();
                let n = public.modulus().big_endian_without_leading_zero().to_vec();
                let e = public.exponent().big_endian_without_leading_zero().to_vec();
                let decoding = DecodingKey::from_rsa_raw_components(&n, &e);
                let jwk = json!({"kty": "RSA", "n": b64(&n), "e": b64(&e), "kid": kid, "alg": "RS256", "use": "sig"});
                (EncodingKey::from_rsa_der(&der), decoding, Some(jwk))
            }
            SigningAlgorithm::Hs256 => {
                if der.len() < 32 {
                    return Err(invalid("HS256 secrets must have at least 256 bits"));
                }
                let encoding = EncodingKey::from_secret(&der).map_err(|_| invalid("bad secret"))?;
                let decoding = DecodingKey::from_secret(&der).map_err(|_| invalid("bad secret"))?;
                (encoding, decoding, None)
            }
        };
        Ok(LoadedKey {
            kid,
            alg: material.alg,
            encoding,
            decoding,
            jwk,
        })
    }
}

/// The keys in force: one signs, all verify.
#[derive(Debug)]
pub struct KeySet {
    keys: Vec<LoadedKey>,
}

impl KeySet {
    /// Loads the current document (its first key signs) and, when a rotation is under way, the pending
    /// one (its first key is published and verifies, but does not sign yet).
    pub fn from_documents(
        current: &KeySetDocument,
        pending: Option<&KeySetDocument>,
    ) -> Result<Self, KeyError> {
        let mut keys: Vec<LoadedKey> = Vec::new();
        let candidates = current
            .keys
            .iter()
            .chain(pending.into_iter().flat_map(|doc| doc.keys.first()));
        for material in candidates {
            if keys.iter().any(|k| k.kid == material.kid) {
                continue;
            }
            keys.push(LoadedKey::load(material)?);
        }
        if keys.is_empty() {
            return Err(KeyError::NoValidKeySet("the document lists no keys".into()));
        }
        Ok(Self { keys })
    }

    pub fn signing_key(&self) -> &LoadedKey {
        &self.keys[0]
    }

    pub fn find(&self, kid: &str) -> Option<&LoadedKey> {
        self.keys.iter().find(|k| k.kid == kid)
    }

    /// Algorithms that verification accepts: exactly those of the loaded keys.
    pub fn algorithms(&self) -> Vec<SigningAlgorithm> {
        let mut algs: Vec<SigningAlgorithm> = self.keys.iter().map(|k| k.alg).collect();
        algs.dedup();
        algs
    }

    /// The public JSON Web Key Set (RFC 7517): asymmetric keys only.
    pub fn jwks(&self) -> Value {
        json!({"keys": self.keys.iter().filter_map(|k| k.jwk.clone()).collect::<Vec<_>>()})
    }
}

/// Where the service gets its keys: a fixed set locally, Secrets Manager (cached) on Lambda.
pub trait KeySource: Send + Sync + 'static {
    fn key_set(&self) -> impl Future<Output = Result<Arc<KeySet>, KeyError>> + Send;
}

/// A key set that never changes during the process.
#[derive(Debug, Clone)]
pub struct StaticKeySource(pub Arc<KeySet>);

impl KeySource for StaticKeySource {
    async fn key_set(&self) -> Result<Arc<KeySet>, KeyError> {
        Ok(self.0.clone())
    }
}

impl<K: KeySource> KeySource for Arc<K> {
    fn key_set(&self) -> impl Future<Output = Result<Arc<KeySet>, KeyError>> + Send {
        (**self).key_set()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_algorithm_generates_loads_and_publishes_as_it_should() {
        for alg in [
            SigningAlgorithm::Es256,
            SigningAlgorithm::Rs256,
            SigningAlgorithm::EdDsa,
            SigningAlgorithm::Hs256,
        ] {
            let key = generate_key(alg, 0).unwrap();
            let set = KeySet::from_documents(
                &KeySetDocument {
                    keys: vec![key.clone()],
                },
                None,
            )
            .unwrap();
            assert_eq!(set.signing_key().kid, key.kid);
            let published = set.jwks()["keys"].as_array().unwrap().len();
            assert_eq!(published, usize::from(alg.is_public()), "{alg}");
            if alg.is_public() {
                let jwk = &set.jwks()["keys"][0];
                assert_eq!(jwk["alg"], alg.name());
                assert!(jwk.get("d").is_none(), "no private part in the JWKS");
            }
        }
    }

    #[test]
    fn pending_key_is_published_but_does_not_sign() {
        let old = generate_key(SigningAlgorithm::Es256, 0).unwrap();
        let current = KeySetDocument {
            keys: vec![old.clone()],
        };
        let pending = KeySetDocument::rotated(
            Some(&current),
            generate_key(SigningAlgorithm::Es256, 1).unwrap(),
        );
        let set = KeySet::from_documents(&current, Some(&pending)).unwrap();
        assert_eq!(set.signing_key().kid, old.kid);
        assert!(set.find(&pending.keys[0].kid).is_some());
        assert_eq!(set.jwks()["keys"].as_array().unwrap().len(), 2);
        // After the rotation finishes the new key signs and the old one still verifies.
        let after = KeySet::from_documents(&pending, None).unwrap();
        assert_eq!(after.signing_key().kid, pending.keys[0].kid);
        assert!(after.find(&old.kid).is_some());
    }

    #[test]
    fn garbage_documents_are_invalid_key_sets() {
        for bad in [
            "",
            "random-password-string",
            "{}",
            r#"{"keys":[]}"#,
            r#"{"keys":[{"kid":"a","alg":"none","private_key":"","created_at":0}]}"#,
        ] {
            assert!(KeySetDocument::parse(bad).is_err(), "{bad}");
        }
        let doc = KeySetDocument::parse(
            r#"{"keys":[{"kid":"a","alg":"ES256","private_key":"AAAA","created_at":0}]}"#,
        )
        .unwrap();
        assert!(matches!(
            KeySet::from_documents(&doc, None),
            Err(KeyError::NoValidKeySet(_))
        ));
    }

    #[test]
    fn debug_output_hides_private_keys() {
        let key = generate_key(SigningAlgorithm::Es256, 0).unwrap();
        let printed = format!(
            "{key:?} {:?}",
            KeySetDocument {
                keys: vec![key.clone()]
            }
        );
        assert!(!printed.contains(&key.private_key));
    }
}
