//! What every function's `main` runs.
//!
//! Init (once per execution environment): JSON logs; configuration read and validated (one error that
//! names the bad variable); the EMF recorder; one AWS SDK configuration and one client per service;
//! the signing keys fetched and, for a function [`WithTable`], the DynamoDB connection opened and the
//! server key read, concurrently. A configuration error is
//! reported to the Lambda Runtime API as an init error (`/runtime/init/error`) and the process exits
//! non-zero: no panic, and Lambda shows the message. Signing keys that cannot be loaded at init are not
//! fatal: the function starts, answers 503 problem+json while it has none, and tries again per request.
//!
//! Then the runtime loop: each API Gateway event (REST v1 or HTTP v2) becomes an
//! `http::Request<Bytes>` for `keygate_http::handle`, with the route path stripped of any stage prefix,
//! and the answer goes back as the proxy response; the EMF document is flushed after each invocation.

use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use keygate_aws::outbox_stream::{StreamEvent, deliver_batch};
use keygate_aws::rotation::{RotationEvent, rotate_step};
use keygate_aws::secrets::{self, InitSecret, SecretsManagerKeySource};
use keygate_aws::ses::{SesMailer, SesSettings};
use keygate_aws::{DynamoStore, sdk, settings};
use keygate_core::audit::AuditKey;
use keygate_core::keys::{KeyError, KeySet, KeyTimeline};
use keygate_core::mail::MailSealer;
use keygate_core::store::{
    AccessTokenDenyList, AttemptCounter, AttemptScope, AuthStore, CodeConsumption, CodePurpose,
    EmailCode, EmailCodeStore, LoginCompletion, MailOutcome, MailRequest, MfaChallenge, MfaStore,
    MfaSwap, OutboxMail, OutboxStore, PasswordChange, PasswordReset, RefreshRecord,
    RefreshTokenStore, Reservation, RotateOutcome, Rotation, StoreError, StoreResult, User,
    UserStore,
};
use keygate_core::{
    AuthConfig, AuthService, Clock as _, ConfigError, SigningAlgorithm, SystemClock,
};
use keygate_http::{Endpoint, KeyAccess};
use lambda_http::RequestExt as _;
use lambda_http::request::RequestContext;

use crate::functions::{
    ApiFunction, FUNCTION, FUNCTIONS, Function, TableUse, WithTable, WithoutTable,
};
use crate::telemetry;

/// Everything an API function reads from its environment; `T` adds what its table use needs.
#[derive(Debug)]
pub struct HttpSettings<T: Storage> {
    pub auth: AuthConfig,
    /// The table's settings for [`WithTable`], nothing for [`WithoutTable`].
    pub table: T::Settings,
    /// Which keys the function's endpoints need ([`KeyAccess::of`]).
    pub key_access: KeyAccess,
    /// The signing secret (`KEYGATE_KEYS_SECRET_ID`) for [`KeyAccess::Private`], the public key-set
    /// secret (`KEYGATE_PUBLIC_KEYS_SECRET_ID`) for [`KeyAccess::Public`], none for [`KeyAccess::None`]:
    /// a function is never told the name of a secret it has no grant to read.
    pub keys_secret_id: Option<String>,
    /// The TOTP data-key ring's secret (`KEYGATE_FACTOR_KEYS_SECRET_ID`), for a function whose
    /// endpoints seal or open TOTP secrets only.
    pub factor_keys_secret_id: Option<String>,
    pub metrics_namespace: String,
}

impl<T: Storage> HttpSettings<T> {
    pub fn from_lookup<F: Fn(&str) -> Option<String>>(
        lookup: F,
        key_access: KeyAccess,
        uses_factor_keys: bool,
    ) -> Result<Self, ConfigError> {
        let alg = keygate_core::config::read_setting(
            &lookup,
            &keygate_core::config::SIGNING_ALG,
            |raw| raw.parse::<SigningAlgorithm>(),
        )?;
        let key_access = key_access.under(alg);
        Ok(Self {
            table: T::read_settings(&lookup)?,
            key_access,
            keys_secret_id: match key_access {
                KeyAccess::Private => Some(settings::read_keys_secret_id(&lookup)?),
                KeyAccess::Public => Some(settings::read_public_keys_secret_id(&lookup)?),
                KeyAccess::None => None,
            },
            factor_keys_secret_id: if uses_factor_keys {
                Some(settings::read_factor_keys_secret_id(&lookup)?)
            } else {
                None
            },
            metrics_namespace: settings::read_metrics_namespace(&lookup)?,
            auth: AuthConfig::from_lookup(&lookup)?,
        })
    }
}

