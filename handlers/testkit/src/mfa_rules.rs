//! Second factors through the service (`mfa_*`): TOTP enrolment and activation, the login's second
//! step, replay and skew, races on one code, the attempt cap, recovery codes, disabling, and what is
//! stored. The authenticator app is [`MfaHarness::code`]: RFC 6238 over the secret enrolment showed.

use keygate_core::config::{AuthConfig, LoginThrottle};
use keygate_core::error::{AuthError, MfaChallengeIssued};
use keygate_core::mfa::{FactorKeyRing, MfaToken, TOTP_DIGITS, TotpSecret, hotp, totp_step};
use keygate_core::service::{EmailProof, SecondFactorProof, TokenResponse};
use keygate_core::store::{AuthStore, MAX_CODE_ATTEMPTS, MfaState, MfaSwap};
use keygate_core::tokens;

use crate::email_rules::mail_code;
use crate::fixtures::*;
use crate::service_rules::{ServiceHarness, refused_login, refused_refresh};
use keygate_core::mail::MailKind;

/// A user with an active TOTP factor, as their authenticator app and their client see it.
pub struct MfaUser {
    pub email: String,
    pub secret: Vec<u8>,
    pub recovery_codes: Vec<String>,
    /// The session activation started.
    pub session: TokenResponse,
}

const STEP_MS: i64 = 30_000;

impl<S: AuthStore> ServiceHarness<S> {
    /// The code an authenticator app shows now for `secret`, `offset` steps away.
    pub fn code(&self, secret: &[u8], offset: i64) -> String {
        let step = totp_step(self.now_ms()) + offset;
        hotp(secret, step as u64, TOTP_DIGITS)
    }

    /// Moves the clock to the start of the next TOTP step (a fresh code, as a user waits for).
    pub fn next_step(&self) {
        let into = self.now_ms().rem_euclid(STEP_MS);
        self.advance_ms(STEP_MS - into);
    }

    /// Registers a user, logs in, enrols and activates TOTP.
    pub async fn mfa_user(&self, tag: &str) -> MfaUser {
        let (email, _) = self.registered(tag).await;
        let login = self.login(&email, PASSWORD, None).await.expect("login");
        let enrolment = self
            .service
            .enrol_totp(&self.ctx, &login.access_token)
            .await
            .expect("enrolment");
        let secret = base32_decode(&enrolment.secret);
        let activated = self
            .service
            .activate_totp(
                &self.ctx,
                &login.access_token,
                &enrolment.factor_id,
                &self.code(&secret, 0),
            )
            .await
            .expect("activation");
        MfaUser {
            email,
            secret,
            recovery_codes: activated.recovery_codes,
            session: activated.tokens,
        }
    }

    /// A right password on an MFA account: the challenge it answers with.
    pub async fn challenge(&self, email: &str, device_id: Option<&str>) -> MfaChallengeIssued {
        match self.login(email, PASSWORD, device_id).await {
            Err(AuthError::MfaRequired(issued)) => issued,
            other => panic!("expected MfaRequired, got {other:?}"),
        }
    }

    pub async fn verify_totp(
        &self,
        mfa_token: &str,
        code: &str,
        device_id: Option<&str>,
    ) -> Result<TokenResponse, AuthError> {
        self.service
            .verify_mfa(
                &self.ctx,
                mfa_token,
                SecondFactorProof::Totp(code),
                device_id,
            )
            .await
    }
}

/// A harness whose login throttle admits 50 attempts at once: these behaviours fail codes on
/// purpose, and the throttle's windows are `service_rules`' subject (the attempt cap's behaviour
/// keeps the deployed throttle).
fn harness<S: AuthStore>(store: S) -> ServiceHarness<S> {
    let config = test_config();
    let throttle = LoginThrottle {
        free_attempts: 50,
        ..config.throttle.clone()
    };
    ServiceHarness::with_config(store, AuthConfig { throttle, ..config })
}

/// A code other than `code`, of the same shape.
fn wrong_code(code: &str) -> String {
    let first = (code.as_bytes()[0] - b'0' + 1) % 10;
    format!("{first}{}", &code[1..])
}

fn refused_factor<T: std::fmt::Debug>(result: Result<T, AuthError>, why: &str) {
    match result {
        Err(AuthError::InvalidSecondFactor) => {}
        other => panic!("{why}: expected InvalidSecondFactor, got {other:?}"),
    }
}

