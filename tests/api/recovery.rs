//! Self-service password reset by mail, through a real SMTP server (tests/api/smtp.rs): the same answer for
//! every address, a single-use link on the issuer, a reset that ends sessions, lifts the lockout and keeps
//! the password policy, the per-account limit, and mail that waits while the server is down.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::{
    helpers::{PASSWORD, TestApp, csrf_of, expect_error, expect_json},
    on_both,
    smtp::{Sink, with_mail},
};

const NEW_PASSWORD: &str = "a brand new passphrase for ana";

async fn forgot(app: &TestApp, email: &str) -> reqwest::Response {
    app.post_json("/auth/password/forgot", &json!({"email": email})).await
}

async fn reset(app: &TestApp, token: &str, password: &str) -> reqwest::Response {
    app.post_json("/auth/password/reset", &json!({"token": token, "new_password": password})).await
}

fn token_of(link: &str) -> String {
    link.split("token=").nth(1).unwrap().to_string()
}

/// Without SMTP the endpoint does not exist (API.md), and an operator's printed link still works.
async fn without_mail_there_is_no_forgot_but_an_operator_link(app: &TestApp) {
    let (email, pair) = app.new_user().await;
    expect_error(forgot(app, &email).await, StatusCode::NOT_FOUND, "not_found").await;
    let link = app.services.reset_link(&email, &Default::default()).await.unwrap();
    assert!(link.starts_with(&format!("{}/reset-password?token=", app.services.config.issuer)), "{link}");
    assert_eq!(reset(app, &token_of(&link), NEW_PASSWORD).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.me(pair["access_token"].as_str().unwrap()).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.login(&email, NEW_PASSWORD).await.status(), StatusCode::OK);
}
on_both!(without_mail_there_is_no_forgot_but_an_operator_link);

/// SECURITY.md 63–66: one answer for known and unknown addresses; the mail's link resets once; the reset ends
/// every session and lifts the lockout; old password out, new one in.
async fn a_forgotten_password_is_reset_by_mail(app: &TestApp) {
    let sink = Sink::of(app);
    let (email, pair) = app.new_user().await;
    for _ in 0..5 {
        app.login(&email, "not the password at all").await;
    }
    assert_eq!(app.login(&email, PASSWORD).await.status(), StatusCode::TOO_MANY_REQUESTS, "locked");

    let known = forgot(app, &email).await;
    let unknown = forgot(app, "nobody-here@example.com").await;
    assert_eq!((known.status(), unknown.status()), (StatusCode::ACCEPTED, StatusCode::ACCEPTED));
    assert_eq!(known.text().await.unwrap(), unknown.text().await.unwrap());
    let mail = sink.message(0, "Reset").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.count("Reset"), 1, "only the existing account gets a mail");
    assert!(mail.header("To").unwrap().contains(&email));
    assert!(mail.header("Subject").unwrap().contains("Reset your Latchkey password"));
    assert!(mail.header("Date").is_some() && mail.header("Message-ID").is_some());
    assert!(mail.header("Content-Type").unwrap().contains("multipart/alternative"));
    assert!(mail.text().contains("text/plain") && mail.text().contains("text/html"));
    let link = mail.link(&app.services.config.issuer, "/reset-password?token=");
    let token = token_of(&link);
    assert!(token.len() >= 43, "256 bits: {token}");
    let stored: Vec<(String,)> =
        sqlx::query_as("SELECT token_hash FROM mail_tokens").fetch_all(app.services.db.pool()).await.unwrap();
    assert!(stored.iter().all(|(h,)| *h != token), "stored hashed");
    let (queued,): (String,) =
        sqlx::query_as("SELECT payload FROM outbox").fetch_one(app.services.db.pool()).await.unwrap();
    assert!(!queued.contains(&token), "the sent mail is not kept in the clear");

    assert_eq!(reset(app, &token, NEW_PASSWORD).await.status(), StatusCode::NO_CONTENT);
    expect_error(reset(app, &token, "another new passphrase here").await, StatusCode::BAD_REQUEST, "invalid_token")
        .await;
    assert_eq!(app.me(pair["access_token"].as_str().unwrap()).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.login(&email, PASSWORD).await.status(), StatusCode::UNAUTHORIZED);
    let login = expect_json(app.login(&email, NEW_PASSWORD).await, StatusCode::OK).await;
    assert!(login["access_token"].is_string(), "the lockout was lifted: {login}");
    let audit = app.services.db.pool();
    let (n,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM audit_events WHERE action IN ('password_reset_requested', 'password_reset')",
    )
    .fetch_one(audit)
    .await
    .unwrap();
    assert_eq!(n, 2);
}
on_both!(a_forgotten_password_is_reset_by_mail, with_mail);

