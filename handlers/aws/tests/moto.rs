//! The AWS adapters against moto's DynamoDB and Secrets Manager: key source, rotation (the four steps
//! and the rotation event), retry policy under injected throttling, store round trips per endpoint.
//! Skipped, with a message, when the moto endpoints are not configured.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use keygate_aws::dynamo::DynamoCalls;
use keygate_aws::rotation::{RotationEvent, rotate_step};
use keygate_aws::secrets::{InitSecret, SecretsManagerVersions, read_at_init};
use keygate_aws::{DynamoStore, sdk};
use keygate_core::SigningAlgorithm;
use keygate_core::audit::RequestContext;
use keygate_core::error::AuthError;
use keygate_core::keys::{
    KeyError, KeySet, KeySetDocument, KeySource, KeyTimeline, PublicKeySetDocument, generate_key,
};
use keygate_core::mfa::{TOTP_DIGITS, hotp, totp_step};
use keygate_core::rotation::{
    AWSCURRENT, AWSPENDING, RotationStep, SecretVersionStore, StepOutcome, VersionedKeySource,
    run_step,
};
use keygate_core::service::SecondFactorProof;
use keygate_core::store::{
    AttemptCounter, AttemptScope, CodePurpose, EmailCodeStore, MailOutcome, StoreError, User,
    UserStore,
};
use keygate_core::{AuthConfig, AuthService, Clock as _, SystemClock};
use keygate_http::Endpoint;
use keygate_testkit::doubles::{ManualClock, MemoryStore, StaticKeySource};
use keygate_testkit::fixtures::{
    NEW_PASSWORD, PASSWORD, WRONG_PASSWORD, base32_decode, block_on, code_request, sample_user,
    test_audit_key, test_factor_keys, unique_email,
};
use serde_json::Value;

const NOW_MS: i64 = 1_800_000_000_000;
const TIMELINE: KeyTimeline = KeyTimeline {
    lead_secs: 600,
    retain_secs: 930,
};

macro_rules! moto_test {
    ($name:ident, $body:expr) => {
        #[test]
        fn $name() {
            if !common::moto_available(stringify!($name)) {
                return;
            }
            block_on($body);
        }
    };
}

fn key_doc(alg: SigningAlgorithm) -> KeySetDocument {
    KeySetDocument {
        keys: vec![generate_key(alg, 1).unwrap()],
    }
}

/// A secret holding `value` as its AWSCURRENT version, as CDK creates it.
async fn create_secret(client: &aws_sdk_secretsmanager::Client, value: &str) -> String {
    let name = common::unique("keygate-keys");
    client
        .create_secret()
        .name(&name)
        .secret_string(value)
        .send()
        .await
        .expect("create secret in moto");
    name
}

async fn secrets_client() -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::new(&common::sdk_config().await)
}

fn jwks_len(set: &KeySet) -> usize {
    set.jwks()["keys"].as_array().unwrap().len()
}

moto_test!(key_source_signs_with_current_and_publishes_pending, async {
    let client = secrets_client().await;
    let current = key_doc(SigningAlgorithm::Es256);
    let secret = create_secret(&client, &current.to_json()).await;
    let pending = KeySetDocument::rotated(
        Some(&current),
        generate_key(SigningAlgorithm::Es256, 2).unwrap(),
        NOW_MS / 1000,
        TIMELINE,
    );
    client
        .put_secret_value()
        .secret_id(&secret)
        .client_request_token("00000000-0000-4000-8000-00000000aaaa")
        .secret_string(pending.to_json())
        .version_stages(AWSPENDING)
        .send()
        .await
        .unwrap();
    let source = keygate_aws::secrets::key_source(client, &secret, Duration::from_secs(300));
    let set = source.key_set().await.unwrap();
    assert_eq!(
        set.signing_key(i64::MAX).kid,
        current.keys[0].kid,
        "AWSCURRENT signs, never AWSPENDING"
    );
    assert!(
        set.find(&pending.keys[0].kid).is_some(),
        "AWSPENDING verifies"
    );
    assert_eq!(jwks_len(&set), 2, "both are published");
});

moto_test!(
    an_api_function_key_source_makes_one_get_secret_value,
    async {
        let plain = secrets_client().await;
        let current = key_doc(SigningAlgorithm::Es256);
        let secret = create_secret(&plain, &current.to_json()).await;
        let (client, http) = common::instrumented_secrets_manager().await;
        let source = VersionedKeySource::new(
            SecretsManagerVersions::new(client, &secret),
            Arc::new(ManualClock::new(NOW_MS)),
            Duration::from_secs(300),
        )
        .without_pending();
        assert_eq!(
            source.key_set().await.unwrap().signing_key(NOW_MS).kid,
            current.keys[0].kid
        );
        assert_eq!(
            http.faults.requests.load(Ordering::SeqCst),
            1,
            "AWSCURRENT only"
        );
    }
);