fn amr<S: AuthStore>(h: &ServiceHarness<S>, access_token: &str) -> Vec<String> {
    let keys = h.service.keys().0.clone();
    tokens::verify(&keys, h.service.config(), access_token, h.now_ms())
        .expect("a valid access token")
        .amr
}

/// Enrolment shows a 160-bit base32 secret and its key URI; activation with a code returns ten
/// recovery codes and a session whose `amr` has `otp`, and ends the session that enrolled. Then a
/// right password answers `MfaRequired` (a wrong one the usual 401), the second step issues tokens
/// with `amr` `[pwd, otp]` and a device token, refreshes keep it, and `/auth/me` says MFA is on.
pub async fn mfa_enrolment_activation_and_login<S: AuthStore>(store: S) {
    let h = harness(store);
    let (email, _) = h.registered("mfa-login").await;
    let first = h.login(&email, PASSWORD, None).await.expect("login");
    assert_eq!(amr(&h, &first.access_token), ["pwd"]);
    let enrolment = h
        .service
        .enrol_totp(&h.ctx, &first.access_token)
        .await
        .unwrap();
    assert_eq!(enrolment.secret.len(), 32, "160 bits in base32");
    assert!(
        enrolment.otpauth_uri.starts_with("otpauth://totp/")
            && enrolment
                .otpauth_uri
                .contains(&format!("secret={}", enrolment.secret))
            && enrolment.otpauth_uri.contains("digits=6")
            && enrolment.otpauth_uri.contains("period=30"),
        "{}",
        enrolment.otpauth_uri
    );
    assert!(!h.service.me(&first.access_token).await.unwrap().mfa_enabled);
    // A pending factor changes nothing about logins.
    h.login(&email, PASSWORD, None)
        .await
        .expect("still one factor");
    let secret = base32_decode(&enrolment.secret);
    let wrong = wrong_code(&h.code(&secret, 0));
    refused_factor(
        h.service
            .activate_totp(&h.ctx, &first.access_token, &enrolment.factor_id, &wrong)
            .await,
        "a wrong activation code",
    );
    refused_factor(
        h.service
            .activate_totp(
                &h.ctx,
                &first.access_token,
                "another-factor",
                &h.code(&secret, 0),
            )
            .await,
        "another factor id",
    );
    let activated = h
        .service
        .activate_totp(
            &h.ctx,
            &first.access_token,
            &enrolment.factor_id,
            &h.code(&secret, 0),
        )
        .await
        .expect("activation");
    assert_eq!(activated.recovery_codes.len(), 10);
    assert_eq!(amr(&h, &activated.tokens.access_token), ["pwd", "otp"]);
    assert!(activated.tokens.device_token.is_some());
    refused_refresh(
        h.refresh(&first.refresh_token, None).await,
        "activation ends the other sessions",
    );
    assert!(matches!(
        h.service
            .enrol_totp(&h.ctx, &activated.tokens.access_token)
            .await,
        Err(AuthError::MfaAlreadyEnabled)
    ));

    refused_login(
        h.login(&email, "wrong password", None).await,
        "a wrong password is the plain refusal",
    );
    let issued = h.challenge(&email, None).await;
    assert!(issued.mfa_token.starts_with("kgmt_"));
    assert_eq!(issued.expires_in, 300);
    assert_eq!(issued.factors, ["totp", "recovery_code"]);
    h.next_step();
    let tokens = h
        .verify_totp(&issued.mfa_token, &h.code(&secret, 0), None)
        .await
        .expect("the second step");
    assert_eq!(amr(&h, &tokens.access_token), ["pwd", "otp"]);
    assert!(tokens.device_token.is_some());
    let refreshed = h.refresh(&tokens.refresh_token, None).await.unwrap();
    assert_eq!(amr(&h, &refreshed.access_token), ["pwd", "otp"]);
    assert!(
        h.service
            .me(&refreshed.access_token)
            .await
            .unwrap()
            .mfa_enabled
    );
}

