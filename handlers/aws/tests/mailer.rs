//! The mailer function's delivery against moto's DynamoDB and SES v2: a stream batch of outbox
//! inserts is sent through SES and removed from the table; other records are skipped; a refused mail
//! is dropped; an unreachable SES keeps the mail and reports it and every later record for retry.
//! Skipped, with a message, when the moto endpoints are not configured.

mod common;

use keygate_aws::outbox_stream::{BatchResponse, ItemFailure, StreamEvent, deliver_batch};
use keygate_aws::ses::{SesMailer, SesSettings};
use keygate_core::store::OutboxMail;
use keygate_core::{AuthConfig, AuthService, Clock as _, SystemClock};
use keygate_testkit::doubles::StaticKeySource;
use keygate_testkit::email_rules::queued_mails;
use keygate_testkit::fixtures::{PASSWORD, block_on, test_audit_key, unique_email};
use serde_json::{Value, json};

const DOMAIN: &str = "mail.keygate.test";

fn ses_settings(from: &str) -> SesSettings {
    SesSettings {
        from: from.to_owned(),
        configuration_set: None,
    }
}

/// A stream record of the INSERT of `mail` (NEW_IMAGE, DynamoDB JSON), sequence number `seq`.
fn insert(mail: &OutboxMail, seq: u32) -> Value {
    json!({
        "eventID": format!("event-{seq}"),
        "eventName": "INSERT",
        "dynamodb": {
            "SequenceNumber": seq.to_string(),
            "NewImage": {
                "pk": {"S": format!("OUTBOX#{}", mail.id)},
                "sk": {"S": "MAIL"},
                "sealed": {"S": mail.sealed},
                "createdAt": {"N": mail.created_at_ms.to_string()},
                "expiresAt": {"N": mail.expires_at_s.to_string()},
            }
        }
    })
}

/// The messages moto's SES holds (its management API), as (source, destinations, subject, body).
async fn sent_messages() -> Vec<Value> {
    let endpoint = std::env::var("AWS_ENDPOINT_URL_SESV2").expect("with-moto.sh sets it");
    let data: Value = reqwest::get(format!("{endpoint}/moto-api/data.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    data["ses"]["Message"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn to_of(message: &Value) -> String {
    message["destinations"]["ToAddresses"][0]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn stream_inserts_are_sent_through_ses_and_leave_the_outbox() {
    if !common::moto_available("stream_inserts_are_sent_through_ses_and_leave_the_outbox") {
        return;
    }
    block_on(async {
        let store = common::fresh_store().await;
        let config = common::sdk_config().await;
        let ses = aws_sdk_sesv2::Client::new(&config);
        ses.create_email_identity()
            .email_identity(DOMAIN)
            .send()
            .await
            .expect("the sender's domain identity");
        let keys = StaticKeySource(std::sync::Arc::new(
            keygate_core::keys::KeySet::from_documents(
                &keygate_core::keys::KeySetDocument {
                    keys: vec![
                        keygate_core::keys::generate_key(keygate_core::SigningAlgorithm::Es256, 0)
                            .unwrap(),
                    ],
                },
                None,
            )
            .unwrap(),
        ));
        let service = AuthService::new(
            AuthConfig::with_issuer("https://auth.keygate.test"),
            store,
            keys,
            SystemClock,
            test_audit_key(),
        )
        .unwrap();
        let ctx = service.context("r".into(), "c".into());
        let (ada, grace) = (unique_email("mailer-ada"), unique_email("mailer-grace"));
        for email in [&ada, &grace] {
            service.register(&ctx, email, PASSWORD).await.unwrap();
        }
        let now = SystemClock.now_ms();
        // This test's mails (the table is shared with other tests), as outbox items.
        let mine = async || -> Vec<OutboxMail> {
            queued_mails(&service, now)
                .await
                .into_iter()
                .filter(|(_, mail)| mail.to == ada || mail.to == grace)
                .map(|(item, _)| item)
                .collect()
        };
        let queued = mine().await;
        assert_eq!(queued.len(), 2, "registration queued one mail each");
        let before = sent_messages().await.len();

        // Unreachable SES (a closed port): nothing is sent or removed, and the failed record and
        // every later one are reported, so Lambda retries from the first.
        let unreachable = aws_sdk_sesv2::Client::from_conf(
            aws_sdk_sesv2::config::Builder::from(&config)
                .endpoint_url("http://127.0.0.1:9")
                .build(),
        );
        let mailer = SesMailer::new(
            unreachable,
            ses_settings(&format!("keygate <no-reply@{DOMAIN}>")),
        );
        let event = || -> StreamEvent {
            serde_json::from_value(json!({
                "Records": [
                    insert(&queued[0], 100),
                    // Removals (a delivery, a TTL expiry) and other items are not mails to send.
                    {"eventID": "e-remove", "eventName": "REMOVE", "dynamodb": {"SequenceNumber": "101"}},
                    {"eventID": "e-user", "eventName": "INSERT", "dynamodb": {"SequenceNumber": "102",
                        "NewImage": {"pk": {"S": "USER#someone@example.com"}, "sk": {"S": "PROFILE"}}}},
                    insert(&queued[1], 103),
                ]
            }))
            .unwrap()
        };
        let answer = deliver_batch(
            service.store(),
            &mailer,
            service.sealer(),
            service.audit_key(),
            event(),
            now,
        )
        .await;
        let failed: Vec<&str> = answer
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(failed, ["100", "101", "102", "103"]);
        assert_eq!(mine().await.len(), 2);

        // Moto's SES: both mails sent, both items removed, nothing to retry.
        let mailer = SesMailer::new(
            ses.clone(),
            ses_settings(&format!("keygate <no-reply@{DOMAIN}>")),
        );
        let answer = deliver_batch(
            service.store(),
            &mailer,
            service.sealer(),
            service.audit_key(),
            event(),
            now,
        )
        .await;
        assert_eq!(answer, BatchResponse::default());
        assert!(mine().await.is_empty());
        let sent = sent_messages().await;
        let new: Vec<&Value> = sent[before..].iter().collect();
        let mut recipients: Vec<String> = new.iter().map(|m| to_of(m)).collect();
        recipients.sort();
        let mut expected = vec![ada.clone(), grace.clone()];
        expected.sort();
        assert_eq!(recipients, expected);
        for message in &new {
            assert_eq!(message["source"], format!("keygate <no-reply@{DOMAIN}>"));
            assert_eq!(message["subject"], "Confirm your email address");
            let body = message["body"].as_str().unwrap();
            assert!(
                body.contains("https://auth.keygate.test/verify-email#token=kgev_"),
                "{body}"
            );
        }

        // A sender SES refuses (not a verified identity): the mail is dropped, not retried.
        service
            .request_code(&ctx, &ada, keygate_core::store::CodePurpose::Reset)
            .await
            .unwrap();
        let reset = mine().await;
        assert_eq!(reset.len(), 1);
        let refusing = SesMailer::new(ses, ses_settings("keygate <no-reply@unverified.test>"));
        let answer = deliver_batch(
            service.store(),
            &refusing,
            service.sealer(),
            service.audit_key(),
            serde_json::from_value(json!({"Records": [insert(&reset[0], 200)]})).unwrap(),
            now,
        )
        .await;
        assert_eq!(answer.batch_item_failures, Vec::<ItemFailure>::new());
        assert!(mine().await.is_empty());
        assert_eq!(
            sent_messages().await.len(),
            sent.len(),
            "nothing more was sent"
        );
    });
}
