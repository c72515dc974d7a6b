//! Signing keys: the stored key-set document, key generation, and the loaded set that signs and verifies.
//!
//! A key-set document (JSON) lists keys newest first. Of a current document's keys, the newest
//! whose `not_before` has passed signs and all verify; a rotation stamps its new key with a
//! `not_before` one [`KeyTimeline::lead_secs`] ahead, so every verifier's cached JWKS knows the key
//! before a token names it. A pending document's first key is published and verifies, but does not
//! sign. One algorithm per key.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{DecodingKey, EncodingKey};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::algorithm::SigningAlgorithm;
use crate::config::AuthConfig;
use crate::crypto::random_bytes;

/// How long verifiers may cache the JWKS (its `Cache-Control: max-age`); a rotation's lead covers it.
pub const JWKS_MAX_AGE_SECS: u64 = 300;

/// When a rotation's new key signs and how long the key it replaces keeps verifying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyTimeline {
    /// From a key's publication to its first signature: a verifier's JWKS is at most one key-cache TTL
    /// (the JWKS is served from the cached key set) plus one JWKS max-age old.
    pub lead_secs: i64,
    /// From the moment a key stops signing until a rotation may drop it: the tokens it signed last
    /// must expire first (access-token lifetime plus the verification leeway).
    pub retain_secs: i64,
}