moto_test!(
    init_reads_every_secret_in_one_call_and_names_the_setting_of_one_it_cannot_read,
    async {
        let plain = secrets_client().await;
        let keys = key_doc(SigningAlgorithm::Es256).to_json();
        let keys_name = create_secret(&plain, &keys).await;
        let server_name = create_secret(&plain, "server-key-value-0123456789abcdef").await;
        // By ARN, as the CDK app names them, and by name.
        let server_arn = plain
            .describe_secret()
            .secret_id(&server_name)
            .send()
            .await
            .unwrap()
            .arn
            .unwrap();
        let (client, http) = common::instrumented_secrets_manager().await;
        let read = |setting, id| InitSecret { setting, id };
        let values = read_at_init(
            &client,
            &[
                read("KEYGATE_KEYS_SECRET_ID", &keys_name),
                read("KEYGATE_SERVER_KEY_SECRET_ID", &server_arn),
                read("KEYGATE_FACTOR_KEYS_SECRET_ID", "keygate-no-such-secret"),
            ],
        )
        .await;
        assert_eq!(http.faults.requests.load(Ordering::SeqCst), 1, "one call");
        assert_eq!(values[0].as_deref(), Ok(keys.as_str()));
        assert_eq!(
            values[1].as_deref(),
            Ok("server-key-value-0123456789abcdef")
        );
        let missing = values[2].as_ref().unwrap_err();
        assert!(
            missing.starts_with("KEYGATE_FACTOR_KEYS_SECRET_ID: "),
            "{missing}"
        );
        assert!(!missing.contains("server-key-value"), "{missing}");

        // Secrets Manager unreachable: every secret's error names its setting, after the SDK's
        // retries.
        http.faults.outage.store(true, Ordering::SeqCst);
        let down = read_at_init(
            &client,
            &[read("KEYGATE_SERVER_KEY_SECRET_ID", &server_arn)],
        )
        .await;
        let error = down[0].as_ref().unwrap_err();
        assert!(
            error.starts_with("KEYGATE_SERVER_KEY_SECRET_ID: Secrets Manager BatchGetSecretValue"),
            "{error}"
        );
        assert!(read_at_init(&client, &[]).await.is_empty());
    }
);

moto_test!(
    key_source_caches_for_its_ttl_and_serves_the_cache_through_an_outage,
    async {
        let plain = secrets_client().await;
        let first = key_doc(SigningAlgorithm::Es256);
        let secret = create_secret(&plain, &first.to_json()).await;
        let (client, http) = common::instrumented_secrets_manager().await;
        let clock = Arc::new(ManualClock::new(NOW_MS));
        let source = VersionedKeySource::new(
            SecretsManagerVersions::new(client, &secret),
            clock.clone(),
            Duration::from_secs(300),
        );
        assert_eq!(
            source.key_set().await.unwrap().signing_key(NOW_MS).kid,
            first.keys[0].kid
        );
        let calls_after_load = http.faults.requests.load(Ordering::SeqCst);
        assert_eq!(
            calls_after_load, 2,
            "one GetSecretValue per stage (AWSCURRENT, AWSPENDING)"
        );

        let second = key_doc(SigningAlgorithm::Es256);
        plain
            .put_secret_value()
            .secret_id(&secret)
            .secret_string(second.to_json())
            .send()
            .await
            .unwrap();
        clock.advance_ms(299_000);
        assert_eq!(
            source.key_set().await.unwrap().signing_key(NOW_MS).kid,
            first.keys[0].kid,
            "cached within the TTL"
        );
        assert_eq!(
            http.faults.requests.load(Ordering::SeqCst),
            calls_after_load,
            "no call within the TTL"
        );
        clock.advance_ms(1_000);
        assert_eq!(
            source.key_set().await.unwrap().signing_key(NOW_MS).kid,
            second.keys[0].kid,
            "re-read after the TTL"
        );

        http.faults.outage.store(true, Ordering::SeqCst);
        clock.advance_ms(300_000);
        let during = source
            .key_set()
            .await
            .expect("the cached set keeps serving while Secrets Manager is down");
        assert_eq!(during.signing_key(NOW_MS).kid, second.keys[0].kid);
        http.faults.outage.store(false, Ordering::SeqCst);
        clock.advance_ms(10_000);
        assert_eq!(
            source.key_set().await.unwrap().signing_key(NOW_MS).kid,
            second.keys[0].kid,
            "recovers"
        );
    }
);

/// GET /.well-known/jwks.json through keygate-http with `keys` (the store is never reached).
async fn jwks_status<K: KeySource>(keys: K) -> (u16, String, Value) {
    let service = AuthService::new(
        AuthConfig::with_issuer("https://keygate.test"),
        MemoryStore::default(),
        keys,
        SystemClock,
        test_audit_key(),
    )
    .unwrap();
    let request = http::Request::get("/.well-known/jwks.json")
        .body(bytes::Bytes::new())
        .unwrap();
    let response = keygate_http::handle(
        &service,
        &[Endpoint::Jwks, Endpoint::Discovery],
        request,
        "req-1",
    )
    .await;
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (
        response.status().as_u16(),
        content_type,
        serde_json::from_slice(response.body()).unwrap(),
    )
}

