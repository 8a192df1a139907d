//! Passkeys end to end in headless Chromium with the WebDriver virtual authenticator (W3C WebAuthn §11): a
//! passkey added on `/account`, usernameless sign-in on `/login` (the signature counter growing), the passkey as
//! second factor after a password, and a removed passkey refused. A sign-in without user verification is
//! tested over HTTP only (tests/api/passkeys.rs): Chromium's virtual authenticator refuses a discoverable
//! request when it does not verify the user (`isUserVerified: false`, or no user verification at all).
//! Served on `http://localhost`, since Chromium allows WebAuthn there and not on `127.0.0.1`.

use axum::http::Method;
use fantoccini::{Client, wd::WebDriverCompatibleCommand};
use latchkey::store::audit::AuditQuery;
use reqwest::{StatusCode, Url};
use serde_json::{Value, json};

use crate::{
    browser::{Session, chromium, start_browser},
    helpers::{Backend, PASSWORD, spawn},
};

/// One command of the WebDriver WebAuthn extension, under `/session/{id}/webauthn/`.
#[derive(Debug)]
struct VirtualAuthenticator {
    method: Method,
    path: String,
    body: Option<Value>,
}

impl WebDriverCompatibleCommand for VirtualAuthenticator {
    fn endpoint(&self, base: &Url, session: Option<&str>) -> Result<Url, <Url as std::str::FromStr>::Err> {
        base.join(&format!("session/{}/webauthn/{}", session.unwrap_or_default(), self.path))
    }

    fn method_and_body(&self, _: &Url) -> (Method, Option<String>) {
        (self.method.clone(), self.body.as_ref().map(Value::to_string))
    }
}

async fn webauthn(client: &Client, method: Method, path: String, body: Option<Value>) -> Value {
    let command = VirtualAuthenticator { method, path: path.clone(), body };
    client.issue_cmd(command).await.unwrap_or_else(|e| panic!("webauthn/{path}: {e}"))
}

/// A platform authenticator that keeps discoverable credentials and verifies the user (a fingerprint).
async fn add_authenticator(client: &Client) -> String {
    let options = json!({
        "protocol": "ctap2", "transport": "internal", "hasResidentKey": true, "hasUserVerification": true,
        "isUserConsenting": true, "isUserVerified": true,
    });
    let id = webauthn(client, Method::POST, "authenticator".into(), Some(options)).await;
    id.as_str().expect("authenticator id").to_string()
}

async fn credentials(client: &Client, authenticator: &str) -> Vec<Value> {
    let list = webauthn(client, Method::GET, format!("authenticator/{authenticator}/credentials"), None).await;
    list.as_array().expect("credentials").clone()
}

async fn sign_count(client: &Client, authenticator: &str) -> u64 {
    let list = credentials(client, authenticator).await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["isResidentCredential"], true, "a discoverable credential: {list:?}");
    list[0]["signCount"].as_u64().expect("signCount")
}

/// How the latest sign-in of `user` was made, from the audit log.
async fn last_login_method(s: &Session<'_>, user: uuid::Uuid) -> String {
    let query = AuditQuery::latest(Some(user), Some("login"), 1);
    let events = s.app.services.audit_events(&query).await.unwrap();
    let detail = &events.first().expect("a sign-in").detail;
    let method = detail["method"].as_str().expect("a method");
    match detail["second_factor"].as_str() {
        Some(factor) => format!("{method}+{factor}"),
        None => method.to_string(),
    }
}

