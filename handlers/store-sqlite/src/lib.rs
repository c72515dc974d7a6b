//! keygate's embedded store: the core's storage port ([`UserStore`], [`RefreshTokenStore`],
//! [`AccessTokenDenyList`], [`EmailCodeStore`], [`OutboxStore`]) on SQLite.
//!
//! The relational form of the DynamoDB single table (`handlers/aws/src/dynamo.rs`): `users` keyed by normalised email (with a unique
//! `user_id`, the `byUserId` index's job) and `refresh_tokens` keyed by `(email, family_id, token_id)`
//! (the `REFRESH#<family>#<token>` sort key), so a family is one range of the primary key.
//!
//! Guarantees, the same the DynamoDB design gives:
//! - users are put-if-absent, and a taken email costs the same committed write as a new one;
//! - a rotation is one `BEGIN IMMEDIATE` transaction that checks, in the port's order, and then marks
//!   the presented token used and writes its child, or changes nothing;
//! - every decided change of a user (a reserved login attempt, a login's token with its counter reset
//!   and rehash, a password change with its new session) is one IMMEDIATE transaction that reads the
//!   user, applies the core's rule (`keygate_core::store::User`'s methods) and writes, or changes
//!   nothing; settling a window and raising the watermark are conditional single-statement updates;
//! - device tokens live in `devices`, keyed by `(email, token_hash)`, each with its own attempt
//!   counter; a reservation reads the user and the device in its transaction;
//! - email verification and reset records live in `email_codes`, keyed by `(email, purpose)`; a mail
//!   request, a code attempt and a consumption (with its user change and notice) are each one
//!   IMMEDIATE transaction that applies the core's rule (`keygate_core::email_code`), and sealed mails
//!   wait in `outbox` until the local server's worker delivers them;
//! - expired refresh tokens (`expires_at_s * 1000 <= now_ms`) are absent on every read, and deleted
//!   by [`SqliteStore::sweep_expired`] (which the local server calls periodically, or through
//!   [`SqliteStore::spawn_sweeper`]) and opportunistically after every [`SWEEP_EVERY_ROTATIONS`]th
//!   rotation, with that rotation's clock.
//!
//! Concurrency: one connection behind a mutex, used from `tokio::task::spawn_blocking`, so SQLite's
//! blocking calls never stall the async runtime's workers and writers in this process are serialised
//! before they reach SQLite (no `SQLITE_BUSY` between them; each statement takes microseconds, far
//! below what a local server needs). Another process on the same file waits up to [`BUSY_TIMEOUT`];
//! transactions that write start with `BEGIN IMMEDIATE`, so they never fail on a lock upgrade.
//!
//! Durability: WAL with `synchronous = FULL`. NORMAL would be enough against a crash of the process,
//! but on power loss it may roll back the last commits, and a rolled-back rotation would make a used
//! refresh token usable again. FULL makes every acknowledged write durable, as DynamoDB's are; it
//! costs one fsync per write transaction, nothing at a local server's rates.
//!
//! Errors: SQLite failures map to [`StoreError::Unavailable`], unreadable rows to
//! [`StoreError::Corrupt`]; messages name the operation and SQLite's error code, never a value
//! (so never a token hash or a password hash).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keygate_core::Clock;
use keygate_core::store::{
    AccessTokenDenyList, AttemptCounter, AttemptScope, CodeConsumption, CodePurpose, DeviceGrant,
    DeviceRecord, EmailCode, EmailCodeStore, LoginCompletion, MailOutcome, MailRequest,
    MfaChallenge, MfaState, MfaStore, MfaSwap, OutboxMail, OutboxStore, PasswordChange,
    PasswordReset, RefreshRecord, RefreshTokenStore, Reservation, RotateOutcome, Rotation,
    StoreError, StoreResult, User, UserStore, expired,
};
use keygate_core::throttle::LoginThrottle;
use rusqlite::types::Type;
use rusqlite::{Connection, ErrorCode, OptionalExtension, Row, TransactionBehavior, params};

/// The database file's name inside a data directory.
pub const FILE_NAME: &str = "keygate.sqlite3";
/// How long a statement waits for another process's lock on the same file.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// A successful rotation deletes expired tokens after this many rotations (with the rotation's clock).
pub const SWEEP_EVERY_ROTATIONS: u64 = 256;
/// `PRAGMA application_id` of keygate databases ("KGT1"), so a foreign SQLite file is refused.
pub const APPLICATION_ID: i32 = 0x4b47_5431;

