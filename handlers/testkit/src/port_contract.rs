//! The port's contract: each behaviour calls one store's port methods directly and checks what the
//! port promises, whatever the store.

use std::sync::Arc;

use keygate_core::crypto::sha256_hex;
use keygate_core::email_code::{MAX_CODE_ATTEMPTS, SEND_WINDOW_MS};
use keygate_core::store::{
    Attempt, AttemptCounter, AttemptScope, AuthStore, CodeConsumption, CodePurpose, DeviceGrant,
    DeviceRecord, EmailCode, LoginCompletion, MailOutcome, MailRequest, MfaSwap, OutboxMail,
    PasswordChange, PasswordReset, RefreshRecord, Reservation, RotateOutcome, Rotation, User,
};

use crate::fixtures::*;

async fn get_token<S: AuthStore>(
    store: &S,
    record: &RefreshRecord,
    now_ms: i64,
) -> Option<RefreshRecord> {
    store
        .get_refresh_token(&record.email, &record.family_id, &record.token_id, now_ms)
        .await
        .expect("get_refresh_token")
}

async fn new_user<S: AuthStore>(store: &S, tag: &str) -> User {
    let user = sample_user(&unique_email(tag));
    assert!(
        store.create_user(&user).await.expect("create_user"),
        "a fresh email must be free"
    );
    user
}

async fn user_of<S: AuthStore>(store: &S, email: &str) -> User {
    store
        .get_user(email)
        .await
        .expect("get_user")
        .expect("the user exists")
}

/// Asserts that a rotation that did not succeed changed nothing: the presented token is as it was
/// and the would-be child does not exist.
async fn assert_unchanged<S: AuthStore>(store: &S, before: &RefreshRecord, rotation: &Rotation) {
    assert_eq!(
        get_token(store, before, NOW_MS).await.as_ref(),
        Some(before),
        "the presented token must be untouched"
    );
    assert_eq!(
        get_token(store, &rotation.next, NOW_MS).await,
        None,
        "the child must not be written"
    );
}

/// A second user with the same email is refused and the first is left exactly as it was.
pub async fn create_user_is_put_if_absent<S: AuthStore>(store: S) {
    let first = new_user(&store, "put-if-absent").await;
    let mut second = sample_user(&first.email);
    second.password_hash = fake_hash("intruder");
    second.roles = vec!["admin".to_owned()];
    assert!(
        !store.create_user(&second).await.unwrap(),
        "a taken email must be refused"
    );
    assert_eq!(
        store.get_user(&first.email).await.unwrap(),
        Some(first.clone()),
        "the first user must be unchanged"
    );
    assert_eq!(
        store.get_user_by_id(&second.user_id).await.unwrap(),
        None,
        "the refused user must not be findable by id"
    );
}

