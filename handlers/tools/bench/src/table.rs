//! The benchmark's table on moto: its definition, the snapshot seeding leaves, and its restore to a
//! fixed size before every cold start.
//!
//! moto's TransactWriteItems deep-copies the tables it writes and its index Query scans every item
//! (`crate::moto_probe`), so a table that grows during a run makes moto, not keygate, slower run by
//! run. Each cold start therefore gets the table as seeding left it, topped up with filler items to
//! the variant's size, outside the timed part: a Scan, then one BatchWriteItem pass deleting what the
//! last cold start added and putting back what it changed (a few dozen writes, where dropping and
//! re-creating the table would rewrite all of it). The harness's fixture is restored with it
//! (`workload::Fixture` is cloned).

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::moto_probe::Probe;

/// moto's BatchWriteItem limit, as DynamoDB's.
const BATCH: usize = 25;

/// The filler users' partition prefix: never an address the workloads use.
const FILLER_PREFIX: &str = "USER#filler-";

/// The contract's table (`cdk/lib`: pk/sk strings, TTL attribute `expiresAt`, one KEYS_ONLY index
/// `byUserId` on `userId`, on demand), created afresh.
pub async fn create(probe: &Probe) -> Result<(), String> {
    let table = probe.table();
    probe
        .call(
            "CreateTable",
            &json!({
                "TableName": table,
                "BillingMode": "PAY_PER_REQUEST",
                "AttributeDefinitions": [
                    {"AttributeName": "pk", "AttributeType": "S"},
                    {"AttributeName": "sk", "AttributeType": "S"},
                    {"AttributeName": "userId", "AttributeType": "S"}
                ],
                "KeySchema": [
                    {"AttributeName": "pk", "KeyType": "HASH"},
                    {"AttributeName": "sk", "KeyType": "RANGE"}
                ],
                "GlobalSecondaryIndexes": [{
                    "IndexName": "byUserId",
                    "KeySchema": [{"AttributeName": "userId", "KeyType": "HASH"}],
                    "Projection": {"ProjectionType": "KEYS_ONLY"}
                }]
            }),
        )
        .await?;
    probe
        .call(
            "UpdateTimeToLive",
            &json!({
                "TableName": table,
                "TimeToLiveSpecification": {"Enabled": true, "AttributeName": "expiresAt"}
            }),
        )
        .await?;
    Ok(())
}

/// Every item of the table (Scan, every page).
pub async fn scan(probe: &Probe) -> Result<Vec<Value>, String> {
    let mut items = Vec::new();
    let mut start: Option<Value> = None;
    loop {
        let mut body = json!({"TableName": probe.table()});
        if let Some(key) = start.take() {
            body["ExclusiveStartKey"] = key;
        }
        let (_, answer) = probe.call("Scan", &body).await?;
        if let Some(page) = answer.get("Items").and_then(Value::as_array) {
            items.extend(page.iter().cloned());
        }
        match answer.get("LastEvaluatedKey") {
            Some(key) if !key.is_null() => start = Some(key.clone()),
            _ => return Ok(items),
        }
    }
}

/// Writes `items` (BatchWriteItem, 25 at a time, unprocessed items again).
pub async fn put(probe: &Probe, items: &[Value]) -> Result<(), String> {
    let requests: Vec<Value> = items
        .iter()
        .map(|item| json!({"PutRequest": {"Item": item}}))
        .collect();
    write(probe, &requests).await
}

/// Applies BatchWriteItem `requests` (Put or Delete requests), 25 at a time, unprocessed ones again.
async fn write(probe: &Probe, all: &[Value]) -> Result<(), String> {
    for chunk in all.chunks(BATCH) {
        let mut requests = chunk.to_vec();
        for _ in 0..10 {
            if requests.is_empty() {
                break;
            }
            let (_, answer) = probe
                .call(
                    "BatchWriteItem",
                    &json!({"RequestItems": {probe.table(): requests}}),
                )
                .await?;
            requests = answer
                .get("UnprocessedItems")
                .and_then(|u| u.get(probe.table()))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
        }
        if !requests.is_empty() {
            return Err(format!(
                "BatchWriteItem left {} items unprocessed",
                requests.len()
            ));
        }
    }
    Ok(())
}

