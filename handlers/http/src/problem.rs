//! RFC 9457 problem documents: the single mapping from every error of keygate's JSON routes (and of
//! routing) to a status and a body. The OAuth endpoints map theirs in [`crate::oauth`].

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Response, StatusCode};
use keygate_core::AuthError;
use keygate_core::audit::RequestContext;
use serde_json::json;

use crate::is_unavailable;

/// Everything a request can fail with: transport-level rejections and the domain's errors.
#[derive(Debug)]
pub enum Problem {
    NotFound,
    MethodNotAllowed(Method),
    PayloadTooLarge,
    HeadersTooLarge,
    UnsupportedMediaType,
    /// The shell is already running as many password hashes as it has cores, and its queue is full.
    Busy,
    BadRequest(String),
    MissingBearer,
    Auth(AuthError),
}

impl From<AuthError> for Problem {
    fn from(error: AuthError) -> Self {
        Problem::Auth(error)
    }
}

struct Shape {
    status: StatusCode,
    slug: &'static str,
    title: &'static str,
    detail: String,
}

fn shape(problem: &Problem) -> Shape {
    let s = |status, slug, title, detail: &str| Shape {
        status,
        slug,
        title,
        detail: detail.to_owned(),
    };
    match problem {
        Problem::NotFound => s(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not found",
            "no such endpoint",
        ),
        Problem::MethodNotAllowed(allowed) => Shape {
            status: StatusCode::METHOD_NOT_ALLOWED,
            slug: "method-not-allowed",
            title: "Method not allowed",
            detail: format!("this endpoint accepts {allowed} only"),
        },
        Problem::PayloadTooLarge => s(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            "Request body too large",
            "request bodies are limited to 16 KiB",
        ),
        Problem::HeadersTooLarge => s(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "request-header-fields-too-large",
            "Request headers too large",
            "request headers are limited to 10 KiB in all",
        ),
        Problem::Busy => s(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "Too many password checks in progress",
            "the server is hashing as many passwords as it can; retry shortly",
        ),
        Problem::UnsupportedMediaType => s(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            "send the body as application/json",
        ),
        Problem::BadRequest(detail) => s(
            StatusCode::BAD_REQUEST,
            "invalid-request",
            "Invalid request",
            detail,
        ),
        Problem::MissingBearer => s(
            StatusCode::UNAUTHORIZED,
            "missing-access-token",
            "Access token required",
            "send an access token as `Authorization: Bearer <token>`",
        ),
        Problem::Auth(error) => match error {
            AuthError::InvalidEmail => s(
                StatusCode::BAD_REQUEST,
                "invalid-email",
                "Invalid email",
                &error.to_string(),
            ),
            AuthError::PasswordPolicy(violation) => s(
                StatusCode::BAD_REQUEST,
                "password-policy",
                "Password does not meet the policy",
                &violation.to_string(),
            ),
            AuthError::InvalidCredentials => s(
                StatusCode::UNAUTHORIZED,
                "invalid-credentials",
                "Invalid credentials",
                &error.to_string(),
            ),
            AuthError::InvalidRefreshToken => s(
                StatusCode::UNAUTHORIZED,
                "invalid-refresh-token",
                "Invalid refresh token",
                &error.to_string(),
            ),
            AuthError::InvalidAccessToken => s(
                StatusCode::UNAUTHORIZED,
                "invalid-access-token",
                "Invalid access token",
                &error.to_string(),
            ),
            AuthError::EmailNotVerified => s(
                StatusCode::FORBIDDEN,
                "email-not-verified",
                "Email not verified",
                "verify the email address with the link or code mailed to it, or ask for a new mail at /auth/email/verification",
            ),
            AuthError::InvalidCode => s(
                StatusCode::BAD_REQUEST,
                "invalid-code",
                "Invalid link or code",
                &error.to_string(),
            ),
            AuthError::MfaRequired(_) => s(
                StatusCode::FORBIDDEN,
                "mfa-required",
                "Second factor required",
                "the password is right; complete the login at /auth/mfa/verify with `mfa_token` and a TOTP `code` or a `recovery_code`",
            ),
            AuthError::InvalidSecondFactor => s(
                StatusCode::UNAUTHORIZED,
                "invalid-second-factor",
                "Invalid second factor",
                &error.to_string(),
            ),
            AuthError::RecentLoginRequired(_) => s(
                StatusCode::FORBIDDEN,
                "recent-login-required",
                "Recent login required",
                &error.to_string(),
            ),
            AuthError::MfaAlreadyEnabled => s(
                StatusCode::CONFLICT,
                "mfa-already-enabled",
                "Second factor already active",
                "disable the active TOTP factor before enrolling another",
            ),
            AuthError::MfaNotEnabled => s(
                StatusCode::CONFLICT,
                "mfa-not-enabled",
                "No second factor",
                &error.to_string(),
            ),
            AuthError::FactorChanged => s(
                StatusCode::CONFLICT,
                "factor-changed",
                "Second factor changed",
                &error.to_string(),
            ),
            e if is_unavailable(e) => s(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily-unavailable",
                "Temporarily unavailable",
                "the service cannot answer right now; retry shortly",
            ),
            _ => s(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
                "the request could not be completed",
            ),
        },
    }
}

