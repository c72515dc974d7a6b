//! Security audit events: one JSON log line (target `keygate::audit`) and one metric per event.
//!
//! Events carry the request id and correlation id, a user id where known, and a keyed hash of the
//! email, never the email itself, a password or a token.

use aws_lc_rs::hmac;
use base64::Engine as _;

use crate::crypto::{hex, random_bytes};

/// The per-deployment 256-bit server key that keys [`email_hash`], email codes and the outbox's seal. Kept
/// apart from the signing keys, so functions that only emit audit events never read those.
#[derive(Clone)]
pub struct AuditKey(hmac::Key);

impl AuditKey {
    pub const LEN: usize = 32;

    pub fn from_bytes(bytes: &[u8; Self::LEN]) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, bytes))
    }

    /// Parses the stored form: 64 hex digits or standard base64 of 32 bytes (surrounding
    /// whitespace ignored). The error names the expected form, never the input.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let bytes = if text.len() == 2 * Self::LEN && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            (0..Self::LEN)
                .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16))
                .collect::<Result<Vec<u8>, _>>()
                .map_err(|_| "must be 64 hex digits or base64 of 32 bytes".to_owned())?
        } else {
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|_| "must be 64 hex digits or base64 of 32 bytes".to_owned())?
        };
        let bytes: [u8; Self::LEN] = bytes
            .try_into()
            .map_err(|_| "must be 64 hex digits or base64 of 32 bytes".to_owned())?;
        Ok(Self::from_bytes(&bytes))
    }

    /// A fresh key from the OS CSPRNG, in the hex form [`AuditKey::parse`] reads.
    pub fn generate_hex() -> Result<String, String> {
        Ok(hex(&Self::fresh_bytes()?))
    }

    /// A fresh key from the OS CSPRNG, kept in memory only.
    pub fn generate() -> Result<Self, String> {
        Ok(Self::from_bytes(&Self::fresh_bytes()?))
    }

    /// HMAC-SHA256 in hex of `parts`, each length-prefixed so no two part lists collide (the stored
    /// form of email codes, [`crate::email_code::code_mac`]).
    pub fn mac_hex(&self, parts: &[&[u8]]) -> String {
        let mut context = hmac::Context::with_key(&self.0);
        for part in parts {
            context.update(&(part.len() as u64).to_be_bytes());
            context.update(part);
        }
        hex(context.sign().as_ref())
    }

    /// A 256-bit key for `purpose` derived from this one (HMAC-SHA256 as the PRF of HKDF-Expand's
    /// single block), so the server key seals outbox mails without being used twice alike.
    pub fn derive(&self, purpose: &str) -> [u8; Self::LEN] {
        let tag = hmac::sign(&self.0, &[purpose.as_bytes(), &[1u8]].concat());
        let mut out = [0u8; Self::LEN];
        out.copy_from_slice(tag.as_ref());
        out
    }

    fn fresh_bytes() -> Result<[u8; Self::LEN], String> {
        random_bytes().map_err(|e| e.to_string())
    }
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditKey(..)")
    }
}

/// Identifies the request an event belongs to, and carries the key its audit events are hashed with.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub request_id: String,
    pub correlation_id: String,
    pub audit_key: AuditKey,
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
    /// An access token was revoked through `/oauth/revoke`: denied until it expires.
    AccessTokenRevoked,
    LogoutAll,
    PasswordChanged,
    PasswordChangeFailed,
    /// The right password on an account whose email is not verified (refused with 403).
    LoginUnverified,
    /// A verification mail was queued (on request or at registration).
    EmailVerificationSent,
    /// A register-attempt notice was queued for an existing account's owner.
    RegisterNoticeSent,
    /// A verification or notice mail was not queued: no account, already verified, cooldown, cap.
    EmailMailSuppressed,
    EmailVerified,
    /// A wrong verification code, or a verification that lost its race.
    EmailCodeFailed,
    PasswordResetRequested,
    /// A reset mail was not queued: no account, cooldown or cap.
    PasswordResetSuppressed,
    PasswordResetCompleted,
    /// A wrong reset code, or a reset that lost its race.
    PasswordResetFailed,
    /// A TOTP factor was enrolled (pending until activated).
    MfaEnrolled,
    /// A TOTP factor was activated: other sessions ended.
    MfaActivated,
    /// The right password met an active factor: a second-step challenge was issued.
    MfaChallenged,
    /// A second step (TOTP or recovery code) completed a login.
    MfaVerified,
    /// A wrong, replayed or throttled second-factor code, or a second step that lost its race.
    MfaFailed,
    MfaRecoveryCodesRegenerated,
    MfaDisabled,
}

