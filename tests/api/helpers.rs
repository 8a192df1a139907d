//! Starts the real application on a random port, on SQLite or PostgreSQL, and talks to it over HTTP.

use std::time::Duration;

use latchkey::{
    app::{AppState, Application},
    config::{Config, SecretKeySource},
};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use zeroize::Zeroizing;

pub const PASSWORD: &str = "correct horse battery staple plume";

#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub services: AppState,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    postgres_db: Option<String>,
    _dir: tempfile::TempDir,
}

/// Test settings: cheap Argon2, a fresh database, a random sealing key, fast revocation sync.
fn test_config(dir: &std::path::Path) -> Config {
    Config {
        bind: "127.0.0.1:0".parse().expect("address"),
        database_url: format!("sqlite://{}", dir.join("latchkey.db").display()),
        argon2_memory_kib: 1024,
        argon2_iterations: 1,
        secret_key: SecretKeySource::Inline(Zeroizing::new(rand_key())),
        revocation_poll: Duration::from_millis(100),
        key_reload: Duration::from_millis(100),
        outbox_poll: Duration::from_millis(50),
        outbox_retry: Duration::from_millis(100),
        // Every test talks from 127.0.0.1; the rate-limit tests turn the limit back on.
        rate_limit_per_minute: 0,
        ..Config::default()
    }
}

fn rand_key() -> [u8; 32] {
    let mut key = [0u8; 32];
    key.iter_mut().zip(uuid::Uuid::new_v4().as_bytes().iter().cycle()).for_each(|(k, r)| *k = *r);
    key
}

