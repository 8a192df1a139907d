use std::time::{Duration, Instant};

use latchkey::{domain::roles::Role, service::accounts::InitialPassword, store::users};
use reqwest::StatusCode;
use serde_json::json;

use crate::{
    helpers::{PASSWORD, TestApp, expect_error, expect_json},
    on_both,
};

async fn login_by_email_or_username_any_case(app: &TestApp) {
    expect_json(
        app.post_json("/auth/register", &json!({"email": "lee@example.com", "password": PASSWORD, "username": "lee"}))
            .await,
        StatusCode::CREATED,
    )
    .await;
    for identifier in ["lee@example.com", "LEE@Example.com ", "lee", "LEE"] {
        let pair = expect_json(app.login(identifier, PASSWORD).await, StatusCode::OK).await;
        assert_eq!(pair["token_type"], "Bearer");
        assert!(pair["refresh_token"].as_str().unwrap().len() >= 43);
    }
}
on_both!(login_by_email_or_username_any_case);

async fn oauth2_password_grant_form_works(app: &TestApp) {
    let (email, _) = app.new_user().await;
    let form = [("grant_type", "password"), ("username", email.as_str()), ("password", PASSWORD), ("scope", "")];
    let response = app.client.post(app.url("/auth/login")).form(&form).send().await.unwrap();
    assert_eq!(response.headers()["cache-control"], "no-store");
    let pair = expect_json(response, StatusCode::OK).await;
    expect_json(app.me(pair["access_token"].as_str().unwrap()).await, StatusCode::OK).await;

    let wrong_grant = [("grant_type", "client_credentials"), ("username", email.as_str()), ("password", PASSWORD)];
    let response = app.client.post(app.url("/auth/login")).form(&wrong_grant).send().await.unwrap();
    expect_error(response, StatusCode::BAD_REQUEST, "bad_request").await;
}
on_both!(oauth2_password_grant_form_works);

async fn unknown_user_and_wrong_password_look_the_same(app: &TestApp) {
    let (email, _) = app.new_user().await;
    let unknown = app.login("nobody@example.com", PASSWORD).await;
    let wrong = app.login(&email, "not the password at all").await;
    let header_names = |r: &reqwest::Response| {
        let mut names: Vec<_> =
            r.headers().keys().map(|k| k.to_string()).filter(|k| k != "date" && k != "x-request-id").collect();
        names.sort();
        names
    };
    assert_eq!(header_names(&unknown), header_names(&wrong));
    let a = expect_error(unknown, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let b = expect_error(wrong, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    assert_eq!(a, b);
    assert_eq!(a["message"], "Invalid username or password.");
}
on_both!(unknown_user_and_wrong_password_look_the_same);

/// SECURITY.md 23: medians of 30 requests per arm within 10 % or 5 ms.
async fn unknown_user_costs_the_same_time_as_wrong_password(app: &TestApp) {
    let (email, _) = app.new_user().await;
    let mut unknown = Vec::new();
    let mut wrong = Vec::new();
    for i in 0..30 {
        // Interleaved so that machine noise hits both arms alike.
        let start = Instant::now();
        app.login(&format!("ghost{i}@example.com"), "not the password at all").await;
        unknown.push(start.elapsed());
        let start = Instant::now();
        app.login(&email, "not the password at all").await;
        wrong.push(start.elapsed());
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (u, w) = (median(&mut unknown), median(&mut wrong));
    let diff = u.abs_diff(w);
    assert!(
        diff < Duration::from_millis(5) || diff.as_secs_f64() < 0.10 * u.max(w).as_secs_f64(),
        "unknown {u:?} vs wrong password {w:?}"
    );
}
// Thirty failures on one identifier would lock it: this test is about hashing time, not lockout.
on_both!(unknown_user_costs_the_same_time_as_wrong_password, |c| c.lockout_threshold = 100);

async fn injection_strings_are_just_wrong_credentials(app: &TestApp) {
    app.new_user().await;
    for identifier in ["' OR '1'='1", "admin'--", "\"; DROP TABLE users;--", "x\r\n{\"action\":\"login\"}"] {
        expect_error(app.login(identifier, "' OR '1'='1").await, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
    // No default accounts on a fresh install.
    for (u, p) in [("admin", "admin"), ("admin@localhost", "admin"), ("root", "root"), ("admin", "latchkey")] {
        expect_error(app.login(u, p).await, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
}
on_both!(injection_strings_are_just_wrong_credentials);

async fn imported_bcrypt_and_pbkdf2_hashes_are_upgraded_on_login(app: &TestApp) {
    let bcrypt_hash = bcrypt::hash("an imported legacy passphrase", 4).unwrap();
    let pbkdf2_hash = "pbkdf2_sha256$1000$saltsalt$".to_string()
        + &{
            use base64::Engine;
            let mut key = [0u8; 32];
            pbkdf2::pbkdf2_hmac::<sha2::Sha256>(b"an imported legacy passphrase", b"saltsalt", 1000, &mut key);
            base64::engine::general_purpose::STANDARD.encode(key)
        };
    for (i, hash) in [bcrypt_hash, pbkdf2_hash].iter().enumerate() {
        let email = format!("legacy{i}@example.com");
        let user = app.services.create_user(&email, None, Role::Editor, InitialPassword::Hash(hash)).await.unwrap();
        expect_error(
            app.login(&email, "wrong legacy passphrase").await,
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
        )
        .await;
        expect_json(app.login(&email, "an imported legacy passphrase").await, StatusCode::OK).await;
        let stored = users::find_by_id(app.services.db.pool(), user.profile.id).await.unwrap().unwrap();
        assert!(stored.password_hash.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{}", stored.password_hash);
        let pair = expect_json(app.login(&email, "an imported legacy passphrase").await, StatusCode::OK).await;
        let me = expect_json(app.me(pair["access_token"].as_str().unwrap()).await, StatusCode::OK).await;
        assert_eq!(me["role"], "editor");
    }
}
on_both!(imported_bcrypt_and_pbkdf2_hashes_are_upgraded_on_login);

async fn stored_hashes_are_argon2id_with_configured_parameters(app: &TestApp) {
    let (_, pair) = app.new_user().await;
    let id = pair["user"]["id"].as_str().unwrap().parse().unwrap();
    let stored = users::find_by_id(app.services.db.pool(), id).await.unwrap().unwrap();
    assert!(stored.password_hash.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"));
    assert!(!stored.password_hash.contains(PASSWORD));
}
on_both!(stored_hashes_are_argon2id_with_configured_parameters);
