//! The SDK floor: exactly the start-up work every keygate function must do, and nothing else.
//!
//! Init, shaped like `keygate_lambda::shell::run_http`: load the AWS config from the environment with
//! keygate's own SDK settings (`keygate_aws::sdk::load`: retry and timeout policy, the HTTPS client
//! trusting Amazon Trust Services' roots), create the DynamoDB and Secrets Manager clients, then read
//! the signing-key secret and make one GetItem (which opens the DynamoDB connection) concurrently, on a
//! current-thread tokio runtime. Each invocation then makes one GetItem, the size of keygate's hot path
//! (refresh is one round trip).
//!
//! Four switches exist only for the tuning measurements in `tests/bench/tuning` (read once, at start):
//! - `FLOOR_TOKIO_FLAVOR=multi_thread` runs on tokio's multi-thread runtime instead;
//! - `FLOOR_SDK_WARMUP=0` skips the GetItem during init, so the first invocation opens the connection;
//! - `FLOOR_SDK_CONFIG=default` loads the SDK's default configuration instead (its HTTPS client loads
//!   the operating system's whole certificate store);
//! - `FLOOR_SDK_KEY_READS=2` reads the secret's `AWSCURRENT` and `AWSPENDING` stages, as keygate's
//!   key source does, instead of one GetSecretValue (three requests at init instead of two).

use aws_sdk_dynamodb::types::AttributeValue;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

fn env(name: &str) -> Result<String, Error> {
    std::env::var(name).map_err(|_| Error::from(format!("{name} is not set")))
}

async fn get_item(dynamodb: &aws_sdk_dynamodb::Client, table: &str) -> Result<(), Error> {
    dynamodb
        .get_item()
        .table_name(table)
        .key("pk", AttributeValue::S("USER#floor@example.com".into()))
        .key("sk", AttributeValue::S("PROFILE".into()))
        .projection_expression("pk")
        .send()
        .await?;
    Ok(())
}

async fn run() -> Result<(), Error> {
    let table = env("KEYGATE_TABLE_NAME")?;
    let secret_id = env("KEYGATE_KEYS_SECRET_ID")?;
    let config = if std::env::var("FLOOR_SDK_CONFIG").as_deref() == Ok("default") {
        aws_config::load_from_env().await
    } else {
        keygate_aws::sdk::load().await
    };
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let secrets = aws_sdk_secretsmanager::Client::new(&config);

    let warm_up = std::env::var("FLOOR_SDK_WARMUP").as_deref() != Ok("0");
    let both_stages = std::env::var("FLOOR_SDK_KEY_READS").as_deref() == Ok("2");
    let (secret, _pending, warmed) = tokio::join!(
        secrets.get_secret_value().secret_id(&secret_id).send(),
        async {
            if both_stages {
                // Absent outside a rotation: a ResourceNotFoundException, as keygate sees it.
                let _ = secrets
                    .get_secret_value()
                    .secret_id(&secret_id)
                    .version_stage("AWSPENDING")
                    .send()
                    .await;
            }
        },
        async {
            if warm_up {
                get_item(&dynamodb, &table).await
            } else {
                Ok(())
            }
        }
    );
    if secret?.secret_string().is_none_or(str::is_empty) {
        return Err("the key secret has no string value".into());
    }
    warmed?;

    let dynamodb = &dynamodb;
    let table = table.as_str();
    lambda_runtime::run(service_fn(move |_event: LambdaEvent<Value>| async move {
        get_item(dynamodb, table).await?;
        Ok::<Value, Error>(
            json!({"statusCode": 200, "headers": {"content-type": "text/plain"}, "body": "ok"}),
        )
    }))
    .await
}

fn main() -> Result<(), Error> {
    let runtime = match std::env::var("FLOOR_TOKIO_FLAVOR").as_deref() {
        Ok("multi_thread") => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?,
        _ => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
    };
    runtime.block_on(run())
}
