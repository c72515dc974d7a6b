//! `cdk/contract.json`: what the CDK must know of the Rust code, rendered from the Rust tables
//! themselves (functions, endpoints, settings, metrics) so the two cannot drift. The golden test
//! `tests/contract.rs` fails when the checked-in file is stale;
//! `KEYGATE_WRITE_CONTRACT=1 cargo test -p keygate-lambda --test contract` rewrites it.

use std::collections::BTreeSet;

use keygate_core::audit::AuditEvent;
use keygate_core::config::{AUTH_SETTINGS, Setting};
use keygate_core::mail::MAIL_SETTINGS;
use keygate_http::{Endpoint, KeyAccess, LATENCY_METRIC};
use serde::Serialize;

use keygate_aws::dynamo::DynamoCalls;
use keygate_aws::settings::AWS_SETTINGS;

use crate::functions::{
    BINARY, FUNCTIONS, Function, FunctionFacts, LAMBDA_SETTINGS, MAILER_NAME, MAILER_SUMMARY,
    ROTATE_KEYS_NAME, ROTATE_KEYS_SUMMARY,
};
use crate::telemetry;

#[derive(Serialize)]
struct Contract {
    /// The one binary every function runs (cargo package and binary of the same name).
    binary: &'static str,
    functions: Vec<FunctionEntry>,
    settings: Vec<SettingEntry>,
    metrics: Metrics,
}

#[derive(Serialize)]
struct FunctionEntry {
    name: &'static str,
    summary: &'static str,
    /// none, public, private (the most its endpoints need), or rotate (rotate-keys).
    keys: &'static str,
    endpoints: Vec<EndpointEntry>,
    /// Whether it reads the TOTP data-key ring (the only functions granted that secret).
    factor_keys: bool,
    /// Absent: no table access at all.
    #[serde(skip_serializing_if = "Option::is_none")]
    dynamodb: Option<TableCalls>,
}

#[derive(Serialize)]
struct EndpointEntry {
    name: &'static str,
    method: String,
    path: &'static str,
    keys: &'static str,
    hashes_password: bool,
}

#[derive(Serialize)]
struct TableCalls {
    table: BTreeSet<&'static str>,
    by_user_id_index: BTreeSet<&'static str>,
}

#[derive(Serialize)]
struct SettingEntry {
    /// `core` (every function and the local server), `mail` (the mailers: the local server's and
    /// the mailer function), `aws` (the AWS adapters) or `lambda` (the Lambda shell).
    scope: &'static str,
    env: &'static str,
    flag: &'static str,
    default: Option<&'static str>,
    min: Option<i64>,
    max: Option<i64>,
    help: &'static str,
}

#[derive(Serialize)]
struct Metrics {
    /// EMF counters (unit Count), each counting one or more audit events.
    counters: Vec<&'static str>,
    /// Audit event name -> the counter it increments.
    audit_events: Vec<AuditEntry>,
    /// The per-request latency histogram, in milliseconds.
    latency: &'static str,
}

#[derive(Serialize)]
struct AuditEntry {
    event: &'static str,
    metric: &'static str,
}

fn keys_name(access: KeyAccess) -> &'static str {
    match access {
        KeyAccess::None => "none",
        KeyAccess::Public => "public",
        KeyAccess::Private => "private",
    }
}

fn function(function: Function) -> FunctionEntry {
    match function {
        Function::Api(f) => api_function(&f.facts()),
        Function::ApiWithoutTable(f) => api_function(&f.facts()),
        Function::Mailer => FunctionEntry {
            name: MAILER_NAME,
            summary: MAILER_SUMMARY,
            keys: "none",
            endpoints: Vec::new(),
            factor_keys: false,
            dynamodb: Some(table_calls([DynamoCalls::MAILER].into_iter())),
        },
        Function::RotateKeys => FunctionEntry {
            name: ROTATE_KEYS_NAME,
            summary: ROTATE_KEYS_SUMMARY,
            keys: "rotate",
            endpoints: Vec::new(),
            factor_keys: false,
            dynamodb: None,
        },
    }
}

fn table_calls(calls: impl Iterator<Item = DynamoCalls> + Clone) -> TableCalls {
    TableCalls {
        table: calls
            .clone()
            .flat_map(|c| c.table.iter().copied())
            .collect(),
        by_user_id_index: calls
            .flat_map(|c| c.by_user_id_index.iter().copied())
            .collect(),
    }
}

fn api_function(function: &FunctionFacts) -> FunctionEntry {
    let dynamodb = function
        .uses_table
        .then(|| table_calls(function.endpoints.iter().map(|&e| DynamoCalls::of(e))));
    FunctionEntry {
        name: function.name,
        summary: function.summary,
        keys: keys_name(function.key_access()),
        endpoints: function.endpoints.iter().map(|&e| endpoint(e)).collect(),
        factor_keys: function.uses_factor_keys(),
        dynamodb,
    }
}

fn endpoint(endpoint: Endpoint) -> EndpointEntry {
    EndpointEntry {
        name: endpoint.name(),
        method: endpoint.method().to_string(),
        path: endpoint.path(),
        keys: keys_name(endpoint.key_access()),
        hashes_password: endpoint.hashes_password(),
    }
}

fn setting(scope: &'static str, setting: &Setting) -> SettingEntry {
    SettingEntry {
        scope,
        env: setting.env,
        flag: setting.flag,
        default: setting.default,
        min: setting.range.map(|(min, _)| min),
        max: setting.range.map(|(_, max)| max),
        help: setting.help,
    }
}

/// The contract as `cdk/contract.json` holds it: pretty JSON with a trailing newline.
pub fn render() -> String {
    let contract = Contract {
        binary: BINARY,
        functions: FUNCTIONS.iter().map(|&f| function(f)).collect(),
        settings: AUTH_SETTINGS
            .iter()
            .map(|s| setting("core", s))
            .chain(MAIL_SETTINGS.iter().map(|s| setting("mail", s)))
            .chain(AWS_SETTINGS.iter().map(|s| setting("aws", s)))
            .chain(LAMBDA_SETTINGS.iter().map(|s| setting("lambda", s)))
            .collect(),
        metrics: Metrics {
            counters: telemetry::counters(),
            audit_events: AuditEvent::ALL
                .iter()
                .map(|e| AuditEntry {
                    event: e.name(),
                    metric: e.metric(),
                })
                .collect(),
            latency: LATENCY_METRIC,
        },
    };
    let mut json = serde_json::to_string_pretty(&contract).expect("the contract serialises");
    json.push('\n');
    json
}
