//! keygate's test kit: the store behaviour suite that every [`AuthStore`] adapter runs, so the
//! embedded store and the DynamoDB adapter cannot drift apart, and the test doubles other layers'
//! tests use.
//!
//! - [`fixtures`]: fixed instants, passwords and configuration, fresh emails, users and records.
//! - [`doubles`]: [`MemoryStore`](doubles::MemoryStore) (the port's contract in a few lines),
//!   [`MemoryVersionStore`](doubles::MemoryVersionStore), [`ManualClock`](doubles::ManualClock),
//!   [`StaticKeySource`](doubles::StaticKeySource), [`Guarded`](doubles::Guarded) and the audit
//!   event capture.
//! - [`port_contract`]: the port's contract, called directly: put-if-absent users, the conditional
//!   updates, the rotation's checks and their order, expiry on read, family revocation, races.
//! - [`service_rules`]: the endpoints' security rules through [`AuthService`] with a manual clock and
//!   a generated ES256 key (`service_*`), so each store is shown to carry them.
//! - [`email_rules`]: email verification and password reset through the service (`email_*`), the
//!   mails read back from the store's outbox as a user reads their inbox.
//! - [`mfa_rules`]: second factors through the service (`mfa_*`), with an RFC 6238 code generator
//!   as the authenticator app.
//! - [`store_behaviour_tests!`]: one `#[test]` per behaviour of the four:
//!
//! ```ignore
//! // tests/behaviour.rs of a store crate (dev-dependency: keygate-testkit)
//! use my_store::MyStore;
//! keygate_testkit::store_behaviour_tests!(async { MyStore::connect().await.unwrap() });
//! ```
//!
//! Each behaviour is a `pub async fn name<S: AuthStore>(store: S)` that panics on failure. The
//! macro's argument is any expression of a future (an `async` block, a call of an `async fn`) whose
//! output is the store; it is evaluated once per test, inside a multi-threaded tokio runtime.
//! Every behaviour uses fresh random emails, so a store shared between tests (one DynamoDB table)
//! works. When a store needs something kept alive beside it (a temporary directory, a server
//! process), wrap both in [`Guarded`](doubles::Guarded).
//!
//! Password hashing keeps the configured defaults (argon2id at OWASP's cost): the suite proves the
//! rules as deployed. The workspace's dev profile optimises argon2 so that stays fast.
//!
//! [`AuthStore`]: keygate_core::store::AuthStore
//! [`AuthService`]: keygate_core::AuthService

pub mod doubles;
pub mod email_rules;
pub mod fixtures;
mod macros;
pub mod mfa_rules;
pub mod port_contract;
pub mod service_rules;