impl KeyTimeline {
    /// The timeline of a deployment whose functions run `config` (their key-cache TTL included).
    pub fn new(config: &AuthConfig) -> Self {
        let secs = |s: u128| i64::try_from(s).unwrap_or(i64::MAX);
        let ttl_secs = secs(config.key_cache_ttl_secs.into());
        Self {
            lead_secs: secs(JWKS_MAX_AGE_SECS.into()).saturating_add(ttl_secs),
            retain_secs: secs(config.access_token_ttl_secs.into())
                .saturating_add(secs(config.leeway_secs.into())),
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
    /// The key signs from this time on (seconds since the epoch). Absent: as soon as its document is
    /// current (a deployment's first key, and documents written before the field existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<i64>,
}

impl KeyMaterial {
    /// When this key started (or starts) signing.
    fn signs_from(&self) -> i64 {
        self.not_before.unwrap_or(self.created_at)
    }
}

/// The position of the key that signs at `now_s` among keys listed newest first, given their
/// `not_before`: the newest whose time has come; the oldest when none has (it was published longest).
fn signer_position(not_befores: impl ExactSizeIterator<Item = Option<i64>>, now_s: i64) -> usize {
    let oldest = not_befores.len().saturating_sub(1);
    not_befores
        .enumerate()
        .find(|(_, not_before)| not_before.is_none_or(|t| t <= now_s))
        .map_or(oldest, |(position, _)| position)
}

impl fmt::Debug for KeyMaterial {
    // Never print private key material, not even in debug output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyMaterial")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("not_before", &self.not_before)
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

    /// Which key signs at `now_ms`, as [`KeySet::signing_key`] picks it.
    pub fn signing_key(&self, now_ms: i64) -> Option<&KeyMaterial> {
        let candidates = self.keys.iter().map(|k| k.not_before);
        self.keys
            .get(signer_position(candidates, now_ms.div_euclid(1000)))
    }

    /// The document that follows `current` after a rotation at `now_s`. The new key comes first and
    /// signs from `now_s + lead` on; without a current document (a deployment's first key) it signs at
    /// once, since no verifier can hold an older JWKS. Of `current`, the keys that do not sign yet and
    /// the signing key stay (tokens keep their keys until the new one takes over), and so does each
    /// older key replaced less than `retain` ago (the tokens it signed may still be alive).
    pub fn rotated(
        current: Option<&KeySetDocument>,
        mut new_key: KeyMaterial,
        now_s: i64,
        timeline: KeyTimeline,
    ) -> KeySetDocument {
        let Some(current) = current.filter(|doc| !doc.keys.is_empty()) else {
            new_key.not_before = None;
            return KeySetDocument {
                keys: vec![new_key],
            };
        };
        new_key.not_before = Some(now_s.saturating_add(timeline.lead_secs));
        let signer = signer_position(current.keys.iter().map(|k| k.not_before), now_s);
        let mut keys = vec![new_key];
        keys.extend(current.keys[..=signer].iter().cloned());
        // Each key after the signer stopped signing when the key listed before it started.
        for pair in current.keys[signer..].windows(2) {
            let (successor, replaced) = (&pair[0], &pair[1]);
            if now_s >= successor.signs_from().saturating_add(timeline.retain_secs) {
                break;
            }
            keys.push(replaced.clone());
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
        SigningAlgorithm::Hs256 => random_bytes::<32>()
            .map_err(|_| KeyError::Generation)?
            .to_vec(),
    };
    let kid: [u8; 12] = random_bytes().map_err(|_| KeyError::Generation)?;
    Ok(KeyMaterial {
        kid: URL_SAFE_NO_PAD.encode(kid),
        alg,
        private_key: URL_SAFE_NO_PAD.encode(der),
        created_at: now_secs,
        not_before: None,
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
    /// `None` for a key loaded from a [`PublicKeySetDocument`]: it verifies and cannot sign.
    pub encoding: Option<EncodingKey>,
    pub decoding: DecodingKey,
    /// The public JWK, for asymmetric keys.
    pub jwk: Option<Value>,
    /// See [`KeyMaterial::not_before`].
    pub not_before: Option<i64>,
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
                (Some(EncodingKey::from_ec_der(&der)), decoding, Some(jwk))
            }
            SigningAlgorithm::EdDsa => {
                let pair = Ed25519KeyPair::from_pkcs8(&der)
                    .map_err(|_| invalid("not an Ed25519 PKCS#8 key"))?;
                let x = b64(pair.public_key().as_ref());
                let decoding =
                    DecodingKey::from_ed_components(&x).map_err(|_| invalid("bad public key"))?;
                let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA", "use": "sig"});
                (Some(EncodingKey::from_ed_der(&der)), decoding, Some(jwk))
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
                (Some(EncodingKey::from_rsa_der(&der)), decoding, Some(jwk))
            }
            SigningAlgorithm::Hs256 => {
                if der.len() < 32 {
                    return Err(invalid("HS256 secrets must have at least 256 bits"));
                }
                let encoding = EncodingKey::from_secret(&der).map_err(|_| invalid("bad secret"))?;
                let decoding = DecodingKey::from_secret(&der).map_err(|_| invalid("bad secret"))?;
                (Some(encoding), decoding, None)
            }
        };
        Ok(LoadedKey {
            kid,
            alg: material.alg,
            encoding,
            decoding,
            jwk,
            not_before: material.not_before,
        })
    }
}

impl LoadedKey {
    /// Loads a verify-only key from its public entry. The JWK must be exactly the public key of its
    /// algorithm: a private member (`d`, `p`, ...) or a symmetric key is refused, so a public key set
    /// can never become a way to ship private material to a verifier.
    pub fn load_public(entry: &PublicKeyEntry) -> Result<Self, KeyError> {
        let invalid =
            |what: &str| KeyError::NoValidKeySet(format!("public key {}: {what}", entry.kid));
        if entry.kid.is_empty() || entry.kid.len() > 128 {
            return Err(invalid("kid must be 1-128 characters"));
        }
        let Some(members) = entry.jwk.as_object() else {
            return Err(invalid("jwk is not an object"));
        };
        let text = |name: &str| -> Result<&str, KeyError> {
            members
                .get(name)
                .and_then(Value::as_str)
                .ok_or_else(|| invalid(&format!("jwk lacks `{name}`")))
        };
        let allowed: &[&str] = match entry.alg {
            SigningAlgorithm::Es256 => &["kty", "crv", "x", "y", "kid", "alg", "use"],
            SigningAlgorithm::EdDsa => &["kty", "crv", "x", "kid", "alg", "use"],
            SigningAlgorithm::Rs256 => &["kty", "n", "e", "kid", "alg", "use"],
            SigningAlgorithm::Hs256 => {
                return Err(invalid("HS256 keys are secret and have no public form"));
            }
        };
        if let Some(extra) = members.keys().find(|m| !allowed.contains(&m.as_str())) {
            return Err(invalid(&format!(
                "jwk member `{extra}` is not part of a public key"
            )));
        }
        if text("kid")? != entry.kid || text("alg")? != entry.alg.name() {
            return Err(invalid("jwk kid or alg differs from the entry's"));
        }
        let decoding = match entry.alg {
            SigningAlgorithm::Es256 => {
                if text("kty")? != "EC" || text("crv")? != "P-256" {
                    return Err(invalid("not a P-256 key"));
                }
                DecodingKey::from_ec_components(text("x")?, text("y")?)
            }
            SigningAlgorithm::EdDsa => {
                if text("kty")? != "OKP" || text("crv")? != "Ed25519" {
                    return Err(invalid("not an Ed25519 key"));
                }
                DecodingKey::from_ed_components(text("x")?)
            }
            SigningAlgorithm::Rs256 => {
                if text("kty")? != "RSA" {
                    return Err(invalid("not an RSA key"));
                }
                DecodingKey::from_rsa_components(text("n")?, text("e")?)
            }
            SigningAlgorithm::Hs256 => unreachable!("refused above"),
        }
        .map_err(|_| invalid("bad public key components"))?;
        Ok(LoadedKey {
            kid: entry.kid.clone(),
            alg: entry.alg,
            encoding: None,
            decoding,
            jwk: Some(entry.jwk.clone()),
            not_before: entry.not_before,
        })
    }
}

/// One key of a [`PublicKeySetDocument`]: what a verifier needs, never a private component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicKeyEntry {
    pub kid: String,
    pub alg: SigningAlgorithm,
    /// The public JWK, exactly as the JWKS publishes it.
    pub jwk: Value,
    /// See [`KeyMaterial::not_before`]; kept so the public set tells when each key signs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<i64>,
}

/// The public view of the key set, which rotate-keys writes to a second secret beside the signing
/// secret: functions that only verify read this one and never get a grant on private keys. It lists
/// every key the JWKS publishes (current keys and, during a rotation, the pending key), newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicKeySetDocument {
    pub keys: Vec<PublicKeyEntry>,
}

