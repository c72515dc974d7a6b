//! The OAuth 2.0 endpoints: `POST /oauth/token` (RFC 6749 section 6, the `refresh_token` grant)
//! and `POST /oauth/revoke` (RFC 7009). Requests are `application/x-www-form-urlencoded`; every
//! error is an RFC 6749 section 5.2 JSON body `{error, error_description}`, mapped here and only
//! here. Both call the same service functions as `/auth/refresh` and `/auth/logout`, so rotation,
//! reuse detection, grace, device binding and the family cap have one code path.
//!
//! Clients are public (`token_endpoint_auth_methods_supported: ["none"]`): a request names its
//! `client_id` in the body, which must be one of `KEYGATE_OAUTH_CLIENT_IDS`, and carries no
//! `Authorization` header (keygate holds no client secrets, so a credential could not be checked).

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};
use keygate_core::audit::RequestContext;
use keygate_core::keys::KeySource;
use keygate_core::service::TokenKind;
use keygate_core::store::AuthStore;
use keygate_core::{AuthError, AuthService, Clock};

use crate::{Endpoint, MAX_BODY_BYTES, is_unavailable};

/// What an OAuth request can fail with, each one RFC 6749 (or RFC 7009) error code.
#[derive(Debug)]
enum OAuthError {
    /// Missing, empty or repeated parameter, wrong content type, malformed form. The description
    /// names parameters of keygate's own list, never a value.
    InvalidRequest(String),
    /// Missing or unknown `client_id`, or an `Authorization` header (no credential can be checked).
    InvalidClient(&'static str),
    /// The refresh token is unknown, used, reused, expired, revoked or bound to another device:
    /// deliberately one answer.
    InvalidGrant,
    UnsupportedGrantType,
    /// keygate grants no scopes, so a refresh cannot ask for one (RFC 6749 section 6).
    InvalidScope,
    PayloadTooLarge,
    /// The store or the key set is unavailable (503), or something failed on the server (500).
    Server(AuthError),
}

impl From<AuthError> for OAuthError {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::InvalidRefreshToken => OAuthError::InvalidGrant,
            other => OAuthError::Server(other),
        }
    }
}

