//! What each benchmarked function is asked to do: valid requests that make it do its real work, built
//! from users and tokens seeded through the functions themselves (register, login) before measuring.
//!
//! Some requests consume what they present (a refresh token is rotated, a logout revokes a family, a
//! logout-all or password change revokes every earlier token of its user), so the fixture keeps a chain
//! per function (the next refresh presents the token the last one returned) or a pool with one item per
//! invocation.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use keygate_core::keys::KeySet;
use keygate_core::{AuthConfig, tokens};
use keygate_lambda::functions::{BINARY, FUNCTION};
use serde_json::{Value, json};

use crate::events::rest_event;

pub const PASSWORD_A: &str = "Bench-correct-horse-4417!";
pub const PASSWORD_B: &str = "Bench-staple-battery-9021?";

/// What a benchmarked process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    HelloFloor,
    SdkFloor,
    Register,
    Login,
    Refresh,
    Logout,
    LogoutAll,
    ChangePassword,
    Me,
    AccountEmail,
    AccountMfa,
    WellKnown,
    Mailer,
    RotateKeys,
    NodeRefresh,
}

impl Kind {
    /// Every keygate function, in `keygate_lambda::functions::FUNCTIONS`' order (a test checks).
    pub const FUNCTIONS: [Kind; 12] = [
        Kind::Register,
        Kind::Login,
        Kind::Refresh,
        Kind::Logout,
        Kind::LogoutAll,
        Kind::ChangePassword,
        Kind::Me,
        Kind::AccountEmail,
        Kind::AccountMfa,
        Kind::WellKnown,
        Kind::Mailer,
        Kind::RotateKeys,
    ];

    /// Where the kind's bootstrap is under `lambda_dir` (cargo-lambda's `target/lambda`), and the
    /// environment that makes it that kind: every keygate function is the one function binary told
    /// its name; a floor is its own binary.
    pub fn bootstrap(self, lambda_dir: &Path) -> (PathBuf, Vec<(String, String)>) {
        if Kind::FUNCTIONS.contains(&self) {
            let env = vec![(FUNCTION.env.to_owned(), self.name().to_owned())];
            (lambda_dir.join(BINARY).join("bootstrap"), env)
        } else {
            (lambda_dir.join(self.name()).join("bootstrap"), Vec::new())
        }
    }

