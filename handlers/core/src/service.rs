//! The endpoints as plain async functions of the domain: the HTTP layer and every shell call these.

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use crate::audit::{self, AuditEvent, AuditKey, RequestContext, Subject};
use crate::clock::Clock;
use crate::config::AuthConfig;
use crate::crypto::{hashes_match, random_bytes, sha256_hex};
use crate::device;
use crate::email::normalize_email;
use crate::email_code::{
    CodeConsumption, CodePurpose, CodeSecrets, EmailCode, MailAction, MailOutcome, MailRequest,
    PasswordReset, PresentedToken, is_code_shaped,
};
use crate::error::AuthError;
use crate::keys::KeySource;
use crate::mail::{self, Mail, MailSealer, MailSecret};
use crate::mfa::FactorKeyRing;
use crate::password::{MAX_PASSWORD_BYTES, PasswordHasher, Verification};
use crate::refresh::RefreshToken;
use crate::store::{
    Attempt, AttemptCounter, AttemptScope, AuthStore, DeviceGrant, LoginCompletion, MfaSwap,
    OutboxMail, PasswordChange, Reservation, RotateOutcome, Rotation, User, expired,
};
use crate::tokens::{self, AccessClaims, SessionFlags};

mod mfa;
pub use mfa::{MfaActivated, RecoveryCodesIssued, SecondFactorProof, TotpEnrolment};

/// RFC 6749 section 5.1 token response.
#[derive(Debug, Clone, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    pub refresh_token: String,
    /// Logins and password changes only: the client's device token, to send with its next logins
    /// (see [`crate::device`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_token: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Registered {
    pub user_id: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Profile {
    pub user_id: String,
    pub email: String,
    /// Seconds since the epoch.
    pub created_at: i64,
    pub roles: Vec<String>,
    /// When the presented access token's session authenticated with a password, seconds.
    pub auth_time: i64,
    /// Whether the user proved they own `email` (read from the account, not the token).
    pub email_verified: bool,
    /// Whether logins must present a second factor (an active TOTP factor).
    pub mfa_enabled: bool,
}

/// What proves a verification or a reset: the link's token, or the mailed code with its address.
#[derive(Debug, Clone, Copy)]
pub enum EmailProof<'a> {
    Token(&'a str),
    Code { email: &'a str, code: &'a str },
}

/// How long an undelivered notice (which carries no code) waits in the outbox.
const NOTICE_TTL_SECS: i64 = 86_400;

/// The two kinds of token keygate issues to clients (RFC 7009's `token_type_hint` names them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Access,
    Refresh,
}

/// The user behind a verified bearer token.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user: User,
    pub claims: AccessClaims,
}

/// What [`AuthService::open_session`] issues a session on: the user as judged, the counter the
/// attempt counted on, and what the login's write changes beside the new family.
struct SessionStart<'a> {
    user: &'a User,
    scope: &'a AttemptScope,
    /// The device token the login presented (a second step has none in clear).
    device_token: Option<&'a str>,
    fingerprint_hash: Option<String>,
    new_password_hash: Option<String>,
    mfa: MfaSwap,
    challenge_hash: Option<String>,
    /// The session presented a second factor (`amr` gets `otp`).
    second_factor: bool,
}

/// Device ids are opaque client strings; only their hash is stored.
const MAX_DEVICE_ID_LEN: usize = 256;
/// How many family numbers a login tries before it gives up (see login).
const FAMILY_NUMBER_TRIES: u32 = 8;

fn fingerprint(device_id: Option<&str>) -> Result<Option<String>, AuthError> {
    match device_id {
        None => Ok(None),
        Some(id) if id.is_empty() || id.len() > MAX_DEVICE_ID_LEN => {
            Err(AuthError::InvalidRefreshToken)
        }
        Some(id) => Ok(Some(sha256_hex(id.as_bytes()))),
    }
}

pub struct AuthService<S, K, C> {
    config: Arc<AuthConfig>,
    store: S,
    keys: K,
    clock: C,
    hasher: PasswordHasher,
    audit_key: AuditKey,
    sealer: MailSealer,
    /// Seals and opens TOTP secrets; only the functions that handle second factors hold it.
    factor_keys: Option<FactorKeyRing>,
}

impl<S: AuthStore, K: KeySource, C: Clock> AuthService<S, K, C> {
    pub fn new(
        config: AuthConfig,
        store: S,
        keys: K,
        clock: C,
        audit_key: AuditKey,
    ) -> Result<Self, AuthError> {
        let hasher = PasswordHasher::new(config.hashing)?;
        Ok(Self {
            config: Arc::new(config),
            store,
            keys,
            clock,
            hasher,
            sealer: MailSealer::new(&audit_key),
            audit_key,
            factor_keys: None,
        })
    }

    /// Gives the service the data keys of TOTP secrets (enrolment, activation, second steps).
    pub fn with_factor_keys(mut self, ring: FactorKeyRing) -> Self {
        self.factor_keys = Some(ring);
        self
    }

