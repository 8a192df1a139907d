//! The rules of the OpenID Connect provider that need no I/O: redirect URIs, scope sets, PKCE, the
//! authorization request's parameters, and the claims of ID tokens and OAuth access tokens.

use std::collections::{BTreeSet, HashMap};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::tokens::OrgClaim;

/// The scopes the provider knows, in the order discovery lists them.
pub const SCOPES: [&str; 5] = ["openid", "profile", "email", "offline_access", "roles"];

/// What each scope lets an application see, in the words of the consent page.
pub fn scope_in_words(scope: &str) -> &'static str {
    match scope {
        "openid" => "Know who you are (your account id)",
        "profile" => "See your username and name",
        "email" => "See your email address",
        "offline_access" => "Stay signed in and act for you while you are away",
        "roles" => "See your role and your organisations",
        _ => "Unknown permission",
    }
}

/// RFC 9700 §2.1 and §4.1.3: an absolute `https` URI without fragment, or `http` on a loopback host only.
pub fn redirect_uri_registrable(uri: &str) -> Result<(), &'static str> {
    let Ok(parsed) = uri.parse::<axum::http::Uri>() else { return Err("is not an absolute URI") };
    if uri.contains('#') {
        return Err("must not have a fragment");
    }
    let Some(host) = parsed.host() else { return Err("is not an absolute URI") };
    match parsed.scheme_str() {
        Some("https") => Ok(()),
        Some("http") if ["localhost", "127.0.0.1", "[::1]"].contains(&host) => Ok(()),
        Some("http") => Err("may use http only for localhost, 127.0.0.1 or [::1]"),
        _ => Err("must be https (or http on a loopback host)"),
    }
}

/// Simple string comparison (RFC 9700 §4.1.3): byte for byte, no normalisation, except that a loopback
/// URI's port may vary (RFC 8252 §7.3: native apps listen on whatever port they get).
pub fn redirect_uri_matches(registered: &[String], presented: &str) -> bool {
    registered.iter().any(|r| {
        r == presented || loopback_without_port(r).is_some_and(|r| Some(r) == loopback_without_port(presented))
    })
}

/// `http://127.0.0.1:PORT/path` → `http://127.0.0.1/path` (also `[::1]`); `None` for any other URI.
fn loopback_without_port(uri: &str) -> Option<String> {
    ["http://127.0.0.1", "http://[::1]"].iter().find_map(|host| {
        let rest = uri.strip_prefix(host)?;
        let rest = match rest.strip_prefix(':') {
            Some(port_and_path) => {
                let digits = port_and_path.bytes().take_while(u8::is_ascii_digit).count();
                if digits == 0 {
                    return None;
                }
                &port_and_path[digits..]
            }
            None => rest,
        };
        (rest.is_empty() || rest.starts_with('/') || rest.starts_with('?')).then(|| format!("{host}{rest}"))
    })
}

/// A set of scopes, as a space-separated string on the wire.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scopes(BTreeSet<String>);

impl Scopes {
    pub fn parse(text: &str) -> Self {
        Self(text.split(' ').filter(|s| !s.is_empty()).map(str::to_string).collect())
    }

    pub fn contains(&self, scope: &str) -> bool {
        self.0.contains(scope)
    }

    pub fn is_subset(&self, of: &Scopes) -> bool {
        self.0.is_subset(&of.0)
    }

    pub fn without(&self, scope: &str) -> Self {
        Self(self.0.iter().filter(|s| *s != scope).cloned().collect())
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Display for Scopes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.iter().cloned().collect::<Vec<_>>().join(" "))
    }
}

