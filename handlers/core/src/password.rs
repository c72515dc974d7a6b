//! Password policy (NIST SP 800-63B-4 lengths, a blocklist, optional character classes) and argon2id
//! hashing with PHC strings.

use argon2::{
    Algorithm, Argon2, Params, PasswordHash, PasswordHasher as _, PasswordVerifier as _, Version,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;

use crate::crypto::random_bytes;

/// Passwords longer than this many bytes are refused before hashing: argon2 itself is linear in the
/// input, but a cap keeps a 16 KiB body from being a cheap way to burn CPU.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// The 10,000 most common passwords, lowercased and sorted bytewise (see `data/README.md`).
static COMMON_PASSWORDS: &str = include_str!("../data/common-passwords.txt");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CharClass {
    Lower,
    Upper,
    Digit,
    Symbol,
}

impl CharClass {
    pub fn name(self) -> &'static str {
        match self {
            CharClass::Lower => "lower",
            CharClass::Upper => "upper",
            CharClass::Digit => "digit",
            CharClass::Symbol => "symbol",
        }
    }

    fn matches(self, c: char) -> bool {
        match self {
            CharClass::Lower => c.is_lowercase(),
            CharClass::Upper => c.is_uppercase(),
            CharClass::Digit => c.is_numeric(),
            CharClass::Symbol => !c.is_alphanumeric(),
        }
    }

    pub fn parse_list(raw: &str) -> Result<Vec<CharClass>, String> {
        let mut classes = Vec::new();
        for name in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let class = match name {
                "lower" => CharClass::Lower,
                "upper" => CharClass::Upper,
                "digit" => CharClass::Digit,
                "symbol" => CharClass::Symbol,
                other => {
                    return Err(format!(
                        "unknown character class `{other}` (lower, upper, digit, symbol)"
                    ));
                }
            };
            if !classes.contains(&class) {
                classes.push(class);
            }
        }
        Ok(classes)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordPolicy {
    pub min_length: usize,
    pub max_length: usize,
    pub required_classes: Vec<CharClass>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyViolation {
    #[error("password must be at least {0} characters long")]
    TooShort(usize),
    #[error("password must be at most {0} characters long")]
    TooLong(usize),
    #[error("password is one of the most common passwords")]
    Common,
    #[error("password must contain a character of class `{}`", .0.name())]
    MissingClass(CharClass),
}

impl PasswordPolicy {
    /// Checks a new password. Length counts Unicode scalar values, as NIST asks; the text is not
    /// normalised or trimmed, so what is checked is exactly what is hashed.
    pub fn check(&self, password: &str) -> Result<(), PolicyViolation> {
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(PolicyViolation::TooLong(self.max_length));
        }
        let length = password.chars().count();
        if length < self.min_length {
            return Err(PolicyViolation::TooShort(self.min_length));
        }
        if length > self.max_length {
            return Err(PolicyViolation::TooLong(self.max_length));
        }
        if is_common_password(password) {
            return Err(PolicyViolation::Common);
        }
        for class in &self.required_classes {
            if !password.chars().any(|c| class.matches(c)) {
                return Err(PolicyViolation::MissingClass(*class));
            }
        }
        Ok(())
    }
}

/// Case-insensitive lookup in the shipped blocklist: a binary search over the sorted text itself, so
/// nothing is decoded or allocated at start-up.
pub fn is_common_password(password: &str) -> bool {
    let wanted = password.to_lowercase();
    let bytes = COMMON_PASSWORDS.as_bytes();
    let (mut lo, mut hi) = (0usize, bytes.len());
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let start = bytes[..mid]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let end = bytes[start..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(bytes.len(), |i| start + i);
        match bytes[start..end].cmp(wanted.as_bytes()) {
            std::cmp::Ordering::Equal => return true,
            std::cmp::Ordering::Less => lo = end + 1,
            std::cmp::Ordering::Greater => hi = start,
        }
    }
    false
}

/// argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashingParams {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl HashingParams {
    /// OWASP Password Storage Cheat Sheet's first argon2id configuration.
    pub const OWASP_MEMORY_KIB: u32 = 19 * 1024;
    pub const OWASP_ITERATIONS: u32 = 2;
}

