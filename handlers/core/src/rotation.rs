//! Signing-key rotation and versioned key sources, over one small port.
//!
//! The key set lives in a store of *versions* with *staging labels*, the model of AWS Secrets Manager:
//! `AWSCURRENT` signs (its document's later keys still verify), `AWSPENDING` is published and verifies
//! but does not sign yet. [`SecretVersionStore`] is that model; keygate-aws implements it on Secrets
//! Manager and `FileVersionStore` on the local server's key file (`handlers/local/src/keyfile.rs`), so the same code
//! ([`run_step`], [`rotate`], [`VersionedKeySource`]) rotates and serves both.
//!
//! The four steps follow Secrets Manager's rotation-function contract; each is idempotent, because
//! Secrets Manager retries a step whose invocation failed or timed out:
//! - `createSecret`: unless the token's version already has a value, generate a key for the configured
//!   algorithm and store `KeySetDocument::rotated(current, new)` as version `token`, staged `AWSPENDING`:
//!   the new key signs from one [`KeyTimeline`] lead later, when every verifier's cached JWKS knows it.
//!   A current value that is not a valid key set (the random string CDK creates the secret with) is
//!   ignored, so the first rotation writes the first real key set, whose key signs at once.
//! - `setSecret`: nothing. Secrets Manager uses this step to push a new credential into the system
//!   that checks it (a database user's password, say). Here the system that checks signatures is every
//!   verifier, and they learn the pending key through the JWKS, which publishes `AWSPENDING` as soon as
//!   `createSecret` wrote it; there is no other copy of the key to update.
//! - `testSecret`: load the pending document, sign an access token with its new key and verify it; when
//!   a valid current set exists, also check that a token signed by the current signing key still
//!   verifies with the pending set (so finishing cannot invalidate tokens already handed out).
//! - `finishSecret`: move `AWSCURRENT` to the token's version (Secrets Manager moves `AWSPREVIOUS` to
//!   the old one), write the public key set of the new current document, then remove `AWSPENDING`.
//!   The previous signing key is in the new document and keeps signing until the new key's `not_before`.
//!
//! Public key set: createSecret and finishSecret, the steps that change what the key set publishes, also
//! write [`PublicKeySetDocument`] (public JWKs and `not_before`, never a private member) through
//! [`SecretVersionStore::publish_public`]: on AWS a second secret, the only key material the functions
//! that verify can read. The first rotation writes it at createSecret, before its key is current and
//! signs.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::algorithm::SigningAlgorithm;
use crate::clock::Clock;
use crate::config::AuthConfig;
use crate::keys::{
    KeyError, KeySet, KeySetDocument, KeySource, KeyTimeline, LoadedKey, PublicKeySetDocument,
    generate_key,
};
use crate::tokens;

pub const AWSCURRENT: &str = "AWSCURRENT";
pub const AWSPENDING: &str = "AWSPENDING";
pub const AWSPREVIOUS: &str = "AWSPREVIOUS";

/// One step of the Secrets Manager rotation protocol (the `Step` field of its event).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RotationStep {
    #[serde(rename = "createSecret")]
    CreateSecret,
    #[serde(rename = "setSecret")]
    SetSecret,
    #[serde(rename = "testSecret")]
    TestSecret,
    #[serde(rename = "finishSecret")]
    FinishSecret,
}

impl RotationStep {
    pub const ALL: [RotationStep; 4] = [
        RotationStep::CreateSecret,
        RotationStep::SetSecret,
        RotationStep::TestSecret,
        RotationStep::FinishSecret,
    ];

    pub fn name(self) -> &'static str {
        match self {
            RotationStep::CreateSecret => "createSecret",
            RotationStep::SetSecret => "setSecret",
            RotationStep::TestSecret => "testSecret",
            RotationStep::FinishSecret => "finishSecret",
        }
    }
}

impl fmt::Display for RotationStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for RotationStep {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RotationStep::ALL
            .into_iter()
            .find(|step| step.name() == s)
            .ok_or_else(|| format!("`{s}` is not a rotation step"))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    /// The version store failed (network, permissions, I/O); the step may be retried.
    #[error("secret store: {0}")]
    Store(String),
    /// The token names no version of the secret (only createSecret may create one).
    #[error("version {0} does not exist in the secret")]
    UnknownVersion(String),
    /// testSecret or finishSecret found no value for the token's version.
    #[error("version {0} has no pending key set")]
    NotPending(String),
    /// The pending key set does not sign and verify as it must.
    #[error("pending key set failed its test: {0}")]
    TestFailed(String),
    #[error(transparent)]
    Keys(#[from] KeyError),
}

/// Versions of one secret, each with a value and staging labels (the Secrets Manager model).
pub trait SecretVersionStore: Send + Sync + 'static {
    /// Every version id with its staging labels.
    fn versions(
        &self,
    ) -> impl Future<Output = Result<BTreeMap<String, Vec<String>>, RotationError>> + Send;

