//! The local server's mail delivery: the core's [`Mailer`] port as `.eml` files in the data folder or
//! as SMTP through lettre (rustls on aws-lc-rs), and the background task that drains the outbox.
//!
//! Requests only queue sealed mails ([`keygate_core::mail`]); [`spawn_outbox_worker`] opens and sends
//! them, so a slow or absent mail server never changes a request's answer or its timing. Delivery is
//! at least once: a mail sent whose removal from the outbox then fails is sent again.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use keygate_core::config::{ConfigError, Setting};
use keygate_core::crypto::random_id;
use keygate_core::keys::KeySource;
use keygate_core::mail::{self, DeliveryError, Mail, MailError, Mailer};
use keygate_core::store::AuthStore;
use keygate_core::{AuthService, Clock};
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

pub const MAILER: Setting = Setting {
    env: "KEYGATE_MAILER",
    flag: "mailer",
    default: Some("file"),
    help: "Where mails go: `file` (one .eml per mail in the data folder's outbox/), `smtp://[USER:PASS@]HOST:PORT` (plain SMTP, e.g. a mail catcher; `?tls=required` for STARTTLS) or `smtps://[USER:PASS@]HOST[:PORT]` (implicit TLS)",
    range: None,
};

/// How often the worker looks at the outbox, and the longest it waits after a transport failure.
const POLL: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Mails taken from the outbox per pass.
const BATCH: usize = 32;
/// An SMTP exchange that takes longer than this fails (and the mail stays queued).
const SMTP_TIMEOUT: Duration = Duration::from_secs(15);

/// The mailer `--mailer` names.
pub enum LocalMailer {
    File(FileMailer),
    Smtp(SmtpMailer),
}

impl LocalMailer {
    /// Parses `--mailer` (`value`) with the sender `from`; `file` writes under `data_dir/outbox`.
    pub fn from_settings(value: &str, from: &str, data_dir: &Path) -> Result<Self, ConfigError> {
        let from: Mailbox = from.parse().map_err(|_| ConfigError {
            variable: mail::MAIL_FROM.env,
            message: "not a mailbox: use `Name <address>` or an address".into(),
        })?;
        if value == "file" {
            return Ok(LocalMailer::File(FileMailer {
                dir: data_dir.join("outbox"),
                from,
            }));
        }
        if value.starts_with("smtp://") || value.starts_with("smtps://") {
            // lettre's URL form: smtp:// is plain unless `?tls=`, smtps:// is implicit TLS.
            let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(value)
                .map_err(|_| ConfigError {
                    variable: MAILER.env,
                    message: "not a usable SMTP URL (smtp://HOST:PORT or smtps://HOST[:PORT])"
                        .into(),
                })?
                .timeout(Some(SMTP_TIMEOUT))
                .build();
            return Ok(LocalMailer::Smtp(SmtpMailer {
                transport,
                from,
                // The URL may hold a password: only its scheme and host are ever shown.
                server: describe_smtp_url(value),
            }));
        }
        Err(ConfigError {
            variable: MAILER.env,
            message: "expected `file`, `smtp://HOST:PORT` or `smtps://HOST[:PORT]`".into(),
        })
    }

    /// Where mails go, for the startup line (never a credential).
    pub fn describe(&self) -> String {
        match self {
            LocalMailer::File(f) => format!("files in {}", f.dir.display()),
            LocalMailer::Smtp(s) => s.server.clone(),
        }
    }
}

/// `smtp://host:port` of a URL, without its credentials, path or query.
fn describe_smtp_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("smtp", url));
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or(authority);
    format!("{scheme}://{host}")
}

impl Mailer for LocalMailer {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        match self {
            LocalMailer::File(f) => f.send(mail).await,
            LocalMailer::Smtp(s) => s.send(mail).await,
        }
    }
}

/// The RFC 5322 message of a mail: text and HTML as alternatives.
fn message(from: &Mailbox, mail: &Mail) -> Result<Message, MailError> {
    let to: Mailbox = mail
        .to
        .parse()
        .map_err(|_| MailError::Refused("the recipient is not a mailbox".into()))?;
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(mail.subject.clone())
        .multipart(MultiPart::alternative_plain_html(
            mail.text.clone(),
            mail.html.clone(),
        ))
        .map_err(|e| MailError::Refused(format!("the message cannot be built: {e}")))
}

/// One `.eml` file per mail: what a developer opens to click a link without any mail server.
pub struct FileMailer {
    dir: PathBuf,
    from: Mailbox,
}

impl FileMailer {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        let bytes = message(&self.from, mail)?.formatted();
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let path = self
            .dir
            .join(format!("{millis}-{}-{}.eml", mail.kind.name(), random_id()));
        let dir = self.dir.clone();
        let written = path.clone();
        tokio::task::spawn_blocking(move || write_private(&dir, &written, &bytes))
            .await
            .map_err(|_| MailError::Unavailable("the file task did not complete".into()))?
            .map_err(|e| MailError::Unavailable(format!("{}: {e}", path.display())))?;
        // The path names the time, kind and a random id: no address, link or code.
        tracing::info!(target: "keygate::mail", path = %path.display(), kind = mail.kind.name(), "mail written");
        Ok(())
    }
}

