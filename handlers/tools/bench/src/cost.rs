//! `keygate-bench cost --profile FILE [--power DIR]`: one month of keygate on AWS, line by line, beside
//! the same monthly active users on Amazon Cognito (Essentials).
//!
//! The traffic comes from a usage profile ([`Profile`], JSON; every field optional). Lambda durations
//! come from a `power` run's results (the sizes `cdk/config/common.ts` gives `MEMORY_MB`; keygate's
//! own time plus an assumed DynamoDB round trip per call) or, without one, from the recorded
//! `tests/bench/results.json` (the warm round trip as measured, moto included: an upper bound). Every
//! price is in [`crate::prices`]; every count below is stated where it is used.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::power;
use crate::prices::{PRICES, PriceTable};
use crate::report::Results;

/// A month of traffic. Rates are per monthly active user (MAU) per month unless the name says
/// otherwise; every field has a default.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Profile {
    /// Monthly active users.
    pub mau: f64,
    /// Password logins (POST /auth/login).
    pub logins_per_user_month: f64,
    /// Token refreshes (POST /auth/refresh): 120 is one every 6 hours of a daily session.
    pub refreshes_per_user_month: f64,
    /// Share (0 to 1) of logins whose account has an active TOTP factor: each answers 403
    /// mfa-required having written a challenge, and is followed by one POST /auth/mfa/verify. The
    /// same share of refreshes is these accounts' (their sessions refresh as the others do).
    pub mfa_login_share: f64,
    /// TOTP enrolments: POST /auth/mfa/totp, then POST /auth/mfa/totp/activate.
    pub mfa_enrolments_per_user_month: f64,
    /// POST /auth/mfa/recovery-codes (a new set of recovery codes).
    pub mfa_recovery_regenerations_per_user_month: f64,
    /// POST /auth/mfa/totp/disable.
    pub mfa_disables_per_user_month: f64,
    /// Share of each function's invocations that start a new execution environment (cold start):
    /// billed init, its secrets read in one BatchGetSecretValue (counted as one call per secret: the
    /// pricing page does not say how a batch is billed, and CloudTrail logs a GetSecretValue per
    /// secret), one KMS Decrypt each.
    pub cold_start_share: f64,
    /// "rest" (the prod stage's REST API, the one WAF attaches to) or "http" (HTTP API, no WAF).
    pub api: Api,
    /// A WAF web ACL on the API (REST only).
    pub waf: bool,
    /// The stage, for the report (every stage has the same secrets and keys).
    pub stage: String,
    /// Lambda architecture priced: "x86_64" (every stage's setting) or "arm64".
    pub architecture: Architecture,
    /// New accounts (POST /auth/register), each sends a verification mail.
    pub registrations_per_user_month: f64,
    /// Verification mails in all (registrations' and re-sends through POST /auth/email/verification);
    /// each is opened once (POST /auth/email/verify).
    pub verification_mails_per_user_month: f64,
    /// Password-reset mails (POST /auth/password/forgot), each used once (POST /auth/password/reset).
    pub reset_mails_per_user_month: f64,
    /// POST /auth/logout.
    pub logouts_per_user_month: f64,
    /// POST /auth/logout-all.
    pub logout_alls_per_user_month: f64,
    /// POST /auth/password.
    pub password_changes_per_user_month: f64,
    /// GET /auth/me.
    pub me_per_user_month: f64,
    /// GET /.well-known/jwks.json in all (resource servers fetching the keys; not per user).
    pub jwks_requests_month: f64,
    /// CloudWatch Logs bytes ingested per API request, every log group together; default:
    /// [`LogBytes::default`]'s sum.
    pub log_bytes_per_request: Option<f64>,
    /// The DynamoDB round trip on AWS, ms per call, added to keygate's own time (power results only).
    pub dynamodb_ms_per_call: f64,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Api {
    Rest,
    Http,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
pub enum Architecture {
    #[serde(rename = "x86_64")]
    X86_64,
    #[serde(rename = "arm64")]
    Arm64,
}

impl Default for Profile {
    fn default() -> Self {
        Self {
            mau: 100_000.0,
            logins_per_user_month: 4.0,
            refreshes_per_user_month: 120.0,
            mfa_login_share: 0.1,
            mfa_enrolments_per_user_month: 0.005,
            mfa_recovery_regenerations_per_user_month: 0.001,
            mfa_disables_per_user_month: 0.001,
            cold_start_share: 0.02,
            api: Api::Rest,
            waf: true,
            stage: "prod".into(),
            architecture: Architecture::X86_64,
            registrations_per_user_month: 0.05,
            verification_mails_per_user_month: 0.06,
            reset_mails_per_user_month: 0.02,
            logouts_per_user_month: 1.0,
            logout_alls_per_user_month: 0.02,
            password_changes_per_user_month: 0.01,
            me_per_user_month: 10.0,
            jwks_requests_month: 50_000.0,
            log_bytes_per_request: None,
            dynamodb_ms_per_call: power::AWS_DYNAMODB_MS_PER_CALL,
        }
    }
}

impl Profile {
    /// Refuses what serde cannot: a share outside 0 to 1 would make negative requests.
    pub fn check(&self) -> Result<(), String> {
        if (0.0..=1.0).contains(&self.mfa_login_share) {
            Ok(())
        } else {
            Err(format!(
                "mfa_login_share: {} is not a share between 0 and 1",
                self.mfa_login_share
            ))
        }
    }
}

/// What one API request writes to CloudWatch Logs, by log group (estimates, bytes).
pub struct LogBytes {
    /// The function's JSON lines: keygate-http's request line, the audit event, the EMF document
    /// ([`FUNCTION_LOG_BYTES`], measured).
    pub function: f64,
    /// Lambda's START, END and REPORT lines.
    pub platform: f64,
    /// The API stage's JSON access-log line (`cdk/lib/api/access-log.ts`, 16 fields).
    pub access: f64,
    /// WAF's JSON log record (headers included, Authorization redacted), REST with WAF only.
    pub waf: f64,
}

impl Default for LogBytes {
    fn default() -> Self {
        Self {
            function: FUNCTION_LOG_BYTES,
            platform: 350.0,
            access: 600.0,
            waf: 1_500.0,
        }
    }
}

/// Measured: the bench's process logs of the power run recorded in docs/benchmarks.md (2026-12-04),
/// bytes of the lines carrying an invocation's request id, per invocation, median over the
/// functions (me and well-known about 700, register 1,840, the others about 1,280).
pub const FUNCTION_LOG_BYTES: f64 = 1_280.0;

/// The secrets of a stage (cdk/lib/keys/signing-keys.ts): signing keys, public key set, server key,
/// TOTP data-key ring.
pub const SECRETS: u32 = 4;
/// The customer managed KMS keys of a stage: the secrets' key, the table's (CUSTOMER_MANAGED in
/// every stage), the alarm topic's and the SES event topic's.
pub const KMS_KEYS: u32 = 4;
/// The web ACL's rules (cdk/lib/api/waf.ts): three AWS managed rule groups and two rate-based rules.
pub const WAF_RULES: u32 = 5;
/// The mailer's duration (SES SendEmail + the outbox DeleteItem): not measured by the bench, assumed.
pub const MAILER_ASSUMED_MS: f64 = 40.0;
/// The mailer's memory when `MEMORY_MB` cannot be read.
const DEFAULT_MEMORY_MB: u32 = 256;

/// One Lambda function of the model and what it serves.
struct FunctionSpec {
    name: &'static str,
    /// Secrets read at init (cdk/contract.json `keys`, plus the server key for every function that
    /// emits audit events or seals mail: all but well-known, plus the TOTP data-key ring where
    /// `factor_keys` is set: account-mfa).
    secrets_at_init: u32,
    /// Whose measured durations it takes: the first of these a results file has. Empty: none.
    measured_as: &'static [&'static str],
    /// The DynamoDB calls of one of its own invocations, billed instead of the borrowed function's
    /// when it takes another's own time (`None`: the borrowed function's count).
    calls_when_borrowing: Option<u32>,
}

