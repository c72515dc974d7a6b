//! Fixtures: the fixed instant, passwords and configuration the behaviours share, fresh emails and
//! records, and the runtime and barrier the races use.

use std::future::Future;
use std::sync::Arc;

use keygate_core::AuthConfig;
use keygate_core::audit::AuditKey;
use keygate_core::crypto::{hex, sha256_hex};
use keygate_core::email_code::{CodeSecrets, MailAction};
use keygate_core::mail::{Mail, MailSealer};
use keygate_core::mfa::FactorKeyRing;
use keygate_core::store::{
    AttemptCounter, CodePurpose, DeviceRecord, MailRequest, MfaState, OutboxMail, RefreshRecord,
    Rotation, User,
};
use keygate_core::throttle::LoginThrottle;

/// The instant the store-level behaviours start at (2026-01-01T00:00:00Z), milliseconds.
pub const NOW_MS: i64 = 1_767_225_600_000;
/// How long the store-level fixtures' email codes work (a reset's default lifetime), milliseconds.
pub const CODE_TTL_MS: i64 = 15 * 60 * 1000;
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

/// A fresh random user id.
pub fn random_uuid() -> String {
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
        email_verified: true,
        mfa: Some(sample_mfa_state()),
    }
}

/// A pending TOTP state with every field set (its values are opaque to stores).
pub fn sample_mfa_state() -> MfaState {
    MfaState {
        factor_id: random_uuid(),
        key_id: "k1".to_owned(),
        sealed_secret: random_hex(24),
        pending_until_ms: Some(NOW_MS + 600_000),
        last_step: 56_000_000,
        recovery_hashes: vec![random_hex(32), random_hex(32)],
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

/// A sealed notice to `to` as the outbox holds it (the store never opens it).
pub fn outbox_mail(to: &str, created_at_ms: i64, expires_at_s: i64) -> OutboxMail {
    MailSealer::new(&test_audit_key())
        .seal(
            &Mail::password_changed(to, "https://app.keygate.test"),
            created_at_ms,
            expires_at_s,
        )
        .expect("sealing a mail")
}

/// A request for a fresh link and code of `purpose` to `email` at `now_ms`, as the service makes
/// one: verification mails only to unverified accounts, the configured send limits, and a mail that
/// lives as long as its code.
pub fn code_request(email: &str, purpose: CodePurpose, now_ms: i64) -> MailRequest {
    let secrets = CodeSecrets::new(&test_audit_key(), purpose, email).expect("code secrets");
    let code_expires_at_ms = now_ms + CODE_TTL_MS;
    MailRequest {
        email: email.to_owned(),
        purpose,
        action: MailAction::Issue {
            token_hash: secrets.token_hash.clone(),
            code_mac: secrets.code_mac.clone(),
            code_expires_at_ms,
        },
        only_unverified: purpose == CodePurpose::Verify,
        limits: test_config().email_limits,
        now_ms,
        mail: outbox_mail(email, now_ms, code_expires_at_ms.div_euclid(1000) + 1),
    }
}

/// A notice of `purpose` to `email` at `now_ms` (the register-attempt mail's request): it keeps the
/// live code and counts on the purpose's limits.
pub fn notice_request(email: &str, purpose: CodePurpose, now_ms: i64) -> MailRequest {
    MailRequest {
        action: MailAction::Notice,
        only_unverified: false,
        ..code_request(email, purpose, now_ms)
    }
}

/// The throttle the store-level behaviours reserve with (the defaults).
pub fn test_throttle() -> LoginThrottle {
    test_config().throttle
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

/// The fixed audit key tests hash emails with.
pub fn test_audit_key() -> AuditKey {
    AuditKey::from_bytes(&[0x5a; AuditKey::LEN])
}

/// Default configuration (argon2id at its default cost, 10 s grace, 30-day families) for a test issuer,
/// except that logins do not require a verified email: the behaviours of sessions register and log
/// in directly. The email behaviours use [`verified_email_config`].
pub fn test_config() -> AuthConfig {
    AuthConfig {
        require_verified_email: false,
        ..verified_email_config()
    }
}

/// The defaults as they are, verified emails required: what a deployment runs.
pub fn verified_email_config() -> AuthConfig {
    AuthConfig::with_issuer("https://keygate.test")
}

/// The TOTP data-key ring of the service harness: `k1` current, `k0` retired (what it sealed must
/// still open).
pub fn test_factor_keys() -> FactorKeyRing {
    FactorKeyRing::parse(TEST_FACTOR_KEYS).expect("the test ring parses")
}

pub const TEST_FACTOR_KEYS: &str = r#"{"current": "k1", "k0": "0000000000000000000000000000000000000000000000000000000000000000", "k1": "1111111111111111111111111111111111111111111111111111111111111111"}"#;

/// RFC 4648 base32 (no padding) back to bytes: what an authenticator app does with the secret (the
/// smoke tool's decoder, its independent authenticator).
pub fn base32_decode(text: &str) -> Vec<u8> {
    keygate_smoke::totp::base32_decode(text).expect("a base32 secret")
}