/// What a function with table access reads besides the common settings.
#[derive(Debug, Clone)]
pub struct TableSettings {
    pub table_name: String,
    /// Only functions with table access emit audit events, so only they read the server key.
    pub server_key_secret_id: String,
}

/// How a function of one table use ([`TableUse`]) reads its settings and opens its store and audit
/// key at init, so [`run_http`] is one entry point for both kinds and never re-checks which it is.
pub trait Storage: Sized {
    type Settings: std::fmt::Debug;
    type Store: AuthStore + 'static;

    fn read_settings<F: Fn(&str) -> Option<String>>(
        lookup: &F,
    ) -> Result<Self::Settings, ConfigError>;

    /// The server key's secret: read at init, with the function's other secrets, by the functions
    /// that emit audit events (those with table access); `None` for the others.
    fn server_key_secret_id(settings: &Self::Settings) -> Option<&str>;

    /// The store, its connection opened.
    fn open(
        settings: Self::Settings,
        sdk_config: &aws_config::SdkConfig,
    ) -> impl Future<Output = Self::Store>;
}

impl Storage for WithTable {
    type Settings = TableSettings;
    type Store = DynamoStore;

    fn read_settings<F: Fn(&str) -> Option<String>>(
        lookup: &F,
    ) -> Result<TableSettings, ConfigError> {
        Ok(TableSettings {
            table_name: settings::read_table_name(lookup)?,
            server_key_secret_id: settings::read_server_key_secret_id(lookup)?,
        })
    }

    fn server_key_secret_id(settings: &TableSettings) -> Option<&str> {
        Some(&settings.server_key_secret_id)
    }

    async fn open(settings: TableSettings, sdk_config: &aws_config::SdkConfig) -> DynamoStore {
        let store = DynamoStore::new(
            aws_sdk_dynamodb::Client::new(sdk_config),
            settings.table_name,
        );
        store.warm_up().await;
        store
    }
}

impl Storage for WithoutTable {
    type Settings = ();
    type Store = NoTable;

    fn read_settings<F: Fn(&str) -> Option<String>>(_: &F) -> Result<(), ConfigError> {
        Ok(())
    }

    /// It publishes the JWKS from the public key set, which holds the pending key during a rotation
    /// (rotate-keys writes it there at createSecret). It emits no audit events (JWKS and documents
    /// only), so it is not granted the server key; its service hashes with a throwaway key instead.
    fn server_key_secret_id((): &()) -> Option<&str> {
        None
    }

    async fn open((): (), _: &aws_config::SdkConfig) -> NoTable {
        NoTable
    }
}

/// The store of a function without table access (well-known): it serves only the key endpoints, which
/// never touch storage, so every call is refused rather than reaching a table it has no grant for.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoTable;

fn no_table<T>() -> StoreResult<T> {
    Err(StoreError::Unavailable(
        "this function has no table access".into(),
    ))
}

impl UserStore for NoTable {
    async fn create_user(&self, _: &User) -> StoreResult<bool> {
        no_table()
    }
    async fn get_user(&self, _: &str) -> StoreResult<Option<User>> {
        no_table()
    }
    async fn get_user_by_id(&self, _: &str) -> StoreResult<Option<User>> {
        no_table()
    }
    async fn reserve_login_attempt(
        &self,
        _: &str,
        _: Option<&str>,
        _: &keygate_core::throttle::LoginThrottle,
        _: i64,
    ) -> StoreResult<Reservation> {
        no_table()
    }
    async fn settle_attempt(
        &self,
        _: &str,
        _: &AttemptScope,
        _: &AttemptCounter,
        _: i64,
    ) -> StoreResult<bool> {
        no_table()
    }
    async fn complete_login(&self, _: &LoginCompletion) -> StoreResult<bool> {
        no_table()
    }
    async fn change_password(&self, _: &PasswordChange) -> StoreResult<bool> {
        no_table()
    }
    async fn set_revoked_before(&self, _: &str, _: i64) -> StoreResult<()> {
        no_table()
    }
}

impl RefreshTokenStore for NoTable {
    async fn put_refresh_token(&self, _: &RefreshRecord) -> StoreResult<()> {
        no_table()
    }
    async fn rotate_refresh_token(&self, _: &Rotation) -> StoreResult<RotateOutcome> {
        no_table()
    }
    async fn get_refresh_token(
        &self,
        _: &str,
        _: &str,
        _: &str,
        _: i64,
    ) -> StoreResult<Option<RefreshRecord>> {
        no_table()
    }
    async fn revoke_family(&self, _: &str, _: &str) -> StoreResult<usize> {
        no_table()
    }
}

