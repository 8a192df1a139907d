//! Secrets from the operating system's RNG, and their one-way digests.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};

/// `N` bytes from the OS RNG. Failure of the OS RNG is not recoverable for an auth server.
pub fn bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    #[allow(clippy::expect_used)]
    getrandom::fill(&mut buf).expect("the operating system's random number generator failed");
    buf
}

/// An opaque bearer secret: 256 random bits, base64url (43 characters).
pub fn opaque_token() -> String {
    URL_SAFE_NO_PAD.encode(bytes::<32>())
}

/// How opaque tokens are stored: their SHA-256, hex. 256-bit random inputs need no salt or slow hash.
pub fn token_digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opaque_tokens_are_long_and_distinct() {
        let a = opaque_token();
        let b = opaque_token();
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
        assert!(!a.contains('.'));
    }

    #[test]
    fn digest_is_sha256_hex() {
        assert_eq!(token_digest("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
