//! The storage port in memory.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use keygate_core::store::{
    AccessTokenDenyList, AttemptCounter, AttemptScope, CodeConsumption, CodePurpose, DeviceGrant,
    DeviceRecord, EmailCode, EmailCodeStore, LoginCompletion, MailOutcome, MailRequest,
    MfaChallenge, MfaStore, MfaSwap, OutboxMail, OutboxStore, PasswordChange, PasswordReset,
    RefreshRecord, RefreshTokenStore, Reservation, RotateOutcome, Rotation, StoreResult, User,
    UserStore, expired,
};
use keygate_core::throttle::LoginThrottle;

/// The port's contract in a few lines over two maps behind one mutex: the model the suite is
/// checked against in this crate, and an in-process store for tests of other layers.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    state: Arc<Mutex<MemoryState>>,
}

#[derive(Debug, Default)]
struct MemoryState {
    users: BTreeMap<String, User>,
    /// Keyed by (email, family_id, token_id), like the table's pk/sk.
    tokens: BTreeMap<(String, String, String), RefreshRecord>,
    /// Keyed by (email, token_hash).
    devices: BTreeMap<(String, String), DeviceRecord>,
    /// Denied access tokens: jti -> until (seconds).
    denied: BTreeMap<String, i64>,
    /// Keyed by (email, purpose).
    codes: BTreeMap<(String, CodePurpose), EmailCode>,
    /// Keyed by id.
    outbox: BTreeMap<String, OutboxMail>,
    /// Keyed by (email, token_hash).
    challenges: BTreeMap<(String, String), MfaChallenge>,
}

type TokenKey = (String, String, String);

fn token_key(email: &str, family_id: &str, token_id: &str) -> TokenKey {
    (email.to_owned(), family_id.to_owned(), token_id.to_owned())
}

impl MemoryStore {
    fn with<T>(&self, f: impl FnOnce(&mut MemoryState) -> T) -> T {
        f(&mut self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()))
    }
}

impl UserStore for MemoryStore {
    async fn create_user(&self, user: &User) -> StoreResult<bool> {
        Ok(self.with(|s| {
            if s.users.contains_key(&user.email) {
                return false;
            }
            s.users.insert(user.email.clone(), user.clone());
            true
        }))
    }

    async fn get_user(&self, email: &str) -> StoreResult<Option<User>> {
        Ok(self.with(|s| s.users.get(email).cloned()))
    }

    async fn get_user_by_id(&self, user_id: &str) -> StoreResult<Option<User>> {
        Ok(self.with(|s| s.users.values().find(|u| u.user_id == user_id).cloned()))
    }

    async fn reserve_login_attempt(
        &self,
        email: &str,
        device_token_hash: Option<&str>,
        throttle: &LoginThrottle,
        now_ms: i64,
    ) -> StoreResult<Reservation> {
        Ok(self.with(|s| {
            let device = device_token_hash
                .and_then(|hash| s.devices.get_mut(&(email.to_owned(), hash.to_owned())));
            match s.users.get_mut(email) {
                Some(user) => user.reserve_attempt(device, throttle, now_ms),
                None => Reservation::NoUser,
            }
        }))
    }

    async fn settle_attempt(
        &self,
        email: &str,
        scope: &AttemptScope,
        reserved: &AttemptCounter,
        locked_until_ms: i64,
    ) -> StoreResult<bool> {
        Ok(self.with(|s| {
            let counter = match scope {
                AttemptScope::Untrusted => s.users.get_mut(email).map(|u| &mut u.attempts),
                AttemptScope::Device(hash) => s
                    .devices
                    .get_mut(&(email.to_owned(), hash.clone()))
                    .map(|d| &mut d.attempts),
            };
            let Some(counter) = counter else {
                return false;
            };
            match keygate_core::throttle::settle(counter, reserved, locked_until_ms) {
                Some(next) => {
                    *counter = next;
                    true
                }
                None => false,
            }
        }))
    }