/// Schema migrations; `PRAGMA user_version` is the number applied. Append, never edit.
const MIGRATIONS: &[&str] = &[
    // 1: the two tables of the single-table design.
    "CREATE TABLE users (
        email             TEXT    NOT NULL PRIMARY KEY,
        user_id           TEXT    NOT NULL UNIQUE,
        password_hash     TEXT    NOT NULL,
        created_at_ms     INTEGER NOT NULL,
        revoked_before_ms INTEGER NOT NULL DEFAULT 0,
        failed_logins     INTEGER NOT NULL DEFAULT 0 CHECK (failed_logins >= 0),
        locked_until_ms   INTEGER NOT NULL DEFAULT 0,
        roles             TEXT    NOT NULL DEFAULT '[]'
    ) STRICT, WITHOUT ROWID;
    CREATE TABLE refresh_tokens (
        email            TEXT    NOT NULL,
        family_id        TEXT    NOT NULL,
        token_id         TEXT    NOT NULL,
        token_hash       TEXT    NOT NULL,
        issued_at_ms     INTEGER NOT NULL,
        expires_at_s     INTEGER NOT NULL,
        used_at_ms       INTEGER,
        replaced_by      TEXT,
        fingerprint_hash TEXT,
        PRIMARY KEY (email, family_id, token_id)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX refresh_tokens_by_expiry ON refresh_tokens (expires_at_s);",
    // 2: the throttle reserves attempts (failed_logins now counts reservations) and decays.
    "ALTER TABLE users ADD COLUMN last_attempt_ms INTEGER NOT NULL DEFAULT 0;",
    // 3: device tokens, each with its own attempt counter (the `DEVICE#<token_hash>` sort key).
    "CREATE TABLE devices (
        email           TEXT    NOT NULL,
        token_hash      TEXT    NOT NULL,
        created_at_ms   INTEGER NOT NULL,
        expires_at_s    INTEGER NOT NULL,
        failed_logins   INTEGER NOT NULL DEFAULT 0 CHECK (failed_logins >= 0),
        locked_until_ms INTEGER NOT NULL DEFAULT 0,
        last_attempt_ms INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (email, token_hash)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX devices_by_expiry ON devices (expires_at_s);",
    // 4: the number of the user's latest refresh-token family (the live-family cap).
    "ALTER TABLE users ADD COLUMN family_seq INTEGER NOT NULL DEFAULT 0 CHECK (family_seq >= 0);",
    // 5: access tokens revoked before their expiry (RFC 7009), by jti, until they would expire.
    "CREATE TABLE denied_access_tokens (
        jti          TEXT    NOT NULL PRIMARY KEY,
        expires_at_s INTEGER NOT NULL
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX denied_access_tokens_by_expiry ON denied_access_tokens (expires_at_s);",
    // 6: email verification and password reset: the user's proven email, one record per (email,
    // purpose) (the `EMAILCODE#<purpose>` sort key), the sealed mail outbox, and the counter every mail
    // request commits (see `request_mail`). Existing accounts read as unverified: nobody proved them.
    "ALTER TABLE users ADD COLUMN email_verified INTEGER NOT NULL DEFAULT 0 CHECK (email_verified IN (0, 1));
    CREATE TABLE email_codes (
        email              TEXT    NOT NULL,
        purpose            TEXT    NOT NULL,
        token_hash         TEXT    NOT NULL,
        code_mac           TEXT    NOT NULL,
        code_expires_at_ms INTEGER NOT NULL,
        attempts           INTEGER NOT NULL CHECK (attempts >= 0),
        consumed           INTEGER NOT NULL CHECK (consumed IN (0, 1)),
        last_sent_ms       INTEGER NOT NULL,
        window_start_ms    INTEGER NOT NULL,
        window_sends       INTEGER NOT NULL CHECK (window_sends >= 0),
        expires_at_s       INTEGER NOT NULL,
        PRIMARY KEY (email, purpose)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX email_codes_by_expiry ON email_codes (expires_at_s);
    CREATE TABLE outbox (
        id            TEXT    NOT NULL PRIMARY KEY,
        sealed        TEXT    NOT NULL,
        created_at_ms INTEGER NOT NULL,
        expires_at_s  INTEGER NOT NULL
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX outbox_by_age ON outbox (created_at_ms, id);
    CREATE TABLE mail_requests (
        id       INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
        requests INTEGER NOT NULL
    ) STRICT;
    INSERT INTO mail_requests (id, requests) VALUES (1, 0);",
    // 7: second factors: the user's TOTP state as one JSON value (`MfaState`: the sealed secret, the
    // last accepted step, recovery-code hashes), compared whole by every conditional change, and the
    // login challenges (the `MFA#CHAL#<token_hash>` sort key).
    "ALTER TABLE users ADD COLUMN mfa TEXT;
    CREATE TABLE mfa_challenges (
        email            TEXT    NOT NULL,
        token_hash       TEXT    NOT NULL,
        fingerprint_hash TEXT,
        device_hash      TEXT,
        attempts         INTEGER NOT NULL CHECK (attempts >= 0),
        expires_at_s     INTEGER NOT NULL,
        PRIMARY KEY (email, token_hash)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX mfa_challenges_by_expiry ON mfa_challenges (expires_at_s);",
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: usize = MIGRATIONS.len();

const USER_COLUMNS: &str = "user_id, email, password_hash, created_at_ms, revoked_before_ms, failed_logins, locked_until_ms, roles, last_attempt_ms, family_seq, email_verified, mfa";
const CHALLENGE_COLUMNS: &str =
    "email, token_hash, fingerprint_hash, device_hash, attempts, expires_at_s";
const CODE_COLUMNS: &str = "email, purpose, token_hash, code_mac, code_expires_at_ms, attempts, consumed, last_sent_ms, window_start_ms, window_sends, expires_at_s";
const OUTBOX_COLUMNS: &str = "id, sealed, created_at_ms, expires_at_s";
const DEVICE_COLUMNS: &str = "email, token_hash, created_at_ms, expires_at_s, failed_logins, locked_until_ms, last_attempt_ms";
const TOKEN_COLUMNS: &str = "email, family_id, token_id, token_hash, issued_at_ms, expires_at_s, used_at_ms, replaced_by, fingerprint_hash";

/// The embedded store. Cheap to clone: clones share one connection.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    conn: Mutex<Connection>,
    path: Option<PathBuf>,
    rotations: AtomicU64,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database under a data directory or at a file path:
    /// - an existing directory, or a path that does not exist and has no extension (`.keygate`,
    ///   `data/keygate`): the directory, created if needed, holding [`FILE_NAME`];
    /// - an existing file, or a path with an extension (`keygate.sqlite3`): the database file.
    ///
    /// [`open_in_dir`](Self::open_in_dir) and [`open_file`](Self::open_file) say which explicitly.
    /// The schema is created or migrated to [`SCHEMA_VERSION`].
    pub fn open(path: &Path) -> StoreResult<Self> {
        if path.is_dir() || (!path.exists() && path.extension().is_none()) {
            Self::open_in_dir(path)
        } else {
            Self::open_file(path)
        }
    }

    /// Opens `<dir>/keygate.sqlite3`, creating `dir` if needed.
    pub fn open_in_dir(dir: &Path) -> StoreResult<Self> {
        Self::open_file(&dir.join(FILE_NAME))
    }

    /// Opens the database file `file`, creating it (readable by its owner only) and its parent
    /// directories if needed.
    pub fn open_file(file: &Path) -> StoreResult<Self> {
        if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                StoreError::Unavailable(format!("cannot create {}: {e}", parent.display()))
            })?;
        }
        create_private(file)?;
        let conn = Connection::open(file).map_err(|e| sql_error("open", e))?;
        Self::init(conn, Some(file.to_path_buf()))
    }

    /// A private in-memory database, gone when the last clone is dropped (tests).
    pub fn open_in_memory() -> StoreResult<Self> {
        let conn = Connection::open_in_memory().map_err(|e| sql_error("open", e))?;
        Self::init(conn, None)
    }

    fn init(mut conn: Connection, path: Option<PathBuf>) -> StoreResult<Self> {
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| sql_error("busy_timeout", e))?;
        // In-memory databases answer "memory"; files switch to WAL (persistent in the file).
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get::<_, String>(0))
            .map_err(|e| sql_error("journal_mode", e))?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(|e| sql_error("synchronous", e))?;
        migrate(&mut conn)?;
        Ok(Self {
            inner: Arc::new(Inner {
                conn: Mutex::new(conn),
                path,
                rotations: AtomicU64::new(0),
            }),
        })
    }

    /// The database file (None for an in-memory store).
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    /// Deletes every refresh token, device token, deny-list entry, email code and outbox mail that is
    /// expired at `now_ms`; returns how many.
    /// Reads already treat them as absent; this only reclaims space.
    pub async fn sweep_expired(&self, now_ms: i64) -> StoreResult<usize> {
        self.run("sweep_expired", move |conn| sweep(conn, now_ms))
            .await
    }

    /// Runs [`sweep_expired`](Self::sweep_expired) every `every` with `clock`'s time until the returned
    /// task is aborted (or the runtime stops). Failures are logged and retried at the next tick.
    pub fn spawn_sweeper<C: Clock>(
        &self,
        clock: C,
        every: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let store = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                match store.sweep_expired(clock.now_ms()).await {
                    Ok(0) => {}
                    Ok(deleted) => tracing::debug!(deleted, "swept expired refresh tokens"),
                    Err(error) => tracing::warn!(%error, "sweeping expired refresh tokens failed"),
                }
            }
        })
    }

    /// Runs `f` on the connection in the blocking pool, mapping SQLite errors for `op`.
    async fn run<T, F>(&self, op: &'static str, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            // A panic elsewhere while holding the lock leaves a usable connection: any open
            // transaction was rolled back when its guard dropped during unwinding.
            let mut conn = inner
                .conn
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&mut conn).map_err(|e| sql_error(op, e))
        })
        .await
        .map_err(|_| StoreError::Unavailable(format!("{op}: the database task did not complete")))?
    }
}

