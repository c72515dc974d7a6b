//! Shared by the moto tests: the skip rule, a fresh table per test, and the SDK extension points the
//! tests use to count calls and inject faults (an interceptor and a wrapping HTTP client).
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use aws_config::SdkConfig;
use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, Metadata};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::http::{Response, StatusCode};
use aws_smithy_types::body::SdkBody;
use keygate_aws::DynamoStore;

pub const ENDPOINT_VARS: [&str; 3] = [
    "AWS_ENDPOINT_URL_DYNAMODB",
    "AWS_ENDPOINT_URL_SECRETS_MANAGER",
    "AWS_ENDPOINT_URL_SESV2",
];

/// Whether the moto endpoints are configured; prints why a test is skipped when not.
pub fn moto_available(test: &str) -> bool {
    let missing: Vec<&str> = ENDPOINT_VARS
        .iter()
        .copied()
        .filter(|v| std::env::var(v).map_or(true, |s| s.is_empty()))
        .collect();
    if missing.is_empty() {
        return true;
    }
    eprintln!(
        "SKIPPED {test}: {} not set; run through tests/moto/with-moto.sh to test against moto",
        missing.join(", ")
    );
    false
}

/// The SDK configuration the functions use (keygate_aws::sdk), pointed at moto by the environment.
pub async fn sdk_config() -> SdkConfig {
    keygate_aws::sdk::load().await
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", keygate_testkit::fixtures::random_hex(6))
}

/// Creates a table shaped like the CDK's: pk/sk strings, GSI byUserId (KEYS_ONLY), TTL on expiresAt.
pub async fn create_table(client: &aws_sdk_dynamodb::Client) -> String {
    let name = unique("keygate-test");
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .unwrap()
    };
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .unwrap()
    };
    client
        .create_table()
        .table_name(&name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute("pk"))
        .attribute_definitions(attribute("sk"))
        .attribute_definitions(attribute("userId"))
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(keygate_aws::dynamo::GSI_BY_USER_ID)
                .key_schema(key("userId", KeyType::Hash))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::KeysOnly)
                        .build(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("create table in moto");
    client
        .update_time_to_live()
        .table_name(&name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name("expiresAt")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("enable TTL");
    name
}

/// A store on a fresh table, with the functions' SDK configuration.
pub async fn fresh_store() -> DynamoStore {
    let config = sdk_config().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = create_table(&client).await;
    DynamoStore::new(client, table)
}

/// Records the operation name of every HTTP attempt the SDK sends.
#[derive(Debug, Clone, Default)]
pub struct CallLog(Arc<Mutex<Vec<String>>>);

impl CallLog {
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

impl Intercept for CallLog {
    fn name(&self) -> &'static str {
        "CallLog"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let name = cfg
            .load::<Metadata>()
            .map(|m| m.name().to_owned())
            .unwrap_or_else(|| "?".into());
        self.0.lock().unwrap().push(name);
        Ok(())
    }
}

/// What the fault-injecting HTTP client does.
#[derive(Debug, Default)]
pub struct Faults {
    /// Answer this many next requests with `error_type` (HTTP 400) instead of sending them.
    pub errors_left: AtomicUsize,
    pub error_type: Mutex<String>,
    /// Fail every request with a connection error (an outage).
    pub outage: AtomicBool,
    /// Requests seen, injected or not.
    pub requests: AtomicUsize,
    /// The `ClientRequestToken` of every TransactWriteItems attempt, in order (None: absent).
    pub transaction_tokens: Mutex<Vec<Option<String>>>,
    /// When set, only requests of this operation (`TransactWriteItems`) get the injected errors.
    pub error_operation: Mutex<Option<String>>,
}

impl Faults {
    pub fn inject(&self, count: usize, error_type: &str) {
        *self.error_type.lock().unwrap() = error_type.to_owned();
        self.errors_left.store(count, Ordering::SeqCst);
    }
}

/// An HTTP client that answers from `faults` or passes requests to a plain HTTP client (moto is HTTP).
#[derive(Debug, Clone)]
pub struct FaultyHttpClient {
    inner: SharedHttpClient,
    pub faults: Arc<Faults>,
}

impl FaultyHttpClient {
    pub fn new() -> Self {
        Self {
            inner: aws_smithy_http_client::Builder::new().build_http(),
            faults: Arc::new(Faults::default()),
        }
    }
}

impl HttpClient for FaultyHttpClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(FaultyConnector {
            inner: self.inner.http_connector(settings, components),
            faults: self.faults.clone(),
        })
    }
}

#[derive(Debug)]
struct FaultyConnector {
    inner: SharedHttpConnector,
    faults: Arc<Faults>,
}

impl HttpConnector for FaultyConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        self.faults.requests.fetch_add(1, Ordering::SeqCst);
        let target = request
            .headers()
            .get("x-amz-target")
            .unwrap_or_default()
            .to_owned();
        if target.ends_with(".TransactWriteItems") {
            let token = request
                .body()
                .bytes()
                .and_then(|body| serde_json::from_slice::<serde_json::Value>(body).ok())
                .and_then(|body| body["ClientRequestToken"].as_str().map(str::to_owned));
            self.faults.transaction_tokens.lock().unwrap().push(token);
        }
        if self.faults.outage.load(Ordering::SeqCst) {
            return HttpConnectorFuture::ready(Err(ConnectorError::io(
                "injected outage: connection refused".into(),
            )));
        }
        let targeted = self
            .faults
            .error_operation
            .lock()
            .unwrap()
            .as_ref()
            .is_none_or(|operation| target.ends_with(&format!(".{operation}")));
        let inject = targeted
            && self
                .faults
                .errors_left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
        if inject {
            let error_type = self.faults.error_type.lock().unwrap().clone();
            let body = format!(
                r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{error_type}","message":"injected by the test"}}"#
            );
            let mut response =
                Response::new(StatusCode::try_from(400).unwrap(), SdkBody::from(body));
            response
                .headers_mut()
                .insert("content-type", "application/x-amz-json-1.0");
            return HttpConnectorFuture::ready(Ok(response));
        }
        self.inner.call(request)
    }
}

/// A DynamoDB client with the functions' configuration plus a call log and the fault injector.
pub async fn instrumented_dynamodb() -> (aws_sdk_dynamodb::Client, CallLog, FaultyHttpClient) {
    let config = sdk_config().await;
    let log = CallLog::default();
    let http = FaultyHttpClient::new();
    let conf = aws_sdk_dynamodb::config::Builder::from(&config)
        .http_client(http.clone())
        .interceptor(log.clone())
        .build();
    (aws_sdk_dynamodb::Client::from_conf(conf), log, http)
}

/// A Secrets Manager client with the functions' configuration plus the fault injector.
pub async fn instrumented_secrets_manager() -> (aws_sdk_secretsmanager::Client, FaultyHttpClient) {
    let config = sdk_config().await;
    let http = FaultyHttpClient::new();
    let conf = aws_sdk_secretsmanager::config::Builder::from(&config)
        .http_client(http.clone())
        .build();
    (aws_sdk_secretsmanager::Client::from_conf(conf), http)
}
