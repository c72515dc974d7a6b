//! The store behaviour suite (feature `testkit`): one set of tests that every [`AuthStore`] adapter
//! runs, so the embedded store and the DynamoDB adapter cannot drift apart.
//!
//! Two layers, each behaviour a `pub async fn name<S: AuthStore>(store: S)` that panics on failure:
//! - the port's contract, called directly: put-if-absent users, the conditional updates, the
//!   rotation's checks and their order, expiry on read, family revocation, races;
//! - DESIGN.md's security rules, through [`AuthService`] with a [`ManualClock`] and a generated
//!   ES256 key (`service_*`), so each store is shown to carry the endpoints' rules.
//!
//! [`store_behaviour_tests!`](crate::store_behaviour_tests) expands to one `#[test]` per behaviour:
//!
//! ```ignore
//! // tests/behaviour.rs of a store crate (dev-dependency: keygate-core with feature "testkit")
//! use my_store::MyStore;
//! keygate_core::store_behaviour_tests!(async { MyStore::connect().await.unwrap() });
//! ```
//!
//! The argument is any expression of a future (an `async` block, a call of an `async fn`) whose
//! output is the store; it is evaluated once per test, inside a multi-threaded tokio runtime.
//! Every behaviour uses fresh random emails, so a store shared between tests (one DynamoDB table)
//! works. When a store needs something kept alive beside it (a temporary directory, a server
//! process), wrap both in [`Guarded`].
//!
//! Password hashing keeps the configured defaults (argon2id at OWASP's cost): the suite proves the
//! rules as deployed. The workspace's dev profile optimises argon2 so that stays fast.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

pub use tokio;

use crate::algorithm::SigningAlgorithm;
use crate::audit::{AuditKey, RequestContext};
use crate::clock::ManualClock;
use crate::config::AuthConfig;
use crate::crypto::{hashes_match, hex, sha256_hex};
use crate::error::AuthError;
use crate::keys::{KeySet, KeySetDocument, StaticKeySource, generate_key};
use crate::password::{HashingParams, PasswordHasher};
use crate::refresh::RefreshToken;
use crate::service::{AuthService, Registered, TokenResponse};
use crate::store::{
    Attempt, AttemptCounter, AttemptScope, AuthStore, DeviceGrant, DeviceRecord, LoginCompletion,
    PasswordChange, RefreshRecord, RefreshTokenStore, Reservation, RotateOutcome, Rotation,
    StoreResult, User, UserStore,
};
use crate::throttle::LoginThrottle;

/// The instant the store-level behaviours start at (2026-01-01T00:00:00Z), milliseconds.
pub const NOW_MS: i64 = 1_767_225_600_000;
/// Refresh-family lifetime the store-level fixtures use, seconds.
pub const FAMILY_TTL_S: i64 = 30 * 24 * 3600;
/// How many rotations of one token the race behaviours start at once.
pub const CONCURRENCY: usize = 32;
/// A password every default policy accepts.
pub const PASSWORD: &str = "amber-lantern-orbit-7421";
pub const NEW_PASSWORD: &str = "quiet-meadow-falcon-3958";
pub const WRONG_PASSWORD: &str = "wrong-guess-entirely-0000";

/// Runs a behaviour on a fresh multi-threaded tokio runtime (what the macro's tests call).
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(future)
}

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

/// `n` random bytes as lowercase hex.
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    aws_lc_rs::rand::fill(&mut bytes).expect("OS random generator");
    hex(&bytes)
}

/// A fresh normalised email, unique across runs, so tests can share one table.
pub fn unique_email(tag: &str) -> String {
    format!("{tag}-{}@keygate.test", random_hex(8))
}

fn random_uuid() -> String {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).expect("OS random generator");
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}

/// A placeholder PHC string (store-level tests never verify it).
pub fn fake_hash(tag: &str) -> String {
    format!("$argon2id$v=19$m=19456,t=2,p=1${tag}${}", random_hex(16))
}

/// A user with every field set to something non-default, so round trips are meaningful.
pub fn sample_user(email: &str) -> User {
    User {
        user_id: random_uuid(),
        email: email.to_owned(),
        password_hash: fake_hash("sample"),
        created_at_ms: NOW_MS - 86_400_000,
        revoked_before_ms: 0,
        attempts: AttemptCounter::default(),
        roles: vec!["reader".to_owned(), "writer".to_owned()],
        family_seq: 7,
    }
}

/// The first token of a new family for `email`, issued at `now_ms`, expiring `FAMILY_TTL_S` later.
pub fn first_record(email: &str, now_ms: i64, fingerprint_hash: Option<String>) -> RefreshRecord {
    RefreshRecord {
        email: email.to_owned(),
        family_id: random_hex(16),
        token_id: random_hex(16),
        token_hash: sha256_hex(random_hex(32).as_bytes()),
        issued_at_ms: now_ms,
        expires_at_s: now_ms.div_euclid(1000) + FAMILY_TTL_S,
        used_at_ms: None,
        replaced_by: None,
        fingerprint_hash,
    }
}

/// A new device of `email` created at `now_ms` (its token is never needed at the port), living as
/// long as a family.
pub fn device_record(email: &str, now_ms: i64) -> DeviceRecord {
    DeviceRecord {
        email: email.to_owned(),
        token_hash: sha256_hex(random_hex(32).as_bytes()),
        created_at_ms: now_ms,
        expires_at_s: now_ms.div_euclid(1000) + FAMILY_TTL_S,
        attempts: AttemptCounter::default(),
    }
}

/// The child a rotation of `parent` at `now_ms` writes: same family, expiry and binding.
pub fn child_record(parent: &RefreshRecord, now_ms: i64) -> RefreshRecord {
    RefreshRecord {
        token_id: random_hex(16),
        token_hash: sha256_hex(random_hex(32).as_bytes()),
        issued_at_ms: now_ms,
        used_at_ms: None,
        replaced_by: None,
        ..parent.clone()
    }
}

/// A rotation presenting `record` (with its own hash and binding) at `now_ms`.
pub fn rotation_of(record: &RefreshRecord, now_ms: i64) -> Rotation {
    Rotation {
        email: record.email.clone(),
        family_id: record.family_id.clone(),
        token_id: record.token_id.clone(),
        presented_hash: record.token_hash.clone(),
        presented_issued_at_ms: record.issued_at_ms,
        // Never retired: the tests of the live-family cap set their own.
        retired_at_seq: u64::MAX,
        fingerprint_hash: record.fingerprint_hash.clone(),
        now_ms,
        next: child_record(record, now_ms),
    }
}

async fn get_token<S: AuthStore>(
    store: &S,
    record: &RefreshRecord,
    now_ms: i64,
) -> Option<RefreshRecord> {
    store
        .get_refresh_token(&record.email, &record.family_id, &record.token_id, now_ms)
        .await
        .expect("get_refresh_token")
}

async fn new_user<S: AuthStore>(store: &S, tag: &str) -> User {
    let user = sample_user(&unique_email(tag));
    assert!(
        store.create_user(&user).await.expect("create_user"),
        "a fresh email must be free"
    );
    user
}

async fn user_of<S: AuthStore>(store: &S, email: &str) -> User {
    store
        .get_user(email)
        .await
        .expect("get_user")
        .expect("the user exists")
}

/// Asserts that a rotation that did not succeed changed nothing: the presented token is as it was
/// and the would-be child does not exist.
async fn assert_unchanged<S: AuthStore>(store: &S, before: &RefreshRecord, rotation: &Rotation) {
    assert_eq!(
        get_token(store, before, NOW_MS).await.as_ref(),
        Some(before),
        "the presented token must be untouched"
    );
    assert_eq!(
        get_token(store, &rotation.next, NOW_MS).await,
        None,
        "the child must not be written"
    );
}

/// A store kept together with something that must live as long as it (a temporary directory, a
/// test server); delegates every port method to the store.
pub struct Guarded<S> {
    pub store: S,
    _guard: Box<dyn std::any::Any + Send + Sync>,
}

impl<S> Guarded<S> {
    pub fn new(store: S, guard: impl std::any::Any + Send + Sync) -> Self {
        Self {
            store,
            _guard: Box::new(guard),
        }
    }
}

impl<S: UserStore> UserStore for Guarded<S> {
    fn create_user(&self, user: &User) -> impl Future<Output = StoreResult<bool>> + Send {
        self.store.create_user(user)
    }
    fn get_user(&self, email: &str) -> impl Future<Output = StoreResult<Option<User>>> + Send {
        self.store.get_user(email)
    }
    fn get_user_by_id(
        &self,
        user_id: &str,
    ) -> impl Future<Output = StoreResult<Option<User>>> + Send {
        self.store.get_user_by_id(user_id)
    }
    fn reserve_login_attempt(
        &self,
        email: &str,
        device_token_hash: Option<&str>,
        throttle: &LoginThrottle,
        now_ms: i64,
    ) -> impl Future<Output = StoreResult<Reservation>> + Send {
        self.store
            .reserve_login_attempt(email, device_token_hash, throttle, now_ms)
    }
    fn settle_attempt(
        &self,
        email: &str,
        scope: &AttemptScope,
        reserved: &AttemptCounter,
        locked_until_ms: i64,
    ) -> impl Future<Output = StoreResult<bool>> + Send {
        self.store
            .settle_attempt(email, scope, reserved, locked_until_ms)
    }
    fn complete_login(
        &self,
        completion: &LoginCompletion,
    ) -> impl Future<Output = StoreResult<bool>> + Send {
        self.store.complete_login(completion)
    }
    fn change_password(
        &self,
        change: &PasswordChange,
    ) -> impl Future<Output = StoreResult<bool>> + Send {
        self.store.change_password(change)
    }
    fn set_revoked_before(
        &self,
        email: &str,
        revoked_before_ms: i64,
    ) -> impl Future<Output = StoreResult<()>> + Send {
        self.store.set_revoked_before(email, revoked_before_ms)
    }
}

impl<S: RefreshTokenStore> RefreshTokenStore for Guarded<S> {
    fn put_refresh_token(
        &self,
        record: &RefreshRecord,
    ) -> impl Future<Output = StoreResult<()>> + Send {
        self.store.put_refresh_token(record)
    }
    fn rotate_refresh_token(
        &self,
        rotation: &Rotation,
    ) -> impl Future<Output = StoreResult<RotateOutcome>> + Send {
        self.store.rotate_refresh_token(rotation)
    }
    fn get_refresh_token(
        &self,
        email: &str,
        family_id: &str,
        token_id: &str,
        now_ms: i64,
    ) -> impl Future<Output = StoreResult<Option<RefreshRecord>>> + Send {
        self.store
            .get_refresh_token(email, family_id, token_id, now_ms)
    }
    fn revoke_family(
        &self,
        email: &str,
        family_id: &str,
    ) -> impl Future<Output = StoreResult<usize>> + Send {
        self.store.revoke_family(email, family_id)
    }
}

// ---------------------------------------------------------------------------------------------
// A reference implementation of the port
// ---------------------------------------------------------------------------------------------

/// The port's contract in a few lines over two maps behind one mutex: the model the suite is
/// checked against in this crate, and an in-process store for tests of other layers.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    state: Arc<Mutex<MemoryState>>,
}

#[derive(Debug, Default)]
struct MemoryState {
    users: BTreeMap<String, User>,
    /// Keyed by (email, family_id, token_id), like the table's pk/sk.
    tokens: BTreeMap<(String, String, String), RefreshRecord>,
    /// Keyed by (email, token_hash).
    devices: BTreeMap<(String, String), DeviceRecord>,
}

type TokenKey = (String, String, String);

fn token_key(email: &str, family_id: &str, token_id: &str) -> TokenKey {
    (email.to_owned(), family_id.to_owned(), token_id.to_owned())
}

impl MemoryStore {
    fn with<T>(&self, f: impl FnOnce(&mut MemoryState) -> T) -> T {
        f(&mut self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()))
    }
}

impl UserStore for MemoryStore {
    async fn create_user(&self, user: &User) -> StoreResult<bool> {
        Ok(self.with(|s| {
            if s.users.contains_key(&user.email) {
                return false;
            }
            s.users.insert(user.email.clone(), user.clone());
            true
        }))
    }

    async fn get_user(&self, email: &str) -> StoreResult<Option<User>> {
        Ok(self.with(|s| s.users.get(email).cloned()))
    }