/// Creates the database file readable by its owner only (it holds password hashes); SQLite gives the
/// WAL and shared-memory files the same permissions.
fn create_private(file: &Path) -> StoreResult<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(file)
        .map(drop)
        .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", file.display())))
}

fn migrate(conn: &mut Connection) -> StoreResult<()> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| sql_error("migrate", e))?;
    let read_i64 = |name: &str| {
        tx.pragma_query_value(None, name, |row| row.get::<_, i64>(0))
            .map_err(|e| sql_error("migrate", e))
    };
    let application_id = read_i64("application_id")?;
    let version = read_i64("user_version")?;
    if application_id != 0 && application_id != i64::from(APPLICATION_ID) {
        return Err(StoreError::Corrupt(
            "the database file belongs to another application".into(),
        ));
    }
    if application_id == 0 && version == 0 {
        let tables: i64 = tx
            .query_row("SELECT count(*) FROM sqlite_schema", [], |row| row.get(0))
            .map_err(|e| sql_error("migrate", e))?;
        if tables > 0 {
            return Err(StoreError::Corrupt(
                "the database file holds tables keygate did not create".into(),
            ));
        }
    }
    let version = usize::try_from(version)
        .map_err(|_| StoreError::Corrupt(format!("schema version {version} is invalid")))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::Unavailable(format!(
            "the database has schema version {version}, newer than this build's {SCHEMA_VERSION}; use a newer keygate"
        )));
    }
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    for migration in &MIGRATIONS[version..] {
        tx.execute_batch(migration)
            .map_err(|e| sql_error("migrate", e))?;
    }
    tx.pragma_update(None, "application_id", APPLICATION_ID)
        .map_err(|e| sql_error("migrate", e))?;
    tx.pragma_update(None, "user_version", SCHEMA_VERSION as i64)
        .map_err(|e| sql_error("migrate", e))?;
    tx.commit().map_err(|e| sql_error("migrate", e))
}

/// Maps a rusqlite error to the port's error without its message text (which could quote values).
fn sql_error(op: &'static str, error: rusqlite::Error) -> StoreError {
    use rusqlite::Error as E;
    match error {
        E::SqliteFailure(code, _) => match code.code {
            ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => {
                StoreError::Corrupt(format!("{op}: {code}"))
            }
            _ => StoreError::Unavailable(format!("{op}: {code}")),
        },
        E::FromSqlConversionFailure(column, _, _)
        | E::IntegralValueOutOfRange(column, _)
        | E::Utf8Error(column, _) => {
            StoreError::Corrupt(format!("{op}: column {column} holds an unexpected value"))
        }
        E::InvalidColumnType(column, name, _) => StoreError::Corrupt(format!(
            "{op}: column {column} ({name}) has an unexpected type"
        )),
        _ => StoreError::Unavailable(format!("{op}: database error")),
    }
}

fn user_from_row(row: &Row<'_>) -> rusqlite::Result<User> {
    let roles: String = row.get(7)?;
    let roles: Vec<String> = serde_json::from_str(&roles)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(7, Type::Text, Box::new(e)))?;
    Ok(User {
        user_id: row.get(0)?,
        email: row.get(1)?,
        password_hash: row.get(2)?,
        created_at_ms: row.get(3)?,
        revoked_before_ms: row.get(4)?,
        attempts: AttemptCounter {
            attempts: row.get(5)?,
            locked_until_ms: row.get(6)?,
            last_attempt_ms: row.get(8)?,
        },
        roles,
        family_seq: u64::try_from(row.get::<_, i64>(9)?).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(9, Type::Integer, Box::new(e))
        })?,
        email_verified: row.get(10)?,
        mfa: row
            .get::<_, Option<String>>(11)?
            .map(|text| MfaState::from_json(&text))
            .transpose()
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(11, Type::Text, Box::new(e)))?,
    })
}

fn challenge_from_row(row: &Row<'_>) -> rusqlite::Result<MfaChallenge> {
    Ok(MfaChallenge {
        email: row.get(0)?,
        token_hash: row.get(1)?,
        fingerprint_hash: row.get(2)?,
        device_hash: row.get(3)?,
        attempts: row.get(4)?,
        expires_at_s: row.get(5)?,
    })
}

