//! The DynamoDB store: users, their tokens, email codes and second factors, and the mail outbox, in
//! one table.
//!
//! | item | pk | sk | attributes |
//! | --- | --- | --- | --- |
//! | user | `USER#<email>` | `PROFILE` | userId, email, passwordHash, createdAt, revokedBefore, failedLogins (attempts reserved), lockedUntil, lastAttemptAt, roles, familySeq, emailVerified (BOOL; absent: false), mfa (S: `MfaState::to_json`, compared whole; absent: no factor) |
//! | refresh token | `USER#<email>` | `REFRESH#<familyId>#<tokenId>` | tokenHash, issuedAt, expiresAt (TTL, s), familyExpiresAt, usedAt, replacedBy, fingerprintHash |
//! | device token | `USER#<email>` | `DEVICE#<tokenHash>` | createdAt, expiresAt (TTL, s), failedLogins, lockedUntil, lastAttemptAt |
//! | denied access token | `DENIED#<jti>` | `DENIED` | expiresAt (TTL, s: the token's `exp` plus the clock leeway) |
//! | email code | `USER#<email>` | `EMAILCODE#<purpose>` (`verify`, `reset`) | tokenHash, codeMac (both absent on a notice's record, which has no code), codeExpiresAt, attempts, consumed (BOOL), lastSentAt, windowStart, windowSends, expiresAt (TTL, s) |
//! | outbox mail | `OUTBOX#<id>` | `MAIL` | sealed, createdAt, expiresAt (TTL, s) |
//! | MFA challenge | `USER#<email>` | `MFA#CHAL#<tokenHash>` | fingerprintHash, deviceHash (both optional), attempts, expiresAt (TTL, s) |
//!
//! Times are epoch milliseconds except `expiresAt`/`familyExpiresAt` (epoch seconds, DynamoDB's TTL
//! unit). The GSI `byUserId` (KEYS_ONLY) finds a user by id; only user items carry `userId`.
//!
//! Items are mapped explicitly here (no serde layer): every attribute name lives in this file, every
//! read names the attributes it needs (ProjectionExpression), and expressions refer to attributes
//! through placeholders, so no attribute name can collide with a DynamoDB reserved word.
//!
//! Calls per operation (the CDK grants follow these):
//! - `create_user`: PutItem `attribute_not_exists(pk)`.
//! - `get_user`: GetItem (consistent). `get_user_by_id`: Query on `byUserId`, then GetItem.
//! - `reserve_login_attempt`: UpdateItem conditional on the counter it was computed from, returning
//!   the user (ALL_NEW, or ALL_OLD when the condition fails). The first try assumes a quiet counter
//!   (no attempts since the last success), so a normal login reserves in one round trip; otherwise
//!   the returned counter is the next try's expectation (a compare-and-set loop, never a blind read).
//!   With a device token: the same loop on the device item and a consistent GetItem of the user,
//!   concurrently (still one round trip); if the device is not trusted for the user (absent, expired,
//!   older than the watermark), then the loop on the user.
//! - `settle_attempt`: UpdateItem on the reserved counter (compare-and-set).
//! - `complete_login`, `change_password`: one TransactWriteItems (Put token + Update user conditional
//!   on the password hash, and for a login on the watermark and the MFA state too + Put of a new
//!   device, or for a login on a known device the Update resetting its counter; a login's second
//!   step also Deletes its MFA challenge, which must still exist). A password change that activates
//!   MFA is conditional on the MFA state as well.
//! - `set_revoked_before`: UpdateItem that only raises the watermark.
//! - `rotate_refresh_token`: one TransactWriteItems (Update presented, Put next, ConditionCheck user).
//! - `revoke_family`: Query on the sk prefix, BatchWriteItem deletes (25 a batch).
//! - `deny_access_token`: PutItem, conditional on no entry with a later expiry.
//!   `is_access_token_denied`: GetItem (consistent, so a revocation holds from the next request).
//! - `request_mail`: two consistent GetItems, concurrently (the user and the record: one round trip),
//!   then one TransactWriteItems on what they read: Put of the record conditional on its item being
//!   exactly as read, ConditionCheck of the user, Put of the outbox mail. A refusal sends the same
//!   transaction with ConditionChecks in place of both Puts, so it writes nothing but costs the
//!   same round trips. If the user or record changed in between, it reads and decides again.
//! - `get_email_code`: GetItem (consistent). `reserve_code_attempt`: UpdateItem `ADD attempts`,
//!   conditional on a usable code, returning the record (ALL_NEW).
//! - `verify_email`: one TransactWriteItems (Update record consumed, Update user emailVerified).
//!   `reset_password`: one TransactWriteItems (Update record consumed, Update user, Put notice), and
//!   a second when the stored watermark is already later than the reset's.
//! - `swap_mfa`: UpdateItem of the profile conditional on the MFA state as read.
//!   `put_mfa_challenge`: PutItem. `reserve_challenge_attempt`: UpdateItem `ADD attempts`,
//!   conditional on an unexpired challenge with attempts left, returning it (ALL_NEW).
//! - `delete_mail`: DeleteItem. `pending_mail`: Scan of the `OUTBOX#` items, the one operation that
//!   scans: for the local server's worker (`keygate-local --store dynamodb`), tests and tools; on
//!   AWS the table's stream feeds the mailer, so no function scans.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::ReturnValue;
use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, ConditionCheck, Delete, DeleteRequest, Put,
    ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update, WriteRequest,
};
use keygate_core::store::{
    AccessTokenDenyList, Attempt, AttemptCounter, AttemptScope, CodeConsumption, CodePurpose,
    DeviceGrant, DeviceRecord, EmailCode, EmailCodeStore, LoginCompletion, MAX_CODE_ATTEMPTS,
    MailOutcome, MailRequest, MfaChallenge, MfaState, MfaStore, MfaSwap, OutboxMail, OutboxStore,
    PasswordChange, PasswordReset, RefreshRecord, RefreshTokenStore, Reservation, RotateOutcome,
    Rotation, StoreError, StoreResult, User, UserStore, expired,
};
use keygate_core::throttle::LoginThrottle;
use keygate_http::Endpoint;

pub const GSI_BY_USER_ID: &str = "byUserId";

/// The DynamoDB calls serving one endpoint makes: on the base table, and on the `byUserId` index (a
/// Query, to find the bearer's user). The CDK grants a function exactly these (through
/// `cdk/contract.json`); the moto round-trip test (tests/moto.rs) checks the calls made against them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DynamoCalls {
    pub table: &'static [&'static str],
    pub by_user_id_index: &'static [&'static str],
}

impl DynamoCalls {
    /// The mailer function: it removes each outbox item it delivered (the stream brings the item).
    pub const MAILER: DynamoCalls = DynamoCalls {
        table: &["DeleteItem"],
        by_user_id_index: &[],
    };

    pub fn of(endpoint: Endpoint) -> DynamoCalls {
        let (table, by_user_id_index): (&'static [&'static str], &'static [&'static str]) =
            match endpoint {
                // The user's Put, then its mail request (reads, one transaction).
                Endpoint::Register => (&["PutItem", "GetItem", "TransactWriteItems"], &[]),
                Endpoint::EmailVerification | Endpoint::PasswordForgot => {
                    (&["GetItem", "TransactWriteItems"], &[])
                }
                // A link's record is read (GetItem), a code's attempt counted (UpdateItem).
                Endpoint::EmailVerify | Endpoint::PasswordReset => {
                    (&["GetItem", "UpdateItem", "TransactWriteItems"], &[])
                }
                // With an active factor, the password step puts a second-step challenge (PutItem).
                Endpoint::Login => (
                    &["GetItem", "UpdateItem", "TransactWriteItems", "PutItem"],
                    &[],
                ),
                // The challenge's attempt and the login throttle's (UpdateItem), the completion.
                Endpoint::MfaVerify => (&["GetItem", "UpdateItem", "TransactWriteItems"], &[]),
                // The bearer's user, then the factor's swap (UpdateItem); a code is counted on the
                // login throttle first (UpdateItem).
                Endpoint::MfaTotp | Endpoint::MfaRecoveryCodes | Endpoint::MfaTotpDisable => {
                    (&["GetItem", "UpdateItem"], &["Query"])
                }
                // The activation is written as a password change (TransactWriteItems).
                Endpoint::MfaTotpActivate => (&["GetItem", "TransactWriteItems"], &["Query"]),
                // A replay reads the live child (GetItem) or revokes the family (Query, BatchWriteItem).
                Endpoint::Refresh | Endpoint::OAuthToken => (
                    &["TransactWriteItems", "GetItem", "Query", "BatchWriteItem"],
                    &[],
                ),
                Endpoint::Logout => (&["GetItem", "Query", "BatchWriteItem"], &[]),
                // A refresh token as logout; an access token's deny-list entry (PutItem).
                Endpoint::OAuthRevoke => (&["GetItem", "Query", "BatchWriteItem", "PutItem"], &[]),
                Endpoint::LogoutAll => (&["GetItem", "UpdateItem"], &["Query"]),
                Endpoint::ChangePassword => {
                    (&["GetItem", "UpdateItem", "TransactWriteItems"], &["Query"])
                }
                Endpoint::Me => (&["GetItem"], &["Query"]),
                Endpoint::Jwks
                | Endpoint::Discovery
                | Endpoint::OAuthMetadata
                | Endpoint::OpenApi => (&[], &[]),
            };
        DynamoCalls {
            table,
            by_user_id_index,
        }
    }
}

const PK: &str = "pk";
const SK: &str = "sk";
const PROFILE: &str = "PROFILE";
const USER_PREFIX: &str = "USER#";
const REFRESH_PREFIX: &str = "REFRESH#";
const DEVICE_PREFIX: &str = "DEVICE#";
const DENIED_PREFIX: &str = "DENIED#";
const DENIED: &str = "DENIED";
const EMAIL_CODE_PREFIX: &str = "EMAILCODE#";
const OUTBOX_PREFIX: &str = "OUTBOX#";
const MFA_CHALLENGE_PREFIX: &str = "MFA#CHAL#";
const MAIL: &str = "MAIL";

const USER_ID: &str = "userId";
const EMAIL: &str = "email";
const PASSWORD_HASH: &str = "passwordHash";
const CREATED_AT: &str = "createdAt";
const REVOKED_BEFORE: &str = "revokedBefore";
const FAILED_LOGINS: &str = "failedLogins";
const LOCKED_UNTIL: &str = "lockedUntil";
const LAST_ATTEMPT_AT: &str = "lastAttemptAt";
const ROLES: &str = "roles";
const FAMILY_SEQ: &str = "familySeq";
const EMAIL_VERIFIED: &str = "emailVerified";
const MFA: &str = "mfa";

const TOKEN_HASH: &str = "tokenHash";
const ISSUED_AT: &str = "issuedAt";
const EXPIRES_AT: &str = "expiresAt";
const FAMILY_EXPIRES_AT: &str = "familyExpiresAt";
const USED_AT: &str = "usedAt";
const REPLACED_BY: &str = "replacedBy";
const FINGERPRINT_HASH: &str = "fingerprintHash";

const CODE_MAC: &str = "codeMac";
const CODE_EXPIRES_AT: &str = "codeExpiresAt";
const ATTEMPTS: &str = "attempts";
const CONSUMED: &str = "consumed";
const LAST_SENT_AT: &str = "lastSentAt";
const WINDOW_START: &str = "windowStart";
const WINDOW_SENDS: &str = "windowSends";
const SEALED: &str = "sealed";
const DEVICE_HASH: &str = "deviceHash";