impl PublicKeySetDocument {
    pub fn parse(json: &str) -> Result<Self, KeyError> {
        let doc: PublicKeySetDocument = serde_json::from_str(json)
            .map_err(|e| KeyError::NoValidKeySet(format!("not a public key-set document: {e}")))?;
        if doc.keys.is_empty() {
            return Err(KeyError::NoValidKeySet(
                "the public document lists no keys".into(),
            ));
        }
        Ok(doc)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("public key-set documents serialise")
    }

    /// The public view of the keys `current` and `pending` publish (see [`KeySet::from_documents`]);
    /// without a current document (a deployment's first rotation) the pending document's keys.
    /// HS256 keys have no public form and are left out.
    pub fn of(
        current: Option<&KeySetDocument>,
        pending: Option<&KeySetDocument>,
    ) -> Result<Self, KeyError> {
        let set = match (current, pending) {
            (Some(current), pending) => KeySet::from_documents(current, pending)?,
            (None, Some(pending)) => KeySet::from_documents(pending, None)?,
            (None, None) => {
                return Err(KeyError::NoValidKeySet("no key set to publish".into()));
            }
        };
        Ok(set.public_document())
    }
}

/// The keys in force: one signs at a time, all verify.
#[derive(Debug)]
pub struct KeySet {
    keys: Vec<LoadedKey>,
    /// The first `signers` keys come from the current document and may sign; the rest (the pending
    /// key) are published and verify only.
    signers: usize,
}

impl KeySet {
    /// Loads the current document (its keys sign in turn, see [`signing_key`](Self::signing_key)) and,
    /// when a rotation is under way, the pending one (its first key is published and verifies, but
    /// does not sign).
    pub fn from_documents(
        current: &KeySetDocument,
        pending: Option<&KeySetDocument>,
    ) -> Result<Self, KeyError> {
        fn add(keys: &mut Vec<LoadedKey>, material: &KeyMaterial) -> Result<(), KeyError> {
            if !keys.iter().any(|k| k.kid == material.kid) {
                keys.push(LoadedKey::load(material)?);
            }
            Ok(())
        }
        let mut keys: Vec<LoadedKey> = Vec::new();
        for material in &current.keys {
            add(&mut keys, material)?;
        }
        let signers = keys.len();
        if signers == 0 {
            return Err(KeyError::NoValidKeySet("the document lists no keys".into()));
        }
        if let Some(material) = pending.and_then(|doc| doc.keys.first()) {
            add(&mut keys, material)?;
        }
        Ok(Self { keys, signers })
    }

