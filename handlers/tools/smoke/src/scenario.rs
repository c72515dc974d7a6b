//! The smoke scenario: one throwaway user walked through every endpoint, one line per step, stop at
//! the first failure.

use std::io::Write;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::client::{Http, Reply};
use crate::jwt::{self, Expected, Jwks};
use crate::mailbox::{FileOutbox, code_in, token_in};
use crate::secrets::{self, Redactor, Secret};
use crate::totp;

/// Exit codes.
pub const EXIT_OK: i32 = 0;
pub const EXIT_FAILED: i32 = 1;
pub const EXIT_USAGE: i32 = 2;

/// What to check and how.
#[derive(Debug, Clone)]
pub struct Options {
    /// Without a trailing slash; may carry a path (an API Gateway stage).
    pub base_url: String,
    pub timeout: Duration,
    pub email_domain: String,
    pub audience: String,
    pub verbose: bool,
    /// keygate-local's file outbox (`<data-dir>/outbox`): with it the throwaway user proves its email
    /// with the mailed link and the reset flow runs; without it those steps are skipped.
    pub outbox: Option<FileOutbox>,
}

/// How long a mail may take to reach the outbox (keygate-local's worker polls every 250 ms).
const MAIL_WAIT: Duration = Duration::from_secs(15);

/// Why a step failed.
#[derive(Debug)]
enum StepError {
    /// The deployment answered, but not as it must.
    Check(String),
    /// No usable answer (connection, timeout): cleanup would only wait for more of the same.
    Transport(String),
}

impl From<String> for StepError {
    fn from(reason: String) -> Self {
        StepError::Check(reason)
    }
}

impl From<&str> for StepError {
    fn from(reason: &str) -> Self {
        StepError::Check(reason.to_owned())
    }
}

type StepResult<T> = Result<T, StepError>;

/// A pending TOTP factor, as an authenticator app keeps it.
struct Enrolment {
    factor_id: String,
    secret: Vec<u8>,
}

/// A token response's parts.
struct Tokens {
    access: Secret,
    refresh: Secret,
    expires_in: u64,
}

struct Output {
    verbose: bool,
    redactor: Redactor,
}

impl Output {
    fn line(&self, text: &str) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", self.redactor.clean(text));
        let _ = out.flush();
    }

    fn note(&self, text: &str) {
        if self.verbose {
            self.line(&format!("     {text}"));
        }
    }

    fn fail(&self, text: &str) {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{}", self.redactor.clean(text));
        let _ = err.flush();
    }
}

