//! The local signing keys: the data folder's key files, managed by the same rotation protocol that
//! rotates the Secrets Manager secret on AWS (keygate-core's `rotation` over its `FileVersionStore`).

use std::path::Path;

use crate::keyfile::{FileVersionStore, write_private};
use keygate_core::SigningAlgorithm;
use keygate_core::audit::AuditKey;
use keygate_core::crypto::random_id;
use keygate_core::keys::{KeySetDocument, KeyTimeline};
use keygate_core::mfa::FactorKeyRing;
use keygate_core::rotation::{AWSCURRENT, SecretVersionStore as _, rotate};

/// Makes sure the data folder holds a key set whose signing key uses `alg`. The first start runs a
/// rotation, which writes the first key set (just as the first rotation does on AWS); a changed
/// algorithm runs one too, so the old key keeps verifying (and signing until the new key's lead has
/// passed). A key file that is not a valid key set is an error, never overwritten.
pub async fn ensure_key_set(
    data_dir: &Path,
    alg: SigningAlgorithm,
    timeline: KeyTimeline,
    now_ms: i64,
) -> Result<(), String> {
    let store = FileVersionStore::new(data_dir);
    let path = store.keys_path();
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let document = KeySetDocument::parse(&text).map_err(|e| {
                format!(
                    "{}: {e} (move it away to start with a new key)",
                    path.display()
                )
            })?;
            if document.keys[0].alg == alg {
                return Ok(());
            }
            tracing::info!(from = %document.keys[0].alg, to = %alg, "signing algorithm changed: rotating a new key in");
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("{}: {e}", path.display())),
    }
    rotate_keys(data_dir, alg, timeline, now_ms).await?;
    Ok(())
}

/// The file in the data folder that holds the server key (audit email hashes), apart from the
/// signing keys.
pub const SERVER_KEY_FILE: &str = "server-key.hex";

/// Reads the data folder's server key, creating it from the OS CSPRNG (mode 0600) on first start.
/// A file that does not hold a valid key is an error, never overwritten.
pub fn ensure_server_key(data_dir: &Path) -> Result<AuditKey, String> {
    let path = data_dir.join(SERVER_KEY_FILE);
    let text = read_or_create(&path, AuditKey::generate_hex)?;
    AuditKey::parse(&text).map_err(|e| format!("{}: the server key {e}", path.display()))
}

/// The text of the private file at `path`, written first from `generate` (mode 0600) if there is
/// none. An existing file is never overwritten, whatever it holds: its caller judges it.
fn read_or_create(
    path: &Path,
    generate: impl FnOnce() -> Result<String, String>,
) -> Result<String, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let text = generate()?;
            write_private(path, text.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))?;
            Ok(text)
        }
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// The file in the data folder that holds the data-key ring sealing TOTP secrets
/// ([`FactorKeyRing`]'s JSON document), apart from the signing keys and the server key.
pub const FACTOR_KEYS_FILE: &str = "totp-data-keys.json";

