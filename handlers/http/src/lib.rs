//! Request handling over the `http` crate's types, so one function answers a request on Lambda (through
//! `lambda_http`) and on the local server (through axum). Every error of keygate's JSON routes leaves
//! as an RFC 9457 `application/problem+json` document, mapped in one place ([`problem`]); the OAuth
//! endpoints answer RFC 6749 section 5.2 errors instead, mapped in one place too ([`oauth`]).

use std::sync::LazyLock;
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use keygate_core::audit::{AuditKey, RequestContext};
use keygate_core::keys::{JWKS_MAX_AGE_SECS, KeyError, KeySource};
use keygate_core::service::{EmailProof, SecondFactorProof};
use keygate_core::store::{AuthStore, CodePurpose, StoreError};
use keygate_core::{AuthConfig, AuthError, AuthService, Clock};
use serde::Serialize;
use serde::de::DeserializeOwned;

mod oauth;
pub mod openapi;
mod problem;
pub use problem::{Problem, problem};

/// Request bodies above this size are refused with 413 before parsing.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// Requests whose header names and values add up to more than this are refused with 431: API
/// Gateway's REST limit (10,240 bytes for the request line and headers), so the local server
/// refuses what a deployed stage would.
pub const MAX_HEADER_BYTES: usize = 10 * 1024;

/// The bytes a request's headers occupy: names, values and the `: ` and CRLF around each.
pub fn header_bytes(headers: &http::HeaderMap) -> usize {
    headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum()
}
/// The per-request latency histogram (milliseconds) every request records.
pub const LATENCY_METRIC: &str = "RequestLatency";

pub const CORRELATION_ID: HeaderName = HeaderName::from_static("x-correlation-id");
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The routes of the HTTP API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Register,
    Login,
    Refresh,
    Logout,
    LogoutAll,
    ChangePassword,
    Me,
    Jwks,
    Discovery,
    /// RFC 6749 token endpoint: the refresh_token grant, form-encoded.
    OAuthToken,
    /// RFC 7009 revocation endpoint.
    OAuthRevoke,
    /// RFC 8414 authorization server metadata (the same document as [`Endpoint::Discovery`]).
    OAuthMetadata,
    /// GET /openapi.json: the OpenAPI document of these routes ([`openapi`]).
    OpenApi,
    /// (Re)sends the verification mail; 202 whatever the address.
    EmailVerification,
    /// Consumes a verification link's token or a mailed code.
    EmailVerify,
    /// Sends a password-reset mail; 202 whatever the address.
    PasswordForgot,
    /// Sets a new password with a reset link's token or a mailed code.
    PasswordReset,
    /// Enrols a pending TOTP factor (bearer, recent login).
    MfaTotp,
    /// Activates the pending factor with a code: recovery codes and a new session.
    MfaTotpActivate,
    /// A new set of recovery codes, for a TOTP code (bearer).
    MfaRecoveryCodes,
    /// Removes the factor, for a TOTP or recovery code (bearer, recent login).
    MfaTotpDisable,
    /// A login's second step: the `mfa_token` of the `mfa-required` problem and a code.
    MfaVerify,
}

/// The keys an endpoint (or a function serving several) reads, least first: a function needs the
/// most any of its endpoints needs (the private set also verifies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum KeyAccess {
    /// No key at all.
    None,
    /// The public key set only: verifies tokens, publishes the JWKS.
    Public,
    /// The signing keys (private): signs, and verifies.
    Private,
}

impl KeyAccess {
    /// What a function serving `endpoints` needs.
    pub fn of(endpoints: &[Endpoint]) -> KeyAccess {
        endpoints
            .iter()
            .map(|e| e.key_access())
            .max()
            .unwrap_or(KeyAccess::None)
    }

    /// What verifying needs under `alg`: an HS256 key is shared, has no public form, and the public
    /// key set holds nothing for it, so with that explicit opt-in verifiers read the signing keys.
    pub fn under(self, alg: keygate_core::SigningAlgorithm) -> KeyAccess {
        match (self, alg) {
            (KeyAccess::Public, keygate_core::SigningAlgorithm::Hs256) => KeyAccess::Private,
            (access, _) => access,
        }
    }
}