/// A weak new password leaves the link usable; a newer link kills the older; garbage links are refused;
/// more than three requests an hour send nothing more.
async fn links_are_single_newest_and_limited(app: &TestApp) {
    let sink = Sink::of(app);
    let (email, _) = app.new_user().await;
    forgot(app, &email).await;
    let first = token_of(&sink.message(0, "Reset").await.link(&app.services.config.issuer, "/reset-password?token="));
    forgot(app, &email).await;
    let second = token_of(&sink.message(1, "Reset").await.link(&app.services.config.issuer, "/reset-password?token="));
    expect_error(reset(app, &first, NEW_PASSWORD).await, StatusCode::BAD_REQUEST, "invalid_token").await;
    expect_error(reset(app, &second, "short").await, StatusCode::UNPROCESSABLE_ENTITY, "weak_password").await;
    expect_error(reset(app, "made-up", NEW_PASSWORD).await, StatusCode::BAD_REQUEST, "invalid_token").await;
    assert_eq!(reset(app, &second, NEW_PASSWORD).await.status(), StatusCode::NO_CONTENT);
    forgot(app, &email).await;
    sink.message(2, "Reset").await;
    forgot(app, &email).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.count("Reset"), 3, "at most three reset mails an hour");
}
on_both!(links_are_single_newest_and_limited, with_mail);

/// The request answers at once while the SMTP server is down; the mail arrives when it is back.
async fn mail_waits_for_a_server_that_is_down(app: &TestApp) {
    let sink = Sink::of(app);
    sink.set_down(true);
    let (email, _) = app.new_user().await;
    let started = Instant::now();
    assert_eq!(forgot(app, &email).await.status(), StatusCode::ACCEPTED);
    assert!(started.elapsed() < Duration::from_millis(500), "took {:?}", started.elapsed());
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(sink.count("Reset"), 0);
    let (attempts,): (i64,) =
        sqlx::query_as("SELECT attempts FROM outbox").fetch_one(app.services.db.pool()).await.unwrap();
    assert!(attempts >= 2, "retried: {attempts}");
    sink.set_down(false);
    let mail = sink.message(0, "Reset").await;
    assert!(mail.text().contains("/reset-password?token="));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.count("Reset"), 1, "sent once");
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"latchkey_outbox_deliveries_total{kind="mail",outcome="sent"}"#), "{metrics}");
}
on_both!(mail_waits_for_a_server_that_is_down, with_mail);

/// SECURITY.md 63: a reset is not a way around the second factor, and signs nobody in.
async fn a_reset_keeps_the_second_factor(app: &TestApp) {
    let user = crate::mfa::enroll(app).await;
    let link = app.services.reset_link(&user.email, &Default::default()).await.unwrap();
    let r = reset(app, &token_of(&link), NEW_PASSWORD).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(r.text().await.unwrap().is_empty(), "no tokens from a reset");
    let pending = expect_json(app.login(&user.email, NEW_PASSWORD).await, StatusCode::OK).await;
    assert_eq!(pending["mfa_required"], true, "{pending}");
    assert!(pending.get("access_token").is_none());
}
on_both!(a_reset_keeps_the_second_factor);

/// The pages: the login page offers the link only with mail on; the reset page's GET spends nothing, its
/// form does; a weak password is shown on the form.
async fn the_pages_reset_a_password(app: &TestApp) {
    let sink = Sink::of(app);
    let (email, _) = app.new_user().await;
    let browser =
        reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let login = browser.get(app.url("/login")).send().await.unwrap().text().await.unwrap();
    assert!(login.contains(r#"href="/forgot-password""#));
    let page = browser.get(app.url("/forgot-password")).send().await.unwrap().text().await.unwrap();
    let form = [("csrf", csrf_of(&page)), ("email", email.clone())];
    let sent = browser.post(app.url("/forgot-password")).form(&form).send().await.unwrap();
    assert_eq!(sent.status(), StatusCode::OK);
    assert!(sent.text().await.unwrap().contains("on its way"));
    let link = sink.message(0, "Reset").await.link(&app.services.config.issuer, "/reset-password?token=");
    let token = token_of(&link);
    for _ in 0..2 {
        let r = browser.get(app.url(&format!("/reset-password?token={token}"))).send().await.unwrap();
        assert_eq!(r.headers()["referrer-policy"], "no-referrer");
        assert!(r.text().await.unwrap().contains(&token), "opening the link spends nothing");
    }
    let page =
        browser.get(app.url(&format!("/reset-password?token={token}"))).send().await.unwrap().text().await.unwrap();
    let weak = [("csrf", csrf_of(&page)), ("token", token.clone()), ("new_password", "short".into())];
    let r = browser.post(app.url("/reset-password")).form(&weak).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let good = [("csrf", csrf_of(&page)), ("token", token.clone()), ("new_password", NEW_PASSWORD.into())];
    let r = browser.post(app.url("/reset-password")).form(&good).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("Your password is changed"));
    let again = browser.post(app.url("/reset-password")).form(&good).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::BAD_REQUEST, "the link is spent");
    assert_eq!(app.login(&email, NEW_PASSWORD).await.status(), StatusCode::OK);
}
on_both!(the_pages_reset_a_password, with_mail);

