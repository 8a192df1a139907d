//! A certified relying party: the npm library `openid-client` (tests/node/openid_client.mjs) signs a person
//! in through Latchkey — discovery, PKCE S256, state, nonce, `iss` in the authorization response, ID-token
//! signatures against the JWKS, userinfo, rotating refresh, revocation — and builds the RP-initiated logout
//! URL, which the browser follows to end its session. This test plays the browser; node plays the
//! application. Skipped, with a notice, where node or the library is not installed (`.ci/run` runs
//! `npm ci --prefix tests/node`).

use std::{
    io::{BufRead, BufReader, Read, Write},
    path::Path,
    process::{Child, ChildStdin, Command, Stdio},
    time::Duration,
};

use reqwest::{StatusCode, Url, header};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::{
    helpers::{Backend, PASSWORD, TestApp, expect_json, spawn},
    oidc_interop::{fill_in, issuer_is_the_address},
};

const REDIRECT: &str = "http://127.0.0.1:9/openid-client/callback";
const POST_LOGOUT: &str = "http://127.0.0.1:9/openid-client/signed-out";

/// The node process, killed when the test ends however it ends.
struct Node {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::UnboundedReceiver<String>,
    stderr: std::thread::JoinHandle<String>,
}

impl Node {
    fn start(dir: &Path, env: &[(&str, &str)]) -> Self {
        let mut child = Command::new("node")
            .arg("openid_client.mjs")
            .current_dir(dir)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("node starts");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        Node { child, stdin, lines, stderr }
    }

    /// The next JSON line, which must be `step`; on anything else, node's exit and standard error.
    async fn expect(&mut self, step: &str) -> Value {
        match tokio::time::timeout(Duration::from_secs(30), self.lines.recv()).await {
            Ok(Some(line)) => {
                eprintln!("node: {line}");
                let value: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON from node: {line}"));
                assert_eq!(value["step"], step, "node printed {value} where {step} was expected");
                value
            }
            Ok(None) => panic!("node ended before {step}: {}", self.failure()),
            Err(_) => panic!("no {step} from node within 30 s"),
        }
    }

    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("node's standard input");
        writeln!(stdin, "{line}").and_then(|_| stdin.flush()).expect("writing to node");
    }

    /// How node ended, with what it said on standard error.
    fn failure(&mut self) -> String {
        self.stdin.take();
        let status = self.child.wait().map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
        let stderr = std::mem::replace(&mut self.stderr, std::thread::spawn(String::new));
        format!("{status}; stderr: {}", stderr.join().unwrap_or_default())
    }

    /// Waits for a clean exit.
    fn finish(mut self) {
        self.stdin.take();
        let status = self.child.wait().expect("node exits");
        let stderr = std::mem::replace(&mut self.stderr, std::thread::spawn(String::new));
        assert!(status.success(), "node: {status}; stderr: {}", stderr.join().unwrap_or_default());
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn node_is_there(dir: &Path) -> bool {
    let node = Command::new("node").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status();
    node.is_ok_and(|s| s.success()) && dir.join("node_modules/openid-client/package.json").exists()
}

/// Follows the authorization URL through the sign-in and consent pages until Latchkey sends the browser to
/// the client's redirect URI, which is not fetched: returns that URL.
async fn through_the_pages(app: &TestApp, browser: &reqwest::Client, start: &str, email: &str) -> Url {
    let mut next = Url::parse(start).unwrap();
    for _ in 0..10 {
        let r = browser.get(next.clone()).send().await.unwrap();
        let r = match r.status() {
            StatusCode::SEE_OTHER | StatusCode::FOUND => r,
            StatusCode::OK => fill_in(app, browser, &r.text().await.unwrap(), email).await,
            other => panic!("{other} at {next}: {}", r.text().await.unwrap_or_default()),
        };
        assert!(r.status().is_redirection(), "{} after a page at {next}", r.status());
        let to = next.join(r.headers()[header::LOCATION].to_str().unwrap()).unwrap();
        if to.as_str().starts_with(REDIRECT) {
            return to;
        }
        next = to;
    }
    panic!("the flow did not come back to the client");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(test_peer = "node"), ignore = "needs LATCHKEY_TEST_PEERS=node when built")]