    pub fn audit_key(&self) -> &AuditKey {
        &self.audit_key
    }

    /// Opens outbox mails for delivery ([`mail::deliver`]).
    pub fn sealer(&self) -> &MailSealer {
        &self.sealer
    }

    /// The context of one request, carrying this deployment's audit key.
    pub fn context(&self, request_id: String, correlation_id: String) -> RequestContext {
        RequestContext {
            request_id,
            correlation_id,
            audit_key: self.audit_key.clone(),
        }
    }

    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    /// The clock every rule of this service reads (a worker beside it reads the same time).
    pub fn clock(&self) -> &C {
        &self.clock
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub fn keys(&self) -> &K {
        &self.keys
    }

    /// POST /auth/register. An email that already has an account gets the same answer as a new one
    /// (with a random id) after the same work, so registration cannot enumerate users: a new account
    /// is sent its verification mail, an existing one's owner a notice, each by one mail request.
    pub async fn register(
        &self,
        ctx: &RequestContext,
        email: &str,
        password: &str,
    ) -> Result<Registered, AuthError> {
        let email = normalize_email(email)?;
        self.config.password_policy.check(password)?;
        let password_hash = self.hasher.hash(password)?;
        let user_id = random_uuid()?;
        let user = User {
            user_id: user_id.clone(),
            email: email.clone(),
            password_hash,
            created_at_ms: self.clock.now_ms(),
            revoked_before_ms: 0,
            attempts: AttemptCounter::default(),
            roles: Vec::new(),
            family_seq: 0,
            email_verified: false,
            mfa: None,
        };
        let created = self.store.create_user(&user).await?;
        let subject = Subject {
            email: Some(&email),
            user_id: created.then_some(user_id.as_str()),
            ..Default::default()
        };
        if created {
            audit::emit(ctx, AuditEvent::Registered, subject);
        } else {
            audit::emit(ctx, AuditEvent::RegisterDuplicate, subject);
        }
        // The verification mail (its secrets, template and seal) is built either way, and either
        // way one mail request follows; a taken address adds only the notice's seal, microseconds
        // beside the hash both answers ran.
        let now = self.clock.now_ms();
        let (verification, _secrets) = self.code_mail_request(&email, CodePurpose::Verify, now)?;
        let request = if created {
            verification
        } else {
            let notice = Mail::register_attempt(&email, &self.config.app_url);
            MailRequest {
                action: MailAction::Notice,
                only_unverified: false,
                mail: self.seal_notice(&notice, now)?,
                ..verification
            }
        };
        let outcome = self.store.request_mail(&request).await?;
        let event = match (created, outcome) {
            (true, MailOutcome::Queued) => AuditEvent::EmailVerificationSent,
            (false, MailOutcome::Queued) => AuditEvent::RegisterNoticeSent,
            _ => AuditEvent::EmailMailSuppressed,
        };
        audit::emit(
            ctx,
            event,
            Subject {
                reason: Some(outcome_reason(outcome)),
                ..subject
            },
        );
        Ok(Registered { user_id })
    }

    /// A notice (no link or code) sealed for the outbox, where it waits [`NOTICE_TTL_SECS`] at most.
    fn seal_notice(&self, notice: &Mail, now: i64) -> Result<OutboxMail, AuthError> {
        self.sealer
            .seal(notice, now, now.div_euclid(1000) + NOTICE_TTL_SECS)
    }

    /// The request for a mail with a fresh link and code of `purpose` to `email` (whatever the
    /// account's state: the store decides), and the secrets it carries, sealed in its mail.
    fn code_mail_request(
        &self,
        email: &str,
        purpose: CodePurpose,
        now: i64,
    ) -> Result<(MailRequest, CodeSecrets), AuthError> {
        let (ttl_secs, path) = match purpose {
            CodePurpose::Verify => (self.config.email_verification_ttl_secs, mail::VERIFY_PATH),
            CodePurpose::Reset => (self.config.password_reset_ttl_secs, mail::RESET_PATH),
        };
        let secrets = CodeSecrets::new(&self.audit_key, purpose, email)?;
        let link = mail::link(&self.config.app_url, path, &secrets.token);
        let secret = MailSecret {
            link: &link,
            code: &secrets.code,
            valid_for_secs: ttl_secs,
        };
        let message = match purpose {
            CodePurpose::Verify => Mail::verification(email, &secret),
            CodePurpose::Reset => Mail::password_reset(email, &secret),
        };
        let code_expires_at_ms = now.saturating_add(ttl_secs as i64 * 1000);
        // A mail is useless once its code has expired: the outbox drops it then.
        let sealed = self
            .sealer
            .seal(&message, now, code_expires_at_ms.div_euclid(1000) + 1)?;
        let request = MailRequest {
            email: email.to_owned(),
            purpose,
            action: MailAction::Issue {
                token_hash: secrets.token_hash.clone(),
                code_mac: secrets.code_mac.clone(),
                code_expires_at_ms,
            },
            only_unverified: purpose == CodePurpose::Verify,
            limits: self.config.email_limits,
            now_ms: now,
            mail: sealed,
        };
        Ok((request, secrets))
    }

    /// POST /auth/email/verification and POST /auth/password/forgot: queues a mail with a new link
    /// and code (killing the previous ones) if the account exists, still needs it (verification) and
    /// is within its send limits. The caller answers 202 whatever happened: one mail request, the
    /// same work, for every address.
    pub async fn request_code(
        &self,
        ctx: &RequestContext,
        email: &str,
        purpose: CodePurpose,
    ) -> Result<(), AuthError> {
        let email = normalize_email(email)?;
        let (request, _secrets) = self.code_mail_request(&email, purpose, self.clock.now_ms())?;
        let outcome = self.store.request_mail(&request).await?;
        let event = match (purpose, outcome) {
            (CodePurpose::Verify, MailOutcome::Queued) => AuditEvent::EmailVerificationSent,
            (CodePurpose::Verify, _) => AuditEvent::EmailMailSuppressed,
            (CodePurpose::Reset, MailOutcome::Queued) => AuditEvent::PasswordResetRequested,
            (CodePurpose::Reset, _) => AuditEvent::PasswordResetSuppressed,
        };
        audit::emit(
            ctx,
            event,
            Subject {
                email: Some(&email),
                reason: Some(outcome_reason(outcome)),
                ..Default::default()
            },
        );
        Ok(())
    }

    /// The record whose live code `proof` proves for `purpose`, or `InvalidCode`. A code attempt is
    /// counted (reserved) before the code is compared, so concurrency cannot exceed the attempt cap;
    /// a link token is 256 bits and counts nothing, so nobody can kill a link by guessing at it.
    async fn proven_record(
        &self,
        ctx: &RequestContext,
        purpose: CodePurpose,
        proof: EmailProof<'_>,
        now: i64,
    ) -> Result<EmailCode, AuthError> {
        match proof {
            EmailProof::Token(token) => {
                let presented = PresentedToken::parse(purpose, token)?;
                self.store
                    .get_email_code(&presented.email, purpose, now)
                    .await?
                    .filter(|record| record.accepts_token(&presented, now))
                    .ok_or(AuthError::InvalidCode)
            }
            EmailProof::Code { email, code } => {
                let email = normalize_email(email).map_err(|_| AuthError::InvalidCode)?;
                if !is_code_shaped(code) {
                    return Err(AuthError::InvalidCode);
                }
                let record = self
                    .store
                    .reserve_code_attempt(&email, purpose, now)
                    .await?
                    .ok_or(AuthError::InvalidCode)?;
                if record.accepts_code(&self.audit_key, code) {
                    return Ok(record);
                }
                let event = match purpose {
                    CodePurpose::Verify => AuditEvent::EmailCodeFailed,
                    CodePurpose::Reset => AuditEvent::PasswordResetFailed,
                };
                audit::emit(
                    ctx,
                    event,
                    Subject {
                        email: Some(&email),
                        reason: Some("wrong_code"),
                        ..Default::default()
                    },
                );
                Err(AuthError::InvalidCode)
            }
        }
    }

    /// POST /auth/email/verify: consumes the live verification and marks the email verified, in one
    /// conditional write; of concurrent uses of one code, one succeeds.
    pub async fn verify_email(
        &self,
        ctx: &RequestContext,
        proof: EmailProof<'_>,
    ) -> Result<(), AuthError> {
        let now = self.clock.now_ms();
        let record = self
            .proven_record(ctx, CodePurpose::Verify, proof, now)
            .await?;
        let consumption = CodeConsumption {
            email: record.email.clone(),
            purpose: CodePurpose::Verify,
            token_hash: record.token_hash.clone(),
            now_ms: now,
        };
        let subject = Subject {
            email: Some(&record.email),
            ..Default::default()
        };
        if !self.store.verify_email(&consumption).await? {
            audit::emit(
                ctx,
                AuditEvent::EmailCodeFailed,
                Subject {
                    reason: Some("lost_race"),
                    ..subject
                },
            );
            return Err(AuthError::InvalidCode);
        }
        audit::emit(ctx, AuditEvent::EmailVerified, subject);
        Ok(())
    }

    /// POST /auth/password/reset: checks the policy before anything is spent, proves the live reset,
    /// then one conditional write consumes it, sets the new hash, marks the email verified, revokes
    /// every session and device token (the watermark), clears the failure counter and queues the
    /// "password changed" notice. Of concurrent resets with one code, exactly one succeeds. It does
    /// not log in.
    pub async fn reset_password(
        &self,
        ctx: &RequestContext,
        proof: EmailProof<'_>,
        new_password: &str,
    ) -> Result<(), AuthError> {
        self.config.password_policy.check(new_password)?;
        let record = self
            .proven_record(ctx, CodePurpose::Reset, proof, self.clock.now_ms())
            .await?;
        let new_hash = self.hasher.hash(new_password)?;
        // Taken after hashing, as in change_password: a login that completed before this write took
        // its issue time earlier, so its session is revoked (+1: this very millisecond too).
        let now = self.clock.now_ms();
        let notice = Mail::password_changed(&record.email, &self.config.app_url);
        let reset = PasswordReset {
            consumption: CodeConsumption {
                email: record.email.clone(),
                purpose: CodePurpose::Reset,
                token_hash: record.token_hash.clone(),
                now_ms: now,
            },
            new_hash,
            revoked_before_ms: now + 1,
            notice: self.seal_notice(&notice, now)?,
        };
        let subject = Subject {
            email: Some(&record.email),
            ..Default::default()
        };
        if !self.store.reset_password(&reset).await? {
            audit::emit(
                ctx,
                AuditEvent::PasswordResetFailed,
                Subject {
                    reason: Some("lost_race"),
                    ..subject
                },
            );
            return Err(AuthError::InvalidCode);
        }
        audit::emit(ctx, AuditEvent::PasswordResetCompleted, subject);
        Ok(())
    }

    /// POST /auth/login. The attempt is reserved before the password is judged (see
    /// [`crate::throttle`]), on the counter of `device_token` when it is a valid device token of
    /// this user and on the user's untrusted counter otherwise; unknown email, wrong password,
    /// refused attempt and a lost race give one error after the same work: one reservation write,
    /// one argon2id verification, one conditional write.
    pub async fn login(
        &self,
        ctx: &RequestContext,
        email: &str,
        password: &str,
        device_id: Option<&str>,
        device_token: Option<&str>,
    ) -> Result<TokenResponse, AuthError> {
        let email = normalize_email(email).map_err(|_| AuthError::InvalidCredentials)?;
        let fingerprint_hash = fingerprint(device_id).map_err(|_| AuthError::InvalidCredentials)?;
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(AuthError::InvalidCredentials);
        }
        let device_hash = device_token.and_then(device::presented_hash);
        // The session's issue time is taken before judging, so a password change that commits after
        // this login's write always has a later watermark (see change_password).
        let now = self.clock.now_ms();
        let reservation = self
            .store
            .reserve_login_attempt(&email, device_hash.as_deref(), &self.config.throttle, now)
            .await?;
        let attempt = match reservation {
            Reservation::Admitted(attempt) => attempt,
            Reservation::Refused(attempt) => {
                self.hasher.verify_dummy(password);
                // Rewrites the window it read: the same write a failure makes, changing nothing.
                let window = attempt.counter.locked_until_ms;
                self.settle(&email, &attempt, window).await?;
                audit::emit(ctx, AuditEvent::LoginThrottled, user_subject(&attempt.user));
                return Err(AuthError::InvalidCredentials);
            }
            Reservation::NoUser => {
                self.hasher.verify_dummy(password);
                // Applies nothing (no such user) but costs the same round trip as a real failure.
                self.store
                    .settle_attempt(
                        &email,
                        &AttemptScope::Untrusted,
                        &AttemptCounter::default(),
                        0,
                    )
                    .await?;
                audit::emit(
                    ctx,
                    AuditEvent::LoginFailed,
                    Subject {
                        email: Some(&email),
                        ..Default::default()
                    },
                );
                return Err(AuthError::InvalidCredentials);
            }
        };
        let user = &attempt.user;
        let subject = user_subject(user);
        let Verification::Match { needs_rehash } =
            self.hasher.verify(password, &user.password_hash)
        else {
            let window = self.config.throttle.window_after_failure(&attempt.counter);
            self.settle(&email, &attempt, window).await?;
            audit::emit(ctx, AuditEvent::LoginFailed, subject);
            return Err(AuthError::InvalidCredentials);
        };
        if self.config.require_verified_email && !user.email_verified {
            // The password was right: nothing is issued, the attempt stays counted, and the window
            // its reservation held while judging is released (the owner may verify and log in at
            // once).
            self.settle(&email, &attempt, 0).await?;
            audit::emit(ctx, AuditEvent::LoginUnverified, subject);
            return Err(AuthError::EmailNotVerified);
        }
        if user.active_factor().is_some() {
            // The password was right: the attempt stays counted until the second step succeeds (a
            // failed code counts again there), but it releases the window its reservation held
            // while judging, or the second step would wait out PENDING_JUDGEMENT_MS. Parameters
            // raised since the hash was made wait for a password-only login: the second step has
            // no password to rehash.
            self.settle(&email, &attempt, 0).await?;
            let issued = self
                .challenge(user, &attempt.scope, fingerprint_hash, now)
                .await?;
            audit::emit(ctx, AuditEvent::MfaChallenged, subject);
            return Err(AuthError::MfaRequired(issued));
        }
        let new_password_hash = if needs_rehash {
            Some(self.hasher.hash(password)?)
        } else {
            None
        };
        let start = SessionStart {
            user,
            scope: &attempt.scope,
            device_token,
            fingerprint_hash,
            new_password_hash,
            mfa: MfaSwap::unchanged(&user.mfa),
            challenge_hash: None,
            second_factor: false,
        };
        let Some((response, family_id)) = self.open_session(start, now).await? else {
            // The password or the watermark changed while this attempt was judged: had it arrived
            // later, it would have been judged against the new state. Nothing was issued.
            audit::emit(ctx, AuditEvent::LoginFailed, subject);
            return Err(AuthError::InvalidCredentials);
        };
        audit::emit(
            ctx,
            AuditEvent::LoginSucceeded,
            Subject {
                family_id: Some(&family_id),
                ..subject
            },
        );
        Ok(response)
    }