/// RFC 7636 §4.1: 43 to 128 characters of `[A-Za-z0-9-._~]`.
fn verifier_well_formed(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// RFC 7636 §4.6 with S256, compared in constant time.
pub fn pkce_verifies(verifier: &str, challenge: &str) -> bool {
    if !verifier_well_formed(verifier) {
        return false;
    }
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    bool::from(computed.as_bytes().ct_eq(challenge.as_bytes()))
}

/// `prompt` (OpenID Connect Core §3.1.2.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Prompt {
    pub none: bool,
    pub login: bool,
    pub consent: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseMode {
    Query,
    FormPost,
}

/// A request's parameters by name, and the first name that appeared twice (RFC 6749 §3.1: an error).
fn single_valued(pairs: &[(String, String)]) -> (HashMap<&str, &str>, Option<String>) {
    let mut seen: HashMap<&str, &str> = HashMap::new();
    let mut repeated = None;
    for (name, value) in pairs {
        if seen.insert(name, value).is_some() && repeated.is_none() {
            repeated = Some(name.clone());
        }
    }
    (seen, repeated)
}

/// An end-session request (OpenID Connect RP-Initiated Logout 1.0 §2); empty parameters count as absent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EndSessionRequest {
    pub id_token_hint: Option<String>,
    pub client_id: Option<String>,
    pub post_logout_redirect_uri: Option<String>,
    pub state: Option<String>,
    pub repeated: Option<String>,
}

impl EndSessionRequest {
    pub fn from_pairs(pairs: &[(String, String)]) -> Self {
        let (seen, repeated) = single_valued(pairs);
        let get = |name: &str| seen.get(name).filter(|v| !v.is_empty()).map(|v| v.to_string());
        Self {
            id_token_hint: get("id_token_hint"),
            client_id: get("client_id"),
            post_logout_redirect_uri: get("post_logout_redirect_uri"),
            state: get("state"),
            repeated,
        }
    }
}

/// Where a signed-out browser returns to: the registered URI, with the client's `state` added to its query.
pub fn post_logout_target(uri: &str, state: Option<&str>) -> String {
    match state {
        Some(state) => {
            let separator = if uri.contains('?') { '&' } else { '?' };
            format!("{uri}{separator}{}", serde_urlencoded::to_string([("state", state)]).unwrap_or_default())
        }
        None => uri.to_string(),
    }
}

/// An authorization request's parameters, read once. `client_id` and `redirect_uri` are checked by the
/// caller before anything else (their errors are shown, never redirected).
#[derive(Clone, Debug, Default)]
pub struct AuthorizationRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub state: Option<String>,
    pub response_type: Option<String>,
    pub response_mode: Option<String>,
    pub scope: Scopes,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub prompt: Option<String>,
    pub max_age: Option<String>,
    pub login_hint: Option<String>,
    /// Our own parameter on the way back from a sign-in that `prompt=login` or `max_age` asked for: a
    /// session that authenticated at or after this time (Unix seconds) is fresh enough.
    pub fresh_since: Option<i64>,
    /// A parameter that appeared twice (RFC 6749 §3.1: that is an error).
    pub repeated: Option<String>,
}

/// Why an authorization request cannot go on, as RFC 6749 §4.1.2.1 names it.
#[derive(Debug, PartialEq, Eq)]
pub struct AuthorizationError {
    pub error: &'static str,
    pub description: &'static str,
}

const fn refused(error: &'static str, description: &'static str) -> AuthorizationError {
    AuthorizationError { error, description }
}

pub const FRESH_SINCE: &str = "lk_fresh_since";

impl AuthorizationRequest {
    pub fn from_pairs(pairs: &[(String, String)]) -> Self {
        let (seen, repeated) = single_valued(pairs);
        let mut request = Self { repeated, ..Self::default() };
        let get = |name: &str| seen.get(name).filter(|v| !v.is_empty()).map(|v| v.to_string());
        request.client_id = get("client_id").unwrap_or_default();
        request.redirect_uri = get("redirect_uri").unwrap_or_default();
        request.state = get("state");
        request.response_type = get("response_type");
        request.response_mode = get("response_mode");
        // OpenID Connect Core §3.1.2.1: scope values the server does not know are ignored (`groups`,
        // vendor scopes); known ones the client may not have are refused later.
        let asked = Scopes::parse(&get("scope").unwrap_or_default());
        request.scope = Scopes(asked.0.into_iter().filter(|s| SCOPES.contains(&s.as_str())).collect());
        request.nonce = get("nonce");
        request.code_challenge = get("code_challenge");
        request.code_challenge_method = get("code_challenge_method");
        request.prompt = get("prompt");
        request.max_age = get("max_age");
        request.login_hint = get("login_hint");
        request.fresh_since = get(FRESH_SINCE).and_then(|v| v.parse().ok());
        request
    }

