//! `keygate-smoke --base-url URL`: see `--help`.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use keygate_smoke::scenario::{self, EXIT_USAGE, Options};
use keygate_smoke::secrets::check_email_domain;

const ABOUT: &str = "Smoke-tests a keygate deployment end to end with a throwaway user.";

const LONG_ABOUT: &str = "\
Smoke-tests a keygate deployment end to end with a throwaway user (random email, random 64-character
password), one line per step, stopping at the first failure:

  discovery             GET /.well-known/openid-configuration: issuer and jwks_uri present
  jwks                  GET jwks_uri: public signing keys with kid and alg, nothing private or symmetric
  register              POST /auth/register: 201 {user_id}
  verify-email          (--outbox) the registration mail's link token: POST /auth/email/verify 204
  login                 POST /auth/login: 200 token response, token_type Bearer; without --outbox a
                        403 email-not-verified problem is accepted and the session steps are
                        skipped, saying so
  verify-token          the access token verified offline against the JWKS (kid, alg from the JWK,
                        signature, typ at+jwt, iss = discovery issuer, aud = --audience,
                        sub = user_id, exp in the future, lifetime at most 15 minutes)
  me                    GET /auth/me: 200, same user_id and email
  refresh               POST /auth/refresh: 200, a new refresh token, a verifying access token
  refresh-again         the same with the new token (t0 -> t1 -> t2)
  replay-ancestor       t0 again: 401 (reuse of an older ancestor)
  family-revoked        t2, the live token: 401 too (the whole family was revoked)
  login-again           a second session
  logout                POST /auth/logout with its refresh token: 204
  refresh-after-logout  that refresh token: 401
  logout-all            POST /auth/logout-all with its access token: 204
  me-after-logout-all   GET /auth/me with that access token: 401
  forgot                (--outbox) POST /auth/password/forgot: 202, empty body
  reset                 (--outbox) the reset mail's code: POST /auth/password/reset 204; then the old
                        password gets 401
  login-after-reset     (--outbox) the new password logs in
  login-for-mfa         (no --outbox) a fresh login for the mfa steps
  mfa-enrol             (when the discovery lists mfa_totp) POST /auth/mfa/totp: a 160-bit base32
                        secret and an otpauth://totp/ key URI
  mfa-activate          POST /auth/mfa/totp/activate with this tool's own RFC 6238 code: 10 recovery
                        codes and tokens whose amr is [pwd, otp]
  mfa-required          the password again: 403 problem+json mfa-required with an mfa_token
  mfa-verify            POST /auth/mfa/verify with the next step's code: tokens, amr [pwd, otp]
  mfa-disable           POST /auth/mfa/totp/disable with a recovery code: 204

Every HTTP call has the --timeout-secs timeout. Tokens, the password, TOTP secrets and recovery
codes are never printed, not even with --verbose. Throwaway users remain in the deployment (there is no delete endpoint); all their
sessions are logged out and their access tokens revoked, also after a failed check (best effort).";

const AFTER_HELP: &str = "\
Exit codes: 0 every step passed; 1 a check failed (one line on stderr: `FAIL <step> (<ms> ms): expected
..., got ...`); 2 usage or configuration error.

Example: keygate-smoke --base-url https://abc123.execute-api.eu-west-1.amazonaws.com/prod/";

#[derive(Debug, Parser)]
#[command(name = "keygate-smoke", version, about = ABOUT, long_about = LONG_ABOUT, after_help = AFTER_HELP)]
struct Cli {
    /// Base URL of the deployment: the stack output ApiUrl (stage path included), or
    /// http://127.0.0.1:PORT for the local server.
    #[arg(long, value_name = "URL")]
    base_url: String,

    /// Timeout of every HTTP call, connection included, in seconds.
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
    timeout_secs: u64,

    /// Domain of the throwaway users' email addresses (the default, under .invalid, can never
    /// receive mail; `simulator.amazonses.com` makes them SES mailbox-simulator addresses, so an AWS
    /// stage's verification mail is delivered without a bounce).
    #[arg(long, value_name = "DOMAIN", default_value = "smoke.keygate.invalid")]
    email_domain: String,

    /// Audience the access tokens must carry in `aud` (the deployment's KEYGATE_AUDIENCE).
    #[arg(long, value_name = "AUD", default_value = "keygate")]
    audience: String,

    /// keygate-local's file outbox (`<data-dir>/outbox` with `--mailer file`): the throwaway user's
    /// mails are read there, so the email-verification and password-reset steps run. Without it they
    /// are skipped (say so on the output).
    #[arg(long, value_name = "DIR")]
    outbox: Option<std::path::PathBuf>,

    /// Print details under each step (issuer, key ids, user id, refusals); never tokens or passwords.
    #[arg(long, short)]
    verbose: bool,
}

/// Checks and normalises `--base-url`: http(s), a host, no query, fragment or credentials.
fn base_url(raw: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(raw.trim())
        .map_err(|e| format!("--base-url `{raw}` is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!(
            "--base-url `{raw}` must be an http:// or https:// URL with a host"
        ));
    }
    if url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(format!(
            "--base-url `{raw}` must not carry a query, fragment or credentials"
        ));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let options = base_url(&cli.base_url).and_then(|base_url| {
        check_email_domain(&cli.email_domain)?;
        if cli.audience.is_empty() {
            return Err("--audience must not be empty".to_owned());
        }
        Ok(Options {
            base_url,
            timeout: Duration::from_secs(cli.timeout_secs),
            email_domain: cli.email_domain.clone(),
            audience: cli.audience.clone(),
            verbose: cli.verbose,
            outbox: cli
                .outbox
                .clone()
                .map(|dir| keygate_smoke::mailbox::FileOutbox { dir }),
        })
    });
    let options = match options {
        Ok(options) => options,
        Err(reason) => {
            eprintln!("error: {reason}\n\nFor more information, try '--help'.");
            return ExitCode::from(EXIT_USAGE as u8);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_USAGE as u8);
        }
    };
    ExitCode::from(runtime.block_on(scenario::run(options)) as u8)
}