/// The outcome of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    Mismatch,
    /// The password is right; `needs_rehash` when the stored hash used other parameters.
    Match {
        needs_rehash: bool,
    },
}

/// Why a password could not be hashed: a server fault, never the user's input.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("argon2 parameters: {0}")]
    Parameters(argon2::Error),
    #[error("random salt")]
    Salt,
    #[error("argon2: {0}")]
    Hashing(argon2::password_hash::Error),
}

#[derive(Debug, Clone)]
pub struct PasswordHasher {
    params: HashingParams,
    argon2: Argon2<'static>,
    /// A well-formed hash nobody's password matches, verified for unknown users so that a login
    /// costs the same whether or not the account exists.
    dummy_hash: String,
}

impl PasswordHasher {
    pub fn new(params: HashingParams) -> Result<Self, PasswordError> {
        let argon_params = Params::new(
            params.memory_kib,
            params.iterations,
            params.parallelism,
            None,
        )
        .map_err(PasswordError::Parameters)?;
        // Fixed salt and an all-zero output: verifying against it runs the full argon2id computation
        // with the configured cost, and no password produces that output.
        let dummy_hash = format!(
            "$argon2id$v=19$m={},t={},p={}${}${}",
            params.memory_kib,
            params.iterations,
            params.parallelism,
            STANDARD_NO_PAD.encode(b"keygate-dummy-salt"),
            STANDARD_NO_PAD.encode([0u8; 32]),
        );
        Ok(Self {
            params,
            argon2: Argon2::new(Algorithm::Argon2id, Version::V0x13, argon_params),
            dummy_hash,
        })
    }

