//! The OAuth endpoints in process, through `keygate_http::handle`: `/oauth/token` (RFC 6749 section 6)
//! and `/oauth/revoke` (RFC 7009), their form parsing and their RFC 6749 section 5.2 errors.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use keygate_core::SigningAlgorithm;
use keygate_core::keys::{KeyError, KeySet, KeySetDocument, KeySource, generate_key};
use keygate_core::{AuthConfig, AuthService};
use keygate_http::{Endpoint, MAX_BODY_BYTES, handle};
use keygate_store_sqlite::SqliteStore;
use keygate_testkit::doubles::{ManualClock, StaticKeySource};
use keygate_testkit::fixtures::test_audit_key;
use serde_json::{Value, json};

const NOW: i64 = 1_800_000_000_000;
const PASSWORD: &str = "correct horse battery staple";
const CLIENT: &str = "keygate";

type Service<K> = AuthService<SqliteStore, K, Arc<ManualClock>>;

/// The OAuth endpoints' tests log in directly: email verification is in_process.rs's subject.
fn service_with(config: AuthConfig) -> (Service<StaticKeySource>, Arc<ManualClock>) {
    let config = AuthConfig {
        require_verified_email: false,
        ..config
    };
    let clock = Arc::new(ManualClock::new(NOW));
    let key = generate_key(SigningAlgorithm::Es256, 0).unwrap();
    let keys = StaticKeySource(Arc::new(
        KeySet::from_documents(&KeySetDocument { keys: vec![key] }, None).unwrap(),
    ));
    let service = AuthService::new(
        config,
        SqliteStore::open_in_memory().unwrap(),
        keys,
        clock.clone(),
        test_audit_key(),
    )
    .unwrap();
    (service, clock)
}

fn service() -> (Service<StaticKeySource>, Arc<ManualClock>) {
    service_with(AuthConfig::with_issuer("https://auth.example.com"))
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    /// An RFC 6749 section 5.2 error: JSON `{error, error_description}`, never cached; returns the code.
    fn oauth_error(&self, status: StatusCode) -> String {
        assert_eq!(self.status, status, "{:?}", self.body);
        assert_eq!(self.headers["content-type"], "application/json");
        self.assert_not_cached();
        let body = self.json();
        let description = body["error_description"].as_str().unwrap();
        // RFC 6749 section 5.2: %x20-21 / %x23-5B / %x5D-7E.
        assert!(
            description
                .bytes()
                .all(|b| (0x20..=0x7e).contains(&b) && b != b'"' && b != b'\\'),
            "{description}"
        );
        assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
        body["error"].as_str().unwrap().to_owned()
    }

    fn assert_not_cached(&self) {
        assert_eq!(self.headers["cache-control"], "no-store");
        assert_eq!(self.headers["pragma"], "no-cache");
    }
}

async fn send<K: KeySource>(service: &Service<K>, req: Request<Bytes>) -> Answer {
    let (parts, body) = handle(service, &Endpoint::ALL, req, "req-1")
        .await
        .into_parts();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

fn form(path: &str, body: &str) -> Request<Bytes> {
    Request::builder()
        .method(Method::POST)
        .uri(path)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Bytes::from(body.to_owned()))
        .unwrap()
}

fn json_post(path: &str, body: Value) -> Request<Bytes> {
    Request::builder()
        .method(Method::POST)
        .uri(path)
        .header("content-type", "application/json")
        .body(Bytes::from(body.to_string()))
        .unwrap()
}

fn me(access: &str) -> Request<Bytes> {
    Request::builder()
        .method(Method::GET)
        .uri("/auth/me")
        .header("authorization", format!("Bearer {access}"))
        .body(Bytes::new())
        .unwrap()
}

fn grant(refresh_token: &str) -> String {
    format!("grant_type=refresh_token&client_id={CLIENT}&refresh_token={refresh_token}")
}

/// Registers ada and logs in through keygate's JSON API, optionally bound to a device.
async fn login<K: KeySource>(service: &Service<K>, device_id: Option<&str>) -> Value {
    let credentials = json!({"email": "ada@example.com", "password": PASSWORD});
    send(service, json_post("/auth/register", credentials.clone())).await;
    let mut body = credentials;
    if let Some(device_id) = device_id {
        body["device_id"] = json!(device_id);
    }
    let answer = send(service, json_post("/auth/login", body)).await;
    assert_eq!(answer.status, StatusCode::OK);
    answer.json()
}

