//! Flags, each with an environment fallback. The auth settings come from keygate-core's settings table,
//! so the local server and the Lambda functions read the same variables the same way.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Arg, ArgMatches, Command};
use keygate_core::config::{AUTH_SETTINGS, ISSUER};
use keygate_core::{AuthConfig, ConfigError};

pub struct Options {
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    matches: ArgMatches,
}

fn command() -> Command {
    let mut command = Command::new("keygate-local")
        .about("Runs every keygate endpoint on this machine with an embedded store and a generated signing key")
        .version(env!("CARGO_PKG_VERSION"))
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
                .help("Folder for the database and the signing-key file (created if missing)"),
        );
    for setting in AUTH_SETTINGS {
        let mut arg = Arg::new(setting.flag)
            .long(setting.flag)
            .env(setting.env)
            .help(setting.help);
        if let Some(default) = setting.default {
            arg = arg.default_value(default);
        }
        command = command.arg(arg);
    }
    command
}

impl Options {
    pub fn parse() -> Result<Self, Box<dyn std::error::Error>> {
        Self::parse_from(std::env::args_os())
    }

    pub fn parse_from<I, T>(args: I) -> Result<Self, Box<dyn std::error::Error>>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let matches = command().try_get_matches_from(args)?;
        let addr = *matches
            .get_one::<SocketAddr>("addr")
            .expect("has a default");
        let data_dir = matches
            .get_one::<PathBuf>("data-dir")
            .expect("has a default")
            .clone();
        Ok(Self {
            addr,
            data_dir,
            matches,
        })
    }

    /// The auth configuration; the issuer defaults to the URL the server listens on.
    pub fn auth_config(&self, listening: SocketAddr) -> Result<AuthConfig, ConfigError> {
        AuthConfig::from_lookup(|env| {
            let setting = AUTH_SETTINGS.iter().find(|s| s.env == env)?;
            let value = self.matches.get_one::<String>(setting.flag).cloned();
            if value.is_none() && env == ISSUER.env {
                return Some(format!("http://{listening}"));
            }
            value
        })
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
        let config = options.auth_config(options.addr).unwrap();
        assert_eq!(config.issuer, "http://127.0.0.1:9999");
        assert_eq!(config.signing_alg.name(), "EdDSA");
        assert_eq!(config.password_policy.min_length, 20);
        let help = command().render_long_help().to_string();
        for setting in AUTH_SETTINGS {
            assert!(
                help.contains(setting.flag) && help.contains(setting.env),
                "{}",
                setting.env
            );
        }
    }

    #[test]
    fn bad_values_name_the_variable() {
        let options =
            Options::parse_from(["keygate-local", "--access-token-ttl-seconds", "3600"]).unwrap();
        let error = options.auth_config(options.addr).unwrap_err();
        assert_eq!(error.variable, "KEYGATE_ACCESS_TOKEN_TTL_SECONDS");
        assert!(Options::parse_from(["keygate-local", "--addr", "not-an-address"]).is_err());
    }
}
