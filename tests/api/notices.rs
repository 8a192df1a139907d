//! Security notices through a real SMTP server (tests/api/smtp.rs): a sign-in from a device the account has
//! not signed in from, and the limit of three mails of a kind per account per hour.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{
    helpers::{PASSWORD, TestApp, expect_error, expect_json},
    on_both,
    smtp::{Sink, with_mail},
};

const NEW_DEVICE: &str = "A new sign-in";

async fn login_from(app: &TestApp, email: &str, device_token: Option<&str>, agent: &str) -> Value {
    let body = json!({"username": email, "password": PASSWORD, "device_token": device_token});
    let r = app.client.post(app.url("/auth/login")).header("user-agent", agent).json(&body).send().await.unwrap();
    expect_json(r, StatusCode::OK).await
}

/// A sign-in without a device token of the account tells its owner, naming the device; one with the token
/// an earlier sign-in gave, or with another account's, is judged by the token's owner.
async fn a_sign_in_from_a_new_device_is_told(app: &TestApp) {
    let sink = Sink::of(app);
    let (email, _) = app.new_user().await;
    let first = login_from(app, &email, None, "Firefox-on-the-test-bench").await;
    let notice = sink.message(0, NEW_DEVICE).await;
    assert!(notice.header("To").unwrap().contains(&email));
    assert!(notice.text().contains("Firefox-on-the-test-bench") && notice.text().contains("127.0.0.1"));
    let device = first["device_token"].as_str().expect("a device token");
    login_from(app, &email, Some(device), "Firefox-on-the-test-bench").await;
    let (other, _) = app.new_user().await;
    let others = login_from(app, &other, None, "another-browser").await;
    login_from(app, &email, others["device_token"].as_str(), "a-borrowed-cookie").await;
    sink.message(2, NEW_DEVICE).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(sink.count_to(&email, NEW_DEVICE), 2, "the known device sent nothing, the borrowed token did");
}
on_both!(a_sign_in_from_a_new_device_is_told, with_mail);

/// With two factors, the notice goes when the sign-in completes, not after the password alone.
async fn a_two_factor_sign_in_is_told_when_complete(app: &TestApp) {
    let sink = Sink::of(app);
    let enrolled = crate::mfa::enroll(app).await;
    let pending = login_from(app, &enrolled.email, None, "curl/8").await;
    let mfa_token = pending["mfa_token"].as_str().expect("a second factor is owed");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(sink.count_to(&enrolled.email, NEW_DEVICE), 0, "nothing after the password alone");
    let body = json!({"mfa_token": mfa_token, "code": enrolled.backup_codes[0]});
    expect_json(app.post_json("/auth/mfa/challenge", &body).await, StatusCode::OK).await;
    assert!(sink.message(0, NEW_DEVICE).await.header("To").unwrap().contains(&enrolled.email));
}
on_both!(a_two_factor_sign_in_is_told_when_complete, with_mail);

/// Four sign-ins from new devices within the hour send three notices; other kinds keep their own count; an
/// email change past the limit is refused with 429 and mails nothing.
async fn three_mails_of_a_kind_an_hour(app: &TestApp) {
    let sink = Sink::of(app);
    let (email, pair) = app.new_user().await;
    for _ in 0..4 {
        login_from(app, &email, None, "a-new-browser").await;
    }
    sink.message(2, NEW_DEVICE).await;
    let access = pair["access_token"].as_str().unwrap();
    for n in 0..4 {
        let body = json!({"new_email": format!("new-{n}-{email}"), "password": PASSWORD});
        let r = app.client.post(app.url("/auth/email/change")).bearer_auth(access).json(&body).send().await.unwrap();
        if n < 3 {
            assert_eq!(r.status(), StatusCode::ACCEPTED);
        } else {
            assert!(r.headers().contains_key("retry-after"));
            expect_error(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
        }
    }
    sink.message(2, "Confirm the new address").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.count_to(&email, NEW_DEVICE), 3, "the fourth new-device notice was not sent");
    assert_eq!(sink.count("Confirm the new address"), 3);
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("latchkey_outbox_pending 0"), "everything went out: {metrics}");
}
on_both!(three_mails_of_a_kind_an_hour, with_mail);
