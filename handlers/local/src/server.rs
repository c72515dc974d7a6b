//! The HTTP server: axum hands every request, whatever its path, to keygate-http's `handle`.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::keyfile::{FileKeySource, FileVersionStore};
use axum::Router;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt as _;
use keygate_core::keys::{KeySource, KeyTimeline};
use keygate_core::store::AuthStore;
use keygate_core::{AuthConfig, AuthService, Clock, SystemClock};
use keygate_http::{Endpoint, MAX_BODY_BYTES, Problem};
use keygate_store_sqlite::SqliteStore;
use tokio::sync::Semaphore;

use crate::cli::{Options, StoreKind};
use crate::keys;
use crate::mailer::{self, LocalMailer};

pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

type LocalKeys = FileKeySource<SystemClock>;

pub async fn run(options: Options) -> Result<(), String> {
    std::fs::create_dir_all(&options.data_dir)
        .map_err(|e| format!("{}: {e}", options.data_dir.display()))?;
    let listener = tokio::net::TcpListener::bind(options.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", options.addr))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let config = options.auth_config(addr).map_err(|e| e.to_string())?;
    let ttl = config.key_cache_ttl();
    let timeline = KeyTimeline::new(&config);
    keys::ensure_key_set(
        &options.data_dir,
        config.signing_alg,
        timeline,
        SystemClock.now_ms(),
    )
    .await?;
    // The same cached, versioned key source as on Lambda: rotations by `keygate-local rotate-keys`
    // reach a running server within the cache TTL, well before their new key signs.
    let keys = FileKeySource::new(FileVersionStore::new(&options.data_dir), SystemClock, ttl);
    keys.key_set().await.map_err(|e| e.to_string())?;
    let secrets = keys::ServerSecrets::ensure(&options.data_dir)?;
    let mailer = options.mailer().map_err(|e| e.to_string())?;
    match options.store {
        StoreKind::Sqlite => {
            let store = SqliteStore::open_in_dir(&options.data_dir).map_err(|e| {
                format!(
                    "cannot open the store in {}: {e}",
                    options.data_dir.display()
                )
            })?;
            // Reads already ignore expired tokens; the sweep only reclaims space.
            let _sweeper = store.spawn_sweeper(SystemClock, std::time::Duration::from_secs(600));
            serve(listener, addr, config, store, keys, secrets, mailer).await
        }
        StoreKind::Dynamodb => {
            let table = options.table_name().map_err(|e| e.to_string())?;
            let sdk = keygate_aws::sdk::load().await;
            let store = keygate_aws::DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), table);
            store.warm_up().await;
            serve(listener, addr, config, store, keys, secrets, mailer).await
        }
    }
}

/// `keygate-local rotate-keys`: one whole rotation of the data folder's keys.
pub async fn rotate(options: Options) -> Result<(), String> {
    std::fs::create_dir_all(&options.data_dir)
        .map_err(|e| format!("{}: {e}", options.data_dir.display()))?;
    let config = options
        .auth_config(options.addr)
        .map_err(|e| e.to_string())?;
    // The server's settings (its key-cache TTL included), so the lead matches the cache of the
    // server that serves these keys.
    let now_ms = SystemClock.now_ms();
    let now_s = now_ms.div_euclid(1000);
    let current = keys::rotate_keys(
        &options.data_dir,
        config.signing_alg,
        KeyTimeline::new(&config),
        now_ms,
    )
    .await?;
    let new = &current.keys[0];
    match (new.not_before, current.signing_key(now_ms)) {
        (Some(not_before), Some(signer)) if not_before > now_s => println!(
            "rotated: key {} ({}) is published now and signs from Unix time {not_before} (in {} s); \
             until then key {} signs; the previous keys keep verifying",
            new.kid,
            new.alg,
            not_before - now_s,
            signer.kid
        ),
        _ => println!("rotated: key {} ({}) signs now", new.kid, new.alg),
    }
    Ok(())
}

