//! A tiny fake keygate for the smoke tool's tests: the real routes and shapes, real ES256 tokens from
//! keygate-core's key and token code, refresh rotation with reuse detection, and a switch per fault a
//! broken deployment could have. HTTP/1.1 by hand on a loopback socket (one request per connection).

#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use keygate_core::SigningAlgorithm;
use keygate_core::config::AuthConfig;
use keygate_core::keys::{KeySet, KeySetDocument, generate_key};
use keygate_core::tokens;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the fake gets wrong; all false is a healthy deployment.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// A replayed (already used) refresh token is rotated again instead of refused.
    pub replay_accepted: bool,
    /// A replay is refused but the family stays alive.
    pub no_family_revocation: bool,
    /// The JWKS publishes a different key under the signing key's kid.
    pub foreign_jwks: bool,
    /// The JWKS also carries the private scalar `d`.
    pub private_jwks: bool,
    /// Tokens carry `aud: someone-else`.
    pub wrong_audience: bool,
    /// Logout answers 204 but revokes nothing.
    pub logout_ignored: bool,
    /// Logout-all answers 204 but sets no watermark.
    pub logout_all_ignored: bool,
    /// Refresh hands back the presented refresh token.
    pub no_rotation: bool,
    /// /auth/me names someone else.
    pub me_other_user: bool,
    /// Register answers 400 with a password-policy problem.
    pub register_refuses: bool,
    /// Register answers 200 instead of 201.
    pub register_200: bool,
    /// The discovery document has no jwks_uri.
    pub discovery_without_jwks_uri: bool,
    /// Login sleeps this long before answering.
    pub slow_login: Option<Duration>,
}

/// What the fake saw, so tests can check the output never shows it and that cleanup happened.
#[derive(Debug, Default)]
pub struct Seen {
    pub passwords: Vec<String>,
    pub refresh_tokens: Vec<String>,
    pub access_tokens: Vec<String>,
    pub requests: Vec<String>,
}

impl Seen {
    pub fn secrets(&self) -> Vec<String> {
        self.passwords
            .iter()
            .chain(&self.refresh_tokens)
            .chain(&self.access_tokens)
            .cloned()
            .collect()
    }
}

struct RefreshRecord {
    family: u64,
    email: String,
    used: bool,
}

struct UserRecord {
    user_id: String,
    password: String,
    created_at: i64,
}

struct State {
    base_url: String,
    faults: Faults,
    keys: KeySet,
    config: AuthConfig,
    jwks: Value,
    users: HashMap<String, UserRecord>,
    refresh: HashMap<String, RefreshRecord>,
    revoked_families: HashSet<u64>,
    watermarks: HashMap<String, i64>,
    next_family: u64,
    next_user: u64,
    seen: Seen,
}

pub struct FakeServer {
    pub base_url: String,
    state: Arc<Mutex<State>>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    keygate_smoke::secrets::random_bytes(&mut bytes).unwrap();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

struct Response {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
}

fn json_response(status: u16, body: Value) -> Response {
    Response {
        status,
        content_type: "application/json",
        body: body.to_string().into_bytes(),
    }
}

fn problem(status: u16, title: &str, detail: &str) -> Response {
    let body = json!({"type": "about:blank", "title": title, "status": status, "detail": detail});
    Response {
        status,
        content_type: "application/problem+json",
        body: body.to_string().into_bytes(),
    }
}

fn unauthorized(detail: &str) -> Response {
    problem(401, "Unauthorized", detail)
}

fn no_content() -> Response {
    Response {
        status: 204,
        content_type: "",
        body: Vec::new(),
    }
}

impl FakeServer {
    pub async fn start(faults: Faults) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let signing = generate_key(SigningAlgorithm::Es256, 0).unwrap();
        let keys = KeySet::from_documents(
            &KeySetDocument {
                keys: vec![signing.clone()],
            },
            None,
        )
        .unwrap();
        let mut jwks = keys.jwks();
        if faults.foreign_jwks {
            let mut other = generate_key(SigningAlgorithm::Es256, 0).unwrap();
            other.kid = signing.kid.clone();
            jwks = KeySet::from_documents(&KeySetDocument { keys: vec![other] }, None)
                .unwrap()
                .jwks();
        }
        if faults.private_jwks {
            jwks["keys"][0]["d"] = json!("c2VjcmV0");
        }
        let mut config = AuthConfig::with_issuer(&base_url);
        if faults.wrong_audience {
            config.audience = "someone-else".into();
        }
        let state = Arc::new(Mutex::new(State {
            base_url: base_url.clone(),
            faults,
            keys,
            config,
            jwks,
            users: HashMap::new(),
            refresh: HashMap::new(),
            revoked_families: HashSet::new(),
            watermarks: HashMap::new(),
            next_family: 1,
            next_user: 1,
            seen: Seen::default(),
        }));
        let shared = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let state = shared.clone();
                tokio::spawn(async move {
                    let _ = serve(stream, state).await;
                });
            }
        });
        FakeServer { base_url, state }
    }

    pub fn with_seen<T>(&self, f: impl FnOnce(&Seen) -> T) -> T {
        f(&self.state.lock().unwrap().seen)
    }

    /// Whether any refresh token issued by the fake could still be rotated.
    pub fn live_refresh_tokens(&self) -> usize {
        let state = self.state.lock().unwrap();
        state
            .refresh
            .values()
            .filter(|r| !r.used && !state.revoked_families.contains(&r.family))
            .count()
    }

    /// Whether every user's access tokens were revoked by a logout-all.
    pub fn all_users_logged_out(&self) -> bool {
        let state = self.state.lock().unwrap();
        state
            .users
            .values()
            .all(|u| state.watermarks.contains_key(&u.user_id))
    }
}