fn token_from_row(row: &Row<'_>) -> rusqlite::Result<RefreshRecord> {
    Ok(RefreshRecord {
        email: row.get(0)?,
        family_id: row.get(1)?,
        token_id: row.get(2)?,
        token_hash: row.get(3)?,
        issued_at_ms: row.get(4)?,
        expires_at_s: row.get(5)?,
        used_at_ms: row.get(6)?,
        replaced_by: row.get(7)?,
        fingerprint_hash: row.get(8)?,
    })
}

fn device_from_row(row: &Row<'_>) -> rusqlite::Result<DeviceRecord> {
    Ok(DeviceRecord {
        email: row.get(0)?,
        token_hash: row.get(1)?,
        created_at_ms: row.get(2)?,
        expires_at_s: row.get(3)?,
        attempts: AttemptCounter {
            attempts: row.get(4)?,
            locked_until_ms: row.get(5)?,
            last_attempt_ms: row.get(6)?,
        },
    })
}

fn get_device(
    conn: &Connection,
    email: &str,
    token_hash: &str,
) -> rusqlite::Result<Option<DeviceRecord>> {
    conn.prepare_cached(&format!(
        "SELECT {DEVICE_COLUMNS} FROM devices WHERE email = ?1 AND token_hash = ?2"
    ))?
    .query_row([email, token_hash], device_from_row)
    .optional()
}

fn insert_device(conn: &Connection, d: &DeviceRecord) -> rusqlite::Result<()> {
    conn.prepare_cached(&format!(
        "INSERT INTO devices ({DEVICE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
    ))?
    .execute(params![
        d.email,
        d.token_hash,
        d.created_at_ms,
        d.expires_at_s,
        d.attempts.attempts,
        d.attempts.locked_until_ms,
        d.attempts.last_attempt_ms
    ])
    .map(drop)
}

/// Writes one counter: the user's untrusted one, or a device's.
fn write_counter(
    conn: &Connection,
    email: &str,
    scope: &AttemptScope,
    counter: &AttemptCounter,
) -> rusqlite::Result<usize> {
    let params = params![
        email,
        counter.attempts,
        counter.locked_until_ms,
        counter.last_attempt_ms
    ];
    match scope {
        AttemptScope::Untrusted => conn
            .prepare_cached(
                "UPDATE users SET failed_logins = ?2, locked_until_ms = ?3, last_attempt_ms = ?4
                 WHERE email = ?1",
            )?
            .execute(params),
        AttemptScope::Device(hash) => conn
            .prepare_cached(
                "UPDATE devices SET failed_logins = ?2, locked_until_ms = ?3, last_attempt_ms = ?4
                 WHERE email = ?1 AND token_hash = ?5",
            )?
            .execute(params![
                email,
                counter.attempts,
                counter.locked_until_ms,
                counter.last_attempt_ms,
                hash
            ]),
    }
}

/// The reservation transaction: reads the user and the presented device, applies the core's rule
/// (`User::reserve_attempt`) and writes the counter it reserved on.
fn reserve(
    conn: &mut Connection,
    email: &str,
    device_token_hash: Option<&str>,
    throttle: &LoginThrottle,
    now_ms: i64,
) -> rusqlite::Result<Reservation> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let Some(mut user) = get_user_where(&tx, "email", email)? else {
        return Ok(Reservation::NoUser);
    };
    let mut device = match device_token_hash {
        Some(hash) => get_device(&tx, email, hash)?,
        None => None,
    };
    let reservation = user.reserve_attempt(device.as_mut(), throttle, now_ms);
    if let Reservation::Admitted(attempt) = &reservation {
        write_counter(&tx, email, &attempt.scope, &attempt.counter)?;
        tx.commit()?;
    }
    Ok(reservation)
}

/// A family number as SQLite's signed integer (numbers past `i64::MAX` cannot occur: one per login).
fn seq_to_sql(seq: u64) -> rusqlite::Result<i64> {
    i64::try_from(seq).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

fn get_user_where(conn: &Connection, column: &str, value: &str) -> rusqlite::Result<Option<User>> {
    conn.prepare_cached(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE {column} = ?1"
    ))?
    .query_row([value], user_from_row)
    .optional()
}

/// Applies `change` to the user inside an IMMEDIATE transaction (so the read and the write see one
/// state) and writes the fields the port's rules change; `token` is written and `device` applied in
/// the same transaction. Returns `false` (nothing written) for an unknown email, when `change`
/// refuses, when `device` resets a device that is gone, or when the `challenge` (a token hash) to
/// consume is gone.
fn update_user(
    conn: &mut Connection,
    email: &str,
    token: &RefreshRecord,
    device: &DeviceGrant,
    challenge: Option<&str>,
    change: impl FnOnce(&mut User) -> bool,
) -> rusqlite::Result<bool> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let Some(mut user) = get_user_where(&tx, "email", email)? else {
        return Ok(false);
    };
    if !change(&mut user) {
        return Ok(false);
    }
    if let Some(hash) = challenge {
        let consumed = tx
            .prepare_cached("DELETE FROM mfa_challenges WHERE email = ?1 AND token_hash = ?2")?
            .execute(params![email, hash])?;
        if consumed == 0 {
            return Ok(false);
        }
    }
    match device {
        DeviceGrant::Issue(device) => insert_device(&tx, device)?,
        DeviceGrant::Reset(hash) => {
            let scope = AttemptScope::Device(hash.clone());
            if write_counter(&tx, email, &scope, &AttemptCounter::default())? == 0 {
                return Ok(false);
            }
        }
    }
    write_user(&tx, &user)?;
    insert_token(&tx, token)?;
    tx.commit()?;
    Ok(true)
}

/// Writes the fields the port's rules change on a user (all but the identity, roles and creation time).
fn write_user(conn: &Connection, user: &User) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE users SET password_hash = ?2, revoked_before_ms = ?3, failed_logins = ?4,
             locked_until_ms = ?5, last_attempt_ms = ?6, family_seq = ?7, email_verified = ?8,
             mfa = ?9
         WHERE email = ?1",
    )?
    .execute(params![
        user.email,
        user.password_hash,
        user.revoked_before_ms,
        user.attempts.attempts,
        user.attempts.locked_until_ms,
        user.attempts.last_attempt_ms,
        seq_to_sql(user.family_seq)?,
        user.email_verified,
        user.mfa.as_ref().map(MfaState::to_json)
    ])
    .map(drop)
}

