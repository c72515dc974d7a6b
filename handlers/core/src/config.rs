//! Configuration shared by every shell: the local server reads these settings from flags or the
//! environment, the Lambda functions from the environment. One table ([`AUTH_SETTINGS`]) names them.

use crate::algorithm::SigningAlgorithm;
use crate::password::{CharClass, HashingParams, PasswordPolicy};
pub use crate::throttle::LoginThrottle;

/// One configurable value: its environment variable, the matching flag of the local server, its
/// default, a line of help, and for a whole number the inclusive range [`read_number`] enforces
/// (the CDK validates stage values against the same range, through `cdk/contract.json`).
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    pub env: &'static str,
    pub flag: &'static str,
    pub default: Option<&'static str>,
    pub help: &'static str,
    pub range: Option<(i64, i64)>,
}

pub const ISSUER: Setting = Setting {
    env: "KEYGATE_ISSUER",
    flag: "issuer",
    default: None,
    help: "Issuer URL put in `iss` and the discovery document (the local server defaults to http://ADDR)",
    range: None,
};
pub const AUDIENCE: Setting = Setting {
    env: "KEYGATE_AUDIENCE",
    flag: "audience",
    default: Some("keygate"),
    help: "Audience put in `aud` and required on verification",
    range: None,
};
pub const OAUTH_CLIENT_IDS: Setting = Setting {
    env: "KEYGATE_OAUTH_CLIENT_IDS",
    flag: "oauth-client-ids",
    default: None,
    help: "Comma-separated client ids the OAuth token and revocation endpoints accept (public clients, no secret; default: the audience, which access tokens carry as `client_id`)",
    range: None,
};
pub const ACCESS_TOKEN_TTL: Setting = Setting {
    env: "KEYGATE_ACCESS_TOKEN_TTL_SECONDS",
    flag: "access-token-ttl-seconds",
    default: Some("900"),
    help: "Access-token lifetime in seconds",
    range: Some((1, 900)),
};
pub const REFRESH_FAMILY_TTL: Setting = Setting {
    env: "KEYGATE_REFRESH_FAMILY_TTL_SECONDS",
    flag: "refresh-family-ttl-seconds",
    default: Some("2592000"),
    help: "Absolute lifetime of a refresh-token family in seconds; rotation does not extend it",
    range: Some((300, 31_536_000)),
};
pub const REFRESH_REUSE_GRACE: Setting = Setting {
    env: "KEYGATE_REFRESH_REUSE_GRACE_SECONDS",
    flag: "refresh-reuse-grace-seconds",
    default: Some("10"),
    help: "Window in which replaying the immediate parent of a live refresh token is refused without revoking the family",
    range: Some((0, 60)),
};
pub const MAX_REFRESH_FAMILIES: Setting = Setting {
    env: "KEYGATE_MAX_REFRESH_FAMILIES",
    flag: "max-refresh-families",
    default: Some("100"),
    help: "Live refresh-token families per user: a login retires the family opened this many logins before it",
    range: Some((1, 10_000)),
};
pub const SIGNING_ALG: Setting = Setting {
    env: "KEYGATE_SIGNING_ALG",
    flag: "signing-alg",
    default: Some("ES256"),
    help: "Access-token signing algorithm: ES256, RS256, EdDSA, or HS256 (explicit opt-in: no public JWKS)",
    range: None,
};
pub const PASSWORD_MIN_LENGTH: Setting = Setting {
    env: "KEYGATE_PASSWORD_MIN_LENGTH",
    flag: "password-min-length",
    default: Some("15"),
    help: "Minimum password length in characters (NIST SP 800-63B-4 asks 15 for single-factor)",
    range: Some((8, 64)),
};
pub const PASSWORD_MAX_LENGTH: Setting = Setting {
    env: "KEYGATE_PASSWORD_MAX_LENGTH",
    flag: "password-max-length",
    default: Some("128"),
    help: "Maximum password length in characters; passwords are also capped at 1024 bytes",
    range: Some((64, 256)),
};
pub const PASSWORD_REQUIRE_CLASSES: Setting = Setting {
    env: "KEYGATE_PASSWORD_REQUIRE_CLASSES",
    flag: "password-require-classes",
    default: Some(""),
    help: "Comma-separated character classes a password must contain: lower, upper, digit, symbol (default none)",
    range: None,
};
pub const ARGON2_MEMORY_KIB: Setting = Setting {
    env: "KEYGATE_ARGON2_MEMORY_KIB",
    flag: "argon2-memory-kib",
    default: Some("19456"),
    help: "argon2id memory cost in KiB (OWASP's minimum is the lower bound)",
    range: Some((HashingParams::OWASP_MEMORY_KIB as i64, 4 * 1024 * 1024)),
};
pub const ARGON2_ITERATIONS: Setting = Setting {
    env: "KEYGATE_ARGON2_ITERATIONS",
    flag: "argon2-iterations",
    default: Some("2"),
    help: "argon2id time cost (OWASP's minimum is the lower bound)",
    range: Some((HashingParams::OWASP_ITERATIONS as i64, 100)),
};
pub const ARGON2_PARALLELISM: Setting = Setting {
    env: "KEYGATE_ARGON2_PARALLELISM",
    flag: "argon2-parallelism",
    default: Some("1"),
    help: "argon2id lanes",
    range: Some((1, 16)),
};
pub const LOGIN_FREE_ATTEMPTS: Setting = Setting {
    env: "KEYGATE_LOGIN_FREE_ATTEMPTS",
    flag: "login-free-attempts",
    default: Some("5"),
    help: "Login attempts judged at once per account without a device token, and per device token; each further attempt waits for a window of 1, 2, 4, ... seconds opened by the failure before it",
    range: Some((1, 100)),
};
pub const LOGIN_MAX_DELAY: Setting = Setting {
    env: "KEYGATE_LOGIN_MAX_DELAY_SECONDS",
    flag: "login-max-delay-seconds",
    default: Some("900"),
    help: "Upper bound of the failed-login delay window in seconds",
    range: Some((1, 86_400)),
};
pub const LOGIN_FAILURE_DECAY: Setting = Setting {
    env: "KEYGATE_LOGIN_FAILURE_DECAY_SECONDS",
    flag: "login-failure-decay-seconds",
    default: Some("3600"),
    help: "Quiet period after which an account's failed logins no longer count, once no window is open",
    range: Some((60, 604_800)),
};
pub const DEVICE_TOKEN_TTL: Setting = Setting {
    env: "KEYGATE_DEVICE_TOKEN_TTL_SECONDS",
    flag: "device-token-ttl-seconds",
    default: Some("15552000"),
    help: "Lifetime of a device token (returned by a login; its logins count on its own attempt counter) in seconds",
    range: Some((86_400, 63_072_000)),
};
pub const CLOCK_LEEWAY: Setting = Setting {
    env: "KEYGATE_CLOCK_LEEWAY_SECONDS",
    flag: "clock-leeway-seconds",
    default: Some("30"),
    help: "Clock-skew leeway when verifying exp and nbf",
    range: Some((0, 120)),
};
pub const APP_URL: Setting = Setting {
    env: "KEYGATE_APP_URL",
    flag: "app-url",
    default: None,
    help: "Base URL of the app whose pages /verify-email and /reset-password open the links in mails (default: the issuer; never taken from a request)",
    range: None,
};
pub const REQUIRE_VERIFIED_EMAIL: Setting = Setting {
    env: "KEYGATE_REQUIRE_VERIFIED_EMAIL",
    flag: "require-verified-email",
    default: Some("true"),
    help: "Refuse logins (403 email-not-verified) of accounts whose email is not verified: true or false",
    range: None,
};
pub const EMAIL_VERIFICATION_TTL: Setting = Setting {
    env: "KEYGATE_EMAIL_VERIFICATION_TTL_SECONDS",
    flag: "email-verification-ttl-seconds",
    default: Some("86400"),
    help: "How long a verification link and code work, in seconds",
    range: Some((300, 604_800)),
};
pub const PASSWORD_RESET_TTL: Setting = Setting {
    env: "KEYGATE_PASSWORD_RESET_TTL_SECONDS",
    flag: "password-reset-ttl-seconds",
    default: Some("900"),
    help: "How long a password-reset link and code work, in seconds",
    range: Some((300, 3600)),
};
pub const EMAIL_COOLDOWN: Setting = Setting {
    env: "KEYGATE_EMAIL_COOLDOWN_SECONDS",
    flag: "email-cooldown-seconds",
    default: Some("60"),
    help: "Least time between two mails of one kind (verification, reset) to one account; requests inside it answer 202 and send nothing",
    range: Some((0, 3600)),
};
pub const EMAIL_HOURLY_CAP: Setting = Setting {
    env: "KEYGATE_EMAIL_HOURLY_CAP",
    flag: "email-hourly-cap",
    default: Some("5"),
    help: "Most mails of one kind to one account per hour; further requests answer 202 and send nothing",
    range: Some((1, 100)),
};
pub const MFA_ISSUER: Setting = Setting {
    env: "KEYGATE_MFA_ISSUER",
    flag: "mfa-issuer",
    default: Some("keygate"),
    help: "The issuer an authenticator app shows beside a TOTP factor (the otpauth:// URI's label prefix and issuer parameter); 1-64 characters, no colon",
    range: None,
};
pub const MFA_RECENT_AUTH: Setting = Setting {
    env: "KEYGATE_MFA_RECENT_AUTH_SECONDS",
    flag: "mfa-recent-auth-seconds",
    default: Some("300"),
    help: "How recent the session's authentication (auth_time) must be to enrol or disable a TOTP factor, in seconds",
    range: Some((30, 3600)),
};

