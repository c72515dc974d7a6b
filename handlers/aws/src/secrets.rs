//! The signing-key secret in AWS Secrets Manager as a [`SecretVersionStore`].
//!
//! The functions that sign read it through [`SecretsManagerKeySource`] (GetSecretValue of `AWSCURRENT`;
//! cached with a TTL, see `keygate_core::rotation::VersionedKeySource`); those that only verify read the
//! public key-set secret instead ([`public_key_source`]), never this one. The rotate-keys function runs
//! `keygate_core::rotation::run_step` on it (DescribeSecret, GetSecretValue, PutSecretValue,
//! UpdateSecretVersionStage) and writes the public set ([`SecretsManagerVersions::publishing_to`]).

use std::collections::BTreeMap;

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::{DisplayErrorContext, SdkError};
use aws_sdk_secretsmanager::operation::get_secret_value::{
    GetSecretValueError, GetSecretValueOutput,
};
use keygate_core::SystemClock;
use keygate_core::audit::AuditKey;
use keygate_core::mfa::FactorKeyRing;
use keygate_core::rotation::{AWSPENDING, RotationError, SecretVersionStore, VersionedKeySource};

/// The key source every API function uses.
pub type SecretsManagerKeySource = VersionedKeySource<SecretsManagerVersions, SystemClock>;

/// One secret's versions.
#[derive(Debug, Clone)]
pub struct SecretsManagerVersions {
    client: Client,
    secret_id: String,
    /// The public key-set secret rotate-keys keeps in sync (`KEYGATE_PUBLIC_KEYS_SECRET_ID`); `None`
    /// for a reader, which never publishes.
    public_secret_id: Option<String>,
}

fn store_error<E: std::error::Error + Send + Sync + 'static>(
    operation: &str,
    error: SdkError<E, impl std::fmt::Debug>,
) -> RotationError {
    RotationError::Store(format!(
        "Secrets Manager {operation}: {}",
        DisplayErrorContext(&error)
    ))
}

fn secret_text(output: GetSecretValueOutput) -> Result<Option<String>, RotationError> {
    if let Some(text) = output.secret_string {
        return Ok(Some(text));
    }
    match output.secret_binary {
        Some(blob) => String::from_utf8(blob.into_inner())
            .map(Some)
            .map_err(|_| RotationError::Store("the secret's binary value is not UTF-8".into())),
        None => Ok(None),
    }
}

impl SecretsManagerVersions {
    pub fn new(client: Client, secret_id: impl Into<String>) -> Self {
        Self {
            client,
            secret_id: secret_id.into(),
            public_secret_id: None,
        }
    }

    /// The signing secret as rotate-keys sees it: each step that changes what the key set publishes
    /// also writes the public set to `public_secret_id` (PutSecretValue, staged `AWSCURRENT`).
    pub fn publishing_to(mut self, public_secret_id: impl Into<String>) -> Self {
        self.public_secret_id = Some(public_secret_id.into());
        self
    }

    pub fn secret_id(&self) -> &str {
        &self.secret_id
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    async fn get(
        &self,
        version_id: Option<&str>,
        stage: Option<&str>,
    ) -> Result<Option<String>, RotationError> {
        let result = self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .set_version_id(version_id.map(str::to_owned))
            .set_version_stage(stage.map(str::to_owned))
            .send()
            .await;
        match result {
            Ok(output) => secret_text(output),
            // No version with this id or label (or no value yet).
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(GetSecretValueError::ResourceNotFoundException(_))
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(store_error("GetSecretValue", e)),
        }
    }
}

impl SecretVersionStore for SecretsManagerVersions {
    async fn versions(&self) -> Result<BTreeMap<String, Vec<String>>, RotationError> {
        let output = self
            .client
            .describe_secret()
            .secret_id(&self.secret_id)
            .send()
            .await
            .map_err(|e| store_error("DescribeSecret", e))?;
        Ok(output
            .version_ids_to_stages
            .unwrap_or_default()
            .into_iter()
            .collect())
    }

    async fn value_at_stage(&self, stage: &str) -> Result<Option<String>, RotationError> {
        self.get(None, Some(stage)).await
    }

    async fn value_of_version(&self, version_id: &str) -> Result<Option<String>, RotationError> {
        self.get(Some(version_id), None).await
    }

    async fn put_pending(&self, version_id: &str, value: &str) -> Result<(), RotationError> {
        self.client
            .put_secret_value()
            .secret_id(&self.secret_id)
            .client_request_token(version_id)
            .secret_string(value)
            .version_stages(AWSPENDING)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| store_error("PutSecretValue", e))
    }