/// The first of `candidates` that is installed. A test calls this only when `LATCHKEY_TEST_PEERS` said the
/// program is there (build.rs), so its absence is a failure, not a skip.
pub fn installed(candidates: &[&'static str], install: &str) -> &'static str {
    let found = candidates.iter().copied().find(|p| std::path::Path::new(p).exists());
    found.unwrap_or_else(|| panic!("LATCHKEY_TEST_PEERS names it, but none of {candidates:?} is installed: {install}"))
}

pub fn postgres_url() -> Option<String> {
    std::env::var("LATCHKEY_TEST_POSTGRES_URL").ok().filter(|u| !u.is_empty())
}

pub fn redis_url() -> Option<String> {
    std::env::var("LATCHKEY_TEST_REDIS_URL").ok().filter(|u| !u.is_empty())
}

/// A database of its own on the test PostgreSQL server.
pub struct PostgresDb {
    pub name: String,
    pub url: String,
    admin_url: String,
}

impl PostgresDb {
    pub async fn create(admin_url: &str) -> Self {
        let (name, url) = create_postgres_db(admin_url).await;
        Self { name, url, admin_url: admin_url.to_string() }
    }

    pub async fn drop_it(self) {
        drop_postgres_db(&self.admin_url, &self.name).await;
    }
}

async fn drop_postgres_db(admin_url: &str, name: &str) {
    use sqlx::Connection;
    if let Ok(mut conn) = sqlx::PgConnection::connect(admin_url).await {
        let _ =
            sqlx::Executor::execute(&mut conn, format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#).as_str())
                .await;
    }
}

/// A new database on the test server, so tests run in parallel without seeing each other's rows.
async fn create_postgres_db(admin_url: &str) -> (String, String) {
    use sqlx::Connection;
    let name = format!("lk_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(admin_url).await.expect("connect to LATCHKEY_TEST_POSTGRES_URL");
    sqlx::Executor::execute(&mut conn, format!(r#"CREATE DATABASE "{name}""#).as_str()).await.expect("create database");
    let base = admin_url.split('?').next().unwrap_or(admin_url);
    let server = &base[..base.rfind('/').expect("a database path in the URL")];
    (name.clone(), format!("{server}/{name}"))
}

pub async fn spawn(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Option<TestApp> {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = test_config(dir.path());
    let mut postgres_db = None;
    if let Backend::Postgres = backend {
        let admin = postgres_url()?;
        let (name, url) = create_postgres_db(&admin).await;
        config.database_url = url;
        postgres_db = Some(name);
    }
    tweak(&mut config);
    let app = Application::build(config).await.expect("application starts");
    let base = format!("http://{}", app.local_addr().expect("bound"));
    let services = app.services().clone();
    let (tx, rx) = oneshot::channel();
    let server = tokio::spawn(async move {
        app.run_until(async {
            let _ = rx.await;
        })
        .await
        .expect("server runs");
    });
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    Some(TestApp { base, client, services, shutdown: Some(tx), server: Some(server), postgres_db, _dir: dir })
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("/api") || !path.starts_with("/auth") {
            format!("{}{path}", self.base)
        } else {
            format!("{}/api/v1{path}", self.base)
        }
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.client.post(self.url(path)).json(body).send().await.expect("request")
    }

    pub async fn post_bearer(&self, path: &str, token: &str) -> Response {
        self.client.post(self.url(path)).bearer_auth(token).send().await.expect("request")
    }

    pub async fn get_bearer(&self, path: &str, token: &str) -> Response {
        self.client.get(self.url(path)).bearer_auth(token).send().await.expect("request")
    }

    pub async fn register(&self, email: &str, password: &str) -> Response {
        self.post_json("/auth/register", &json!({"email": email, "password": password})).await
    }

    pub async fn login(&self, username: &str, password: &str) -> Response {
        self.post_json("/auth/login", &json!({"username": username, "password": password})).await
    }

    pub async fn refresh(&self, refresh_token: &str) -> Response {
        self.post_json("/auth/refresh", &json!({"refresh_token": refresh_token})).await
    }

    pub async fn me(&self, access_token: &str) -> Response {
        self.get_bearer("/auth/me", access_token).await
    }

    /// Registers a fresh user; returns its email and the registration's token pair.
    pub async fn new_user(&self) -> (String, Value) {
        let email = format!("user-{}@example.com", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        let pair = expect_json(self.register(&email, PASSWORD).await, StatusCode::CREATED).await;
        (email, pair)
    }

    /// Registers `email` and signs in through the pages: the browser (with its cookie store) and the session
    /// cookie as `name=value`, for sending by hand (as a reverse proxy passes it on).
    pub async fn signed_in_browser(&self, email: &str) -> (reqwest::Client, String) {
        assert_eq!(self.register(email, PASSWORD).await.status(), StatusCode::CREATED);
        let browser =
            reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let page = browser.get(self.url("/login")).send().await.unwrap().text().await.unwrap();
        let csrf = csrf_of(&page);
        let form = [("csrf", csrf.as_str()), ("username", email), ("password", PASSWORD)];
        let signed_in = browser.post(self.url("/login")).form(&form).send().await.unwrap();
        let cookie = signed_in
            .headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
            .find(|c| c.starts_with("latchkey_session="))
            .expect("a session cookie");
        (browser, cookie)
    }

    /// Turns on two-factor authentication through the account page of a signed-in browser (see
    /// `enable_mfa_on`).
    pub async fn enable_mfa_in_browser(&self, browser: &reqwest::Client) -> (crate::mfa::Authenticator, Vec<String>) {
        enable_mfa_on(&self.base, browser).await
    }

    /// Stops the server and, on PostgreSQL, drops the test's database.
    pub async fn finish(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
        }
        self.services.db.pool().close().await;
        if let (Some(name), Some(admin)) = (self.postgres_db.take(), postgres_url()) {
            drop_postgres_db(&admin, &name).await;
        }
    }
}

/// Turns on two-factor authentication through the account page of a signed-in browser at `base`, whose
/// own session stays the password-only one it was. Returns the authenticator and the backup codes.
pub async fn enable_mfa_on(base: &str, browser: &reqwest::Client) -> (crate::mfa::Authenticator, Vec<String>) {
    let account = browser.get(format!("{base}/account")).send().await.unwrap().text().await.unwrap();
    let r =
        browser.post(format!("{base}/account/mfa/setup")).form(&[("csrf", csrf_of(&account))]).send().await.unwrap();
    let page = r.text().await.unwrap();
    assert!(page.contains("data:image/png;base64,"), "the setup page shows a QR code");
    let grouped = page.split(r#"id="secret" class="secret">"#).nth(1).unwrap().split('<').next().unwrap();
    let mut authenticator = crate::mfa::Authenticator::new(&grouped.replace(' ', ""));
    let code = authenticator.next_code().await;
    let form = [("csrf", csrf_of(&page)), ("code", code)];
    let r = browser.post(format!("{base}/account/mfa/enable")).form(&form).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let codes_page = r.text().await.unwrap();
    let codes = codes_page.split("<li><code>").skip(1).map(|c| c.split('<').next().unwrap().to_string()).collect();
    (authenticator, codes)
}

/// The CSRF token of a page's first form.
pub fn csrf_of(html: &str) -> String {
    let marker = r#"name="csrf" value=""#;
    let start = html.find(marker).expect("a csrf field") + marker.len();
    html[start..].split('"').next().unwrap().to_string()
}

/// Asserts the status (showing the body when it differs) and returns the JSON body.
pub async fn expect_json(response: Response, status: StatusCode) -> Value {
    let actual = response.status();
    let text = response.text().await.expect("body");
    assert_eq!(actual, status, "unexpected status; body: {text}");
    if text.is_empty() { Value::Null } else { serde_json::from_str(&text).expect("JSON body") }
}

/// Asserts an API error: status, `error` code, and no internals in the message.
pub async fn expect_error(response: Response, status: StatusCode, code: &str) -> Value {
    let body = expect_json(response, status).await;
    assert_eq!(body["error"], code, "body: {body}");
    let message = body["message"].as_str().expect("message");
    for leak in ["sqlx", "SELECT", "panicked", "src/", ".rs", "thread"] {
        assert!(!message.contains(leak), "internal detail in {message}");
    }
    body
}

pub fn token(pair: &Value, name: &str) -> String {
    pair[name].as_str().unwrap_or_else(|| panic!("{name} in {pair}")).to_string()
}

/// Defines `<name>::sqlite` and `<name>::postgres` tests that run `async fn name(&TestApp)`; the
/// PostgreSQL one is ignored unless `LATCHKEY_TEST_POSTGRES_URL` was set when the tests were built (build.rs).
#[macro_export]
macro_rules! on_both {
    ($name:ident) => {
        $crate::on_both!($name, |_config| {});
    };
    ($name:ident, $tweak:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let app = $crate::helpers::spawn($crate::helpers::Backend::Sqlite, $tweak).await.expect("sqlite app");
                super::$name(&app).await;
                app.finish().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[cfg_attr(not(test_postgres), ignore = "needs LATCHKEY_TEST_POSTGRES_URL when built")]
            async fn postgres() {
                let app = $crate::helpers::spawn($crate::helpers::Backend::Postgres, $tweak).await;
                let app = app.expect("LATCHKEY_TEST_POSTGRES_URL was set when these tests were built, but not now");
                super::$name(&app).await;
                app.finish().await;
            }
        }
    };
}
