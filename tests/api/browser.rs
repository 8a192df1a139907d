//! End to end in headless Chromium (Debian's `chromium` and `chromium-driver`), driven over WebDriver:
//! register, sign out and in, enroll TOTP with the secret read from the page, sign in with a code and with a
//! backup code, revoke a session, and deactivate a user as admin. Skipped, with a notice, when no browser is
//! installed. With `LATCHKEY_SCREENSHOTS=<dir>` it saves a screenshot of each page there.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use fantoccini::{Client, ClientBuilder, Locator};
use latchkey::{domain::roles::Role, service::accounts::InitialPassword};
use reqwest::StatusCode;

use crate::{
    helpers::{Backend, PASSWORD, TestApp, expect_error, expect_json, spawn},
    mfa::Authenticator,
};

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn installed() -> Option<(&'static str, &'static str)> {
    let browser = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].into_iter().find(|p| Path::new(p).exists())?;
    let driver = ["/usr/bin/chromedriver"].into_iter().find(|p| Path::new(p).exists())?;
    Some((browser, driver))
}

async fn start_browser(browser: &str, driver: &str, profile: &Path) -> (Driver, Client) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let guard = Driver(child);
    let caps: serde_json::Map<String, serde_json::Value> = serde_json::from_value(serde_json::json!({
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

struct Session<'a> {
    app: &'a TestApp,
    client: Client,
    shots: Option<std::path::PathBuf>,
}

impl Session<'_> {
    async fn open(&self, path: &str) {
        self.client.goto(&self.app.url(path)).await.unwrap();
    }

    async fn fill(&self, css: &str, text: &str) {
        let field = self.client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}"));
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    async fn click(&self, css: &str) {
        self.client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}")).click().await.unwrap();
    }

    async fn path(&self) -> String {
        let url = self.client.current_url().await.unwrap();
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        }
    }

    async fn expect_path(&self, expected: &str) {
        for _ in 0..50 {
            if self.path().await.starts_with(expected) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("expected {expected}, at {}", self.path().await);
    }

    async fn text(&self, css: &str) -> String {
        self.client.find(Locator::Css(css)).await.unwrap().text().await.unwrap()
    }

    async fn shot(&self, name: &str) {
        if let Some(dir) = &self.shots {
            std::fs::create_dir_all(dir).unwrap();
            std::fs::write(dir.join(format!("{name}.png")), self.client.screenshot().await.unwrap()).unwrap();
        }
    }

    async fn sign_in(&self, username: &str, password: &str) {
        self.open("/login").await;
        self.fill("#username", username).await;
        self.fill("#password", password).await;
        self.click("form[action^='/login'] button[type=submit]").await;
    }

    async fn sign_out(&self) {
        self.click("form[action='/logout'] button").await;
        self.expect_path("/login").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_uses_the_pages_in_chromium() {
    let Some((browser, driver)) = installed() else {
        eprintln!(
            "skipped the browser test: install chromium and chromium-driver (apt-get install -y chromium chromium-driver)"
        );
        return;
    };
    let app = spawn(Backend::Sqlite, |c| c.admin_require_mfa = false).await.unwrap();
    let profile = tempfile::tempdir().unwrap();
    let (_driver, client) = start_browser(browser, driver, profile.path()).await;
    let s = Session { app: &app, client, shots: std::env::var_os("LATCHKEY_SCREENSHOTS").map(Into::into) };

    // Register.
    s.open("/register").await;
    s.shot("register").await;
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
    s.shot("account").await;
    // On a phone-width screen nothing needs sideways scrolling.
    s.client.set_window_size(390, 844).await.unwrap();
    let overflow =
        s.client.execute("return document.documentElement.scrollWidth - window.innerWidth;", vec![]).await.unwrap();
    assert!(overflow.as_i64().unwrap() <= 0, "page wider than the screen by {overflow} px");
    s.shot("account_phone").await;
    s.client.set_window_size(1024, 1300).await.unwrap();

    // Sign out and in.
    s.sign_out().await;
    s.shot("login").await;
    s.sign_in("chromium@example.com", PASSWORD).await;
    s.expect_path("/account").await;

    // Enroll TOTP, reading the secret from the page.
    s.click("form[action='/account/mfa/setup'] button").await;
    s.expect_path("/account/mfa/setup").await;
    s.shot("mfa_setup").await;
    let mut authenticator = Authenticator::new(&s.text("#secret").await.replace(' ', ""));
    s.fill("#code", &authenticator.next_code().await).await;
    s.click("form[action='/account/mfa/enable'] button").await;
    s.expect_path("/account/mfa/enable").await;
    let codes = s.text("#backup-codes").await;
    let codes: Vec<&str> = codes.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    assert_eq!(codes.len(), 10);
    let backup_code = codes[0].to_string();
    s.shot("backup_codes").await;

    // Sign out; in again with a TOTP code.
    s.open("/account").await;
    s.sign_out().await;
    s.sign_in("chromium@example.com", PASSWORD).await;
    s.expect_path("/login/mfa").await;
    s.shot("login_mfa").await;
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
    s.shot("account_sessions").await;
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
    s.open(&format!("/admin?q={victim}")).await;
    s.shot("admin").await;
    s.click("form input[value='deactivate'] ~ button").await;
    s.expect_path("/admin?done=ok").await;
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