    /// The function's name in `keygate_lambda::functions`, or the floor's binary name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::HelloFloor => "floor-hello",
            Kind::SdkFloor => "floor-sdk",
            Kind::Register => "register",
            Kind::Login => "login",
            Kind::Refresh => "refresh",
            Kind::Logout => "logout",
            Kind::LogoutAll => "logout-all",
            Kind::ChangePassword => "change-password",
            Kind::Me => "me",
            Kind::AccountEmail => "account-email",
            Kind::AccountMfa => "account-mfa",
            Kind::WellKnown => "well-known",
            Kind::Mailer => "mailer",
            Kind::RotateKeys => "rotate-keys",
            Kind::NodeRefresh => "node-refresh",
        }
    }

    pub fn parse(name: &str) -> Option<Kind> {
        [Kind::HelloFloor, Kind::SdkFloor, Kind::NodeRefresh]
            .into_iter()
            .chain(Kind::FUNCTIONS)
            .find(|k| k.name() == name)
    }

    /// The rotation function is invoked by Secrets Manager, not the API: only its start-up is measured.
    pub fn init_only(self) -> bool {
        self == Kind::RotateKeys
    }

    pub fn is_keygate_function(self) -> bool {
        Kind::FUNCTIONS.contains(&self)
    }

    /// The DynamoDB calls one warm invocation of this kind's workload makes, as counted in moto's
    /// request recording (`MOTO_ENABLE_RECORDING`, docs/benchmarks.md) and as
    /// `handlers/aws/tests/moto.rs` (`store_round_trips_per_endpoint`) asserts for the happy path;
    /// each is among the calls `keygate_aws::dynamo::DynamoCalls::of` grants the endpoint. The bench
    /// presents no device token and no second factor, and its logins never fail.
    pub fn dynamo_calls(self) -> &'static [(Op, u32)] {
        match self {
            // The conditional Put of the user, then the mail request: the user and its email-code
            // record read concurrently, one transaction (record, user check, outbox mail).
            Kind::Register => &[
                (Op::PutItem, 1),
                (Op::GetItem, 2),
                (Op::TransactWriteItems, 1),
            ],
            // The login throttle's reservation (returning the user), then one transaction.
            Kind::Login => &[(Op::UpdateItem, 1), (Op::TransactWriteItems, 1)],
            // Exactly one transaction (old token used, new token put, the user's watermark checked).
            Kind::Refresh | Kind::NodeRefresh => &[(Op::TransactWriteItems, 1)],
            // The presented token, its family's keys (a Query on the user's partition), their removal.
            Kind::Logout => &[
                (Op::GetItem, 1),
                (Op::QueryTable, 1),
                (Op::BatchWriteItem, 1),
            ],
            // The bearer check (index Query, consistent user GetItem, deny-list GetItem beside them),
            // then the watermark's UpdateItem.
            Kind::LogoutAll => &[(Op::QueryIndex, 1), (Op::GetItem, 2), (Op::UpdateItem, 1)],
            // The bearer check, the throttle's reservation, one transaction.
            Kind::ChangePassword => &[
                (Op::QueryIndex, 1),
                (Op::GetItem, 2),
                (Op::UpdateItem, 1),
                (Op::TransactWriteItems, 1),
            ],
            // The bearer check alone.
            Kind::Me => &[(Op::QueryIndex, 1), (Op::GetItem, 2)],
            // A reset mail (POST /auth/password/forgot): the user and its reset record read
            // concurrently, one transaction (record, user check, outbox mail), as register's mail.
            Kind::AccountEmail => &[(Op::GetItem, 2), (Op::TransactWriteItems, 1)],
            // An enrolment (POST /auth/mfa/totp): the bearer check, the factor's conditional
            // UpdateItem (`mfa_round_trips_per_endpoint`).
            Kind::AccountMfa => &[(Op::QueryIndex, 1), (Op::GetItem, 2), (Op::UpdateItem, 1)],
            // One mail of the stream: SES's SendEmail (not DynamoDB, not timed), then the outbox
            // item's DeleteItem.
            Kind::Mailer => &[(Op::DeleteItem, 1)],
            // The floor's one GetItem per invocation (handlers/tools/floor-sdk).
            Kind::SdkFloor => &[(Op::GetItem, 1)],
            // The JWKS comes from the key set read at init; the hello floor and rotate-keys (init
            // only) make no call per invocation.
            Kind::WellKnown | Kind::HelloFloor | Kind::RotateKeys => &[],
        }
    }

    fn expected_status(self) -> u16 {
        match self {
            Kind::Register => 201,
            Kind::AccountEmail => 202,
            Kind::Logout | Kind::LogoutAll => 204,
            _ => 200,
        }
    }
}

/// A DynamoDB call as the harness times it against moto on its own (`crate::moto_probe`). The two
/// Queries are kept apart because moto answers them differently: one reads a user's partition, the
/// other scans the `byUserId` index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    GetItem,
    PutItem,
    UpdateItem,
    TransactWriteItems,
    /// A Query on the base table: one user's items under a sort-key prefix (logout's family).
    QueryTable,
    /// A Query on the `byUserId` index (the bearer check's user lookup).
    QueryIndex,
    BatchWriteItem,
    DeleteItem,
}

impl Op {
    pub const ALL: [Op; 8] = [
        Op::GetItem,
        Op::PutItem,
        Op::UpdateItem,
        Op::TransactWriteItems,
        Op::QueryTable,
        Op::QueryIndex,
        Op::BatchWriteItem,
        Op::DeleteItem,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Op::GetItem => "GetItem",
            Op::PutItem => "PutItem",
            Op::UpdateItem => "UpdateItem",
            Op::TransactWriteItems => "TransactWriteItems",
            Op::QueryTable => "Query (table)",
            Op::QueryIndex => "Query (byUserId)",
            Op::BatchWriteItem => "BatchWriteItem",
            Op::DeleteItem => "DeleteItem",
        }
    }

    /// The `X-Amz-Target` operation.
    pub fn target(self) -> &'static str {
        match self {
            Op::QueryTable | Op::QueryIndex => "Query",
            other => other.name(),
        }
    }
}