const FUNCTIONS: [FunctionSpec; 11] = [
    FunctionSpec {
        name: "register",
        secrets_at_init: 1,
        measured_as: &["register"],
        calls_when_borrowing: None,
    },
    FunctionSpec {
        name: "login",
        secrets_at_init: 2,
        measured_as: &["login"],
        calls_when_borrowing: None,
    },
    FunctionSpec {
        name: "refresh",
        secrets_at_init: 2,
        measured_as: &["refresh"],
        calls_when_borrowing: None,
    },
    FunctionSpec {
        name: "logout",
        secrets_at_init: 2,
        measured_as: &["logout"],
        calls_when_borrowing: None,
    },
    FunctionSpec {
        name: "logout-all",
        secrets_at_init: 2,
        measured_as: &["logout-all"],
        calls_when_borrowing: None,
    },
    FunctionSpec {
        name: "change-password",
        secrets_at_init: 2,
        measured_as: &["change-password"],
        calls_when_borrowing: None,
    },
    FunctionSpec {
        name: "me",
        secrets_at_init: 2,
        measured_as: &["me"],
        calls_when_borrowing: None,
    },
    FunctionSpec {
        name: "well-known",
        secrets_at_init: 1,
        measured_as: &["well-known"],
        calls_when_borrowing: None,
    },
    FunctionSpec {
        name: "account-email",
        secrets_at_init: 1,
        // The bench's account-email asks for a reset mail, as a verification re-send does (no hash);
        // a password reset also hashes (a fifth of its requests with the default profile), so its
        // figure errs low by register's hash there. Runs that predate it: register's.
        measured_as: &["account-email", "register"],
        calls_when_borrowing: None,
    },
    // Signing keys, server key, TOTP data-key ring. Its traffic is the login's second step: an
    // UpdateItem, two reservation tries, AES-GCM, one transaction and a token issue, no argon2. The
    // bench measures an enrolment (4 calls, no token issue), whose own time stands for it; runs that
    // predate it: refresh's own time (same 256 MB, the same token issue and transaction) with the
    // verify's 4 calls.
    FunctionSpec {
        name: "account-mfa",
        secrets_at_init: 3,
        measured_as: &["account-mfa", "refresh"],
        calls_when_borrowing: Some(4),
    },
    FunctionSpec {
        name: "mailer",
        secrets_at_init: 1,
        measured_as: &[],
        calls_when_borrowing: None,
    },
];

/// One endpoint's monthly requests and DynamoDB units per request.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    pub name: &'static str,
    pub function: &'static str,
    pub requests: f64,
    /// Read request units per request: 1 per 4 KB strongly consistent, 0.5 eventually consistent.
    pub rru: f64,
    /// Write request units per request: 1 per KB, 2 per KB inside a transaction (ConditionChecks
    /// included), 1 more for the byUserId index when a user is created.
    pub wru: f64,
    pub through_api: bool,
}

