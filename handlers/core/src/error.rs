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
