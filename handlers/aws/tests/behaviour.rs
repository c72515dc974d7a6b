//! The shared store behaviour suite (keygate-core's testkit) against the DynamoDB adapter on moto, one
//! fresh table per test. Skipped, with a message, when the moto endpoints are not configured.
//!
//! The testkit's own macro cannot skip, so this file lists the behaviours itself; the last test checks
//! the list against the testkit's macro, so a behaviour added there cannot be missed here.

mod common;

macro_rules! dynamo_behaviours {
    ($($name:ident),+ $(,)?) => {
        $(
            #[test]
            fn $name() {
                if !common::moto_available(stringify!($name)) {
                    return;
                }
                keygate_core::testkit::block_on(async {
                    let store = common::fresh_store().await;
                    keygate_core::testkit::$name(store).await;
                });
            }
        )+
        const BEHAVIOURS: &[&str] = &[$(stringify!($name)),+];
    };
}

dynamo_behaviours!(
    create_user_is_put_if_absent,
    create_user_races_have_one_winner,
    users_are_found_by_email_and_by_id,
    reservations_follow_the_throttle,
    concurrent_reservations_admit_only_the_free_attempts,
    settle_attempt_is_compare_and_set,
    complete_login_is_conditional,
    change_password_is_conditional,
    device_counters_are_separate,
    password_change_replaces_devices,
    concurrent_device_reservations_admit_only_the_free_attempts,
    rehash_and_password_change_have_one_winner,
    set_revoked_before_never_lowers,
    rotation_happy_path,
    rotation_not_found,
    rotation_already_used,
    rotation_fingerprint_mismatch,
    rotation_revoked,
    rotation_refuses_retired_families,
    expired_tokens_are_absent,
    revoke_family_deletes_only_that_family,
    revoke_large_families,
    concurrent_rotations_have_one_winner,
    service_register_login_refresh_logout,
    service_duplicate_registration,
    service_replay_after_grace_revokes_family,
    service_parent_replay_inside_grace_keeps_family,
    service_ancestor_replay_inside_grace_revokes,
    service_family_lifetime_is_not_extended,
    service_logout_all_watermark,
    service_password_change_revokes_sessions,
    service_device_binding,
    service_free_attempts_do_not_throttle,
    service_throttle_window,
    service_failures_decay,
    service_known_device_logs_in_during_a_burst,
    service_device_failures_count_on_the_device,
    service_session_ends_revoke_device_tokens,
    service_concurrent_failures_judge_only_the_free_attempts,
    service_password_change_races_old_password_logins,
    service_rehash_cannot_undo_a_password_change,
    service_unknown_email_creates_nothing,
    service_login_rehashes_weaker_hash,
    service_concurrent_refreshes_have_one_winner,
    service_caps_live_families,
    service_concurrent_logins_take_distinct_family_numbers,
);

#[test]
fn every_testkit_behaviour_runs_against_dynamodb() {
    let source = include_str!("../../core/src/testkit.rs");
    let start = source
        .find("macro_rules! store_behaviour_tests")
        .expect("the testkit's macro");
    let list = &source[start..];
    let list = &list[list.find("$factory;").expect("the behaviour list") + "$factory;".len()..];
    let list = &list[..list.find(");").expect("end of the list")];
    let testkit: Vec<&str> = list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    assert_eq!(
        testkit, BEHAVIOURS,
        "keep this file's list equal to store_behaviour_tests!"
    );
}
