//! Criterion benchmarks of the in-process work behind each endpoint: password hashing
//! and verification at the default (OWASP) argon2id parameters, access-token signing and verification
//! for each asymmetric algorithm, refresh-token parsing and hashing, and whole `AuthService` endpoints
//! on the embedded SQLite store (in memory, and refresh rotation on a file with WAL + synchronous=FULL).
//!
//! Run: `cargo bench -p keygate-bench --bench endpoints` (a few minutes; sample sizes are kept small).
//! CI only compiles it (clippy --all-targets).

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use keygate_core::SigningAlgorithm;
use keygate_core::audit::AuditKey;
use keygate_core::keys::{KeySet, KeySetDocument, generate_key};
use keygate_core::password::PasswordHasher;
use keygate_core::refresh::RefreshToken;
use keygate_core::{AuthConfig, AuthService, Clock, SystemClock, tokens};
use keygate_store_sqlite::SqliteStore;
use keygate_testkit::doubles::StaticKeySource;

const ISSUER: &str = "https://auth.example.com";
const PASSWORD: &str = "Bench-correct-horse-4417!";
const PASSWORD_B: &str = "Bench-staple-battery-9021?";

fn config() -> AuthConfig {
    AuthConfig::with_issuer(ISSUER)
}

fn key_set(alg: SigningAlgorithm) -> Arc<KeySet> {
    let document = KeySetDocument {
        keys: vec![generate_key(alg, 0).expect("key generation")],
    };
    Arc::new(KeySet::from_documents(&document, None).expect("key set"))
}

fn passwords(c: &mut Criterion) {
    let hasher = PasswordHasher::new(config().hashing).expect("default parameters");
    let phc = hasher.hash(PASSWORD).expect("hash");
    let mut group = c.benchmark_group("password (argon2id, default parameters)");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_millis(500));
    group.bench_function("hash", |b| {
        b.iter(|| hasher.hash(std::hint::black_box(PASSWORD)).expect("hash"))
    });
    group.bench_function("verify", |b| {
        b.iter(|| hasher.verify(std::hint::black_box(PASSWORD), &phc))
    });
    group.bench_function("verify_dummy (unknown user)", |b| {
        b.iter(|| hasher.verify_dummy(std::hint::black_box(PASSWORD)))
    });
    group.finish();
}

fn access_tokens(c: &mut Criterion) {
    let config = config();
    let mut group = c.benchmark_group("access token");
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(300));
    for alg in [
        SigningAlgorithm::Es256,
        SigningAlgorithm::EdDsa,
        SigningAlgorithm::Rs256,
    ] {
        let keys = key_set(alg);
        let now = SystemClock.now_ms();
        group.bench_with_input(BenchmarkId::new("sign", alg.name()), &alg, |b, _| {
            b.iter(|| {
                tokens::issue(
                    &keys,
                    &config,
                    "0196a3c2-7d5e-7000-8000-000000000000",
                    now / 1000,
                    keygate_core::tokens::SessionFlags::VERIFIED,
                    now,
                )
                .expect("sign")
            })
        });
        let token = tokens::issue(
            &keys,
            &config,
            "0196a3c2-7d5e-7000-8000-000000000000",
            now / 1000,
            keygate_core::tokens::SessionFlags::VERIFIED,
            now,
        )
        .expect("sign")
        .token;
        group.bench_with_input(BenchmarkId::new("verify", alg.name()), &alg, |b, _| {
            b.iter(|| {
                tokens::verify(&keys, &config, std::hint::black_box(&token), now).expect("verify")
            })
        });
    }
    group.finish();
}

fn refresh_tokens(c: &mut Criterion) {
    let token = RefreshToken::new_family(
        "someone@example.com",
        [7; 16],
        1,
        keygate_core::tokens::SessionFlags::VERIFIED,
        SystemClock.now_ms(),
        86_400,
    )
    .expect("token")
    .encode();
    let mut group = c.benchmark_group("refresh token");
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(300));
    group.bench_function("parse + SHA-256", |b| {
        b.iter(|| {
            RefreshToken::parse(std::hint::black_box(&token))
                .expect("parse")
                .hash()
        })
    });
    group.finish();
}

type Service = AuthService<SqliteStore, StaticKeySource, SystemClock>;