    /// The key that signs at `now_ms`: the newest current key whose `not_before` has passed.
    pub fn signing_key(&self, now_ms: i64) -> &LoadedKey {
        let candidates = self.keys[..self.signers].iter().map(|k| k.not_before);
        &self.keys[signer_position(candidates, now_ms.div_euclid(1000))]
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

    /// Loads a verify-only set from the public document: every key verifies, none signs
    /// ([`tokens::issue`](crate::tokens::issue) refuses with [`KeyError::Unavailable`]).
    pub fn from_public(document: &PublicKeySetDocument) -> Result<Self, KeyError> {
        let mut keys: Vec<LoadedKey> = Vec::new();
        for entry in &document.keys {
            if !keys.iter().any(|k| k.kid == entry.kid) {
                keys.push(LoadedKey::load_public(entry)?);
            }
        }
        if keys.is_empty() {
            return Err(KeyError::NoValidKeySet(
                "the public document lists no keys".into(),
            ));
        }
        let signers = keys.len();
        Ok(Self { keys, signers })
    }

    /// The public view of this set (asymmetric keys only), as rotate-keys stores it.
    pub fn public_document(&self) -> PublicKeySetDocument {
        PublicKeySetDocument {
            keys: self
                .keys
                .iter()
                .filter_map(|k| {
                    Some(PublicKeyEntry {
                        kid: k.kid.clone(),
                        alg: k.alg,
                        jwk: k.jwk.clone()?,
                        not_before: k.not_before,
                    })
                })
                .collect(),
        }
    }

    /// The public JSON Web Key Set (RFC 7517): asymmetric keys only.
    pub fn jwks(&self) -> Value {
        json!({"keys": self.keys.iter().filter_map(|k| k.jwk.clone()).collect::<Vec<_>>()})
    }
}

/// Where the service gets its keys: a fixed set locally, Secrets Manager (cached) on Lambda.
pub trait KeySource: Send + Sync + 'static {
    fn key_set(&self) -> impl Future<Output = Result<Arc<KeySet>, KeyError>> + Send;

    /// The key set for verifying a token that names `kid`. A source whose keys can change reloads
    /// when its cached set does not know `kid` (rate-limited: anyone can make up a `kid`); a fixed
    /// source just answers [`key_set`](Self::key_set).
    fn key_set_knowing(
        &self,
        kid: &str,
    ) -> impl Future<Output = Result<Arc<KeySet>, KeyError>> + Send {
        let _ = kid;
        self.key_set()
    }
}

impl<K: KeySource> KeySource for Arc<K> {
    fn key_set(&self) -> impl Future<Output = Result<Arc<KeySet>, KeyError>> + Send {
        (**self).key_set()
    }
    fn key_set_knowing(
        &self,
        kid: &str,
    ) -> impl Future<Output = Result<Arc<KeySet>, KeyError>> + Send {
        (**self).key_set_knowing(kid)
    }
}

