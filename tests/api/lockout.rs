//! Account lockout per identifier, its device-token exemption, and the second-factor cap.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{
    helpers::{PASSWORD, TestApp, expect_error, expect_json, token},
    on_both,
};

const WRONG: &str = "not the password at all";

fn short_lock(c: &mut latchkey::config::Config) {
    c.lockout = Duration::from_secs(2);
}

async fn login_with_device(app: &TestApp, username: &str, password: &str, device: &str) -> reqwest::Response {
    app.post_json("/auth/login", &json!({"username": username, "password": password, "device_token": device})).await
}

/// Fails `n` times; every one answers 401, including the one that reaches the threshold.
async fn fail(app: &TestApp, username: &str, n: usize) {
    for _ in 0..n {
        expect_error(app.login(username, WRONG).await, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
}

async fn expect_locked(response: reqwest::Response) -> (Value, u64) {
    let retry: u64 = response.headers()["retry-after"].to_str().unwrap().parse().expect("integer Retry-After");
    assert!((1..=1800).contains(&retry), "{retry}");
    (expect_error(response, StatusCode::TOO_MANY_REQUESTS, "account_locked").await, retry)
}

async fn five_failures_lock_the_identifier_even_for_the_right_password(app: &TestApp) {
    let (email, _) = app.new_user().await;
    fail(app, &email, 5).await;
    expect_locked(app.login(&email, PASSWORD).await).await;
    expect_locked(app.login(&email.to_uppercase(), PASSWORD).await).await;
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let pair = expect_json(app.login(&email, PASSWORD).await, StatusCode::OK).await;

    let audit = expect_json(app.get_bearer("/auth/audit", &token(&pair, "access_token")).await, StatusCode::OK).await;
    let locks = audit.as_array().unwrap().iter().filter(|e| e["action"] == "account_locked").count();
    assert_eq!(locks, 1, "one audit event per lock: {audit}");
}
on_both!(five_failures_lock_the_identifier_even_for_the_right_password, short_lock);

async fn unknown_and_real_identifiers_lock_alike(app: &TestApp) {
    let (email, _) = app.new_user().await;
    fail(app, &email, 5).await;
    fail(app, "ghost@example.com", 5).await;
    let (real, real_retry) = expect_locked(app.login(&email, PASSWORD).await).await;
    let (ghost, ghost_retry) = expect_locked(app.login("ghost@example.com", PASSWORD).await).await;
    assert_eq!(real, ghost);
    assert!(real_retry.abs_diff(ghost_retry) <= 1);
}
on_both!(unknown_and_real_identifiers_lock_alike);

async fn a_success_resets_the_count(app: &TestApp) {
    let (email, _) = app.new_user().await;
    fail(app, &email, 4).await;
    expect_json(app.login(&email, PASSWORD).await, StatusCode::OK).await;
    fail(app, &email, 4).await;
    expect_json(app.login(&email, PASSWORD).await, StatusCode::OK).await;
}
on_both!(a_success_resets_the_count);

async fn known_devices_are_not_locked_out_by_strangers(app: &TestApp) {
    let (email, registered) = app.new_user().await;
    let device = token(&registered, "device_token");
    fail(app, &email, 5).await;
    expect_locked(app.login(&email, PASSWORD).await).await;
    // The owner's device still gets in, and gets a fresh device token.
    let pair = expect_json(login_with_device(app, &email, PASSWORD, &device).await, StatusCode::OK).await;
    assert_ne!(token(&pair, "device_token"), device);
    // A device token of another account, or a forged one, is no exemption.
    let (_, other) = app.new_user().await;
    expect_locked(login_with_device(app, &email, PASSWORD, &token(&other, "device_token")).await).await;
    expect_locked(login_with_device(app, &email, PASSWORD, "forged").await).await;
    // The device has a failure limit of its own; once it is reached the device is a stranger too.
    for _ in 0..5 {
        let response = login_with_device(app, &email, WRONG, &device).await;
        expect_error(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
    expect_locked(login_with_device(app, &email, PASSWORD, &device).await).await;
}
on_both!(known_devices_are_not_locked_out_by_strangers);

async fn ten_wrong_second_factors_lock_the_account(app: &TestApp) {
    let (email, registered) = app.new_user().await;
    let at = token(&registered, "access_token");
    let setup = expect_json(app.post_bearer("/auth/mfa/setup", &at).await, StatusCode::OK).await;
    let secret = totp_rs::Secret::Encoded(setup["secret"].as_str().unwrap().to_string()).to_bytes().unwrap();
    let step = latchkey::domain::totp::step_at(time::OffsetDateTime::now_utc().unix_timestamp());
    let code = latchkey::domain::totp::code_at_step(&secret, step).unwrap();
    let body = json!({"code": code});
    let enabled = app.client.post(app.url("/auth/mfa/enable")).bearer_auth(&at).json(&body).send().await.unwrap();
    expect_json(enabled, StatusCode::OK).await;

    for _ in 0..2 {
        let pending = expect_json(app.login(&email, PASSWORD).await, StatusCode::OK).await;
        let mfa_token = token(&pending, "mfa_token");
        for attempt in 1..=5 {
            let response =
                app.post_json("/auth/mfa/challenge", &json!({"mfa_token": mfa_token, "code": "000000"})).await;
            let expected = if attempt == 5 { StatusCode::TOO_MANY_REQUESTS } else { StatusCode::UNAUTHORIZED };
            assert_eq!(response.status(), expected);
        }
    }
    expect_locked(app.login(&email, PASSWORD).await).await;
    // The owner's known device is still let through to the second step.
    let pending = login_with_device(app, &email, PASSWORD, &token(&registered, "device_token")).await;
    assert_eq!(expect_json(pending, StatusCode::OK).await["mfa_required"], true);
}
on_both!(ten_wrong_second_factors_lock_the_account);

/// Review finding 2: 40 wrong passwords at once used to be judged all (40×401); at most the threshold may be.
async fn parallel_guesses_are_judged_at_most_threshold_times(app: &TestApp) {
    let (email, _) = app.new_user().await;
    let guesses = (0..40).map(|i| {
        let (client, url, email) = (app.client.clone(), app.url("/auth/login"), email.clone());
        tokio::spawn(async move {
            let body = json!({"username": email, "password": format!("wrong guess number {i:02}")});
            client.post(url).json(&body).send().await.unwrap().status()
        })
    });
    let mut statuses = Vec::new();
    for g in guesses.collect::<Vec<_>>() {
        statuses.push(g.await.unwrap());
    }
    let judged = statuses.iter().filter(|s| **s == StatusCode::UNAUTHORIZED).count();
    let refused = statuses.iter().filter(|s| **s == StatusCode::TOO_MANY_REQUESTS).count();
    assert!(judged <= 5, "{judged} of 40 parallel guesses were judged: {statuses:?}");
    assert_eq!(judged + refused, 40, "{statuses:?}");
    // The right password does not lift the lock.
    expect_locked(app.login(&email, PASSWORD).await).await;
    expect_locked(app.login(&email, PASSWORD).await).await;
}
on_both!(parallel_guesses_are_judged_at_most_threshold_times);

/// A success never deletes a lock, however many arrive at once; and attempts beyond the threshold that
/// are refused only for being in flight together do not lock anything (parallel right passwords of a
/// script do not lock its account).
async fn parallel_right_passwords_neither_lift_nor_cause_a_lock(app: &TestApp) {
    let parallel_logins = |email: String| async move {
        let attempts: Vec<_> = (0..12)
            .map(|_| {
                let (client, url, email) = (app.client.clone(), app.url("/auth/login"), email.clone());
                tokio::spawn(async move {
                    let body = json!({"username": email, "password": PASSWORD});
                    client.post(url).json(&body).send().await.unwrap().status()
                })
            })
            .collect();
        let mut statuses = Vec::new();
        for a in attempts {
            statuses.push(a.await.unwrap());
        }
        statuses
    };
    let (email, _) = app.new_user().await;
    let statuses = parallel_logins(email.clone()).await;
    assert!(statuses.iter().all(|s| *s == StatusCode::OK || *s == StatusCode::TOO_MANY_REQUESTS), "{statuses:?}");
    expect_json(app.login(&email, PASSWORD).await, StatusCode::OK).await;

    fail(app, &email, 5).await;
    let statuses = parallel_logins(email.clone()).await;
    assert!(statuses.iter().all(|s| *s == StatusCode::TOO_MANY_REQUESTS), "{statuses:?}");
    expect_locked(app.login(&email, PASSWORD).await).await;
}
on_both!(parallel_right_passwords_neither_lift_nor_cause_a_lock);

/// Review finding 9: the form-encoded password grant (Swagger UI's) now carries `device_token` too.
async fn the_form_grant_honours_the_device_token(app: &TestApp) {
    let (email, registered) = app.new_user().await;
    fail(app, &email, 5).await;
    let form = [("grant_type", "password"), ("username", &email), ("password", PASSWORD)];
    expect_locked(app.client.post(app.url("/auth/login")).form(&form).send().await.unwrap()).await;
    let device = token(&registered, "device_token");
    let with_device =
        [("grant_type", "password"), ("username", &email), ("password", PASSWORD), ("device_token", &device)];
    expect_json(app.client.post(app.url("/auth/login")).form(&with_device).send().await.unwrap(), StatusCode::OK).await;
}
on_both!(the_form_grant_honours_the_device_token);