/// Concurrent creates of one email: exactly one succeeds.
pub async fn create_user_races_have_one_winner<S: AuthStore>(store: S) {
    let store = Arc::new(store);
    let email = unique_email("create-race");
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (store, user) = (store.clone(), sample_user(&email));
            tokio::spawn(async move {
                (
                    store
                        .create_user(&user)
                        .await
                        .expect("create_user must not fail"),
                    user,
                )
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        let (created, user) = task.await.expect("task");
        if created {
            winners.push(user);
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one create of an email may succeed"
    );
    assert_eq!(
        store.get_user(&email).await.unwrap().as_ref(),
        winners.first()
    );
}

/// Users read back whole, by email and by id; unknown keys are absent.
pub async fn users_are_found_by_email_and_by_id<S: AuthStore>(store: S) {
    let mut user = sample_user(&unique_email("lookup"));
    user.revoked_before_ms = NOW_MS - 5_000;
    user.attempts = AttemptCounter {
        attempts: 2,
        locked_until_ms: NOW_MS + 7_000,
        last_attempt_ms: NOW_MS - 1_000,
    };
    assert!(store.create_user(&user).await.unwrap());
    assert_eq!(
        store.get_user(&user.email).await.unwrap(),
        Some(user.clone())
    );
    assert_eq!(
        store.get_user_by_id(&user.user_id).await.unwrap(),
        Some(user.clone())
    );
    assert_eq!(store.get_user(&unique_email("nobody")).await.unwrap(), None);
    assert_eq!(store.get_user_by_id(&random_uuid()).await.unwrap(), None);
    let mut plain = sample_user(&unique_email("no-roles"));
    plain.roles.clear();
    assert!(store.create_user(&plain).await.unwrap());
    assert_eq!(
        store.get_user_by_id(&plain.user_id).await.unwrap(),
        Some(plain)
    );
}

/// The user of an admitted reservation on the untrusted counter.
fn admitted(reservation: Reservation) -> User {
    match reservation {
        Reservation::Admitted(Attempt {
            user,
            scope: AttemptScope::Untrusted,
            counter,
        }) => {
            assert_eq!(
                counter, user.attempts,
                "the untrusted counter is the user's"
            );
            user
        }
        other => panic!("expected an admitted reservation, got {other:?}"),
    }
}

/// Reservations follow [`LoginThrottle::reserve`](keygate_core::throttle::LoginThrottle::reserve) and return the user as it is after them; refused
/// ones change nothing; unknown emails create nothing.
pub async fn reservations_follow_the_throttle<S: AuthStore>(store: S) {
    let throttle = test_throttle();
    let user = new_user(&store, "reserve").await;
    let mut expected = AttemptCounter::default();
    for i in 0..throttle.free_attempts {
        let at = NOW_MS + i64::from(i);
        expected = throttle.reserve(&expected, at).expect("free attempt");
        let after = admitted(
            store
                .reserve_login_attempt(&user.email, None, &throttle, at)
                .await
                .unwrap(),
        );
        assert_eq!(after.attempts, expected);
        assert_eq!(
            User {
                attempts: AttemptCounter::default(),
                ..after
            },
            user,
            "a reservation changes only the counter"
        );
    }
    let stored = user_of(&store, &user.email).await;
    assert_eq!(stored.attempts, expected);
    match store
        .reserve_login_attempt(&user.email, None, &throttle, NOW_MS + 100)
        .await
        .unwrap()
    {
        Reservation::Refused(seen) => {
            assert_eq!(seen.user, stored);
            assert_eq!(seen.scope, AttemptScope::Untrusted);
        }
        other => panic!("past the free attempts, with the window open: refused, got {other:?}"),
    }
    assert_eq!(
        user_of(&store, &user.email).await,
        stored,
        "a refusal writes nothing"
    );

    let unknown = unique_email("unknown");
    assert_eq!(
        store
            .reserve_login_attempt(&unknown, None, &throttle, NOW_MS)
            .await
            .unwrap(),
        Reservation::NoUser
    );
    assert_eq!(store.get_user(&unknown).await.unwrap(), None);
}

/// Reservations released together: exactly the free attempts are admitted, and the counter holds
/// every one of them.
pub async fn concurrent_reservations_admit_only_the_free_attempts<S: AuthStore>(store: S) {
    let store = Arc::new(store);
    let throttle = test_throttle();
    let user = new_user(&*store, "reserve-race").await;
    let results = released_together(CONCURRENCY, |_| {
        let (store, email, throttle) = (store.clone(), user.email.clone(), throttle.clone());
        async move {
            store
                .reserve_login_attempt(&email, None, &throttle, NOW_MS)
                .await
                .expect("a concurrent reservation must not fail")
        }
    })
    .await;
    let admitted = results
        .iter()
        .filter(|r| matches!(r, Reservation::Admitted(_)))
        .count();
    assert_eq!(
        admitted, throttle.free_attempts as usize,
        "exactly the free attempts may be admitted, whatever the concurrency"
    );
    assert_eq!(
        user_of(&*store, &user.email).await.attempts.attempts,
        throttle.free_attempts
    );
}

/// Settling replaces the window only on the reservation it was decided on.
pub async fn settle_attempt_is_compare_and_set<S: AuthStore>(store: S) {
    let throttle = test_throttle();
    let user = new_user(&store, "settle").await;
    let first = admitted(
        store
            .reserve_login_attempt(&user.email, None, &throttle, NOW_MS)
            .await
            .unwrap(),
    );
    let second = admitted(
        store
            .reserve_login_attempt(&user.email, None, &throttle, NOW_MS + 1)
            .await
            .unwrap(),
    );
    assert!(
        !store
            .settle_attempt(
                &user.email,
                &AttemptScope::Untrusted,
                &first.attempts,
                NOW_MS + 9_000
            )
            .await
            .unwrap(),
        "a later reservation exists: the earlier one must not settle"
    );
    assert_eq!(user_of(&store, &user.email).await, second);
    assert!(
        store
            .settle_attempt(
                &user.email,
                &AttemptScope::Untrusted,
                &second.attempts,
                NOW_MS + 9_000
            )
            .await
            .unwrap()
    );
    let settled = user_of(&store, &user.email).await;
    assert_eq!(
        settled.attempts,
        AttemptCounter {
            locked_until_ms: NOW_MS + 9_000,
            ..second.attempts
        }
    );
    assert_eq!(
        User {
            attempts: AttemptCounter::default(),
            ..settled
        },
        user,
        "nothing else may change"
    );
    let unknown = unique_email("unknown");
    assert!(
        !store
            .settle_attempt(
                &unknown,
                &AttemptScope::Untrusted,
                &AttemptCounter::default(),
                0
            )
            .await
            .unwrap()
    );
    assert_eq!(store.get_user(&unknown).await.unwrap(), None);
}

fn completion(user: &User, verified_hash: &str, new_hash: Option<String>) -> LoginCompletion {
    LoginCompletion {
        verified_hash: verified_hash.to_owned(),
        revoked_before_ms: user.revoked_before_ms,
        family_seq: user.family_seq + 1,
        new_password_hash: new_hash,
        first_token: first_record(&user.email, NOW_MS, None),
        device: DeviceGrant::Issue(device_record(&user.email, NOW_MS)),
        mfa: MfaSwap::unchanged(&user.mfa),
        challenge_hash: None,
    }
}

/// A login's write applies only on the hash that was verified, the watermark that was read and a
/// family number not yet taken; then it writes the token, takes the number, resets the counter and
/// replaces the hash if asked, together.
pub async fn complete_login_is_conditional<S: AuthStore>(store: S) {
    let throttle = test_throttle();
    let user = new_user(&store, "complete-login").await;
    admitted(
        store
            .reserve_login_attempt(&user.email, None, &throttle, NOW_MS)
            .await
            .unwrap(),
    );
    let reserved = user_of(&store, &user.email).await;

    let stale = completion(&user, &fake_hash("not-stored"), None);
    assert!(!store.complete_login(&stale).await.unwrap());
    assert_eq!(get_token(&store, &stale.first_token, NOW_MS).await, None);
    let old_watermark = LoginCompletion {
        revoked_before_ms: user.revoked_before_ms - 1,
        ..completion(&user, &user.password_hash, None)
    };
    assert!(!store.complete_login(&old_watermark).await.unwrap());
    assert_eq!(
        get_token(&store, &old_watermark.first_token, NOW_MS).await,
        None
    );
    let taken_number = LoginCompletion {
        family_seq: user.family_seq,
        ..completion(&user, &user.password_hash, None)
    };
    assert!(!store.complete_login(&taken_number).await.unwrap());
    assert_eq!(
        get_token(&store, &taken_number.first_token, NOW_MS).await,
        None
    );
    assert_eq!(
        user_of(&store, &user.email).await,
        reserved,
        "a refused completion changes nothing"
    );

    let plain = completion(&user, &user.password_hash, None);
    assert!(store.complete_login(&plain).await.unwrap());
    assert_eq!(
        get_token(&store, &plain.first_token, NOW_MS).await,
        Some(plain.first_token.clone())
    );
    let user = User {
        family_seq: user.family_seq + 1,
        ..user
    };
    assert_eq!(
        user_of(&store, &user.email).await,
        user,
        "the counter is reset and the number taken, nothing else changes"
    );
    let again = completion(&user, &user.password_hash, None);
    let replayed_number = LoginCompletion {
        family_seq: plain.family_seq,
        ..again.clone()
    };
    assert!(
        !store.complete_login(&replayed_number).await.unwrap(),
        "one number, one family"
    );

    let rehashed = fake_hash("rehashed");
    let rehash = completion(&user, &user.password_hash, Some(rehashed.clone()));
    assert!(store.complete_login(&rehash).await.unwrap());
    assert!(
        get_token(&store, &rehash.first_token, NOW_MS)
            .await
            .is_some()
    );
    assert_eq!(
        user_of(&store, &user.email).await,
        User {
            password_hash: rehashed,
            family_seq: user.family_seq + 1,
            ..user.clone()
        }
    );
    let unknown = completion(&sample_user(&unique_email("unknown")), "x", None);
    assert!(!store.complete_login(&unknown).await.unwrap());
    assert_eq!(
        store.get_user(&unknown.first_token.email).await.unwrap(),
        None
    );
}

fn password_change(user: &User, expected_hash: &str, new_hash: &str, at: i64) -> PasswordChange {
    PasswordChange {
        expected_hash: expected_hash.to_owned(),
        new_hash: new_hash.to_owned(),
        revoked_before_ms: at,
        family_seq: user.family_seq + 1,
        first_token: first_record(&user.email, at, None),
        new_device: device_record(&user.email, at),
        mfa: None,
    }
}

/// The password changes only from the expected hash; with it the watermark rises (never falls), the
/// counter resets and the new session's token is written.
pub async fn change_password_is_conditional<S: AuthStore>(store: S) {
    let throttle = test_throttle();
    let user = new_user(&store, "change-password").await;
    store
        .reserve_login_attempt(&user.email, None, &throttle, NOW_MS)
        .await
        .unwrap();
    let before = user_of(&store, &user.email).await;
    let (second, third) = (fake_hash("second"), fake_hash("third"));

    let wrong = password_change(&user, &fake_hash("not-stored"), &second, NOW_MS);
    assert!(!store.change_password(&wrong).await.unwrap());
    assert_eq!(
        user_of(&store, &user.email).await,
        before,
        "a wrong expected hash must change nothing"
    );
    assert_eq!(get_token(&store, &wrong.first_token, NOW_MS).await, None);

    let change = password_change(&user, &user.password_hash, &second, NOW_MS);
    assert!(store.change_password(&change).await.unwrap());
    let changed = user_of(&store, &user.email).await;
    assert_eq!(
        changed,
        User {
            password_hash: second.clone(),
            revoked_before_ms: NOW_MS,
            family_seq: user.family_seq + 1,
            ..user.clone()
        }
    );
    assert_eq!(
        get_token(&store, &change.first_token, NOW_MS).await,
        Some(change.first_token.clone())
    );

    let stale = password_change(&user, &user.password_hash, &third, NOW_MS + 1);
    assert!(!store.change_password(&stale).await.unwrap(), "stale hash");
    assert_eq!(user_of(&store, &user.email).await, changed);

    let earlier = password_change(&user, &second, &third, NOW_MS - 5);
    assert!(store.change_password(&earlier).await.unwrap());
    assert_eq!(
        user_of(&store, &user.email).await.revoked_before_ms,
        NOW_MS,
        "the watermark must never be lowered"
    );

    let unknown = password_change(&sample_user(&unique_email("unknown")), "x", &third, NOW_MS);
    assert!(!store.change_password(&unknown).await.unwrap());
    assert_eq!(
        store.get_user(&unknown.first_token.email).await.unwrap(),
        None
    );
}

/// Completes a login for `user` that issues `device`, so the device exists at the port.
/// Logs `user` in with `device` issued; returns the user as stored after it (its family number taken).
async fn with_device<S: AuthStore>(store: &S, user: &User, device: &DeviceRecord) -> User {
    let login = LoginCompletion {
        device: DeviceGrant::Issue(device.clone()),
        ..completion(user, &user.password_hash, None)
    };
    assert!(store.complete_login(&login).await.unwrap());
    user_of(store, &user.email).await
}

/// The attempt of an admitted reservation, whatever its scope.
fn admitted_attempt(reservation: Reservation) -> Attempt {
    match reservation {
        Reservation::Admitted(attempt) => attempt,
        other => panic!("expected an admitted reservation, got {other:?}"),
    }
}

/// A trusted device's reservations, settlements and resets touch its own counter only; an unknown,
/// expired or revoked device token counts on the untrusted counter, and a reset of a device that is
/// gone applies nothing.
pub async fn device_counters_are_separate<S: AuthStore>(store: S) {
    let throttle = test_throttle();
    let user = new_user(&store, "device-counter").await;
    let device = device_record(&user.email, NOW_MS);
    let user = with_device(&store, &user, &device).await;
    let device_scope = AttemptScope::Device(device.token_hash.clone());

    let first = admitted_attempt(
        store
            .reserve_login_attempt(&user.email, Some(&device.token_hash), &throttle, NOW_MS)
            .await
            .unwrap(),
    );
    assert_eq!(first.scope, device_scope);
    assert_eq!(
        first.counter,
        throttle
            .reserve(&AttemptCounter::default(), NOW_MS)
            .unwrap()
    );
    assert_eq!(
        first.user, user,
        "a device reservation leaves the user as it was"
    );
    assert_eq!(user_of(&store, &user.email).await, user);
    assert!(
        !store
            .settle_attempt(
                &user.email,
                &AttemptScope::Untrusted,
                &first.counter,
                NOW_MS + 9
            )
            .await
            .unwrap(),
        "the untrusted counter is not the one reserved"
    );
    assert!(
        store
            .settle_attempt(&user.email, &device_scope, &first.counter, NOW_MS + 9)
            .await
            .unwrap()
    );
    let second = admitted_attempt(
        store
            .reserve_login_attempt(&user.email, Some(&device.token_hash), &throttle, NOW_MS + 1)
            .await
            .unwrap(),
    );
    assert_eq!(
        second.counter.attempts, 2,
        "the device's counter holds its attempts"
    );
    assert_eq!(
        second.counter.locked_until_ms, 0,
        "the free attempts leave no window"
    );

    let unknown = sha256_hex(b"no such device");
    let untrusted = admitted_attempt(
        store
            .reserve_login_attempt(&user.email, Some(&unknown), &throttle, NOW_MS + 2)
            .await
            .unwrap(),
    );
    assert_eq!(untrusted.scope, AttemptScope::Untrusted);
    assert_eq!(untrusted.counter.attempts, 1);
    assert_eq!(
        user_of(&store, &user.email).await.attempts,
        untrusted.counter
    );

    let other = new_user(&store, "device-other").await;
    let foreign = admitted_attempt(
        store
            .reserve_login_attempt(&other.email, Some(&device.token_hash), &throttle, NOW_MS)
            .await
            .unwrap(),
    );
    assert_eq!(
        foreign.scope,
        AttemptScope::Untrusted,
        "a device is bound to its user"
    );

    let expired_at = device.expires_at_s * 1000;
    let expired = admitted_attempt(
        store
            .reserve_login_attempt(&user.email, Some(&device.token_hash), &throttle, expired_at)
            .await
            .unwrap(),
    );
    assert_eq!(expired.scope, AttemptScope::Untrusted, "an expired device");

    // A success on the device resets its counter and leaves the untrusted one alone.
    let reset = LoginCompletion {
        device: DeviceGrant::Reset(device.token_hash.clone()),
        ..completion(&user, &user.password_hash, None)
    };
    let counted = user_of(&store, &user.email).await;
    assert!(store.complete_login(&reset).await.unwrap());
    assert_eq!(
        user_of(&store, &user.email).await,
        User {
            family_seq: reset.family_seq,
            ..counted
        },
        "the untrusted counter stays"
    );
    let after_reset = admitted_attempt(
        store
            .reserve_login_attempt(&user.email, Some(&device.token_hash), &throttle, NOW_MS + 3)
            .await
            .unwrap(),
    );
    assert_eq!(
        after_reset.counter.attempts, 1,
        "the device's counter was reset"
    );

    // With the user as stored now, so only the missing device can refuse it.
    let user = user_of(&store, &user.email).await;
    let gone = LoginCompletion {
        device: DeviceGrant::Reset(unknown),
        ..completion(&user, &user.password_hash, None)
    };
    assert!(
        !store.complete_login(&gone).await.unwrap(),
        "a reset of a missing device"
    );
    assert_eq!(get_token(&store, &gone.first_token, NOW_MS).await, None);

    // The watermark revokes devices created before it.
    store
        .set_revoked_before(&user.email, device.created_at_ms + 1)
        .await
        .unwrap();
    let revoked = admitted_attempt(
        store
            .reserve_login_attempt(&user.email, Some(&device.token_hash), &throttle, NOW_MS + 4)
            .await
            .unwrap(),
    );
    assert_eq!(
        revoked.scope,
        AttemptScope::Untrusted,
        "a device older than the watermark"
    );
}

/// A password change writes its new device with its session; devices from before it are revoked.
pub async fn password_change_replaces_devices<S: AuthStore>(store: S) {
    let throttle = test_throttle();
    let user = new_user(&store, "device-change").await;
    let old = device_record(&user.email, NOW_MS);
    let user = with_device(&store, &user, &old).await;
    let change = password_change(
        &user,
        &user.password_hash,
        &fake_hash("changed"),
        NOW_MS + 10,
    );
    assert!(store.change_password(&change).await.unwrap());
    let scope_of = |hash: String| {
        let store = &store;
        let (email, throttle) = (user.email.clone(), throttle.clone());
        async move {
            admitted_attempt(
                store
                    .reserve_login_attempt(&email, Some(&hash), &throttle, NOW_MS + 20)
                    .await
                    .unwrap(),
            )
            .scope
        }
    };
    assert_eq!(
        scope_of(old.token_hash.clone()).await,
        AttemptScope::Untrusted
    );
    let new_hash = change.new_device.token_hash.clone();
    assert_eq!(
        scope_of(new_hash.clone()).await,
        AttemptScope::Device(new_hash)
    );
}

/// Reservations on one device released together: exactly the free attempts are admitted on its
/// counter, and none reaches the untrusted counter.
pub async fn concurrent_device_reservations_admit_only_the_free_attempts<S: AuthStore>(store: S) {
    let store = Arc::new(store);
    let throttle = test_throttle();
    let user = new_user(&*store, "device-race").await;
    let device = device_record(&user.email, NOW_MS);
    with_device(&*store, &user, &device).await;
    let results = released_together(CONCURRENCY, |_| {
        let (store, email, throttle) = (store.clone(), user.email.clone(), throttle.clone());
        let hash = device.token_hash.clone();
        async move {
            store
                .reserve_login_attempt(&email, Some(&hash), &throttle, NOW_MS)
                .await
                .expect("a concurrent reservation must not fail")
        }
    })
    .await;
    let admitted: Vec<_> = results
        .into_iter()
        .filter_map(|r| match r {
            Reservation::Admitted(attempt) => Some(attempt),
            _ => None,
        })
        .collect();
    assert_eq!(admitted.len(), throttle.free_attempts as usize);
    assert!(
        admitted
            .iter()
            .all(|a| a.scope == AttemptScope::Device(device.token_hash.clone()))
    );
    assert_eq!(
        user_of(&*store, &user.email).await.attempts,
        AttemptCounter::default(),
        "device attempts never reach the untrusted counter"
    );
}

/// A rehashing login and a password change decided on the same hash, released together: exactly
/// one applies, so a rehash can never put the old password back.
pub async fn rehash_and_password_change_have_one_winner<S: AuthStore>(store: S) {
    let store = Arc::new(store);
    for round in 0..8 {
        let user = new_user(&*store, "rehash-race").await;
        let (rehashed, changed) = (fake_hash("rehashed"), fake_hash("changed"));
        let login = completion(&user, &user.password_hash, Some(rehashed.clone()));
        let change = password_change(&user, &user.password_hash, &changed, NOW_MS + 1);
        let results = released_together(2, |i| {
            let (store, login, change) = (store.clone(), login.clone(), change.clone());
            async move {
                if i == 0 {
                    store.complete_login(&login).await.unwrap()
                } else {
                    store.change_password(&change).await.unwrap()
                }
            }
        })
        .await;
        assert_eq!(
            results.iter().filter(|applied| **applied).count(),
            1,
            "round {round}: exactly one of the two writes may apply, got {results:?}"
        );
        let stored = user_of(&*store, &user.email).await;
        let expected = if results[0] { &rehashed } else { &changed };
        assert_eq!(&stored.password_hash, expected, "round {round}");
    }
}

/// The watermark only moves forward; unknown emails are left alone.
pub async fn set_revoked_before_never_lowers<S: AuthStore>(store: S) {
    let user = new_user(&store, "watermark").await;
    store.set_revoked_before(&user.email, NOW_MS).await.unwrap();
    assert_eq!(user_of(&store, &user.email).await.revoked_before_ms, NOW_MS);
    store
        .set_revoked_before(&user.email, NOW_MS - 60_000)
        .await
        .unwrap();
    assert_eq!(
        user_of(&store, &user.email).await.revoked_before_ms,
        NOW_MS,
        "the watermark must never be lowered"
    );
    store
        .set_revoked_before(&user.email, NOW_MS + 1)
        .await
        .unwrap();
    assert_eq!(
        user_of(&store, &user.email).await.revoked_before_ms,
        NOW_MS + 1
    );
    assert_eq!(
        User {
            revoked_before_ms: 0,
            ..user_of(&store, &user.email).await
        },
        user,
        "nothing else may change"
    );

    let unknown = unique_email("unknown");
    store.set_revoked_before(&unknown, NOW_MS).await.unwrap();
    assert_eq!(
        store.get_user(&unknown).await.unwrap(),
        None,
        "no user may be created"
    );
}

/// A rotation marks the presented token used (by its child) and writes the child exactly as given.
pub async fn rotation_happy_path<S: AuthStore>(store: S) {
    let user = new_user(&store, "rotate").await;
    let first = first_record(&user.email, NOW_MS, Some(sha256_hex(b"laptop")));
    store.put_refresh_token(&first).await.unwrap();
    assert_eq!(get_token(&store, &first, NOW_MS).await, Some(first.clone()));

    let at = NOW_MS + 60_000;
    let rotation = rotation_of(&first, at);
    assert_eq!(
        store.rotate_refresh_token(&rotation).await.unwrap(),
        RotateOutcome::Rotated
    );
    let used = get_token(&store, &first, at)
        .await
        .expect("the used token is kept for reuse detection");
    assert_eq!(
        used,
        RefreshRecord {
            used_at_ms: Some(at),
            replaced_by: Some(rotation.next.token_id.clone()),
            ..first.clone()
        }
    );
    let child = get_token(&store, &rotation.next, at)
        .await
        .expect("the child is written");
    assert_eq!(child, rotation.next, "the child is stored exactly as given");
    assert_eq!(
        (
            child.expires_at_s,
            &child.family_id,
            &child.fingerprint_hash
        ),
        (
            first.expires_at_s,
            &first.family_id,
            &first.fingerprint_hash
        )
    );

    // The child rotates in turn: a chain.
    let second = rotation_of(&child, at + 1_000);
    assert_eq!(
        store.rotate_refresh_token(&second).await.unwrap(),
        RotateOutcome::Rotated
    );
    assert_eq!(
        get_token(&store, &second.next, at + 1_000).await,
        Some(second.next.clone())
    );
}

/// Absent, expired and wrong-hash tokens are all `NotFound`, and change nothing; the hash is
/// checked before anything else, so a used token with a wrong hash is `NotFound` too.
pub async fn rotation_not_found<S: AuthStore>(store: S) {
    let user = new_user(&store, "not-found").await;
    let record = first_record(&user.email, NOW_MS, None);
    store.put_refresh_token(&record).await.unwrap();

    let absent = rotation_of(
        &RefreshRecord {
            token_id: random_hex(16),
            ..record.clone()
        },
        NOW_MS,
    );
    assert_eq!(
        store.rotate_refresh_token(&absent).await.unwrap(),
        RotateOutcome::NotFound
    );
    let other_family = rotation_of(
        &RefreshRecord {
            family_id: random_hex(16),
            ..record.clone()
        },
        NOW_MS,
    );
    assert_eq!(
        store.rotate_refresh_token(&other_family).await.unwrap(),
        RotateOutcome::NotFound
    );
    let other_user = new_user(&store, "not-found-other").await;
    let other_email = rotation_of(
        &RefreshRecord {
            email: other_user.email.clone(),
            ..record.clone()
        },
        NOW_MS,
    );
    assert_eq!(
        store.rotate_refresh_token(&other_email).await.unwrap(),
        RotateOutcome::NotFound
    );

    let mut wrong_hash = rotation_of(&record, NOW_MS);
    wrong_hash.presented_hash = sha256_hex(b"someone else's token");
    assert_eq!(
        store.rotate_refresh_token(&wrong_hash).await.unwrap(),
        RotateOutcome::NotFound
    );
    let mut truncated = rotation_of(&record, NOW_MS);
    truncated.presented_hash.pop();
    assert_eq!(
        store.rotate_refresh_token(&truncated).await.unwrap(),
        RotateOutcome::NotFound
    );
    assert_unchanged(&store, &record, &wrong_hash).await;

    let expiry_ms = record.expires_at_s * 1000;
    let expired = rotation_of(&record, expiry_ms);
    assert_eq!(
        store.rotate_refresh_token(&expired).await.unwrap(),
        RotateOutcome::NotFound,
        "expires_at_s * 1000 <= now is expired"
    );
    assert_unchanged(&store, &record, &expired).await;
    let last_moment = rotation_of(&record, expiry_ms - 1);
    assert_eq!(
        store.rotate_refresh_token(&last_moment).await.unwrap(),
        RotateOutcome::Rotated
    );

    let mut replay_wrong_hash = rotation_of(&record, expiry_ms - 1);
    replay_wrong_hash.presented_hash = sha256_hex(b"guess");
    assert_eq!(
        store
            .rotate_refresh_token(&replay_wrong_hash)
            .await
            .unwrap(),
        RotateOutcome::NotFound,
        "without the right hash a used token must not be reported (its family would be revoked on a guess)"
    );
}

/// A second rotation of one token reports the first one's use and changes nothing.
pub async fn rotation_already_used<S: AuthStore>(store: S) {
    let user = new_user(&store, "already-used").await;
    let record = first_record(&user.email, NOW_MS, Some(sha256_hex(b"tablet")));
    store.put_refresh_token(&record).await.unwrap();
    let first = rotation_of(&record, NOW_MS + 1_000);
    assert_eq!(
        store.rotate_refresh_token(&first).await.unwrap(),
        RotateOutcome::Rotated
    );
    let used = get_token(&store, &record, NOW_MS).await.unwrap();

    let replay = rotation_of(&record, NOW_MS + 5_000);
    match store.rotate_refresh_token(&replay).await.unwrap() {
        RotateOutcome::AlreadyUsed(seen) => {
            assert_eq!(seen, used);
            assert_eq!(seen.used_at_ms, Some(NOW_MS + 1_000));
            assert_eq!(
                seen.replaced_by.as_deref(),
                Some(first.next.token_id.as_str())
            );
        }
        other => panic!("a replay must be AlreadyUsed, got {other:?}"),
    }
    assert_eq!(
        get_token(&store, &replay.next, NOW_MS).await,
        None,
        "a replay must not write a child"
    );
    assert_eq!(
        get_token(&store, &record, NOW_MS).await,
        Some(used.clone()),
        "a replay must not touch the used token"
    );

    // Reuse is reported before the device binding and the watermark are looked at.
    let mut other_device = rotation_of(&record, NOW_MS + 6_000);
    other_device.fingerprint_hash = Some(sha256_hex(b"phone"));
    assert!(matches!(
        store.rotate_refresh_token(&other_device).await.unwrap(),
        RotateOutcome::AlreadyUsed(_)
    ));
    store
        .set_revoked_before(&user.email, NOW_MS + 10_000)
        .await
        .unwrap();
    assert!(matches!(
        store
            .rotate_refresh_token(&rotation_of(&record, NOW_MS + 11_000))
            .await
            .unwrap(),
        RotateOutcome::AlreadyUsed(_)
    ));
}

/// The device binding must match exactly: bound vs unbound vs another device.
pub async fn rotation_fingerprint_mismatch<S: AuthStore>(store: S) {
    let user = new_user(&store, "fingerprint").await;
    let laptop = Some(sha256_hex(b"laptop"));
    let bound = first_record(&user.email, NOW_MS, laptop.clone());
    store.put_refresh_token(&bound).await.unwrap();
    for presented in [None, Some(sha256_hex(b"phone"))] {
        let mut rotation = rotation_of(&bound, NOW_MS);
        rotation.fingerprint_hash = presented.clone();
        assert_eq!(
            store.rotate_refresh_token(&rotation).await.unwrap(),
            RotateOutcome::FingerprintMismatch,
            "bound, presented {presented:?}"
        );
        assert_unchanged(&store, &bound, &rotation).await;
    }
    assert_eq!(
        store
            .rotate_refresh_token(&rotation_of(&bound, NOW_MS))
            .await
            .unwrap(),
        RotateOutcome::Rotated
    );

    let unbound = first_record(&user.email, NOW_MS, None);
    store.put_refresh_token(&unbound).await.unwrap();
    let mut with_device = rotation_of(&unbound, NOW_MS);
    with_device.fingerprint_hash = laptop;
    assert_eq!(
        store.rotate_refresh_token(&with_device).await.unwrap(),
        RotateOutcome::FingerprintMismatch
    );
    assert_unchanged(&store, &unbound, &with_device).await;
    assert_eq!(
        store
            .rotate_refresh_token(&rotation_of(&unbound, NOW_MS))
            .await
            .unwrap(),
        RotateOutcome::Rotated
    );

    // The binding is checked before the watermark.
    let late = first_record(&user.email, NOW_MS, Some(sha256_hex(b"desk")));
    store.put_refresh_token(&late).await.unwrap();
    store
        .set_revoked_before(&user.email, NOW_MS + 1)
        .await
        .unwrap();
    let mut wrong = rotation_of(&late, NOW_MS + 2);
    wrong.fingerprint_hash = None;
    assert_eq!(
        store.rotate_refresh_token(&wrong).await.unwrap(),
        RotateOutcome::FingerprintMismatch
    );
}

/// The user's watermark revokes tokens issued before it; a missing user revokes everything.
pub async fn rotation_revoked<S: AuthStore>(store: S) {
    let user = new_user(&store, "revoked").await;
    let old = first_record(&user.email, NOW_MS, None);
    let boundary = first_record(&user.email, NOW_MS + 5_000, None);
    store.put_refresh_token(&old).await.unwrap();
    store.put_refresh_token(&boundary).await.unwrap();
    store
        .set_revoked_before(&user.email, NOW_MS + 5_000)
        .await
        .unwrap();

    let refused = rotation_of(&old, NOW_MS + 6_000);
    assert_eq!(
        store.rotate_refresh_token(&refused).await.unwrap(),
        RotateOutcome::Revoked
    );
    assert_unchanged(&store, &old, &refused).await;
    assert_eq!(
        store
            .rotate_refresh_token(&rotation_of(&boundary, NOW_MS + 6_000))
            .await
            .unwrap(),
        RotateOutcome::Rotated,
        "a token issued at the watermark itself is not revoked"
    );

    let orphan = first_record(&unique_email("no-such-user"), NOW_MS, None);
    store.put_refresh_token(&orphan).await.unwrap();
    let rotation = rotation_of(&orphan, NOW_MS + 1);
    assert_eq!(
        store.rotate_refresh_token(&rotation).await.unwrap(),
        RotateOutcome::Revoked,
        "a token of a missing user"
    );
    assert_unchanged(&store, &orphan, &rotation).await;
}

/// A family is retired once the user's family number reaches the rotation's `retired_at_seq`, and
/// not a number before.
pub async fn rotation_refuses_retired_families<S: AuthStore>(store: S) {
    let user = new_user(&store, "retired").await;
    let record = first_record(&user.email, NOW_MS, None);
    store.put_refresh_token(&record).await.unwrap();
    let retired = Rotation {
        retired_at_seq: user.family_seq,
        ..rotation_of(&record, NOW_MS + 1)
    };
    assert_eq!(
        store.rotate_refresh_token(&retired).await.unwrap(),
        RotateOutcome::Revoked
    );
    assert_unchanged(&store, &record, &retired).await;
    let live = Rotation {
        retired_at_seq: user.family_seq + 1,
        ..rotation_of(&record, NOW_MS + 1)
    };
    assert_eq!(
        store.rotate_refresh_token(&live).await.unwrap(),
        RotateOutcome::Rotated,
        "retired only from the number itself"
    );
}

/// Expired records are absent on read, from the expiry instant on.
pub async fn expired_tokens_are_absent<S: AuthStore>(store: S) {
    let user = new_user(&store, "expired").await;
    let record = first_record(&user.email, NOW_MS, None);
    store.put_refresh_token(&record).await.unwrap();
    let expiry_ms = record.expires_at_s * 1000;
    assert_eq!(
        get_token(&store, &record, expiry_ms - 1).await,
        Some(record.clone())
    );
    assert_eq!(get_token(&store, &record, expiry_ms).await, None);
    assert_eq!(
        get_token(&store, &record, expiry_ms + 86_400_000).await,
        None
    );
    let unknown = RefreshRecord {
        token_id: random_hex(16),
        ..record.clone()
    };
    assert_eq!(get_token(&store, &unknown, NOW_MS).await, None);
}

async fn put_family<S: AuthStore>(
    store: &S,
    email: &str,
    family_id: &str,
    n: usize,
) -> Vec<RefreshRecord> {
    let mut records = Vec::with_capacity(n);
    for i in 0..n {
        let record = RefreshRecord {
            family_id: family_id.to_owned(),
            ..first_record(email, NOW_MS + i as i64, None)
        };
        store.put_refresh_token(&record).await.unwrap();
        records.push(record);
    }
    records
}

async fn live_count<S: AuthStore>(store: &S, records: &[RefreshRecord]) -> usize {
    let mut live = 0;
    for record in records {
        live += usize::from(get_token(store, record, NOW_MS).await.is_some());
    }
    live
}

/// Revoking a family deletes exactly its tokens (counted), nothing of other families or users.
pub async fn revoke_family_deletes_only_that_family<S: AuthStore>(store: S) {
    let (ada, bob) = (
        new_user(&store, "revoke-ada").await,
        new_user(&store, "revoke-bob").await,
    );
    let family = random_hex(16);
    let target = put_family(&store, &ada.email, &family, 3).await;
    let sibling = put_family(&store, &ada.email, &random_hex(16), 2).await;
    // Same family id under another user: the family is keyed by user too.
    let namesake = put_family(&store, &bob.email, &family, 2).await;

    assert_eq!(store.revoke_family(&ada.email, &family).await.unwrap(), 3);
    assert_eq!(live_count(&store, &target).await, 0);
    assert_eq!(
        live_count(&store, &sibling).await,
        2,
        "other families of the user stay"
    );
    assert_eq!(
        live_count(&store, &namesake).await,
        2,
        "other users' families stay"
    );
    assert_eq!(
        store.revoke_family(&ada.email, &family).await.unwrap(),
        0,
        "revoking again deletes nothing"
    );
    assert_eq!(user_of(&store, &ada.email).await, ada, "the user stays");
}

/// A family larger than one DynamoDB batch (25) is deleted whole.
pub async fn revoke_large_families<S: AuthStore>(store: S) {
    let user = new_user(&store, "large").await;
    let family = random_hex(16);
    let big = put_family(&store, &user.email, &family, 60).await;
    assert_eq!(store.revoke_family(&user.email, &family).await.unwrap(), 60);
    assert_eq!(live_count(&store, &big).await, 0);
}

/// Many concurrent rotations of one token: exactly one wins; every other one sees it used by the
/// winner's child; none fails.
pub async fn concurrent_rotations_have_one_winner<S: AuthStore>(store: S) {
    let store = Arc::new(store);
    let user = new_user(&*store, "rotation-race").await;
    let record = first_record(&user.email, NOW_MS, None);
    store.put_refresh_token(&record).await.unwrap();
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|i| {
            let (store, rotation) = (
                store.clone(),
                rotation_of(&record, NOW_MS + 1_000 + i as i64),
            );
            tokio::spawn(async move {
                let outcome = store.rotate_refresh_token(&rotation).await;
                (rotation, outcome)
            })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        let (rotation, outcome) = task.await.expect("task");
        let outcome =
            outcome.unwrap_or_else(|e| panic!("a concurrent rotation must not fail: {e}"));
        results.push((rotation, outcome));
    }
    let winners: Vec<&Rotation> = results
        .iter()
        .filter(|(_, o)| *o == RotateOutcome::Rotated)
        .map(|(r, _)| r)
        .collect();
    assert_eq!(winners.len(), 1, "exactly one rotation of a token may win");
    let winner = winners[0];
    for (rotation, outcome) in &results {
        if rotation.next.token_id == winner.next.token_id {
            continue;
        }
        match outcome {
            RotateOutcome::AlreadyUsed(seen) => {
                assert_eq!(seen.replaced_by.as_ref(), Some(&winner.next.token_id))
            }
            other => panic!("a losing rotation must be AlreadyUsed, got {other:?}"),
        }
        assert_eq!(
            get_token(&*store, &rotation.next, NOW_MS).await,
            None,
            "a loser's child must not exist"
        );
    }
    assert_eq!(
        get_token(&*store, &winner.next, NOW_MS).await.as_ref(),
        Some(&winner.next)
    );
}

/// The deny-list: an entry holds until its expiry (reads compare it: no store deletes promptly),
/// denying again keeps the later expiry, and entries are per `jti`.
pub async fn denied_access_tokens_hold_until_they_expire<S: AuthStore>(store: S) {
    let jti = random_uuid();
    let other = random_uuid();
    let until_s = NOW_MS / 1000 + 900;
    assert!(!store.is_access_token_denied(&jti, NOW_MS).await.unwrap());
    store.deny_access_token(&jti, until_s).await.unwrap();
    assert!(store.is_access_token_denied(&jti, NOW_MS).await.unwrap());
    assert!(
        store
            .is_access_token_denied(&jti, until_s * 1000 - 1)
            .await
            .unwrap()
    );
    assert!(
        !store
            .is_access_token_denied(&jti, until_s * 1000)
            .await
            .unwrap(),
        "an expired entry is absent"
    );
    assert!(!store.is_access_token_denied(&other, NOW_MS).await.unwrap());

    store.deny_access_token(&jti, until_s - 600).await.unwrap();
    assert!(
        store
            .is_access_token_denied(&jti, until_s * 1000 - 1)
            .await
            .unwrap(),
        "an earlier expiry does not shorten the entry"
    );
    store.deny_access_token(&jti, until_s + 60).await.unwrap();
    assert!(
        store
            .is_access_token_denied(&jti, (until_s + 30) * 1000)
            .await
            .unwrap(),
        "a later expiry extends it"
    );
}

/// How many writers of one email-code record the races start at once (a DynamoDB transaction that
/// collides with another is tried again only a few times).
const CONSUMERS: usize = 8;

/// A user whose email is not verified yet (verification mails go only to such accounts).
async fn new_unverified_user<S: AuthStore>(store: &S, tag: &str) -> User {
    let mut user = sample_user(&unique_email(tag));
    user.email_verified = false;
    assert!(store.create_user(&user).await.expect("create_user"));
    user
}

async fn code_of<S: AuthStore>(
    store: &S,
    email: &str,
    purpose: CodePurpose,
    now_ms: i64,
) -> Option<EmailCode> {
    store
        .get_email_code(email, purpose, now_ms)
        .await
        .expect("get_email_code")
}

/// Sends `request` for `user`, which the rule admits given the record stored now, and checks that
/// the store wrote the rule's record and queued the mail. Returns the record.
async fn queue<S: AuthStore>(store: &S, user: &User, request: &MailRequest) -> EmailCode {
    let stored = code_of(store, &request.email, request.purpose, request.now_ms).await;
    let expected = request
        .decide(Some(user), stored.as_ref())
        .expect("the rule admits this request");
    assert_eq!(
        store.request_mail(request).await.expect("request_mail"),
        MailOutcome::Queued
    );
    assert_eq!(
        code_of(store, &request.email, request.purpose, request.now_ms)
            .await
            .as_ref(),
        Some(&expected),
        "a queued request writes the rule's record"
    );
    assert_eq!(
        queued(store, &request.mail.id, request.now_ms)
            .await
            .as_ref(),
        Some(&request.mail),
        "a queued request writes its mail"
    );
    expected
}

/// Sends `request`, which must be refused with `outcome`, and checks that it wrote nothing.
async fn refused<S: AuthStore>(store: &S, request: &MailRequest, outcome: MailOutcome) {
    let before = code_of(store, &request.email, request.purpose, request.now_ms).await;
    assert_eq!(
        store.request_mail(request).await.expect("request_mail"),
        outcome
    );
    assert_eq!(
        code_of(store, &request.email, request.purpose, request.now_ms).await,
        before,
        "a refused request ({outcome:?}) leaves the record as it was"
    );
    assert_eq!(
        queued(store, &request.mail.id, request.now_ms).await,
        None,
        "a refused request ({outcome:?}) queues no mail"
    );
}

/// The outbox mail with this id, if it is pending at `now_ms`.
async fn queued<S: AuthStore>(store: &S, id: &str, now_ms: i64) -> Option<OutboxMail> {
    store
        .pending_mail(usize::MAX, now_ms)
        .await
        .expect("pending_mail")
        .into_iter()
        .find(|m| m.id == id)
}

/// The consumption of `record`'s live code at `now_ms`.
fn consumption_of(record: &EmailCode, now_ms: i64) -> CodeConsumption {
    CodeConsumption {
        email: record.email.clone(),
        purpose: record.purpose,
        token_hash: record.token_hash.clone(),
        now_ms,
    }
}

/// A reset with `record`'s live code at `now_ms`, as the service makes one: a new hash, the
/// watermark just after `now_ms`, and its notice.
fn reset_of(record: &EmailCode, now_ms: i64) -> PasswordReset {
    PasswordReset {
        consumption: consumption_of(record, now_ms),
        new_hash: fake_hash("reset"),
        revoked_before_ms: now_ms + 1,
        notice: outbox_mail(&record.email, now_ms, now_ms.div_euclid(1000) + 86_400),
    }
}

/// A queued request writes the record [`MailRequest::decide`] makes from the stored one, and its
/// mail, together: a first code, a second after the cooldown (counted in the same window), the
/// other purpose's independently, and a notice, which keeps the live code.
pub async fn queued_mail_requests_write_the_record_and_the_mail<S: AuthStore>(store: S) {
    let limits = test_config().email_limits;
    let user = new_unverified_user(&store, "mail-queued").await;
    let first = queue(
        &store,
        &user,
        &code_request(&user.email, CodePurpose::Verify, NOW_MS),
    )
    .await;
    assert_eq!(
        (first.attempts, first.consumed, first.window_sends),
        (0, false, 1)
    );
    let reset = queue(
        &store,
        &user,
        &code_request(&user.email, CodePurpose::Reset, NOW_MS),
    )
    .await;
    assert_eq!(
        code_of(&store, &user.email, CodePurpose::Verify, NOW_MS).await,
        Some(first.clone()),
        "a mail of one purpose leaves the other's record alone"
    );
    let later = NOW_MS + limits.cooldown_ms;
    let second = queue(
        &store,
        &user,
        &code_request(&user.email, CodePurpose::Verify, later),
    )
    .await;
    assert_eq!(
        (second.window_start_ms, second.window_sends),
        (NOW_MS, 2),
        "the second mail counts in the first one's window"
    );
    let noticed = queue(
        &store,
        &user,
        &notice_request(&user.email, CodePurpose::Reset, later),
    )
    .await;
    assert_eq!(
        (&noticed.token_hash, noticed.attempts, noticed.consumed),
        (&reset.token_hash, reset.attempts, reset.consumed),
        "a notice keeps the live code"
    );

    let verified = new_user(&store, "mail-notice").await;
    let notice = queue(
        &store,
        &verified,
        &notice_request(&verified.email, CodePurpose::Verify, NOW_MS),
    )
    .await;
    assert!(
        !notice.usable(NOW_MS),
        "a notice without a live code makes no usable record"
    );
}

/// Refused requests write nothing, neither record nor mail: no such user, an address already
/// verified, the cooldown, the hourly cap. After the window, mails flow again.
pub async fn refused_mail_requests_write_nothing<S: AuthStore>(store: S) {
    let limits = test_config().email_limits;
    assert!(
        limits.cooldown_ms * i64::from(limits.hourly_cap) < SEND_WINDOW_MS,
        "the cap must be reachable inside one window at the cooldown's pace"
    );
    let nobody = unique_email("mail-nobody");
    for purpose in CodePurpose::ALL {
        refused(
            &store,
            &code_request(&nobody, purpose, NOW_MS),
            MailOutcome::NoUser,
        )
        .await;
    }
    assert_eq!(store.get_user(&nobody).await.unwrap(), None);

    let verified = new_user(&store, "mail-verified").await;
    refused(
        &store,
        &code_request(&verified.email, CodePurpose::Verify, NOW_MS),
        MailOutcome::AlreadyVerified,
    )
    .await;

    let user = new_unverified_user(&store, "mail-limits").await;
    let first = queue(
        &store,
        &user,
        &code_request(&user.email, CodePurpose::Verify, NOW_MS),
    )
    .await;
    refused(
        &store,
        &code_request(
            &user.email,
            CodePurpose::Verify,
            NOW_MS + limits.cooldown_ms - 1,
        ),
        MailOutcome::CoolingDown,
    )
    .await;
    refused(
        &store,
        &notice_request(&user.email, CodePurpose::Verify, NOW_MS + 1),
        MailOutcome::CoolingDown,
    )
    .await;
    for sent in 1..limits.hourly_cap {
        let at = NOW_MS + i64::from(sent) * limits.cooldown_ms;
        queue(
            &store,
            &user,
            &code_request(&user.email, CodePurpose::Verify, at),
        )
        .await;
    }
    let capped_at = NOW_MS + i64::from(limits.hourly_cap) * limits.cooldown_ms;
    refused(
        &store,
        &code_request(&user.email, CodePurpose::Verify, capped_at),
        MailOutcome::HourlyCapReached,
    )
    .await;
    let next_window = first.window_start_ms + SEND_WINDOW_MS;
    let fresh = queue(
        &store,
        &user,
        &code_request(&user.email, CodePurpose::Verify, next_window),
    )
    .await;
    assert_eq!(
        (fresh.window_start_ms, fresh.window_sends),
        (next_window, 1)
    );
}

/// Mail requests released together for one account: one is queued, with its record and mail; the
/// others are cooling down and wrote nothing.
pub async fn concurrent_mail_requests_queue_one_mail<S: AuthStore>(store: S) {
    let store = Arc::new(store);
    let user = new_unverified_user(&*store, "mail-race").await;
    let requests: Vec<MailRequest> = (0..CONSUMERS)
        .map(|_| code_request(&user.email, CodePurpose::Verify, NOW_MS))
        .collect();
    let outcomes = released_together(CONSUMERS, |i| {
        let (store, request) = (store.clone(), requests[i].clone());
        async move {
            store
                .request_mail(&request)
                .await
                .expect("a concurrent mail request must not fail")
        }
    })
    .await;
    let winners: Vec<&MailRequest> = requests
        .iter()
        .zip(&outcomes)
        .filter(|(_, outcome)| **outcome == MailOutcome::Queued)
        .map(|(request, _)| request)
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "one request per cooldown may queue a mail"
    );
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, MailOutcome::Queued | MailOutcome::CoolingDown)),
        "the others are cooling down: {outcomes:?}"
    );
    let winner = winners[0];
    assert_eq!(
        code_of(&*store, &user.email, CodePurpose::Verify, NOW_MS).await,
        Some(winner.decide(Some(&user), None).expect("admitted")),
        "the record is the winner's"
    );
    for request in &requests {
        let mail = queued(&*store, &request.mail.id, NOW_MS).await;
        if request.mail.id == winner.mail.id {
            assert_eq!(mail.as_ref(), Some(&request.mail));
        } else {
            assert_eq!(mail, None, "a refused request queues no mail");
        }
    }
}