impl AuditEvent {
    pub const ALL: [AuditEvent; 32] = [
        AuditEvent::Registered,
        AuditEvent::RegisterDuplicate,
        AuditEvent::LoginSucceeded,
        AuditEvent::LoginFailed,
        AuditEvent::LoginThrottled,
        AuditEvent::RefreshRotated,
        AuditEvent::RefreshReuseDetected,
        AuditEvent::RefreshRaceRefused,
        AuditEvent::RefreshDeviceMismatch,
        AuditEvent::RefreshRevoked,
        AuditEvent::Logout,
        AuditEvent::AccessTokenRevoked,
        AuditEvent::LogoutAll,
        AuditEvent::PasswordChanged,
        AuditEvent::PasswordChangeFailed,
        AuditEvent::LoginUnverified,
        AuditEvent::EmailVerificationSent,
        AuditEvent::RegisterNoticeSent,
        AuditEvent::EmailMailSuppressed,
        AuditEvent::EmailVerified,
        AuditEvent::EmailCodeFailed,
        AuditEvent::PasswordResetRequested,
        AuditEvent::PasswordResetSuppressed,
        AuditEvent::PasswordResetCompleted,
        AuditEvent::PasswordResetFailed,
        AuditEvent::MfaEnrolled,
        AuditEvent::MfaActivated,
        AuditEvent::MfaChallenged,
        AuditEvent::MfaVerified,
        AuditEvent::MfaFailed,
        AuditEvent::MfaRecoveryCodesRegenerated,
        AuditEvent::MfaDisabled,
    ];

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
            AuditEvent::AccessTokenRevoked => "access_token_revoked",
            AuditEvent::LogoutAll => "logout_all",
            AuditEvent::PasswordChanged => "password_change",
            AuditEvent::PasswordChangeFailed => "password_change_failed",
            AuditEvent::LoginUnverified => "login_unverified",
            AuditEvent::EmailVerificationSent => "email_verification_sent",
            AuditEvent::RegisterNoticeSent => "register_notice_sent",
            AuditEvent::EmailMailSuppressed => "email_mail_suppressed",
            AuditEvent::EmailVerified => "email_verified",
            AuditEvent::EmailCodeFailed => "email_code_failed",
            AuditEvent::PasswordResetRequested => "password_reset_requested",
            AuditEvent::PasswordResetSuppressed => "password_reset_suppressed",
            AuditEvent::PasswordResetCompleted => "password_reset_completed",
            AuditEvent::PasswordResetFailed => "password_reset_failed",
            AuditEvent::MfaEnrolled => "mfa_enrolled",
            AuditEvent::MfaActivated => "mfa_activated",
            AuditEvent::MfaChallenged => "mfa_challenged",
            AuditEvent::MfaVerified => "mfa_verified",
            AuditEvent::MfaFailed => "mfa_failed",
            AuditEvent::MfaRecoveryCodesRegenerated => "mfa_recovery_codes_regenerated",
            AuditEvent::MfaDisabled => "mfa_disabled",
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
            // Revoking an access token ends (what is left of) a session, as a logout does.
            AuditEvent::Logout | AuditEvent::AccessTokenRevoked => "Logouts",
            AuditEvent::LogoutAll => "LogoutAll",
            AuditEvent::PasswordChanged => "PasswordChanged",
            AuditEvent::LoginUnverified => "LoginUnverified",
            AuditEvent::EmailVerificationSent | AuditEvent::RegisterNoticeSent => "MailQueued",
            AuditEvent::EmailMailSuppressed | AuditEvent::PasswordResetSuppressed => {
                "MailSuppressed"
            }
            AuditEvent::EmailVerified => "EmailVerified",
            AuditEvent::EmailCodeFailed | AuditEvent::PasswordResetFailed => "EmailCodeFailed",
            AuditEvent::PasswordResetRequested => "PasswordResetRequested",
            AuditEvent::PasswordResetCompleted => "PasswordResetCompleted",
            AuditEvent::MfaEnrolled
            | AuditEvent::MfaActivated
            | AuditEvent::MfaRecoveryCodesRegenerated
            | AuditEvent::MfaDisabled => "MfaFactorChanged",
            AuditEvent::MfaChallenged => "MfaChallenged",
            AuditEvent::MfaVerified => "MfaVerified",
            AuditEvent::MfaFailed => "MfaFailed",
        }
    }

    fn is_warning(self) -> bool {
        matches!(
            self,
            AuditEvent::RefreshReuseDetected
                | AuditEvent::RefreshDeviceMismatch
                | AuditEvent::LoginThrottled
                | AuditEvent::EmailCodeFailed
                | AuditEvent::PasswordResetFailed
                | AuditEvent::MfaFailed
                | AuditEvent::MfaDisabled
        )
    }
}

