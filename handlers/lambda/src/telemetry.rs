//! JSON logs and CloudWatch Embedded Metric Format metrics for the Lambda functions.
//!
//! Logs: one JSON object per line on stdout (`tracing-subscriber`'s JSON formatter), filtered by
//! `RUST_LOG` (default `info`): a level and `target=level` directives, as `Targets` parses them, no
//! span or field filters (`EnvFilter` linked a regex engine: the zip was 4.06 MB with it, 3.91 MB
//! without, as tests/bench/results.md records).
//! Every line written while an invocation runs carries the span the Lambda runtime opens for it
//! (`requestId`, `xrayTraceId`); keygate-http's request line and the audit events add
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
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{LevelFilter, Targets};

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
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let (filter, unparsed) = log_filter(std::env::var("RUST_LOG").ok().as_deref());
    let format = tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .flatten_event(true)
        .with_target(true)
        .with_ansi(false)
        .with_writer(std::io::stdout);
    let installed = tracing_subscriber::registry()
        .with(format.with_filter(filter))
        .try_init()
        .is_ok();
    if installed && let Some(error) = unparsed {
        tracing::warn!(target: "keygate::config", %error, "RUST_LOG does not parse; logging at info");
    }
}

/// The filter `RUST_LOG` asks for (unset: `info`); one that does not parse gives `info` and the
/// parse error, which [`init_logging`] logs once installed.
fn log_filter(rust_log: Option<&str>) -> (Targets, Option<String>) {
    let info = Targets::new().with_default(LevelFilter::INFO);
    match rust_log.map(str::trim) {
        None | Some("") => (info, None),
        Some(directives) => match directives.parse::<Targets>() {
            Ok(targets) => (targets, None),
            Err(e) => (info, Some(e.to_string())),
        },
    }
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

#[cfg(test)]
mod tests {
    use super::log_filter;
    use tracing::Level;

    #[test]
    fn rust_log_levels_and_targets_filter_and_bad_directives_fall_back_to_info() {
        let (unset, error) = log_filter(None);
        assert!(error.is_none());
        assert!(unset.would_enable("keygate::http", &Level::INFO));
        assert!(!unset.would_enable("keygate::http", &Level::DEBUG));

        let (targets, error) = log_filter(Some("warn,keygate::keys=debug"));
        assert!(error.is_none());
        assert!(targets.would_enable("keygate::keys", &Level::DEBUG));
        assert!(!targets.would_enable("keygate::http", &Level::INFO));
        assert!(targets.would_enable("keygate::http", &Level::WARN));

        let (fallback, error) = log_filter(Some("keygate=loud"));
        assert!(error.is_some());
        assert!(fallback.would_enable("keygate::http", &Level::INFO));
        assert!(!fallback.would_enable("keygate::http", &Level::DEBUG));
    }
}