    /// Hashes a password with a fresh 128-bit salt from the OS CSPRNG into a PHC string.
    pub fn hash(&self, password: &str) -> Result<String, PasswordError> {
        let salt: [u8; 16] = random_bytes().map_err(|_| PasswordError::Salt)?;
        self.argon2
            .hash_password_with_salt(password.as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(PasswordError::Hashing)
    }

    /// Verifies `password` exactly as received against a PHC string (using the parameters stored in it).
    pub fn verify(&self, password: &str, phc: &str) -> Verification {
        let Ok(parsed) = PasswordHash::new(phc) else {
            return Verification::Mismatch;
        };
        if self
            .argon2
            .verify_password(password.as_bytes(), &parsed)
            .is_err()
        {
            return Verification::Mismatch;
        }
        Verification::Match {
            needs_rehash: !self.is_current(&parsed),
        }
    }

    /// Does the same work as [`verify`](Self::verify) against a hash no password matches.
    pub fn verify_dummy(&self, password: &str) {
        let _ = self.verify(password, &self.dummy_hash);
    }

    fn is_current(&self, hash: &PasswordHash) -> bool {
        let Ok(stored) = Params::try_from(hash) else {
            return false;
        };
        hash.algorithm.as_str() == "argon2id"
            && hash.version == Some(Version::V0x13.into())
            && stored.m_cost() >= self.params.memory_kib
            && stored.t_cost() >= self.params.iterations
            && stored.p_cost() >= self.params.parallelism
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owasp() -> HashingParams {
        HashingParams {
            memory_kib: 19456,
            iterations: 2,
            parallelism: 1,
        }
    }

    fn policy() -> PasswordPolicy {
        PasswordPolicy {
            min_length: 15,
            max_length: 128,
            required_classes: vec![],
        }
    }

    #[test]
    fn hashes_are_argon2id_phc_strings_with_at_least_owasp_cost() {
        let hasher = PasswordHasher::new(owasp()).unwrap();
        let phc = hasher.hash("correct horse battery staple").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        let other = hasher.hash("correct horse battery staple").unwrap();
        assert_ne!(phc, other, "salts must differ");
    }

    #[test]
    fn verification_is_exact() {
        let hasher = PasswordHasher::new(owasp()).unwrap();
        let phc = hasher.hash("Correct Horse Battery Staple ").unwrap();
        assert_eq!(
            hasher.verify("Correct Horse Battery Staple ", &phc),
            Verification::Match {
                needs_rehash: false
            }
        );
        // No trimming, no case folding, no normalisation.
        for wrong in [
            "Correct Horse Battery Staple",
            "correct horse battery staple ",
            " Correct Horse Battery Staple ",
        ] {
            assert_eq!(
                hasher.verify(wrong, &phc),
                Verification::Mismatch,
                "{wrong:?}"
            );
        }
        assert_eq!(
            hasher.verify("anything", "not a phc string"),
            Verification::Mismatch
        );
    }

    #[test]
    fn weaker_stored_hashes_ask_for_a_rehash() {
        let weak = PasswordHasher {
            params: HashingParams {
                memory_kib: 8192,
                iterations: 1,
                parallelism: 1,
            },
            argon2: Argon2::new(
                Algorithm::Argon2id,
                Version::V0x13,
                Params::new(8192, 1, 1, None).unwrap(),
            ),
            dummy_hash: String::new(),
        };
        let old = weak.hash("an old but fine passphrase").unwrap();
        let current = PasswordHasher::new(owasp()).unwrap();
        assert_eq!(
            current.verify("an old but fine passphrase", &old),
            Verification::Match { needs_rehash: true }
        );
    }

    #[test]
    fn the_dummy_hash_matches_nothing() {
        let hasher = PasswordHasher::new(owasp()).unwrap();
        assert!(PasswordHash::new(&hasher.dummy_hash).is_ok());
        assert_eq!(
            hasher.verify("", &hasher.dummy_hash),
            Verification::Mismatch
        );
        assert_eq!(
            hasher.verify("password", &hasher.dummy_hash),
            Verification::Mismatch
        );
    }

    #[test]
    fn length_limits() {
        let p = policy();
        assert_eq!(
            p.check("fourteen chars"),
            Err(PolicyViolation::TooShort(15))
        );
        assert_eq!(p.check("fifteen chars!!"), Ok(()));
        // 64 characters must always be allowed; multi-byte characters count once each.
        assert_eq!(p.check(&"é".repeat(64)), Ok(()));
        assert_eq!(p.check(&"x".repeat(128)), Ok(()));
        assert_eq!(
            p.check(&"xy".repeat(65)),
            Err(PolicyViolation::TooLong(128))
        );
        let wide = PasswordPolicy {
            max_length: 256,
            ..policy()
        };
        assert_eq!(
            wide.check(&"𝄞".repeat(256)),
            Ok(()),
            "256 four-byte characters fit the byte cap"
        );
        assert_eq!(
            wide.check(&"x".repeat(MAX_PASSWORD_BYTES + 1)),
            Err(PolicyViolation::TooLong(256))
        );
    }

    #[test]
    fn common_passwords_are_refused_whatever_the_case() {
        let p = PasswordPolicy {
            min_length: 8,
            ..policy()
        };
        for pw in [
            "password",
            "PASSWORD1",
            "iloveyou",
            "qwertyuiop",
            "1q2w3e4r5t",
        ] {
            assert_eq!(p.check(pw), Err(PolicyViolation::Common), "{pw}");
        }
        assert!(is_common_password("123456"));
        assert!(!is_common_password("zebra-quantum-lantern-42"));
        // The list's first and last entries are found too.
        let first = COMMON_PASSWORDS.lines().next().unwrap();
        let last = COMMON_PASSWORDS.lines().last().unwrap();
        assert!(is_common_password(first) && is_common_password(last));
        assert_eq!(COMMON_PASSWORDS.lines().count(), 10_000);
    }

    #[test]
    fn character_classes_only_when_configured() {
        assert_eq!(policy().check("all lowercase words here"), Ok(()));
        let strict = PasswordPolicy {
            required_classes: vec![CharClass::Upper, CharClass::Digit],
            ..policy()
        };
        assert_eq!(
            strict.check("all lowercase words here"),
            Err(PolicyViolation::MissingClass(CharClass::Upper))
        );
        assert_eq!(
            strict.check("All lowercase words here"),
            Err(PolicyViolation::MissingClass(CharClass::Digit))
        );
        assert_eq!(strict.check("All lowercase words here 7"), Ok(()));
    }

    proptest::proptest! {
        #[test]
        fn policy_never_panics(s in ".{0,300}") {
            let _ = policy().check(&s);
            let _ = is_common_password(&s);
        }
    }
}