/// Everything the requests are built from. The run restores the table before every cold start and
/// the fixture with it (a clone of the one seeding left), so a chain or pool is as seeded each time.
#[derive(Clone)]
pub struct Fixture {
    pub config: AuthConfig,
    pub keys: Arc<KeySet>,
    tag: String,
    counter: u64,
    /// Refresh-token chains, one per benchmarked variant label.
    pub chains: HashMap<String, String>,
    /// Refresh tokens of live families, one per logout invocation.
    pub logout_pool: Vec<String>,
    /// Users, one per logout-all invocation (each revokes all of its user's tokens).
    pub logout_all_pool: Vec<String>,
    /// The user `me` reads.
    pub me_user: Option<String>,
    /// Password-change chains per variant label: (bearer token, current password is A).
    pub password_chains: HashMap<String, (String, bool)>,
    /// The user of each password-change chain, to mend a chain an unanswered change broke.
    pub password_users: HashMap<String, String>,
    /// The seed user's id (what the harness's own index Query looks up).
    pub seed_user: Option<String>,
    /// Addresses of users, one per account-email invocation (each asks for a reset mail, which a
    /// user gets at most once a minute).
    pub email_pool: Vec<String>,
    /// The user account-mfa enrols (each enrolment replaces the pending factor).
    pub mfa_user: Option<String>,
    /// Outbox mails as the table holds them (DynamoDB JSON), one per mailer invocation.
    pub outbox_pool: Vec<Value>,
}

impl Fixture {
    pub fn new(config: AuthConfig, keys: Arc<KeySet>, tag: &str) -> Self {
        Self {
            config,
            keys,
            tag: tag.to_owned(),
            counter: 0,
            chains: HashMap::new(),
            logout_pool: Vec::new(),
            logout_all_pool: Vec::new(),
            me_user: None,
            password_chains: HashMap::new(),
            password_users: HashMap::new(),
            seed_user: None,
            email_pool: Vec::new(),
            mfa_user: None,
            outbox_pool: Vec::new(),
        }
    }

    /// A fresh, never registered address.
    pub fn unique_email(&mut self, what: &str) -> String {
        self.counter += 1;
        format!("bench-{what}-{}-{}@example.com", self.tag, self.counter)
    }

    /// An access token for `user_id`, signed now with the secret's current key (as login would sign it).
    pub fn mint_access_token(&self, user_id: &str) -> Result<String, String> {
        let now_ms = keygate_core::Clock::now_ms(&keygate_core::SystemClock);
        tokens::issue(
            &self.keys,
            &self.config,
            user_id,
            now_ms / 1000,
            keygate_core::tokens::SessionFlags::VERIFIED,
            now_ms,
        )
        .map(|t| t.token)
        .map_err(|e| e.to_string())
    }