/// A new code replaces the previous generation: the old link and code no longer consume, its
/// attempts do not carry over, and the new one works.
pub async fn a_new_code_replaces_the_previous_one<S: AuthStore>(store: S) {
    let limits = test_config().email_limits;
    let user = new_user(&store, "code-generation").await;
    let old = queue(
        &store,
        &user,
        &code_request(&user.email, CodePurpose::Reset, NOW_MS),
    )
    .await;
    store
        .reserve_code_attempt(&user.email, CodePurpose::Reset, NOW_MS + 1)
        .await
        .unwrap()
        .expect("an attempt on the live code");
    let later = NOW_MS + limits.cooldown_ms;
    let new = queue(
        &store,
        &user,
        &code_request(&user.email, CodePurpose::Reset, later),
    )
    .await;
    assert_ne!(new.token_hash, old.token_hash);
    assert_eq!(new.attempts, 0, "a new code starts with no attempts");

    let stale = reset_of(&old, later + 1);
    assert!(!store.reset_password(&stale).await.unwrap());
    assert_eq!(user_of(&store, &user.email).await, user);
    assert_eq!(queued(&store, &stale.notice.id, later + 1).await, None);
    assert!(
        !store
            .verify_email(&consumption_of(&old, later + 1))
            .await
            .unwrap()
    );
    assert!(
        store
            .reset_password(&reset_of(&new, later + 1))
            .await
            .unwrap()
    );
}