const USER_ATTRIBUTES: &[&str] = &[
    USER_ID,
    EMAIL,
    PASSWORD_HASH,
    CREATED_AT,
    REVOKED_BEFORE,
    FAILED_LOGINS,
    LOCKED_UNTIL,
    LAST_ATTEMPT_AT,
    ROLES,
    FAMILY_SEQ,
    EMAIL_VERIFIED,
    MFA,
];
const REFRESH_ATTRIBUTES: &[&str] = &[
    SK,
    TOKEN_HASH,
    ISSUED_AT,
    EXPIRES_AT,
    USED_AT,
    REPLACED_BY,
    FINGERPRINT_HASH,
];
const EMAIL_CODE_ATTRIBUTES: &[&str] = &[
    TOKEN_HASH,
    CODE_MAC,
    CODE_EXPIRES_AT,
    ATTEMPTS,
    CONSUMED,
    LAST_SENT_AT,
    WINDOW_START,
    WINDOW_SENDS,
    EXPIRES_AT,
];
const OUTBOX_ATTRIBUTES: &[&str] = &[PK, SEALED, CREATED_AT, EXPIRES_AT];

/// BatchWriteItem's limit.
const BATCH_SIZE: usize = 25;
/// Rounds of re-sending a batch's UnprocessedItems before giving up.
const UNPROCESSED_ROUNDS: u32 = 8;
/// Tries of a transaction when it collides with a concurrent transaction on the same items (and of a
/// mail request when the user or record it was decided on changed before its write).
const CONFLICT_TRIES: u32 = 3;
const CONDITIONAL_CHECK_FAILED: &str = "ConditionalCheckFailed";
/// Compare-and-set rounds of a reservation before it is refused. A round is lost only to another
/// write of the same counter: a reservation (each brings the throttle closer to refusing by itself),
/// the settlement of a judged attempt, or the reset of a successful login. 8 rounds were too few:
/// 5 correct logins released together on a loaded machine lost all 8 to each other's reservations
/// and resets (`service_concurrent_logins_take_distinct_family_numbers` in handlers/testkit), and a
/// refusal then turns away a correct password. 32 covers the free attempts of a burst plus that many
/// concurrent successes.
const RESERVE_TRIES: u32 = 32;

/// The DynamoDB store. Cheap to clone (the SDK client is reference-counted).
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

fn user_pk(email: &str) -> String {
    format!("{USER_PREFIX}{email}")
}

fn device_sk(token_hash: &str) -> String {
    format!("{DEVICE_PREFIX}{token_hash}")
}

fn refresh_sk(family_id: &str, token_id: &str) -> String {
    format!("{REFRESH_PREFIX}{family_id}#{token_id}")
}

fn email_code_sk(purpose: CodePurpose) -> String {
    format!("{EMAIL_CODE_PREFIX}{}", purpose.as_str())
}

fn mfa_challenge_sk(token_hash: &str) -> String {
    format!("{MFA_CHALLENGE_PREFIX}{token_hash}")
}

fn outbox_pk(id: &str) -> String {
    format!("{OUTBOX_PREFIX}{id}")
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn b(value: bool) -> AttributeValue {
    AttributeValue::Bool(value)
}

/// `#a` placeholders for attribute names: `#pk` for `pk`, and so on (every name here is a plain word).
fn names(attributes: &[&str]) -> HashMap<String, String> {
    attributes
        .iter()
        .map(|a| (format!("#{a}"), (*a).to_owned()))
        .collect()
}

fn projection(attributes: &[&str]) -> String {
    attributes
        .iter()
        .map(|a| format!("#{a}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn sdk_error<E, R>(operation: &str, error: aws_sdk_dynamodb::error::SdkError<E, R>) -> StoreError
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    StoreError::Unavailable(format!(
        "DynamoDB {operation}: {}",
        DisplayErrorContext(&error)
    ))
}

type Item = HashMap<String, AttributeValue>;

fn corrupt(attribute: &str, what: &str) -> StoreError {
    StoreError::Corrupt(format!("attribute {attribute}: {what}"))
}

fn get_s(item: &Item, attribute: &str) -> StoreResult<String> {
    opt_s(item, attribute)?.ok_or_else(|| corrupt(attribute, "missing"))
}

fn opt_s(item: &Item, attribute: &str) -> StoreResult<Option<String>> {
    match item.get(attribute) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::S(value)) => Ok(Some(value.clone())),
        Some(_) => Err(corrupt(attribute, "not a string")),
    }
}

fn opt_n<T: std::str::FromStr>(item: &Item, attribute: &str) -> StoreResult<Option<T>> {
    match item.get(attribute) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::N(value)) => value
            .parse()
            .map(Some)
            .map_err(|_| corrupt(attribute, "not an integer")),
        Some(_) => Err(corrupt(attribute, "not a number")),
    }
}

fn get_n<T: std::str::FromStr>(item: &Item, attribute: &str) -> StoreResult<T> {
    opt_n(item, attribute)?.ok_or_else(|| corrupt(attribute, "missing"))
}

fn opt_bool(item: &Item, attribute: &str) -> StoreResult<Option<bool>> {
    match item.get(attribute) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::Bool(value)) => Ok(Some(*value)),
        Some(_) => Err(corrupt(attribute, "not a boolean")),
    }
}

fn user_item(user: &User) -> Item {
    let mut item = HashMap::from([
        (PK.to_owned(), s(user_pk(&user.email))),
        (SK.to_owned(), s(PROFILE)),
        (USER_ID.to_owned(), s(&user.user_id)),
        (EMAIL.to_owned(), s(&user.email)),
        (PASSWORD_HASH.to_owned(), s(&user.password_hash)),
        (CREATED_AT.to_owned(), n(user.created_at_ms)),
        (REVOKED_BEFORE.to_owned(), n(user.revoked_before_ms)),
        (FAILED_LOGINS.to_owned(), n(user.attempts.attempts)),
        (LOCKED_UNTIL.to_owned(), n(user.attempts.locked_until_ms)),
        (LAST_ATTEMPT_AT.to_owned(), n(user.attempts.last_attempt_ms)),
        (FAMILY_SEQ.to_owned(), n(user.family_seq)),
        (EMAIL_VERIFIED.to_owned(), b(user.email_verified)),
        (
            ROLES.to_owned(),
            AttributeValue::L(user.roles.iter().map(s).collect()),
        ),
    ]);
    if let Some(mfa) = &user.mfa {
        item.insert(MFA.to_owned(), s(mfa.to_json()));
    }
    item
}

fn user_from_item(item: &Item) -> StoreResult<User> {
    let roles = match item.get(ROLES) {
        None | Some(AttributeValue::Null(_)) => Vec::new(),
        Some(AttributeValue::L(values)) => values
            .iter()
            .map(|v| {
                v.as_s()
                    .cloned()
                    .map_err(|_| corrupt(ROLES, "holds a non-string"))
            })
            .collect::<StoreResult<_>>()?,
        Some(AttributeValue::Ss(values)) => values.clone(),
        Some(_) => return Err(corrupt(ROLES, "not a list")),
    };
    Ok(User {
        user_id: get_s(item, USER_ID)?,
        email: get_s(item, EMAIL)?,
        password_hash: get_s(item, PASSWORD_HASH)?,
        created_at_ms: get_n(item, CREATED_AT)?,
        revoked_before_ms: opt_n(item, REVOKED_BEFORE)?.unwrap_or(0),
        attempts: counter_from_item(item)?,
        roles,
        family_seq: opt_n(item, FAMILY_SEQ)?.unwrap_or(0),
        // Users written before verification existed are unverified.
        email_verified: opt_bool(item, EMAIL_VERIFIED)?.unwrap_or(false),
        mfa: opt_s(item, MFA)?
            .map(|text| MfaState::from_json(&text))
            .transpose()?,
    })
}

/// An attempt counter (a user's or a device's); absent attributes are a quiet counter.
fn counter_from_item(item: &Item) -> StoreResult<AttemptCounter> {
    Ok(AttemptCounter {
        attempts: opt_n(item, FAILED_LOGINS)?.unwrap_or(0),
        locked_until_ms: opt_n(item, LOCKED_UNTIL)?.unwrap_or(0),
        last_attempt_ms: opt_n(item, LAST_ATTEMPT_AT)?.unwrap_or(0),
    })
}

fn device_item(device: &DeviceRecord) -> Item {
    HashMap::from([
        (PK.to_owned(), s(user_pk(&device.email))),
        (SK.to_owned(), s(device_sk(&device.token_hash))),
        (CREATED_AT.to_owned(), n(device.created_at_ms)),
        (EXPIRES_AT.to_owned(), n(device.expires_at_s)),
        (FAILED_LOGINS.to_owned(), n(device.attempts.attempts)),
        (LOCKED_UNTIL.to_owned(), n(device.attempts.locked_until_ms)),
        (
            LAST_ATTEMPT_AT.to_owned(),
            n(device.attempts.last_attempt_ms),
        ),
    ])
}

fn device_from_item(email: &str, item: &Item) -> StoreResult<DeviceRecord> {
    let sk = get_s(item, SK)?;
    let token_hash = sk
        .strip_prefix(DEVICE_PREFIX)
        .ok_or_else(|| corrupt(SK, "not a device key"))?;
    Ok(DeviceRecord {
        email: email.to_owned(),
        token_hash: token_hash.to_owned(),
        created_at_ms: get_n(item, CREATED_AT)?,
        expires_at_s: get_n(item, EXPIRES_AT)?,
        attempts: counter_from_item(item)?,
    })
}

fn refresh_item(record: &RefreshRecord) -> Item {
    let mut item = HashMap::from([
        (PK.to_owned(), s(user_pk(&record.email))),
        (
            SK.to_owned(),
            s(refresh_sk(&record.family_id, &record.token_id)),
        ),
        (TOKEN_HASH.to_owned(), s(&record.token_hash)),
        (ISSUED_AT.to_owned(), n(record.issued_at_ms)),
        (EXPIRES_AT.to_owned(), n(record.expires_at_s)),
        (FAMILY_EXPIRES_AT.to_owned(), n(record.expires_at_s)),
    ]);
    if let Some(used_at) = record.used_at_ms {
        item.insert(USED_AT.to_owned(), n(used_at));
    }
    if let Some(replaced_by) = &record.replaced_by {
        item.insert(REPLACED_BY.to_owned(), s(replaced_by));
    }
    if let Some(fingerprint) = &record.fingerprint_hash {
        item.insert(FINGERPRINT_HASH.to_owned(), s(fingerprint));
    }
    item
}

fn refresh_from_item(email: &str, item: &Item) -> StoreResult<RefreshRecord> {
    let sk = get_s(item, SK)?;
    let (family_id, token_id) = sk
        .strip_prefix(REFRESH_PREFIX)
        .and_then(|rest| rest.split_once('#'))
        .ok_or_else(|| corrupt(SK, "not a refresh-token key"))?;
    Ok(RefreshRecord {
        email: email.to_owned(),
        family_id: family_id.to_owned(),
        token_id: token_id.to_owned(),
        token_hash: get_s(item, TOKEN_HASH)?,
        issued_at_ms: get_n(item, ISSUED_AT)?,
        expires_at_s: get_n(item, EXPIRES_AT)?,
        used_at_ms: opt_n(item, USED_AT)?,
        replaced_by: opt_s(item, REPLACED_BY)?,
        fingerprint_hash: opt_s(item, FINGERPRINT_HASH)?,
    })
}