moto_test!(
    a_verifier_on_a_public_set_not_yet_written_answers_503_and_recovers_after_the_first_rotation,
    async {
        let client = secrets_client().await;
        let signing = create_secret(&client, "Zr8#q1!vT9xWm2@pL5sK7$dN4&hB6^jF").await;
        // What CDK puts in the public secret before the first rotation: a random string.
        let public = create_secret(&client, "Qw3#e4!rT5yUi6@oP7aS8$dF9&gH0^jK").await;
        let verifier = Arc::new(keygate_aws::secrets::public_key_source(
            client.clone(),
            &public,
            Duration::from_secs(1),
        ));
        let (status, content_type, body) = jwks_status(verifier.clone()).await;
        assert_eq!(
            (status, content_type.as_str()),
            (503, "application/problem+json"),
            "{body}"
        );
        keygate_core::rotation::rotate(
            &SecretsManagerVersions::new(client.clone(), &signing).publishing_to(public.clone()),
            "00000000-0000-4000-8000-0000000000b1",
            SigningAlgorithm::Es256,
            TIMELINE,
            NOW_MS,
        )
        .await
        .unwrap();
        // Nothing was cached, so the next request reads the secret again.
        let (status, _, body) = jwks_status(verifier).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["keys"].as_array().unwrap().len(), 1);
        assert!(body["keys"][0].get("d").is_none());
    }
);

moto_test!(
    cold_start_without_a_key_set_answers_503_and_recovers_after_the_first_rotation,
    async {
        let client = secrets_client().await;
        // What CDK puts in the secret before the first rotation: a random string.
        let secret = create_secret(&client, "Zr8#q1!vT9xWm2@pL5sK7$dN4&hB6^jF").await;
        let source = Arc::new(keygate_aws::secrets::key_source(
            client.clone(),
            &secret,
            Duration::from_secs(1),
        ));
        assert!(matches!(
            source.key_set().await,
            Err(KeyError::NoValidKeySet(_))
        ));
        let (status, content_type, body) = jwks_status(source.clone()).await;
        assert_eq!(
            (status, content_type.as_str()),
            (503, "application/problem+json"),
            "{body}"
        );

        let public = create_secret(&client, "public-placeholder").await;
        let versions = SecretsManagerVersions::new(client, &secret).publishing_to(public);
        keygate_core::rotation::rotate(
            &versions,
            "00000000-0000-4000-8000-000000000001",
            SigningAlgorithm::Es256,
            TIMELINE,
            NOW_MS,
        )
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        let (status, _, body) = jwks_status(source).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["keys"].as_array().unwrap().len(), 1);
    }
);

moto_test!(
    cold_start_with_secrets_manager_unreachable_answers_503,
    async {
        let (client, http) = common::instrumented_secrets_manager().await;
        http.faults.outage.store(true, Ordering::SeqCst);
        let source = Arc::new(keygate_aws::secrets::key_source(
            client,
            "keygate-keys-never-created",
            Duration::from_secs(300),
        ));
        assert!(matches!(
            source.key_set().await,
            Err(KeyError::Unavailable(_))
        ));
        let (status, content_type, _) = jwks_status(source).await;
        assert_eq!(
            (status, content_type.as_str()),
            (503, "application/problem+json")
        );
        // Two loads (key_set, then the JWKS request), each reading AWSCURRENT and AWSPENDING
        // concurrently, each read retried as configured.
        assert_eq!(
            http.faults.requests.load(Ordering::SeqCst),
            2 * 2 * sdk::MAX_ATTEMPTS as usize,
            "each read retried as configured"
        );
    }
);

async fn stages(
    versions: &SecretsManagerVersions,
) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut map = versions.versions().await.unwrap();
    for stages in map.values_mut() {
        stages.sort();
    }
    map
}

