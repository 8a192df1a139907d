//! Forward authentication end to end through a real nginx (`auth_request`) and a real Caddy
//! (`forward_auth`), each in front of an upstream that echoes the identity headers it receives. Each is
//! ignored unless `LATCHKEY_TEST_PEERS` names its proxy (`.ci/run` installs both). nginx runs as one
//! process (`master_process off`), so that killing it leaves no worker behind.

use std::{path::Path, process::Stdio, sync::Arc, time::Duration};

use reqwest::cookie::CookieStore;

use axum::{Json, Router, http::HeaderMap, routing::get};
use reqwest::{StatusCode, header};
use serde_json::{Value, json};

use crate::helpers::{Backend, PASSWORD, TestApp, csrf_of, enable_mfa_on, expect_json, installed, spawn};

const RULES: &str = r#"
[[rules]]
hosts = ["app.test"]
paths = ["/admin"]
policy = "signed_in"
roles = ["admin"]

[[rules]]
hosts = ["app.test"]
paths = ["/vault"]
policy = "mfa"

[[rules]]
hosts = ["app.test"]
policy = "signed_in"
"#;

fn nginx_config(dir: &Path, listen: u16, latchkey: &str, upstream: u16) -> String {
    let d = dir.display();
    format!(
        r#"daemon off;
master_process off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{listen};
        location = /_latchkey {{
            internal;
            proxy_pass {latchkey}/api/v1/authz/auth-request;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URL $scheme://$http_host$request_uri;
            proxy_set_header X-Original-Method $request_method;
        }}
        location / {{
            auth_request /_latchkey;
            auth_request_set $lk_user $upstream_http_remote_user;
            auth_request_set $lk_email $upstream_http_remote_email;
            auth_request_set $lk_groups $upstream_http_remote_groups;
            auth_request_set $lk_sign_in $upstream_http_location;
            error_page 401 = @sign_in;
            proxy_set_header Remote-User $lk_user;
            proxy_set_header Remote-Email $lk_email;
            proxy_set_header Remote-Groups $lk_groups;
            proxy_pass http://127.0.0.1:{upstream};
        }}
        location @sign_in {{
            return 302 $lk_sign_in;
        }}
    }}
}}
"#
    )
}

/// The application behind the proxy: answers with the identity headers it was given.
async fn echo_upstream() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = Router::new().fallback(get(|headers: HeaderMap| async move {
        let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        Json(json!({"user": get("remote-user"), "email": get("remote-email"), "groups": get("remote-groups")}))
    }));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    port
}

/// A proxy process, killed with the test.
struct Proxy(std::process::Child);

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Latchkey with the rules above, and the echoing upstream.
async fn app_and_upstream() -> (TestApp, u16, tempfile::NamedTempFile) {
    let rules = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(rules.path(), RULES).unwrap();
    let rules_path = rules.path().to_path_buf();
    // Latchkey at auth.test and the application at app.test share the session cookie.
    let app = spawn(Backend::Sqlite, move |c| {
        c.access_rules = Some(rules_path);
        c.issuer = "http://auth.test".into();
        c.cookie_domain = Some("test".into());
    })
    .await
    .unwrap();
    (app, echo_upstream().await, rules)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(test_peer = "nginx"), ignore = "needs LATCHKEY_TEST_PEERS=nginx when built")]
