//! The hello floor: a minimal `lambda_runtime` function, the lower bound of any Rust Lambda's cold start.
//! It answers every event with a constant API Gateway proxy response and does nothing else.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

async fn handler(_event: LambdaEvent<Value>) -> Result<Value, Error> {
    Ok(json!({"statusCode": 200, "headers": {"content-type": "text/plain"}, "body": "hello"}))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(handler)).await
}
