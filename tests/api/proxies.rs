//! Forward authentication end to end through a real nginx (`auth_request`) and a real Caddy
//! (`forward_auth`), each in front of an upstream that echoes the identity headers it receives. Each is
//! skipped, with a notice, where its proxy is not installed (`.ci/run` installs both). nginx runs as one
//! process (`master_process off`), so that killing it leaves no worker behind.

use std::{path::Path, process::Stdio, time::Duration};

use axum::{Json, Router, http::HeaderMap, routing::get};
use reqwest::{StatusCode, header};
use serde_json::{Value, json};

use crate::helpers::{Backend, PASSWORD, TestApp, expect_json, spawn, token};

const RULES: &str = r#"
[[rules]]
hosts = ["app.test"]
paths = ["/admin"]
policy = "signed_in"
roles = ["admin"]

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

fn installed(candidates: &[&'static str]) -> Option<&'static str> {
    candidates.iter().copied().find(|p| Path::new(p).exists())
}

/// Latchkey with the rules above, and the echoing upstream.
async fn app_and_upstream() -> (TestApp, u16, tempfile::NamedTempFile) {
    let rules = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(rules.path(), RULES).unwrap();
    let rules_path = rules.path().to_path_buf();
    let app = spawn(Backend::Sqlite, move |c| c.access_rules = Some(rules_path)).await.unwrap();
    (app, echo_upstream().await, rules)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_auth_request_protects_an_app() {
    let Some(nginx) = installed(&["/usr/sbin/nginx", "/usr/bin/nginx"]) else {
        eprintln!("skipped nginx_auth_request_protects_an_app: nginx is not installed (apt-get install nginx-light)");
        return;
    };
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
async fn caddy_forward_auth_protects_an_app() {
    let Some(caddy) = installed(&["/usr/bin/caddy", "/usr/local/bin/caddy"]) else {
        eprintln!("skipped caddy_forward_auth_protects_an_app: caddy is not installed (apt-get install caddy)");
        return;
    };
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

/// What every proxy in front of the echoing upstream must do, asked through the proxy at `listen`.
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

    // Not signed in: sent to sign-in, with the way back; a forged identity does not get through.
    let r = through("/reports?x=1", "app.test", None, true).await.unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    let location = r.headers()[header::LOCATION].to_str().unwrap().to_string();
    assert_eq!(location, "http://localhost:8080/login?next=http%3A%2F%2Fapp%2Etest%2Freports%3Fx%3D1");

    // Signed in (the browser's session cookie, as a shared cookie domain would send it).
    let (_, cookie) = app.signed_in_browser(&format!("proxied-{listen}@example.com")).await;
    let r = through("/reports", "app.test", Some(&cookie), true).await.unwrap();
    let seen: Value = expect_json(r, StatusCode::OK).await;
    let email = format!("proxied-{listen}@example.com");
    assert_eq!(seen, json!({"user": email, "email": email, "groups": "viewer"}));
    // A role rule.
    assert_eq!(through("/admin", "app.test", Some(&cookie), false).await.unwrap().status(), StatusCode::FORBIDDEN);
    // A host the rules do not name.
    assert_eq!(through("/", "evil.test", Some(&cookie), false).await.unwrap().status(), StatusCode::FORBIDDEN);

    // Signed out: the next proxied request goes to sign-in again.
    let pair = expect_json(app.login(&email, PASSWORD).await, StatusCode::OK).await;
    let logout_all = app.post_bearer("/auth/logout-all", &token(&pair, "access_token")).await;
    assert_eq!(logout_all.status(), StatusCode::NO_CONTENT);
    assert_eq!(through("/reports", "app.test", Some(&cookie), false).await.unwrap().status(), StatusCode::FOUND);
}