/// Code attempts released together: at most [`MAX_CODE_ATTEMPTS`] are admitted, each returning the
/// record as written with its own count; then none, and no unknown record is created.
pub async fn code_attempts_are_capped_under_concurrency<S: AuthStore>(store: S) {
    let store = Arc::new(store);
    let user = new_unverified_user(&*store, "code-attempts").await;
    let issued = queue(
        &*store,
        &user,
        &code_request(&user.email, CodePurpose::Verify, NOW_MS),
    )
    .await;
    let results = released_together(CONCURRENCY, |_| {
        let (store, email) = (store.clone(), user.email.clone());
        async move {
            store
                .reserve_code_attempt(&email, CodePurpose::Verify, NOW_MS + 1)
                .await
                .expect("a concurrent code attempt must not fail")
        }
    })
    .await;
    let mut admitted: Vec<EmailCode> = results.into_iter().flatten().collect();
    admitted.sort_by_key(|r| r.attempts);
    let counts: Vec<u32> = admitted.iter().map(|r| r.attempts).collect();
    assert_eq!(
        counts,
        (1..=MAX_CODE_ATTEMPTS).collect::<Vec<_>>(),
        "exactly the allowed attempts are admitted, each counted once"
    );
    for record in &admitted {
        assert_eq!(
            EmailCode {
                attempts: 0,
                ..record.clone()
            },
            issued,
            "an attempt changes only the count"
        );
    }
    let stored = code_of(&*store, &user.email, CodePurpose::Verify, NOW_MS + 1).await;
    assert_eq!(stored.map(|r| r.attempts), Some(MAX_CODE_ATTEMPTS));
    assert_eq!(
        store
            .reserve_code_attempt(&user.email, CodePurpose::Verify, NOW_MS + 2)
            .await
            .unwrap(),
        None,
        "a record out of attempts admits none"
    );

    let nobody = unique_email("code-nobody");
    assert_eq!(
        store
            .reserve_code_attempt(&nobody, CodePurpose::Verify, NOW_MS)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        code_of(&*store, &nobody, CodePurpose::Verify, NOW_MS).await,
        None
    );
}

