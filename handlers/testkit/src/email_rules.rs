//! The email verification and password-reset rules on one store, through the service: mails are
//! read back from the store's outbox (opened with the service's sealer) as a user reads their inbox.

use std::sync::Arc;

use keygate_core::error::AuthError;
use keygate_core::keys::KeySource;
use keygate_core::mail::{Mail, MailKind};
use keygate_core::service::EmailProof;
use keygate_core::store::{AttemptCounter, AuthStore, CodePurpose, OutboxMail};
use keygate_core::{AuthService, Clock};

use keygate_smoke::mailbox::{code_in, token_in};

use crate::fixtures::*;
use crate::service_rules::{ServiceHarness, refused_bearer, refused_login, refused_refresh};

/// Concurrent consumptions of one reset, as the issue states the rule (8 concurrent resets, one wins).
const RESETS_AT_ONCE: usize = 8;
/// Rounds of each race, so a store that lets two through fails reliably.
const RACE_ROUNDS: usize = 3;

/// Every mail in `service`'s outbox at `now_ms`, oldest first, opened with its sealer, beside its
/// item: what a test reads as a user reads an inbox.
pub async fn queued_mails<S: AuthStore, K: KeySource, C: Clock>(
    service: &AuthService<S, K, C>,
    now_ms: i64,
) -> Vec<(OutboxMail, Mail)> {
    let items = service
        .store()
        .pending_mail(100_000, now_ms)
        .await
        .expect("pending_mail");
    items
        .into_iter()
        .map(|item| {
            let mail = service.sealer().open(&item).expect("an outbox mail opens");
            (item, mail)
        })
        .collect()
}

impl<S: AuthStore> ServiceHarness<S> {
    /// A harness whose logins require a verified email (the deployed default).
    pub fn verified(store: S) -> Self {
        Self::with_config(store, verified_email_config())
    }

    /// Takes the mails queued for `to` out of the outbox, oldest first (other tests' mails stay).
    pub async fn take_mail(&self, to: &str) -> Vec<Mail> {
        let mut mails = Vec::new();
        for (item, mail) in queued_mails(&self.service, self.now_ms()).await {
            if mail.to == to {
                self.store()
                    .delete_mail(&item.id)
                    .await
                    .expect("delete_mail");
                mails.push(mail);
            }
        }
        mails
    }

    /// The one mail queued for `to`, of `kind`.
    pub async fn only_mail(&self, to: &str, kind: MailKind) -> Mail {
        let mut mails = self.take_mail(to).await;
        assert_eq!(mails.len(), 1, "expected one mail to {to}, got {mails:?}");
        let mail = mails.remove(0);
        assert_eq!(mail.kind, kind);
        mail
    }

    /// Registers a fresh email and proves it with the mailed link: a user who can log in.
    pub async fn verified_user(&self, tag: &str) -> String {
        let (email, _) = self.registered(tag).await;
        let mail = self.only_mail(&email, MailKind::Verification).await;
        self.service
            .verify_email(&self.ctx, EmailProof::Token(&link_token(&mail)))
            .await
            .expect("the registration mail's link verifies");
        email
    }

    pub async fn forgot(&self, email: &str) {
        self.service
            .request_code(&self.ctx, email, CodePurpose::Reset)
            .await
            .expect("forgot answers Ok for any well-formed address");
    }

    pub async fn resend_verification(&self, email: &str) {
        self.service
            .request_code(&self.ctx, email, CodePurpose::Verify)
            .await
            .expect("verification requests answer Ok for any well-formed address");
    }

    fn cooldown_ms(&self) -> i64 {
        self.service.config().email_limits.cooldown_ms
    }
}

/// The link token of a mail (`…#token=<token>`).
pub fn link_token(mail: &Mail) -> String {
    token_in(&mail.text).expect("the mail carries a link")
}

/// The 8-digit code of a mail.
pub fn mail_code(mail: &Mail) -> String {
    code_in(&mail.text).expect("the mail carries an 8-digit code")
}

/// A code other than `code`, of the same shape.
fn wrong_code(code: &str) -> String {
    let first = (code.as_bytes()[0] - b'0' + 1) % 10;
    format!("{first}{}", &code[1..])
}

fn invalid_code<T: std::fmt::Debug>(result: Result<T, AuthError>, why: &str) {
    match result {
        Err(AuthError::InvalidCode) => {}
        other => panic!("{why}: expected InvalidCode, got {other:?}"),
    }
}