    /// A judged login's one conditional write ([`LoginCompletion`]): the first token of a new family
    /// and the device grant, on the state `start.user` was judged on. Returns the response and the
    /// family id, or `None` when that state changed meanwhile (nothing was issued).
    async fn open_session(
        &self,
        start: SessionStart<'_>,
        now: i64,
    ) -> Result<Option<(TokenResponse, String)>, AuthError> {
        let user = start.user;
        // A watermark later than `now` was written, between reading the clock and the user, by a
        // password change or logout-all that took it as its millisecond + 1: this login judged the
        // state after it, so its session is issued at the watermark, not revoked by it. The
        // completion below is conditional on this watermark, so a later revocation still wins.
        let now = now.max(user.revoked_before_ms);
        let mut family_seq = user.family_seq + 1;
        let mut token = self.new_family(user, family_seq, start.second_factor, now)?;
        let mut response = self.token_response(&token, &user.user_id, now).await?;
        let device = match start.scope {
            AttemptScope::Device(hash) => {
                // The device keeps its token: the one just found valid (a second step, which never
                // sees it in clear, leaves it out of the response; the client holds it).
                response.device_token = start.device_token.map(str::to_owned);
                DeviceGrant::Reset(hash.clone())
            }
            AttemptScope::Untrusted => {
                let issued = device::issue(&user.email, now, self.config.device_token_ttl_secs)?;
                response.device_token = Some(issued.token);
                DeviceGrant::Issue(issued.record)
            }
        };
        // Concurrent logins of one user read the same family number and only one can take it; the
        // others take the next free one. A few tries cover any realistic burst of one user's logins.
        for tries in 1.. {
            let completion = LoginCompletion {
                verified_hash: user.password_hash.clone(),
                revoked_before_ms: user.revoked_before_ms,
                family_seq,
                new_password_hash: start.new_password_hash.clone(),
                first_token: token.record(start.fingerprint_hash.clone()),
                device: device.clone(),
                mfa: start.mfa.clone(),
                challenge_hash: start.challenge_hash.clone(),
            };
            if self.store.complete_login(&completion).await? {
                break;
            }
            // Only the number was lost if the user is otherwise as this attempt judged it.
            let number_taken_by = self.store.get_user(&user.email).await?.filter(|fresh| {
                fresh.password_hash == user.password_hash
                    && fresh.revoked_before_ms == user.revoked_before_ms
                    && fresh.mfa == user.mfa
                    && fresh.family_seq >= family_seq
            });
            match number_taken_by {
                Some(fresh) if tries < FAMILY_NUMBER_TRIES => family_seq = fresh.family_seq + 1,
                _ => return Ok(None),
            }
            token = self.new_family(user, family_seq, start.second_factor, now)?;
            response.refresh_token = token.encode();
        }
        Ok(Some((response, token.family_id_hex())))
    }