pub const KEY_CACHE_TTL: Setting = Setting {
    env: "KEYGATE_KEY_CACHE_TTL_SECONDS",
    flag: "key-cache-ttl-seconds",
    default: Some("300"),
    help: "How long the signing keys are cached before Secrets Manager (or the key files) is read again",
    range: Some((1, 3600)),
};

/// Every setting of the core, in the order `--help` lists them.
pub const AUTH_SETTINGS: &[Setting] = &[
    ISSUER,
    AUDIENCE,
    OAUTH_CLIENT_IDS,
    ACCESS_TOKEN_TTL,
    REFRESH_FAMILY_TTL,
    REFRESH_REUSE_GRACE,
    MAX_REFRESH_FAMILIES,
    SIGNING_ALG,
    PASSWORD_MIN_LENGTH,
    PASSWORD_MAX_LENGTH,
    PASSWORD_REQUIRE_CLASSES,
    ARGON2_MEMORY_KIB,
    ARGON2_ITERATIONS,
    ARGON2_PARALLELISM,
    LOGIN_FREE_ATTEMPTS,
    LOGIN_MAX_DELAY,
    LOGIN_FAILURE_DECAY,
    DEVICE_TOKEN_TTL,
    CLOCK_LEEWAY,
    KEY_CACHE_TTL,
    APP_URL,
    REQUIRE_VERIFIED_EMAIL,
    EMAIL_VERIFICATION_TTL,
    PASSWORD_RESET_TTL,
    EMAIL_COOLDOWN,
    EMAIL_HOURLY_CAP,
    MFA_ISSUER,
    MFA_RECENT_AUTH,
];