impl EmailCodeStore for NoTable {
    async fn request_mail(&self, _: &MailRequest) -> StoreResult<MailOutcome> {
        no_table()
    }
    async fn get_email_code(
        &self,
        _: &str,
        _: CodePurpose,
        _: i64,
    ) -> StoreResult<Option<EmailCode>> {
        no_table()
    }
    async fn reserve_code_attempt(
        &self,
        _: &str,
        _: CodePurpose,
        _: i64,
    ) -> StoreResult<Option<EmailCode>> {
        no_table()
    }
    async fn verify_email(&self, _: &CodeConsumption) -> StoreResult<bool> {
        no_table()
    }
    async fn reset_password(&self, _: &PasswordReset) -> StoreResult<bool> {
        no_table()
    }
}

impl MfaStore for NoTable {
    async fn swap_mfa(&self, _: &str, _: &MfaSwap) -> StoreResult<bool> {
        no_table()
    }
    async fn put_mfa_challenge(&self, _: &MfaChallenge) -> StoreResult<()> {
        no_table()
    }
    async fn reserve_challenge_attempt(
        &self,
        _: &str,
        _: &str,
        _: i64,
    ) -> StoreResult<Option<MfaChallenge>> {
        no_table()
    }
}

impl OutboxStore for NoTable {
    async fn pending_mail(&self, _: usize, _: i64) -> StoreResult<Vec<OutboxMail>> {
        no_table()
    }
    async fn delete_mail(&self, _: &str) -> StoreResult<()> {
        no_table()
    }
}

impl AccessTokenDenyList for NoTable {
    async fn deny_access_token(&self, _: &str, _: i64) -> StoreResult<()> {
        no_table()
    }
    async fn is_access_token_denied(&self, _: &str, _: i64) -> StoreResult<bool> {
        no_table()
    }
}

/// A function's keys, as its endpoints need them ([`KeyAccess`]).
pub enum FunctionKeys {
    /// The signing secret (`AWSCURRENT` only: tokens are only signed by current keys) or the public
    /// key-set secret.
    Secret(SecretsManagerKeySource),
    /// A function whose endpoints use no key (register, logout): it reads no secret.
    NoKeys,
}

impl FunctionKeys {
    fn new(
        access: KeyAccess,
        client: aws_sdk_secretsmanager::Client,
        secret_id: Option<&str>,
        ttl: Duration,
    ) -> Self {
        match (access, secret_id) {
            (KeyAccess::Private, Some(id)) => {
                Self::Secret(secrets::key_source(client, id, ttl).without_pending())
            }
            (KeyAccess::Public, Some(id)) => {
                Self::Secret(secrets::public_key_source(client, id, ttl))
            }
            _ => Self::NoKeys,
        }
    }

    fn no_keys() -> KeyError {
        KeyError::Unavailable("this function's endpoints use no keys".into())
    }

    /// The key secret's value as init read it, cached for one TTL; a value that did not arrive or
    /// does not load is logged, and the first request that needs a key reads the secret again.
    fn prime(&self, read: Option<Result<String, String>>) {
        let Self::Secret(source) = self else {
            return;
        };
        let primed = match read {
            Some(Ok(text)) => source.prime(&text).map_err(|e| e.to_string()),
            Some(Err(e)) => Err(e),
            None => Err("the key secret was not read at init".into()),
        };
        match primed {
            Ok(set) => {
                tracing::info!(target: "keygate::keys", kid = %set.signing_key(SystemClock.now_ms()).kid, "keys loaded")
            }
            Err(e) => tracing::error!(
                target: "keygate::keys",
                error = %e,
                "no signing keys at init: key-dependent requests answer 503 until the secret holds a key set"
            ),
        }
    }

    /// The setting that names the key secret, and its id, when the function reads one.
    fn init_secret<'a>(access: KeyAccess, id: Option<&'a str>) -> Option<InitSecret<'a>> {
        let setting = match access {
            KeyAccess::Private => settings::KEYS_SECRET_ID.env,
            KeyAccess::Public => settings::PUBLIC_KEYS_SECRET_ID.env,
            KeyAccess::None => return None,
        };
        id.map(|id| InitSecret { setting, id })
    }
}

/// Every secret a function reads at init, read in one call ([`secrets::read_at_init`]), each value
/// (or its error) handed back by what it is.
struct InitValues {
    keys: Option<Result<String, String>>,
    server_key: Option<Result<String, String>>,
    factor_keys: Option<Result<String, String>>,
}

