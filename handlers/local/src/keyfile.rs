//! The local server's signing keys as a [`SecretVersionStore`], so the rotation protocol and the cached
//! key source that run against Secrets Manager on AWS run unchanged against files on a laptop.
//!
//! Two files in the data folder, both written atomically (temporary file, fsync, rename) and readable by
//! their owner only:
//! - `keys.json`: the current key-set document, exactly as the local server creates it on first start
//!   (version `AWSCURRENT`);
//! - `keys.rotation.json`: rotation state, `{"current": {"version_id", "kid"} | null,
//!   "pending": {"version_id", "value"} | null}`: the id of the current version (valid while its `kid`
//!   is still the first key of `keys.json`; otherwise the current version is called `initial`) and the
//!   pending version written by `createSecret` until `finishSecret` promotes it.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use keygate_core::keys::KeySetDocument;
use keygate_core::rotation::{
    AWSCURRENT, AWSPENDING, RotationError, SecretVersionStore, VersionedKeySource,
};

pub const KEYS_FILE: &str = "keys.json";
pub const ROTATION_FILE: &str = "keys.rotation.json";
/// Version id of a `keys.json` that no rotation through this store has produced.
pub const INITIAL_VERSION: &str = "initial";

/// A key source that re-reads the local key files once its cache expires.
pub type FileKeySource<C> = VersionedKeySource<FileVersionStore, C>;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RotationState {
    current: Option<CurrentVersion>,
    pending: Option<PendingVersion>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CurrentVersion {
    version_id: String,
    kid: String,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PendingVersion {
    version_id: String,
    value: String,
}

impl std::fmt::Debug for PendingVersion {
    // The value holds private keys.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingVersion")
            .field("version_id", &self.version_id)
            .finish_non_exhaustive()
    }
}

/// The key files in one folder.
#[derive(Debug, Clone)]
pub struct FileVersionStore {
    dir: PathBuf,
}

fn io_error(path: &Path, e: std::io::Error) -> RotationError {
    RotationError::Store(format!("{}: {e}", path.display()))
}

fn first_kid(value: &str) -> Option<String> {
    KeySetDocument::parse(value)
        .ok()
        .map(|doc| doc.keys[0].kid.clone())
}

/// Writes a file readable by its owner only, atomically (temporary file, fsync, rename).
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp)?;
    file.write_all(contents)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)
}

impl FileVersionStore {
    /// The key files in `data_dir` (which must exist).
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: data_dir.into(),
        }
    }

    pub fn keys_path(&self) -> PathBuf {
        self.dir.join(KEYS_FILE)
    }

    pub fn rotation_path(&self) -> PathBuf {
        self.dir.join(ROTATION_FILE)
    }

    fn read_optional(path: &Path) -> Result<Option<String>, RotationError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error(path, e)),
        }
    }

    fn current_value(&self) -> Result<Option<String>, RotationError> {
        Self::read_optional(&self.keys_path())
    }

    fn state(&self) -> Result<RotationState, RotationError> {
        let path = self.rotation_path();
        match Self::read_optional(&path)? {
            None => Ok(RotationState::default()),
            Some(text) => serde_json::from_str(&text)
                .map_err(|e| RotationError::Store(format!("{}: {e}", path.display()))),
        }
    }

    fn write_state(&self, state: &RotationState) -> Result<(), RotationError> {
        let path = self.rotation_path();
        let json =
            serde_json::to_vec_pretty(state).map_err(|e| RotationError::Store(e.to_string()))?;
        write_private(&path, &json).map_err(|e| io_error(&path, e))
    }

    /// The current version's id and value.
    fn current(&self, state: &RotationState) -> Result<Option<(String, String)>, RotationError> {
        let Some(value) = self.current_value()? else {
            return Ok(None);
        };
        let id = match (&state.current, first_kid(&value)) {
            (Some(current), Some(kid)) if current.kid == kid => current.version_id.clone(),
            _ => INITIAL_VERSION.to_owned(),
        };
        Ok(Some((id, value)))
    }
}

