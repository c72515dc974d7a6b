//! The storage port: users, refresh-token records, denied access tokens, email codes, the mail
//! outbox and second factors, with the atomic operations the design needs.
//!
//! Times: `*_ms` are milliseconds since the epoch; `expires_at_s` is in seconds (DynamoDB's TTL unit).
//! Every read treats a record whose `expires_at_s * 1000 <= now_ms` as absent, because no store deletes
//! expired items promptly.

use std::future::Future;

pub use crate::config::SendLimits;
use crate::crypto::hashes_match;
pub use crate::throttle::AttemptCounter;
use crate::throttle::LoginThrottle;

/// The expiry rule of every stored item (the module's header): an item whose TTL attribute is
/// `expires_at_s` (seconds) is expired, and read as absent, from `expires_at_s * 1000` ms on.
pub fn expired(expires_at_s: i64, now_ms: i64) -> bool {
    expires_at_s.saturating_mul(1000) <= now_ms
}

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
    /// The login throttle's untrusted counter: attempts made without a valid device token (see
    /// [`crate::throttle`]).
    pub attempts: AttemptCounter,
    pub roles: Vec<String>,
    /// The number of the user's latest refresh-token family: each login or password change opens
    /// family `family_seq + 1` and raises this to it. A family numbered `n` is retired once this
    /// reaches `n` plus the live-family cap ([`Rotation::retired_at_seq`]), so at most that many of
    /// the user's families can refresh, without listing or deleting any.
    pub family_seq: u64,
    /// Whether the user proved they own `email` (a verification or a password reset).
    pub email_verified: bool,
    /// The user's TOTP factor, pending or active, with its recovery codes (see [`MfaState`]).
    pub mfa: Option<MfaState>,
}

/// The port's state changes on a user, as pure rules: the memory and SQLite stores apply them to the
/// records they read inside one atomic step; DynamoDB writes them as conditions and updates.
impl User {
    /// [`UserStore::reserve_login_attempt`], given the presented device's record if one was found:
    /// the reservation, with `self` or `device` updated when admitted.
    pub fn reserve_attempt(
        &mut self,
        device: Option<&mut DeviceRecord>,
        throttle: &LoginThrottle,
        now_ms: i64,
    ) -> Reservation {
        let (scope, counter) = match device.filter(|d| d.trusted_for(self, now_ms)) {
            Some(device) => (
                AttemptScope::Device(device.token_hash.clone()),
                &mut device.attempts,
            ),
            None => (AttemptScope::Untrusted, &mut self.attempts),
        };
        let admitted = match throttle.reserve(counter, now_ms) {
            Some(next) => {
                *counter = next;
                true
            }
            None => false,
        };
        let attempt = Attempt {
            counter: *counter,
            scope,
            user: self.clone(),
        };
        Reservation::judged(admitted, attempt)
    }

    /// [`UserStore::complete_login`] on the user (the caller writes the token and the device in the
    /// same step).
    pub fn complete_login(&mut self, completion: &LoginCompletion) -> bool {
        if self.password_hash != completion.verified_hash
            || self.revoked_before_ms != completion.revoked_before_ms
            || self.family_seq >= completion.family_seq
            || self.mfa != completion.mfa.expected
        {
            return false;
        }
        self.family_seq = completion.family_seq;
        self.mfa = completion.mfa.new.clone();
        // A device's success resets that device's counter only: the owner's logins must not reopen
        // guessing on the untrusted counter for a stranger.
        if let DeviceGrant::Issue(_) = completion.device {
            self.attempts = AttemptCounter::default();
        }
        if let Some(hash) = &completion.new_password_hash {
            self.password_hash = hash.clone();
        }
        true
    }

    /// [`UserStore::change_password`] on the user (the caller writes the token and the device in the
    /// same step).
    pub fn change_password(&mut self, change: &PasswordChange) -> bool {
        if self.password_hash != change.expected_hash
            || change
                .mfa
                .as_ref()
                .is_some_and(|swap| self.mfa != swap.expected)
        {
            return false;
        }
        if let Some(swap) = &change.mfa {
            self.mfa = swap.new.clone();
        }
        self.password_hash = change.new_hash.clone();
        self.revoked_before_ms = self.revoked_before_ms.max(change.revoked_before_ms);
        self.attempts = AttemptCounter::default();
        self.family_seq = change.family_seq;
        true
    }

