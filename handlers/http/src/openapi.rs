//! The OpenAPI 3.1 document of every route (`handlers/http/openapi.json`), served at `GET /openapi.json`.
//! The file is the one description of the API: tests prove it lists exactly the routes of
//! [`Endpoint::ALL`](crate::Endpoint::ALL) and every problem type `problem.rs` emits.

use std::sync::LazyLock;

use keygate_core::AuthConfig;
use serde_json::Value;

/// The document as kept in the repository; its `servers` names keygate-local's default address, its
/// password bounds and OAuth client ids are the settings' defaults.
pub const DOCUMENT: &str = include_str!("../openapi.json");

static PARSED: LazyLock<Value> =
    LazyLock::new(|| serde_json::from_str(DOCUMENT).expect("openapi.json is JSON (tested)"));

/// The new passwords the policy judges: their length bounds are settings.
const NEW_PASSWORDS: [(&str, &str); 3] = [
    ("RegisterRequest", "password"),
    ("PasswordChangeRequest", "new_password"),
    ("PasswordResetRequest", "new_password"),
];

/// The OAuth requests whose `client_id` must be one of the deployment's client ids (a setting).
const CLIENT_IDS: [&str; 2] = ["OAuthTokenRequest", "OAuthRevokeRequest"];

/// The document as a deployment serves it: `servers` names that deployment's issuer, the base URL
/// every path resolves against (the discovery document builds its URLs the same way), so a client or
/// a fuzzer that fetches it calls the deployment that answered; the new-password bounds and the
/// accepted OAuth client ids are its settings'.
pub fn served(config: &AuthConfig) -> Value {
    let mut document = PARSED.clone();
    document["servers"] = serde_json::json!([{
        "url": config.issuer,
        "description": "the deployment that served this document (its issuer)",
    }]);
    let client_ids = serde_json::json!(config.oauth_client_ids);
    for schema in CLIENT_IDS {
        document["components"]["schemas"][schema]["properties"]["client_id"]["enum"] =
            client_ids.clone();
    }
    if let Some(first) = config.oauth_client_ids.first() {
        document["components"]["links"]["OAuthRefresh"]["requestBody"]["client_id"] =
            first.as_str().into();
    }
    let policy = &config.password_policy;
    for (schema, member) in NEW_PASSWORDS {
        let password = &mut document["components"]["schemas"][schema]["properties"][member];
        password["minLength"] = policy.min_length.into();
        password["maxLength"] = policy.max_length.into();
    }
    document
}

/// Every (method, path) the document lists, upper-case methods.
pub fn operations(document: &Value) -> Vec<(String, String)> {
    const METHODS: [&str; 8] = [
        "get", "put", "post", "delete", "options", "head", "patch", "trace",
    ];
    let mut operations = Vec::new();
    if let Some(paths) = document["paths"].as_object() {
        for (path, item) in paths {
            for method in METHODS {
                if item.get(method).is_some() {
                    operations.push((method.to_ascii_uppercase(), path.clone()));
                }
            }
        }
    }
    operations.sort();
    operations
}

/// The sorted values of `schema`'s `property` enum in the kept document: what the tests of the problem
/// and OAuth error mappings compare the emitted values with.
#[cfg(test)]
pub(crate) fn documented_enum(schema: &str, property: &str) -> Vec<String> {
    let document: Value = serde_json::from_str(DOCUMENT).expect("the kept document is JSON");
    let mut values: Vec<String> = serde_json::from_value(
        document["components"]["schemas"][schema]["properties"][property]["enum"].clone(),
    )
    .expect("a string enum");
    values.sort();
    values
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Endpoint;

    #[test]
    fn the_document_and_the_router_list_the_same_routes_and_methods() {
        let document: Value = serde_json::from_str(DOCUMENT).unwrap();
        let mut routed: Vec<(String, String)> = Endpoint::ALL
            .iter()
            .map(|e| (e.method().to_string(), e.path().to_owned()))
            .collect();
        routed.sort();
        assert_eq!(operations(&document), routed);
    }

    #[test]
    fn operations_reads_every_method_of_every_path() {
        let document = serde_json::json!({"paths": {
            "/a": {"get": {}, "post": {}, "parameters": []},
            "/b": {"delete": {}},
        }});
        assert_eq!(
            operations(&document),
            [
                ("DELETE".to_owned(), "/b".to_owned()),
                ("GET".to_owned(), "/a".to_owned()),
                ("POST".to_owned(), "/a".to_owned()),
            ]
        );
    }

    #[test]
    fn the_served_document_names_the_issuer_and_the_settings() {
        let mut config =
            AuthConfig::with_issuer("https://abc.execute-api.us-east-1.amazonaws.com/prod");
        config.password_policy.min_length = 20;
        config.password_policy.max_length = 100;
        config.oauth_client_ids = vec!["web".into(), "ios".into()];
        let served = served(&config);
        assert_eq!(
            served["servers"][0]["url"],
            "https://abc.execute-api.us-east-1.amazonaws.com/prod"
        );
        assert_eq!(served["servers"].as_array().unwrap().len(), 1);
        let mut kept: Value = serde_json::from_str(DOCUMENT).unwrap();
        kept["servers"] = served["servers"].clone();
        for (schema, member) in NEW_PASSWORDS {
            let password = &mut kept["components"]["schemas"][schema]["properties"][member];
            assert_eq!(password["minLength"], 15, "{schema}.{member}: the default");
            assert_eq!(password["maxLength"], 128, "{schema}.{member}: the default");
            password["minLength"] = 20.into();
            password["maxLength"] = 100.into();
        }
        for schema in CLIENT_IDS {
            let client_id = &mut kept["components"]["schemas"][schema]["properties"]["client_id"];
            assert_eq!(
                client_id["enum"],
                serde_json::json!(["keygate"]),
                "{schema}"
            );
            client_id["enum"] = serde_json::json!(["web", "ios"]);
        }
        let link = &mut kept["components"]["links"]["OAuthRefresh"]["requestBody"]["client_id"];
        assert_eq!(*link, "keygate");
        *link = "web".into();
        assert_eq!(
            served, kept,
            "only servers, bounds and client ids differ from the kept file"
        );
    }

    /// The kept file states the defaults, so it is right for a server with default settings.
    #[test]
    fn the_kept_document_states_the_default_policy() {
        let kept: Value = serde_json::from_str(DOCUMENT).unwrap();
        let defaults = AuthConfig::with_issuer("http://127.0.0.1:8787");
        assert_eq!(served(&defaults)["components"], kept["components"]);
        assert_eq!(served(&defaults)["paths"], kept["paths"]);
    }
}
