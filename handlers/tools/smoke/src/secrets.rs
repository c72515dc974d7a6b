//! The throwaway user's credentials, and the guard that keeps every secret out of the output.

use std::fmt;

/// Length of the generated password: the longest minimum a stage may configure (64) and never above
/// the shortest maximum it may configure (also 64), so it satisfies every valid policy.
pub const PASSWORD_LEN: usize = 64;

const LOWER: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const DIGIT: &[u8] = b"0123456789";
/// ASCII symbols that need no escaping in JSON or a shell.
const SYMBOL: &[u8] = b"-_.~!@#%+=:,^";

/// Fills `buf` from the OS CSPRNG (aws-lc-rs, the provider the rest of the workspace uses).
pub fn random_bytes(buf: &mut [u8]) -> Result<(), String> {
    aws_lc_rs::rand::fill(buf).map_err(|_| "the OS random generator failed".to_owned())
}

/// A uniformly random index below `n` (rejection sampling, no modulo bias).
fn random_below(n: usize) -> Result<usize, String> {
    debug_assert!(n > 0 && n <= 256);
    let limit = 256 - 256 % n;
    loop {
        let mut b = [0u8; 1];
        random_bytes(&mut b)?;
        if (b[0] as usize) < limit {
            return Ok(b[0] as usize % n);
        }
    }
}

/// A string that never shows itself through `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A random password of [`PASSWORD_LEN`] ASCII characters holding a lower-case letter, an upper-case
/// letter, a digit and a symbol, so that it passes any stage's character-class rule; with ~380 bits of
/// entropy it is never on a blocklist.
pub fn random_password() -> Result<Secret, String> {
    let classes = [LOWER, UPPER, DIGIT, SYMBOL];
    let all: Vec<u8> = classes.concat();
    let mut chars = Vec::with_capacity(PASSWORD_LEN);
    for class in classes {
        chars.push(class[random_below(class.len())?]);
    }
    while chars.len() < PASSWORD_LEN {
        chars.push(all[random_below(all.len())?]);
    }
    // Fisher-Yates, so the guaranteed characters sit anywhere.
    for i in (1..chars.len()).rev() {
        chars.swap(i, random_below(i + 1)?);
    }
    Ok(Secret(String::from_utf8(chars).expect("ASCII")))
}

/// Amazon SES's mailbox simulator: mail to `success+<label>@` it is accepted and delivered without
/// a bounce, a complaint or a mark on the account's reputation, in and out of the sandbox.
pub const SES_SIMULATOR_DOMAIN: &str = "simulator.amazonses.com";

/// `smoke-<unix seconds>-<16 hex digits>@<domain>`: unique, sortable by time, obviously a test user.
/// On [`SES_SIMULATOR_DOMAIN`] the same tag is the label of its `success` mailbox, so the mails a
/// deployment sends the user (its verification mail) land there instead of bouncing.
pub fn random_email(domain: &str, unix_secs: u64) -> Result<String, String> {
    let mut tag = [0u8; 8];
    random_bytes(&mut tag)?;
    let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    let domain = domain.to_ascii_lowercase();
    let local = format!("smoke-{unix_secs}-{hex}");
    if domain == SES_SIMULATOR_DOMAIN {
        return Ok(format!("success+{local}@{domain}"));
    }
    Ok(format!("{local}@{domain}"))
}

/// Checks an `--email-domain` value: a plain DNS name, so the generated address is valid for the
/// service's email rules.
pub fn check_email_domain(domain: &str) -> Result<(), String> {
    let labels_ok = domain.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    });
    if domain.is_empty() || domain.len() > 180 || !domain.contains('.') || !labels_ok {
        return Err(format!(
            "--email-domain `{domain}` is not a DNS name such as smoke.example.com"
        ));
    }
    Ok(())
}

/// Replaces every secret the run has seen (password, tokens) by `<redacted>` in a line of output: a
/// last line of defence should a server echo one back in a problem detail.
#[derive(Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    pub fn add(&mut self, secret: &str) {
        // Very short strings would redact ordinary words; real secrets here are long.
        if secret.len() >= 8 && !self.secrets.iter().any(|s| s == secret) {
            self.secrets.push(secret.to_owned());
        }
    }

    pub fn clean(&self, line: &str) -> String {
        let mut out = line.to_owned();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), "<redacted>");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_have_every_class_and_the_fixed_length() {
        for _ in 0..200 {
            let password = random_password().unwrap();
            let p = password.expose();
            assert_eq!(p.chars().count(), PASSWORD_LEN);
            assert!(p.bytes().any(|b| b.is_ascii_lowercase()));
            assert!(p.bytes().any(|b| b.is_ascii_uppercase()));
            assert!(p.bytes().any(|b| b.is_ascii_digit()));
            assert!(p.bytes().any(|b| SYMBOL.contains(&b)));
        }
        assert_ne!(random_password().unwrap(), random_password().unwrap());
    }

    #[test]
    fn secrets_do_not_format() {
        let secret = Secret::new("hunter2hunter2hunter2".into());
        assert!(!format!("{secret} {secret:?}").contains("hunter2"));
    }

    #[test]
    fn emails_are_unique_and_lowercase() {
        let a = random_email("Smoke.Example.COM", 1_800_000_000).unwrap();
        let b = random_email("smoke.example.com", 1_800_000_000).unwrap();
        assert_ne!(a, b);
        assert!(
            a.starts_with("smoke-1800000000-") && a.ends_with("@smoke.example.com"),
            "{a}"
        );
        let simulated = random_email("simulator.amazonses.com", 1_800_000_000).unwrap();
        assert!(
            simulated.starts_with("success+smoke-1800000000-")
                && simulated.ends_with("@simulator.amazonses.com"),
            "{simulated}"
        );
        keygate_core::email::normalize_email(&simulated).expect("keygate accepts the address");
    }

    #[test]
    fn email_domains_are_checked() {
        for good in ["smoke.keygate.invalid", "example.com", "a-b.example.org"] {
            check_email_domain(good).unwrap();
        }
        for bad in [
            "",
            "localhost",
            "a..b",
            "-a.com",
            "a b.com",
            "a@b.com",
            "x.",
            ".x",
        ] {
            assert!(check_email_domain(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_redactor_removes_known_secrets() {
        let mut r = Redactor::default();
        r.add("kgrt_abcdefghijkl");
        r.add("short");
        assert_eq!(
            r.clean("token kgrt_abcdefghijkl refused; short"),
            "token <redacted> refused; short"
        );
    }
}
