//! The port's contract: each behaviour calls one store's port methods directly and checks what the
//! port promises, whatever the store.

use std::sync::Arc;

use keygate_core::crypto::sha256_hex;
use keygate_core::store::{
    Attempt, AttemptCounter, AttemptScope, AuthStore, DeviceGrant, DeviceRecord, LoginCompletion,
    PasswordChange, RefreshRecord, Reservation, RotateOutcome, Rotation, User,
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