/// Registration mails a verification; until it is used a right password gets `EmailNotVerified`
/// (a wrong one the usual 401); the link verifies once; then login works, and the access token and
/// `/auth/me` say the email is verified.
pub async fn email_verification_gates_login<S: AuthStore>(store: S) {
    let h = ServiceHarness::verified(store);
    let (email, _) = h.registered("verify-gate").await;
    let mail = h.only_mail(&email, MailKind::Verification).await;
    match h.login(&email, PASSWORD, None).await {
        Err(AuthError::EmailNotVerified) => {}
        other => panic!("an unverified account must not log in: {other:?}"),
    }
    refused_login(
        h.login(&email, WRONG_PASSWORD, None).await,
        "a wrong password on an unverified account",
    );
    let token = link_token(&mail);
    h.service
        .verify_email(&h.ctx, EmailProof::Token(&token))
        .await
        .expect("the link verifies");
    invalid_code(
        h.service
            .verify_email(&h.ctx, EmailProof::Token(&token))
            .await,
        "a used link",
    );
    let session = h
        .login(&email, PASSWORD, None)
        .await
        .expect("verified login");
    let profile = h.service.me(&session.access_token).await.unwrap();
    assert!(profile.email_verified);
    let claims = h
        .service
        .authenticate(&session.access_token)
        .await
        .unwrap()
        .claims;
    assert!(claims.email_verified, "the access token says verified");
    h.resend_verification(&email).await;
    assert!(
        h.take_mail(&email).await.is_empty(),
        "a verified account gets no verification mail"
    );
}

/// Once an unverified account is past its free attempts, its owner's right password (refused for the
/// email) must not hold the throttle's window shut: after verifying, the next login succeeds at once.
pub async fn email_verified_login_follows_a_throttled_unverified_one<S: AuthStore>(store: S) {
    let h = ServiceHarness::verified(store);
    let (email, _) = h.registered("verify-throttled").await;
    let mail = h.only_mail(&email, MailKind::Verification).await;
    let free = h.service.config().throttle.free_attempts;
    for _ in 0..free {
        refused_login(
            h.login(&email, WRONG_PASSWORD, None).await,
            "a wrong password",
        );
    }
    // The last failure's window (1 s) passes; the owner tries the right password, unverified.
    h.advance_ms(2_000);
    match h.login(&email, PASSWORD, None).await {
        Err(AuthError::EmailNotVerified) => {}
        other => panic!("an unverified account must not log in: {other:?}"),
    }
    h.service
        .verify_email(&h.ctx, EmailProof::Token(&link_token(&mail)))
        .await
        .expect("the link verifies");
    h.login(&email, PASSWORD, None)
        .await
        .expect("the verified owner logs in right away");
}

/// Registering a taken email answers as for a new one and mails the owner a notice without any
/// link or code; the owner's live verification is untouched.
pub async fn email_taken_registration_mails_a_notice<S: AuthStore>(store: S) {
    let h = ServiceHarness::verified(store);
    let (email, first) = h.registered("taken").await;
    let verification = h.only_mail(&email, MailKind::Verification).await;
    h.advance_ms(h.cooldown_ms());
    let second = h.register(&email, NEW_PASSWORD).await;
    assert_ne!(first.user_id, second.user_id);
    let notice = h.only_mail(&email, MailKind::RegisterAttempt).await;
    assert!(!notice.text.contains("#token="));
    assert!(
        !notice
            .text
            .split(|c: char| !c.is_ascii_digit())
            .any(|r| r.len() == 8)
    );
    h.service
        .verify_email(&h.ctx, EmailProof::Token(&link_token(&verification)))
        .await
        .expect("the notice did not kill the live verification");
    refused_login(
        h.login(&email, NEW_PASSWORD, None).await,
        "the second registration's password",
    );
}