impl InitValues {
    async fn read(
        client: &aws_sdk_secretsmanager::Client,
        keys: Option<InitSecret<'_>>,
        server_key: Option<InitSecret<'_>>,
        factor_keys: Option<InitSecret<'_>>,
    ) -> Self {
        let wanted: Vec<InitSecret> = [keys, server_key, factor_keys]
            .into_iter()
            .flatten()
            .collect();
        let mut values = secrets::read_at_init(client, &wanted).await.into_iter();
        let mut next = |secret: Option<InitSecret>| {
            secret.map(|s| {
                values
                    .next()
                    .unwrap_or_else(|| Err(format!("{}: not read at init", s.setting)))
            })
        };
        Self {
            keys: next(keys),
            server_key: next(server_key),
            factor_keys: next(factor_keys),
        }
    }
}

impl keygate_core::KeySource for FunctionKeys {
    async fn key_set(&self) -> Result<std::sync::Arc<KeySet>, KeyError> {
        match self {
            Self::Secret(source) => source.key_set().await,
            Self::NoKeys => Err(Self::no_keys()),
        }
    }

    async fn key_set_knowing(&self, kid: &str) -> Result<std::sync::Arc<KeySet>, KeyError> {
        match self {
            Self::Secret(source) => source.key_set_knowing(kid).await,
            Self::NoKeys => Err(Self::no_keys()),
        }
    }
}

/// The start of every function: JSON logs, then `main` on a single-threaded runtime (one request at a
/// time per execution environment is all it needs), to the exit code it returns.
fn start(main: impl Future<Output = ExitCode>) -> ExitCode {
    telemetry::init_logging();
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(main),
        Err(e) => {
            eprintln!("starting the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The exit code once the Lambda runtime loop returns (it returns only on a fatal error).
fn ended(result: Result<(), lambda_runtime::Error>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(target: "keygate::runtime", error = %e, "the Lambda runtime loop ended");
            ExitCode::FAILURE
        }
    }
}

/// `main` of the binary every function runs: the function `KEYGATE_FUNCTION` names. Any other value
/// is an init error that lists the names, and the process exits non-zero.
pub fn run_function_from_env() -> ExitCode {
    match settings::env_lookup(FUNCTION.env)
        .as_deref()
        .and_then(Function::named)
    {
        Some(Function::Api(function)) => run_http(function),
        Some(Function::ApiWithoutTable(function)) => run_http(function),
        Some(Function::Mailer) => run_mailer(),
        Some(Function::RotateKeys) => run_rotation(),
        None => start(async {
            let names: Vec<&str> = FUNCTIONS.iter().map(|f| f.name()).collect();
            let message = format!("{}: must be one of {}", FUNCTION.env, names.join(", "));
            init_failed("Runtime.ConfigError", &message).await
        }),
    }
}

/// `main` of an API function: init (settings, metrics, SDK, then its secrets in one read beside the
/// opening of its table's connection), then the runtime loop answering its endpoints.
pub fn run_http<T: TableUse>(function: &'static ApiFunction<T>) -> ExitCode {
    let facts = function.facts();
    start(async move {
        let settings = match HttpSettings::<T>::from_lookup(
            settings::env_lookup,
            facts.key_access(),
            facts.uses_factor_keys(),
        ) {
            Ok(settings) => settings,
            Err(e) => return init_failed("Runtime.ConfigError", &e.to_string()).await,
        };
        let metrics = match telemetry::init_metrics(&settings.metrics_namespace) {
            Ok(metrics) => metrics,
            Err(e) => return init_failed("Runtime.InitError", &e).await,
        };
        let sdk_config = sdk::load().await;
        let secrets_client = aws_sdk_secretsmanager::Client::new(&sdk_config);
        let keys = FunctionKeys::new(
            settings.key_access,
            secrets_client.clone(),
            settings.keys_secret_id.as_deref(),
            settings.auth.key_cache_ttl(),
        );
        let server_key_id = T::server_key_secret_id(&settings.table).map(str::to_owned);
        // At most two requests at init, concurrent: every secret in one, the table's connection in the other.
        let (store, read) = tokio::join!(
            T::open(settings.table, &sdk_config),
            InitValues::read(
                &secrets_client,
                FunctionKeys::init_secret(settings.key_access, settings.keys_secret_id.as_deref()),
                server_key_id.as_deref().map(|id| InitSecret {
                    setting: settings::SERVER_KEY_SECRET_ID.env,
                    id,
                }),
                settings
                    .factor_keys_secret_id
                    .as_deref()
                    .map(|id| InitSecret {
                        setting: settings::FACTOR_KEYS_SECRET_ID.env,
                        id,
                    }),
            )
        );
        keys.prime(read.keys);
        let audit_key = match read.server_key {
            Some(text) => text.and_then(|text| secrets::parse_server_key(&text)),
            None => AuditKey::generate(),
        };
        let audit_key = match audit_key {
            Ok(key) => key,
            Err(e) => return init_failed("Runtime.InitError", &e).await,
        };
        let factor_keys = match read
            .factor_keys
            .map(|r| r.and_then(|t| secrets::parse_factor_keys(&t)))
        {
            None => None,
            Some(Ok(ring)) => Some(ring),
            Some(Err(e)) => return init_failed("Runtime.InitError", &e).await,
        };
        let service = match AuthService::new(settings.auth, store, keys, SystemClock, audit_key) {
            Ok(service) => match factor_keys {
                Some(ring) => service.with_factor_keys(ring),
                None => service,
            },
            Err(e) => return init_failed("Runtime.InitError", &e.to_string()).await,
        };
        // Lives as long as the execution environment.
        let service: &'static AuthService<T::Store, FunctionKeys, SystemClock> =
            Box::leak(Box::new(service));
        let endpoints = facts.endpoints;
        ended(
            metrics_cloudwatch_embedded::lambda::handler::run_http(
                metrics,
                move |event: lambda_http::Request| async move {
                    Ok::<_, lambda_runtime::Error>(answer(service, endpoints, event).await)
                },
            )
            .await,
        )
    })
}

/// Answers one API Gateway event.
pub async fn answer<S, K, C>(
    service: &AuthService<S, K, C>,
    endpoints: &[Endpoint],
    event: lambda_http::Request,
) -> http::Response<lambda_http::Body>
where
    S: keygate_core::store::AuthStore,
    K: keygate_core::KeySource,
    C: keygate_core::Clock,
{
    let request_id = event
        .lambda_context_ref()
        .map(|c| c.request_id.clone())
        .unwrap_or_default();
    let response =
        keygate_http::handle(service, endpoints, to_http_request(event), &request_id).await;
    to_lambda_response(response)
}

/// Removes an API Gateway stage prefix (`/prod/auth/login` with stage `prod` -> `/auth/login`).
pub fn strip_stage<'a>(path: &'a str, stage: Option<&str>) -> &'a str {
    let Some(stage) = stage.filter(|s| !s.is_empty() && *s != "$default") else {
        return path;
    };
    match path
        .strip_prefix('/')
        .and_then(|rest| rest.strip_prefix(stage))
    {
        Some("") => "/",
        Some(rest) if rest.starts_with('/') => rest,
        _ => path,
    }
}