/// The record's item. An empty hash or MAC (a notice's record, which has no code) is left out:
/// absent reads back as empty, and conditions compare it as absent.
fn email_code_item(record: &EmailCode) -> Item {
    let mut item = HashMap::from([
        (PK.to_owned(), s(user_pk(&record.email))),
        (SK.to_owned(), s(email_code_sk(record.purpose))),
        (CODE_EXPIRES_AT.to_owned(), n(record.code_expires_at_ms)),
        (ATTEMPTS.to_owned(), n(record.attempts)),
        (CONSUMED.to_owned(), b(record.consumed)),
        (LAST_SENT_AT.to_owned(), n(record.last_sent_ms)),
        (WINDOW_START.to_owned(), n(record.window_start_ms)),
        (WINDOW_SENDS.to_owned(), n(record.window_sends)),
        (EXPIRES_AT.to_owned(), n(record.expires_at_s)),
    ]);
    for (attribute, value) in [
        (TOKEN_HASH, &record.token_hash),
        (CODE_MAC, &record.code_mac),
    ] {
        if !value.is_empty() {
            item.insert(attribute.to_owned(), s(value));
        }
    }
    item
}

fn email_code_from_item(email: &str, purpose: CodePurpose, item: &Item) -> StoreResult<EmailCode> {
    Ok(EmailCode {
        email: email.to_owned(),
        purpose,
        token_hash: opt_s(item, TOKEN_HASH)?.unwrap_or_default(),
        code_mac: opt_s(item, CODE_MAC)?.unwrap_or_default(),
        code_expires_at_ms: get_n(item, CODE_EXPIRES_AT)?,
        attempts: get_n(item, ATTEMPTS)?,
        consumed: opt_bool(item, CONSUMED)?.ok_or_else(|| corrupt(CONSUMED, "missing"))?,
        last_sent_ms: get_n(item, LAST_SENT_AT)?,
        window_start_ms: get_n(item, WINDOW_START)?,
        window_sends: get_n(item, WINDOW_SENDS)?,
        expires_at_s: get_n(item, EXPIRES_AT)?,
    })
}

fn mfa_challenge_item(challenge: &MfaChallenge) -> Item {
    let mut item = HashMap::from([
        (PK.to_owned(), s(user_pk(&challenge.email))),
        (SK.to_owned(), s(mfa_challenge_sk(&challenge.token_hash))),
        (ATTEMPTS.to_owned(), n(challenge.attempts)),
        (EXPIRES_AT.to_owned(), n(challenge.expires_at_s)),
    ]);
    for (attribute, value) in [
        (FINGERPRINT_HASH, &challenge.fingerprint_hash),
        (DEVICE_HASH, &challenge.device_hash),
    ] {
        if let Some(value) = value {
            item.insert(attribute.to_owned(), s(value));
        }
    }
    item
}

fn mfa_challenge_from_item(email: &str, item: &Item) -> StoreResult<MfaChallenge> {
    let sk = get_s(item, SK)?;
    let token_hash = sk
        .strip_prefix(MFA_CHALLENGE_PREFIX)
        .ok_or_else(|| corrupt(SK, "not an MFA challenge key"))?;
    Ok(MfaChallenge {
        email: email.to_owned(),
        token_hash: token_hash.to_owned(),
        fingerprint_hash: opt_s(item, FINGERPRINT_HASH)?,
        device_hash: opt_s(item, DEVICE_HASH)?,
        attempts: get_n(item, ATTEMPTS)?,
        expires_at_s: get_n(item, EXPIRES_AT)?,
    })
}

fn outbox_item(mail: &OutboxMail) -> Item {
    HashMap::from([
        (PK.to_owned(), s(outbox_pk(&mail.id))),
        (SK.to_owned(), s(MAIL)),
        (SEALED.to_owned(), s(&mail.sealed)),
        (CREATED_AT.to_owned(), n(mail.created_at_ms)),
        (EXPIRES_AT.to_owned(), n(mail.expires_at_s)),
    ])
}

fn outbox_from_item(item: &Item) -> StoreResult<OutboxMail> {
    let pk = get_s(item, PK)?;
    let id = pk
        .strip_prefix(OUTBOX_PREFIX)
        .ok_or_else(|| corrupt(PK, "not an outbox key"))?;
    Ok(OutboxMail {
        id: id.to_owned(),
        sealed: get_s(item, SEALED)?,
        created_at_ms: get_n(item, CREATED_AT)?,
        expires_at_s: get_n(item, EXPIRES_AT)?,
    })
}

/// The outbox mail of a stream record's new image (`None`: the item is not an outbox mail).
pub fn outbox_mail_from_image(image: &Item) -> StoreResult<Option<OutboxMail>> {
    match image.get(PK).and_then(|pk| pk.as_s().ok()) {
        Some(pk) if pk.starts_with(OUTBOX_PREFIX) => outbox_from_item(image).map(Some),
        _ => Ok(None),
    }
}

fn is_conditional_check_failed<E: ProvideErrorMetadata>(
    error: &aws_sdk_dynamodb::error::SdkError<E, impl std::fmt::Debug>,
) -> bool {
    error.as_service_error().and_then(|e| e.code()) == Some("ConditionalCheckFailedException")
}

fn code(reasons: &[CancellationReason], index: usize) -> &str {
    reasons.get(index).and_then(|r| r.code()).unwrap_or("None")
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// A store from the standard AWS environment (region, credentials, `AWS_ENDPOINT_URL_DYNAMODB`)
    /// and `KEYGATE_TABLE_NAME`, with this crate's retry policy: what `keygate-local --store dynamodb`
    /// uses.
    pub async fn from_env() -> Result<Self, keygate_core::ConfigError> {
        let table = crate::settings::read_table_name(&crate::settings::env_lookup)?;
        let config = crate::sdk::load().await;
        Ok(Self::new(Client::new(&config), table))
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Opens the connection (DNS, TCP, TLS) during init, so the first request does not pay for it: a
    /// GetItem of a key that never exists, projected to its key. Needs only `dynamodb:GetItem`; should
    /// the function lack even that, the refused request has still opened the connection, so a refusal
    /// is logged at debug level only.
    pub async fn warm_up(&self) {
        let result = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s("KEYGATE#WARMUP"))
            .key(SK, s("WARMUP"))
            .projection_expression("#pk")
            .expression_attribute_names("#pk", PK)
            .send()
            .await;
        match result {
            Ok(_) => tracing::debug!(target: "keygate::aws", "DynamoDB connection warmed"),
            Err(e) if e.as_service_error().is_some() => {
                tracing::debug!(target: "keygate::aws", error = %DisplayErrorContext(&e), "DynamoDB warm-up refused (connection open)")
            }
            Err(e) => {
                tracing::warn!(target: "keygate::aws", error = %DisplayErrorContext(&e), "DynamoDB warm-up failed")
            }
        }
    }

    async fn get_profile(&self, email: &str) -> StoreResult<Option<User>> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(user_pk(email)))
            .key(SK, s(PROFILE))
            .consistent_read(true)
            .projection_expression(projection(USER_ATTRIBUTES))
            .set_expression_attribute_names(Some(names(USER_ATTRIBUTES)))
            .send()
            .await
            .map_err(|e| sdk_error("GetItem", e))?;
        output.item.as_ref().map(user_from_item).transpose()
    }

    fn put_token_request(&self, record: &RefreshRecord) -> Put {
        Put::builder()
            .table_name(&self.table)
            .set_item(Some(refresh_item(record)))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .build()
            .expect("table, item and condition are set")
    }

    /// Deletes the items of `email` whose sort key starts with `prefix`; returns how many.
    async fn delete_by_prefix(&self, email: &str, prefix: &str) -> StoreResult<usize> {
        let mut keys: Vec<Item> = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_names("#sk", SK)
                .expression_attribute_values(":pk", s(user_pk(email)))
                .expression_attribute_values(":prefix", s(prefix))
                .projection_expression("#pk, #sk")
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| sdk_error("Query", e))?;
            keys.extend(output.items.unwrap_or_default());
            match output.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        for chunk in keys.chunks(BATCH_SIZE) {
            let requests = chunk
                .iter()
                .map(|key| {
                    let delete = DeleteRequest::builder()
                        .set_key(Some(key.clone()))
                        .build()
                        .expect("key is set");
                    WriteRequest::builder().delete_request(delete).build()
                })
                .collect();
            self.batch_write(requests).await?;
        }
        Ok(keys.len())
    }

    /// Sends one batch, re-sending UnprocessedItems with exponential backoff.
    async fn batch_write(&self, mut requests: Vec<WriteRequest>) -> StoreResult<()> {
        for round in 0..UNPROCESSED_ROUNDS {
            if round > 0 {
                tokio::time::sleep(Duration::from_millis(25u64 << round.min(5))).await;
            }
            let output = self
                .client
                .batch_write_item()
                .request_items(&self.table, requests)
                .send()
                .await
                .map_err(|e| sdk_error("BatchWriteItem", e))?;
            requests = output
                .unprocessed_items
                .and_then(|mut items| items.remove(&self.table))
                .unwrap_or_default();
            if requests.is_empty() {
                return Ok(());
            }
        }
        Err(StoreError::Unavailable(format!(
            "DynamoDB BatchWriteItem: {} deletes still unprocessed",
            requests.len()
        )))
    }

    /// The presented token's update in a rotation: marks it used if, and only if, it exists, its hash
    /// matches, it is unused and unexpired, and the device binding matches.
    fn rotation_update(&self, rotation: &Rotation) -> Update {
        let fingerprint_condition = match rotation.fingerprint_hash {
            None => "attribute_not_exists(#fingerprintHash)",
            Some(_) => "#fingerprintHash = :fingerprint",
        };
        let mut builder = Update::builder()
            .table_name(&self.table)
            .key(PK, s(user_pk(&rotation.email)))
            .key(SK, s(refresh_sk(&rotation.family_id, &rotation.token_id)))
            .update_expression("SET #usedAt = :now, #replacedBy = :next")
            .condition_expression(format!(
                "attribute_exists(#pk) AND #tokenHash = :hash AND attribute_not_exists(#usedAt) AND #expiresAt > :nowSeconds AND {fingerprint_condition}"
            ))
            .set_expression_attribute_names(Some(names(&[PK, TOKEN_HASH, USED_AT, REPLACED_BY, EXPIRES_AT, FINGERPRINT_HASH])))
            .expression_attribute_values(":now", n(rotation.now_ms))
            .expression_attribute_values(":next", s(&rotation.next.token_id))
            .expression_attribute_values(":hash", s(&rotation.presented_hash))
            .expression_attribute_values(":nowSeconds", n(rotation.now_ms.div_euclid(1000)))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        if let Some(fingerprint) = &rotation.fingerprint_hash {
            builder = builder.expression_attribute_values(":fingerprint", s(fingerprint));
        }
        builder.build().expect("table, key and expressions are set")
    }

    /// Reads a cancelled rotation's reasons in the core's order: NotFound, AlreadyUsed, FingerprintMismatch,
    /// Revoked. `None`: nothing explains the cancellation but a concurrent change; try again.
    fn cancelled_outcome(
        &self,
        rotation: &Rotation,
        reasons: &[CancellationReason],
    ) -> StoreResult<Option<RotateOutcome>> {
        if code(reasons, 0) == CONDITIONAL_CHECK_FAILED {
            let presented = reasons[0]
                .item()
                .map(|item| refresh_from_item(&rotation.email, item))
                .transpose()?;
            return Ok(rotation.record_refusal(presented));
        }
        if code(reasons, 2) == CONDITIONAL_CHECK_FAILED {
            return Ok(Some(RotateOutcome::Revoked));
        }
        if code(reasons, 1) == CONDITIONAL_CHECK_FAILED {
            return Err(StoreError::Corrupt(
                "the next refresh token's key is already taken".into(),
            ));
        }
        if reasons
            .iter()
            .any(|r| r.code() == Some("TransactionConflict"))
        {
            return Ok(None);
        }
        let codes: Vec<&str> = (0..reasons.len()).map(|i| code(reasons, i)).collect();
        Err(StoreError::Unavailable(format!(
            "DynamoDB TransactWriteItems cancelled: {codes:?}"
        )))
    }
}

