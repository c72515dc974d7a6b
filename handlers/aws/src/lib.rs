//! keygate on AWS: the adapters behind the core's ports and the shell every Lambda binary runs.
//!
//! - [`dynamo::DynamoStore`]: users and refresh tokens in the single DynamoDB table.
//! - [`secrets::SecretsManagerVersions`]: the signing-key secret as a
//!   [`keygate_core::rotation::SecretVersionStore`], which gives both the cached key source
//!   ([`secrets::SecretsManagerKeySource`]) and the rotation function's four steps.
//! - [`sdk`]: one AWS SDK configuration per execution environment, with the retry policy chosen here.
//! - [`telemetry`]: JSON logs and CloudWatch EMF metrics.
//! - [`functions`]: the Lambda functions and the endpoints each serves.
//! - [`contract`]: `cdk/contract.json`, the facts the CDK reads (functions, settings, metrics).
//! - [`shell`]: `main` of every function: configuration, clients and keys at init, then the runtime loop.

pub mod contract;
pub mod dynamo;
pub mod functions;
pub mod sdk;
pub mod secrets;
pub mod settings;
pub mod shell;
pub mod telemetry;

pub use dynamo::DynamoStore;
pub use secrets::{SecretsManagerKeySource, SecretsManagerVersions};