/// A service on `store` with one registered user; returns it, the user's first token response's
/// refresh token and access token.
fn service(runtime: &tokio::runtime::Runtime, store: SqliteStore) -> (Service, String, String) {
    let keys = StaticKeySource(key_set(SigningAlgorithm::Es256));
    let audit_key = AuditKey::from_bytes(&[0x5a; AuditKey::LEN]);
    let service = AuthService::new(config(), store, keys, SystemClock, audit_key).expect("service");
    let ctx = service.context("bench".into(), "bench".into());
    let tokens = runtime.block_on(async {
        service
            .register(&ctx, "bench@example.com", PASSWORD)
            .await
            .expect("register");
        service
            .login(&ctx, "bench@example.com", PASSWORD, None, None)
            .await
            .expect("login")
    });
    (service, tokens.refresh_token, tokens.access_token)
}

fn endpoints(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (service, refresh, access) =
        service(&runtime, SqliteStore::open_in_memory().expect("store"));
    let ctx = service.context("bench".into(), "bench".into());
    let mut group = c.benchmark_group("AuthService on SQLite (in memory)");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(300));

    // Each rotation consumes the token it presents: the chain carries the child forward.
    let chain = RefCell::new(refresh);
    group.bench_function("refresh (rotation)", |b| {
        b.iter(|| {
            let presented = chain.borrow().clone();
            let next = runtime
                .block_on(service.refresh(&ctx, &presented, None))
                .expect("refresh");
            *chain.borrow_mut() = next.refresh_token;
        })
    });
    group.bench_function("me", |b| {
        b.iter(|| runtime.block_on(service.me(&access)).expect("me"))
    });
    group.bench_function("jwks", |b| {
        b.iter(|| runtime.block_on(service.jwks()).expect("jwks"))
    });
    group.bench_function(
        "logout (unknown token: parse, lookup, nothing revoked)",
        |b| {
            let stale = RefreshToken::new_family(
                "bench@example.com",
                [1; 16],
                1,
                keygate_core::tokens::SessionFlags::VERIFIED,
                SystemClock.now_ms(),
                86_400,
            )
            .expect("token")
            .encode();
            b.iter(|| {
                runtime
                    .block_on(service.logout(&ctx, &stale))
                    .expect("logout")
            })
        },
    );
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3));
    group.bench_function("login (argon2id verify + writes)", |b| {
        b.iter(|| {
            runtime
                .block_on(service.login(&ctx, "bench@example.com", PASSWORD, None, None))
                .expect("login")
        })
    });
    let counter = RefCell::new(0u64);
    group.bench_function("register (argon2id hash + insert)", |b| {
        b.iter(|| {
            *counter.borrow_mut() += 1;
            let email = format!("new-{}@example.com", counter.borrow());
            runtime
                .block_on(service.register(&ctx, &email, PASSWORD))
                .expect("register")
        })
    });
    // Password changes alternate between two passwords, carrying the fresh access token forward.
    let bearer = RefCell::new((
        runtime
            .block_on(service.login(&ctx, "bench@example.com", PASSWORD, None, None))
            .expect("login")
            .access_token,
        true,
    ));
    group.bench_function(
        "change password (verify + hash + revoke + new family)",
        |b| {
            b.iter(|| {
                let (token, current_is_a) = bearer.borrow().clone();
                let (current, new) = if current_is_a {
                    (PASSWORD, PASSWORD_B)
                } else {
                    (PASSWORD_B, PASSWORD)
                };
                // A token issued in the same millisecond as the watermark would be revoked by it.
                std::thread::sleep(Duration::from_millis(1));
                let response = runtime
                    .block_on(service.change_password(&ctx, &token, current, new))
                    .expect("change password");
                *bearer.borrow_mut() = (response.access_token, !current_is_a);
            })
        },
    );
    group.finish();

    let dir = std::env::temp_dir().join(format!("keygate-bench-{}", std::process::id()));
    let (service, refresh, _) = service_on_file(&runtime, &dir);
    let mut group = c.benchmark_group("AuthService on SQLite (file, WAL, synchronous=FULL)");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(300));
    let chain = RefCell::new(refresh);
    group.bench_function("refresh (rotation)", |b| {
        b.iter(|| {
            let presented = chain.borrow().clone();
            let next = runtime
                .block_on(service.refresh(&ctx, &presented, None))
                .expect("refresh");
            *chain.borrow_mut() = next.refresh_token;
        })
    });
    group.finish();
    drop(service);
    let _ = std::fs::remove_dir_all(&dir);
}

fn service_on_file(
    runtime: &tokio::runtime::Runtime,
    dir: &std::path::Path,
) -> (Service, String, String) {
    service(runtime, SqliteStore::open_in_dir(dir).expect("store"))
}

criterion_group!(benches, passwords, access_tokens, refresh_tokens, endpoints);
criterion_main!(benches);