    /// The next request for `kind` in the variant `label`, or why none can be made.
    pub fn event(&mut self, kind: Kind, label: &str) -> Result<Value, String> {
        Ok(match kind {
            Kind::HelloFloor | Kind::SdkFloor | Kind::RotateKeys => {
                rest_event("GET", "/hello", None, None)
            }
            Kind::Register => {
                let email = self.unique_email("reg");
                rest_event(
                    "POST",
                    "/auth/register",
                    Some(&json!({"email": email, "password": PASSWORD_A})),
                    None,
                )
            }
            Kind::Login => rest_event(
                "POST",
                "/auth/login",
                Some(&json!({"email": seed_email(), "password": PASSWORD_A})),
                None,
            ),
            Kind::Refresh | Kind::NodeRefresh => {
                let token = self
                    .chains
                    .get(label)
                    .ok_or_else(|| format!("{label}: no refresh token seeded"))?;
                rest_event(
                    "POST",
                    "/auth/refresh",
                    Some(&json!({"refresh_token": token})),
                    None,
                )
            }
            Kind::Logout => {
                let token = self
                    .logout_pool
                    .pop()
                    .ok_or("logout: the token pool is empty")?;
                rest_event(
                    "POST",
                    "/auth/logout",
                    Some(&json!({"refresh_token": token})),
                    None,
                )
            }
            Kind::LogoutAll => {
                let user = self
                    .logout_all_pool
                    .pop()
                    .ok_or("logout-all: the user pool is empty")?;
                let bearer = self.mint_access_token(&user)?;
                rest_event("POST", "/auth/logout-all", None, Some(&bearer))
            }
            Kind::ChangePassword => {
                let (bearer, current_is_a) = self
                    .password_chains
                    .get(label)
                    .ok_or_else(|| format!("{label}: no bearer token seeded"))?;
                let (current, new) = if *current_is_a {
                    (PASSWORD_A, PASSWORD_B)
                } else {
                    (PASSWORD_B, PASSWORD_A)
                };
                rest_event(
                    "POST",
                    "/auth/password",
                    Some(&json!({"current_password": current, "new_password": new})),
                    Some(bearer),
                )
            }
            Kind::Me => {
                let user = self.me_user.clone().ok_or("me: no user seeded")?;
                let bearer = self.mint_access_token(&user)?;
                rest_event("GET", "/auth/me", None, Some(&bearer))
            }
            Kind::AccountEmail => {
                let email = self
                    .email_pool
                    .pop()
                    .ok_or("account-email: the address pool is empty")?;
                rest_event(
                    "POST",
                    "/auth/password/forgot",
                    Some(&json!({"email": email})),
                    None,
                )
            }
            Kind::AccountMfa => {
                let user = self.mfa_user.clone().ok_or("account-mfa: no user seeded")?;
                // Minted now, so its auth_time is within the recent-login window enrolment asks.
                let bearer = self.mint_access_token(&user)?;
                rest_event("POST", "/auth/mfa/totp", Some(&json!({})), Some(&bearer))
            }
            Kind::WellKnown => rest_event("GET", "/.well-known/jwks.json", None, None),
            Kind::Mailer => {
                let item = self
                    .outbox_pool
                    .pop()
                    .ok_or("mailer: the outbox pool is empty")?;
                stream_insert(item)
            }
        })
    }

    /// Checks a raw answer: a stream batch's failures for the mailer, else the proxy response.
    pub fn check(&mut self, kind: Kind, label: &str, raw: &[u8]) -> Result<(), String> {
        if kind == Kind::Mailer {
            let answer: Value = serde_json::from_slice(raw)
                .map_err(|e| format!("{label}: not a batch response: {e}"))?;
            return match answer.get("batchItemFailures").and_then(Value::as_array) {
                Some(failures) if failures.is_empty() => Ok(()),
                _ => Err(format!(
                    "{label}: the mail was not delivered: {}",
                    truncate(&answer.to_string(), 300)
                )),
            };
        }
        let (status, body) = crate::events::parse_response(raw);
        self.observe(kind, label, status, body.as_ref())
    }