    /// Settles a judged (or refused) attempt on the counter it was reserved on.
    async fn settle(
        &self,
        email: &str,
        attempt: &Attempt,
        locked_until_ms: i64,
    ) -> Result<bool, AuthError> {
        Ok(self
            .store
            .settle_attempt(email, &attempt.scope, &attempt.counter, locked_until_ms)
            .await?)
    }

    /// The first token of `user`'s family number `family_seq`, issued at `now`.
    fn new_family(
        &self,
        user: &User,
        family_seq: u64,
        second_factor: bool,
        now: i64,
    ) -> Result<RefreshToken, AuthError> {
        let user_id = uuid::Uuid::try_parse(&user.user_id)
            .map_err(|_| AuthError::Internal("stored user id is not a UUID".into()))?;
        RefreshToken::new_family(
            &user.email,
            user_id.into_bytes(),
            family_seq,
            SessionFlags {
                email_verified: user.email_verified,
                second_factor,
            },
            now,
            self.config.refresh_family_ttl_secs,
        )
    }

    /// POST /auth/refresh: one atomic rotation in the store.
    pub async fn refresh(
        &self,
        ctx: &RequestContext,
        refresh_token: &str,
        device_id: Option<&str>,
    ) -> Result<TokenResponse, AuthError> {
        let presented = RefreshToken::parse(refresh_token)?;
        let fingerprint_hash = fingerprint(device_id)?;
        let now = self.clock.now_ms();
        if expired(presented.family_expires_at_s, now) {
            return Err(AuthError::InvalidRefreshToken);
        }
        // Keys first: if signing is impossible, fail before consuming the presented token.
        let keys = self.keys.key_set().await?;
        let next = presented.child(now)?;
        let rotation = Rotation {
            email: presented.email.clone(),
            family_id: presented.family_id_hex(),
            token_id: presented.token_id_hex(),
            presented_hash: presented.hash(),
            presented_issued_at_ms: presented.issued_at_ms,
            retired_at_seq: presented
                .family_seq
                .saturating_add(self.config.max_refresh_families),
            fingerprint_hash: fingerprint_hash.clone(),
            now_ms: now,
            next: next.record(fingerprint_hash),
        };
        let user_id = presented.user_id_string();
        let family_id = rotation.family_id.clone();
        let subject = Subject {
            email: Some(&presented.email),
            user_id: Some(&user_id),
            family_id: Some(&family_id),
            ..Default::default()
        };
        match self.store.rotate_refresh_token(&rotation).await? {
            RotateOutcome::Rotated => {
                let access = tokens::issue(
                    &keys,
                    &self.config,
                    &user_id,
                    presented.auth_time_s,
                    presented.session_flags(),
                    now,
                )?;
                audit::emit(ctx, AuditEvent::RefreshRotated, subject);
                Ok(TokenResponse {
                    access_token: access.token,
                    token_type: "Bearer",
                    expires_in: access.expires_in,
                    refresh_token: next.encode(),
                    device_token: None,
                })
            }
            RotateOutcome::AlreadyUsed(used) => {
                let grace_ms = self.config.refresh_reuse_grace_secs as i64 * 1000;
                let within_grace = used.used_at_ms.is_some_and(|at| now - at <= grace_ms);
                let child_is_live = match (&used.replaced_by, within_grace) {
                    (Some(child_id), true) => self
                        .store
                        .get_refresh_token(&presented.email, &family_id, child_id, now)
                        .await?
                        .is_some_and(|child| child.used_at_ms.is_none()),
                    _ => false,
                };
                if child_is_live {
                    audit::emit(ctx, AuditEvent::RefreshRaceRefused, subject);
                } else {
                    self.store
                        .revoke_family(&presented.email, &family_id)
                        .await?;
                    audit::emit(ctx, AuditEvent::RefreshReuseDetected, subject);
                }
                Err(AuthError::InvalidRefreshToken)
            }
            RotateOutcome::FingerprintMismatch => {
                self.store
                    .revoke_family(&presented.email, &family_id)
                    .await?;
                audit::emit(ctx, AuditEvent::RefreshDeviceMismatch, subject);
                Err(AuthError::InvalidRefreshToken)
            }
            RotateOutcome::Revoked => {
                audit::emit(ctx, AuditEvent::RefreshRevoked, subject);
                Err(AuthError::InvalidRefreshToken)
            }
            RotateOutcome::NotFound => Err(AuthError::InvalidRefreshToken),
        }
    }