struct Smoke {
    http: Http,
    opts: Options,
    out: Output,
    email: String,
    password: Secret,
    issuer: String,
    jwks_uri: String,
    jwks: Option<Jwks>,
    user_id: String,
    /// Every refresh token received, logged out again should the run stop early.
    refresh_tokens: Vec<Secret>,
    /// The newest access token, for a final logout-all should the run stop early.
    access_token: Option<Secret>,
    /// Whether the discovery document lists the TOTP endpoints (the mfa-* steps run only then).
    offers_mfa: bool,
    /// Verbose details gathered by the running step.
    notes: Vec<String>,
    steps_passed: usize,
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

/// Runs the whole scenario and returns the process exit code.
pub async fn run(opts: Options) -> i32 {
    let out = Output {
        verbose: opts.verbose,
        redactor: Redactor::default(),
    };
    let http = match Http::new(opts.timeout) {
        Ok(http) => http,
        Err(reason) => {
            out.fail(&format!("keygate-smoke: {reason}"));
            return EXIT_USAGE;
        }
    };
    let credentials = secrets::random_email(&opts.email_domain, now_secs() as u64)
        .and_then(|email| Ok((email, secrets::random_password()?)));
    let (email, password) = match credentials {
        Ok(pair) => pair,
        Err(reason) => {
            out.fail(&format!("keygate-smoke: {reason}"));
            return EXIT_USAGE;
        }
    };
    let mut smoke = Smoke {
        http,
        opts,
        out,
        email,
        password,
        issuer: String::new(),
        jwks_uri: String::new(),
        jwks: None,
        user_id: String::new(),
        refresh_tokens: Vec::new(),
        access_token: None,
        offers_mfa: false,
        notes: Vec::new(),
        steps_passed: 0,
    };
    smoke.out.redactor.add(smoke.password.expose());
    smoke.out.line(&format!(
        "keygate-smoke: {} (timeout {} s per call)",
        smoke.opts.base_url,
        smoke.opts.timeout.as_secs()
    ));
    smoke
        .out
        .line(&format!("     throwaway user {}", smoke.email));
    let started = Instant::now();
    match smoke.scenario().await {
        Ok(()) => {
            smoke.out.line(&format!(
                "passed: {} steps in {:.1} s; user {} remains (no delete endpoint), all its sessions are logged out",
                smoke.steps_passed,
                started.elapsed().as_secs_f64(),
                smoke.email
            ));
            EXIT_OK
        }
        Err(()) => EXIT_FAILED,
    }
}

impl Smoke {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.opts.base_url)
    }

    /// Times one step, prints its line, and on failure cleans up and prints the one-line reason.
    async fn finish<T>(
        &mut self,
        name: &str,
        started: Instant,
        result: StepResult<T>,
    ) -> Result<T, ()> {
        let elapsed = ms(started.elapsed());
        let notes = std::mem::take(&mut self.notes);
        match result {
            Ok(value) => {
                self.out.line(&format!("ok   {name} ({elapsed} ms)"));
                for note in notes {
                    self.out.note(&note);
                }
                self.steps_passed += 1;
                Ok(value)
            }
            Err(error) => {
                for note in notes {
                    self.out.note(&note);
                }
                let reason = match error {
                    StepError::Check(reason) => {
                        self.cleanup().await;
                        reason
                    }
                    StepError::Transport(reason) => reason,
                };
                self.out
                    .fail(&format!("FAIL {name} ({elapsed} ms): {reason}"));
                Err(())
            }
        }
    }

    async fn scenario(&mut self) -> Result<(), ()> {
        macro_rules! step {
            ($name:literal, $body:expr) => {{
                let started = Instant::now();
                let result = $body.await;
                self.finish($name, started, result).await?
            }};
        }
        step!("discovery", self.discovery());
        step!("jwks", self.fetch_jwks());
        step!("register", self.register());
        if self.opts.outbox.is_some() {
            step!("verify-email", self.verify_email());
        } else {
            self.out.line(
                "skip verify-email, forgot, reset, login-after-reset: no --outbox (keygate-smoke reads mail from a file outbox only)",
            );
        }
        let Some(first) = step!("login", self.first_login()) else {
            self.out.line(
                "skip every session step: the deployment requires a verified email (403 email-not-verified, as it must) and this run cannot read its mail",
            );
            return Ok(());
        };
        step!("verify-token", self.verify_access(&first.access, "login"));
        step!("me", self.me(&first.access));
        let second = step!("refresh", self.refresh(&first.refresh, &first.access));
        let third = step!(
            "refresh-again",
            self.refresh(&second.refresh, &second.access)
        );
        step!(
            "replay-ancestor",
            self.expect_refresh_refused(
                &first.refresh,
                "a replayed ancestor refresh token must be refused"
            )
        );
        step!(
            "family-revoked",
            self.expect_refresh_refused(
                &third.refresh,
                "after an ancestor's replay the family's live refresh token must be revoked too"
            )
        );
        let session = step!("login-again", self.login());
        step!("logout", self.logout(&session.refresh));
        step!(
            "refresh-after-logout",
            self.expect_refresh_refused(
                &session.refresh,
                "a logged-out refresh token must be refused"
            )
        );
        step!("logout-all", self.logout_all(&session.access));
        step!(
            "me-after-logout-all",
            self.expect_me_refused(&session.access)
        );
        let fresh = if self.opts.outbox.is_some() {
            step!("forgot", self.forgot());
            step!("reset", self.reset());
            Some(step!("login-after-reset", self.login()))
        } else {
            None
        };
        if !self.offers_mfa {
            self.out.line(
                "skip mfa-*: the discovery document's keygate_endpoints list no mfa_totp (a deployment without second factors)",
            );
            if let Some(fresh) = fresh {
                let _ = self.post_empty("/auth/logout-all", &fresh.access).await;
            }
            return Ok(());
        }
        let fresh = match fresh {
            Some(fresh) => fresh,
            None => step!("login-for-mfa", self.login()),
        };
        let enrolment = step!("mfa-enrol", self.mfa_enrol(&fresh.access));
        let recovery = step!("mfa-activate", self.mfa_activate(&fresh.access, &enrolment));
        let mfa_token = step!("mfa-required", self.mfa_required());
        let second = step!("mfa-verify", self.mfa_verify(&mfa_token, &enrolment));
        step!("mfa-disable", self.mfa_disable(&second.access, &recovery));
        // The one session this run has left.
        let _ = self.post_empty("/auth/logout-all", &second.access).await;
        Ok(())
    }

    // ---- steps ----

    async fn discovery(&mut self) -> StepResult<()> {
        let reply = self.get("/.well-known/openid-configuration", None).await?;
        expect_status(&reply, 200, "200 with the discovery document")?;
        let doc = reply.json()?;
        let issuer = doc
            .get("issuer")
            .and_then(Value::as_str)
            .filter(|s| is_http_url(s));
        let Some(issuer) = issuer else {
            return Err(format!(
                "expected an http(s) `issuer` in the discovery document, got {}",
                shape(doc.get("issuer"))
            )
            .into());
        };
        let Some(jwks_uri) = doc
            .get("jwks_uri")
            .and_then(Value::as_str)
            .filter(|s| is_http_url(s))
        else {
            return Err(format!(
                "expected an http(s) `jwks_uri` in the discovery document, got {}",
                shape(doc.get("jwks_uri"))
            )
            .into());
        };
        self.issuer = issuer.to_owned();
        self.jwks_uri = jwks_uri.to_owned();
        self.offers_mfa = doc
            .pointer("/keygate_endpoints/mfa_totp")
            .and_then(Value::as_str)
            .is_some();
        self.notes.push(format!("issuer {issuer}"));
        self.notes.push(format!("jwks_uri {jwks_uri}"));
        if issuer.trim_end_matches('/') != self.opts.base_url {
            self.notes
                .push("(the issuer differs from --base-url: fine behind a custom domain)".into());
        }
        if let Some(algs) = doc.get("access_token_signing_alg_values_supported") {
            self.notes.push(format!("signing algorithms {algs}"));
        }
        Ok(())
    }

    async fn fetch_jwks(&mut self) -> StepResult<()> {
        let uri = self.jwks_uri.clone();
        let reply = self.http.get(&uri, None).await.map_err(|e| {
            StepError::Transport(format!("GET {uri} (the discovery jwks_uri): {e}"))
        })?;
        expect_status(&reply, 200, &format!("200 with the JWKS from {uri}"))?;
        let jwks = Jwks::parse(&reply.json()?)?;
        let listed: Vec<String> = jwks
            .keys
            .iter()
            .map(|k| {
                format!(
                    "{} ({})",
                    k.common.key_id.as_deref().unwrap_or("?"),
                    k.common
                        .key_algorithm
                        .map_or("no alg".into(), |a| a.to_string())
                )
            })
            .collect();
        self.notes
            .push(format!("{} key(s): {}", jwks.keys.len(), listed.join(", ")));
        self.jwks = Some(jwks);
        Ok(())
    }

    async fn register(&mut self) -> StepResult<()> {
        let body = json!({"email": self.email, "password": self.password.expose()});
        let reply = self.post("/auth/register", &body, None).await?;
        expect_status(&reply, 201, "201 with {user_id}")?;
        let doc = reply.json()?;
        let Some(user_id) = doc
            .get("user_id")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        else {
            return Err(format!(
                "expected a string `user_id` in the 201 answer, got {}",
                shape(doc.get("user_id"))
            )
            .into());
        };
        self.user_id = user_id.to_owned();
        self.notes.push(format!("user_id {user_id}"));
        Ok(())
    }

    /// The first login: a 403 `email-not-verified` problem is the deployment's rule when its mail
    /// cannot be read here (no `--outbox`), and ends the run's session steps (`None`).
    async fn first_login(&mut self) -> StepResult<Option<Tokens>> {
        if self.opts.outbox.is_none() {
            let body = json!({"email": self.email, "password": self.password.expose()});
            let reply = self.post("/auth/login", &body, None).await?;
            let unverified = reply.status == 403
                && reply.json().ok().and_then(|d| {
                    d.get("type")
                        .and_then(Value::as_str)
                        .map(|t| t == "urn:keygate:problem:email-not-verified")
                }) == Some(true);
            if unverified {
                self.notes.push(format!("refused: {}", reply.describe()));
                return Ok(None);
            }
            return self.token_response(&reply).map(Some);
        }
        self.login().await.map(Some)
    }

    /// The registration's mail, from the outbox: its link's token verifies the email (204).
    async fn verify_email(&mut self) -> StepResult<()> {
        let text = self.mail("#token=kgev_").await?;
        let token =
            token_in(&text).ok_or("expected a link with a token in the verification mail")?;
        self.out.redactor.add(&token);
        if let Some(code) = code_in(&text) {
            self.out.redactor.add(&code);
        }
        let reply = self
            .post("/auth/email/verify", &json!({ "token": token }), None)
            .await?;
        Ok(expect_status(&reply, 204, "204 from /auth/email/verify")?)
    }

    /// POST /auth/password/forgot: 202 with an empty body.
    async fn forgot(&mut self) -> StepResult<()> {
        let reply = self
            .post(
                "/auth/password/forgot",
                &json!({ "email": self.email }),
                None,
            )
            .await?;
        expect_status(&reply, 202, "202 from /auth/password/forgot")?;
        if !reply.body.is_empty() {
            return Err("expected an empty body from /auth/password/forgot".into());
        }
        Ok(())
    }

    /// The reset mail's code sets a new password (204); the old one is refused afterwards.
    async fn reset(&mut self) -> StepResult<()> {
        let text = self.mail("#token=kgpr_").await?;
        let code = code_in(&text).ok_or("expected an 8-digit code in the reset mail")?;
        self.out.redactor.add(&code);
        if let Some(token) = token_in(&text) {
            self.out.redactor.add(&token);
        }
        let new_password = secrets::random_password().map_err(StepError::Check)?;
        self.out.redactor.add(new_password.expose());
        let body =
            json!({"email": self.email, "code": code, "new_password": new_password.expose()});
        let reply = self.post("/auth/password/reset", &body, None).await?;
        expect_status(&reply, 204, "204 from /auth/password/reset")?;
        let old = json!({"email": self.email, "password": self.password.expose()});
        let refused = self.post("/auth/login", &old, None).await?;
        if refused.status != 401 {
            return Err(format!(
                "expected 401 for the old password after the reset, got {}",
                refused.describe()
            )
            .into());
        }
        self.password = new_password;
        Ok(())
    }

    /// The decoded text of the throwaway user's next mail holding `needle`.
    async fn mail(&self, needle: &str) -> StepResult<String> {
        let outbox = self.opts.outbox.as_ref().ok_or("no --outbox")?;
        Ok(outbox.take(&self.email, needle, MAIL_WAIT).await?)
    }

    async fn login(&mut self) -> StepResult<Tokens> {
        let body = json!({"email": self.email, "password": self.password.expose()});
        let reply = self.post("/auth/login", &body, None).await?;
        let tokens = self.token_response(&reply)?;
        self.notes.push(format!(
            "token_type Bearer, expires_in {} s",
            tokens.expires_in
        ));
        Ok(tokens)
    }

    async fn verify_access(&mut self, access: &Secret, from: &str) -> StepResult<()> {
        let verified = self.verified(access, from).await?;
        self.notes.push(format!(
            "{from} token: kid {}, alg {:?}, typ at+jwt, iss and aud {:?} match, sub = user_id, expires in {} s (lifetime {} s)",
            verified.kid, verified.alg, self.opts.audience, verified.expires_in, verified.lifetime
        ));
        Ok(())
    }

    /// `access` verified offline against the JWKS, as a resource server would verify it.
    async fn verified(&mut self, access: &Secret, from: &str) -> StepResult<jwt::Verified> {
        let kid = jwt::token_kid(access.expose())?;
        if self
            .jwks
            .as_ref()
            .is_none_or(|jwks| jwks.find(&kid).is_none())
        {
            // A rotation may have published the key since the JWKS step: fetch it once more.
            self.notes.push(format!(
                "kid {kid} not in the cached JWKS, fetching it again"
            ));
            self.fetch_jwks().await?;
        }
        let jwks = self.jwks.as_ref().ok_or("no JWKS")?;
        let expected = Expected {
            issuer: &self.issuer,
            audience: &self.opts.audience,
            subject: &self.user_id,
            now: now_secs(),
        };
        Ok(jwt::verify(access.expose(), jwks, &expected)
            .map_err(|e| format!("{e} (token from {from})"))?)
    }

    async fn me(&mut self, access: &Secret) -> StepResult<()> {
        let reply = self.get("/auth/me", Some(access)).await?;
        expect_status(&reply, 200, "200 with the profile")?;
        let doc = reply.json()?;
        match doc.get("user_id").and_then(Value::as_str) {
            Some(id) if id == self.user_id => {}
            other => {
                return Err(format!(
                    "expected user_id {:?} from /auth/me, got {other:?}",
                    self.user_id
                )
                .into());
            }
        }
        match doc.get("email").and_then(Value::as_str) {
            Some(email) if email.eq_ignore_ascii_case(&self.email) => {}
            other => {
                return Err(format!(
                    "expected email {:?} from /auth/me, got {other:?}",
                    self.email
                )
                .into());
            }
        }
        for (field, ok) in [
            (
                "created_at",
                doc.get("created_at").is_some_and(Value::is_i64),
            ),
            ("auth_time", doc.get("auth_time").is_some_and(Value::is_i64)),
            ("roles", doc.get("roles").is_some_and(Value::is_array)),
        ] {
            if !ok {
                return Err(format!(
                    "expected `{field}` in the /auth/me answer, got {}",
                    shape(doc.get(field))
                )
                .into());
            }
        }
        self.notes.push("user_id and email match".into());
        Ok(())
    }

    /// Rotates `presented`; the new pair must differ from the old and its access token must verify.
    async fn refresh(
        &mut self,
        presented: &Secret,
        previous_access: &Secret,
    ) -> StepResult<Tokens> {
        let reply = self
            .post(
                "/auth/refresh",
                &json!({"refresh_token": presented.expose()}),
                None,
            )
            .await?;
        let tokens = self.token_response(&reply)?;
        if tokens.refresh == *presented {
            return Err(
                "expected a new refresh token (rotation on every use), got the presented one back"
                    .into(),
            );
        }
        if tokens.access == *previous_access {
            return Err("expected a new access token, got the previous one back".into());
        }
        self.verify_access(&tokens.access, "refresh").await?;
        self.notes
            .push("a new refresh token, different from the presented one".into());
        Ok(tokens)
    }

    async fn expect_refresh_refused(&mut self, presented: &Secret, why: &str) -> StepResult<()> {
        let reply = self
            .post(
                "/auth/refresh",
                &json!({"refresh_token": presented.expose()}),
                None,
            )
            .await?;
        if reply.status == 200 {
            // A broken deployment just issued live tokens: remember them so cleanup logs them out.
            let _ = self.token_response(&reply);
        }
        expect_refused(&reply, why)?;
        self.notes.push(format!("refused: {}", reply.describe()));
        Ok(())
    }

    async fn logout(&mut self, refresh: &Secret) -> StepResult<()> {
        let reply = self
            .post(
                "/auth/logout",
                &json!({"refresh_token": refresh.expose()}),
                None,
            )
            .await?;
        Ok(expect_status(&reply, 204, "204 from logout")?)
    }

    async fn logout_all(&mut self, access: &Secret) -> StepResult<()> {
        let reply = self.post_empty("/auth/logout-all", access).await?;
        Ok(expect_status(&reply, 204, "204 from logout-all")?)
    }

    async fn expect_me_refused(&mut self, access: &Secret) -> StepResult<()> {
        let reply = self.get("/auth/me", Some(access)).await?;
        expect_refused(
            &reply,
            "an access token issued before logout-all must be refused",
        )?;
        self.notes.push(format!("refused: {}", reply.describe()));
        Ok(())
    }

    /// POST /auth/mfa/totp on a fresh login: a 160-bit base32 secret and its key URI.
    async fn mfa_enrol(&mut self, access: &Secret) -> StepResult<Enrolment> {
        let reply = self
            .post("/auth/mfa/totp", &json!({}), Some(access))
            .await?;
        expect_status(&reply, 200, "200 with the pending factor")?;
        let doc = reply.json()?;
        let text = |field: &str| doc.get(field).and_then(Value::as_str).map(str::to_owned);
        let (Some(factor_id), Some(secret), Some(uri)) =
            (text("factor_id"), text("secret"), text("otpauth_uri"))
        else {
            return Err("expected factor_id, secret and otpauth_uri from /auth/mfa/totp".into());
        };
        self.out.redactor.add(&secret);
        let bytes = totp::base32_decode(&secret).filter(|b| b.len() == 20);
        let Some(bytes) = bytes else {
            return Err("the enrolment's secret is not 160 bits of base32".into());
        };
        if !uri.starts_with("otpauth://totp/") || !uri.contains("secret=") {
            return Err("the enrolment's otpauth_uri is not an otpauth://totp/ key URI".into());
        }
        self.notes
            .push("160-bit secret, otpauth://totp/ key URI".into());
        Ok(Enrolment {
            factor_id,
            secret: bytes,
        })
    }

    /// Activates the factor with this run's own TOTP code: ten recovery codes and a session whose
    /// `amr` has `otp`. Returns one recovery code (the others are dropped unseen).
    async fn mfa_activate(&mut self, access: &Secret, enrolment: &Enrolment) -> StepResult<Secret> {
        let code = totp::code_at(&enrolment.secret, now_secs());
        let body = json!({"factor_id": enrolment.factor_id, "code": code});
        let reply = self
            .post("/auth/mfa/totp/activate", &body, Some(access))
            .await?;
        let codes: Vec<String> = reply
            .json()
            .ok()
            .and_then(|doc| doc.get("recovery_codes").cloned())
            .and_then(|codes| serde_json::from_value(codes).ok())
            .unwrap_or_default();
        for code in &codes {
            self.out.redactor.add(code);
        }
        let tokens = self.token_response(&reply)?;
        if codes.len() != 10 {
            return Err(format!("expected 10 recovery codes, got {}", codes.len()).into());
        }
        self.expect_amr(&tokens.access, "activation", &["pwd", "otp"])
            .await?;
        Ok(Secret::new(codes[0].clone()))
    }

    /// A right password now answers 403 `mfa-required` with the second step's token.
    async fn mfa_required(&mut self) -> StepResult<Secret> {
        let body = json!({"email": self.email, "password": self.password.expose()});
        let reply = self.post("/auth/login", &body, None).await?;
        let doc = reply.json().ok();
        let token = doc
            .as_ref()
            .filter(|doc| {
                reply.status == 403
                    && reply.is_problem()
                    && doc["type"] == "urn:keygate:problem:mfa-required"
            })
            .and_then(|doc| doc.get("mfa_token"))
            .and_then(Value::as_str)
            .filter(|t| t.starts_with("kgmt_"));
        let Some(token) = token else {
            return Err(format!(
                "expected 403 problem+json mfa-required with an mfa_token, got {}",
                reply.describe()
            )
            .into());
        };
        self.out.redactor.add(token);
        Ok(Secret::new(token.to_owned()))
    }

    /// The second step with the next step's code (activation spent this one; one step of skew is
    /// accepted): tokens whose `amr` is `[pwd, otp]`.
    async fn mfa_verify(
        &mut self,
        mfa_token: &Secret,
        enrolment: &Enrolment,
    ) -> StepResult<Tokens> {
        let code = totp::code_at(&enrolment.secret, now_secs() + 30);
        let body = json!({"mfa_token": mfa_token.expose(), "code": code});
        let reply = self.post("/auth/mfa/verify", &body, None).await?;
        let tokens = self.token_response(&reply)?;
        self.expect_amr(&tokens.access, "the second step", &["pwd", "otp"])
            .await?;
        Ok(tokens)
    }

    /// Removes the factor with a recovery code, so the throwaway user ends as it began.
    async fn mfa_disable(&mut self, access: &Secret, recovery_code: &Secret) -> StepResult<()> {
        let body = json!({"recovery_code": recovery_code.expose()});
        let reply = self
            .post("/auth/mfa/totp/disable", &body, Some(access))
            .await?;
        Ok(expect_status(
            &reply,
            204,
            "204 from /auth/mfa/totp/disable",
        )?)
    }

    /// Verifies `access` and checks its `amr`.
    async fn expect_amr(&mut self, access: &Secret, from: &str, amr: &[&str]) -> StepResult<()> {
        let verified = self.verified(access, from).await?;
        if verified.amr != amr {
            return Err(format!(
                "expected amr {amr:?} in the access token from {from}, got {:?}",
                verified.amr
            )
            .into());
        }
        self.notes.push(format!("{from} token: amr {amr:?}"));
        Ok(())
    }

    // ---- helpers ----

    async fn get(&self, path: &str, bearer: Option<&Secret>) -> StepResult<Reply> {
        let url = self.url(path);
        self.http
            .get(&url, bearer.map(Secret::expose))
            .await
            .map_err(|e| StepError::Transport(format!("GET {url}: {e}")))
    }

    async fn post(&self, path: &str, body: &Value, bearer: Option<&Secret>) -> StepResult<Reply> {
        let url = self.url(path);
        self.http
            .post_json(&url, body, bearer.map(Secret::expose))
            .await
            .map_err(|e| StepError::Transport(format!("POST {url}: {e}")))
    }

    /// A POST without a body, authorised by an access token.
    async fn post_empty(&self, path: &str, bearer: &Secret) -> StepResult<Reply> {
        let url = self.url(path);
        self.http
            .post_empty(&url, bearer.expose())
            .await
            .map_err(|e| StepError::Transport(format!("POST {url}: {e}")))
    }

    /// Reads an RFC 6749 5.1 token response; its secrets join the redactor and the cleanup list at once.
    fn token_response(&mut self, reply: &Reply) -> StepResult<Tokens> {
        let doc = if reply.status == 200 {
            reply.json().ok()
        } else {
            None
        };
        if let Some(doc) = &doc {
            for field in ["access_token", "refresh_token"] {
                if let Some(secret) = doc.get(field).and_then(Value::as_str) {
                    self.out.redactor.add(secret);
                }
            }
            if let Some(refresh) = doc
                .get("refresh_token")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
            {
                self.refresh_tokens.push(Secret::new(refresh.to_owned()));
            }
            if let Some(access) = doc
                .get("access_token")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
            {
                self.access_token = Some(Secret::new(access.to_owned()));
            }
        }
        expect_status(reply, 200, "200 with a token response")?;
        let doc = doc.ok_or_else(|| reply.json().err().unwrap_or_default())?;
        let text = |field: &str| {
            doc.get(field)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        let (Some(access), Some(refresh)) = (text("access_token"), text("refresh_token")) else {
            return Err(
                "expected access_token and refresh_token strings in the token response".into(),
            );
        };
        match text("token_type") {
            Some(t) if t.eq_ignore_ascii_case("Bearer") => {}
            other => return Err(format!("expected token_type \"Bearer\", got {other:?}").into()),
        }
        let Some(expires_in) = doc
            .get("expires_in")
            .and_then(Value::as_u64)
            .filter(|&s| s > 0)
        else {
            return Err(format!(
                "expected a positive integer expires_in, got {}",
                shape(doc.get("expires_in"))
            )
            .into());
        };
        Ok(Tokens {
            access: Secret::new(access.to_owned()),
            refresh: Secret::new(refresh.to_owned()),
            expires_in,
        })
    }

    /// Best effort after a failed check: log out every session this run opened, then revoke its
    /// access tokens. Errors are ignored; the reason already printed is what matters.
    async fn cleanup(&mut self) {
        let tokens = std::mem::take(&mut self.refresh_tokens);
        let access = self.access_token.take();
        if tokens.is_empty() && access.is_none() {
            return;
        }
        let mut calls = 0;
        for token in &tokens {
            calls += 1;
            if self
                .post(
                    "/auth/logout",
                    &json!({"refresh_token": token.expose()}),
                    None,
                )
                .await
                .is_err()
            {
                break;
            }
        }
        if let Some(access) = &access {
            calls += 1;
            let _ = self.post_empty("/auth/logout-all", access).await;
        }
        self.out.note(&format!(
            "cleanup: {calls} logout call(s) for the throwaway user's sessions"
        ));
    }
}

fn is_http_url(s: &str) -> bool {
    (s.starts_with("https://") || s.starts_with("http://"))
        && s.len() > "https://".len()
        && !s.chars().any(char::is_whitespace)
}

/// A short description of a JSON value's type, for reasons (never the value of something secret).
fn shape(value: Option<&Value>) -> String {
    match value {
        None => "nothing".into(),
        Some(Value::Null) => "null".into(),
        Some(Value::String(s)) if s.is_empty() => "an empty string".into(),
        Some(Value::String(s)) => format!("{:?}", s.chars().take(80).collect::<String>()),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Array(_)) => "an array".into(),
        Some(Value::Object(_)) => "an object".into(),
    }
}

fn expect_status(reply: &Reply, status: u16, expected: &str) -> Result<(), String> {
    if reply.status == status {
        Ok(())
    } else {
        Err(format!("expected {expected}, got {}", reply.describe()))
    }
}

/// A refusal is a 401 problem document.
fn expect_refused(reply: &Reply, why: &str) -> Result<(), String> {
    if reply.status == 401 && reply.is_problem() {
        Ok(())
    } else {
        Err(format!(
            "expected 401 problem+json ({why}), got {}",
            reply.describe()
        ))
    }
}
