//! What only the SQLite store has: a file that outlives the process, its pragmas and schema
//! version, its sweeping, and several connections (processes) on one file.

use std::sync::Arc;

use keygate_core::store::{RefreshTokenStore, RotateOutcome, UserStore};
use keygate_core::{AuthError, store::StoreError};
use keygate_store_sqlite::{APPLICATION_ID, FILE_NAME, SCHEMA_VERSION, SqliteStore};
use keygate_testkit::doubles::ManualClock;
use keygate_testkit::fixtures::{
    self, NOW_MS, PASSWORD, first_record, rotation_of, sample_user, unique_email,
};
use keygate_testkit::service_rules::ServiceHarness;

fn raw(path: &std::path::Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_and_tokens_survive_close_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let user = sample_user(&unique_email("reopen"));
    let first = first_record(&user.email, NOW_MS, Some("ab".repeat(32)));
    let rotation = rotation_of(&first, NOW_MS + 1_000);
    {
        let store = SqliteStore::open(dir.path()).unwrap();
        assert!(store.create_user(&user).await.unwrap());
        store.put_refresh_token(&first).await.unwrap();
        assert_eq!(
            store.rotate_refresh_token(&rotation).await.unwrap(),
            RotateOutcome::Rotated
        );
        store
            .set_revoked_before(&user.email, NOW_MS - 1)
            .await
            .unwrap();
    }
    let store = SqliteStore::open(dir.path()).unwrap();
    assert_eq!(store.path(), Some(dir.path().join(FILE_NAME).as_path()));
    let reread = store.get_user(&user.email).await.unwrap().unwrap();
    assert_eq!(reread.revoked_before_ms, NOW_MS - 1);
    assert_eq!(reread.user_id, user.user_id);
    let used = store
        .get_refresh_token(&first.email, &first.family_id, &first.token_id, NOW_MS)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        used.used_at_ms,
        Some(NOW_MS + 1_000),
        "the use is remembered across a restart"
    );
    assert!(matches!(
        store
            .rotate_refresh_token(&rotation_of(&first, NOW_MS + 2_000))
            .await
            .unwrap(),
        RotateOutcome::AlreadyUsed(_)
    ));
    let child = rotation.next.clone();
    assert_eq!(
        store
            .rotate_refresh_token(&rotation_of(&child, NOW_MS + 3_000))
            .await
            .unwrap(),
        RotateOutcome::Rotated
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_service_keeps_accounts_and_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let email = unique_email("restart");
    let tokens = {
        let h = ServiceHarness::new(SqliteStore::open(dir.path()).unwrap());
        h.register(&email, PASSWORD).await;
        h.login(&email, PASSWORD, None).await.unwrap()
    };
    // A new process: new store handle, new signing key, same data directory.
    let h = ServiceHarness::new(SqliteStore::open(dir.path()).unwrap());
    h.advance_ms(1_000);
    let next = h
        .refresh(&tokens.refresh_token, None)
        .await
        .expect("the session survives");
    h.service.me(&next.access_token).await.unwrap();
    h.login(&email, PASSWORD, None)
        .await
        .expect("the account survives");
    h.advance_ms(60_000);
    assert!(matches!(
        h.refresh(&tokens.refresh_token, None).await,
        Err(AuthError::InvalidRefreshToken)
    ));
}

#[test]
fn open_resolves_directories_and_files() {
    let dir = tempfile::tempdir().unwrap();
    let existing = SqliteStore::open(dir.path()).unwrap();
    assert_eq!(existing.path(), Some(dir.path().join(FILE_NAME).as_path()));

    let fresh_dir = dir.path().join("nested/.keygate");
    let store = SqliteStore::open(&fresh_dir).unwrap();
    assert!(
        fresh_dir.is_dir(),
        "a path without an extension is a data directory"
    );
    assert_eq!(store.path(), Some(fresh_dir.join(FILE_NAME).as_path()));

    let file = dir.path().join("other/auth.sqlite3");
    let store = SqliteStore::open(&file).unwrap();
    assert!(file.is_file());
    assert_eq!(store.path(), Some(file.as_path()));

    let explicit = SqliteStore::open_in_dir(&dir.path().join("explicit.d")).unwrap();
    assert_eq!(
        explicit.path(),
        Some(dir.path().join("explicit.d").join(FILE_NAME).as_path())
    );
}

#[test]
fn the_file_is_wal_synchronous_full_versioned_and_private() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let path = store.path().unwrap().to_path_buf();
    let conn = raw(&path);
    let pragma_i64 = |name: &str| {
        conn.pragma_query_value(None, name, |row| row.get::<_, i64>(0))
            .unwrap()
    };
    let journal: String = conn
        .pragma_query_value(None, "journal_mode", |row| row.get(0))
        .unwrap();
    assert_eq!(journal, "wal");
    assert_eq!(pragma_i64("user_version"), SCHEMA_VERSION as i64);
    assert_eq!(pragma_i64("application_id"), i64::from(APPLICATION_ID));
    drop(conn);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the database holds password hashes");
    }
    drop(store);
    SqliteStore::open(dir.path()).expect("reopening an up-to-date schema");
}