    /// The factor logins must present, if the user has one active (a pending one is not).
    pub fn active_factor(&self) -> Option<&MfaState> {
        self.mfa.as_ref().filter(|state| state.is_active())
    }

    /// Whether the user's state revokes the token a rotation presents: issued before the watermark,
    /// or its family retired by the live-family cap.
    pub fn revokes(&self, rotation: &Rotation) -> bool {
        self.revoked_before_ms > rotation.presented_issued_at_ms
            || self.family_seq >= rotation.retired_at_seq
    }
}

/// A device token as stored under `USER#<email>` / `DEVICE#<token_hash>`: it lets one known client
/// log in on its own attempt counter (OWASP's "device cookies"), so a stranger's failures elsewhere
/// cannot lock it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    pub email: String,
    /// Lowercase hex SHA-256 of the token; the token itself is never stored.
    pub token_hash: String,
    pub created_at_ms: i64,
    /// Seconds (the TTL attribute).
    pub expires_at_s: i64,
    /// Attempts made with this device token.
    pub attempts: AttemptCounter,
}

impl DeviceRecord {
    /// Whether the token still stands for a known device of `user` at `now_ms`: unexpired and not
    /// revoked by the user's watermark (logout-all, a password change).
    pub fn trusted_for(&self, user: &User, now_ms: i64) -> bool {
        self.email == user.email
            && !expired(self.expires_at_s, now_ms)
            && self.created_at_ms >= user.revoked_before_ms
    }
}

/// Which counter a login attempt counts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptScope {
    /// The user's shared counter: no device token, or one that is unknown, expired or revoked.
    Untrusted,
    /// The counter of the device token with this hash.
    Device(String),
}

/// One reserved (or refused) login attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The user as read in the reservation's atomic step (with the reservation applied when it
    /// counted on the untrusted counter).
    pub user: User,
    pub scope: AttemptScope,
    /// The counter the attempt counted on, after the reservation (as read, when refused).
    pub counter: AttemptCounter,
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
        expired(self.expires_at_s, now_ms)
    }
}

/// One rotation: mark `presented` used and write `next`, atomically, if and only if the presented token
/// exists, is unexpired, unused, its hash matches, its device binding matches, and the user's state
/// does not revoke it ([`User::revokes`]).
#[derive(Debug, Clone)]
pub struct Rotation {
    pub email: String,
    pub family_id: String,
    pub token_id: String,
    pub presented_hash: String,
    pub presented_issued_at_ms: i64,
    /// The presented family is retired once the user's [`User::family_seq`] reaches this: its own
    /// number plus the live-family cap.
    pub retired_at_seq: u64,
    /// Hash of the device id sent with this refresh (None: none sent); must equal the stored binding.
    pub fingerprint_hash: Option<String>,
    pub now_ms: i64,
    pub next: RefreshRecord,
}

impl Rotation {
    /// Why the presented token's stored record refuses this rotation, in the port's order: absent,
    /// expired or another hash is `NotFound`, already used is `AlreadyUsed`, another device binding is
    /// `FingerprintMismatch`. `None`: the record allows it (the user's side is [`User::revokes`]).
    pub fn record_refusal(&self, presented: Option<RefreshRecord>) -> Option<RotateOutcome> {
        let Some(record) = presented.filter(|r| {
            !r.is_expired(self.now_ms) && hashes_match(&r.token_hash, &self.presented_hash)
        }) else {
            return Some(RotateOutcome::NotFound);
        };
        if record.used_at_ms.is_some() {
            return Some(RotateOutcome::AlreadyUsed(record));
        }
        if record.fingerprint_hash != self.fingerprint_hash {
            return Some(RotateOutcome::FingerprintMismatch);
        }
        None
    }