fn code_from_row(row: &Row<'_>) -> rusqlite::Result<EmailCode> {
    let purpose: String = row.get(1)?;
    let purpose = CodePurpose::parse(&purpose).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(1, Type::Text, "unknown purpose".into())
    })?;
    Ok(EmailCode {
        email: row.get(0)?,
        purpose,
        token_hash: row.get(2)?,
        code_mac: row.get(3)?,
        code_expires_at_ms: row.get(4)?,
        attempts: row.get(5)?,
        consumed: row.get(6)?,
        last_sent_ms: row.get(7)?,
        window_start_ms: row.get(8)?,
        window_sends: row.get(9)?,
        expires_at_s: row.get(10)?,
    })
}

/// The record, expired or not.
fn get_code(
    conn: &Connection,
    email: &str,
    purpose: CodePurpose,
) -> rusqlite::Result<Option<EmailCode>> {
    conn.prepare_cached(&format!(
        "SELECT {CODE_COLUMNS} FROM email_codes WHERE email = ?1 AND purpose = ?2"
    ))?
    .query_row([email, purpose.as_str()], code_from_row)
    .optional()
}

fn put_code(conn: &Connection, c: &EmailCode) -> rusqlite::Result<()> {
    conn.prepare_cached(&format!(
        "INSERT OR REPLACE INTO email_codes ({CODE_COLUMNS})
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
    ))?
    .execute(params![
        c.email,
        c.purpose.as_str(),
        c.token_hash,
        c.code_mac,
        c.code_expires_at_ms,
        c.attempts,
        c.consumed,
        c.last_sent_ms,
        c.window_start_ms,
        c.window_sends,
        c.expires_at_s
    ])
    .map(drop)
}

fn insert_mail(conn: &Connection, m: &OutboxMail) -> rusqlite::Result<()> {
    conn.prepare_cached(&format!(
        "INSERT INTO outbox ({OUTBOX_COLUMNS}) VALUES (?1, ?2, ?3, ?4)"
    ))?
    .execute(params![m.id, m.sealed, m.created_at_ms, m.expires_at_s])
    .map(drop)
}

/// The mail request transaction: reads the user and the record, applies the core's rule
/// (`MailRequest::decide`) and, when admitted, writes the record and the mail. Every request, admitted
/// or not, commits the `mail_requests` counter: both answers cost one committed write and its fsync,
/// as `create_user` does, so the time of a 202 tells nothing about the address.
fn request_mail(conn: &mut Connection, request: &MailRequest) -> rusqlite::Result<MailOutcome> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let user = get_user_where(&tx, "email", &request.email)?;
    let record = get_code(&tx, &request.email, request.purpose)?;
    let outcome = match request.decide(user.as_ref(), record.as_ref()) {
        Ok(record) => {
            put_code(&tx, &record)?;
            insert_mail(&tx, &request.mail)?;
            MailOutcome::Queued
        }
        Err(refused) => refused,
    };
    tx.prepare_cached("UPDATE mail_requests SET requests = requests + 1 WHERE id = 1")?
        .execute([])?;
    tx.commit()?;
    Ok(outcome)
}

/// Consumes the record `consumption` names if it allows it, and applies `change` to its user, in one
/// IMMEDIATE transaction; `notice` goes into the outbox in the same commit. Nothing otherwise.
fn consume_code(
    conn: &mut Connection,
    consumption: &CodeConsumption,
    change: impl FnOnce(&mut User),
    notice: Option<&OutboxMail>,
) -> rusqlite::Result<bool> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let record = get_code(&tx, &consumption.email, consumption.purpose)?;
    if !consumption.allowed_by(record.as_ref()) {
        return Ok(false);
    }
    let Some(mut user) = get_user_where(&tx, "email", &consumption.email)? else {
        return Ok(false);
    };
    change(&mut user);
    write_user(&tx, &user)?;
    tx.prepare_cached("UPDATE email_codes SET consumed = 1 WHERE email = ?1 AND purpose = ?2")?
        .execute([&consumption.email, consumption.purpose.as_str()])?;
    if let Some(notice) = notice {
        insert_mail(&tx, notice)?;
    }
    tx.commit()?;
    Ok(true)
}

/// The token record, expired or not.
fn get_token(
    conn: &Connection,
    email: &str,
    family_id: &str,
    token_id: &str,
) -> rusqlite::Result<Option<RefreshRecord>> {
    conn.prepare_cached(&format!(
        "SELECT {TOKEN_COLUMNS} FROM refresh_tokens WHERE email = ?1 AND family_id = ?2 AND token_id = ?3"
    ))?
    .query_row([email, family_id, token_id], token_from_row)
    .optional()
}

fn insert_token(conn: &Connection, r: &RefreshRecord) -> rusqlite::Result<()> {
    conn.prepare_cached(&format!(
        "INSERT INTO refresh_tokens ({TOKEN_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
    ))?
    .execute(params![
        r.email,
        r.family_id,
        r.token_id,
        r.token_hash,
        r.issued_at_ms,
        r.expires_at_s,
        r.used_at_ms,
        r.replaced_by,
        r.fingerprint_hash
    ])
    .map(drop)
}

/// Deletes tokens with `expires_at_s * 1000 <= now_ms`, i.e. `expires_at_s <= floor(now_ms / 1000)`.
fn sweep(conn: &Connection, now_ms: i64) -> rusqlite::Result<usize> {
    let now_s = now_ms.div_euclid(1000);
    let tokens = conn
        .prepare_cached("DELETE FROM refresh_tokens WHERE expires_at_s <= ?1")?
        .execute([now_s])?;
    let devices = conn
        .prepare_cached("DELETE FROM devices WHERE expires_at_s <= ?1")?
        .execute([now_s])?;
    let denied = conn
        .prepare_cached("DELETE FROM denied_access_tokens WHERE expires_at_s <= ?1")?
        .execute([now_s])?;
    let codes = conn
        .prepare_cached("DELETE FROM email_codes WHERE expires_at_s <= ?1")?
        .execute([now_s])?;
    let mails = conn
        .prepare_cached("DELETE FROM outbox WHERE expires_at_s <= ?1")?
        .execute([now_s])?;
    let challenges = conn
        .prepare_cached("DELETE FROM mfa_challenges WHERE expires_at_s <= ?1")?
        .execute([now_s])?;
    Ok(tokens + devices + denied + codes + mails + challenges)
}

