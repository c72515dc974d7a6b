//! The key-rotation protocol and the versioned key source, on a secret's versions in memory.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use keygate_core::keys::{
    JWKS_MAX_AGE_SECS, KeyError, KeySet, KeySetDocument, KeySource, KeyTimeline,
    PublicKeySetDocument, generate_key,
};
use keygate_core::rotation::*;
use keygate_core::{AuthConfig, Clock, SigningAlgorithm, tokens};
use keygate_testkit::doubles::{ManualClock, MemoryVersionStore};

const NOW: i64 = 1_800_000_000_000;
const TIMELINE: KeyTimeline = KeyTimeline {
    lead_secs: 600,
    retain_secs: 930,
};

fn initial() -> (KeySetDocument, MemoryVersionStore) {
    let doc = KeySetDocument {
        keys: vec![generate_key(SigningAlgorithm::Es256, 1).unwrap()],
    };
    let store = MemoryVersionStore::with_current("v1", &doc.to_json());
    (doc, store)
}

#[tokio::test]
async fn a_whole_rotation_keeps_the_old_key_verifying() {
    let (old, store) = initial();
    rotate(&store, "v2", SigningAlgorithm::EdDsa, TIMELINE, NOW)
        .await
        .unwrap();
    let versions = store.versions().await.unwrap();
    assert_eq!(versions["v2"], vec![AWSCURRENT.to_owned()]);
    assert_eq!(versions["v1"], vec![AWSPREVIOUS.to_owned()]);
    let current =
        KeySetDocument::parse(&store.value_at_stage(AWSCURRENT).await.unwrap().unwrap()).unwrap();
    assert_eq!(current.keys.len(), 2);
    assert_eq!(current.keys[0].alg, SigningAlgorithm::EdDsa);
    assert_eq!(current.keys[1], old.keys[0]);
    assert!(store.value_at_stage(AWSPENDING).await.unwrap().is_none());
}

#[tokio::test]
async fn every_step_is_idempotent() {
    let (_, store) = initial();
    let alg = SigningAlgorithm::Es256;
    assert_eq!(
        run_step(&store, RotationStep::CreateSecret, "v2", alg, TIMELINE, NOW)
            .await
            .unwrap(),
        StepOutcome::Done
    );
    let pending = store.value_of_version("v2").await.unwrap();
    assert_eq!(
        run_step(&store, RotationStep::CreateSecret, "v2", alg, TIMELINE, NOW)
            .await
            .unwrap(),
        StepOutcome::AlreadyDone
    );
    assert_eq!(
        store.value_of_version("v2").await.unwrap(),
        pending,
        "a retried createSecret keeps the first key"
    );
    for _ in 0..2 {
        run_step(&store, RotationStep::SetSecret, "v2", alg, TIMELINE, NOW)
            .await
            .unwrap();
        run_step(&store, RotationStep::TestSecret, "v2", alg, TIMELINE, NOW)
            .await
            .unwrap();
    }
    run_step(&store, RotationStep::FinishSecret, "v2", alg, TIMELINE, NOW)
        .await
        .unwrap();
    for step in RotationStep::ALL {
        assert_eq!(
            run_step(&store, step, "v2", alg, TIMELINE, NOW)
                .await
                .unwrap(),
            StepOutcome::AlreadyDone,
            "{step}"
        );
    }
    assert_eq!(store.value_at_stage(AWSCURRENT).await.unwrap(), pending);
}

#[tokio::test]
async fn the_first_rotation_replaces_a_random_placeholder() {
    let store = MemoryVersionStore::with_current("v1", "x7Rk!placeholder-from-cdk");
    rotate(&store, "v2", SigningAlgorithm::Es256, TIMELINE, NOW)
        .await
        .unwrap();
    let current =
        KeySetDocument::parse(&store.value_at_stage(AWSCURRENT).await.unwrap().unwrap()).unwrap();
    assert_eq!(current.keys.len(), 1);
}