    /// Every check of this rotation in the port's order, on one consistent read: the presented
    /// token's record, then its user, which `user` reads only once the record passed (a missing user
    /// revokes). `Ok(None)`: write the rotation. For stores that check inside their own transaction;
    /// one whose conditions are checked by the database reads a refusal back with
    /// [`Rotation::record_refusal`].
    pub fn refusal<E>(
        &self,
        presented: Option<RefreshRecord>,
        user: impl FnOnce() -> Result<Option<User>, E>,
    ) -> Result<Option<RotateOutcome>, E> {
        if let Some(refused) = self.record_refusal(presented) {
            return Ok(Some(refused));
        }
        let revoked = user()?.is_none_or(|user| user.revokes(self));
        Ok(revoked.then_some(RotateOutcome::Revoked))
    }
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
    /// The user's `revoked_before_ms` is after the token's issue time, the family is retired by the
    /// live-family cap, or the user is gone. Nothing changed.
    Revoked,
}

/// The outcome of reserving a login attempt (see [`crate::throttle`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// The attempt may be judged.
    Admitted(Attempt),
    /// The counter's window is open: the attempt is refused unjudged; nothing changed.
    Refused(Attempt),
    /// No user has this email; nothing was written.
    NoUser,
}

impl Reservation {
    /// `Admitted(attempt)` if `admitted`, else `Refused(attempt)`.
    pub fn judged(admitted: bool, attempt: Attempt) -> Self {
        if admitted {
            Self::Admitted(attempt)
        } else {
            Self::Refused(attempt)
        }
    }
}

/// What a successful login does with device tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceGrant {
    /// The login counted on this known device (by token hash): reset its counter, which must still
    /// exist.
    Reset(String),
    /// The login counted on the untrusted counter: reset that, and create this new device.
    Issue(DeviceRecord),
}

/// A successful login's one conditional write: the first token of a new family, the family number,
/// the reset of the counter it counted on, the device grant and (when parameters were raised) the
/// new hash, applied only if the stored hash is still the one that was verified, the watermark is
/// still the one read and the user's family number is still below `family_seq` (concurrent logins
/// take distinct numbers). Otherwise nothing is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginCompletion {
    pub verified_hash: String,
    pub revoked_before_ms: i64,
    /// The new family's number, the token's [`crate::refresh::RefreshToken::family_seq`].
    pub family_seq: u64,
    /// Replace the stored hash (parameters were raised since it was made).
    pub new_password_hash: Option<String>,
    pub first_token: RefreshRecord,
    pub device: DeviceGrant,
    /// The user's MFA state as judged, and as the login leaves it (a second step spends a TOTP step
    /// or a recovery code); a password-only login leaves it as read, so a factor activated
    /// meanwhile refuses the login.
    pub mfa: MfaSwap,
    /// A second step's challenge ([`MfaChallenge::token_hash`]), consumed by this write: it must
    /// still exist.
    pub challenge_hash: Option<String>,
}

