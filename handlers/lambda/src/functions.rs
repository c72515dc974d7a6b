//! The Lambda functions: the endpoints each serves, and from them the keys and the table it needs.
//! They share one binary (`handlers/functions`), which runs the function its `KEYGATE_FUNCTION`
//! names ([`FUNCTION`]); each is still its own Lambda function with its own role, memory and route.
//! `cdk/contract.json` carries this list to the CDK.

use std::marker::PhantomData;

use keygate_core::config::Setting;
use keygate_http::{Endpoint, KeyAccess};

/// Which function an execution environment runs: the CDK app sets it per function.
pub const FUNCTION: Setting = Setting {
    env: "KEYGATE_FUNCTION",
    flag: "function",
    default: None,
    help: "The keygate function this Lambda function runs (register, login, ..., mailer, rotate-keys)",
    range: None,
};

/// The cargo package (and binary) every function runs; its own test checks the name.
pub const BINARY: &str = "keygate-functions";

/// The settings of this crate.
pub const LAMBDA_SETTINGS: &[Setting] = &[FUNCTION];

/// Whether a function's endpoints read and write the table, as a type: [`crate::shell::run_http`]
/// opens the table (and reads the server key) for [`WithTable`] only, and a [`WithoutTable`] binary
/// links no DynamoDB client. [`ApiFunction::new`] refuses, at compile time, a declaration whose
/// endpoints say otherwise.
pub trait TableUse: crate::shell::Storage {
    const USES_TABLE: bool;
}

/// Every API function but well-known.
#[derive(Debug)]
pub enum WithTable {}
/// well-known: it publishes keys and documents, and has no table grant.
#[derive(Debug)]
pub enum WithoutTable {}

impl TableUse for WithTable {
    const USES_TABLE: bool = true;
}
impl TableUse for WithoutTable {
    const USES_TABLE: bool = false;
}

/// An API function: its binary's name and the endpoints it serves; `T` is their table use.
#[derive(Debug)]
pub struct ApiFunction<T: TableUse> {
    pub name: &'static str,
    /// What it does, in a few words (its Lambda description).
    pub summary: &'static str,
    pub endpoints: &'static [Endpoint],
    table: PhantomData<fn() -> T>,
}

/// What the contract lists of an API function, whatever its table use.
#[derive(Debug, Clone, Copy)]
pub struct FunctionFacts {
    pub name: &'static str,
    pub summary: &'static str,
    pub endpoints: &'static [Endpoint],
    pub uses_table: bool,
}

/// Whether any of `endpoints` reads or writes the table.
const fn any_uses_table(endpoints: &[Endpoint]) -> bool {
    let mut i = 0;
    while i < endpoints.len() {
        if endpoints[i].uses_table() {
            return true;
        }
        i += 1;
    }
    false
}

impl<T: TableUse> ApiFunction<T> {
    /// Evaluated at compile time for the constants below: a function declared [`WithoutTable`] with
    /// an endpoint that uses the table (or the reverse) does not build.
    ///
    /// ```compile_fail
    /// use keygate_http::Endpoint;
    /// use keygate_lambda::functions::{ApiFunction, WithoutTable};
    /// const LOGIN_WITHOUT_TABLE: ApiFunction<WithoutTable> =
    ///     ApiFunction::new("login", "verify a password", &[Endpoint::Login]);
    /// let _ = &LOGIN_WITHOUT_TABLE;
    /// ```
    ///
    /// ```
    /// use keygate_http::Endpoint;
    /// use keygate_lambda::functions::{ApiFunction, WithoutTable};
    /// const JWKS_ONLY: ApiFunction<WithoutTable> =
    ///     ApiFunction::new("jwks", "publish the keys", &[Endpoint::Jwks]);
    /// let _ = &JWKS_ONLY;
    /// ```
    pub const fn new(
        name: &'static str,
        summary: &'static str,
        endpoints: &'static [Endpoint],
    ) -> Self {
        assert!(
            any_uses_table(endpoints) == T::USES_TABLE,
            "a function's table use must be what its endpoints need"
        );
        Self {
            name,
            summary,
            endpoints,
            table: PhantomData,
        }
    }

    pub const fn facts(&self) -> FunctionFacts {
        FunctionFacts {
            name: self.name,
            summary: self.summary,
            endpoints: self.endpoints,
            uses_table: T::USES_TABLE,
        }
    }
}

impl FunctionFacts {
    /// The keys its endpoints need, before the signing algorithm is known ([`KeyAccess::under`]).
    pub fn key_access(&self) -> KeyAccess {
        KeyAccess::of(self.endpoints)
    }

    /// Whether it reads the TOTP data-key ring ([`Endpoint::uses_factor_keys`]).
    pub fn uses_factor_keys(&self) -> bool {
        self.endpoints.iter().any(|e| e.uses_factor_keys())
    }
}

pub const REGISTER: ApiFunction<WithTable> =
    ApiFunction::new("register", "create a user", &[Endpoint::Register]);
