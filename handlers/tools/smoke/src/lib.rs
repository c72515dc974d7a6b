//! keygate-smoke: a smoke test that any keygate deployment (local server or an AWS stage) must pass.
//! The binary's `--help` describes the checks; the modules are public for the tests.

pub mod client;
pub mod jwt;
pub mod mailbox;
pub mod scenario;
pub mod secrets;
pub mod totp;