/// The code works as the link does, with its address; wrong codes count, right or wrong every
/// attempt counts, and after the cap even the right code is refused.
pub async fn email_codes_die_after_five_attempts<S: AuthStore>(store: S) {
    let h = ServiceHarness::verified(store);
    let (email, _) = h.registered("code-cap").await;
    let code = mail_code(&h.only_mail(&email, MailKind::Verification).await);
    let wrong = wrong_code(&code);
    for _ in 0..keygate_core::email_code::MAX_CODE_ATTEMPTS {
        invalid_code(
            h.service
                .verify_email(
                    &h.ctx,
                    EmailProof::Code {
                        email: &email,
                        code: &wrong,
                    },
                )
                .await,
            "a wrong code",
        );
    }
    invalid_code(
        h.service
            .verify_email(
                &h.ctx,
                EmailProof::Code {
                    email: &email,
                    code: &code,
                },
            )
            .await,
        "the right code after the cap",
    );

    h.advance_ms(h.cooldown_ms());
    h.resend_verification(&email).await;
    let code = mail_code(&h.only_mail(&email, MailKind::Verification).await);
    h.service
        .verify_email(
            &h.ctx,
            EmailProof::Code {
                email: &email.to_uppercase(),
                code: &code,
            },
        )
        .await
        .expect("a new code works, with the address as typed");
}

/// Wrong codes released together: at most the cap is counted, whatever the concurrency.
pub async fn email_concurrent_wrong_codes_respect_the_cap<S: AuthStore>(store: S) {
    let h = Arc::new(ServiceHarness::verified(store));
    for round in 0..RACE_ROUNDS {
        let email = h.registered(&format!("code-burst-{round}")).await.0;
        let code = mail_code(&h.only_mail(&email, MailKind::Verification).await);
        let wrong = wrong_code(&code);
        let results = released_together(CONCURRENCY, |_| {
            let (h, email, wrong) = (h.clone(), email.clone(), wrong.clone());
            async move {
                h.service
                    .verify_email(
                        &h.ctx,
                        EmailProof::Code {
                            email: &email,
                            code: &wrong,
                        },
                    )
                    .await
            }
        })
        .await;
        assert!(
            results
                .iter()
                .all(|r| matches!(r, Err(AuthError::InvalidCode)))
        );
        let record = h
            .store()
            .get_email_code(&email, CodePurpose::Verify, h.now_ms())
            .await
            .unwrap()
            .expect("the record");
        assert_eq!(
            record.attempts,
            keygate_core::email_code::MAX_CODE_ATTEMPTS,
            "exactly the cap was counted"
        );
        invalid_code(
            h.service
                .verify_email(
                    &h.ctx,
                    EmailProof::Code {
                        email: &email,
                        code: &code,
                    },
                )
                .await,
            "the right code after a burst",
        );
    }
}

/// A new request kills the previous link and code; within the cooldown a request is answered the
/// same and sends nothing; the hourly cap holds; and an unknown address gets the same answer.
pub async fn email_new_request_kills_the_old_and_limits_hold<S: AuthStore>(store: S) {
    let h = ServiceHarness::verified(store);
    let email = h.verified_user("reset-limits").await;
    h.forgot(&email).await;
    let old = h.only_mail(&email, MailKind::PasswordReset).await;
    h.forgot(&email).await;
    assert!(
        h.take_mail(&email).await.is_empty(),
        "cooling down: no mail"
    );
    h.advance_ms(h.cooldown_ms());
    h.forgot(&email).await;
    let new = h.only_mail(&email, MailKind::PasswordReset).await;
    invalid_code(
        h.service
            .reset_password(&h.ctx, EmailProof::Token(&link_token(&old)), NEW_PASSWORD)
            .await,
        "the previous link",
    );
    invalid_code(
        h.service
            .reset_password(
                &h.ctx,
                EmailProof::Code {
                    email: &email,
                    code: &mail_code(&old),
                },
                NEW_PASSWORD,
            )
            .await,
        "the previous code",
    );
    h.service
        .reset_password(&h.ctx, EmailProof::Token(&link_token(&new)), NEW_PASSWORD)
        .await
        .expect("the latest link");
    h.only_mail(&email, MailKind::PasswordChanged).await;

    let cap = h.service.config().email_limits.hourly_cap as usize;
    let mut sent = 2; // this hour: `old` and `new`
    for _ in 0..cap + 2 {
        h.advance_ms(h.cooldown_ms());
        h.forgot(&email).await;
        sent += h.take_mail(&email).await.len();
    }
    assert_eq!(sent, cap, "the hourly cap holds");
    h.advance_ms(keygate_core::email_code::SEND_WINDOW_MS);
    h.forgot(&email).await;
    h.only_mail(&email, MailKind::PasswordReset).await;

    let unknown = unique_email("nobody");
    h.forgot(&unknown).await;
    h.resend_verification(&unknown).await;
    assert!(h.take_mail(&unknown).await.is_empty());
    let outcome_free = h
        .store()
        .get_email_code(&unknown, CodePurpose::Reset, h.now_ms())
        .await
        .unwrap();
    assert_eq!(outcome_free, None, "an unknown address leaves no record");
    match h
        .service
        .request_code(&h.ctx, "not-an-email", CodePurpose::Reset)
        .await
    {
        Err(AuthError::InvalidEmail) => {}
        other => panic!("a malformed address is a client error: {other:?}"),
    }
}