/// The endpoints and their units (items at most 1 KB, an outbox mail at most 2 KB, reads at most
/// 4 KB unless counted): the calls are `workload::Kind::dynamo_calls` and
/// `keygate_aws::dynamo::DynamoCalls`, the items `keygate_aws::dynamo`'s transactions. A TOTP
/// account's profile item is more than 1 KB: its MFA state (about 880 B of JSON with 10
/// recovery-code hashes) makes it about 1.2 KB, so each write of it (an UpdateItem is billed on the
/// larger of the item before and after) is 2 WRU, 4 inside a transaction. A conditional write whose
/// condition fails is billed as a write of the item as it is.
pub fn endpoints(p: &Profile) -> Vec<Endpoint> {
    let users = p.mau;
    let logins = users * p.logins_per_user_month;
    let refreshes = users * p.refreshes_per_user_month;
    let totp = p.mfa_login_share;
    let enrolments = users * p.mfa_enrolments_per_user_month;
    // A family holds its first token and one per refresh: a logout reads and deletes them all.
    let family = 1.0 + p.refreshes_per_user_month / p.logins_per_user_month.max(1.0);
    let family_read = (family * 300.0 / 4096.0).ceil();
    let resends = (p.verification_mails_per_user_month - p.registrations_per_user_month).max(0.0);
    let e = |name, function, requests: f64, rru, wru| Endpoint {
        name,
        function,
        requests,
        rru,
        wru,
        through_api: true,
    };
    vec![
        // PutItem user (1 + 1 index) | 2 consistent GetItem | transaction: code Put 2, user check 2,
        // outbox Put 4.
        e(
            "POST /auth/register",
            "register",
            users * p.registrations_per_user_month,
            2.0,
            10.0,
        ),
        // UpdateItem reservation 1 | transaction: token Put 2, user Update 2, device Put 2.
        e("POST /auth/login", "login", logins * (1.0 - totp), 0.0, 7.0),
        // The password step of a TOTP account (403 mfa-required): UpdateItem reservation 2 |
        // UpdateItem settling it 2 | PutItem challenge 1. No session yet.
        e(
            "POST /auth/login (TOTP account: mfa-required)",
            "login",
            logins * totp,
            0.0,
            5.0,
        ),
        // The second step, once per TOTP login: UpdateItem challenge attempt 1 | the reservation in
        // two tries, 2 + 2 (the first assumes a quiet counter, and the password step left its attempt
        // counted) | transaction: token Put 2, user Update 4, device Put 2, challenge Delete 2.
        e(
            "POST /auth/mfa/verify",
            "account-mfa",
            logins * totp,
            0.0,
            15.0,
        ),
        // Transaction: old token Update 2, new token Put 2, user check 2.
        e(
            "POST /auth/refresh",
            "refresh",
            refreshes * (1.0 - totp),
            0.0,
            6.0,
        ),
        // As above, the user check of a TOTP account's profile 4.
        e(
            "POST /auth/refresh (TOTP account)",
            "refresh",
            refreshes * totp,
            0.0,
            8.0,
        ),
        // GetItem 1 + consistent Query of the family (300 B a token) | BatchWriteItem 1 a token.
        e(
            "POST /auth/logout",
            "logout",
            users * p.logouts_per_user_month,
            1.0 + family_read,
            family,
        ),
        // Index Query 0.5 + user GetItem 1 + deny-list GetItem 1 | UpdateItem 1.
        e(
            "POST /auth/logout-all",
            "logout-all",
            users * p.logout_alls_per_user_month,
            2.5,
            1.0,
        ),
        // Bearer check 2.5 | UpdateItem reservation 1 | transaction: token, user, device 2 each.
        e(
            "POST /auth/password",
            "change-password",
            users * p.password_changes_per_user_month,
            2.5,
            7.0,
        ),
        e("GET /auth/me", "me", users * p.me_per_user_month, 2.5, 0.0),
        // Bearer check 2.5 | UpdateItem of the pending factor 1 (a profile with a pending factor,
        // no recovery codes yet, stays under 1 KB).
        e("POST /auth/mfa/totp", "account-mfa", enrolments, 2.5, 1.0),
        // Bearer check 2.5 | transaction (a password change's): token Put 2, user Update 4 (the
        // active state with its recovery codes), device Put 2.
        e(
            "POST /auth/mfa/totp/activate",
            "account-mfa",
            enrolments,
            2.5,
            8.0,
        ),
        // Bearer check 2.5 | UpdateItem reservation 2 | UpdateItem settling it 2 | UpdateItem swap 2.
        e(
            "POST /auth/mfa/recovery-codes",
            "account-mfa",
            users * p.mfa_recovery_regenerations_per_user_month,
            2.5,
            6.0,
        ),
        // As new recovery codes; the swap removes the state (billed on the item before).
        e(
            "POST /auth/mfa/totp/disable",
            "account-mfa",
            users * p.mfa_disables_per_user_month,
            2.5,
            6.0,
        ),
        e(
            "GET /.well-known/jwks.json",
            "well-known",
            p.jwks_requests_month,
            0.0,
            0.0,
        ),
        // A mail request: as register's, less the user's Put.
        e(
            "POST /auth/email/verification",
            "account-email",
            users * resends,
            2.0,
            8.0,
        ),
        // GetItem record 1 | UpdateItem attempt 1 | transaction: code Update 2, user Update 2.
        e(
            "POST /auth/email/verify",
            "account-email",
            users * p.verification_mails_per_user_month,
            1.0,
            5.0,
        ),
        e(
            "POST /auth/password/forgot",
            "account-email",
            users * p.reset_mails_per_user_month,
            2.0,
            8.0,
        ),
        e(
            "POST /auth/password/reset",
            "account-email",
            users * p.reset_mails_per_user_month,
            1.0,
            5.0,
        ),
        // The outbox stream's mailer: DeleteItem of the delivered mail (2 KB), one invocation a mail.
        Endpoint {
            through_api: false,
            ..e(
                "outbox stream (mailer)",
                "mailer",
                users * (p.verification_mails_per_user_month + p.reset_mails_per_user_month),
                0.0,
                2.0,
            )
        },
    ]
}

/// A function's billed durations and memory.
#[derive(Debug, Clone, PartialEq)]
pub struct Duration {
    pub memory_mb: u32,
    pub warm_ms: f64,
    /// Init, billed on a cold start in addition to the invocation (provided.al2023 bills init).
    pub init_ms: f64,
    pub source: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub what: String,
    pub quantity: String,
    pub usd: f64,
}

#[derive(Debug, Clone)]
pub struct FunctionCost {
    pub name: &'static str,
    pub invocations: f64,
    pub cold: f64,
    pub duration: Duration,
    pub lambda_usd: f64,
}

#[derive(Debug, Clone)]
pub struct Estimate {
    pub lines: Vec<Line>,
    pub total: f64,
    pub cognito: Line,
    pub functions: Vec<FunctionCost>,
    pub endpoints: Vec<Endpoint>,
    pub notes: Vec<String>,
}

