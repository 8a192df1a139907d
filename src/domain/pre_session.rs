//! Pre-sessions: what a sign-in or registration form is bound to before anyone has signed in. Nothing is
//! stored for one, so an anonymous page view writes nothing. The cookie is `pre.<issued_at>.<random>`, and
//! the form's CSRF token is an HMAC of the whole cookie under a key of the server's: only the holder of the
//! cookie can know the token (signed double-submit), and neither can be made up.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

use super::{mac::Keyed, random};

/// Sign-in forms are good for this long.
pub const LIFETIME_SECONDS: i64 = 3600;
const PREFIX: &str = "pre.";

#[derive(Clone)]
pub struct PreSessions {
    key: Keyed,
}

impl PreSessions {
    pub fn new(server_key: &[u8; 32]) -> Self {
        Self { key: Keyed::derive(server_key, "latchkey/web-pre-session/v1") }
    }

    /// A new pre-session: its cookie value and its CSRF token.
    pub fn issue(&self, now_seconds: i64) -> (String, String) {
        let cookie = format!("{PREFIX}{now_seconds}.{}", random::opaque_token());
        let csrf = self.csrf(&cookie);
        (cookie, csrf)
    }

    /// Whether the cookie value has the shape of a pre-session (stored sessions' values never do).
    pub fn is_pre_session(cookie: &str) -> bool {
        cookie.starts_with(PREFIX)
    }

    /// The CSRF token of a pre-session cookie that is well formed and not expired.
    pub fn csrf_for(&self, cookie: &str, now_seconds: i64) -> Option<String> {
        let (issued, nonce) = cookie.strip_prefix(PREFIX)?.split_once('.')?;
        let issued: i64 = issued.parse().ok()?;
        let fresh = (now_seconds - LIFETIME_SECONDS..=now_seconds + 60).contains(&issued);
        (fresh && nonce.len() == 43).then(|| self.csrf(cookie))
    }

    fn csrf(&self, cookie: &str) -> String {
        URL_SAFE_NO_PAD.encode(self.key.tag(&[cookie.as_bytes()]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn issued_cookies_carry_their_token() {
        let pre = PreSessions::new(&[7; 32]);
        let (cookie, csrf) = pre.issue(NOW);
        assert!(PreSessions::is_pre_session(&cookie));
        assert_eq!(pre.csrf_for(&cookie, NOW + 10).as_deref(), Some(csrf.as_str()));
    }

    #[test]
    fn expired_forged_and_foreign_cookies_have_no_token() {
        let pre = PreSessions::new(&[7; 32]);
        let (cookie, csrf) = pre.issue(NOW);
        assert_eq!(pre.csrf_for(&cookie, NOW + LIFETIME_SECONDS + 1), None);
        assert_eq!(pre.csrf_for(&cookie, NOW - 3600), None, "issued in the future");
        assert_eq!(pre.csrf_for("pre.nonsense", NOW), None);
        assert_eq!(pre.csrf_for(&random::opaque_token(), NOW), None);
        // Another server key, or a changed issue time, gives another token.
        assert_ne!(PreSessions::new(&[8; 32]).csrf_for(&cookie, NOW), Some(csrf.clone()));
        let moved = cookie.replacen(&NOW.to_string(), &(NOW + 1).to_string(), 1);
        assert_ne!(pre.csrf_for(&moved, NOW + 5), Some(csrf));
    }
}
