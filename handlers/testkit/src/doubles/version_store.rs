//! A secret's versions and staging labels in memory, as Secrets Manager keeps them.

use std::collections::BTreeMap;
use std::sync::Mutex;

use keygate_core::rotation::{
    AWSCURRENT, AWSPENDING, AWSPREVIOUS, RotationError, SecretVersionStore,
};

/// Versions by id: value (if any) and staging labels.
type MemoryVersions = BTreeMap<String, (Option<String>, Vec<String>)>;

/// A version store in memory: for tests of rotation and key sources.
#[derive(Debug, Default)]
pub struct MemoryVersionStore {
    inner: Mutex<MemoryVersions>,
    /// The last public key set written.
    public: Mutex<Option<String>>,
    /// When set, every call fails (to test outages).
    pub fail: std::sync::atomic::AtomicBool,
}

impl MemoryVersionStore {
    /// A store whose `AWSCURRENT` version `version_id` holds `value`.
    pub fn with_current(version_id: &str, value: &str) -> Self {
        let store = Self::default();
        store.lock().insert(
            version_id.to_owned(),
            (Some(value.to_owned()), vec![AWSCURRENT.to_owned()]),
        );
        store
    }

    /// The public key set the last rotation step wrote.
    pub fn published(&self) -> Option<String> {
        self.public
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryVersions> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The injected failure while [`fail`](Self::fail) is set, what every call answers first; views
    /// built on this store answer it too.
    pub fn check(&self) -> Result<(), RotationError> {
        if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            Err(RotationError::Store("injected failure".into()))
        } else {
            Ok(())
        }
    }
}

/// Labels `stage` onto `to` only, as Secrets Manager does (a label is on one version at most).
fn move_label(
    versions: &mut BTreeMap<String, Vec<String>>,
    stage: &str,
    to: Option<&str>,
    from: Option<&str>,
) {
    if let Some(from) = from
        && let Some(stages) = versions.get_mut(from)
    {
        stages.retain(|s| s != stage);
    }
    if let Some(to) = to {
        for (id, stages) in versions.iter_mut() {
            if id != to {
                stages.retain(|s| s != stage);
            }
        }
        let stages = versions.entry(to.to_owned()).or_default();
        if !stages.iter().any(|s| s == stage) {
            stages.push(stage.to_owned());
        }
    }
}

impl SecretVersionStore for MemoryVersionStore {
    async fn versions(&self) -> Result<BTreeMap<String, Vec<String>>, RotationError> {
        self.check()?;
        Ok(self
            .lock()
            .iter()
            .map(|(id, (_, stages))| (id.clone(), stages.clone()))
            .collect())
    }

    async fn value_at_stage(&self, stage: &str) -> Result<Option<String>, RotationError> {
        self.check()?;
        Ok(self
            .lock()
            .values()
            .find(|(_, stages)| stages.iter().any(|s| s == stage))
            .and_then(|(value, _)| value.clone()))
    }

    async fn value_of_version(&self, version_id: &str) -> Result<Option<String>, RotationError> {
        self.check()?;
        Ok(self
            .lock()
            .get(version_id)
            .and_then(|(value, _)| value.clone()))
    }

    async fn put_pending(&self, version_id: &str, value: &str) -> Result<(), RotationError> {
        self.check()?;
        let mut inner = self.lock();
        inner
            .entry(version_id.to_owned())
            .or_insert_with(|| (None, Vec::new()))
            .0 = Some(value.to_owned());
        let mut labels: BTreeMap<String, Vec<String>> = inner
            .iter()
            .map(|(id, (_, s))| (id.clone(), s.clone()))
            .collect();
        move_label(&mut labels, AWSPENDING, Some(version_id), None);
        for (id, stages) in labels {
            if let Some(entry) = inner.get_mut(&id) {
                entry.1 = stages;
            }
        }
        Ok(())
    }

    async fn update_stage(
        &self,
        stage: &str,
        to: Option<&str>,
        from: Option<&str>,
    ) -> Result<(), RotationError> {
        self.check()?;
        let mut inner = self.lock();
        if let Some(to) = to
            && !inner.contains_key(to)
        {
            return Err(RotationError::UnknownVersion(to.to_owned()));
        }
        let mut labels: BTreeMap<String, Vec<String>> = inner
            .iter()
            .map(|(id, (_, s))| (id.clone(), s.clone()))
            .collect();
        move_label(&mut labels, stage, to, from);
        if stage == AWSCURRENT
            && let (Some(from), Some(_)) = (from, to)
        {
            move_label(&mut labels, AWSPREVIOUS, Some(from), None);
        }
        for (id, stages) in labels {
            if let Some(entry) = inner.get_mut(&id) {
                entry.1 = stages;
            }
        }
        Ok(())
    }

    async fn publish_public(&self, value: &str) -> Result<(), RotationError> {
        self.check()?;
        *self
            .public
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(value.to_owned());
        Ok(())
    }
}
