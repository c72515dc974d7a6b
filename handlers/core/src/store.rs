//! The storage port: users and refresh-token records, with the atomic operations the design needs.
//!
//! Times: `*_ms` are milliseconds since the epoch; `expires_at_s` is in seconds (DynamoDB's TTL unit).
//! Every read treats a record whose `expires_at_s * 1000 <= now_ms` as absent, because no store deletes
//! expired items promptly.

use std::future::Future;

pub use crate::throttle::AttemptCounter;
use crate::throttle::LoginThrottle;

/// A user as stored under `USER#<email>` / `PROFILE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub user_id: String,
    /// Normalised email: the user's key.
    pub email: String,
    /// argon2id PHC string.
    pub password_hash: String,
    pub created_at_ms: i64,
    /// Tokens issued before this instant are revoked (0: none).
    pub revoked_before_ms: i64,
    /// The login throttle's counter (see [`crate::throttle`]).
    pub attempts: AttemptCounter,
    pub roles: Vec<String>,
}

/// The port's state changes on a user, as pure rules: the memory and SQLite stores apply them to the
/// user they read inside one atomic step; DynamoDB writes them as conditions and updates.
impl User {
    /// [`UserStore::reserve_login_attempt`]: the reservation, with `self` updated when admitted.
    pub fn reserve_attempt(&mut self, throttle: &LoginThrottle, now_ms: i64) -> Reservation {
        match throttle.reserve(&self.attempts, now_ms) {
            Some(next) => {
                self.attempts = next;
                Reservation::Admitted(self.clone())
            }
            None => Reservation::Refused(self.clone()),
        }
    }

    /// [`UserStore::settle_attempt`].
    pub fn settle_attempt(&mut self, reserved: &AttemptCounter, locked_until_ms: i64) -> bool {
        match crate::throttle::settle(&self.attempts, reserved, locked_until_ms) {
            Some(next) => {
                self.attempts = next;
                true
            }
            None => false,
        }
    }

    /// [`UserStore::complete_login`] on the user (the caller writes the token in the same step).
    pub fn complete_login(&mut self, completion: &LoginCompletion) -> bool {
        if self.password_hash != completion.verified_hash
            || self.revoked_before_ms != completion.revoked_before_ms
        {
            return false;
        }
        self.attempts = AttemptCounter::default();
        if let Some(hash) = &completion.new_password_hash {
            self.password_hash = hash.clone();
        }
        true
    }

    /// [`UserStore::change_password`] on the user (the caller writes the token in the same step).
    pub fn change_password(&mut self, change: &PasswordChange) -> bool {
        if self.password_hash != change.expected_hash {
            return false;
        }
        self.password_hash = change.new_hash.clone();
        self.revoked_before_ms = self.revoked_before_ms.max(change.revoked_before_ms);
        self.attempts = AttemptCounter::default();
        true
    }
}

/// A refresh token as stored under `USER#<email>` / `REFRESH#<family_id>#<token_id>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshRecord {
    pub email: String,
    pub family_id: String,
    pub token_id: String,
    /// Lowercase hex SHA-256 of the token; the token itself is never stored.
    pub token_hash: String,
    pub issued_at_ms: i64,
    /// The family's absolute expiry, copied to every token of the family (the TTL attribute).
    pub expires_at_s: i64,
    pub used_at_ms: Option<i64>,
    /// Token id of the child this token was exchanged for.
    pub replaced_by: Option<String>,
    /// Hex SHA-256 of the device id the family was bound to at login.
    pub fingerprint_hash: Option<String>,
}

impl RefreshRecord {
    pub fn is_expired(&self, now_ms: i64) -> bool {
        self.expires_at_s.saturating_mul(1000) <= now_ms
    }
}

/// One rotation: mark `presented` used and write `next`, atomically, if and only if the presented token
/// exists, is unexpired, unused, its hash matches, its device binding matches, and the user's watermark
/// does not revoke it.
#[derive(Debug, Clone)]
pub struct Rotation {
    pub email: String,
    pub family_id: String,
    pub token_id: String,
    pub presented_hash: String,
    pub presented_issued_at_ms: i64,
    /// Hash of the device id sent with this refresh (None: none sent); must equal the stored binding.
    pub fingerprint_hash: Option<String>,
    pub now_ms: i64,
    pub next: RefreshRecord,
}

