//! keygate on AWS Lambda: what every function binary (`handlers/functions/<name>`) runs, over the
//! adapters of keygate-aws. Only the function binaries depend on this crate, so the Lambda runtime
//! never reaches the local server.
//!
//! - [`functions`]: the Lambda functions, the endpoints each serves, and whether they use the table.
//! - [`shell`]: `main` of every function: configuration, clients and keys at init, then the runtime loop.
//! - [`telemetry`]: JSON logs and CloudWatch EMF metrics.
//! - [`contract`]: `cdk/contract.json`, the facts the CDK reads (functions, settings, metrics).

pub mod contract;
pub mod functions;
pub mod shell;
pub mod telemetry;

pub use shell::{run_http, run_rotation};