impl Endpoint {
    pub const ALL: [Endpoint; 22] = [
        Endpoint::Register,
        Endpoint::Login,
        Endpoint::Refresh,
        Endpoint::Logout,
        Endpoint::LogoutAll,
        Endpoint::ChangePassword,
        Endpoint::Me,
        Endpoint::Jwks,
        Endpoint::Discovery,
        Endpoint::OAuthToken,
        Endpoint::OAuthRevoke,
        Endpoint::OAuthMetadata,
        Endpoint::OpenApi,
        Endpoint::EmailVerification,
        Endpoint::EmailVerify,
        Endpoint::PasswordForgot,
        Endpoint::PasswordReset,
        Endpoint::MfaTotp,
        Endpoint::MfaTotpActivate,
        Endpoint::MfaRecoveryCodes,
        Endpoint::MfaTotpDisable,
        Endpoint::MfaVerify,
    ];

    /// Whether the endpoint runs argon2id (about 20 ms of one core and 19 MiB per request at the
    /// default cost): the routes a shell bounds and a WAF rate-limits hardest.
    pub fn hashes_password(self) -> bool {
        matches!(
            self,
            Endpoint::Register
                | Endpoint::Login
                | Endpoint::ChangePassword
                | Endpoint::PasswordReset
        )
    }

    /// Which keys the endpoint uses: the one fact a function's key source (and, in the CDK catalog,
    /// its grant) follows. Verifying needs only public keys; signing needs the private set.
    pub fn key_access(self) -> KeyAccess {
        match self {
            Endpoint::Login
            | Endpoint::Refresh
            | Endpoint::ChangePassword
            | Endpoint::OAuthToken
            | Endpoint::MfaTotpActivate
            | Endpoint::MfaVerify => KeyAccess::Private,
            // Revocation verifies an access token before it denies it.
            Endpoint::Me
            | Endpoint::LogoutAll
            | Endpoint::Jwks
            | Endpoint::OAuthRevoke
            | Endpoint::MfaTotp
            | Endpoint::MfaRecoveryCodes
            | Endpoint::MfaTotpDisable => KeyAccess::Public,
            Endpoint::Register
            | Endpoint::Logout
            | Endpoint::Discovery
            | Endpoint::OAuthMetadata
            | Endpoint::OpenApi
            | Endpoint::EmailVerification
            | Endpoint::EmailVerify
            | Endpoint::PasswordForgot
            | Endpoint::PasswordReset => KeyAccess::None,
        }
    }

    /// Whether the endpoint seals or opens TOTP secrets: a function serving one reads the data-key
    /// ring ([`keygate_core::mfa::FactorKeyRing`]); no other is granted it. A login only issues the
    /// challenge, so it never holds the ring.
    pub fn uses_factor_keys(self) -> bool {
        matches!(
            self,
            Endpoint::MfaTotp
                | Endpoint::MfaTotpActivate
                | Endpoint::MfaRecoveryCodes
                | Endpoint::MfaTotpDisable
                | Endpoint::MfaVerify
        )
    }

