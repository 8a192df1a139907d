//! Where a finished sign-in may send the browser (SECURITY.md A.11): a path on this site or an URL on the
//! issuer's own origin; and, when the session cookie is shared with a domain's subdomains, an application
//! under that domain which the forward-auth rules name. Nothing else, or the sign-in page would be an open
//! redirect.

use axum::http::Uri;

/// What a `next` may lead back to.
pub struct Destinations<'a, F: Fn(&str) -> bool> {
    /// `scheme://host[:port]` of the issuer.
    pub issuer: &'a str,
    /// `LATCHKEY_COOKIE_DOMAIN`, lower case.
    pub cookie_domain: Option<&'a str>,
    /// Whether the forward-auth rules name a host.
    pub protects: F,
}

impl<F: Fn(&str) -> bool> Destinations<'_, F> {
    /// `next` as it may be followed, or `None`.
    pub fn check(&self, next: &str) -> Option<String> {
        if next.chars().any(|c| c.is_control() || c == '\\') {
            return None;
        }
        if next.starts_with('/') {
            return (!next.starts_with("//")).then(|| next.to_string());
        }
        let uri: Uri = next.parse().ok()?;
        let issuer: Uri = self.issuer.parse().ok()?;
        let authority = uri.authority()?.as_str();
        let scheme_ok = match uri.scheme_str()? {
            "https" => true,
            "http" => issuer.scheme_str() == Some("http"),
            _ => false,
        };
        if !scheme_ok || authority.contains('@') || uri.path_and_query().is_none() {
            return None;
        }
        let same_origin = uri.scheme() == issuer.scheme()
            && issuer.authority().is_some_and(|a| a.as_str().eq_ignore_ascii_case(authority));
        // `app.example.com.` is another host to the browser's cookie jar: the shared cookie would not go there.
        let host = uri.host()?.to_ascii_lowercase();
        let shared = self.cookie_domain.is_some_and(|domain| {
            (host == domain || host.strip_suffix(domain).is_some_and(|sub| sub.ends_with('.')))
                && (self.protects)(&host)
        });
        (same_origin || shared).then(|| uri.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(next: &str, cookie_domain: Option<&str>) -> Option<String> {
        let protects = |host: &str| host.ends_with(".example.com") && host != "unruled.example.com";
        Destinations { issuer: "https://auth.example.com", cookie_domain, protects }.check(next)
    }

    #[test]
    fn same_site_paths_are_followed() {
        assert_eq!(check("/account", None).as_deref(), Some("/account"));
        assert_eq!(check("/a?b=c", None).as_deref(), Some("/a?b=c"));
        assert_eq!(check("https://auth.example.com/x", None).as_deref(), Some("https://auth.example.com/x"));
    }

    #[test]
    fn other_sites_and_tricks_are_not() {
        for next in [
            "//evil.test/",
            "/\\evil.test",
            "\\\\evil.test",
            "/x\n",
            "https://evil.test/",
            "javascript:alert(1)",
            "https://auth.example.com@evil.test/",
            "http://auth.example.com/x",
            "https://auth.example.com:444/x",
            "app.example.com/x",
            "",
        ] {
            assert_eq!(check(next, None), None, "{next:?}");
        }
    }

    #[test]
    fn a_shared_cookie_domain_admits_the_hosts_the_rules_name_under_it() {
        let domain = Some("example.com");
        assert_eq!(check("https://app.example.com/x?y=1", domain).as_deref(), Some("https://app.example.com/x?y=1"));
        assert_eq!(check("https://APP.example.com/x", domain).as_deref(), Some("https://APP.example.com/x"));
        assert_eq!(check("https://app.example.com./x", domain), None, "the cookie does not go to a trailing dot");
        assert_eq!(check("https://a.b.example.com:8443/", domain).as_deref(), Some("https://a.b.example.com:8443/"));
        assert_eq!(check("https://app.example.com/x", None), None, "without a shared cookie");
        assert_eq!(check("https://unruled.example.com/", domain), None, "no rule names it");
        assert_eq!(check("https://app.evilexample.com/", domain), None);
        assert_eq!(check("https://app.example.com.evil.test/", domain), None);
        assert_eq!(check("http://app.example.com/", domain), None, "https issuer: no plain http");
        assert_eq!(check("https://user@app.example.com/", domain), None);
    }
}