    async fn get_user_by_id(&self, user_id: &str) -> StoreResult<Option<User>> {
        Ok(self.with(|s| s.users.values().find(|u| u.user_id == user_id).cloned()))
    }

    async fn reserve_login_attempt(
        &self,
        email: &str,
        device_token_hash: Option<&str>,
        throttle: &LoginThrottle,
        now_ms: i64,
    ) -> StoreResult<Reservation> {
        Ok(self.with(|s| {
            let device = device_token_hash
                .and_then(|hash| s.devices.get_mut(&(email.to_owned(), hash.to_owned())));
            match s.users.get_mut(email) {
                Some(user) => user.reserve_attempt(device, throttle, now_ms),
                None => Reservation::NoUser,
            }
        }))
    }

    async fn settle_attempt(
        &self,
        email: &str,
        scope: &AttemptScope,
        reserved: &AttemptCounter,
        locked_until_ms: i64,
    ) -> StoreResult<bool> {
        Ok(self.with(|s| {
            let counter = match scope {
                AttemptScope::Untrusted => s.users.get_mut(email).map(|u| &mut u.attempts),
                AttemptScope::Device(hash) => s
                    .devices
                    .get_mut(&(email.to_owned(), hash.clone()))
                    .map(|d| &mut d.attempts),
            };
            let Some(counter) = counter else {
                return false;
            };
            match crate::throttle::settle(counter, reserved, locked_until_ms) {
                Some(next) => {
                    *counter = next;
                    true
                }
                None => false,
            }
        }))
    }

    async fn complete_login(&self, completion: &LoginCompletion) -> StoreResult<bool> {
        Ok(self.with(|s| {
            let r = &completion.first_token;
            if let DeviceGrant::Reset(hash) = &completion.device
                && !s.devices.contains_key(&(r.email.clone(), hash.clone()))
            {
                return false;
            }
            let Some(user) = s.users.get_mut(&r.email) else {
                return false;
            };
            if !user.complete_login(completion) {
                return false;
            }
            match &completion.device {
                DeviceGrant::Reset(hash) => {
                    let device = s.devices.get_mut(&(r.email.clone(), hash.clone()));
                    device.expect("checked above").attempts = AttemptCounter::default();
                }
                DeviceGrant::Issue(device) => {
                    s.devices.insert(
                        (device.email.clone(), device.token_hash.clone()),
                        device.clone(),
                    );
                }
            }
            s.tokens
                .insert(token_key(&r.email, &r.family_id, &r.token_id), r.clone());
            true
        }))
    }

    async fn change_password(&self, change: &PasswordChange) -> StoreResult<bool> {
        Ok(self.with(|s| {
            let r = &change.first_token;
            let applied = s
                .users
                .get_mut(&r.email)
                .is_some_and(|user| user.change_password(change));
            if applied {
                s.tokens
                    .insert(token_key(&r.email, &r.family_id, &r.token_id), r.clone());
                let d = &change.new_device;
                s.devices
                    .insert((d.email.clone(), d.token_hash.clone()), d.clone());
            }
            applied
        }))
    }

    async fn set_revoked_before(&self, email: &str, revoked_before_ms: i64) -> StoreResult<()> {
        self.with(|s| {
            if let Some(user) = s.users.get_mut(email) {
                user.revoked_before_ms = user.revoked_before_ms.max(revoked_before_ms);
            }
        });
        Ok(())
    }
}

impl RefreshTokenStore for MemoryStore {
    async fn put_refresh_token(&self, r: &RefreshRecord) -> StoreResult<()> {
        self.with(|s| {
            s.tokens
                .insert(token_key(&r.email, &r.family_id, &r.token_id), r.clone())
        });
        Ok(())
    }

    async fn rotate_refresh_token(&self, rotation: &Rotation) -> StoreResult<RotateOutcome> {
        Ok(self.with(|s| {
            let key = token_key(&rotation.email, &rotation.family_id, &rotation.token_id);
            let Some(record) = s.tokens.get(&key).filter(|r| {
                !r.is_expired(rotation.now_ms)
                    && hashes_match(&r.token_hash, &rotation.presented_hash)
            }) else {
                return RotateOutcome::NotFound;
            };
            if record.used_at_ms.is_some() {
                return RotateOutcome::AlreadyUsed(record.clone());
            }
            if record.fingerprint_hash != rotation.fingerprint_hash {
                return RotateOutcome::FingerprintMismatch;
            }
            let revoked = s
                .users
                .get(&rotation.email)
                .is_none_or(|u| u.revokes(rotation));
            if revoked {
                return RotateOutcome::Revoked;
            }
            let record = s.tokens.get_mut(&key).expect("checked above");
            record.used_at_ms = Some(rotation.now_ms);
            record.replaced_by = Some(rotation.next.token_id.clone());
            let n = &rotation.next;
            s.tokens
                .insert(token_key(&n.email, &n.family_id, &n.token_id), n.clone());
            RotateOutcome::Rotated
        }))
    }

    async fn get_refresh_token(
        &self,
        email: &str,
        family_id: &str,
        token_id: &str,
        now_ms: i64,
    ) -> StoreResult<Option<RefreshRecord>> {
        Ok(self.with(|s| {
            s.tokens
                .get(&token_key(email, family_id, token_id))
                .filter(|r| !r.is_expired(now_ms))
                .cloned()
        }))
    }

    async fn revoke_family(&self, email: &str, family_id: &str) -> StoreResult<usize> {
        Ok(self.with(|s| {
            let before = s.tokens.len();
            s.tokens
                .retain(|(e, f, _), _| !(e == email && f == family_id));
            before - s.tokens.len()
        }))
    }
}

// ---------------------------------------------------------------------------------------------
// The port's contract
// ---------------------------------------------------------------------------------------------

/// A second user with the same email is refused and the first is left exactly as it was.
pub async fn create_user_is_put_if_absent<S: AuthStore>(store: S) {
    let first = new_user(&store, "put-if-absent").await;
    let mut second = sample_user(&first.email);
    second.password_hash = fake_hash("intruder");
    second.roles = vec!["admin".to_owned()];
    assert!(
        !store.create_user(&second).await.unwrap(),
        "a taken email must be refused"
    );
    assert_eq!(
        store.get_user(&first.email).await.unwrap(),
        Some(first.clone()),
        "the first user must be unchanged"
    );
    assert_eq!(
        store.get_user_by_id(&second.user_id).await.unwrap(),
        None,
        "the refused user must not be findable by id"
    );
}

/// Concurrent creates of one email: exactly one succeeds.
pub async fn create_user_races_have_one_winner<S: AuthStore>(store: S) {
    let store = Arc::new(store);
    let email = unique_email("create-race");
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (store, user) = (store.clone(), sample_user(&email));
            tokio::spawn(async move {
                (
                    store
                        .create_user(&user)
                        .await
                        .expect("create_user must not fail"),
                    user,
                )
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        let (created, user) = task.await.expect("task");
        if created {
            winners.push(user);
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one create of an email may succeed"
    );
    assert_eq!(
        store.get_user(&email).await.unwrap().as_ref(),
        winners.first()
    );
}

/// Users read back whole, by email and by id; unknown keys are absent.
pub async fn users_are_found_by_email_and_by_id<S: AuthStore>(store: S) {
    let mut user = sample_user(&unique_email("lookup"));
    user.revoked_before_ms = NOW_MS - 5_000;
    user.attempts = AttemptCounter {
        attempts: 2,
        locked_until_ms: NOW_MS + 7_000,
        last_attempt_ms: NOW_MS - 1_000,
    };
    assert!(store.create_user(&user).await.unwrap());
    assert_eq!(
        store.get_user(&user.email).await.unwrap(),
        Some(user.clone())
    );
    assert_eq!(
        store.get_user_by_id(&user.user_id).await.unwrap(),
        Some(user.clone())
    );
    assert_eq!(store.get_user(&unique_email("nobody")).await.unwrap(), None);
    assert_eq!(store.get_user_by_id(&random_uuid()).await.unwrap(), None);
    let mut plain = sample_user(&unique_email("no-roles"));
    plain.roles.clear();
    assert!(store.create_user(&plain).await.unwrap());
    assert_eq!(
        store.get_user_by_id(&plain.user_id).await.unwrap(),
        Some(plain)
    );
}

/// Audit events recorded by a process-wide tracing subscriber that the suite installs once: the
/// service's judgements are counted from `login_failed` / `login_throttled`, as an operator would.
pub struct AuditCapture {
    events: Mutex<Vec<(String, String)>>,
}

impl AuditCapture {
    /// The names of the events recorded for `user_id`, in order.
    pub fn events_of(&self, user_id: &str) -> Vec<String> {
        self.events
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .filter(|(_, user)| user == user_id)
            .map(|(event, _)| event.clone())
            .collect()
    }
}

/// Installs the capturing subscriber as the global default (once per test binary) and returns it.
/// Panics if the binary already installed another global subscriber.
pub fn audit_capture() -> &'static AuditCapture {
    static CAPTURE: std::sync::OnceLock<&'static AuditCapture> = std::sync::OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture: &'static AuditCapture = Box::leak(Box::new(AuditCapture {
            events: Mutex::new(Vec::new()),
        }));
        tracing::subscriber::set_global_default(CaptureSubscriber(capture))
            .expect("the behaviour suite installs the only global tracing subscriber");
        capture
    })
}

struct CaptureSubscriber(&'static AuditCapture);

#[derive(Default)]
struct AuditFields {
    event: String,
    user_id: String,
}

impl tracing::field::Visit for AuditFields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        match field.name() {
            "event" => self.event = value.to_owned(),
            "user_id" => self.user_id = value.to_owned(),
            _ => {}
        }
    }
    fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {}
}

impl tracing::Subscriber for CaptureSubscriber {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        metadata.target() == "keygate::audit"
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut fields = AuditFields::default();
        event.record(&mut fields);
        self.0
            .events
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push((fields.event, fields.user_id));
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// The throttle the store-level behaviours reserve with (the defaults).
pub fn test_throttle() -> LoginThrottle {
    test_config().throttle
}

/// The user of an admitted reservation on the untrusted counter.
fn admitted(reservation: Reservation) -> User {
    match reservation {
        Reservation::Admitted(Attempt {
            user,
            scope: AttemptScope::Untrusted,
            counter,
        }) => {
            assert_eq!(
                counter, user.attempts,
                "the untrusted counter is the user's"
            );
            user
        }
        other => panic!("expected an admitted reservation, got {other:?}"),
    }
}

/// Runs `n` copies of `f` released together by a barrier, so they reach the store at once.
pub async fn released_together<T, F, Fut>(n: usize, f: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
{
    let barrier = Arc::new(tokio::sync::Barrier::new(n));
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (barrier, task) = (barrier.clone(), f(i));
            tokio::spawn(async move {
                barrier.wait().await;
                task.await
            })
        })
        .collect();
    let mut results = Vec::with_capacity(n);
    for task in tasks {
        results.push(task.await.expect("task"));
    }
    results
}

/// Reservations follow [`LoginThrottle::reserve`] and return the user as it is after them; refused
/// ones change nothing; unknown emails create nothing.
pub async fn reservations_follow_the_throttle<S: AuthStore>(store: S) {
    let throttle = test_throttle();
    let user = new_user(&store, "reserve").await;
    let mut expected = AttemptCounter::default();
    for i in 0..throttle.free_attempts {
        let at = NOW_MS + i64::from(i);
        expected = throttle.reserve(&expected, at).expect("free attempt");
        let after = admitted(
            store
                .reserve_login_attempt(&user.email, None, &throttle, at)
                .await
                .unwrap(),
        );
        assert_eq!(after.attempts, expected);
        assert_eq!(
            User {
                attempts: AttemptCounter::default(),
                ..after
            },
            user,
            "a reservation changes only the counter"
        );
    }
    let stored = user_of(&store, &user.email).await;
    assert_eq!(stored.attempts, expected);
    match store
        .reserve_login_attempt(&user.email, None, &throttle, NOW_MS + 100)
        .await
        .unwrap()
    {
        Reservation::Refused(seen) => {
            assert_eq!(seen.user, stored);
            assert_eq!(seen.scope, AttemptScope::Untrusted);
        }
        other => panic!("past the free attempts, with the window open: refused, got {other:?}"),
    }
    assert_eq!(
        user_of(&store, &user.email).await,
        stored,
        "a refusal writes nothing"
    );

    let unknown = unique_email("unknown");
    assert_eq!(
        store
            .reserve_login_attempt(&unknown, None, &throttle, NOW_MS)
            .await
            .unwrap(),
        Reservation::NoUser
    );
    assert_eq!(store.get_user(&unknown).await.unwrap(), None);
}

