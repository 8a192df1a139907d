//! Refresh rotation and reuse, logout, logout-all, the session list, revocation, password change, expiry.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{
    helpers::{PASSWORD, TestApp, expect_error, expect_json, token},
    on_both,
};

async fn assert_dead(app: &TestApp, pair: &Value) {
    expect_error(app.me(&token(pair, "access_token")).await, StatusCode::UNAUTHORIZED, "invalid_token").await;
    expect_error(app.refresh(&token(pair, "refresh_token")).await, StatusCode::UNAUTHORIZED, "invalid_token").await;
}

async fn refresh_rotates_and_reuse_revokes_the_session(app: &TestApp) {
    let (_, first) = app.new_user().await;
    let rt1 = token(&first, "refresh_token");
    let second = expect_json(app.refresh(&rt1).await, StatusCode::OK).await;
    let rt2 = token(&second, "refresh_token");
    assert_ne!(rt1, rt2);
    let third = expect_json(app.refresh(&rt2).await, StatusCode::OK).await;
    expect_json(app.me(&token(&third, "access_token")).await, StatusCode::OK).await;

    // RT1 again, two rotations later: theft. The whole session ends, its newest tokens included.
    expect_error(app.refresh(&rt1).await, StatusCode::UNAUTHORIZED, "invalid_token").await;
    assert_dead(app, &third).await;
    let events = expect_json(
        app.get_bearer("/auth/audit", &token(&app.new_user().await.1, "access_token")).await,
        StatusCode::OK,
    )
    .await;
    assert!(
        events.as_array().unwrap().iter().all(|e| e["action"] != "refresh_reuse_detected"),
        "other users see nothing"
    );
}
on_both!(refresh_rotates_and_reuse_revokes_the_session);

async fn parallel_refreshes_issue_exactly_one_pair(app: &TestApp) {
    let (_, pair) = app.new_user().await;
    let body = json!({"refresh_token": token(&pair, "refresh_token")});
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let request = app.client.post(app.url("/auth/refresh")).json(&body);
            tokio::spawn(async move { request.send().await.expect("request").status() })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.expect("task"));
    }
    assert!(statuses.iter().all(|s| *s == StatusCode::OK || *s == StatusCode::UNAUTHORIZED), "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::OK).count(), 1, "{statuses:?}");
}
on_both!(parallel_refreshes_issue_exactly_one_pair);

async fn logout_ends_this_session_only(app: &TestApp) {
    let (email, s1) = app.new_user().await;
    let s2 = expect_json(app.login(&email, PASSWORD).await, StatusCode::OK).await;
    let response = app.post_bearer("/auth/logout", &token(&s1, "access_token")).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_dead(app, &s1).await;
    expect_json(app.me(&token(&s2, "access_token")).await, StatusCode::OK).await;
}
on_both!(logout_ends_this_session_only);

async fn logout_all_ends_every_session(app: &TestApp) {
    let (email, s1) = app.new_user().await;
    let s2 = expect_json(app.login(&email, PASSWORD).await, StatusCode::OK).await;
    let (_, other_user) = app.new_user().await;
    assert_eq!(app.post_bearer("/auth/logout-all", &token(&s2, "access_token")).await.status(), StatusCode::NO_CONTENT);
    assert_dead(app, &s1).await;
    assert_dead(app, &s2).await;
    expect_json(app.me(&token(&other_user, "access_token")).await, StatusCode::OK).await;
    expect_json(app.login(&email, PASSWORD).await, StatusCode::OK).await;
}
on_both!(logout_all_ends_every_session);

async fn sessions_are_listed_and_revocable(app: &TestApp) {
    let (email, s1) = app.new_user().await;
    let s2 = expect_json(app.login(&email, PASSWORD).await, StatusCode::OK).await;
    let at1 = token(&s1, "access_token");
    let list = expect_json(app.get_bearer("/auth/sessions", &at1).await, StatusCode::OK).await;
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list.iter().filter(|s| s["current"] == true).count(), 1);
    assert_eq!(list[0]["ip"], "127.0.0.1");
    let other = list.iter().find(|s| s["current"] == false).unwrap()["id"].as_str().unwrap().to_string();

    let delete = app.client.delete(app.url(&format!("/auth/sessions/{other}"))).bearer_auth(&at1).send().await.unwrap();
    assert_eq!(delete.status(), StatusCode::NO_CONTENT);
    assert_dead(app, &s2).await;
    expect_json(app.me(&at1).await, StatusCode::OK).await;
    let list = expect_json(app.get_bearer("/auth/sessions", &at1).await, StatusCode::OK).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
}
on_both!(sessions_are_listed_and_revocable);