#[test]
fn a_newer_schema_is_refused_not_downgraded() {
    let dir = tempfile::tempdir().unwrap();
    let path = SqliteStore::open(dir.path())
        .unwrap()
        .path()
        .unwrap()
        .to_path_buf();
    raw(&path).pragma_update(None, "user_version", 99).unwrap();
    match SqliteStore::open(dir.path()) {
        Err(StoreError::Unavailable(message)) => assert!(message.contains("newer"), "{message}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(
        raw(&path)
            .pragma_query_value(None, "user_version", |row| row.get::<_, i64>(0))
            .unwrap(),
        99
    );
}

#[test]
fn foreign_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let other_app = dir.path().join("other.sqlite3");
    raw(&other_app)
        .execute_batch("CREATE TABLE notes (body TEXT)")
        .unwrap();
    assert!(matches!(
        SqliteStore::open(&other_app),
        Err(StoreError::Corrupt(_))
    ));

    let not_sqlite = dir.path().join("garbage.sqlite3");
    std::fs::write(&not_sqlite, vec![0x5a; 8192]).unwrap();
    assert!(matches!(
        SqliteStore::open(&not_sqlite),
        Err(StoreError::Corrupt(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_deletes_only_expired_tokens() {
    let store = SqliteStore::open_in_memory().unwrap();
    let user = sample_user(&unique_email("sweep"));
    assert!(store.create_user(&user).await.unwrap());
    let early = first_record(&user.email, NOW_MS, None);
    let late = first_record(&user.email, NOW_MS + 10_000, None);
    store.put_refresh_token(&early).await.unwrap();
    store.put_refresh_token(&late).await.unwrap();
    let early_expiry = early.expires_at_s * 1000;
    assert_eq!(store.sweep_expired(early_expiry - 1).await.unwrap(), 0);
    assert_eq!(
        store.sweep_expired(early_expiry).await.unwrap(),
        1,
        "expiry is inclusive"
    );
    assert!(
        store
            .get_refresh_token(&late.email, &late.family_id, &late.token_id, early_expiry)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store.get_user(&user.email).await.unwrap().is_some(),
        "users never expire"
    );
    assert_eq!(
        store.sweep_expired(late.expires_at_s * 1000).await.unwrap(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweeper_task_sweeps_with_its_clock() {
    let store = SqliteStore::open_in_memory().unwrap();
    let user = sample_user(&unique_email("sweeper"));
    assert!(store.create_user(&user).await.unwrap());
    let record = first_record(&user.email, NOW_MS, None);
    store.put_refresh_token(&record).await.unwrap();
    let clock = Arc::new(ManualClock::new(record.expires_at_s * 1000));
    let task = store.spawn_sweeper(clock, std::time::Duration::from_millis(10));
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    task.abort();
    assert_eq!(
        store.sweep_expired(i64::MAX).await.unwrap(),
        0,
        "the sweeper already deleted it"
    );
}

/// Two stores on one file behave like two processes: their writers meet in SQLite's locks, which
/// `BEGIN IMMEDIATE` and the busy timeout turn into waiting, never into errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_connections_on_one_file_race_without_busy_errors() {
    let dir = tempfile::tempdir().unwrap();
    let a = SqliteStore::open(dir.path()).unwrap();
    let b = SqliteStore::open(dir.path()).unwrap();
    let user = sample_user(&unique_email("two-processes"));
    assert!(a.create_user(&user).await.unwrap());
    let record = first_record(&user.email, NOW_MS, None);
    a.put_refresh_token(&record).await.unwrap();
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            let rotation = rotation_of(&record, NOW_MS + 1_000);
            tokio::spawn(async move { store.rotate_refresh_token(&rotation).await })
        })
        .collect();
    let mut rotated = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(RotateOutcome::Rotated) => rotated += 1,
            Ok(RotateOutcome::AlreadyUsed(_)) => {}
            other => panic!("a racing rotation must win or see the winner, got {other:?}"),
        }
    }
    assert_eq!(rotated, 1);
}

/// Fifty concurrent refreshes of one token through the service on a file-backed store (what the
/// local server's end-to-end test does over HTTP).
#[test]
fn fifty_concurrent_refreshes_on_a_file() {
    fixtures::block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let h = ServiceHarness::new(SqliteStore::open(dir.path()).unwrap());
        let (email, _) = h.registered("fifty").await;
        let first = h.login(&email, PASSWORD, None).await.unwrap();
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let (service, ctx, token) = (
                    h.service.clone(),
                    h.ctx.clone(),
                    first.refresh_token.clone(),
                );
                tokio::spawn(async move { service.refresh(&ctx, &token, None).await })
            })
            .collect();
        let mut won = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(_) => won += 1,
                Err(AuthError::InvalidRefreshToken) => {}
                Err(other) => panic!("no refresh may fail otherwise: {other:?}"),
            }
        }
        assert_eq!(won, 1);
    });
}
