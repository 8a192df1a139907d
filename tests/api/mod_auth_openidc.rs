//! A real relying party: Apache with mod_auth_openidc in front of a page, signing a person in through
//! Latchkey's web login (discovery, the code flow with `client_secret_basic`, RS256 ID-token validation), and
//! out: a back-channel logout token that mod_auth_openidc validates and acts on, and its logout URL through
//! Latchkey's end-session endpoint.
//! Skipped, with a notice, where Apache or the module is not installed (`.ci/run` installs both).

use std::{path::Path, process::Stdio, time::Duration};

use reqwest::{StatusCode, Url, header};
use serde_json::json;

use crate::{
    helpers::{Backend, PASSWORD, TestApp, csrf_of, installed, spawn},
    oidc_interop::{fill_in, issuer_is_the_address},
};

const MODULES: &str = "/usr/lib/apache2/modules";

fn apache_config(dir: &Path, port: u16, issuer: &str, client_id: &str, secret: &str) -> String {
    let d = dir.display();
    format!(
        r#"ServerRoot "{d}"
ServerName 127.0.0.1
Listen 127.0.0.1:{port}
PidFile {d}/apache.pid
DefaultRuntimeDir {d}
ErrorLog {d}/error.log
LogLevel warn auth_openidc:info
User www-data
Group www-data
LoadModule mpm_event_module {MODULES}/mod_mpm_event.so
LoadModule authn_core_module {MODULES}/mod_authn_core.so
LoadModule authz_core_module {MODULES}/mod_authz_core.so
LoadModule authz_user_module {MODULES}/mod_authz_user.so
LoadModule headers_module {MODULES}/mod_headers.so
LoadModule auth_openidc_module {MODULES}/mod_auth_openidc.so
DocumentRoot "{d}/www"
OIDCProviderMetadataURL {issuer}/.well-known/openid-configuration
OIDCClientID {client_id}
OIDCClientSecret {secret}
OIDCRedirectURI http://127.0.0.1:{port}/redirect_uri
OIDCCryptoPassphrase latchkey-test-passphrase-0123456789
OIDCScope "openid email profile"
OIDCRemoteUserClaim preferred_username
<Location />
  AuthType openid-connect
  Require valid-user
  Header always set X-Remote-User "expr=%{{REMOTE_USER}}"
</Location>
"#
    )
}

struct Apache(std::process::Child);