fn count(n: f64) -> String {
    let n = n.round() as i64;
    let digits = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// The month's cost. `durations` per function name (those missing are priced at
/// [`MAILER_ASSUMED_MS`] and the memory in `memory`), `metrics` the EMF metric count.
pub fn estimate(
    p: &Profile,
    prices: &PriceTable,
    durations: &BTreeMap<String, Duration>,
    memory: &BTreeMap<String, u32>,
    metrics: u32,
    log_bytes: &LogBytes,
) -> Estimate {
    let endpoints = endpoints(p);
    let mut lines = Vec::new();
    let mut notes = Vec::new();
    let api_requests: f64 = endpoints
        .iter()
        .filter(|e| e.through_api)
        .map(|e| e.requests)
        .sum();

    let (api_name, api_price) = match p.api {
        Api::Rest => ("REST", prices.api_rest_per_million.usd),
        Api::Http => ("HTTP", prices.api_http_per_million.usd),
    };
    lines.push(Line {
        what: format!("API Gateway ({api_name} API)"),
        quantity: format!("{} requests x ${api_price}/M", count(api_requests)),
        usd: api_requests / 1e6 * api_price,
    });

    if p.waf && p.api == Api::Rest {
        let fixed = prices.waf_web_acl_month.usd + f64::from(WAF_RULES) * prices.waf_rule_month.usd;
        lines.push(Line {
            what: "WAF".into(),
            quantity: format!(
                "1 web ACL ${} + {WAF_RULES} rules x ${} + {} requests x ${}/M",
                prices.waf_web_acl_month.usd,
                prices.waf_rule_month.usd,
                count(api_requests),
                prices.waf_requests_per_million.usd
            ),
            usd: fixed + api_requests / 1e6 * prices.waf_requests_per_million.usd,
        });
    } else if p.waf {
        notes.push("WAF: a web ACL cannot be associated with an HTTP API (keygate's HTTP API stage has none): not counted.".into());
    }

    let arm64 = p.architecture == Architecture::Arm64;
    let gb_s_price = if arm64 {
        prices.lambda_arm64_gb_s.usd
    } else {
        prices.lambda_x86_gb_s.usd
    };
    let mut functions = Vec::new();
    let (mut invocations, mut gb_s, mut secret_calls) = (0.0, 0.0, 0.0);
    for spec in &FUNCTIONS {
        let calls: f64 = endpoints
            .iter()
            .filter(|e| e.function == spec.name)
            .map(|e| e.requests)
            .sum();
        let duration = durations
            .get(spec.name)
            .cloned()
            .unwrap_or_else(|| Duration {
                memory_mb: memory.get(spec.name).copied().unwrap_or(DEFAULT_MEMORY_MB),
                warm_ms: MAILER_ASSUMED_MS,
                init_ms: 0.0,
                source: format!("assumed {MAILER_ASSUMED_MS} ms, not measured"),
            });
        let cold = calls * p.cold_start_share;
        let seconds = (calls * duration.warm_ms + cold * duration.init_ms) / 1000.0;
        let function_gb_s = f64::from(duration.memory_mb) / 1024.0 * seconds;
        invocations += calls;
        gb_s += function_gb_s;
        secret_calls += cold * f64::from(spec.secrets_at_init);
        functions.push(FunctionCost {
            name: spec.name,
            invocations: calls,
            cold,
            lambda_usd: function_gb_s * gb_s_price
                + calls / 1e6 * prices.lambda_requests_per_million.usd,
            duration,
        });
    }
    lines.push(Line {
        what: "Lambda requests".into(),
        quantity: format!(
            "{} invocations x ${}/M",
            count(invocations),
            prices.lambda_requests_per_million.usd
        ),
        usd: invocations / 1e6 * prices.lambda_requests_per_million.usd,
    });
    lines.push(Line {
        what: format!(
            "Lambda duration ({})",
            if arm64 { "arm64" } else { "x86_64" }
        ),
        quantity: format!("{} GB-s x ${gb_s_price}", count(gb_s)),
        usd: gb_s * gb_s_price,
    });

    let rru: f64 = endpoints.iter().map(|e| e.requests * e.rru).sum();
    let wru: f64 = endpoints.iter().map(|e| e.requests * e.wru).sum();
    lines.push(Line {
        what: "DynamoDB on-demand".into(),
        quantity: format!(
            "{} WRU x ${}/M + {} RRU x ${}/M",
            count(wru),
            prices.dynamodb_wru_per_million.usd,
            count(rru),
            prices.dynamodb_rru_per_million.usd
        ),
        usd: wru / 1e6 * prices.dynamodb_wru_per_million.usd
            + rru / 1e6 * prices.dynamodb_rru_per_million.usd,
    });

    lines.push(Line {
        what: "Secrets Manager".into(),
        quantity: format!(
            "{SECRETS} secrets x ${} + {} secrets read x ${}/10k",
            prices.secret_month.usd,
            count(secret_calls),
            prices.secrets_api_per_10k.usd
        ),
        usd: f64::from(SECRETS) * prices.secret_month.usd
            + secret_calls / 1e4 * prices.secrets_api_per_10k.usd,
    });
    // Every secret read decrypts with the stage's customer managed key.
    lines.push(Line {
        what: "KMS".into(),
        quantity: format!(
            "{KMS_KEYS} keys x ${} + {} Decrypt x ${}/10k",
            prices.kms_key_month.usd,
            count(secret_calls),
            prices.kms_requests_per_10k.usd
        ),
        usd: f64::from(KMS_KEYS) * prices.kms_key_month.usd
            + secret_calls / 1e4 * prices.kms_requests_per_10k.usd,
    });

    let waf_logged = p.waf && p.api == Api::Rest;
    let per_request = p.log_bytes_per_request.unwrap_or(
        log_bytes.function
            + log_bytes.platform
            + log_bytes.access
            + if waf_logged { log_bytes.waf } else { 0.0 },
    );
    let mails: f64 = endpoints
        .iter()
        .filter(|e| !e.through_api)
        .map(|e| e.requests)
        .sum();
    // The mailer's invocations log function and platform lines only.
    let gb = (api_requests * per_request + mails * (log_bytes.function + log_bytes.platform)) / 1e9;
    lines.push(Line {
        what: "CloudWatch Logs ingestion".into(),
        quantity: format!(
            "{gb:.2} GB ({} B a request) x ${}/GB",
            count(per_request),
            prices.logs_ingestion_gb.usd
        ),
        usd: gb * prices.logs_ingestion_gb.usd,
    });
    lines.push(Line {
        what: "CloudWatch custom metrics (EMF)".into(),
        quantity: format!("{metrics} metrics x ${}", prices.custom_metric_month.usd),
        usd: f64::from(metrics) * prices.custom_metric_month.usd,
    });
    lines.push(Line {
        what: "SES".into(),
        quantity: format!("{} mails x ${}/1000", count(mails), prices.ses_per_1000.usd),
        usd: mails / 1000.0 * prices.ses_per_1000.usd,
    });

    let total = lines.iter().map(|l| l.usd).sum();
    let free = prices.cognito_essentials_free_mau.usd;
    let billed_mau = (p.mau - free).max(0.0);
    let cognito = Line {
        what: "Amazon Cognito, Essentials".into(),
        quantity: format!(
            "{} MAU above {} free x ${}",
            count(billed_mau),
            count(free),
            prices.cognito_essentials_mau.usd
        ),
        usd: billed_mau * prices.cognito_essentials_mau.usd,
    };
    Estimate {
        lines,
        total,
        cognito,
        functions,
        endpoints,
        notes,
    }
}

/// Durations from a `power` run: each function at its `MEMORY_MB` size (the nearest measured size
/// if that one was not), billed as keygate's own warm time plus `dynamodb_ms_per_call` per call.
/// A function takes the first of its `measured_as` the run measured.
pub fn durations_from_power(
    results: &Results,
    memory: &BTreeMap<String, u32>,
    dynamodb_ms_per_call: f64,
) -> BTreeMap<String, Duration> {
    let functions = power::analyse(results);
    let mut out = BTreeMap::new();
    for spec in &FUNCTIONS {
        let Some(&mb) = memory.get(spec.name) else {
            continue;
        };
        let found = spec.measured_as.iter().find_map(|&measured| {
            let f = functions.iter().find(|f| f.label == measured)?;
            Some((measured, f, nearest_measured(f, mb)?))
        });
        let Some((measured, f, point)) = found else {
            continue;
        };
        let calls = match spec.calls_when_borrowing {
            Some(calls) if measured != spec.name => calls,
            _ => f.call_count,
        };
        let own = point.own.unwrap_or_default().max(0.0);
        let warm = (own + f64::from(calls) * dynamodb_ms_per_call)
            .ceil()
            .max(1.0);
        let mut source = format!(
            "{measured} @{} MB: own {own:.1} ms + {calls} calls x {dynamodb_ms_per_call} ms",
            point.mb
        );
        if calls != f.call_count {
            source.push_str(&format!(" ({}'s calls)", spec.name));
        }
        if point.mb != mb {
            source.push_str(&format!(" (nearest measured size to {mb} MB)"));
        }
        out.insert(
            spec.name.to_owned(),
            Duration {
                memory_mb: mb,
                warm_ms: warm,
                init_ms: point.init.unwrap_or_default().ceil(),
                source,
            },
        );
    }
    out
}

/// The size nearest `mb` (on a log scale) at which `f`'s own time was measured.
fn nearest_measured(f: &power::Function, mb: u32) -> Option<&power::Point> {
    f.points.iter().filter(|p| p.own.is_some()).min_by(|a, b| {
        let d = |p: &power::Point| (f64::from(p.mb).ln() - f64::from(mb).ln()).abs();
        d(a).total_cmp(&d(b))
    })
}

/// Durations from a recorded (unthrottled) run: the warm round trip as measured, moto's time
/// included, on the run's smallest table, at the function's `MEMORY_MB` size.
pub fn durations_from_results(
    results: &Results,
    memory: &BTreeMap<String, u32>,
) -> BTreeMap<String, Duration> {
    let mut out = BTreeMap::new();
    for spec in &FUNCTIONS {
        let Some(&mb) = memory.get(spec.name) else {
            continue;
        };
        let found = spec.measured_as.iter().find_map(|&measured| {
            let v = results.find(measured)?;
            Some((measured, v.warm()?, v.init()?))
        });
        let Some((measured, warm, init)) = found else {
            continue;
        };
        out.insert(
            spec.name.to_owned(),
            Duration {
                memory_mb: mb,
                warm_ms: warm.ceil().max(1.0),
                init_ms: init.ceil(),
                source: format!("{measured}: recorded warm {warm:.1} ms (moto included)"),
            },
        );
    }
    out
}

/// The EMF metrics of cdk/contract.json: its counters and the latency histogram.
pub fn metric_count(contract: &Path) -> Option<u32> {
    let raw = std::fs::read_to_string(contract).ok()?;
    let value: serde_json::Value = serde_json::from_str(&raw).ok()?;
    let counters = value["metrics"]["counters"].as_array()?.len() as u32;
    let latency = u32::from(value["metrics"]["latency"].is_string());
    Some(counters + latency)
}

pub fn markdown(p: &Profile, e: &Estimate, durations_from: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# keygate, one month: {} MAU (stage {}, {} API{}, {})\n",
        count(p.mau),
        p.stage,
        match p.api {
            Api::Rest => "REST",
            Api::Http => "HTTP",
        },
        if p.waf && p.api == Api::Rest {
            " + WAF"
        } else {
            ""
        },
        match p.architecture {
            Architecture::X86_64 => "x86_64",
            Architecture::Arm64 => "arm64",
        }
    );
    let _ = writeln!(out, "Lambda durations: {durations_from}.\n");
    let _ = writeln!(out, "| line | quantity | USD / month |");
    let _ = writeln!(out, "| --- | --- | ---: |");
    for line in &e.lines {
        let _ = writeln!(
            out,
            "| {} | {} | {:.2} |",
            line.what, line.quantity, line.usd
        );
    }
    let _ = writeln!(out, "| **keygate total** | | **{:.2}** |", e.total);
    let _ = writeln!(
        out,
        "| {} (same MAU) | {} | {:.2} |",
        e.cognito.what, e.cognito.quantity, e.cognito.usd
    );
    let _ = writeln!(out, "\n## Lambda by function\n");
    let _ = writeln!(
        out,
        "| function | MB | invocations | cold starts | billed warm ms | billed init ms | USD | duration from |"
    );
    let _ = writeln!(
        out,
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
    );
    for f in &e.functions {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.0} | {:.0} | {:.2} | {} |",
            f.name,
            f.duration.memory_mb,
            count(f.invocations),
            count(f.cold),
            f.duration.warm_ms,
            f.duration.init_ms,
            f.lambda_usd,
            f.duration.source
        );
    }
    let _ = writeln!(out, "\n## DynamoDB units per request\n");
    let _ = writeln!(out, "| endpoint | requests | RRU | WRU |");
    let _ = writeln!(out, "| --- | ---: | ---: | ---: |");
    for ep in &e.endpoints {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            ep.name,
            count(ep.requests),
            ep.rru,
            ep.wru
        );
    }
    let _ = writeln!(out, "\n## Profile\n\n```json\n{}\n```", profile_json(p));
    let _ = writeln!(out, "\n## Not counted\n");
    for note in e.notes.iter().map(String::as_str).chain(NOT_COUNTED) {
        let _ = writeln!(out, "- {note}");
    }
    let _ = writeln!(out, "\n{}", PRICES.markdown());
    out
}

