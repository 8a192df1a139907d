//! Backup-code normalisation: what a person typed becomes the canonical code or nothing; the canonical
//! form is a fixed point and is all upper-case letters and digits.
#![no_main]

use latchkey::domain::backup_codes::normalize;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|typed: &str| {
    if let Some(code) = normalize(typed) {
        assert_eq!(normalize(&code).as_deref(), Some(code.as_str()), "not a fixed point: {typed:?}");
        assert!(code.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()), "{code:?}");
    }
});