impl Drop for Apache {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn urlencoding(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Follows the browser's way from `start`, filling in Latchkey's pages, until a page that is not a redirect
/// (returned), or a redirect to `stop_at` (then `None`, without fetching it).
async fn follow(
    app: &TestApp,
    browser: &reqwest::Client,
    start: &str,
    email: &str,
    stop_at: Option<&str>,
) -> Option<reqwest::Response> {
    let mut url = Url::parse(start).unwrap();
    for _ in 0..12 {
        if stop_at.is_some_and(|stop| url.as_str().starts_with(stop)) {
            return None;
        }
        let r = browser.get(url.clone()).send().await.unwrap();
        let r = if r.status() == StatusCode::OK && url.as_str().starts_with(&app.base) {
            fill_in(app, browser, &r.text().await.unwrap(), email).await
        } else {
            r
        };
        if r.status().is_redirection() {
            url = url.join(r.headers()[header::LOCATION].to_str().unwrap()).unwrap();
            continue;
        }
        return Some(r);
    }
    panic!("more than 12 redirects from {start}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(test_peer = "apache"), ignore = "needs LATCHKEY_TEST_PEERS=apache when built")]
async fn mod_auth_openidc_signs_a_person_in_and_out() {
    const INSTALL: &str = "apt-get install apache2 libapache2-mod-auth-openidc";
    let apache = installed(&["/usr/sbin/apache2"], INSTALL);
    assert!(Path::new(&format!("{MODULES}/mod_auth_openidc.so")).exists(), "no mod_auth_openidc: {INSTALL}");
    let app = spawn(Backend::Sqlite, issuer_is_the_address).await.unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let redirect = format!("http://127.0.0.1:{port}/redirect_uri");
    let settings = serde_json::from_value(json!({
        "name": "Apache",
        "redirect_uris": [redirect],
        "post_logout_redirect_uris": [format!("http://127.0.0.1:{port}/signed-out")],
        "backchannel_logout_uri": format!("{redirect}?logout=backchannel"),
    }))
    .unwrap();
    let operator = latchkey::service::admin::Actor::Operator;
    let client = app.services.create_client(operator, settings, &Default::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("www")).unwrap();
    std::fs::write(dir.path().join("www/index.html"), "protected page").unwrap();
    let conf = dir.path().join("apache.conf");
    let secret = client.secret.as_deref().unwrap();
    let config = apache_config(dir.path(), port, &app.services.config.issuer, &client.client.client_id, secret);
    std::fs::write(&conf, config).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // The workers run as www-data and serve the page.
        for path in [dir.path().to_path_buf(), dir.path().join("www"), dir.path().join("www/index.html")] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
    let child = std::process::Command::new(apache)
        .args(["-f", conf.to_str().unwrap(), "-DFOREGROUND"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("apache starts");
    let _apache = Apache(child);
    let site = format!("http://127.0.0.1:{port}");
    let plain = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let mut up = false;
    for _ in 0..100 {
        if plain.get(format!("{site}/")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = || std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default();
    assert!(up, "apache did not start: {}", log());

    let email = format!("apache-{port}@example.com");
    assert_eq!(app.register(&email, PASSWORD).await.status(), StatusCode::CREATED);
    let browser =
        reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let answer = follow(&app, &browser, &format!("{site}/index.html"), &email, None).await;
    let answer = answer.unwrap_or_else(|| panic!("the flow did not end; apache said: {}", log()));
    assert_eq!(answer.status(), StatusCode::OK, "apache said: {}", log());
    assert_eq!(answer.headers()["x-remote-user"], email.as_str());
    assert_eq!(answer.text().await.unwrap(), "protected page");

    // Back-channel logout: signing out at Latchkey ends the Apache session too; mod_auth_openidc checked
    // the logout token (signature, iss, aud, iat, events, sid) or it would have answered 400.
    let account = browser.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
    let r = browser.post(app.url("/logout")).form(&[("csrf", csrf_of(&account))]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let delivered = || async {
        let rows: Vec<(Option<String>,)> =
            sqlx::query_as("SELECT outcome FROM outbox").fetch_all(app.services.db.pool()).await.unwrap();
        rows.iter().any(|(outcome,)| outcome.is_some())
    };
    crate::oidc::eventually("the logout token reaching Apache", delivered).await;
    let (outcome, error): (Option<String>, Option<String>) =
        sqlx::query_as("SELECT outcome, last_error FROM outbox").fetch_one(app.services.db.pool()).await.unwrap();
    assert_eq!(outcome.as_deref(), Some("sent"), "{error:?}; apache said: {}", log());
    let r = browser.get(format!("{site}/index.html")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FOUND, "the Apache session ended: {}", log());
    assert!(r.headers()[header::LOCATION].to_str().unwrap().starts_with(&app.services.config.issuer));

    // RP-initiated logout: Apache's logout URL goes through Latchkey's end-session endpoint and back.
    let answer = follow(&app, &browser, &format!("{site}/index.html"), &email, None).await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK, "signed in again: {}", log());
    let signed_out = format!("{site}/signed-out");
    let logout = format!("{site}/redirect_uri?logout={}", urlencoding(&signed_out));
    let ended = follow(&app, &browser, &logout, &email, Some(&signed_out)).await;
    assert!(ended.is_none(), "the browser came back to {signed_out}; apache said: {}", log());
    let r = browser.get(app.url("/account")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "the Latchkey session ended too");
    app.finish().await;
}