pub const LOGIN: ApiFunction<WithTable> = ApiFunction::new(
    "login",
    "verify a password, issue tokens",
    &[Endpoint::Login],
);
// One function for both: the same rotation, and no second binary to link (each costs minutes in CI).
pub const REFRESH: ApiFunction<WithTable> = ApiFunction::new(
    "refresh",
    "rotate a refresh token (keygate JSON and the OAuth token endpoint)",
    &[Endpoint::Refresh, Endpoint::OAuthToken],
);
pub const LOGOUT: ApiFunction<WithTable> = ApiFunction::new(
    "logout",
    "revoke one refresh-token family, or deny an access token (OAuth revocation)",
    &[Endpoint::Logout, Endpoint::OAuthRevoke],
);
pub const LOGOUT_ALL: ApiFunction<WithTable> = ApiFunction::new(
    "logout-all",
    "revoke every session of the caller",
    &[Endpoint::LogoutAll],
);
pub const CHANGE_PASSWORD: ApiFunction<WithTable> = ApiFunction::new(
    "change-password",
    "change the password, revoke sessions, issue tokens",
    &[Endpoint::ChangePassword],
);
pub const ME: ApiFunction<WithTable> =
    ApiFunction::new("me", "the caller profile", &[Endpoint::Me]);
// One function for the four: none signs or verifies a token, and only a reset hashes a password.
pub const ACCOUNT_EMAIL: ApiFunction<WithTable> = ApiFunction::new(
    "account-email",
    "email verification and password reset (each queues its mail in the outbox)",
    &[
        Endpoint::EmailVerification,
        Endpoint::EmailVerify,
        Endpoint::PasswordForgot,
        Endpoint::PasswordReset,
    ],
);
// One function for the five: the only holder of the TOTP data-key ring (a login issues the challenge
// but never opens a secret), and no extra binary: every function runs `keygate-functions`.
pub const ACCOUNT_MFA: ApiFunction<WithTable> = ApiFunction::new(
    "account-mfa",
    "TOTP enrolment, activation, recovery codes, disabling, and a login's second step",
    &[
        Endpoint::MfaTotp,
        Endpoint::MfaTotpActivate,
        Endpoint::MfaRecoveryCodes,
        Endpoint::MfaTotpDisable,
        Endpoint::MfaVerify,
    ],
);
pub const WELL_KNOWN: ApiFunction<WithoutTable> = ApiFunction::new(
    "well-known",
    "publish the public keys and the discovery, OAuth metadata and OpenAPI documents",
    &[
        Endpoint::Jwks,
        Endpoint::Discovery,
        Endpoint::OAuthMetadata,
        Endpoint::OpenApi,
    ],
);

/// A keygate Lambda function, as the binary runs it.
#[derive(Debug, Clone, Copy)]
pub enum Function {
    Api(&'static ApiFunction<WithTable>),
    ApiWithoutTable(&'static ApiFunction<WithoutTable>),
    /// Delivers the outbox's mails through SES, fed by the table's stream ([`crate::shell::run_mailer`]).
    Mailer,
    /// Secrets Manager's rotation function for the signing-key secret ([`crate::shell::run_rotation`]).
    RotateKeys,
}

pub const MAILER_NAME: &str = "mailer";
pub const MAILER_SUMMARY: &str = "deliver outbox mails through Amazon SES (the table's stream)";
pub const ROTATE_KEYS_NAME: &str = "rotate-keys";
pub const ROTATE_KEYS_SUMMARY: &str = "Secrets Manager rotation of the signing-key set";

/// Every function, in the order the API lists them, then the mailer and rotate-keys.
pub const FUNCTIONS: &[Function] = &[
    Function::Api(&REGISTER),
    Function::Api(&LOGIN),
    Function::Api(&REFRESH),
    Function::Api(&LOGOUT),
    Function::Api(&LOGOUT_ALL),
    Function::Api(&CHANGE_PASSWORD),
    Function::Api(&ME),
    Function::Api(&ACCOUNT_EMAIL),
    Function::Api(&ACCOUNT_MFA),
    Function::ApiWithoutTable(&WELL_KNOWN),
    Function::Mailer,
    Function::RotateKeys,
];

impl Function {
    pub fn name(self) -> &'static str {
        match self {
            Function::Api(f) => f.name,
            Function::ApiWithoutTable(f) => f.name,
            Function::Mailer => MAILER_NAME,
            Function::RotateKeys => ROTATE_KEYS_NAME,
        }
    }

    /// An API function's facts; none for the mailer and rotate-keys, which serve no endpoint.
    pub fn api(self) -> Option<FunctionFacts> {
        match self {
            Function::Api(f) => Some(f.facts()),
            Function::ApiWithoutTable(f) => Some(f.facts()),
            Function::Mailer | Function::RotateKeys => None,
        }
    }

    /// The function called `name`.
    pub fn named(name: &str) -> Option<Function> {
        FUNCTIONS.iter().copied().find(|f| f.name() == name)
    }
}

/// Every API function, in the order the API lists them.
pub fn api_functions() -> impl Iterator<Item = FunctionFacts> {
    FUNCTIONS.iter().filter_map(|f| f.api())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_endpoint_is_served_by_exactly_one_function() {
        for endpoint in Endpoint::ALL {
            let serving: Vec<&str> = api_functions()
                .filter(|f| f.endpoints.contains(&endpoint))
                .map(|f| f.name)
                .collect();
            assert_eq!(serving.len(), 1, "{endpoint:?} is served by {serving:?}");
        }
    }

    #[test]
    fn every_function_is_found_by_its_name_only() {
        for function in FUNCTIONS {
            assert_eq!(
                Function::named(function.name()).map(Function::name),
                Some(function.name())
            );
        }
        assert_eq!(FUNCTIONS.len(), 12);
        for unknown in ["", "Login", "login ", "keygate", "rotate_keys"] {
            assert!(Function::named(unknown).is_none(), "{unknown}");
        }
    }
}
