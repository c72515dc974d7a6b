//! keygate's domain: everything an auth endpoint decides, with no AWS SDK and no HTTP server.
//!
//! Adapters implement the ports in [`store`] and [`keys::KeySource`]; the HTTP layer turns requests into
//! calls on [`service::AuthService`] and its errors into problem documents.

pub mod audit;
pub mod clock;
pub mod config;
pub mod device;
pub mod error;
pub mod keys;
pub mod password;
pub mod refresh;
pub mod rotation;
pub mod service;
pub mod store;
pub mod throttle;
pub mod tokens;

#[cfg(feature = "testkit")]
pub mod testkit;

pub use clock::{Clock, SystemClock};
pub use config::{AuthConfig, ConfigError, Setting};
pub use error::AuthError;
pub use keys::{KeySet, KeySource, SigningAlgorithm};
pub use service::AuthService;
