//! AES-256-GCM sealing of secrets at rest (signing keys now, TOTP secrets later).
//!
//! Sealed form: 12-byte random nonce followed by ciphertext and tag. The associated data names what the
//! secret is for (e.g. `signing-key:<kid>`), so a sealed value copied into another row does not open.

use aes_gcm::{Aes256Gcm, KeyInit, Nonce, aead::Aead, aead::Payload};
use zeroize::Zeroizing;

use super::random;

#[derive(Clone)]
pub struct Sealer {
    cipher: Aes256Gcm,
}

#[derive(Debug, thiserror::Error)]
#[error("the sealed value does not open with this server key")]
pub struct SealError;

const NONCE_LEN: usize = 12;

impl Sealer {
    pub fn new(key: &[u8; 32]) -> Self {
        Self { cipher: Aes256Gcm::new(key.into()) }
    }

    pub fn seal(&self, plaintext: &[u8], purpose: &str) -> Vec<u8> {
        let nonce = random::bytes::<NONCE_LEN>();
        let payload = Payload { msg: plaintext, aad: purpose.as_bytes() };
        #[allow(clippy::expect_used)]
        let ciphertext =
            self.cipher.encrypt(Nonce::from_slice(&nonce), payload).expect("AES-GCM encryption cannot fail");
        [nonce.as_slice(), &ciphertext].concat()
    }

    pub fn open(&self, sealed: &[u8], purpose: &str) -> Result<Zeroizing<Vec<u8>>, SealError> {
        if sealed.len() < NONCE_LEN {
            return Err(SealError);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        self.cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ciphertext, aad: purpose.as_bytes() })
            .map(Zeroizing::new)
            .map_err(|_| SealError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper_detection() {
        let sealer = Sealer::new(&[7; 32]);
        let sealed = sealer.seal(b"secret", "signing-key:a");
        assert_eq!(sealer.open(&sealed, "signing-key:a").unwrap().as_slice(), b"secret");
        assert!(sealer.open(&sealed, "signing-key:b").is_err(), "bound to its purpose");
        let mut flipped = sealed.clone();
        flipped[20] ^= 1;
        assert!(sealer.open(&flipped, "signing-key:a").is_err());
        assert!(Sealer::new(&[8; 32]).open(&sealed, "signing-key:a").is_err(), "another key does not open it");
        assert!(sealer.open(&sealed[..5], "signing-key:a").is_err());
    }

    #[test]
    fn same_plaintext_seals_differently() {
        let sealer = Sealer::new(&[1; 32]);
        assert_ne!(sealer.seal(b"x", "p"), sealer.seal(b"x", "p"));
    }
}