async fn without_mail_the_pages_say_so(app: &TestApp) {
    let login = app.client.get(app.url("/login")).send().await.unwrap().text().await.unwrap();
    assert!(!login.contains("/forgot-password"));
    let r = app.client.get(app.url("/forgot-password")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}
on_both!(without_mail_the_pages_say_so);

/// Security notices go to the account's address, with where and when; a password change also kills a reset
/// link that was still out.
async fn changes_to_an_account_send_notices(app: &TestApp) {
    let sink = Sink::of(app);
    let (email, pair) = app.new_user().await;
    forgot(app, &email).await;
    let link = sink.message(0, "Reset").await.link(&app.services.config.issuer, "/reset-password?token=");
    let access = pair["access_token"].as_str().unwrap();
    let body = json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD});
    let r = app.client.post(app.url("/auth/change-password")).bearer_auth(access).json(&body).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let notice = sink.message(0, "password was changed").await;
    assert!(notice.header("To").unwrap().contains(&email));
    assert!(notice.text().contains("127.0.0.1") && notice.text().contains("/forgot-password"));
    expect_error(
        reset(app, &token_of(&link), "yet another passphrase ok").await,
        StatusCode::BAD_REQUEST,
        "invalid_token",
    )
    .await;

    let operator_link = app.services.reset_link(&email, &Default::default()).await.unwrap();
    assert_eq!(reset(app, &token_of(&operator_link), PASSWORD).await.status(), StatusCode::NO_CONTENT);
    sink.message(0, "password was reset").await;

    let enrolled = crate::mfa::enroll(app).await;
    let notice = sink.message(0, "Two-factor authentication is on").await;
    assert!(notice.header("To").unwrap().contains(&enrolled.email));
}
on_both!(changes_to_an_account_send_notices, with_mail);

fn mail_and_no_admin_mfa(config: &mut latchkey::config::Config) {
    with_mail(config);
    config.admin_require_mfa = false;
}

/// An administrator can hand a user a reset link and check that mail works (the SMTP server's own answer);
/// a viewer can do neither.
async fn admins_hand_out_reset_links_and_test_mail(app: &TestApp) {
    let sink = Sink::of(app);
    let admin = crate::admin::admin(app, "mail-admin@example.com").await;
    let (email, pair) = app.new_user().await;
    let viewer = pair["access_token"].as_str().unwrap();
    let id = pair["user"]["id"].as_str().unwrap();
    let path = format!("/api/v1/admin/users/{id}/reset-link");
    let r = app.client.post(app.url(&path)).bearer_auth(viewer).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = app.client.post(app.url(&path)).bearer_auth(&admin).send().await.unwrap();
    let link = expect_json(r, StatusCode::OK).await["link"].as_str().unwrap().to_string();
    assert_eq!(reset(app, &token_of(&link), NEW_PASSWORD).await.status(), StatusCode::NO_CONTENT);

    let test = |bearer: String| {
        let body = json!({"to": "ops@example.com"});
        app.client.post(app.url("/api/v1/admin/mail/test")).bearer_auth(bearer).json(&body).send()
    };
    let viewer = expect_json(app.login(&email, NEW_PASSWORD).await, StatusCode::OK).await;
    let viewer = viewer["access_token"].as_str().unwrap().to_string();
    assert_eq!(test(viewer).await.unwrap().status(), StatusCode::FORBIDDEN);
    let answer = expect_json(test(admin.clone()).await.unwrap(), StatusCode::OK).await;
    assert_eq!(answer["sent"], true, "{answer}");
    assert!(answer["answer"].as_str().unwrap().starts_with("250"), "{answer}");
    assert!(sink.message(0, "Latchkey test mail").await.header("To").unwrap().contains("ops@example.com"));
    sink.set_down(true);
    let answer = expect_json(test(admin).await.unwrap(), StatusCode::OK).await;
    assert_eq!(answer["sent"], false, "{answer}");
    assert!(answer["answer"].as_str().unwrap().contains("421"), "the server's refusal: {answer}");
}
on_both!(admins_hand_out_reset_links_and_test_mail, mail_and_no_admin_mfa);

