//! The endpoints as plain async functions of the domain: the HTTP layer and every shell call these.

use std::sync::Arc;

use serde::Serialize;
use serde_json::{Value, json};

use crate::audit::{self, AuditEvent, RequestContext, Subject};
use crate::clock::Clock;
use crate::config::AuthConfig;
use crate::error::AuthError;
use crate::keys::KeySource;
use crate::password::{MAX_PASSWORD_BYTES, PasswordHasher, Verification};
use crate::refresh::{RefreshToken, hashes_match, sha256_hex};
use crate::store::{AuthStore, LoginSuccess, RotateOutcome, Rotation, User};
use crate::tokens::{self, AccessClaims};

/// RFC 6749 section 5.1 token response.
#[derive(Debug, Clone, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    pub refresh_token: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Registered {
    pub user_id: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Profile {
    pub user_id: String,
    pub email: String,
    /// Seconds since the epoch.
    pub created_at: i64,
    pub roles: Vec<String>,
    /// When the presented access token's session authenticated with a password, seconds.
    pub auth_time: i64,
}

/// The user behind a verified bearer token.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user: User,
    pub claims: AccessClaims,
}

/// Device ids are opaque client strings; only their hash is stored.
const MAX_DEVICE_ID_LEN: usize = 256;

/// Normalises an email for use as the user's key: trimmed and lowercased. Refuses anything that is
/// not a plausible single address.
pub fn normalize_email(raw: &str) -> Result<String, AuthError> {
    let email = raw.trim().to_lowercase();
    let valid = email.len() <= 254
        && email.split('@').count() == 2
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && local.len() <= 64
                && !domain.is_empty()
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains("..")
        })
        && !email.chars().any(|c| {
            c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"' | ',' | ';' | '\\')
        });
    if valid {
        Ok(email)
    } else {
        Err(AuthError::InvalidEmail)
    }
}

fn fingerprint(device_id: Option<&str>) -> Result<Option<String>, AuthError> {
    match device_id {
        None => Ok(None),
        Some(id) if id.is_empty() || id.len() > MAX_DEVICE_ID_LEN => {
            Err(AuthError::InvalidRefreshToken)
        }
        Some(id) => Ok(Some(sha256_hex(id.as_bytes()))),
    }
}

pub struct AuthService<S, K, C> {
    config: Arc<AuthConfig>,
    store: S,
    keys: K,
    clock: C,
    hasher: PasswordHasher,
}

impl<S: AuthStore, K: KeySource, C: Clock> AuthService<S, K, C> {
    pub fn new(config: AuthConfig, store: S, keys: K, clock: C) -> Result<Self, AuthError> {
        let hasher = PasswordHasher::new(config.hashing)?;
        Ok(Self {
            config: Arc::new(config),
            store,
            keys,
            clock,
            hasher,
        })
    }

    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub fn keys(&self) -> &K {
        &self.keys
    }

    /// POST /auth/register. An email that already has an account gets the same answer as a new one
    /// (with a random id) after the same work, so registration cannot enumerate users.
    pub async fn register(
        &self,
        ctx: &RequestContext,
        email: &str,
        password: &str,
    ) -> Result<Registered, AuthError> {
        let email = normalize_email(email)?;
        self.config.password_policy.check(password)?;
        let password_hash = self.hasher.hash(password)?;
        let mut random = [0u8; 16];
        aws_lc_rs::rand::fill(&mut random)
            .map_err(|_| AuthError::Internal("OS random generator failed".into()))?;
        let user_id = uuid::Builder::from_random_bytes(random)
            .into_uuid()
            .hyphenated()
            .to_string();
        let user = User {
            user_id: user_id.clone(),
            email: email.clone(),
            password_hash,
            created_at_ms: self.clock.now_ms(),
            revoked_before_ms: 0,
            failed_logins: 0,
            locked_until_ms: 0,
            roles: Vec::new(),
        };
        if self.store.create_user(&user).await? {
            audit::emit(
                ctx,
                AuditEvent::Registered,
                Subject {
                    email: Some(&email),
                    user_id: Some(&user_id),
                    ..Default::default()
                },
            );
        } else {
            audit::emit(
                ctx,
                AuditEvent::RegisterDuplicate,
                Subject {
                    email: Some(&email),
                    ..Default::default()
                },
            );
        }
        Ok(Registered { user_id })
    }

