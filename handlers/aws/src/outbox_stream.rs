//! The mailer function's input: the table's DynamoDB stream, filtered by the event source mapping to
//! the inserts of outbox items (`OUTBOX#<id>`, [`crate::dynamo`]), each delivered through the core's
//! [`mail::deliver`] and answered with the batch's item failures (`ReportBatchItemFailures`).
//!
//! Records are handled in order. At the first one whose transport is unavailable the rest of the
//! batch is reported failed, so Lambda retries from that record and the ones before it (sent and
//! removed from the outbox) are not sent again; after the mapping's retries a record goes to its
//! dead-letter queue. Delivery is at least once: a crash between a send and the checkpoint resends.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use keygate_core::audit::AuditKey;
use keygate_core::mail::{self, DeliveryError, MailSealer, Mailer};
use keygate_core::store::{OutboxStore, expired};
use serde::{Deserialize, Serialize};

/// The part of a DynamoDB stream event (`StreamViewType` NEW_IMAGE) the mailer reads.
#[derive(Debug, Deserialize)]
pub struct StreamEvent {
    #[serde(rename = "Records", default)]
    pub records: Vec<StreamRecord>,
}

#[derive(Debug, Deserialize)]
pub struct StreamRecord {
    #[serde(rename = "eventID", default)]
    pub event_id: String,
    #[serde(rename = "eventName", default)]
    pub event_name: String,
    #[serde(default)]
    pub dynamodb: StreamImage,
}

#[derive(Debug, Default, Deserialize)]
pub struct StreamImage {
    /// In DynamoDB's JSON (`{"S": "..."}`, `{"N": "..."}`).
    #[serde(rename = "NewImage", default)]
    pub new_image: HashMap<String, serde_json::Value>,
    #[serde(rename = "SequenceNumber", default)]
    pub sequence_number: String,
}

/// `ReportBatchItemFailures`' answer: the records to retry, by sequence number.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct BatchResponse {
    #[serde(rename = "batchItemFailures")]
    pub batch_item_failures: Vec<ItemFailure>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct ItemFailure {
    #[serde(rename = "itemIdentifier")]
    pub item_identifier: String,
}

/// The string and number attributes of a stream image as SDK attribute values (the outbox item has
/// no other kinds).
fn image_item(image: &HashMap<String, serde_json::Value>) -> HashMap<String, AttributeValue> {
    image
        .iter()
        .filter_map(|(name, value)| {
            let value = match (value.get("S"), value.get("N")) {
                (Some(serde_json::Value::String(s)), _) => AttributeValue::S(s.clone()),
                (_, Some(serde_json::Value::String(n))) => AttributeValue::N(n.clone()),
                _ => return None,
            };
            Some((name.clone(), value))
        })
        .collect()
}

/// Delivers a batch of stream records; see the module documentation for the order and retries.
pub async fn deliver_batch<S: OutboxStore, M: Mailer>(
    outbox: &S,
    mailer: &M,
    sealer: &MailSealer,
    server_key: &AuditKey,
    event: StreamEvent,
    now_ms: i64,
) -> BatchResponse {
    let mut failures = Vec::new();
    let mut retrying = false;
    for record in event.records {
        if retrying {
            failures.push(ItemFailure {
                item_identifier: record.dynamodb.sequence_number,
            });
            continue;
        }
        // The mapping's filter admits only outbox inserts; anything else is nothing to send.
        if record.event_name != "INSERT" {
            continue;
        }
        let item = match crate::dynamo::outbox_mail_from_image(&image_item(
            &record.dynamodb.new_image,
        )) {
            Ok(Some(item)) => item,
            Ok(None) => continue,
            Err(e) => {
                tracing::error!(target: "keygate::mail", event_id = %record.event_id, error = %e, "not an outbox mail, skipped");
                continue;
            }
        };
        // A mail whose code has died (a retried record, a paused account) would only confuse.
        if expired(item.expires_at_s, now_ms) {
            tracing::info!(target: "keygate::mail", mail_id = %item.id, "expired before delivery, not sent");
            continue;
        }
        match mail::deliver(outbox, mailer, sealer, server_key, &item).await {
            Ok(_) => {}
            // Sent (or dropped), but not removed: the item's TTL removes it, and the stream does not
            // offer it again, so retrying would only send it twice.
            Err(DeliveryError::Store(e)) => {
                tracing::warn!(target: "keygate::mail", mail_id = %item.id, error = %e, "delivered; the outbox item stays until its TTL")
            }
            Err(DeliveryError::Mail(_)) => {
                retrying = true;
                failures.push(ItemFailure {
                    item_identifier: record.dynamodb.sequence_number,
                });
            }
        }
    }
    BatchResponse {
        batch_item_failures: failures,
    }
}