/// `#attr = :value`, where an absent attribute counts as 0 (items written before the attribute
/// existed). Names and values are added to `names`/`values`.
fn equals_or_absent_zero(
    attribute: &'static str,
    value: i64,
    names: &mut Vec<&'static str>,
    values: &mut HashMap<String, AttributeValue>,
) -> String {
    names.push(attribute);
    values.insert(format!(":{attribute}"), n(value));
    if value == 0 {
        format!("(attribute_not_exists(#{attribute}) OR #{attribute} = :{attribute})")
    } else {
        format!("#{attribute} = :{attribute}")
    }
}

/// The condition "the stored counter is `expected`", as far as the throttle's rules can tell: a
/// counter with no attempts behaves the same whatever its other fields hold.
fn counter_condition(
    expected: &AttemptCounter,
    names: &mut Vec<&'static str>,
    values: &mut HashMap<String, AttributeValue>,
) -> String {
    let attempts =
        equals_or_absent_zero(FAILED_LOGINS, i64::from(expected.attempts), names, values);
    if expected.attempts == 0 {
        return attempts;
    }
    let locked = equals_or_absent_zero(LOCKED_UNTIL, expected.locked_until_ms, names, values);
    let last = equals_or_absent_zero(LAST_ATTEMPT_AT, expected.last_attempt_ms, names, values);
    format!("{attempts} AND {locked} AND {last}")
}

/// `#attr = :attr` for a string, where the empty string is the absent attribute (see
/// [`email_code_item`]). Names and values are added to `names`/`values`.
fn string_equals_or_absent(
    attribute: &'static str,
    value: &str,
    names: &mut Vec<&'static str>,
    values: &mut HashMap<String, AttributeValue>,
) -> String {
    names.push(attribute);
    if value.is_empty() {
        return format!("attribute_not_exists(#{attribute})");
    }
    values.insert(format!(":{attribute}"), s(value));
    format!("#{attribute} = :{attribute}")
}

/// The condition "the stored MFA state is `expected`" (`None`: there is none), on the whole JSON text
/// ([`MfaState::to_json`] is the one stored spelling). Names and values are added to
/// `names`/`values`.
fn mfa_condition(
    expected: Option<&MfaState>,
    names: &mut Vec<&'static str>,
    values: &mut HashMap<String, AttributeValue>,
) -> String {
    names.push(MFA);
    match expected {
        None => format!("attribute_not_exists(#{MFA})"),
        Some(state) => {
            values.insert(":mfaExpected".into(), s(state.to_json()));
            format!("#{MFA} = :mfaExpected")
        }
    }
}

/// `set` (an update expression's SET clause) extended to leave the MFA state as `swap.new`: one more
/// SET action, or a REMOVE clause; `set` itself when the state stays as expected (the condition
/// still checks it). Names and values are added to `names`/`values`.
fn with_mfa_write(
    set: String,
    swap: &MfaSwap,
    names: &mut Vec<&'static str>,
    values: &mut HashMap<String, AttributeValue>,
) -> String {
    if swap.new == swap.expected {
        return set;
    }
    names.push(MFA);
    match &swap.new {
        Some(state) => {
            values.insert(":mfaNew".into(), s(state.to_json()));
            format!("{set}, #{MFA} = :mfaNew")
        }
        None => format!("{set} REMOVE #{MFA}"),
    }
}

/// The condition "the record's item is exactly `record`, attribute by attribute" (`None`: there is
/// no item): a mail request writes only on the record it was decided on, whatever changed it since
/// (another request, a code attempt, a consumption).
fn email_code_as_read(
    record: Option<&EmailCode>,
    names: &mut Vec<&'static str>,
    values: &mut HashMap<String, AttributeValue>,
) -> String {
    names.push(PK);
    let Some(r) = record else {
        return format!("attribute_not_exists(#{PK})");
    };
    let mut parts = vec![
        format!("attribute_exists(#{PK})"),
        string_equals_or_absent(TOKEN_HASH, &r.token_hash, names, values),
        string_equals_or_absent(CODE_MAC, &r.code_mac, names, values),
    ];
    let numbers = [
        (CODE_EXPIRES_AT, r.code_expires_at_ms),
        (ATTEMPTS, i64::from(r.attempts)),
        (LAST_SENT_AT, r.last_sent_ms),
        (WINDOW_START, r.window_start_ms),
        (WINDOW_SENDS, i64::from(r.window_sends)),
        (EXPIRES_AT, r.expires_at_s),
    ];
    for (attribute, value) in numbers {
        names.push(attribute);
        values.insert(format!(":{attribute}"), n(value));
        parts.push(format!("#{attribute} = :{attribute}"));
    }
    names.push(CONSUMED);
    values.insert(format!(":{CONSUMED}"), b(r.consumed));
    parts.push(format!("#{CONSUMED} = :{CONSUMED}"));
    parts.join(" AND ")
}

/// The condition "the user is as the mail request's decision read it": absent, or present and, for a
/// request only to unverified accounts, verified or not as read.
fn user_as_read(
    user: Option<&User>,
    only_unverified: bool,
    names: &mut Vec<&'static str>,
    values: &mut HashMap<String, AttributeValue>,
) -> String {
    names.push(PK);
    match user {
        None => format!("attribute_not_exists(#{PK})"),
        Some(_) if !only_unverified => format!("attribute_exists(#{PK})"),
        Some(user) => {
            names.push(EMAIL_VERIFIED);
            values.insert(":verified".into(), b(true));
            if user.email_verified {
                format!("attribute_exists(#{PK}) AND #{EMAIL_VERIFIED} = :verified")
            } else {
                format!(
                    "attribute_exists(#{PK}) AND (attribute_not_exists(#{EMAIL_VERIFIED}) OR #{EMAIL_VERIFIED} <> :verified)"
                )
            }
        }
    }
}

/// DynamoDB refuses an empty ExpressionAttributeValues map: `None` then.
fn non_empty(values: HashMap<String, AttributeValue>) -> Option<HashMap<String, AttributeValue>> {
    (!values.is_empty()).then_some(values)
}

/// The pause before try `attempt` (from 0) of a transaction that collided.
async fn conflict_backoff(attempt: u32) {
    if attempt > 0 {
        tokio::time::sleep(Duration::from_millis(20 << attempt)).await;
    }
}

/// The item a failed condition returned (ALL_OLD), if there was one.
fn old_item<R>(error: &aws_sdk_dynamodb::error::SdkError<UpdateItemError, R>) -> Option<Item> {
    match error.as_service_error() {
        Some(UpdateItemError::ConditionalCheckFailedException(failed)) => failed.item().cloned(),
        _ => None,
    }
}

/// How a compare-and-set reservation on one counter item ended.
enum CounterReservation {
    /// The item after the reservation.
    Admitted(Item),
    /// Refused by the throttle (or outrun by concurrent reservations); the item as last read.
    Refused(Item),
    /// No such item; nothing written.
    Absent,
}

impl CounterReservation {
    /// Whether it was admitted, and the item; `None` when absent.
    fn admitted_and_item(self) -> Option<(bool, Item)> {
        match self {
            Self::Admitted(item) => Some((true, item)),
            Self::Refused(item) => Some((false, item)),
            Self::Absent => None,
        }
    }
}

/// How a conditional user update inside a transaction ended.
enum Transacted {
    Applied,
    /// The user update's condition failed; the item as it was, if any (boxed: a user with an MFA
    /// state is large).
    Refused(Option<Box<User>>),
}

impl DynamoStore {
    /// Writes `token` and updates the user together, with the device write and (a login's second
    /// step) the consumption of the MFA challenge `challenge_hash`; the update's condition failing
    /// is an answer, a collision with a concurrent transaction is retried.
    async fn user_and_token(
        &self,
        update: Update,
        token: &RefreshRecord,
        device: TransactWriteItem,
        challenge_hash: Option<&str>,
    ) -> StoreResult<Transacted> {
        // The reasons are read by index: token 0, user 1, device 2, challenge 3 (last, so the
        // others keep their places whether or not it is there).
        let mut items = vec![
            TransactWriteItem::builder()
                .put(self.put_token_request(token))
                .build(),
            TransactWriteItem::builder().update(update).build(),
            device,
        ];
        if let Some(hash) = challenge_hash {
            items.push(self.consume_mfa_challenge(&token.email, hash));
        }
        for attempt in 0..CONFLICT_TRIES {
            conflict_backoff(attempt).await;
            match self.transact(items.clone()).await? {
                Transaction::Applied => return Ok(Transacted::Applied),
                Transaction::Refused(reasons) if code(&reasons, 1) == CONDITIONAL_CHECK_FAILED => {
                    let user = reasons[1]
                        .item()
                        .map(|item| user_from_item(item).map(Box::new))
                        .transpose()?;
                    return Ok(Transacted::Refused(user));
                }
                // A known device that is gone (expired), or a new device's key taken; or the MFA
                // challenge already consumed (or never issued).
                Transaction::Refused(reasons)
                    if code(&reasons, 2) == CONDITIONAL_CHECK_FAILED
                        || code(&reasons, 3) == CONDITIONAL_CHECK_FAILED =>
                {
                    return Ok(Transacted::Refused(None));
                }
                Transaction::Refused(_) => {
                    return Err(StoreError::Corrupt(
                        "the new refresh token's key is already taken".into(),
                    ));
                }
                Transaction::Conflict => {}
            }
        }
        Err(StoreError::Unavailable(
            "DynamoDB TransactWriteItems: the user kept changing concurrently".into(),
        ))
    }

    /// Deletes a login's MFA challenge, which must still exist (a consumed one refuses the login).
    fn consume_mfa_challenge(&self, email: &str, token_hash: &str) -> TransactWriteItem {
        let delete = Delete::builder()
            .table_name(&self.table)
            .key(PK, s(user_pk(email)))
            .key(SK, s(mfa_challenge_sk(token_hash)))
            .condition_expression(format!("attribute_exists(#{PK})"))
            .expression_attribute_names(format!("#{PK}"), PK)
            .build()
            .expect("table, key and condition are set");
        TransactWriteItem::builder().delete(delete).build()
    }

