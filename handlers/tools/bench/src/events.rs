//! API Gateway REST API (v1) Lambda proxy events, shaped like the ones API Gateway sends, and the
//! proxy responses coming back.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

pub const STAGE: &str = "prod";
pub const API_ID: &str = "kgbench001";
pub const REGION: &str = "eu-west-1";

/// One REST proxy event for `method resource` (the route path, e.g. `/auth/refresh`).
pub fn rest_event(
    method: &str,
    resource: &str,
    body: Option<&Value>,
    bearer: Option<&str>,
) -> Value {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let request_id = uuid::Uuid::new_v4().to_string();
    let host = format!("{API_ID}.execute-api.{REGION}.amazonaws.com");
    let mut headers = Map::new();
    let mut header = |name: &str, value: String| {
        headers.insert(name.to_owned(), Value::String(value));
    };
    header("Accept", "application/json".into());
    header("Host", host.clone());
    header("User-Agent", "keygate-bench/0.1".into());
    header(
        "X-Amzn-Trace-Id",
        format!(
            "Root=1-{:08x}-{}",
            now.as_secs(),
            &uuid::Uuid::new_v4().simple().to_string()[..24]
        ),
    );
    header("X-Forwarded-For", "203.0.113.7".into());
    header("X-Forwarded-Port", "443".into());
    header("X-Forwarded-Proto", "https".into());
    header("X-Correlation-Id", uuid::Uuid::new_v4().to_string());
    if body.is_some() {
        header("Content-Type", "application/json".into());
    }
    if let Some(token) = bearer {
        header("Authorization", format!("Bearer {token}"));
    }
    let multi: Map<String, Value> = headers
        .iter()
        .map(|(k, v)| (k.clone(), json!([v])))
        .collect();
    json!({
        "resource": resource,
        "path": resource,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": multi,
        "queryStringParameters": null,
        "multiValueQueryStringParameters": null,
        "pathParameters": null,
        "stageVariables": null,
        "requestContext": {
            "resourceId": "abc123",
            "resourcePath": resource,
            "httpMethod": method,
            "extendedRequestId": format!("{}=", &request_id[..14]),
            "requestTime": "28/Nov/2026:12:00:00 +0000",
            "path": format!("/{STAGE}{resource}"),
            "accountId": "123456789012",
            "protocol": "HTTP/1.1",
            "stage": STAGE,
            "domainPrefix": API_ID,
            "requestTimeEpoch": now.as_millis() as u64,
            "requestId": request_id,
            "identity": {
                "cognitoIdentityPoolId": null, "accountId": null, "cognitoIdentityId": null, "caller": null,
                "sourceIp": "203.0.113.7", "principalOrgId": null, "accessKey": null,
                "cognitoAuthenticationType": null, "cognitoAuthenticationProvider": null, "userArn": null,
                "userAgent": "keygate-bench/0.1", "user": null
            },
            "domainName": host,
            "apiId": API_ID
        },
        "body": body.map(|b| b.to_string()),
        "isBase64Encoded": false
    })
}

/// The status code and the decoded JSON body (if any) of a proxy response.
pub fn parse_response(raw: &[u8]) -> (u16, Option<Value>) {
    let Ok(response) = serde_json::from_slice::<Value>(raw) else {
        return (0, None);
    };
    let status = response
        .get("statusCode")
        .and_then(Value::as_u64)
        .unwrap_or(0) as u16;
    let body = match response.get("body") {
        Some(Value::String(text))
            if response.get("isBase64Encoded") == Some(&Value::Bool(true)) =>
        {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .ok()
                .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        }
        Some(Value::String(text)) => serde_json::from_str(text).ok(),
        _ => None,
    };
    (status, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rest_events_carry_the_stage_in_the_context_path_only() {
        let event = rest_event(
            "POST",
            "/auth/refresh",
            Some(&json!({"refresh_token": "x"})),
            Some("abc"),
        );
        assert_eq!(event["path"], "/auth/refresh");
        assert_eq!(event["requestContext"]["path"], "/prod/auth/refresh");
        assert_eq!(event["headers"]["Authorization"], "Bearer abc");
        assert_eq!(
            event["multiValueHeaders"]["Authorization"],
            json!(["Bearer abc"])
        );
        assert_eq!(event["body"], r#"{"refresh_token":"x"}"#);
    }

    #[test]
    fn responses_are_decoded_plain_or_base64() {
        let plain = br#"{"statusCode":201,"body":"{\"user_id\":\"u\"}"}"#;
        assert_eq!(parse_response(plain), (201, Some(json!({"user_id": "u"}))));
        let encoded = br#"{"statusCode":200,"isBase64Encoded":true,"body":"eyJhIjoxfQ=="}"#;
        assert_eq!(parse_response(encoded), (200, Some(json!({"a": 1}))));
        assert_eq!(parse_response(b"nonsense").0, 0);
    }
}