/// The route path of an event. lambda_http puts the stage in front of REST (v1) paths unless
/// `AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH` is set, and HTTP API (v2) paths carry it for named stages; the
/// event's own path (`RawHttpPath`) is read instead, and a stage prefix still found there is removed, so
/// the answer does not depend on that variable.
fn route_path(event: &lambda_http::Request) -> String {
    let raw = event.raw_http_path();
    let path = if raw.is_empty() {
        event.uri().path()
    } else {
        raw
    };
    let stage = match event.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(context)) => context.stage.as_deref(),
        Some(RequestContext::ApiGatewayV2(context)) => context.stage.as_deref(),
        _ => None,
    };
    strip_stage(path, stage).to_owned()
}

/// The event as the request keygate-http answers: route path without stage, query kept, body as bytes.
pub fn to_http_request(event: lambda_http::Request) -> http::Request<Bytes> {
    let path = route_path(&event);
    let path_and_query = match event.uri().query() {
        Some(query) => format!("{path}?{query}"),
        None => path,
    };
    let (mut parts, body) = event.into_parts();
    if let Ok(uri) = http::Uri::builder().path_and_query(path_and_query).build() {
        parts.uri = uri;
    }
    let body = match body {
        lambda_http::Body::Text(text) => Bytes::from(text),
        lambda_http::Body::Binary(bytes) => Bytes::from(bytes),
        _ => Bytes::new(),
    };
    http::Request::from_parts(parts, body)
}

/// keygate-http's answer as a proxy response. JSON goes back as text: a REST API without binary media
/// types would hand a base64 body to the client verbatim.
pub fn to_lambda_response(response: http::Response<Bytes>) -> http::Response<lambda_http::Body> {
    response.map(|body| {
        if body.is_empty() {
            lambda_http::Body::Empty
        } else {
            match String::from_utf8(body.to_vec()) {
                Ok(text) => lambda_http::Body::Text(text),
                Err(e) => lambda_http::Body::Binary(e.into_bytes()),
            }
        }
    })
}

/// Logs an init failure, reports it to the Lambda Runtime API (when running under one) and returns the
/// exit code to leave with.
async fn init_failed(error_type: &str, message: &str) -> ExitCode {
    tracing::error!(target: "keygate::init", error_type, error = %message, "initialisation failed");
    report_init_error(error_type, message).await;
    ExitCode::FAILURE
}