/// Reservations released together: exactly the free attempts are admitted, and the counter holds
/// every one of them.
pub async fn concurrent_reservations_admit_only_the_free_attempts<S: AuthStore>(store: S) {
    let store = Arc::new(store);
    let throttle = test_throttle();
    let user = new_user(&*store, "reserve-race").await;
    let results = released_together(CONCURRENCY, |_| {
        let (store, email, throttle) = (store.clone(), user.email.clone(), throttle.clone());
        async move {
            store
                .reserve_login_attempt(&email, None, &throttle, NOW_MS)
                .await
                .expect("a concurrent reservation must not fail")
        }
    })
    .await;
    let admitted = results
        .iter()
        .filter(|r| matches!(r, Reservation::Admitted(_)))
        .count();
    assert_eq!(
        admitted, throttle.free_attempts as usize,
        "exactly the free attempts may be admitted, whatever the concurrency"
    );
    assert_eq!(
        user_of(&*store, &user.email).await.attempts.attempts,
        throttle.free_attempts
    );
}

/// Settling replaces the window only on the reservation it was decided on.
pub async fn settle_attempt_is_compare_and_set<S: AuthStore>(store: S) {
    let throttle = test_throttle();
    let user = new_user(&store, "settle").await;
    let first = admitted(
        store
            .reserve_login_attempt(&user.email, None, &throttle, NOW_MS)
            .await
            .unwrap(),
    );
    let second = admitted(
        store
            .reserve_login_attempt(&user.email, None, &throttle, NOW_MS + 1)
            .await
            .unwrap(),
    );
    assert!(
        !store
            .settle_attempt(
                &user.email,
                &AttemptScope::Untrusted,
                &first.attempts,
                NOW_MS + 9_000
            )
            .await
            .unwrap(),
        "a later reservation exists: the earlier one must not settle"
    );
    assert_eq!(user_of(&store, &user.email).await, second);
    assert!(
        store
            .settle_attempt(
                &user.email,
                &AttemptScope::Untrusted,
                &second.attempts,
                NOW_MS + 9_000
            )
            .await
            .unwrap()
    );
    let settled = user_of(&store, &user.email).await;
    assert_eq!(
        settled.attempts,
        AttemptCounter {
            locked_until_ms: NOW_MS + 9_000,
            ..second.attempts
        }
    );
    assert_eq!(
        User {
            attempts: AttemptCounter::default(),
            ..settled
        },
        user,
        "nothing else may change"
    );
    let unknown = unique_email("unknown");
    assert!(
        !store
            .settle_attempt(
                &unknown,
                &AttemptScope::Untrusted,
                &AttemptCounter::default(),
                0
            )
            .await
            .unwrap()
    );
    assert_eq!(store.get_user(&unknown).await.unwrap(), None);
}

fn completion(user: &User, verified_hash: &str, new_hash: Option<String>) -> LoginCompletion {
    LoginCompletion {
        verified_hash: verified_hash.to_owned(),
        revoked_before_ms: user.revoked_before_ms,
        family_seq: user.family_seq + 1,
        new_password_hash: new_hash,
        first_token: first_record(&user.email, NOW_MS, None),
        device: DeviceGrant::Issue(device_record(&user.email, NOW_MS)),
    }
}

/// A login's write applies only on the hash that was verified, the watermark that was read and a
/// family number not yet taken; then it writes the token, takes the number, resets the counter and
/// replaces the hash if asked, together.
pub async fn complete_login_is_conditional<S: AuthStore>(store: S) {
    let throttle = test_throttle();
    let user = new_user(&store, "complete-login").await;
    admitted(
        store
            .reserve_login_attempt(&user.email, None, &throttle, NOW_MS)
            .await
            .unwrap(),
    );
    let reserved = user_of(&store, &user.email).await;

    let stale = completion(&user, &fake_hash("not-stored"), None);
    assert!(!store.complete_login(&stale).await.unwrap());
    assert_eq!(get_token(&store, &stale.first_token, NOW_MS).await, None);
    let old_watermark = LoginCompletion {
        revoked_before_ms: user.revoked_before_ms - 1,
        ..completion(&user, &user.password_hash, None)
    };
    assert!(!store.complete_login(&old_watermark).await.unwrap());
    assert_eq!(
        get_token(&store, &old_watermark.first_token, NOW_MS).await,
        None
    );
    let taken_number = LoginCompletion {
        family_seq: user.family_seq,
        ..completion(&user, &user.password_hash, None)
    };
    assert!(!store.complete_login(&taken_number).await.unwrap());
    assert_eq!(
        get_token(&store, &taken_number.first_token, NOW_MS).await,
        None
    );
    assert_eq!(
        user_of(&store, &user.email).await,
        reserved,
        "a refused completion changes nothing"
    );

    let plain = completion(&user, &user.password_hash, None);
    assert!(store.complete_login(&plain).await.unwrap());
    assert_eq!(
        get_token(&store, &plain.first_token, NOW_MS).await,
        Some(plain.first_token.clone())
    );
    let user = User {
        family_seq: user.family_seq + 1,
        ..user
    };
    assert_eq!(
        user_of(&store, &user.email).await,
        user,
        "the counter is reset and the number taken, nothing else changes"
    );
    let again = completion(&user, &user.password_hash, None);
    let replayed_number = LoginCompletion {
        family_seq: plain.family_seq,
        ..again.clone()
    };
    assert!(
        !store.complete_login(&replayed_number).await.unwrap(),
        "one number, one family"
    );

    let rehashed = fake_hash("rehashed");
    let rehash = completion(&user, &user.password_hash, Some(rehashed.clone()));
    assert!(store.complete_login(&rehash).await.unwrap());
    assert!(
        get_token(&store, &rehash.first_token, NOW_MS)
            .await
            .is_some()
    );
    assert_eq!(
        user_of(&store, &user.email).await,
        User {
            password_hash: rehashed,
            family_seq: user.family_seq + 1,
            ..user.clone()
        }
    );
    let unknown = completion(&sample_user(&unique_email("unknown")), "x", None);
    assert!(!store.complete_login(&unknown).await.unwrap());
    assert_eq!(
        store.get_user(&unknown.first_token.email).await.unwrap(),
        None
    );
}

fn password_change(user: &User, expected_hash: &str, new_hash: &str, at: i64) -> PasswordChange {
    PasswordChange {
        expected_hash: expected_hash.to_owned(),
        new_hash: new_hash.to_owned(),
        revoked_before_ms: at,
        family_seq: user.family_seq + 1,
        first_token: first_record(&user.email, at, None),
        new_device: device_record(&user.email, at),
    }
}

/// The password changes only from the expected hash; with it the watermark rises (never falls), the
/// counter resets and the new session's token is written.
pub async fn change_password_is_conditional<S: AuthStore>(store: S) {
    let throttle = test_throttle();
    let user = new_user(&store, "change-password").await;
    store
        .reserve_login_attempt(&user.email, None, &throttle, NOW_MS)
        .await
        .unwrap();
    let before = user_of(&store, &user.email).await;
    let (second, third) = (fake_hash("second"), fake_hash("third"));

    let wrong = password_change(&user, &fake_hash("not-stored"), &second, NOW_MS);
    assert!(!store.change_password(&wrong).await.unwrap());
    assert_eq!(
        user_of(&store, &user.email).await,
        before,
        "a wrong expected hash must change nothing"
    );
    assert_eq!(get_token(&store, &wrong.first_token, NOW_MS).await, None);

    let change = password_change(&user, &user.password_hash, &second, NOW_MS);
    assert!(store.change_password(&change).await.unwrap());
    let changed = user_of(&store, &user.email).await;
    assert_eq!(
        changed,
        User {
            password_hash: second.clone(),
            revoked_before_ms: NOW_MS,
            family_seq: user.family_seq + 1,
            ..user.clone()
        }
    );
    assert_eq!(
        get_token(&store, &change.first_token, NOW_MS).await,
        Some(change.first_token.clone())
    );

    let stale = password_change(&user, &user.password_hash, &third, NOW_MS + 1);
    assert!(!store.change_password(&stale).await.unwrap(), "stale hash");
    assert_eq!(user_of(&store, &user.email).await, changed);

    let earlier = password_change(&user, &second, &third, NOW_MS - 5);
    assert!(store.change_password(&earlier).await.unwrap());
    assert_eq!(
        user_of(&store, &user.email).await.revoked_before_ms,
        NOW_MS,
        "the watermark must never be lowered"
    );

    let unknown = password_change(&sample_user(&unique_email("unknown")), "x", &third, NOW_MS);
    assert!(!store.change_password(&unknown).await.unwrap());
    assert_eq!(
        store.get_user(&unknown.first_token.email).await.unwrap(),
        None
    );
}

/// Completes a login for `user` that issues `device`, so the device exists at the port.
/// Logs `user` in with `device` issued; returns the user as stored after it (its family number taken).
async fn with_device<S: AuthStore>(store: &S, user: &User, device: &DeviceRecord) -> User {
    let login = LoginCompletion {
        device: DeviceGrant::Issue(device.clone()),
        ..completion(user, &user.password_hash, None)
    };
    assert!(store.complete_login(&login).await.unwrap());
    user_of(store, &user.email).await
}

/// The attempt of an admitted reservation, whatever its scope.
fn admitted_attempt(reservation: Reservation) -> Attempt {
    match reservation {
        Reservation::Admitted(attempt) => attempt,
        other => panic!("expected an admitted reservation, got {other:?}"),
    }
}

/// A trusted device's reservations, settlements and resets touch its own counter only; an unknown,
/// expired or revoked device token counts on the untrusted counter, and a reset of a device that is
/// gone applies nothing.
pub async fn device_counters_are_separate<S: AuthStore>(store: S) {
    let throttle = test_throttle();
    let user = new_user(&store, "device-counter").await;
    let device = device_record(&user.email, NOW_MS);
    let user = with_device(&store, &user, &device).await;
    let device_scope = AttemptScope::Device(device.token_hash.clone());

    let first = admitted_attempt(
        store
            .reserve_login_attempt(&user.email, Some(&device.token_hash), &throttle, NOW_MS)
            .await
            .unwrap(),
    );
    assert_eq!(first.scope, device_scope);
    assert_eq!(
        first.counter,
        throttle
            .reserve(&AttemptCounter::default(), NOW_MS)
            .unwrap()
    );
    assert_eq!(
        first.user, user,
        "a device reservation leaves the user as it was"
    );
    assert_eq!(user_of(&store, &user.email).await, user);
    assert!(
        !store
            .settle_attempt(
                &user.email,
                &AttemptScope::Untrusted,
                &first.counter,
                NOW_MS + 9
            )
            .await
            .unwrap(),
        "the untrusted counter is not the one reserved"
    );
    assert!(
        store
            .settle_attempt(&user.email, &device_scope, &first.counter, NOW_MS + 9)
            .await
            .unwrap()
    );
    let second = admitted_attempt(
        store
            .reserve_login_attempt(&user.email, Some(&device.token_hash), &throttle, NOW_MS + 1)
            .await
            .unwrap(),
    );
    assert_eq!(
        second.counter.attempts, 2,
        "the device's counter holds its attempts"
    );
    assert_eq!(
        second.counter.locked_until_ms, 0,
        "the free attempts leave no window"
    );

    let unknown = sha256_hex(b"no such device");
    let untrusted = admitted_attempt(
        store
            .reserve_login_attempt(&user.email, Some(&unknown), &throttle, NOW_MS + 2)
            .await
            .unwrap(),
    );
    assert_eq!(untrusted.scope, AttemptScope::Untrusted);
    assert_eq!(untrusted.counter.attempts, 1);
    assert_eq!(
        user_of(&store, &user.email).await.attempts,
        untrusted.counter
    );

    let other = new_user(&store, "device-other").await;
    let foreign = admitted_attempt(
        store
            .reserve_login_attempt(&other.email, Some(&device.token_hash), &throttle, NOW_MS)
            .await
            .unwrap(),
    );
    assert_eq!(
        foreign.scope,
        AttemptScope::Untrusted,
        "a device is bound to its user"
    );

    let expired_at = device.expires_at_s * 1000;
    let expired = admitted_attempt(
        store
            .reserve_login_attempt(&user.email, Some(&device.token_hash), &throttle, expired_at)
            .await
            .unwrap(),
    );
    assert_eq!(expired.scope, AttemptScope::Untrusted, "an expired device");

    // A success on the device resets its counter and leaves the untrusted one alone.
    let reset = LoginCompletion {
        device: DeviceGrant::Reset(device.token_hash.clone()),
        ..completion(&user, &user.password_hash, None)
    };
    let counted = user_of(&store, &user.email).await;
    assert!(store.complete_login(&reset).await.unwrap());
    assert_eq!(
        user_of(&store, &user.email).await,
        User {
            family_seq: reset.family_seq,
            ..counted
        },
        "the untrusted counter stays"
    );
    let after_reset = admitted_attempt(
        store
            .reserve_login_attempt(&user.email, Some(&device.token_hash), &throttle, NOW_MS + 3)
            .await
            .unwrap(),
    );
    assert_eq!(
        after_reset.counter.attempts, 1,
        "the device's counter was reset"
    );

    // With the user as stored now, so only the missing device can refuse it.
    let user = user_of(&store, &user.email).await;
    let gone = LoginCompletion {
        device: DeviceGrant::Reset(unknown),
        ..completion(&user, &user.password_hash, None)
    };
    assert!(
        !store.complete_login(&gone).await.unwrap(),
        "a reset of a missing device"
    );
    assert_eq!(get_token(&store, &gone.first_token, NOW_MS).await, None);

    // The watermark revokes devices created before it.
    store
        .set_revoked_before(&user.email, device.created_at_ms + 1)
        .await
        .unwrap();
    let revoked = admitted_attempt(
        store
            .reserve_login_attempt(&user.email, Some(&device.token_hash), &throttle, NOW_MS + 4)
            .await
            .unwrap(),
    );
    assert_eq!(
        revoked.scope,
        AttemptScope::Untrusted,
        "a device older than the watermark"
    );
}