impl SecretVersionStore for FileVersionStore {
    async fn versions(&self) -> Result<BTreeMap<String, Vec<String>>, RotationError> {
        let state = self.state()?;
        let mut versions: BTreeMap<String, Vec<String>> = BTreeMap::new();
        if let Some((id, _)) = self.current(&state)? {
            versions.entry(id).or_default().push(AWSCURRENT.to_owned());
        }
        if let Some(pending) = &state.pending {
            versions
                .entry(pending.version_id.clone())
                .or_default()
                .push(AWSPENDING.to_owned());
        }
        Ok(versions)
    }

    async fn value_at_stage(&self, stage: &str) -> Result<Option<String>, RotationError> {
        match stage {
            AWSCURRENT => self.current_value(),
            AWSPENDING => Ok(self.state()?.pending.map(|p| p.value)),
            _ => Ok(None),
        }
    }

    async fn value_of_version(&self, version_id: &str) -> Result<Option<String>, RotationError> {
        let state = self.state()?;
        if let Some(pending) = state
            .pending
            .as_ref()
            .filter(|p| p.version_id == version_id)
        {
            return Ok(Some(pending.value.clone()));
        }
        Ok(self
            .current(&state)?
            .filter(|(id, _)| id == version_id)
            .map(|(_, value)| value))
    }

    async fn put_pending(&self, version_id: &str, value: &str) -> Result<(), RotationError> {
        let mut state = self.state()?;
        state.pending = Some(PendingVersion {
            version_id: version_id.to_owned(),
            value: value.to_owned(),
        });
        self.write_state(&state)
    }

    async fn update_stage(
        &self,
        stage: &str,
        to: Option<&str>,
        from: Option<&str>,
    ) -> Result<(), RotationError> {
        let mut state = self.state()?;
        match (stage, to) {
            (AWSCURRENT, Some(to)) => {
                let value = self
                    .value_of_version(to)
                    .await?
                    .ok_or_else(|| RotationError::UnknownVersion(to.to_owned()))?;
                let kid = first_kid(&value).unwrap_or_default();
                // State first: should the process stop between the writes, keys.json's first kid no longer
                // matches and the current version reads as `initial`, so a retried finishSecret moves it again.
                state.current = Some(CurrentVersion {
                    version_id: to.to_owned(),
                    kid,
                });
                self.write_state(&state)?;
                let path = self.keys_path();
                write_private(&path, value.as_bytes()).map_err(|e| io_error(&path, e))
            }
            (AWSPENDING, None) => {
                if state
                    .pending
                    .as_ref()
                    .is_some_and(|p| Some(p.version_id.as_str()) == from)
                {
                    state.pending = None;
                    self.write_state(&state)?;
                }
                Ok(())
            }
            _ => Err(RotationError::Store(format!(
                "the key files do not support moving {stage} this way"
            ))),
        }
    }

    /// Nothing to write: the local server is one process that signs and verifies from the key files,
    /// so no reader exists that must be kept away from the private keys (on AWS the verify-only
    /// functions read the public set from a secret of its own).
    async fn publish_public(&self, _value: &str) -> Result<(), RotationError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keygate_core::SigningAlgorithm;
    use keygate_core::clock::Clock as _;
    use keygate_core::keys::{KeySource as _, KeyTimeline, generate_key};
    use keygate_core::rotation::{RotationStep, StepOutcome, rotate, run_step};
    use keygate_testkit::doubles::ManualClock;
    use std::sync::Arc;

    const NOW: i64 = 1_800_000_000_000;
    const TIMELINE: KeyTimeline = KeyTimeline {
        lead_secs: 600,
        retain_secs: 930,
    };

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("keygate-keyfile-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn seeded(name: &str) -> (FileVersionStore, KeySetDocument) {
        let dir = temp_dir(name);
        let doc = KeySetDocument {
            keys: vec![generate_key(SigningAlgorithm::Es256, 1).unwrap()],
        };
        std::fs::write(dir.join(KEYS_FILE), doc.to_json()).unwrap();
        (FileVersionStore::new(dir), doc)
    }

