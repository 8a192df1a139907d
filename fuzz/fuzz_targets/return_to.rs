//! The `next` redirect check: whatever comes in, what may be followed is a path on this site, the issuer's
//! origin, or an https application under the shared cookie domain that the rules name. Never elsewhere.
#![no_main]

use axum::http::Uri;
use latchkey::domain::return_to::Destinations;
use libfuzzer_sys::fuzz_target;

const ISSUER: &str = "https://auth.example.com";

fuzz_target!(|next: &str| {
    let protects = |host: &str| host == "app.example.com" || host == "wiki.example.com";
    let destinations = Destinations { issuer: ISSUER, cookie_domain: Some("example.com"), protects };
    let Some(followed) = destinations.check(next) else { return };
    assert!(!followed.chars().any(|c| c.is_control() || c == '\\'), "{next:?} → {followed:?}");
    if followed.starts_with('/') {
        assert!(!followed.starts_with("//"), "{next:?} → a protocol-relative {followed:?}");
        return;
    }
    let uri: Uri = followed.parse().expect("a followed URL parses");
    let authority = uri.authority().expect("a followed URL has a host").as_str().to_ascii_lowercase();
    assert!(!authority.contains('@'), "{next:?} → credentials in {followed:?}");
    let host = uri.host().expect("a host").to_ascii_lowercase();
    assert!(
        authority == "auth.example.com" || (uri.scheme_str() == Some("https") && protects(&host)),
        "{next:?} → {followed:?} leaves the site"
    );
});