/// A password change writes its new device with its session; devices from before it are revoked.
pub async fn password_change_replaces_devices<S: AuthStore>(store: S) {
    let throttle = test_throttle();
    let user = new_user(&store, "device-change").await;
    let old = device_record(&user.email, NOW_MS);
    let user = with_device(&store, &user, &old).await;
    let change = password_change(
        &user,
        &user.password_hash,
        &fake_hash("changed"),
        NOW_MS + 10,
    );
    assert!(store.change_password(&change).await.unwrap());
    let scope_of = |hash: String| {
        let store = &store;
        let (email, throttle) = (user.email.clone(), throttle.clone());
        async move {
            admitted_attempt(
                store
                    .reserve_login_attempt(&email, Some(&hash), &throttle, NOW_MS + 20)
                    .await
                    .unwrap(),
            )
            .scope
        }
    };
    assert_eq!(
        scope_of(old.token_hash.clone()).await,
        AttemptScope::Untrusted
    );
    let new_hash = change.new_device.token_hash.clone();
    assert_eq!(
        scope_of(new_hash.clone()).await,
        AttemptScope::Device(new_hash)
    );
}

/// Reservations on one device released together: exactly the free attempts are admitted on its
/// counter, and none reaches the untrusted counter.
pub async fn concurrent_device_reservations_admit_only_the_free_attempts<S: AuthStore>(store: S) {
    let store = Arc::new(store);
    let throttle = test_throttle();
    let user = new_user(&*store, "device-race").await;
    let device = device_record(&user.email, NOW_MS);
    with_device(&*store, &user, &device).await;
    let results = released_together(CONCURRENCY, |_| {
        let (store, email, throttle) = (store.clone(), user.email.clone(), throttle.clone());
        let hash = device.token_hash.clone();
        async move {
            store
                .reserve_login_attempt(&email, Some(&hash), &throttle, NOW_MS)
                .await
                .expect("a concurrent reservation must not fail")
        }
    })
    .await;
    let admitted: Vec<_> = results
        .into_iter()
        .filter_map(|r| match r {
            Reservation::Admitted(attempt) => Some(attempt),
            _ => None,
        })
        .collect();
    assert_eq!(admitted.len(), throttle.free_attempts as usize);
    assert!(
        admitted
            .iter()
            .all(|a| a.scope == AttemptScope::Device(device.token_hash.clone()))
    );
    assert_eq!(
        user_of(&*store, &user.email).await.attempts,
        AttemptCounter::default(),
        "device attempts never reach the untrusted counter"
    );
}

/// A rehashing login and a password change decided on the same hash, released together: exactly
/// one applies, so a rehash can never put the old password back.
pub async fn rehash_and_password_change_have_one_winner<S: AuthStore>(store: S) {
    let store = Arc::new(store);
    for round in 0..8 {
        let user = new_user(&*store, "rehash-race").await;
        let (rehashed, changed) = (fake_hash("rehashed"), fake_hash("changed"));
        let login = completion(&user, &user.password_hash, Some(rehashed.clone()));
        let change = password_change(&user, &user.password_hash, &changed, NOW_MS + 1);
        let results = released_together(2, |i| {
            let (store, login, change) = (store.clone(), login.clone(), change.clone());
            async move {
                if i == 0 {
                    store.complete_login(&login).await.unwrap()
                } else {
                    store.change_password(&change).await.unwrap()
                }
            }
        })
        .await;
        assert_eq!(
            results.iter().filter(|applied| **applied).count(),
            1,
            "round {round}: exactly one of the two writes may apply, got {results:?}"
        );
        let stored = user_of(&*store, &user.email).await;
        let expected = if results[0] { &rehashed } else { &changed };
        assert_eq!(&stored.password_hash, expected, "round {round}");
    }
}

/// The watermark only moves forward; unknown emails are left alone.
pub async fn set_revoked_before_never_lowers<S: AuthStore>(store: S) {
    let user = new_user(&store, "watermark").await;
    store.set_revoked_before(&user.email, NOW_MS).await.unwrap();
    assert_eq!(user_of(&store, &user.email).await.revoked_before_ms, NOW_MS);
    store
        .set_revoked_before(&user.email, NOW_MS - 60_000)
        .await
        .unwrap();
    assert_eq!(
        user_of(&store, &user.email).await.revoked_before_ms,
        NOW_MS,
        "the watermark must never be lowered"
    );
    store
        .set_revoked_before(&user.email, NOW_MS + 1)
        .await
        .unwrap();
    assert_eq!(
        user_of(&store, &user.email).await.revoked_before_ms,
        NOW_MS + 1
    );
    assert_eq!(
        User {
            revoked_before_ms: 0,
            ..user_of(&store, &user.email).await
        },
        user,
        "nothing else may change"
    );

    let unknown = unique_email("unknown");
    store.set_revoked_before(&unknown, NOW_MS).await.unwrap();
    assert_eq!(
        store.get_user(&unknown).await.unwrap(),
        None,
        "no user may be created"
    );
}

/// A rotation marks the presented token used (by its child) and writes the child exactly as given.
pub async fn rotation_happy_path<S: AuthStore>(store: S) {
    let user = new_user(&store, "rotate").await;
    let first = first_record(&user.email, NOW_MS, Some(sha256_hex(b"laptop")));
    store.put_refresh_token(&first).await.unwrap();
    assert_eq!(get_token(&store, &first, NOW_MS).await, Some(first.clone()));

    let at = NOW_MS + 60_000;
    let rotation = rotation_of(&first, at);
    assert_eq!(
        store.rotate_refresh_token(&rotation).await.unwrap(),
        RotateOutcome::Rotated
    );
    let used = get_token(&store, &first, at)
        .await
        .expect("the used token is kept for reuse detection");
    assert_eq!(
        used,
        RefreshRecord {
            used_at_ms: Some(at),
            replaced_by: Some(rotation.next.token_id.clone()),
            ..first.clone()
        }
    );
    let child = get_token(&store, &rotation.next, at)
        .await
        .expect("the child is written");
    assert_eq!(child, rotation.next, "the child is stored exactly as given");
    assert_eq!(
        (
            child.expires_at_s,
            &child.family_id,
            &child.fingerprint_hash
        ),
        (
            first.expires_at_s,
            &first.family_id,
            &first.fingerprint_hash
        )
    );

    // The child rotates in turn: a chain.
    let second = rotation_of(&child, at + 1_000);
    assert_eq!(
        store.rotate_refresh_token(&second).await.unwrap(),
        RotateOutcome::Rotated
    );
    assert_eq!(
        get_token(&store, &second.next, at + 1_000).await,
        Some(second.next.clone())
    );
}

/// Absent, expired and wrong-hash tokens are all `NotFound`, and change nothing; the hash is
/// checked before anything else, so a used token with a wrong hash is `NotFound` too.
pub async fn rotation_not_found<S: AuthStore>(store: S) {
    let user = new_user(&store, "not-found").await;
    let record = first_record(&user.email, NOW_MS, None);
    store.put_refresh_token(&record).await.unwrap();

    let absent = rotation_of(
        &RefreshRecord {
            token_id: random_hex(16),
            ..record.clone()
        },
        NOW_MS,
    );
    assert_eq!(
        store.rotate_refresh_token(&absent).await.unwrap(),
        RotateOutcome::NotFound
    );
    let other_family = rotation_of(
        &RefreshRecord {
            family_id: random_hex(16),
            ..record.clone()
        },
        NOW_MS,
    );
    assert_eq!(
        store.rotate_refresh_token(&other_family).await.unwrap(),
        RotateOutcome::NotFound
    );
    let other_user = new_user(&store, "not-found-other").await;
    let other_email = rotation_of(
        &RefreshRecord {
            email: other_user.email.clone(),
            ..record.clone()
        },
        NOW_MS,
    );
    assert_eq!(
        store.rotate_refresh_token(&other_email).await.unwrap(),
        RotateOutcome::NotFound
    );

    let mut wrong_hash = rotation_of(&record, NOW_MS);
    wrong_hash.presented_hash = sha256_hex(b"someone else's token");
    assert_eq!(
        store.rotate_refresh_token(&wrong_hash).await.unwrap(),
        RotateOutcome::NotFound
    );
    let mut truncated = rotation_of(&record, NOW_MS);
    truncated.presented_hash.pop();
    assert_eq!(
        store.rotate_refresh_token(&truncated).await.unwrap(),
        RotateOutcome::NotFound
    );
    assert_unchanged(&store, &record, &wrong_hash).await;

    let expiry_ms = record.expires_at_s * 1000;
    let expired = rotation_of(&record, expiry_ms);
    assert_eq!(
        store.rotate_refresh_token(&expired).await.unwrap(),
        RotateOutcome::NotFound,
        "expires_at_s * 1000 <= now is expired"
    );
    assert_unchanged(&store, &record, &expired).await;
    let last_moment = rotation_of(&record, expiry_ms - 1);
    assert_eq!(
        store.rotate_refresh_token(&last_moment).await.unwrap(),
        RotateOutcome::Rotated
    );

    let mut replay_wrong_hash = rotation_of(&record, expiry_ms - 1);
    replay_wrong_hash.presented_hash = sha256_hex(b"guess");
    assert_eq!(
        store
            .rotate_refresh_token(&replay_wrong_hash)
            .await
            .unwrap(),
        RotateOutcome::NotFound,
        "without the right hash a used token must not be reported (its family would be revoked on a guess)"
    );
}