/// Answers a request to an OAuth endpoint (`endpoint` is one of [`Endpoint::speaks_oauth`]).
pub(crate) async fn answer<S, K, C>(
    service: &AuthService<S, K, C>,
    endpoint: Endpoint,
    ctx: &RequestContext,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response<Bytes>
where
    S: AuthStore,
    K: KeySource,
    C: Clock,
{
    let result = match endpoint {
        Endpoint::OAuthToken => token(service, ctx, headers, body).await,
        _ => revoke(service, ctx, headers, body).await,
    };
    result.unwrap_or_else(|error| error_response(&error, ctx))
}

/// RFC 6749 section 6: `grant_type=refresh_token`, `refresh_token`, `client_id`, optional
/// `device_id` (keygate's device binding, as on `/auth/refresh`).
async fn token<S: AuthStore, K: KeySource, C: Clock>(
    service: &AuthService<S, K, C>,
    ctx: &RequestContext,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response<Bytes>, OAuthError> {
    let form = Form::read(headers, body)?;
    check_client(service, headers, form.get("client_id")?, true)?;
    match form.require("grant_type")? {
        "refresh_token" => {}
        // `password` included: RFC 9700 section 2.4 says it must not be offered.
        _ => return Err(OAuthError::UnsupportedGrantType),
    }
    let refresh_token = form.require("refresh_token")?;
    if form.get("scope")?.is_some() {
        return Err(OAuthError::InvalidScope);
    }
    let device_id = form.get("device_id")?;
    let tokens = service.refresh(ctx, refresh_token, device_id).await?;
    let body = serde_json::to_vec(&tokens).expect("the token response serialises");
    Ok(respond(StatusCode::OK, Bytes::from(body)))
}

/// RFC 7009: `token`, optional `token_type_hint`, optional `client_id`. 200 with an empty body
/// whether or not the token was live (section 2.2), so the answer reveals nothing.
async fn revoke<S: AuthStore, K: KeySource, C: Clock>(
    service: &AuthService<S, K, C>,
    ctx: &RequestContext,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response<Bytes>, OAuthError> {
    let form = Form::read(headers, body)?;
    // Optional: RFC 7009 section 2.1 asks client authentication of confidential clients only, and
    // a public client's id proves nothing, so requiring it would refuse standard clients that omit
    // it and protect nothing (holding the token is what revocation needs). When sent, it must be
    // known, so a misconfigured client learns it at once.
    check_client(service, headers, form.get("client_id")?, false)?;
    let token = form.require("token")?;
    // Values other than the two RFC 7009 defines are ignored: the hint only orders the search.
    let hint = match form.get("token_type_hint")? {
        Some("access_token") => Some(TokenKind::Access),
        Some("refresh_token") => Some(TokenKind::Refresh),
        _ => None,
    };
    service.revoke(ctx, token, hint).await?;
    Ok(respond(StatusCode::OK, Bytes::new()))
}

/// The client is public: `client_id` in the body, one of the configured ids; no `Authorization`.
fn check_client<S: AuthStore, K: KeySource, C: Clock>(
    service: &AuthService<S, K, C>,
    headers: &HeaderMap,
    client_id: Option<&str>,
    required: bool,
) -> Result<(), OAuthError> {
    if headers.contains_key(header::AUTHORIZATION) {
        return Err(OAuthError::InvalidClient(
            "clients are public: send `client_id` in the body and no Authorization header",
        ));
    }
    match client_id {
        Some(id) if service.config().accepts_client(id) => Ok(()),
        Some(_) => Err(OAuthError::InvalidClient("unknown `client_id`")),
        None if required => Err(OAuthError::InvalidClient(
            "the `client_id` parameter is missing",
        )),
        None => Ok(()),
    }
}

/// The parameters of an `application/x-www-form-urlencoded` body, decoded strictly: `+` is a
/// space, `%XX` must be two hex digits, and names and values must decode to UTF-8. A parameter sent
/// without a value is treated as omitted, and unknown parameters are ignored (RFC 6749 section 3.2).
struct Form(Vec<(String, String)>);

impl Form {
    fn read(headers: &HeaderMap, body: &Bytes) -> Result<Form, OAuthError> {
        if body.len() > MAX_BODY_BYTES {
            return Err(OAuthError::PayloadTooLarge);
        }
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let essence = content_type.split(';').next().unwrap_or("").trim();
        if !essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
            return Err(OAuthError::InvalidRequest(
                "send the body as application/x-www-form-urlencoded".into(),
            ));
        }
        let malformed = || {
            OAuthError::InvalidRequest(
                "the body is not a valid form (percent-encoding or UTF-8)".into(),
            )
        };
        let pairs = body
            .split(|&b| b == b'&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (name, value) = match pair.iter().position(|&b| b == b'=') {
                    Some(at) => (&pair[..at], &pair[at + 1..]),
                    None => (pair, &b""[..]),
                };
                Ok((
                    percent_decode(name).ok_or_else(malformed)?,
                    percent_decode(value).ok_or_else(malformed)?,
                ))
            })
            .collect::<Result<Vec<_>, OAuthError>>()?;
        Ok(Form(pairs))
    }

    /// The value of `name`, `None` when absent or empty; a repeated parameter is an error (RFC 6749
    /// section 3.2: parameters must not be included more than once).
    fn get(&self, name: &'static str) -> Result<Option<&str>, OAuthError> {
        let mut values = self.0.iter().filter(|(n, _)| n == name).map(|(_, v)| v);
        let first = values.next();
        if values.next().is_some() {
            return Err(OAuthError::InvalidRequest(format!(
                "the `{name}` parameter is repeated"
            )));
        }
        Ok(first.map(String::as_str).filter(|v| !v.is_empty()))
    }

    fn require(&self, name: &'static str) -> Result<&str, OAuthError> {
        self.get(name)?
            .ok_or_else(|| OAuthError::InvalidRequest(format!("the `{name}` parameter is missing")))
    }
}

