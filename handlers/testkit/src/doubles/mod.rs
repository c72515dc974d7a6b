//! Test doubles for core's ports: in-process, deterministic, and each as small as its contract.

mod audit_capture;
mod clock;
mod guarded;
mod keys;
mod memory_store;
mod version_store;

pub use audit_capture::{AuditCapture, audit_capture};
pub use clock::ManualClock;
pub use guarded::Guarded;
pub use keys::StaticKeySource;
pub use memory_store::MemoryStore;
pub use version_store::MemoryVersionStore;