    #[tokio::test]
    async fn rotates_the_local_key_file_with_the_same_protocol() {
        let (store, old) = seeded("rotate");
        assert_eq!(
            store.versions().await.unwrap()[INITIAL_VERSION],
            vec![AWSCURRENT.to_owned()]
        );
        rotate(&store, "r1", SigningAlgorithm::Es256, TIMELINE, NOW)
            .await
            .unwrap();
        let current =
            KeySetDocument::parse(&std::fs::read_to_string(store.keys_path()).unwrap()).unwrap();
        assert_eq!(current.keys.len(), 2);
        assert_eq!(current.keys[1], old.keys[0]);
        assert_eq!(
            store
                .versions()
                .await
                .unwrap()
                .into_iter()
                .collect::<Vec<_>>(),
            vec![("r1".to_owned(), vec![AWSCURRENT.to_owned()])]
        );
        for step in RotationStep::ALL {
            assert_eq!(
                run_step(&store, step, "r1", SigningAlgorithm::Es256, TIMELINE, NOW)
                    .await
                    .unwrap(),
                StepOutcome::AlreadyDone
            );
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            for path in [store.keys_path(), store.rotation_path()] {
                assert_eq!(
                    std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                    0o600,
                    "{}",
                    path.display()
                );
            }
        }
        // A second rotation, once the second key has signed for longer than the retention, drops the
        // first key.
        let later = NOW + (TIMELINE.lead_secs + TIMELINE.retain_secs) * 1000;
        rotate(&store, "r2", SigningAlgorithm::Es256, TIMELINE, later)
            .await
            .unwrap();
        let after =
            KeySetDocument::parse(&std::fs::read_to_string(store.keys_path()).unwrap()).unwrap();
        assert_eq!(after.keys.len(), 2);
        assert_eq!(after.keys[1], current.keys[0]);
    }

    #[tokio::test]
    async fn the_file_key_source_publishes_pending_and_picks_up_the_rotation_after_its_ttl() {
        let (store, old) = seeded("source");
        let clock = Arc::new(ManualClock::new(NOW));
        let source = FileKeySource::new(store, clock.clone(), std::time::Duration::from_secs(60));
        assert_eq!(
            source.key_set().await.unwrap().signing_key(NOW).kid,
            old.keys[0].kid
        );
        run_step(
            source.store(),
            RotationStep::CreateSecret,
            "r1",
            SigningAlgorithm::Es256,
            TIMELINE,
            NOW,
        )
        .await
        .unwrap();
        clock.advance_ms(60_000);
        let during = source.key_set().await.unwrap();
        assert_eq!(during.jwks()["keys"].as_array().unwrap().len(), 2);
        assert_eq!(during.signing_key(clock.now_ms()).kid, old.keys[0].kid);
        for step in [
            RotationStep::SetSecret,
            RotationStep::TestSecret,
            RotationStep::FinishSecret,
        ] {
            run_step(
                source.store(),
                step,
                "r1",
                SigningAlgorithm::Es256,
                TIMELINE,
                NOW,
            )
            .await
            .unwrap();
        }
        clock.advance_ms(60_000);
        let after = source.key_set().await.unwrap();
        let new_kid = &after.signing_key(NOW + TIMELINE.lead_secs * 1000).kid;
        assert_ne!(
            new_kid, &old.keys[0].kid,
            "the new key signs after the lead"
        );
        assert_eq!(
            after.signing_key(clock.now_ms()).kid,
            old.keys[0].kid,
            "the old key signs until then"
        );
        // The file disappears: the cached set keeps serving.
        std::fs::write(source.store().keys_path(), "garbage").unwrap();
        clock.advance_ms(60_000);
        let served = source.key_set().await.unwrap();
        assert!(served.find(new_kid).is_some() && served.find(&old.keys[0].kid).is_some());
    }

    #[tokio::test]
    async fn a_missing_file_is_no_valid_key_set() {
        let store = FileVersionStore::new(temp_dir("missing"));
        let source = FileKeySource::new(
            store,
            ManualClock::new(NOW),
            std::time::Duration::from_secs(60),
        );
        assert!(matches!(
            source.key_set().await,
            Err(keygate_core::keys::KeyError::NoValidKeySet(_))
        ));
    }
}