fn percent_decode(input: &[u8]) -> Option<String> {
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let high = hex(*input.get(i + 1)?)?;
                let low = hex(*input.get(i + 2)?)?;
                out.push((high * 16 + low) as u8);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// A JSON (or empty) OAuth response, never cached (RFC 6749 section 5.1: `no-store`, `no-cache`).
fn respond(status: StatusCode, body: Bytes) -> Response<Bytes> {
    let json = !body.is_empty();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if json {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// The single mapping from an OAuth error to its status, code and description (RFC 6749 section
/// 5.2; descriptions stay within its allowed characters and never hold a request value).
fn error_response(error: &OAuthError, ctx: &RequestContext) -> Response<Bytes> {
    let (status, code, description): (StatusCode, &str, &str) = match error {
        OAuthError::InvalidRequest(detail) => (StatusCode::BAD_REQUEST, "invalid_request", detail),
        OAuthError::InvalidClient(detail) => (StatusCode::UNAUTHORIZED, "invalid_client", detail),
        OAuthError::InvalidGrant => (
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "the refresh token is invalid, expired or revoked",
        ),
        OAuthError::UnsupportedGrantType => (
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "the only grant type is refresh_token",
        ),
        OAuthError::InvalidScope => (
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "keygate grants no scopes; send no `scope`",
        ),
        // The status says what happened; the body stays one an OAuth client can read.
        OAuthError::PayloadTooLarge => (
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request",
            "request bodies are limited to 16 KiB",
        ),
        OAuthError::Server(e) if is_unavailable(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "the service cannot answer right now; retry shortly",
        ),
        OAuthError::Server(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "the request could not be completed",
        ),
    };
    if let OAuthError::Server(error) = error {
        // Domain errors never hold secrets: they name what failed, not the input.
        tracing::error!(target: "keygate::error", request_id = %ctx.request_id, correlation_id = %ctx.correlation_id, error = %error, "request failed");
    }
    let body = serde_json::json!({"error": code, "error_description": description});
    let mut response = respond(status, Bytes::from(body.to_string()));
    let headers = response.headers_mut();
    match error {
        // RFC 6749 section 5.2 asks a challenge with a 401; Basic is the scheme its section 2.3.1
        // defines for clients. keygate's clients are public and send no credential.
        OAuthError::InvalidClient(_) => {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"keygate\""),
            );
        }
        OAuthError::Server(e) if is_unavailable(e) => {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        _ => {}
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every code `error_response` can answer equals the OpenAPI document's `OAuthError.error` enum.
    /// The match makes a new variant fail to compile here until it is listed.
    #[test]
    fn the_openapi_document_lists_exactly_the_oauth_error_codes() {
        let errors = [
            OAuthError::InvalidRequest("bad".into()),
            OAuthError::InvalidClient("unknown"),
            OAuthError::InvalidGrant,
            OAuthError::UnsupportedGrantType,
            OAuthError::InvalidScope,
            OAuthError::PayloadTooLarge,
            OAuthError::Server(AuthError::Store(
                keygate_core::store::StoreError::Unavailable("down".into()),
            )),
            OAuthError::Server(AuthError::Internal("bug".into())),
        ];
        for error in &errors {
            match error {
                OAuthError::InvalidRequest(_)
                | OAuthError::InvalidClient(_)
                | OAuthError::InvalidGrant
                | OAuthError::UnsupportedGrantType
                | OAuthError::InvalidScope
                | OAuthError::PayloadTooLarge
                | OAuthError::Server(_) => {}
            }
        }
        let ctx = RequestContext {
            request_id: "r".into(),
            correlation_id: "c".into(),
            audit_key: keygate_testkit::fixtures::test_audit_key(),
        };
        let mut emitted: Vec<String> = errors
            .iter()
            .map(|e| {
                let body: serde_json::Value =
                    serde_json::from_slice(error_response(e, &ctx).body()).unwrap();
                body["error"].as_str().unwrap().to_owned()
            })
            .collect();
        emitted.sort();
        emitted.dedup();
        assert_eq!(
            crate::openapi::documented_enum("OAuthError", "error"),
            emitted
        );
    }

    #[test]
    fn forms_decode_strictly() {
        assert_eq!(percent_decode(b"a+b%2Bc%3d").as_deref(), Some("a b+c="));
        assert_eq!(percent_decode(b"%C3%A9").as_deref(), Some("\u{e9}"));
        for bad in [&b"%"[..], b"%4", b"%zz", b"%FF", b"\xff"] {
            assert_eq!(percent_decode(bad), None, "{bad:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn decoding_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let _ = percent_decode(&bytes);
        }
    }
}