moto_test!(
    the_four_rotation_steps_against_secrets_manager_are_idempotent,
    async {
        let client = secrets_client().await;
        let secret = create_secret(&client, "a-random-placeholder-from-cdk-0123456789").await;
        let public = create_secret(&client, "public-placeholder").await;
        let versions = SecretsManagerVersions::new(client.clone(), &secret).publishing_to(public);
        let alg = SigningAlgorithm::Es256;
        let token = "11111111-1111-4111-8111-111111111111";
        let step = async |step| {
            run_step(&versions, step, token, alg, TIMELINE, NOW_MS)
                .await
                .unwrap()
        };

        // createSecret, twice: one pending version, the same key both times.
        assert_eq!(step(RotationStep::CreateSecret).await, StepOutcome::Done);
        let pending = versions
            .value_of_version(token)
            .await
            .unwrap()
            .expect("pending value");
        assert_eq!(
            step(RotationStep::CreateSecret).await,
            StepOutcome::AlreadyDone
        );
        assert_eq!(
            versions.value_of_version(token).await.unwrap().as_deref(),
            Some(pending.as_str())
        );
        assert_eq!(stages(&versions).await[token], vec![AWSPENDING.to_owned()]);
        let doc = KeySetDocument::parse(&pending).unwrap();
        assert_eq!(
            doc.keys.len(),
            1,
            "the placeholder is not a key set: the new key starts the set"
        );

        // setSecret and testSecret, twice each.
        for _ in 0..2 {
            step(RotationStep::SetSecret).await;
            assert_eq!(step(RotationStep::TestSecret).await, StepOutcome::Done);
        }
        // finishSecret, twice: AWSCURRENT moves, AWSPENDING is removed.
        step(RotationStep::FinishSecret).await;
        assert_eq!(
            step(RotationStep::FinishSecret).await,
            StepOutcome::AlreadyDone
        );
        assert_eq!(stages(&versions).await[token], vec![AWSCURRENT.to_owned()]);
        assert_eq!(versions.value_at_stage(AWSPENDING).await.unwrap(), None);
        assert_eq!(
            versions
                .value_at_stage(AWSCURRENT)
                .await
                .unwrap()
                .as_deref(),
            Some(pending.as_str())
        );
        for each in RotationStep::ALL {
            assert_eq!(
                step(each).await,
                StepOutcome::AlreadyDone,
                "{each} after the end"
            );
        }

        // A second rotation (another algorithm) keeps the first key verifying.
        let second = "22222222-2222-4222-8222-222222222222";
        keygate_core::rotation::rotate(
            &versions,
            second,
            SigningAlgorithm::EdDsa,
            TIMELINE,
            NOW_MS,
        )
        .await
        .unwrap();
        let current =
            KeySetDocument::parse(&versions.value_at_stage(AWSCURRENT).await.unwrap().unwrap())
                .unwrap();
        assert_eq!(current.keys.len(), 2);
        assert_eq!(current.keys[0].alg, SigningAlgorithm::EdDsa);
        assert_eq!(current.keys[1], doc.keys[0]);
        let all = stages(&versions).await;
        assert_eq!(all[second], vec![AWSCURRENT.to_owned()]);
        assert!(all[token].contains(&"AWSPREVIOUS".to_owned()), "{all:?}");
        // What the key source loads after it: the first key signs until the second's not_before.
        let source = keygate_aws::secrets::key_source(client, &secret, Duration::from_secs(300));
        let set = source.key_set().await.unwrap();
        assert_eq!(set.signing_key(NOW_MS).kid, doc.keys[0].kid);
        let signs_from_ms = (NOW_MS / 1000 + TIMELINE.lead_secs) * 1000;
        assert_eq!(set.signing_key(signs_from_ms).kid, current.keys[0].kid);
        assert!(set.find(&doc.keys[0].kid).is_some());
    }
);

moto_test!(
    the_rotation_handler_runs_steps_from_events_and_refuses_other_secrets,
    async {
        let client = secrets_client().await;
        let secret = create_secret(&client, &key_doc(SigningAlgorithm::Es256).to_json()).await;
        let arn = client
            .describe_secret()
            .secret_id(&secret)
            .send()
            .await
            .unwrap()
            .arn
            .unwrap();
        let event = |step: &str| RotationEvent {
            secret_id: arn.clone(),
            client_request_token: "33333333-3333-4333-8333-333333333333".into(),
            step: step.into(),
        };
        // The public key set starts as CDK creates it: a random placeholder.
        let public = create_secret(&client, "placeholder-not-a-key-set").await;
        let public_doc = async || {
            let text = SecretsManagerVersions::new(client.clone(), &public)
                .value_at_stage(AWSCURRENT)
                .await
                .unwrap()
                .unwrap();
            let value: Value = serde_json::from_str(&text).unwrap();
            for key in value["keys"].as_array().unwrap() {
                for private in ["d", "p", "q", "dp", "dq", "qi", "k", "private_key"] {
                    assert!(key["jwk"].get(private).is_none() && key.get(private).is_none());
                }
            }
            PublicKeySetDocument::parse(&text).unwrap()
        };
        let kids = |keys: Vec<String>| keys.into_iter().collect::<std::collections::BTreeSet<_>>();
        let versions = SecretsManagerVersions::new(client.clone(), &arn);
        let before_s = SystemClock.now_ms() / 1000;
        for step in ["createSecret", "setSecret", "testSecret", "finishSecret"] {
            let out = rotate_step(
                client.clone(),
                Some(&arn),
                &public,
                SigningAlgorithm::Es256,
                TIMELINE,
                event(step),
            )
            .await
            .unwrap();
            assert_eq!(out["step"], step);
            // In sync after every step: the public set publishes what the private source publishes
            // (current keys and, during the rotation, the pending key).
            let published = kids(public_doc().await.keys.into_iter().map(|k| k.kid).collect());
            let private =
                keygate_aws::secrets::key_source(client.clone(), &arn, Duration::from_secs(300));
            let jwks = private.key_set().await.unwrap().jwks();
            let expected = kids(
                jwks["keys"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|k| k["kid"].as_str().unwrap().to_owned())
                    .collect(),
            );
            assert_eq!(published, expected, "after {step}");
        }
        // A verifier on the public secret alone accepts a token of the signing set.
        let signer =
            keygate_aws::secrets::key_source(client.clone(), &arn, Duration::from_secs(300))
                .without_pending();
        let verifier = keygate_aws::secrets::public_key_source(
            client.clone(),
            &public,
            Duration::from_secs(300),
        );
        let config = AuthConfig::with_issuer("https://moto.keygate.invalid");
        let now_ms = SystemClock.now_ms();
        let issued = keygate_core::tokens::issue(
            &signer.key_set().await.unwrap(),
            &config,
            "00000000-0000-4000-8000-000000000001",
            now_ms / 1000,
            keygate_core::tokens::SessionFlags::VERIFIED,
            now_ms,
        )
        .unwrap();
        keygate_core::tokens::verify_from(&verifier, &config, &issued.token, now_ms)
            .await
            .unwrap();
        assert!(
            keygate_core::tokens::issue(
                &verifier.key_set().await.unwrap(),
                &config,
                "00000000-0000-4000-8000-000000000001",
                now_ms / 1000,
                keygate_core::tokens::SessionFlags::VERIFIED,
                now_ms
            )
            .is_err(),
            "the public set cannot sign"
        );
        let after_s = SystemClock.now_ms() / 1000;
        let rotated =
            KeySetDocument::parse(&versions.value_at_stage(AWSCURRENT).await.unwrap().unwrap())
                .unwrap();
        let not_before = rotated.keys[0]
            .not_before
            .expect("the new key waits for its lead");
        assert!(
            (before_s + TIMELINE.lead_secs..=after_s + TIMELINE.lead_secs).contains(&not_before),
            "{not_before}"
        );
        assert_eq!(rotated.keys.len(), 2, "the previous key signs until then");
        assert_eq!(
            stages(&versions).await["33333333-3333-4333-8333-333333333333"],
            vec![AWSCURRENT.to_owned()]
        );
        assert!(
            rotate_step(
                client.clone(),
                Some("arn:aws:secretsmanager:us-east-1:1:secret:other"),
                &public,
                SigningAlgorithm::Es256,
                TIMELINE,
                event("createSecret")
            )
            .await
            .is_err()
        );
        assert!(
            rotate_step(
                client.clone(),
                Some(&arn),
                &public,
                SigningAlgorithm::Es256,
                TIMELINE,
                event("dropSecret")
            )
            .await
            .is_err()
        );
    }
);

