//! The core's [`Mailer`] port on Amazon SES v2 (`SendEmail`, simple content: subject, text and HTML),
//! used by the mailer function only; its sender and configuration set are settings.

use aws_sdk_sesv2::Client;
use aws_sdk_sesv2::error::{DisplayErrorContext, SdkError};
use aws_sdk_sesv2::operation::send_email::SendEmailError;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};
use keygate_core::config::{ConfigError, read_setting};
use keygate_core::mail::{MAIL_FROM, Mail, MailError, Mailer};

use crate::settings::SES_CONFIGURATION_SET;

/// What the mailer function reads besides the table and the server key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SesSettings {
    pub from: String,
    pub configuration_set: Option<String>,
}

impl SesSettings {
    pub fn from_lookup<F: Fn(&str) -> Option<String>>(lookup: &F) -> Result<Self, ConfigError> {
        let from = read_setting(lookup, &MAIL_FROM, |raw| {
            // `Name <address>` or an address: SES takes either; the address needs its `@`.
            let address = raw
                .rsplit_once('<')
                .map(|(_, rest)| rest.trim_end_matches('>'))
                .unwrap_or(raw);
            if address.contains('@') && !raw.chars().any(char::is_control) {
                Ok(raw.to_owned())
            } else {
                Err(format!(
                    "`{raw}` is not a sender (`Name <address>` or an address)"
                ))
            }
        })?;
        let configuration_set = match lookup(SES_CONFIGURATION_SET.env) {
            None => None,
            Some(_) => Some(read_setting(lookup, &SES_CONFIGURATION_SET, |raw| {
                // SES: 1-64 of letters, digits, '-' and '_'.
                if (1..=64).contains(&raw.len())
                    && raw
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                {
                    Ok(raw.to_owned())
                } else {
                    Err("must be 1-64 letters, digits, '-' or '_'".into())
                }
            })?),
        };
        Ok(Self {
            from,
            configuration_set,
        })
    }
}

pub struct SesMailer {
    client: Client,
    settings: SesSettings,
}

impl SesMailer {
    pub fn new(client: Client, settings: SesSettings) -> Self {
        Self { client, settings }
    }
}

fn utf8(data: &str) -> Result<Content, MailError> {
    Content::builder()
        .data(data)
        .charset("UTF-8")
        .build()
        .map_err(|e| MailError::Refused(format!("the message cannot be built: {e}")))
}

impl Mailer for SesMailer {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        let message = Message::builder()
            .subject(utf8(&mail.subject)?)
            .body(
                Body::builder()
                    .text(utf8(&mail.text)?)
                    .html(utf8(&mail.html)?)
                    .build(),
            )
            .build();
        self.client
            .send_email()
            .from_email_address(&self.settings.from)
            .destination(Destination::builder().to_addresses(&mail.to).build())
            .content(EmailContent::builder().simple(message).build())
            .set_configuration_set_name(self.settings.configuration_set.clone())
            .send()
            .await
            .map(drop)
            .map_err(classify)
    }
}

/// A refusal of this mail (SES will never take it) leaves the outbox; anything about the account,
/// the identity, quotas or the network keeps it for the stream's retry and, after that, the DLQ.
fn classify<R>(error: SdkError<SendEmailError, R>) -> MailError
where
    R: std::fmt::Debug,
{
    match &error {
        SdkError::ServiceError(service) => match service.err() {
            SendEmailError::MessageRejected(_) => {
                MailError::Refused("SES rejected the message".into())
            }
            SendEmailError::BadRequestException(_) => {
                MailError::Refused("SES found the request invalid".into())
            }
            other => MailError::Unavailable(format!(
                "SES: {}",
                aws_sdk_sesv2::error::ProvideErrorMetadata::code(other).unwrap_or("error")
            )),
        },
        // Transport and timeout failures: the message (not the mail) is described.
        _ => MailError::Unavailable(format!("SES unreachable: {}", DisplayErrorContext(&error))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_name_their_variable() {
        let lookup = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let s = SesSettings::from_lookup(&lookup(&[
            ("KEYGATE_MAIL_FROM", "keygate <no-reply@auth.example.com>"),
            ("KEYGATE_SES_CONFIGURATION_SET", "keygate-prod"),
        ]))
        .unwrap();
        assert_eq!(s.configuration_set.as_deref(), Some("keygate-prod"));
        let default = SesSettings::from_lookup(&lookup(&[])).unwrap();
        assert_eq!(default.from, "keygate <no-reply@localhost>");
        assert_eq!(default.configuration_set, None);
        let e = SesSettings::from_lookup(&lookup(&[("KEYGATE_MAIL_FROM", "nobody")])).unwrap_err();
        assert_eq!(e.variable, "KEYGATE_MAIL_FROM");
        let e = SesSettings::from_lookup(&lookup(&[("KEYGATE_SES_CONFIGURATION_SET", "a b")]))
            .unwrap_err();
        assert_eq!(e.variable, "KEYGATE_SES_CONFIGURATION_SET");
    }
}