/// Attempts are refused, writing nothing, on a record whose code is consumed, expired or was never
/// issued (a notice's record).
pub async fn code_attempts_need_a_live_code<S: AuthStore>(store: S) {
    let user = new_unverified_user(&store, "code-dead").await;
    let record = queue(
        &store,
        &user,
        &code_request(&user.email, CodePurpose::Verify, NOW_MS),
    )
    .await;
    let expiry = record.code_expires_at_ms;
    assert_eq!(
        store
            .reserve_code_attempt(&user.email, CodePurpose::Verify, expiry)
            .await
            .unwrap(),
        None,
        "an expired code admits no attempt"
    );
    assert_eq!(
        code_of(&store, &user.email, CodePurpose::Verify, NOW_MS).await,
        Some(record.clone())
    );
    assert!(
        store
            .verify_email(&consumption_of(&record, NOW_MS + 1))
            .await
            .unwrap()
    );
    let consumed = code_of(&store, &user.email, CodePurpose::Verify, NOW_MS + 2).await;
    assert_eq!(
        store
            .reserve_code_attempt(&user.email, CodePurpose::Verify, NOW_MS + 2)
            .await
            .unwrap(),
        None,
        "a consumed code admits no attempt"
    );
    assert_eq!(
        code_of(&store, &user.email, CodePurpose::Verify, NOW_MS + 2).await,
        consumed
    );

    let other = new_user(&store, "code-notice").await;
    let notice = queue(
        &store,
        &other,
        &notice_request(&other.email, CodePurpose::Verify, NOW_MS),
    )
    .await;
    assert_eq!(
        store
            .reserve_code_attempt(&other.email, CodePurpose::Verify, NOW_MS + 1)
            .await
            .unwrap(),
        None,
        "a notice's record has no code to attempt"
    );
    assert_eq!(
        code_of(&store, &other.email, CodePurpose::Verify, NOW_MS + 1).await,
        Some(notice)
    );
}