// A TransactWriteItems the SDK retries (a timeout after DynamoDB applied it, a throttle) must not be
// judged twice: every attempt of one call carries the same ClientRequestToken (the SDK fills the
// idempotency token once per call), so DynamoDB answers a retry of an applied transaction with its
// first success, and each call has a token of its own. moto ignores the token, which is why a bench
// run against it saw retried transactions refused; what is checked here is the request.
moto_test!(
    transactions_carry_one_idempotency_token_across_retries,
    async {
        let (client, _log, http) = common::instrumented_dynamodb().await;
        let table = common::create_table(&client).await;
        let store = DynamoStore::new(client, table);
        let user = User {
            email_verified: false,
            ..sample_user(&unique_email("idempotent"))
        };
        assert!(store.create_user(&user).await.unwrap());
        http.faults.transaction_tokens.lock().unwrap().clear();
        *http.faults.error_operation.lock().unwrap() = Some("TransactWriteItems".into());
        http.faults.inject(1, "ThrottlingException");
        let first = code_request(&user.email, CodePurpose::Verify, NOW_MS);
        assert_eq!(
            store.request_mail(&first).await.unwrap(),
            MailOutcome::Queued
        );
        let second = code_request(&user.email, CodePurpose::Reset, NOW_MS);
        assert_eq!(
            store.request_mail(&second).await.unwrap(),
            MailOutcome::Queued
        );
        let tokens = std::mem::take(&mut *http.faults.transaction_tokens.lock().unwrap());
        assert_eq!(
            tokens.len(),
            3,
            "a throttled attempt, its retry, another call: {tokens:?}"
        );
        assert!(
            tokens
                .iter()
                .all(|t| t.as_ref().is_some_and(|t| !t.is_empty() && t.len() <= 36)),
            "{tokens:?}"
        );
        assert_eq!(tokens[0], tokens[1], "a retry carries its call's token");
        assert_ne!(tokens[1], tokens[2], "each call has its own");
    }
);