/// A password change's one conditional write: the new hash, the watermark (raised, never lowered;
/// it revokes every session and device token), the counter reset, and the new session's first token,
/// family number and device, applied only if the stored hash is still `expected_hash`. Otherwise
/// nothing is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordChange {
    pub expected_hash: String,
    pub new_hash: String,
    pub revoked_before_ms: i64,
    /// The new session's family number, set as it is: the watermark revokes every older family, so
    /// even a number a concurrent login also took leaves one live family per number.
    pub family_seq: u64,
    pub first_token: RefreshRecord,
    pub new_device: DeviceRecord,
    /// An MFA activation's change of the factor, applied only if the stored state is still the
    /// expected one (a password change leaves the state alone: `None`).
    pub mfa: Option<MfaSwap>,
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

    /// Reserves one login attempt with [`LoginThrottle::reserve`], atomically (under any
    /// concurrency, each reservation sees the previous one), on the counter of the device token whose
    /// hash is `device_token_hash` if it is [trusted](DeviceRecord::trusted_for) for the user, else
    /// on the user's untrusted counter.
    fn reserve_login_attempt(
        &self,
        email: &str,
        device_token_hash: Option<&str>,
        throttle: &LoginThrottle,
        now_ms: i64,
    ) -> impl Future<Output = StoreResult<Reservation>> + Send;

    /// Sets the window of the counter `scope` names to `locked_until_ms` if that counter is still
    /// `reserved` ([`crate::throttle::settle`]). Returns whether it applied; a missing user or device
    /// applies nothing.
    fn settle_attempt(
        &self,
        email: &str,
        scope: &AttemptScope,
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

/// Access tokens revoked before they expire (RFC 7009), by `jti`: every bearer check asks
/// ([`crate::service::AuthService::authenticate`]). An entry lives until the token could no longer
/// verify anyway (its `exp` plus the clock leeway), so the list holds only tokens that would still be
/// accepted; stores whose expiry is lazy (DynamoDB's TTL, moto's none) compare it on every read.
pub trait AccessTokenDenyList: Send + Sync + 'static {
    /// Denies the access token whose `jti` is `jti` until `expires_at_s` (seconds). Denying a denied
    /// token again keeps the later expiry.
    fn deny_access_token(
        &self,
        jti: &str,
        expires_at_s: i64,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Whether the token with this `jti` is denied at `now_ms`; expired entries are absent.
    fn is_access_token_denied(
        &self,
        jti: &str,
        now_ms: i64,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
}

// Email verification and password reset ([`crate::email_code`] makes and checks their secrets):
// the records and the pure rules the stores apply atomically.

/// Wrong or right, a record admits this many code attempts; then it is dead.
pub const MAX_CODE_ATTEMPTS: u32 = 5;
/// The hourly cap's window.
pub const SEND_WINDOW_MS: i64 = 3_600_000;

/// What a record (and its mails) is for. One live record per purpose and account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CodePurpose {
    Verify,
    Reset,
}

impl CodePurpose {
    pub const ALL: [CodePurpose; 2] = [CodePurpose::Verify, CodePurpose::Reset];

    /// The stored name (the DynamoDB sort key is `EMAILCODE#<name>`).
    pub fn as_str(self) -> &'static str {
        match self {
            CodePurpose::Verify => "verify",
            CodePurpose::Reset => "reset",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == name)
    }
}

/// A verification or reset record as stored under `USER#<email>` / `EMAILCODE#<purpose>`: the live
/// link and code (hashes only), their attempts, and the send limits of the purpose, which outlive
/// the code (the item's TTL is the later of the two).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailCode {
    pub email: String,
    pub purpose: CodePurpose,
    /// SHA-256 hex of the live link token: also the record's generation, which every conditional
    /// write on the code compares. Empty when no code was ever issued (a notice's record).
    pub token_hash: String,
    /// HMAC of the live code ([`code_mac`]).
    pub code_mac: String,
    /// The code and link work until this instant.
    pub code_expires_at_ms: i64,
    /// Code attempts made on this generation, right or wrong.
    pub attempts: u32,
    pub consumed: bool,
    /// The last mail of this purpose was queued at this instant.
    pub last_sent_ms: i64,
    /// The hourly cap's window began at this instant and has queued `window_sends` mails.
    pub window_start_ms: i64,
    pub window_sends: u32,
    /// Seconds (the TTL attribute): the later of the code's end and the send window's end.
    pub expires_at_s: i64,
}

impl EmailCode {
    /// Whether the code and link of this record can still be used at `now_ms`. Its send limits stay
    /// in force until the item itself expires.
    pub fn usable(&self, now_ms: i64) -> bool {
        !self.consumed
            && !self.token_hash.is_empty()
            && self.code_expires_at_ms > now_ms
            && self.attempts < MAX_CODE_ATTEMPTS
            && !expired(self.expires_at_s, now_ms)
    }

    /// [`EmailCodeStore::reserve_code_attempt`](crate::store::EmailCodeStore): the record with one
    /// more attempt counted, if it is usable.
    pub fn reserve_attempt(&self, now_ms: i64) -> Option<EmailCode> {
        self.usable(now_ms).then(|| EmailCode {
            attempts: self.attempts + 1,
            ..self.clone()
        })
    }
}

