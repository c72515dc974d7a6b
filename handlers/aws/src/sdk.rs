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
//!
//! TLS trust: the HTTPS client (rustls on aws-lc-rs, the SDK's own) trusts only the roots of Amazon
//! Trust Services, which issue the certificates of every AWS service endpoint, embedded from
//! `amazon-trust-services-roots.pem`; not the operating system's store. Two reasons. Stricter: no other
//! CA, and nothing added to the image's store, can authenticate a DynamoDB or Secrets Manager endpoint
//! to a function that holds signing keys. Faster: the SDK's default loads the whole system store at
//! the first connection (a bundle and a directory read file by file: SDK-floor init 16.2 ms against
//! 9.37 ms on the Debian benchmark machine, whose /etc/ssl/certs holds 292 entries; less on Lambda's
//! image, whose directory holds little besides the bundle; docs/benchmarks.md, "Tuning"). An endpoint override over
//! HTTPS (`AWS_ENDPOINT_URL_*`) must therefore present a certificate from those roots; plain-HTTP test
//! endpoints (moto) are unaffected.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_http_client::tls::rustls_provider::CryptoMode;
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
use aws_smithy_runtime_api::client::http::SharedHttpClient;

/// The Amazon Trust Services roots (PEM), the only trust anchors of the SDK's HTTPS client.
pub const TRUST_ROOTS_PEM: &str = include_str!("amazon-trust-services-roots.pem");

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

/// The SDK's HTTPS client (hyper, rustls on aws-lc-rs) trusting [`TRUST_ROOTS_PEM`] only.
pub fn http_client() -> SharedHttpClient {
    let trust = TrustStore::empty()
        .with_native_roots(false)
        .with_pem_certificate(TRUST_ROOTS_PEM.as_bytes());
    // `build` only copies its fields (1.5: it never returns an error); no silent fallback to the
    // default context, which would trust the system store again.
    let context = TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .expect("a TLS context of a trust store alone always builds");
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
        .tls_context(context)
        .build_https()
}

/// Loads the standard AWS configuration (region, credentials, `AWS_ENDPOINT_URL_*` overrides from the
/// environment) with this crate's retry and timeout policy and HTTPS client.
pub async fn load() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .retry_config(retry_config())
        .timeout_config(timeout_config())
        .http_client(http_client())
        .load()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject as _;

    /// SHA-256 fingerprints of Amazon Root CA 1, 2, 3, 4 and Starfield Services Root CA G2.
    const AMAZON_TRUST_SERVICES: [&str; 5] = [
        "8ecde6884f3d87b1125ba31ac3fcb13d7016de7f57cc904fe1cb97c6ae98196e",
        "1ba5b2aa8c65401a82960118f80bec4f62304d83cec4713a19c39c011ea46db4",
        "18ce6cfe7bf14e60b2e347b8dfe868cb31d02ebb3ada271569f50343b46db3a4",
        "e35d28419ed02025cfa69038cd623962458da5c695fbdea3c22b0bfb25897092",
        "568d6905a2c88708a4b3025190edcfedb1974a606a13c6e5290fcb2ae63edab5",
    ];

    #[test]
    fn the_https_client_trusts_exactly_the_amazon_trust_services_roots() {
        let fingerprints: Vec<String> = CertificateDer::pem_slice_iter(TRUST_ROOTS_PEM.as_bytes())
            .map(|cert| {
                let der = cert.expect("every PEM block parses");
                aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der.as_ref())
                    .as_ref()
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect()
            })
            .collect();
        assert_eq!(fingerprints, AMAZON_TRUST_SERVICES);
    }
}