moto_test!(throttling_is_retried_as_configured, async {
    let (client, log, http) = common::instrumented_dynamodb().await;
    // The backoff is the policy's (50 ms, doubling, jittered), not the SDK default's seconds: checked on
    // the client's configuration, since wall time on a shared machine proves nothing.
    let retry = client
        .config()
        .retry_config()
        .expect("a retry policy")
        .clone();
    assert_eq!(
        (
            retry.initial_backoff(),
            retry.max_backoff(),
            retry.max_attempts()
        ),
        (sdk::INITIAL_BACKOFF, sdk::MAX_BACKOFF, sdk::MAX_ATTEMPTS)
    );
    let table = common::create_table(&client).await;
    let store = DynamoStore::new(client, table);
    let user = sample_user(&unique_email("throttle"));
    assert!(store.create_user(&user).await.unwrap());
    log.take();

    // Fewer throttles than attempts: the call succeeds on the last attempt.
    http.faults.inject(
        sdk::MAX_ATTEMPTS as usize - 1,
        "ProvisionedThroughputExceededException",
    );
    assert_eq!(
        store.get_user(&user.email).await.unwrap().as_ref(),
        Some(&user)
    );
    assert_eq!(log.take(), vec!["GetItem"; sdk::MAX_ATTEMPTS as usize]);

    // As many throttles as attempts: the error surfaces after exactly MAX_ATTEMPTS tries.
    http.faults
        .inject(sdk::MAX_ATTEMPTS as usize, "ThrottlingException");
    match store.get_user(&user.email).await {
        Err(StoreError::Unavailable(message)) => {
            assert!(message.contains("ThrottlingException"), "{message}")
        }
        other => panic!("expected the throttling error, got {other:?}"),
    }
    assert_eq!(log.take(), vec!["GetItem"; sdk::MAX_ATTEMPTS as usize]);

    // A conditional write is retried the same way and applies once.
    http.faults
        .inject(1, "ProvisionedThroughputExceededException");
    assert!(
        store
            .settle_attempt(
                &user.email,
                &AttemptScope::Untrusted,
                &AttemptCounter::default(),
                5
            )
            .await
            .unwrap()
    );
    assert_eq!(log.take(), vec!["UpdateItem", "UpdateItem"]);
    assert_eq!(
        store
            .get_user(&user.email)
            .await
            .unwrap()
            .unwrap()
            .attempts
            .locked_until_ms,
        5
    );
    assert_eq!(http.faults.errors_left.load(Ordering::SeqCst), 0);
});

fn ctx() -> RequestContext {
    RequestContext {
        request_id: "round-trips".into(),
        correlation_id: "round-trips".into(),
        audit_key: test_audit_key(),
    }
}

/// The calls an endpoint made, checked against the ones the CDK grants its function
/// (`DynamoCalls::of`, carried by cdk/contract.json); a Query on the byUserId index counts as its own.
/// The bearer check's user lookup and deny-list read run concurrently: their order varies.
fn sorted(mut calls: Vec<String>) -> Vec<String> {
    calls.sort();
    calls
}

fn granted(endpoint: Endpoint, calls: Vec<String>) -> Vec<String> {
    let allowed = DynamoCalls::of(endpoint);
    for call in &calls {
        assert!(
            allowed.table.contains(&call.as_str())
                || allowed.by_user_id_index.contains(&call.as_str()),
            "{endpoint:?} made {call}, which its function is not granted"
        );
    }
    calls
}

// The request endpoints answer alike for every address (DESIGN.md, rule 4): a mail request makes the
// same calls whether it queued a mail or was refused, for a known address or an unknown one.
moto_test!(
    mail_requests_make_the_same_calls_whatever_the_outcome,
    async {
        let (client, log, _) = common::instrumented_dynamodb().await;
        let table = common::create_table(&client).await;
        let store = DynamoStore::new(client, table);
        let unverified = User {
            email_verified: false,
            ..sample_user(&unique_email("mail-calls"))
        };
        let verified = sample_user(&unique_email("mail-calls"));
        for user in [&unverified, &verified] {
            assert!(store.create_user(user).await.unwrap());
        }
        let verify = CodePurpose::Verify;
        let cases = [
            (
                code_request(&unverified.email, verify, NOW_MS),
                MailOutcome::Queued,
            ),
            (
                code_request(&unverified.email, verify, NOW_MS + 1),
                MailOutcome::CoolingDown,
            ),
            (
                code_request(&verified.email, verify, NOW_MS),
                MailOutcome::AlreadyVerified,
            ),
            (
                code_request(&unique_email("mail-nobody"), verify, NOW_MS),
                MailOutcome::NoUser,
            ),
        ];
        log.take();
        for (request, outcome) in cases {
            assert_eq!(store.request_mail(&request).await.unwrap(), outcome);
            assert_eq!(
                log.take(),
                ["GetItem", "GetItem", "TransactWriteItems"],
                "{outcome:?}: the user and record read in one round trip, then one transaction"
            );
        }
    }
);

