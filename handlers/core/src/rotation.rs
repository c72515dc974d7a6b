//! Signing-key rotation and versioned key sources, over one small port.
//!
//! The key set lives in a store of *versions* with *staging labels*, the model of AWS Secrets Manager:
//! `AWSCURRENT` signs (its document's later keys still verify), `AWSPENDING` is published and verifies
//! but does not sign yet. [`SecretVersionStore`] is that model; keygate-aws implements it on Secrets
//! Manager and [`crate::keyfile::FileVersionStore`] on the local server's key file, so the same code
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
        let unavailable = |e: RotationError| match e {
            RotationError::Keys(e) => e,
            other => KeyError::Unavailable(other.to_string()),
        };
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
        if self.public {
            return KeySet::from_public(&PublicKeySetDocument::parse(&current)?);
        }
        let current = KeySetDocument::parse(&current)?;
        let pending = match pending.map_err(unavailable)? {
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

/// Versions by id: value (if any) and staging labels.
type MemoryVersions = BTreeMap<String, (Option<String>, Vec<String>)>;

/// A version store in memory: for tests of rotation and key sources.
#[derive(Debug, Default)]
pub struct MemoryVersionStore {
    inner: Mutex<MemoryVersions>,
    /// The last public key set written.
    public: Mutex<Option<String>>,
    /// When set, every call fails (to test outages).
    pub fail: std::sync::atomic::AtomicBool,
}

impl MemoryVersionStore {
    /// A store whose `AWSCURRENT` version `version_id` holds `value`.
    pub fn with_current(version_id: &str, value: &str) -> Self {
        let store = Self::default();
        store.lock().insert(
            version_id.to_owned(),
            (Some(value.to_owned()), vec![AWSCURRENT.to_owned()]),
        );
        store
    }

    /// The public key set the last rotation step wrote.
    pub fn published(&self) -> Option<String> {
        self.public
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryVersions> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn check(&self) -> Result<(), RotationError> {
        if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            Err(RotationError::Store("injected failure".into()))
        } else {
            Ok(())
        }
    }
}

/// Labels `stage` onto `to` only, as Secrets Manager does (a label is on one version at most).
pub(crate) fn move_label(
    versions: &mut BTreeMap<String, Vec<String>>,
    stage: &str,
    to: Option<&str>,
    from: Option<&str>,
) {
    if let Some(from) = from
        && let Some(stages) = versions.get_mut(from)
    {
        stages.retain(|s| s != stage);
    }
    if let Some(to) = to {
        for (id, stages) in versions.iter_mut() {
            if id != to {
                stages.retain(|s| s != stage);
            }
        }
        let stages = versions.entry(to.to_owned()).or_default();
        if !stages.iter().any(|s| s == stage) {
            stages.push(stage.to_owned());
        }
    }
}

impl SecretVersionStore for MemoryVersionStore {
    async fn versions(&self) -> Result<BTreeMap<String, Vec<String>>, RotationError> {
        self.check()?;
        Ok(self
            .lock()
            .iter()
            .map(|(id, (_, stages))| (id.clone(), stages.clone()))
            .collect())
    }

    async fn value_at_stage(&self, stage: &str) -> Result<Option<String>, RotationError> {
        self.check()?;
        Ok(self
            .lock()
            .values()
            .find(|(_, stages)| stages.iter().any(|s| s == stage))
            .and_then(|(value, _)| value.clone()))
    }

    async fn value_of_version(&self, version_id: &str) -> Result<Option<String>, RotationError> {
        self.check()?;
        Ok(self
            .lock()
            .get(version_id)
            .and_then(|(value, _)| value.clone()))
    }

    async fn put_pending(&self, version_id: &str, value: &str) -> Result<(), RotationError> {
        self.check()?;
        let mut inner = self.lock();
        inner
            .entry(version_id.to_owned())
            .or_insert_with(|| (None, Vec::new()))
            .0 = Some(value.to_owned());
        let mut labels: BTreeMap<String, Vec<String>> = inner
            .iter()
            .map(|(id, (_, s))| (id.clone(), s.clone()))
            .collect();
        move_label(&mut labels, AWSPENDING, Some(version_id), None);
        for (id, stages) in labels {
            if let Some(entry) = inner.get_mut(&id) {
                entry.1 = stages;
            }
        }
        Ok(())
    }

    async fn update_stage(
        &self,
        stage: &str,
        to: Option<&str>,
        from: Option<&str>,
    ) -> Result<(), RotationError> {
        self.check()?;
        let mut inner = self.lock();
        if let Some(to) = to
            && !inner.contains_key(to)
        {
            return Err(RotationError::UnknownVersion(to.to_owned()));
        }
        let mut labels: BTreeMap<String, Vec<String>> = inner
            .iter()
            .map(|(id, (_, s))| (id.clone(), s.clone()))
            .collect();
        move_label(&mut labels, stage, to, from);
        if stage == AWSCURRENT
            && let (Some(from), Some(_)) = (from, to)
        {
            move_label(&mut labels, AWSPREVIOUS, Some(from), None);
        }
        for (id, stages) in labels {
            if let Some(entry) = inner.get_mut(&id) {
                entry.1 = stages;
            }
        }
        Ok(())
    }

    async fn publish_public(&self, value: &str) -> Result<(), RotationError> {
        self.check()?;
        *self
            .public
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(value.to_owned());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::keys::JWKS_MAX_AGE_SECS;
    use std::collections::BTreeSet;
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    const NOW: i64 = 1_800_000_000_000;
    const TIMELINE: KeyTimeline = KeyTimeline {
        lead_secs: 600,
        retain_secs: 930,
    };

    fn initial() -> (KeySetDocument, MemoryVersionStore) {
        let doc = KeySetDocument {
            keys: vec![generate_key(SigningAlgorithm::Es256, 1).unwrap()],
        };
        let store = MemoryVersionStore::with_current("v1", &doc.to_json());
        (doc, store)
    }

    #[tokio::test]
    async fn a_whole_rotation_keeps_the_old_key_verifying() {
        let (old, store) = initial();
        rotate(&store, "v2", SigningAlgorithm::EdDsa, TIMELINE, NOW)
            .await
            .unwrap();
        let versions = store.versions().await.unwrap();
        assert_eq!(versions["v2"], vec![AWSCURRENT.to_owned()]);
        assert_eq!(versions["v1"], vec![AWSPREVIOUS.to_owned()]);
        let current =
            KeySetDocument::parse(&store.value_at_stage(AWSCURRENT).await.unwrap().unwrap())
                .unwrap();
        assert_eq!(current.keys.len(), 2);
        assert_eq!(current.keys[0].alg, SigningAlgorithm::EdDsa);
        assert_eq!(current.keys[1], old.keys[0]);
        assert!(store.value_at_stage(AWSPENDING).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn every_step_is_idempotent() {
        let (_, store) = initial();
        let alg = SigningAlgorithm::Es256;
        assert_eq!(
            run_step(&store, RotationStep::CreateSecret, "v2", alg, TIMELINE, NOW)
                .await
                .unwrap(),
            StepOutcome::Done
        );
        let pending = store.value_of_version("v2").await.unwrap();
        assert_eq!(
            run_step(&store, RotationStep::CreateSecret, "v2", alg, TIMELINE, NOW)
                .await
                .unwrap(),
            StepOutcome::AlreadyDone
        );
        assert_eq!(
            store.value_of_version("v2").await.unwrap(),
            pending,
            "a retried createSecret keeps the first key"
        );
        for _ in 0..2 {
            run_step(&store, RotationStep::SetSecret, "v2", alg, TIMELINE, NOW)
                .await
                .unwrap();
            run_step(&store, RotationStep::TestSecret, "v2", alg, TIMELINE, NOW)
                .await
                .unwrap();
        }
        run_step(&store, RotationStep::FinishSecret, "v2", alg, TIMELINE, NOW)
            .await
            .unwrap();
        for step in RotationStep::ALL {
            assert_eq!(
                run_step(&store, step, "v2", alg, TIMELINE, NOW)
                    .await
                    .unwrap(),
                StepOutcome::AlreadyDone,
                "{step}"
            );
        }
        assert_eq!(store.value_at_stage(AWSCURRENT).await.unwrap(), pending);
    }

    #[tokio::test]
    async fn the_first_rotation_replaces_a_random_placeholder() {
        let store = MemoryVersionStore::with_current("v1", "x7Rk!placeholder-from-cdk");
        rotate(&store, "v2", SigningAlgorithm::Es256, TIMELINE, NOW)
            .await
            .unwrap();
        let current =
            KeySetDocument::parse(&store.value_at_stage(AWSCURRENT).await.unwrap().unwrap())
                .unwrap();
        assert_eq!(current.keys.len(), 1);
    }

    #[tokio::test]
    async fn test_secret_refuses_a_broken_pending_set_and_unknown_tokens() {
        let (_, store) = initial();
        store.put_pending("v2", "not a key set").await.unwrap();
        assert!(
            run_step(
                &store,
                RotationStep::TestSecret,
                "v2",
                SigningAlgorithm::Es256,
                TIMELINE,
                NOW
            )
            .await
            .is_err()
        );
        assert!(matches!(
            run_step(
                &store,
                RotationStep::FinishSecret,
                "nope",
                SigningAlgorithm::Es256,
                TIMELINE,
                NOW
            )
            .await,
            Err(RotationError::UnknownVersion(_))
        ));
    }

    #[tokio::test]
    async fn key_source_publishes_pending_caches_and_survives_outages() {
        let (old, store) = initial();
        let clock = Arc::new(ManualClock::new(NOW));
        let source =
            VersionedKeySource::new(store, clock.clone(), std::time::Duration::from_secs(300));
        let first = source.key_set().await.unwrap();
        assert_eq!(first.signing_key(NOW).kid, old.keys[0].kid);
        run_step(
            source.store(),
            RotationStep::CreateSecret,
            "v2",
            SigningAlgorithm::Es256,
            TIMELINE,
            NOW,
        )
        .await
        .unwrap();
        // Cached until the TTL passes.
        assert_eq!(
            source.key_set().await.unwrap().jwks()["keys"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        clock.advance_ms(300_000);
        let with_pending = source.key_set().await.unwrap();
        assert_eq!(with_pending.jwks()["keys"].as_array().unwrap().len(), 2);
        assert_eq!(
            with_pending.signing_key(i64::MAX).kid,
            old.keys[0].kid,
            "pending does not sign, whatever its not_before"
        );
        // Outage: the cached copy keeps serving.
        source.store().fail.store(true, Ordering::SeqCst);
        clock.advance_ms(300_000);
        assert_eq!(
            source.key_set().await.unwrap().jwks()["keys"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
    }

    #[tokio::test]
    async fn key_source_without_a_cache_reports_instead_of_panicking() {
        let clock = ManualClock::new(NOW);
        let garbage = VersionedKeySource::new(
            MemoryVersionStore::with_current("v1", "random"),
            clock,
            std::time::Duration::from_secs(1),
        );
        assert!(matches!(
            garbage.key_set().await,
            Err(KeyError::NoValidKeySet(_))
        ));
        let (_, store) = initial();
        store.fail.store(true, Ordering::SeqCst);
        let down = VersionedKeySource::new(
            store,
            ManualClock::new(NOW),
            std::time::Duration::from_secs(1),
        );
        assert!(matches!(
            down.key_set().await,
            Err(KeyError::Unavailable(_))
        ));
    }

    #[test]
    fn steps_parse_from_the_event_names() {
        for step in RotationStep::ALL {
            assert_eq!(step.name().parse::<RotationStep>().unwrap(), step);
            assert_eq!(
                serde_json::to_string(&step).unwrap(),
                format!("\"{}\"", step.name())
            );
        }
    }

    /// A version store whose `AWSCURRENT` read only completes once `AWSPENDING` has been asked for:
    /// a key source that reads the two one after the other never finishes loading from it.
    struct ReadsMeetHalfway {
        inner: MemoryVersionStore,
        pending_asked: std::sync::atomic::AtomicBool,
    }

    impl SecretVersionStore for ReadsMeetHalfway {
        async fn versions(&self) -> Result<BTreeMap<String, Vec<String>>, RotationError> {
            self.inner.versions().await
        }
        async fn value_at_stage(&self, stage: &str) -> Result<Option<String>, RotationError> {
            if stage == AWSPENDING {
                self.pending_asked.store(true, Ordering::SeqCst);
            } else {
                std::future::poll_fn(|_| {
                    if self.pending_asked.load(Ordering::SeqCst) {
                        std::task::Poll::Ready(())
                    } else {
                        std::task::Poll::Pending
                    }
                })
                .await;
            }
            self.inner.value_at_stage(stage).await
        }
        async fn value_of_version(&self, id: &str) -> Result<Option<String>, RotationError> {
            self.inner.value_of_version(id).await
        }
        async fn put_pending(&self, id: &str, value: &str) -> Result<(), RotationError> {
            self.inner.put_pending(id, value).await
        }
        async fn update_stage(
            &self,
            stage: &str,
            to: Option<&str>,
            from: Option<&str>,
        ) -> Result<(), RotationError> {
            self.inner.update_stage(stage, to, from).await
        }
        async fn publish_public(&self, value: &str) -> Result<(), RotationError> {
            self.inner.publish_public(value).await
        }
    }

    #[test]
    fn the_key_source_reads_current_and_pending_concurrently() {
        let (doc, inner) = initial();
        let store = ReadsMeetHalfway {
            inner,
            pending_asked: std::sync::atomic::AtomicBool::new(false),
        };
        let source = VersionedKeySource::new(
            store,
            ManualClock::new(NOW),
            std::time::Duration::from_secs(1),
        );
        let mut load = std::pin::pin!(source.load());
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        // Concurrent reads finish on the second poll; sequential ones would stay pending forever.
        let loaded = (0..3).find_map(|_| match load.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(result) => Some(result),
            std::task::Poll::Pending => None,
        });
        let set = loaded
            .expect("AWSCURRENT and AWSPENDING were read one after the other")
            .unwrap();
        assert_eq!(set.signing_key(NOW).kid, doc.keys[0].kid);
    }

    #[tokio::test]
    async fn a_source_without_pending_signs_and_verifies_with_awscurrent_alone() {
        let (current, store) = initial();
        let new_key = generate_key(SigningAlgorithm::Es256, NOW).unwrap();
        let pending =
            KeySetDocument::rotated(Some(&current), new_key.clone(), NOW / 1000, TIMELINE);
        store.put_pending("v2", &pending.to_json()).await.unwrap();
        let source = VersionedKeySource::new(
            store,
            ManualClock::new(NOW),
            std::time::Duration::from_secs(1),
        )
        .without_pending();
        let set = source.key_set().await.unwrap();
        assert_eq!(set.signing_key(NOW).kid, current.keys[0].kid);
        assert!(set.find(&new_key.kid).is_none(), "AWSPENDING was read");
    }

    fn kid_of(doc: &KeySetDocument, position: usize) -> String {
        doc.keys[position].kid.clone()
    }

    async fn current_document(store: &impl SecretVersionStore) -> KeySetDocument {
        KeySetDocument::parse(&store.value_at_stage(AWSCURRENT).await.unwrap().unwrap()).unwrap()
    }

    #[tokio::test]
    async fn an_unknown_kid_reloads_the_source_at_most_once_per_interval() {
        let (_, store) = initial();
        let clock = Arc::new(ManualClock::new(NOW));
        let source = VersionedKeySource::new(store, clock.clone(), Duration::from_secs(300));
        let alg = SigningAlgorithm::Es256;
        let first = source.key_set().await.unwrap();
        rotate(source.store(), "v2", alg, TIMELINE, NOW)
            .await
            .unwrap();
        let second = kid_of(&current_document(source.store()).await, 0);
        assert!(first.find(&second).is_none());
        // A kid the cache knows costs no reload, so the next unknown one still gets it.
        let known = first.signing_key(NOW).kid.clone();
        assert!(
            source
                .key_set_knowing(&known)
                .await
                .unwrap()
                .find(&second)
                .is_none()
        );
        let reloaded = source.key_set_knowing(&second).await.unwrap();
        assert!(
            reloaded.find(&second).is_some(),
            "the first unknown kid reloads"
        );
        assert!(
            Arc::ptr_eq(&source.key_set().await.unwrap(), &reloaded),
            "and is cached"
        );

        // Within the interval, further unknown kids are answered from the cache.
        rotate(source.store(), "v3", alg, TIMELINE, NOW)
            .await
            .unwrap();
        let third = kid_of(&current_document(source.store()).await, 0);
        clock.advance_ms(UNKNOWN_KID_RELOAD_INTERVAL_MS - 1);
        for kid in ["made-up", third.as_str()] {
            assert!(
                source
                    .key_set_knowing(kid)
                    .await
                    .unwrap()
                    .find(&third)
                    .is_none(),
                "{kid}"
            );
        }
        clock.advance_ms(1);
        assert!(
            source
                .key_set_knowing(&third)
                .await
                .unwrap()
                .find(&third)
                .is_some()
        );

        // A reload that fails serves the cached set.
        source.store().fail.store(true, Ordering::SeqCst);
        clock.advance_ms(UNKNOWN_KID_RELOAD_INTERVAL_MS);
        assert!(
            source
                .key_set_knowing("made-up")
                .await
                .unwrap()
                .find(&third)
                .is_some()
        );
    }

    #[tokio::test]
    async fn a_verifier_whose_cache_predates_a_rotation_accepts_the_new_key_after_one_reload() {
        let (_, store) = initial();
        let store = Arc::new(store);
        let clock = Arc::new(ManualClock::new(NOW));
        // A TTL longer than the lead assumed: the cache alone would miss the new key.
        let ttl = Duration::from_secs(3_600);
        let verifier = VersionedKeySource::new(store.clone(), clock.clone(), ttl).without_pending();
        let config = AuthConfig::with_issuer("https://auth.example.com");
        let stale = verifier.key_set().await.unwrap();
        rotate(&store, "v2", SigningAlgorithm::Es256, TIMELINE, NOW)
            .await
            .unwrap();
        let after_lead = NOW + TIMELINE.lead_secs * 1000;
        clock.advance_ms(after_lead - NOW);
        let signer = KeySet::from_documents(&current_document(&store).await, None).unwrap();
        let token = tokens::issue(&signer, &config, "user-1", after_lead / 1000, after_lead)
            .unwrap()
            .token;
        assert!(tokens::verify(&stale, &config, &token, after_lead).is_err());
        let claims = tokens::verify_from(&verifier, &config, &token, after_lead)
            .await
            .unwrap();
        assert_eq!(claims.sub, "user-1");
    }

    /// The public key set a [`MemoryVersionStore`]'s rotations wrote, as its own secret: one version,
    /// `AWSCURRENT`. Read-only, as the verifying functions' grant is.
    struct PublicView(Arc<MemoryVersionStore>);

    impl SecretVersionStore for PublicView {
        async fn versions(&self) -> Result<BTreeMap<String, Vec<String>>, RotationError> {
            Ok(BTreeMap::from([("public".into(), vec![AWSCURRENT.into()])]))
        }
        async fn value_at_stage(&self, stage: &str) -> Result<Option<String>, RotationError> {
            self.0.check()?;
            Ok((stage == AWSCURRENT).then(|| self.0.published()).flatten())
        }
        async fn value_of_version(&self, _: &str) -> Result<Option<String>, RotationError> {
            self.value_at_stage(AWSCURRENT).await
        }
        async fn put_pending(&self, _: &str, _: &str) -> Result<(), RotationError> {
            Err(RotationError::Store("read-only".into()))
        }
        async fn update_stage(
            &self,
            _: &str,
            _: Option<&str>,
            _: Option<&str>,
        ) -> Result<(), RotationError> {
            Err(RotationError::Store("read-only".into()))
        }
        async fn publish_public(&self, _: &str) -> Result<(), RotationError> {
            Err(RotationError::Store("read-only".into()))
        }
    }

    /// Asserts that `json` is a public key set without any private member, and returns its kids.
    fn public_kids(json: &str) -> BTreeSet<String> {
        let value: serde_json::Value = serde_json::from_str(json).unwrap();
        for key in value["keys"].as_array().unwrap() {
            let jwk = key["jwk"].as_object().unwrap();
            for private in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
                assert!(
                    !jwk.contains_key(private),
                    "private member {private} in {json}"
                );
            }
            assert!(key.get("private_key").is_none(), "{json}");
        }
        assert!(!json.contains("private"), "{json}");
        PublicKeySetDocument::parse(json)
            .unwrap()
            .keys
            .into_iter()
            .map(|k| k.kid)
            .collect()
    }

    #[tokio::test]
    async fn each_publishing_step_writes_the_public_set_without_private_material() {
        for alg in [
            SigningAlgorithm::Es256,
            SigningAlgorithm::Rs256,
            SigningAlgorithm::EdDsa,
        ] {
            // The first rotation over CDK's placeholder publishes the first key before it is current.
            let store = Arc::new(MemoryVersionStore::with_current(
                "v0",
                "placeholder from CDK",
            ));
            assert_eq!(store.published(), None);
            run_step(&store, RotationStep::CreateSecret, "v1", alg, TIMELINE, NOW)
                .await
                .unwrap();
            let first =
                KeySetDocument::parse(&store.value_of_version("v1").await.unwrap().unwrap())
                    .unwrap();
            assert_eq!(
                public_kids(&store.published().unwrap()),
                BTreeSet::from([first.keys[0].kid.clone()]),
                "{alg}: published at createSecret, before it can sign"
            );
            for step in [
                RotationStep::SetSecret,
                RotationStep::TestSecret,
                RotationStep::FinishSecret,
            ] {
                run_step(&store, step, "v1", alg, TIMELINE, NOW)
                    .await
                    .unwrap();
            }
            // A second rotation: createSecret adds the pending key, finishSecret publishes the new
            // current set; each time exactly what the private source publishes.
            for (step, token) in RotationStep::ALL.iter().map(|s| (*s, "v2")) {
                run_step(&store, step, token, alg, TIMELINE, NOW + 1_000)
                    .await
                    .unwrap();
                let private = VersionedKeySource::new(
                    store.clone(),
                    ManualClock::new(NOW),
                    Duration::from_secs(1),
                );
                let jwks = private.load().await.unwrap().jwks();
                let expected: BTreeSet<String> = jwks["keys"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|k| k["kid"].as_str().unwrap().to_owned())
                    .collect();
                assert_eq!(
                    public_kids(&store.published().unwrap()),
                    expected,
                    "{alg} {step}"
                );
                assert_eq!(expected.len(), 2, "{alg} {step}");
            }
            // The stored not_before reaches the public set: verifiers know when each key signs.
            let public = PublicKeySetDocument::parse(&store.published().unwrap()).unwrap();
            assert_eq!(
                public.keys[0].not_before,
                Some((NOW + 1_000) / 1000 + TIMELINE.lead_secs)
            );
        }
    }

    #[tokio::test]
    async fn a_retried_step_republishes_after_a_failed_public_write() {
        struct PublicWriteFails(MemoryVersionStore, std::sync::atomic::AtomicBool);
        impl SecretVersionStore for PublicWriteFails {
            async fn versions(&self) -> Result<BTreeMap<String, Vec<String>>, RotationError> {
                self.0.versions().await
            }
            async fn value_at_stage(&self, s: &str) -> Result<Option<String>, RotationError> {
                self.0.value_at_stage(s).await
            }
            async fn value_of_version(&self, v: &str) -> Result<Option<String>, RotationError> {
                self.0.value_of_version(v).await
            }
            async fn put_pending(&self, v: &str, value: &str) -> Result<(), RotationError> {
                self.0.put_pending(v, value).await
            }
            async fn update_stage(
                &self,
                stage: &str,
                to: Option<&str>,
                from: Option<&str>,
            ) -> Result<(), RotationError> {
                self.0.update_stage(stage, to, from).await
            }
            async fn publish_public(&self, value: &str) -> Result<(), RotationError> {
                if self.1.swap(false, Ordering::SeqCst) {
                    return Err(RotationError::Store("injected public write failure".into()));
                }
                self.0.publish_public(value).await
            }
        }
        let (_, inner) = initial();
        let store = PublicWriteFails(inner, true.into());
        let alg = SigningAlgorithm::Es256;
        assert!(
            run_step(&store, RotationStep::CreateSecret, "v2", alg, TIMELINE, NOW)
                .await
                .is_err()
        );
        assert_eq!(store.0.published(), None);
        run_step(&store, RotationStep::CreateSecret, "v2", alg, TIMELINE, NOW)
            .await
            .unwrap();
        assert_eq!(public_kids(&store.0.published().unwrap()).len(), 2);
        run_step(&store, RotationStep::TestSecret, "v2", alg, TIMELINE, NOW)
            .await
            .unwrap();
        store.1.store(true, Ordering::SeqCst);
        assert!(
            run_step(&store, RotationStep::FinishSecret, "v2", alg, TIMELINE, NOW)
                .await
                .is_err()
        );
        // AWSCURRENT moved, but AWSPENDING stays until the public set is written: the retry runs.
        assert_eq!(
            run_step(&store, RotationStep::FinishSecret, "v2", alg, TIMELINE, NOW)
                .await
                .unwrap(),
            StepOutcome::Done
        );
        assert!(store.0.value_at_stage(AWSPENDING).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_verifier_meeting_no_public_set_reports_instead_of_panicking() {
        let store = Arc::new(MemoryVersionStore::with_current(
            "v0",
            "placeholder from CDK",
        ));
        let clock = Arc::new(ManualClock::new(NOW));
        let verifier =
            VersionedKeySource::new(PublicView(store.clone()), clock, Duration::from_secs(300))
                .public_keys();
        assert!(matches!(
            verifier.key_set().await,
            Err(KeyError::NoValidKeySet(_))
        ));
        store.publish_public("placeholder from CDK").await.unwrap();
        assert!(matches!(
            verifier.key_set().await,
            Err(KeyError::NoValidKeySet(_))
        ));
        store.publish_public(r#"{"keys":[]}"#).await.unwrap();
        assert!(matches!(
            verifier.key_set().await,
            Err(KeyError::NoValidKeySet(_))
        ));
        // A private document in the public secret is refused, not used.
        let (doc, _) = initial();
        store.publish_public(&doc.to_json()).await.unwrap();
        assert!(matches!(
            verifier.key_set().await,
            Err(KeyError::NoValidKeySet(_))
        ));
    }

    /// What [`two_rotations`] saw.
    struct Findings {
        /// Tokens naming a kid that a JWKS fetched within the previous cache lifetime lacked, JWKS
        /// lacking the kid of a token still alive, and tokens a verifying function refused.
        violations: Vec<String>,
        /// Every kid that signed a token.
        signed: BTreeSet<String>,
    }

    /// Two rotations `gap_s` apart on a manual clock, every 5 s: three well-known instances serve the
    /// JWKS from their cached sets, three signing instances issue a token each, and a verifying
    /// instance checks it; all cache for 300 s and start at staggered times. A verifier may hold any
    /// JWKS served in the last `JWKS_MAX_AGE_SECS`.
    async fn two_rotations(timeline: KeyTimeline, gap_s: i64) -> Findings {
        let ttl = Duration::from_secs(300);
        let config = AuthConfig::with_issuer("https://auth.example.com");
        let clock = Arc::new(ManualClock::new(NOW));
        let store = Arc::new(MemoryVersionStore::with_current(
            "v0",
            "placeholder from CDK",
        ));
        let alg = SigningAlgorithm::Es256;
        rotate(&store, "v1", alg, timeline, NOW).await.unwrap();
        // As deployed: the signers read the private set (AWSCURRENT), the well-known and verifying
        // functions only the public set the rotation steps write.
        let signer =
            || VersionedKeySource::new(store.clone(), clock.clone(), ttl).without_pending();
        let public =
            || VersionedKeySource::new(PublicView(store.clone()), clock.clone(), ttl).public_keys();
        // The instance started at 95 s reloads at 995 s, just before the first rotation: it serves a
        // JWKS without the new key for almost one TTL, the worst case the lead must cover.
        let well_known = [0, 95, 230].map(|start_s| (start_s, public()));
        let signers = [0, 70, 190].map(|start_s| (start_s, signer()));
        let verifier = public();
        let rotations = [(1_000, "v2"), (1_000 + gap_s, "v3")];
        let end_s = 1_000 + gap_s + timeline.lead_secs + timeline.retain_secs + 600;
        let max_age = JWKS_MAX_AGE_SECS as i64;
        let alive_s = (config.access_token_ttl_secs + config.leeway_secs) as i64;

        let mut served: Vec<(i64, BTreeSet<String>)> = Vec::new();
        let mut last_signed: BTreeMap<String, i64> = BTreeMap::new();
        let mut violations = Vec::new();
        for t in (0..=end_s).step_by(5) {
            let now_ms = NOW + t * 1000;
            clock.advance_ms(now_ms - clock.now_ms());
            for (at, token) in rotations {
                if t == at {
                    rotate(&store, token, alg, timeline, now_ms).await.unwrap();
                }
            }
            for (start_s, instance) in &well_known {
                if t < *start_s {
                    continue;
                }
                let jwks = instance.key_set().await.unwrap().jwks();
                let kids: BTreeSet<String> = jwks["keys"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|k| k["kid"].as_str().unwrap().to_owned())
                    .collect();
                for (kid, signed_s) in &last_signed {
                    if t < signed_s + alive_s && !kids.contains(kid) {
                        violations.push(format!(
                            "{t} s: a JWKS lacks {kid}, which signed a token at {signed_s} s"
                        ));
                    }
                }
                served.push((t, kids));
            }
            served.retain(|(fetched_s, _)| *fetched_s >= t - max_age);
            for (start_s, instance) in &signers {
                if t < *start_s {
                    continue;
                }
                let keys = instance.key_set().await.unwrap();
                let token = tokens::issue(&keys, &config, "user-1", t, now_ms)
                    .unwrap()
                    .token;
                let kid = keys.signing_key(now_ms).kid.clone();
                for (fetched_s, kids) in &served {
                    if !kids.contains(&kid) {
                        violations.push(format!(
                            "{t} s: a token names {kid}, unknown to the JWKS of {fetched_s} s"
                        ));
                    }
                }
                if tokens::verify_from(&verifier, &config, &token, now_ms)
                    .await
                    .is_err()
                {
                    violations.push(format!(
                        "{t} s: the verifying function refuses a token of {kid}"
                    ));
                }
                last_signed.insert(kid, t);
            }
        }
        Findings {
            violations,
            signed: last_signed.into_keys().collect(),
        }
    }

    #[tokio::test]
    async fn no_token_names_a_key_that_a_cached_jwks_could_not_know() {
        let config = AuthConfig::with_issuer("https://auth.example.com");
        let timeline = KeyTimeline::new(&config, Duration::from_secs(300));
        // The second rotation before the first one's key signs, soon after it does, just when the first
        // key may go, and long after.
        for gap_s in [
            timeline.lead_secs / 2,
            timeline.lead_secs + 60,
            timeline.lead_secs + timeline.retain_secs,
            3 * timeline.lead_secs,
        ] {
            let findings = two_rotations(timeline, gap_s).await;
            assert_eq!(findings.violations, Vec::<String>::new(), "gap {gap_s} s");
            assert_eq!(
                findings.signed.len(),
                3,
                "gap {gap_s} s: each key signed in turn"
            );
        }
        // The checks can fail: with ten seconds less lead, or without the retention, they do.
        let no_lead = KeyTimeline {
            lead_secs: timeline.lead_secs - 10,
            ..timeline
        };
        let too_soon = two_rotations(no_lead, 3 * timeline.lead_secs).await;
        assert!(
            too_soon
                .violations
                .iter()
                .any(|v| v.contains("unknown to the JWKS"))
        );
        let no_retention = KeyTimeline {
            retain_secs: 0,
            ..timeline
        };
        let early_drop = two_rotations(no_retention, timeline.lead_secs + 60).await;
        assert!(
            early_drop
                .violations
                .iter()
                .any(|v| v.contains("a JWKS lacks"))
        );
    }
}