/// Links and codes are bound to their purpose and account, and die with their lifetime.
pub async fn email_codes_are_bound_and_expire<S: AuthStore>(store: S) {
    let h = ServiceHarness::verified(store);
    let (a, _) = h.registered("bound-a").await;
    let (b, _) = h.registered("bound-b").await;
    let verify_a = h.only_mail(&a, MailKind::Verification).await;
    h.forgot(&a).await;
    let reset_a = h.only_mail(&a, MailKind::PasswordReset).await;
    invalid_code(
        h.service
            .reset_password(
                &h.ctx,
                EmailProof::Token(&link_token(&verify_a)),
                NEW_PASSWORD,
            )
            .await,
        "a verification link used for a reset",
    );
    invalid_code(
        h.service
            .verify_email(&h.ctx, EmailProof::Token(&link_token(&reset_a)))
            .await,
        "a reset link used for a verification",
    );
    invalid_code(
        h.service
            .verify_email(
                &h.ctx,
                EmailProof::Code {
                    email: &a,
                    code: &mail_code(&reset_a),
                },
            )
            .await,
        "a reset code used for a verification",
    );
    invalid_code(
        h.service
            .verify_email(
                &h.ctx,
                EmailProof::Code {
                    email: &b,
                    code: &mail_code(&verify_a),
                },
            )
            .await,
        "another account's code",
    );
    h.service
        .verify_email(
            &h.ctx,
            EmailProof::Code {
                email: &a,
                code: &mail_code(&verify_a),
            },
        )
        .await
        .expect("refusals on other records left this one usable");
    h.advance_ms(1);
    h.resend_verification(&a).await;
    assert!(
        h.take_mail(&a).await.is_empty(),
        "verified: nothing more to send"
    );

    let reset_ttl_ms = h.service.config().password_reset_ttl_secs as i64 * 1000;
    h.advance_ms(reset_ttl_ms);
    invalid_code(
        h.service
            .reset_password(
                &h.ctx,
                EmailProof::Token(&link_token(&reset_a)),
                NEW_PASSWORD,
            )
            .await,
        "an expired reset link",
    );
    let verify_ttl_ms = h.service.config().email_verification_ttl_secs as i64 * 1000;
    h.advance_ms(verify_ttl_ms - reset_ttl_ms);
    // b's verification mail was never read: its code dies now, its mail a second later.
    let record_b = h
        .store()
        .get_email_code(&b, CodePurpose::Verify, h.now_ms())
        .await
        .unwrap()
        .expect("b's record (its send window outlives the code)");
    assert!(!record_b.usable(h.now_ms()), "b's code has expired");
    h.advance_ms(1_000);
    assert!(
        h.take_mail(&b).await.is_empty(),
        "an expired mail leaves the outbox unsent"
    );
}