/// Renders a problem as `application/problem+json`, with the request and correlation ids as extension
/// members so a client can quote them. Server-side failures are logged here, once.
pub fn problem(problem: &Problem, ctx: &RequestContext) -> Response<Bytes> {
    let shape = shape(problem);
    if let Problem::Auth(error) = problem
        && shape.status.is_server_error()
    {
        // Domain errors never hold secrets: they name what failed, not the input.
        tracing::error!(target: "keygate::error", request_id = %ctx.request_id, correlation_id = %ctx.correlation_id, error = %error, "request failed");
    }
    let mut body = json!({
        "type": format!("urn:keygate:problem:{}", shape.slug),
        "title": shape.title,
        "status": shape.status.as_u16(),
        "detail": shape.detail,
        "request_id": ctx.request_id,
        "correlation_id": ctx.correlation_id,
    });
    // The second step's token travels as extension members of the problem (RFC 9457 section 3.2).
    if let Problem::Auth(AuthError::MfaRequired(issued)) = problem
        && let (Some(body), Ok(serde_json::Value::Object(members))) =
            (body.as_object_mut(), serde_json::to_value(issued))
    {
        body.extend(members);
    }
    let mut response = Response::new(Bytes::from(body.to_string()));
    *response.status_mut() = shape.status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    match problem {
        Problem::MethodNotAllowed(allowed) => {
            if let Ok(value) = HeaderValue::from_str(allowed.as_str()) {
                headers.insert(header::ALLOW, value);
            }
        }
        Problem::MissingBearer => {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"keygate\""),
            );
        }
        Problem::Auth(AuthError::InvalidAccessToken) => {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"keygate\", error=\"invalid_token\""),
            );
        }
        Problem::Auth(e) if is_unavailable(e) => {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        Problem::Busy => {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        _ => {}
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use keygate_core::keys::KeyError;
    use keygate_core::password::PolicyViolation;
    use keygate_core::store::StoreError;

    /// One problem of every kind `shape` tells apart. The matches make a new variant of `Problem`
    /// or `AuthError` fail to compile here until it is listed.
    fn every_problem() -> Vec<Problem> {
        let auth = [
            AuthError::InvalidEmail,
            AuthError::PasswordPolicy(PolicyViolation::Common),
            AuthError::InvalidCredentials,
            AuthError::InvalidRefreshToken,
            AuthError::InvalidAccessToken,
            AuthError::EmailNotVerified,
            AuthError::InvalidCode,
            AuthError::MfaRequired(keygate_core::error::MfaChallengeIssued {
                mfa_token: "kgmt_x".into(),
                expires_in: 300,
                factors: vec!["totp"],
            }),
            AuthError::InvalidSecondFactor,
            AuthError::RecentLoginRequired(300),
            AuthError::MfaAlreadyEnabled,
            AuthError::MfaNotEnabled,
            AuthError::FactorChanged,
            AuthError::Keys(KeyError::NoValidKeySet("none yet".into())),
            AuthError::Keys(KeyError::Unavailable("down".into())),
            AuthError::Keys(KeyError::Generation),
            AuthError::Store(StoreError::Unavailable("down".into())),
            AuthError::Store(StoreError::Corrupt("bad item".into())),
            AuthError::Internal("bug".into()),
        ];
        for error in &auth {
            match error {
                AuthError::InvalidEmail
                | AuthError::PasswordPolicy(_)
                | AuthError::InvalidCredentials
                | AuthError::InvalidRefreshToken
                | AuthError::InvalidAccessToken
                | AuthError::EmailNotVerified
                | AuthError::InvalidCode
                | AuthError::MfaRequired(_)
                | AuthError::InvalidSecondFactor
                | AuthError::RecentLoginRequired(_)
                | AuthError::MfaAlreadyEnabled
                | AuthError::MfaNotEnabled
                | AuthError::FactorChanged
                | AuthError::Keys(_)
                | AuthError::Store(_)
                | AuthError::Internal(_) => {}
            }
        }
        let problems: Vec<Problem> = [
            Problem::NotFound,
            Problem::MethodNotAllowed(Method::GET),
            Problem::PayloadTooLarge,
            Problem::HeadersTooLarge,
            Problem::UnsupportedMediaType,
            Problem::Busy,
            Problem::BadRequest("bad".into()),
            Problem::MissingBearer,
        ]
        .into_iter()
        .chain(auth.into_iter().map(Problem::Auth))
        .collect();
        for problem in &problems {
            match problem {
                Problem::NotFound
                | Problem::MethodNotAllowed(_)
                | Problem::PayloadTooLarge
                | Problem::HeadersTooLarge
                | Problem::UnsupportedMediaType
                | Problem::Busy
                | Problem::BadRequest(_)
                | Problem::MissingBearer
                | Problem::Auth(_) => {}
            }
        }
        problems
    }

    #[test]
    fn the_openapi_document_lists_exactly_the_problem_types_keygate_emits() {
        let ctx = keygate_core::audit::RequestContext {
            request_id: "r".into(),
            correlation_id: "c".into(),
            audit_key: keygate_testkit::fixtures::test_audit_key(),
        };
        let mut emitted: Vec<String> = every_problem()
            .iter()
            .map(|p| {
                let body: serde_json::Value =
                    serde_json::from_slice(problem(p, &ctx).body()).unwrap();
                body["type"].as_str().unwrap().to_owned()
            })
            .collect();
        emitted.sort();
        emitted.dedup();
        assert_eq!(crate::openapi::documented_enum("Problem", "type"), emitted);
    }
}
