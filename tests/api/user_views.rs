//! `GET /auth/me` (like userinfo and forward authentication) answers from an in-memory view of the user,
//! which follows every change: at once for changes this instance made, within a poll for changes made
//! anywhere else (another instance, the CLI, an operator's SQL), because the database's triggers record them.

use std::time::{Duration, Instant};

use latchkey::store::Backend as StoreBackend;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{
    helpers::{TestApp, expect_json, token},
    on_both,
};

async fn me(app: &TestApp, at: &str) -> Value {
    expect_json(app.me(at).await, StatusCode::OK).await
}

/// Polls `/auth/me` until `seen` holds, for at most 2 s (the tests poll changes every 100 ms; the bound
/// leaves room for a loaded machine).
async fn until_seen(app: &TestApp, at: &str, what: &str, seen: impl Fn(&Value) -> bool) {
    let started = Instant::now();
    loop {
        if seen(&me(app, at).await) {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(2), "/auth/me still does not show {what} after 2 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn sql(app: &TestApp, statement: &str, id: &str) {
    sqlx::query(statement).bind(id).execute(app.services.db.pool()).await.expect(statement);
}

async fn me_follows_every_change_to_the_user(app: &TestApp) {
    let (_, pair) = app.new_user().await;
    let at = token(&pair, "access_token");
    let first = me(app, &at).await;
    let id = first["id"].as_str().unwrap().to_string();
    assert_eq!(first["username"], Value::Null);
    assert_eq!(first["memberships"], json!([]));

    // The answer does come from memory: with the trigger off, a change nobody records is not seen.
    let (off, on) = match app.services.db.backend() {
        StoreBackend::Sqlite => (
            "DROP TRIGGER users_changed",
            "CREATE TRIGGER users_changed AFTER UPDATE OF email, username, role, is_active, mfa_enabled,
                 email_verified, last_login_at ON users
             BEGIN INSERT INTO user_changes (user_id, changed_at)
                 VALUES (NEW.id, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)); END",
        ),
        StoreBackend::Postgres => {
            ("ALTER TABLE users DISABLE TRIGGER users_changed", "ALTER TABLE users ENABLE TRIGGER users_changed")
        }
    };
    sqlx::query(off).execute(app.services.db.pool()).await.unwrap();
    sql(app, "UPDATE users SET username = 'unrecorded' WHERE id = $1", &id).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(me(app, &at).await["username"], Value::Null, "answered from memory");
    sqlx::query(on).execute(app.services.db.pool()).await.unwrap();

    // A change made through this instance shows on its next request, without waiting for a poll.
    let org = app.client.post(app.url("/api/v1/orgs")).bearer_auth(&at).json(&json!({"name": "Acme", "slug": "acme"}));
    let org = expect_json(org.send().await.unwrap(), StatusCode::CREATED).await;
    let org_id = org["id"].as_str().unwrap().to_string();
    assert_eq!(me(app, &at).await["memberships"][0]["slug"], "acme");

    // Changes made behind the server's back are seen within a poll: the user's row, an organisation's
    // name, a membership.
    sql(app, "UPDATE users SET username = 'renamed' WHERE id = $1", &id).await;
    until_seen(app, &at, "the new username", |me| me["username"] == "renamed").await;
    sql(app, "UPDATE orgs SET name = 'Acme Ltd' WHERE id = $1", &org_id).await;
    until_seen(app, &at, "the organisation's new name", |me| me["memberships"][0]["name"] == "Acme Ltd").await;
    sql(app, "DELETE FROM org_members WHERE user_id = $1", &id).await;
    until_seen(app, &at, "the membership gone", |me| me["memberships"] == json!([])).await;
    sql(app, "UPDATE users SET email_verified = 1 WHERE id = $1", &id).await;
    until_seen(app, &at, "the address verified", |me| me["email_verified"] == true).await;
}
on_both!(me_follows_every_change_to_the_user);