moto_test!(store_round_trips_per_endpoint, async {
    let (client, log, _) = common::instrumented_dynamodb().await;
    let table = common::create_table(&client).await;
    let keys = StaticKeySource(Arc::new(
        KeySet::from_documents(&key_doc(SigningAlgorithm::Es256), None).unwrap(),
    ));
    // No grace interval: a replay revokes at once (within it, a replay of the live token's parent reads
    // the child with one GetItem and revokes nothing).
    let mut config = AuthConfig::with_issuer("https://keygate.test");
    config.refresh_reuse_grace_secs = 0;
    // The session endpoints' calls, right after registering: no verification in between.
    config.require_verified_email = false;
    let service = AuthService::new(
        config,
        DynamoStore::new(client, table),
        keys,
        SystemClock,
        test_audit_key(),
    )
    .unwrap();
    let email = unique_email("round-trips");
    log.take();

    service.register(&ctx(), &email, PASSWORD).await.unwrap();
    assert_eq!(
        sorted(granted(Endpoint::Register, log.take())),
        ["GetItem", "GetItem", "PutItem", "TransactWriteItems"],
        "register: one conditional PutItem, then its mail request (two reads at once, one transaction)"
    );

    let tokens = service
        .login(&ctx(), &email, PASSWORD, None, None)
        .await
        .unwrap();
    assert_eq!(
        granted(Endpoint::Login, log.take()),
        ["UpdateItem", "TransactWriteItems"],
        "login: the reservation (returning the user) + one transaction"
    );

    let device_token = tokens.device_token.clone().expect("a device token");
    service
        .login(&ctx(), &email, PASSWORD, None, Some(&device_token))
        .await
        .unwrap();
    let mut calls = granted(Endpoint::Login, log.take());
    // The device's reservation and the user's GetItem are sent together: their order varies.
    calls[..2].sort();
    assert_eq!(
        calls,
        ["GetItem", "UpdateItem", "TransactWriteItems"],
        "login on a known device: its reservation and the user's read, concurrently, + one transaction"
    );

    assert!(
        service
            .login(&ctx(), &email, WRONG_PASSWORD, None, None)
            .await
            .is_err()
    );
    assert_eq!(
        granted(Endpoint::Login, log.take()),
        ["UpdateItem", "UpdateItem"],
        "failed login: the reservation + settling its window"
    );

    let after_failure = service
        .login(&ctx(), &email, PASSWORD, None, None)
        .await
        .unwrap();
    assert_eq!(
        granted(Endpoint::Login, log.take()),
        ["UpdateItem", "UpdateItem", "TransactWriteItems"],
        "login after a failure: the first reservation guessed a quiet counter and returned the \
         real one, the second applies, then one transaction"
    );

    assert!(
        service
            .login(&ctx(), &unique_email("nobody"), PASSWORD, None, None)
            .await
            .is_err()
    );
    assert_eq!(
        granted(Endpoint::Login, log.take()),
        ["UpdateItem", "UpdateItem"],
        "unknown email: the same two calls"
    );

    let rotated = service
        .refresh(&ctx(), &tokens.refresh_token, None)
        .await
        .unwrap();
    assert_eq!(
        granted(Endpoint::Refresh, log.take()),
        ["TransactWriteItems"],
        "refresh: exactly one TransactWriteItems"
    );

    service.me(&rotated.access_token).await.unwrap();
    assert_eq!(
        sorted(granted(Endpoint::Me, log.take())),
        ["GetItem", "GetItem", "Query"],
        "me: index Query + consistent GetItem, and the deny-list GetItem beside them"
    );

    assert!(
        service
            .refresh(&ctx(), &tokens.refresh_token, None)
            .await
            .is_err()
    );
    assert_eq!(
        granted(Endpoint::Refresh, log.take()),
        ["TransactWriteItems", "Query", "BatchWriteItem"],
        "reuse: the transaction, then the family's revocation"
    );

    service
        .logout(&ctx(), &after_failure.refresh_token)
        .await
        .unwrap();
    assert_eq!(
        granted(Endpoint::Logout, log.take()),
        ["GetItem", "Query", "BatchWriteItem"],
        "logout"
    );

    let revoked = service
        .login(&ctx(), &email, PASSWORD, None, None)
        .await
        .unwrap();
    log.take();
    service
        .revoke(&ctx(), &revoked.access_token, None)
        .await
        .unwrap();
    assert_eq!(
        granted(Endpoint::OAuthRevoke, log.take()),
        ["PutItem"],
        "revoking an access token: verified with the cached keys, then one PutItem of its \
         deny-list entry (a JWT is not parsed as a refresh token, so nothing is looked up)"
    );
    assert!(service.me(&revoked.access_token).await.is_err());
    log.take();
    service
        .revoke(&ctx(), &revoked.refresh_token, None)
        .await
        .unwrap();
    assert_eq!(
        granted(Endpoint::OAuthRevoke, log.take()),
        ["GetItem", "Query", "BatchWriteItem"],
        "revoking a refresh token: logout's calls"
    );

    let fresh = service
        .login(&ctx(), &email, PASSWORD, None, None)
        .await
        .unwrap();
    log.take();
    service
        .logout_all(&ctx(), &fresh.access_token)
        .await
        .unwrap();
    assert_eq!(
        sorted(granted(Endpoint::LogoutAll, log.take())),
        ["GetItem", "GetItem", "Query", "UpdateItem"],
        "logout-all: the bearer check + one watermark write, whatever the number of families"
    );

    let fresh = service
        .login(&ctx(), &email, PASSWORD, None, None)
        .await
        .unwrap();
    log.take();
    service
        .change_password(&ctx(), &fresh.access_token, PASSWORD, NEW_PASSWORD)
        .await
        .unwrap();
    assert_eq!(
        sorted(granted(Endpoint::ChangePassword, log.take())),
        [
            "GetItem",
            "GetItem",
            "Query",
            "TransactWriteItems",
            "UpdateItem"
        ],
        "password change: the bearer check, the reservation, one transaction"
    );
});