/// What a mail request asks for beyond the mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailAction {
    /// Replace the purpose's live code with this one (the previous link and code die).
    Issue {
        token_hash: String,
        code_mac: String,
        code_expires_at_ms: i64,
    },
    /// A notice: keep the live code, count the mail on the purpose's limits.
    Notice,
}

/// One request for a mail of `purpose` to the account `email`: decided and written by
/// [`EmailCodeStore::request_mail`](crate::store::EmailCodeStore) in one atomic step with the user
/// and record it read.
#[derive(Debug, Clone)]
pub struct MailRequest {
    pub email: String,
    pub purpose: CodePurpose,
    pub action: MailAction,
    /// Verification mails go only to accounts whose email is not verified yet.
    pub only_unverified: bool,
    pub limits: SendLimits,
    pub now_ms: i64,
    pub mail: OutboxMail,
}

/// How a mail request ended. Only `Queued` wrote anything; the client sees 202 whatever it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailOutcome {
    Queued,
    NoUser,
    AlreadyVerified,
    CoolingDown,
    HourlyCapReached,
}

impl MailRequest {
    /// The rule: the record to write (with the mail) if the request is admitted, or why not, given
    /// the user and the purpose's record as read in the same atomic step.
    pub fn decide(
        &self,
        user: Option<&User>,
        record: Option<&EmailCode>,
    ) -> Result<EmailCode, MailOutcome> {
        let user = user.ok_or(MailOutcome::NoUser)?;
        if self.only_unverified && user.email_verified {
            return Err(MailOutcome::AlreadyVerified);
        }
        let now = self.now_ms;
        let record = record.filter(|r| !expired(r.expires_at_s, now));
        let (window_start_ms, window_sends) = match record {
            Some(r) => {
                if now < r.last_sent_ms.saturating_add(self.limits.cooldown_ms) {
                    return Err(MailOutcome::CoolingDown);
                }
                if now < r.window_start_ms.saturating_add(SEND_WINDOW_MS) {
                    if r.window_sends >= self.limits.hourly_cap {
                        return Err(MailOutcome::HourlyCapReached);
                    }
                    (r.window_start_ms, r.window_sends + 1)
                } else {
                    (now, 1)
                }
            }
            None => (now, 1),
        };
        let base = match (&self.action, record) {
            (
                MailAction::Issue {
                    token_hash,
                    code_mac,
                    code_expires_at_ms,
                },
                _,
            ) => EmailCode {
                email: self.email.clone(),
                purpose: self.purpose,
                token_hash: token_hash.clone(),
                code_mac: code_mac.clone(),
                code_expires_at_ms: *code_expires_at_ms,
                attempts: 0,
                consumed: false,
                last_sent_ms: now,
                window_start_ms,
                window_sends,
                expires_at_s: 0,
            },
            (MailAction::Notice, Some(r)) => r.clone(),
            (MailAction::Notice, None) => EmailCode {
                email: self.email.clone(),
                purpose: self.purpose,
                token_hash: String::new(),
                code_mac: String::new(),
                code_expires_at_ms: 0,
                attempts: 0,
                consumed: true,
                last_sent_ms: now,
                window_start_ms,
                window_sends,
                expires_at_s: 0,
            },
        };
        let mut next = EmailCode {
            last_sent_ms: now,
            window_start_ms,
            window_sends,
            ..base
        };
        let window_end_ms = window_start_ms.saturating_add(SEND_WINDOW_MS);
        let end_ms = next.code_expires_at_ms.max(window_end_ms);
        next.expires_at_s = end_ms.div_euclid(1000) + 1;
        Ok(next)
    }
}

/// Consumes a record's live code: applied only if the record still holds the generation
/// `token_hash`, is unconsumed and its code unexpired at `now_ms` (the reservation already counted
/// the attempt). Of concurrent consumptions of one generation exactly one applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeConsumption {
    pub email: String,
    pub purpose: CodePurpose,
    pub token_hash: String,
    pub now_ms: i64,
}