async fn openid_client_signs_in_refreshes_and_logs_out() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node");
    assert!(node_is_there(&dir), "LATCHKEY_TEST_PEERS names node: install it and run npm ci --prefix tests/node");
    let app = spawn(Backend::Sqlite, issuer_is_the_address).await.unwrap();
    let email = format!("node-{}@example.com", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let registered = expect_json(app.register(&email, PASSWORD).await, StatusCode::CREATED).await;
    let user_id = registered["user"]["id"].as_str().expect("the user's id").to_string();
    let settings = serde_json::from_value(json!({
        "name": "openid-client",
        "redirect_uris": [REDIRECT],
        "post_logout_redirect_uris": [POST_LOGOUT],
    }))
    .unwrap();
    let operator = latchkey::service::admin::Actor::Operator;
    let registered = app.services.create_client(operator, settings, &Default::default()).await.unwrap();
    let client_id = registered.client.client_id.clone();
    let issuer = app.services.config.issuer.clone();

    let mut node = Node::start(
        &dir,
        &[
            ("ISSUER", &issuer),
            ("CLIENT_ID", &client_id),
            ("CLIENT_SECRET", registered.secret.as_deref().unwrap()),
            ("REDIRECT_URI", REDIRECT),
            ("POST_LOGOUT_REDIRECT_URI", POST_LOGOUT),
        ],
    );
    let discovery = node.expect("discovery").await;
    assert_eq!(discovery["issuer"], issuer.as_str());
    assert_eq!(discovery["pkce"], true, "S256 is advertised");
    let authorization = node.expect("authorization_url").await;
    let url = authorization["url"].as_str().unwrap();
    assert!(url.starts_with(&format!("{issuer}/")), "{url} is on the issuer");

    // The browser signs in, consents, and is sent back with the code, state and iss.
    let browser =
        reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let callback = through_the_pages(&app, &browser, url, &email).await;
    let param = |name: &str| callback.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
    assert_eq!(param("state").as_deref(), authorization["state"].as_str());
    assert_eq!(param("iss").as_deref(), Some(issuer.as_str()));
    assert!(param("code").is_some(), "a code in {callback}");
    node.send(callback.as_str());

    // The library checked state, iss, the PKCE exchange, the nonce and the ID token's signature.
    let tokens = node.expect("tokens").await;
    let claims = &tokens["claims"];
    assert_eq!(claims["sub"], user_id.as_str());
    assert_eq!(claims["iss"], issuer.as_str());
    assert_eq!(claims["aud"], client_id.as_str());
    assert_eq!(claims["nonce"], authorization["nonce"]);
    assert_eq!(claims["email"], email.as_str());
    assert_eq!(claims["email_verified"], false);
    assert_eq!(claims["role"], "viewer");
    assert_eq!(claims["acr"], "pwd");
    assert!(claims["sid"].is_string() && claims["at_hash"].is_string() && claims["auth_time"].is_number(), "{claims}");
    assert_eq!(tokens["has_refresh_token"], true);
    let scope = tokens["scope"].as_str().unwrap_or_default();
    for s in ["openid", "profile", "email", "offline_access", "roles"] {
        assert!(scope.split(' ').any(|g| g == s), "{s} granted in {scope:?}");
    }

    let userinfo = node.expect("userinfo").await;
    let userinfo = &userinfo["userinfo"];
    assert_eq!(userinfo["sub"], user_id.as_str());
    assert_eq!(userinfo["email"], email.as_str());
    assert_eq!(userinfo["preferred_username"], claims["preferred_username"]);

    let refresh = node.expect("refresh").await;
    assert_eq!(refresh["access_token_changed"], true);
    assert_eq!(refresh["refresh_token_changed"], true, "the refresh token rotates");
    assert_eq!(refresh["claims"]["sub"], user_id.as_str(), "a renewed ID token: {refresh}");
    assert_eq!(refresh["claims"]["aud"], client_id.as_str());

    let spent = node.expect("spent_refresh").await;
    assert_eq!(spent["error"], "invalid_grant", "{spent}");

    let revocation = node.expect("revocation").await;
    assert_eq!(revocation["revoked"], true, "{revocation}");
    assert_eq!(revocation["refresh"]["error"], "invalid_grant", "{revocation}");
    assert_eq!(revocation["userinfo"]["status"], 401, "{revocation}");
    assert_eq!(revocation["userinfo"]["error"], "invalid_token", "{revocation}");

    // RP-initiated logout: the browser, still signed in, follows the URL the library built.
    let end_session = node.expect("end_session_url").await;
    node.finish();
    let end_session_endpoint = discovery["end_session_endpoint"].as_str().expect("end_session_endpoint in discovery");
    let logout = Url::parse(end_session["url"].as_str().unwrap()).unwrap();
    assert!(logout.as_str().starts_with(end_session_endpoint), "{logout}");
    let account = browser.get(app.url("/account")).send().await.unwrap();
    assert_eq!(account.status(), StatusCode::OK, "signed in before the logout");
    let r = browser.get(logout.clone()).send().await.unwrap();
    let status = r.status();
    let location = r.headers().get(header::LOCATION).map(|l| l.to_str().unwrap().to_string());
    assert_eq!(status, StatusCode::SEE_OTHER, "{logout} answered {status}: {}", r.text().await.unwrap_or_default());
    let back = Url::parse(&location.unwrap()).unwrap();
    let state = back.query_pairs().find(|(k, _)| k == "state").map(|(_, v)| v.into_owned());
    let mut without_query = back.clone();
    without_query.set_query(None);
    assert_eq!(without_query.as_str(), POST_LOGOUT, "sent back to {back}");
    assert_eq!(state.as_deref(), end_session["state"].as_str());
    let account = browser.get(app.url("/account")).send().await.unwrap();
    assert!(account.status().is_redirection(), "{} at /account after the logout", account.status());
    let to = account.headers()[header::LOCATION].to_str().unwrap();
    assert!(to.starts_with("/login"), "/account sends to {to} after the logout");
    app.finish().await;
}
