//! Account mails: what they say (every template, text and HTML, is here), how they wait in the
//! outbox (sealed), and the one port that delivers them.
//!
//! A request never sends mail itself: it writes the sealed mail into the outbox in the same
//! conditional write that records its code ([`crate::store::EmailCodeStore::request_mail`]), and a
//! separate worker delivers it ([`deliver`]): the local server's background task, or on AWS the
//! mailer function fed by the table's stream. So every request-path answer does the same work
//! whether a mail was queued or not, and a slow mail server cannot slow a request.

use std::future::Future;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::audit::{AuditKey, email_hash};
use crate::config::Setting;
use crate::crypto::{random_bytes, random_id};
use crate::error::AuthError;
use crate::store::{OutboxMail, OutboxStore, StoreError};

/// The sender of every mail, read by each mailer (the local server's, the AWS mailer function's).
pub const MAIL_FROM: Setting = Setting {
    env: "KEYGATE_MAIL_FROM",
    flag: "mail-from",
    default: Some("keygate <no-reply@localhost>"),
    help: "Sender of the mails (`Name <address>` or an address); on AWS an address of the stage's SES identity",
    range: None,
};

/// The settings every mailer reads.
pub const MAIL_SETTINGS: &[Setting] = &[MAIL_FROM];

/// The kinds of mail keygate sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MailKind {
    Verification,
    /// Someone tried to register with an address that already has an account.
    RegisterAttempt,
    PasswordReset,
    PasswordChanged,
}

impl MailKind {
    pub fn name(self) -> &'static str {
        match self {
            MailKind::Verification => "verification",
            MailKind::RegisterAttempt => "register_attempt",
            MailKind::PasswordReset => "password_reset",
            MailKind::PasswordChanged => "password_changed",
        }
    }
}

/// One rendered mail. `text` and `html` say the same; neither holds anything a user typed (the
/// address is only in `to`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mail {
    pub to: String,
    pub kind: MailKind,
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl std::fmt::Debug for Mail {
    // Bodies hold links and codes, the recipient is an email: none of them reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mail")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// A link and code to put in a mail, and how long they last.
pub struct MailSecret<'a> {
    pub link: &'a str,
    pub code: &'a str,
    pub valid_for_secs: u64,
}

/// The path of the app's page that a verification link opens (the token follows in the fragment).
pub const VERIFY_PATH: &str = "/verify-email";
/// The path of the app's page that a reset link opens.
pub const RESET_PATH: &str = "/reset-password";

/// `app_url` + `path` + `#token=<token>`: in the fragment, which browsers do not send and link
/// scanners that fetch the page cannot consume.
pub fn link(app_url: &str, path: &str, token: &str) -> String {
    format!("{app_url}{path}#token={token}")
}

fn duration(secs: u64) -> String {
    match secs {
        s if s % 3600 == 0 && s >= 3600 => {
            let h = s / 3600;
            format!("{h} hour{}", if h == 1 { "" } else { "s" })
        }
        s if s % 60 == 0 && s >= 60 => {
            let m = s / 60;
            format!("{m} minute{}", if m == 1 { "" } else { "s" })
        }
        s => format!("{s} seconds"),
    }
}

/// Escapes text for HTML element content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn html(paragraphs: &[String]) -> String {
    let body: String = paragraphs.iter().map(|p| format!("<p>{p}</p>\n")).collect();
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"></head>\n<body style=\"font-family:sans-serif\">\n{body}</body></html>\n"
    )
}

impl Mail {
    /// The verification mail: a link and a code.
    pub fn verification(to: &str, secret: &MailSecret<'_>) -> Self {
        Self::with_secret(
            to,
            MailKind::Verification,
            "Confirm your email address",
            "To confirm this address for your account, open this link:",
            "Or enter this code:",
            "If you did not create an account, ignore this mail.",
            secret,
        )
    }

    /// The reset mail: a link and a code.
    pub fn password_reset(to: &str, secret: &MailSecret<'_>) -> Self {
        Self::with_secret(
            to,
            MailKind::PasswordReset,
            "Reset your password",
            "To choose a new password, open this link:",
            "Or enter this code:",
            "If you did not ask for this, ignore this mail: your password stays as it is.",
            secret,
        )
    }

    /// The notice to an account's owner that someone tried to register with their address.
    pub fn register_attempt(to: &str, app_url: &str) -> Self {
        Self::notice(
            to,
            MailKind::RegisterAttempt,
            "Someone tried to register with your address",
            "Someone tried to create an account with this address, which already has one. Nothing was changed.",
            "If it was you, sign in, or reset your password if you forgot it:",
            app_url,
        )
    }