async fn nginx_auth_request_protects_an_app() {
    let nginx = installed(&["/usr/sbin/nginx", "/usr/bin/nginx"], "apt-get install nginx-light");
    let (app, upstream, _rules) = app_and_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let listen = free_port();
    let conf = dir.path().join("nginx.conf");
    std::fs::write(&conf, nginx_config(dir.path(), listen, &app.base, upstream)).unwrap();
    let child = std::process::Command::new(nginx)
        .args(["-p", dir.path().to_str().unwrap(), "-c", conf.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx starts");
    let _nginx = Proxy(child);
    protects(&app, listen).await;
    app.finish().await;
}

/// Caddy's `forward_auth`, as the README shows it.
fn caddy_config(listen: u16, latchkey: &str, upstream: u16) -> String {
    let latchkey = latchkey.trim_start_matches("http://");
    format!(
        r#"{{
    admin off
    auto_https off
}}
http://:{listen} {{
    bind 127.0.0.1
    forward_auth {latchkey} {{
        uri /api/v1/authz/forward-auth
        copy_headers Remote-User Remote-Email Remote-Groups
    }}
    reverse_proxy 127.0.0.1:{upstream}
}}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(test_peer = "caddy"), ignore = "needs LATCHKEY_TEST_PEERS=caddy when built")]
async fn caddy_forward_auth_protects_an_app() {
    let caddy = installed(&["/usr/bin/caddy", "/usr/local/bin/caddy"], "apt-get install caddy");
    let (app, upstream, _rules) = app_and_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let listen = free_port();
    let conf = dir.path().join("Caddyfile");
    std::fs::write(&conf, caddy_config(listen, &app.base, upstream)).unwrap();
    let child = std::process::Command::new(caddy)
        .args(["run", "--adapter", "caddyfile", "--config", conf.to_str().unwrap()])
        .env("HOME", dir.path())
        .env("XDG_DATA_HOME", dir.path())
        .env("XDG_CONFIG_HOME", dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("caddy starts");
    let _caddy = Proxy(child);
    protects(&app, listen).await;
    app.finish().await;
}

/// What every proxy in front of the echoing upstream must do, as a browser goes through it: the
/// application at `app.test:{listen}` (the proxy), Latchkey at `auth.test` (its test port), one cookie
/// domain.
async fn protects(app: &TestApp, listen: u16) {
    let proxy = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let through = |path: &str, host: &str, cookie: Option<&str>, forged: bool| {
        let mut r = proxy.get(format!("http://127.0.0.1:{listen}{path}")).header(header::HOST, host);
        if let Some(cookie) = cookie {
            r = r.header(header::COOKIE, cookie);
        }
        if forged {
            r = r.header("remote-user", "root").header("remote-groups", "admin");
        }
        r.send()
    };
    let mut up = false;
    for _ in 0..200 {
        if through("/", "app.test", None, false).await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "the proxy did not start");

    let jar = Arc::new(reqwest::cookie::Jar::default());
    let local = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let browser = reqwest::Client::builder()
        .cookie_provider(Arc::clone(&jar))
        .redirect(reqwest::redirect::Policy::none())
        .resolve("auth.test", local)
        .resolve("app.test", local)
        .build()
        .unwrap();
    let auth = format!("http://auth.test:{}", app.base.rsplit(':').next().unwrap());
    // Latchkey's links name its issuer, which has no port here; the browser needs the test's.
    let at_latchkey = |location: &str| location.replacen("http://auth.test/", &format!("{auth}/"), 1);
    let app_url = |path: &str| format!("http://app.test:{listen}{path}");
    let location = |r: &reqwest::Response| r.headers()[header::LOCATION].to_str().unwrap().to_string();

    // Not signed in: sent to sign-in, with the way back; a forged identity does not get through.
    let r = through("/reports", "app.test", None, true).await.unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    let r = browser.get(app_url("/reports?x=1")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    let sign_in = location(&r);
    assert_eq!(sign_in, format!("http://auth.test/login?next=http%3A%2F%2Fapp%2Etest%3A{listen}%2Freports%3Fx%3D1"));

    // Signing in on that page leads back to the application, which gets the user's headers.
    let email = format!("proxied-{listen}@example.com");
    assert_eq!(app.register(&email, PASSWORD).await.status(), StatusCode::CREATED);
    let page = browser.get(at_latchkey(&sign_in)).send().await.unwrap().text().await.unwrap();
    let form = [("csrf", csrf_of(&page)), ("username", email.clone()), ("password", PASSWORD.to_string())];
    let r = browser.post(at_latchkey(&sign_in)).form(&form).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), app_url("/reports?x=1"));
    let seen: Value = expect_json(browser.get(app_url("/reports?x=1")).send().await.unwrap(), StatusCode::OK).await;
    assert_eq!(seen, json!({"user": email, "email": email, "groups": "viewer"}));

    // What the client says it is does not replace what Latchkey said.
    let app_origin = app_url("/").parse().unwrap();
    let cookie = jar.cookies(&app_origin).expect("the shared cookie").to_str().unwrap().to_string();
    let seen: Value =
        expect_json(through("/reports", "app.test", Some(&cookie), true).await.unwrap(), StatusCode::OK).await;
    assert_eq!(seen["user"], email);
    assert_eq!(seen["groups"], "viewer");
    // A role rule.
    assert_eq!(through("/admin", "app.test", Some(&cookie), false).await.unwrap().status(), StatusCode::FORBIDDEN);
    // A host the rules do not name.
    assert_eq!(through("/", "evil.test", Some(&cookie), false).await.unwrap().status(), StatusCode::FORBIDDEN);

    // An mfa rule: the password-only session is sent through the second factor and back.
    let (mut authenticator, _) = enable_mfa_on(&auth, &browser).await;
    let r = browser.get(app_url("/vault")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    let step_up = at_latchkey(&location(&r));
    assert!(step_up.starts_with(&format!("{auth}/login/mfa?next=")), "{step_up}");
    let page = browser.get(&step_up).send().await.unwrap().text().await.unwrap();
    let code = authenticator.next_code().await;
    let r = browser.post(&step_up).form(&[("csrf", csrf_of(&page)), ("code", code)]).send().await.unwrap();
    assert_eq!(location(&r), app_url("/vault"));
    let seen: Value = expect_json(browser.get(app_url("/vault")).send().await.unwrap(), StatusCode::OK).await;
    assert_eq!(seen["email"], email);

    // Signed out on Latchkey's page: the next proxied request goes to sign-in again.
    let account = browser.get(format!("{auth}/account")).send().await.unwrap().text().await.unwrap();
    browser.post(format!("{auth}/logout")).form(&[("csrf", csrf_of(&account))]).send().await.unwrap();
    assert_eq!(browser.get(app_url("/reports")).send().await.unwrap().status(), StatusCode::FOUND);
}