/// A pseudonym for an email in logs: the first 16 hex digits (64 bits) of its HMAC-SHA256 under the
/// deployment's key, so an email list cannot be hashed and matched against the logs without the key.
/// Truncated as before: the key, not the length, stops reversal; 64 bits keep the field's shape for
/// existing log queries and collide with odds below 1e-7 even at a million accounts.
pub fn email_hash(key: &AuditKey, email: &str) -> String {
    hex(&hmac::sign(&key.0, email.as_bytes()).as_ref()[..8])
}

/// Who an event is about; all optional.
#[derive(Debug, Clone, Copy, Default)]
pub struct Subject<'a> {
    pub email: Option<&'a str>,
    pub user_id: Option<&'a str>,
    pub family_id: Option<&'a str>,
    /// Why, where an event has several causes (a suppressed mail, a failed code); never a secret.
    pub reason: Option<&'a str>,
}

pub fn emit(ctx: &RequestContext, event: AuditEvent, subject: Subject<'_>) {
    let email_hash = subject.email.map(|email| email_hash(&ctx.audit_key, email));
    let (user_id, family_id, reason) = (
        subject.user_id.unwrap_or(""),
        subject.family_id.unwrap_or(""),
        subject.reason.unwrap_or(""),
    );
    let email_hash = email_hash.as_deref().unwrap_or("");
    if event.is_warning() {
        tracing::warn!(target: "keygate::audit", event = event.name(), request_id = %ctx.request_id, correlation_id = %ctx.correlation_id, user_id, email_hash, family_id, reason);
    } else {
        tracing::info!(target: "keygate::audit", event = event.name(), request_id = %ctx.request_id, correlation_id = %ctx.correlation_id, user_id, email_hash, family_id, reason);
    }
    metrics::counter!(event.metric()).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_hash_is_the_truncated_hmac_sha256_of_rfc_4231_case_2() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?". The key is padded
        // with zeros to 32 bytes, which HMAC does itself for keys shorter than the block.
        let mut key = [0u8; AuditKey::LEN];
        key[..4].copy_from_slice(b"Jefe");
        let hash = email_hash(&AuditKey::from_bytes(&key), "what do ya want for nothing?");
        assert_eq!(hash, "5bdcc146bf60754e");
    }

    #[test]
    fn different_keys_give_different_hashes() {
        let one = AuditKey::from_bytes(&[1; AuditKey::LEN]);
        let two = AuditKey::from_bytes(&[2; AuditKey::LEN]);
        let email = "alice@example.com";
        assert_ne!(email_hash(&one, email), email_hash(&two, email));
        assert_eq!(email_hash(&one, email), email_hash(&one, email));
        assert_ne!(
            email_hash(&one, email),
            crate::crypto::sha256_hex(email.as_bytes())[..16]
        );
    }

    #[test]
    fn parse_reads_hex_and_base64_and_refuses_other_lengths() {
        let email = "alice@example.com";
        let expected = email_hash(&AuditKey::from_bytes(&[0xab; AuditKey::LEN]), email);
        let hex_form = "ab".repeat(32);
        let base64_form = base64::engine::general_purpose::STANDARD.encode([0xab; AuditKey::LEN]);
        for form in [hex_form.as_str(), base64_form.as_str()] {
            let key = AuditKey::parse(&format!(" {form}\n")).expect("valid key");
            assert_eq!(email_hash(&key, email), expected);
        }
        for bad in ["", "ab", &"ab".repeat(31), &"zz".repeat(32), "not base64!"] {
            assert!(AuditKey::parse(bad).is_err(), "{bad:?} accepted");
        }
        let generated = AuditKey::generate_hex().expect("random");
        assert!(AuditKey::parse(&generated).is_ok());
        assert_ne!(generated, AuditKey::generate_hex().expect("random"));
    }
}