    /// The value of the version labelled `stage`; `None` when no version carries the label.
    fn value_at_stage(
        &self,
        stage: &str,
    ) -> impl Future<Output = Result<Option<String>, RotationError>> + Send;

    /// The value of version `version_id`; `None` when it does not exist or has no value yet.
    fn value_of_version(
        &self,
        version_id: &str,
    ) -> impl Future<Output = Result<Option<String>, RotationError>> + Send;

    /// Stores `value` as version `version_id` labelled `AWSPENDING` (the label leaves any other version).
    fn put_pending(
        &self,
        version_id: &str,
        value: &str,
    ) -> impl Future<Output = Result<(), RotationError>> + Send;

    /// Moves label `stage` to version `to` and/or removes it from version `from` (Secrets Manager's
    /// UpdateSecretVersionStage). Moving `AWSCURRENT` labels the version it leaves `AWSPREVIOUS`.
    fn update_stage(
        &self,
        stage: &str,
        to: Option<&str>,
        from: Option<&str>,
    ) -> impl Future<Output = Result<(), RotationError>> + Send;

    /// Stores `value`, a [`PublicKeySetDocument`], as the current public key set (on AWS a second
    /// secret, read by the functions that only verify). Writing the same value again is harmless.
    fn publish_public(&self, value: &str)
    -> impl Future<Output = Result<(), RotationError>> + Send;
}

/// What a step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepOutcome {
    /// The step changed or checked something.
    Done,
    /// The step had nothing left to do (it ran before, or the token's version is already current).
    AlreadyDone,
}

fn has_stage(versions: &BTreeMap<String, Vec<String>>, version_id: &str, stage: &str) -> bool {
    versions
        .get(version_id)
        .is_some_and(|stages| stages.iter().any(|s| s == stage))
}

/// Parses a stored value into a usable key set document, or `None` when it is not one.
fn valid_document(value: Option<&str>) -> Option<KeySetDocument> {
    let doc = KeySetDocument::parse(value?).ok()?;
    KeySet::from_documents(&doc, None).ok()?;
    Some(doc)
}

/// Runs one rotation step for version `token`, generating keys for `alg` that sign on `timeline`.
pub async fn run_step<V: SecretVersionStore>(
    store: &V,
    step: RotationStep,
    token: &str,
    alg: SigningAlgorithm,
    timeline: KeyTimeline,
    now_ms: i64,
) -> Result<StepOutcome, RotationError> {
    let versions = store.versions().await?;
    if has_stage(&versions, token, AWSCURRENT) && !has_stage(&versions, token, AWSPENDING) {
        // The rotation this token started has finished.
        return Ok(StepOutcome::AlreadyDone);
    }
    if step != RotationStep::CreateSecret && !versions.contains_key(token) {
        return Err(RotationError::UnknownVersion(token.to_owned()));
    }
    match step {
        RotationStep::CreateSecret => {
            create_secret(store, &versions, token, alg, timeline, now_ms).await
        }
        RotationStep::SetSecret => Ok(StepOutcome::AlreadyDone),
        RotationStep::TestSecret => test_secret(store, token, now_ms).await,
        RotationStep::FinishSecret => finish_secret(store, &versions, token).await,
    }
}

/// Runs the four steps in order: a whole rotation (the local server's rotate command, and tests).
pub async fn rotate<V: SecretVersionStore>(
    store: &V,
    token: &str,
    alg: SigningAlgorithm,
    timeline: KeyTimeline,
    now_ms: i64,
) -> Result<(), RotationError> {
    for step in RotationStep::ALL {
        run_step(store, step, token, alg, timeline, now_ms).await?;
    }
    Ok(())
}

