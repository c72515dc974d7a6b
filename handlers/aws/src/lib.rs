//! keygate's AWS adapters: what the core's ports become on AWS. No Lambda runtime here: the shell every
//! function binary runs is `keygate-lambda` (`handlers/lambda`), and the local server uses these
//! adapters without it.
//!
//! - [`dynamo::DynamoStore`]: users and refresh tokens in the single DynamoDB table.
//! - [`secrets::SecretsManagerVersions`]: the signing-key secret as a
//!   [`keygate_core::rotation::SecretVersionStore`], which gives both the cached key source
//!   ([`secrets::SecretsManagerKeySource`]) and the rotation function's four steps ([`rotation`]).
//! - [`ses::SesMailer`]: the core's mail port on Amazon SES v2, and [`outbox_stream`]: the mailer
//!   function's delivery of the outbox items the table's stream carries.
//! - [`sdk`]: one AWS SDK configuration per execution environment, with the retry policy chosen here.
//! - [`settings`]: the adapters' own settings (table, secrets, metrics namespace).

pub mod dynamo;
pub mod outbox_stream;
pub mod rotation;
pub mod sdk;
pub mod secrets;
pub mod ses;
pub mod settings;

pub use dynamo::DynamoStore;
pub use secrets::{SecretsManagerKeySource, SecretsManagerVersions};