impl CodeConsumption {
    /// Whether `record` (as read in the consumption's atomic step) allows it.
    pub fn allowed_by(&self, record: Option<&EmailCode>) -> bool {
        record.is_some_and(|r| {
            r.purpose == self.purpose
                && !r.consumed
                && r.token_hash == self.token_hash
                && r.code_expires_at_ms > self.now_ms
                && !expired(r.expires_at_s, self.now_ms)
        })
    }
}

/// A password reset's one conditional write: the consumption, then on the user the new hash, the
/// email marked verified, the watermark raised (every session and device token dies), the failure
/// counter cleared, and the "password changed" notice put in the outbox. Nothing if the consumption
/// is not allowed or the user is gone.
#[derive(Debug, Clone)]
pub struct PasswordReset {
    pub consumption: CodeConsumption,
    pub new_hash: String,
    pub revoked_before_ms: i64,
    pub notice: OutboxMail,
}

impl User {
    /// [`PasswordReset`] on the user.
    pub fn reset_password(&mut self, reset: &PasswordReset) {
        self.password_hash = reset.new_hash.clone();
        self.email_verified = true;
        self.revoked_before_ms = self.revoked_before_ms.max(reset.revoked_before_ms);
        self.attempts = AttemptCounter::default();
    }
}

/// A sealed mail waiting for delivery ([`crate::mail`]), stored under its own key (`OUTBOX#<id>`),
/// apart from any user, so the worker finds mails without knowing whose they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMail {
    /// 128 random bits in hex; also the seal's associated data.
    pub id: String,
    /// Standard base64 of nonce | AES-256-GCM ciphertext and tag ([`crate::mail::MailSealer`]).
    pub sealed: String,
    pub created_at_ms: i64,
    /// Seconds (the TTL attribute): an undelivered mail is dropped after this.
    pub expires_at_s: i64,
}

/// Email verification and password-reset records ([`crate::email_code`]): every change is one
/// atomic step on the state it was decided on.
pub trait EmailCodeStore: Send + Sync + 'static {
    /// Reads the user and the record of `request.purpose` and applies [`MailRequest::decide`] in one
    /// atomic step: when admitted, the new record and `request.mail` are written together, and
    /// nothing otherwise. A store makes the same number of round trips whatever the outcome, so the
    /// answer's timing tells nothing.
    fn request_mail(
        &self,
        request: &MailRequest,
    ) -> impl Future<Output = StoreResult<MailOutcome>> + Send;

    /// Reads a record as it is (expired items are absent; whether its code is usable is
    /// [`EmailCode::usable`]'s call).
    fn get_email_code(
        &self,
        email: &str,
        purpose: CodePurpose,
        now_ms: i64,
    ) -> impl Future<Output = StoreResult<Option<EmailCode>>> + Send;

    /// Counts one code attempt on the record, atomically, if [`EmailCode::reserve_attempt`] admits
    /// it, and returns the record as written; `None`: no usable record, nothing written. Under any
    /// concurrency at most [`crate::email_code::MAX_CODE_ATTEMPTS`] attempts are admitted.
    fn reserve_code_attempt(
        &self,
        email: &str,
        purpose: CodePurpose,
        now_ms: i64,
    ) -> impl Future<Output = StoreResult<Option<EmailCode>>> + Send;

    /// Consumes a verification and marks the user's email verified, in one conditional write
    /// ([`CodeConsumption::allowed_by`], and the user must exist). Returns whether it applied.
    fn verify_email(
        &self,
        consumption: &CodeConsumption,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    /// The conditional write described on [`PasswordReset`]. Returns whether it applied.
    fn reset_password(
        &self,
        reset: &PasswordReset,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
}

/// The worker's side of the outbox.
pub trait OutboxStore: Send + Sync + 'static {
    /// Up to `limit` unexpired mails, oldest first. The local server's worker polls this; on AWS the
    /// table's stream feeds the mailer instead, and this (a scan) serves tests and tools.
    fn pending_mail(
        &self,
        limit: usize,
        now_ms: i64,
    ) -> impl Future<Output = StoreResult<Vec<OutboxMail>>> + Send;

    /// Removes a delivered (or undeliverable) mail; removing a missing one is not an error.
    fn delete_mail(&self, id: &str) -> impl Future<Output = StoreResult<()>> + Send;
}