fn s(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_token_endpoint_rotates_like_auth_refresh() {
    let (service, clock) = service();
    let first = login(&service, None).await;
    clock.advance_ms(1_000);
    let answer = send(
        &service,
        form("/oauth/token", &grant(&s(&first, "refresh_token"))),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.headers["content-type"], "application/json");
    answer.assert_not_cached();
    let second = answer.json();
    assert_eq!(second["token_type"], "Bearer");
    assert_eq!(second["expires_in"], 900);
    assert!(second.get("device_token").is_none());
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    assert_eq!(
        send(&service, me(&s(&second, "access_token"))).await.status,
        StatusCode::OK
    );

    // The JSON route and the OAuth route share one rotation: a token rotated by one is used for
    // the other, and its replay after the grace interval revokes the family for both.
    clock.advance_ms(1_000);
    let third = send(
        &service,
        json_post(
            "/auth/refresh",
            json!({"refresh_token": second["refresh_token"]}),
        ),
    )
    .await;
    assert_eq!(third.status, StatusCode::OK);
    let reused = send(
        &service,
        form("/oauth/token", &grant(&s(&second, "refresh_token"))),
    )
    .await;
    assert_eq!(
        reused.oauth_error(StatusCode::BAD_REQUEST),
        "invalid_grant",
        "inside the grace interval"
    );
    clock.advance_ms(11_000);
    let reused = send(
        &service,
        form("/oauth/token", &grant(&s(&first, "refresh_token"))),
    )
    .await;
    assert_eq!(reused.oauth_error(StatusCode::BAD_REQUEST), "invalid_grant");
    let live = send(
        &service,
        form("/oauth/token", &grant(&s(&third.json(), "refresh_token"))),
    )
    .await;
    assert_eq!(
        live.oauth_error(StatusCode::BAD_REQUEST),
        "invalid_grant",
        "reuse revoked the family"
    );
}

/// Unknown, used, reused, expired, revoked and wrong-device refresh tokens get one answer.
#[tokio::test]
async fn every_refused_grant_is_one_indistinguishable_invalid_grant() {
    let (service, clock) = service();
    let bound = login(&service, Some("phone")).await;
    let mut answers = Vec::new();
    let refuse = async |body: String| {
        let answer = send(&service, form("/oauth/token", &body)).await;
        assert_eq!(
            answer.oauth_error(StatusCode::BAD_REQUEST),
            "invalid_grant",
            "{body}"
        );
        answer.body
    };
    answers.push(refuse(grant("kgrt_unknown")).await);
    answers.push(refuse(grant(&s(&bound, "refresh_token"))).await); // no device id: wrong device
    let session = send(
        &service,
        json_post(
            "/auth/login",
            json!({"email": "ada@example.com", "password": PASSWORD}),
        ),
    )
    .await
    .json();
    let rotated = send(
        &service,
        form("/oauth/token", &grant(&s(&session, "refresh_token"))),
    )
    .await
    .json();
    answers.push(refuse(grant(&s(&session, "refresh_token"))).await); // used, inside grace
    clock.advance_ms(20_000);
    answers.push(refuse(grant(&s(&session, "refresh_token"))).await); // reused: revokes
    answers.push(refuse(grant(&s(&rotated, "refresh_token"))).await); // revoked family
    let later = send(
        &service,
        json_post(
            "/auth/login",
            json!({"email": "ada@example.com", "password": PASSWORD}),
        ),
    )
    .await
    .json();
    clock.advance_ms(31 * 86_400_000);
    answers.push(refuse(grant(&s(&later, "refresh_token"))).await); // expired family
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
}

#[tokio::test]
async fn malformed_token_requests_get_rfc_6749_errors() {
    let (service, _) = service();
    let tokens = login(&service, None).await;
    let rt = s(&tokens, "refresh_token");
    let cases: Vec<(Request<Bytes>, StatusCode, &str)> = vec![
        (
            json_post(
                "/oauth/token",
                json!({"grant_type": "refresh_token", "refresh_token": rt, "client_id": CLIENT}),
            ),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            form(
                "/oauth/token",
                &format!("client_id={CLIENT}&refresh_token={rt}"),
            ),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            form(
                "/oauth/token",
                &format!("grant_type=refresh_token&client_id={CLIENT}"),
            ),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            form(
                "/oauth/token",
                &format!("grant_type=refresh_token&client_id={CLIENT}&refresh_token="),
            ),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            form(
                "/oauth/token",
                &format!("{}&refresh_token={rt}", grant(&rt)),
            ),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            form(
                "/oauth/token",
                &format!("{}&grant_type=refresh_token", grant(&rt)),
            ),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            form("/oauth/token", &format!("{}&device_id=%zz", grant(&rt))),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            form("/oauth/token", &format!("{}&device_id=%FF", grant(&rt))),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            form(
                "/oauth/token",
                &format!("grant_type=refresh_token&refresh_token={rt}"),
            ),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        (
            form(
                "/oauth/token",
                &format!("grant_type=refresh_token&client_id=other&refresh_token={rt}"),
            ),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        (
            form(
                "/oauth/token",
                &format!(
                    "grant_type=password&client_id={CLIENT}&username=ada%40example.com&password=x"
                ),
            ),
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
        ),
        (
            form(
                "/oauth/token",
                &format!("grant_type=authorization_code&client_id={CLIENT}&code=abc"),
            ),
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
        ),
        (
            form(
                "/oauth/token",
                &format!("grant_type=client_credentials&client_id={CLIENT}"),
            ),
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
        ),
        (
            form("/oauth/token", &format!("{}&scope=admin", grant(&rt))),
            StatusCode::BAD_REQUEST,
            "invalid_scope",
        ),
        (
            form("/oauth/token", &"a".repeat(MAX_BODY_BYTES + 1)),
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request",
        ),
    ];
    for (req, status, code) in cases {
        let answer = send(&service, req).await;
        assert_eq!(answer.oauth_error(status), code);
        let text = String::from_utf8_lossy(&answer.body);
        assert!(
            !text.contains(&rt[5..20]),
            "a token value is never echoed: {text}"
        );
        if status == StatusCode::UNAUTHORIZED {
            assert_eq!(
                answer.headers["www-authenticate"],
                "Basic realm=\"keygate\""
            );
        }
    }
    // A client credential cannot be checked (there are no secrets): refused, not ignored.
    let mut with_basic = form("/oauth/token", &grant(&rt));
    with_basic.headers_mut().insert(
        "authorization",
        "Basic a2V5Z2F0ZTpzZWNyZXQ=".parse().unwrap(),
    );
    assert_eq!(
        send(&service, with_basic)
            .await
            .oauth_error(StatusCode::UNAUTHORIZED),
        "invalid_client"
    );
    // None of these consumed the token; unknown parameters are ignored (RFC 6749 section 3.2), and
    // a parameter without a value counts as omitted.
    let answer = send(
        &service,
        form(
            "/oauth/token",
            &format!("{}&foo=bar&device_id=&&", grant(&rt)),
        ),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
}

#[tokio::test]
async fn accepted_client_ids_follow_the_setting() {
    let config = AuthConfig::from_lookup(|name| match name {
        "KEYGATE_ISSUER" => Some("https://auth.example.com".into()),
        "KEYGATE_OAUTH_CLIENT_IDS" => Some("web,mobile".into()),
        _ => None,
    })
    .unwrap();
    let (service, _) = service_with(config);
    let tokens = login(&service, None).await;
    let rt = s(&tokens, "refresh_token");
    let body =
        |client: &str| format!("grant_type=refresh_token&client_id={client}&refresh_token={rt}");
    assert_eq!(
        send(&service, form("/oauth/token", &body("keygate")))
            .await
            .oauth_error(StatusCode::UNAUTHORIZED),
        "invalid_client",
        "the audience is no longer accepted once the list is set"
    );
    assert_eq!(
        send(&service, form("/oauth/token", &body("mobile")))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        send(&service, form("/oauth/revoke", "token=x&client_id=keygate"))
            .await
            .oauth_error(StatusCode::UNAUTHORIZED),
        "invalid_client"
    );
    assert_eq!(
        send(&service, form("/oauth/revoke", "token=x&client_id=web"))
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn revocation_ends_refresh_families_and_denies_access_tokens() {
    let (service, _) = service();
    let tokens = login(&service, None).await;
    let (rt, at) = (s(&tokens, "refresh_token"), s(&tokens, "access_token"));

    let answer = send(
        &service,
        form(
            "/oauth/revoke",
            &format!("token={at}&token_type_hint=access_token&client_id={CLIENT}"),
        ),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.body.is_empty());
    answer.assert_not_cached();
    let refused = send(&service, me(&at)).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        refused.json()["type"],
        "urn:keygate:problem:invalid-access-token"
    );

    // client_id is optional on revocation; a refresh token revokes its family.
    assert_eq!(
        send(&service, form("/oauth/revoke", &format!("token={rt}")))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        send(&service, form("/oauth/token", &grant(&rt)))
            .await
            .oauth_error(StatusCode::BAD_REQUEST),
        "invalid_grant"
    );

    // Unknown, already revoked and malformed tokens: 200, nothing changes.
    for token in [
        "kgrt_unknown",
        rt.as_str(),
        at.as_str(),
        "e30.e30.e30",
        "%E2%9C%93",
    ] {
        for hint in [
            "",
            "&token_type_hint=refresh_token",
            "&token_type_hint=access_token",
            "&token_type_hint=id_token",
        ] {
            let answer = send(
                &service,
                form("/oauth/revoke", &format!("token={token}{hint}")),
            )
            .await;
            assert_eq!(answer.status, StatusCode::OK, "{token}{hint}");
        }
    }

    let cases: Vec<(Request<Bytes>, StatusCode, &str)> = vec![
        (
            form("/oauth/revoke", ""),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            form("/oauth/revoke", "token="),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            form("/oauth/revoke", "token=a&token=b"),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json_post("/oauth/revoke", json!({"token": "a"})),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            form("/oauth/revoke", "token=a&client_id=stranger"),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
    ];
    for (req, status, code) in cases {
        assert_eq!(send(&service, req).await.oauth_error(status), code);
    }
}

struct NoKeys;
impl KeySource for NoKeys {
    async fn key_set(&self) -> Result<std::sync::Arc<KeySet>, KeyError> {
        Err(KeyError::NoValidKeySet(
            "the secret holds a random string".into(),
        ))
    }
}

/// 503 stays a retryable server condition: `temporarily_unavailable` with `Retry-After`.
#[tokio::test]
async fn missing_keys_are_temporarily_unavailable() {
    let service = AuthService::new(
        AuthConfig::with_issuer("https://auth.example.com"),
        SqliteStore::open_in_memory().unwrap(),
        NoKeys,
        Arc::new(ManualClock::new(NOW)),
        test_audit_key(),
    )
    .unwrap();
    // A well-formed refresh token, so the refresh reaches the key set.
    let refresh = keygate_core::refresh::RefreshToken::new_family(
        "ada@example.com",
        [7; 16],
        1,
        keygate_core::tokens::SessionFlags::VERIFIED,
        NOW,
        86_400,
    )
    .unwrap()
    .encode();
    let token = send(&service, form("/oauth/token", &grant(&refresh))).await;
    assert_eq!(
        token.oauth_error(StatusCode::SERVICE_UNAVAILABLE),
        "temporarily_unavailable"
    );
    assert_eq!(token.headers["retry-after"], "5");
    assert!(!String::from_utf8_lossy(&token.body).contains("random string"));
    // Revoking a refresh token needs no key; an access token does.
    assert_eq!(
        send(
            &service,
            form(
                "/oauth/revoke",
                "token=kgrt_AAAA&token_type_hint=access_token"
            )
        )
        .await
        .status,
        StatusCode::OK
    );
    // A JWT whose header names a key: verifying it needs the key set.
    let jwt = "eyJhbGciOiJFUzI1NiIsImtpZCI6ImsifQ.e30.c2ln";
    let access = send(&service, form("/oauth/revoke", &format!("token={jwt}"))).await;
    assert_eq!(
        access.oauth_error(StatusCode::SERVICE_UNAVAILABLE),
        "temporarily_unavailable"
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]
    #[test]
    fn arbitrary_forms_get_an_rfc_6749_answer_and_never_a_5xx(
        revoke in proptest::prelude::any::<bool>(),
        body in "([a-z_]{0,14}(=[ -~]{0,40})?&?){0,6}",
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (service, _) = service();
        let path = if revoke { "/oauth/revoke" } else { "/oauth/token" };
        let answer = runtime.block_on(send(&service, form(path, &body)));
        proptest::prop_assert!(!answer.status.is_server_error(), "{} answered {}", body, answer.status);
        if answer.status != StatusCode::OK {
            let error: Value = serde_json::from_slice(&answer.body).unwrap();
            proptest::prop_assert!(error["error"].is_string() && error["error_description"].is_string());
        }
    }
}
