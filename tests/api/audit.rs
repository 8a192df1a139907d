//! The user's own security log: what it records, its paging, and retention.

use latchkey::store::audit::{self, AuditRecord};
use reqwest::StatusCode;

use crate::{
    helpers::{PASSWORD, TestApp, expect_json, token},
    on_both,
};

async fn events_carry_time_ip_and_user_agent_newest_first(app: &TestApp) {
    let (email, registered) = app.new_user().await;
    let response = app
        .client
        .post(app.url("/auth/login"))
        .header("user-agent", "Mozilla/5.0 (X11) Test")
        .json(&serde_json::json!({"username": email, "password": "wrong password here"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let pair = expect_json(app.login(&email, PASSWORD).await, StatusCode::OK).await;
    expect_json(app.refresh(&token(&registered, "refresh_token")).await, StatusCode::OK).await;
    let at = token(&pair, "access_token");
    let events = expect_json(app.get_bearer("/auth/audit", &at).await, StatusCode::OK).await;
    let events = events.as_array().unwrap();
    let actions: Vec<&str> = events.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["refresh", "login", "login_failed", "register"]);
    let failed = &events[2];
    assert_eq!(failed["outcome"], "failure");
    assert_eq!(failed["ip"], "127.0.0.1");
    assert_eq!(failed["user_agent"], "Mozilla/5.0 (X11) Test");
    assert!(failed["at"].as_str().unwrap().ends_with('Z'));
    assert!(!serde_json::to_string(events).unwrap().contains(PASSWORD));

    // Keyset paging: `before` the second event's time gives what follows it.
    let page = expect_json(app.get_bearer("/auth/audit?limit=2", &at).await, StatusCode::OK).await;
    assert_eq!(page.as_array().unwrap().len(), 2);
    let before = page[1]["at"].as_str().unwrap();
    let next = expect_json(app.get_bearer(&format!("/auth/audit?before={before}"), &at).await, StatusCode::OK).await;
    let next_actions: Vec<&str> = next.as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert!(next_actions.ends_with(&["register"]) && !next_actions.contains(&"refresh"), "{next_actions:?}");
}
on_both!(events_carry_time_ip_and_user_agent_newest_first);

async fn events_past_retention_are_pruned(app: &TestApp) {
    let (_, pair) = app.new_user().await;
    let user_id = pair["user"]["id"].as_str().unwrap().parse().unwrap();
    let old = AuditRecord {
        id: uuid::Uuid::new_v4(),
        at: latchkey::clock::now_ms() - 400 * 24 * 3600 * 1000,
        user_id: Some(user_id),
        action: "login".into(),
        outcome: "success".into(),
        ip: None,
        user_agent: None,
        detail: serde_json::json!({}),
    };
    let mut conn = app.services.db.pool().acquire().await.unwrap();
    audit::insert(&mut conn, &old).await.unwrap();
    drop(conn);
    let at = token(&pair, "access_token");
    assert_eq!(
        expect_json(app.get_bearer("/auth/audit", &at).await, StatusCode::OK).await.as_array().unwrap().len(),
        2
    );
    let pruned = app.services.prune().await.unwrap();
    assert_eq!(pruned.audit_events, 1);
    let events = expect_json(app.get_bearer("/auth/audit", &at).await, StatusCode::OK).await;
    assert_eq!(events.as_array().unwrap().len(), 1, "the recent event stays: {events}");
}
on_both!(events_past_retention_are_pruned);
