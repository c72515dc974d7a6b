//! The local signing keys: the data folder's key files, managed by the same rotation protocol that
//! rotates the Secrets Manager secret on AWS (keygate-core's `rotation` over its `FileVersionStore`).

use std::path::Path;

use keygate_core::SigningAlgorithm;
use keygate_core::keyfile::FileVersionStore;
use keygate_core::keys::KeySetDocument;
use keygate_core::refresh::random_id;
use keygate_core::rotation::rotate;

/// Makes sure the data folder holds a key set whose signing key uses `alg`. The first start runs a
/// rotation, which writes the first key set (just as the first rotation does on AWS); a changed
/// algorithm runs one too, so the old key keeps verifying. A key file that is not a valid key set is
/// an error, never overwritten.
pub async fn ensure_key_set(
    data_dir: &Path,
    alg: SigningAlgorithm,
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
    rotate_keys(data_dir, alg, now_ms).await
}

/// One whole rotation of the data folder's keys.
pub async fn rotate_keys(
    data_dir: &Path,
    alg: SigningAlgorithm,
    now_ms: i64,
) -> Result<(), String> {
    let store = FileVersionStore::new(data_dir);
    rotate(&store, &random_id(), alg, now_ms)
        .await
        .map_err(|e| format!("key rotation: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use keygate_core::keyfile::FileVersionStore;

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
        ensure_key_set(&dir, SigningAlgorithm::Es256, 1_000)
            .await
            .unwrap();
        let first = document(&dir);
        ensure_key_set(&dir, SigningAlgorithm::Es256, 2_000)
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

    #[tokio::test]
    async fn a_new_algorithm_or_a_rotation_puts_a_new_key_in_front() {
        let dir = temp_dir("alg");
        ensure_key_set(&dir, SigningAlgorithm::Es256, 1_000)
            .await
            .unwrap();
        let first = document(&dir);
        ensure_key_set(&dir, SigningAlgorithm::EdDsa, 2_000)
            .await
            .unwrap();
        let second = document(&dir);
        assert_eq!(second.keys[0].alg, SigningAlgorithm::EdDsa);
        assert_eq!(second.keys[1], first.keys[0]);
        rotate_keys(&dir, SigningAlgorithm::EdDsa, 3_000)
            .await
            .unwrap();
        let third = document(&dir);
        assert_ne!(third.keys[0].kid, second.keys[0].kid);
        assert_eq!(third.keys[1], second.keys[0]);
    }

    #[tokio::test]
    async fn a_corrupt_file_is_an_error_not_overwritten() {
        let dir = temp_dir("corrupt");
        let path = FileVersionStore::new(&dir).keys_path();
        std::fs::write(&path, "not json").unwrap();
        assert!(
            ensure_key_set(&dir, SigningAlgorithm::Es256, 1_000)
                .await
                .is_err()
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "not json");
    }
}
