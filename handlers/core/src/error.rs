//! What can go wrong in an endpoint, in terms a client is told (the HTTP layer maps each variant to a
//! status and a problem document in one place).

use crate::crypto::RandomUnavailable;
use crate::keys::KeyError;
use crate::password::{PasswordError, PolicyViolation};
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("the email address is not valid")]
    InvalidEmail,
    #[error(transparent)]
    PasswordPolicy(#[from] PolicyViolation),
    /// Wrong email, wrong password or throttled account: deliberately one variant.
    #[error("the email or password is wrong, or the account is temporarily throttled")]
    InvalidCredentials,
    #[error("the refresh token is invalid, expired or revoked")]
    InvalidRefreshToken,
    #[error("the access token is missing, invalid, expired or revoked")]
    InvalidAccessToken,
    /// The right password, but the account's email is not verified and the deployment requires it.
    #[error("the account's email address is not verified yet")]
    EmailNotVerified,
    /// A verification or reset link or code that is unknown, used, expired, superseded or out of
    /// attempts: deliberately one variant.
    #[error("the link or code is invalid, used or expired")]
    InvalidCode,
    /// The right password for an account with an active second factor: the login continues at
    /// POST /auth/mfa/verify with the challenge's token.
    #[error("a second factor is required to complete this login")]
    MfaRequired(MfaChallengeIssued),
    /// A TOTP or recovery code (or an `mfa_token`) that is wrong, spent, expired, out of attempts
    /// or throttled: deliberately one variant.
    #[error("the second-factor code or token is invalid, used or expired")]
    InvalidSecondFactor,
    /// The session authenticated too long ago for this change; log in again.
    #[error("this change needs a login within the last {0} seconds")]
    RecentLoginRequired(u64),
    #[error("a second factor is already active")]
    MfaAlreadyEnabled,
    #[error("no second factor is active")]
    MfaNotEnabled,
    /// The factor changed between reading and writing it (another enrolment); the request may be
    /// retried.
    #[error("the second factor changed concurrently; retry")]
    FactorChanged,
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<RandomUnavailable> for AuthError {
    fn from(e: RandomUnavailable) -> Self {
        AuthError::Internal(e.to_string())
    }
}

impl From<PasswordError> for AuthError {
    fn from(e: PasswordError) -> Self {
        AuthError::Internal(e.to_string())
    }
}

/// What the client needs to continue a login at its second step (the `mfa-required` problem's
/// members). Lives here, not in `crate::mfa`, because it travels inside [`AuthError`].
#[derive(Clone, serde::Serialize)]
pub struct MfaChallengeIssued {
    /// Opaque; stored only hashed ([`crate::mfa::MfaToken`]).
    pub mfa_token: String,
    pub expires_in: u64,
    /// The factors the second step accepts ([`crate::mfa::FACTOR_TOTP`] and friends).
    pub factors: Vec<&'static str>,
}

impl std::fmt::Debug for MfaChallengeIssued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MfaChallengeIssued")
            .field("mfa_token", &"..")
            .field("expires_in", &self.expires_in)
            .field("factors", &self.factors)
            .finish()
    }
}