    /// POST /auth/logout: revokes the presented token's family. Answers the same whether or not the
    /// token was live (RFC 7009's rule), so it reveals nothing.
    pub async fn logout(&self, ctx: &RequestContext, refresh_token: &str) -> Result<(), AuthError> {
        self.revoke_refresh_token(ctx, refresh_token)
            .await
            .map(drop)
    }

    /// POST /oauth/revoke (RFC 7009): a refresh token revokes its family (as [`Self::logout`]); an
    /// access token that verifies is denied until it could no longer verify. `hint` only orders the
    /// search (section 2.1: a server that does not find the token under the hinted type searches the
    /// other). Anything else (unknown, expired, foreign, malformed) changes nothing and answers the
    /// same; only an unavailable store or key set fails, so the client can retry.
    pub async fn revoke(
        &self,
        ctx: &RequestContext,
        token: &str,
        hint: Option<TokenKind>,
    ) -> Result<(), AuthError> {
        let order = match hint {
            Some(TokenKind::Access) => [TokenKind::Access, TokenKind::Refresh],
            _ => [TokenKind::Refresh, TokenKind::Access],
        };
        for kind in order {
            let found = match kind {
                TokenKind::Refresh => self.revoke_refresh_token(ctx, token).await?,
                TokenKind::Access => self.revoke_access_token(ctx, token).await?,
            };
            if found {
                break;
            }
        }
        Ok(())
    }

