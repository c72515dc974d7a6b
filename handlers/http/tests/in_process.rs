//! HTTP-level tests through `keygate_http::handle`, in process: routing, the body rules, the problem
//! mapping, and the rules that need a controlled clock or a failing key source.

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use keygate_core::SigningAlgorithm;
use keygate_core::keys::{KeyError, KeySet, KeySetDocument, KeySource, KeyTimeline, generate_key};
use keygate_core::{AuthConfig, AuthService};
use keygate_http::{Endpoint, MAX_BODY_BYTES, MAX_HEADER_BYTES, handle};
use keygate_store_sqlite::SqliteStore;
use keygate_testkit::doubles::{ManualClock, StaticKeySource};
use keygate_testkit::email_rules::{link_token, queued_mails};
use keygate_testkit::fixtures::test_audit_key;
use serde_json::{Value, json};

const NOW: i64 = 1_800_000_000_000;
const PASSWORD: &str = "correct horse battery staple";

type Service<K> = AuthService<SqliteStore, K, Arc<ManualClock>>;

fn service() -> (Service<StaticKeySource>, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(NOW));
    let key = generate_key(SigningAlgorithm::Es256, 0).unwrap();
    let keys = StaticKeySource(Arc::new(
        KeySet::from_documents(&KeySetDocument { keys: vec![key] }, None).unwrap(),
    ));
    let config = AuthConfig::with_issuer("https://auth.example.com");
    (
        AuthService::new(
            config,
            SqliteStore::open_in_memory().unwrap(),
            keys,
            clock.clone(),
            test_audit_key(),
        )
        .unwrap(),
        clock,
    )
}

fn request(method: Method, path: &str) -> http::request::Builder {
    Request::builder().method(method).uri(path)
}

async fn send<K: KeySource>(
    service: &Service<K>,
    endpoints: &[Endpoint],
    req: Request<Bytes>,
) -> (StatusCode, http::HeaderMap, Value) {
    let response: Response<Bytes> = handle(service, endpoints, req, "req-1").await;
    let (parts, body) = response.into_parts();
    let json = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body).unwrap()
    };
    if parts.status.is_client_error() || parts.status.is_server_error() {
        assert_eq!(parts.headers["content-type"], "application/problem+json");
        assert_eq!(json["status"], parts.status.as_u16());
        assert_eq!(json["request_id"], "req-1");
    }
    (parts.status, parts.headers, json)
}

fn post(path: &str, body: Value) -> Request<Bytes> {
    request(Method::POST, path)
        .header("content-type", "application/json")
        .body(Bytes::from(body.to_string()))
        .unwrap()
}

