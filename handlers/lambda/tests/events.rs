//! Every route through the Lambda shell's event conversion: an API Gateway REST (v1) proxy event in,
//! keygate-http's answer out as the proxy response, over the in-memory store (the DynamoDB adapter's
//! own tests are in `handlers/aws/tests/moto.rs`).

use std::sync::Arc;

use keygate_core::keys::{KeySet, KeySetDocument, KeySource, generate_key};
use keygate_core::mfa::{hotp, totp_step};
use keygate_core::store::AuthStore;
use keygate_core::{AuthConfig, AuthService, SigningAlgorithm, SystemClock};
use keygate_http::Endpoint;
use keygate_lambda::shell::answer;
use keygate_testkit::doubles::{MemoryStore, StaticKeySource};
use keygate_testkit::email_rules::{link_token, queued_mails};
use keygate_testkit::fixtures::{
    NEW_PASSWORD, PASSWORD, base32_decode, test_audit_key, test_factor_keys, unique_email,
};
use serde_json::{Value, json};

/// An API Gateway REST (v1) proxy event for stage `dev`, as API Gateway sends it.
fn rest_event(
    method: &str,
    path: &str,
    body: Option<Value>,
    bearer: Option<&str>,
) -> lambda_http::Request {
    let body = body.map(|b| ("application/json", b.to_string()));
    rest_event_with(method, path, body, bearer)
}

/// [`rest_event`] with a body of any content type (`(content type, body)`).
fn rest_event_with(
    method: &str,
    path: &str,
    body: Option<(&str, String)>,
    bearer: Option<&str>,
) -> lambda_http::Request {
    let mut headers = json!({"Host": "abc123.execute-api.us-east-1.amazonaws.com", "X-Correlation-Id": "corr-42"});
    let body = body.map(|(content_type, body)| {
        headers["Content-Type"] = json!(content_type);
        body
    });
    if let Some(token) = bearer {
        headers["Authorization"] = json!(format!("Bearer {token}"));
    }
    let multi: serde_json::Map<String, Value> = headers
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), json!([v])))
        .collect();
    let event = json!({
        "resource": path,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": multi,
        "queryStringParameters": null,
        "multiValueQueryStringParameters": null,
        "pathParameters": null,
        "stageVariables": null,
        "requestContext": {
            "accountId": "123456789012", "resourceId": "r1", "stage": "dev", "requestId": "apigw-1",
            "identity": {"sourceIp": "203.0.113.9"}, "resourcePath": path, "httpMethod": method,
            "apiId": "abc123", "path": format!("/dev{path}"), "protocol": "HTTP/1.1"
        },
        "body": body,
        "isBase64Encoded": false
    });
    lambda_http::request::from_str(&event.to_string()).expect("a REST proxy event")
}

async fn call<S: AuthStore, K: KeySource>(
    service: &AuthService<S, K, SystemClock>,
    endpoint: Endpoint,
    body: Option<Value>,
    bearer: Option<&str>,
) -> (u16, Value) {
    let event = rest_event(endpoint.method().as_str(), endpoint.path(), body, bearer);
    let response = answer(service, &[endpoint], event).await;
    let status = response.status().as_u16();
    let body = match response.body() {
        lambda_http::Body::Text(text) => serde_json::from_str(text).unwrap(),
        lambda_http::Body::Empty => Value::Null,
        other => panic!("unexpected body {other:?}"),
    };
    (status, body)
}

/// An OAuth endpoint called with a form body, as an OAuth client sends it through API Gateway.
async fn call_form<S: AuthStore, K: KeySource>(
    service: &AuthService<S, K, SystemClock>,
    endpoint: Endpoint,
    form: &str,
) -> (u16, Value) {
    let body = Some(("application/x-www-form-urlencoded", form.to_owned()));
    let event = rest_event_with(endpoint.method().as_str(), endpoint.path(), body, None);
    let response = answer(service, &[endpoint], event).await;
    let status = response.status().as_u16();
    let body = match response.body() {
        lambda_http::Body::Text(text) => serde_json::from_str(text).unwrap(),
        lambda_http::Body::Empty => Value::Null,
        other => panic!("unexpected body {other:?}"),
    };
    (status, body)
}

/// The link token of the latest mail with one queued for `email` (the memory store's outbox).
async fn last_mail_token<S: AuthStore, K: KeySource>(
    service: &AuthService<S, K, SystemClock>,
    email: &str,
) -> String {
    let now = keygate_core::Clock::now_ms(&SystemClock);
    let (_, mail) = queued_mails(service, now)
        .await
        .into_iter()
        .rfind(|(_, mail)| mail.to == email && mail.text.contains("#token="))
        .expect("a mail with a link");
    link_token(&mail)
}

