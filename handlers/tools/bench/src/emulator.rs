//! A local Lambda Runtime API (the `2018-06-01` interface a `provided.al2023` bootstrap talks to) on
//! loopback, one server per started process, and the timing of that process: init is the time from
//! spawning the bootstrap to its first `GET /runtime/invocation/next`; every invocation is timed from the
//! moment the event is handed to the waiting `/next` to the moment its `/response` (or `/error`) arrives.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc, oneshot};

const INIT_TIMEOUT: Duration = Duration::from_secs(30);
const INVOKE_TIMEOUT: Duration = Duration::from_secs(30);

/// What the process answered to one invocation.
#[derive(Debug)]
pub struct Reply {
    /// `false` when the runtime posted to `/error` instead of `/response`.
    pub ok: bool,
    pub body: Bytes,
    pub arrived: Instant,
}

struct Invocation {
    request_id: String,
    event: Bytes,
    function_arn: String,
    reply: oneshot::Sender<Reply>,
}

#[derive(Default)]
struct State {
    first_next: Mutex<Option<Instant>>,
    pending: Mutex<HashMap<String, oneshot::Sender<Reply>>>,
    init_error: Mutex<Option<String>>,
    changed: Notify,
}

/// How to start one process: the executable, its arguments and its complete environment.
#[derive(Debug, Clone)]
pub struct Launch {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// The working directory (the bootstrap's own, also when `program` is a wrapper around it).
    pub current_dir: Option<PathBuf>,
    pub env: Vec<(String, String)>,
    pub function_name: String,
    pub log: PathBuf,
}

/// One running execution environment.
pub struct Instance {
    child: tokio::process::Child,
    pid: u32,
    started: Instant,
    state: Arc<State>,
    queue: mpsc::UnboundedSender<Invocation>,
    server: tokio::task::JoinHandle<()>,
    function_arn: String,
}

impl Instance {
    /// Starts the Runtime API server, then the process with `AWS_LAMBDA_RUNTIME_API` pointing at it.
    pub async fn start(launch: &Launch) -> Result<Self, String> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("bind: {e}"))?;
        let addr: SocketAddr = listener.local_addr().map_err(|e| e.to_string())?;
        let state = Arc::new(State::default());
        let (queue, receiver) = mpsc::unbounded_channel::<Invocation>();
        let receiver = Arc::new(tokio::sync::Mutex::new(receiver));
        let server = tokio::spawn(serve(listener, state.clone(), receiver));

        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&launch.log)
            .map_err(|e| format!("{}: {e}", launch.log.display()))?;
        let log_err = log.try_clone().map_err(|e| e.to_string())?;
        let mut command = tokio::process::Command::new(&launch.program);
        command
            .args(&launch.args)
            .env_clear()
            .envs(launch.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .kill_on_drop(true);
        if let Some(dir) = &launch.current_dir {
            command.current_dir(dir);
        }
        let started = Instant::now();
        let child = command
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", launch.program.display()))?;
        let pid = child.id().ok_or("the process exited at once")?;
        let function_arn = format!(
            "arn:aws:lambda:eu-west-1:123456789012:function:{}",
            launch.function_name
        );
        Ok(Self {
            child,
            pid,
            started,
            state,
            queue,
            server,
            function_arn,
        })
    }

    /// Waits for the first `GET /next` and returns the init duration.
    pub async fn wait_init(&mut self) -> Result<Duration, String> {
        let deadline = tokio::time::Instant::now() + INIT_TIMEOUT;
        loop {
            let notified = self.state.changed.notified();
            if let Some(at) = *self.state.first_next.lock().unwrap() {
                return Ok(at - self.started);
            }
            if let Some(error) = self.state.init_error.lock().unwrap().clone() {
                return Err(format!("init error: {error}"));
            }
            tokio::select! {
                _ = notified => {}
                status = self.child.wait() => return Err(format!("exited during init: {status:?}")),
                _ = tokio::time::sleep_until(deadline) => return Err("no GET /next within 30 s".into()),
            }
        }
    }

    /// Sends one event; returns the reply and the round trip (event handed over -> reply received).
    pub async fn invoke(&mut self, event: &serde_json::Value) -> Result<(Reply, Duration), String> {
        let (reply, answer) = oneshot::channel();
        let request_id = uuid::Uuid::new_v4().to_string();
        let sent = Instant::now();
        self.queue
            .send(Invocation {
                request_id,
                event: Bytes::from(event.to_string()),
                function_arn: self.function_arn.clone(),
                reply,
            })
            .map_err(|_| "runtime API closed")?;
        tokio::select! {
            reply = answer => {
                let reply = reply.map_err(|_| "invocation dropped")?;
                let took = reply.arrived.saturating_duration_since(sent);
                Ok((reply, took))
            }
            status = self.child.wait() => Err(format!("exited during an invocation: {status:?}")),
            _ = tokio::time::sleep(INVOKE_TIMEOUT) => Err("no response within 30 s".into()),
        }
    }

    /// When the process was spawned.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Peak resident set size so far (`VmHWM`), in bytes.
    pub fn peak_rss(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    }

    /// Ends the process (as Lambda ends an environment) and its server.
    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
        self.server.abort();
    }
}

