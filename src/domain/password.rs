//! Password hashing (Argon2id, with verification of imported bcrypt and PBKDF2 hashes) and the password policy.
//!
//! Passwords are NFKC-normalised before Argon2id (NIST SP 800-63B §5.1.1.2), so the same password typed
//! as composed or decomposed Unicode logs in. Nothing else is changed: no case folding, no trimming, no
//! truncation. Imported legacy hashes are checked against the password exactly as typed, as their
//! original systems did, and replaced by Argon2id on the first successful login.

use argon2::{
    Algorithm, Argon2, Params, PasswordHash, PasswordVerifier, Version,
    password_hash::{PasswordHasher as _, SaltString},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use unicode_normalization::UnicodeNormalization;
use zeroize::Zeroizing;

use super::random;

pub const MAX_PASSWORD_CHARS: usize = 256;
/// An imported PBKDF2 hash may not ask for more work than this (a typo must not stall a login thread).
const MAX_PBKDF2_ITERATIONS: u32 = 10_000_000;

#[derive(Debug, PartialEq, Eq)]
pub enum Verification {
    Mismatch,
    /// `rehash` says the stored hash is a legacy format or weaker than the current parameters.
    Match {
        rehash: bool,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("the stored password hash is not in a format Latchkey understands")]
    UnknownFormat,
    #[error("password hashing failed: {0}")]
    Argon2(String),
}

#[derive(Clone)]
pub struct Hasher {
    params: Params,
    /// Verified for unknown users, so that they cost the same as a wrong password.
    dummy_hash: String,
}

impl Hasher {
    pub fn new(memory_kib: u32, iterations: u32) -> Result<Self, HashError> {
        let params = Params::new(memory_kib, iterations, 1, None).map_err(|e| HashError::Argon2(e.to_string()))?;
        let mut hasher = Self { params, dummy_hash: String::new() };
        hasher.dummy_hash = hasher.hash(&crate::domain::random::opaque_token())?;
        Ok(hasher)
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    pub fn hash(&self, password: &str) -> Result<String, HashError> {
        let normalized = normalize(password);
        let salt = SaltString::encode_b64(&random::bytes::<16>()).map_err(|e| HashError::Argon2(e.to_string()))?;
        self.argon2()
            .hash_password(normalized.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| HashError::Argon2(e.to_string()))
    }

    pub fn verify(&self, password: &str, stored: &str) -> Result<Verification, HashError> {
        if stored.starts_with("$argon2") {
            self.verify_argon2(password, stored)
        } else if stored.starts_with("$2a$") || stored.starts_with("$2b$") || stored.starts_with("$2y$") {
            // Non-truncating: a password longer than bcrypt's 72 bytes never matches a prefix of itself.
            let ok = bcrypt::non_truncating_verify(password, stored).unwrap_or(false);
            Ok(legacy_result(ok))
        } else if stored.starts_with("pbkdf2_sha256$") {
            verify_pbkdf2_sha256(password, stored).map(legacy_result)
        } else {
            Err(HashError::UnknownFormat)
        }
    }

    /// The same work as a real verification, with a result that is thrown away.
    pub fn verify_dummy(&self, password: &str) {
        let _ = self.verify_argon2(password, &self.dummy_hash);
    }

    fn verify_argon2(&self, password: &str, stored: &str) -> Result<Verification, HashError> {
        let parsed = PasswordHash::new(stored).map_err(|_| HashError::UnknownFormat)?;
        let normalized = normalize(password);
        if self.argon2().verify_password(normalized.as_bytes(), &parsed).is_err() {
            return Ok(Verification::Mismatch);
        }
        let current = parsed.algorithm.as_str() == "argon2id"
            && Params::try_from(&parsed)
                .is_ok_and(|p| p.m_cost() >= self.params.m_cost() && p.t_cost() >= self.params.t_cost());
        Ok(Verification::Match { rehash: !current })
    }

    /// Whether a stored value is something `verify` understands (checked when hashes are imported).
    pub fn is_supported_hash(stored: &str) -> bool {
        PasswordHash::new(stored).is_ok_and(|h| h.algorithm.as_str().starts_with("argon2"))
            || stored.parse::<bcrypt::HashParts>().is_ok()
            || parse_pbkdf2_sha256(stored).is_some()
    }
}

fn legacy_result(ok: bool) -> Verification {
    if ok { Verification::Match { rehash: true } } else { Verification::Mismatch }
}

fn normalize(password: &str) -> Zeroizing<String> {
    Zeroizing::new(password.nfkc().collect())
}

/// Django's format: `pbkdf2_sha256$<iterations>$<salt>$<base64 of the 32-byte key>`.
fn parse_pbkdf2_sha256(stored: &str) -> Option<(u32, &str, Vec<u8>)> {
    let mut parts = stored.split('$');
    let (Some("pbkdf2_sha256"), Some(iterations), Some(salt), Some(hash), None) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let iterations: u32 = iterations.parse().ok().filter(|n| (1..=MAX_PBKDF2_ITERATIONS).contains(n))?;
    let expected = STANDARD.decode(hash).ok().filter(|h| !h.is_empty() && h.len() <= 64)?;
    Some((iterations, salt, expected))
}

fn verify_pbkdf2_sha256(password: &str, stored: &str) -> Result<bool, HashError> {
    let (iterations, salt, expected) = parse_pbkdf2_sha256(stored).ok_or(HashError::UnknownFormat)?;
    let mut computed = Zeroizing::new(vec![0u8; expected.len()]);
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt.as_bytes(), iterations, &mut computed);
    Ok(bool::from(computed.ct_eq(&expected)))
}

/// Length limits and a guessability check; the answer names the reason, as NIST 63B asks.
#[derive(Clone, Debug)]
pub struct Policy {
    pub min_chars: usize,
}

impl Policy {
    pub fn check(&self, password: &str, email: &str, username: Option<&str>) -> Result<(), String> {
        let chars = normalize(password).chars().count();
        if chars < self.min_chars {
            return Err(format!("Password must be at least {} characters long.", self.min_chars));
        }
        if chars > MAX_PASSWORD_CHARS {
            return Err(format!("Password must be at most {MAX_PASSWORD_CHARS} characters long."));
        }
        let lowered = password.to_lowercase();
        let local_part = email.split('@').next().unwrap_or_default();
        if local_part.len() >= 3 && lowered.contains(local_part) {
            return Err("Password must not contain your email address.".into());
        }
        if let Some(name) = username.filter(|n| n.len() >= 3)
            && lowered.contains(name)
        {
            return Err("Password must not contain your username.".into());
        }
        let mut context = vec!["latchkey", email, local_part];
        context.extend(username);
        let estimate = zxcvbn::zxcvbn(password, &context);
        if u8::from(estimate.score()) < 3 {
            let why = estimate.feedback().and_then(|f| f.warning()).map(|w| format!(" {w}")).unwrap_or_default();
            return Err(format!(
                "Password is too easy to guess.{why} Add more words or characters that are not a common pattern."
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> Hasher {
        Hasher::new(1024, 1).unwrap()
    }

    #[test]
    fn argon2id_round_trip_without_truncation() {
        let h = cheap();
        let long = "é".repeat(40) + &"漢".repeat(40);
        let stored = h.hash(&long).unwrap();
        assert!(stored.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"));
        assert_eq!(h.verify(&long, &stored).unwrap(), Verification::Match { rehash: false });
        let cut = String::from_utf8_lossy(&long.as_bytes()[..72]).into_owned();
        assert_eq!(h.verify(&cut, &stored).unwrap(), Verification::Mismatch);
        assert_eq!(h.verify(&(long.clone() + "x"), &stored).unwrap(), Verification::Mismatch);
    }

    #[test]
    fn composed_and_decomposed_unicode_are_the_same_password() {
        let h = cheap();
        let stored = h.hash("caf\u{e9} au lait").unwrap();
        assert!(matches!(h.verify("cafe\u{301} au lait", &stored).unwrap(), Verification::Match { .. }));
    }

    #[test]
    fn weaker_parameters_ask_for_a_rehash() {
        let stored = cheap().hash("pw").unwrap();
        let stronger = Hasher::new(2048, 2).unwrap();
        assert_eq!(stronger.verify("pw", &stored).unwrap(), Verification::Match { rehash: true });
    }

    #[test]
    fn bcrypt_imports_verify_and_ask_for_a_rehash() {
        let stored = bcrypt::hash("legacy password", 4).unwrap();
        let h = cheap();
        assert_eq!(h.verify("legacy password", &stored).unwrap(), Verification::Match { rehash: true });
        assert_eq!(h.verify("legacy passwor", &stored).unwrap(), Verification::Mismatch);
        assert!(Hasher::is_supported_hash(&stored));
    }

    #[test]
    fn pbkdf2_django_hashes_verify() {
        // Django 4's make_password("hunter2hunter2", salt="saltsalt", hasher="pbkdf2_sha256") at 1000 rounds.
        let mut key = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(b"hunter2hunter2", b"saltsalt", 1000, &mut key);
        let stored = format!("pbkdf2_sha256$1000$saltsalt${}", STANDARD.encode(key));
        let h = cheap();
        assert_eq!(h.verify("hunter2hunter2", &stored).unwrap(), Verification::Match { rehash: true });
        assert_eq!(h.verify("hunter2hunter3", &stored).unwrap(), Verification::Mismatch);
        assert!(Hasher::is_supported_hash(&stored));
        assert!(!Hasher::is_supported_hash("pbkdf2_sha256$99999999999$s$AAAA"));
        assert!(!Hasher::is_supported_hash("md5$abc"));
    }

    #[test]
    fn pbkdf2_rfc_vector() {
        // RFC 7914 §11: PBKDF2-HMAC-SHA256("passwd", "salt", 1, 64).
        let mut out = [0u8; 64];
        pbkdf2::pbkdf2_hmac::<Sha256>(b"passwd", b"salt", 1, &mut out);
        assert!(hex::encode(out).starts_with("55ac046e56e3089fec1691c22544b605"));
    }

    #[test]
    fn policy_gives_reasons() {
        let p = Policy { min_chars: 12 };
        let email = "ana@example.com";
        assert!(p.check("short", email, None).unwrap_err().contains("at least 12"));
        assert!(p.check(&"x".repeat(257), email, None).unwrap_err().contains("at most 256"));
        for weak in ["password1234", "qwertyuiop12", "123456789012", "latchkey2025!"] {
            assert!(p.check(weak, email, None).is_err(), "{weak} should be refused");
        }
        assert!(p.check("ana-fixes-bikes-on-sunday", email, None).unwrap_err().contains("email"));
        assert!(
            p.check("bikes-fixed-by-anabanana9!", "x@example.com", Some("anabanana")).unwrap_err().contains("username")
        );
        assert!(p.check("correct horse battery staple plume", email, None).is_ok());
        assert!(p.check("pässwörd ñandú 😀 très long", email, None).is_ok());
    }
}