/// A setting that is missing or out of range; names the variable so the fix is obvious.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {message}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub message: String,
}

impl ConfigError {
    pub fn new(setting: &Setting, message: impl Into<String>) -> Self {
        Self {
            variable: setting.env,
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub issuer: String,
    pub audience: String,
    /// The `client_id`s `/oauth/token` and `/oauth/revoke` accept ([`OAUTH_CLIENT_IDS`]).
    pub oauth_client_ids: Vec<String>,
    pub access_token_ttl_secs: u64,
    pub refresh_family_ttl_secs: u64,
    pub refresh_reuse_grace_secs: u64,
    pub max_refresh_families: u64,
    pub signing_alg: SigningAlgorithm,
    pub password_policy: PasswordPolicy,
    pub hashing: HashingParams,
    pub throttle: LoginThrottle,
    pub device_token_ttl_secs: u64,
    pub leeway_secs: u64,
    /// How long a shell keeps a key set before reading its store again; a rotation's lead waits for
    /// it ([`crate::keys::KeyTimeline`]).
    pub key_cache_ttl_secs: u64,
    /// Where the links in mails point ([`APP_URL`]), without a trailing slash.
    pub app_url: String,
    pub require_verified_email: bool,
    pub email_verification_ttl_secs: u64,
    pub password_reset_ttl_secs: u64,
    pub email_limits: SendLimits,
    /// The issuer authenticator apps show ([`MFA_ISSUER`]).
    pub mfa_issuer: String,
    pub mfa_recent_auth_secs: u64,
}

/// The per-account limits on mails of one purpose, applied silently (the request still answers 202).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendLimits {
    /// At least this long between two mails of one purpose.
    pub cooldown_ms: i64,
    /// At most this many mails of one purpose per hour.
    pub hourly_cap: u32,
}

/// Reads one setting through `lookup` (falling back to its default) and parses it.
pub fn read_setting<T, F>(
    lookup: &F,
    setting: &Setting,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, ConfigError>
where
    F: Fn(&str) -> Option<String>,
{
    let raw = lookup(setting.env)
        .or_else(|| setting.default.map(str::to_owned))
        .ok_or_else(|| ConfigError::new(setting, "is required"))?;
    parse(raw.trim()).map_err(|message| ConfigError::new(setting, message))
}

/// Reads a whole-number setting and checks it lies in the setting's `range`.
pub fn read_number<T, F>(lookup: &F, setting: &Setting) -> Result<T, ConfigError>
where
    T: TryFrom<i64>,
    F: Fn(&str) -> Option<String>,
{
    let (min, max) = setting
        .range
        .ok_or_else(|| ConfigError::new(setting, "is not declared as a number (no range)"))?;
    read_setting(lookup, setting, |raw| {
        let value: i64 = raw
            .parse()
            .map_err(|_| format!("`{raw}` is not a whole number"))?;
        if value < min || value > max {
            return Err(format!("{value} is out of range {min}..={max}"));
        }
        T::try_from(value).map_err(|_| format!("{value} does not fit this setting's type"))
    })
}

fn boolean(raw: &str) -> Result<bool, String> {
    match raw {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("`{raw}` is neither true nor false")),
    }
}

fn url(raw: &str) -> Result<String, String> {
    let rest = raw
        .strip_prefix("https://")
        .or_else(|| raw.strip_prefix("http://"))
        .ok_or_else(|| format!("`{raw}` is not an http(s) URL"))?;
    if rest.is_empty() || raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("`{raw}` is not an http(s) URL"));
    }
    Ok(raw.trim_end_matches('/').to_owned())
}