// The second-factor endpoints' calls, checked against their grants as above: enrolment, activation
// (written as a password change), a login's two steps, new recovery codes, disabling. The service's
// clock is manual, so each TOTP code is a fresh step.
moto_test!(mfa_round_trips_per_endpoint, async {
    let (client, log, _) = common::instrumented_dynamodb().await;
    let table = common::create_table(&client).await;
    let keys = StaticKeySource(Arc::new(
        KeySet::from_documents(&key_doc(SigningAlgorithm::Es256), None).unwrap(),
    ));
    let mut config = AuthConfig::with_issuer("https://keygate.test");
    config.require_verified_email = false;
    let clock = Arc::new(ManualClock::new(NOW_MS));
    let service = AuthService::new(
        config,
        DynamoStore::new(client, table),
        keys,
        clock.clone(),
        test_audit_key(),
    )
    .unwrap()
    .with_factor_keys(test_factor_keys());
    let code = |secret: &[u8]| hotp(secret, totp_step(clock.now_ms()) as u64, TOTP_DIGITS);
    let next_step = || clock.advance_ms(30_000);
    let email = unique_email("mfa-round-trips");
    service.register(&ctx(), &email, PASSWORD).await.unwrap();
    let first = service
        .login(&ctx(), &email, PASSWORD, None, None)
        .await
        .unwrap();
    log.take();

    let enrolment = service
        .enrol_totp(&ctx(), &first.access_token)
        .await
        .unwrap();
    assert_eq!(
        sorted(granted(Endpoint::MfaTotp, log.take())),
        ["GetItem", "GetItem", "Query", "UpdateItem"],
        "enrolment: the bearer check + the factor's conditional UpdateItem"
    );
    let secret = base32_decode(&enrolment.secret);

    let activated = service
        .activate_totp(
            &ctx(),
            &first.access_token,
            &enrolment.factor_id,
            &code(&secret),
        )
        .await
        .unwrap();
    assert_eq!(
        sorted(granted(Endpoint::MfaTotpActivate, log.take())),
        ["GetItem", "GetItem", "Query", "TransactWriteItems"],
        "activation: the bearer check + one transaction (a password change's)"
    );

    next_step();
    let issued = match service.login(&ctx(), &email, PASSWORD, None, None).await {
        Err(AuthError::MfaRequired(issued)) => issued,
        other => panic!("expected MfaRequired, got {other:?}"),
    };
    assert_eq!(
        granted(Endpoint::Login, log.take()),
        ["UpdateItem", "UpdateItem", "PutItem"],
        "a login's first step: the reservation, settling it, the challenge's PutItem"
    );

    let second = service
        .verify_mfa(
            &ctx(),
            &issued.mfa_token,
            SecondFactorProof::Totp(&code(&secret)),
            None,
        )
        .await
        .unwrap();
    let calls = granted(Endpoint::MfaVerify, log.take());
    assert_eq!(
        (
            calls.first().map(String::as_str),
            calls.last().map(String::as_str)
        ),
        (Some("UpdateItem"), Some("TransactWriteItems")),
        "the second step: the challenge's attempt first, one transaction last: {calls:?}"
    );
    assert!(
        service
            .verify_mfa(
                &ctx(),
                &issued.mfa_token,
                SecondFactorProof::Totp(&code(&secret)),
                None,
            )
            .await
            .is_err(),
        "a consumed challenge opens no second session"
    );
    granted(Endpoint::MfaVerify, log.take());

    next_step();
    let regenerated = service
        .regenerate_recovery_codes(&ctx(), &second.access_token, &code(&secret))
        .await
        .unwrap();
    assert_eq!(
        sorted(granted(Endpoint::MfaRecoveryCodes, log.take())),
        [
            "GetItem",
            "GetItem",
            "Query",
            "UpdateItem",
            "UpdateItem",
            "UpdateItem"
        ],
        "new recovery codes: the bearer check, the throttle's reservation and settlement, the swap"
    );

    assert!(
        service
            .disable_totp(
                &ctx(),
                &second.access_token,
                SecondFactorProof::RecoveryCode(&activated.recovery_codes[0]),
            )
            .await
            .is_err(),
        "the replaced recovery codes are dead"
    );
    granted(Endpoint::MfaTotpDisable, log.take());
    service
        .disable_totp(
            &ctx(),
            &second.access_token,
            SecondFactorProof::RecoveryCode(&regenerated.recovery_codes[0]),
        )
        .await
        .unwrap();
    assert_eq!(
        sorted(granted(Endpoint::MfaTotpDisable, log.take())),
        [
            "GetItem",
            "GetItem",
            "Query",
            "UpdateItem",
            "UpdateItem",
            "UpdateItem",
            "UpdateItem"
        ],
        "disabling: as new recovery codes, the reservation in two tries (its first guessed a quiet \
         counter, which the dead code raised)"
    );

    service
        .login(&ctx(), &email, PASSWORD, None, None)
        .await
        .expect("a password alone logs in again");
});