    /// The response mode, once the request is known to be valid enough to answer through it.
    pub fn response_mode(&self) -> ResponseMode {
        if self.response_mode.as_deref() == Some("form_post") { ResponseMode::FormPost } else { ResponseMode::Query }
    }

    /// The checks after client and redirect URI: the answer goes back to the client when one fails.
    pub fn check(&self, client: &ClientRules<'_>) -> Result<Checked, AuthorizationError> {
        if let Some(_name) = &self.repeated {
            return Err(refused("invalid_request", "A parameter was sent more than once."));
        }
        match self.response_mode.as_deref() {
            None | Some("query") | Some("form_post") => {}
            Some(_) => return Err(refused("invalid_request", "Unsupported response_mode.")),
        }
        match self.response_type.as_deref() {
            None => return Err(refused("invalid_request", "response_type is required.")),
            Some("code") => {}
            Some(_) => return Err(refused("unsupported_response_type", "Only response_type=code is supported.")),
        }
        if !self.scope.is_subset(client.scopes) {
            return Err(refused("invalid_scope", "The client may not ask for one of these scopes."));
        }
        match (self.code_challenge.as_deref(), self.code_challenge_method.as_deref()) {
            (None, _) if client.pkce_required => {
                return Err(refused("invalid_request", "This client must send a PKCE code_challenge (S256)."));
            }
            (None, Some(_)) => return Err(refused("invalid_request", "code_challenge_method without code_challenge.")),
            (Some(_), Some("S256")) => {}
            (Some(_), _) => return Err(refused("invalid_request", "code_challenge_method must be S256.")),
            (None, None) => {}
        }
        if self.code_challenge.as_deref().is_some_and(|c| c.len() != 43) {
            return Err(refused("invalid_request", "code_challenge is not an S256 challenge."));
        }
        let mut prompt = Prompt::default();
        for value in self.prompt.as_deref().unwrap_or_default().split(' ').filter(|v| !v.is_empty()) {
            match value {
                "none" => prompt.none = true,
                "login" => prompt.login = true,
                "consent" => prompt.consent = true,
                "select_account" => {}
                _ => return Err(refused("invalid_request", "Unknown prompt value.")),
            }
        }
        if prompt.none && (prompt.login || prompt.consent) {
            return Err(refused("invalid_request", "prompt=none cannot be combined with other values."));
        }
        let max_age = match self.max_age.as_deref() {
            None => None,
            Some(v) => Some(v.parse::<u64>().map_err(|_| refused("invalid_request", "max_age is not a number."))?),
        };
        Ok(Checked { prompt, max_age })
    }
}

/// What the client's registration says about its requests.
pub struct ClientRules<'a> {
    pub scopes: &'a Scopes,
    pub pkce_required: bool,
}

/// A request that passed [`AuthorizationRequest::check`].
#[derive(Debug, PartialEq, Eq)]
pub struct Checked {
    pub prompt: Prompt,
    pub max_age: Option<u64>,
}

impl Checked {
    /// Whether a session that authenticated at `auth_time` must sign in again (`prompt=login`, `max_age`),
    /// unless it did so after the request sent it to sign in (`fresh_since`).
    pub fn needs_fresh_sign_in(&self, auth_time: i64, now: i64, fresh_since: Option<i64>) -> bool {
        if fresh_since.is_some_and(|since| auth_time >= since) {
            return false;
        }
        self.prompt.login || self.max_age.is_some_and(|max| now - auth_time > max as i64)
    }
}

/// `acr`: what kind of sign-in the session had.
pub fn acr(mfa: bool) -> &'static str {
    if mfa { "mfa" } else { "pwd" }
}

/// What ID tokens and userinfo may say about a user.
pub struct Person<'a> {
    pub id: Uuid,
    pub email: &'a str,
    pub email_verified: bool,
    pub username: Option<&'a str>,
    pub updated_at: i64,
    pub role: &'a str,
    pub orgs: Vec<OrgDetail>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgDetail {
    pub id: Uuid,
    pub slug: String,
    pub role: String,
}

