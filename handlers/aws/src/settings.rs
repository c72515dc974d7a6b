//! The adapter's own settings, declared like the core's (`keygate_core::config::Setting`) so the local
//! server can offer the same names as flags and every error names its variable.

use keygate_core::config::{ConfigError, Setting, read_setting};

pub const TABLE_NAME: Setting = Setting {
    env: "KEYGATE_TABLE_NAME",
    flag: "table-name",
    default: None,
    help: "DynamoDB table holding users and refresh tokens",
    range: None,
};

pub const KEYS_SECRET_ID: Setting = Setting {
    env: "KEYGATE_KEYS_SECRET_ID",
    flag: "keys-secret-id",
    default: None,
    help: "Secrets Manager secret (ARN or name) holding the signing key set",
    range: None,
};

pub const PUBLIC_KEYS_SECRET_ID: Setting = Setting {
    env: "KEYGATE_PUBLIC_KEYS_SECRET_ID",
    flag: "public-keys-secret-id",
    default: None,
    help: "Secrets Manager secret (ARN or name) holding the public key set, written by rotate-keys",
    range: None,
};

pub const SERVER_KEY_SECRET_ID: Setting = Setting {
    env: "KEYGATE_SERVER_KEY_SECRET_ID",
    flag: "server-key-secret-id",
    default: None,
    help: "Secrets Manager secret (ARN or name) holding the 256-bit server key that keys audit email hashes",
    range: None,
};

pub const FACTOR_KEYS_SECRET_ID: Setting = Setting {
    env: "KEYGATE_FACTOR_KEYS_SECRET_ID",
    flag: "factor-keys-secret-id",
    default: None,
    help: "Secrets Manager secret (ARN or name) holding the data-key ring that seals TOTP secrets (read only by the functions of /auth/mfa/*)",
    range: None,
};

pub const METRICS_NAMESPACE: Setting = Setting {
    env: "KEYGATE_METRICS_NAMESPACE",
    flag: "metrics-namespace",
    default: Some("Keygate"),
    help: "CloudWatch namespace of the EMF metrics",
    range: None,
};

pub const SES_CONFIGURATION_SET: Setting = Setting {
    env: "KEYGATE_SES_CONFIGURATION_SET",
    flag: "ses-configuration-set",
    default: None,
    help: "SES configuration set the mailer sends with (its event destination receives bounces and complaints); unset: none",
    range: None,
};

/// Every setting of this crate.
pub const AWS_SETTINGS: &[Setting] = &[
    TABLE_NAME,
    KEYS_SECRET_ID,
    PUBLIC_KEYS_SECRET_ID,
    SERVER_KEY_SECRET_ID,
    FACTOR_KEYS_SECRET_ID,
    METRICS_NAMESPACE,
    SES_CONFIGURATION_SET,
];

fn table_name(raw: &str) -> Result<String, String> {
    // DynamoDB's rule: 3-255 characters of a-z, A-Z, 0-9, '_', '-', '.'.
    let valid = (3..=255).contains(&raw.len())
        && raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if valid {
        Ok(raw.to_owned())
    } else {
        Err(format!(
            "`{raw}` is not a DynamoDB table name (3-255 of a-z A-Z 0-9 _ - .)"
        ))
    }
}

fn non_empty(max: usize) -> impl FnOnce(&str) -> Result<String, String> {
    move |raw| {
        if raw.is_empty()
            || raw.len() > max
            || raw.chars().any(|c| c.is_control() || c.is_whitespace())
        {
            Err(format!("must be 1-{max} characters without spaces"))
        } else {
            Ok(raw.to_owned())
        }
    }
}

pub fn read_table_name<F: Fn(&str) -> Option<String>>(lookup: &F) -> Result<String, ConfigError> {
    read_setting(lookup, &TABLE_NAME, table_name)
}

pub fn read_keys_secret_id<F: Fn(&str) -> Option<String>>(
    lookup: &F,
) -> Result<String, ConfigError> {
    read_setting(lookup, &KEYS_SECRET_ID, non_empty(2048))
}

pub fn read_public_keys_secret_id<F: Fn(&str) -> Option<String>>(
    lookup: &F,
) -> Result<String, ConfigError> {
    read_setting(lookup, &PUBLIC_KEYS_SECRET_ID, non_empty(2048))
}

pub fn read_server_key_secret_id<F: Fn(&str) -> Option<String>>(
    lookup: &F,
) -> Result<String, ConfigError> {
    read_setting(lookup, &SERVER_KEY_SECRET_ID, non_empty(2048))
}

pub fn read_factor_keys_secret_id<F: Fn(&str) -> Option<String>>(
    lookup: &F,
) -> Result<String, ConfigError> {
    read_setting(lookup, &FACTOR_KEYS_SECRET_ID, non_empty(2048))
}

pub fn read_metrics_namespace<F: Fn(&str) -> Option<String>>(
    lookup: &F,
) -> Result<String, ConfigError> {
    // CloudWatch: 1-255 characters; '/' separates levels ("Keygate/prod").
    read_setting(lookup, &METRICS_NAMESPACE, non_empty(255))
}

/// The process environment as a settings lookup (empty values count as unset).
pub fn env_lookup(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn errors_name_the_variable() {
        let err = read_table_name(&lookup(&[])).unwrap_err();
        assert_eq!(err.to_string(), "KEYGATE_TABLE_NAME: is required");
        let err = read_table_name(&lookup(&[("KEYGATE_TABLE_NAME", "a b")])).unwrap_err();
        assert_eq!(err.variable, "KEYGATE_TABLE_NAME");
        assert!(read_keys_secret_id(&lookup(&[])).is_err());
        assert_eq!(read_metrics_namespace(&lookup(&[])).unwrap(), "Keygate");
        assert_eq!(
            read_table_name(&lookup(&[("KEYGATE_TABLE_NAME", "keygate-dev.Table_1")])).unwrap(),
            "keygate-dev.Table_1"
        );
    }
}
