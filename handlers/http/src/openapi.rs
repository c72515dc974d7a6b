//! The OpenAPI 3.1 document of every route (`handlers/http/openapi.json`), served at `GET /openapi.json`.
//! The file is the one description of the API: tests prove it lists exactly the routes of
//! [`Endpoint::ALL`](crate::Endpoint::ALL) and every problem type `problem.rs` emits.

use std::sync::LazyLock;

use serde_json::Value;

/// The document as kept in the repository; its `servers` names keygate-local's default address.
pub const DOCUMENT: &str = include_str!("../openapi.json");

static PARSED: LazyLock<Value> =
    LazyLock::new(|| serde_json::from_str(DOCUMENT).expect("openapi.json is JSON (tested)"));

/// The document as a deployment serves it: `servers` names that deployment's issuer, the base URL
/// every path resolves against (the discovery document builds its URLs the same way), so a client or
/// a fuzzer that fetches it calls the deployment that answered.
pub fn served(issuer: &str) -> Value {
    let mut document = PARSED.clone();
    document["servers"] = serde_json::json!([{
        "url": issuer,
        "description": "the deployment that served this document (its issuer)",
    }]);
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
    fn the_served_document_names_the_issuer_as_its_only_server() {
        let served = served("https://abc.execute-api.us-east-1.amazonaws.com/prod");
        assert_eq!(
            served["servers"][0]["url"],
            "https://abc.execute-api.us-east-1.amazonaws.com/prod"
        );
        assert_eq!(served["servers"].as_array().unwrap().len(), 1);
        let mut kept: Value = serde_json::from_str(DOCUMENT).unwrap();
        kept["servers"] = served["servers"].clone();
        assert_eq!(served, kept, "only `servers` differs from the kept file");
    }
}