    /// Denies a verified access token until its `exp` plus the leeway verification allows. Returns
    /// whether `token` was a valid access token of this deployment.
    async fn revoke_access_token(
        &self,
        ctx: &RequestContext,
        token: &str,
    ) -> Result<bool, AuthError> {
        // Not a JWT at all (a refresh token searched here first under the hint): no key is read, so
        // revoking a refresh token never depends on the key set.
        if jsonwebtoken::decode_header(token).is_err() {
            return Ok(false);
        }
        let claims =
            match tokens::verify_from(&self.keys, &self.config, token, self.clock.now_ms()).await {
                Ok(claims) => claims,
                Err(AuthError::InvalidAccessToken) => return Ok(false),
                Err(unavailable) => return Err(unavailable),
            };
        let until_s = claims.exp.saturating_add(self.config.leeway_secs as i64);
        self.store.deny_access_token(&claims.jti, until_s).await?;
        audit::emit(
            ctx,
            AuditEvent::AccessTokenRevoked,
            Subject {
                user_id: Some(&claims.sub),
                ..Default::default()
            },
        );
        Ok(true)
    }

    /// Revokes the family of a live refresh token. Returns whether `refresh_token` was one.
    async fn revoke_refresh_token(
        &self,
        ctx: &RequestContext,
        refresh_token: &str,
    ) -> Result<bool, AuthError> {
        let Ok(presented) = RefreshToken::parse(refresh_token) else {
            return Ok(false);
        };
        let now = self.clock.now_ms();
        let (family_id, token_id) = (presented.family_id_hex(), presented.token_id_hex());
        let record = self
            .store
            .get_refresh_token(&presented.email, &family_id, &token_id, now)
            .await?;
        if !record.is_some_and(|r| hashes_match(&r.token_hash, &presented.hash())) {
            return Ok(false);
        }
        self.store
            .revoke_family(&presented.email, &family_id)
            .await?;
        let user_id = presented.user_id_string();
        audit::emit(
            ctx,
            AuditEvent::Logout,
            Subject {
                email: Some(&presented.email),
                user_id: Some(&user_id),
                family_id: Some(&family_id),
                ..Default::default()
            },
        );
        Ok(true)
    }