async fn report_init_error(error_type: &str, message: &str) {
    let Some(api) = settings::env_lookup("AWS_LAMBDA_RUNTIME_API") else {
        return;
    };
    let Ok(endpoint) = http::Uri::try_from(api) else {
        eprintln!("AWS_LAMBDA_RUNTIME_API is not a URI; init error not reported");
        return;
    };
    let client = lambda_runtime_api_client::PooledClient::builder()
        .with_endpoint(endpoint)
        .build();
    let body = serde_json::json!({ "errorType": error_type, "errorMessage": message }).to_string();
    let request = lambda_runtime_api_client::build_request()
        .method(http::Method::POST)
        .uri("/2018-06-01/runtime/init/error")
        .header("lambda-runtime-function-error-type", error_type)
        .body(lambda_runtime_api_client::body::Body::from(body));
    let Ok(request) = request else { return };
    match client.call(request).await {
        Ok(response) if response.status().is_success() => {}
        Ok(response) => eprintln!(
            "the Runtime API answered {} to the init error report",
            response.status()
        ),
        Err(e) => eprintln!("reporting the init error to the Runtime API: {e}"),
    }
}

/// `main` of the mailer function: init (the table, the server key the outbox is sealed under, the SES
/// client and sender), then each batch of the table's stream is delivered
/// ([`keygate_aws::outbox_stream::deliver_batch`]) and answered with its item failures.
pub fn run_mailer() -> ExitCode {
    start(async move {
        let lookup = settings::env_lookup;
        let read = || -> Result<_, ConfigError> {
            Ok((
                <WithTable as Storage>::read_settings(&lookup)?,
                SesSettings::from_lookup(&lookup)?,
                settings::read_metrics_namespace(&lookup)?,
            ))
        };
        let (table, ses, namespace) = match read() {
            Ok(read) => read,
            Err(e) => return init_failed("Runtime.ConfigError", &e.to_string()).await,
        };
        let metrics = match telemetry::init_metrics(&namespace) {
            Ok(metrics) => metrics,
            Err(e) => return init_failed("Runtime.InitError", &e).await,
        };
        let sdk_config = sdk::load().await;
        let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk_config), table.table_name);
        let secrets = aws_sdk_secretsmanager::Client::new(&sdk_config);
        let server_key = InitSecret {
            setting: settings::SERVER_KEY_SECRET_ID.env,
            id: &table.server_key_secret_id,
        };
        let read = secrets::read_at_init(&secrets, &[server_key]).await;
        let server_key = match read.into_iter().next() {
            Some(Ok(text)) => secrets::parse_server_key(&text),
            Some(Err(e)) => Err(e),
            None => Err(format!("{}: not read at init", server_key.setting)),
        };
        let server_key = match server_key {
            Ok(key) => key,
            Err(e) => return init_failed("Runtime.InitError", &e).await,
        };
        let mailer = SesMailer::new(aws_sdk_sesv2::Client::new(&sdk_config), ses);
        // Lives as long as the execution environment.
        let state: &'static (DynamoStore, SesMailer, MailSealer, AuditKey) = Box::leak(Box::new((
            store,
            mailer,
            MailSealer::new(&server_key),
            server_key,
        )));
        let handler = move |event: lambda_runtime::LambdaEvent<StreamEvent>| async move {
            let (store, mailer, sealer, key) = state;
            let answer = deliver_batch(
                store,
                mailer,
                sealer,
                key,
                event.payload,
                SystemClock.now_ms(),
            )
            .await;
            Ok::<_, lambda_runtime::Error>(answer)
        };
        // The metrics layer flushes the EMF document after each batch (MailSent, MailDropped).
        ended(metrics_cloudwatch_embedded::lambda::handler::run(metrics, handler).await)
    })
}