/// Signs `email` in with `password` through the login form: a browser with its session cookie.
async fn browser_of(app: &TestApp, email: &str, password: &str) -> reqwest::Client {
    let browser =
        reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let page = browser.get(app.url("/login")).send().await.unwrap().text().await.unwrap();
    let form = [("csrf", csrf_of(&page)), ("username", email.into()), ("password", password.into())];
    assert_eq!(browser.post(app.url("/login")).form(&form).send().await.unwrap().status(), StatusCode::SEE_OTHER);
    browser
}

/// The same two from the admin page, for operators who work in a browser; the link is shown on the answer
/// page (never in an address) and works once; a viewer's form is refused.
async fn the_admin_page_hands_out_reset_links_and_test_mail(app: &TestApp) {
    let sink = Sink::of(app);
    crate::admin::admin(app, "page-admin@example.com").await;
    let admin = browser_of(app, "page-admin@example.com", PASSWORD).await;
    let (email, pair) = app.new_user().await;
    let id = pair["user"]["id"].as_str().unwrap();
    let dashboard = admin.get(app.url("/admin")).send().await.unwrap().text().await.unwrap();
    assert!(dashboard.contains("Send test mail"), "mail is on: the dashboard offers a test mail");
    let html = admin.get(app.url(&format!("/admin/users?q={email}"))).send().await.unwrap().text().await.unwrap();
    let csrf = csrf_of(&html);
    let form = [("csrf", csrf.as_str()), ("action", "reset_link")];
    let r = admin.post(app.url(&format!("/admin/users/{id}"))).form(&form).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let page = r.text().await.unwrap();
    let start = format!("{}/reset-password?token=", app.services.config.issuer);
    let link = page[page.find(&start).expect("the link is on the page")..].split('<').next().unwrap();
    assert_eq!(reset(app, &token_of(link), NEW_PASSWORD).await.status(), StatusCode::NO_CONTENT);
    expect_error(reset(app, &token_of(link), PASSWORD).await, StatusCode::BAD_REQUEST, "invalid_token").await;

    let form = [("csrf", csrf.as_str()), ("to", "ops@example.com")];
    let page = admin.post(app.url("/admin/mail/test")).form(&form).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Test mail sent") && page.contains("250"), "{page}");
    sink.message(0, "Latchkey test mail").await;
    sink.set_down(true);
    let page = admin.post(app.url("/admin/mail/test")).form(&form).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Test mail not sent") && page.contains("421"), "{page}");
    sink.set_down(false);

    let viewer = browser_of(app, &email, NEW_PASSWORD).await;
    let html = viewer.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
    let form = [("csrf", csrf_of(&html)), ("to", "ops@example.com".into())];
    let r = viewer.post(app.url("/admin/mail/test")).form(&form).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(sink.count("Latchkey test mail"), 1);
}
on_both!(the_admin_page_hands_out_reset_links_and_test_mail, mail_and_no_admin_mfa);

/// Two instances on one PostgreSQL database, both running the delivery worker: every queued mail goes out
/// exactly once (rows are claimed with `FOR UPDATE SKIP LOCKED` and a lease).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(test_postgres), ignore = "needs LATCHKEY_TEST_POSTGRES_URL when built")]
async fn two_instances_send_each_mail_once() {
    let first = crate::helpers::spawn(crate::helpers::Backend::Postgres, with_mail).await;
    let first = first.expect("LATCHKEY_TEST_POSTGRES_URL was set when these tests were built, but not now");
    let shared = &first.services.config;
    let (database, smtp, key) = (shared.database_url.clone(), shared.smtp_url.clone(), shared.secret_key.clone());
    let second = crate::helpers::spawn(crate::helpers::Backend::Postgres, move |c| {
        (c.database_url, c.smtp_url, c.secret_key) = (database, smtp, key);
    })
    .await
    .unwrap();
    let sink = Sink::of(&first);
    sink.set_down(true);
    let mut emails = vec![];
    for (n, app) in [&first, &second].into_iter().cycle().take(16).enumerate() {
        let email = format!("twice-{n}@example.com");
        assert_eq!(app.register(&email, PASSWORD).await.status(), StatusCode::CREATED);
        assert_eq!(forgot(app, &email).await.status(), StatusCode::ACCEPTED);
        emails.push(email);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    sink.set_down(false);
    for n in 0..16 {
        sink.message(n, "Reset").await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(sink.count("Reset"), 16, "each reset mail exactly once");
    assert_eq!(sink.count("Confirm"), 16, "each verification mail exactly once");
    for email in &emails {
        assert_eq!(sink.count_to(email, "Reset"), 1, "{email}");
    }
    second.finish().await;
    first.finish().await;
}
