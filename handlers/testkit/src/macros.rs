//! One `#[test]` per behaviour, for a store crate's test file.

/// One `#[test]` per behaviour of [`port_contract`](crate::port_contract) and
/// [`service_rules`](crate::service_rules), [`email_rules`](crate::email_rules) and [`mfa_rules`](crate::mfa_rules), each on a store from `$factory` (an expression of a future
/// yielding the store, evaluated once per test). Put it in a module per store setup.
///
/// With `skip_unless = predicate`, each test first calls `predicate(behaviour_name)` (any
/// `Fn(&str) -> bool`) and returns early, passing, when it answers false: for stores that need a
/// server the environment may not provide, the predicate says why it skips.
#[macro_export]
macro_rules! store_behaviour_tests {
    ($factory:expr $(,)?) => {
        $crate::store_behaviour_tests!($factory, skip_unless = |_: &str| true);
    };
    ($factory:expr, skip_unless = $ready:expr $(,)?) => {
        $crate::__store_behaviour_tests!(
            $factory;
            $ready;
            port_contract: [
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
                denied_access_tokens_hold_until_they_expire,
                queued_mail_requests_write_the_record_and_the_mail,
                refused_mail_requests_write_nothing,
                concurrent_mail_requests_queue_one_mail,
                a_new_code_replaces_the_previous_one,
                code_attempts_are_capped_under_concurrency,
                code_attempts_need_a_live_code,
                concurrent_verifications_have_one_winner,
                concurrent_resets_have_one_winner,
                consumptions_refuse_dead_codes,
                reset_password_applies_the_reset,
                code_purposes_are_separate,
                expired_email_codes_are_absent,
                pending_mail_is_oldest_first_and_bounded,
                delete_mail_removes_only_that_mail,
                email_verified_round_trips,
            ],
            service_rules: [
                service_register_login_refresh_logout,
                service_duplicate_registration,
                service_replay_after_grace_revokes_family,
                service_parent_replay_inside_grace_keeps_family,
                service_ancestor_replay_inside_grace_revokes,
                service_family_lifetime_is_not_extended,
                service_logout_all_watermark,
                service_password_change_revokes_sessions,
                service_login_right_after_a_revocation_is_not_revoked,
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
                service_revoked_access_token_is_refused_by_every_bearer_route,
                service_revoked_refresh_token_ends_its_family,
            ],
            email_rules: [
                email_verification_gates_login,
                email_verified_login_follows_a_throttled_unverified_one,
                email_taken_registration_mails_a_notice,
                email_codes_die_after_five_attempts,
                email_concurrent_wrong_codes_respect_the_cap,
                email_new_request_kills_the_old_and_limits_hold,
                email_codes_are_bound_and_expire,
                email_reset_password_ends_every_session,
                email_concurrent_resets_have_one_winner,
            ],
            mfa_rules: [
                mfa_enrolment_activation_and_login,
                mfa_codes_are_single_use_within_one_step_of_skew,
                mfa_one_code_on_two_challenges_has_one_winner,
                mfa_challenge_attempts_are_capped_under_concurrency,
                mfa_challenges_are_single_use_bound_and_expire,
                mfa_recovery_codes_are_single_use_and_regenerated,
                mfa_disable_needs_a_code_and_a_recent_login,
                mfa_enrolment_needs_a_recent_login_and_expires,
                mfa_password_reset_does_not_bypass_the_second_factor,
                mfa_secrets_are_stored_sealed_and_bound_to_their_user,
            ],
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __store_behaviour_tests {
    ($factory:expr; $ready:expr; $($module:ident: [$($name:ident),+ $(,)?]),+ $(,)?) => {
        $($(
            #[test]
            fn $name() {
                if !($ready)(stringify!($name)) {
                    return;
                }
                $crate::fixtures::block_on(async {
                    let store = ($factory).await;
                    $crate::$module::$name(store).await;
                });
            }
        )+)+
    };
}
