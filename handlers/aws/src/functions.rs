//! The Lambda functions, one binary each (`handlers/functions/<name>`): the endpoints each serves, and
//! from them the keys and the table it needs. `cdk/contract.json` carries this list to the CDK.

use keygate_http::{Endpoint, KeyAccess};

/// An API function: its binary's name and the endpoints it serves.
#[derive(Debug)]
pub struct ApiFunction {
    pub name: &'static str,
    /// What it does, in a few words (its Lambda description).
    pub summary: &'static str,
    pub endpoints: &'static [Endpoint],
}

impl ApiFunction {
    /// The keys its endpoints need, before the signing algorithm is known ([`KeyAccess::under`]).
    pub fn key_access(&self) -> KeyAccess {
        KeyAccess::of(self.endpoints)
    }

    /// Whether any of its endpoints reads or writes the table.
    pub fn uses_table(&self) -> bool {
        self.endpoints.iter().any(|e| e.uses_table())
    }
}

pub const REGISTER: ApiFunction = ApiFunction {
    name: "register",
    summary: "create a user",
    endpoints: &[Endpoint::Register],
};
pub const LOGIN: ApiFunction = ApiFunction {
    name: "login",
    summary: "verify a password, issue tokens",
    endpoints: &[Endpoint::Login],
};
pub const REFRESH: ApiFunction = ApiFunction {
    name: "refresh",
    summary: "rotate a refresh token (keygate JSON and the OAuth token endpoint)",
    // One function for both: the same rotation, and no second binary to link (each costs minutes in CI).
    endpoints: &[Endpoint::Refresh, Endpoint::OAuthToken],
};
pub const LOGOUT: ApiFunction = ApiFunction {
    name: "logout",
    summary: "revoke one refresh-token family, or deny an access token (OAuth revocation)",
    endpoints: &[Endpoint::Logout, Endpoint::OAuthRevoke],
};
pub const LOGOUT_ALL: ApiFunction = ApiFunction {
    name: "logout-all",
    summary: "revoke every session of the caller",
    endpoints: &[Endpoint::LogoutAll],
};
pub const CHANGE_PASSWORD: ApiFunction = ApiFunction {
    name: "change-password",
    summary: "change the password, revoke sessions, issue tokens",
    endpoints: &[Endpoint::ChangePassword],
};
pub const ME: ApiFunction = ApiFunction {
    name: "me",
    summary: "the caller profile",
    endpoints: &[Endpoint::Me],
};
pub const WELL_KNOWN: ApiFunction = ApiFunction {
    name: "well-known",
    summary: "publish the public keys and the discovery and OAuth metadata documents",
    endpoints: &[Endpoint::Jwks, Endpoint::Discovery, Endpoint::OAuthMetadata],
};

/// Every API function, in the order the API lists them.
pub const API_FUNCTIONS: &[ApiFunction] = &[
    REGISTER,
    LOGIN,
    REFRESH,
    LOGOUT,
    LOGOUT_ALL,
    CHANGE_PASSWORD,
    ME,
    WELL_KNOWN,
];

/// Secrets Manager's rotation function for the signing-key secret (`shell::run_rotation`).
pub const ROTATE_KEYS: &str = "rotate-keys";
pub const ROTATE_KEYS_SUMMARY: &str = "Secrets Manager rotation of the signing-key set";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_endpoint_is_served_by_exactly_one_function() {
        for endpoint in Endpoint::ALL {
            let serving: Vec<&str> = API_FUNCTIONS
                .iter()
                .filter(|f| f.endpoints.contains(&endpoint))
                .map(|f| f.name)
                .collect();
            assert_eq!(serving.len(), 1, "{endpoint:?} is served by {serving:?}");
        }
    }
}
