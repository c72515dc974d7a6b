//! Security audit events: one JSON log line (target `keygate::audit`) and one metric per event.
//!
//! Events carry the request id and correlation id, a user id where known, and a hash of the email,
//! never the email itself, a password or a token.

use crate::refresh::sha256_hex;

/// Identifies the request an event belongs to.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    pub request_id: String,
    pub correlation_id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditEvent {
    Registered,
    /// Registration of an email that already has an account (answered like a success).
    RegisterDuplicate,
    LoginSucceeded,
    LoginFailed,
    LoginThrottled,
    RefreshRotated,
    /// A used refresh token was replayed: its family is revoked.
    RefreshReuseDetected,
    /// The immediate parent of a live token was replayed within the grace interval: refused only.
    RefreshRaceRefused,
    /// A device-bound family was presented with another device id: its family is revoked.
    RefreshDeviceMismatch,
    /// A refresh token was refused because the user's watermark revokes it.
    RefreshRevoked,
    Logout,
    LogoutAll,
    PasswordChanged,
    PasswordChangeFailed,
}

impl AuditEvent {
    pub fn name(self) -> &'static str {
        match self {
            AuditEvent::Registered => "register",
            AuditEvent::RegisterDuplicate => "register_duplicate",
            AuditEvent::LoginSucceeded => "login_ok",
            AuditEvent::LoginFailed => "login_failed",
            AuditEvent::LoginThrottled => "login_throttled",
            AuditEvent::RefreshRotated => "refresh",
            AuditEvent::RefreshReuseDetected => "refresh_reuse_detected",
            AuditEvent::RefreshRaceRefused => "refresh_race_refused",
            AuditEvent::RefreshDeviceMismatch => "refresh_device_mismatch",
            AuditEvent::RefreshRevoked => "refresh_revoked",
            AuditEvent::Logout => "logout",
            AuditEvent::LogoutAll => "logout_all",
            AuditEvent::PasswordChanged => "password_change",
            AuditEvent::PasswordChangeFailed => "password_change_failed",
        }
    }

    /// The CloudWatch metric this event counts towards.
    pub fn metric(self) -> &'static str {
        match self {
            AuditEvent::Registered | AuditEvent::RegisterDuplicate => "Registrations",
            AuditEvent::LoginSucceeded => "LoginSucceeded",
            AuditEvent::LoginFailed | AuditEvent::PasswordChangeFailed => "LoginFailed",
            AuditEvent::LoginThrottled => "LoginThrottled",
            AuditEvent::RefreshRotated => "RefreshRotated",
            AuditEvent::RefreshReuseDetected | AuditEvent::RefreshDeviceMismatch => {
                "RefreshReuseDetected"
            }
            AuditEvent::RefreshRaceRefused | AuditEvent::RefreshRevoked => "RefreshRefused",
            AuditEvent::Logout => "Logouts",
            AuditEvent::LogoutAll => "LogoutAll",
            AuditEvent::PasswordChanged => "PasswordChanged",
        }
    }

    fn is_warning(self) -> bool {
        matches!(
            self,
            AuditEvent::RefreshReuseDetected
                | AuditEvent::RefreshDeviceMismatch
                | AuditEvent::LoginThrottled
        )
    }
}

/// A pseudonym for an email in logs: the first 16 hex digits of its SHA-256.
pub fn email_hash(email: &str) -> String {
    sha256_hex(email.as_bytes())[..16].to_owned()
}

/// Who an event is about; all optional.
#[derive(Debug, Clone, Copy, Default)]
pub struct Subject<'a> {
    pub email: Option<&'a str>,
    pub user_id: Option<&'a str>,
    pub family_id: Option<&'a str>,
}

pub fn emit(ctx: &RequestContext, event: AuditEvent, subject: Subject<'_>) {
    let email_hash = subject.email.map(email_hash);
    let (user_id, family_id) = (
        subject.user_id.unwrap_or(""),
        subject.family_id.unwrap_or(""),
    );
    let email_hash = email_hash.as_deref().unwrap_or("");
    if event.is_warning() {
        tracing::warn!(target: "keygate::audit", event = event.name(), request_id = %ctx.request_id, correlation_id = %ctx.correlation_id, user_id, email_hash, family_id);
    } else {
        tracing::info!(target: "keygate::audit", event = event.name(), request_id = %ctx.request_id, correlation_id = %ctx.correlation_id, user_id, email_hash, family_id);
    }
    metrics::counter!(event.metric()).increment(1);
}
