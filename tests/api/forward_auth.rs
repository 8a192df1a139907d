//! Forward authentication over HTTP: the two endpoints a reverse proxy calls, with a rules file.

use reqwest::{StatusCode, header};
use serde_json::json;

use crate::{
    helpers::{PASSWORD, TestApp, csrf_of, expect_error, expect_json, token},
    on_both,
};

const RULES: &str = r#"
default_policy = "deny"

[[rules]]
hosts = ["public.example.com"]
policy = "bypass"

[[rules]]
hosts = ["blocked.example.com"]
policy = "deny"

[[rules]]
hosts = ["admin.example.com"]
policy = "mfa"
roles = ["admin"]

[[rules]]
hosts = ["team.example.com"]
policy = "signed_in"
orgs = ["acme:editor"]

[[rules]]
hosts = ["localhost"]
paths = ["/secure"]
policy = "mfa"

[[rules]]
hosts = ["*.example.com", "localhost"]
policy = "signed_in"
"#;

/// The rules above as a file, written once per test run into Cargo's scratch directory for tests.
fn with_rules(c: &mut latchkey::config::Config) {
    static FILE: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    let path = FILE.get_or_init(|| {
        let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("forward-auth-rules.toml");
        std::fs::write(&path, RULES).unwrap();
        path
    });
    c.access_rules = Some(path.clone());
}

/// Asks as Traefik does, for `url` (scheme://host/path).
async fn forward(app: &TestApp, url: &str, auth: Option<(&str, &str)>) -> reqwest::Response {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (host, uri) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut request = app
        .client
        .get(app.url("/api/v1/authz/forward-auth"))
        .header("x-forwarded-method", "GET")
        .header("x-forwarded-proto", scheme)
        .header("x-forwarded-host", host)
        .header("x-forwarded-uri", if uri.is_empty() { "/" } else { uri });
    if let Some((name, value)) = auth {
        request = request.header(name, value);
    }
    request.send().await.unwrap()
}

/// Asks as nginx's `auth_request` does.
async fn auth_request(app: &TestApp, url: &str, auth: Option<(&str, &str)>) -> reqwest::Response {
    let mut request = app
        .client
        .get(app.url("/api/v1/authz/auth-request"))
        .header("x-original-url", url)
        .header("x-original-method", "GET");
    if let Some((name, value)) = auth {
        request = request.header(name, value);
    }
    request.send().await.unwrap()
}

fn location(r: &reqwest::Response) -> String {
    r.headers().get(header::LOCATION).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default()
}

fn remote(r: &reqwest::Response, name: &str) -> String {
    r.headers().get(name).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default()
}