#[tokio::test]
async fn every_route_answers_through_the_lambda_event_conversion() {
    let keys = StaticKeySource(Arc::new(
        KeySet::from_documents(
            &KeySetDocument {
                keys: vec![generate_key(SigningAlgorithm::Es256, 1).unwrap()],
            },
            None,
        )
        .unwrap(),
    ));
    let service = AuthService::new(
        AuthConfig::with_issuer("https://keygate.test"),
        MemoryStore::default(),
        keys,
        SystemClock,
        test_audit_key(),
    )
    .unwrap()
    .with_factor_keys(test_factor_keys());
    let email = unique_email("routes");
    let credentials = json!({"email": email, "password": PASSWORD});

    let mut answered = Vec::new();
    let (status, body) = call(
        &service,
        Endpoint::Register,
        Some(credentials.clone()),
        None,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    answered.push("register");
    let user_id = body["user_id"].as_str().unwrap().to_owned();

    let (status, refused) = call(&service, Endpoint::Login, Some(credentials.clone()), None).await;
    assert_eq!(status, 403, "not verified yet: {refused}");
    let (status, _) = call(
        &service,
        Endpoint::EmailVerification,
        Some(json!({ "email": email })),
        None,
    )
    .await;
    assert_eq!(status, 202);
    answered.push("email-verification");
    let token = last_mail_token(&service, &email).await;
    let (status, body) = call(
        &service,
        Endpoint::EmailVerify,
        Some(json!({ "token": token })),
        None,
    )
    .await;
    assert_eq!(status, 204, "{body}");
    answered.push("email-verify");

    let (status, login) = call(&service, Endpoint::Login, Some(credentials.clone()), None).await;
    assert_eq!(status, 200, "{login}");
    assert_eq!(login["token_type"], "Bearer");
    answered.push("login");

    let (status, refreshed) = call(
        &service,
        Endpoint::Refresh,
        Some(json!({"refresh_token": login["refresh_token"]})),
        None,
    )
    .await;
    assert_eq!(status, 200, "{refreshed}");
    answered.push("refresh");
    let access = refreshed["access_token"].as_str().unwrap().to_owned();

    let (status, me) = call(&service, Endpoint::Me, None, Some(&access)).await;
    assert_eq!(
        (status, me["user_id"].as_str()),
        (200, Some(user_id.as_str())),
        "{me}"
    );
    answered.push("me");

    let new_password = NEW_PASSWORD;
    let (status, changed) = call(
        &service,
        Endpoint::ChangePassword,
        Some(json!({"current_password": PASSWORD, "new_password": new_password})),
        Some(&access),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    answered.push("change-password");

    let (status, _) = call(
        &service,
        Endpoint::Logout,
        Some(json!({"refresh_token": changed["refresh_token"]})),
        None,
    )
    .await;
    assert_eq!(status, 204);
    answered.push("logout");

    let (status, relogin) = call(
        &service,
        Endpoint::Login,
        Some(json!({"email": email, "password": new_password})),
        None,
    )
    .await;
    assert_eq!(status, 200, "{relogin}");
    let (status, _) = call(
        &service,
        Endpoint::LogoutAll,
        None,
        relogin["access_token"].as_str(),
    )
    .await;
    assert_eq!(status, 204);
    answered.push("logout-all");
    let (status, _) = call(
        &service,
        Endpoint::Me,
        None,
        relogin["access_token"].as_str(),
    )
    .await;
    assert_eq!(status, 401, "logout-all revokes the access token too");

    let (status, jwks) = call(&service, Endpoint::Jwks, None, None).await;
    assert_eq!(status, 200);
    assert_eq!(jwks["keys"][0]["alg"], "ES256");
    answered.push("jwks");
    let (status, discovery) = call(&service, Endpoint::Discovery, None, None).await;
    assert_eq!(
        (status, discovery["issuer"].as_str()),
        (200, Some("https://keygate.test"))
    );
    answered.push("discovery");
    let (status, openapi) = call(&service, Endpoint::OpenApi, None, None).await;
    assert_eq!(
        (status, openapi["servers"][0]["url"].as_str()),
        (200, Some("https://keygate.test"))
    );
    answered.push("openapi");
    let (status, metadata) = call(&service, Endpoint::OAuthMetadata, None, None).await;
    assert_eq!((status, &metadata), (200, &discovery));
    answered.push("oauth-metadata");

    let session = call(
        &service,
        Endpoint::Login,
        Some(json!({"email": email, "password": NEW_PASSWORD})),
        None,
    )
    .await
    .1;
    let grant = |token: &Value| {
        format!(
            "grant_type=refresh_token&client_id=keygate&refresh_token={}",
            token.as_str().unwrap()
        )
    };
    let (status, rotated) = call_form(
        &service,
        Endpoint::OAuthToken,
        &grant(&session["refresh_token"]),
    )
    .await;
    assert_eq!(status, 200, "{rotated}");
    answered.push("oauth-token");
    let form = format!(
        "token={}&client_id=keygate",
        rotated["access_token"].as_str().unwrap()
    );
    let (status, revoked) = call_form(&service, Endpoint::OAuthRevoke, &form).await;
    assert_eq!((status, revoked), (200, Value::Null));
    answered.push("oauth-revoke");
    let (status, _) = call(
        &service,
        Endpoint::Me,
        None,
        rotated["access_token"].as_str(),
    )
    .await;
    assert_eq!(status, 401, "a revoked access token is refused");
    let form = format!("token={}", rotated["refresh_token"].as_str().unwrap());
    assert_eq!(
        call_form(&service, Endpoint::OAuthRevoke, &form).await.0,
        200
    );
    let (status, refused) = call_form(
        &service,
        Endpoint::OAuthToken,
        &grant(&rotated["refresh_token"]),
    )
    .await;
    assert_eq!(
        (status, refused["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let (status, _) = call(
        &service,
        Endpoint::PasswordForgot,
        Some(json!({ "email": email })),
        None,
    )
    .await;
    assert_eq!(status, 202);
    answered.push("password-forgot");
    let token = last_mail_token(&service, &email).await;
    let (status, body) = call(
        &service,
        Endpoint::PasswordReset,
        Some(json!({ "token": token, "new_password": "a reset passphrase, long enough" })),
        None,
    )
    .await;
    assert_eq!((status, body), (204, Value::Null));
    answered.push("password-reset");

    let reset = json!({"email": email, "password": "a reset passphrase, long enough"});
    let session = call(&service, Endpoint::Login, Some(reset.clone()), None)
        .await
        .1;
    let bearer = session["access_token"].as_str();
    let (status, enrolment) = call(&service, Endpoint::MfaTotp, Some(json!({})), bearer).await;
    assert_eq!(status, 200, "{enrolment}");
    answered.push("mfa-totp");
    let secret = base32_decode(enrolment["secret"].as_str().unwrap());
    let code = |offset: i64| {
        let step = totp_step(keygate_core::Clock::now_ms(&SystemClock)) + offset;
        hotp(&secret, step as u64, 6)
    };
    let activate = json!({"factor_id": enrolment["factor_id"], "code": code(0)});
    let (status, activated) =
        call(&service, Endpoint::MfaTotpActivate, Some(activate), bearer).await;
    assert_eq!(status, 200, "{activated}");
    answered.push("mfa-totp-activate");
    // The activation spent this step; the next one (one step of skew) is still accepted.
    let bearer = activated["access_token"].as_str();
    let (status, codes) = call(
        &service,
        Endpoint::MfaRecoveryCodes,
        Some(json!({"code": code(1)})),
        bearer,
    )
    .await;
    assert_eq!(status, 200, "{codes}");
    answered.push("mfa-recovery-codes");
    let (status, challenge) = call(&service, Endpoint::Login, Some(reset), None).await;
    assert_eq!(
        (status, challenge["type"].as_str()),
        (403, Some("urn:keygate:problem:mfa-required"))
    );
    let verify = json!({
        "mfa_token": challenge["mfa_token"],
        "recovery_code": codes["recovery_codes"][0],
    });
    let (status, verified) = call(&service, Endpoint::MfaVerify, Some(verify), None).await;
    assert_eq!(status, 200, "{verified}");
    answered.push("mfa-verify");
    let disable = json!({"recovery_code": codes["recovery_codes"][1]});
    let (status, body) = call(
        &service,
        Endpoint::MfaTotpDisable,
        Some(disable),
        verified["access_token"].as_str(),
    )
    .await;
    assert_eq!((status, body), (204, Value::Null));
    answered.push("mfa-totp-disable");
    assert_eq!(answered.len(), Endpoint::ALL.len());

    // A function answers only its own route.
    let event = rest_event("POST", "/auth/login", Some(credentials), None);
    let response = answer(&service, &[Endpoint::Register], event).await;
    assert!(response.status().is_client_error(), "{}", response.status());
}
