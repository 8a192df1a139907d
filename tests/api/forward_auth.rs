//! Forward authentication over HTTP: the two endpoints a reverse proxy calls, with a rules file.

use reqwest::{StatusCode, header};
use serde_json::json;

use crate::{
    helpers::{PASSWORD, TestApp, expect_error, expect_json, token},
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
hosts = ["*.example.com", "localhost"]
policy = "signed_in"
"#;

fn with_rules(c: &mut latchkey::config::Config) {
    let path = std::env::temp_dir().join(format!("latchkey-rules-{}.toml", uuid::Uuid::new_v4().simple()));
    std::fs::write(&path, RULES).unwrap();
    c.access_rules = Some(path);
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
    // A password-only session does not pass an mfa rule (and there is no step-up page yet).
    assert_eq!(
        forward(app, "https://admin.example.com/", Some(("cookie", &cookie))).await.status(),
        StatusCode::FORBIDDEN
    );

    let account = browser.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
    let csrf = account.split(r#"name="csrf" value=""#).nth(1).unwrap().split('"').next().unwrap().to_string();
    browser.post(app.url("/logout")).form(&[("csrf", csrf.as_str())]).send().await.unwrap();
    let r = forward(app, "https://app.example.com/", Some(("cookie", &cookie))).await;
    assert_eq!(r.status(), StatusCode::FOUND, "signed out: back to sign-in");
}
on_both!(the_web_session_cookie_passes_until_sign_out, with_rules);

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
    let path = std::env::temp_dir().join(format!("latchkey-bad-rules-{}.toml", uuid::Uuid::new_v4().simple()));
    std::fs::write(&path, "\n[[rules]]\nhosts = [\"a.example.com\"]\npolicy = \"sometimes\"\n").unwrap();
    let dir = tempfile::tempdir().unwrap();
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