async fn other_users_sessions_cannot_be_revoked(app: &TestApp) {
    let (_, victim) = app.new_user().await;
    let (_, attacker) = app.new_user().await;
    let victim_sessions =
        expect_json(app.get_bearer("/auth/sessions", &token(&victim, "access_token")).await, StatusCode::OK).await;
    let id = victim_sessions[0]["id"].as_str().unwrap();
    let delete = |path: String| app.client.delete(app.url(&path)).bearer_auth(token(&attacker, "access_token")).send();
    expect_error(delete(format!("/auth/sessions/{id}")).await.unwrap(), StatusCode::NOT_FOUND, "not_found").await;
    expect_error(
        delete(format!("/auth/sessions/{}", uuid::Uuid::new_v4())).await.unwrap(),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    expect_error(delete("/auth/sessions/not-a-uuid".into()).await.unwrap(), StatusCode::BAD_REQUEST, "bad_request")
        .await;
    expect_json(app.me(&token(&victim, "access_token")).await, StatusCode::OK).await;
}
on_both!(other_users_sessions_cannot_be_revoked);

async fn password_change_ends_other_sessions(app: &TestApp) {
    let (email, s1) = app.new_user().await;
    let s2 = expect_json(app.login(&email, PASSWORD).await, StatusCode::OK).await;
    let at1 = token(&s1, "access_token");
    let change = |current: &str, new: &str| {
        app.client
            .post(app.url("/auth/change-password"))
            .bearer_auth(&at1)
            .json(&json!({"current_password": current, "new_password": new}))
            .send()
    };
    expect_error(
        change("wrong password entirely", "a brand new long passphrase").await.unwrap(),
        StatusCode::BAD_REQUEST,
        "wrong_password",
    )
    .await;
    expect_error(change(PASSWORD, "password1234").await.unwrap(), StatusCode::UNPROCESSABLE_ENTITY, "weak_password")
        .await;
    expect_json(app.me(&token(&s2, "access_token")).await, StatusCode::OK).await;

    let new = "a brand new long passphrase";
    assert_eq!(change(PASSWORD, new).await.unwrap().status(), StatusCode::NO_CONTENT);
    assert_dead(app, &s2).await;
    expect_json(app.me(&at1).await, StatusCode::OK).await;
    expect_error(app.login(&email, PASSWORD).await, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    expect_json(app.login(&email, new).await, StatusCode::OK).await;

    let audit = expect_json(app.get_bearer("/auth/audit", &at1).await, StatusCode::OK).await;
    let actions: Vec<&str> = audit.as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions.first(), Some(&"login"), "newest first: {actions:?}");
    assert!(actions.contains(&"password_changed") && actions.contains(&"register"), "{actions:?}");
    let text = audit.to_string();
    assert!(!text.contains(new) && !text.contains(PASSWORD), "no secrets in the audit log");
}
on_both!(password_change_ends_other_sessions);

async fn sessions_have_an_absolute_lifetime(app: &TestApp) {
    let (_, mut pair) = app.new_user().await;
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(1_200)).await;
        pair = expect_json(app.refresh(&token(&pair, "refresh_token")).await, StatusCode::OK).await;
        assert!(pair["expires_in"].as_i64().unwrap() <= 2, "access tokens never outlive their session");
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    expect_error(app.refresh(&token(&pair, "refresh_token")).await, StatusCode::UNAUTHORIZED, "invalid_token").await;
}
on_both!(sessions_have_an_absolute_lifetime, |c| {
    c.refresh_ttl = Duration::from_secs(3);
    c.access_ttl = Duration::from_secs(1);
});

async fn idle_sessions_end(app: &TestApp) {
    let (_, pair) = app.new_user().await;
    let pair = expect_json(app.refresh(&token(&pair, "refresh_token")).await, StatusCode::OK).await;
    tokio::time::sleep(Duration::from_millis(2_300)).await;
    expect_error(app.refresh(&token(&pair, "refresh_token")).await, StatusCode::UNAUTHORIZED, "invalid_token").await;
    let list = expect_json(
        app.get_bearer("/auth/sessions", &token(&app.new_user().await.1, "access_token")).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(list.as_array().unwrap().len(), 1);
}
on_both!(idle_sessions_end, |c| {
    c.session_idle = Duration::from_secs(2);
    c.access_ttl = Duration::from_secs(1);
});

/// Review finding 6: a restart with a shorter access-token lifetime used to forget revocations of tokens
/// issued under the longer one. Here the logout happened "200 s ago" and the new instance runs a 60 s TTL.
async fn revocations_outlive_a_shorter_access_ttl(app: &TestApp) {
    let (_, pair) = app.new_user().await;
    let access = token(&pair, "access_token");
    assert_eq!(app.post_bearer("/auth/logout", &access).await.status(), StatusCode::NO_CONTENT);
    sqlx::query("UPDATE sessions SET revoked_at = revoked_at - 200000 WHERE revoked_at IS NOT NULL")
        .execute(app.services.db.pool())
        .await
        .unwrap();
    let config = latchkey::config::Config { access_ttl: std::time::Duration::from_secs(60), ..Default::default() };
    let restarted = latchkey::service::revocation::Revocations::new(&config);
    restarted.sync(&app.services.db).await.unwrap();
    let sid = app.services.keys.load().verify(&access).expect("a valid token").sid;
    assert!(restarted.is_revoked(sid), "the revoked session is still refused");
}
on_both!(revocations_outlive_a_shorter_access_ttl, |c| c.access_ttl = std::time::Duration::from_secs(3600));