    async fn complete_login(&self, completion: &LoginCompletion) -> StoreResult<bool> {
        Ok(self.with(|s| {
            let r = &completion.first_token;
            if let DeviceGrant::Reset(hash) = &completion.device
                && !s.devices.contains_key(&(r.email.clone(), hash.clone()))
            {
                return false;
            }
            let challenge = completion
                .challenge_hash
                .as_ref()
                .map(|hash| (r.email.clone(), hash.clone()));
            if challenge
                .as_ref()
                .is_some_and(|key| !s.challenges.contains_key(key))
            {
                return false;
            }
            let Some(user) = s.users.get_mut(&r.email) else {
                return false;
            };
            if !user.complete_login(completion) {
                return false;
            }
            if let Some(key) = challenge {
                s.challenges.remove(&key);
            }
            match &completion.device {
                DeviceGrant::Reset(hash) => {
                    let device = s.devices.get_mut(&(r.email.clone(), hash.clone()));
                    device.expect("checked above").attempts = AttemptCounter::default();
                }
                DeviceGrant::Issue(device) => {
                    s.devices.insert(
                        (device.email.clone(), device.token_hash.clone()),
                        device.clone(),
                    );
                }
            }
            s.tokens
                .insert(token_key(&r.email, &r.family_id, &r.token_id), r.clone());
            true
        }))
    }

    async fn change_password(&self, change: &PasswordChange) -> StoreResult<bool> {
        Ok(self.with(|s| {
            let r = &change.first_token;
            let applied = s
                .users
                .get_mut(&r.email)
                .is_some_and(|user| user.change_password(change));
            if applied {
                s.tokens
                    .insert(token_key(&r.email, &r.family_id, &r.token_id), r.clone());
                let d = &change.new_device;
                s.devices
                    .insert((d.email.clone(), d.token_hash.clone()), d.clone());
            }
            applied
        }))
    }

    async fn set_revoked_before(&self, email: &str, revoked_before_ms: i64) -> StoreResult<()> {
        self.with(|s| {
            if let Some(user) = s.users.get_mut(email) {
                user.revoked_before_ms = user.revoked_before_ms.max(revoked_before_ms);
            }
        });
        Ok(())
    }
}

impl RefreshTokenStore for MemoryStore {
    async fn put_refresh_token(&self, r: &RefreshRecord) -> StoreResult<()> {
        self.with(|s| {
            s.tokens
                .insert(token_key(&r.email, &r.family_id, &r.token_id), r.clone())
        });
        Ok(())
    }

    async fn rotate_refresh_token(&self, rotation: &Rotation) -> StoreResult<RotateOutcome> {
        Ok(self.with(|s| {
            let key = token_key(&rotation.email, &rotation.family_id, &rotation.token_id);
            let Ok(refusal) = rotation.refusal(s.tokens.get(&key).cloned(), || {
                Ok::<_, Infallible>(s.users.get(&rotation.email).cloned())
            });
            if let Some(refused) = refusal {
                return refused;
            }
            let record = s.tokens.get_mut(&key).expect("checked above");
            record.used_at_ms = Some(rotation.now_ms);
            record.replaced_by = Some(rotation.next.token_id.clone());
            let n = &rotation.next;
            s.tokens
                .insert(token_key(&n.email, &n.family_id, &n.token_id), n.clone());
            RotateOutcome::Rotated
        }))
    }

    async fn get_refresh_token(
        &self,
        email: &str,
        family_id: &str,
        token_id: &str,
        now_ms: i64,
    ) -> StoreResult<Option<RefreshRecord>> {
        Ok(self.with(|s| {
            s.tokens
                .get(&token_key(email, family_id, token_id))
                .filter(|r| !r.is_expired(now_ms))
                .cloned()
        }))
    }

    async fn revoke_family(&self, email: &str, family_id: &str) -> StoreResult<usize> {
        Ok(self.with(|s| {
            let before = s.tokens.len();
            s.tokens
                .retain(|(e, f, _), _| !(e == email && f == family_id));
            before - s.tokens.len()
        }))
    }
}

impl AccessTokenDenyList for MemoryStore {
    async fn deny_access_token(&self, jti: &str, expires_at_s: i64) -> StoreResult<()> {
        self.with(|s| {
            let until = s.denied.entry(jti.to_owned()).or_insert(expires_at_s);
            *until = (*until).max(expires_at_s);
        });
        Ok(())
    }

    async fn is_access_token_denied(&self, jti: &str, now_ms: i64) -> StoreResult<bool> {
        Ok(self.with(|s| {
            s.denied
                .get(jti)
                .is_some_and(|&until| !expired(until, now_ms))
        }))
    }
}