async fn anonymous_requests_are_sent_to_sign_in_or_refused(app: &TestApp) {
    let r = forward(app, "https://app.example.com/reports?q=1", None).await;
    assert_eq!(r.status(), StatusCode::FOUND);
    assert_eq!(location(&r), "http://localhost:8080/login?next=https%3A%2F%2Fapp%2Eexample%2Ecom%2Freports%3Fq%3D1");
    let r = auth_request(app, "https://app.example.com/reports", None).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(location(&r).starts_with("http://localhost:8080/login?next="));
    // On the issuer's own host, back by path.
    let r = forward(app, "http://localhost:8080/wiki/page", None).await;
    assert_eq!(location(&r), "http://localhost:8080/login?next=%2Fwiki%2Fpage");

    let r = forward(app, "https://public.example.com/", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(remote(&r, "remote-user"), "");
    expect_error(forward(app, "https://blocked.example.com/", None).await, StatusCode::FORBIDDEN, "forbidden").await;
    // A host the rules do not name: refused, never a redirect (no open redirect through next).
    let r = forward(app, "https://evil.test/", None).await;
    assert!(location(&r).is_empty());
    expect_error(r, StatusCode::FORBIDDEN, "forbidden").await;
    // The proxy must say which request it asks about, in a form that has one reading: a Host that would
    // move the path into the query or the user part, or a path with an encoded slash, is refused.
    let r = app.client.get(app.url("/api/v1/authz/forward-auth")).send().await.unwrap();
    expect_error(r, StatusCode::BAD_REQUEST, "bad_request").await;
    for url in ["https://app.example.com?/admin", "https://u@app.example.com/", "https://app.example.com/a%2Fb"] {
        expect_error(forward(app, url, None).await, StatusCode::BAD_REQUEST, "bad_request").await;
    }
}
on_both!(anonymous_requests_are_sent_to_sign_in_or_refused, with_rules);

async fn bearer_tokens_pass_with_the_remote_headers(app: &TestApp) {
    let email = "forward@example.com";
    let pair = expect_json(
        app.post_json("/auth/register", &json!({"email": email, "username": "fwd", "password": PASSWORD})).await,
        StatusCode::CREATED,
    )
    .await;
    let bearer = format!("Bearer {}", token(&pair, "access_token"));
    let r = auth_request(app, "https://app.example.com/x", Some(("authorization", &bearer))).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(remote(&r, "remote-user"), "fwd");
    assert_eq!(remote(&r, "remote-email"), email);
    assert_eq!(remote(&r, "remote-user-id"), pair["user"]["id"].as_str().unwrap());
    assert_eq!(remote(&r, "remote-groups"), "viewer");

    // Role and organisation rules.
    expect_error(
        forward(app, "https://admin.example.com/", Some(("authorization", &bearer))).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    expect_error(
        forward(app, "https://team.example.com/", Some(("authorization", &bearer))).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    // A password-only token on an mfa rule: a program cannot be sent through the second-factor page.
    let r = forward(app, "http://localhost:8080/secure/x", Some(("authorization", &bearer))).await;
    assert!(location(&r).is_empty());
    expect_error(r, StatusCode::FORBIDDEN, "forbidden").await;
    let org = app
        .client
        .post(app.url("/api/v1/orgs"))
        .bearer_auth(token(&pair, "access_token"))
        .json(&json!({"name": "Acme", "slug": "acme"}))
        .send()
        .await
        .unwrap();
    assert_eq!(org.status(), StatusCode::CREATED);
    let r = forward(app, "https://team.example.com/", Some(("authorization", &bearer))).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(remote(&r, "remote-groups"), "viewer,org:acme:admin");

    // A bad token is a 401 without a Location, from both endpoints.
    for r in [
        forward(app, "https://app.example.com/", Some(("authorization", "Bearer not-a-token"))).await,
        auth_request(app, "https://app.example.com/", Some(("authorization", "Bearer not-a-token"))).await,
    ] {
        assert!(location(&r).is_empty());
        expect_error(r, StatusCode::UNAUTHORIZED, "invalid_token").await;
    }
    // Logged out: the token is refused at once.
    assert_eq!(app.post_bearer("/auth/logout", &token(&pair, "access_token")).await.status(), StatusCode::NO_CONTENT);
    let r = forward(app, "https://app.example.com/", Some(("authorization", &bearer))).await;
    expect_error(r, StatusCode::UNAUTHORIZED, "invalid_token").await;
}
on_both!(bearer_tokens_pass_with_the_remote_headers, with_rules);

async fn the_web_session_cookie_passes_until_sign_out(app: &TestApp) {
    let (browser, cookie) = app.signed_in_browser("cookie-fwd@example.com").await;
    let r = forward(app, "https://app.example.com/", Some(("cookie", &cookie))).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(remote(&r, "remote-email"), "cookie-fwd@example.com");
    // An mfa rule that also wants a role the user lacks: refused, not stepped up.
    assert_eq!(
        forward(app, "https://admin.example.com/", Some(("cookie", &cookie))).await.status(),
        StatusCode::FORBIDDEN
    );

    // The answer above came from memory; signing out still takes effect on the very next question.
    let account = browser.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
    browser.post(app.url("/logout")).form(&[("csrf", csrf_of(&account))]).send().await.unwrap();
    let r = forward(app, "https://app.example.com/", Some(("cookie", &cookie))).await;
    assert_eq!(r.status(), StatusCode::FOUND, "signed out: back to sign-in");
}
on_both!(the_web_session_cookie_passes_until_sign_out, with_rules);

fn new_session_cookie(r: &reqwest::Response) -> String {
    r.headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
        .find(|c| c.starts_with("latchkey_session=") && c.len() > "latchkey_session=".len())
        .expect("a new session cookie")
}

/// A `mfa` rule sends a password-only session to the second-factor page, and back to the application.
async fn step_up_gives_the_second_factor_and_comes_back(app: &TestApp) {
    let (browser, cookie) = app.signed_in_browser("step-up@example.com").await;
    let url = "http://localhost:8080/secure/report?id=7";
    let r = auth_request(app, url, Some(("cookie", &cookie))).await;
    assert_eq!(location(&r), "http://localhost:8080/login/mfa?next=%2Fsecure%2Freport%3Fid%3D7");
    expect_error(r, StatusCode::UNAUTHORIZED, "mfa_required").await;
    let r = forward(app, url, Some(("cookie", &cookie))).await;
    assert_eq!(r.status(), StatusCode::FOUND);
    let step_up_page = app.url("/login/mfa?next=%2Fsecure%2Freport%3Fid%3D7");

    // No second factor to give: the page says how to get one.
    let r = browser.get(&step_up_page).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.text().await.unwrap().contains("Turn on two-factor authentication"));

    // Enrolled from this very session, which stays password-only: still stepped up.
    let (mut authenticator, _) = app.enable_mfa_in_browser(&browser).await;
    assert_eq!(auth_request(app, url, Some(("cookie", &cookie))).await.status(), StatusCode::UNAUTHORIZED);
    let page = browser.get(&step_up_page).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("asks for a second factor"));
    let wrong = browser.post(&step_up_page).form(&[("csrf", csrf_of(&page)), ("code", "000000".into())]);
    let wrong = wrong.send().await.unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.text().await.unwrap().contains("asks for a second factor"), "the form again, with the error");

    let code = authenticator.next_code().await;
    let r = browser.post(&step_up_page).form(&[("csrf", csrf_of(&page)), ("code", code)]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/secure/report?id=7");
    let stepped_up = new_session_cookie(&r);
    let r = auth_request(app, url, Some(("cookie", &stepped_up))).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(remote(&r, "remote-email"), "step-up@example.com");
    // The password-only session was replaced, not kept beside the new one.
    let r = auth_request(app, url, Some(("cookie", &cookie))).await;
    assert!(location(&r).contains("/login?next="), "{}", location(&r));
    // Already stepped up: the page sends straight back.
    let r = browser.get(&step_up_page).send().await.unwrap();
    assert_eq!(location(&r), "/secure/report?id=7");
}
on_both!(step_up_gives_the_second_factor_and_comes_back, with_rules);

/// `LATCHKEY_COOKIE_DOMAIN`: the session cookie goes to the subdomains, and sign-in returns to the
/// applications the rules name there, to no other host.
async fn a_shared_cookie_domain_returns_to_the_protected_apps(app: &TestApp) {
    let r = app.client.get(app.url("/login")).send().await.unwrap();
    let set_cookie = r.headers().get(header::SET_COOKIE).unwrap().to_str().unwrap().to_string();
    assert!(set_cookie.starts_with("latchkey_session=") && set_cookie.contains("; Domain=example.com"), "{set_cookie}");
    assert!(!set_cookie.contains("Secure"), "a plain-http issuer: no Secure, no prefix");

    // The test's client is on 127.0.0.1, where a cookie store would drop a Domain=example.com cookie: the
    // cookie goes by hand, as a browser on auth.example.com would send it.
    assert_eq!(app.register("shared@example.com", PASSWORD).await.status(), StatusCode::CREATED);
    for (next, to) in [
        ("http://app.example.com/inbox?x=1", "http://app.example.com/inbox?x=1"),
        ("http://deep.team.example.com/", "http://deep.team.example.com/"),
        ("/account#sessions", "/account#sessions"),
        ("http://example.org/", "/account"),
        ("http://app.example.com.evil.test/", "/account"),
        ("http://app.example.com@evil.test/", "/account"),
        ("//evil.test/", "/account"),
        ("javascript:alert(1)", "/account"),
    ] {
        let login = app.client.get(app.url("/login")).send().await.unwrap();
        let cookie = login.headers()[header::SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_string();
        let form = [("csrf", csrf_of(&login.text().await.unwrap())), ("username", "shared@example.com".into())];
        let encoded = percent_encoding::utf8_percent_encode(next, percent_encoding::NON_ALPHANUMERIC);
        let r = app
            .client
            .post(app.url(&format!("/login?next={encoded}")))
            .header(header::COOKIE, cookie)
            .form(&[&form[..], &[("password", PASSWORD.into())]].concat())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{next}");
        assert_eq!(location(&r), to, "{next}");
    }
}
on_both!(a_shared_cookie_domain_returns_to_the_protected_apps, |c| {
    with_rules(c);
    c.issuer = "http://auth.example.com".into();
    c.cookie_domain = Some("example.com".into());
});

/// On https the shared cookie is `__Secure-` (with `Domain`), never `__Host-`.
async fn a_shared_cookie_on_https_has_the_secure_prefix(app: &TestApp) {
    let r = app.client.get(app.url("/login")).send().await.unwrap();
    let set_cookie = r.headers().get(header::SET_COOKIE).unwrap().to_str().unwrap();
    assert!(set_cookie.starts_with("__Secure-latchkey_session="), "{set_cookie}");
    assert!(set_cookie.contains("; Secure") && set_cookie.contains("; Domain=example.com"), "{set_cookie}");
}
on_both!(a_shared_cookie_on_https_has_the_secure_prefix, |c| {
    with_rules(c);
    c.issuer = "https://auth.example.com".into();
    c.cookie_domain = Some("example.com".into());
});

/// With trusted proxies set, nobody else may describe the original request.
async fn only_trusted_proxies_are_believed(app: &TestApp) {
    expect_error(forward(app, "https://public.example.com/", None).await, StatusCode::FORBIDDEN, "forbidden").await;
}
on_both!(only_trusted_proxies_are_believed, |c| {
    with_rules(c);
    c.trusted_proxies = latchkey::domain::client_ip::parse_trusted("10.0.0.0/8").unwrap();
});

/// A rules file that cannot be used stops the start-up, naming the line and the reason.
#[tokio::test]
async fn a_bad_rules_file_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rules.toml");
    std::fs::write(&path, "\n[[rules]]\nhosts = [\"a.example.com\"]\npolicy = \"sometimes\"\n").unwrap();
    let config = latchkey::config::Config {
        database_url: format!("sqlite://{}", dir.path().join("l.db").display()),
        secret_key: latchkey::config::SecretKeySource::Inline(zeroize::Zeroizing::new([7; 32])),
        bind: "127.0.0.1:0".parse().unwrap(),
        access_rules: Some(path),
        ..Default::default()
    };
    let error = latchkey::app::Application::build(config).await.err().expect("refused").to_string();
    assert!(error.contains("line 4") && error.contains("unknown variant"), "{error}");
}
