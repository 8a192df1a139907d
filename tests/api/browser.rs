//! End to end in headless Chromium (Debian's `chromium` and `chromium-driver`), driven over WebDriver:
//! register, sign out and in, enroll TOTP with the secret read from the page, sign in with a code and with a
//! backup code, revoke a session, and deactivate a user as admin; and an application on another origin signs
//! a person in through the OpenID Connect code flow (query and form_post responses). Skipped, with a notice,
//! when no browser is installed. With `LATCHKEY_SCREENSHOTS=<dir>` it saves a screenshot of each page there.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::http::Method;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use fantoccini::{Client, ClientBuilder, Locator, wd::WebDriverCompatibleCommand};
use latchkey::{
    domain::roles::Role,
    service::{accounts::InitialPassword, admin::Actor},
};
use reqwest::{StatusCode, Url};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{
    helpers::{Backend, PASSWORD, TestApp, expect_error, expect_json, installed, spawn},
    mfa::Authenticator,
};

pub(crate) struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Chromium and its WebDriver.
pub(crate) fn chromium() -> (&'static str, &'static str) {
    const INSTALL: &str = "apt-get install -y chromium chromium-driver";
    (
        installed(&["/usr/bin/chromium", "/usr/bin/chromium-browser"], INSTALL),
        installed(&["/usr/bin/chromedriver"], INSTALL),
    )
}

pub(crate) async fn start_browser(browser: &str, driver: &str, profile: &Path) -> (Driver, Client) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let guard = Driver(child);
    let caps: serde_json::Map<String, serde_json::Value> = serde_json::from_value(serde_json::json!({
        // The console (CSP violations among it) for `BrowserLog`.
        "goog:loggingPrefs": {"browser": "ALL"},
        "goog:chromeOptions": {
            "binary": browser,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1024,1300", format!("--user-data-dir={}", profile.display()),
            ]
        }
    }))
    .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        if let Ok(client) = ClientBuilder::new(connector).capabilities(caps.clone()).connect(&url).await {
            return (guard, client);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not accept a session");
}

/// axe-core (npm, pinned in tests/node), the engine behind Lighthouse's accessibility audit.
fn axe_source() -> &'static str {
    static SOURCE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SOURCE.get_or_init(|| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node/node_modules/axe-core/axe.min.js");
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}; the browser tests need npm ci --prefix tests/node", path.display()))
    })
}