    /// Checks a response and carries the chains forward. `Err` says what was wrong with it.
    pub fn observe(
        &mut self,
        kind: Kind,
        label: &str,
        status: u16,
        body: Option<&Value>,
    ) -> Result<(), String> {
        if status != kind.expected_status() {
            if kind == Kind::ChangePassword {
                self.mend_password_chain(label, body);
            }
            let detail = body.map(|b| b.to_string()).unwrap_or_default();
            return Err(format!(
                "{label}: status {status}, expected {}: {}",
                kind.expected_status(),
                truncate(&detail, 300)
            ));
        }
        let field = |name: &str| {
            body.and_then(|b| b.get(name))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        match kind {
            Kind::Refresh | Kind::NodeRefresh => {
                let token = field("refresh_token")
                    .ok_or_else(|| format!("{label}: no refresh_token in the response"))?;
                self.chains.insert(label.to_owned(), token);
            }
            Kind::ChangePassword => {
                let bearer = field("access_token")
                    .ok_or_else(|| format!("{label}: no access_token in the response"))?;
                let chain = self
                    .password_chains
                    .get_mut(label)
                    .expect("observed after event");
                *chain = (bearer, !chain.1);
            }
            Kind::Login => {
                field("access_token")
                    .ok_or_else(|| format!("{label}: no access_token in the response"))?;
            }
            Kind::AccountMfa => {
                field("otpauth_uri")
                    .ok_or_else(|| format!("{label}: no otpauth_uri in the response"))?;
            }
            Kind::WellKnown => {
                let keys = body
                    .and_then(|b| b.get("keys"))
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
                if keys == 0 {
                    return Err(format!("{label}: the JWKS lists no key"));
                }
            }
            _ => {}
        }
        Ok(())
    }
}

impl Fixture {
    /// A password change can be applied and still answered as failed (an attempt that timed out
    /// against a stalled moto, retried by the SDK: the retry finds the hash changed). The old bearer
    /// is then revoked and the current password is the other one: the next request gets a fresh
    /// bearer, and a refused current password flips the chain's.
    fn mend_password_chain(&mut self, label: &str, body: Option<&Value>) {
        let Some(user) = self.password_users.get(label).cloned() else {
            return;
        };
        let refused = body
            .and_then(|b| b.get("title"))
            .and_then(Value::as_str)
            .is_some_and(|t| t == "Invalid credentials");
        let bearer = self.mint_access_token(&user).ok();
        if let Some(chain) = self.password_chains.get_mut(label) {
            if let Some(bearer) = bearer {
                chain.0 = bearer;
            }
            if refused {
                chain.1 = !chain.1;
            }
        }
    }
}

/// The table stream's record of the INSERT of `item` (NEW_IMAGE), in a batch of one, as Lambda's
/// DynamoDB event source delivers it to the mailer.
fn stream_insert(item: Value) -> Value {
    json!({"Records": [{
        "eventID": "bench-1",
        "eventName": "INSERT",
        "eventSource": "aws:dynamodb",
        "awsRegion": crate::events::REGION,
        "dynamodb": {
            "Keys": {"pk": item["pk"].clone(), "sk": item["sk"].clone()},
            "NewImage": item,
            "SequenceNumber": "1",
            "StreamViewType": "NEW_IMAGE"
        }
    }]})
}

pub fn seed_email() -> &'static str {
    "bench-seed@example.com"
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((at, _)) => &s[..at],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_keygate_function_is_benchmarked_under_its_own_name() {
        let names: Vec<&str> = Kind::FUNCTIONS.iter().map(|k| k.name()).collect();
        let functions: Vec<&str> = keygate_lambda::functions::FUNCTIONS
            .iter()
            .map(|f| f.name())
            .collect();
        assert_eq!(names, functions);
        for kind in Kind::FUNCTIONS {
            assert_eq!(Kind::parse(kind.name()), Some(kind));
        }
    }

    #[test]
    fn a_mail_is_delivered_only_when_the_batch_reports_no_failure() {
        let config = AuthConfig::with_issuer("https://auth.keygate.test");
        let document = keygate_core::keys::KeySetDocument {
            keys: vec![
                keygate_core::keys::generate_key(keygate_core::SigningAlgorithm::Es256, 0).unwrap(),
            ],
        };
        let keys = Arc::new(KeySet::from_documents(&document, None).unwrap());
        let mut fixture = Fixture::new(config, keys, "t");
        let item = json!({"pk": {"S": "OUTBOX#m1"}, "sk": {"S": "MAIL"}, "sealed": {"S": "x"}});
        fixture.outbox_pool.push(item.clone());
        let event = fixture.event(Kind::Mailer, "mailer").unwrap();
        assert_eq!(event["Records"][0]["dynamodb"]["NewImage"], item);
        assert!(
            fixture.event(Kind::Mailer, "mailer").is_err(),
            "one mail per invocation"
        );
        let ok = br#"{"batchItemFailures":[]}"#;
        let failed = br#"{"batchItemFailures":[{"itemIdentifier":"1"}]}"#;
        assert!(fixture.check(Kind::Mailer, "mailer", ok).is_ok());
        assert!(fixture.check(Kind::Mailer, "mailer", failed).is_err());
        assert!(fixture.check(Kind::Mailer, "mailer", b"{}").is_err());
    }
}
