//! The endpoints' security rules on one store, through the service: each behaviour drives
//! [`AuthService`] with a [`ManualClock`] and checks a rule as a client would see it.

use std::sync::Arc;

use keygate_core::SigningAlgorithm;
use keygate_core::audit::RequestContext;
use keygate_core::config::AuthConfig;
use keygate_core::error::AuthError;
use keygate_core::keys::{KeySet, KeySetDocument, generate_key};
use keygate_core::password::{HashingParams, PasswordHasher};
use keygate_core::refresh::RefreshToken;
use keygate_core::service::{AuthService, Registered, TokenResponse};
use keygate_core::store::{AttemptCounter, AuthStore, PasswordChange, User};

use crate::doubles::{ManualClock, StaticKeySource, audit_capture};
use crate::fixtures::*;

/// The service wired to a store with a manual clock and a fresh ES256 key.
pub struct ServiceHarness<S: AuthStore> {
    pub service: Arc<AuthService<S, StaticKeySource, Arc<ManualClock>>>,
    pub clock: Arc<ManualClock>,
    pub ctx: RequestContext,
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
        .expect("service")
        .with_factor_keys(test_factor_keys());
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
        keygate_core::Clock::now_ms(&self.clock)
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

pub(crate) fn refused_refresh(result: Result<TokenResponse, AuthError>, why: &str) {
    match result {
        Err(AuthError::InvalidRefreshToken) => {}
        Err(other) => panic!("{why}: expected InvalidRefreshToken, got {other:?}"),
        Ok(_) => panic!("{why}: the refresh must be refused"),
    }
}

pub(crate) fn refused_login(result: Result<TokenResponse, AuthError>, why: &str) {
    match result {
        Err(AuthError::InvalidCredentials) => {}
        Err(other) => panic!("{why}: expected InvalidCredentials, got {other:?}"),
        Ok(_) => panic!("{why}: the login must be refused"),
    }
}

pub(crate) fn refused_bearer<T: std::fmt::Debug>(result: Result<T, AuthError>, why: &str) {
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

/// A login that starts in the very millisecond a password change or logout-all took its watermark
/// (which is that millisecond + 1, so tokens issued in it before the change are revoked) judged the
/// state after the change: its session works. The clock does not move between the calls.
pub async fn service_login_right_after_a_revocation_is_not_revoked<S: AuthStore>(store: S) {
    let h = ServiceHarness::new(store);
    let (email, _) = h.registered("right-after").await;
    let first = h.login(&email, PASSWORD, None).await.unwrap();
    h.advance_ms(1_000);
    h.service
        .change_password(&h.ctx, &first.access_token, PASSWORD, NEW_PASSWORD)
        .await
        .expect("password change");
    let after_change = h.login(&email, NEW_PASSWORD, None).await.unwrap();
    h.service
        .me(&after_change.access_token)
        .await
        .expect("a login after the change, in its millisecond, is live");
    h.refresh(&after_change.refresh_token, None)
        .await
        .expect("and so is its refresh token");

    h.advance_ms(1_000);
    let bearer = h.login(&email, NEW_PASSWORD, None).await.unwrap();
    h.service
        .logout_all(&h.ctx, &bearer.access_token)
        .await
        .expect("logout-all");
    refused_bearer(
        h.service.me(&bearer.access_token).await,
        "the token logged out",
    );
    let after_logout_all = h.login(&email, NEW_PASSWORD, None).await.unwrap();
    h.service
        .me(&after_logout_all.access_token)
        .await
        .expect("a login after logout-all, in its millisecond, is live");
    h.refresh(&after_logout_all.refresh_token, None)
        .await
        .expect("and so is its refresh token");
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
    let forged = keygate_core::device::issue(&email, h.now_ms(), 3600)
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
                    mfa: None,
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

/// RFC 7009 with an access token: once revoked it is refused by every bearer route (me, logout-all,
/// password change) until it expires, while the session's other tokens keep working; revoking junk,
/// a foreign or an expired token answers the same and changes nothing.
pub async fn service_revoked_access_token_is_refused_by_every_bearer_route<S: AuthStore>(store: S) {
    use keygate_core::service::TokenKind;
    let h = ServiceHarness::new(store);
    let (email, _) = h.registered("revoke-access").await;
    let session = h.login(&email, PASSWORD, None).await.unwrap();
    h.service
        .me(&session.access_token)
        .await
        .expect("me before revocation");
    let other = h.login(&email, PASSWORD, None).await.unwrap();

    h.service
        .revoke(&h.ctx, &session.access_token, None)
        .await
        .expect("revocation answers");
    refused_bearer(
        h.service.me(&session.access_token).await,
        "me with a revoked access token",
    );
    refused_bearer(
        h.service.logout_all(&h.ctx, &session.access_token).await,
        "logout-all with a revoked access token",
    );
    refused_bearer(
        h.service
            .change_password(&h.ctx, &session.access_token, PASSWORD, NEW_PASSWORD)
            .await,
        "a password change with a revoked access token",
    );
    h.service
        .me(&other.access_token)
        .await
        .expect("another access token of the user still works");
    let rotated = h
        .refresh(&session.refresh_token, None)
        .await
        .expect("revoking an access token leaves its refresh token alone");
    h.service
        .me(&rotated.access_token)
        .await
        .expect("its new access token works");

    // The hint only orders the search: an access token hinted as a refresh token is still found.
    h.service
        .revoke(&h.ctx, &rotated.access_token, Some(TokenKind::Refresh))
        .await
        .unwrap();
    refused_bearer(
        h.service.me(&rotated.access_token).await,
        "a mis-hinted access token",
    );

    // Junk, a token of another deployment's key, and nothing at all change nothing.
    let foreign = {
        let key = generate_key(SigningAlgorithm::Es256, NOW_MS / 1000).unwrap();
        let keys = KeySet::from_documents(&KeySetDocument { keys: vec![key] }, None).unwrap();
        keygate_core::tokens::issue(
            &keys,
            h.service.config(),
            "someone",
            0,
            keygate_core::tokens::SessionFlags::VERIFIED,
            h.now_ms(),
        )
        .unwrap()
        .token
    };
    for junk in ["", "not a token", "a.b.c", foreign.as_str(), "kgrt_AAAA"] {
        h.service
            .revoke(&h.ctx, junk, None)
            .await
            .expect("junk answers alike");
        h.service
            .revoke(&h.ctx, junk, Some(TokenKind::Access))
            .await
            .expect("junk answers alike");
    }
    h.service
        .me(&other.access_token)
        .await
        .expect("junk revoked nothing");

    // Past its expiry plus the leeway the token is refused by verification itself, and revoking it
    // then is a no-op.
    let ttl_ms = h.service.config().access_token_ttl_secs as i64 * 1000;
    let leeway_ms = h.service.config().leeway_secs as i64 * 1000;
    h.advance_ms(ttl_ms + leeway_ms + 1_000);
    refused_bearer(
        h.service.me(&other.access_token).await,
        "an expired access token",
    );
    h.service
        .revoke(&h.ctx, &other.access_token, Some(TokenKind::Access))
        .await
        .expect("revoking an expired token answers alike");
}

/// RFC 7009 with a refresh token: the same family revocation as logout, whatever the hint.
pub async fn service_revoked_refresh_token_ends_its_family<S: AuthStore>(store: S) {
    use keygate_core::service::TokenKind;
    let h = ServiceHarness::new(store);
    let (email, _) = h.registered("revoke-refresh").await;
    let first = h.login(&email, PASSWORD, None).await.unwrap();
    let other = h.login(&email, PASSWORD, None).await.unwrap();
    h.advance_ms(1_000);
    let second = h.refresh(&first.refresh_token, None).await.unwrap();
    h.service
        .revoke(&h.ctx, &second.refresh_token, Some(TokenKind::Access))
        .await
        .expect("revocation answers");
    refused_refresh(
        h.refresh(&second.refresh_token, None).await,
        "a revoked refresh token",
    );
    assert_eq!(
        h.drain_family(&first.refresh_token).await,
        0,
        "the family is gone"
    );
    h.refresh(&other.refresh_token, None)
        .await
        .expect("another session survives");
}
