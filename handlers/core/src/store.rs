//! The storage port: users and refresh-token records, with the atomic operations the design needs.
//!
//! Times: `*_ms` are milliseconds since the epoch; `expires_at_s` is in seconds (DynamoDB's TTL unit).
//! Every read treats a record whose `expires_at_s * 1000 <= now_ms` as absent, because no store deletes
//! expired items promptly.

use std::future::Future;

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
    /// Consecutive failed logins since the last success.
    pub failed_logins: u32,
    /// Logins are refused until this instant (0: not throttled).
    pub locked_until_ms: i64,
    pub roles: Vec<String>,
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

/// The changes a successful login writes together with the new family's first token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoginSuccess {
    /// Reset `failed_logins` and `locked_until_ms` to zero.
    pub reset_failures: bool,
    /// Replace the stored hash (parameters were raised since it was made).
    pub new_password_hash: Option<String>,
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

    /// Sets the failure counter and throttle window if, and only if, the user exists and its
    /// `failed_logins` still equals `expected_failed` (optimistic concurrency). Returns whether it applied.
    /// Called for unknown emails too (it then applies nothing), so every failed login costs one write.
    fn record_failed_login(
        &self,
        email: &str,
        expected_failed: u32,
        failed_logins: u32,
        locked_until_ms: i64,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    /// Writes the first token of a new family and, in the same atomic write, the changes in `success`.
    fn complete_login(
        &self,
        success: &LoginSuccess,
        first_token: &RefreshRecord,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Replaces the password hash if the stored one is still `expected_hash`, sets `revoked_before_ms`
    /// and clears the failure counter. Returns whether it applied.
    fn change_password(
        &self,
        email: &str,
        expected_hash: &str,
        new_hash: &str,
        revoked_before_ms: i64,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    /// Raises the user's watermark to `revoked_before_ms` (never lowers it).
    fn set_revoked_before(
        &self,
        email: &str,
        revoked_before_ms: i64,
    ) -> impl Future<Output = StoreResult<()>> + Send;
}

pub trait RefreshTokenStore: Send + Sync + 'static {
    /// Writes a token record (the first of a family issued outside login, e.g. after a password change).
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

    /// Deletes every token of every family of the user; returns how many were deleted.
    fn revoke_all_families(&self, email: &str) -> impl Future<Output = StoreResult<usize>> + Send;
}

/// Everything the service needs from storage.
pub trait AuthStore: UserStore + RefreshTokenStore {}
impl<T: UserStore + RefreshTokenStore> AuthStore for T {}