impl EmailCodeStore for MemoryStore {
    async fn request_mail(&self, request: &MailRequest) -> StoreResult<MailOutcome> {
        Ok(self.with(|s| {
            let key = (request.email.clone(), request.purpose);
            match request.decide(s.users.get(&request.email), s.codes.get(&key)) {
                Ok(record) => {
                    s.codes.insert(key, record);
                    s.outbox
                        .insert(request.mail.id.clone(), request.mail.clone());
                    MailOutcome::Queued
                }
                Err(outcome) => outcome,
            }
        }))
    }

    async fn get_email_code(
        &self,
        email: &str,
        purpose: CodePurpose,
        now_ms: i64,
    ) -> StoreResult<Option<EmailCode>> {
        Ok(self.with(|s| {
            s.codes
                .get(&(email.to_owned(), purpose))
                .filter(|r| !expired(r.expires_at_s, now_ms))
                .cloned()
        }))
    }

    async fn reserve_code_attempt(
        &self,
        email: &str,
        purpose: CodePurpose,
        now_ms: i64,
    ) -> StoreResult<Option<EmailCode>> {
        Ok(self.with(|s| {
            let record = s.codes.get_mut(&(email.to_owned(), purpose))?;
            let next = record.reserve_attempt(now_ms)?;
            *record = next.clone();
            Some(next)
        }))
    }

    async fn verify_email(&self, consumption: &CodeConsumption) -> StoreResult<bool> {
        Ok(self.with(|s| {
            let key = (consumption.email.clone(), consumption.purpose);
            if !consumption.allowed_by(s.codes.get(&key)) {
                return false;
            }
            let Some(user) = s.users.get_mut(&consumption.email) else {
                return false;
            };
            user.email_verified = true;
            s.codes.get_mut(&key).expect("checked above").consumed = true;
            true
        }))
    }

    async fn reset_password(&self, reset: &PasswordReset) -> StoreResult<bool> {
        Ok(self.with(|s| {
            let c = &reset.consumption;
            let key = (c.email.clone(), c.purpose);
            if !c.allowed_by(s.codes.get(&key)) {
                return false;
            }
            let Some(user) = s.users.get_mut(&c.email) else {
                return false;
            };
            user.reset_password(reset);
            s.codes.get_mut(&key).expect("checked above").consumed = true;
            s.outbox
                .insert(reset.notice.id.clone(), reset.notice.clone());
            true
        }))
    }
}

impl OutboxStore for MemoryStore {
    async fn pending_mail(&self, limit: usize, now_ms: i64) -> StoreResult<Vec<OutboxMail>> {
        Ok(self.with(|s| {
            let mut mails: Vec<OutboxMail> = s
                .outbox
                .values()
                .filter(|m| !expired(m.expires_at_s, now_ms))
                .cloned()
                .collect();
            mails.sort_by(|a, b| (a.created_at_ms, &a.id).cmp(&(b.created_at_ms, &b.id)));
            mails.truncate(limit);
            mails
        }))
    }

    async fn delete_mail(&self, id: &str) -> StoreResult<()> {
        self.with(|s| s.outbox.remove(id));
        Ok(())
    }
}

impl MfaStore for MemoryStore {
    async fn swap_mfa(&self, email: &str, swap: &MfaSwap) -> StoreResult<bool> {
        Ok(self.with(|s| match s.users.get_mut(email) {
            Some(user) if user.mfa == swap.expected => {
                user.mfa = swap.new.clone();
                true
            }
            _ => false,
        }))
    }

    async fn put_mfa_challenge(&self, challenge: &MfaChallenge) -> StoreResult<()> {
        self.with(|s| {
            s.challenges.insert(
                (challenge.email.clone(), challenge.token_hash.clone()),
                challenge.clone(),
            )
        });
        Ok(())
    }

    async fn reserve_challenge_attempt(
        &self,
        email: &str,
        token_hash: &str,
        now_ms: i64,
    ) -> StoreResult<Option<MfaChallenge>> {
        Ok(self.with(|s| {
            let challenge = s
                .challenges
                .get_mut(&(email.to_owned(), token_hash.to_owned()))?;
            let next = challenge.reserve_attempt(now_ms)?;
            *challenge = next.clone();
            Some(next)
        }))
    }
}