/// The rotation transaction: checks in the port's order, then writes, or changes nothing.
fn rotate(conn: &mut Connection, rotation: &Rotation) -> rusqlite::Result<RotateOutcome> {
    // IMMEDIATE takes the write lock before the first read, so the checks and the writes see one state.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let presented = get_token(
        &tx,
        &rotation.email,
        &rotation.family_id,
        &rotation.token_id,
    )?;
    if let Some(refused) =
        rotation.refusal(presented, || get_user_where(&tx, "email", &rotation.email))?
    {
        return Ok(refused);
    }
    tx.prepare_cached(
        "UPDATE refresh_tokens SET used_at_ms = ?4, replaced_by = ?5
         WHERE email = ?1 AND family_id = ?2 AND token_id = ?3 AND used_at_ms IS NULL",
    )?
    .execute(params![
        rotation.email,
        rotation.family_id,
        rotation.token_id,
        rotation.now_ms,
        rotation.next.token_id
    ])?;
    insert_token(&tx, &rotation.next)?;
    tx.commit()?;
    Ok(RotateOutcome::Rotated)
}

impl UserStore for SqliteStore {
    async fn create_user(&self, user: &User) -> StoreResult<bool> {
        let user = user.clone();
        let roles = serde_json::to_string(&user.roles)
            .map_err(|_| StoreError::Corrupt("roles do not serialise".into()))?;
        self.run("create_user", move |conn| {
            // Only the email decides "taken"; a user_id collision is an error, not a silent no-op.
            // A taken email rewrites its row with itself (changing nothing), so both answers cost
            // one committed write and its fsync: registration must not tell them apart by time.
            // The returned id says which happened (ids are random UUIDs).
            let stored_id: String = conn
                .prepare_cached(&format!(
                    "INSERT INTO users ({USER_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
                     ON CONFLICT (email) DO UPDATE SET email = users.email
                     RETURNING user_id"
                ))?
                .query_row(
                    params![
                        user.user_id,
                        user.email,
                        user.password_hash,
                        user.created_at_ms,
                        user.revoked_before_ms,
                        user.attempts.attempts,
                        user.attempts.locked_until_ms,
                        roles,
                        user.attempts.last_attempt_ms,
                        seq_to_sql(user.family_seq)?,
                        user.email_verified,
                        user.mfa.as_ref().map(MfaState::to_json)
                    ],
                    |row| row.get(0),
                )?;
            Ok(stored_id == user.user_id)
        })
        .await
    }

    async fn get_user(&self, email: &str) -> StoreResult<Option<User>> {
        let email = email.to_owned();
        self.run("get_user", move |conn| {
            get_user_where(conn, "email", &email)
        })
        .await
    }

    async fn get_user_by_id(&self, user_id: &str) -> StoreResult<Option<User>> {
        let user_id = user_id.to_owned();
        self.run("get_user_by_id", move |conn| {
            get_user_where(conn, "user_id", &user_id)
        })
        .await
    }

    async fn reserve_login_attempt(
        &self,
        email: &str,
        device_token_hash: Option<&str>,
        throttle: &LoginThrottle,
        now_ms: i64,
    ) -> StoreResult<Reservation> {
        let (email, throttle) = (email.to_owned(), throttle.clone());
        let device_token_hash = device_token_hash.map(str::to_owned);
        self.run("reserve_login_attempt", move |conn| {
            reserve(
                conn,
                &email,
                device_token_hash.as_deref(),
                &throttle,
                now_ms,
            )
        })
        .await
    }

    async fn settle_attempt(
        &self,
        email: &str,
        scope: &AttemptScope,
        reserved: &AttemptCounter,
        locked_until_ms: i64,
    ) -> StoreResult<bool> {
        let (email, scope, reserved) = (email.to_owned(), scope.clone(), *reserved);
        self.run("settle_attempt", move |conn| {
            let (email, attempts, last) = (email, reserved.attempts, reserved.last_attempt_ms);
            let updated = match &scope {
                AttemptScope::Untrusted => conn
                    .prepare_cached(
                        "UPDATE users SET locked_until_ms = ?4
                         WHERE email = ?1 AND failed_logins = ?2 AND last_attempt_ms = ?3",
                    )?
                    .execute(params![email, attempts, last, locked_until_ms])?,
                AttemptScope::Device(hash) => conn
                    .prepare_cached(
                        "UPDATE devices SET locked_until_ms = ?4
                         WHERE email = ?1 AND token_hash = ?5 AND failed_logins = ?2
                           AND last_attempt_ms = ?3",
                    )?
                    .execute(params![email, attempts, last, locked_until_ms, hash])?,
            };
            Ok(updated == 1)
        })
        .await
    }

    async fn complete_login(&self, completion: &LoginCompletion) -> StoreResult<bool> {
        let completion = completion.clone();
        self.run("complete_login", move |conn| {
            let token = &completion.first_token;
            update_user(
                conn,
                &token.email,
                token,
                &completion.device,
                completion.challenge_hash.as_deref(),
                |user| user.complete_login(&completion),
            )
        })
        .await
    }

    async fn change_password(&self, change: &PasswordChange) -> StoreResult<bool> {
        let change = change.clone();
        self.run("change_password", move |conn| {
            let token = &change.first_token;
            let device = DeviceGrant::Issue(change.new_device.clone());
            update_user(conn, &token.email, token, &device, None, |user| {
                user.change_password(&change)
            })
        })
        .await
    }

    async fn set_revoked_before(&self, email: &str, revoked_before_ms: i64) -> StoreResult<()> {
        let email = email.to_owned();
        self.run("set_revoked_before", move |conn| {
            conn.prepare_cached("UPDATE users SET revoked_before_ms = ?2 WHERE email = ?1 AND revoked_before_ms < ?2")?
                .execute(params![email, revoked_before_ms])
                .map(drop)
        })
        .await
    }
}

impl RefreshTokenStore for SqliteStore {
    async fn put_refresh_token(&self, record: &RefreshRecord) -> StoreResult<()> {
        let record = record.clone();
        self.run("put_refresh_token", move |conn| insert_token(conn, &record))
            .await
    }