async fn create_secret<V: SecretVersionStore>(
    store: &V,
    versions: &BTreeMap<String, Vec<String>>,
    token: &str,
    alg: SigningAlgorithm,
    timeline: KeyTimeline,
    now_ms: i64,
) -> Result<StepOutcome, RotationError> {
    let current = valid_document(store.value_at_stage(AWSCURRENT).await?.as_deref());
    if versions.contains_key(token)
        && let Some(value) = store.value_of_version(token).await?
    {
        // A retry after the public write failed: publish what the stored pending set publishes.
        publish(
            store,
            current.as_ref(),
            valid_document(Some(&value)).as_ref(),
        )
        .await?;
        return Ok(StepOutcome::AlreadyDone);
    }
    if current.is_none() {
        tracing::info!(target: "keygate::rotation", "the current version holds no valid key set: the new key starts a fresh set");
    }
    let now_s = now_ms.div_euclid(1000);
    let key = generate_key(alg, now_s)?;
    let kid = key.kid.clone();
    let document = KeySetDocument::rotated(current.as_ref(), key, now_s, timeline);
    store.put_pending(token, &document.to_json()).await?;
    // The public set publishes the pending key from now on, as the JWKS does: it is the one place
    // verifiers learn it, and the key signs only one lead later.
    publish(store, current.as_ref(), Some(&document)).await?;
    let not_before = document.keys[0].not_before.unwrap_or(now_s);
    tracing::info!(target: "keygate::rotation", step = "createSecret", version = token, kid = %kid, alg = %alg, not_before, keys = document.keys.len(), "pending key set stored");
    Ok(StepOutcome::Done)
}

async fn test_secret<V: SecretVersionStore>(
    store: &V,
    token: &str,
    now_ms: i64,
) -> Result<StepOutcome, RotationError> {
    let value = store
        .value_of_version(token)
        .await?
        .ok_or_else(|| RotationError::NotPending(token.to_owned()))?;
    let pending_doc = KeySetDocument::parse(&value)?;
    let pending = KeySet::from_documents(&pending_doc, None)?;
    let new_kid = &pending_doc.keys[0].kid;
    let config = AuthConfig::with_issuer("https://rotation-test.keygate.invalid");
    let check = |signer: &LoadedKey, what: &str| -> Result<(), RotationError> {
        let issued = tokens::issue_with_key(
            signer,
            &config,
            "00000000-0000-4000-8000-000000000000",
            now_ms.div_euclid(1000),
            tokens::SessionFlags::default(),
            now_ms,
        )
        .map_err(|e| RotationError::TestFailed(format!("{what}: signing: {e}")))?;
        tokens::verify(&pending, &config, &issued.token, now_ms)
            .map_err(|e| RotationError::TestFailed(format!("{what}: verifying: {e}")))?;
        Ok(())
    };
    let new_key = pending
        .find(new_kid)
        .ok_or_else(|| RotationError::TestFailed("the new key does not load".into()))?;
    check(new_key, "a token signed by the new key")?;
    if let Some(current_doc) = valid_document(store.value_at_stage(AWSCURRENT).await?.as_deref()) {
        let current = KeySet::from_documents(&current_doc, None)?;
        check(
            current.signing_key(now_ms),
            "a token signed by the current signing key",
        )?;
    }
    tracing::info!(target: "keygate::rotation", step = "testSecret", version = token, kid = %new_kid, "pending key set signs and verifies");
    Ok(StepOutcome::Done)
}

async fn finish_secret<V: SecretVersionStore>(
    store: &V,
    versions: &BTreeMap<String, Vec<String>>,
    token: &str,
) -> Result<StepOutcome, RotationError> {
    let current = versions
        .iter()
        .find(|(_, stages)| stages.iter().any(|s| s == AWSCURRENT))
        .map(|(id, _)| id.as_str());
    if current != Some(token) {
        if store.value_of_version(token).await?.is_none() {
            return Err(RotationError::NotPending(token.to_owned()));
        }
        store.update_stage(AWSCURRENT, Some(token), current).await?;
        tracing::info!(target: "keygate::rotation", step = "finishSecret", version = token, previous = current.unwrap_or(""), "AWSCURRENT moved");
    }
    // Before AWSPENDING leaves the version: a retry after a failed public write still reaches here
    // (run_step skips versions that are current and no longer pending).
    let finished = valid_document(store.value_of_version(token).await?.as_deref());
    publish(store, finished.as_ref(), None).await?;
    if has_stage(versions, token, AWSPENDING) {
        store.update_stage(AWSPENDING, None, Some(token)).await?;
    }
    Ok(StepOutcome::Done)
}

/// Writes the public view of `current` (+ `pending`). Keys dropped from the new current set leave the
/// public set at finishSecret, never earlier: until then a token they signed may still be presented.
async fn publish<V: SecretVersionStore>(
    store: &V,
    current: Option<&KeySetDocument>,
    pending: Option<&KeySetDocument>,
) -> Result<(), RotationError> {
    let public = PublicKeySetDocument::of(current, pending)?;
    store.publish_public(&public.to_json()).await?;
    tracing::info!(target: "keygate::rotation", keys = public.keys.len(), "public key set written");
    Ok(())
}