const NOT_COUNTED: [&str; 7] = [
    "Free tiers (Lambda's 1M requests and 400,000 GB-s, KMS's 20,000 requests, CloudWatch's 5 GB of logs, 10 metrics) are not subtracted; Cognito's 10,000 free MAU are.",
    "Provisioned concurrency: the prod stage keeps 5 login and 5 refresh environments in business hours, 1 each otherwise (cdk/config/prod.ts); billed per GB-s provisioned whether used or not, it is a fixed cost beside these lines.",
    "Key re-reads: a warm environment re-reads its key secret every keyCacheTtlSeconds (300 s), about 8,640 GetSecretValue (and KMS Decrypt) a month per environment kept warm all month, $0.07 at most per environment.",
    "DynamoDB storage and point-in-time recovery, KMS calls DynamoDB makes for the table key, data transfer out, CloudWatch alarms and log storage, the rotate-keys function (a few invocations a month).",
    "A TOTP account's profile item (about 1.2 KB) is counted at 2 KB on login, refresh and /auth/mfa/*; its rarer writes (logout-all, password change, the mail endpoints) are counted at 1 KB: at most 27,000 WRU, 2 cents, a month at 1,000,000 MAU with the defaults.",
    "Cognito's side: its own mails (SES past Cognito's 50 a day), WAF on its endpoints and its API request quotas are not counted either.",
    "Units and invocations are per the profile's rates; a failed login, a wrong second-factor code, a replayed refresh token or a throttled request costs what its calls cost (handlers/aws/tests/moto.rs lists them).",
];