    async fn rotate_refresh_token(&self, rotation: &Rotation) -> StoreResult<RotateOutcome> {
        let rotation = rotation.clone();
        let inner = self.inner.clone();
        self.run("rotate_refresh_token", move |conn| {
            let outcome = rotate(conn, &rotation)?;
            if outcome == RotateOutcome::Rotated {
                let count = inner.rotations.fetch_add(1, Ordering::Relaxed) + 1;
                if count.is_multiple_of(SWEEP_EVERY_ROTATIONS) {
                    // Housekeeping after the commit; its failure must not fail the rotation.
                    if let Err(error) = sweep(conn, rotation.now_ms) {
                        let error = sql_error("sweep_expired", error);
                        tracing::warn!(%error, "opportunistic sweep failed");
                    }
                }
            }
            Ok(outcome)
        })
        .await
    }

    async fn get_refresh_token(
        &self,
        email: &str,
        family_id: &str,
        token_id: &str,
        now_ms: i64,
    ) -> StoreResult<Option<RefreshRecord>> {
        let (email, family_id, token_id) =
            (email.to_owned(), family_id.to_owned(), token_id.to_owned());
        self.run("get_refresh_token", move |conn| {
            Ok(get_token(conn, &email, &family_id, &token_id)?
                .filter(|record| !record.is_expired(now_ms)))
        })
        .await
    }

    async fn revoke_family(&self, email: &str, family_id: &str) -> StoreResult<usize> {
        let (email, family_id) = (email.to_owned(), family_id.to_owned());
        self.run("revoke_family", move |conn| {
            conn.prepare_cached("DELETE FROM refresh_tokens WHERE email = ?1 AND family_id = ?2")?
                .execute([&email, &family_id])
        })
        .await
    }
}

impl AccessTokenDenyList for SqliteStore {
    async fn deny_access_token(&self, jti: &str, expires_at_s: i64) -> StoreResult<()> {
        let jti = jti.to_owned();
        self.run("deny_access_token", move |conn| {
            conn.prepare_cached(
                "INSERT INTO denied_access_tokens (jti, expires_at_s) VALUES (?1, ?2)
                 ON CONFLICT (jti) DO UPDATE SET expires_at_s = max(expires_at_s, excluded.expires_at_s)",
            )?
            .execute(params![jti, expires_at_s])
            .map(drop)
        })
        .await
    }

    async fn is_access_token_denied(&self, jti: &str, now_ms: i64) -> StoreResult<bool> {
        let jti = jti.to_owned();
        self.run("is_access_token_denied", move |conn| {
            // Alive while expires_at_s * 1000 > now_ms, i.e. expires_at_s > floor(now_ms / 1000).
            conn.prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM denied_access_tokens WHERE jti = ?1 AND expires_at_s > ?2)",
            )?
            .query_row(params![jti, now_ms.div_euclid(1000)], |row| row.get(0))
        })
        .await
    }
}

impl EmailCodeStore for SqliteStore {
    async fn request_mail(&self, request: &MailRequest) -> StoreResult<MailOutcome> {
        let request = request.clone();
        self.run("request_mail", move |conn| request_mail(conn, &request))
            .await
    }

    async fn get_email_code(
        &self,
        email: &str,
        purpose: CodePurpose,
        now_ms: i64,
    ) -> StoreResult<Option<EmailCode>> {
        let email = email.to_owned();
        self.run("get_email_code", move |conn| {
            Ok(get_code(conn, &email, purpose)?.filter(|r| !expired(r.expires_at_s, now_ms)))
        })
        .await
    }

    async fn reserve_code_attempt(
        &self,
        email: &str,
        purpose: CodePurpose,
        now_ms: i64,
    ) -> StoreResult<Option<EmailCode>> {
        let email = email.to_owned();
        self.run("reserve_code_attempt", move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let Some(reserved) =
                get_code(&tx, &email, purpose)?.and_then(|r| r.reserve_attempt(now_ms))
            else {
                return Ok(None);
            };
            tx.prepare_cached(
                "UPDATE email_codes SET attempts = ?3 WHERE email = ?1 AND purpose = ?2",
            )?
            .execute(params![email, purpose.as_str(), reserved.attempts])?;
            tx.commit()?;
            Ok(Some(reserved))
        })
        .await
    }

    async fn verify_email(&self, consumption: &CodeConsumption) -> StoreResult<bool> {
        let consumption = consumption.clone();
        self.run("verify_email", move |conn| {
            consume_code(conn, &consumption, |user| user.email_verified = true, None)
        })
        .await
    }

    async fn reset_password(&self, reset: &PasswordReset) -> StoreResult<bool> {
        let reset = reset.clone();
        self.run("reset_password", move |conn| {
            consume_code(
                conn,
                &reset.consumption,
                |user| user.reset_password(&reset),
                Some(&reset.notice),
            )
        })
        .await
    }
}

impl MfaStore for SqliteStore {
    async fn swap_mfa(&self, email: &str, swap: &MfaSwap) -> StoreResult<bool> {
        let (email, swap) = (email.to_owned(), swap.clone());
        self.run("swap_mfa", move |conn| {
            // `IS` compares NULL with NULL as equal: an absent state is expected as absent.
            conn.prepare_cached("UPDATE users SET mfa = ?3 WHERE email = ?1 AND mfa IS ?2")?
                .execute(params![
                    email,
                    swap.expected.as_ref().map(MfaState::to_json),
                    swap.new.as_ref().map(MfaState::to_json)
                ])
                .map(|updated| updated == 1)
        })
        .await
    }

    async fn put_mfa_challenge(&self, challenge: &MfaChallenge) -> StoreResult<()> {
        let c = challenge.clone();
        self.run("put_mfa_challenge", move |conn| {
            conn.prepare_cached(&format!(
                "INSERT OR REPLACE INTO mfa_challenges ({CHALLENGE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
            ))?
            .execute(params![
                c.email,
                c.token_hash,
                c.fingerprint_hash,
                c.device_hash,
                c.attempts,
                c.expires_at_s
            ])
            .map(drop)
        })
        .await
    }