/// A code is accepted once (RFC 6238 5.2): the same code on a second login is refused, as is any
/// code of a step not later than the last accepted; codes one step either side are accepted, two
/// steps away are not.
pub async fn mfa_codes_are_single_use_within_one_step_of_skew<S: AuthStore>(store: S) {
    let h = harness(store);
    let user = h.mfa_user("mfa-replay").await;
    h.next_step();
    let code = h.code(&user.secret, 0);
    let first = h.challenge(&user.email, None).await;
    h.verify_totp(&first.mfa_token, &code, None)
        .await
        .expect("a fresh code");
    let second = h.challenge(&user.email, None).await;
    refused_factor(
        h.verify_totp(&second.mfa_token, &code, None).await,
        "the same code again",
    );
    refused_factor(
        h.verify_totp(&second.mfa_token, &h.code(&user.secret, -1), None)
            .await,
        "an earlier step than the last accepted",
    );
    refused_factor(
        h.verify_totp(&second.mfa_token, &h.code(&user.secret, 2), None)
            .await,
        "two steps ahead",
    );
    h.verify_totp(&second.mfa_token, &h.code(&user.secret, 1), None)
        .await
        .expect("one step ahead (a fast clock)");
    h.advance_ms(3 * STEP_MS);
    let third = h.challenge(&user.email, None).await;
    h.verify_totp(&third.mfa_token, &h.code(&user.secret, -1), None)
        .await
        .expect("one step behind (a slow clock)");
}

/// One code on two challenges at once, released together: exactly one login succeeds (the step is
/// spent by the write that opens the session), in every round.
pub async fn mfa_one_code_on_two_challenges_has_one_winner<S: AuthStore>(store: S) {
    let h = std::sync::Arc::new(harness(store));
    let user = h.mfa_user("mfa-race").await;
    for round in 0..3 {
        h.next_step();
        let code = h.code(&user.secret, 0);
        let a = h.challenge(&user.email, None).await.mfa_token;
        let b = h.challenge(&user.email, None).await.mfa_token;
        let tokens = [a, b];
        let results = released_together(2, |i| {
            let (h, token, code) = (h.clone(), tokens[i].clone(), code.clone());
            async move { h.verify_totp(&token, &code, None).await.is_ok() }
        })
        .await;
        assert_eq!(
            results.iter().filter(|ok| **ok).count(),
            1,
            "round {round}: {results:?}"
        );
    }
}

/// At most five attempts per challenge, under concurrency: after eight wrong codes at once the
/// challenge is dead, even for the right code; wrong codes count on the login throttle too.
pub async fn mfa_challenge_attempts_are_capped_under_concurrency<S: AuthStore>(store: S) {
    let h = std::sync::Arc::new(ServiceHarness::new(store));
    let user = h.mfa_user("mfa-cap").await;
    h.next_step();
    let issued = h.challenge(&user.email, None).await;
    let right = h.code(&user.secret, 0);
    let wrong = wrong_code(&right);
    let results = released_together(8, |_| {
        let (h, token, wrong) = (h.clone(), issued.mfa_token.clone(), wrong.clone());
        async move { h.verify_totp(&token, &wrong, None).await.is_ok() }
    })
    .await;
    assert!(results.iter().all(|ok| !ok));
    refused_factor(
        h.verify_totp(&issued.mfa_token, &right, None).await,
        "the right code on a challenge out of attempts",
    );
    let (email, hash) = MfaToken::parse(&issued.mfa_token).unwrap();
    assert_eq!(
        h.store()
            .reserve_challenge_attempt(&email, &hash, h.now_ms())
            .await
            .unwrap(),
        None,
        "no attempt is left to reserve"
    );
    let counted = h.store().get_user(&user.email).await.unwrap().unwrap();
    assert!(
        counted.attempts.attempts >= MAX_CODE_ATTEMPTS,
        "failed codes count on the login throttle: {:?}",
        counted.attempts
    );
    // Once the failures' window has passed, the owner's right password and right code complete a
    // login at once: a first step past the free attempts must not hold the window for the second.
    h.advance_ms(60_000);
    let issued = h.challenge(&user.email, None).await;
    h.verify_totp(&issued.mfa_token, &h.code(&user.secret, 1), None)
        .await
        .expect("the second step right after a throttled first step");
}

/// A challenge completes one login: its token is refused afterwards. It is bound to the device id
/// of its login, and expires after five minutes.
pub async fn mfa_challenges_are_single_use_bound_and_expire<S: AuthStore>(store: S) {
    let h = harness(store);
    let user = h.mfa_user("mfa-challenge").await;
    h.next_step();
    let issued = h.challenge(&user.email, Some("laptop")).await;
    refused_factor(
        h.verify_totp(&issued.mfa_token, &h.code(&user.secret, 0), None)
            .await,
        "without the login's device id",
    );
    refused_factor(
        h.verify_totp(&issued.mfa_token, &h.code(&user.secret, 0), Some("phone"))
            .await,
        "with another device id",
    );
    let tokens = h
        .verify_totp(&issued.mfa_token, &h.code(&user.secret, 0), Some("laptop"))
        .await
        .expect("the login's device id");
    h.refresh(&tokens.refresh_token, Some("laptop"))
        .await
        .expect("the family is bound to the device");
    h.next_step();
    refused_factor(
        h.verify_totp(&issued.mfa_token, &h.code(&user.secret, 0), Some("laptop"))
            .await,
        "a used challenge",
    );
    let late = h.challenge(&user.email, None).await;
    h.advance_ms(300_000);
    refused_factor(
        h.verify_totp(&late.mfa_token, &h.code(&user.secret, 0), None)
            .await,
        "an expired challenge",
    );
    refused_factor(
        h.verify_totp("kgmt_not-a-token", "123456", None).await,
        "a malformed token",
    );
}

