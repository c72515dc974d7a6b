//! A key source without a store behind it.

use std::sync::Arc;

use keygate_core::keys::{KeyError, KeySet, KeySource};

/// A key set that never changes during the process.
#[derive(Debug, Clone)]
pub struct StaticKeySource(pub Arc<KeySet>);

impl KeySource for StaticKeySource {
    async fn key_set(&self) -> Result<Arc<KeySet>, KeyError> {
        Ok(self.0.clone())
    }
}