    /// The device half of a login's or password change's transaction.
    fn device_write(&self, email: &str, grant: &DeviceGrant) -> TransactWriteItem {
        let builder = TransactWriteItem::builder();
        match grant {
            DeviceGrant::Issue(device) => builder
                .put(
                    Put::builder()
                        .table_name(&self.table)
                        .set_item(Some(device_item(device)))
                        .condition_expression("attribute_not_exists(#pk)")
                        .expression_attribute_names("#pk", PK)
                        .build()
                        .expect("table, item and condition are set"),
                )
                .build(),
            DeviceGrant::Reset(hash) => builder
                .update(
                    Update::builder()
                        .table_name(&self.table)
                        .key(PK, s(user_pk(email)))
                        .key(SK, s(device_sk(hash)))
                        .update_expression(format!(
                            "SET #{FAILED_LOGINS} = :zero, #{LOCKED_UNTIL} = :zero, #{LAST_ATTEMPT_AT} = :zero"
                        ))
                        .condition_expression("attribute_exists(#pk)")
                        .set_expression_attribute_names(Some(names(&[
                            PK,
                            FAILED_LOGINS,
                            LOCKED_UNTIL,
                            LAST_ATTEMPT_AT,
                        ])))
                        .expression_attribute_values(":zero", n(0))
                        .build()
                        .expect("table, key and expressions are set"),
                )
                .build(),
        }
    }

    /// Reserves one attempt on the counter of the item `sk` under `email` (see the module
    /// documentation): a compare-and-set loop whose first try assumes a quiet counter.
    async fn reserve_counter(
        &self,
        email: &str,
        sk: String,
        throttle: &LoginThrottle,
        now_ms: i64,
    ) -> StoreResult<CounterReservation> {
        let mut expected = AttemptCounter::default();
        let mut seen = None;
        for _ in 0..RESERVE_TRIES {
            let Some(next) = throttle.reserve(&expected, now_ms) else {
                break;
            };
            let (mut attribute_names, mut values) = (vec![PK], HashMap::new());
            let condition = counter_condition(&expected, &mut attribute_names, &mut values);
            attribute_names.extend([FAILED_LOGINS, LOCKED_UNTIL, LAST_ATTEMPT_AT]);
            values.insert(":nextAttempts".into(), n(next.attempts));
            values.insert(":nextLocked".into(), n(next.locked_until_ms));
            values.insert(":nextLast".into(), n(next.last_attempt_ms));
            let result = self
                .client
                .update_item()
                .table_name(&self.table)
                .key(PK, s(user_pk(email)))
                .key(SK, s(sk.clone()))
                .update_expression(format!(
                    "SET #{FAILED_LOGINS} = :nextAttempts, #{LOCKED_UNTIL} = :nextLocked, #{LAST_ATTEMPT_AT} = :nextLast"
                ))
                .condition_expression(format!("attribute_exists(#pk) AND {condition}"))
                .set_expression_attribute_names(Some(names_with_pk(&attribute_names)))
                .set_expression_attribute_values(Some(values))
                .return_values(ReturnValue::AllNew)
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .await;
            match result {
                Ok(output) => {
                    let item = output
                        .attributes
                        .ok_or_else(|| corrupt(PK, "UpdateItem returned no attributes"))?;
                    return Ok(CounterReservation::Admitted(item));
                }
                Err(e) if is_conditional_check_failed(&e) => match old_item(&e) {
                    None => return Ok(CounterReservation::Absent),
                    Some(item) => {
                        expected = counter_from_item(&item)?;
                        seen = Some(item);
                    }
                },
                Err(e) => return Err(sdk_error("UpdateItem", e)),
            }
        }
        seen.map(CounterReservation::Refused)
            .ok_or_else(|| StoreError::Unavailable("reservation: no item was read".into()))
    }

    fn user_update(
        &self,
        email: &str,
        set: &str,
        condition: String,
        names: Vec<&'static str>,
        values: HashMap<String, AttributeValue>,
    ) -> Update {
        Update::builder()
            .table_name(&self.table)
            .key(PK, s(user_pk(email)))
            .key(SK, s(PROFILE))
            .update_expression(set)
            .condition_expression(format!("attribute_exists(#pk) AND {condition}"))
            .set_expression_attribute_names(Some(names_with_pk(&names)))
            .set_expression_attribute_values(Some(values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .expect("table, key and expressions are set")
    }
}

/// How one TransactWriteItems ended.
enum Transaction {
    Applied,
    /// A condition failed; nothing was written. The reasons, in the items' order.
    Refused(Vec<CancellationReason>),
    /// It collided with a concurrent transaction on one of its items; nothing was written.
    Conflict,
}

impl DynamoStore {
    async fn transact(&self, items: Vec<TransactWriteItem>) -> StoreResult<Transaction> {
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        let error = match result {
            Ok(_) => return Ok(Transaction::Applied),
            Err(error) => error,
        };
        match error.as_service_error() {
            Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
                let reasons = cancelled.cancellation_reasons();
                if reasons
                    .iter()
                    .any(|r| r.code() == Some(CONDITIONAL_CHECK_FAILED))
                {
                    return Ok(Transaction::Refused(reasons.to_vec()));
                }
                if reasons
                    .iter()
                    .any(|r| r.code() == Some("TransactionConflict"))
                {
                    return Ok(Transaction::Conflict);
                }
                let codes: Vec<&str> = (0..reasons.len()).map(|i| code(reasons, i)).collect();
                Err(StoreError::Unavailable(format!(
                    "DynamoDB TransactWriteItems cancelled: {codes:?}"
                )))
            }
            Some(TransactWriteItemsError::TransactionInProgressException(_)) => {
                Ok(Transaction::Conflict)
            }
            _ => Err(sdk_error("TransactWriteItems", error)),
        }
    }

    /// A conditional transaction, sent again when it collides with a concurrent one: `Ok(())` when
    /// it applied, `Err(reasons)` when a condition failed.
    async fn transact_until_decided(
        &self,
        items: Vec<TransactWriteItem>,
        what: &str,
    ) -> StoreResult<Result<(), Vec<CancellationReason>>> {
        for attempt in 0..CONFLICT_TRIES {
            conflict_backoff(attempt).await;
            match self.transact(items.clone()).await? {
                Transaction::Applied => return Ok(Ok(())),
                Transaction::Refused(reasons) => return Ok(Err(reasons)),
                Transaction::Conflict => {
                    tracing::debug!(target: "keygate::aws", attempt, what, "transaction collided with a concurrent change; trying again")
                }
            }
        }
        Err(StoreError::Unavailable(format!(
            "DynamoDB TransactWriteItems: the {what} kept changing concurrently"
        )))
    }

    /// The record as stored, expired or not (a mail request's decision needs its send limits, and
    /// its write compares the item as read).
    async fn read_email_code(
        &self,
        email: &str,
        purpose: CodePurpose,
    ) -> StoreResult<Option<EmailCode>> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(user_pk(email)))
            .key(SK, s(email_code_sk(purpose)))
            .consistent_read(true)
            .projection_expression(projection(EMAIL_CODE_ATTRIBUTES))
            .set_expression_attribute_names(Some(names(EMAIL_CODE_ATTRIBUTES)))
            .send()
            .await
            .map_err(|e| sdk_error("GetItem", e))?;
        output
            .item
            .as_ref()
            .map(|item| email_code_from_item(email, purpose, item))
            .transpose()
    }

    fn condition_check(
        &self,
        pk: String,
        sk: String,
        condition: String,
        attribute_names: &[&'static str],
        values: HashMap<String, AttributeValue>,
    ) -> TransactWriteItem {
        let check = ConditionCheck::builder()
            .table_name(&self.table)
            .key(PK, s(pk))
            .key(SK, s(sk))
            .condition_expression(condition)
            .set_expression_attribute_names(Some(names(attribute_names)))
            .set_expression_attribute_values(non_empty(values))
            .build()
            .expect("table, key and condition are set");
        TransactWriteItem::builder().condition_check(check).build()
    }

    fn put_outbox_mail(&self, mail: &OutboxMail) -> TransactWriteItem {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(outbox_item(mail)))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .build()
            .expect("table, item and condition are set");
        TransactWriteItem::builder().put(put).build()
    }

    /// A mail request's one transaction, on the state `decision` was made from: the record (Put of
    /// the new record, conditional on the item as read), the user (ConditionCheck: as read), the
    /// mail (Put, on a fresh key). A refusal sends the same transaction with ConditionChecks in place
    /// of the Puts: it writes nothing, but costs the same round trips as a queued mail, so the
    /// answer's timing does not tell a known address from an unknown one, and the refusal too holds
    /// only on the state it was decided on.
    fn mail_request_items(
        &self,
        request: &MailRequest,
        user: Option<&User>,
        record: Option<&EmailCode>,
        decision: &Result<EmailCode, MailOutcome>,
    ) -> Vec<TransactWriteItem> {
        let (mut record_names, mut record_values) = (Vec::new(), HashMap::new());
        let record_condition = email_code_as_read(record, &mut record_names, &mut record_values);
        let record_item = match decision {
            Ok(next) => {
                let put = Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(email_code_item(next)))
                    .condition_expression(record_condition)
                    .set_expression_attribute_names(Some(names(&record_names)))
                    .set_expression_attribute_values(non_empty(record_values))
                    .build()
                    .expect("table, item and condition are set");
                TransactWriteItem::builder().put(put).build()
            }
            Err(_) => self.condition_check(
                user_pk(&request.email),
                email_code_sk(request.purpose),
                record_condition,
                &record_names,
                record_values,
            ),
        };
        let (mut user_names, mut user_values) = (Vec::new(), HashMap::new());
        let user_condition = user_as_read(
            user,
            request.only_unverified,
            &mut user_names,
            &mut user_values,
        );
        let user_item = self.condition_check(
            user_pk(&request.email),
            PROFILE.to_owned(),
            user_condition,
            &user_names,
            user_values,
        );
        let mail_item = match decision {
            Ok(_) => self.put_outbox_mail(&request.mail),
            Err(_) => self.condition_check(
                outbox_pk(&request.mail.id),
                MAIL.to_owned(),
                format!("attribute_not_exists(#{PK})"),
                &[PK],
                HashMap::new(),
            ),
        };
        vec![record_item, user_item, mail_item]
    }

    /// Marks the record consumed if [`CodeConsumption::allowed_by`] allows it: the live generation,
    /// unconsumed, its code and item unexpired (the purpose is the key).
    fn consume_code(&self, consumption: &CodeConsumption) -> TransactWriteItem {
        let (mut attribute_names, mut values) = (
            vec![PK, CONSUMED, CODE_EXPIRES_AT, EXPIRES_AT],
            HashMap::new(),
        );
        let generation = string_equals_or_absent(
            TOKEN_HASH,
            &consumption.token_hash,
            &mut attribute_names,
            &mut values,
        );
        values.insert(":true".into(), b(true));
        values.insert(":false".into(), b(false));
        values.insert(":now".into(), n(consumption.now_ms));
        values.insert(":nowSeconds".into(), n(consumption.now_ms.div_euclid(1000)));
        let update = Update::builder()
            .table_name(&self.table)
            .key(PK, s(user_pk(&consumption.email)))
            .key(SK, s(email_code_sk(consumption.purpose)))
            .update_expression(format!("SET #{CONSUMED} = :true"))
            .condition_expression(format!(
                "attribute_exists(#{PK}) AND #{CONSUMED} = :false AND {generation} AND #{CODE_EXPIRES_AT} > :now AND #{EXPIRES_AT} > :nowSeconds"
            ))
            .set_expression_attribute_names(Some(names(&attribute_names)))
            .set_expression_attribute_values(Some(values))
            .build()
            .expect("table, key and expressions are set");
        TransactWriteItem::builder().update(update).build()
    }
}