/// A fresh one-key set of `alg` and its public key set as a verifier reads it back from the published
/// JSON (test fixture shared by the key and token tests).
#[cfg(test)]
pub(crate) fn one_key_and_its_public_set(
    alg: crate::algorithm::SigningAlgorithm,
) -> (KeySet, PublicKeySetDocument) {
    let doc = KeySetDocument {
        keys: vec![generate_key(alg, 0).unwrap()],
    };
    let public = PublicKeySetDocument::parse(
        &PublicKeySetDocument::of(Some(&doc), None)
            .unwrap()
            .to_json(),
    )
    .unwrap();
    (KeySet::from_documents(&doc, None).unwrap(), public)
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
            assert_eq!(set.signing_key(0).kid, key.kid);
            let published = set.jwks()["keys"].as_array().unwrap().len();
            assert_eq!(published, usize::from(alg.is_public()), "{alg}");
            if alg.is_public() {
                let jwk = &set.jwks()["keys"][0];
                assert_eq!(jwk["alg"], alg.name());
                assert!(jwk.get("d").is_none(), "no private part in the JWKS");
            }
        }
    }

    const TIMELINE: KeyTimeline = KeyTimeline {
        lead_secs: 600,
        retain_secs: 930,
    };

    fn key_signing_from(not_before: Option<i64>) -> KeyMaterial {
        KeyMaterial {
            not_before,
            ..generate_key(SigningAlgorithm::Es256, 0).unwrap()
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
            1,
            TIMELINE,
        );
        let set = KeySet::from_documents(&current, Some(&pending)).unwrap();
        assert_eq!(set.signing_key(i64::MAX).kid, old.kid);
        assert!(set.find(&pending.keys[0].kid).is_some());
        assert_eq!(set.jwks()["keys"].as_array().unwrap().len(), 2);
        // After the rotation finishes the old key signs until the new key's not_before, then the new
        // key signs and the old one still verifies.
        let after = KeySet::from_documents(&pending, None).unwrap();
        assert_eq!(pending.keys[0].not_before, Some(1 + TIMELINE.lead_secs));
        assert_eq!(after.signing_key(1_000).kid, old.kid);
        assert_eq!(after.signing_key(600_999).kid, old.kid);
        assert_eq!(after.signing_key(601_000).kid, pending.keys[0].kid);
        assert!(after.find(&old.kid).is_some());
    }

    #[test]
    fn the_first_key_of_a_deployment_signs_at_once() {
        let first = KeySetDocument::rotated(None, key_signing_from(Some(5)), 1_000, TIMELINE);
        assert_eq!(first.keys.len(), 1);
        assert_eq!(first.keys[0].not_before, None);
        let set = KeySet::from_documents(&first, None).unwrap();
        assert_eq!(set.signing_key(1_000_000).kid, first.keys[0].kid);
        // A document without keys is no earlier set either.
        let empty = KeySetDocument { keys: vec![] };
        let from_empty =
            KeySetDocument::rotated(Some(&empty), key_signing_from(None), 1_000, TIMELINE);
        assert_eq!(from_empty.keys[0].not_before, None);
    }

    #[test]
    fn the_newest_key_whose_not_before_has_passed_signs() {
        let doc = KeySetDocument {
            keys: vec![
                key_signing_from(Some(2_000)),
                key_signing_from(Some(1_000)),
                key_signing_from(None),
            ],
        };
        let set = KeySet::from_documents(&doc, None).unwrap();
        let signer = |now_s: i64| set.signing_key(now_s * 1000).kid.clone();
        let kid = |i: usize| doc.keys[i].kid.clone();
        assert_eq!(signer(0), kid(2));
        assert_eq!(signer(999), kid(2));
        assert_eq!(signer(1_000), kid(1));
        assert_eq!(signer(1_999), kid(1));
        assert_eq!(signer(2_000), kid(0));
        assert_eq!(doc.signing_key(1_500_000).map(|k| &k.kid), Some(&kid(1)));
        // Nothing may sign yet (a hand-made document): the oldest key, published longest, signs.
        let future = KeySetDocument {
            keys: vec![key_signing_from(Some(2_000)), key_signing_from(Some(1_000))],
        };
        let set = KeySet::from_documents(&future, None).unwrap();
        assert_eq!(set.signing_key(0).kid, future.keys[1].kid);
    }

    #[test]
    fn a_rotation_keeps_keys_that_sign_or_will_and_those_replaced_within_the_retention() {
        let first = KeyMaterial {
            created_at: 0,
            ..key_signing_from(None)
        };
        let second = key_signing_from(Some(1_000));
        let current = KeySetDocument {
            keys: vec![second.clone(), first.clone()],
        };
        let kids =
            |doc: &KeySetDocument| doc.keys.iter().map(|k| k.kid.clone()).collect::<Vec<_>>();
        // Before the second key signs, the first still does: both stay.
        let early = KeySetDocument::rotated(Some(&current), key_signing_from(None), 500, TIMELINE);
        assert_eq!(kids(&early)[1..], [second.kid.clone(), first.kid.clone()]);
        assert_eq!(early.keys[0].not_before, Some(500 + TIMELINE.lead_secs));
        // The first key was replaced at 1000: it stays for the retention, then goes.
        let retained = 1_000 + TIMELINE.retain_secs;
        let within = KeySetDocument::rotated(
            Some(&current),
            key_signing_from(None),
            retained - 1,
            TIMELINE,
        );
        assert_eq!(kids(&within)[1..], [second.kid.clone(), first.kid.clone()]);
        let past =
            KeySetDocument::rotated(Some(&current), key_signing_from(None), retained, TIMELINE);
        assert_eq!(kids(&past), [past.keys[0].kid.clone(), second.kid.clone()]);
        // A key without not_before started signing when it was created.
        let old_format = KeySetDocument {
            keys: vec![
                KeyMaterial {
                    created_at: 100,
                    ..key_signing_from(None)
                },
                first.clone(),
            ],
        };
        let rotated = KeySetDocument::rotated(
            Some(&old_format),
            key_signing_from(None),
            100 + TIMELINE.retain_secs - 1,
            TIMELINE,
        );
        assert_eq!(rotated.keys.len(), 3);
        let rotated = KeySetDocument::rotated(
            Some(&old_format),
            key_signing_from(None),
            100 + TIMELINE.retain_secs,
            TIMELINE,
        );
        assert_eq!(rotated.keys.len(), 2);
    }

    #[test]
    fn documents_without_not_before_stay_readable_and_the_first_key_writes_none() {
        let json = r#"{"keys":[{"kid":"a","alg":"ES256","private_key":"AAAA","created_at":7}]}"#;
        let doc = KeySetDocument::parse(json).unwrap();
        assert_eq!(doc.keys[0].not_before, None);
        assert_eq!(
            doc.to_json(),
            json,
            "no not_before is written for a key without one"
        );
        let stamped = KeySetDocument {
            keys: vec![KeyMaterial {
                not_before: Some(42),
                ..doc.keys[0].clone()
            }],
        };
        let reread = KeySetDocument::parse(&stamped.to_json()).unwrap();
        assert_eq!(reread, stamped);
        assert!(stamped.to_json().contains(r#""not_before":42"#));
    }

    #[test]
    fn the_timeline_adds_the_jwks_max_age_to_the_key_cache_ttl() {
        let mut config = AuthConfig::with_issuer("https://auth.example.com");
        config.key_cache_ttl_secs = 2;
        let timeline = KeyTimeline::new(&config);
        assert_eq!(timeline.lead_secs, JWKS_MAX_AGE_SECS as i64 + 2);
        assert_eq!(
            timeline.retain_secs,
            (config.access_token_ttl_secs + config.leeway_secs) as i64
        );
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
    fn a_public_set_publishes_the_same_jwks_and_refuses_private_members() {
        use crate::algorithm::SigningAlgorithm;
        for alg in [
            SigningAlgorithm::Es256,
            SigningAlgorithm::Rs256,
            SigningAlgorithm::EdDsa,
        ] {
            let (private, public_doc) = one_key_and_its_public_set(alg);
            let public = KeySet::from_public(&public_doc).unwrap();
            assert_eq!(public.jwks(), private.jwks(), "{alg}");
            // A private member smuggled into the public set is refused, so is a key of another kind.
            let mut smuggled = public_doc.clone();
            smuggled.keys[0].jwk["d"] = json!("AAAA");
            assert!(KeySet::from_public(&smuggled).is_err(), "{alg}");
            let mut renamed = public_doc.clone();
            renamed.keys[0].kid = "other".into();
            assert!(KeySet::from_public(&renamed).is_err(), "{alg}");
        }
        // HS256 has no public form: nothing is published, and a hand-written entry is refused.
        let hs = KeySetDocument {
            keys: vec![generate_key(SigningAlgorithm::Hs256, 0).unwrap()],
        };
        assert!(
            PublicKeySetDocument::of(Some(&hs), None)
                .unwrap()
                .keys
                .is_empty()
        );
        let entry = PublicKeyEntry {
            kid: "h".into(),
            alg: SigningAlgorithm::Hs256,
            jwk: json!({"kty": "oct", "k": "AAAA", "kid": "h", "alg": "HS256"}),
            not_before: None,
        };
        assert!(KeySet::from_public(&PublicKeySetDocument { keys: vec![entry] }).is_err());
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
