use reqwest::StatusCode;
use serde_json::json;

use crate::{
    helpers::{PASSWORD, TestApp, expect_error, expect_json},
    on_both,
};

async fn register_signs_in_a_viewer(app: &TestApp) {
    let body = expect_json(
        app.post_json(
            "/auth/register",
            &json!({"email": "  Ana@Example.COM ", "password": PASSWORD, "username": "Ana_1"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(body["user"]["email"], "ana@example.com");
    assert_eq!(body["user"]["username"], "ana_1");
    assert_eq!(body["user"]["role"], "viewer");
    assert_eq!(body["user"]["is_active"], true);
    assert_eq!(body["user"]["mfa_enabled"], false);
    assert!(body["user"]["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["mfa_required"], false);
    assert!(body["user"].get("password_hash").is_none());
    let me = expect_json(app.me(body["access_token"].as_str().unwrap()).await, StatusCode::OK).await;
    assert_eq!(me["id"], body["user"]["id"]);
}
on_both!(register_signs_in_a_viewer);

async fn duplicate_email_is_refused_case_insensitively(app: &TestApp) {
    let (email, _) = app.new_user().await;
    expect_error(app.register(&email.to_uppercase(), PASSWORD).await, StatusCode::CONFLICT, "email_taken").await;
}
on_both!(duplicate_email_is_refused_case_insensitively);

async fn duplicate_username_is_refused(app: &TestApp) {
    let body = |email: &str| json!({"email": email, "password": PASSWORD, "username": "marie"});
    expect_json(app.post_json("/auth/register", &body("m1@example.com")).await, StatusCode::CREATED).await;
    expect_error(
        app.post_json("/auth/register", &body("m2@example.com")).await,
        StatusCode::CONFLICT,
        "username_taken",
    )
    .await;
}
on_both!(duplicate_username_is_refused);

async fn field_formats_are_validated(app: &TestApp) {
    let bad_email = expect_error(
        app.register("not-an-email", PASSWORD).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(bad_email["details"][0]["field"], "email");
    let bad_name = expect_error(
        app.post_json(
            "/auth/register",
            &json!({"email": "u@example.com", "password": PASSWORD, "username": "no spaces"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(bad_name["details"][0]["field"], "username");
    let missing = expect_error(
        app.post_json("/auth/register", &json!({"email": "u@example.com"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(missing["details"][0]["field"], "password");
}
on_both!(field_formats_are_validated);

async fn weak_passwords_are_refused_with_a_reason(app: &TestApp) {
    let email = "rosalind@example.com";
    let cases = [
        ("elevenchars", "at least 12"),
        ("password1234", "guess"),
        ("qwertyuiop12", "guess"),
        ("123456789012", "guess"),
        ("latchkey2025!", "guess"),
        ("rosalind2025!", "email"),
    ];
    for (password, reason) in cases {
        let body =
            expect_error(app.register(email, password).await, StatusCode::UNPROCESSABLE_ENTITY, "weak_password").await;
        let message = body["message"].as_str().unwrap();
        assert!(message.contains(reason), "{password}: {message}");
        assert_eq!(body["details"][0]["field"], "password");
        assert!(!message.contains("digit") && !message.contains("uppercase"), "no composition rules: {message}");
    }
    let too_long = "correct horse ".repeat(20);
    let body =
        expect_error(app.register(email, &too_long).await, StatusCode::UNPROCESSABLE_ENTITY, "weak_password").await;
    assert!(body["message"].as_str().unwrap().contains("at most 256"));
}
on_both!(weak_passwords_are_refused_with_a_reason);

async fn long_and_unicode_passwords_are_never_truncated(app: &TestApp) {
    // Over 72 bytes each (bcrypt's limit), without the repeats that the strength check refuses.
    let long = "Mist over Kettle Lake, 7 herons; the ferry leaves at dusk & the bakery smells of rye.".to_string();
    let unicode = "Ünïcödé-漢字とかな-パスワード-密码很长-ñandú-ελληνικά-кириллица".to_string();
    assert!(long.len() > 72 && unicode.len() > 72);
    for (i, password) in [long, unicode].into_iter().enumerate() {
        let email = format!("long{i}@example.com");
        expect_json(app.register(&email, &password).await, StatusCode::CREATED).await;
        expect_json(app.login(&email, &password).await, StatusCode::OK).await;
        let cut72 = String::from_utf8_lossy(&password.as_bytes()[..72]).into_owned();
        let mut shorter = password.clone();
        shorter.pop();
        for wrong in [cut72, shorter, format!("{password}x"), password.to_uppercase()] {
            expect_error(app.login(&email, &wrong).await, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
        }
    }
    for (i, password) in ["correct horse battery staple plume", "pässwörd ñandú 😀 très long"].into_iter().enumerate()
    {
        let email = format!("spaces{i}@example.com");
        expect_json(app.register(&email, password).await, StatusCode::CREATED).await;
        expect_json(app.login(&email, password).await, StatusCode::OK).await;
    }
}
on_both!(long_and_unicode_passwords_are_never_truncated);