/// Concurrent verifications with one code: exactly one applies; the email is verified and the
/// record consumed, nothing else changed.
pub async fn concurrent_verifications_have_one_winner<S: AuthStore>(store: S) {
    let store = Arc::new(store);
    let user = new_unverified_user(&*store, "verify-race").await;
    let record = queue(
        &*store,
        &user,
        &code_request(&user.email, CodePurpose::Verify, NOW_MS),
    )
    .await;
    let consumption = consumption_of(&record, NOW_MS + 1);
    let results = released_together(CONSUMERS, |_| {
        let (store, consumption) = (store.clone(), consumption.clone());
        async move {
            store
                .verify_email(&consumption)
                .await
                .expect("a concurrent verification must not fail")
        }
    })
    .await;
    assert_eq!(
        results.iter().filter(|applied| **applied).count(),
        1,
        "exactly one consumption of a code may apply"
    );
    assert_eq!(
        user_of(&*store, &user.email).await,
        User {
            email_verified: true,
            ..user
        }
    );
    assert_eq!(
        code_of(&*store, &record.email, CodePurpose::Verify, NOW_MS + 1).await,
        Some(EmailCode {
            consumed: true,
            ..record
        })
    );
}

/// Concurrent resets with one code: exactly one applies, with its own hash and notice; the losers'
/// notices are not queued.
pub async fn concurrent_resets_have_one_winner<S: AuthStore>(store: S) {
    let store = Arc::new(store);
    let user = new_user(&*store, "reset-race").await;
    let record = queue(
        &*store,
        &user,
        &code_request(&user.email, CodePurpose::Reset, NOW_MS),
    )
    .await;
    let resets: Vec<PasswordReset> = (0..CONSUMERS)
        .map(|_| reset_of(&record, NOW_MS + 1))
        .collect();
    let results = released_together(CONSUMERS, |i| {
        let (store, reset) = (store.clone(), resets[i].clone());
        async move {
            store
                .reset_password(&reset)
                .await
                .expect("a concurrent reset must not fail")
        }
    })
    .await;
    let winners: Vec<&PasswordReset> = resets
        .iter()
        .zip(&results)
        .filter(|(_, applied)| **applied)
        .map(|(reset, _)| reset)
        .collect();
    assert_eq!(winners.len(), 1, "exactly one reset with a code may apply");
    let winner = winners[0];
    let mut expected = user.clone();
    expected.reset_password(winner);
    assert_eq!(user_of(&*store, &user.email).await, expected);
    for reset in &resets {
        let notice = queued(&*store, &reset.notice.id, NOW_MS + 1).await;
        if reset.notice.id == winner.notice.id {
            assert_eq!(notice.as_ref(), Some(&reset.notice));
        } else {
            assert_eq!(notice, None, "a losing reset queues no notice");
        }
    }
}