/// A reset sets the password, verifies the email, revokes every session, access token and device
/// token, clears the failure counter, mails a notice, and does not log in; the policy is checked
/// before the reset is spent; nothing stored holds the link, the code or the address in clear.
pub async fn email_reset_password_ends_every_session<S: AuthStore>(store: S) {
    let h = ServiceHarness::verified(store);
    let email = h.verified_user("reset-sessions").await;
    let session = h.login(&email, PASSWORD, None).await.unwrap();
    let device = session.device_token.clone().expect("a device token");
    let free = h.service.config().throttle.free_attempts;
    for _ in 0..free {
        refused_login(
            h.login(&email, WRONG_PASSWORD, None).await,
            "a wrong password",
        );
    }
    h.advance_ms(1_000);
    h.forgot(&email).await;
    let mail = h.only_mail(&email, MailKind::PasswordReset).await;
    let (token, code) = (link_token(&mail), mail_code(&mail));

    let record = h
        .store()
        .get_email_code(&email, CodePurpose::Reset, h.now_ms())
        .await
        .unwrap()
        .expect("the record");
    let stored = format!("{record:?}");
    assert!(!stored.contains(&token) && !stored.contains(&code));
    assert!(!stored.contains(&token["kgpr_".len()..]));

    match h
        .service
        .reset_password(&h.ctx, EmailProof::Token(&token), "short")
        .await
    {
        Err(AuthError::PasswordPolicy(_)) => {}
        other => panic!("the policy applies to a reset: {other:?}"),
    }
    h.service
        .reset_password(
            &h.ctx,
            EmailProof::Code {
                email: &email,
                code: &code,
            },
            NEW_PASSWORD,
        )
        .await
        .expect("the code resets after a refused weak password");
    let user = h.store().get_user(&email).await.unwrap().unwrap();
    assert_eq!(
        user.attempts,
        AttemptCounter::default(),
        "the reset cleared the counter"
    );
    refused_bearer(
        h.service.me(&session.access_token).await,
        "an old access token",
    );
    refused_refresh(
        h.refresh(&session.refresh_token, None).await,
        "an old refresh token",
    );
    refused_login(h.login(&email, PASSWORD, None).await, "the old password");
    let notice = h.only_mail(&email, MailKind::PasswordChanged).await;
    assert!(!notice.text.contains("#token="));
    invalid_code(
        h.service
            .reset_password(&h.ctx, EmailProof::Token(&token), PASSWORD)
            .await,
        "a used reset",
    );
    // The device token from before the reset counts as untrusted, as after a password change.
    for _ in 0..free {
        refused_login(
            h.login(&email, WRONG_PASSWORD, None).await,
            "a wrong password",
        );
    }
    refused_login(
        h.login_with_device_token(&email, NEW_PASSWORD, &device)
            .await,
        "a device token from before the reset counts as untrusted",
    );
    h.advance_ms(3_600_000);
    let fresh = h
        .login(&email, NEW_PASSWORD, None)
        .await
        .expect("the new password");
    assert!(
        h.service
            .me(&fresh.access_token)
            .await
            .unwrap()
            .email_verified
    );

    // A reset proves the email too: an account that never verified is verified by it.
    let (unverified, _) = h.registered("reset-verifies").await;
    h.take_mail(&unverified).await;
    h.forgot(&unverified).await;
    let mail = h.only_mail(&unverified, MailKind::PasswordReset).await;
    h.service
        .reset_password(&h.ctx, EmailProof::Token(&link_token(&mail)), NEW_PASSWORD)
        .await
        .unwrap();
    h.login(&unverified, NEW_PASSWORD, None)
        .await
        .expect("a reset verified the email");
}

/// Concurrent resets with one link (and with one code) released together: exactly one succeeds,
/// every other gets `InvalidCode`, and one notice is queued.
pub async fn email_concurrent_resets_have_one_winner<S: AuthStore>(store: S) {
    let h = Arc::new(ServiceHarness::verified(store));
    for round in 0..RACE_ROUNDS {
        let email = h.verified_user(&format!("reset-race-{round}")).await;
        for by_code in [false, true] {
            h.advance_ms(h.cooldown_ms());
            h.forgot(&email).await;
            let mail = h.only_mail(&email, MailKind::PasswordReset).await;
            let (token, code) = (link_token(&mail), mail_code(&mail));
            let results = released_together(RESETS_AT_ONCE, |i| {
                let (h, email, token, code) =
                    (h.clone(), email.clone(), token.clone(), code.clone());
                async move {
                    let proof = if by_code {
                        EmailProof::Code {
                            email: &email,
                            code: &code,
                        }
                    } else {
                        EmailProof::Token(&token)
                    };
                    let password = format!("{NEW_PASSWORD}-{i}");
                    h.service
                        .reset_password(&h.ctx, proof, &password)
                        .await
                        .map(|()| password)
                }
            })
            .await;
            let winners: Vec<&String> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
            assert_eq!(
                winners.len(),
                1,
                "exactly one reset wins (by code: {by_code})"
            );
            for result in &results {
                if let Err(e) = result {
                    assert!(matches!(e, AuthError::InvalidCode), "a loser: {e:?}");
                }
            }
            h.only_mail(&email, MailKind::PasswordChanged).await;
            h.advance_ms(3_600_000);
            h.login(&email, winners[0], None)
                .await
                .expect("the winner's password is the one set");
        }
    }
}