/// A second rotation of one token reports the first one's use and changes nothing.
pub async fn rotation_already_used<S: AuthStore>(store: S) {
    let user = new_user(&store, "already-used").await;
    let record = first_record(&user.email, NOW_MS, Some(sha256_hex(b"tablet")));
    store.put_refresh_token(&record).await.unwrap();
    let first = rotation_of(&record, NOW_MS + 1_000);
    assert_eq!(
        store.rotate_refresh_token(&first).await.unwrap(),
        RotateOutcome::Rotated
    );
    let used = get_token(&store, &record, NOW_MS).await.unwrap();

    let replay = rotation_of(&record, NOW_MS + 5_000);
    match store.rotate_refresh_token(&replay).await.unwrap() {
        RotateOutcome::AlreadyUsed(seen) => {
            assert_eq!(seen, used);
            assert_eq!(seen.used_at_ms, Some(NOW_MS + 1_000));
            assert_eq!(
                seen.replaced_by.as_deref(),
                Some(first.next.token_id.as_str())
            );
        }
        other => panic!("a replay must be AlreadyUsed, got {other:?}"),
    }
    assert_eq!(
        get_token(&store, &replay.next, NOW_MS).await,
        None,
        "a replay must not write a child"
    );
    assert_eq!(
        get_token(&store, &record, NOW_MS).await,
        Some(used.clone()),
        "a replay must not touch the used token"
    );

    // Reuse is reported before the device binding and the watermark are looked at.
    let mut other_device = rotation_of(&record, NOW_MS + 6_000);
    other_device.fingerprint_hash = Some(sha256_hex(b"phone"));
    assert!(matches!(
        store.rotate_refresh_token(&other_device).await.unwrap(),
        RotateOutcome::AlreadyUsed(_)
    ));
    store
        .set_revoked_before(&user.email, NOW_MS + 10_000)
        .await
        .unwrap();
    assert!(matches!(
        store
            .rotate_refresh_token(&rotation_of(&record, NOW_MS + 11_000))
            .await
            .unwrap(),
        RotateOutcome::AlreadyUsed(_)
    ));
}

/// The device binding must match exactly: bound vs unbound vs another device.
pub async fn rotation_fingerprint_mismatch<S: AuthStore>(store: S) {
    let user = new_user(&store, "fingerprint").await;
    let laptop = Some(sha256_hex(b"laptop"));
    let bound = first_record(&user.email, NOW_MS, laptop.clone());
    store.put_refresh_token(&bound).await.unwrap();
    for presented in [None, Some(sha256_hex(b"phone"))] {
        let mut rotation = rotation_of(&bound, NOW_MS);
        rotation.fingerprint_hash = presented.clone();
        assert_eq!(
            store.rotate_refresh_token(&rotation).await.unwrap(),
            RotateOutcome::FingerprintMismatch,
            "bound, presented {presented:?}"
        );
        assert_unchanged(&store, &bound, &rotation).await;
    }
    assert_eq!(
        store
            .rotate_refresh_token(&rotation_of(&bound, NOW_MS))
            .await
            .unwrap(),
        RotateOutcome::Rotated
    );

    let unbound = first_record(&user.email, NOW_MS, None);
    store.put_refresh_token(&unbound).await.unwrap();
    let mut with_device = rotation_of(&unbound, NOW_MS);
    with_device.fingerprint_hash = laptop;
    assert_eq!(
        store.rotate_refresh_token(&with_device).await.unwrap(),
        RotateOutcome::FingerprintMismatch
    );
    assert_unchanged(&store, &unbound, &with_device).await;
    assert_eq!(
        store
            .rotate_refresh_token(&rotation_of(&unbound, NOW_MS))
            .await
            .unwrap(),
        RotateOutcome::Rotated
    );

    // The binding is checked before the watermark.
    let late = first_record(&user.email, NOW_MS, Some(sha256_hex(b"desk")));
    store.put_refresh_token(&late).await.unwrap();
    store
        .set_revoked_before(&user.email, NOW_MS + 1)
        .await
        .unwrap();
    let mut wrong = rotation_of(&late, NOW_MS + 2);
    wrong.fingerprint_hash = None;
    assert_eq!(
        store.rotate_refresh_token(&wrong).await.unwrap(),
        RotateOutcome::FingerprintMismatch
    );
}

/// The user's watermark revokes tokens issued before it; a missing user revokes everything.
pub async fn rotation_revoked<S: AuthStore>(store: S) {
    let user = new_user(&store, "revoked").await;
    let old = first_record(&user.email, NOW_MS, None);
    let boundary = first_record(&user.email, NOW_MS + 5_000, None);
    store.put_refresh_token(&old).await.unwrap();
    store.put_refresh_token(&boundary).await.unwrap();
    store
        .set_revoked_before(&user.email, NOW_MS + 5_000)
        .await
        .unwrap();

    let refused = rotation_of(&old, NOW_MS + 6_000);
    assert_eq!(
        store.rotate_refresh_token(&refused).await.unwrap(),
        RotateOutcome::Revoked
    );
    assert_unchanged(&store, &old, &refused).await;
    assert_eq!(
        store
            .rotate_refresh_token(&rotation_of(&boundary, NOW_MS + 6_000))
            .await
            .unwrap(),
        RotateOutcome::Rotated,
        "a token issued at the watermark itself is not revoked"
    );

    let orphan = first_record(&unique_email("no-such-user"), NOW_MS, None);
    store.put_refresh_token(&orphan).await.unwrap();
    let rotation = rotation_of(&orphan, NOW_MS + 1);
    assert_eq!(
        store.rotate_refresh_token(&rotation).await.unwrap(),
        RotateOutcome::Revoked,
        "a token of a missing user"
    );
    assert_unchanged(&store, &orphan, &rotation).await;
}

/// A family is retired once the user's family number reaches the rotation's `retired_at_seq`, and
/// not a number before.
pub async fn rotation_refuses_retired_families<S: AuthStore>(store: S) {
    let user = new_user(&store, "retired").await;
    let record = first_record(&user.email, NOW_MS, None);
    store.put_refresh_token(&record).await.unwrap();
    let retired = Rotation {
        retired_at_seq: user.family_seq,
        ..rotation_of(&record, NOW_MS + 1)
    };
    assert_eq!(
        store.rotate_refresh_token(&retired).await.unwrap(),
        RotateOutcome::Revoked
    );
    assert_unchanged(&store, &record, &retired).await;
    let live = Rotation {
        retired_at_seq: user.family_seq + 1,
        ..rotation_of(&record, NOW_MS + 1)
    };
    assert_eq!(
        store.rotate_refresh_token(&live).await.unwrap(),
        RotateOutcome::Rotated,
        "retired only from the number itself"
    );
}

/// Expired records are absent on read, from the expiry instant on.
pub async fn expired_tokens_are_absent<S: AuthStore>(store: S) {
    let user = new_user(&store, "expired").await;
    let record = first_record(&user.email, NOW_MS, None);
    store.put_refresh_token(&record).await.unwrap();
    let expiry_ms = record.expires_at_s * 1000;
    assert_eq!(
        get_token(&store, &record, expiry_ms - 1).await,
        Some(record.clone())
    );
    assert_eq!(get_token(&store, &record, expiry_ms).await, None);
    assert_eq!(
        get_token(&store, &record, expiry_ms + 86_400_000).await,
        None
    );
    let unknown = RefreshRecord {
        token_id: random_hex(16),
        ..record.clone()
    };
    assert_eq!(get_token(&store, &unknown, NOW_MS).await, None);
}

async fn put_family<S: AuthStore>(
    store: &S,
    email: &str,
    family_id: &str,
    n: usize,
) -> Vec<RefreshRecord> {
    let mut records = Vec::with_capacity(n);
    for i in 0..n {
        let record = RefreshRecord {
            family_id: family_id.to_owned(),
            ..first_record(email, NOW_MS + i as i64, None)
        };
        store.put_refresh_token(&record).await.unwrap();
        records.push(record);
    }
    records
}

async fn live_count<S: AuthStore>(store: &S, records: &[RefreshRecord]) -> usize {
    let mut live = 0;
    for record in records {
        live += usize::from(get_token(store, record, NOW_MS).await.is_some());
    }
    live
}

/// Revoking a family deletes exactly its tokens (counted), nothing of other families or users.
pub async fn revoke_family_deletes_only_that_family<S: AuthStore>(store: S) {
    let (ada, bob) = (
        new_user(&store, "revoke-ada").await,
        new_user(&store, "revoke-bob").await,
    );
    let family = random_hex(16);
    let target = put_family(&store, &ada.email, &family, 3).await;
    let sibling = put_family(&store, &ada.email, &random_hex(16), 2).await;
    // Same family id under another user: the family is keyed by user too.
    let namesake = put_family(&store, &bob.email, &family, 2).await;

    assert_eq!(store.revoke_family(&ada.email, &family).await.unwrap(), 3);
    assert_eq!(live_count(&store, &target).await, 0);
    assert_eq!(
        live_count(&store, &sibling).await,
        2,
        "other families of the user stay"
    );
    assert_eq!(
        live_count(&store, &namesake).await,
        2,
        "other users' families stay"
    );
    assert_eq!(
        store.revoke_family(&ada.email, &family).await.unwrap(),
        0,
        "revoking again deletes nothing"
    );
    assert_eq!(user_of(&store, &ada.email).await, ada, "the user stays");
}

/// A family larger than one DynamoDB batch (25) is deleted whole.
pub async fn revoke_large_families<S: AuthStore>(store: S) {
    let user = new_user(&store, "large").await;
    let family = random_hex(16);
    let big = put_family(&store, &user.email, &family, 60).await;
    assert_eq!(store.revoke_family(&user.email, &family).await.unwrap(), 60);
    assert_eq!(live_count(&store, &big).await, 0);
}

/// Many concurrent rotations of one token: exactly one wins; every other one sees it used by the
/// winner's child; none fails.
pub async fn concurrent_rotations_have_one_winner<S: AuthStore>(store: S) {
    let store = Arc::new(store);
    let user = new_user(&*store, "rotation-race").await;
    let record = first_record(&user.email, NOW_MS, None);
    store.put_refresh_token(&record).await.unwrap();
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|i| {
            let (store, rotation) = (
                store.clone(),
                rotation_of(&record, NOW_MS + 1_000 + i as i64),
            );
            tokio::spawn(async move {
                let outcome = store.rotate_refresh_token(&rotation).await;
                (rotation, outcome)
            })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        let (rotation, outcome) = task.await.expect("task");
        let outcome =
            outcome.unwrap_or_else(|e| panic!("a concurrent rotation must not fail: {e}"));
        results.push((rotation, outcome));
    }
    let winners: Vec<&Rotation> = results
        .iter()
        .filter(|(_, o)| *o == RotateOutcome::Rotated)
        .map(|(r, _)| r)
        .collect();
    assert_eq!(winners.len(), 1, "exactly one rotation of a token may win");
    let winner = winners[0];
    for (rotation, outcome) in &results {
        if rotation.next.token_id == winner.next.token_id {
            continue;
        }
        match outcome {
            RotateOutcome::AlreadyUsed(seen) => {
                assert_eq!(seen.replaced_by.as_ref(), Some(&winner.next.token_id))
            }
            other => panic!("a losing rotation must be AlreadyUsed, got {other:?}"),
        }
        assert_eq!(
            get_token(&*store, &rotation.next, NOW_MS).await,
            None,
            "a loser's child must not exist"
        );
    }
    assert_eq!(
        get_token(&*store, &winner.next, NOW_MS).await.as_ref(),
        Some(&winner.next)
    );
}

// ---------------------------------------------------------------------------------------------
// The endpoints' rules on this store, through the service
// ---------------------------------------------------------------------------------------------

/// The service wired to a store with a manual clock and a fresh ES256 key.
pub struct ServiceHarness<S: AuthStore> {
    pub service: Arc<AuthService<S, StaticKeySource, Arc<ManualClock>>>,
    pub clock: Arc<ManualClock>,
    pub ctx: RequestContext,
}

/// The fixed audit key tests hash emails with.
pub fn test_audit_key() -> AuditKey {
    AuditKey::from_bytes(&[0x5a; AuditKey::LEN])
}

/// Default configuration (argon2id at its default cost, 10 s grace, 30-day families) for a test issuer.
pub fn test_config() -> AuthConfig {
    AuthConfig::with_issuer("https://keygate.test")
}

impl<S: AuthStore> ServiceHarness<S> {
    pub fn new(store: S) -> Self {
        Self::with_config(store, test_config())
    }

    pub fn with_config(store: S, config: AuthConfig) -> Self {
        let clock = Arc::new(ManualClock::new(NOW_MS));
        let key = generate_key(SigningAlgorithm::Es256, NOW_MS / 1000).expect("key generation");
        let keys =
            KeySet::from_documents(&KeySetDocument { keys: vec![key] }, None).expect("key set");
        let service = AuthService::new(
            config,
            store,
            StaticKeySource(Arc::new(keys)),
            clock.clone(),
            test_audit_key(),
        )
        .expect("service");
        let ctx = service.context("testkit".into(), "testkit".into());
        Self {
            service: Arc::new(service),
            clock,
            ctx,
        }
    }