/// How often a key source retries its store after a failed refresh while it keeps serving a cached set.
const RETRY_AFTER_FAILURE_MS: i64 = 10_000;

/// The shortest pause between two reloads for tokens that name a key the cached set does not know.
/// Anyone can send a made-up `kid`: this bounds what that costs (one store read per process and
/// interval), while a real new key is found at the first token that names it.
pub const UNKNOWN_KID_RELOAD_INTERVAL_MS: i64 = 30_000;

struct Cached {
    keys: Option<Arc<KeySet>>,
    /// When the next read of the store is due (epoch milliseconds).
    refresh_at_ms: i64,
    /// When an unknown `kid` may next cause a reload (epoch milliseconds).
    unknown_kid_reload_at_ms: i64,
}

/// A [`KeySource`] over a [`SecretVersionStore`]: `AWSCURRENT` signs, the first key of `AWSPENDING` (if
/// any) is published and verifies. The set is cached for `ttl`; when a refresh fails while a copy is
/// cached, the copy keeps serving (and the store is tried again after a short pause); with nothing cached
/// the error is returned (the HTTP layer answers 503), never a panic. A token naming a key the cached
/// set does not know reloads it early, at most once per [`UNKNOWN_KID_RELOAD_INTERVAL_MS`].
///
/// [`without_pending`](Self::without_pending) makes a source that reads `AWSCURRENT` alone, for a
/// process that signs and verifies but does not publish the JWKS.
pub struct VersionedKeySource<V, C> {
    store: V,
    clock: C,
    ttl_ms: i64,
    read_pending: bool,
    /// The store holds [`PublicKeySetDocument`]s (a verify-only source).
    public: bool,
    cache: Mutex<Cached>,
}

/// A store's error as the key error a caller sees.
fn unavailable(e: RotationError) -> KeyError {
    match e {
        RotationError::Keys(e) => e,
        other => KeyError::Unavailable(other.to_string()),
    }
}