fn profile_json(p: &Profile) -> String {
    serde_json::to_string_pretty(&serde_json::json!({
        "mau": p.mau,
        "logins_per_user_month": p.logins_per_user_month,
        "refreshes_per_user_month": p.refreshes_per_user_month,
        "mfa_login_share": p.mfa_login_share,
        "mfa_enrolments_per_user_month": p.mfa_enrolments_per_user_month,
        "mfa_recovery_regenerations_per_user_month": p.mfa_recovery_regenerations_per_user_month,
        "mfa_disables_per_user_month": p.mfa_disables_per_user_month,
        "cold_start_share": p.cold_start_share,
        "api": match p.api { Api::Rest => "rest", Api::Http => "http" },
        "waf": p.waf,
        "stage": p.stage,
        "architecture": match p.architecture { Architecture::X86_64 => "x86_64", Architecture::Arm64 => "arm64" },
        "registrations_per_user_month": p.registrations_per_user_month,
        "verification_mails_per_user_month": p.verification_mails_per_user_month,
        "reset_mails_per_user_month": p.reset_mails_per_user_month,
        "logouts_per_user_month": p.logouts_per_user_month,
        "logout_alls_per_user_month": p.logout_alls_per_user_month,
        "password_changes_per_user_month": p.password_changes_per_user_month,
        "me_per_user_month": p.me_per_user_month,
        "jwks_requests_month": p.jwks_requests_month,
        "log_bytes_per_request": p.log_bytes_per_request,
        "dynamodb_ms_per_call": p.dynamodb_ms_per_call,
    }))
    .unwrap_or_default()
}