    pub fn store(&self) -> &S {
        self.service.store()
    }

    pub fn advance_ms(&self, ms: i64) {
        self.clock.advance_ms(ms);
    }

    pub fn now_ms(&self) -> i64 {
        crate::clock::Clock::now_ms(&self.clock)
    }

    pub async fn register(&self, email: &str, password: &str) -> Registered {
        self.service
            .register(&self.ctx, email, password)
            .await
            .expect("registration")
    }

    pub async fn login(
        &self,
        email: &str,
        password: &str,
        device: Option<&str>,
    ) -> Result<TokenResponse, AuthError> {
        self.service
            .login(&self.ctx, email, password, device, None)
            .await
    }

    /// A login presenting a device token (and no device id).
    pub async fn login_with_device_token(
        &self,
        email: &str,
        password: &str,
        device_token: &str,
    ) -> Result<TokenResponse, AuthError> {
        self.service
            .login(&self.ctx, email, password, None, Some(device_token))
            .await
    }

    pub async fn refresh(
        &self,
        refresh_token: &str,
        device: Option<&str>,
    ) -> Result<TokenResponse, AuthError> {
        self.service.refresh(&self.ctx, refresh_token, device).await
    }

    /// Registers a fresh email with [`PASSWORD`].
    pub async fn registered(&self, tag: &str) -> (String, Registered) {
        let email = unique_email(tag);
        let registered = self.register(&email, PASSWORD).await;
        (email, registered)
    }

    /// How many of `refresh_token`'s family's tokens are left, by deleting them (ends the family).
    pub async fn drain_family(&self, refresh_token: &str) -> usize {
        let token = RefreshToken::parse(refresh_token).expect("a refresh token");
        self.store()
            .revoke_family(&token.email, &token.family_id_hex())
            .await
            .expect("revoke_family")
    }

    fn grace_ms(&self) -> i64 {
        self.service.config().refresh_reuse_grace_secs as i64 * 1000
    }
}

fn refused_refresh(result: Result<TokenResponse, AuthError>, why: &str) {
    match result {
        Err(AuthError::InvalidRefreshToken) => {}
        Err(other) => panic!("{why}: expected InvalidRefreshToken, got {other:?}"),
        Ok(_) => panic!("{why}: the refresh must be refused"),
    }
}

fn refused_login(result: Result<TokenResponse, AuthError>, why: &str) {
    match result {
        Err(AuthError::InvalidCredentials) => {}
        Err(other) => panic!("{why}: expected InvalidCredentials, got {other:?}"),
        Ok(_) => panic!("{why}: the login must be refused"),
    }
}

fn refused_bearer<T: std::fmt::Debug>(result: Result<T, AuthError>, why: &str) {
    match result {
        Err(AuthError::InvalidAccessToken) => {}
        other => panic!("{why}: expected InvalidAccessToken, got {other:?}"),
    }
}

/// Register, log in, use the access token, refresh, log out: the whole happy path; logout ends only
/// its own family.
pub async fn service_register_login_refresh_logout<S: AuthStore>(store: S) {
    let h = ServiceHarness::new(store);
    let (email, registered) = h.registered("flow").await;
    assert!(uuid::Uuid::try_parse(&registered.user_id).is_ok());

    let first = h.login(&email, PASSWORD, None).await.expect("login");
    assert_eq!(
        (first.token_type, first.expires_in),
        ("Bearer", h.service.config().access_token_ttl_secs)
    );
    let profile = h.service.me(&first.access_token).await.expect("me");
    assert_eq!(
        (profile.user_id.as_str(), profile.email.as_str()),
        (registered.user_id.as_str(), email.as_str())
    );
    let other_session = h
        .login(&email, PASSWORD, None)
        .await
        .expect("a second session");

    h.advance_ms(1_000);
    let second = h
        .refresh(&first.refresh_token, None)
        .await
        .expect("refresh");
    assert_ne!(
        second.refresh_token, first.refresh_token,
        "rotation issues a new refresh token"
    );
    assert_eq!(
        h.service
            .me(&second.access_token)
            .await
            .expect("me")
            .user_id,
        registered.user_id
    );

    h.advance_ms(1_000);
    h.service
        .logout(&h.ctx, &second.refresh_token)
        .await
        .expect("logout");
    refused_refresh(
        h.refresh(&second.refresh_token, None).await,
        "a logged-out token",
    );
    h.service
        .logout(&h.ctx, &second.refresh_token)
        .await
        .expect("logout again answers the same");
    h.refresh(&other_session.refresh_token, None)
        .await
        .expect("another session survives a logout");
}

/// Registering a taken email answers like a success (another id) and changes nothing.
pub async fn service_duplicate_registration<S: AuthStore>(store: S) {
    let h = ServiceHarness::new(store);
    let (email, original) = h.registered("duplicate").await;
    let duplicate = h.register(&email, NEW_PASSWORD).await;
    assert_ne!(
        duplicate.user_id, original.user_id,
        "the answer must not reveal the existing id"
    );
    assert!(uuid::Uuid::try_parse(&duplicate.user_id).is_ok());
    assert_eq!(
        h.store().get_user(&email).await.unwrap().unwrap().user_id,
        original.user_id
    );
    assert_eq!(
        h.store().get_user_by_id(&duplicate.user_id).await.unwrap(),
        None
    );
    h.login(&email, PASSWORD, None)
        .await
        .expect("the original password still works");
    refused_login(
        h.login(&email, NEW_PASSWORD, None).await,
        "the duplicate's password",
    );
}

/// A used token replayed after the grace interval revokes its family: the live child dies too.
pub async fn service_replay_after_grace_revokes_family<S: AuthStore>(store: S) {
    let h = ServiceHarness::new(store);
    let (email, _) = h.registered("replay").await;
    let first = h.login(&email, PASSWORD, None).await.unwrap();
    h.advance_ms(1_000);
    let second = h.refresh(&first.refresh_token, None).await.unwrap();
    h.advance_ms(h.grace_ms() + 1_000);
    refused_refresh(
        h.refresh(&first.refresh_token, None).await,
        "a replayed token",
    );
    refused_refresh(
        h.refresh(&second.refresh_token, None).await,
        "the child of a replayed token (family revoked)",
    );
    assert_eq!(
        h.drain_family(&second.refresh_token).await,
        0,
        "reuse must delete the whole family"
    );
}

/// Inside the grace interval, replaying the immediate parent of the live token is refused without
/// revoking: the winner of the race keeps working.
pub async fn service_parent_replay_inside_grace_keeps_family<S: AuthStore>(store: S) {
    let h = ServiceHarness::new(store);
    let (email, _) = h.registered("grace").await;
    let first = h.login(&email, PASSWORD, None).await.unwrap();
    h.advance_ms(1_000);
    let second = h.refresh(&first.refresh_token, None).await.unwrap();
    h.advance_ms(h.grace_ms() / 2);
    refused_refresh(
        h.refresh(&first.refresh_token, None).await,
        "the parent inside the grace interval",
    );
    h.refresh(&second.refresh_token, None)
        .await
        .expect("the live child must survive a race");
}

/// Inside the grace interval, replaying an older ancestor revokes the family at once.
pub async fn service_ancestor_replay_inside_grace_revokes<S: AuthStore>(store: S) {
    let h = ServiceHarness::new(store);
    let (email, _) = h.registered("ancestor").await;
    let first = h.login(&email, PASSWORD, None).await.unwrap();
    h.advance_ms(500);
    let second = h.refresh(&first.refresh_token, None).await.unwrap();
    h.advance_ms(500);
    let third = h.refresh(&second.refresh_token, None).await.unwrap();
    h.advance_ms(500);
    refused_refresh(h.refresh(&first.refresh_token, None).await, "a grandparent");
    refused_refresh(
        h.refresh(&third.refresh_token, None).await,
        "the live token after an ancestor's replay",
    );
}

/// Rotation does not extend a family's absolute lifetime.
pub async fn service_family_lifetime_is_not_extended<S: AuthStore>(store: S) {
    let h = ServiceHarness::new(store);
    let (email, _) = h.registered("lifetime").await;
    let start_s = h.now_ms().div_euclid(1000);
    let first = h.login(&email, PASSWORD, None).await.unwrap();
    let ttl_ms = h.service.config().refresh_family_ttl_secs as i64 * 1000;
    h.advance_ms(ttl_ms - 2_000);
    let late = h
        .refresh(&first.refresh_token, None)
        .await
        .expect("refresh just before the family expires");
    let token = RefreshToken::parse(&late.refresh_token).unwrap();
    assert_eq!(
        token.family_expires_at_s,
        start_s + ttl_ms / 1000,
        "the child keeps the family's expiry"
    );
    let record = h
        .store()
        .get_refresh_token(
            &email,
            &token.family_id_hex(),
            &token.token_id_hex(),
            h.now_ms(),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.expires_at_s, start_s + ttl_ms / 1000);
    h.advance_ms(3_000);
    refused_refresh(
        h.refresh(&late.refresh_token, None).await,
        "a token of an expired family",
    );
}

/// logout-all: every access and refresh token issued before it fails; later ones work.
pub async fn service_logout_all_watermark<S: AuthStore>(store: S) {
    let h = ServiceHarness::new(store);
    let (email, _) = h.registered("logout-all").await;
    let a = h.login(&email, PASSWORD, None).await.unwrap();
    let b = h.login(&email, PASSWORD, Some("phone")).await.unwrap();
    h.advance_ms(1_000);
    h.service
        .logout_all(&h.ctx, &a.access_token)
        .await
        .expect("logout-all");
    refused_bearer(
        h.service.me(&a.access_token).await,
        "an access token issued before logout-all",
    );
    refused_bearer(
        h.service.me(&b.access_token).await,
        "another session's access token",
    );
    refused_refresh(
        h.refresh(&a.refresh_token, None).await,
        "a refresh token issued before logout-all",
    );
    refused_refresh(
        h.refresh(&b.refresh_token, Some("phone")).await,
        "another session's refresh token",
    );
    assert!(
        h.store()
            .get_user(&email)
            .await
            .unwrap()
            .unwrap()
            .revoked_before_ms
            >= h.now_ms()
    );

    h.advance_ms(1_000);
    let c = h
        .login(&email, PASSWORD, None)
        .await
        .expect("login after logout-all");
    h.service
        .me(&c.access_token)
        .await
        .expect("a later access token works");
    let d = h
        .refresh(&c.refresh_token, None)
        .await
        .expect("a later refresh token works");
    h.service
        .me(&d.access_token)
        .await
        .expect("and so does its rotation");
}

/// A password change checks the current password, revokes every session, and returns working tokens.
pub async fn service_password_change_revokes_sessions<S: AuthStore>(store: S) {
    let h = ServiceHarness::new(store);
    let (email, _) = h.registered("password-change").await;
    let a = h.login(&email, PASSWORD, None).await.unwrap();
    let b = h.login(&email, PASSWORD, None).await.unwrap();
    h.advance_ms(1_000);
    refused_login(
        h.service
            .change_password(&h.ctx, &a.access_token, WRONG_PASSWORD, NEW_PASSWORD)
            .await,
        "a wrong current password",
    );
    h.service
        .me(&a.access_token)
        .await
        .expect("a refused change revokes nothing");

    let fresh = h
        .service
        .change_password(&h.ctx, &a.access_token, PASSWORD, NEW_PASSWORD)
        .await
        .expect("password change");
    refused_bearer(
        h.service.me(&a.access_token).await,
        "the access token used for the change",
    );
    refused_bearer(
        h.service.me(&b.access_token).await,
        "another session's access token",
    );
    refused_refresh(
        h.refresh(&a.refresh_token, None).await,
        "an old session's refresh token",
    );
    refused_refresh(
        h.refresh(&b.refresh_token, None).await,
        "another old session's refresh token",
    );
    h.service
        .me(&fresh.access_token)
        .await
        .expect("the fresh access token works");
    h.refresh(&fresh.refresh_token, None)
        .await
        .expect("the fresh refresh token works");
    refused_login(h.login(&email, PASSWORD, None).await, "the old password");
    h.login(&email, NEW_PASSWORD, None)
        .await
        .expect("the new password");
}