async fn serve(mut stream: TcpStream, state: Arc<Mutex<State>>) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let header_end = loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or("").split(' ');
    let method = request_line.next().unwrap_or("").to_owned();
    let path = request_line.next().unwrap_or("").to_owned();
    let mut content_length = 0usize;
    let mut bearer = None;
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
            if name == "content-length" {
                content_length = value.parse().unwrap_or(0);
            } else if name == "authorization" {
                bearer = value.strip_prefix("Bearer ").map(str::to_owned);
            }
        }
    }
    while buf.len() < header_end + content_length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body: Value = serde_json::from_slice(&buf[header_end..]).unwrap_or(Value::Null);

    let slow = {
        let state = state.lock().unwrap();
        if path == "/auth/login" {
            state.faults.slow_login
        } else {
            None
        }
    };
    if let Some(delay) = slow {
        tokio::time::sleep(delay).await;
    }
    let response = route(
        &mut state.lock().unwrap(),
        &method,
        &path,
        &body,
        bearer.as_deref(),
    );
    let reason = match response.status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        _ => "Other",
    };
    let mut head = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Length: {}\r\nConnection: close\r\n",
        response.status,
        response.body.len()
    );
    if !response.content_type.is_empty() {
        head.push_str(&format!("Content-Type: {}\r\n", response.content_type));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(&response.body).await?;
    stream.shutdown().await
}

fn issue_tokens(state: &mut State, email: &str, family: u64) -> Response {
    let user_id = state.users[email].user_id.clone();
    let now = now_ms();
    let access = tokens::issue(
        &state.keys,
        &state.config,
        &user_id,
        now / 1000,
        tokens::SessionFlags::VERIFIED,
        now,
    )
    .unwrap();
    let refresh = format!("kgrt_{}", random_hex(48));
    state.refresh.insert(
        refresh.clone(),
        RefreshRecord {
            family,
            email: email.to_owned(),
            used: false,
        },
    );
    state.seen.refresh_tokens.push(refresh.clone());
    state.seen.access_tokens.push(access.token.clone());
    json_response(
        200,
        json!({"access_token": access.token, "token_type": "Bearer", "expires_in": access.expires_in, "refresh_token": refresh}),
    )
}

/// The user behind a bearer token, with the logout-all watermark applied.
fn authenticate(state: &State, bearer: Option<&str>) -> Option<String> {
    let claims = tokens::verify(&state.keys, &state.config, bearer?, now_ms()).ok()?;
    let issued = claims.issued_at_ms()?;
    if state
        .watermarks
        .get(&claims.sub)
        .is_some_and(|&w| issued <= w)
    {
        return None;
    }
    state
        .users
        .iter()
        .find(|(_, u)| u.user_id == claims.sub)
        .map(|(email, _)| email.clone())
}