/// A user's TOTP factor as stored on the profile (one JSON attribute, [`MfaState::to_json`]), so that
/// every decision on it (a spent step, a spent recovery code, activation, a new set of codes,
/// disabling) is one conditional write of the whole state on the state it was decided on
/// ([`MfaSwap`]), and a login's completion checks it in the same write as the password and the
/// watermark. Secrets appear only sealed ([`crate::mfa::FactorKeyRing`]) or hashed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MfaState {
    pub factor_id: String,
    /// The id of the data key that sealed the secret.
    pub key_id: String,
    /// The TOTP secret, sealed with the user id and factor id as associated data.
    pub sealed_secret: String,
    /// `Some`: enrolled but not activated, and void from this instant (ms); `None`: active.
    pub pending_until_ms: Option<i64>,
    /// The last TOTP time step accepted; a code is accepted only for a later one.
    pub last_step: i64,
    /// SHA-256 of each unspent recovery code (empty while pending).
    pub recovery_hashes: Vec<String>,
}

impl MfaState {
    /// Whether logins must present this factor.
    pub fn is_active(&self) -> bool {
        self.pending_until_ms.is_none()
    }

    /// The one stored spelling (stores compare it whole in their conditions).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("the MFA state serialises")
    }

    pub fn from_json(text: &str) -> Result<Self, StoreError> {
        serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("MFA state: {e}")))
    }
}

/// One conditional change of a user's [`MfaState`]: applied only if the stored state equals
/// `expected` (absent: none), replacing it with `new`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfaSwap {
    pub expected: Option<MfaState>,
    pub new: Option<MfaState>,
}

impl MfaSwap {
    /// The state stays as read (only its being unchanged is checked).
    pub fn unchanged(state: &Option<MfaState>) -> Self {
        Self {
            expected: state.clone(),
            new: state.clone(),
        }
    }
}

/// A login's second-step challenge under `USER#<email>` / `MFA#CHAL#<token_hash>`: issued when the
/// right password met an active factor, consumed by the login it completes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfaChallenge {
    pub email: String,
    /// SHA-256 of the `mfa_token` ([`crate::mfa::MfaToken`]).
    pub token_hash: String,
    /// Hex SHA-256 of the device id the login sent (the verification must send the same).
    pub fingerprint_hash: Option<String>,
    /// Hash of the valid device token the login presented: the second step counts on that device's
    /// counter, as the first did.
    pub device_hash: Option<String>,
    /// The second step's verification attempts so far.
    pub attempts: u32,
    /// Seconds (the TTL attribute).
    pub expires_at_s: i64,
}

impl MfaChallenge {
    /// [`MfaStore::reserve_challenge_attempt`]: the challenge with one more attempt counted, if it is
    /// unexpired and has attempts left.
    pub fn reserve_attempt(&self, now_ms: i64) -> Option<MfaChallenge> {
        (!expired(self.expires_at_s, now_ms) && self.attempts < MAX_CODE_ATTEMPTS).then(|| {
            MfaChallenge {
                attempts: self.attempts + 1,
                ..self.clone()
            }
        })
    }
}