/// Reads the data folder's TOTP data-key ring, creating it (one random key, mode 0600) on first
/// start. A file that does not hold a valid ring is an error, never overwritten: the factors it
/// sealed would not open again.
pub fn ensure_factor_keys(data_dir: &Path) -> Result<FactorKeyRing, String> {
    let path = data_dir.join(FACTOR_KEYS_FILE);
    let text = read_or_create(&path, || {
        FactorKeyRing::generate().map_err(|e| e.to_string())
    })?;
    FactorKeyRing::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// The data folder's secrets besides the signing keys, each created on first start.
pub struct ServerSecrets {
    pub audit_key: AuditKey,
    pub factor_keys: FactorKeyRing,
}

impl ServerSecrets {
    pub fn ensure(data_dir: &Path) -> Result<Self, String> {
        Ok(Self {
            audit_key: ensure_server_key(data_dir)?,
            factor_keys: ensure_factor_keys(data_dir)?,
        })
    }
}

/// One whole rotation of the data folder's keys; returns the key set it made current.
pub async fn rotate_keys(
    data_dir: &Path,
    alg: SigningAlgorithm,
    timeline: KeyTimeline,
    now_ms: i64,
) -> Result<KeySetDocument, String> {
    let store = FileVersionStore::new(data_dir);
    let failed = |e: &dyn std::fmt::Display| format!("key rotation: {e}");
    rotate(&store, &random_id(), alg, timeline, now_ms)
        .await
        .map_err(|e| failed(&e))?;
    let current = store
        .value_at_stage(AWSCURRENT)
        .await
        .map_err(|e| failed(&e))?
        .ok_or_else(|| failed(&"no current key set after the rotation"))?;
    KeySetDocument::parse(&current).map_err(|e| failed(&e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyfile::FileVersionStore;

    const TIMELINE: KeyTimeline = KeyTimeline {
        lead_secs: 600,
        retain_secs: 930,
    };

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("keygate-local-keys-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn document(dir: &Path) -> KeySetDocument {
        KeySetDocument::parse(
            &std::fs::read_to_string(FileVersionStore::new(dir).keys_path()).unwrap(),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn creates_once_then_reuses_and_is_private() {
        let dir = temp_dir("reuse");
        ensure_key_set(&dir, SigningAlgorithm::Es256, TIMELINE, 1_000)
            .await
            .unwrap();
        let first = document(&dir);
        ensure_key_set(&dir, SigningAlgorithm::Es256, TIMELINE, 2_000)
            .await
            .unwrap();
        assert_eq!(first, document(&dir));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(FileVersionStore::new(&dir).keys_path())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn the_server_key_is_created_once_private_and_reused() {
        let dir = temp_dir("server-key");
        let path = dir.join(SERVER_KEY_FILE);
        let email = "alice@example.com";
        let first = keygate_core::audit::email_hash(&ensure_server_key(&dir).unwrap(), email);
        let stored = std::fs::read_to_string(&path).unwrap();
        assert_eq!(stored.len(), 64);
        let again = keygate_core::audit::email_hash(&ensure_server_key(&dir).unwrap(), email);
        assert_eq!(first, again);
        assert_eq!(stored, std::fs::read_to_string(&path).unwrap());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let other = temp_dir("server-key-other");
        let elsewhere = keygate_core::audit::email_hash(&ensure_server_key(&other).unwrap(), email);
        assert_ne!(first, elsewhere, "each data folder gets its own key");

        std::fs::write(&path, "not a key").unwrap();
        let err = ensure_server_key(&dir).unwrap_err();
        assert!(err.contains(SERVER_KEY_FILE), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "not a key");
    }

    #[test]
    fn the_totp_data_keys_are_created_once_private_and_reused() {
        let dir = temp_dir("totp-keys");
        let path = dir.join(FACTOR_KEYS_FILE);
        let secret = keygate_core::mfa::TotpSecret([9; 20]);
        let (key_id, sealed) = ensure_factor_keys(&dir)
            .unwrap()
            .seal("user", "factor", &secret)
            .unwrap();
        let stored = std::fs::read_to_string(&path).unwrap();
        let again = ensure_factor_keys(&dir).unwrap();
        assert_eq!(
            again.open(&key_id, "user", "factor", &sealed).unwrap().0,
            secret.0
        );
        assert_eq!(stored, std::fs::read_to_string(&path).unwrap());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "{}").unwrap();
        let err = ensure_factor_keys(&dir).unwrap_err();
        assert!(err.contains(FACTOR_KEYS_FILE), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{}");
    }

    #[tokio::test]
    async fn a_new_algorithm_or_a_rotation_puts_a_new_key_in_front() {
        let dir = temp_dir("alg");
        ensure_key_set(&dir, SigningAlgorithm::Es256, TIMELINE, 1_000)
            .await
            .unwrap();
        let first = document(&dir);
        ensure_key_set(&dir, SigningAlgorithm::EdDsa, TIMELINE, 2_000)
            .await
            .unwrap();
        let second = document(&dir);
        assert_eq!(second.keys[0].alg, SigningAlgorithm::EdDsa);
        assert_eq!(second.keys[1], first.keys[0]);
        rotate_keys(&dir, SigningAlgorithm::EdDsa, TIMELINE, 3_000)
            .await
            .unwrap();
        let third = document(&dir);
        assert_ne!(third.keys[0].kid, second.keys[0].kid);
        assert_eq!(third.keys[1], second.keys[0]);
        // The first key signed at once; each later one waits for the lead, and until then the key
        // before it keeps signing (so the first key is still there, and still signs at 3 s).
        assert_eq!(first.keys[0].not_before, None);
        assert_eq!(second.keys[0].not_before, Some(2 + TIMELINE.lead_secs));
        assert_eq!(third.keys[0].not_before, Some(3 + TIMELINE.lead_secs));
        assert_eq!(third.keys[2], first.keys[0]);
        assert_eq!(
            third.signing_key(3_000).map(|k| &k.kid),
            Some(&first.keys[0].kid)
        );
    }

    #[tokio::test]
    async fn a_corrupt_file_is_an_error_not_overwritten() {
        let dir = temp_dir("corrupt");
        let path = FileVersionStore::new(&dir).keys_path();
        std::fs::write(&path, "not json").unwrap();
        assert!(
            ensure_key_set(&dir, SigningAlgorithm::Es256, TIMELINE, 1_000)
                .await
                .is_err()
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "not json");
    }
}
