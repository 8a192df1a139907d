//! Email verification through a real SMTP server: registration mails a link, the link confirms the address
//! once (API and page), a resend replaces it, and accounts made by an operator count as confirmed.

use reqwest::StatusCode;
use serde_json::json;

use crate::{
    helpers::{PASSWORD, TestApp, csrf_of, expect_error, expect_json},
    on_both,
    smtp::{Sink, with_mail},
};

fn token_of(link: &str) -> String {
    link.split("token=").nth(1).unwrap().to_string()
}

async fn verify(app: &TestApp, token: &str) -> reqwest::Response {
    app.post_json("/auth/email/verify", &json!({"token": token})).await
}

async fn registration_mails_a_link_that_confirms_the_address(app: &TestApp) {
    let sink = Sink::of(app);
    let (email, pair) = app.new_user().await;
    let access = pair["access_token"].as_str().unwrap();
    assert_eq!(pair["user"]["email_verified"], false, "{pair}");
    let mail = sink.message(0, "Confirm").await;
    assert!(mail.header("To").unwrap().contains(&email));
    assert!(mail.header("Subject").unwrap().contains("Confirm your email address"));
    let first = token_of(&mail.link(&app.services.config.issuer, "/verify-email?token="));

    let r = app.post_bearer("/auth/email/verify/resend", access).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let second = token_of(&sink.message(1, "Confirm").await.link(&app.services.config.issuer, "/verify-email?token="));
    expect_error(verify(app, &first).await, StatusCode::BAD_REQUEST, "invalid_token").await;
    let user = expect_json(verify(app, &second).await, StatusCode::OK).await;
    assert_eq!((&user["email"], &user["email_verified"]), (&json!(email), &json!(true)));
    expect_error(verify(app, &second).await, StatusCode::BAD_REQUEST, "invalid_token").await;
    let me = expect_json(app.me(access).await, StatusCode::OK).await;
    assert_eq!(me["email_verified"], true);
    // Confirmed: a resend sends nothing.
    assert_eq!(app.post_bearer("/auth/email/verify/resend", access).await.status(), StatusCode::ACCEPTED);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(sink.count("Confirm"), 2);
}
on_both!(registration_mails_a_link_that_confirms_the_address, with_mail);

async fn the_page_confirms_with_its_form_only(app: &TestApp) {
    let sink = Sink::of(app);
    let (_, pair) = app.new_user().await;
    let token = token_of(&sink.message(0, "Confirm").await.link(&app.services.config.issuer, "/verify-email?token="));
    let browser = reqwest::Client::builder().cookie_store(true).build().unwrap();
    let page =
        browser.get(app.url(&format!("/verify-email?token={token}"))).send().await.unwrap().text().await.unwrap();
    let me = expect_json(app.me(pair["access_token"].as_str().unwrap()).await, StatusCode::OK).await;
    assert_eq!(me["email_verified"], false, "opening the link confirms nothing");
    let form = [("csrf", csrf_of(&page)), ("token", token)];
    let r = browser.post(app.url("/verify-email")).form(&form).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("Your address is confirmed"));
    let me = expect_json(app.me(pair["access_token"].as_str().unwrap()).await, StatusCode::OK).await;
    assert_eq!(me["email_verified"], true);
}
on_both!(the_page_confirms_with_its_form_only, with_mail);

async fn without_mail_there_is_nothing_to_resend(app: &TestApp) {
    let (_, pair) = app.new_user().await;
    let r = app.post_bearer("/auth/email/verify/resend", pair["access_token"].as_str().unwrap()).await;
    expect_error(r, StatusCode::NOT_FOUND, "not_found").await;
    let made = app
        .services
        .create_user(
            "made-by-operator@example.com",
            None,
            latchkey::domain::roles::Role::Viewer,
            latchkey::service::accounts::InitialPassword::Plain(PASSWORD),
        )
        .await
        .unwrap();
    assert!(made.profile.email_verified, "an operator vouches for the address");
}
on_both!(without_mail_there_is_nothing_to_resend);