/// The table as seeding left it, and the filler that tops it up to a size.
pub struct Snapshot {
    items: Vec<Value>,
}

impl Snapshot {
    pub async fn take(probe: &Probe) -> Result<Self, String> {
        Ok(Self {
            items: scan(probe).await?,
        })
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// The seeded items of one kind (`pk` prefix and `sk`), e.g. the outbox's mails.
    pub fn items_where(&self, pk_prefix: &str, sk: &str) -> Vec<Value> {
        self.items
            .iter()
            .filter(|item| {
                item["pk"]["S"]
                    .as_str()
                    .is_some_and(|pk| pk.starts_with(pk_prefix))
                    && item["sk"]["S"].as_str() == Some(sk)
            })
            .cloned()
            .collect()
    }

    /// The table as seeded plus filler, `size` items in all; `size` below the seeded count is an
    /// error (the seed alone is larger).
    pub async fn restore(&self, probe: &Probe, size: usize) -> Result<(), String> {
        if size < self.items.len() {
            return Err(format!(
                "a table of {size} items is smaller than the {} items seeding wrote",
                self.items.len()
            ));
        }
        let mut wanted: HashMap<(String, String), Value> = self
            .items
            .iter()
            .cloned()
            .chain(filler(size - self.items.len()))
            .map(|item| (key(&item), item))
            .collect();
        let mut requests = Vec::new();
        for item in scan(probe).await? {
            match wanted.remove(&key(&item)) {
                Some(target) if target == item => {}
                Some(target) => requests.push(json!({"PutRequest": {"Item": target}})),
                None => requests.push(json!({"DeleteRequest": {"Key": {
                    "pk": item["pk"].clone(), "sk": item["sk"].clone()
                }}})),
            }
        }
        requests.extend(
            wanted
                .into_values()
                .map(|item| json!({"PutRequest": {"Item": item}})),
        );
        write(probe, &requests).await
    }
}

/// An item's primary key.
fn key(item: &Value) -> (String, String) {
    let part = |name: &str| item[name]["S"].as_str().unwrap_or_default().to_owned();
    (part("pk"), part("sk"))
}

/// `count` items shaped as other users' are: a profile (with its `userId`, so the index holds it
/// too) and two refresh tokens per user, about the size of keygate's own items.
pub fn filler(count: usize) -> Vec<Value> {
    (0..count)
        .map(|i| {
            let user = i / 3;
            let pk = format!("{FILLER_PREFIX}{user}@example.com");
            let user_id = format!("00000000-0000-4000-8000-{user:012}");
            match i % 3 {
                0 => json!({
                    "pk": {"S": pk}, "sk": {"S": "PROFILE"}, "userId": {"S": user_id},
                    "email": {"S": format!("filler-{user}@example.com")},
                    "passwordHash": {"S": "$argon2id$v=19$m=19456,t=2,p=1$ZmlsbGVyLXNhbHQ$ZmlsbGVyLWhhc2gtbm90LXVzZWQtZm9yLWxvZ2lu"},
                    "createdAt": {"N": "1764806400000"}, "revokedBefore": {"N": "0"},
                    "emailVerified": {"BOOL": true}
                }),
                n => json!({
                    "pk": {"S": pk},
                    "sk": {"S": format!("REFRESH#{user:08x}-fam{n}#{user:08x}-tok{n}")},
                    "tokenHash": {"S": format!("{:064x}", i)},
                    "issuedAt": {"N": "1764806400000"}, "expiresAt": {"N": "4102444800"},
                    "familyExpiresAt": {"N": "4102444800"}
                }),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filler_is_exactly_the_count_asked_with_unique_keys_outside_the_workloads() {
        for count in [0, 1, 2, 3, 100, 2_401] {
            let items = filler(count);
            assert_eq!(items.len(), count);
            let keys: std::collections::BTreeSet<String> = items
                .iter()
                .map(|i| format!("{}|{}", i["pk"]["S"], i["sk"]["S"]))
                .collect();
            assert_eq!(keys.len(), count, "keys are unique");
            assert!(items.iter().all(|i| {
                i["pk"]["S"]
                    .as_str()
                    .is_some_and(|pk| pk.starts_with(FILLER_PREFIX))
            }));
        }
    }
}