/// A device-bound family presented with another (or no) device id is revoked; an unbound family
/// presented with a device id too.
pub async fn service_device_binding<S: AuthStore>(store: S) {
    let h = ServiceHarness::new(store);
    let (email, _) = h.registered("device").await;
    let bound = h.login(&email, PASSWORD, Some("laptop-1")).await.unwrap();
    let next = h
        .refresh(&bound.refresh_token, Some("laptop-1"))
        .await
        .expect("the bound device refreshes");
    refused_refresh(
        h.refresh(&next.refresh_token, Some("phone-2")).await,
        "another device",
    );
    refused_refresh(
        h.refresh(&next.refresh_token, Some("laptop-1")).await,
        "the right device after a mismatch (family revoked)",
    );

    let bound = h.login(&email, PASSWORD, Some("laptop-1")).await.unwrap();
    refused_refresh(
        h.refresh(&bound.refresh_token, None).await,
        "a bound family without a device id",
    );
    refused_refresh(
        h.refresh(&bound.refresh_token, Some("laptop-1")).await,
        "after the mismatch",
    );

    let unbound = h.login(&email, PASSWORD, None).await.unwrap();
    refused_refresh(
        h.refresh(&unbound.refresh_token, Some("laptop-1")).await,
        "an unbound family with a device id",
    );
    refused_refresh(
        h.refresh(&unbound.refresh_token, None).await,
        "after the mismatch",
    );
}

async fn fail_logins<S: AuthStore>(h: &ServiceHarness<S>, email: &str, n: u32) {
    for _ in 0..n {
        refused_login(
            h.login(email, WRONG_PASSWORD, None).await,
            "a wrong password",
        );
    }
}

/// Failures within the free attempts do not throttle, and a success resets the counter.
pub async fn service_free_attempts_do_not_throttle<S: AuthStore>(store: S) {
    let h = ServiceHarness::new(store);
    let (email, _) = h.registered("free-attempts").await;
    let free = h.service.config().throttle.free_attempts;
    fail_logins(&h, &email, free - 1).await;
    let user = h.store().get_user(&email).await.unwrap().unwrap();
    assert_eq!(
        (user.attempts.attempts, user.attempts.locked_until_ms),
        (free - 1, 0),
        "every failure is counted, none opens a window"
    );
    h.login(&email, PASSWORD, None)
        .await
        .expect("the right password within the free attempts");
    let user = h.store().get_user(&email).await.unwrap().unwrap();
    assert_eq!(
        user.attempts,
        AttemptCounter::default(),
        "a success resets the counter"
    );
}

/// The last free failure opens a window in which even the right password is refused, unjudged and
/// without extending it (a password change too); once it has passed, one attempt is judged, and its
/// failure opens a window twice as long.
pub async fn service_throttle_window<S: AuthStore>(store: S) {
    let h = ServiceHarness::new(store);
    let (email, _) = h.registered("throttle").await;
    let throttle = h.service.config().throttle.clone();
    let session = h.login(&email, PASSWORD, None).await.unwrap();
    fail_logins(&h, &email, throttle.free_attempts).await;
    let opened = h.now_ms();
    let user = h.store().get_user(&email).await.unwrap().unwrap();
    assert_eq!(
        (user.attempts.attempts, user.attempts.locked_until_ms),
        (throttle.free_attempts, opened + 1_000),
        "the last free failure opens a 1 s window"
    );

    refused_login(
        h.login(&email, PASSWORD, None).await,
        "the right password inside the window",
    );
    refused_login(
        h.service
            .change_password(&h.ctx, &session.access_token, PASSWORD, NEW_PASSWORD)
            .await,
        "a password change inside the window",
    );
    h.advance_ms(500);
    fail_logins(&h, &email, 2).await;
    assert_eq!(
        h.store().get_user(&email).await.unwrap().unwrap(),
        user,
        "attempts inside the window neither count nor extend it"
    );

    h.advance_ms(500);
    fail_logins(&h, &email, 1).await;
    let user = h.store().get_user(&email).await.unwrap().unwrap();
    assert_eq!(
        (user.attempts.attempts, user.attempts.locked_until_ms),
        (throttle.free_attempts + 1, h.now_ms() + 2_000),
        "the next failure opens a window twice as long"
    );
    h.advance_ms(2_000);
    h.login(&email, PASSWORD, None)
        .await
        .expect("the right password once the window has passed");
    let user = h.store().get_user(&email).await.unwrap().unwrap();
    assert_eq!(user.attempts, AttemptCounter::default());
    h.login(&email, NEW_PASSWORD, None)
        .await
        .expect_err("the refused change changed nothing");
}

/// After a quiet period with no window open, old failures no longer count: a stranger's trickle of
/// guesses cannot keep an account locked for good.
pub async fn service_failures_decay<S: AuthStore>(store: S) {
    let h = ServiceHarness::new(store);
    let (email, _) = h.registered("decay").await;
    let throttle = h.service.config().throttle.clone();
    for _ in 0..3 {
        fail_logins(&h, &email, throttle.free_attempts).await;
        h.advance_ms(throttle.decay_secs as i64 * 1000);
    }
    fail_logins(&h, &email, throttle.free_attempts - 1).await;
    h.login(&email, PASSWORD, None)
        .await
        .expect("decayed failures no longer count");
}

/// A stranger's burst on the untrusted counter locks out untrusted clients only: the owner's known
/// device logs in during it, a forged device token counts as untrusted, and the device's success
/// does not reopen guessing for the stranger.
pub async fn service_known_device_logs_in_during_a_burst<S: AuthStore>(store: S) {
    let h = Arc::new(ServiceHarness::new(store));
    let (email, _) = h.registered("device-burst").await;
    let device_token = h
        .login(&email, PASSWORD, None)
        .await
        .unwrap()
        .device_token
        .expect("a login returns a device token");
    let results = released_together(CONCURRENCY, |_| {
        let (h, email) = (h.clone(), email.clone());
        async move { h.login(&email, WRONG_PASSWORD, None).await }
    })
    .await;
    assert!(results.iter().all(Result::is_err));
    let locked = h.store().get_user(&email).await.unwrap().unwrap().attempts;
    assert!(
        locked.locked_until_ms > h.now_ms(),
        "the burst opened a window"
    );

    refused_login(
        h.login(&email, PASSWORD, None).await,
        "untrusted, inside the window",
    );
    let forged = crate::device::issue(&email, h.now_ms(), 3600)
        .unwrap()
        .token;
    refused_login(
        h.login_with_device_token(&email, PASSWORD, &forged).await,
        "a forged device token is untrusted",
    );
    refused_login(
        h.login_with_device_token(&email, PASSWORD, "kgdt_not-a-token")
            .await,
        "a malformed device token is untrusted",
    );
    let known = h
        .login_with_device_token(&email, PASSWORD, &device_token)
        .await
        .expect("the owner's known device logs in during the burst");
    assert_eq!(
        known.device_token.as_deref(),
        Some(device_token.as_str()),
        "it keeps its token"
    );
    h.refresh(&known.refresh_token, None)
        .await
        .expect("a real session");
    assert_eq!(
        h.store()
            .get_user(&email)
            .await
            .unwrap()
            .unwrap()
            .attempts
            .locked_until_ms,
        locked.locked_until_ms,
        "the device's success leaves the stranger's window open"
    );
    refused_login(
        h.login(&email, PASSWORD, None).await,
        "still untrusted, inside the window",
    );
}

/// Failures with a device token count on that device: a stolen device token is capped by its own
/// counter, and the untrusted counter is not touched.
pub async fn service_device_failures_count_on_the_device<S: AuthStore>(store: S) {
    let h = ServiceHarness::new(store);
    let (email, _) = h.registered("device-fail").await;
    let free = h.service.config().throttle.free_attempts;
    let device_token = h
        .login(&email, PASSWORD, None)
        .await
        .unwrap()
        .device_token
        .unwrap();
    for _ in 0..free {
        refused_login(
            h.login_with_device_token(&email, WRONG_PASSWORD, &device_token)
                .await,
            "a wrong password on the device",
        );
    }
    refused_login(
        h.login_with_device_token(&email, PASSWORD, &device_token)
            .await,
        "the device's own window is open",
    );
    assert_eq!(
        h.store().get_user(&email).await.unwrap().unwrap().attempts,
        AttemptCounter::default(),
        "device failures never reach the untrusted counter"
    );
    let other = h
        .login(&email, PASSWORD, None)
        .await
        .expect("an untrusted login is not held by the device's window");
    assert_ne!(
        other.device_token,
        Some(device_token.clone()),
        "a new device"
    );
    h.advance_ms(1_000);
    h.login_with_device_token(&email, PASSWORD, &device_token)
        .await
        .expect("once its window has passed");
}

/// Logout-all and a password change revoke every device token; the change hands out a new one.
pub async fn service_session_ends_revoke_device_tokens<S: AuthStore>(store: S) {
    let h = ServiceHarness::new(store);
    let (email, _) = h.registered("device-revoke").await;
    let free = h.service.config().throttle.free_attempts;
    let first = h.login(&email, PASSWORD, None).await.unwrap();
    let old_device = first.device_token.clone().unwrap();
    h.advance_ms(1);
    h.service
        .logout_all(&h.ctx, &first.access_token)
        .await
        .unwrap();
    h.advance_ms(1);
    fail_logins(&h, &email, free).await;
    refused_login(
        h.login_with_device_token(&email, PASSWORD, &old_device)
            .await,
        "a device token from before logout-all counts as untrusted",
    );

    h.advance_ms(1_000);
    let second = h.login(&email, PASSWORD, None).await.unwrap();
    let device = second.device_token.clone().unwrap();
    h.advance_ms(1);
    let changed = h
        .service
        .change_password(&h.ctx, &second.access_token, PASSWORD, NEW_PASSWORD)
        .await
        .unwrap();
    let new_device = changed
        .device_token
        .expect("a password change returns a device token");
    h.advance_ms(1);
    fail_logins(&h, &email, free).await;
    refused_login(
        h.login_with_device_token(&email, NEW_PASSWORD, &device)
            .await,
        "a device token from before the change counts as untrusted",
    );
    h.login_with_device_token(&email, NEW_PASSWORD, &new_device)
        .await
        .expect("the change's own device token is trusted");
}

/// Wrong passwords released together: at most the free attempts are judged (counted from the
/// `login_failed` / `login_throttled` audit events), the rest are refused unjudged, and the window
/// they open holds against the right password.
pub async fn service_concurrent_failures_judge_only_the_free_attempts<S: AuthStore>(store: S) {
    let capture = audit_capture();
    let h = Arc::new(ServiceHarness::new(store));
    let (email, registered) = h.registered("burst").await;
    let free = h.service.config().throttle.free_attempts as usize;
    let burst = 30;
    let results = released_together(burst, |_| {
        let (h, email) = (h.clone(), email.clone());
        async move { h.login(&email, WRONG_PASSWORD, None).await }
    })
    .await;
    for result in results {
        refused_login(result, "a wrong password in a burst");
    }
    let events = capture.events_of(&registered.user_id);
    let count = |name: &str| events.iter().filter(|e| *e == name).count();
    assert_eq!(
        (count("login_failed"), count("login_throttled")),
        (free, burst - free),
        "exactly the free attempts may be judged, whatever the concurrency"
    );
    refused_login(
        h.login(&email, PASSWORD, None).await,
        "the right password after the burst",
    );
}

/// A password change raced by logins with the old password: every session that any of them got is
/// revoked by the change (no access token or refresh family survives it).
pub async fn service_password_change_races_old_password_logins<S: AuthStore>(store: S) {
    let h = Arc::new(ServiceHarness::new(store));
    let mut raced_sessions = 0;
    for round in 0..8 {
        let (email, _) = h.registered("change-race").await;
        let owner = h.login(&email, PASSWORD, None).await.unwrap();
        // Three logins and the change: within the free attempts, so none is refused by the throttle.
        let results = released_together(4, |i| {
            let (h, email, bearer) = (h.clone(), email.clone(), owner.access_token.clone());
            async move {
                if i == 0 {
                    h.service
                        .change_password(&h.ctx, &bearer, PASSWORD, NEW_PASSWORD)
                        .await
                } else {
                    h.login(&email, PASSWORD, None).await
                }
            }
        })
        .await;
        let mut results = results.into_iter();
        let fresh = results
            .next()
            .unwrap()
            .unwrap_or_else(|e| panic!("round {round}: the change must succeed, got {e:?}"));
        for session in results.flatten() {
            raced_sessions += 1;
            refused_bearer(
                h.service.me(&session.access_token).await,
                "an old-password session after the change",
            );
            refused_refresh(
                h.refresh(&session.refresh_token, None).await,
                "an old-password family after the change",
            );
        }
        h.service
            .me(&fresh.access_token)
            .await
            .expect("the change's own session works");
        refused_login(
            h.login(&email, PASSWORD, None).await,
            "the old password after the change",
        );
    }
    assert!(
        raced_sessions > 0,
        "no login won its race in 8 rounds: the test did not exercise the race"
    );
}

