//! The second-factor endpoints (TOTP enrolment, activation, recovery codes, disabling) and a login's
//! second step. Every decision on a factor is one conditional write of the user's whole
//! [`MfaState`] on the state it was decided on ([`MfaSwap`]): a TOTP step or a recovery code is
//! spent by the write that uses it, so of two requests with one code, one wins.

use serde::Serialize;

use super::{
    AuthService, Principal, SessionStart, TokenResponse, fingerprint, random_uuid, user_subject,
};
use crate::audit::{self, AuditEvent, RequestContext, Subject};
use crate::clock::Clock;
use crate::error::{AuthError, MfaChallengeIssued};
use crate::keys::KeySource;
use crate::mfa::{
    FACTOR_RECOVERY_CODE, FACTOR_TOTP, FactorKeyRing, MfaToken, RecoveryCodes, TotpSecret,
    accepted_step, base32, is_totp_shaped, otpauth_uri, recovery_code_hash,
};
use crate::store::{
    Attempt, AttemptScope, AuthStore, MfaChallenge, MfaState, MfaSwap, Reservation, User,
};

/// How long an enrolled factor waits for its activation.
pub const PENDING_FACTOR_TTL_MS: i64 = 600_000;
/// How long a login's second-step challenge lives.
pub const MFA_CHALLENGE_TTL_SECS: u64 = 300;

/// POST /auth/mfa/totp: what an authenticator app needs, shown once.
#[derive(Debug, Clone, Serialize)]
pub struct TotpEnrolment {
    pub factor_id: String,
    /// Base32 (RFC 4648, no padding), as apps accept it typed in.
    pub secret: String,
    pub otpauth_uri: String,
}

/// POST /auth/mfa/totp/activate: the recovery codes (shown this once) and the new session.
#[derive(Debug, Clone, Serialize)]
pub struct MfaActivated {
    pub recovery_codes: Vec<String>,
    #[serde(flatten)]
    pub tokens: TokenResponse,
}

/// POST /auth/mfa/recovery-codes.
#[derive(Debug, Clone, Serialize)]
pub struct RecoveryCodesIssued {
    pub recovery_codes: Vec<String>,
}