async fn serve(
    listener: TcpListener,
    state: Arc<State>,
    receiver: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Invocation>>>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let receiver = receiver.clone();
        tokio::spawn(async move {
            let service =
                service_fn(move |request| route(request, state.clone(), receiver.clone()));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn respond(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("application/json"),
    );
    response
}

async fn route(
    request: Request<Incoming>,
    state: Arc<State>,
    receiver: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Invocation>>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    let Some(rest) = path.strip_prefix("/2018-06-01/runtime/") else {
        return Ok(respond(
            StatusCode::NOT_FOUND,
            r#"{"errorType":"NotFound"}"#,
        ));
    };
    if method == http::Method::GET && rest == "invocation/next" {
        {
            let mut first = state.first_next.lock().unwrap();
            if first.is_none() {
                *first = Some(Instant::now());
                state.changed.notify_waiters();
            }
        }
        let invocation = receiver.lock().await.recv().await;
        let Some(invocation) = invocation else {
            // The benchmark is done with this process; it is about to be killed.
            std::future::pending::<()>().await;
            unreachable!()
        };
        let deadline = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis()
            + 30_000;
        let mut response = respond(StatusCode::OK, invocation.event);
        let headers = response.headers_mut();
        let value = |s: &str| http::HeaderValue::from_str(s).expect("header value");
        headers.insert(
            "lambda-runtime-aws-request-id",
            value(&invocation.request_id),
        );
        headers.insert("lambda-runtime-deadline-ms", value(&deadline.to_string()));
        headers.insert(
            "lambda-runtime-invoked-function-arn",
            value(&invocation.function_arn),
        );
        headers.insert(
            "lambda-runtime-trace-id",
            value("Root=1-00000000-000000000000000000000000;Parent=0000000000000000;Sampled=0"),
        );
        state
            .pending
            .lock()
            .unwrap()
            .insert(invocation.request_id, invocation.reply);
        return Ok(response);
    }
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let arrived = Instant::now();
    if method == http::Method::POST && rest == "init/error" {
        *state.init_error.lock().unwrap() = Some(String::from_utf8_lossy(&body).into_owned());
        state.changed.notify_waiters();
        return Ok(respond(StatusCode::ACCEPTED, r#"{"status":"OK"}"#));
    }
    if method == http::Method::POST
        && let Some(id_and_kind) = rest.strip_prefix("invocation/")
        && let Some((id, kind)) = id_and_kind.split_once('/')
        && (kind == "response" || kind == "error")
    {
        let sender = state.pending.lock().unwrap().remove(id);
        return Ok(match sender {
            Some(sender) => {
                let _ = sender.send(Reply {
                    ok: kind == "response",
                    body,
                    arrived,
                });
                respond(StatusCode::ACCEPTED, r#"{"status":"OK"}"#)
            }
            None => respond(
                StatusCode::BAD_REQUEST,
                r#"{"errorType":"InvalidRequestID"}"#,
            ),
        });
    }
    Ok(respond(
        StatusCode::NOT_FOUND,
        r#"{"errorType":"NotFound"}"#,
    ))
}

/// The environment Lambda gives a function (provided.al2023 or nodejs20.x), with dummy credentials.
pub fn lambda_env(
    function_name: &str,
    runtime: &str,
    task_root: &Path,
    region: &str,
) -> Vec<(String, String)> {
    let stream = format!("2026/11/28/[$LATEST]{}", uuid::Uuid::new_v4().simple());
    [
        ("PATH", "/usr/local/bin:/usr/bin:/bin:/opt/bin".to_owned()),
        ("LANG", "en_US.UTF-8".to_owned()),
        ("TZ", ":UTC".to_owned()),
        ("LAMBDA_TASK_ROOT", task_root.display().to_string()),
        ("LAMBDA_RUNTIME_DIR", task_root.display().to_string()),
        (
            "_HANDLER",
            if runtime.starts_with("nodejs") {
                "index.handler"
            } else {
                "bootstrap"
            }
            .to_owned(),
        ),
        ("AWS_EXECUTION_ENV", format!("AWS_Lambda_{runtime}")),
        ("AWS_LAMBDA_FUNCTION_NAME", function_name.to_owned()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256".to_owned()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_owned()),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{function_name}"),
        ),
        ("AWS_LAMBDA_LOG_STREAM_NAME", stream),
        ("AWS_REGION", region.to_owned()),
        ("AWS_DEFAULT_REGION", region.to_owned()),
        ("AWS_ACCESS_KEY_ID", "ASIAKEYGATEBENCH0000".to_owned()),
        (
            "AWS_SECRET_ACCESS_KEY",
            "keygate-bench-dummy-secret-access-key-00".to_owned(),
        ),
        (
            "AWS_SESSION_TOKEN",
            "keygate-bench-dummy-session-token".to_owned(),
        ),
        ("AWS_XRAY_CONTEXT_MISSING", "LOG_ERROR".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}