/// A password change raced by a login that rehashes the old password (the stored hash was made at
/// a lower cost): the change always wins in the end, so afterwards the new password works and the
/// old one does not.
pub async fn service_rehash_cannot_undo_a_password_change<S: AuthStore>(store: S) {
    let h = Arc::new(ServiceHarness::new(store));
    let weaker = PasswordHasher::new(HashingParams {
        memory_kib: 8 * 1024,
        iterations: 1,
        parallelism: 1,
    })
    .unwrap();
    for round in 0..8 {
        let email = unique_email("rehash-race");
        let user = User {
            password_hash: weaker.hash(PASSWORD).unwrap(),
            roles: vec![],
            ..sample_user(&email)
        };
        assert!(h.store().create_user(&user).await.unwrap());
        let owner = h.login(&email, PASSWORD, None).await.unwrap();
        // The owner's login rehashed; put the weaker hash back so the racing login rehashes too.
        let rehashed = h.store().get_user(&email).await.unwrap().unwrap();
        let legacy = weaker.hash(PASSWORD).unwrap();
        assert!(
            h.store()
                .change_password(&PasswordChange {
                    expected_hash: rehashed.password_hash.clone(),
                    new_hash: legacy,
                    revoked_before_ms: 0,
                    family_seq: rehashed.family_seq + 1,
                    first_token: first_record(&email, NOW_MS, None),
                    new_device: device_record(&email, NOW_MS),
                })
                .await
                .unwrap()
        );
        let results = released_together(2, |i| {
            let (h, email, bearer) = (h.clone(), email.clone(), owner.access_token.clone());
            async move {
                if i == 0 {
                    h.service
                        .change_password(&h.ctx, &bearer, PASSWORD, NEW_PASSWORD)
                        .await
                } else {
                    h.login(&email, PASSWORD, None).await
                }
            }
        })
        .await;
        assert!(
            results[0].is_ok(),
            "round {round}: the change must succeed, got {:?}",
            results[0].as_ref().err()
        );
        h.login(&email, NEW_PASSWORD, None)
            .await
            .unwrap_or_else(|e| panic!("round {round}: the new password must work: {e:?}"));
        refused_login(
            h.login(&email, PASSWORD, None).await,
            "the old password after the change",
        );
    }
}

/// Failed logins for an unknown email create nothing, and the email registers normally later.
pub async fn service_unknown_email_creates_nothing<S: AuthStore>(store: S) {
    let h = ServiceHarness::new(store);
    let email = unique_email("unknown");
    for _ in 0..3 {
        refused_login(h.login(&email, PASSWORD, None).await, "an unknown email");
    }
    assert_eq!(
        h.store().get_user(&email).await.unwrap(),
        None,
        "failures must not create a user"
    );
    h.register(&email, PASSWORD).await;
    let user = h.store().get_user(&email).await.unwrap().unwrap();
    assert_eq!(user.attempts, AttemptCounter::default());
    h.login(&email, PASSWORD, None)
        .await
        .expect("login after registering");
}

/// A login with a hash made at a lower cost replaces it with one at the configured cost, once.
pub async fn service_login_rehashes_weaker_hash<S: AuthStore>(store: S) {
    let h = ServiceHarness::new(store);
    let weaker = PasswordHasher::new(HashingParams {
        memory_kib: 8 * 1024,
        iterations: 1,
        parallelism: 1,
    })
    .unwrap();
    let legacy = weaker.hash(PASSWORD).unwrap();
    let email = unique_email("rehash");
    let user = User {
        password_hash: legacy.clone(),
        roles: vec![],
        ..sample_user(&email)
    };
    assert!(h.store().create_user(&user).await.unwrap());

    h.login(&email, PASSWORD, None)
        .await
        .expect("login with the legacy hash");
    let params = h.service.config().hashing;
    let rehashed = h
        .store()
        .get_user(&email)
        .await
        .unwrap()
        .unwrap()
        .password_hash;
    assert_ne!(rehashed, legacy, "the legacy hash must be replaced");
    let expected = format!(
        "$argon2id$v=19$m={},t={},p={}$",
        params.memory_kib, params.iterations, params.parallelism
    );
    assert!(
        rehashed.starts_with(&expected),
        "the new hash uses the configured cost"
    );

    h.login(&email, PASSWORD, None)
        .await
        .expect("login with the new hash");
    assert_eq!(
        h.store()
            .get_user(&email)
            .await
            .unwrap()
            .unwrap()
            .password_hash,
        rehashed,
        "a current hash is kept"
    );
    refused_login(
        h.login(&email, WRONG_PASSWORD, None).await,
        "a wrong password after the rehash",
    );
}

/// Many concurrent refreshes of one token: exactly one succeeds, the others are refused without
/// revoking, so the winner's token keeps working.
pub async fn service_concurrent_refreshes_have_one_winner<S: AuthStore>(store: S) {
    let h = ServiceHarness::new(store);
    let (email, _) = h.registered("refresh-race").await;
    let first = h.login(&email, PASSWORD, None).await.unwrap();
    h.advance_ms(1_000);
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (service, ctx, token) = (
                h.service.clone(),
                h.ctx.clone(),
                first.refresh_token.clone(),
            );
            tokio::spawn(async move { service.refresh(&ctx, &token, None).await })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.expect("task") {
            Ok(response) => winners.push(response),
            Err(AuthError::InvalidRefreshToken) => {}
            Err(other) => panic!("a concurrent refresh must succeed or be refused, got {other:?}"),
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one concurrent refresh may succeed"
    );
    h.refresh(&winners[0].refresh_token, None)
        .await
        .expect("the winner's token survives the race");
}

/// At most `max_refresh_families` of a user's families refresh: each login retires the family opened
/// that many logins before it (children keep their family's number), and a password change's
/// session counts like a login's.
pub async fn service_caps_live_families<S: AuthStore>(store: S) {
    let cap = 3;
    let config = AuthConfig {
        max_refresh_families: cap,
        ..test_config()
    };
    let h = ServiceHarness::with_config(store, config);
    let (email, _) = h.registered("family-cap").await;
    let mut sessions = Vec::new();
    for _ in 0..cap + 2 {
        sessions.push(h.login(&email, PASSWORD, None).await.unwrap());
    }
    let mut live = Vec::new();
    for (i, session) in sessions.iter().enumerate() {
        let refreshed = h.refresh(&session.refresh_token, None).await;
        if i < 2 {
            refused_refresh(refreshed, "a family retired by later logins");
        } else {
            live.push(refreshed.expect("one of the newest families refreshes"));
        }
    }
    // One more login retires the oldest live family, whose token is now a child.
    let newest = h.login(&email, PASSWORD, None).await.unwrap();
    refused_refresh(
        h.refresh(&live[0].refresh_token, None).await,
        "the child of the family the last login retired",
    );
    for session in &live[1..] {
        h.refresh(&session.refresh_token, None)
            .await
            .expect("the families inside the cap still refresh");
    }
    // A password change ends every session and opens one family, numbered after the last login.
    let changed = h
        .service
        .change_password(&h.ctx, &newest.access_token, PASSWORD, NEW_PASSWORD)
        .await
        .expect("password change");
    let numbers = |token: &str| RefreshToken::parse(token).unwrap().family_seq;
    assert_eq!(
        numbers(&changed.refresh_token),
        numbers(&newest.refresh_token) + 1
    );
    for _ in 0..cap - 1 {
        h.login(&email, NEW_PASSWORD, None).await.unwrap();
    }
    let changed = h
        .refresh(&changed.refresh_token, None)
        .await
        .expect("the change's family is inside the cap");
    h.login(&email, NEW_PASSWORD, None).await.unwrap();
    refused_refresh(
        h.refresh(&changed.refresh_token, None).await,
        "the change's family, retired by the logins after it",
    );
}

/// Logins of one user released together all succeed, each opening a family with its own number:
/// the number is taken by the login's conditional write, and a login that lost it takes the next.
pub async fn service_concurrent_logins_take_distinct_family_numbers<S: AuthStore>(store: S) {
    let h = Arc::new(ServiceHarness::new(store));
    let (email, _) = h.registered("login-race").await;
    // Within the free attempts, so the throttle refuses none of them.
    let n = h.service.config().throttle.free_attempts as usize;
    for round in 0..4 {
        let results = released_together(n, |_| {
            let (h, email) = (h.clone(), email.clone());
            async move { h.login(&email, PASSWORD, None).await }
        })
        .await;
        let mut numbers = Vec::new();
        for result in results {
            let session = result.unwrap_or_else(|e| panic!("round {round}: login failed: {e:?}"));
            numbers.push(
                RefreshToken::parse(&session.refresh_token)
                    .unwrap()
                    .family_seq,
            );
            h.refresh(&session.refresh_token, None)
                .await
                .expect("every concurrent login's family refreshes");
        }
        numbers.sort_unstable();
        numbers.dedup();
        assert_eq!(numbers.len(), n, "round {round}: one number per family");
    }
}

/// One `#[test]` per behaviour of [`crate::testkit`], each on a store from `$factory` (an expression
/// of a future yielding the store, evaluated once per test). Put it in a module per store setup.
#[macro_export]
macro_rules! store_behaviour_tests {
    ($factory:expr $(,)?) => {
        $crate::__store_behaviour_tests!(
            $factory;
            create_user_is_put_if_absent,
            create_user_races_have_one_winner,
            users_are_found_by_email_and_by_id,
            reservations_follow_the_throttle,
            concurrent_reservations_admit_only_the_free_attempts,
            settle_attempt_is_compare_and_set,
            complete_login_is_conditional,
            change_password_is_conditional,
            device_counters_are_separate,
            password_change_replaces_devices,
            concurrent_device_reservations_admit_only_the_free_attempts,
            rehash_and_password_change_have_one_winner,
            set_revoked_before_never_lowers,
            rotation_happy_path,
            rotation_not_found,
            rotation_already_used,
            rotation_fingerprint_mismatch,
            rotation_revoked,
            rotation_refuses_retired_families,
            expired_tokens_are_absent,
            revoke_family_deletes_only_that_family,
            revoke_large_families,
            concurrent_rotations_have_one_winner,
            service_register_login_refresh_logout,
            service_duplicate_registration,
            service_replay_after_grace_revokes_family,
            service_parent_replay_inside_grace_keeps_family,
            service_ancestor_replay_inside_grace_revokes,
            service_family_lifetime_is_not_extended,
            service_logout_all_watermark,
            service_password_change_revokes_sessions,
            service_device_binding,
            service_free_attempts_do_not_throttle,
            service_throttle_window,
            service_failures_decay,
            service_known_device_logs_in_during_a_burst,
            service_device_failures_count_on_the_device,
            service_session_ends_revoke_device_tokens,
            service_concurrent_failures_judge_only_the_free_attempts,
            service_password_change_races_old_password_logins,
            service_rehash_cannot_undo_a_password_change,
            service_unknown_email_creates_nothing,
            service_login_rehashes_weaker_hash,
            service_concurrent_refreshes_have_one_winner,
            service_caps_live_families,
            service_concurrent_logins_take_distinct_family_numbers,
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __store_behaviour_tests {
    ($factory:expr; $($name:ident),+ $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::testkit::block_on(async {
                    let store = ($factory).await;
                    $crate::testkit::$name(store).await;
                });
            }
        )+
    };
}

#[cfg(test)]
mod tests {
    // The suite against the reference model: proves the suite itself is consistent with the port.
    crate::store_behaviour_tests!(async { super::MemoryStore::default() });
}
