//! Audit events as a test sees them.

use std::sync::Mutex;

/// Audit events recorded by a process-wide tracing subscriber that the suite installs once: the
/// service's judgements are counted from `login_failed` / `login_throttled`, as an operator would.
pub struct AuditCapture {
    events: Mutex<Vec<(String, String)>>,
}

impl AuditCapture {
    /// The names of the events recorded for `user_id`, in order.
    pub fn events_of(&self, user_id: &str) -> Vec<String> {
        self.events
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .filter(|(_, user)| user == user_id)
            .map(|(event, _)| event.clone())
            .collect()
    }
}

/// Installs the capturing subscriber as the global default (once per test binary) and returns it.
/// Panics if the binary already installed another global subscriber.
pub fn audit_capture() -> &'static AuditCapture {
    static CAPTURE: std::sync::OnceLock<&'static AuditCapture> = std::sync::OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture: &'static AuditCapture = Box::leak(Box::new(AuditCapture {
            events: Mutex::new(Vec::new()),
        }));
        tracing::subscriber::set_global_default(CaptureSubscriber(capture))
            .expect("the behaviour suite installs the only global tracing subscriber");
        capture
    })
}

struct CaptureSubscriber(&'static AuditCapture);

#[derive(Default)]
struct AuditFields {
    event: String,
    user_id: String,
}

impl tracing::field::Visit for AuditFields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        match field.name() {
            "event" => self.event = value.to_owned(),
            "user_id" => self.user_id = value.to_owned(),
            _ => {}
        }
    }
    fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {}
}

impl tracing::Subscriber for CaptureSubscriber {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        metadata.target() == "keygate::audit"
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut fields = AuditFields::default();
        event.record(&mut fields);
        self.0
            .events
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push((fields.event, fields.user_id));
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}