/// A comma-separated list of client ids: each 1-256 visible ASCII characters (RFC 6749 appendix A.1
/// allows any visible character; a comma cannot be in a list item), at least one.
fn client_ids(raw: &str) -> Result<Vec<String>, String> {
    let ids: Vec<String> = raw
        .split(',')
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .collect();
    if ids.is_empty() {
        return Err("names no client id".to_owned());
    }
    match ids
        .iter()
        .find(|id| id.len() > 256 || !id.bytes().all(|b| b.is_ascii_graphic()))
    {
        Some(_) => Err("client ids are 1-256 visible ASCII characters".to_owned()),
        None => Ok(ids),
    }
}

impl AuthConfig {
    /// Whether `/oauth/token` and `/oauth/revoke` accept `client_id` (exact, case-sensitive match).
    pub fn accepts_client(&self, client_id: &str) -> bool {
        self.oauth_client_ids.iter().any(|id| id == client_id)
    }

    /// [`Self::key_cache_ttl_secs`] as the duration key sources take.
    pub fn key_cache_ttl(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.key_cache_ttl_secs)
    }

    /// Builds the configuration from `lookup`, which maps an environment-variable name to its value
    /// (the process environment on Lambda; flags and environment on the local server).
    pub fn from_lookup<F>(lookup: F) -> Result<Self, ConfigError>
    where
        F: Fn(&str) -> Option<String>,
    {
        let min_length = read_number(&lookup, &PASSWORD_MIN_LENGTH)?;
        let max_length = read_number(&lookup, &PASSWORD_MAX_LENGTH)?;
        let required_classes =
            read_setting(&lookup, &PASSWORD_REQUIRE_CLASSES, CharClass::parse_list)?;
        let audience = read_setting(&lookup, &AUDIENCE, |raw| {
            if raw.is_empty() || raw.len() > 256 {
                Err("must be 1-256 characters".to_owned())
            } else {
                Ok(raw.to_owned())
            }
        })?;
        // No default of its own: the audience is the one client id tokens already name.
        let oauth_client_ids = match lookup(OAUTH_CLIENT_IDS.env) {
            Some(_) => read_setting(&lookup, &OAUTH_CLIENT_IDS, client_ids)?,
            None => vec![audience.clone()],
        };
        let issuer = read_setting(&lookup, &ISSUER, url)?;
        // No default of its own: the issuer is the one address a deployment is sure to have.
        let app_url = match lookup(APP_URL.env) {
            Some(_) => read_setting(&lookup, &APP_URL, url)?,
            None => issuer.clone(),
        };
        let cooldown_secs: i64 = read_number(&lookup, &EMAIL_COOLDOWN)?;
        Ok(Self {
            issuer,
            audience,
            oauth_client_ids,
            access_token_ttl_secs: read_number(&lookup, &ACCESS_TOKEN_TTL)?,
            refresh_family_ttl_secs: read_number(&lookup, &REFRESH_FAMILY_TTL)?,
            refresh_reuse_grace_secs: read_number(&lookup, &REFRESH_REUSE_GRACE)?,
            max_refresh_families: read_number(&lookup, &MAX_REFRESH_FAMILIES)?,
            signing_alg: read_setting(&lookup, &SIGNING_ALG, |raw| raw.parse())?,
            password_policy: PasswordPolicy {
                min_length,
                max_length,
                required_classes,
            },
            hashing: HashingParams {
                memory_kib: read_number(&lookup, &ARGON2_MEMORY_KIB)?,
                iterations: read_number(&lookup, &ARGON2_ITERATIONS)?,
                parallelism: read_number(&lookup, &ARGON2_PARALLELISM)?,
            },
            throttle: LoginThrottle {
                free_attempts: read_number(&lookup, &LOGIN_FREE_ATTEMPTS)?,
                max_delay_secs: read_number(&lookup, &LOGIN_MAX_DELAY)?,
                decay_secs: read_number(&lookup, &LOGIN_FAILURE_DECAY)?,
            },
            device_token_ttl_secs: read_number(&lookup, &DEVICE_TOKEN_TTL)?,
            leeway_secs: read_number(&lookup, &CLOCK_LEEWAY)?,
            key_cache_ttl_secs: read_number(&lookup, &KEY_CACHE_TTL)?,
            app_url,
            require_verified_email: read_setting(&lookup, &REQUIRE_VERIFIED_EMAIL, boolean)?,
            email_verification_ttl_secs: read_number(&lookup, &EMAIL_VERIFICATION_TTL)?,
            password_reset_ttl_secs: read_number(&lookup, &PASSWORD_RESET_TTL)?,
            email_limits: SendLimits {
                cooldown_ms: cooldown_secs * 1000,
                hourly_cap: read_number(&lookup, &EMAIL_HOURLY_CAP)?,
            },
            mfa_issuer: read_setting(&lookup, &MFA_ISSUER, |raw| {
                if raw.is_empty() || raw.chars().count() > 64 || raw.contains(':') {
                    Err("must be 1-64 characters without a colon".to_owned())
                } else {
                    Ok(raw.to_owned())
                }
            })?,
            mfa_recent_auth_secs: read_number(&lookup, &MFA_RECENT_AUTH)?,
        })
    }

    /// Defaults for everything but the issuer; the starting point of tests.
    pub fn with_issuer(issuer: &str) -> Self {
        let issuer = issuer.to_owned();
        Self::from_lookup(move |name| (name == ISSUER.env).then(|| issuer.clone()))
            .expect("defaults are valid")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<AuthConfig, ConfigError> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        AuthConfig::from_lookup(move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn defaults_follow_the_design() {
        let c = config(&[("KEYGATE_ISSUER", "https://auth.example.com/")]).unwrap();
        assert_eq!(c.issuer, "https://auth.example.com");
        assert_eq!(c.access_token_ttl_secs, 900);
        assert_eq!(c.refresh_family_ttl_secs, 30 * 24 * 3600);
        assert_eq!(c.refresh_reuse_grace_secs, 10);
        assert_eq!(c.signing_alg, SigningAlgorithm::Es256);
        assert_eq!(c.password_policy.min_length, 15);
        assert!(c.password_policy.max_length >= 64);
        assert!(c.password_policy.required_classes.is_empty());
        assert_eq!(
            (
                c.hashing.memory_kib,
                c.hashing.iterations,
                c.hashing.parallelism
            ),
            (19456, 2, 1)
        );
    }

    #[test]
    fn every_default_lies_in_its_range() {
        for setting in AUTH_SETTINGS {
            if let (Some((min, max)), Some(default)) = (setting.range, setting.default) {
                let value: i64 = default.parse().expect("a numeric default");
                assert!((min..=max).contains(&value), "{}", setting.env);
            }
        }
    }

    #[test]
    fn access_token_lifetime_above_fifteen_minutes_is_refused() {
        let err = config(&[
            ("KEYGATE_ISSUER", "https://a.example"),
            ("KEYGATE_ACCESS_TOKEN_TTL_SECONDS", "901"),
        ])
        .unwrap_err();
        assert_eq!(err.variable, "KEYGATE_ACCESS_TOKEN_TTL_SECONDS");
        assert!(
            config(&[
                ("KEYGATE_ISSUER", "https://a.example"),
                ("KEYGATE_ACCESS_TOKEN_TTL_SECONDS", "900")
            ])
            .is_ok()
        );
    }

    #[test]
    fn weaker_than_owasp_hashing_is_refused() {
        for (var, value) in [
            ("KEYGATE_ARGON2_MEMORY_KIB", "19455"),
            ("KEYGATE_ARGON2_ITERATIONS", "1"),
            ("KEYGATE_ARGON2_PARALLELISM", "0"),
        ] {
            let err = config(&[("KEYGATE_ISSUER", "https://a.example"), (var, value)]).unwrap_err();
            assert_eq!(err.variable, var);
        }
    }

    #[test]
    fn oauth_client_ids_default_to_the_audience() {
        let c = config(&[
            ("KEYGATE_ISSUER", "https://a.example"),
            ("KEYGATE_AUDIENCE", "shop"),
        ])
        .unwrap();
        assert_eq!(c.oauth_client_ids, ["shop"]);
        assert!(c.accepts_client("shop") && !c.accepts_client("Shop"));
        let c = config(&[
            ("KEYGATE_ISSUER", "https://a.example"),
            ("KEYGATE_OAUTH_CLIENT_IDS", " web, mobile-app ,"),
        ])
        .unwrap();
        assert_eq!(c.oauth_client_ids, ["web", "mobile-app"]);
        assert!(!c.accepts_client("keygate"));
        for bad in ["", " , ", "has space", &"x".repeat(257)] {
            let err = config(&[
                ("KEYGATE_ISSUER", "https://a.example"),
                ("KEYGATE_OAUTH_CLIENT_IDS", bad),
            ])
            .unwrap_err();
            assert_eq!(err.variable, "KEYGATE_OAUTH_CLIENT_IDS", "{bad:?}");
        }
    }

    #[test]
    fn errors_name_the_variable() {
        let err = config(&[]).unwrap_err();
        assert_eq!(err.to_string(), "KEYGATE_ISSUER: is required");
        let err = config(&[("KEYGATE_ISSUER", "ftp://x")]).unwrap_err();
        assert_eq!(err.variable, "KEYGATE_ISSUER");
        let err = config(&[
            ("KEYGATE_ISSUER", "https://a.example"),
            ("KEYGATE_SIGNING_ALG", "none"),
        ])
        .unwrap_err();
        assert_eq!(err.variable, "KEYGATE_SIGNING_ALG");
        let err = config(&[
            ("KEYGATE_ISSUER", "https://a.example"),
            ("KEYGATE_PASSWORD_MAX_LENGTH", "63"),
        ])
        .unwrap_err();
        assert_eq!(err.variable, "KEYGATE_PASSWORD_MAX_LENGTH");
        let err = config(&[
            ("KEYGATE_ISSUER", "https://a.example"),
            ("KEYGATE_PASSWORD_REQUIRE_CLASSES", "lower,emoji"),
        ])
        .unwrap_err();
        assert_eq!(err.variable, "KEYGATE_PASSWORD_REQUIRE_CLASSES");
    }
}