fn names_with_pk(attributes: &[&'static str]) -> HashMap<String, String> {
    let mut all = vec![PK];
    all.extend(attributes.iter().copied().filter(|a| *a != PK));
    names(&all)
}

impl UserStore for DynamoStore {
    async fn create_user(&self, user: &User) -> StoreResult<bool> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(user_item(user)))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_conditional_check_failed(&e) => Ok(false),
            Err(e) => Err(sdk_error("PutItem", e)),
        }
    }

    async fn get_user(&self, email: &str) -> StoreResult<Option<User>> {
        self.get_profile(email).await
    }

    async fn get_user_by_id(&self, user_id: &str) -> StoreResult<Option<User>> {
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(GSI_BY_USER_ID)
            .key_condition_expression("#userId = :id")
            .expression_attribute_names("#userId", USER_ID)
            .expression_attribute_values(":id", s(user_id))
            .limit(2)
            .send()
            .await
            .map_err(|e| sdk_error("Query", e))?;
        let items = output.items.unwrap_or_default();
        let Some(pk) = items
            .iter()
            .find(|item| {
                item.get(SK)
                    .and_then(|v| v.as_s().ok())
                    .is_some_and(|sk| sk == PROFILE)
            })
            .map(|item| get_s(item, PK))
        else {
            return Ok(None);
        };
        let pk = pk?;
        let email = pk
            .strip_prefix(USER_PREFIX)
            .ok_or_else(|| corrupt(PK, "not a user key"))?;
        // The index is eventually consistent; the item itself is read consistently and must still match.
        Ok(self
            .get_profile(email)
            .await?
            .filter(|user| user.user_id == user_id))
    }

    async fn reserve_login_attempt(
        &self,
        email: &str,
        device_token_hash: Option<&str>,
        throttle: &LoginThrottle,
        now_ms: i64,
    ) -> StoreResult<Reservation> {
        if let Some(hash) = device_token_hash {
            let (user, device) = tokio::join!(
                self.get_profile(email),
                self.reserve_counter(email, device_sk(hash), throttle, now_ms)
            );
            let Some(user) = user? else {
                return Ok(Reservation::NoUser);
            };
            if let Some((admitted, item)) = device?.admitted_and_item() {
                let device = device_from_item(email, &item)?;
                // The item came back with the reservation applied (or as read, when refused); trust
                // reads only its identity, expiry and age, which a reservation does not change.
                if device.trusted_for(&user, now_ms) {
                    let attempt = Attempt {
                        user,
                        scope: AttemptScope::Device(device.token_hash),
                        counter: device.attempts,
                    };
                    return Ok(Reservation::judged(admitted, attempt));
                }
            }
        }
        let reservation = self
            .reserve_counter(email, PROFILE.to_owned(), throttle, now_ms)
            .await?;
        let Some((admitted, item)) = reservation.admitted_and_item() else {
            return Ok(Reservation::NoUser);
        };
        let user = user_from_item(&item)?;
        let attempt = Attempt {
            counter: user.attempts,
            scope: AttemptScope::Untrusted,
            user,
        };
        Ok(Reservation::judged(admitted, attempt))
    }

    async fn settle_attempt(
        &self,
        email: &str,
        scope: &AttemptScope,
        reserved: &AttemptCounter,
        locked_until_ms: i64,
    ) -> StoreResult<bool> {
        let sk = match scope {
            AttemptScope::Untrusted => PROFILE.to_owned(),
            AttemptScope::Device(hash) => device_sk(hash),
        };
        let (mut attribute_names, mut values) = (vec![PK], HashMap::new());
        let attempts = equals_or_absent_zero(
            FAILED_LOGINS,
            i64::from(reserved.attempts),
            &mut attribute_names,
            &mut values,
        );
        let last = equals_or_absent_zero(
            LAST_ATTEMPT_AT,
            reserved.last_attempt_ms,
            &mut attribute_names,
            &mut values,
        );
        attribute_names.push(LOCKED_UNTIL);
        values.insert(":window".into(), n(locked_until_ms));
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(user_pk(email)))
            .key(SK, s(sk))
            .update_expression(format!("SET #{LOCKED_UNTIL} = :window"))
            .condition_expression(format!("attribute_exists(#pk) AND {attempts} AND {last}"))
            .set_expression_attribute_names(Some(names_with_pk(&attribute_names)))
            .set_expression_attribute_values(Some(values))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_conditional_check_failed(&e) => Ok(false),
            Err(e) => Err(sdk_error("UpdateItem", e)),
        }
    }

    async fn complete_login(&self, completion: &LoginCompletion) -> StoreResult<bool> {
        let token = &completion.first_token;
        let (mut attribute_names, mut values) = (vec![PASSWORD_HASH], HashMap::new());
        values.insert(":verified".into(), s(&completion.verified_hash));
        let watermark = equals_or_absent_zero(
            REVOKED_BEFORE,
            completion.revoked_before_ms,
            &mut attribute_names,
            &mut values,
        );
        // The counter the login counted on is reset: the untrusted one here, a device's in the
        // device's own update. The hash is always set (to itself unless rehashed), so the update
        // has something to write whichever counter it is.
        let mut set = format!("SET #{PASSWORD_HASH} = :stored, #{FAMILY_SEQ} = :seq");
        attribute_names.push(FAMILY_SEQ);
        values.insert(":seq".into(), n(completion.family_seq));
        values.insert(
            ":stored".into(),
            s(completion
                .new_password_hash
                .as_ref()
                .unwrap_or(&completion.verified_hash)),
        );
        if let DeviceGrant::Issue(_) = completion.device {
            attribute_names.extend([FAILED_LOGINS, LOCKED_UNTIL, LAST_ATTEMPT_AT]);
            values.insert(":zero".into(), n(0));
            set.push_str(&format!(
                ", #{FAILED_LOGINS} = :zero, #{LOCKED_UNTIL} = :zero, #{LAST_ATTEMPT_AT} = :zero"
            ));
        }
        // The MFA state must be the one judged (a factor activated meanwhile refuses a password-only
        // login; a spent step or recovery code, a concurrent second step), and becomes the new one.
        let mfa = mfa_condition(
            completion.mfa.expected.as_ref(),
            &mut attribute_names,
            &mut values,
        );
        let set = with_mfa_write(set, &completion.mfa, &mut attribute_names, &mut values);
        let update = self.user_update(
            &token.email,
            &set,
            format!(
                "#{PASSWORD_HASH} = :verified AND {watermark} AND (attribute_not_exists(#{FAMILY_SEQ}) OR #{FAMILY_SEQ} < :seq) AND {mfa}"
            ),
            attribute_names,
            values,
        );
        let device = self.device_write(&token.email, &completion.device);
        let challenge = completion.challenge_hash.as_deref();
        Ok(matches!(
            self.user_and_token(update, token, device, challenge)
                .await?,
            Transacted::Applied
        ))
    }

    async fn change_password(&self, change: &PasswordChange) -> StoreResult<bool> {
        let token = &change.first_token;
        // The watermark only rises: the first try raises it; if the stored one is already later
        // (and the hash matched), the second try keeps it.
        let mut raise = true;
        for _ in 0..2 {
            let mut attribute_names = vec![
                PASSWORD_HASH,
                REVOKED_BEFORE,
                FAILED_LOGINS,
                LOCKED_UNTIL,
                LAST_ATTEMPT_AT,
                FAMILY_SEQ,
            ];
            let mut values = HashMap::from([
                (":expected".to_owned(), s(&change.expected_hash)),
                (":new".to_owned(), s(&change.new_hash)),
                (":watermark".to_owned(), n(change.revoked_before_ms)),
                (":zero".to_owned(), n(0)),
                (":seq".to_owned(), n(change.family_seq)),
            ]);
            let counter = format!(
                "#{FAILED_LOGINS} = :zero, #{LOCKED_UNTIL} = :zero, #{LAST_ATTEMPT_AT} = :zero, #{FAMILY_SEQ} = :seq"
            );
            let (set, condition) = if raise {
                (
                    format!(
                        "SET #{PASSWORD_HASH} = :new, #{REVOKED_BEFORE} = :watermark, {counter}"
                    ),
                    format!(
                        "#{PASSWORD_HASH} = :expected AND (attribute_not_exists(#{REVOKED_BEFORE}) OR #{REVOKED_BEFORE} < :watermark)"
                    ),
                )
            } else {
                (
                    format!("SET #{PASSWORD_HASH} = :new, {counter}"),
                    format!("#{PASSWORD_HASH} = :expected AND #{REVOKED_BEFORE} >= :watermark"),
                )
            };
            // An MFA activation: the state must still be the pending one, and becomes active.
            let (set, condition) = match &change.mfa {
                None => (set, condition),
                Some(swap) => {
                    let mfa =
                        mfa_condition(swap.expected.as_ref(), &mut attribute_names, &mut values);
                    (
                        with_mfa_write(set, swap, &mut attribute_names, &mut values),
                        format!("{condition} AND {mfa}"),
                    )
                }
            };
            let update = self.user_update(&token.email, &set, condition, attribute_names, values);
            let device = DeviceGrant::Issue(change.new_device.clone());
            let device = self.device_write(&token.email, &device);
            match self.user_and_token(update, token, device, None).await? {
                Transacted::Applied => return Ok(true),
                // Only the watermark's side of the condition can have failed (the hash and the MFA
                // state are as expected): try the other side.
                Transacted::Refused(Some(user))
                    if user.password_hash == change.expected_hash
                        && change
                            .mfa
                            .as_ref()
                            .is_none_or(|swap| user.mfa == swap.expected) =>
                {
                    raise = user.revoked_before_ms < change.revoked_before_ms;
                }
                Transacted::Refused(_) => return Ok(false),
            }
        }
        Ok(false)
    }

    async fn set_revoked_before(&self, email: &str, revoked_before_ms: i64) -> StoreResult<()> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(user_pk(email)))
            .key(SK, s(PROFILE))
            .update_expression("SET #revokedBefore = :revokedBefore")
            .condition_expression("attribute_exists(#pk) AND (attribute_not_exists(#revokedBefore) OR #revokedBefore < :revokedBefore)")
            .set_expression_attribute_names(Some(names(&[PK, REVOKED_BEFORE])))
            .expression_attribute_values(":revokedBefore", n(revoked_before_ms))
            .send()
            .await;
        match result {
            // A failed condition: no such user, or the watermark is already at or past this instant.
            Ok(_) => Ok(()),
            Err(e) if is_conditional_check_failed(&e) => Ok(()),
            Err(e) => Err(sdk_error("UpdateItem", e)),
        }
    }
}