fn required(config: &mut latchkey::config::Config) {
    with_mail(config);
    config.require_email_verification = true;
}

/// `LATCHKEY_REQUIRE_EMAIL_VERIFICATION`: registration signs nobody in, and a correct password on an
/// unconfirmed account is refused (a wrong one is still just wrong) until the link is followed.
async fn required_verification_holds_the_sign_in(app: &TestApp) {
    let sink = Sink::of(app);
    let email = "must-confirm@example.com";
    let registered = expect_json(app.register(email, PASSWORD).await, StatusCode::CREATED).await;
    assert_eq!(registered["user"]["email"], email);
    assert!(registered.get("access_token").is_none() && registered.get("refresh_token").is_none(), "{registered}");
    expect_error(app.login(email, PASSWORD).await, StatusCode::FORBIDDEN, "email_not_verified").await;
    expect_error(app.login(email, "not the password").await, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let token = token_of(&sink.message(0, "Confirm").await.link(&app.services.config.issuer, "/verify-email?token="));
    expect_json(verify(app, &token).await, StatusCode::OK).await;
    let pair = expect_json(app.login(email, PASSWORD).await, StatusCode::OK).await;
    assert!(pair["access_token"].is_string());
}
on_both!(required_verification_holds_the_sign_in, required);

async fn change_email(app: &TestApp, access: &str, new_email: &str, password: &str) -> reqwest::Response {
    let body = json!({"new_email": new_email, "password": password});
    app.client.post(app.url("/auth/email/change")).bearer_auth(access).json(&body).send().await.unwrap()
}

/// A new address takes effect only from the link sent to it; the old address is told; a wrong password, a
/// taken address and a used link are refused.
async fn a_new_address_is_confirmed_from_itself(app: &TestApp) {
    let sink = Sink::of(app);
    let (old, pair) = app.new_user().await;
    let (taken, _) = app.new_user().await;
    let access = pair["access_token"].as_str().unwrap();
    let new = format!("new-{old}");
    expect_error(change_email(app, access, &new, "wrong password").await, StatusCode::BAD_REQUEST, "wrong_password")
        .await;
    expect_error(change_email(app, access, &taken, PASSWORD).await, StatusCode::CONFLICT, "email_taken").await;
    expect_error(
        change_email(app, access, "not-an-address", PASSWORD).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(change_email(app, access, &new, PASSWORD).await.status(), StatusCode::ACCEPTED);
    let mail = sink.message(0, "new address").await;
    assert!(mail.header("To").unwrap().contains(&new), "sent to the new address");
    let me = expect_json(app.me(access).await, StatusCode::OK).await;
    assert_eq!(me["email"], old.as_str(), "nothing changes before the link is followed");

    let token = token_of(&mail.link(&app.services.config.issuer, "/confirm-email?token="));
    let browser = reqwest::Client::builder().cookie_store(true).build().unwrap();
    let page =
        browser.get(app.url(&format!("/confirm-email?token={token}"))).send().await.unwrap().text().await.unwrap();
    let r = browser
        .post(app.url("/confirm-email"))
        .form(&[("csrf", csrf_of(&page)), ("token", token.clone())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let me = expect_json(app.me(access).await, StatusCode::OK).await;
    assert_eq!((&me["email"], &me["email_verified"]), (&json!(new), &json!(true)));
    let notice = sink.message(0, "address of your Latchkey account was changed").await;
    assert!(notice.header("To").unwrap().contains(&old) && notice.text().contains(&new));
    expect_error(
        app.post_json("/auth/email/confirm", &json!({"token": token})).await,
        StatusCode::BAD_REQUEST,
        "invalid_token",
    )
    .await;
    assert_eq!(app.login(&new, PASSWORD).await.status(), StatusCode::OK);
    assert_eq!(app.login(&old, PASSWORD).await.status(), StatusCode::UNAUTHORIZED);
}
on_both!(a_new_address_is_confirmed_from_itself, with_mail);