/// Runs axe-core's WCAG 2.x A and AA rules in the current page (injected over WebDriver, so the page's CSP
/// stays as it is) and returns the serious and critical violations, each with the elements it found.
async fn accessibility_violations(client: &Client) -> Vec<String> {
    if client.execute("return typeof window.axe", vec![]).await.unwrap() != "object" {
        client.execute(&format!("{};\nreturn true;", axe_source()), vec![]).await.unwrap();
    }
    let audit = r#"
        const done = arguments[arguments.length - 1];
        const only = { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"] };
        window.axe.run(document, { runOnly: only }).then(
            (r) => done(r.violations
                .filter((v) => v.impact === "serious" || v.impact === "critical")
                .map((v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`)),
            (e) => done([`axe failed: ${e}`]));
    "#;
    let found = client.execute_async(audit, vec![]).await.unwrap();
    serde_json::from_value(found).unwrap()
}

pub(crate) struct Session<'a> {
    pub app: &'a TestApp,
    pub client: Client,
    pub shots: Option<std::path::PathBuf>,
}

impl Session<'_> {
    pub(crate) async fn open(&self, path: &str) {
        self.client.goto(&self.app.url(path)).await.unwrap();
    }

    pub(crate) async fn fill(&self, css: &str, text: &str) {
        let field = self.client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}"));
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    /// Clicks `css`, waiting up to 5 s for it: after a form post the next page may still be loading.
    pub(crate) async fn click(&self, css: &str) {
        for _ in 0..50 {
            if let Ok(element) = self.client.find(Locator::Css(css)).await {
                element.click().await.unwrap();
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no {css} within 5 s, at {}", self.path().await);
    }

    pub(crate) async fn path(&self) -> String {
        let url = self.client.current_url().await.unwrap();
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        }
    }

    pub(crate) async fn expect_path(&self, expected: &str) {
        for _ in 0..50 {
            if self.path().await.starts_with(expected) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("expected {expected}, at {}", self.path().await);
    }

    pub(crate) async fn text(&self, css: &str) -> String {
        self.client.find(Locator::Css(css)).await.unwrap().text().await.unwrap()
    }

    /// A page state the tests show: audited for accessibility, and saved as a screenshot when asked.
    pub(crate) async fn page_state(&self, name: &str) {
        let violations = accessibility_violations(&self.client).await;
        assert!(
            violations.is_empty(),
            "{name} ({}): serious or critical WCAG violations: {violations:#?}",
            self.path().await
        );
        if let Some(dir) = &self.shots {
            std::fs::create_dir_all(dir).unwrap();
            std::fs::write(dir.join(format!("{name}.png")), self.client.screenshot().await.unwrap()).unwrap();
        }
    }

    pub(crate) async fn sign_in(&self, username: &str, password: &str) {
        self.open("/login").await;
        self.fill("#username", username).await;
        self.fill("#password", password).await;
        self.click("form[action^='/login'] button[type=submit]").await;
    }

    pub(crate) async fn sign_out(&self) {
        self.click("form[action='/logout'] button").await;
        self.expect_path("/login").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(test_peer = "chromium"), ignore = "needs LATCHKEY_TEST_PEERS=chromium when built")]
async fn a_person_uses_the_pages_in_chromium() {
    let (browser, driver) = chromium();
    let app = spawn(Backend::Sqlite, |c| c.admin_require_mfa = false).await.unwrap();
    let profile = tempfile::tempdir().unwrap();
    let (_driver, client) = start_browser(browser, driver, profile.path()).await;
    let s = Session { app: &app, client, shots: std::env::var_os("LATCHKEY_SCREENSHOTS").map(Into::into) };

    // Register.
    s.open("/register").await;
    s.page_state("register").await;
    s.fill("#email", "chromium@example.com").await;
    s.fill("#password", PASSWORD).await;
    s.click("form[action='/register'] button[type=submit]").await;
    s.expect_path("/account").await;
    assert_eq!(s.text("#email").await, "chromium@example.com");
    // Nothing for scripts to steal: no storage, and the session cookie is HttpOnly.
    let storage = s
        .client
        .execute("return [localStorage.length, sessionStorage.length, document.cookie];", vec![])
        .await
        .unwrap();
    assert_eq!(storage[0], 0);
    assert_eq!(storage[1], 0);
    assert!(!storage[2].as_str().unwrap().contains("latchkey_session"), "{storage}");
    assert!(!s.client.source().await.unwrap().contains("eyJ"), "no token in the page");
    s.page_state("account").await;
    // At 320 CSS px (WCAG 1.4.10 reflow) nothing needs sideways scrolling.
    s.client.set_window_size(320, 844).await.unwrap();
    let overflow =
        s.client.execute("return document.documentElement.scrollWidth - window.innerWidth;", vec![]).await.unwrap();
    assert!(overflow.as_i64().unwrap() <= 0, "page wider than the screen by {overflow} px");
    s.page_state("account_phone").await;
    s.client.set_window_size(1024, 1300).await.unwrap();

    // Sign out; a wrong password is said in words tied to the fields; then in with the keyboard alone: the
    // username field has the focus, Tab goes to the password, Enter submits.
    s.sign_out().await;
    s.page_state("login").await;
    s.sign_in("chromium@example.com", "not the password").await;
    s.expect_path("/login").await;
    let described = s.client.find(Locator::Css("#password[aria-invalid=true]")).await.unwrap();
    assert_eq!(described.attr("aria-describedby").await.unwrap().as_deref(), Some("login-error"));
    s.page_state("login_refused").await;
    s.open("/login").await;
    let focused = s.client.active_element().await.unwrap();
    assert_eq!(focused.attr("id").await.unwrap().as_deref(), Some("username"));
    focused.send_keys("chromium@example.com\u{E004}").await.unwrap();
    s.client.active_element().await.unwrap().send_keys(&format!("{PASSWORD}\u{E007}")).await.unwrap();
    s.expect_path("/account").await;

    // Enroll TOTP, reading the secret from the page.
    s.click("form[action='/account/mfa/setup'] button").await;
    s.expect_path("/account/mfa/setup").await;
    s.page_state("mfa_setup").await;
    let mut authenticator = Authenticator::new(&s.text("#secret").await.replace(' ', ""));
    s.fill("#code", &authenticator.next_code().await).await;
    s.click("form[action='/account/mfa/enable'] button").await;
    s.expect_path("/account/mfa/enable").await;
    let codes = s.text("#backup-codes").await;
    let codes: Vec<&str> = codes.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    assert_eq!(codes.len(), 10);
    let backup_code = codes[0].to_string();
    s.page_state("backup_codes").await;

    // Sign out; in again with a TOTP code.
    s.open("/account").await;
    s.sign_out().await;
    s.sign_in("chromium@example.com", PASSWORD).await;
    s.expect_path("/login/mfa").await;
    s.page_state("login_mfa").await;
    s.fill("#code", &authenticator.next_code().await).await;
    s.click("form[action^='/login/mfa'] button").await;
    s.expect_path("/account").await;

    // And with a backup code.
    s.sign_out().await;
    s.sign_in("chromium@example.com", PASSWORD).await;
    s.expect_path("/login/mfa").await;
    s.fill("#code", &backup_code).await;
    s.click("form[action^='/login/mfa'] button").await;
    s.expect_path("/account").await;

    // Revoke another session (a second sign-in through the API).
    let pending = expect_json(app.login("chromium@example.com", PASSWORD).await, StatusCode::OK).await;
    let body = serde_json::json!({"mfa_token": pending["mfa_token"], "code": authenticator.next_code().await});
    let other = expect_json(app.post_json("/auth/mfa/challenge", &body).await, StatusCode::OK).await;
    s.open("/account").await;
    s.page_state("account_sessions").await;
    s.click("#sessions tbody tr:not(:has(strong)) form button").await;
    s.expect_path("/account?done=revoked").await;
    expect_error(app.me(other["access_token"].as_str().unwrap()).await, StatusCode::UNAUTHORIZED, "invalid_token")
        .await;

    // As admin, deactivate a user.
    let (victim, victim_pair) = app.new_user().await;
    app.services.create_user("admin@example.com", None, Role::Admin, InitialPassword::Plain(PASSWORD)).await.unwrap();
    s.open("/account").await;
    s.sign_out().await;
    s.sign_in("admin@example.com", PASSWORD).await;
    s.expect_path("/account").await;
    s.open("/admin").await;
    s.page_state("admin_dashboard").await;
    let victim_id = victim_pair["user"]["id"].as_str().unwrap();
    s.open(&format!("/admin/users/{victim_id}")).await;
    s.page_state("admin_user").await;
    s.open(&format!("/admin/users?q={victim}")).await;
    s.page_state("admin").await;
    s.click("form input[value='deactivate'] ~ button").await;
    s.click("button[name='confirm']").await;
    s.expect_path("/admin/users?done=ok").await;
    s.open("/admin/audit?action=user_deactivated").await;
    assert!(s.text("tbody").await.contains(&format!("{victim} was deactivated")));
    s.page_state("admin_audit").await;
    s.open("/admin/clients").await;
    s.page_state("admin_clients").await;
    s.open("/admin/orgs").await;
    s.page_state("admin_orgs").await;
    s.fill("#org-name", "Research").await;
    s.fill("#org-slug", "research").await;
    s.click("form[action='/admin/orgs'] button").await;
    s.expect_path("/admin/orgs/").await;
    assert!(s.text("h1").await.contains("Research"));
    s.page_state("admin_org").await;
    expect_error(
        app.me(victim_pair["access_token"].as_str().unwrap()).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
    expect_error(app.login(&victim, PASSWORD).await, StatusCode::FORBIDDEN, "inactive_user").await;

    s.client.close().await.unwrap();
    app.finish().await;
}

/// chromedriver's console log (`goog:loggingPrefs`), which the W3C protocol does not cover.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(&self, base: &Url, session: Option<&str>) -> Result<Url, <Url as std::str::FromStr>::Err> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &Url) -> (Method, Option<String>) {
        (Method::POST, Some(r#"{"type":"browser"}"#.into()))
    }
}

/// Each request the relying party received: its request line and body.
type Received = Arc<Mutex<Vec<(String, String)>>>;

/// The relying party's redirect URI: a listener on a port of its own (so another origin than Latchkey's) that
/// answers every request with "callback ok" and keeps what it was sent.
async fn relying_party() -> (String, Received) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let redirect = format!("http://{}/callback", listener.local_addr().unwrap());
    let received = Received::default();
    let log = received.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut data = Vec::new();
                let mut chunk = [0u8; 4096];
                let (head_len, body_len) = loop {
                    if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
                        let length = head.lines().find_map(|l| l.strip_prefix("content-length:"));
                        break (end + 4, length.and_then(|v| v.trim().parse().ok()).unwrap_or(0));
                    }
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => data.extend_from_slice(&chunk[..n]),
                    }
                };
                while data.len() < head_len + body_len {
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => data.extend_from_slice(&chunk[..n]),
                    }
                }
                let line = String::from_utf8_lossy(&data[..head_len]).lines().next().unwrap_or_default().to_string();
                let body = String::from_utf8_lossy(&data[head_len..]).into_owned();
                log.lock().unwrap().push((line, body));
                let page = "<!doctype html><html lang=en><title>Application</title><main>callback ok</main></html>";
                let head = "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\nconnection: close\r\n";
                let answer = format!("{head}content-length: {}\r\n\r\n{page}", page.len());
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    (redirect, received)
}

impl Session<'_> {
    /// Opens an authorization request and signs in on the page it leads to, watching for CSP violations.
    async fn sign_in_to(&self, authorize: &str, email: &str) {
        self.open(authorize).await;
        self.expect_path("/login?next=").await;
        self.fill("#username", email).await;
        self.fill("#password", PASSWORD).await;
        self.watch_csp().await;
        self.click("form[action^='/login'] button[type=submit]").await;
    }

    /// Records the page's CSP violations in `window.__csp` (read by `stuck`).
    async fn watch_csp(&self) {
        let script = "window.__csp = []; document.addEventListener('securitypolicyviolation', e => \
                      window.__csp.push(`${e.effectiveDirective} blocked ${e.blockedURI} (${e.disposition})`));";
        self.client.execute(script, vec![]).await.unwrap();
    }

    /// Waits for the relying party to receive its callback; returns its request line and body, or fails with
    /// where the browser stayed, the page's CSP violations and the console.
    async fn callback(&self, received: &Received, step: &str) -> (String, String) {
        for _ in 0..50 {
            let hit = received.lock().unwrap().iter().find(|(line, _)| line.contains(" /callback")).cloned();
            if let Some(hit) = hit {
                return hit;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let href = self.client.execute("return document.location.href;", vec![]).await;
        let violations = self.client.execute("return window.__csp || null;", vec![]).await;
        let text = self.client.execute("return document.body ? document.body.innerText : null;", vec![]).await;
        let console = self.client.issue_cmd(BrowserLog).await;
        panic!(
            "after {step}, the browser never reached the application's redirect URI\n  at: {href:?}\n  \
             CSP violations on the page: {violations:?}\n  page text: {text:?}\n  console: {console:#?}\n  \
             the application received: {:?}",
            received.lock().unwrap()
        );
    }
}

/// The authorization response's parameters, from the query (GET) or the form body (form_post).
fn response_params(line: &str, body: &str, form_post: bool) -> Vec<(String, String)> {
    let target = line.split(' ').nth(1).unwrap();
    let url = Url::parse(&format!("http://rp.invalid{target}")).unwrap();
    let pairs: Vec<(String, String)> = if form_post {
        assert!(line.starts_with("POST /callback "), "{line}");
        assert_eq!(url.query(), None, "form_post sends nothing in the query: {line}");
        serde_urlencoded::from_str(body).unwrap()
    } else {
        assert!(line.starts_with("GET /callback?"), "{line}");
        url.query_pairs().into_owned().collect()
    };
    pairs
}

/// An application on another origin (a listener on a port of its own) sends a person to Latchkey in Chromium:
/// sign-in form, consent form, back to the application with a code that the token endpoint accepts; then,
/// signed out, again, where the sign-in form leads straight back (consent remembered). Both form submissions
/// end on the application's origin, through redirects (query) or an auto-submitting page (form_post).
async fn an_application_signs_a_person_in(form_post: bool) {
    let (browser, driver) = chromium();
    let app = spawn(Backend::Sqlite, |_| {}).await.unwrap();
    let (redirect, received) = relying_party().await;
    let settings = serde_json::from_value(json!({"name": "Chromium RP", "redirect_uris": [redirect]})).unwrap();
    let registered = app.services.create_client(Actor::Operator, settings, &Default::default()).await.unwrap();
    let client_id = registered.client.client_id.clone();
    let email = format!("rp-{}@example.com", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    assert_eq!(app.register(&email, PASSWORD).await.status(), StatusCode::CREATED);

    let verifier = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let mut params = vec![
        ("response_type", "code"),
        ("client_id", client_id.as_str()),
        ("redirect_uri", redirect.as_str()),
        ("scope", "openid email"),
        ("state", "xyz"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    if form_post {
        params.push(("response_mode", "form_post"));
    }
    let authorize = format!("/oauth2/authorize?{}", serde_urlencoded::to_string(&params).unwrap());
    let mode = if form_post { "form_post" } else { "query" };

    let profile = tempfile::tempdir().unwrap();
    let (_driver, client) = start_browser(browser, driver, profile.path()).await;
    let s = Session { app: &app, client, shots: std::env::var_os("LATCHKEY_SCREENSHOTS").map(Into::into) };

    // Not signed in: the sign-in page, then the consent page.
    s.sign_in_to(&authorize, &email).await;
    s.expect_path("/oauth2/authorize?").await;
    s.page_state(&format!("consent_{mode}")).await;
    assert!(s.text("h1").await.contains("Chromium RP"), "{}", s.client.source().await.unwrap());
    s.watch_csp().await;
    s.click("button[name=decision][value=allow]").await;
    let (line, body) = s.callback(&received, &format!("Allow on the consent page ({mode})")).await;
    s.page_state(&format!("callback_{mode}")).await;
    let answer = response_params(&line, &body, form_post);
    let get = |name: &str| answer.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    assert_eq!(get("state").as_deref(), Some("xyz"), "{line} {body}");
    assert_eq!(get("iss").as_deref(), Some(app.services.config.issuer.as_str()), "{line} {body}");
    let code = get("code").unwrap_or_else(|| panic!("no code: {line} {body}"));
    assert!(s.client.source().await.unwrap().contains("callback ok"));

    // The code is good: the token endpoint exchanges it (with the PKCE verifier) for tokens.
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", redirect.as_str()),
        ("code_verifier", verifier.as_str()),
    ];
    let r = app
        .client
        .post(app.url("/oauth2/token"))
        .basic_auth(&client_id, registered.secret.as_deref())
        .form(&form)
        .send()
        .await
        .unwrap();
    let tokens = expect_json(r, StatusCode::OK).await;
    assert!(tokens["access_token"].is_string() && tokens["id_token"].is_string(), "{tokens}");

    // Signed out and back: consent is remembered, so the sign-in form itself leads to the application.
    s.open("/account").await;
    s.sign_out().await;
    received.lock().unwrap().clear();
    s.sign_in_to(&authorize, &email).await;
    let (line, body) = s.callback(&received, &format!("the sign-in form with consent remembered ({mode})")).await;
    let answer = response_params(&line, &body, form_post);
    assert!(answer.iter().any(|(k, v)| k == "state" && v == "xyz"), "{line} {body}");
    assert!(answer.iter().any(|(k, v)| k == "code" && !v.is_empty()), "{line} {body}");

    s.client.close().await.unwrap();
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(test_peer = "chromium"), ignore = "needs LATCHKEY_TEST_PEERS=chromium when built")]
async fn an_application_signs_a_person_in_through_chromium() {
    an_application_signs_a_person_in(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(test_peer = "chromium"), ignore = "needs LATCHKEY_TEST_PEERS=chromium when built")]
async fn an_application_gets_a_form_post_through_chromium() {
    an_application_signs_a_person_in(true).await;
}