impl RefreshTokenStore for DynamoStore {
    async fn put_refresh_token(&self, record: &RefreshRecord) -> StoreResult<()> {
        let put = self.put_token_request(record);
        let result = self
            .client
            .put_item()
            .table_name(put.table_name)
            .set_item(Some(put.item))
            .set_condition_expression(put.condition_expression)
            .set_expression_attribute_names(put.expression_attribute_names)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_conditional_check_failed(&e) => Err(StoreError::Corrupt(
                "a refresh token with this key already exists".into(),
            )),
            Err(e) => Err(sdk_error("PutItem", e)),
        }
    }

    async fn rotate_refresh_token(&self, rotation: &Rotation) -> StoreResult<RotateOutcome> {
        for attempt in 0..CONFLICT_TRIES {
            conflict_backoff(attempt).await;
            let watermark = ConditionCheck::builder()
                .table_name(&self.table)
                .key(PK, s(user_pk(&rotation.email)))
                .key(SK, s(PROFILE))
                .condition_expression(format!(
                    "#{REVOKED_BEFORE} <= :issuedAt AND (attribute_not_exists(#{FAMILY_SEQ}) OR #{FAMILY_SEQ} < :retiredAt)"
                ))
                .set_expression_attribute_names(Some(names(&[REVOKED_BEFORE, FAMILY_SEQ])))
                .expression_attribute_values(":issuedAt", n(rotation.presented_issued_at_ms))
                .expression_attribute_values(":retiredAt", n(rotation.retired_at_seq))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .build()
                .expect("table, key and condition are set");
            let result = self
                .client
                .transact_write_items()
                .transact_items(
                    TransactWriteItem::builder()
                        .update(self.rotation_update(rotation))
                        .build(),
                )
                .transact_items(
                    TransactWriteItem::builder()
                        .put(self.put_token_request(&rotation.next))
                        .build(),
                )
                .transact_items(
                    TransactWriteItem::builder()
                        .condition_check(watermark)
                        .build(),
                )
                .send()
                .await;
            let error = match result {
                Ok(_) => return Ok(RotateOutcome::Rotated),
                Err(error) => error,
            };
            match error.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
                    if let Some(outcome) =
                        self.cancelled_outcome(rotation, cancelled.cancellation_reasons())?
                    {
                        return Ok(outcome);
                    }
                    tracing::debug!(target: "keygate::aws", attempt, "rotation collided with a concurrent change; trying again");
                }
                Some(TransactWriteItemsError::TransactionInProgressException(_)) => {}
                _ => return Err(sdk_error("TransactWriteItems", error)),
            }
        }
        Err(StoreError::Unavailable(
            "DynamoDB TransactWriteItems: the refresh token kept changing concurrently".into(),
        ))
    }

    async fn get_refresh_token(
        &self,
        email: &str,
        family_id: &str,
        token_id: &str,
        now_ms: i64,
    ) -> StoreResult<Option<RefreshRecord>> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(user_pk(email)))
            .key(SK, s(refresh_sk(family_id, token_id)))
            .consistent_read(true)
            .projection_expression(projection(REFRESH_ATTRIBUTES))
            .set_expression_attribute_names(Some(names(REFRESH_ATTRIBUTES)))
            .send()
            .await
            .map_err(|e| sdk_error("GetItem", e))?;
        let Some(item) = output.item else {
            return Ok(None);
        };
        let record = refresh_from_item(email, &item)?;
        Ok((!record.is_expired(now_ms)).then_some(record))
    }

    async fn revoke_family(&self, email: &str, family_id: &str) -> StoreResult<usize> {
        self.delete_by_prefix(email, &format!("{REFRESH_PREFIX}{family_id}#"))
            .await
    }
}

impl AccessTokenDenyList for DynamoStore {
    async fn deny_access_token(&self, jti: &str, expires_at_s: i64) -> StoreResult<()> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(format!("{DENIED_PREFIX}{jti}")))
            .item(SK, s(DENIED))
            .item(EXPIRES_AT, n(expires_at_s))
            .condition_expression(format!("attribute_not_exists(#{PK}) OR #{EXPIRES_AT} < :e"))
            .set_expression_attribute_names(Some(names(&[PK, EXPIRES_AT])))
            .expression_attribute_values(":e", n(expires_at_s))
            .send()
            .await;
        match result {
            // Already denied until later: nothing to change.
            Err(e) if is_conditional_check_failed(&e) => Ok(()),
            Err(e) => Err(sdk_error("PutItem", e)),
            Ok(_) => Ok(()),
        }
    }

    async fn is_access_token_denied(&self, jti: &str, now_ms: i64) -> StoreResult<bool> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(format!("{DENIED_PREFIX}{jti}")))
            .key(SK, s(DENIED))
            .consistent_read(true)
            .projection_expression(projection(&[EXPIRES_AT]))
            .set_expression_attribute_names(Some(names(&[EXPIRES_AT])))
            .send()
            .await
            .map_err(|e| sdk_error("GetItem", e))?;
        let Some(item) = output.item else {
            return Ok(false);
        };
        // TTL deletion is lazy (days on DynamoDB, never on moto): the expiry decides.
        let until_s: i64 = get_n(&item, EXPIRES_AT)?;
        Ok(!keygate_core::store::expired(until_s, now_ms))
    }
}

impl EmailCodeStore for DynamoStore {
    async fn request_mail(&self, request: &MailRequest) -> StoreResult<MailOutcome> {
        for attempt in 0..CONFLICT_TRIES {
            conflict_backoff(attempt).await;
            let (user, record) = tokio::join!(
                self.get_profile(&request.email),
                self.read_email_code(&request.email, request.purpose)
            );
            let (user, record) = (user?, record?);
            let decision = request.decide(user.as_ref(), record.as_ref());
            let items = self.mail_request_items(request, user.as_ref(), record.as_ref(), &decision);
            match self.transact(items).await? {
                Transaction::Applied => {
                    return Ok(decision.map_or_else(|refused| refused, |_| MailOutcome::Queued));
                }
                Transaction::Refused(reasons) if code(&reasons, 2) == CONDITIONAL_CHECK_FAILED => {
                    return Err(StoreError::Corrupt(
                        "an outbox mail with this id already exists".into(),
                    ));
                }
                Transaction::Refused(_) | Transaction::Conflict => {
                    tracing::debug!(target: "keygate::aws", attempt, "the mail request's user or record changed since it was read; deciding again")
                }
            }
        }
        Err(StoreError::Unavailable(
            "DynamoDB TransactWriteItems: the mail request's record kept changing concurrently"
                .into(),
        ))
    }

    async fn get_email_code(
        &self,
        email: &str,
        purpose: CodePurpose,
        now_ms: i64,
    ) -> StoreResult<Option<EmailCode>> {
        // TTL deletion is lazy (days on DynamoDB, never on moto): the expiry decides.
        Ok(self
            .read_email_code(email, purpose)
            .await?
            .filter(|record| !expired(record.expires_at_s, now_ms)))
    }

    async fn reserve_code_attempt(
        &self,
        email: &str,
        purpose: CodePurpose,
        now_ms: i64,
    ) -> StoreResult<Option<EmailCode>> {
        // The condition is EmailCode::usable; ADD counts each admitted attempt once, so concurrent
        // attempts cannot pass the cap.
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(user_pk(email)))
            .key(SK, s(email_code_sk(purpose)))
            .update_expression(format!("ADD #{ATTEMPTS} :one"))
            .condition_expression(format!(
                "attribute_exists(#{PK}) AND #{CONSUMED} = :false AND attribute_exists(#{TOKEN_HASH}) AND #{CODE_EXPIRES_AT} > :now AND #{ATTEMPTS} < :max AND #{EXPIRES_AT} > :nowSeconds"
            ))
            .set_expression_attribute_names(Some(names(&[
                PK,
                CONSUMED,
                TOKEN_HASH,
                CODE_EXPIRES_AT,
                ATTEMPTS,
                EXPIRES_AT,
            ])))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":false", b(false))
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":max", n(MAX_CODE_ATTEMPTS))
            .expression_attribute_values(":nowSeconds", n(now_ms.div_euclid(1000)))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(output) => {
                let item = output
                    .attributes
                    .ok_or_else(|| corrupt(ATTEMPTS, "UpdateItem returned no attributes"))?;
                email_code_from_item(email, purpose, &item).map(Some)
            }
            Err(e) if is_conditional_check_failed(&e) => Ok(None),
            Err(e) => Err(sdk_error("UpdateItem", e)),
        }
    }

    async fn verify_email(&self, consumption: &CodeConsumption) -> StoreResult<bool> {
        let user = Update::builder()
            .table_name(&self.table)
            .key(PK, s(user_pk(&consumption.email)))
            .key(SK, s(PROFILE))
            .update_expression(format!("SET #{EMAIL_VERIFIED} = :true"))
            .condition_expression(format!("attribute_exists(#{PK})"))
            .set_expression_attribute_names(Some(names(&[PK, EMAIL_VERIFIED])))
            .expression_attribute_values(":true", b(true))
            .build()
            .expect("table, key and expressions are set");
        let items = vec![
            self.consume_code(consumption),
            TransactWriteItem::builder().update(user).build(),
        ];
        Ok(self
            .transact_until_decided(items, "verification record")
            .await?
            .is_ok())
    }

    async fn reset_password(&self, reset: &PasswordReset) -> StoreResult<bool> {
        let email = &reset.consumption.email;
        // The watermark only rises (User::reset_password): the first try raises it; if the stored
        // one is already later, the second try keeps it.
        let mut raise = true;
        for _ in 0..2 {
            let attribute_names = vec![
                PASSWORD_HASH,
                EMAIL_VERIFIED,
                REVOKED_BEFORE,
                FAILED_LOGINS,
                LOCKED_UNTIL,
                LAST_ATTEMPT_AT,
            ];
            let values = HashMap::from([
                (":new".to_owned(), s(&reset.new_hash)),
                (":true".to_owned(), b(true)),
                (":watermark".to_owned(), n(reset.revoked_before_ms)),
                (":zero".to_owned(), n(0)),
            ]);
            let effects = format!(
                "#{PASSWORD_HASH} = :new, #{EMAIL_VERIFIED} = :true, #{FAILED_LOGINS} = :zero, #{LOCKED_UNTIL} = :zero, #{LAST_ATTEMPT_AT} = :zero"
            );
            let (set, condition) = if raise {
                (
                    format!("SET {effects}, #{REVOKED_BEFORE} = :watermark"),
                    format!(
                        "(attribute_not_exists(#{REVOKED_BEFORE}) OR #{REVOKED_BEFORE} < :watermark)"
                    ),
                )
            } else {
                (
                    format!("SET {effects}"),
                    format!("#{REVOKED_BEFORE} >= :watermark"),
                )
            };
            let user = self.user_update(email, &set, condition, attribute_names, values);
            let items = vec![
                self.consume_code(&reset.consumption),
                TransactWriteItem::builder().update(user).build(),
                self.put_outbox_mail(&reset.notice),
            ];
            let reasons = match self.transact_until_decided(items, "reset record").await? {
                Ok(()) => return Ok(true),
                Err(reasons) => reasons,
            };
            if code(&reasons, 2) == CONDITIONAL_CHECK_FAILED {
                return Err(StoreError::Corrupt(
                    "an outbox mail with this id already exists".into(),
                ));
            }
            let code_allowed = code(&reasons, 0) != CONDITIONAL_CHECK_FAILED;
            let user = reasons
                .get(1)
                .filter(|r| r.code() == Some(CONDITIONAL_CHECK_FAILED))
                .and_then(|r| r.item())
                .map(user_from_item)
                .transpose()?;
            match user {
                // Only the watermark's side of the user's condition failed: try the other side.
                Some(user) if code_allowed => {
                    raise = user.revoked_before_ms < reset.revoked_before_ms;
                }
                _ => return Ok(false),
            }
        }
        Ok(false)
    }
}