    /// The notice that a reset changed the account's password.
    pub fn password_changed(to: &str, app_url: &str) -> Self {
        Self::notice(
            to,
            MailKind::PasswordChanged,
            "Your password was changed",
            "The password of your account was just reset, and every session was signed out.",
            "If you did not do this, reset your password now and review your account:",
            app_url,
        )
    }

    fn with_secret(
        to: &str,
        kind: MailKind,
        subject: &str,
        open: &str,
        enter: &str,
        ignore: &str,
        secret: &MailSecret<'_>,
    ) -> Self {
        let valid = format!(
            "The link and the code work once, for {}.",
            duration(secret.valid_for_secs)
        );
        let text = format!(
            "{open}\n\n{link}\n\n{enter} {code}\n\n{valid}\n{ignore}\n",
            link = secret.link,
            code = secret.code
        );
        let link = escape(secret.link);
        let html = html(&[
            escape(open),
            format!("<a href=\"{link}\">{link}</a>"),
            format!(
                "{} <strong style=\"font-size:1.4em;letter-spacing:0.1em\">{}</strong>",
                escape(enter),
                escape(secret.code)
            ),
            escape(&valid),
            escape(ignore),
        ]);
        Self {
            to: to.to_owned(),
            kind,
            subject: subject.to_owned(),
            text,
            html,
        }
    }

    fn notice(
        to: &str,
        kind: MailKind,
        subject: &str,
        what: &str,
        then: &str,
        app_url: &str,
    ) -> Self {
        let text = format!("{what}\n\n{then}\n{app_url}\n");
        let url = escape(app_url);
        let html = html(&[
            escape(what),
            format!("{} <a href=\"{url}\">{url}</a>", escape(then)),
        ]);
        Self {
            to: to.to_owned(),
            kind,
            subject: subject.to_owned(),
            text,
            html,
        }
    }
}

/// Seals mails for the outbox (AES-256-GCM under a key derived from the server key, the mail id as
/// associated data), so the table holds no link, code or address in clear, and opens them for
/// delivery.
#[derive(Clone)]
pub struct MailSealer {
    key: std::sync::Arc<LessSafeKey>,
}

impl std::fmt::Debug for MailSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MailSealer(..)")
    }
}

/// A sealed mail could not be opened (another server key, or a damaged item).
#[derive(Debug, thiserror::Error)]
#[error("the outbox mail cannot be opened with this server key")]
pub struct Unsealable;

impl MailSealer {
    pub fn new(server_key: &AuditKey) -> Self {
        let bytes = server_key.derive("keygate outbox seal");
        let key = UnboundKey::new(&AES_256_GCM, &bytes).expect("a 32-byte AES-256 key");
        Self {
            key: std::sync::Arc::new(LessSafeKey::new(key)),
        }
    }

    /// The outbox item for `mail`, created at `now_ms`, kept until `expires_at_s`.
    pub fn seal(
        &self,
        mail: &Mail,
        now_ms: i64,
        expires_at_s: i64,
    ) -> Result<OutboxMail, AuthError> {
        let id = random_id();
        let nonce_bytes: [u8; NONCE_LEN] = random_bytes()?;
        let mut data = serde_json::to_vec(mail)
            .map_err(|e| AuthError::Internal(format!("mail encoding: {e}")))?;
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(id.as_bytes()),
                &mut data,
            )
            .map_err(|_| AuthError::Internal("mail sealing failed".into()))?;
        let mut sealed = nonce_bytes.to_vec();
        sealed.extend_from_slice(&data);
        Ok(OutboxMail {
            id,
            sealed: STANDARD.encode(sealed),
            created_at_ms: now_ms,
            expires_at_s,
        })
    }

    pub fn open(&self, item: &OutboxMail) -> Result<Mail, Unsealable> {
        let bytes = STANDARD.decode(&item.sealed).map_err(|_| Unsealable)?;
        if bytes.len() < NONCE_LEN {
            return Err(Unsealable);
        }
        let (nonce, rest) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| Unsealable)?;
        let mut data = rest.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(item.id.as_bytes()), &mut data)
            .map_err(|_| Unsealable)?;
        serde_json::from_slice(plain).map_err(|_| Unsealable)
    }
}

/// Why a mail was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The transport failed or throttled: the mail stays queued and is tried again.
    #[error("mail transport unavailable: {0}")]
    Unavailable(String),
    /// The transport refused this mail for good (a bad address, a suppressed recipient): trying
    /// again cannot help, so it leaves the outbox.
    #[error("mail refused: {0}")]
    Refused(String),
}

/// The delivery port: SES v2 on AWS, SMTP or `.eml` files locally.
pub trait Mailer: Send + Sync + 'static {
    fn send(&self, mail: &Mail) -> impl Future<Output = Result<(), MailError>> + Send;
}