/// A recovery code completes a second step once (any case, hyphens optional); a new set, asked with
/// a TOTP code, kills the old one.
pub async fn mfa_recovery_codes_are_single_use_and_regenerated<S: AuthStore>(store: S) {
    let h = harness(store);
    let user = h.mfa_user("mfa-recovery").await;
    let recovery = |token: &str, code: &str| {
        let (token, code) = (token.to_owned(), code.to_owned());
        let h = &h;
        async move {
            h.service
                .verify_mfa(&h.ctx, &token, SecondFactorProof::RecoveryCode(&code), None)
                .await
        }
    };
    let spelled = user.recovery_codes[0].replace('-', "").to_uppercase();
    let issued = h.challenge(&user.email, None).await;
    let tokens = recovery(&issued.mfa_token, &spelled)
        .await
        .expect("a recovery code");
    assert_eq!(amr(&h, &tokens.access_token), ["pwd", "otp"]);
    let again = h.challenge(&user.email, None).await;
    refused_factor(
        recovery(&again.mfa_token, &user.recovery_codes[0]).await,
        "a spent recovery code",
    );
    h.next_step();
    refused_factor(
        h.service
            .regenerate_recovery_codes(&h.ctx, &tokens.access_token, "not a code")
            .await,
        "a new set needs a TOTP code",
    );
    let fresh = h
        .service
        .regenerate_recovery_codes(&h.ctx, &tokens.access_token, &h.code(&user.secret, 0))
        .await
        .expect("a new set");
    assert_eq!(fresh.recovery_codes.len(), 10);
    refused_factor(
        recovery(&again.mfa_token, &user.recovery_codes[1]).await,
        "a code of the old set",
    );
    recovery(&again.mfa_token, &fresh.recovery_codes[1])
        .await
        .expect("a code of the new set");
}

/// Disabling needs a recent login and a code (TOTP or recovery); then logins are one-factor again.
pub async fn mfa_disable_needs_a_code_and_a_recent_login<S: AuthStore>(store: S) {
    let h = harness(store);
    let user = h.mfa_user("mfa-disable").await;
    let bearer = user.session.access_token.clone();
    refused_factor(
        h.service
            .disable_totp(
                &h.ctx,
                &bearer,
                SecondFactorProof::RecoveryCode("aaaa-bbbb"),
            )
            .await,
        "a wrong recovery code",
    );
    h.advance_ms(301_000);
    let bearer_late = h.refresh(&user.session.refresh_token, None).await.unwrap();
    assert!(matches!(
        h.service
            .disable_totp(
                &h.ctx,
                &bearer_late.access_token,
                SecondFactorProof::RecoveryCode(&user.recovery_codes[0]),
            )
            .await,
        Err(AuthError::RecentLoginRequired(300))
    ));
    let issued = h.challenge(&user.email, None).await;
    let fresh = h
        .verify_totp(&issued.mfa_token, &h.code(&user.secret, 0), None)
        .await
        .unwrap();
    h.service
        .disable_totp(
            &h.ctx,
            &fresh.access_token,
            SecondFactorProof::RecoveryCode(&user.recovery_codes[0]),
        )
        .await
        .expect("disabled");
    assert!(!h.service.me(&fresh.access_token).await.unwrap().mfa_enabled);
    let one_factor = h
        .login(&user.email, PASSWORD, None)
        .await
        .expect("a plain login");
    assert_eq!(amr(&h, &one_factor.access_token), ["pwd"]);
    assert!(matches!(
        h.service
            .disable_totp(
                &h.ctx,
                &one_factor.access_token,
                SecondFactorProof::Totp("123456")
            )
            .await,
        Err(AuthError::MfaNotEnabled)
    ));
}

