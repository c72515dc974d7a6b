//! The local server's key file, rotated with the same protocol as the Secrets Manager secret.

use std::path::PathBuf;
use std::sync::Arc;

use keygate_core::keyfile::*;
use keygate_core::keys::{KeyError, KeySetDocument, KeySource as _, KeyTimeline, generate_key};
use keygate_core::rotation::{
    AWSCURRENT, RotationStep, SecretVersionStore as _, StepOutcome, rotate, run_step,
};
use keygate_core::{Clock as _, SigningAlgorithm};
use keygate_testkit::doubles::ManualClock;

const NOW: i64 = 1_800_000_000_000;
const TIMELINE: KeyTimeline = KeyTimeline {
    lead_secs: 600,
    retain_secs: 930,
};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("keygate-keyfile-{name}-{}", std::process::id()));
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
        Err(KeyError::NoValidKeySet(_))
    ));
}