    async fn update_stage(
        &self,
        stage: &str,
        to: Option<&str>,
        from: Option<&str>,
    ) -> Result<(), RotationError> {
        self.client
            .update_secret_version_stage()
            .secret_id(&self.secret_id)
            .version_stage(stage)
            .set_move_to_version_id(to.map(str::to_owned))
            .set_remove_from_version_id(from.map(str::to_owned))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| store_error("UpdateSecretVersionStage", e))
    }

    async fn publish_public(&self, value: &str) -> Result<(), RotationError> {
        let Some(public_secret_id) = &self.public_secret_id else {
            return Err(RotationError::Store(
                "no public key secret is configured to publish to".into(),
            ));
        };
        // Skipped when unchanged, so a retried step does not pile up versions.
        let unchanged = Self::new(self.client.clone(), public_secret_id.clone())
            .get(None, Some(keygate_core::rotation::AWSCURRENT))
            .await?
            .is_some_and(|current| current == value);
        if unchanged {
            return Ok(());
        }
        self.client
            .put_secret_value()
            .secret_id(public_secret_id)
            .secret_string(value)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| store_error("PutSecretValue (public key set)", e))
    }
}

/// The verify-only key source over the public key-set secret `public_secret_id`, caching for `ttl`.
pub fn public_key_source(
    client: Client,
    public_secret_id: impl Into<String>,
    ttl: std::time::Duration,
) -> SecretsManagerKeySource {
    VersionedKeySource::new(
        SecretsManagerVersions::new(client, public_secret_id),
        SystemClock,
        ttl,
    )
    .public_keys()
}

/// A secret a function reads at init: the setting that names it (for errors) and its id.
#[derive(Debug, Clone, Copy)]
pub struct InitSecret<'a> {
    pub setting: &'static str,
    pub id: &'a str,
}

/// The current values of `secrets`, in their order, read in one BatchGetSecretValue: one round
/// trip and one connection at init however many secrets a function reads (each is still authorised
/// by GetSecretValue on its own ARN, and decrypted under its own encryption context). A secret that
/// could not be read is an error naming its setting, never a value.
pub async fn read_at_init(
    client: &Client,
    secrets: &[InitSecret<'_>],
) -> Vec<Result<String, String>> {
    if secrets.is_empty() {
        return Vec::new();
    }
    let answer = client
        .batch_get_secret_value()
        .set_secret_id_list(Some(secrets.iter().map(|s| s.id.to_owned()).collect()))
        .send()
        .await;
    let output = match answer {
        Ok(output) => output,
        Err(e) => {
            let error = format!(
                "Secrets Manager BatchGetSecretValue: {}",
                DisplayErrorContext(&e)
            );
            return secrets
                .iter()
                .map(|s| Err(format!("{}: {error}", s.setting)))
                .collect();
        }
    };
    // At most 20 ids a call and no filter: every answer is on the first page.
    let values = output.secret_values.unwrap_or_default();
    let errors = output.errors.unwrap_or_default();
    secrets
        .iter()
        .map(|secret| {
            // Secrets Manager answers with the secret's ARN and name, whichever the id was.
            let is_it = |arn: Option<&str>, name: Option<&str>| {
                arn == Some(secret.id) || name == Some(secret.id)
            };
            if let Some(entry) = values.iter().find(|v| is_it(v.arn(), v.name())) {
                let text = match (entry.secret_string(), entry.secret_binary()) {
                    (Some(text), _) => Some(text.to_owned()),
                    (None, Some(blob)) => String::from_utf8(blob.as_ref().to_vec()).ok(),
                    (None, None) => None,
                };
                return text
                    .ok_or_else(|| format!("{}: the secret holds no text value", secret.setting));
            }
            match errors.iter().find(|e| e.secret_id() == Some(secret.id)) {
                Some(e) => Err(format!(
                    "{}: Secrets Manager BatchGetSecretValue: {}: {}",
                    secret.setting,
                    e.error_code().unwrap_or("error"),
                    e.message().unwrap_or("no message")
                )),
                None => Err(format!(
                    "{}: Secrets Manager BatchGetSecretValue answered nothing for the secret",
                    secret.setting
                )),
            }
        })
        .collect()
}

/// The server key (audit email hashes, code HMACs, the outbox seal) from its secret's value. The
/// error is one line naming the setting, never the value.
pub fn parse_server_key(text: &str) -> Result<AuditKey, String> {
    let setting = crate::settings::SERVER_KEY_SECRET_ID.env;
    AuditKey::parse(text).map_err(|e| format!("{setting}: the secret's value {e}"))
}

/// The TOTP data-key ring ([`FactorKeyRing`]) from its secret's value, read once at init: a
/// rotation of the ring reaches a function with its next execution environment, and keeps the old
/// keys, so codes keep verifying.
pub fn parse_factor_keys(text: &str) -> Result<FactorKeyRing, String> {
    let setting = crate::settings::FACTOR_KEYS_SECRET_ID.env;
    FactorKeyRing::parse(text).map_err(|e| format!("{setting}: {e}"))
}

/// The key source over `secret_id`, caching for `ttl`.
pub fn key_source(
    client: Client,
    secret_id: impl Into<String>,
    ttl: std::time::Duration,
) -> SecretsManagerKeySource {
    VersionedKeySource::new(
        SecretsManagerVersions::new(client, secret_id),
        SystemClock,
        ttl,
    )
}