/// What a request presents as its second factor.
#[derive(Clone, Copy)]
pub enum SecondFactorProof<'a> {
    Totp(&'a str),
    RecoveryCode(&'a str),
}

impl<S: AuthStore, K: KeySource, C: Clock> AuthService<S, K, C> {
    fn factor_keys(&self) -> Result<&FactorKeyRing, AuthError> {
        self.factor_keys
            .as_ref()
            .ok_or_else(|| AuthError::Internal("this function holds no TOTP data key".into()))
    }

    /// The bearer's principal, if its session authenticated within the recent-login window.
    async fn recently_authenticated(&self, bearer: &str) -> Result<Principal, AuthError> {
        let principal = self.authenticate(bearer).await?;
        let window = self.config.mfa_recent_auth_secs;
        let age = self.clock.now_ms().div_euclid(1000) - principal.claims.auth_time;
        if age > window as i64 {
            return Err(AuthError::RecentLoginRequired(window));
        }
        Ok(principal)
    }

    /// POST /auth/mfa/totp: a new pending factor (replacing a pending one), which
    /// [`Self::activate_totp`] must activate within [`PENDING_FACTOR_TTL_MS`].
    pub async fn enrol_totp(
        &self,
        ctx: &RequestContext,
        bearer: &str,
    ) -> Result<TotpEnrolment, AuthError> {
        let ring = self.factor_keys()?;
        let Principal { user, .. } = self.recently_authenticated(bearer).await?;
        if user.active_factor().is_some() {
            return Err(AuthError::MfaAlreadyEnabled);
        }
        let factor_id = random_uuid()?;
        let secret = TotpSecret::generate()?;
        let (key_id, sealed_secret) = ring.seal(&user.user_id, &factor_id, &secret)?;
        let pending = MfaState {
            factor_id: factor_id.clone(),
            key_id,
            sealed_secret,
            pending_until_ms: Some(self.clock.now_ms() + PENDING_FACTOR_TTL_MS),
            last_step: 0,
            recovery_hashes: Vec::new(),
        };
        let swap = MfaSwap {
            expected: user.mfa.clone(),
            new: Some(pending),
        };
        if !self.store.swap_mfa(&user.email, &swap).await? {
            return Err(AuthError::FactorChanged);
        }
        audit::emit(ctx, AuditEvent::MfaEnrolled, user_subject(&user));
        Ok(TotpEnrolment {
            factor_id,
            secret: base32(&secret.0),
            otpauth_uri: otpauth_uri(&self.config.mfa_issuer, &user.email, &secret.0),
        })
    }

    /// POST /auth/mfa/totp/activate: a code of the pending factor activates it with a fresh set of
    /// recovery codes, and, as a password change does, ends every other session and starts a new
    /// one (which presented a second factor), all in one conditional write.
    pub async fn activate_totp(
        &self,
        ctx: &RequestContext,
        bearer: &str,
        factor_id: &str,
        code: &str,
    ) -> Result<MfaActivated, AuthError> {
        let ring = self.factor_keys()?;
        let Principal { user, .. } = self.authenticate(bearer).await?;
        let now = self.clock.now_ms();
        let pending = match &user.mfa {
            Some(state) if state.is_active() => return Err(AuthError::MfaAlreadyEnabled),
            Some(state)
                if state.factor_id == factor_id
                    && state.pending_until_ms.is_some_and(|until| until > now) =>
            {
                state
            }
            _ => return Err(AuthError::InvalidSecondFactor),
        };
        let Some(step) = totp_step_of(ring, &user, pending, code, now) else {
            audit::emit(ctx, AuditEvent::MfaFailed, reason(&user, "wrong_code"));
            return Err(AuthError::InvalidSecondFactor);
        };
        let RecoveryCodes { codes, hashes } = RecoveryCodes::generate()?;
        let active = MfaState {
            pending_until_ms: None,
            last_step: step,
            recovery_hashes: hashes,
            ..pending.clone()
        };
        let swap = MfaSwap {
            expected: user.mfa.clone(),
            new: Some(active),
        };
        // The password stays; the factor, the watermark and the new session are one write.
        let (tokens, change) = self
            .replacing_session(
                &user,
                &user.password_hash,
                &user.password_hash,
                true,
                Some(swap),
            )
            .await?;
        if !self.store.change_password(&change).await? {
            audit::emit(ctx, AuditEvent::MfaFailed, reason(&user, "lost_race"));
            return Err(AuthError::InvalidSecondFactor);
        }
        audit::emit(ctx, AuditEvent::MfaActivated, user_subject(&user));
        Ok(MfaActivated {
            recovery_codes: codes,
            tokens,
        })
    }

    /// POST /auth/mfa/recovery-codes: a TOTP code replaces the recovery codes with a new set.
    pub async fn regenerate_recovery_codes(
        &self,
        ctx: &RequestContext,
        bearer: &str,
        code: &str,
    ) -> Result<RecoveryCodesIssued, AuthError> {
        let Principal { user, .. } = self.authenticate(bearer).await?;
        let RecoveryCodes { codes, hashes } = RecoveryCodes::generate()?;
        self.change_factor(ctx, &user, SecondFactorProof::Totp(code), |spent| {
            Some(MfaState {
                recovery_hashes: hashes,
                ..spent
            })
        })
        .await?;
        audit::emit(
            ctx,
            AuditEvent::MfaRecoveryCodesRegenerated,
            user_subject(&user),
        );
        Ok(RecoveryCodesIssued {
            recovery_codes: codes,
        })
    }

    /// POST /auth/mfa/totp/disable: a TOTP or recovery code, on a recent login, removes the factor
    /// and its recovery codes.
    pub async fn disable_totp(
        &self,
        ctx: &RequestContext,
        bearer: &str,
        proof: SecondFactorProof<'_>,
    ) -> Result<(), AuthError> {
        let Principal { user, .. } = self.recently_authenticated(bearer).await?;
        self.change_factor(ctx, &user, proof, |_| None).await?;
        audit::emit(ctx, AuditEvent::MfaDisabled, user_subject(&user));
        Ok(())
    }

    /// Judges `proof` against the user's active factor, counted on the login throttle (a stolen
    /// access token must not become a free code oracle), and writes `change` of the state with the
    /// proof spent, conditional on the state judged.
    async fn change_factor(
        &self,
        ctx: &RequestContext,
        user: &User,
        proof: SecondFactorProof<'_>,
        change: impl FnOnce(MfaState) -> Option<MfaState>,
    ) -> Result<(), AuthError> {
        if user.active_factor().is_none() {
            return Err(AuthError::MfaNotEnabled);
        }
        let now = self.clock.now_ms();
        let attempt = self
            .reserve_code_attempt(ctx, &user.email, None, now)
            .await?
            .ok_or(AuthError::InvalidAccessToken)?;
        let judged = &attempt.user;
        let spent = match judged.active_factor() {
            Some(state) => self.spend(judged, state, proof, now)?,
            None => return Err(AuthError::MfaNotEnabled),
        };
        let Some(spent) = spent else {
            let window = self.config.throttle.window_after_failure(&attempt.counter);
            self.settle(&user.email, &attempt, window).await?;
            audit::emit(ctx, AuditEvent::MfaFailed, reason(judged, "wrong_code"));
            return Err(AuthError::InvalidSecondFactor);
        };
        // A right code releases the window its reservation held while judging; the count stays.
        self.settle(&user.email, &attempt, 0).await?;
        let swap = MfaSwap {
            expected: judged.mfa.clone(),
            new: change(spent),
        };
        if !self.store.swap_mfa(&user.email, &swap).await? {
            audit::emit(ctx, AuditEvent::MfaFailed, reason(judged, "lost_race"));
            return Err(AuthError::InvalidSecondFactor);
        }
        Ok(())
    }

    /// Reserves a second-factor code's attempt on the login throttle, on the device counter
    /// `device_hash` names or the untrusted one; a refused reservation is `InvalidSecondFactor`
    /// (throttled), and `None` means no such user.
    async fn reserve_code_attempt(
        &self,
        ctx: &RequestContext,
        email: &str,
        device_hash: Option<&str>,
        now: i64,
    ) -> Result<Option<Attempt>, AuthError> {
        match self
            .store
            .reserve_login_attempt(email, device_hash, &self.config.throttle, now)
            .await?
        {
            Reservation::Admitted(attempt) => Ok(Some(attempt)),
            Reservation::Refused(attempt) => {
                audit::emit(
                    ctx,
                    AuditEvent::MfaFailed,
                    reason(&attempt.user, "throttled"),
                );
                Err(AuthError::InvalidSecondFactor)
            }
            Reservation::NoUser => Ok(None),
        }
    }

    /// The state with `proof` spent (the TOTP step recorded, or the recovery code removed), or
    /// `None` if the proof is wrong or already spent.
    fn spend(
        &self,
        user: &User,
        state: &MfaState,
        proof: SecondFactorProof<'_>,
        now: i64,
    ) -> Result<Option<MfaState>, AuthError> {
        Ok(match proof {
            SecondFactorProof::Totp(code) => {
                totp_step_of(self.factor_keys()?, user, state, code, now).map(|step| MfaState {
                    last_step: step,
                    ..state.clone()
                })
            }
            SecondFactorProof::RecoveryCode(code) => recovery_code_hash(code).and_then(|hash| {
                let at = state.recovery_hashes.iter().position(|h| *h == hash)?;
                let mut spent = state.clone();
                spent.recovery_hashes.remove(at);
                Some(spent)
            }),
        })
    }

    /// A login's second step begins: the challenge the client answers at POST /auth/mfa/verify,
    /// bound to the login's device id and device-token counter.
    pub(super) async fn challenge(
        &self,
        user: &User,
        scope: &AttemptScope,
        fingerprint_hash: Option<String>,
        now: i64,
    ) -> Result<MfaChallengeIssued, AuthError> {
        let token = MfaToken::new(&user.email)?;
        let challenge = MfaChallenge {
            email: user.email.clone(),
            token_hash: token.hash.clone(),
            fingerprint_hash,
            device_hash: match scope {
                AttemptScope::Device(hash) => Some(hash.clone()),
                AttemptScope::Untrusted => None,
            },
            attempts: 0,
            expires_at_s: now.div_euclid(1000) + MFA_CHALLENGE_TTL_SECS as i64,
        };
        self.store.put_mfa_challenge(&challenge).await?;
        Ok(MfaChallengeIssued {
            mfa_token: token.token,
            expires_in: MFA_CHALLENGE_TTL_SECS,
            factors: vec![FACTOR_TOTP, FACTOR_RECOVERY_CODE],
        })
    }

    /// POST /auth/mfa/verify: a login's second step. The challenge's attempt is counted first (at
    /// most five), then the login throttle's, on the counter the first step counted on; the code
    /// is judged, and one conditional write consumes the challenge, spends the step or recovery
    /// code and opens the session. Every refusal is `InvalidSecondFactor`.
    pub async fn verify_mfa(
        &self,
        ctx: &RequestContext,
        mfa_token: &str,
        proof: SecondFactorProof<'_>,
        device_id: Option<&str>,
    ) -> Result<TokenResponse, AuthError> {
        let (email, token_hash) =
            MfaToken::parse(mfa_token).map_err(|_| AuthError::InvalidSecondFactor)?;
        let fingerprint_hash =
            fingerprint(device_id).map_err(|_| AuthError::InvalidSecondFactor)?;
        let now = self.clock.now_ms();
        let challenge = self
            .store
            .reserve_challenge_attempt(&email, &token_hash, now)
            .await?
            .filter(|c| c.fingerprint_hash == fingerprint_hash)
            .ok_or(AuthError::InvalidSecondFactor)?;
        let attempt = self
            .reserve_code_attempt(ctx, &email, challenge.device_hash.as_deref(), now)
            .await?
            .ok_or(AuthError::InvalidSecondFactor)?;
        let user = &attempt.user;
        let spent = match user.active_factor() {
            Some(state) => self.spend(user, state, proof, now)?,
            None => None,
        };
        let Some(spent) = spent else {
            let window = self.config.throttle.window_after_failure(&attempt.counter);
            self.settle(&email, &attempt, window).await?;
            audit::emit(ctx, AuditEvent::MfaFailed, reason(user, "wrong_code"));
            return Err(AuthError::InvalidSecondFactor);
        };
        let start = SessionStart {
            user,
            scope: &attempt.scope,
            device_token: None,
            fingerprint_hash,
            new_password_hash: None,
            mfa: MfaSwap {
                expected: user.mfa.clone(),
                new: Some(spent),
            },
            challenge_hash: Some(token_hash),
            second_factor: true,
        };
        let Some((response, family_id)) = self.open_session(start, now).await? else {
            // The code was spent by another request, the challenge consumed, or the account changed.
            audit::emit(ctx, AuditEvent::MfaFailed, reason(user, "lost_race"));
            return Err(AuthError::InvalidSecondFactor);
        };
        let subject = Subject {
            family_id: Some(&family_id),
            ..user_subject(user)
        };
        audit::emit(ctx, AuditEvent::MfaVerified, subject);
        audit::emit(ctx, AuditEvent::LoginSucceeded, subject);
        Ok(response)
    }
}

/// The step a TOTP `code` proves for `state`'s secret (later than its last one), if any. A secret
/// that does not open (another user's item, a lost data key) proves nothing.
fn totp_step_of(
    ring: &FactorKeyRing,
    user: &User,
    state: &MfaState,
    code: &str,
    now: i64,
) -> Option<i64> {
    if !is_totp_shaped(code) {
        return None;
    }
    let secret = ring
        .open(
            &state.key_id,
            &user.user_id,
            &state.factor_id,
            &state.sealed_secret,
        )
        .ok()?;
    accepted_step(&secret.0, code, now, state.last_step)
}

fn reason<'a>(user: &'a User, why: &'static str) -> Subject<'a> {
    Subject {
        reason: Some(why),
        ..user_subject(user)
    }
}
