//! moto's own time per DynamoDB call, measured from the harness in the same run as the functions.
//!
//! moto (Python) is the benchmark's DynamoDB, and it is slow in a way that grows with the table: its
//! TransactWriteItems deep-copies every table before applying the transaction, its index Query scans
//! every item. A function's warm round trip is its own work plus those calls. The harness times bare
//! calls of each [`Op`] against the same table (the seed user's profile and partition, and four probe
//! items of its own that it overwrites, so the table does not grow by them), with a minimal HTTP/1.1
//! client: unsigned JSON requests (moto checks no signature) on a fresh loopback connection each,
//! timed from the request's first byte to the response's last. The connect is not timed.

use std::collections::BTreeMap;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

use crate::workload::{Op, seed_email};

pub struct Probe {
    host: String,
    table: String,
    region: String,
    seed_user: String,
}

const PROBE_PK: &str = "BENCH#moto-probe";

impl Probe {
    /// `endpoint` is `http://HOST:PORT`.
    pub fn new(endpoint: &str, table: &str, region: &str, seed_user: Option<&str>) -> Self {
        Self {
            host: endpoint
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .to_owned(),
            table: table.to_owned(),
            region: region.to_owned(),
            seed_user: seed_user
                .unwrap_or("00000000-0000-4000-8000-000000000000")
                .to_owned(),
        }
    }