#[tokio::test]
async fn test_secret_refuses_a_broken_pending_set_and_unknown_tokens() {
    let (_, store) = initial();
    store.put_pending("v2", "not a key set").await.unwrap();
    assert!(
        run_step(
            &store,
            RotationStep::TestSecret,
            "v2",
            SigningAlgorithm::Es256,
            TIMELINE,
            NOW
        )
        .await
        .is_err()
    );
    assert!(matches!(
        run_step(
            &store,
            RotationStep::FinishSecret,
            "nope",
            SigningAlgorithm::Es256,
            TIMELINE,
            NOW
        )
        .await,
        Err(RotationError::UnknownVersion(_))
    ));
}

#[tokio::test]
async fn key_source_publishes_pending_caches_and_survives_outages() {
    let (old, store) = initial();
    let clock = Arc::new(ManualClock::new(NOW));
    let source = VersionedKeySource::new(store, clock.clone(), std::time::Duration::from_secs(300));
    let first = source.key_set().await.unwrap();
    assert_eq!(first.signing_key(NOW).kid, old.keys[0].kid);
    run_step(
        source.store(),
        RotationStep::CreateSecret,
        "v2",
        SigningAlgorithm::Es256,
        TIMELINE,
        NOW,
    )
    .await
    .unwrap();
    // Cached until the TTL passes.
    assert_eq!(
        source.key_set().await.unwrap().jwks()["keys"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    clock.advance_ms(300_000);
    let with_pending = source.key_set().await.unwrap();
    assert_eq!(with_pending.jwks()["keys"].as_array().unwrap().len(), 2);
    assert_eq!(
        with_pending.signing_key(i64::MAX).kid,
        old.keys[0].kid,
        "pending does not sign, whatever its not_before"
    );
    // Outage: the cached copy keeps serving.
    source.store().fail.store(true, Ordering::SeqCst);
    clock.advance_ms(300_000);
    assert_eq!(
        source.key_set().await.unwrap().jwks()["keys"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn a_primed_source_serves_the_value_it_was_given_for_one_ttl_then_reads_the_store() {
    let (old, store) = initial();
    let clock = Arc::new(ManualClock::new(NOW));
    let source =
        VersionedKeySource::new(store, clock.clone(), Duration::from_secs(300)).without_pending();
    // The store is down: a primed source does not read it until the TTL passes.
    source.store().fail.store(true, Ordering::SeqCst);
    let primed = source.prime(&old.to_json()).unwrap();
    assert_eq!(primed.signing_key(NOW).kid, old.keys[0].kid);
    clock.advance_ms(299_999);
    assert_eq!(
        source.key_set().await.unwrap().signing_key(NOW).kid,
        old.keys[0].kid
    );
    // One TTL on, it reads the store (which now holds another key set).
    let newer = KeySetDocument {
        keys: vec![generate_key(SigningAlgorithm::EdDsa, 2).unwrap()],
    };
    source.store().fail.store(false, Ordering::SeqCst);
    source
        .store()
        .put_pending("v2", &newer.to_json())
        .await
        .unwrap();
    source
        .store()
        .update_stage(AWSCURRENT, Some("v2"), Some("v1"))
        .await
        .unwrap();
    clock.advance_ms(1);
    assert_eq!(
        source.key_set().await.unwrap().signing_key(NOW).kid,
        newer.keys[0].kid
    );
    // A value that is not a key set primes nothing.
    assert!(matches!(
        source.prime("random"),
        Err(KeyError::NoValidKeySet(_))
    ));
}

#[tokio::test]
async fn key_source_without_a_cache_reports_instead_of_panicking() {
    let clock = ManualClock::new(NOW);
    let garbage = VersionedKeySource::new(
        MemoryVersionStore::with_current("v1", "random"),
        clock,
        std::time::Duration::from_secs(1),
    );
    assert!(matches!(
        garbage.key_set().await,
        Err(KeyError::NoValidKeySet(_))
    ));
    let (_, store) = initial();
    store.fail.store(true, Ordering::SeqCst);
    let down = VersionedKeySource::new(
        store,
        ManualClock::new(NOW),
        std::time::Duration::from_secs(1),
    );
    assert!(matches!(
        down.key_set().await,
        Err(KeyError::Unavailable(_))
    ));
}

#[test]
fn steps_parse_from_the_event_names() {
    for step in RotationStep::ALL {
        assert_eq!(step.name().parse::<RotationStep>().unwrap(), step);
        assert_eq!(
            serde_json::to_string(&step).unwrap(),
            format!("\"{}\"", step.name())
        );
    }
}

/// A version store whose `AWSCURRENT` read only completes once `AWSPENDING` has been asked for:
/// a key source that reads the two one after the other never finishes loading from it.
struct ReadsMeetHalfway {
    inner: MemoryVersionStore,
    pending_asked: std::sync::atomic::AtomicBool,
}

impl SecretVersionStore for ReadsMeetHalfway {
    async fn versions(&self) -> Result<BTreeMap<String, Vec<String>>, RotationError> {
        self.inner.versions().await
    }
    async fn value_at_stage(&self, stage: &str) -> Result<Option<String>, RotationError> {
        if stage == AWSPENDING {
            self.pending_asked.store(true, Ordering::SeqCst);
        } else {
            std::future::poll_fn(|_| {
                if self.pending_asked.load(Ordering::SeqCst) {
                    std::task::Poll::Ready(())
                } else {
                    std::task::Poll::Pending
                }
            })
            .await;
        }
        self.inner.value_at_stage(stage).await
    }
    async fn value_of_version(&self, id: &str) -> Result<Option<String>, RotationError> {
        self.inner.value_of_version(id).await
    }
    async fn put_pending(&self, id: &str, value: &str) -> Result<(), RotationError> {
        self.inner.put_pending(id, value).await
    }
    async fn update_stage(
        &self,
        stage: &str,
        to: Option<&str>,
        from: Option<&str>,
    ) -> Result<(), RotationError> {
        self.inner.update_stage(stage, to, from).await
    }
    async fn publish_public(&self, value: &str) -> Result<(), RotationError> {
        self.inner.publish_public(value).await
    }
}

#[test]
fn the_key_source_reads_current_and_pending_concurrently() {
    let (doc, inner) = initial();
    let store = ReadsMeetHalfway {
        inner,
        pending_asked: std::sync::atomic::AtomicBool::new(false),
    };
    let source = VersionedKeySource::new(
        store,
        ManualClock::new(NOW),
        std::time::Duration::from_secs(1),
    );
    let mut load = std::pin::pin!(source.load());
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    // Concurrent reads finish on the second poll; sequential ones would stay pending forever.
    let loaded = (0..3).find_map(|_| match load.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(result) => Some(result),
        std::task::Poll::Pending => None,
    });
    let set = loaded
        .expect("AWSCURRENT and AWSPENDING were read one after the other")
        .unwrap();
    assert_eq!(set.signing_key(NOW).kid, doc.keys[0].kid);
}

#[tokio::test]
async fn a_source_without_pending_signs_and_verifies_with_awscurrent_alone() {
    let (current, store) = initial();
    let new_key = generate_key(SigningAlgorithm::Es256, NOW).unwrap();
    let pending = KeySetDocument::rotated(Some(&current), new_key.clone(), NOW / 1000, TIMELINE);
    store.put_pending("v2", &pending.to_json()).await.unwrap();
    let source = VersionedKeySource::new(
        store,
        ManualClock::new(NOW),
        std::time::Duration::from_secs(1),
    )
    .without_pending();
    let set = source.key_set().await.unwrap();
    assert_eq!(set.signing_key(NOW).kid, current.keys[0].kid);
    assert!(set.find(&new_key.kid).is_none(), "AWSPENDING was read");
}

fn kid_of(doc: &KeySetDocument, position: usize) -> String {
    doc.keys[position].kid.clone()
}

async fn current_document(store: &impl SecretVersionStore) -> KeySetDocument {
    KeySetDocument::parse(&store.value_at_stage(AWSCURRENT).await.unwrap().unwrap()).unwrap()
}

#[tokio::test]
async fn an_unknown_kid_reloads_the_source_at_most_once_per_interval() {
    let (_, store) = initial();
    let clock = Arc::new(ManualClock::new(NOW));
    let source = VersionedKeySource::new(store, clock.clone(), Duration::from_secs(300));
    let alg = SigningAlgorithm::Es256;
    let first = source.key_set().await.unwrap();
    rotate(source.store(), "v2", alg, TIMELINE, NOW)
        .await
        .unwrap();
    let second = kid_of(&current_document(source.store()).await, 0);
    assert!(first.find(&second).is_none());
    // A kid the cache knows costs no reload, so the next unknown one still gets it.
    let known = first.signing_key(NOW).kid.clone();
    assert!(
        source
            .key_set_knowing(&known)
            .await
            .unwrap()
            .find(&second)
            .is_none()
    );
    let reloaded = source.key_set_knowing(&second).await.unwrap();
    assert!(
        reloaded.find(&second).is_some(),
        "the first unknown kid reloads"
    );
    assert!(
        Arc::ptr_eq(&source.key_set().await.unwrap(), &reloaded),
        "and is cached"
    );

    // Within the interval, further unknown kids are answered from the cache.
    rotate(source.store(), "v3", alg, TIMELINE, NOW)
        .await
        .unwrap();
    let third = kid_of(&current_document(source.store()).await, 0);
    clock.advance_ms(UNKNOWN_KID_RELOAD_INTERVAL_MS - 1);
    for kid in ["made-up", third.as_str()] {
        assert!(
            source
                .key_set_knowing(kid)
                .await
                .unwrap()
                .find(&third)
                .is_none(),
            "{kid}"
        );
    }
    clock.advance_ms(1);
    assert!(
        source
            .key_set_knowing(&third)
            .await
            .unwrap()
            .find(&third)
            .is_some()
    );

    // A reload that fails serves the cached set.
    source.store().fail.store(true, Ordering::SeqCst);
    clock.advance_ms(UNKNOWN_KID_RELOAD_INTERVAL_MS);
    assert!(
        source
            .key_set_knowing("made-up")
            .await
            .unwrap()
            .find(&third)
            .is_some()
    );
}

#[tokio::test]
async fn a_verifier_whose_cache_predates_a_rotation_accepts_the_new_key_after_one_reload() {
    let (_, store) = initial();
    let store = Arc::new(store);
    let clock = Arc::new(ManualClock::new(NOW));
    // A TTL longer than the lead assumed: the cache alone would miss the new key.
    let ttl = Duration::from_secs(3_600);
    let verifier = VersionedKeySource::new(store.clone(), clock.clone(), ttl).without_pending();
    let config = AuthConfig::with_issuer("https://auth.example.com");
    let stale = verifier.key_set().await.unwrap();
    rotate(&store, "v2", SigningAlgorithm::Es256, TIMELINE, NOW)
        .await
        .unwrap();
    let after_lead = NOW + TIMELINE.lead_secs * 1000;
    clock.advance_ms(after_lead - NOW);
    let signer = KeySet::from_documents(&current_document(&store).await, None).unwrap();
    let token = tokens::issue(
        &signer,
        &config,
        "user-1",
        after_lead / 1000,
        keygate_core::tokens::SessionFlags::VERIFIED,
        after_lead,
    )
    .unwrap()
    .token;
    assert!(tokens::verify(&stale, &config, &token, after_lead).is_err());
    let claims = tokens::verify_from(&verifier, &config, &token, after_lead)
        .await
        .unwrap();
    assert_eq!(claims.sub, "user-1");
}

/// The public key set a [`MemoryVersionStore`]'s rotations wrote, as its own secret: one version,
/// `AWSCURRENT`. Read-only, as the verifying functions' grant is.
struct PublicView(Arc<MemoryVersionStore>);

impl SecretVersionStore for PublicView {
    async fn versions(&self) -> Result<BTreeMap<String, Vec<String>>, RotationError> {
        Ok(BTreeMap::from([("public".into(), vec![AWSCURRENT.into()])]))
    }
    async fn value_at_stage(&self, stage: &str) -> Result<Option<String>, RotationError> {
        self.0.check()?;
        Ok((stage == AWSCURRENT).then(|| self.0.published()).flatten())
    }
    async fn value_of_version(&self, _: &str) -> Result<Option<String>, RotationError> {
        self.value_at_stage(AWSCURRENT).await
    }
    async fn put_pending(&self, _: &str, _: &str) -> Result<(), RotationError> {
        Err(RotationError::Store("read-only".into()))
    }
    async fn update_stage(
        &self,
        _: &str,
        _: Option<&str>,
        _: Option<&str>,
    ) -> Result<(), RotationError> {
        Err(RotationError::Store("read-only".into()))
    }
    async fn publish_public(&self, _: &str) -> Result<(), RotationError> {
        Err(RotationError::Store("read-only".into()))
    }
}

/// Asserts that `json` is a public key set without any private member, and returns its kids.
fn public_kids(json: &str) -> BTreeSet<String> {
    let value: serde_json::Value = serde_json::from_str(json).unwrap();
    for key in value["keys"].as_array().unwrap() {
        let jwk = key["jwk"].as_object().unwrap();
        for private in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
            assert!(
                !jwk.contains_key(private),
                "private member {private} in {json}"
            );
        }
        assert!(key.get("private_key").is_none(), "{json}");
    }
    assert!(!json.contains("private"), "{json}");
    PublicKeySetDocument::parse(json)
        .unwrap()
        .keys
        .into_iter()
        .map(|k| k.kid)
        .collect()
}

#[tokio::test]
async fn each_publishing_step_writes_the_public_set_without_private_material() {
    for alg in [
        SigningAlgorithm::Es256,
        SigningAlgorithm::Rs256,
        SigningAlgorithm::EdDsa,
    ] {
        // The first rotation over CDK's placeholder publishes the first key before it is current.
        let store = Arc::new(MemoryVersionStore::with_current(
            "v0",
            "placeholder from CDK",
        ));
        assert_eq!(store.published(), None);
        run_step(&store, RotationStep::CreateSecret, "v1", alg, TIMELINE, NOW)
            .await
            .unwrap();
        let first =
            KeySetDocument::parse(&store.value_of_version("v1").await.unwrap().unwrap()).unwrap();
        assert_eq!(
            public_kids(&store.published().unwrap()),
            BTreeSet::from([first.keys[0].kid.clone()]),
            "{alg}: published at createSecret, before it can sign"
        );
        for step in [
            RotationStep::SetSecret,
            RotationStep::TestSecret,
            RotationStep::FinishSecret,
        ] {
            run_step(&store, step, "v1", alg, TIMELINE, NOW)
                .await
                .unwrap();
        }
        // A second rotation: createSecret adds the pending key, finishSecret publishes the new
        // current set; each time exactly what the private source publishes.
        for (step, token) in RotationStep::ALL.iter().map(|s| (*s, "v2")) {
            run_step(&store, step, token, alg, TIMELINE, NOW + 1_000)
                .await
                .unwrap();
            let private = VersionedKeySource::new(
                store.clone(),
                ManualClock::new(NOW),
                Duration::from_secs(1),
            );
            let jwks = private.load().await.unwrap().jwks();
            let expected: BTreeSet<String> = jwks["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["kid"].as_str().unwrap().to_owned())
                .collect();
            assert_eq!(
                public_kids(&store.published().unwrap()),
                expected,
                "{alg} {step}"
            );
            assert_eq!(expected.len(), 2, "{alg} {step}");
        }
        // The stored not_before reaches the public set: verifiers know when each key signs.
        let public = PublicKeySetDocument::parse(&store.published().unwrap()).unwrap();
        assert_eq!(
            public.keys[0].not_before,
            Some((NOW + 1_000) / 1000 + TIMELINE.lead_secs)
        );
    }
}

#[tokio::test]
async fn a_retried_step_republishes_after_a_failed_public_write() {
    struct PublicWriteFails(MemoryVersionStore, std::sync::atomic::AtomicBool);
    impl SecretVersionStore for PublicWriteFails {
        async fn versions(&self) -> Result<BTreeMap<String, Vec<String>>, RotationError> {
            self.0.versions().await
        }
        async fn value_at_stage(&self, s: &str) -> Result<Option<String>, RotationError> {
            self.0.value_at_stage(s).await
        }
        async fn value_of_version(&self, v: &str) -> Result<Option<String>, RotationError> {
            self.0.value_of_version(v).await
        }
        async fn put_pending(&self, v: &str, value: &str) -> Result<(), RotationError> {
            self.0.put_pending(v, value).await
        }
        async fn update_stage(
            &self,
            stage: &str,
            to: Option<&str>,
            from: Option<&str>,
        ) -> Result<(), RotationError> {
            self.0.update_stage(stage, to, from).await
        }
        async fn publish_public(&self, value: &str) -> Result<(), RotationError> {
            if self.1.swap(false, Ordering::SeqCst) {
                return Err(RotationError::Store("injected public write failure".into()));
            }
            self.0.publish_public(value).await
        }
    }
    let (_, inner) = initial();
    let store = PublicWriteFails(inner, true.into());
    let alg = SigningAlgorithm::Es256;
    assert!(
        run_step(&store, RotationStep::CreateSecret, "v2", alg, TIMELINE, NOW)
            .await
            .is_err()
    );
    assert_eq!(store.0.published(), None);
    run_step(&store, RotationStep::CreateSecret, "v2", alg, TIMELINE, NOW)
        .await
        .unwrap();
    assert_eq!(public_kids(&store.0.published().unwrap()).len(), 2);
    run_step(&store, RotationStep::TestSecret, "v2", alg, TIMELINE, NOW)
        .await
        .unwrap();
    store.1.store(true, Ordering::SeqCst);
    assert!(
        run_step(&store, RotationStep::FinishSecret, "v2", alg, TIMELINE, NOW)
            .await
            .is_err()
    );
    // AWSCURRENT moved, but AWSPENDING stays until the public set is written: the retry runs.
    assert_eq!(
        run_step(&store, RotationStep::FinishSecret, "v2", alg, TIMELINE, NOW)
            .await
            .unwrap(),
        StepOutcome::Done
    );
    assert!(store.0.value_at_stage(AWSPENDING).await.unwrap().is_none());
}

#[tokio::test]
async fn a_verifier_meeting_no_public_set_reports_instead_of_panicking() {
    let store = Arc::new(MemoryVersionStore::with_current(
        "v0",
        "placeholder from CDK",
    ));
    let clock = Arc::new(ManualClock::new(NOW));
    let verifier =
        VersionedKeySource::new(PublicView(store.clone()), clock, Duration::from_secs(300))
            .public_keys();
    assert!(matches!(
        verifier.key_set().await,
        Err(KeyError::NoValidKeySet(_))
    ));
    store.publish_public("placeholder from CDK").await.unwrap();
    assert!(matches!(
        verifier.key_set().await,
        Err(KeyError::NoValidKeySet(_))
    ));
    store.publish_public(r#"{"keys":[]}"#).await.unwrap();
    assert!(matches!(
        verifier.key_set().await,
        Err(KeyError::NoValidKeySet(_))
    ));
    // A private document in the public secret is refused, not used.
    let (doc, _) = initial();
    store.publish_public(&doc.to_json()).await.unwrap();
    assert!(matches!(
        verifier.key_set().await,
        Err(KeyError::NoValidKeySet(_))
    ));
}

/// What [`two_rotations`] saw.
struct Findings {
    /// Tokens naming a kid that a JWKS fetched within the previous cache lifetime lacked, JWKS
    /// lacking the kid of a token still alive, and tokens a verifying function refused.
    violations: Vec<String>,
    /// Every kid that signed a token.
    signed: BTreeSet<String>,
}

/// Two rotations `gap_s` apart on a manual clock, every 5 s: three well-known instances serve the
/// JWKS from their cached sets, three signing instances issue a token each, and a verifying
/// instance checks it; all cache for 300 s and start at staggered times. A verifier may hold any
/// JWKS served in the last `JWKS_MAX_AGE_SECS`.
async fn two_rotations(timeline: KeyTimeline, gap_s: i64) -> Findings {
    let ttl = Duration::from_secs(300);
    let config = AuthConfig::with_issuer("https://auth.example.com");
    let clock = Arc::new(ManualClock::new(NOW));
    let store = Arc::new(MemoryVersionStore::with_current(
        "v0",
        "placeholder from CDK",
    ));
    let alg = SigningAlgorithm::Es256;
    rotate(&store, "v1", alg, timeline, NOW).await.unwrap();
    // As deployed: the signers read the private set (AWSCURRENT), the well-known and verifying
    // functions only the public set the rotation steps write.
    let signer = || VersionedKeySource::new(store.clone(), clock.clone(), ttl).without_pending();
    let public =
        || VersionedKeySource::new(PublicView(store.clone()), clock.clone(), ttl).public_keys();
    // The instance started at 95 s reloads at 995 s, just before the first rotation: it serves a
    // JWKS without the new key for almost one TTL, the worst case the lead must cover.
    let well_known = [0, 95, 230].map(|start_s| (start_s, public()));
    let signers = [0, 70, 190].map(|start_s| (start_s, signer()));
    let verifier = public();
    let rotations = [(1_000, "v2"), (1_000 + gap_s, "v3")];
    let end_s = 1_000 + gap_s + timeline.lead_secs + timeline.retain_secs + 600;
    let max_age = JWKS_MAX_AGE_SECS as i64;
    let alive_s = (config.access_token_ttl_secs + config.leeway_secs) as i64;

    let mut served: Vec<(i64, BTreeSet<String>)> = Vec::new();
    let mut last_signed: BTreeMap<String, i64> = BTreeMap::new();
    let mut violations = Vec::new();
    for t in (0..=end_s).step_by(5) {
        let now_ms = NOW + t * 1000;
        clock.advance_ms(now_ms - clock.now_ms());
        for (at, token) in rotations {
            if t == at {
                rotate(&store, token, alg, timeline, now_ms).await.unwrap();
            }
        }
        for (start_s, instance) in &well_known {
            if t < *start_s {
                continue;
            }
            let jwks = instance.key_set().await.unwrap().jwks();
            let kids: BTreeSet<String> = jwks["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["kid"].as_str().unwrap().to_owned())
                .collect();
            for (kid, signed_s) in &last_signed {
                if t < signed_s + alive_s && !kids.contains(kid) {
                    violations.push(format!(
                        "{t} s: a JWKS lacks {kid}, which signed a token at {signed_s} s"
                    ));
                }
            }
            served.push((t, kids));
        }
        served.retain(|(fetched_s, _)| *fetched_s >= t - max_age);
        for (start_s, instance) in &signers {
            if t < *start_s {
                continue;
            }
            let keys = instance.key_set().await.unwrap();
            let token = tokens::issue(
                &keys,
                &config,
                "user-1",
                t,
                keygate_core::tokens::SessionFlags::VERIFIED,
                now_ms,
            )
            .unwrap()
            .token;
            let kid = keys.signing_key(now_ms).kid.clone();
            for (fetched_s, kids) in &served {
                if !kids.contains(&kid) {
                    violations.push(format!(
                        "{t} s: a token names {kid}, unknown to the JWKS of {fetched_s} s"
                    ));
                }
            }
            if tokens::verify_from(&verifier, &config, &token, now_ms)
                .await
                .is_err()
            {
                violations.push(format!(
                    "{t} s: the verifying function refuses a token of {kid}"
                ));
            }
            last_signed.insert(kid, t);
        }
    }
    Findings {
        violations,
        signed: last_signed.into_keys().collect(),
    }
}

#[tokio::test]
async fn no_token_names_a_key_that_a_cached_jwks_could_not_know() {
    let config = AuthConfig::with_issuer("https://auth.example.com");
    let timeline = KeyTimeline::new(&config);
    // The second rotation before the first one's key signs, soon after it does, just when the first
    // key may go, and long after.
    for gap_s in [
        timeline.lead_secs / 2,
        timeline.lead_secs + 60,
        timeline.lead_secs + timeline.retain_secs,
        3 * timeline.lead_secs,
    ] {
        let findings = two_rotations(timeline, gap_s).await;
        assert_eq!(findings.violations, Vec::<String>::new(), "gap {gap_s} s");
        assert_eq!(
            findings.signed.len(),
            3,
            "gap {gap_s} s: each key signed in turn"
        );
    }
    // The checks can fail: with ten seconds less lead, or without the retention, they do.
    let no_lead = KeyTimeline {
        lead_secs: timeline.lead_secs - 10,
        ..timeline
    };
    let too_soon = two_rotations(no_lead, 3 * timeline.lead_secs).await;
    assert!(
        too_soon
            .violations
            .iter()
            .any(|v| v.contains("unknown to the JWKS"))
    );
    let no_retention = KeyTimeline {
        retain_secs: 0,
        ..timeline
    };
    let early_drop = two_rotations(no_retention, timeline.lead_secs + 60).await;
    assert!(
        early_drop
            .violations
            .iter()
            .any(|v| v.contains("a JWKS lacks"))
    );
}