/// Signs out, then in with the passkey without a username; returns the signature counter after. Chromium's
/// virtual authenticator answers at once the conditional (autofill) request that `/login` makes when it
/// loads, so the sign-in usually happens without a click, and the button is pressed when it has not.
async fn sign_out_and_in_with_the_passkey(s: &Session<'_>, authenticator: &str, counter: u64) -> u64 {
    s.click("form[action='/logout'] button").await;
    for tick in 0..50 {
        let now = sign_count(&s.client, authenticator).await;
        if now > counter {
            s.expect_path("/account").await;
            return now;
        }
        if tick == 30
            && let Ok(button) = s.client.find(fantoccini::Locator::Css("button[data-passkey=login]")).await
        {
            let _ = button.click().await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("no passkey sign-in within 5 s, at {}: {}", s.path().await, s.text("main").await);
}

/// Waits up to 5 s for an element `css` whose text contains `words` (the page may still be loading).
async fn wait_for_text(s: &Session<'_>, css: &str, words: &str) -> String {
    for _ in 0..50 {
        if let Ok(element) = s.client.find(fantoccini::Locator::Css(css)).await
            && let Ok(text) = element.text().await
            && text.contains(words)
        {
            return text;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("no {css} saying {words:?} within 5 s, at {}: {}", s.path().await, s.text("main").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(test_peer = "chromium"), ignore = "needs LATCHKEY_TEST_PEERS=chromium when built")]
async fn a_person_signs_in_with_a_passkey_in_chromium() {
    let (browser, driver) = chromium();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut app = spawn(Backend::Sqlite, |c| {
        c.bind = ([127, 0, 0, 1], port).into();
        c.issuer = format!("http://localhost:{port}");
    })
    .await
    .unwrap();
    app.base = format!("http://localhost:{port}");
    let email = "passkey@example.com";
    let registered = app.register(email, PASSWORD).await;
    assert_eq!(registered.status(), StatusCode::CREATED);
    let user = app.services.find_user(email).await.unwrap().profile.id;

    let profile = tempfile::tempdir().unwrap();
    let (_driver, client) = start_browser(browser, driver, profile.path()).await;
    let s = Session { app: &app, client, shots: std::env::var_os("LATCHKEY_SCREENSHOTS").map(Into::into) };
    let authenticator = add_authenticator(&s.client).await;

    // Add a passkey on the account page: the first second factor, so the backup codes come with it.
    s.sign_in(email, PASSWORD).await;
    s.expect_path("/account").await;
    s.page_state("passkeys_none").await;
    s.fill("#passkey-name", "Chromium laptop").await;
    s.click("button[data-passkey=register]").await;
    s.expect_path("/account/passkeys").await;
    let codes = s.text("#backup-codes").await;
    assert_eq!(codes.lines().filter(|l| !l.trim().is_empty()).count(), 10, "{codes}");
    s.open("/account").await;
    assert!(s.text("#passkeys").await.contains("Chromium laptop"));
    s.page_state("passkeys_added").await;

    // The session that added it gave the password alone: the step-up page takes the passkey as its second
    // factor and goes on to where it was asked to.
    s.open("/login/mfa?next=%2Faccount").await;
    s.page_state("step_up_passkey").await;
    s.click("button[data-passkey=mfa]").await;
    s.expect_path("/account").await;
    let stepped_up = app.services.audit_events(&AuditQuery::latest(Some(user), Some("mfa_step_up"), 1)).await;
    assert_eq!(stepped_up.unwrap().first().expect("a step-up").detail["method"], "pop");
    let mut counter = sign_count(&s.client, &authenticator).await;

    // Usernameless sign-in, several times; each one moves the signature counter on.
    for round in 0..3 {
        let now = sign_out_and_in_with_the_passkey(&s, &authenticator, counter).await;
        assert_eq!(last_login_method(&s, user).await, "passkey", "round {round}");
        counter = now;
    }

    // A password, then the passkey as the second factor. The authenticator is unplugged while the password
    // is typed (or `/login`'s autofill request would sign in with it at once) and plugged in again after.
    let saved = credentials(&s.client, &authenticator).await.remove(0);
    webauthn(&s.client, Method::DELETE, format!("authenticator/{authenticator}"), None).await;
    s.sign_out().await;
    s.sign_in(email, PASSWORD).await;
    s.expect_path("/login/mfa").await;
    let authenticator = add_authenticator(&s.client).await;
    webauthn(&s.client, Method::POST, format!("authenticator/{authenticator}/credential"), Some(saved)).await;
    s.page_state("login_mfa_passkey").await;
    s.click("button[data-passkey=mfa]").await;
    s.expect_path("/account").await;
    assert_eq!(last_login_method(&s, user).await, "password+pop");

    // Removing the last second factor asks for the password; the passkey then no longer signs anyone in.
    s.fill("#passkeys form[action='/account/passkeys/remove'] input[name=password]", PASSWORD).await;
    s.click("#passkeys form[action='/account/passkeys/remove'] button").await;
    s.expect_path("/account?done=passkey_removed").await;
    assert!(s.text("#passkeys").await.contains("No passkey yet."));
    s.click("form[action='/logout'] button").await;
    // The credential is unknown now, so the refusal names no account; the page says what may have happened.
    wait_for_text(&s, "p.error", "not accepted").await;
    s.page_state("login_passkey_refused").await;
    assert!(s.path().await.starts_with("/login"), "{}", s.path().await);
    let refused = AuditQuery::latest(None, Some("passkey_login_failed"), 10);
    let refusals = app.services.audit_events(&refused).await.unwrap();
    assert_eq!(refusals.len(), 1, "refused once, and not offered again at once by the autofill");

    s.client.close().await.unwrap();
    app.finish().await;
}
