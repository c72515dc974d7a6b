//! Flags, each with an environment fallback. The auth settings come from keygate-core's settings table
//! and the store/key settings from keygate-aws's, so the local server and the Lambda functions read the
//! same variables the same way.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Arg, ArgMatches, Command};
use keygate_aws::settings::{TABLE_NAME, read_table_name};
use keygate_core::config::{AUTH_SETTINGS, ISSUER, Setting};
use keygate_core::mail::MAIL_FROM;
use keygate_core::{AuthConfig, ConfigError};

use crate::mailer::{LocalMailer, MAILER};

/// Where users and refresh tokens live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Sqlite,
    Dynamodb,
}

/// What to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Serve,
    /// Run one whole key rotation (the four Secrets Manager steps) on the data folder's key files.
    RotateKeys,
}

pub struct Options {
    pub action: Action,
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    pub store: StoreKind,
    matches: ArgMatches,
}

/// Settings of keygate-aws the local server offers too.
const LOCAL_AWS_SETTINGS: [Setting; 1] = [TABLE_NAME];
/// Mail delivery: where mails go, and their sender (core's, shared with the AWS mailer).
const LOCAL_MAIL_SETTINGS: [Setting; 2] = [MAILER, MAIL_FROM];

/// Every setting with a flag, beyond the fixed ones (`--addr`, `--data-dir`, `--store`).
fn settings() -> impl Iterator<Item = &'static Setting> {
    AUTH_SETTINGS
        .iter()
        .chain(LOCAL_AWS_SETTINGS.iter())
        .chain(LOCAL_MAIL_SETTINGS.iter())
}

fn setting_arg(setting: &Setting) -> Arg {
    let mut arg = Arg::new(setting.flag)
        .long(setting.flag)
        .env(setting.env)
        .help(match setting.range {
            Some((min, max)) => format!("{} ({min}-{max})", setting.help),
            None => setting.help.to_owned(),
        })
        .global(true);
    if let Some(default) = setting.default {
        arg = arg.default_value(default);
    }
    arg
}

fn command() -> Command {
    let mut command = Command::new("keygate-local")
        .about("Runs every keygate endpoint on this machine with an embedded store and a generated signing key")
        .version(env!("CARGO_PKG_VERSION"))
        .subcommand(
            Command::new("rotate-keys")
                .about("Rotates the signing key in the data folder (createSecret, setSecret, testSecret, finishSecret); a running server picks it up within the key cache TTL"),
        )
        .arg(
            Arg::new("addr")
                .long("addr")
                .env("KEYGATE_ADDR")
                .default_value("127.0.0.1:8787")
                .value_parser(clap::value_parser!(SocketAddr))
                .help("Address to listen on"),
        )
        .arg(
            Arg::new("data-dir")
                .long("data-dir")
                .env("KEYGATE_DATA_DIR")
                .default_value(".keygate")
                .value_parser(clap::value_parser!(PathBuf))
                .global(true)
                .help("Folder for the SQLite database and the signing-key files (created if missing)"),
        )
        .arg(
            Arg::new("store")
                .long("store")
                .env("KEYGATE_STORE")
                .default_value("sqlite")
                .value_parser(["sqlite", "dynamodb"])
                .help("sqlite: the embedded database in the data folder; dynamodb: the table KEYGATE_TABLE_NAME through the standard AWS environment (credentials, region, AWS_ENDPOINT_URL_DYNAMODB)"),
        );
    for setting in settings() {
        command = command.arg(setting_arg(setting));
    }
    command
}

impl Options {
    pub fn parse() -> Result<Self, clap::Error> {
        Self::parse_from(std::env::args_os())
    }