async fn serve<S: AuthStore>(
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
    config: AuthConfig,
    store: S,
    keys: LocalKeys,
    secrets: keys::ServerSecrets,
    mailer: LocalMailer,
) -> Result<(), String> {
    let service = Arc::new(
        AuthService::new(config, store, keys, SystemClock, secrets.audit_key)
            .map_err(|e| e.to_string())?
            .with_factor_keys(secrets.factor_keys),
    );
    let mail_to = mailer.describe();
    let app_url = service.config().app_url.clone();
    let _outbox_worker = mailer::spawn_outbox_worker(service.clone(), mailer);
    let app = Router::new()
        .fallback(answer::<S, LocalKeys>)
        .with_state(Arc::new(Local {
            service,
            hashing: HashingGate::for_this_machine(),
        }));
    println!("listening on http://{addr}");
    println!(
        "mail: {mail_to}; their links open {app_url}{} and {app_url}{}",
        keygate_core::mail::VERIFY_PATH,
        keygate_core::mail::RESET_PATH
    );
    println!(
        "try: curl -s -X POST http://{addr}/auth/register -H 'content-type: application/json' -d '{{\"email\":\"ada@example.com\",\"password\":\"correct horse battery staple\"}}'"
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| format!("server error: {e}"))?;
    tracing::info!("shut down cleanly");
    Ok(())
}

struct Local<S, K> {
    service: Arc<AuthService<S, K, SystemClock>>,
    hashing: HashingGate,
}

/// Password hashing (argon2id: about 20 ms of a core and 19 MiB per request at the default cost) runs
/// on tokio's blocking threads, at most one per core, so the async workers keep answering JWKS,
/// refresh and `/auth/me` during a login burst. Requests beyond that wait in a bounded queue; past
/// it they get 503 with `Retry-After` at once instead of piling up memory and latency.
pub struct HashingGate {
    /// Requests admitted: running plus waiting.
    admitted: Semaphore,
    /// Requests hashing now.
    running: Semaphore,
}

/// Waiting requests allowed per core: a few hashes' worth (tens of milliseconds) of queue.
pub const QUEUED_PER_CORE: usize = 4;

impl HashingGate {
    pub fn new(cores: usize) -> Self {
        let cores = cores.max(1);
        Self {
            admitted: Semaphore::new(cores * (1 + QUEUED_PER_CORE)),
            running: Semaphore::new(cores),
        }
    }

    fn for_this_machine() -> Self {
        Self::new(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }
}

async fn answer<S: AuthStore, K: KeySource>(
    State(local): State<Arc<Local<S, K>>>,
    request: Request,
) -> Response {
    let request_id = keygate_core::crypto::random_id();
    let hashes = Endpoint::ALL.iter().any(|e| {
        e.hashes_password() && e.method() == request.method() && e.path() == request.uri().path()
    });
    let response = if hashes {
        answer_hashing(local, request, request_id).await
    } else {
        let request = read_request(request).await;
        keygate_http::handle(&local.service, &Endpoint::ALL, request, &request_id).await
    };
    response.map(axum::body::Body::from)
}

async fn answer_hashing<S: AuthStore, K: KeySource>(
    local: Arc<Local<S, K>>,
    request: Request,
    request_id: String,
) -> http::Response<Bytes> {
    let Ok(_admitted) = local.hashing.admitted.try_acquire() else {
        return keygate_http::refuse(
            &request,
            &Problem::Busy,
            &request_id,
            local.service.audit_key(),
        );
    };
    let Ok(_running) = local.hashing.running.acquire().await else {
        return keygate_http::refuse(
            &request,
            &Problem::Busy,
            &request_id,
            local.service.audit_key(),
        );
    };
    // The body is read here, on the connection's task, which is what reads the socket.
    let request = read_request(request).await;
    let runtime = tokio::runtime::Handle::current();
    let (worker, id) = (local.clone(), request_id.clone());
    let handled = tokio::task::spawn_blocking(move || {
        runtime.block_on(keygate_http::handle(
            &worker.service,
            &Endpoint::ALL,
            request,
            &request_id,
        ))
    })
    .await;
    handled.unwrap_or_else(|_| {
        // Only a bug (nothing panics on input) gets here: answer 500 problem+json, logged once.
        let ctx = local.service.context(id.clone(), id);
        let error = keygate_core::AuthError::Internal("the request handler panicked".into());
        keygate_http::problem(&Problem::Auth(error), &ctx)
    })
}

async fn read_request(request: Request) -> http::Request<Bytes> {
    let (parts, body) = request.into_parts();
    http::Request::from_parts(parts, read_capped(body).await)
}

/// Reads at most one byte more than the limit, so keygate-http can tell an oversized body (413)
/// without the server buffering whatever a client sends.
async fn read_capped(mut body: axum::body::Body) -> Bytes {
    let mut buffer = BytesMut::new();
    while buffer.len() <= MAX_BODY_BYTES {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    let room = MAX_BODY_BYTES + 1 - buffer.len();
                    buffer.extend_from_slice(&data[..data.len().min(room)]);
                }
            }
            // A broken body is treated as what arrived; the JSON parser will refuse it.
            Some(Err(_)) | None => break,
        }
    }
    buffer.freeze()
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