/// `main` of the rotate-keys function: each Secrets Manager event runs one step
/// ([`keygate_aws::rotation::rotate_step`]).
pub fn run_rotation() -> ExitCode {
    start(async move {
        let lookup = settings::env_lookup;
        // The settings the API functions run with (the CDK app gives every function the same): the
        // algorithm, and what the new key's lead and the old key's retention derive from.
        let config = match AuthConfig::from_lookup(lookup) {
            Ok(config) => config,
            Err(e) => return init_failed("Runtime.ConfigError", &e.to_string()).await,
        };
        let (alg, timeline) = (config.signing_alg, KeyTimeline::new(&config));
        // Required: every step that changes what the key set publishes writes the public set there.
        let public_secret = match settings::read_public_keys_secret_id(&lookup) {
            Ok(id) => id,
            Err(e) => return init_failed("Runtime.ConfigError", &e.to_string()).await,
        };
        // Optional here: when set, the function refuses to rotate any other secret.
        let expected_secret = lookup(settings::KEYS_SECRET_ID.env);
        let client = aws_sdk_secretsmanager::Client::new(&sdk::load().await);
        let handler = move |event: lambda_runtime::LambdaEvent<RotationEvent>| {
            let client = client.clone();
            let expected_secret = expected_secret.clone();
            let public_secret = public_secret.clone();
            async move {
                rotate_step(
                    client,
                    expected_secret.as_deref(),
                    &public_secret,
                    alg,
                    timeline,
                    event.payload,
                )
                .await
                .map_err(lambda_runtime::Error::from)
            }
        };
        ended(lambda_runtime::run(lambda_runtime::service_fn(handler)).await)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_prefixes_are_removed_once() {
        assert_eq!(strip_stage("/prod/auth/login", Some("prod")), "/auth/login");
        assert_eq!(strip_stage("/auth/login", Some("prod")), "/auth/login");
        assert_eq!(strip_stage("/prod", Some("prod")), "/");
        assert_eq!(
            strip_stage("/production/auth", Some("prod")),
            "/production/auth"
        );
        assert_eq!(strip_stage("/auth/me", Some("$default")), "/auth/me");
        assert_eq!(strip_stage("/auth/me", None), "/auth/me");
    }

    #[test]
    fn a_rest_event_reaches_keygate_http_without_its_stage() {
        let event = serde_json::json!({
            "resource": "/auth/login",
            "path": "/auth/login",
            "httpMethod": "POST",
            "headers": {"content-type": "application/json", "Host": "abc.execute-api.eu-west-1.amazonaws.com"},
            "multiValueHeaders": {"content-type": ["application/json"], "Host": ["abc.execute-api.eu-west-1.amazonaws.com"]},
            "queryStringParameters": null,
            "multiValueQueryStringParameters": null,
            "pathParameters": null,
            "stageVariables": null,
            "requestContext": {
                "accountId": "123456789012", "resourceId": "abc", "stage": "dev", "requestId": "r-1",
                "identity": {"sourceIp": "203.0.113.1"}, "resourcePath": "/auth/login", "httpMethod": "POST",
                "apiId": "abc", "path": "/dev/auth/login"
            },
            "body": "{\"email\":\"a@b.c\"}",
            "isBase64Encoded": false
        });
        let request = lambda_http::request::from_str(&event.to_string()).unwrap();
        let converted = to_http_request(request);
        assert_eq!(converted.uri().path(), "/auth/login");
        assert_eq!(converted.method(), http::Method::POST);
        assert_eq!(converted.body().as_ref(), br#"{"email":"a@b.c"}"#);
    }

    /// The `api.kind: 'http'` stages (cdk/lib/api/http-api.ts): payload format 2.0, on the `$default`
    /// stage (no prefix) and on a named stage (prefix removed), form bodies included.
    #[test]
    fn an_http_api_event_reaches_keygate_http_without_its_stage() {
        let event = |stage: &str, raw_path: &str| {
            serde_json::json!({
                "version": "2.0",
                "routeKey": "POST /oauth/token",
                "rawPath": raw_path,
                "rawQueryString": "",
                "headers": {"content-type": "application/x-www-form-urlencoded", "host": "abc.execute-api.eu-west-1.amazonaws.com"},
                "requestContext": {
                    "accountId": "123456789012", "apiId": "abc", "domainName": "abc.execute-api.eu-west-1.amazonaws.com",
                    "domainPrefix": "abc", "requestId": "r-2", "routeKey": "POST /oauth/token", "stage": stage,
                    "time": "03/Dec/2026:17:00:00 +0000", "timeEpoch": 1_796_317_200_000_i64,
                    "http": {"method": "POST", "path": raw_path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.1", "userAgent": "test"}
                },
                "body": "grant_type=refresh_token&client_id=keygate",
                "isBase64Encoded": false
            })
        };
        for (stage, raw_path) in [("$default", "/oauth/token"), ("live", "/live/oauth/token")] {
            let request =
                lambda_http::request::from_str(&event(stage, raw_path).to_string()).unwrap();
            let converted = to_http_request(request);
            assert_eq!(converted.uri().path(), "/oauth/token", "{stage}");
            assert_eq!(converted.method(), http::Method::POST);
            assert_eq!(
                converted.body().as_ref(),
                b"grant_type=refresh_token&client_id=keygate"
            );
        }
    }

    #[test]
    fn json_answers_go_back_as_text() {
        let response = to_lambda_response(http::Response::new(Bytes::from_static(b"{\"a\":1}")));
        assert!(matches!(response.body(), lambda_http::Body::Text(t) if t == "{\"a\":1}"));
        assert!(matches!(
            to_lambda_response(http::Response::new(Bytes::new())).body(),
            lambda_http::Body::Empty
        ));
    }

    #[test]
    fn with_hs256_verifiers_read_the_signing_secret() {
        let lookup = |name: &str| match name {
            "KEYGATE_SIGNING_ALG" => Some("HS256".to_owned()),
            "KEYGATE_KEYS_SECRET_ID" => Some("signing".to_owned()),
            "KEYGATE_ISSUER" => Some("https://x.example".to_owned()),
            _ => None,
        };
        let settings =
            HttpSettings::<WithoutTable>::from_lookup(lookup, KeyAccess::Public, false).unwrap();
        assert_eq!(settings.key_access, KeyAccess::Private);
        assert_eq!(settings.keys_secret_id.as_deref(), Some("signing"));
        let es256 = |name: &str| {
            (name != "KEYGATE_SIGNING_ALG")
                .then(|| lookup(name))
                .flatten()
        };
        let err =
            HttpSettings::<WithoutTable>::from_lookup(es256, KeyAccess::Public, false).unwrap_err();
        assert_eq!(err.variable, "KEYGATE_PUBLIC_KEYS_SECRET_ID");
    }

    #[test]
    fn settings_errors_name_the_variable() {
        let err = HttpSettings::<WithTable>::from_lookup(|_| None, KeyAccess::Private, false)
            .unwrap_err();
        assert_eq!(err.variable, "KEYGATE_TABLE_NAME");
        let table_only = |name: &str| (name == "KEYGATE_TABLE_NAME").then(|| "t-1".to_owned());
        let err = HttpSettings::<WithTable>::from_lookup(table_only, KeyAccess::Private, false)
            .unwrap_err();
        assert_eq!(err.variable, "KEYGATE_SERVER_KEY_SECRET_ID");
        let table = |name: &str| match name {
            "KEYGATE_TABLE_NAME" => Some("t-1".to_owned()),
            "KEYGATE_SERVER_KEY_SECRET_ID" => Some("server-key".to_owned()),
            _ => None,
        };
        let err =
            HttpSettings::<WithTable>::from_lookup(table, KeyAccess::Private, false).unwrap_err();
        assert_eq!(err.variable, "KEYGATE_KEYS_SECRET_ID");
        let err =
            HttpSettings::<WithTable>::from_lookup(table, KeyAccess::Public, false).unwrap_err();
        assert_eq!(err.variable, "KEYGATE_PUBLIC_KEYS_SECRET_ID");
        // A function whose endpoints use no key needs (and is told) no secret.
        let no_keys = HttpSettings::<WithTable>::from_lookup(
            |name| match name {
                "KEYGATE_TABLE_NAME" => Some("t-1".into()),
                "KEYGATE_SERVER_KEY_SECRET_ID" => Some("server-key".into()),
                "KEYGATE_ISSUER" => Some("https://x.example".into()),
                _ => None,
            },
            KeyAccess::None,
            false,
        )
        .unwrap();
        assert_eq!(no_keys.keys_secret_id, None);
        assert_eq!(no_keys.factor_keys_secret_id, None);
        assert_eq!(no_keys.table.server_key_secret_id, "server-key");
        // Only a function whose endpoints open TOTP secrets is told (and needs) the ring's secret.
        let mfa = |name: &str| match name {
            "KEYGATE_TABLE_NAME" => Some("t-1".into()),
            "KEYGATE_SERVER_KEY_SECRET_ID" => Some("server-key".into()),
            "KEYGATE_ISSUER" => Some("https://x.example".into()),
            _ => None,
        };
        let err = HttpSettings::<WithTable>::from_lookup(mfa, KeyAccess::None, true).unwrap_err();
        assert_eq!(err.variable, "KEYGATE_FACTOR_KEYS_SECRET_ID");
        // Without the table, neither the table nor the server key is read.
        let settings = HttpSettings::<WithoutTable>::from_lookup(
            |name| match name {
                "KEYGATE_KEYS_SECRET_ID" => {
                    Some("arn:aws:secretsmanager:eu-west-1:1:secret:k".into())
                }
                "KEYGATE_ISSUER" => Some("https://x.example".into()),
                _ => None,
            },
            KeyAccess::Private,
            false,
        )
        .unwrap();
        assert_eq!(settings.auth.key_cache_ttl(), Duration::from_secs(300));
    }
}
