//! A store kept alive together with what it needs beside it.

use std::future::Future;

use keygate_core::store::{
    AccessTokenDenyList, AttemptCounter, AttemptScope, CodeConsumption, CodePurpose, EmailCode,
    EmailCodeStore, LoginCompletion, MailOutcome, MailRequest, MfaChallenge, MfaStore, MfaSwap,
    OutboxMail, OutboxStore, PasswordChange, PasswordReset, RefreshRecord, RefreshTokenStore,
    Reservation, RotateOutcome, Rotation, StoreResult, User, UserStore,
};
use keygate_core::throttle::LoginThrottle;

/// A store kept together with something that must live as long as it (a temporary directory, a
/// test server); delegates every port method to the store.
pub struct Guarded<S> {
    pub store: S,
    _guard: Box<dyn std::any::Any + Send + Sync>,
}

impl<S> Guarded<S> {
    pub fn new(store: S, guard: impl std::any::Any + Send + Sync) -> Self {
        Self {
            store,
            _guard: Box::new(guard),
        }
    }
}

impl<S: UserStore> UserStore for Guarded<S> {
    fn create_user(&self, user: &User) -> impl Future<Output = StoreResult<bool>> + Send {
        self.store.create_user(user)
    }
    fn get_user(&self, email: &str) -> impl Future<Output = StoreResult<Option<User>>> + Send {
        self.store.get_user(email)
    }
    fn get_user_by_id(
        &self,
        user_id: &str,
    ) -> impl Future<Output = StoreResult<Option<User>>> + Send {
        self.store.get_user_by_id(user_id)
    }
    fn reserve_login_attempt(
        &self,
        email: &str,
        device_token_hash: Option<&str>,
        throttle: &LoginThrottle,
        now_ms: i64,
    ) -> impl Future<Output = StoreResult<Reservation>> + Send {
        self.store
            .reserve_login_attempt(email, device_token_hash, throttle, now_ms)
    }
    fn settle_attempt(
        &self,
        email: &str,
        scope: &AttemptScope,
        reserved: &AttemptCounter,
        locked_until_ms: i64,
    ) -> impl Future<Output = StoreResult<bool>> + Send {
        self.store
            .settle_attempt(email, scope, reserved, locked_until_ms)
    }
    fn complete_login(
        &self,
        completion: &LoginCompletion,
    ) -> impl Future<Output = StoreResult<bool>> + Send {
        self.store.complete_login(completion)
    }
    fn change_password(
        &self,
        change: &PasswordChange,
    ) -> impl Future<Output = StoreResult<bool>> + Send {
        self.store.change_password(change)
    }
    fn set_revoked_before(
        &self,
        email: &str,
        revoked_before_ms: i64,
    ) -> impl Future<Output = StoreResult<()>> + Send {
        self.store.set_revoked_before(email, revoked_before_ms)
    }
}

impl<S: RefreshTokenStore> RefreshTokenStore for Guarded<S> {
    fn put_refresh_token(
        &self,
        record: &RefreshRecord,
    ) -> impl Future<Output = StoreResult<()>> + Send {
        self.store.put_refresh_token(record)
    }
    fn rotate_refresh_token(
        &self,
        rotation: &Rotation,
    ) -> impl Future<Output = StoreResult<RotateOutcome>> + Send {
        self.store.rotate_refresh_token(rotation)
    }
    fn get_refresh_token(
        &self,
        email: &str,
        family_id: &str,
        token_id: &str,
        now_ms: i64,
    ) -> impl Future<Output = StoreResult<Option<RefreshRecord>>> + Send {
        self.store
            .get_refresh_token(email, family_id, token_id, now_ms)
    }
    fn revoke_family(
        &self,
        email: &str,
        family_id: &str,
    ) -> impl Future<Output = StoreResult<usize>> + Send {
        self.store.revoke_family(email, family_id)
    }
}

impl<S: AccessTokenDenyList> AccessTokenDenyList for Guarded<S> {
    fn deny_access_token(
        &self,
        jti: &str,
        expires_at_s: i64,
    ) -> impl Future<Output = StoreResult<()>> + Send {
        self.store.deny_access_token(jti, expires_at_s)
    }
    fn is_access_token_denied(
        &self,
        jti: &str,
        now_ms: i64,
    ) -> impl Future<Output = StoreResult<bool>> + Send {
        self.store.is_access_token_denied(jti, now_ms)
    }
}

impl<S: EmailCodeStore> EmailCodeStore for Guarded<S> {
    fn request_mail(
        &self,
        request: &MailRequest,
    ) -> impl Future<Output = StoreResult<MailOutcome>> + Send {
        self.store.request_mail(request)
    }
    fn get_email_code(
        &self,
        email: &str,
        purpose: CodePurpose,
        now_ms: i64,
    ) -> impl Future<Output = StoreResult<Option<EmailCode>>> + Send {
        self.store.get_email_code(email, purpose, now_ms)
    }
    fn reserve_code_attempt(
        &self,
        email: &str,
        purpose: CodePurpose,
        now_ms: i64,
    ) -> impl Future<Output = StoreResult<Option<EmailCode>>> + Send {
        self.store.reserve_code_attempt(email, purpose, now_ms)
    }
    fn verify_email(
        &self,
        consumption: &CodeConsumption,
    ) -> impl Future<Output = StoreResult<bool>> + Send {
        self.store.verify_email(consumption)
    }
    fn reset_password(
        &self,
        reset: &PasswordReset,
    ) -> impl Future<Output = StoreResult<bool>> + Send {
        self.store.reset_password(reset)
    }
}

impl<S: OutboxStore> OutboxStore for Guarded<S> {
    fn pending_mail(
        &self,
        limit: usize,
        now_ms: i64,
    ) -> impl Future<Output = StoreResult<Vec<OutboxMail>>> + Send {
        self.store.pending_mail(limit, now_ms)
    }
    fn delete_mail(&self, id: &str) -> impl Future<Output = StoreResult<()>> + Send {
        self.store.delete_mail(id)
    }
}

impl<S: MfaStore> MfaStore for Guarded<S> {
    fn swap_mfa(
        &self,
        email: &str,
        swap: &MfaSwap,
    ) -> impl Future<Output = StoreResult<bool>> + Send {
        self.store.swap_mfa(email, swap)
    }
    fn put_mfa_challenge(
        &self,
        challenge: &MfaChallenge,
    ) -> impl Future<Output = StoreResult<()>> + Send {
        self.store.put_mfa_challenge(challenge)
    }
    fn reserve_challenge_attempt(
        &self,
        email: &str,
        token_hash: &str,
        now_ms: i64,
    ) -> impl Future<Output = StoreResult<Option<MfaChallenge>>> + Send {
        self.store
            .reserve_challenge_attempt(email, token_hash, now_ms)
    }
}