    /// Verifies a bearer access token and loads its user, applying the revocation watermark and the
    /// deny-list of revoked access tokens: the one place every bearer route checks its token, so a
    /// new route cannot forget either. The deny-list read runs concurrently with the user's, so it
    /// adds one store read per bearer request but no round trip.
    pub async fn authenticate(&self, bearer: &str) -> Result<Principal, AuthError> {
        let now = self.clock.now_ms();
        let claims = tokens::verify_from(&self.keys, &self.config, bearer, now).await?;
        let (user, denied) = futures_util::future::join(
            self.store.get_user_by_id(&claims.sub),
            self.store.is_access_token_denied(&claims.jti, now),
        )
        .await;
        if denied? {
            return Err(AuthError::InvalidAccessToken);
        }
        let user = user?.ok_or(AuthError::InvalidAccessToken)?;
        let issued_ms = claims.issued_at_ms().ok_or(AuthError::InvalidAccessToken)?;
        if issued_ms < user.revoked_before_ms {
            return Err(AuthError::InvalidAccessToken);
        }
        Ok(Principal { user, claims })
    }

    /// GET /auth/me.
    pub async fn me(&self, bearer: &str) -> Result<Profile, AuthError> {
        let Principal { user, claims } = self.authenticate(bearer).await?;
        let mfa_enabled = user.active_factor().is_some();
        Ok(Profile {
            user_id: user.user_id,
            email: user.email,
            created_at: user.created_at_ms.div_euclid(1000),
            roles: user.roles,
            auth_time: claims.auth_time,
            email_verified: user.email_verified,
            mfa_enabled,
        })
    }

    /// POST /auth/logout-all: every token issued until now is revoked, by one conditional write of the
    /// watermark (rotations and bearer checks read it); the revoked records expire with their TTL.
    pub async fn logout_all(&self, ctx: &RequestContext, bearer: &str) -> Result<(), AuthError> {
        let Principal { user, .. } = self.authenticate(bearer).await?;
        // +1: a token issued in this very millisecond (issued_ms < watermark revokes) is revoked too.
        let watermark = self.clock.now_ms() + 1;
        self.store
            .set_revoked_before(&user.email, watermark)
            .await?;
        audit::emit(ctx, AuditEvent::LogoutAll, user_subject(&user));
        Ok(())
    }

