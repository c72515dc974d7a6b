//! End-to-end: starts the real `keygate-local` binary on a free port and drives every flow over HTTP.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keygate_smoke::mailbox::{FileOutbox, code_in as text_code, token_in as text_token};
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const PASSWORD: &str = "correct horse battery staple";

struct Server {
    child: Child,
    base: String,
    /// Where the file mailer (the default) writes its `.eml` files.
    outbox: PathBuf,
    logs: Arc<Mutex<String>>,
    client: Client,
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("keygate-e2e-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl Server {
    async fn start(data_dir: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_keygate-local"))
            .args(["--addr", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("keygate-local starts");
        let logs = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = logs.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let mut logs = sink.lock().unwrap();
                logs.push_str(&line);
                logs.push('\n');
            }
        });
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let base = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = stdout.next_line().await.unwrap() {
                if let Some(url) = line.strip_prefix("listening on ") {
                    return url.to_owned();
                }
            }
            panic!(
                "keygate-local exited before listening: {}",
                logs.lock().unwrap()
            );
        })
        .await
        .expect("keygate-local listens within 30 s");
        tokio::spawn(async move { while let Ok(Some(_)) = stdout.next_line().await {} });
        Server {
            child,
            base,
            outbox: data_dir.join("outbox"),
            logs,
            client: Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        }
    }

    /// SIGTERM, as Ctrl-C or a service manager would, and waits for a clean exit.
    async fn stop(mut self) -> String {
        let pid = self.child.id().unwrap() as i32;
        unsafe_kill(pid);
        let status = tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .expect("exits")
            .unwrap();
        assert!(status.success(), "clean shutdown, got {status}");
        self.logs.lock().unwrap().clone()
    }

    fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    async fn post(&self, path: &str, body: Value) -> Response {
        self.client
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn post_bearer(&self, path: &str, token: &str, body: Option<Value>) -> Response {
        let mut request = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap()
    }

    async fn get(&self, path: &str, bearer: Option<&str>) -> Response {
        let mut request = self.client.get(format!("{}{path}", self.base));
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    async fn register(&self, email: &str) -> String {
        let response = self
            .post(
                "/auth/register",
                json!({"email": email, "password": PASSWORD}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let user_id = response.json::<Value>().await.unwrap()["user_id"]
            .as_str()
            .unwrap()
            .to_owned();
        self.verify_by_mail(email).await;
        user_id
    }

    /// Proves `email` as its owner would: opens the verification mail the file mailer wrote into
    /// the data folder's `outbox/` and sends its link's token to `/auth/email/verify`.
    async fn verify_by_mail(&self, email: &str) {
        let mail = self.take_mail(email, "#token=kgev_").await;
        let token = text_token(&mail).expect("the verification mail has a link");
        let response = self
            .post("/auth/email/verify", json!({ "token": token }))
            .await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
    }

    /// The decoded text of the mail to `email` holding `needle`, waited for (the outbox worker
    /// sends within a fraction of a second), and removed from the folder.
    async fn take_mail(&self, email: &str, needle: &str) -> String {
        FileOutbox {
            dir: self.outbox.clone(),
        }
        .take(email, needle, Duration::from_secs(10))
        .await
        .unwrap()
    }

    async fn login(&self, email: &str, password: &str) -> Value {
        let response = self
            .post("/auth/login", json!({"email": email, "password": password}))
            .await;
        assert_eq!(response.status(), StatusCode::OK, "login of {email}");
        assert_eq!(response.headers()["cache-control"], "no-store");
        response.json().await.unwrap()
    }

    async fn refresh(&self, token: &str) -> Response {
        self.post("/auth/refresh", json!({"refresh_token": token}))
            .await
    }
}

fn unsafe_kill(pid: i32) {
    // std has no signal API; the `kill` command sends SIGTERM.
    let status = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

fn s(v: &Value, key: &str) -> String {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} in {v}"))
        .to_owned()
}

async fn problem(response: Response, status: StatusCode) -> Value {
    assert_eq!(response.status(), status);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], status.as_u16());
    assert!(
        body["type"]
            .as_str()
            .unwrap()
            .starts_with("urn:keygate:problem:")
    );
    assert!(body["title"].is_string() && body["detail"].is_string());
    body
}

#[tokio::test]
async fn every_flow_over_http() {
    let dir = temp_dir("flows");
    let server = Server::start(&dir, &[]).await;
    let user_id = server.register("Ada@Example.com").await;

    // Login, then /me with the access token.
    let tokens = server.login("ada@example.com", PASSWORD).await;
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 900);
    let me: Value = server
        .get("/auth/me", Some(&s(&tokens, "access_token")))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["user_id"], user_id.as_str());
    assert_eq!(me["email"], "ada@example.com");

    // Rotation: t0 -> t1 -> t2.
    let t0 = s(&tokens, "refresh_token");
    let r1: Value = server.refresh(&t0).await.json().await.unwrap();
    let t1 = s(&r1, "refresh_token");
    let r2: Value = server.refresh(&t1).await.json().await.unwrap();
    let t2 = s(&r2, "refresh_token");
    // t1 is the immediate parent of the live t2: inside the grace interval it is refused, nothing revoked.
    problem(server.refresh(&t1).await, StatusCode::UNAUTHORIZED).await;
    let r3: Value = server.refresh(&t2).await.json().await.unwrap();
    let t3 = s(&r3, "refresh_token");
    // t0 is an older ancestor: replaying it revokes the family, so the live t3 dies too.
    problem(server.refresh(&t0).await, StatusCode::UNAUTHORIZED).await;
    problem(server.refresh(&t3).await, StatusCode::UNAUTHORIZED).await;

    // Logout revokes the session's family.
    let session = server.login("ada@example.com", PASSWORD).await;
    let logout = server
        .post(
            "/auth/logout",
            json!({"refresh_token": s(&session, "refresh_token")}),
        )
        .await;
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    problem(
        server.refresh(&s(&session, "refresh_token")).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;

    // Logout-all revokes every session and the access tokens issued before it.
    let a = server.login("ada@example.com", PASSWORD).await;
    let b = server.login("ada@example.com", PASSWORD).await;
    let done = server
        .post_bearer("/auth/logout-all", &s(&a, "access_token"), None)
        .await;
    assert_eq!(done.status(), StatusCode::NO_CONTENT);
    problem(
        server.refresh(&s(&b, "refresh_token")).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    problem(
        server.get("/auth/me", Some(&s(&a, "access_token"))).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let c = server.login("ada@example.com", PASSWORD).await;
    assert_eq!(
        server
            .get("/auth/me", Some(&s(&c, "access_token")))
            .await
            .status(),
        StatusCode::OK
    );

    // Password change: wrong current password refused; then fresh tokens, old sessions and password dead.
    let new_password = "a much better passphrase 2026";
    let wrong = server
        .post_bearer(
            "/auth/password",
            &s(&c, "access_token"),
            Some(json!({"current_password": "nope nope nope nope", "new_password": new_password})),
        )
        .await;
    problem(wrong, StatusCode::UNAUTHORIZED).await;
    let weak = server
        .post_bearer(
            "/auth/password",
            &s(&c, "access_token"),
            Some(json!({"current_password": PASSWORD, "new_password": "short"})),
        )
        .await;
    problem(weak, StatusCode::BAD_REQUEST).await;
    let changed = server
        .post_bearer(
            "/auth/password",
            &s(&c, "access_token"),
            Some(json!({"current_password": PASSWORD, "new_password": new_password})),
        )
        .await;
    assert_eq!(changed.status(), StatusCode::OK);
    let fresh: Value = changed.json().await.unwrap();
    assert_eq!(
        server
            .get("/auth/me", Some(&s(&fresh, "access_token")))
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        server.refresh(&s(&fresh, "refresh_token")).await.status(),
        StatusCode::OK
    );
    problem(
        server.refresh(&s(&c, "refresh_token")).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    problem(
        server
            .post(
                "/auth/login",
                json!({"email": "ada@example.com", "password": PASSWORD}),
            )
            .await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    server.login("ada@example.com", new_password).await;

    // Discovery and JWKS.
    let discovery: Value = server
        .get("/.well-known/openid-configuration", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(discovery["issuer"], server.base.as_str());
    assert_eq!(
        discovery["jwks_uri"],
        format!("{}/.well-known/jwks.json", server.base)
    );
    let jwks: Value = server
        .get("/.well-known/jwks.json", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"][0]["alg"], "ES256");

    // Audit events: present, correlated, and free of secrets.
    let logs = server.stop().await;
    for event in [
        "\"register\"",
        "\"login_ok\"",
        "\"refresh\"",
        "\"refresh_race_refused\"",
        "\"refresh_reuse_detected\"",
        "\"logout\"",
        "\"logout_all\"",
        "\"password_change\"",
        "\"password_change_failed\"",
    ] {
        assert!(
            logs.contains(&format!("\"event\":{event}")),
            "audit event {event} missing"
        );
    }
    for secret in [
        PASSWORD,
        new_password,
        &t0,
        &t1,
        &s(&a, "access_token"),
        "ada@example.com",
    ] {
        assert!(
            !logs.contains(secret),
            "a secret or an email reached the logs"
        );
    }
}

#[tokio::test]
async fn fifty_concurrent_refreshes_of_one_token_exactly_one_wins() {
    let dir = temp_dir("race");
    let server = Arc::new(Server::start(&dir, &[]).await);
    server.register("race@example.com").await;
    let token = s(
        &server.login("race@example.com", PASSWORD).await,
        "refresh_token",
    );
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (server, token) = (server.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            server.refresh(&token).await.status()
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::OK || *s == StatusCode::UNAUTHORIZED),
        "{statuses:?}"
    );
}

/// The live-family cap at its default (100): of 105 logins of one user, the first 5 families are
/// retired and the last 100 refresh.
#[tokio::test]
async fn of_105_logins_the_oldest_5_families_are_retired() {
    let dir = temp_dir("family-cap");
    let server = Server::start(&dir, &[]).await;
    server.register("many@example.com").await;
    let mut tokens = Vec::new();
    for _ in 0..105 {
        let login = server.login("many@example.com", PASSWORD).await;
        tokens.push(s(&login, "refresh_token"));
    }
    let mut statuses = Vec::new();
    for token in &tokens {
        statuses.push(server.refresh(token).await.status());
    }
    let expected: Vec<StatusCode> = (0..105)
        .map(|i| {
            if i < 5 {
                StatusCode::UNAUTHORIZED
            } else {
                StatusCode::OK
            }
        })
        .collect();
    assert_eq!(statuses, expected);
    server.stop().await;
}

#[tokio::test]
async fn a_restart_keeps_users_tokens_and_keys() {
    let dir = temp_dir("restart");
    // The port changes between runs; a fixed issuer keeps earlier tokens valid, as a deployment's would.
    let issuer = ["--issuer", "http://keygate.test"];
    let server = Server::start(&dir, &issuer).await;
    server.register("keep@example.com").await;
    let tokens = server.login("keep@example.com", PASSWORD).await;
    server.stop().await;

    let server = Server::start(&dir, &issuer).await;
    assert_eq!(
        server
            .get("/auth/me", Some(&s(&tokens, "access_token")))
            .await
            .status(),
        StatusCode::OK,
        "same signing key after restart"
    );
    assert_eq!(
        server.refresh(&s(&tokens, "refresh_token")).await.status(),
        StatusCode::OK
    );
    server.login("keep@example.com", PASSWORD).await;
    server.stop().await;
}

#[tokio::test]
async fn unknown_email_wrong_password_and_throttled_account_look_alike() {
    let dir = temp_dir("enum");
    let server = Server::start(&dir, &["--login-free-attempts", "2"]).await;
    server.register("known@example.com").await;
    let strip = |mut v: Value| {
        let object = v.as_object_mut().unwrap();
        object.remove("request_id");
        object.remove("correlation_id");
        v
    };
    let unknown = strip(
        problem(
            server
                .post(
                    "/auth/login",
                    json!({"email": "nobody@example.com", "password": PASSWORD}),
                )
                .await,
            StatusCode::UNAUTHORIZED,
        )
        .await,
    );
    let wrong = strip(
        problem(
            server
                .post(
                    "/auth/login",
                    json!({"email": "known@example.com", "password": "wrong wrong wrong"}),
                )
                .await,
            StatusCode::UNAUTHORIZED,
        )
        .await,
    );
    assert_eq!(unknown, wrong);
    // Two more failures open the throttle window; now even the right password gets the same answer.
    for _ in 0..2 {
        server
            .post(
                "/auth/login",
                json!({"email": "known@example.com", "password": "wrong wrong wrong"}),
            )
            .await;
    }
    let throttled = strip(
        problem(
            server
                .post(
                    "/auth/login",
                    json!({"email": "known@example.com", "password": PASSWORD}),
                )
                .await,
            StatusCode::UNAUTHORIZED,
        )
        .await,
    );
    assert_eq!(throttled, unknown);
    // A duplicate registration is answered like a new one.
    let again = server
        .post(
            "/auth/register",
            json!({"email": "known@example.com", "password": "another good passphrase"}),
        )
        .await;
    assert_eq!(again.status(), StatusCode::CREATED);
    assert!(server.logs().contains("\"event\":\"login_throttled\""));
}

#[tokio::test]
async fn a_known_device_logs_in_during_a_strangers_burst() {
    let dir = temp_dir("device");
    let server = Arc::new(Server::start(&dir, &[]).await);
    server.register("owner@example.com").await;
    let first = server.login("owner@example.com", PASSWORD).await;
    let device_token = s(&first, "device_token");
    assert!(device_token.starts_with("kgdt_"), "{device_token}");
    // A stranger's burst, sent together (within the hashing queue of a 2-core machine), opens the
    // untrusted counter's window.
    let burst: Vec<_> = (0..8)
        .map(|_| {
            let server = server.clone();
            tokio::spawn(async move {
                server
                    .post(
                        "/auth/login",
                        json!({"email": "owner@example.com", "password": "wrong wrong wrong"}),
                    )
                    .await
                    .status()
            })
        })
        .collect();
    for task in burst {
        assert_eq!(task.await.unwrap(), StatusCode::UNAUTHORIZED);
    }
    let untrusted = server
        .post(
            "/auth/login",
            json!({"email": "owner@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(
        untrusted.status(),
        StatusCode::UNAUTHORIZED,
        "no device token"
    );
    let forged = server
        .post(
            "/auth/login",
            json!({"email": "owner@example.com", "password": PASSWORD,
                   "device_token": format!("kgdt_{}", "A".repeat(43))}),
        )
        .await;
    assert_eq!(
        forged.status(),
        StatusCode::UNAUTHORIZED,
        "a forged device token"
    );
    let known = server
        .post(
            "/auth/login",
            json!({"email": "owner@example.com", "password": PASSWORD,
                   "device_token": device_token}),
        )
        .await;
    assert_eq!(known.status(), StatusCode::OK, "the owner's known device");
    let known: Value = known.json().await.unwrap();
    assert_eq!(s(&known, "device_token"), device_token);
    assert!(
        !server.logs().contains(&device_token[5..]),
        "a device token reached the log"
    );
}

#[tokio::test]
async fn bad_input_gets_problem_documents_and_never_a_5xx() {
    let dir = temp_dir("bad");
    let server = Server::start(&dir, &[]).await;
    let url = |p: &str| format!("{}{p}", server.base);
    let c = &server.client;

    let big = format!(
        "{{\"email\":\"a@b.c\",\"password\":\"{}\"}}",
        "x".repeat(17 * 1024)
    );
    problem(
        c.post(url("/auth/register"))
            .header("content-type", "application/json")
            .body(big)
            .send()
            .await
            .unwrap(),
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await;
    problem(
        c.post(url("/auth/login"))
            .header("content-type", "text/plain")
            .body("{}")
            .send()
            .await
            .unwrap(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
    )
    .await;
    problem(
        c.post(url("/auth/login")).body("{}").send().await.unwrap(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
    )
    .await;
    for body in [
        "",
        "{",
        "[]",
        "null",
        "{\"email\":1,\"password\":2}",
        "{\"email\":\"a@b.c\"}",
        "{\"email\":\"a@b.c\",\"password\":\"p\",\"admin\":true}",
        "{\"email\":\"a@b.c\",\"email\":\"d@e.f\",\"password\":\"p\"}",
    ] {
        let response = c
            .post(url("/auth/login"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let doc = problem(response, StatusCode::BAD_REQUEST).await;
        assert!(
            !doc["detail"].as_str().unwrap().contains("\"p\""),
            "details never echo values"
        );
    }
    let missing = problem(server.get("/auth/me", None).await, StatusCode::UNAUTHORIZED).await;
    assert_eq!(missing["type"], "urn:keygate:problem:missing-access-token");
    let bad = c
        .get(url("/auth/me"))
        .header("authorization", "Bearer not.a.jwt")
        .send()
        .await
        .unwrap();
    assert!(
        bad.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
    problem(bad, StatusCode::UNAUTHORIZED).await;
    problem(
        c.get(url("/auth/me"))
            .header("authorization", "Basic abc")
            .send()
            .await
            .unwrap(),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    problem(server.get("/nope", None).await, StatusCode::NOT_FOUND).await;
    problem(
        server.get("/auth/login", None).await,
        StatusCode::METHOD_NOT_ALLOWED,
    )
    .await;
    problem(
        server
            .post(
                "/auth/register",
                json!({"email": "not-an-email", "password": PASSWORD}),
            )
            .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    problem(
        server
            .post(
                "/auth/register",
                json!({"email": "a@example.com", "password": "1q2w3e4r5t6y7u8i"}),
            )
            .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    problem(
        server
            .post("/auth/refresh", json!({"refresh_token": "kgrt_garbage"}))
            .await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(
        server
            .post("/auth/logout", json!({"refresh_token": "anything"}))
            .await
            .status(),
        StatusCode::NO_CONTENT
    );

    // Hostile bytes on every route: never a 5xx, always a problem document.
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    for i in 0..300 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let len = (seed % 600) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|j| (seed.rotate_left(j as u32 % 64) as u8).wrapping_add(j as u8))
            .collect();
        let path = [
            "/auth/register",
            "/auth/login",
            "/auth/refresh",
            "/auth/logout",
            "/auth/password",
            "/auth/logout-all",
        ][i % 6];
        let response = c
            .post(url(path))
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {}", i))
            .body(bytes)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_client_error(),
            "{path} answered {}",
            response.status()
        );
    }

    // The correlation id is echoed when sent, and made when not.
    let echoed = c
        .get(url("/.well-known/jwks.json"))
        .header("x-correlation-id", "trace-123")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-correlation-id"], "trace-123");
    let made = server.get("/.well-known/jwks.json", None).await;
    assert_eq!(made.headers()["x-correlation-id"].len(), 32);
    assert!(
        !server.logs().contains("\"status\":5"),
        "no 5xx in the access log"
    );
}

#[tokio::test]
async fn rotate_keys_publishes_the_new_key_before_it_signs_and_old_tokens_keep_verifying() {
    let dir = temp_dir("rotate");
    let server = Server::start(&dir, &["--key-cache-ttl-seconds", "1"]).await;
    server.register("rot@example.com").await;
    let before = server.login("rot@example.com", PASSWORD).await;
    let jwks: Value = server
        .get("/.well-known/jwks.json", None)
        .await
        .json()
        .await
        .unwrap();
    let old_kid = jwks["keys"][0]["kid"].as_str().unwrap().to_owned();

    let output = Command::new(env!("CARGO_BIN_EXE_keygate-local"))
        .arg("rotate-keys")
        .arg("--data-dir")
        .arg(&dir)
        .args(["--key-cache-ttl-seconds", "1"])
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let said = String::from_utf8_lossy(&output.stdout);
    // The lead: one JWKS max-age (300 s) plus the server's key-cache TTL (1 s).
    assert!(
        said.starts_with("rotated: key ")
            && said.contains("(in 301 s)")
            && said.contains(&format!("until then key {old_kid} signs")),
        "{said}"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let jwks: Value = server
        .get("/.well-known/jwks.json", None)
        .await
        .json()
        .await
        .unwrap();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids.len(), 2, "new and previous key published: {kids:?}");
    assert_eq!(kids[1], old_kid);
    assert_eq!(
        server
            .get("/auth/me", Some(&s(&before, "access_token")))
            .await
            .status(),
        StatusCode::OK,
        "a token of the previous key still verifies"
    );
    let after = server.login("rot@example.com", PASSWORD).await;
    let header = s(&after, "access_token")
        .split('.')
        .next()
        .unwrap()
        .to_owned();
    let header = String::from_utf8(base64_url_decode(&header)).unwrap();
    assert!(
        header.contains(&format!("\"kid\":\"{old_kid}\"")),
        "until the lead has passed, tokens name the key published before the rotation: {header}"
    );
    server.stop().await;
}

fn base64_url_decode(input: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::new();
    for byte in input.bytes() {
        let value = ALPHABET.iter().position(|&c| c == byte).expect("base64url") as u32;
        bits = (bits << 6) | value;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    out
}

#[tokio::test]
async fn a_login_burst_past_the_hashing_queue_gets_503_and_jwks_keeps_answering() {
    let dir = temp_dir("hashing-queue");
    // A costlier hash (64 MiB) keeps every admitted login busy while the whole burst arrives.
    let server = Arc::new(Server::start(&dir, &["--argon2-memory-kib", "65536"]).await);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // The server admits one hash per core and 4 waiting per core (QUEUED_PER_CORE in src/server.rs).
    let burst = cores * 5 + 20;
    let barrier = Arc::new(tokio::sync::Barrier::new(burst));
    let mut tasks = Vec::new();
    for i in 0..burst {
        let (server, barrier) = (server.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let email = format!("nobody-{i}@example.com");
            server
                .post("/auth/login", json!({"email": email, "password": PASSWORD}))
                .await
        }));
    }
    let jwks = server.get("/.well-known/jwks.json", None).await;
    assert_eq!(jwks.status(), StatusCode::OK, "JWKS during the burst");
    let (mut busy, mut refused) = (0, 0);
    for task in tasks {
        let response = task.await.unwrap();
        match response.status() {
            StatusCode::UNAUTHORIZED => refused += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(response.headers()["retry-after"], "1");
                let body = problem(response, StatusCode::SERVICE_UNAVAILABLE).await;
                assert_eq!(body["type"], "urn:keygate:problem:busy");
                busy += 1;
            }
            other => panic!("a login in the burst answered {other}"),
        }
    }
    assert_eq!(busy + refused, burst);
    assert!(
        busy > 0,
        "{burst} logins sent together to {cores} cores: none was shed ({refused} judged)"
    );
    assert!(refused > 0, "admitted logins are judged");
    let Ok(server) = Arc::try_unwrap(server) else {
        panic!("every task has finished")
    };
    server.stop().await;
}

/// Every URL-valued member of the metadata, with its JSON pointer (recursing into objects).
fn urls_in(document: &Value, issuer: &str, at: &str, out: &mut Vec<(String, String)>) {
    match document {
        Value::String(text) if text.starts_with(issuer) && at != "/issuer" => {
            out.push((at.to_owned(), text.clone()))
        }
        Value::Object(members) => {
            for (name, value) in members {
                urls_in(value, issuer, &format!("{at}/{name}"), out);
            }
        }
        _ => {}
    }
}

/// The discovery document and the RFC 8414 metadata are one document, and every URL it names exists
/// and answers the way the document says: a GET of the JWKS, form POSTs to the token and revocation
/// endpoints (as a public client: `client_id` in the body), keygate's own JSON endpoints as JSON.
/// Every URL is called from the document itself, and the test fails on a URL it did not call.
#[tokio::test]
async fn every_url_the_metadata_names_answers_as_advertised() {
    let dir = temp_dir("metadata");
    let server = Server::start(&dir, &[]).await;
    let response = server.get("/.well-known/openid-configuration", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    let metadata: Value = response.json().await.unwrap();
    let rfc_8414: Value = server
        .get("/.well-known/oauth-authorization-server", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(metadata, rfc_8414);
    assert_eq!(metadata["issuer"], server.base);
    let mut named = Vec::new();
    urls_in(&metadata, &server.base, "", &mut named);
    let mut called = std::collections::BTreeSet::new();
    let at = |pointer: &str| -> String {
        metadata
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("{pointer} in {metadata}"))
            .to_owned()
    };
    let client = &server.client;
    let json_post = |pointer: &'static str, body: Value, bearer: Option<String>| {
        let mut request = client.post(at(pointer)).json(&body);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    let form_post = |pointer: &'static str, form: String| {
        client
            .post(at(pointer))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
    };
    assert_eq!(metadata["grant_types_supported"], json!(["refresh_token"]));
    assert_eq!(
        metadata["token_endpoint_auth_methods_supported"],
        json!(["none"])
    );
    assert_eq!(
        metadata["revocation_endpoint_auth_methods_supported"],
        json!(["none"])
    );

    let jwks: Value = client
        .get(at("/jwks_uri"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let alg = &metadata["access_token_signing_alg_values_supported"][0];
    assert_eq!(&jwks["keys"][0]["alg"], alg);
    called.insert("/jwks_uri");

    // The OpenAPI document names this server, whose every route it lists.
    let openapi: Value = client
        .get(at("/keygate_endpoints/openapi"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(openapi["servers"][0]["url"], server.base);
    assert!(openapi["paths"]["/oauth/token"]["post"].is_object());
    called.insert("/keygate_endpoints/openapi");

    let credentials = json!({"email": "meta@example.com", "password": PASSWORD});
    let response = json_post("/keygate_endpoints/register", credentials.clone(), None)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    called.insert("/keygate_endpoints/register");
    let resend = json_post(
        "/keygate_endpoints/email_verification",
        json!({"email": "meta@example.com"}),
        None,
    )
    .await
    .unwrap();
    assert_eq!(resend.status(), StatusCode::ACCEPTED);
    called.insert("/keygate_endpoints/email_verification");
    let mail = server.take_mail("meta@example.com", "#token=kgev_").await;
    let verified = json_post(
        "/keygate_endpoints/email_verify",
        json!({"token": text_token(&mail).unwrap()}),
        None,
    )
    .await
    .unwrap();
    assert_eq!(verified.status(), StatusCode::NO_CONTENT);
    called.insert("/keygate_endpoints/email_verify");
    let login: Value = json_post("/keygate_endpoints/login", credentials.clone(), None)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    called.insert("/keygate_endpoints/login");
    let me = client
        .get(at("/keygate_endpoints/me"))
        .bearer_auth(s(&login, "access_token"))
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::OK);
    called.insert("/keygate_endpoints/me");
    let refreshed = json_post(
        "/keygate_endpoints/refresh",
        json!({"refresh_token": login["refresh_token"]}),
        None,
    )
    .await
    .unwrap();
    assert_eq!(refreshed.status(), StatusCode::OK);
    let refreshed: Value = refreshed.json().await.unwrap();
    called.insert("/keygate_endpoints/refresh");

    // The token endpoint, as the metadata says: form POST, refresh_token grant, public client.
    let client_id = "keygate";
    let grant = |token: &str| {
        format!("grant_type=refresh_token&client_id={client_id}&refresh_token={token}")
    };
    let response = form_post("/token_endpoint", grant(&s(&refreshed, "refresh_token")))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let oauth: Value = response.json().await.unwrap();
    assert_eq!(oauth["token_type"], "Bearer");
    called.insert("/token_endpoint");

    // The revocation endpoint: an access token, then a refresh token.
    let access = s(&oauth, "access_token");
    let response = form_post(
        "/revocation_endpoint",
        format!("token={access}&token_type_hint=access_token&client_id={client_id}"),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    called.insert("/revocation_endpoint");
    let me = client
        .get(at("/keygate_endpoints/me"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    problem(me, StatusCode::UNAUTHORIZED).await;
    let response = form_post(
        "/revocation_endpoint",
        format!("token={}&client_id={client_id}", s(&oauth, "refresh_token")),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let refused = form_post("/token_endpoint", grant(&s(&oauth, "refresh_token")))
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert_eq!(refused.headers()["content-type"], "application/json");
    let error: Value = refused.json().await.unwrap();
    assert_eq!(error["error"], "invalid_grant");

    // keygate's remaining JSON endpoints, each the way its name says.
    let session: Value = json_post("/keygate_endpoints/login", credentials.clone(), None)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let changed = json_post(
        "/keygate_endpoints/password",
        json!({"current_password": PASSWORD, "new_password": "a much better passphrase 2026"}),
        Some(s(&session, "access_token")),
    )
    .await
    .unwrap();
    assert_eq!(changed.status(), StatusCode::OK);
    let changed: Value = changed.json().await.unwrap();
    called.insert("/keygate_endpoints/password");
    let logout = json_post(
        "/keygate_endpoints/logout",
        json!({"refresh_token": changed["refresh_token"]}),
        None,
    )
    .await
    .unwrap();
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    called.insert("/keygate_endpoints/logout");
    let logout_all = client
        .post(at("/keygate_endpoints/logout_all"))
        .bearer_auth(s(&changed, "access_token"))
        .send()
        .await
        .unwrap();
    assert_eq!(logout_all.status(), StatusCode::NO_CONTENT);
    called.insert("/keygate_endpoints/logout_all");
    let forgot = json_post(
        "/keygate_endpoints/password_forgot",
        json!({"email": "meta@example.com"}),
        None,
    )
    .await
    .unwrap();
    assert_eq!(forgot.status(), StatusCode::ACCEPTED);
    called.insert("/keygate_endpoints/password_forgot");
    let mail = server.take_mail("meta@example.com", "#token=kgpr_").await;
    let reset = json_post(
        "/keygate_endpoints/password_reset",
        json!({
            "email": "meta@example.com",
            "code": text_code(&mail).unwrap(),
            "new_password": "a reset passphrase for the metadata check",
        }),
        None,
    )
    .await
    .unwrap();
    assert_eq!(reset.status(), StatusCode::NO_CONTENT);
    called.insert("/keygate_endpoints/password_reset");

    // The second-factor endpoints, with the RFC 6238 code an authenticator app would show.
    let reset_login = json!({"email": "meta@example.com", "password": "a reset passphrase for the metadata check"});
    let session: Value = json_post("/keygate_endpoints/login", reset_login.clone(), None)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bearer = s(&session, "access_token");
    let enrolment = json_post(
        "/keygate_endpoints/mfa_totp",
        json!({}),
        Some(bearer.clone()),
    )
    .await
    .unwrap();
    assert_eq!(enrolment.status(), StatusCode::OK);
    let enrolment: Value = enrolment.json().await.unwrap();
    called.insert("/keygate_endpoints/mfa_totp");
    let secret = keygate_testkit::fixtures::base32_decode(&s(&enrolment, "secret"));
    let code = |offset: i64| {
        let now_ms = keygate_core::Clock::now_ms(&keygate_core::SystemClock);
        let step = keygate_core::mfa::totp_step(now_ms) + offset;
        keygate_core::mfa::hotp(&secret, step as u64, 6)
    };
    let activated = json_post(
        "/keygate_endpoints/mfa_totp_activate",
        json!({"factor_id": enrolment["factor_id"], "code": code(0)}),
        Some(bearer),
    )
    .await
    .unwrap();
    assert_eq!(activated.status(), StatusCode::OK);
    let activated: Value = activated.json().await.unwrap();
    called.insert("/keygate_endpoints/mfa_totp_activate");
    let codes = json_post(
        "/keygate_endpoints/mfa_recovery_codes",
        json!({"code": code(1)}),
        Some(s(&activated, "access_token")),
    )
    .await
    .unwrap();
    assert_eq!(codes.status(), StatusCode::OK);
    let codes: Value = codes.json().await.unwrap();
    called.insert("/keygate_endpoints/mfa_recovery_codes");
    let challenge = json_post("/keygate_endpoints/login", reset_login, None)
        .await
        .unwrap();
    assert_eq!(challenge.status(), StatusCode::FORBIDDEN);
    let challenge: Value = challenge.json().await.unwrap();
    let verified = json_post(
        "/keygate_endpoints/mfa_verify",
        json!({"mfa_token": challenge["mfa_token"], "recovery_code": codes["recovery_codes"][0]}),
        None,
    )
    .await
    .unwrap();
    assert_eq!(verified.status(), StatusCode::OK);
    let verified: Value = verified.json().await.unwrap();
    called.insert("/keygate_endpoints/mfa_verify");
    let disabled = json_post(
        "/keygate_endpoints/mfa_totp_disable",
        json!({"recovery_code": codes["recovery_codes"][1]}),
        Some(s(&verified, "access_token")),
    )
    .await
    .unwrap();
    assert_eq!(disabled.status(), StatusCode::NO_CONTENT);
    called.insert("/keygate_endpoints/mfa_totp_disable");

    let named: std::collections::BTreeSet<&str> = named.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(named, called, "every URL the metadata names was called");
    server.stop().await;
}