/// Enrolment needs a recent login; a pending factor dies after ten minutes.
pub async fn mfa_enrolment_needs_a_recent_login_and_expires<S: AuthStore>(store: S) {
    let h = harness(store);
    let (email, _) = h.registered("mfa-pending").await;
    let login = h.login(&email, PASSWORD, None).await.unwrap();
    let enrolment = h
        .service
        .enrol_totp(&h.ctx, &login.access_token)
        .await
        .unwrap();
    h.advance_ms(600_000);
    refused_factor(
        h.service
            .activate_totp(
                &h.ctx,
                &login.access_token,
                &enrolment.factor_id,
                &h.code(&base32_decode(&enrolment.secret), 0),
            )
            .await,
        "a pending factor after ten minutes",
    );
    assert!(matches!(
        h.service.enrol_totp(&h.ctx, &login.access_token).await,
        Err(AuthError::RecentLoginRequired(300))
    ));
    h.login(&email, PASSWORD, None)
        .await
        .expect("an expired enrolment leaves one factor");
}

/// A password reset (which proves the email, not the second factor) leaves the factor on: the next
/// login still asks for it.
pub async fn mfa_password_reset_does_not_bypass_the_second_factor<S: AuthStore>(store: S) {
    let h = harness(store);
    let user = h.mfa_user("mfa-reset").await;
    h.take_mail(&user.email).await;
    h.forgot(&user.email).await;
    let mail = h.only_mail(&user.email, MailKind::PasswordReset).await;
    let new_password = "a new passphrase nobody guesses";
    h.service
        .reset_password(
            &h.ctx,
            EmailProof::Code {
                email: &user.email,
                code: &mail_code(&mail),
            },
            new_password,
        )
        .await
        .expect("reset");
    match h.login(&user.email, new_password, None).await {
        Err(AuthError::MfaRequired(_)) => {}
        other => panic!("after a reset the second factor is still asked: {other:?}"),
    }
}

/// The stored state holds the secret sealed and the recovery codes hashed: neither the secret (raw
/// or base32) nor any recovery code appears in it. The seal is bound to its user: the same state
/// copied to another account proves nothing there. A secret sealed under a retired data key still
/// opens.
pub async fn mfa_secrets_are_stored_sealed_and_bound_to_their_user<S: AuthStore>(store: S) {
    let h = harness(store);
    let user = h.mfa_user("mfa-at-rest").await;
    let state = h
        .store()
        .get_user(&user.email)
        .await
        .unwrap()
        .unwrap()
        .mfa
        .expect("an active factor");
    let stored = state.to_json().to_lowercase();
    let hex_secret = keygate_core::crypto::hex(&user.secret);
    let b32 = keygate_core::mfa::base32(&user.secret).to_lowercase();
    assert!(!stored.contains(&hex_secret) && !stored.contains(&b32));
    for code in &user.recovery_codes {
        assert!(!stored.contains(code) && !stored.contains(&code.replace('-', "")));
    }
    assert_eq!(state.recovery_hashes.len(), 10);

    // The state moved to another account: its seal names the first user, so nothing opens.
    let (other, _) = h.registered("mfa-copied").await;
    let other_user = h.store().get_user(&other).await.unwrap().unwrap();
    assert!(
        h.store()
            .swap_mfa(
                &other,
                &MfaSwap {
                    expected: other_user.mfa.clone(),
                    new: Some(state.clone()),
                },
            )
            .await
            .unwrap()
    );
    h.next_step();
    let issued = h.challenge(&other, None).await;
    refused_factor(
        h.verify_totp(&issued.mfa_token, &h.code(&user.secret, 0), None)
            .await,
        "a secret sealed for another user",
    );

    // A factor sealed under the retired key `k0` (before a rotation) still verifies.
    let retired =
        FactorKeyRing::parse(&TEST_FACTOR_KEYS.replace(r#""current": "k1""#, r#""current": "k0""#))
            .unwrap();
    let secret = TotpSecret([7; 20]);
    let (key_id, sealed_secret) = retired
        .seal(&other_user.user_id, &state.factor_id, &secret)
        .unwrap();
    assert_eq!(key_id, "k0");
    let resealed = MfaState {
        key_id,
        sealed_secret,
        ..state.clone()
    };
    assert!(
        h.store()
            .swap_mfa(
                &other,
                &MfaSwap {
                    expected: Some(state),
                    new: Some(resealed),
                },
            )
            .await
            .unwrap()
    );
    let tokens = h
        .verify_totp(&issued.mfa_token, &h.code(&secret.0, 0), None)
        .await
        .expect("a factor sealed under a retired key");
    assert_eq!(amr(&h, &tokens.access_token), ["pwd", "otp"]);
}