/// Creates the outbox folder and the file readable by the owner only: mails hold live links.
fn write_private(dir: &Path, file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut out = options.open(file)?;
    out.write_all(bytes)?;
    out.sync_all()
}

pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    server: String,
}

impl SmtpMailer {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        let message = message(&self.from, mail)?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            // 5xx: this mail will never be accepted; anything else may pass next time.
            Err(e) if e.is_permanent() => Err(MailError::Refused(format!(
                "{} refused the mail: {}",
                self.server,
                e.status().map(|c| c.to_string()).unwrap_or_default()
            ))),
            Err(e) => Err(MailError::Unavailable(format!(
                "{}: {}",
                self.server,
                smtp_failure(&e)
            ))),
        }
    }
}

/// What went wrong, in words that quote nothing the server echoed (it may repeat the recipient).
fn smtp_failure(error: &lettre::transport::smtp::Error) -> &'static str {
    if error.is_timeout() {
        "timed out"
    } else if error.is_transient() {
        "temporary refusal (4xx)"
    } else if error.is_client() {
        "client error"
    } else {
        "connection or protocol failure"
    }
}

/// Drains the outbox every [`POLL`] until the runtime stops: each mail is opened and sent through
/// `mailer` by [`mail::deliver`] (which logs it and removes it); a transport failure keeps the mail
/// and waits longer before the next pass, up to [`MAX_BACKOFF`].
pub fn spawn_outbox_worker<S, K, C, M>(
    service: Arc<AuthService<S, K, C>>,
    mailer: M,
) -> tokio::task::JoinHandle<()>
where
    S: AuthStore,
    K: KeySource,
    C: Clock,
    M: Mailer,
{
    tokio::spawn(async move {
        let mut wait = POLL;
        loop {
            tokio::time::sleep(wait).await;
            wait = match drain(&service, &mailer).await {
                Ok(()) => POLL,
                Err(error) => {
                    let next = (wait * 2).min(MAX_BACKOFF);
                    tracing::warn!(target: "keygate::mail", error = %error, retry_in_ms = next.as_millis() as u64, "outbox delivery paused");
                    next
                }
            };
        }
    })
}

async fn drain<S, K, C, M>(service: &AuthService<S, K, C>, mailer: &M) -> Result<(), DeliveryError>
where
    S: AuthStore,
    K: KeySource,
    C: Clock,
    M: Mailer,
{
    loop {
        let now = service.clock().now_ms();
        let items = service.store().pending_mail(BATCH, now).await?;
        if items.is_empty() {
            return Ok(());
        }
        for item in &items {
            mail::deliver(
                service.store(),
                mailer,
                service.sealer(),
                service.audit_key(),
                item,
            )
            .await?;
        }
        if items.len() < BATCH {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mailer_settings_are_parsed_and_explained() {
        let dir = Path::new("/tmp/kg-data");
        let from = "keygate <no-reply@localhost>";
        assert!(matches!(
            LocalMailer::from_settings("file", from, dir).unwrap(),
            LocalMailer::File(_)
        ));
        let smtp =
            LocalMailer::from_settings("smtp://user:secret@127.0.0.1:2525", from, dir).unwrap();
        assert_eq!(smtp.describe(), "smtp://127.0.0.1:2525");
        assert!(!smtp.describe().contains("secret"));
        assert!(LocalMailer::from_settings("smtps://mail.example.com", from, dir).is_ok());
        let error = LocalMailer::from_settings("sendmail", from, dir)
            .err()
            .unwrap();
        assert_eq!(error.variable, "KEYGATE_MAILER");
        let error = LocalMailer::from_settings("file", "not a mailbox", dir)
            .err()
            .unwrap();
        assert_eq!(error.variable, "KEYGATE_MAIL_FROM");
    }

    #[tokio::test]
    async fn the_file_mailer_writes_one_private_eml_per_mail() {
        let dir = std::env::temp_dir().join(format!("kg-outbox-{}", random_id()));
        let mailer = LocalMailer::from_settings("file", "keygate <k@localhost>", &dir).unwrap();
        // A recipient with letters no hex digit has, so the random part of a name cannot match it.
        let mail = Mail::password_changed("grace.hopper@example.com", "https://app.example.com");
        mailer.send(&mail).await.unwrap();
        let files: Vec<_> = std::fs::read_dir(dir.join("outbox"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(files.len(), 1);
        let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.contains("-password_changed-") && name.ends_with(".eml"),
            "{name}"
        );
        assert!(!name.contains("grace") && !name.contains('@'), "{name}");
        let text = std::fs::read_to_string(&files[0]).unwrap();
        assert!(text.contains("To: grace.hopper@example.com"));
        assert!(text.contains("multipart/alternative"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&files[0]).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "only the owner reads a mail");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
