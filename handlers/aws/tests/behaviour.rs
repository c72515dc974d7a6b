//! The shared store behaviour suite (keygate-testkit) against the DynamoDB adapter on moto, one fresh
//! table per test. Skipped, with a message, when the moto endpoints are not configured.

mod common;

keygate_testkit::store_behaviour_tests!(
    common::fresh_store(),
    skip_unless = common::moto_available
);