    async fn reserve_challenge_attempt(
        &self,
        email: &str,
        token_hash: &str,
        now_ms: i64,
    ) -> StoreResult<Option<MfaChallenge>> {
        let (email, token_hash) = (email.to_owned(), token_hash.to_owned());
        self.run("reserve_challenge_attempt", move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let Some(reserved) = tx
                .prepare_cached(&format!(
                    "SELECT {CHALLENGE_COLUMNS} FROM mfa_challenges WHERE email = ?1 AND token_hash = ?2"
                ))?
                .query_row(params![email, token_hash], challenge_from_row)
                .optional()?
                .and_then(|c| c.reserve_attempt(now_ms))
            else {
                return Ok(None);
            };
            tx.prepare_cached(
                "UPDATE mfa_challenges SET attempts = ?3 WHERE email = ?1 AND token_hash = ?2",
            )?
            .execute(params![email, token_hash, reserved.attempts])?;
            tx.commit()?;
            Ok(Some(reserved))
        })
        .await
    }
}

impl OutboxStore for SqliteStore {
    async fn pending_mail(&self, limit: usize, now_ms: i64) -> StoreResult<Vec<OutboxMail>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run("pending_mail", move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE expires_at_s > ?1
                 ORDER BY created_at_ms, id LIMIT ?2"
            ))?
            .query_map(params![now_ms.div_euclid(1000), limit], |row| {
                Ok(OutboxMail {
                    id: row.get(0)?,
                    sealed: row.get(1)?,
                    created_at_ms: row.get(2)?,
                    expires_at_s: row.get(3)?,
                })
            })?
            .collect()
        })
        .await
    }

    async fn delete_mail(&self, id: &str) -> StoreResult<()> {
        let id = id.to_owned();
        self.run("delete_mail", move |conn| {
            conn.prepare_cached("DELETE FROM outbox WHERE id = ?1")?
                .execute([id])
                .map(drop)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keygate_testkit::fixtures::{first_record, rotation_of, sample_user, unique_email};

    fn count_tokens(store: &SqliteStore) -> i64 {
        let conn = store.inner.conn.lock().unwrap();
        conn.query_row("SELECT count(*) FROM refresh_tokens", [], |row| row.get(0))
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_nth_rotation_sweeps_expired_tokens_with_its_clock() {
        let store = SqliteStore::open_in_memory().unwrap();
        let user = sample_user(&unique_email("sweep"));
        assert!(store.create_user(&user).await.unwrap());
        // Tokens of a family issued long ago, expired by the time of the rotations below.
        let stale = first_record(&user.email, 1_000_000_000_000, None);
        let now = stale.expires_at_s * 1000 + 1;
        store.put_refresh_token(&stale).await.unwrap();
        let mut current = first_record(&user.email, now, None);
        store.put_refresh_token(&current).await.unwrap();
        for i in 0..SWEEP_EVERY_ROTATIONS - 1 {
            let rotation = rotation_of(&current, now + i as i64);
            assert_eq!(
                store.rotate_refresh_token(&rotation).await.unwrap(),
                RotateOutcome::Rotated
            );
            current = rotation.next;
        }
        let before = count_tokens(&store);
        assert_eq!(
            before,
            SWEEP_EVERY_ROTATIONS as i64 + 1,
            "nothing swept yet"
        );
        let rotation = rotation_of(&current, now + 1_000);
        assert_eq!(
            store.rotate_refresh_token(&rotation).await.unwrap(),
            RotateOutcome::Rotated
        );
        assert_eq!(
            count_tokens(&store),
            before,
            "one token added, the stale one swept"
        );
        let stale_left: i64 = store
            .inner
            .conn
            .lock()
            .unwrap()
            .query_row(
                "SELECT count(*) FROM refresh_tokens WHERE token_id = ?1",
                [&stale.token_id],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(stale_left, 0);
    }

    /// Registering a taken email must cost what a new one costs: a committed write (a WAL frame and
    /// its fsync), not a read-only no-op that answers measurably faster.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_taken_email_costs_the_same_write_as_a_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let wal = dir.path().join(format!("{FILE_NAME}-wal"));
        let wal_len = || std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
        let first = sample_user(&unique_email("equal-work"));
        let before = wal_len();
        assert!(store.create_user(&first).await.unwrap());
        let after_new = wal_len();
        assert!(after_new > before, "a new user is a committed write");
        let again = sample_user(&first.email);
        assert!(
            !store.create_user(&again).await.unwrap(),
            "the email is taken"
        );
        assert!(
            wal_len() > after_new,
            "a taken email must commit a write too"
        );
        assert_eq!(
            store.get_user(&first.email).await.unwrap(),
            Some(first),
            "and change nothing"
        );
    }

    #[test]
    fn connections_use_wal_synchronous_full_and_a_busy_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let conn = store.inner.conn.lock().unwrap();
        let pragma = |name: &str| {
            conn.pragma_query_value(None, name, |row| row.get::<_, i64>(0))
                .unwrap()
        };
        assert_eq!(pragma("synchronous"), 2, "FULL");
        assert_eq!(pragma("busy_timeout"), BUSY_TIMEOUT.as_millis() as i64);
        let journal: String = conn
            .pragma_query_value(None, "journal_mode", |row| row.get(0))
            .unwrap();
        assert_eq!(journal, "wal");
    }

    #[test]
    fn error_messages_never_quote_sqlite_text_or_values() {
        let secret = "kgrt_SECRET_TOKEN_VALUE $argon2id$v=19$SECRET";
        let failure = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT),
            Some(format!("UNIQUE constraint failed near '{secret}'")),
        );
        let mapped = sql_error("create_user", failure).to_string();
        assert!(
            mapped.starts_with("store unavailable: create_user"),
            "{mapped}"
        );
        assert!(!mapped.contains("SECRET"), "{mapped}");

        let corrupt = rusqlite::Error::FromSqlConversionFailure(
            7,
            Type::Text,
            Box::new(std::io::Error::other(secret)),
        );
        let mapped = sql_error("get_user", corrupt);
        assert!(matches!(mapped, StoreError::Corrupt(_)));
        assert!(!mapped.to_string().contains("SECRET"));

        let out_of_range = rusqlite::Error::IntegralValueOutOfRange(5, 123_456_789_012);
        assert!(
            !sql_error("get_user", out_of_range)
                .to_string()
                .contains("123456789012")
        );

        let busy = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            None,
        );
        assert!(matches!(
            sql_error("rotate", busy),
            StoreError::Unavailable(_)
        ));
        let not_db = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_NOTADB),
            None,
        );
        assert!(matches!(sql_error("open", not_db), StoreError::Corrupt(_)));
    }
}
