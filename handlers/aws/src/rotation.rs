//! The rotate-keys function's work: one Secrets Manager rotation event, checked, then its step
//! (`keygate_core::rotation::run_step`) on the secret's versions. The Lambda shell
//! (`handlers/lambda/src/shell.rs`) only reads the settings and runs this per event.

use keygate_core::keys::KeyTimeline;
use keygate_core::rotation::{RotationError, RotationStep, run_step};
use keygate_core::{Clock as _, SigningAlgorithm, SystemClock};
use serde::Deserialize;

use crate::secrets::SecretsManagerVersions;

/// The Secrets Manager rotation event.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RotationEvent {
    pub secret_id: String,
    pub client_request_token: String,
    pub step: String,
}

/// Why an event was not carried out. Secrets Manager retries a failed step and reports it on the secret.
#[derive(Debug, thiserror::Error)]
pub enum RotationEventError {
    /// The step name is none of the four.
    #[error("{0}")]
    UnknownStep(String),
    /// `KEYGATE_KEYS_SECRET_ID` names the one secret this function rotates.
    #[error("this function rotates {expected}, not {got}")]
    OtherSecret { expected: String, got: String },
    #[error("the public key set cannot be the signing secret")]
    PublicSetIsSigningSecret,
    #[error(transparent)]
    Step(#[from] RotationError),
}

/// Runs one rotation step for a Secrets Manager event; the answer names the step and its outcome.
pub async fn rotate_step(
    client: aws_sdk_secretsmanager::Client,
    expected_secret: Option<&str>,
    public_secret: &str,
    alg: SigningAlgorithm,
    timeline: KeyTimeline,
    event: RotationEvent,
) -> Result<serde_json::Value, RotationEventError> {
    let step: RotationStep = event
        .step
        .parse()
        .map_err(RotationEventError::UnknownStep)?;
    if let Some(expected) = expected_secret
        && expected != event.secret_id
    {
        return Err(RotationEventError::OtherSecret {
            expected: expected.to_owned(),
            got: event.secret_id,
        });
    }
    if public_secret == event.secret_id {
        return Err(RotationEventError::PublicSetIsSigningSecret);
    }
    let store = SecretsManagerVersions::new(client, &event.secret_id).publishing_to(public_secret);
    let outcome = run_step(&store, step, &event.client_request_token, alg, timeline, SystemClock.now_ms()).await.inspect_err(|e| {
        tracing::error!(target: "keygate::rotation", step = %step, version = %event.client_request_token, error = %e, "rotation step failed");
    })?;
    tracing::info!(target: "keygate::rotation", step = %step, version = %event.client_request_token, outcome = ?outcome, "rotation step finished");
    Ok(serde_json::json!({ "step": step.name(), "outcome": format!("{outcome:?}") }))
}