    /// POST /auth/login. Unknown email, wrong password and throttled account give one error after the
    /// same work: one read, one argon2id verification, one conditional write.
    pub async fn login(
        &self,
        ctx: &RequestContext,
        email: &str,
        password: &str,
        device_id: Option<&str>,
    ) -> Result<TokenResponse, AuthError> {
        let email = normalize_email(email).map_err(|_| AuthError::InvalidCredentials)?;
        let fingerprint_hash = fingerprint(device_id).map_err(|_| AuthError::InvalidCredentials)?;
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(AuthError::InvalidCredentials);
        }
        let user = self.store.get_user(&email).await?;
        let now = self.clock.now_ms();
        let Some(user) = user else {
            self.hasher.verify_dummy(password);
            // Applies nothing (no such user) but costs the same round trip as a real failure.
            self.store.record_failed_login(&email, 0, 1, 0).await?;
            audit::emit(
                ctx,
                AuditEvent::LoginFailed,
                Subject {
                    email: Some(&email),
                    ..Default::default()
                },
            );
            return Err(AuthError::InvalidCredentials);
        };
        let verification = self.hasher.verify(password, &user.password_hash);
        let subject = Subject {
            email: Some(&email),
            user_id: Some(&user.user_id),
            ..Default::default()
        };
        if now < user.locked_until_ms {
            // Refused whatever the password; the window is not extended, so a stranger cannot
            // stretch it by hammering, and the write has the shape of any other failure.
            self.store
                .record_failed_login(
                    &email,
                    user.failed_logins,
                    user.failed_logins,
                    user.locked_until_ms,
                )
                .await?;
            audit::emit(ctx, AuditEvent::LoginThrottled, subject);
            return Err(AuthError::InvalidCredentials);
        }
        let Verification::Match { needs_rehash } = verification else {
            audit::emit(ctx, AuditEvent::LoginFailed, subject);
            self.record_failure(&email, user.clone()).await?;
            return Err(AuthError::InvalidCredentials);
        };
        let user_id = uuid::Uuid::try_parse(&user.user_id)
            .map_err(|_| AuthError::Internal("stored user id is not a UUID".into()))?;
        let token = RefreshToken::new_family(
            &email,
            user_id.into_bytes(),
            now,
            self.config.refresh_family_ttl_secs,
        )?;
        let success = LoginSuccess {
            reset_failures: user.failed_logins > 0 || user.locked_until_ms > 0,
            new_password_hash: if needs_rehash {
                Some(self.hasher.hash(password)?)
            } else {
                None
            },
        };
        let response = self.token_response(&token, &user.user_id, now).await?;
        self.store
            .complete_login(&success, &token.record(fingerprint_hash))
            .await?;
        audit::emit(
            ctx,
            AuditEvent::LoginSucceeded,
            Subject {
                family_id: Some(&token.family_id_hex()),
                ..subject
            },
        );
        Ok(response)
    }

    /// Counts a failed password check, opening the throttle window once the free attempts are used.
    async fn record_failure(&self, email: &str, mut user: User) -> Result<(), AuthError> {
        // Optimistic concurrency: on a lost race re-read and count again, a few times at most.
        for _ in 0..3 {
            let failed = user.failed_logins.saturating_add(1);
            let delay = self.config.throttle.delay_ms(failed);
            let locked_until = if delay > 0 {
                self.clock.now_ms() + delay
            } else {
                0
            };
            if self
                .store
                .record_failed_login(email, user.failed_logins, failed, locked_until)
                .await?
            {
                return Ok(());
            }
            match self.store.get_user(email).await? {
                Some(fresh) => user = fresh,
                None => return Ok(()),
            }
        }
        tracing::warn!(target: "keygate::audit", "failed-login counter kept changing underneath; one failure not counted");
        Ok(())
    }

    /// POST /auth/refresh: one atomic rotation in the store.
    pub async fn refresh(
        &self,
        ctx: &RequestContext,
        refresh_token: &str,
        device_id: Option<&str>,
    ) -> Result<TokenResponse, AuthError> {
        let presented = RefreshToken::parse(refresh_token)?;
        let fingerprint_hash = fingerprint(device_id)?;
        let now = self.clock.now_ms();
        if presented.family_expires_at_s.saturating_mul(1000) <= now {
            return Err(AuthError::InvalidRefreshToken);
        }
        // Keys first: if signing is impossible, fail before consuming the presented token.
        let keys = self.keys.key_set().await?;
        let next = presented.child(now)?;
        let rotation = Rotation {
            email: presented.email.clone(),
            family_id: presented.family_id_hex(),
            token_id: presented.token_id_hex(),
            presented_hash: presented.hash(),
            presented_issued_at_ms: presented.issued_at_ms,
            fingerprint_hash: fingerprint_hash.clone(),
            now_ms: now,
            next: next.record(fingerprint_hash),
        };
        let user_id = presented.user_id_string();
        let family_id = rotation.family_id.clone();
        let subject = Subject {
            email: Some(&presented.email),
            user_id: Some(&user_id),
            family_id: Some(&family_id),
        };
        match self.store.rotate_refresh_token(&rotation).await? {
            RotateOutcome::Rotated => {
                let access =
                    tokens::issue(&keys, &self.config, &user_id, presented.auth_time_s, now)?;
                audit::emit(ctx, AuditEvent::RefreshRotated, subject);
                Ok(TokenResponse {
                    access_token: access.token,
                    token_type: "Bearer",
                    expires_in: access.expires_in,
                    refresh_token: next.encode(),
                })
            }
            RotateOutcome::AlreadyUsed(used) => {
                let grace_ms = self.config.refresh_reuse_grace_secs as i64 * 1000;
                let within_grace = used.used_at_ms.is_some_and(|at| now - at <= grace_ms);
                let child_is_live = match (&used.replaced_by, within_grace) {
                    (Some(child_id), true) => self
                        .store
                        .get_refresh_token(&presented.email, &family_id, child_id, now)
                        .await?
                        .is_some_and(|child| child.used_at_ms.is_none()),
                    _ => false,
                };
                if child_is_live {
                    audit::emit(ctx, AuditEvent::RefreshRaceRefused, subject);
                } else {
                    self.store
                        .revoke_family(&presented.email, &family_id)
                        .await?;
                    audit::emit(ctx, AuditEvent::RefreshReuseDetected, subject);
                }
                Err(AuthError::InvalidRefreshToken)
            }
            RotateOutcome::FingerprintMismatch => {
                self.store
                    .revoke_family(&presented.email, &family_id)
                    .await?;
                audit::emit(ctx, AuditEvent::RefreshDeviceMismatch, subject);
                Err(AuthError::InvalidRefreshToken)
            }
            RotateOutcome::Revoked => {
                audit::emit(ctx, AuditEvent::RefreshRevoked, subject);
                Err(AuthError::InvalidRefreshToken)
            }
            RotateOutcome::NotFound => Err(AuthError::InvalidRefreshToken),
        }
    }

    /// POST /auth/logout: revokes the presented token's family. Answers the same whether or not the
    /// token was live (RFC 7009's rule), so it reveals nothing.
    pub async fn logout(&self, ctx: &RequestContext, refresh_token: &str) -> Result<(), AuthError> {
        let Ok(presented) = RefreshToken::parse(refresh_token) else {
            return Ok(());
        };
        let now = self.clock.now_ms();
        let (family_id, token_id) = (presented.family_id_hex(), presented.token_id_hex());
        let record = self
            .store
            .get_refresh_token(&presented.email, &family_id, &token_id, now)
            .await?;
        if record.is_some_and(|r| hashes_match(&r.token_hash, &presented.hash())) {
            self.store
                .revoke_family(&presented.email, &family_id)
                .await?;
            let user_id = presented.user_id_string();
            audit::emit(
                ctx,
                AuditEvent::Logout,
                Subject {
                    email: Some(&presented.email),
                    user_id: Some(&user_id),
                    family_id: Some(&family_id),
                },
            );
        }
        Ok(())
    }

    /// Verifies a bearer access token and loads its user, applying the revocation watermark.
    pub async fn authenticate(&self, bearer: &str) -> Result<Principal, AuthError> {
        let keys = self.keys.key_set().await?;
        let claims = tokens::verify(&keys, &self.config, bearer, self.clock.now_ms())?;
        let user = self
            .store
            .get_user_by_id(&claims.sub)
            .await?
            .ok_or(AuthError::InvalidAccessToken)?;
        let issued_ms = claims.issued_at_ms().ok_or(AuthError::InvalidAccessToken)?;
        if issued_ms < user.revoked_before_ms {
            return Err(AuthError::InvalidAccessToken);
        }
        Ok(Principal { user, claims })
    }

    /// GET /auth/me.
    pub async fn me(&self, bearer: &str) -> Result<Profile, AuthError> {
        let Principal { user, claims } = self.authenticate(bearer).await?;
        Ok(Profile {
            user_id: user.user_id,
            email: user.email,
            created_at: user.created_at_ms.div_euclid(1000),
            roles: user.roles,
            auth_time: claims.auth_time,
        })
    }

    /// POST /auth/logout-all: every token issued until now is revoked.
    pub async fn logout_all(&self, ctx: &RequestContext, bearer: &str) -> Result<(), AuthError> {
        let Principal { user, .. } = self.authenticate(bearer).await?;
        let now = self.clock.now_ms();
        self.store.set_revoked_before(&user.email, now).await?;
        self.store.revoke_all_families(&user.email).await?;
        audit::emit(
            ctx,
            AuditEvent::LogoutAll,
            Subject {
                email: Some(&user.email),
                user_id: Some(&user.user_id),
                ..Default::default()
            },
        );
        Ok(())
    }

    /// POST /auth/password: checks the current password (throttled like a login), revokes every
    /// session and returns fresh tokens.
    pub async fn change_password(
        &self,
        ctx: &RequestContext,
        bearer: &str,
        current: &str,
        new: &str,
    ) -> Result<TokenResponse, AuthError> {
        let Principal { user, .. } = self.authenticate(bearer).await?;
        let subject = Subject {
            email: Some(&user.email),
            user_id: Some(&user.user_id),
            ..Default::default()
        };
        if current.len() > MAX_PASSWORD_BYTES {
            return Err(AuthError::InvalidCredentials);
        }
        self.config.password_policy.check(new)?;
        let now = self.clock.now_ms();
        let verification = self.hasher.verify(current, &user.password_hash);
        if now < user.locked_until_ms {
            audit::emit(ctx, AuditEvent::LoginThrottled, subject);
            return Err(AuthError::InvalidCredentials);
        }
        if verification == Verification::Mismatch {
            self.record_failure(&user.email, user.clone()).await?;
            audit::emit(ctx, AuditEvent::PasswordChangeFailed, subject);
            return Err(AuthError::InvalidCredentials);
        }
        let new_hash = self.hasher.hash(new)?;
        if !self
            .store
            .change_password(&user.email, &user.password_hash, &new_hash, now)
            .await?
        {
            // Someone changed it concurrently: the credentials just checked are stale.
            return Err(AuthError::InvalidCredentials);
        }
        self.store.revoke_all_families(&user.email).await?;
        let user_id = uuid::Uuid::try_parse(&user.user_id)
            .map_err(|_| AuthError::Internal("stored user id is not a UUID".into()))?;
        let token = RefreshToken::new_family(
            &user.email,
            user_id.into_bytes(),
            now,
            self.config.refresh_family_ttl_secs,
        )?;
        let response = self.token_response(&token, &user.user_id, now).await?;
        self.store.put_refresh_token(&token.record(None)).await?;
        audit::emit(ctx, AuditEvent::PasswordChanged, subject);
        Ok(response)
    }

    async fn token_response(
        &self,
        token: &RefreshToken,
        user_id: &str,
        now: i64,
    ) -> Result<TokenResponse, AuthError> {
        let keys = self.keys.key_set().await?;
        let access = tokens::issue(&keys, &self.config, user_id, token.auth_time_s, now)?;
        Ok(TokenResponse {
            access_token: access.token,
            token_type: "Bearer",
            expires_in: access.expires_in,
            refresh_token: token.encode(),
        })
    }

    /// GET /.well-known/jwks.json.
    pub async fn jwks(&self) -> Result<Value, AuthError> {
        Ok(self.keys.key_set().await?.jwks())
    }

    /// GET /.well-known/openid-configuration: where the keys are and which algorithms sign.
    pub fn discovery(&self) -> Value {
        let issuer = &self.config.issuer;
        let alg = self.config.signing_alg.name();
        json!({
            "issuer": issuer,
            "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [alg],
            "access_token_signing_alg_values_supported": [alg],
            "token_endpoint_auth_methods_supported": ["none"],
            "grant_types_supported": ["password", "refresh_token"],
            "response_types_supported": ["token"],
            "registration_endpoint": format!("{issuer}/auth/register"),
            "token_endpoint": format!("{issuer}/auth/login"),
            "userinfo_endpoint": format!("{issuer}/auth/me"),
            "revocation_endpoint": format!("{issuer}/auth/logout"),
            "keygate_endpoints": {
                "register": format!("{issuer}/auth/register"),
                "login": format!("{issuer}/auth/login"),
                "refresh": format!("{issuer}/auth/refresh"),
                "logout": format!("{issuer}/auth/logout"),
                "logout_all": format!("{issuer}/auth/logout-all"),
                "password": format!("{issuer}/auth/password"),
                "me": format!("{issuer}/auth/me"),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            normalize_email("  Ada@Example.COM ").unwrap(),
            "ada@example.com"
        );
        for bad in [
            "",
            "ada",
            "@example.com",
            "ada@",
            "a@b@c",
            "ada @example.com",
            "ada@.com",
            "ada@com.",
            "ada@ex..com",
            "<a>@b.c",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad}");
        }
        assert!(normalize_email(&format!("{}@example.com", "a".repeat(65))).is_err());
    }
}