/// Consumptions need the record's live generation: none without a record, with another
/// generation's hash, once the code expired, or once it was consumed; a refusal changes nothing.
pub async fn consumptions_refuse_dead_codes<S: AuthStore>(store: S) {
    let user = new_unverified_user(&store, "consume-dead").await;
    let no_record = CodeConsumption {
        email: user.email.clone(),
        purpose: CodePurpose::Verify,
        token_hash: sha256_hex(random_hex(32).as_bytes()),
        now_ms: NOW_MS,
    };
    assert!(!store.verify_email(&no_record).await.unwrap());
    let record = queue(
        &store,
        &user,
        &code_request(&user.email, CodePurpose::Verify, NOW_MS),
    )
    .await;
    let refusals = [
        ("another generation", no_record.clone()),
        (
            "an expired code",
            consumption_of(&record, record.code_expires_at_ms),
        ),
    ];
    for (why, consumption) in refusals {
        assert!(
            !store.verify_email(&consumption).await.unwrap(),
            "{why} must not verify"
        );
        assert_eq!(user_of(&store, &user.email).await, user, "{why}");
        assert_eq!(
            code_of(&store, &user.email, CodePurpose::Verify, NOW_MS).await,
            Some(record.clone()),
            "{why}"
        );
    }
    let live = consumption_of(&record, NOW_MS + 1);
    assert!(store.verify_email(&live).await.unwrap());
    assert!(
        !store.verify_email(&live).await.unwrap(),
        "a consumed code must not verify again"
    );

    let owner = new_user(&store, "reset-dead").await;
    let reset = queue(
        &store,
        &owner,
        &code_request(&owner.email, CodePurpose::Reset, NOW_MS),
    )
    .await;
    let other_generation = PasswordReset {
        consumption: CodeConsumption {
            token_hash: sha256_hex(random_hex(32).as_bytes()),
            ..consumption_of(&reset, NOW_MS + 1)
        },
        ..reset_of(&reset, NOW_MS + 1)
    };
    let expired = reset_of(&reset, reset.code_expires_at_ms);
    for (why, attempt) in [
        ("another generation", other_generation),
        ("an expired code", expired),
    ] {
        assert!(
            !store.reset_password(&attempt).await.unwrap(),
            "{why} must not reset"
        );
        assert_eq!(user_of(&store, &owner.email).await, owner, "{why}");
        assert_eq!(
            queued(&store, &attempt.notice.id, NOW_MS).await,
            None,
            "{why} queues no notice"
        );
    }
    let live = reset_of(&reset, NOW_MS + 1);
    assert!(store.reset_password(&live).await.unwrap());
    let again = PasswordReset {
        notice: outbox_mail(&owner.email, NOW_MS + 2, NOW_MS / 1000 + 86_400),
        ..reset_of(&reset, NOW_MS + 2)
    };
    assert!(
        !store.reset_password(&again).await.unwrap(),
        "a consumed code must not reset again"
    );
    assert_eq!(queued(&store, &again.notice.id, NOW_MS + 2).await, None);
}