/// How a rotation ended. Checks apply in this order, so an outcome names the first failed condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotateOutcome {
    Rotated,
    /// No such token: absent, expired, or the hash does not match. Nothing changed.
    NotFound,
    /// The token (whose hash matches) was already used: a replay. Nothing changed.
    AlreadyUsed(RefreshRecord),
    /// The device binding differs. Nothing changed.
    FingerprintMismatch,
    /// The user's `revoked_before_ms` is after the token's issue time, or the user is gone. Nothing changed.
    Revoked,
}

/// The outcome of reserving a login attempt (see [`crate::throttle`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// The attempt may be judged; the user as it is after the reservation.
    Admitted(User),
    /// The window is open: the attempt is refused unjudged; the user as read, unchanged.
    Refused(User),
    /// No user has this email; nothing was written.
    NoUser,
}

/// A successful login's one conditional write: the first token of a new family, the counter reset
/// and (when parameters were raised) the new hash, applied only if the stored hash is still the one
/// that was verified and the watermark is still the one read. Otherwise nothing is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginCompletion {
    pub verified_hash: String,
    pub revoked_before_ms: i64,
    /// Replace the stored hash (parameters were raised since it was made).
    pub new_password_hash: Option<String>,
    pub first_token: RefreshRecord,
}

/// A password change's one conditional write: the new hash, the watermark (raised, never lowered),
/// the counter reset and the first token of the new session, applied only if the stored hash is still
/// `expected_hash`. Otherwise nothing is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordChange {
    pub expected_hash: String,
    pub new_hash: String,
    pub revoked_before_ms: i64,
    pub first_token: RefreshRecord,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store could not be reached or refused for load; the request may be retried.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// An item could not be read back as a record.
    #[error("corrupt item: {0}")]
    Corrupt(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

pub trait UserStore: Send + Sync + 'static {
    /// Creates the user if no user has this email. `Ok(false)`: the email is taken, nothing written.
    fn create_user(&self, user: &User) -> impl Future<Output = StoreResult<bool>> + Send;

    fn get_user(&self, email: &str) -> impl Future<Output = StoreResult<Option<User>>> + Send;

    fn get_user_by_id(
        &self,
        user_id: &str,
    ) -> impl Future<Output = StoreResult<Option<User>>> + Send;

    /// Reserves one login attempt on the user's counter with [`LoginThrottle::reserve`], atomically:
    /// under any concurrency, each reservation sees the previous one.
    fn reserve_login_attempt(
        &self,
        email: &str,
        throttle: &LoginThrottle,
        now_ms: i64,
    ) -> impl Future<Output = StoreResult<Reservation>> + Send;

    /// Sets the counter's window to `locked_until_ms` if the counter is still `reserved`
    /// ([`crate::throttle::settle`]). Returns whether it applied; a missing user applies nothing.
    fn settle_attempt(
        &self,
        email: &str,
        reserved: &AttemptCounter,
        locked_until_ms: i64,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    /// The conditional write described on [`LoginCompletion`]. Returns whether it applied.
    fn complete_login(
        &self,
        completion: &LoginCompletion,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    /// The conditional write described on [`PasswordChange`]. Returns whether it applied.
    fn change_password(
        &self,
        change: &PasswordChange,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    /// Raises the user's watermark to `revoked_before_ms` (never lowers it).
    fn set_revoked_before(
        &self,
        email: &str,
        revoked_before_ms: i64,
    ) -> impl Future<Output = StoreResult<()>> + Send;
}

pub trait RefreshTokenStore: Send + Sync + 'static {
    /// Writes a token record as it is (fixtures and tools: the service writes tokens only inside
    /// logins, password changes and rotations).
    fn put_refresh_token(
        &self,
        record: &RefreshRecord,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// The atomic rotation described on [`Rotation`].
    fn rotate_refresh_token(
        &self,
        rotation: &Rotation,
    ) -> impl Future<Output = StoreResult<RotateOutcome>> + Send;

    /// Reads one token record; expired records are absent.
    fn get_refresh_token(
        &self,
        email: &str,
        family_id: &str,
        token_id: &str,
        now_ms: i64,
    ) -> impl Future<Output = StoreResult<Option<RefreshRecord>>> + Send;

    /// Deletes every token of one family; returns how many were deleted.
    fn revoke_family(
        &self,
        email: &str,
        family_id: &str,
    ) -> impl Future<Output = StoreResult<usize>> + Send;
}

/// Everything the service needs from storage.
pub trait AuthStore: UserStore + RefreshTokenStore {}
impl<T: UserStore + RefreshTokenStore> AuthStore for T {}