/// The claims of the granted scopes (OpenID Connect Core §5.4), `sub` always.
pub fn person_claims(person: &Person<'_>, scope: &Scopes) -> serde_json::Map<String, serde_json::Value> {
    let mut claims = serde_json::Map::new();
    claims.insert("sub".into(), person.id.to_string().into());
    if scope.contains("email") {
        claims.insert("email".into(), person.email.into());
        claims.insert("email_verified".into(), person.email_verified.into());
    }
    if scope.contains("profile") {
        let name = person.username.unwrap_or(person.email);
        claims.insert("preferred_username".into(), name.into());
        claims.insert("name".into(), name.into());
        claims.insert("updated_at".into(), (person.updated_at / 1000).into());
    }
    if scope.contains("roles") {
        claims.insert("role".into(), person.role.into());
        claims.insert("orgs".into(), serde_json::to_value(&person.orgs).unwrap_or_default());
    }
    claims
}

/// An RFC 9068 access token issued to a client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OauthAccessClaims {
    pub iss: String,
    /// The user id, or the client id for a client-credentials token.
    pub sub: String,
    pub aud: String,
    pub client_id: String,
    pub scope: String,
    pub exp: i64,
    pub iat: i64,
    pub jti: Uuid,
    /// The grant the token belongs to; revoking it refuses the token.
    pub grant_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    /// The browser session that approved the grant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub orgs: Vec<OrgClaim>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_session_requests_read_each_parameter_once() {
        let pairs =
            |list: &[(&str, &str)]| list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>();
        let request = EndSessionRequest::from_pairs(&pairs(&[("id_token_hint", "h"), ("state", ""), ("x", "1")]));
        assert_eq!((request.id_token_hint.as_deref(), request.state, request.repeated), (Some("h"), None, None));
        let twice = EndSessionRequest::from_pairs(&pairs(&[("state", "a"), ("state", "b")]));
        assert_eq!(twice.repeated.as_deref(), Some("state"));
    }

    #[test]
    fn the_post_logout_target_carries_state() {
        assert_eq!(post_logout_target("https://rp.example/bye", None), "https://rp.example/bye");
        assert_eq!(post_logout_target("https://rp.example/bye", Some("a b&c")), "https://rp.example/bye?state=a+b%26c");
        assert_eq!(post_logout_target("https://rp.example/bye?x=1", Some("s")), "https://rp.example/bye?x=1&state=s");
    }

    fn request(query: &str) -> AuthorizationRequest {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap();
        AuthorizationRequest::from_pairs(&pairs)
    }

    fn client(scopes: &Scopes, pkce_required: bool) -> ClientRules<'_> {
        ClientRules { scopes, pkce_required }
    }

    #[test]
    fn registrable_redirect_uris() {
        assert!(redirect_uri_registrable("https://app.example/cb").is_ok());
        assert!(redirect_uri_registrable("http://localhost:8080/cb").is_ok());
        assert!(redirect_uri_registrable("http://127.0.0.1/cb").is_ok());
        assert!(redirect_uri_registrable("http://[::1]:9/cb").is_ok());
        for bad in ["http://app.example/cb", "https://app.example/cb#x", "/cb", "javascript:alert(1)", "ftp://x/"] {
            assert!(redirect_uri_registrable(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn redirect_uris_match_byte_for_byte() {
        // SECURITY.md 86's list.
        let registered = vec!["https://app.example/cb".to_string()];
        assert!(redirect_uri_matches(&registered, "https://app.example/cb"));
        for presented in [
            "https://app.example/cb/",
            "https://app.example/cb?x=1",
            "https://app.example/cb/../evil",
            "https://APP.example/cb",
            "https://app.example.evil.com/cb",
            "http://app.example/cb",
            "https://app.example/cb#x",
        ] {
            assert!(!redirect_uri_matches(&registered, presented), "{presented}");
        }
        let native = vec!["http://127.0.0.1/cb".to_string(), "http://[::1]:8000/cb".to_string()];
        assert!(redirect_uri_matches(&native, "http://127.0.0.1:51234/cb"));
        assert!(redirect_uri_matches(&native, "http://[::1]:9/cb"));
        for presented in ["http://127.0.0.1:5/other", "http://127.0.0.1.evil.com/cb", "http://127.0.0.1:5@evil.com/cb"]
        {
            assert!(!redirect_uri_matches(&native, presented), "{presented}");
        }
    }

    #[test]
    fn pkce_rfc7636_appendix_b_vector() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert!(pkce_verifies(verifier, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"));
        assert!(!pkce_verifies(verifier, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cN"));
        assert!(!pkce_verifies("short", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"));
    }

    #[test]
    fn scope_sets() {
        let s = Scopes::parse("openid  email openid");
        assert_eq!(s.to_string(), "email openid");
        assert!(s.is_subset(&Scopes::parse("openid profile email")));
        assert!(!Scopes::parse("admin").is_subset(&s));
    }

    #[test]
    fn request_checks() {
        let all = Scopes::parse("openid profile email");
        let ok = request("client_id=c&redirect_uri=https%3A%2F%2Fa%2Fcb&response_type=code&scope=openid");
        assert!(ok.check(&client(&all, false)).is_ok());
        let err = |q: &str, pkce| request(q).check(&client(&all, pkce)).unwrap_err().error;
        assert_eq!(err("response_type=token&scope=openid", false), "unsupported_response_type");
        assert_eq!(err("response_type=id_token%20token", false), "unsupported_response_type");
        assert_eq!(err("scope=openid", false), "invalid_request");
        assert_eq!(err("response_type=code&scope=openid%20roles", false), "invalid_scope");
        assert!(request("response_type=code&scope=openid%20groups").check(&client(&all, false)).is_ok());
        assert_eq!(err("response_type=code&scope=openid", true), "invalid_request");
        let plain =
            "response_type=code&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=plain";
        assert_eq!(err(plain, true), "invalid_request");
        assert_eq!(err("response_type=code&state=a&state=b", false), "invalid_request");
        assert_eq!(err("response_type=code&prompt=none%20login", false), "invalid_request");
        assert_eq!(err("response_type=code&max_age=soon", false), "invalid_request");
        let s256 =
            "response_type=code&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256";
        assert!(request(s256).check(&client(&all, true)).is_ok());
        // Unknown parameters are ignored (oidcc-ensure-request-with-unknown-parameter-succeeds).
        assert!(request("response_type=code&foo=bar&ui_locales=se&acr_values=1").check(&client(&all, false)).is_ok());
    }

    #[test]
    fn freshness() {
        let checked = |q: &str| request(q).check(&ClientRules { scopes: &Scopes::default(), pkce_required: false });
        let login = checked("response_type=code&prompt=login").unwrap();
        assert!(login.needs_fresh_sign_in(100, 200, None));
        assert!(login.needs_fresh_sign_in(100, 200, Some(150)));
        assert!(!login.needs_fresh_sign_in(160, 200, Some(150)));
        let max_age = checked("response_type=code&max_age=10").unwrap();
        assert!(!max_age.needs_fresh_sign_in(195, 200, None));
        assert!(max_age.needs_fresh_sign_in(100, 200, None));
        assert!(!checked("response_type=code").unwrap().needs_fresh_sign_in(0, 200, None));
    }

    #[test]
    fn claims_follow_scopes() {
        let person = Person {
            id: Uuid::nil(),
            email: "ana@example.com",
            email_verified: false,
            username: Some("ana"),
            updated_at: 5000,
            role: "viewer",
            orgs: vec![],
        };
        let only_sub = person_claims(&person, &Scopes::parse("openid"));
        assert_eq!(only_sub.keys().collect::<Vec<_>>(), ["sub"]);
        let all = person_claims(&person, &Scopes::parse("openid email profile roles"));
        assert_eq!(all["email"], "ana@example.com");
        assert_eq!(all["preferred_username"], "ana");
        assert_eq!(all["updated_at"], 5);
        assert_eq!(all["role"], "viewer");
    }
}