/// Second factors: the state on the profile and the login challenges.
pub trait MfaStore: Send + Sync + 'static {
    /// Applies `swap` to the user's MFA state in one conditional write. Returns whether it applied
    /// (`false`: no such user, or the state is not the expected one; nothing written).
    fn swap_mfa(
        &self,
        email: &str,
        swap: &MfaSwap,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    fn put_mfa_challenge(
        &self,
        challenge: &MfaChallenge,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Counts one attempt on the challenge, atomically, if [`MfaChallenge::reserve_attempt`] admits
    /// it, and returns the challenge as written; `None`: no usable challenge, nothing written. Under
    /// any concurrency at most [`MAX_CODE_ATTEMPTS`] attempts are admitted.
    fn reserve_challenge_attempt(
        &self,
        email: &str,
        token_hash: &str,
        now_ms: i64,
    ) -> impl Future<Output = StoreResult<Option<MfaChallenge>>> + Send;
}

/// Everything the service needs from storage.
pub trait AuthStore:
    UserStore + RefreshTokenStore + AccessTokenDenyList + EmailCodeStore + OutboxStore + MfaStore
{
}
impl<
    T: UserStore + RefreshTokenStore + AccessTokenDenyList + EmailCodeStore + OutboxStore + MfaStore,
> AuthStore for T
{
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_000_000;

    fn record() -> RefreshRecord {
        RefreshRecord {
            email: "ada@example.com".into(),
            family_id: "f".into(),
            token_id: "t1".into(),
            token_hash: "h1".into(),
            issued_at_ms: NOW - 1,
            expires_at_s: NOW / 1000 + 60,
            used_at_ms: None,
            replaced_by: None,
            fingerprint_hash: Some("laptop".into()),
        }
    }

    fn rotation() -> Rotation {
        let presented = record();
        Rotation {
            email: presented.email.clone(),
            family_id: presented.family_id.clone(),
            token_id: presented.token_id.clone(),
            presented_hash: presented.token_hash.clone(),
            presented_issued_at_ms: presented.issued_at_ms,
            retired_at_seq: 10,
            fingerprint_hash: presented.fingerprint_hash.clone(),
            now_ms: NOW,
            next: RefreshRecord {
                token_id: "t2".into(),
                token_hash: "h2".into(),
                ..presented
            },
        }
    }

    fn user() -> User {
        User {
            user_id: "u".into(),
            email: "ada@example.com".into(),
            password_hash: "p".into(),
            created_at_ms: 0,
            revoked_before_ms: 0,
            attempts: AttemptCounter::default(),
            roles: Vec::new(),
            family_seq: 1,
            email_verified: true,
            mfa: None,
        }
    }

    fn judged(presented: Option<RefreshRecord>, user: Option<User>) -> Option<RotateOutcome> {
        rotation().refusal(presented, || Ok::<_, ()>(user)).unwrap()
    }

    #[test]
    fn a_rotation_is_judged_in_the_ports_order() {
        assert_eq!(judged(Some(record()), Some(user())), None);
        assert_eq!(judged(None, Some(user())), Some(RotateOutcome::NotFound));
        let other_hash = RefreshRecord {
            token_hash: "h9".into(),
            ..record()
        };
        assert_eq!(
            judged(Some(other_hash), Some(user())),
            Some(RotateOutcome::NotFound)
        );
        let expired = RefreshRecord {
            expires_at_s: NOW / 1000,
            ..record()
        };
        assert_eq!(
            judged(Some(expired), Some(user())),
            Some(RotateOutcome::NotFound)
        );
        // A used token on another device with a revoked user is a replay first of all.
        let used_elsewhere = RefreshRecord {
            used_at_ms: Some(NOW - 1),
            fingerprint_hash: Some("phone".into()),
            ..record()
        };
        let revoking = User {
            revoked_before_ms: NOW,
            ..user()
        };
        assert_eq!(
            judged(Some(used_elsewhere.clone()), Some(revoking.clone())),
            Some(RotateOutcome::AlreadyUsed(used_elsewhere))
        );
        let elsewhere = RefreshRecord {
            fingerprint_hash: Some("phone".into()),
            ..record()
        };
        assert_eq!(
            judged(Some(elsewhere), Some(revoking.clone())),
            Some(RotateOutcome::FingerprintMismatch)
        );
        assert_eq!(
            judged(Some(record()), Some(revoking)),
            Some(RotateOutcome::Revoked)
        );
        let retired = User {
            family_seq: 10,
            ..user()
        };
        assert_eq!(
            judged(Some(record()), Some(retired)),
            Some(RotateOutcome::Revoked)
        );
        assert_eq!(judged(Some(record()), None), Some(RotateOutcome::Revoked));
    }

    #[test]
    fn the_user_is_read_only_once_the_record_passed() {
        let refused = rotation().refusal(None, || -> Result<Option<User>, ()> {
            panic!("the user must not be read")
        });
        assert_eq!(refused, Ok(Some(RotateOutcome::NotFound)));
        assert_eq!(
            rotation().refusal(Some(record()), || Err("store down")),
            Err("store down")
        );
    }
}
