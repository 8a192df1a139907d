//! The bearer token: header and claims decoding, then the signature. Whatever an attacker sends, no panic,
//! and nothing verifies without the server's key.
#![no_main]

use std::sync::LazyLock;

use latchkey::domain::tokens::KeyRing;
use libfuzzer_sys::fuzz_target;

static KEYS: LazyLock<KeyRing> = LazyLock::new(|| KeyRing::generated(None, "https://issuer.test", "latchkey"));

fuzz_target!(|token: &str| {
    assert!(KEYS.verify(token).is_err(), "a token verified without the server's key: {token:?}");
    assert!(KEYS.verify_oauth::<serde_json_value::Any>(token).is_err());
    assert!(KEYS.verify_id_token_hint(token).is_err());
});

mod serde_json_value {
    /// Any claims at all: the signature alone must refuse the token.
    #[derive(serde::Deserialize)]
    pub struct Any {}
}
