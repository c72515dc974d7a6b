//! JSON logs and CloudWatch Embedded Metric Format metrics for the Lambda functions.
//!
//! Logs: one JSON object per line on stdout (`tracing-subscriber`'s JSON formatter), filtered by
//! `RUST_LOG` (default `info`). Every line written while an invocation runs carries the span the Lambda
//! runtime opens for it (`requestId`, `xrayTraceId`); keygate-http's request line and the audit events add
//! `request_id` and `correlation_id` fields themselves.
//!
//! Metrics: `metrics_cloudwatch_embedded` is the `metrics` facade's recorder; the counters of
//! `keygate_core::audit::emit` and keygate-http's `RequestLatency` histogram are written as one EMF
//! document per invocation (flushed by the runtime layer in [`crate::shell`]), in the namespace from
//! `KEYGATE_METRICS_NAMESPACE`, without dimensions, with the Lambda request id as a property.

use keygate_core::audit::AuditEvent;
use keygate_http::LATENCY_METRIC;
use metrics::Unit;
use metrics_cloudwatch_embedded::Collector;
use tracing_subscriber::EnvFilter;

/// The counters keygate emits (unit Count): one per distinct [`AuditEvent::metric`], in event order,
/// then the mailer's delivery counters ([`keygate_core::mail::DELIVERY_METRICS`]).
pub fn counters() -> Vec<&'static str> {
    let mut counters: Vec<&'static str> = Vec::new();
    let delivery = keygate_core::mail::DELIVERY_METRICS;
    for metric in AuditEvent::ALL
        .map(AuditEvent::metric)
        .into_iter()
        .chain(delivery)
    {
        if !counters.contains(&metric) {
            counters.push(metric);
        }
    }
    counters
}

/// Installs the JSON log subscriber. Safe to call more than once (later calls do nothing).
pub fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .flatten_event(true)
        .with_target(true)
        .with_ansi(false)
        .with_writer(std::io::stdout)
        .try_init();
}

/// Installs the EMF recorder as the global `metrics` recorder and declares the units.
pub fn init_metrics(namespace: &str) -> Result<&'static Collector, String> {
    let collector = metrics_cloudwatch_embedded::Builder::new()
        .cloudwatch_namespace(namespace.to_owned())
        .with_lambda_request_id("RequestId")
        .init()
        .map_err(|e| format!("installing the EMF metrics recorder: {e}"))?;
    for counter in counters() {
        metrics::describe_counter!(counter, Unit::Count, "keygate audit event count");
    }
    metrics::describe_histogram!(LATENCY_METRIC, Unit::Milliseconds, "request latency");
    Ok(collector)
}