fn route(
    state: &mut State,
    method: &str,
    path: &str,
    body: &Value,
    bearer: Option<&str>,
) -> Response {
    state.seen.requests.push(format!("{method} {path}"));
    let field = |name: &str| {
        body.get(name)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    match (method, path) {
        ("GET", "/.well-known/openid-configuration") => {
            let mut doc = json!({"issuer": state.base_url, "jwks_uri": format!("{}/.well-known/jwks.json", state.base_url)});
            if state.faults.discovery_without_jwks_uri {
                doc.as_object_mut().unwrap().remove("jwks_uri");
            }
            json_response(200, doc)
        }
        ("GET", "/.well-known/jwks.json") => json_response(200, state.jwks.clone()),
        ("POST", "/auth/register") => {
            let (email, password) = (field("email"), field("password"));
            state.seen.passwords.push(password.clone());
            if state.faults.register_refuses {
                return problem(
                    400,
                    "Password policy violation",
                    "password is one of the most common passwords",
                );
            }
            let user_id = format!("00000000-0000-4000-8000-{:012}", state.next_user);
            state.next_user += 1;
            state.users.insert(
                email,
                UserRecord {
                    user_id: user_id.clone(),
                    password,
                    created_at: now_ms() / 1000,
                },
            );
            json_response(
                if state.faults.register_200 { 200 } else { 201 },
                json!({"user_id": user_id}),
            )
        }
        ("POST", "/auth/login") => {
            let (email, password) = (field("email"), field("password"));
            if state
                .users
                .get(&email)
                .is_none_or(|u| u.password != password)
            {
                return unauthorized("the email or password is wrong");
            }
            let family = state.next_family;
            state.next_family += 1;
            issue_tokens(state, &email, family)
        }
        ("POST", "/auth/refresh") => {
            let presented = field("refresh_token");
            let Some(record) = state.refresh.get(&presented) else {
                return unauthorized("unknown refresh token");
            };
            let (family, email, used) = (record.family, record.email.clone(), record.used);
            if state.revoked_families.contains(&family) {
                return unauthorized("revoked");
            }
            if used && !state.faults.replay_accepted {
                if !state.faults.no_family_revocation {
                    state.revoked_families.insert(family);
                }
                return unauthorized("reused");
            }
            state.refresh.get_mut(&presented).unwrap().used = true;
            let mut response = issue_tokens(state, &email, family);
            if state.faults.no_rotation {
                let mut doc: Value = serde_json::from_slice(&response.body).unwrap();
                state.refresh.get_mut(&presented).unwrap().used = false;
                doc["refresh_token"] = json!(presented);
                response.body = doc.to_string().into_bytes();
            }
            response
        }
        ("POST", "/auth/logout") => {
            let presented = field("refresh_token");
            if let Some(record) = state.refresh.get(&presented)
                && !state.faults.logout_ignored
            {
                state.revoked_families.insert(record.family);
            }
            no_content()
        }
        ("POST", "/auth/logout-all") => {
            let Some(email) = authenticate(state, bearer) else {
                return unauthorized("bad access token");
            };
            if !state.faults.logout_all_ignored {
                let user_id = state.users[&email].user_id.clone();
                state.watermarks.insert(user_id, now_ms());
                let families: Vec<u64> = state
                    .refresh
                    .values()
                    .filter(|r| r.email == email)
                    .map(|r| r.family)
                    .collect();
                state.revoked_families.extend(families);
            }
            no_content()
        }
        ("GET", "/auth/me") => {
            let Some(email) = authenticate(state, bearer) else {
                return unauthorized("bad access token");
            };
            let user = &state.users[&email];
            let user_id = if state.faults.me_other_user {
                "someone-else".to_owned()
            } else {
                user.user_id.clone()
            };
            json_response(
                200,
                json!({"user_id": user_id, "email": email, "created_at": user.created_at, "roles": [], "auth_time": user.created_at}),
            )
        }
        _ => problem(404, "Not Found", "no such route"),
    }
}

/// Runs the smoke binary with `args` and returns its output.
pub async fn smoke(args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_keygate-smoke"))
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .unwrap()
}

pub fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The one FAIL line on stderr.
pub fn fail_line(output: &Output) -> String {
    let (_, stderr) = text(output);
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("FAIL ")).collect();
    assert_eq!(
        lines.len(),
        1,
        "expected exactly one FAIL line, stderr:\n{stderr}"
    );
    lines[0].to_owned()
}

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../..")
        .canonicalize()
        .unwrap()
}