    /// The endpoint's name in `cdk/contract.json` and in the discovery document's `keygate_endpoints`.
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Register => "register",
            Endpoint::Login => "login",
            Endpoint::Refresh => "refresh",
            Endpoint::Logout => "logout",
            Endpoint::LogoutAll => "logout_all",
            Endpoint::ChangePassword => "password",
            Endpoint::Me => "me",
            Endpoint::Jwks => "jwks",
            Endpoint::Discovery => "discovery",
            Endpoint::OAuthToken => "oauth_token",
            Endpoint::OAuthRevoke => "oauth_revoke",
            Endpoint::OAuthMetadata => "oauth_metadata",
            Endpoint::OpenApi => "openapi",
            Endpoint::EmailVerification => "email_verification",
            Endpoint::EmailVerify => "email_verify",
            Endpoint::PasswordForgot => "password_forgot",
            Endpoint::PasswordReset => "password_reset",
            Endpoint::MfaTotp => "mfa_totp",
            Endpoint::MfaTotpActivate => "mfa_totp_activate",
            Endpoint::MfaRecoveryCodes => "mfa_recovery_codes",
            Endpoint::MfaTotpDisable => "mfa_totp_disable",
            Endpoint::MfaVerify => "mfa_verify",
        }
    }

    /// Whether the endpoint reads or writes the store: a function serving only endpoints that do
    /// not gets no table (and no table grant).
    pub const fn uses_table(self) -> bool {
        !matches!(
            self,
            Endpoint::Jwks | Endpoint::Discovery | Endpoint::OAuthMetadata | Endpoint::OpenApi
        )
    }

    pub fn method(self) -> Method {
        match self {
            Endpoint::Me
            | Endpoint::Jwks
            | Endpoint::Discovery
            | Endpoint::OAuthMetadata
            | Endpoint::OpenApi => Method::GET,
            _ => Method::POST,
        }
    }

    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Register => "/auth/register",
            Endpoint::Login => "/auth/login",
            Endpoint::Refresh => "/auth/refresh",
            Endpoint::Logout => "/auth/logout",
            Endpoint::LogoutAll => "/auth/logout-all",
            Endpoint::ChangePassword => "/auth/password",
            Endpoint::Me => "/auth/me",
            Endpoint::Jwks => "/.well-known/jwks.json",
            Endpoint::Discovery => "/.well-known/openid-configuration",
            Endpoint::OAuthToken => "/oauth/token",
            Endpoint::OAuthRevoke => "/oauth/revoke",
            Endpoint::OAuthMetadata => "/.well-known/oauth-authorization-server",
            Endpoint::OpenApi => "/openapi.json",
            Endpoint::EmailVerification => "/auth/email/verification",
            Endpoint::EmailVerify => "/auth/email/verify",
            Endpoint::PasswordForgot => "/auth/password/forgot",
            Endpoint::PasswordReset => "/auth/password/reset",
            Endpoint::MfaTotp => "/auth/mfa/totp",
            Endpoint::MfaTotpActivate => "/auth/mfa/totp/activate",
            Endpoint::MfaRecoveryCodes => "/auth/mfa/recovery-codes",
            Endpoint::MfaTotpDisable => "/auth/mfa/totp/disable",
            Endpoint::MfaVerify => "/auth/mfa/verify",
        }
    }

    /// Whether the endpoint speaks OAuth (form-encoded requests, RFC 6749 errors) rather than
    /// keygate's JSON and problem documents.
    fn speaks_oauth(self) -> bool {
        matches!(self, Endpoint::OAuthToken | Endpoint::OAuthRevoke)
    }

    /// Whether the endpoint reads a JSON body.
    fn takes_body(self) -> bool {
        matches!(
            self,
            Endpoint::Register
                | Endpoint::Login
                | Endpoint::Refresh
                | Endpoint::Logout
                | Endpoint::ChangePassword
                | Endpoint::EmailVerification
                | Endpoint::EmailVerify
                | Endpoint::PasswordForgot
                | Endpoint::PasswordReset
                | Endpoint::MfaTotp
                | Endpoint::MfaTotpActivate
                | Endpoint::MfaRecoveryCodes
                | Endpoint::MfaTotpDisable
                | Endpoint::MfaVerify
        )
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterBody {
    email: String,
    password: String,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    email: String,
    password: String,
    #[serde(default)]
    device_id: Option<String>,
    /// The `device_token` of an earlier login's response.
    #[serde(default)]
    device_token: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RefreshBody {
    refresh_token: String,
    #[serde(default)]
    device_id: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LogoutBody {
    refresh_token: String,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordBody {
    current_password: String,
    new_password: String,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct EmailBody {
    email: String,
}

/// `{token}` (the link's) or `{email, code}` (the mailed code), and for a reset `new_password`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ProofBody {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    new_password: Option<String>,
}

impl ProofBody {
    fn proof(&self) -> Result<EmailProof<'_>, Problem> {
        match (&self.token, &self.email, &self.code) {
            (Some(token), None, None) => Ok(EmailProof::Token(token)),
            (None, Some(email), Some(code)) => Ok(EmailProof::Code { email, code }),
            _ => Err(Problem::BadRequest(
                "send either `token` (from the mailed link) or `email` and `code`".into(),
            )),
        }
    }
}

/// POST /auth/mfa/totp takes `{}`: nothing to choose yet, and an empty object keeps the JSON contract.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct EmptyBody {}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ActivateBody {
    factor_id: String,
    code: String,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TotpCodeBody {
    code: String,
}

/// `{code}` (TOTP) or `{recovery_code}`, and for a login's second step `mfa_token` (and the login's
/// `device_id`, when it sent one).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SecondFactorBody {
    #[serde(default)]
    mfa_token: Option<String>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    recovery_code: Option<String>,
    #[serde(default)]
    device_id: Option<String>,
}

impl SecondFactorBody {
    fn proof(&self) -> Result<SecondFactorProof<'_>, Problem> {
        match (&self.code, &self.recovery_code) {
            (Some(code), None) => Ok(SecondFactorProof::Totp(code)),
            (None, Some(code)) => Ok(SecondFactorProof::RecoveryCode(code)),
            _ => Err(Problem::BadRequest(
                "send either `code` (from the authenticator app) or `recovery_code`".into(),
            )),
        }
    }
}

/// Picks the endpoint for a method and path among those this process serves: 404 for an unknown
/// path, 405 (with `Allow`) for a known path and another method.
fn route(endpoints: &[Endpoint], method: &Method, path: &str) -> Result<Endpoint, Problem> {
    let endpoint = endpoints
        .iter()
        .copied()
        .find(|e| e.path() == path)
        .ok_or(Problem::NotFound)?;
    if *method != endpoint.method() {
        return Err(Problem::MethodNotAllowed(endpoint.method()));
    }
    Ok(endpoint)
}

/// A client's correlation id is echoed when it is a short token of safe characters; otherwise one is made.
fn correlation_id(headers: &HeaderMap) -> String {
    headers
        .get(&CORRELATION_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 128
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map(str::to_owned)
        .unwrap_or_else(keygate_core::crypto::random_id)
}

/// Answers one request. `endpoints` limits the routes this process serves (one per Lambda function;
/// all of them on the local server); `path` must not carry an API Gateway stage prefix.
pub async fn handle<S, K, C>(
    service: &AuthService<S, K, C>,
    endpoints: &[Endpoint],
    request: Request<Bytes>,
    request_id: &str,
) -> Response<Bytes>
where
    S: AuthStore,
    K: KeySource,
    C: Clock,
{
    let started = Instant::now();
    let ctx = service.context(request_id.to_owned(), correlation_id(request.headers()));
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = if header_bytes(request.headers()) > MAX_HEADER_BYTES {
        problem(&Problem::HeadersTooLarge, &ctx)
    } else {
        match route(endpoints, &method, &path) {
            Ok(endpoint) => match dispatch(service, endpoint, &ctx, request).await {
                Ok(response) => response,
                Err(error) => problem(&error, &ctx),
            },
            Err(rejection) => problem(&rejection, &ctx),
        }
    };
    finish(response, &ctx, &method, &path, started)
}

/// Answers `request` with `problem` without reaching the service, with the same ids and access log
/// as [`handle`]: for a shell that sheds load before handling (the local server's hashing queue).
pub fn refuse<B>(
    request: &Request<B>,
    problem: &Problem,
    request_id: &str,
    audit_key: &AuditKey,
) -> Response<Bytes> {
    let ctx = RequestContext {
        request_id: request_id.to_owned(),
        correlation_id: correlation_id(request.headers()),
        audit_key: audit_key.clone(),
    };
    let response = problem::problem(problem, &ctx);
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    finish(response, &ctx, &method, &path, Instant::now())
}

fn finish(
    mut response: Response<Bytes>,
    ctx: &RequestContext,
    method: &Method,
    path: &str,
    started: Instant,
) -> Response<Bytes> {
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&ctx.correlation_id) {
        headers.insert(CORRELATION_ID, value);
    }
    if let Ok(value) = HeaderValue::from_str(&ctx.request_id) {
        headers.insert(REQUEST_ID, value);
    }
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    metrics::histogram!(LATENCY_METRIC).record(latency_ms);
    tracing::info!(
        target: "keygate::access",
        method = %method,
        path = %path,
        status = response.status().as_u16(),
        latency_ms,
        request_id = %ctx.request_id,
        correlation_id = %ctx.correlation_id,
    );
    response
}

async fn dispatch<S, K, C>(
    service: &AuthService<S, K, C>,
    endpoint: Endpoint,
    ctx: &RequestContext,
    request: Request<Bytes>,
) -> Result<Response<Bytes>, Problem>
where
    S: AuthStore,
    K: KeySource,
    C: Clock,
{
    let (parts, body) = request.into_parts();
    if !endpoint.speaks_oauth() {
        if body.len() > MAX_BODY_BYTES {
            return Err(Problem::PayloadTooLarge);
        }
        if endpoint.takes_body() || !body.is_empty() {
            require_json(&parts.headers)?;
        }
    }
    match endpoint {
        Endpoint::Register => {
            let b: RegisterBody = parse(&body)?;
            let registered = service.register(ctx, &b.email, &b.password).await?;
            Ok(json(StatusCode::CREATED, &registered, NO_STORE))
        }
        Endpoint::Login => {
            let b: LoginBody = parse(&body)?;
            let tokens = service
                .login(
                    ctx,
                    &b.email,
                    &b.password,
                    b.device_id.as_deref(),
                    b.device_token.as_deref(),
                )
                .await?;
            Ok(json(StatusCode::OK, &tokens, NO_STORE))
        }
        Endpoint::Refresh => {
            let b: RefreshBody = parse(&body)?;
            let tokens = service
                .refresh(ctx, &b.refresh_token, b.device_id.as_deref())
                .await?;
            Ok(json(StatusCode::OK, &tokens, NO_STORE))
        }
        Endpoint::Logout => {
            let b: LogoutBody = parse(&body)?;
            service.logout(ctx, &b.refresh_token).await?;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        Endpoint::LogoutAll => {
            reject_body(&body)?;
            service.logout_all(ctx, bearer(&parts.headers)?).await?;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        Endpoint::ChangePassword => {
            let token = bearer(&parts.headers)?;
            let b: PasswordBody = parse(&body)?;
            let tokens = service
                .change_password(ctx, token, &b.current_password, &b.new_password)
                .await?;
            Ok(json(StatusCode::OK, &tokens, NO_STORE))
        }
        Endpoint::Me => {
            reject_body(&body)?;
            let profile = service.me(bearer(&parts.headers)?).await?;
            Ok(json(StatusCode::OK, &profile, NO_STORE))
        }
        Endpoint::Jwks => {
            reject_body(&body)?;
            Ok(json(
                StatusCode::OK,
                &service.jwks().await?,
                JWKS_CACHE_CONTROL.as_str(),
            ))
        }
        Endpoint::Discovery | Endpoint::OAuthMetadata => {
            reject_body(&body)?;
            Ok(json(
                StatusCode::OK,
                &discovery(service.config()),
                "public, max-age=3600",
            ))
        }
        Endpoint::OpenApi => {
            reject_body(&body)?;
            Ok(json(
                StatusCode::OK,
                &openapi::served(service.config()),
                "public, max-age=3600",
            ))
        }
        Endpoint::EmailVerification | Endpoint::PasswordForgot => {
            let b: EmailBody = parse(&body)?;
            let purpose = if endpoint == Endpoint::PasswordForgot {
                CodePurpose::Reset
            } else {
                CodePurpose::Verify
            };
            service.request_code(ctx, &b.email, purpose).await?;
            Ok(empty(StatusCode::ACCEPTED))
        }
        Endpoint::EmailVerify => {
            let b: ProofBody = parse(&body)?;
            if b.new_password.is_some() {
                return Err(Problem::BadRequest(
                    "unknown field `new_password`: verification sets no password".into(),
                ));
            }
            service.verify_email(ctx, b.proof()?).await?;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        Endpoint::PasswordReset => {
            let b: ProofBody = parse(&body)?;
            let new_password = b
                .new_password
                .as_deref()
                .ok_or_else(|| Problem::BadRequest("missing field `new_password`".into()))?;
            service
                .reset_password(ctx, b.proof()?, new_password)
                .await?;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        Endpoint::MfaTotp => {
            let token = bearer(&parts.headers)?;
            let EmptyBody {} = parse(&body)?;
            let enrolment = service.enrol_totp(ctx, token).await?;
            Ok(json(StatusCode::OK, &enrolment, NO_STORE))
        }
        Endpoint::MfaTotpActivate => {
            let token = bearer(&parts.headers)?;
            let b: ActivateBody = parse(&body)?;
            let activated = service
                .activate_totp(ctx, token, &b.factor_id, &b.code)
                .await?;
            Ok(json(StatusCode::OK, &activated, NO_STORE))
        }
        Endpoint::MfaRecoveryCodes => {
            let token = bearer(&parts.headers)?;
            let b: TotpCodeBody = parse(&body)?;
            let issued = service
                .regenerate_recovery_codes(ctx, token, &b.code)
                .await?;
            Ok(json(StatusCode::OK, &issued, NO_STORE))
        }
        Endpoint::MfaTotpDisable => {
            let token = bearer(&parts.headers)?;
            let b: SecondFactorBody = parse(&body)?;
            if b.mfa_token.is_some() || b.device_id.is_some() {
                return Err(Problem::BadRequest(
                    "send only `code` or `recovery_code`: `mfa_token` and `device_id` belong to /auth/mfa/verify".into(),
                ));
            }
            service.disable_totp(ctx, token, b.proof()?).await?;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        Endpoint::MfaVerify => {
            let b: SecondFactorBody = parse(&body)?;
            let mfa_token = b
                .mfa_token
                .as_deref()
                .ok_or_else(|| Problem::BadRequest("missing field `mfa_token`".into()))?;
            let tokens = service
                .verify_mfa(ctx, mfa_token, b.proof()?, b.device_id.as_deref())
                .await?;
            Ok(json(StatusCode::OK, &tokens, NO_STORE))
        }
        // Form bodies and RFC 6749 errors: the OAuth module checks and answers the whole request.
        Endpoint::OAuthToken | Endpoint::OAuthRevoke => {
            Ok(oauth::answer(service, endpoint, ctx, &parts.headers, &body).await)
        }
    }
}

/// The metadata document served at both `/.well-known/openid-configuration` and RFC 8414's
/// `/.well-known/oauth-authorization-server`: every URL is the issuer followed by a path of the route
/// table ([`Endpoint::path`]), and it names only what exists and works.
///
/// - The token endpoint takes the `refresh_token` grant only (sessions start at keygate's own
///   `/auth/login`; RFC 9700 section 2.4 rules out the password grant), from public clients.
/// - No authorization endpoint, so `response_types_supported` (REQUIRED by RFC 8414 section 2) is the
///   empty list: present for parsers that require it, naming no response type keygate lacks.
/// - No `registration_endpoint` (`/auth/register` registers users, not RFC 7591 clients), no
///   `id_token_*` or `subject_types_supported` (keygate issues no ID tokens), no `userinfo_endpoint`
///   (`/auth/me` is not OIDC userinfo's shape): keygate's own JSON endpoints are listed by name under
///   the vendor member `keygate_endpoints`.
pub fn discovery(config: &AuthConfig) -> serde_json::Value {
    let url = |endpoint: Endpoint| format!("{}{}", config.issuer, endpoint.path());
    let alg = config.signing_alg.name();
    let keygate_endpoints: serde_json::Map<String, serde_json::Value> = Endpoint::ALL
        .iter()
        .filter(|e| {
            !e.speaks_oauth()
                && !matches!(
                    e,
                    Endpoint::Jwks | Endpoint::Discovery | Endpoint::OAuthMetadata
                )
        })
        .map(|&e| (e.name().to_owned(), url(e).into()))
        .collect();
    serde_json::json!({
        "issuer": config.issuer,
        "jwks_uri": url(Endpoint::Jwks),
        "token_endpoint": url(Endpoint::OAuthToken),
        "revocation_endpoint": url(Endpoint::OAuthRevoke),
        "grant_types_supported": ["refresh_token"],
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": ["none"],
        "revocation_endpoint_auth_methods_supported": ["none"],
        "access_token_signing_alg_values_supported": [alg],
        "keygate_endpoints": keygate_endpoints,
    })
}

const NO_STORE: &str = "no-store";

/// Public caching for [`JWKS_MAX_AGE_SECS`], the figure a rotation's lead accounts for (a new key signs
/// only once every JWKS cached before its publication has expired).
static JWKS_CACHE_CONTROL: LazyLock<String> =
    LazyLock::new(|| format!("public, max-age={JWKS_MAX_AGE_SECS}"));

fn require_json(headers: &HeaderMap) -> Result<(), Problem> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence == "application/json" {
        Ok(())
    } else {
        Err(Problem::UnsupportedMediaType)
    }
}

/// Endpoints without input accept an empty body or an empty JSON object, nothing else.
fn reject_body(body: &Bytes) -> Result<(), Problem> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Nothing {}
    if body.is_empty() {
        return Ok(());
    }
    parse::<Nothing>(body).map(|_| ())
}

fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, Problem> {
    if body.is_empty() {
        return Err(Problem::BadRequest(
            "the request body is empty; a JSON object is required".into(),
        ));
    }
    serde_json::from_slice(body).map_err(|e| Problem::BadRequest(describe_json_error(&e)))
}

/// Says what is wrong with a body without echoing its values (which may be passwords or tokens).
fn describe_json_error(error: &serde_json::Error) -> String {
    let message = error.to_string();
    let without_position = message.split(" at line ").next().unwrap_or(&message);
    let names_a_field = ["missing field", "unknown field", "duplicate field"]
        .iter()
        .any(|p| without_position.starts_with(p));
    if names_a_field {
        // Field names come from our own schema or are the client's keys: no secret values.
        let field = without_position.split('`').nth(1).unwrap_or("");
        let kind = without_position.split(" field").next().unwrap_or("");
        return format!("{kind} field `{field}`");
    }
    let what = match error.classify() {
        serde_json::error::Category::Syntax => "the body is not valid JSON",
        serde_json::error::Category::Eof => "the body ends before the JSON value does",
        serde_json::error::Category::Data => {
            "a field has the wrong type (strings expected) or the body is not a JSON object"
        }
        serde_json::error::Category::Io => "the body could not be read",
    };
    format!("{what} (line {}, column {})", error.line(), error.column())
}

/// The bearer token of the `Authorization` header (RFC 6750).
fn bearer(headers: &HeaderMap) -> Result<&str, Problem> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or(Problem::MissingBearer)?;
    let value = value
        .to_str()
        .map_err(|_| Problem::from(AuthError::InvalidAccessToken))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or(Problem::from(AuthError::InvalidAccessToken))?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(AuthError::InvalidAccessToken.into());
    }
    Ok(token)
}

fn json<T: Serialize>(
    status: StatusCode,
    body: &T,
    cache_control: &'static str,
) -> Response<Bytes> {
    let bytes = serde_json::to_vec(body).expect("response types serialise");
    let mut response = Response::new(Bytes::from(bytes));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    response
}

fn empty(status: StatusCode) -> Response<Bytes> {
    let mut response = Response::new(Bytes::new());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(NO_STORE));
    response
}

/// Keys or store missing is a temporary condition: 503, so clients and API Gateway retry.
fn is_unavailable(error: &AuthError) -> bool {
    matches!(
        error,
        AuthError::Keys(KeyError::NoValidKeySet(_) | KeyError::Unavailable(_))
            | AuthError::Store(StoreError::Unavailable(_))
    )
}

#[cfg(test)]
mod key_access_tests {
    use super::*;

    #[test]
    fn a_function_needs_the_most_any_of_its_endpoints_needs() {
        let of = |endpoints: &[Endpoint]| KeyAccess::of(endpoints);
        for signer in [Endpoint::Login, Endpoint::Refresh, Endpoint::ChangePassword] {
            assert_eq!(of(&[signer]), KeyAccess::Private, "{signer:?}");
        }
        for verifier in [Endpoint::Me, Endpoint::LogoutAll] {
            assert_eq!(of(&[verifier]), KeyAccess::Public, "{verifier:?}");
        }
        assert_eq!(
            of(&[Endpoint::Jwks, Endpoint::Discovery]),
            KeyAccess::Public
        );
        assert_eq!(of(&[Endpoint::Register]), KeyAccess::None);
        assert_eq!(of(&[Endpoint::Logout]), KeyAccess::None);
        // Revocation verifies the access tokens it denies; the token endpoint signs.
        assert_eq!(
            of(&[Endpoint::Logout, Endpoint::OAuthRevoke]),
            KeyAccess::Public
        );
        assert_eq!(
            of(&[Endpoint::Refresh, Endpoint::OAuthToken]),
            KeyAccess::Private
        );
        assert_eq!(of(&[Endpoint::OAuthMetadata]), KeyAccess::None);
        assert_eq!(of(&[Endpoint::Discovery]), KeyAccess::None);
        assert_eq!(of(&[Endpoint::Me, Endpoint::Login]), KeyAccess::Private);
        assert_eq!(of(&[]), KeyAccess::None);
    }
}

#[cfg(test)]
mod discovery_tests {
    use super::*;

    /// Exactly what exists: the OAuth endpoints, no password grant, no registration, userinfo or ID
    /// token members; keygate's JSON endpoints under the vendor member.
    #[test]
    fn the_document_names_what_exists_and_nothing_else() {
        let config = AuthConfig::with_issuer("https://a.example");
        let i = "https://a.example";
        assert_eq!(
            discovery(&config),
            serde_json::json!({
                "issuer": i,
                "jwks_uri": format!("{i}/.well-known/jwks.json"),
                "token_endpoint": format!("{i}/oauth/token"),
                "revocation_endpoint": format!("{i}/oauth/revoke"),
                "grant_types_supported": ["refresh_token"],
                "response_types_supported": [],
                "token_endpoint_auth_methods_supported": ["none"],
                "revocation_endpoint_auth_methods_supported": ["none"],
                "access_token_signing_alg_values_supported": ["ES256"],
                "keygate_endpoints": {
                    "register": format!("{i}/auth/register"),
                    "login": format!("{i}/auth/login"),
                    "refresh": format!("{i}/auth/refresh"),
                    "logout": format!("{i}/auth/logout"),
                    "logout_all": format!("{i}/auth/logout-all"),
                    "password": format!("{i}/auth/password"),
                    "me": format!("{i}/auth/me"),
                    "openapi": format!("{i}/openapi.json"),
                    "email_verification": format!("{i}/auth/email/verification"),
                    "email_verify": format!("{i}/auth/email/verify"),
                    "password_forgot": format!("{i}/auth/password/forgot"),
                    "password_reset": format!("{i}/auth/password/reset"),
                    "mfa_totp": format!("{i}/auth/mfa/totp"),
                    "mfa_totp_activate": format!("{i}/auth/mfa/totp/activate"),
                    "mfa_recovery_codes": format!("{i}/auth/mfa/recovery-codes"),
                    "mfa_totp_disable": format!("{i}/auth/mfa/totp/disable"),
                    "mfa_verify": format!("{i}/auth/mfa/verify"),
                },
            })
        );
    }
}