/// A reset applies exactly [`User::reset_password`]'s effects (the new hash, the email verified, the
/// watermark raised and never lowered, the counter cleared), consumes the code and queues its notice.
pub async fn reset_password_applies_the_reset<S: AuthStore>(store: S) {
    let attempts = AttemptCounter {
        attempts: 4,
        locked_until_ms: NOW_MS + 60_000,
        last_attempt_ms: NOW_MS - 1_000,
    };
    for (tag, revoked_before_ms) in [
        ("reset-raise", NOW_MS - 5_000),
        ("reset-keep", NOW_MS + 3_600_000),
    ] {
        let user = User {
            email_verified: false,
            revoked_before_ms,
            attempts,
            ..sample_user(&unique_email(tag))
        };
        assert!(store.create_user(&user).await.unwrap());
        let record = queue(
            &store,
            &user,
            &code_request(&user.email, CodePurpose::Reset, NOW_MS),
        )
        .await;
        let reset = reset_of(&record, NOW_MS + 1_000);
        assert!(store.reset_password(&reset).await.unwrap());
        let mut expected = user.clone();
        expected.reset_password(&reset);
        let stored = user_of(&store, &user.email).await;
        assert_eq!(stored, expected);
        assert_eq!(
            stored.revoked_before_ms,
            revoked_before_ms.max(reset.revoked_before_ms),
            "the watermark is raised, never lowered"
        );
        assert_eq!(
            code_of(&store, &user.email, CodePurpose::Reset, NOW_MS + 1_000).await,
            Some(EmailCode {
                consumed: true,
                ..record
            })
        );
        assert_eq!(
            queued(&store, &reset.notice.id, NOW_MS + 1_000)
                .await
                .as_ref(),
            Some(&reset.notice)
        );
    }
}

/// A record of one purpose does not satisfy the other: neither its consumption nor its attempts.
pub async fn code_purposes_are_separate<S: AuthStore>(store: S) {
    let user = new_unverified_user(&store, "code-purposes").await;
    let verify = queue(
        &store,
        &user,
        &code_request(&user.email, CodePurpose::Verify, NOW_MS),
    )
    .await;
    let reset = queue(
        &store,
        &user,
        &code_request(&user.email, CodePurpose::Reset, NOW_MS),
    )
    .await;
    let at = NOW_MS + 1;
    let reset_with_verification = PasswordReset {
        consumption: CodeConsumption {
            purpose: CodePurpose::Reset,
            ..consumption_of(&verify, at)
        },
        ..reset_of(&verify, at)
    };
    assert!(
        !store
            .reset_password(&reset_with_verification)
            .await
            .unwrap()
    );
    let verify_with_reset = CodeConsumption {
        purpose: CodePurpose::Verify,
        ..consumption_of(&reset, at)
    };
    assert!(!store.verify_email(&verify_with_reset).await.unwrap());
    assert_eq!(user_of(&store, &user.email).await, user);

    store
        .reserve_code_attempt(&user.email, CodePurpose::Reset, at)
        .await
        .unwrap()
        .expect("an attempt on the reset code");
    assert_eq!(
        code_of(&store, &user.email, CodePurpose::Verify, at).await,
        Some(verify.clone()),
        "an attempt counts on its own purpose's record only"
    );
    assert!(
        store
            .verify_email(&consumption_of(&verify, at))
            .await
            .unwrap()
    );
    assert_eq!(
        code_of(&store, &user.email, CodePurpose::Reset, at)
            .await
            .map(|r| r.consumed),
        Some(false),
        "a verification leaves the reset code live"
    );
}

/// Records are absent from their item's expiry on (reads compare it: stores never delete), and a
/// request after it starts afresh.
pub async fn expired_email_codes_are_absent<S: AuthStore>(store: S) {
    let user = new_unverified_user(&store, "code-expiry").await;
    let record = queue(
        &store,
        &user,
        &code_request(&user.email, CodePurpose::Verify, NOW_MS),
    )
    .await;
    let expiry_ms = record.expires_at_s * 1000;
    assert!(
        expiry_ms > record.code_expires_at_ms,
        "the send limits outlive the code"
    );
    assert_eq!(
        code_of(&store, &user.email, CodePurpose::Verify, expiry_ms - 1).await,
        Some(record.clone())
    );
    assert_eq!(
        code_of(&store, &user.email, CodePurpose::Verify, expiry_ms).await,
        None,
        "an expired record is absent"
    );
    assert_eq!(
        code_of(&store, &user.email, CodePurpose::Verify, NOW_MS).await,
        Some(record),
        "reading at a later instant deletes nothing"
    );
    let fresh = queue(
        &store,
        &user,
        &code_request(&user.email, CodePurpose::Verify, expiry_ms),
    )
    .await;
    assert_eq!(
        (fresh.window_start_ms, fresh.window_sends),
        (expiry_ms, 1),
        "a request after the expiry starts a new window"
    );
}

/// The outbox lists unexpired mails oldest first, up to the limit.
pub async fn pending_mail_is_oldest_first_and_bounded<S: AuthStore>(store: S) {
    // Long after every other behaviour's mails expired: in a store shared between behaviours, only
    // this one's mails are pending at these instants.
    let start = NOW_MS + 10 * 365 * 86_400_000;
    let lasting_s = start.div_euclid(1000) + 86_400;
    let short = outbox_mail("short@keygate.test", start, start.div_euclid(1000) + 30);
    let mails: Vec<OutboxMail> = (1..=3)
        .map(|i| outbox_mail("mail@keygate.test", start + i * 1_000, lasting_s))
        .collect();
    // Queued out of order, each by its own account.
    for mail in [&mails[1], &short, &mails[2], &mails[0]] {
        let user = new_user(&store, "outbox").await;
        let request = MailRequest {
            mail: mail.clone(),
            ..code_request(&user.email, CodePurpose::Reset, start)
        };
        assert_eq!(
            store.request_mail(&request).await.unwrap(),
            MailOutcome::Queued
        );
    }
    let mut everything = vec![short.clone()];
    everything.extend(mails.iter().cloned());
    assert_eq!(
        store.pending_mail(10, start + 10_000).await.unwrap(),
        everything
    );
    let after_short = start + 60_000;
    assert_eq!(
        store.pending_mail(10, after_short).await.unwrap(),
        mails,
        "an expired mail is not pending"
    );
    assert_eq!(
        store.pending_mail(2, after_short).await.unwrap(),
        mails[..2].to_vec(),
        "the limit keeps the oldest"
    );
    assert_eq!(
        store.pending_mail(0, after_short).await.unwrap(),
        Vec::new()
    );
}

/// Deleting a mail removes it and only it; deleting a missing one is not an error.
pub async fn delete_mail_removes_only_that_mail<S: AuthStore>(store: S) {
    let first = new_user(&store, "delete-mail").await;
    let second = new_user(&store, "delete-mail").await;
    let kept = code_request(&first.email, CodePurpose::Reset, NOW_MS);
    let deleted = code_request(&second.email, CodePurpose::Reset, NOW_MS);
    queue(&store, &first, &kept).await;
    let record = queue(&store, &second, &deleted).await;
    store.delete_mail(&deleted.mail.id).await.unwrap();
    assert_eq!(queued(&store, &deleted.mail.id, NOW_MS).await, None);
    assert_eq!(
        queued(&store, &kept.mail.id, NOW_MS).await.as_ref(),
        Some(&kept.mail)
    );
    store
        .delete_mail(&deleted.mail.id)
        .await
        .expect("deleting a deleted mail");
    store
        .delete_mail(&random_hex(16))
        .await
        .expect("deleting an unknown mail");
    assert_eq!(
        code_of(&store, &second.email, CodePurpose::Reset, NOW_MS).await,
        Some(record),
        "deleting a mail leaves its record alone"
    );
}

/// `email_verified` round-trips through create, and both lookups, either way.
pub async fn email_verified_round_trips<S: AuthStore>(store: S) {
    for email_verified in [false, true] {
        let user = User {
            email_verified,
            ..sample_user(&unique_email("verified-flag"))
        };
        assert!(store.create_user(&user).await.unwrap());
        assert_eq!(
            store.get_user(&user.email).await.unwrap().as_ref(),
            Some(&user)
        );
        assert_eq!(
            store.get_user_by_id(&user.user_id).await.unwrap(),
            Some(user)
        );
    }
}