pub fn main(args: &[String]) -> Result<(), String> {
    let mut profile_file: Option<PathBuf> = None;
    let mut power_dir: Option<PathBuf> = None;
    let mut mau: Option<f64> = None;
    let mut results_file = PathBuf::from("tests/bench/results.json");
    let mut memory_file = PathBuf::from("cdk/config/common.ts");
    let mut contract = PathBuf::from("cdk/contract.json");
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--profile" => profile_file = Some(value()?.into()),
            "--power" => power_dir = Some(value()?.into()),
            "--results" => results_file = value()?.into(),
            "--memory" => memory_file = value()?.into(),
            "--contract" => contract = value()?.into(),
            "--mau" => {
                let v = value()?;
                mau = Some(
                    v.parse()
                        .map_err(|_| format!("--mau: `{v}` is not a number"))?,
                );
            }
            _ => return Err(format!("cost: unknown argument {flag}")),
        }
    }
    let mut profile: Profile = match &profile_file {
        Some(file) => {
            let raw =
                std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
            serde_json::from_str(&raw).map_err(|e| format!("{}: {e}", file.display()))?
        }
        None => Profile::default(),
    };
    if let Some(mau) = mau {
        profile.mau = mau;
    }
    profile.check()?;
    let memory = power::read_memory_mb(&memory_file)
        .ok_or_else(|| format!("{}: no MEMORY_MB found", memory_file.display()))?;
    let read = |path: &Path| -> Result<Results, String> {
        let raw = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        serde_json::from_str(&raw).map_err(|e| format!("{}: {e}", path.display()))
    };
    let (durations, from) = match &power_dir {
        Some(dir) => {
            let path = dir.join("results.json");
            (
                durations_from_power(&read(&path)?, &memory, profile.dynamodb_ms_per_call),
                format!(
                    "the power run {} at the sizes of {} (keygate's own warm time + {} ms per DynamoDB call; init as measured at that size)",
                    path.display(),
                    memory_file.display(),
                    profile.dynamodb_ms_per_call
                ),
            )
        }
        None => (
            durations_from_results(&read(&results_file)?, &memory),
            format!(
                "the recorded run {} (warm round trips as measured on 2 unthrottled cores, moto's time included: an upper bound), memory from {}",
                results_file.display(),
                memory_file.display()
            ),
        ),
    };
    let metrics = metric_count(&contract)
        .ok_or_else(|| format!("{}: no metrics.counters", contract.display()))?;
    let estimate = estimate(
        &profile,
        &PRICES,
        &durations,
        &memory,
        metrics,
        &LogBytes::default(),
    );
    print!("{}", markdown(&profile, &estimate, &from));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{MotoTiming, VariantResult};

    /// 20,000 MAU, 1 login and 10 refreshes each, nothing else (no TOTP account); 10% cold starts;
    /// REST + WAF; every function 1024 MB, 10 ms warm, 100 ms init.
    fn small() -> Profile {
        Profile {
            mau: 20_000.0,
            logins_per_user_month: 1.0,
            refreshes_per_user_month: 10.0,
            mfa_login_share: 0.0,
            mfa_enrolments_per_user_month: 0.0,
            mfa_recovery_regenerations_per_user_month: 0.0,
            mfa_disables_per_user_month: 0.0,
            cold_start_share: 0.1,
            registrations_per_user_month: 0.0,
            verification_mails_per_user_month: 0.0,
            reset_mails_per_user_month: 0.0,
            logouts_per_user_month: 0.0,
            logout_alls_per_user_month: 0.0,
            password_changes_per_user_month: 0.0,
            me_per_user_month: 0.0,
            jwks_requests_month: 0.0,
            log_bytes_per_request: Some(2_000.0),
            ..Profile::default()
        }
    }

    fn flat_durations() -> BTreeMap<String, Duration> {
        FUNCTIONS
            .iter()
            .map(|f| {
                (
                    f.name.to_owned(),
                    Duration {
                        memory_mb: 1024,
                        warm_ms: 10.0,
                        init_ms: 100.0,
                        source: "test".into(),
                    },
                )
            })
            .collect()
    }

    /// `profile` at 10 ms warm and 100 ms init for every function, with no measured calls.
    fn estimate_flat(profile: &Profile) -> Estimate {
        estimate(
            profile,
            &PRICES,
            &flat_durations(),
            &BTreeMap::new(),
            0,
            &LogBytes::default(),
        )
    }

    fn line<'a>(e: &'a Estimate, what: &str) -> &'a Line {
        e.lines
            .iter()
            .find(|l| l.what.starts_with(what))
            .unwrap_or_else(|| panic!("no line {what}"))
    }

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-9, "{a} != {b}");
    }

    #[test]
    fn a_small_month_by_hand() {
        let p = small();
        let e = estimate(
            &p,
            &PRICES,
            &flat_durations(),
            &BTreeMap::new(),
            24,
            &LogBytes::default(),
        );
        // Requests: 20,000 logins + 200,000 refreshes = 220,000.
        // API Gateway REST: 0.22 M x $3.50 = $0.77.
        close(line(&e, "API Gateway").usd, 0.77);
        // WAF: $5 + 5 x $1 + 0.22 M x $0.60 = $10.132.
        close(line(&e, "WAF").usd, 10.132);
        // Lambda requests: 0.22 M x $0.20 = $0.044.
        close(line(&e, "Lambda requests").usd, 0.044);
        // Duration: 220,000 x 10 ms = 2,200 s, + 22,000 cold x 100 ms = 2,200 s; 4,400 s x 1 GB
        // = 4,400 GB-s x $0.0000166667 = $0.07333348.
        close(line(&e, "Lambda duration").usd, 4_400.0 * 0.000_016_666_7);
        // DynamoDB: logins 20,000 x 7 WRU + refreshes 200,000 x 6 WRU = 1,340,000 WRU x $0.625/M
        // = $0.8375; no reads.
        close(line(&e, "DynamoDB").usd, 0.8375);
        // Secrets: 4 x $0.40 + cold starts (2,000 login + 20,000 refresh) x 2 secrets = 44,000
        // calls x $0.05/10k = $1.60 + $0.22.
        close(line(&e, "Secrets Manager").usd, 1.6 + 0.22);
        // KMS: 4 x $1 + 44,000 x $0.03/10k = $4.132.
        close(line(&e, "KMS").usd, 4.132);
        // Logs: 220,000 x 2,000 B = 0.44 GB x $0.50 = $0.22.
        close(line(&e, "CloudWatch Logs").usd, 0.22);
        close(line(&e, "CloudWatch custom").usd, 24.0 * 0.30);
        close(line(&e, "SES").usd, 0.0);
        let total =
            0.77 + 10.132 + 0.044 + 4_400.0 * 0.000_016_666_7 + 0.8375 + 1.82 + 4.132 + 0.22 + 7.2;
        close(e.total, total);
        // Cognito Essentials: (20,000 - 10,000) x $0.015 = $150.
        close(e.cognito.usd, 150.0);
    }

    #[test]
    fn logouts_delete_the_whole_family_and_mails_are_sent() {
        let p = Profile {
            logouts_per_user_month: 1.0,
            // 4 logins, 120 refreshes: families of 31 tokens, 31 x 300 B = 9,300 B = 3 reads.
            logins_per_user_month: 4.0,
            refreshes_per_user_month: 120.0,
            verification_mails_per_user_month: 0.1,
            registrations_per_user_month: 0.1,
            reset_mails_per_user_month: 0.05,
            ..small()
        };
        let all = endpoints(&p);
        let logout = all.iter().find(|e| e.function == "logout").unwrap();
        assert_eq!((logout.rru, logout.wru), (4.0, 31.0));
        let e = estimate_flat(&p);
        // 20,000 x (0.1 + 0.05) = 3,000 mails x $0.10/1000 = $0.30.
        close(line(&e, "SES").usd, 0.3);
        let mailer = e.functions.iter().find(|f| f.name == "mailer").unwrap();
        close(mailer.invocations, 3_000.0);
        // No re-sends: every verification mail is a registration's.
        let resend = all
            .iter()
            .find(|e| e.name == "POST /auth/email/verification")
            .unwrap();
        assert_eq!(resend.requests, 0.0);
    }

    #[test]
    fn http_apis_have_no_waf_and_cognito_is_free_below_10k() {
        let p = Profile {
            api: Api::Http,
            mau: 8_000.0,
            ..small()
        };
        let e = estimate(
            &p,
            &PRICES,
            &flat_durations(),
            &BTreeMap::new(),
            24,
            &LogBytes::default(),
        );
        assert!(e.lines.iter().all(|l| l.what != "WAF"));
        assert!(e.notes[0].contains("HTTP API"));
        // 8,000 x 11 = 88,000 requests x $1.00/M.
        close(line(&e, "API Gateway").usd, 0.088);
        close(e.cognito.usd, 0.0);
        // Unmeasured functions are priced at the assumption and MEMORY_MB's size.
        let e = estimate(
            &p,
            &PRICES,
            &BTreeMap::new(),
            &BTreeMap::from([("login".to_owned(), 512)]),
            24,
            &LogBytes::default(),
        );
        let login = e.functions.iter().find(|f| f.name == "login").unwrap();
        assert_eq!(login.duration.memory_mb, 512);
        assert_eq!(login.duration.warm_ms, MAILER_ASSUMED_MS);
    }

    #[test]
    fn profiles_take_defaults_and_refuse_unknown_fields() {
        let p: Profile = serde_json::from_str(r#"{"mau": 5, "api": "http"}"#).unwrap();
        assert_eq!(p.mau, 5.0);
        assert_eq!(p.api, Api::Http);
        assert_eq!(p.refreshes_per_user_month, 120.0);
        assert_eq!(p.mfa_login_share, 0.1);
        assert_eq!(p.mfa_enrolments_per_user_month, 0.005);
        assert!(serde_json::from_str::<Profile>(r#"{"mua": 5}"#).is_err());
        let p: Profile = serde_json::from_str(r#"{"architecture": "arm64"}"#).unwrap();
        assert_eq!(p.architecture, Architecture::Arm64);
        let p: Profile = serde_json::from_str(
            r#"{"mfa_login_share": 0.3, "mfa_enrolments_per_user_month": 0.01,
                "mfa_recovery_regenerations_per_user_month": 0.002, "mfa_disables_per_user_month": 0}"#,
        )
        .unwrap();
        assert_eq!(
            (
                p.mfa_login_share,
                p.mfa_enrolments_per_user_month,
                p.mfa_recovery_regenerations_per_user_month,
                p.mfa_disables_per_user_month
            ),
            (0.3, 0.01, 0.002, 0.0)
        );
        assert!(p.check().is_ok());
        // A misspelt MFA field is refused, not silently defaulted.
        assert!(serde_json::from_str::<Profile>(r#"{"mfa_logins_share": 0.5}"#).is_err());
        assert!(
            serde_json::from_str::<Profile>(r#"{"mfa_enrollments_per_user_month": 1}"#).is_err()
        );
        for share in [-0.1, 1.5] {
            let p = Profile {
                mfa_login_share: share,
                ..Profile::default()
            };
            assert!(p.check().is_err(), "{share}");
        }
        // Every field is printed back.
        let printed: Profile = serde_json::from_str(&profile_json(&p)).unwrap();
        assert_eq!(printed, p);
    }

    fn function<'a>(e: &'a Estimate, name: &str) -> &'a FunctionCost {
        e.functions
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("no function {name}"))
    }

    fn units(e: &Estimate) -> (f64, f64) {
        let rru = e.endpoints.iter().map(|ep| ep.requests * ep.rru).sum();
        let wru = e.endpoints.iter().map(|ep| ep.requests * ep.wru).sum();
        (rru, wru)
    }

    #[test]
    fn totp_logins_take_a_second_step_on_account_mfa() {
        let month = |share: f64| {
            let p = Profile {
                mfa_login_share: share,
                ..small()
            };
            estimate_flat(&p)
        };
        let (none, all, half) = (month(0.0), month(1.0), month(0.5));
        // One verify per TOTP login: 20,000 MAU x 1 login.
        close(function(&none, "account-mfa").invocations, 0.0);
        close(function(&all, "account-mfa").invocations, 20_000.0);
        close(function(&half, "account-mfa").invocations, 10_000.0);
        // The password step still runs on login; refresh's invocations do not change.
        for e in [&none, &all, &half] {
            close(function(e, "login").invocations, 20_000.0);
            close(function(e, "refresh").invocations, 200_000.0);
        }
        // No reads. Password-only: 20,000 x 7 + 200,000 x 6 = 1,340,000 WRU. All TOTP: 20,000 x
        // (5 password step + 15 verify) + 200,000 x 8 = 2,000,000 WRU.
        assert_eq!(units(&none), (0.0, 1_340_000.0));
        assert_eq!(units(&all), (0.0, 2_000_000.0));
        assert_eq!(units(&half), (0.0, 1_670_000.0));
        let step = |e: &Estimate, name: &str| {
            let ep = e.endpoints.iter().find(|ep| ep.name == name).unwrap();
            (ep.function, ep.rru, ep.wru)
        };
        assert_eq!(
            step(&all, "POST /auth/mfa/verify"),
            ("account-mfa", 0.0, 15.0)
        );
        assert_eq!(
            step(&all, "POST /auth/login (TOTP account: mfa-required)"),
            ("login", 0.0, 5.0)
        );
        // The verifies go through the API: 20,000 more requests x $3.50/M.
        close(
            line(&all, "API Gateway").usd - line(&none, "API Gateway").usd,
            0.07,
        );
        // account-mfa reads 3 secrets per cold start: 2,000 cold starts x 3 = 6,000 calls x
        // $0.05/10k.
        close(
            line(&all, "Secrets Manager").usd - line(&none, "Secrets Manager").usd,
            0.03,
        );
        close(line(&all, "KMS").usd - line(&none, "KMS").usd, 0.018);
    }

    #[test]
    fn mfa_account_endpoints_by_hand() {
        let p = Profile {
            logins_per_user_month: 0.0,
            refreshes_per_user_month: 0.0,
            mfa_enrolments_per_user_month: 0.01,
            mfa_recovery_regenerations_per_user_month: 0.02,
            mfa_disables_per_user_month: 0.005,
            ..small()
        };
        let e = estimate_flat(&p);
        // 200 enrolments (2 requests each), 400 new sets of recovery codes, 100 disables.
        close(function(&e, "account-mfa").invocations, 900.0);
        // Every one a bearer check, 2.5 RRU; WRU: 200 x 1 + 200 x 8 + 400 x 6 + 100 x 6.
        assert_eq!(units(&e), (900.0 * 2.5, 4_800.0));
    }

    #[test]
    fn account_mfa_takes_its_own_measurement_or_refreshs_time_with_its_calls() {
        let variant = |label: &str, kind: &str, warm: f64| VariantResult {
            label: label.into(),
            kind: kind.into(),
            warm_ms: vec![warm],
            init_ms: vec![30.0],
            cpu_mb: Some(256),
            ..Default::default()
        };
        let mut moto = MotoTiming::default();
        moto.samples.insert("TransactWriteItems".into(), vec![50.0]);
        moto.samples.insert("UpdateItem".into(), vec![10.0]);
        moto.calls.insert(
            "refresh".into(),
            BTreeMap::from([("TransactWriteItems".into(), 1)]),
        );
        moto.calls.insert(
            "account-mfa".into(),
            BTreeMap::from([("UpdateItem".into(), 1)]),
        );
        let memory = BTreeMap::from([("refresh".to_owned(), 256), ("account-mfa".to_owned(), 256)]);
        let mut results = Results {
            variants: vec![variant("refresh @256 MB", "refresh", 54.0)],
            cpu_mb: vec![256],
            moto: Some(moto),
            ..Default::default()
        };
        // Not measured: refresh's own 4 ms + the verify's 4 calls x 5 ms.
        let d = durations_from_power(&results, &memory, 5.0);
        assert_eq!((d["refresh"].warm_ms, d["refresh"].init_ms), (9.0, 30.0));
        let mfa = &d["account-mfa"];
        assert_eq!((mfa.memory_mb, mfa.warm_ms, mfa.init_ms), (256, 24.0, 30.0));
        assert!(mfa.source.starts_with("refresh @256 MB"), "{}", mfa.source);
        // Measured: its own 20 ms + its 1 call x 5 ms.
        results
            .variants
            .push(variant("account-mfa @256 MB", "account-mfa", 30.0));
        let d = durations_from_power(&results, &memory, 5.0);
        let mfa = &d["account-mfa"];
        assert_eq!(mfa.warm_ms, 25.0);
        assert!(
            mfa.source.starts_with("account-mfa @256 MB"),
            "{}",
            mfa.source
        );
        // The recorded (unthrottled) run: the same preference.
        let recorded = |label: &str, warm: f64| VariantResult {
            cpu_mb: None,
            ..variant(label, label, warm)
        };
        let mut results = Results {
            variants: vec![recorded("refresh", 80.0)],
            ..Default::default()
        };
        assert_eq!(
            durations_from_results(&results, &memory)["account-mfa"].warm_ms,
            80.0
        );
        results.variants.push(recorded("account-mfa", 60.0));
        assert_eq!(
            durations_from_results(&results, &memory)["account-mfa"].warm_ms,
            60.0
        );
    }

    #[test]
    fn the_mfa_endpoints_are_printed_not_excluded() {
        let p = Profile::default();
        let e = estimate(
            &p,
            &PRICES,
            &flat_durations(),
            &BTreeMap::new(),
            24,
            &LogBytes::default(),
        );
        let md = markdown(&p, &e, "test");
        assert!(
            md.contains("| POST /auth/mfa/verify | 40,000 | 0 | 15 |"),
            "{md}"
        );
        assert!(md.contains("| account-mfa | 1024 | "), "{md}");
        let not_counted = &md[md.find("## Not counted").unwrap()..];
        assert!(!not_counted.contains("account-mfa"), "{not_counted}");
    }

    #[test]
    fn counts_read_thousands() {
        assert_eq!(count(1_234_567.4), "1,234,567");
        assert_eq!(count(999.0), "999");
        assert_eq!(count(0.0), "0");
    }

    #[test]
    fn the_contract_lists_the_metrics() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../cdk/contract.json");
        let n = metric_count(&path).expect("cdk/contract.json");
        assert!(n >= 20, "{n}");
    }
}