    /// POST /auth/password: checks the current password (throttled like a login without a device
    /// token, on the untrusted counter, and refused before any hashing when the window is open),
    /// then one conditional write replaces the hash, revokes every session and device token, and
    /// starts a new session with a new device token.
    pub async fn change_password(
        &self,
        ctx: &RequestContext,
        bearer: &str,
        current: &str,
        new: &str,
    ) -> Result<TokenResponse, AuthError> {
        let Principal { user, claims } = self.authenticate(bearer).await?;
        // The new session authenticated as the one that asked: a second factor it presented counts.
        let second_factor = claims.amr.iter().any(|m| m == tokens::AMR_OTP);
        if current.len() > MAX_PASSWORD_BYTES {
            return Err(AuthError::InvalidCredentials);
        }
        self.config.password_policy.check(new)?;
        let reservation = self
            .store
            .reserve_login_attempt(
                &user.email,
                None,
                &self.config.throttle,
                self.clock.now_ms(),
            )
            .await?;
        let attempt = match reservation {
            Reservation::Admitted(attempt) => attempt,
            Reservation::Refused(attempt) => {
                audit::emit(ctx, AuditEvent::LoginThrottled, user_subject(&attempt.user));
                return Err(AuthError::InvalidCredentials);
            }
            // Deleted since the bearer check.
            Reservation::NoUser => return Err(AuthError::InvalidAccessToken),
        };
        let user = &attempt.user;
        let subject = user_subject(user);
        if self.hasher.verify(current, &user.password_hash) == Verification::Mismatch {
            let window = self.config.throttle.window_after_failure(&attempt.counter);
            self.settle(&user.email, &attempt, window).await?;
            audit::emit(ctx, AuditEvent::PasswordChangeFailed, subject);
            return Err(AuthError::InvalidCredentials);
        }
        let new_hash = self.hasher.hash(new)?;
        let mut expected_hash = user.password_hash.clone();
        // At most one retry: a login that rehashed the same password in between (parameters were
        // raised) changed the stored hash but not the password.
        for _ in 0..2 {
            let (response, change) = self
                .replacing_session(user, &expected_hash, &new_hash, second_factor, None)
                .await?;
            if self.store.change_password(&change).await? {
                audit::emit(ctx, AuditEvent::PasswordChanged, subject);
                return Ok(response);
            }
            let Some(fresh) = self.store.get_user(&user.email).await? else {
                return Err(AuthError::InvalidAccessToken);
            };
            let rehashed = fresh.password_hash != expected_hash
                && fresh.revoked_before_ms <= user.revoked_before_ms
                && matches!(
                    self.hasher.verify(current, &fresh.password_hash),
                    Verification::Match { .. }
                );
            if !rehashed {
                break;
            }
            expected_hash = fresh.password_hash;
        }
        // Someone changed the password (or ended every session) concurrently: the credentials just
        // checked are stale, as they would be had this request arrived later.
        audit::emit(ctx, AuditEvent::PasswordChangeFailed, subject);
        Err(AuthError::InvalidCredentials)
    }

    /// A new session that ends every other (a password change, an MFA activation), and the one
    /// conditional write ([`PasswordChange`]) that sets `new_hash` and `mfa` with it. The watermark
    /// is taken now, after any hashing and just before the write: a login that completed before the
    /// write took its issue time earlier, so its session is revoked (+1: this very millisecond too).
    async fn replacing_session(
        &self,
        user: &User,
        expected_hash: &str,
        new_hash: &str,
        second_factor: bool,
        mfa: Option<MfaSwap>,
    ) -> Result<(TokenResponse, PasswordChange), AuthError> {
        let watermark = self.clock.now_ms() + 1;
        let family_seq = user.family_seq + 1;
        let token = self.new_family(user, family_seq, second_factor, watermark)?;
        let mut response = self
            .token_response(&token, &user.user_id, watermark)
            .await?;
        // Created at the watermark, so the watermark that revokes the old devices spares it.
        let device = device::issue(&user.email, watermark, self.config.device_token_ttl_secs)?;
        response.device_token = Some(device.token);
        let change = PasswordChange {
            expected_hash: expected_hash.to_owned(),
            new_hash: new_hash.to_owned(),
            revoked_before_ms: watermark,
            family_seq,
            first_token: token.record(None),
            new_device: device.record,
            mfa,
        };
        Ok((response, change))
    }

    async fn token_response(
        &self,
        token: &RefreshToken,
        user_id: &str,
        now: i64,
    ) -> Result<TokenResponse, AuthError> {
        let keys = self.keys.key_set().await?;
        let access = tokens::issue(
            &keys,
            &self.config,
            user_id,
            token.auth_time_s,
            token.session_flags(),
            now,
        )?;
        Ok(TokenResponse {
            access_token: access.token,
            token_type: "Bearer",
            expires_in: access.expires_in,
            refresh_token: token.encode(),
            device_token: None,
        })
    }

    /// GET /.well-known/jwks.json.
    pub async fn jwks(&self) -> Result<Value, AuthError> {
        Ok(self.keys.key_set().await?.jwks())
    }
}

/// The audit `reason` of a mail request's outcome (never sent to the client).
fn outcome_reason(outcome: MailOutcome) -> &'static str {
    match outcome {
        MailOutcome::Queued => "queued",
        MailOutcome::NoUser => "no_account",
        MailOutcome::AlreadyVerified => "already_verified",
        MailOutcome::CoolingDown => "cooldown",
        MailOutcome::HourlyCapReached => "hourly_cap",
    }
}

/// A random (version 4) UUID, hyphenated: user ids and factor ids.
fn random_uuid() -> Result<String, AuthError> {
    Ok(uuid::Builder::from_random_bytes(random_bytes()?)
        .into_uuid()
        .hyphenated()
        .to_string())
}

fn user_subject(user: &User) -> Subject<'_> {
    Subject {
        email: Some(&user.email),
        user_id: Some(&user.user_id),
        ..Default::default()
    }
}