fn get(path: &str, bearer: Option<&str>) -> Request<Bytes> {
    let mut builder = request(Method::GET, path);
    if let Some(token) = bearer {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    builder.body(Bytes::new()).unwrap()
}

/// Verifies `email` through `POST /auth/email/verify` with the token of the last mail queued for it.
async fn verify_mailed<K: KeySource>(service: &Service<K>, email: &str) {
    let (_, mail) = queued_mails(service, NOW)
        .await
        .into_iter()
        .rfind(|(_, mail)| mail.to == email)
        .expect("a mail to the address");
    let token = link_token(&mail);
    let (status, headers, _) = send(
        service,
        &Endpoint::ALL,
        post("/auth/email/verify", json!({ "token": token })),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(headers["cache-control"], "no-store");
}

async fn login<K: KeySource>(service: &Service<K>) -> Value {
    let (status, _, _) = send(
        service,
        &Endpoint::ALL,
        post(
            "/auth/register",
            json!({"email": "ada@example.com", "password": PASSWORD}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    verify_mailed(service, "ada@example.com").await;
    let (status, headers, tokens) = send(
        service,
        &Endpoint::ALL,
        post(
            "/auth/login",
            json!({"email": "ada@example.com", "password": PASSWORD}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["cache-control"], "no-store");
    tokens
}

#[tokio::test]
async fn routes_methods_and_the_endpoints_a_process_serves() {
    let (service, _) = service();
    for endpoint in Endpoint::ALL {
        let wrong = if endpoint.method() == Method::GET {
            Method::POST
        } else {
            Method::GET
        };
        let req = Request::builder()
            .method(wrong)
            .uri(endpoint.path())
            .body(Bytes::new())
            .unwrap();
        let (status, headers, _) = send(&service, &Endpoint::ALL, req).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{endpoint:?}");
        assert_eq!(headers["allow"], endpoint.method().as_str());
    }
    // A Lambda serving only login knows nothing of the other routes, and paths match exactly.
    let (status, _, _) = send(
        &service,
        &[Endpoint::Login],
        post("/auth/register", json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for path in ["/prod/auth/login", "/auth/login/", "/AUTH/LOGIN", "/"] {
        let (status, _, _) = send(&service, &Endpoint::ALL, post(path, json!({}))).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    let (status, _, body) = send(
        &service,
        &[Endpoint::Jwks, Endpoint::Discovery],
        get("/.well-known/openid-configuration", None),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["jwks_uri"],
        "https://auth.example.com/.well-known/jwks.json"
    );
}

#[tokio::test]
async fn the_jwks_is_cached_for_no_longer_than_the_rotation_lead_allows() {
    let (service, _) = service();
    let (status, headers, body) = send(
        &service,
        &[Endpoint::Jwks],
        get("/.well-known/jwks.json", None),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["keys"].as_array().unwrap().len(), 1);
    let cache_control = headers["cache-control"].to_str().unwrap();
    let max_age: i64 = cache_control
        .strip_prefix("public, max-age=")
        .and_then(|age| age.parse().ok())
        .unwrap_or_else(|| panic!("{cache_control}"));
    let config = AuthConfig::with_issuer("https://auth.example.com");
    assert_eq!(config.key_cache_ttl_secs, 300);
    let timeline = KeyTimeline::new(&config);
    assert_eq!(
        timeline.lead_secs,
        max_age + 300,
        "a new key signs only after every JWKS cached before its publication expired"
    );
}

#[tokio::test]
async fn body_size_and_content_type_rules() {
    let (service, _) = service();
    let at_limit = Bytes::from(vec![b' '; MAX_BODY_BYTES]);
    let over = Bytes::from(vec![b' '; MAX_BODY_BYTES + 1]);
    let json_post = |body: Bytes| {
        Request::builder()
            .method(Method::POST)
            .uri("/auth/login")
            .header("content-type", "application/json")
            .body(body)
            .unwrap()
    };
    assert_eq!(
        send(&service, &Endpoint::ALL, json_post(at_limit)).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        send(&service, &Endpoint::ALL, json_post(over)).await.0,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    for content_type in ["application/json; charset=utf-8", "Application/JSON"] {
        let req = Request::builder()
            .method(Method::POST)
            .uri("/auth/register")
            .header("content-type", content_type)
            .body(Bytes::from(
                json!({"email": "b@example.com", "password": PASSWORD}).to_string(),
            ))
            .unwrap();
        assert_eq!(
            send(&service, &Endpoint::ALL, req).await.0,
            StatusCode::CREATED,
            "{content_type}"
        );
    }
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/jsonp",
    ] {
        let req = Request::builder()
            .method(Method::POST)
            .uri("/auth/login")
            .header("content-type", content_type)
            .body(Bytes::from("{}"))
            .unwrap();
        assert_eq!(
            send(&service, &Endpoint::ALL, req).await.0,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type}"
        );
    }
    // Headers: up to the limit they are read, past it 431 before anything else.
    let with_header = |bytes: usize| {
        Request::builder()
            .method(Method::GET)
            .uri("/.well-known/jwks.json")
            .header("x-filler", "a".repeat(bytes - "x-filler".len() - 4))
            .body(Bytes::new())
            .unwrap()
    };
    assert_eq!(
        send(&service, &Endpoint::ALL, with_header(MAX_HEADER_BYTES))
            .await
            .0,
        StatusCode::OK
    );
    let (status, _, body) = send(&service, &Endpoint::ALL, with_header(MAX_HEADER_BYTES + 1)).await;
    assert_eq!(status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert!(
        body["type"]
            .as_str()
            .unwrap()
            .ends_with("request-header-fields-too-large")
    );
    let (status, _, _) = send(&service, &Endpoint::ALL, with_header(200 * 1024)).await;
    assert_eq!(status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    // GET endpoints refuse a body that is not empty JSON.
    let req = Request::builder()
        .method(Method::GET)
        .uri("/.well-known/jwks.json")
        .header("content-type", "application/json")
        .body(Bytes::from("{\"x\":1}"))
        .unwrap();
    assert_eq!(
        send(&service, &Endpoint::ALL, req).await.0,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn access_tokens_expire_with_the_clock() {
    let (service, clock) = service();
    let tokens = login(&service).await;
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(
        send(&service, &Endpoint::ALL, get("/auth/me", Some(access)))
            .await
            .0,
        StatusCode::OK
    );
    clock.advance_ms(900_000 + 30_000);
    let (status, headers, body) =
        send(&service, &Endpoint::ALL, get("/auth/me", Some(access))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
    assert_eq!(body["type"], "urn:keygate:problem:invalid-access-token");
}

#[tokio::test]
async fn refresh_families_expire_absolutely() {
    let (service, clock) = service();
    let mut token = login(&service).await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // Rotating every day does not extend the 30-day family.
    for _ in 0..29 {
        clock.advance_ms(86_400_000);
        let (status, _, body) = send(
            &service,
            &Endpoint::ALL,
            post("/auth/refresh", json!({"refresh_token": token})),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        token = body["refresh_token"].as_str().unwrap().to_owned();
    }
    clock.advance_ms(86_400_000);
    let (status, _, body) = send(
        &service,
        &Endpoint::ALL,
        post("/auth/refresh", json!({"refresh_token": token})),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["type"], "urn:keygate:problem:invalid-refresh-token");
}

#[tokio::test]
async fn a_device_bound_token_presented_elsewhere_revokes_its_family() {
    let (service, _) = service();
    login(&service).await;
    let (_, _, tokens) = send(
        &service,
        &Endpoint::ALL,
        post(
            "/auth/login",
            json!({"email": "ada@example.com", "password": PASSWORD, "device_id": "phone-1"}),
        ),
    )
    .await;
    let t0 = tokens["refresh_token"].as_str().unwrap();
    let (status, _, next) = send(
        &service,
        &Endpoint::ALL,
        post(
            "/auth/refresh",
            json!({"refresh_token": t0, "device_id": "phone-1"}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let t1 = next["refresh_token"].as_str().unwrap();
    let (status, _, _) = send(
        &service,
        &Endpoint::ALL,
        post(
            "/auth/refresh",
            json!({"refresh_token": t1, "device_id": "laptop-9"}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = send(
        &service,
        &Endpoint::ALL,
        post(
            "/auth/refresh",
            json!({"refresh_token": t1, "device_id": "phone-1"}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the family was revoked");
}

/// A key source that has no valid key set, like a freshly deployed secret before its first rotation.
struct NoKeys;
impl KeySource for NoKeys {
    async fn key_set(&self) -> Result<Arc<KeySet>, KeyError> {
        Err(KeyError::NoValidKeySet(
            "the secret holds a random string".into(),
        ))
    }
}

#[tokio::test]
async fn missing_keys_answer_503_and_consume_nothing() {
    let clock = Arc::new(ManualClock::new(NOW));
    let service = AuthService::new(
        AuthConfig::with_issuer("https://auth.example.com"),
        SqliteStore::open_in_memory().unwrap(),
        NoKeys,
        clock,
        test_audit_key(),
    )
    .unwrap();
    let (status, _, _) = send(
        &service,
        &Endpoint::ALL,
        post(
            "/auth/register",
            json!({"email": "ada@example.com", "password": PASSWORD}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "registration needs no key");
    verify_mailed(&service, "ada@example.com").await;
    for req in [
        get("/.well-known/jwks.json", None),
        post(
            "/auth/login",
            json!({"email": "ada@example.com", "password": PASSWORD}),
        ),
    ] {
        let (status, headers, body) = send(&service, &Endpoint::ALL, req).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(headers["retry-after"], "5");
        assert!(
            !body["detail"].as_str().unwrap().contains("random string"),
            "internal detail stays internal"
        );
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]
    #[test]
    fn arbitrary_requests_never_get_a_5xx(
        endpoint in 0usize..Endpoint::ALL.len(),
        body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
        json_type in proptest::prelude::any::<bool>(),
        bearer in "[ -~]{0,80}",
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (service, _) = service();
        let endpoint = Endpoint::ALL[endpoint];
        let mut builder = Request::builder().method(endpoint.method()).uri(endpoint.path()).header("authorization", format!("Bearer {bearer}"));
        if json_type {
            builder = builder.header("content-type", "application/json");
        }
        let response = runtime.block_on(handle(&service, &Endpoint::ALL, builder.body(Bytes::from(body)).unwrap(), "p"));
        proptest::prop_assert!(!response.status().is_server_error(), "{:?} answered {}", endpoint, response.status());
    }
}

#[tokio::test]
async fn the_openapi_document_is_served_naming_the_issuer_as_its_server() {
    let (service, _) = service();
    let response = handle(
        &service,
        &[Endpoint::OpenApi],
        get("/openapi.json", None),
        "req-1",
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.headers()["cache-control"], "public, max-age=3600");
    let body: Value = serde_json::from_slice(response.body()).unwrap();
    assert_eq!(body["openapi"], "3.1.0");
    assert_eq!(
        body["servers"],
        json!([{"url": "https://auth.example.com", "description": "the deployment that served this document (its issuer)"}])
    );
    assert_eq!(body, keygate_http::openapi::served(service.config()));
    let (status, _, _) = send(
        &service,
        &[Endpoint::OpenApi],
        request(Method::POST, "/openapi.json")
            .body(Bytes::new())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

/// The mail-sending endpoints answer a known, an unknown, a cooling-down and a verified address
/// with the same status, headers and (empty) body; the proof endpoints map their errors.
#[tokio::test]
async fn email_endpoints_answer_alike_and_map_their_errors() {
    let (service, _) = service();
    let register = |email: &str| {
        post(
            "/auth/register",
            json!({"email": email, "password": PASSWORD}),
        )
    };
    assert_eq!(
        send(&service, &Endpoint::ALL, register("ada@example.com"))
            .await
            .0,
        StatusCode::CREATED
    );
    let (status, _, problem) = send(
        &service,
        &Endpoint::ALL,
        post(
            "/auth/login",
            json!({"email": "ada@example.com", "password": PASSWORD}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(problem["type"], "urn:keygate:problem:email-not-verified");

    for path in ["/auth/email/verification", "/auth/password/forgot"] {
        let mut answers = Vec::new();
        // Unverified and cooling down (its registration mail was just sent), unknown, then
        // known; the last one is verified by then for the verification endpoint.
        for email in ["ada@example.com", "nobody@example.com", "ADA@example.com"] {
            let response = handle(
                &service,
                &Endpoint::ALL,
                post(path, json!({ "email": email })),
                "req-1",
            )
            .await;
            let (mut parts, body) = response.into_parts();
            parts.headers.remove("x-correlation-id");
            answers.push((parts.status, parts.headers, body));
        }
        assert_eq!(answers[0].0, StatusCode::ACCEPTED, "{path}");
        assert!(answers[0].2.is_empty());
        assert!(
            answers.iter().all(|a| *a == answers[0]),
            "{path}: every address gets the same answer"
        );
        let (status, _, problem) = send(
            &service,
            &Endpoint::ALL,
            post(path, json!({ "email": "not an email" })),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(problem["type"], "urn:keygate:problem:invalid-email");
    }

    let refused = [
        (
            "/auth/email/verify",
            json!({"token": "kgev_x", "email": "ada@example.com", "code": "12345678"}),
            "urn:keygate:problem:invalid-request",
        ),
        (
            "/auth/email/verify",
            json!({"email": "ada@example.com"}),
            "urn:keygate:problem:invalid-request",
        ),
        (
            "/auth/email/verify",
            json!({"token": "kgev_x", "new_password": PASSWORD}),
            "urn:keygate:problem:invalid-request",
        ),
        (
            "/auth/email/verify",
            json!({"token": "kgev_not-a-token"}),
            "urn:keygate:problem:invalid-code",
        ),
        (
            "/auth/email/verify",
            json!({"email": "ada@example.com", "code": "00000000"}),
            "urn:keygate:problem:invalid-code",
        ),
        (
            "/auth/password/reset",
            json!({"token": "kgpr_x"}),
            "urn:keygate:problem:invalid-request",
        ),
        (
            "/auth/password/reset",
            json!({"token": "kgpr_x", "new_password": "short"}),
            "urn:keygate:problem:password-policy",
        ),
        (
            "/auth/password/reset",
            json!({"email": "nobody@example.com", "code": "12345678", "new_password": PASSWORD}),
            "urn:keygate:problem:invalid-code",
        ),
    ];
    for (path, body, problem_type) in refused {
        let (status, _, problem) = send(&service, &Endpoint::ALL, post(path, body.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {body}");
        assert_eq!(problem["type"], problem_type, "{path} {body}");
    }

    // The latest reset mail (the earlier ones were superseded or refused by the cooldown).
    let (_, reset) = queued_mails(&service, NOW)
        .await
        .into_iter()
        .rfind(|(_, mail)| mail.kind == keygate_core::mail::MailKind::PasswordReset)
        .expect("a reset mail");
    let new_password = "a brand new passphrase, long enough";
    let (status, headers, body) = send(
        &service,
        &Endpoint::ALL,
        post(
            "/auth/password/reset",
            json!({"token": link_token(&reset), "new_password": new_password}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(body, Value::Null, "a reset issues no tokens");
    let (status, _, tokens) = send(
        &service,
        &Endpoint::ALL,
        post(
            "/auth/login",
            json!({"email": "ada@example.com", "password": new_password}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "the reset verified the email too");
    let access = tokens["access_token"].as_str().unwrap();
    let (_, _, me) = send(&service, &Endpoint::ALL, get("/auth/me", Some(access))).await;
    assert_eq!(me["email_verified"], true);
}

fn bearer_post(path: &str, body: Value, bearer: &str) -> Request<Bytes> {
    request(Method::POST, path)
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {bearer}"))
        .body(Bytes::from(body.to_string()))
        .unwrap()
}

/// The second-factor routes over HTTP: the `mfa-required` problem carries its token as extension
/// members (and no token response), bodies are strict (`code` or `recovery_code`, not both), each
/// refusal has its problem type, and `/auth/me` says whether MFA is on.
#[tokio::test]
async fn second_factor_routes_answer_their_problems() {
    let (service, clock) = service();
    let service = service.with_factor_keys(keygate_testkit::fixtures::test_factor_keys());
    let tokens = login(&service).await;
    let bearer = tokens["access_token"].as_str().unwrap();
    let all = &Endpoint::ALL;
    let (status, _, problem) = send(
        &service,
        all,
        bearer_post("/auth/mfa/totp", json!({"x": 1}), bearer),
    )
    .await;
    assert_eq!(
        (status, problem["type"].as_str()),
        (
            StatusCode::BAD_REQUEST,
            Some("urn:keygate:problem:invalid-request")
        )
    );
    let (status, headers, enrolment) = send(
        &service,
        all,
        bearer_post("/auth/mfa/totp", json!({}), bearer),
    )
    .await;
    assert_eq!(
        (status, &headers["cache-control"]),
        (
            StatusCode::OK,
            &"no-store".parse::<http::HeaderValue>().unwrap()
        )
    );
    let secret = keygate_testkit::fixtures::base32_decode(enrolment["secret"].as_str().unwrap());
    let code = |offset: i64| {
        let step = keygate_core::mfa::totp_step(keygate_core::Clock::now_ms(&clock)) + offset;
        keygate_core::mfa::hotp(&secret, step as u64, 6)
    };
    let activate = json!({"factor_id": enrolment["factor_id"], "code": code(0)});
    let (status, _, activated) = send(
        &service,
        all,
        bearer_post("/auth/mfa/totp/activate", activate, bearer),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{activated}");
    assert_eq!(activated["recovery_codes"].as_array().unwrap().len(), 10);
    let fresh = activated["access_token"].as_str().unwrap();
    let (status, _, problem) = send(
        &service,
        all,
        bearer_post("/auth/mfa/totp", json!({}), fresh),
    )
    .await;
    assert_eq!(
        (status, problem["type"].as_str()),
        (
            StatusCode::CONFLICT,
            Some("urn:keygate:problem:mfa-already-enabled")
        )
    );
    let (status, _, me) = send(&service, all, get("/auth/me", Some(fresh))).await;
    assert_eq!((status, &me["mfa_enabled"]), (StatusCode::OK, &json!(true)));

    let (status, _, problem) = send(
        &service,
        all,
        post(
            "/auth/login",
            json!({"email": "ada@example.com", "password": PASSWORD}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(problem["type"], "urn:keygate:problem:mfa-required");
    assert_eq!(
        (&problem["expires_in"], &problem["factors"]),
        (&json!(300), &json!(["totp", "recovery_code"]))
    );
    assert!(problem["mfa_token"].as_str().unwrap().starts_with("kgmt_"));
    assert!(problem.get("access_token").is_none() && problem.get("refresh_token").is_none());
    let mfa_token = problem["mfa_token"].clone();
    let both = json!({"mfa_token": mfa_token, "code": code(1), "recovery_code": activated["recovery_codes"][0]});
    let (status, _, problem) = send(&service, all, post("/auth/mfa/verify", both)).await;
    assert_eq!(
        (status, problem["type"].as_str()),
        (
            StatusCode::BAD_REQUEST,
            Some("urn:keygate:problem:invalid-request")
        )
    );
    let (status, _, problem) = send(
        &service,
        all,
        post("/auth/mfa/verify", json!({"code": code(1)})),
    )
    .await;
    assert_eq!(
        (status, problem["type"].as_str()),
        (
            StatusCode::BAD_REQUEST,
            Some("urn:keygate:problem:invalid-request")
        )
    );
    let wrong = json!({"mfa_token": mfa_token, "code": "12345"});
    let (status, _, problem) = send(&service, all, post("/auth/mfa/verify", wrong)).await;
    assert_eq!(
        (status, problem["type"].as_str()),
        (
            StatusCode::UNAUTHORIZED,
            Some("urn:keygate:problem:invalid-second-factor")
        )
    );
    let (status, _, verified) = send(
        &service,
        all,
        post(
            "/auth/mfa/verify",
            json!({"mfa_token": mfa_token, "code": code(1)}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{verified}");
    assert!(verified["device_token"].is_string());

    // Disabling on a login older than the recent-login window: 403 recent-login-required.
    clock.advance_ms(301_000);
    let stale = verified["access_token"].as_str().unwrap();
    let disable = json!({"recovery_code": activated["recovery_codes"][0]});
    let (status, _, problem) = send(
        &service,
        all,
        bearer_post("/auth/mfa/totp/disable", disable.clone(), stale),
    )
    .await;
    assert_eq!(
        (status, problem["type"].as_str()),
        (
            StatusCode::FORBIDDEN,
            Some("urn:keygate:problem:recent-login-required")
        )
    );
    // A route this process does not serve is not found.
    let (status, _, _) = send(
        &service,
        &[Endpoint::Login],
        bearer_post("/auth/mfa/totp/disable", disable, stale),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
