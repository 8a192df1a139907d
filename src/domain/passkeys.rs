//! Rules about passkeys that need no database: names, the relying-party id, and how a stored credential
//! follows what its authenticator reports at each sign-in.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use webauthn_rs_core::proto::{AuthenticationResult, Credential};

/// A passkey's name as people give it ("Work laptop").
pub const MAX_NAME_CHARS: usize = 64;

/// The authenticator-data flags (WebAuthn §6.1): byte 32, after the 32-byte RP id hash.
const FLAGS_AT: usize = 32;
const BACKUP_ELIGIBLE: u8 = 0x08;
const BACKED_UP: u8 = 0x10;

/// The trimmed name, or why it cannot be one. Empty becomes "Passkey".
pub fn name(raw: &str) -> Result<String, &'static str> {
    let name = raw.trim();
    if name.is_empty() {
        return Ok("Passkey".into());
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err("A passkey's name is at most 64 characters.");
    }
    if name.chars().any(char::is_control) {
        return Err("A passkey's name cannot hold control characters.");
    }
    Ok(name.into())
}

/// How the `passkeys.credential_id` column names a credential.
pub fn credential_id_text(raw: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(raw)
}

/// Whether `rp_id` may serve as the relying-party id of a site on `host`: the host itself or a domain
/// above it (WebAuthn §5.1.4.1: browsers refuse any other). The same rule decides cookie domains.
pub fn covers(rp_id: &str, host: &str) -> bool {
    let plain = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.';
    !rp_id.is_empty()
        && rp_id.chars().all(plain)
        && (host == rp_id || host.strip_suffix(rp_id).is_some_and(|s| s.ends_with('.')))
}

/// Whether a passkey can be the second factor of a session signed in by `session_amr` only if its
/// authenticator verifies the person (PIN, biometrics). After a password any passkey is a second kind of
/// factor; after a passkey that verified nobody, a second thing one has is not. Only a typed password gives a
/// session "pwd" (password sign-in and registration): a new way to sign in names its own method.
pub fn step_up_needs_user_verification(session_amr: &[String]) -> bool {
    !session_amr.iter().any(|method| method == "pwd")
}

/// The credential to verify an assertion against. A passkey registered before it synced (backup-eligible
/// off) reports eligible *and* backed up together the first time after syncing (iCloud, Google Password
/// Manager). webauthn-rs accepts the eligibility upgrade but judges "backed up" against the stored,
/// not-eligible flag, and refuses: the passkey would "stop working". So the upgrade is applied first.
/// Eligible turning off is never accepted (the library refuses it: the key may have been copied off).
pub fn prepared_for(stored: &Credential, authenticator_data: &[u8]) -> Credential {
    let mut credential = stored.clone();
    let flags = authenticator_data.get(FLAGS_AT).copied().unwrap_or(0);
    if !credential.backup_eligible && flags & BACKUP_ELIGIBLE != 0 && flags & BACKED_UP != 0 {
        credential.backup_eligible = true;
    }
    credential
}

/// The credential as stored after a sign-in: the signature counter grows (authenticators whose counter is
/// always 0, synced passkeys, keep 0), the backed-up flag follows the authenticator, eligibility only turns on.
pub fn after_sign_in(mut credential: Credential, result: &AuthenticationResult) -> Credential {
    if result.counter() > credential.counter {
        credential.counter = result.counter();
    }
    credential.backup_state = result.backup_state();
    if result.backup_eligible() {
        credential.backup_eligible = true;
    }
    credential
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_a_passkey_only_a_verifying_one_is_a_second_factor() {
        let amr = |methods: &[&str]| methods.iter().map(|m| m.to_string()).collect::<Vec<_>>();
        assert!(!step_up_needs_user_verification(&amr(&["pwd"])));
        assert!(step_up_needs_user_verification(&amr(&["pop"])));
        assert!(step_up_needs_user_verification(&amr(&[])));
    }

    #[test]
    fn names_are_trimmed_bounded_and_defaulted() {
        assert_eq!(name("  Work laptop "), Ok("Work laptop".into()));
        assert_eq!(name("   "), Ok("Passkey".into()));
        assert!(name(&"x".repeat(65)).is_err());
        assert_eq!(name(&"é".repeat(64)).map(|n| n.chars().count()), Ok(64));
        assert!(name("a\u{7}b").is_err());
    }

    #[test]
    fn the_rp_id_is_the_host_or_a_domain_above_it() {
        assert!(covers("example.com", "example.com"));
        assert!(covers("example.com", "id.example.com"));
        assert!(!covers("ample.com", "example.com"));
        assert!(!covers("other.com", "id.example.com"));
        assert!(!covers("id.example.com", "example.com"));
        assert!(!covers("", "example.com"));
        assert!(!covers("exa mple.com", "exa mple.com"));
    }

    fn data_with_flags(flags: u8) -> Vec<u8> {
        let mut data = vec![0u8; 37];
        data[FLAGS_AT] = flags;
        data
    }

    fn credential(backup_eligible: bool) -> Credential {
        // A credential as webauthn-rs serialises it (its own test vector, flags changed).
        let json = format!(
            r#"{{"cred_id":"AAEC","cred":{{"type_":"ES256","key":{{"EC_EC2":{{"curve":"SECP256R1","x":"AAEC","y":"AAEC"}}}}}},
            "counter":3,"transports":null,"user_verified":true,"backup_eligible":{backup_eligible},"backup_state":false,
            "registration_policy":"preferred","extensions":{{"cred_protect":"NotRequested","hmac_create_secret":"NotRequested","appid":"NotRequested","cred_props":"Ignored"}},
            "attestation":{{"data":"None","metadata":"None"}},"attestation_format":"none"}}"#
        );
        serde_json::from_str(&json).expect("test credential")
    }

    #[test]
    fn a_passkey_that_synced_is_upgraded_before_it_is_verified() {
        let stored = credential(false);
        assert!(prepared_for(&stored, &data_with_flags(0x05 | BACKUP_ELIGIBLE | BACKED_UP)).backup_eligible);
        // Eligible alone is the library's own upgrade; not backed up, nothing to prepare.
        assert!(!prepared_for(&stored, &data_with_flags(0x05 | BACKUP_ELIGIBLE)).backup_eligible);
        assert!(!prepared_for(&stored, &data_with_flags(0x05)).backup_eligible);
        assert!(!prepared_for(&stored, &[]).backup_eligible);
        // An eligible credential stays eligible whatever is presented: turning off is for the library to refuse.
        assert!(prepared_for(&credential(true), &data_with_flags(0x05)).backup_eligible);
    }
}