impl MfaStore for DynamoStore {
    async fn swap_mfa(&self, email: &str, swap: &MfaSwap) -> StoreResult<bool> {
        let (mut attribute_names, mut values) = (vec![PK], HashMap::new());
        let condition = mfa_condition(swap.expected.as_ref(), &mut attribute_names, &mut values);
        // Written even when it stays as expected: an UpdateItem needs an action.
        let update = match &swap.new {
            Some(state) => {
                values.insert(":mfaNew".into(), s(state.to_json()));
                format!("SET #{MFA} = :mfaNew")
            }
            None => format!("REMOVE #{MFA}"),
        };
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(user_pk(email)))
            .key(SK, s(PROFILE))
            .update_expression(update)
            .condition_expression(format!("attribute_exists(#{PK}) AND {condition}"))
            .set_expression_attribute_names(Some(names(&attribute_names)))
            .set_expression_attribute_values(non_empty(values))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_conditional_check_failed(&e) => Ok(false),
            Err(e) => Err(sdk_error("UpdateItem", e)),
        }
    }

    async fn put_mfa_challenge(&self, challenge: &MfaChallenge) -> StoreResult<()> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(mfa_challenge_item(challenge)))
            .send()
            .await
            .map_err(|e| sdk_error("PutItem", e))?;
        Ok(())
    }

    async fn reserve_challenge_attempt(
        &self,
        email: &str,
        token_hash: &str,
        now_ms: i64,
    ) -> StoreResult<Option<MfaChallenge>> {
        // The condition is MfaChallenge::reserve_attempt (TTL deletion is lazy, never on moto: the
        // expiry is in it); ADD counts each admitted attempt once, so concurrent attempts cannot
        // pass the cap.
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(user_pk(email)))
            .key(SK, s(mfa_challenge_sk(token_hash)))
            .update_expression(format!("ADD #{ATTEMPTS} :one"))
            .condition_expression(format!(
                "attribute_exists(#{PK}) AND #{ATTEMPTS} < :max AND #{EXPIRES_AT} > :nowSeconds"
            ))
            .set_expression_attribute_names(Some(names(&[PK, ATTEMPTS, EXPIRES_AT])))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":max", n(MAX_CODE_ATTEMPTS))
            .expression_attribute_values(":nowSeconds", n(now_ms.div_euclid(1000)))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(output) => {
                let item = output
                    .attributes
                    .ok_or_else(|| corrupt(ATTEMPTS, "UpdateItem returned no attributes"))?;
                mfa_challenge_from_item(email, &item).map(Some)
            }
            Err(e) if is_conditional_check_failed(&e) => Ok(None),
            Err(e) => Err(sdk_error("UpdateItem", e)),
        }
    }
}

impl OutboxStore for DynamoStore {
    async fn pending_mail(&self, limit: usize, now_ms: i64) -> StoreResult<Vec<OutboxMail>> {
        // A Scan (see the module documentation): no request path and no function calls it, as the
        // table's stream feeds the mailer on AWS.
        let mut mails = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let output = self
                .client
                .scan()
                .table_name(&self.table)
                .consistent_read(true)
                .filter_expression(format!(
                    "begins_with(#{PK}, :outbox) AND #{EXPIRES_AT} > :nowSeconds"
                ))
                .projection_expression(projection(OUTBOX_ATTRIBUTES))
                .set_expression_attribute_names(Some(names(OUTBOX_ATTRIBUTES)))
                .expression_attribute_values(":outbox", s(OUTBOX_PREFIX))
                .expression_attribute_values(":nowSeconds", n(now_ms.div_euclid(1000)))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| sdk_error("Scan", e))?;
            for item in output.items.unwrap_or_default() {
                mails.push(outbox_from_item(&item)?);
            }
            match output.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        mails.sort_by(|a, b| (a.created_at_ms, &a.id).cmp(&(b.created_at_ms, &b.id)));
        mails.truncate(limit);
        Ok(mails)
    }

    async fn delete_mail(&self, id: &str) -> StoreResult<()> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key(PK, s(outbox_pk(id)))
            .key(SK, s(MAIL))
            .send()
            .await
            .map_err(|e| sdk_error("DeleteItem", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> RefreshRecord {
        RefreshRecord {
            email: "ada#x@example.com".into(),
            family_id: "f".repeat(32),
            token_id: "a".repeat(32),
            token_hash: "0".repeat(64),
            issued_at_ms: 1_800_000_000_123,
            expires_at_s: 1_802_592_000,
            used_at_ms: Some(1_800_000_100_000),
            replaced_by: Some("b".repeat(32)),
            fingerprint_hash: None,
        }
    }

    #[test]
    fn items_round_trip() {
        let r = record();
        assert_eq!(refresh_from_item(&r.email, &refresh_item(&r)).unwrap(), r);
        let user = User {
            user_id: "0190e4b8-0000-7000-8000-000000000000".into(),
            email: "ada@example.com".into(),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
            created_at_ms: 1,
            revoked_before_ms: 2,
            attempts: AttemptCounter {
                attempts: 3,
                locked_until_ms: 4,
                last_attempt_ms: 5,
            },
            roles: vec!["admin".into()],
            family_seq: 6,
            email_verified: true,
            mfa: None,
        };
        let item = user_item(&user);
        assert_eq!(item[PK], s("USER#ada@example.com"));
        assert_eq!(user_from_item(&item).unwrap(), user);
    }

    fn email_code() -> EmailCode {
        EmailCode {
            email: "ada@example.com".into(),
            purpose: CodePurpose::Reset,
            token_hash: "1".repeat(64),
            code_mac: "2".repeat(64),
            code_expires_at_ms: 1_800_000_900_000,
            attempts: 3,
            consumed: false,
            last_sent_ms: 1_800_000_000_000,
            window_start_ms: 1_799_999_000_000,
            window_sends: 2,
            expires_at_s: 1_800_002_601,
        }
    }

    #[test]
    fn email_code_and_outbox_items_round_trip() {
        let record = email_code();
        let item = email_code_item(&record);
        assert_eq!(
            (&item[PK], &item[SK]),
            (&s("USER#ada@example.com"), &s("EMAILCODE#reset"))
        );
        assert_eq!(item[EXPIRES_AT], n(1_800_002_601));
        assert_eq!(
            email_code_from_item(&record.email, record.purpose, &item).unwrap(),
            record
        );
        let notice = EmailCode {
            token_hash: String::new(),
            code_mac: String::new(),
            consumed: true,
            ..email_code()
        };
        let item = email_code_item(&notice);
        assert!(
            !item.contains_key(TOKEN_HASH) && !item.contains_key(CODE_MAC),
            "no empty strings are stored"
        );
        assert_eq!(
            email_code_from_item(&notice.email, notice.purpose, &item).unwrap(),
            notice
        );

        let mail = OutboxMail {
            id: "c".repeat(32),
            sealed: "c2VhbGVk".into(),
            created_at_ms: 1_800_000_000_000,
            expires_at_s: 1_800_086_400,
        };
        let item = outbox_item(&mail);
        assert_eq!(item[PK], s(format!("OUTBOX#{}", mail.id)));
        assert!(
            !item.contains_key(USER_ID),
            "the byUserId index stays sparse"
        );
        assert_eq!(outbox_from_item(&item).unwrap(), mail);
    }

    #[test]
    fn users_without_the_flag_are_unverified_and_bad_flags_are_corrupt() {
        let mut item = sample_user_item();
        item.remove(EMAIL_VERIFIED);
        assert!(!user_from_item(&item).unwrap().email_verified);
        item.insert(EMAIL_VERIFIED.into(), s("yes"));
        assert!(matches!(user_from_item(&item), Err(StoreError::Corrupt(_))));
        let mut code = email_code_item(&email_code());
        code.remove(CONSUMED);
        assert!(email_code_from_item("a@b.c", CodePurpose::Verify, &code).is_err());
    }

    fn sample_user_item() -> Item {
        user_item(&User {
            user_id: "u".into(),
            email: "ada@example.com".into(),
            password_hash: "h".into(),
            created_at_ms: 1,
            revoked_before_ms: 0,
            attempts: AttemptCounter::default(),
            roles: Vec::new(),
            family_seq: 0,
            email_verified: true,
            mfa: None,
        })
    }

    fn mfa_state() -> MfaState {
        MfaState {
            factor_id: "0190e4b8-0000-7000-8000-00000000000f".into(),
            key_id: "k1".into(),
            sealed_secret: "c2VhbGVkIHNlY3JldA".into(),
            pending_until_ms: None,
            last_step: 60_000_000,
            recovery_hashes: vec!["3".repeat(64), "4".repeat(64)],
        }
    }

    #[test]
    fn mfa_states_round_trip_and_bad_ones_are_corrupt() {
        let mut item = sample_user_item();
        assert!(!item.contains_key(MFA), "no factor, no attribute");
        assert_eq!(user_from_item(&item).unwrap().mfa, None);
        let user = User {
            mfa: Some(mfa_state()),
            ..user_from_item(&item).unwrap()
        };
        item = user_item(&user);
        assert_eq!(item[MFA], s(mfa_state().to_json()));
        assert_eq!(user_from_item(&item).unwrap(), user);
        let pending = User {
            mfa: Some(MfaState {
                pending_until_ms: Some(1_800_000_600_000),
                recovery_hashes: Vec::new(),
                ..mfa_state()
            }),
            ..user
        };
        assert_eq!(user_from_item(&user_item(&pending)).unwrap(), pending);
        item.insert(MFA.into(), s("{not json"));
        assert!(matches!(user_from_item(&item), Err(StoreError::Corrupt(_))));
        item.insert(MFA.into(), s(r#"{"factor_id":"f"}"#));
        assert!(matches!(user_from_item(&item), Err(StoreError::Corrupt(_))));
        item.insert(MFA.into(), n(1));
        assert!(matches!(user_from_item(&item), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn mfa_challenge_items_round_trip() {
        let challenge = MfaChallenge {
            email: "ada#x@example.com".into(),
            token_hash: "5".repeat(64),
            fingerprint_hash: Some("6".repeat(64)),
            device_hash: None,
            attempts: 2,
            expires_at_s: 1_800_000_300,
        };
        let item = mfa_challenge_item(&challenge);
        assert_eq!(
            (&item[PK], &item[SK]),
            (
                &s("USER#ada#x@example.com"),
                &s(format!("MFA#CHAL#{}", "5".repeat(64)))
            )
        );
        assert!(!item.contains_key(DEVICE_HASH) && !item.contains_key(USER_ID));
        assert_eq!(
            mfa_challenge_from_item(&challenge.email, &item).unwrap(),
            challenge
        );
        let mut item = item;
        item.insert(SK.into(), s(PROFILE));
        assert!(mfa_challenge_from_item(&challenge.email, &item).is_err());
    }

    #[test]
    fn refresh_items_carry_the_ttl_in_seconds_and_no_user_id() {
        let item = refresh_item(&record());
        assert_eq!(item[EXPIRES_AT], n(1_802_592_000));
        assert!(
            !item.contains_key(USER_ID),
            "the byUserId index stays sparse"
        );
    }

    #[test]
    fn corrupt_items_are_errors_not_panics() {
        let mut item = refresh_item(&record());
        item.insert(ISSUED_AT.into(), s("soon"));
        assert!(matches!(
            refresh_from_item("a@b.c", &item),
            Err(StoreError::Corrupt(_))
        ));
        item.insert(SK.into(), s("PROFILE"));
        assert!(refresh_from_item("a@b.c", &item).is_err());
    }
}
