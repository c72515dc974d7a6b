//! keygate's domain: everything an auth endpoint decides, with no AWS SDK and no HTTP server.
//!
//! Adapters implement the ports in [`store`] and [`keys::KeySource`]; the HTTP layer turns requests into
//! calls on [`service::AuthService`] and its errors into problem documents.

pub mod algorithm;
pub mod audit;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod device;
pub mod email;
pub mod email_code;
pub mod error;
pub mod keys;
pub mod mail;
pub mod mfa;
pub mod password;
pub mod refresh;
pub mod rotation;
pub mod service;
pub mod store;
pub mod throttle;
pub mod tokens;

pub use algorithm::SigningAlgorithm;
pub use clock::{Clock, SystemClock};
pub use config::{AuthConfig, ConfigError, Setting};
pub use error::AuthError;
pub use keys::{KeySet, KeySource};
pub use service::AuthService;