impl<V: SecretVersionStore, C: Clock> VersionedKeySource<V, C> {
    pub fn new(store: V, clock: C, ttl: std::time::Duration) -> Self {
        Self {
            store,
            clock,
            ttl_ms: i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX),
            read_pending: true,
            public: false,
            cache: Mutex::new(Cached {
                keys: None,
                refresh_at_ms: i64::MIN,
                unknown_kid_reload_at_ms: i64::MIN,
            }),
        }
    }

    /// A source that never reads `AWSPENDING`. Tokens are only ever signed by a key of `AWSCURRENT`
    /// (after finishSecret the pending version is current), so the pending key matters to the JWKS,
    /// which must publish a key before it signs (DESIGN, token model), and to nothing else. The API
    /// functions that sign use this: one GetSecretValue per cold start and per cache refresh instead of
    /// two. The JWKS is served by the local server, whose source reads both, and on AWS from the public
    /// key set, into which createSecret writes the pending key ([`public_keys`](Self::public_keys)).
    pub fn without_pending(mut self) -> Self {
        self.read_pending = false;
        self
    }

    /// A verify-only source over a store of public key sets (`AWSCURRENT` alone: rotate-keys writes the
    /// pending key into the current public set). Same cache, TTL and unknown-kid reloads as the
    /// private source; its keys cannot sign.
    pub fn public_keys(mut self) -> Self {
        self.read_pending = false;
        self.public = true;
        self
    }

    pub fn store(&self) -> &V {
        &self.store
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cached> {
        self.cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Reads the store now, whatever the cache holds.
    pub async fn load(&self) -> Result<KeySet, KeyError> {
        // Both reads at once: they are independent, and on a cold start they sit on the init path
        // (one Secrets Manager round trip instead of two; measured in tests/bench).
        let (current, pending) =
            futures_util::future::join(self.store.value_at_stage(AWSCURRENT), async {
                if self.read_pending {
                    self.store.value_at_stage(AWSPENDING).await
                } else {
                    Ok(None)
                }
            })
            .await;
        let current = current
            .map_err(unavailable)?
            .ok_or_else(|| KeyError::NoValidKeySet("no version is labelled AWSCURRENT".into()))?;
        self.key_set_of(&current, pending.map_err(unavailable)?)
    }

    /// Caches the key set of `current`, the store's `AWSCURRENT` value read elsewhere (the Lambda
    /// functions read every secret of their init in one call), as a [`load`](Self::load) at this
    /// moment would: the next read of the store comes one TTL from now. A source that also reads
    /// `AWSPENDING` primes without it.
    pub fn prime(&self, current: &str) -> Result<Arc<KeySet>, KeyError> {
        let set = self.key_set_of(current, None)?;
        Ok(self.keep(set, self.clock.now_ms()))
    }

    /// The key set of the `AWSCURRENT` and `AWSPENDING` values; a pending value that is not a key
    /// set, or whose key does not load, is ignored with a warning.
    fn key_set_of(&self, current: &str, pending: Option<String>) -> Result<KeySet, KeyError> {
        if self.public {
            return KeySet::from_public(&PublicKeySetDocument::parse(current)?);
        }
        let current = KeySetDocument::parse(current)?;
        let pending = match pending {
            None => None,
            Some(value) => match KeySetDocument::parse(&value) {
                Ok(doc) => Some(doc),
                Err(e) => {
                    tracing::warn!(target: "keygate::keys", error = %e, "ignoring the AWSPENDING version: not a key set");
                    None
                }
            },
        };
        match KeySet::from_documents(&current, pending.as_ref()) {
            Ok(set) => Ok(set),
            Err(e) if pending.is_some() => {
                tracing::warn!(target: "keygate::keys", error = %e, "ignoring the AWSPENDING version: its key does not load");
                KeySet::from_documents(&current, None)
            }
            Err(e) => Err(e),
        }
    }

    /// Caches `set`, read at `now`, for one TTL.
    fn keep(&self, set: KeySet, now: i64) -> Arc<KeySet> {
        let set = Arc::new(set);
        let mut cache = self.lock();
        cache.keys = Some(set.clone());
        cache.refresh_at_ms = now.saturating_add(self.ttl_ms);
        set
    }
}

impl<V: SecretVersionStore, C: Clock> KeySource for VersionedKeySource<V, C> {
    async fn key_set(&self) -> Result<Arc<KeySet>, KeyError> {
        let now = self.clock.now_ms();
        let cached = {
            let cache = self.lock();
            if let Some(keys) = &cache.keys
                && now < cache.refresh_at_ms
            {
                return Ok(keys.clone());
            }
            cache.keys.clone()
        };
        match self.load().await {
            Ok(set) => Ok(self.keep(set, now)),
            Err(error) => match cached {
                Some(keys) => {
                    tracing::warn!(target: "keygate::keys", error = %error, "refreshing the signing keys failed: serving the cached set");
                    self.lock().refresh_at_ms =
                        now.saturating_add(self.ttl_ms.min(RETRY_AFTER_FAILURE_MS));
                    Ok(keys)
                }
                None => Err(error),
            },
        }
    }

    async fn key_set_knowing(&self, kid: &str) -> Result<Arc<KeySet>, KeyError> {
        let cached = self.key_set().await?;
        if cached.find(kid).is_some() {
            return Ok(cached);
        }
        let now = self.clock.now_ms();
        {
            let mut cache = self.lock();
            if now < cache.unknown_kid_reload_at_ms {
                return Ok(cached);
            }
            // Claimed before reading, so concurrent requests with unknown kids share one reload.
            cache.unknown_kid_reload_at_ms = now.saturating_add(UNKNOWN_KID_RELOAD_INTERVAL_MS);
        }
        // The kid itself is not logged: it comes from an unverified token.
        tracing::info!(target: "keygate::keys", "a token names a key the cached set does not know: reloading the signing keys");
        match self.load().await {
            Ok(set) => Ok(self.keep(set, now)),
            Err(error) => {
                tracing::warn!(target: "keygate::keys", error = %error, "reloading the signing keys failed: serving the cached set");
                Ok(cached)
            }
        }
    }
}

impl<V: SecretVersionStore> SecretVersionStore for Arc<V> {
    fn versions(
        &self,
    ) -> impl Future<Output = Result<BTreeMap<String, Vec<String>>, RotationError>> + Send {
        (**self).versions()
    }
    fn value_at_stage(
        &self,
        stage: &str,
    ) -> impl Future<Output = Result<Option<String>, RotationError>> + Send {
        (**self).value_at_stage(stage)
    }
    fn value_of_version(
        &self,
        version_id: &str,
    ) -> impl Future<Output = Result<Option<String>, RotationError>> + Send {
        (**self).value_of_version(version_id)
    }
    fn put_pending(
        &self,
        version_id: &str,
        value: &str,
    ) -> impl Future<Output = Result<(), RotationError>> + Send {
        (**self).put_pending(version_id, value)
    }
    fn update_stage(
        &self,
        stage: &str,
        to: Option<&str>,
        from: Option<&str>,
    ) -> impl Future<Output = Result<(), RotationError>> + Send {
        (**self).update_stage(stage, to, from)
    }
    fn publish_public(
        &self,
        value: &str,
    ) -> impl Future<Output = Result<(), RotationError>> + Send {
        (**self).publish_public(value)
    }
}