    fn body(&self, op: Op) -> Value {
        let table = &self.table;
        let seed = json!({"pk": {"S": format!("USER#{}", seed_email())}, "sk": {"S": "PROFILE"}});
        let item = |sk: &str| json!({"pk": {"S": PROBE_PK}, "sk": {"S": sk}, "n": {"N": "1"}});
        match op {
            Op::GetItem => json!({"TableName": table, "Key": seed, "ConsistentRead": true}),
            Op::PutItem => json!({"TableName": table, "Item": item("PUT")}),
            Op::UpdateItem => json!({
                "TableName": table,
                "Key": {"pk": {"S": PROBE_PK}, "sk": {"S": "UPDATE"}},
                "UpdateExpression": "ADD #n :one",
                "ExpressionAttributeNames": {"#n": "n"},
                "ExpressionAttributeValues": {":one": {"N": "1"}},
                "ReturnValues": "ALL_NEW"
            }),
            // Every keygate transaction has three items (a Put, an Update, a third Put or a
            // ConditionCheck): so has this one, each with a condition.
            Op::TransactWriteItems => json!({
                "TransactItems": [
                    {"Put": {
                        "TableName": table,
                        "Item": item("TRANSACT-PUT"),
                        "ConditionExpression": "attribute_not_exists(#n) OR #n > :zero",
                        "ExpressionAttributeNames": {"#n": "n"},
                        "ExpressionAttributeValues": {":zero": {"N": "0"}}
                    }},
                    {"Update": {
                        "TableName": table,
                        "Key": {"pk": {"S": PROBE_PK}, "sk": {"S": "TRANSACT-UPDATE"}},
                        "UpdateExpression": "ADD #n :one",
                        "ConditionExpression": "attribute_not_exists(#n) OR #n > :zero",
                        "ExpressionAttributeNames": {"#n": "n"},
                        "ExpressionAttributeValues": {":one": {"N": "1"}, ":zero": {"N": "0"}}
                    }},
                    {"ConditionCheck": {
                        "TableName": table,
                        "Key": {"pk": {"S": PROBE_PK}, "sk": {"S": "TRANSACT-CHECK"}},
                        "ConditionExpression": "attribute_not_exists(#n)",
                        "ExpressionAttributeNames": {"#n": "n"}
                    }}
                ]
            }),
            // Logout's shape: the user's partition under a family prefix (none matches here).
            Op::QueryTable => json!({
                "TableName": table,
                "ConsistentRead": true,
                "KeyConditionExpression": "#pk = :pk AND begins_with(#sk, :prefix)",
                "ExpressionAttributeNames": {"#pk": "pk", "#sk": "sk"},
                "ExpressionAttributeValues": {
                    ":pk": {"S": format!("USER#{}", seed_email())},
                    ":prefix": {"S": "REFRESH#moto-probe#"}
                },
                "ProjectionExpression": "#pk, #sk"
            }),
            Op::QueryIndex => json!({
                "TableName": table,
                "IndexName": "byUserId",
                "KeyConditionExpression": "#u = :u",
                "ExpressionAttributeNames": {"#u": "userId"},
                "ExpressionAttributeValues": {":u": {"S": self.seed_user}}
            }),
            Op::BatchWriteItem => json!({
                "RequestItems": {table.as_str(): [{"PutRequest": {"Item": item("BATCH")}}]}
            }),
            // The mailer's shape: one item by its key (absent here, as deleting it again would be).
            Op::DeleteItem => json!({
                "TableName": table,
                "Key": {"pk": {"S": PROBE_PK}, "sk": {"S": "DELETE"}}
            }),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// One call; returns its duration in ms and the decoded answer.
    pub async fn call(&self, target: &str, body: &Value) -> Result<(f64, Value), String> {
        let stream = tokio::net::TcpStream::connect(&self.host)
            .await
            .map_err(|e| format!("moto probe: connect {}: {e}", self.host))?;
        let _ = stream.set_nodelay(true);
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("moto probe: {e}"))?;
        let driver = tokio::spawn(connection);
        let payload = Bytes::from(body.to_string());
        let credential = format!(
            "AWS4-HMAC-SHA256 Credential=testing/20260101/{}/dynamodb/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature={}",
            self.region,
            "0".repeat(64)
        );
        let request = http::Request::post("/")
            .header("host", &self.host)
            .header("content-type", "application/x-amz-json-1.0")
            .header("x-amz-target", format!("DynamoDB_20120810.{target}"))
            .header("x-amz-date", "20260101T000000Z")
            .header("authorization", credential)
            .header("content-length", payload.len())
            .body(Full::new(payload))
            .map_err(|e| e.to_string())?;
        let started = Instant::now();
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("moto probe {target}: {e}"))?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("moto probe {target}: {e}"))?
            .to_bytes();
        let took = started.elapsed().as_secs_f64() * 1e3;
        driver.abort();
        if !status.is_success() {
            return Err(format!(
                "moto probe {target}: status {status}: {}",
                String::from_utf8_lossy(&bytes)
            ));
        }
        Ok((took, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
    }

    /// One timed call of `op`, ms.
    pub async fn time(&self, op: Op) -> Result<f64, String> {
        Ok(self.call(op.target(), &self.body(op)).await?.0)
    }

    /// `n` timed calls of every op, interleaved op by op, appended to `samples` (keyed by
    /// [`Op::name`]).
    pub async fn sample(
        &self,
        n: usize,
        samples: &mut BTreeMap<String, Vec<f64>>,
    ) -> Result<(), String> {
        for _ in 0..n {
            for op in Op::ALL {
                let (ms, _) = self.call(op.target(), &self.body(op)).await?;
                samples.entry(op.name().to_owned()).or_default().push(ms);
            }
        }
        Ok(())
    }

    /// How many items the table holds now (a Scan with `Select: COUNT`, every page).
    pub async fn item_count(&self) -> Result<u64, String> {
        let mut count = 0;
        let mut start: Option<Value> = None;
        loop {
            let mut body = json!({"TableName": self.table, "Select": "COUNT"});
            if let Some(key) = start.take() {
                body["ExclusiveStartKey"] = key;
            }
            let (_, answer) = self.call("Scan", &body).await?;
            count += answer.get("Count").and_then(Value::as_u64).unwrap_or(0);
            match answer.get("LastEvaluatedKey") {
                Some(key) if !key.is_null() => start = Some(key.clone()),
                _ => return Ok(count),
            }
        }
    }
}
