//! keygate on AWS Lambda: what the function binary (`handlers/functions`) runs, over the adapters of
//! keygate-aws. Only that binary depends on this crate, so the Lambda runtime never reaches the local
//! server.
//!
//! - [`functions`]: the Lambda functions, the endpoints each serves, and whether they use the table.
//! - [`shell`]: `main` of every function: configuration, clients and keys at init, then the runtime loop.
//! - [`telemetry`]: JSON logs and CloudWatch EMF metrics.
//! - [`contract`]: `cdk/contract.json`, the facts the CDK reads (functions, settings, metrics).

pub mod contract;
pub mod functions;
pub mod shell;
pub mod telemetry;

pub use shell::{run_function_from_env, run_http, run_rotation};
