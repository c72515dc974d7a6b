//! The local signing-key file: a key-set document generated on first start and kept in the data folder.

use std::io::Write as _;
use std::path::Path;

use keygate_core::SigningAlgorithm;
use keygate_core::keys::{KeySetDocument, generate_key};

pub const FILE_NAME: &str = "keys.json";

/// Loads the key file, creating it with a fresh key on first start. When the configured algorithm is
/// not the one the current key uses, a new key is rotated in front (the old one keeps verifying).
pub fn load_or_create(
    data_dir: &Path,
    alg: SigningAlgorithm,
    now_secs: i64,
) -> Result<KeySetDocument, String> {
    let path = data_dir.join(FILE_NAME);
    let existing = match std::fs::read_to_string(&path) {
        Ok(text) => Some(KeySetDocument::parse(&text).map_err(|e| {
            format!(
                "{}: {e} (move it away to start with a new key)",
                path.display()
            )
        })?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    if let Some(document) = &existing {
        if document.keys[0].alg == alg {
            return Ok(document.clone());
        }
        tracing::info!(from = %document.keys[0].alg, to = %alg, "signing algorithm changed: rotating a new key in");
    }
    let key = generate_key(alg, now_secs).map_err(|e| e.to_string())?;
    let document = KeySetDocument::rotated(existing.as_ref(), key);
    write_private(&path, document.to_json().as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(document)
}

/// Writes a file readable by its owner only, atomically (temporary file, fsync, rename).
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
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

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("keygate-key-file-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn creates_once_then_reuses() {
        let dir = temp_dir("reuse");
        let first = load_or_create(&dir, SigningAlgorithm::Es256, 1).unwrap();
        let second = load_or_create(&dir, SigningAlgorithm::Es256, 2).unwrap();
        assert_eq!(first, second);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.join(FILE_NAME))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_new_algorithm_rotates_in_front_of_the_old_key() {
        let dir = temp_dir("alg");
        let first = load_or_create(&dir, SigningAlgorithm::Es256, 1).unwrap();
        let second = load_or_create(&dir, SigningAlgorithm::EdDsa, 2).unwrap();
        assert_eq!(second.keys[0].alg, SigningAlgorithm::EdDsa);
        assert_eq!(second.keys[1], first.keys[0]);
    }

    #[test]
    fn a_corrupt_file_is_an_error_not_overwritten() {
        let dir = temp_dir("corrupt");
        std::fs::write(dir.join(FILE_NAME), "not json").unwrap();
        assert!(load_or_create(&dir, SigningAlgorithm::Es256, 1).is_err());
        assert_eq!(
            std::fs::read_to_string(dir.join(FILE_NAME)).unwrap(),
            "not json"
        );
    }
}
