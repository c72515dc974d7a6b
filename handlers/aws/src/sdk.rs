//! The AWS SDK configuration: loaded once per execution environment, shared by every client.
//!
//! Retry policy, chosen for a latency-bound API behind API Gateway (29 s integration timeout) whose
//! table is on-demand, so throttling is rare and short:
//! - **standard** mode (not adaptive: adaptive's client-side rate limiter only pays off for long-lived
//!   batch clients, and a Lambda environment serves one request at a time);
//! - **3 attempts** in all (the first and two retries);
//! - exponential backoff with full jitter from **50 ms**, capped at **1 s**: retry *n* waits a random
//!   time in `[0, 50 ms * 2^(n-1)]`, so a throttled call costs at most ~150 ms of backoff (the SDK's
//!   default of 1 s initial backoff would add up to 3 s to a login);
//! - the standard retry quota (token bucket) stays on: once an environment has spent its quota on
//!   failures, further retries stop until successes refill it, so an outage is not amplified.
//!
//! Timeouts: 3 s to connect, 5 s per attempt, 12 s per operation with its retries.
//! `tests/moto.rs` injects throttling errors and checks the attempts made.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};

pub const MAX_ATTEMPTS: u32 = 3;
pub const INITIAL_BACKOFF: Duration = Duration::from_millis(50);
pub const MAX_BACKOFF: Duration = Duration::from_secs(1);

pub fn retry_config() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(MAX_ATTEMPTS)
        .with_initial_backoff(INITIAL_BACKOFF)
        .with_max_backoff(MAX_BACKOFF)
}

pub fn timeout_config() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(3))
        .operation_attempt_timeout(Duration::from_secs(5))
        .operation_timeout(Duration::from_secs(12))
        .build()
}

/// Loads the standard AWS configuration (region, credentials, `AWS_ENDPOINT_URL_*` overrides from the
/// environment) with this crate's retry and timeout policy.
pub async fn load() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .retry_config(retry_config())
        .timeout_config(timeout_config())
        .load()
        .await
}