    pub fn parse_from<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let matches = command().try_get_matches_from(args)?;
        let action = match matches.subcommand_name() {
            Some("rotate-keys") => Action::RotateKeys,
            _ => Action::Serve,
        };
        let addr = *matches
            .get_one::<SocketAddr>("addr")
            .expect("has a default");
        let data_dir = matches
            .get_one::<PathBuf>("data-dir")
            .expect("has a default")
            .clone();
        let store = match matches.get_one::<String>("store").map(String::as_str) {
            Some("dynamodb") => StoreKind::Dynamodb,
            _ => StoreKind::Sqlite,
        };
        Ok(Self {
            action,
            addr,
            data_dir,
            store,
            matches,
        })
    }

    /// A value by environment-variable name, from the flag, the environment or the default; global
    /// flags given after `rotate-keys` are found there.
    fn lookup(&self, env: &str) -> Option<String> {
        let setting = settings().find(|s| s.env == env)?;
        let from = |m: &ArgMatches| m.get_one::<String>(setting.flag).cloned();
        self.matches
            .subcommand()
            .and_then(|(_, sub)| from(sub))
            .or_else(|| from(&self.matches))
    }

    /// The auth configuration; the issuer defaults to the URL the server listens on.
    pub fn auth_config(&self, listening: SocketAddr) -> Result<AuthConfig, ConfigError> {
        AuthConfig::from_lookup(|env| {
            let value = self.lookup(env);
            if value.is_none() && env == ISSUER.env {
                return Some(format!("http://{listening}"));
            }
            value
        })
    }

    pub fn table_name(&self) -> Result<String, ConfigError> {
        read_table_name(&|env: &str| self.lookup(env))
    }

    /// The mailer `--mailer` and `--mail-from` describe (both have defaults).
    pub fn mailer(&self) -> Result<LocalMailer, ConfigError> {
        let value = |setting: &Setting| {
            self.lookup(setting.env)
                .or(setting.default.map(str::to_owned))
                .unwrap_or_default()
        };
        LocalMailer::from_settings(&value(&MAILER), &value(&MAIL_FROM), &self.data_dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_defaults_and_every_setting_has_a_flag() {
        let options = Options::parse_from([
            "keygate-local",
            "--addr",
            "127.0.0.1:9999",
            "--signing-alg",
            "EdDSA",
            "--password-min-length",
            "20",
        ])
        .unwrap();
        assert_eq!(options.addr.port(), 9999);
        assert_eq!(options.action, Action::Serve);
        assert_eq!(options.store, StoreKind::Sqlite);
        let config = options.auth_config(options.addr).unwrap();
        assert_eq!(config.issuer, "http://127.0.0.1:9999");
        assert_eq!(config.signing_alg.name(), "EdDSA");
        assert_eq!(config.password_policy.min_length, 20);
        assert_eq!(config.key_cache_ttl(), std::time::Duration::from_secs(300));
        let help = command().render_long_help().to_string();
        for setting in settings() {
            assert!(
                help.contains(setting.flag) && help.contains(setting.env),
                "{}",
                setting.env
            );
        }
    }

    #[test]
    fn the_configuration_doc_lists_every_setting() {
        let doc = include_str!("../../../docs/configuration.md");
        for setting in settings() {
            assert!(
                doc.contains(setting.env) && doc.contains(&format!("--{}", setting.flag)),
                "{} missing from docs/configuration.md",
                setting.env
            );
        }
        for flag in ["--addr", "--data-dir", "--store", "rotate-keys"] {
            assert!(
                doc.contains(flag),
                "{flag} missing from docs/configuration.md"
            );
        }
    }

    #[test]
    fn rotate_keys_takes_the_same_settings() {
        let options = Options::parse_from([
            "keygate-local",
            "rotate-keys",
            "--data-dir",
            "/tmp/x",
            "--signing-alg",
            "RS256",
        ])
        .unwrap();
        assert_eq!(options.action, Action::RotateKeys);
        assert_eq!(options.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(
            options
                .auth_config(options.addr)
                .unwrap()
                .signing_alg
                .name(),
            "RS256"
        );
    }

    #[test]
    fn bad_values_name_the_variable() {
        let options =
            Options::parse_from(["keygate-local", "--access-token-ttl-seconds", "3600"]).unwrap();
        let error = options.auth_config(options.addr).unwrap_err();
        assert_eq!(error.variable, "KEYGATE_ACCESS_TOKEN_TTL_SECONDS");
        assert!(Options::parse_from(["keygate-local", "--addr", "not-an-address"]).is_err());
        assert!(Options::parse_from(["keygate-local", "--store", "postgres"]).is_err());
        let options = Options::parse_from(["keygate-local", "--store", "dynamodb"]).unwrap();
        assert_eq!(
            options.table_name().unwrap_err().variable,
            "KEYGATE_TABLE_NAME"
        );
    }
}
