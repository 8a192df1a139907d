//! Device tokens (OWASP "Slow down online guessing attacks with device cookies"): proof that a browser or
//! client has signed in to an account before, so that an identifier lockout caused by someone else does
//! not lock the account's owner out of their own devices.
//!
//! Form: base64url(nonce(16) ‖ issued_at(8, big-endian seconds) ‖ HMAC(user id, nonce, issued_at)). The
//! nonce names the device, for its own failure counter.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::{mac::Keyed, random};

/// A device that has not signed in for this long is a stranger again.
pub const LIFETIME_SECONDS: i64 = 180 * 24 * 3600;
const LEN: usize = 16 + 8 + 32;

#[derive(Clone)]
pub struct DeviceTokens {
    key: Keyed,
}

impl DeviceTokens {
    pub fn new(server_key: &[u8; 32]) -> Self {
        Self { key: Keyed::derive(server_key, "latchkey/device-tokens/v1") }
    }

    pub fn issue(&self, user_id: Uuid, now_seconds: i64) -> String {
        let nonce = random::bytes::<16>();
        let issued = now_seconds.to_be_bytes();
        let tag = self.key.tag(&[user_id.as_bytes(), &nonce, &issued]);
        URL_SAFE_NO_PAD.encode([nonce.as_slice(), &issued, &tag].concat())
    }

    /// The device's nonce (hex) when `token` was issued to `user_id` and has not expired.
    pub fn verify(&self, token: &str, user_id: Uuid, now_seconds: i64) -> Option<String> {
        let raw = URL_SAFE_NO_PAD.decode(token.as_bytes()).ok().filter(|r| r.len() == LEN)?;
        let (nonce, rest) = raw.split_at(16);
        let (issued, tag) = rest.split_at(8);
        let expected = self.key.tag(&[user_id.as_bytes(), nonce, issued]);
        if !bool::from(expected.as_slice().ct_eq(tag)) {
            return None;
        }
        let issued_at = i64::from_be_bytes(issued.try_into().ok()?);
        (now_seconds >= issued_at && now_seconds - issued_at < LIFETIME_SECONDS).then(|| hex::encode(nonce))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_to_user_key_and_time() {
        let tokens = DeviceTokens::new(&[5; 32]);
        let (ana, bob) = (Uuid::new_v4(), Uuid::new_v4());
        let token = tokens.issue(ana, 1_000);
        let nonce = tokens.verify(&token, ana, 2_000).expect("valid");
        assert_eq!(nonce.len(), 32);
        assert_ne!(tokens.issue(ana, 1_000), token, "a new nonce each time");
        assert!(tokens.verify(&token, bob, 2_000).is_none(), "another user's device");
        assert!(DeviceTokens::new(&[6; 32]).verify(&token, ana, 2_000).is_none(), "another server key");
        assert!(tokens.verify(&token, ana, 1_000 + LIFETIME_SECONDS).is_none(), "expired");
        let mut raw = URL_SAFE_NO_PAD.decode(&token).unwrap();
        raw[20] ^= 1;
        assert!(tokens.verify(&URL_SAFE_NO_PAD.encode(raw), ana, 2_000).is_none(), "tampered issue time");
        assert!(tokens.verify("garbage", ana, 2_000).is_none());
    }
}