/// The counters [`deliver`] increments: a mail sent, and one dropped (refused for good, or
/// unopenable). Listed in `cdk/contract.json` with the audit events' counters.
pub const MAIL_SENT_METRIC: &str = "MailSent";
pub const MAIL_DROPPED_METRIC: &str = "MailDropped";
pub const DELIVERY_METRICS: [&str; 2] = [MAIL_SENT_METRIC, MAIL_DROPPED_METRIC];

/// What became of one outbox mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Sent,
    /// Refused for good, or unopenable: dropped from the outbox, logged as an error.
    Dropped,
}

/// Delivers one outbox mail and removes it from the outbox; a transport that is unavailable leaves
/// it queued (`Err`), for the worker's next pass or the stream's retry. Logs name the mail's id, kind
/// and hashed recipient, never its address or body.
pub async fn deliver<S: OutboxStore, M: Mailer>(
    outbox: &S,
    mailer: &M,
    sealer: &MailSealer,
    server_key: &AuditKey,
    item: &OutboxMail,
) -> Result<Delivery, DeliveryError> {
    let mail = match sealer.open(item) {
        Ok(mail) => mail,
        Err(e) => {
            tracing::error!(target: "keygate::mail", mail_id = %item.id, error = %e, "dropped");
            metrics::counter!(MAIL_DROPPED_METRIC).increment(1);
            outbox.delete_mail(&item.id).await?;
            return Ok(Delivery::Dropped);
        }
    };
    let to_hash = email_hash(server_key, &mail.to);
    let delivery = match mailer.send(&mail).await {
        Ok(()) => {
            tracing::info!(target: "keygate::mail", mail_id = %item.id, kind = mail.kind.name(), to_hash, "sent");
            metrics::counter!(MAIL_SENT_METRIC).increment(1);
            Delivery::Sent
        }
        Err(MailError::Refused(reason)) => {
            tracing::error!(target: "keygate::mail", mail_id = %item.id, kind = mail.kind.name(), to_hash, reason, "refused");
            metrics::counter!(MAIL_DROPPED_METRIC).increment(1);
            Delivery::Dropped
        }
        Err(e @ MailError::Unavailable(_)) => {
            tracing::warn!(target: "keygate::mail", mail_id = %item.id, kind = mail.kind.name(), to_hash, error = %e, "not sent, stays queued");
            return Err(DeliveryError::Mail(e));
        }
    };
    outbox.delete_mail(&item.id).await?;
    Ok(delivery)
}

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error(transparent)]
    Mail(#[from] MailError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> MailSecret<'static> {
        MailSecret {
            link: "https://app.example.com/verify-email#token=kgev_abc",
            code: "01234567",
            valid_for_secs: 86_400,
        }
    }

    #[test]
    fn mails_carry_the_link_and_code_in_both_parts() {
        let mail = Mail::verification("ada@example.com", &secret());
        for body in [&mail.text, &mail.html] {
            assert!(body.contains("https://app.example.com/verify-email#token=kgev_abc"));
            assert!(body.contains("01234567"));
            assert!(body.contains("24 hours"));
            assert!(!body.contains("ada@example.com"));
        }
        let reset = Mail::password_reset(
            "ada@example.com",
            &MailSecret {
                valid_for_secs: 900,
                ..secret()
            },
        );
        assert!(reset.text.contains("15 minutes"));
    }

    #[test]
    fn html_escapes_what_it_inserts() {
        let mail = Mail::password_changed("a@b.c", "https://app.example.com/?a=1&b=<x>");
        assert!(
            mail.html
                .contains("https://app.example.com/?a=1&amp;b=&lt;x&gt;")
        );
        assert!(!mail.html.contains("<x>"));
    }

    #[test]
    fn sealed_mails_open_only_with_their_key_and_id() {
        let key = AuditKey::from_bytes(&[3; AuditKey::LEN]);
        let sealer = MailSealer::new(&key);
        let mail = Mail::verification("ada@example.com", &secret());
        let item = sealer.seal(&mail, 1_000, 2).unwrap();
        assert!(!item.sealed.contains("01234567"));
        let decoded = STANDARD.decode(&item.sealed).unwrap();
        assert!(!String::from_utf8_lossy(&decoded).contains("ada@example.com"));
        assert_eq!(sealer.open(&item).unwrap(), mail);
        let other = MailSealer::new(&AuditKey::from_bytes(&[4; AuditKey::LEN]));
        assert!(other.open(&item).is_err());
        let moved = OutboxMail {
            id: "another".into(),
            ..item.clone()
        };
        assert!(sealer.open(&moved).is_err());
        assert_ne!(sealer.seal(&mail, 1_000, 2).unwrap().sealed, item.sealed);
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(86_400), "24 hours");
        assert_eq!(duration(3_600), "1 hour");
        assert_eq!(duration(900), "15 minutes");
        assert_eq!(duration(90), "90 seconds");
    }
}
