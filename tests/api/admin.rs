//! Role boundaries and administration over HTTP.

use latchkey::{domain::roles::Role, service::accounts::InitialPassword};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{
    helpers::{PASSWORD, TestApp, expect_error, expect_json, token},
    mfa::Authenticator,
    on_both,
};

fn no_admin_mfa(c: &mut latchkey::config::Config) {
    c.admin_require_mfa = false;
}

/// An admin made as an operator would (`latchkey user create --role admin`), signed in: its access token.
pub(crate) async fn admin(app: &TestApp, email: &str) -> String {
    app.services.create_user(email, None, Role::Admin, InitialPassword::Plain(PASSWORD)).await.unwrap();
    token(&expect_json(app.login(email, PASSWORD).await, StatusCode::OK).await, "access_token")
}

async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    bearer: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut request = app.client.request(method, app.url(path)).bearer_auth(bearer);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

fn user_id(pair: &Value) -> String {
    pair["user"]["id"].as_str().unwrap().to_string()
}

async fn every_admin_endpoint_refuses_a_viewer(app: &TestApp) {
    let (_, viewer) = app.new_user().await;
    let (_, target) = app.new_user().await;
    let at = token(&viewer, "access_token");
    let id = user_id(&target);
    use reqwest::Method as M;
    let calls = [
        (M::GET, "/api/v1/admin/users".to_string(), None),
        (M::GET, format!("/api/v1/admin/users/{id}"), None),
        (M::PATCH, format!("/api/v1/admin/users/{id}"), Some(json!({"role": "admin"}))),
        (M::POST, format!("/api/v1/admin/users/{id}/unlock"), None),
        (M::POST, format!("/api/v1/admin/users/{id}/mfa/reset"), None),
        (M::DELETE, format!("/api/v1/admin/users/{id}/sessions"), None),
        (M::GET, "/api/v1/admin/audit".to_string(), None),
    ];
    for (method, path, body) in calls.clone() {
        expect_error(send(app, method, &path, &at, body).await, StatusCode::FORBIDDEN, "forbidden").await;
    }
    let admin_at = admin(app, "root@example.com").await;
    for (method, path, body) in calls {
        let status = send(app, method.clone(), &path, &admin_at, body).await.status();
        assert!(status.is_success(), "{method} {path}: {status}");
    }
    // The viewer's promotion went through only as the admin's call; refused calls were audited.
    let denied = expect_json(
        send(app, M::GET, "/api/v1/admin/audit?action=access_denied", &admin_at, None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(denied.as_array().unwrap().len(), 7, "{denied}");
    assert_eq!(denied[0]["user_id"], viewer["user"]["id"]);
}
on_both!(every_admin_endpoint_refuses_a_viewer, no_admin_mfa);

async fn admins_need_an_mfa_session(app: &TestApp) {
    let plain = admin(app, "root@example.com").await;
    expect_error(
        send(app, reqwest::Method::GET, "/api/v1/admin/users", &plain, None).await,
        StatusCode::FORBIDDEN,
        "mfa_required",
    )
    .await;
    let setup = expect_json(app.post_bearer("/auth/mfa/setup", &plain).await, StatusCode::OK).await;
    let mut authenticator = Authenticator::new(setup["secret"].as_str().unwrap());
    let code = authenticator.next_code().await;
    let enable = send(app, reqwest::Method::POST, "/auth/mfa/enable", &plain, Some(json!({"code": code}))).await;
    expect_json(enable, StatusCode::OK).await;
    let pending = expect_json(app.login("root@example.com", PASSWORD).await, StatusCode::OK).await;
    let code = authenticator.next_code().await;
    let body = json!({"mfa_token": pending["mfa_token"], "code": code});
    let pair = expect_json(app.post_json("/auth/mfa/challenge", &body).await, StatusCode::OK).await;
    let list = send(app, reqwest::Method::GET, "/api/v1/admin/users", &token(&pair, "access_token"), None).await;
    assert_eq!(expect_json(list, StatusCode::OK).await["total"], 1);
}
on_both!(admins_need_an_mfa_session);

async fn users_are_searched_and_paged(app: &TestApp) {
    let at = admin(app, "root@example.com").await;
    for name in ["alice", "albert", "bob"] {
        let body =
            json!({"email": format!("{name}@example.com"), "password": PASSWORD, "username": format!("{name}_x")});
        expect_json(app.post_json("/auth/register", &body).await, StatusCode::CREATED).await;
    }
    let get = |path: &str| app.client.get(app.url(path)).bearer_auth(&at).send();
    let all = expect_json(get("/api/v1/admin/users").await.unwrap(), StatusCode::OK).await;
    assert_eq!(all["total"], 4);
    let emails: Vec<&str> = all["users"].as_array().unwrap().iter().map(|u| u["email"].as_str().unwrap()).collect();
    assert_eq!(emails, ["root@example.com", "alice@example.com", "albert@example.com", "bob@example.com"]);
    let al = expect_json(get("/api/v1/admin/users?q=AL&limit=1&offset=1").await.unwrap(), StatusCode::OK).await;
    assert_eq!(al["total"], 2);
    assert_eq!(al["users"][0]["email"], "albert@example.com");
    let injected = expect_json(get("/api/v1/admin/users?q=%25'%20OR%201=1--").await.unwrap(), StatusCode::OK).await;
    assert_eq!(injected["total"], 0);
    let wildcard = expect_json(get("/api/v1/admin/users?q=_").await.unwrap(), StatusCode::OK).await;
    assert_eq!(wildcard["total"], 3, "'_' matches itself, not any character");
    expect_error(
        get(&format!("/api/v1/admin/users/{}", uuid::Uuid::new_v4())).await.unwrap(),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}
on_both!(users_are_searched_and_paged, no_admin_mfa);

async fn role_change_ends_sessions_and_new_logins_carry_it(app: &TestApp) {
    let at = admin(app, "root@example.com").await;
    let (email, user) = app.new_user().await;
    let path = format!("/api/v1/admin/users/{}", user_id(&user));
    let changed = expect_json(
        send(app, reqwest::Method::PATCH, &path, &at, Some(json!({"role": "editor"}))).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(changed["role"], "editor");
    expect_error(app.me(&token(&user, "access_token")).await, StatusCode::UNAUTHORIZED, "invalid_token").await;
    expect_error(app.refresh(&token(&user, "refresh_token")).await, StatusCode::UNAUTHORIZED, "invalid_token").await;
    let pair = expect_json(app.login(&email, PASSWORD).await, StatusCode::OK).await;
    assert_eq!(expect_json(app.me(&token(&pair, "access_token")).await, StatusCode::OK).await["role"], "editor");
    let events = expect_json(
        send(app, reqwest::Method::GET, &format!("/api/v1/admin/audit?user_id={}", user_id(&user)), &at, None).await,
        StatusCode::OK,
    )
    .await;
    let change = events.as_array().unwrap().iter().find(|e| e["action"] == "role_changed").expect("audited");
    assert_eq!(change["detail"]["to"], "editor");
    assert!(change["detail"]["by"].is_string());
    // Only the two fields can be patched.
    for bad in
        [json!({"email": "x@example.com"}), json!({"role": "root"}), json!({"role": "admin", "password_hash": "x"})]
    {
        let status = send(app, reqwest::Method::PATCH, &path, &at, Some(bad)).await.status();
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    }
}
on_both!(role_change_ends_sessions_and_new_logins_carry_it, no_admin_mfa);

async fn deactivation_blocks_at_once(app: &TestApp) {
    let at = admin(app, "root@example.com").await;
    let (email, user) = app.new_user().await;
    let path = format!("/api/v1/admin/users/{}", user_id(&user));
    send(app, reqwest::Method::PATCH, &path, &at, Some(json!({"is_active": false}))).await;
    expect_error(app.me(&token(&user, "access_token")).await, StatusCode::UNAUTHORIZED, "invalid_token").await;
    expect_error(app.refresh(&token(&user, "refresh_token")).await, StatusCode::UNAUTHORIZED, "invalid_token").await;
    expect_error(app.login(&email, PASSWORD).await, StatusCode::FORBIDDEN, "inactive_user").await;
    expect_error(app.login(&email, "not the password at all").await, StatusCode::UNAUTHORIZED, "invalid_credentials")
        .await;
    send(app, reqwest::Method::PATCH, &path, &at, Some(json!({"is_active": true}))).await;
    expect_json(app.login(&email, PASSWORD).await, StatusCode::OK).await;
}
on_both!(deactivation_blocks_at_once, no_admin_mfa);

async fn the_last_admin_stays(app: &TestApp) {
    let at = admin(app, "root@example.com").await;
    let me = expect_json(app.me(&at).await, StatusCode::OK).await;
    let own = format!("/api/v1/admin/users/{}", me["id"].as_str().unwrap());
    for change in [json!({"role": "editor"}), json!({"is_active": false})] {
        expect_error(
            send(app, reqwest::Method::PATCH, &own, &at, Some(change)).await,
            StatusCode::CONFLICT,
            "last_admin",
        )
        .await;
    }
    let (_, other) = app.new_user().await;
    let other_path = format!("/api/v1/admin/users/{}", user_id(&other));
    expect_json(
        send(app, reqwest::Method::PATCH, &other_path, &at, Some(json!({"role": "admin"}))).await,
        StatusCode::OK,
    )
    .await;
    expect_json(send(app, reqwest::Method::PATCH, &own, &at, Some(json!({"role": "viewer"}))).await, StatusCode::OK)
        .await;
}
on_both!(the_last_admin_stays, no_admin_mfa);

async fn unlock_mfa_reset_and_session_ending(app: &TestApp) {
    let at = admin(app, "root@example.com").await;
    let (email, user) = app.new_user().await;
    let id = user_id(&user);
    for _ in 0..5 {
        app.login(&email, "not the password at all").await;
    }
    expect_error(app.login(&email, PASSWORD).await, StatusCode::TOO_MANY_REQUESTS, "account_locked").await;
    let unlock = send(app, reqwest::Method::POST, &format!("/api/v1/admin/users/{id}/unlock"), &at, None).await;
    assert_eq!(unlock.status(), StatusCode::NO_CONTENT);
    let pair = expect_json(app.login(&email, PASSWORD).await, StatusCode::OK).await;
    let locks = expect_json(
        send(app, reqwest::Method::GET, &format!("/api/v1/admin/audit?action=account_locked&user_id={id}"), &at, None)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(locks.as_array().unwrap().len(), 1);

    let end = send(app, reqwest::Method::DELETE, &format!("/api/v1/admin/users/{id}/sessions"), &at, None).await;
    assert_eq!(end.status(), StatusCode::NO_CONTENT);
    expect_error(app.me(&token(&pair, "access_token")).await, StatusCode::UNAUTHORIZED, "invalid_token").await;

    // MFA reset: an enrolled user signs in with the password alone afterwards.
    let fresh = token(&expect_json(app.login(&email, PASSWORD).await, StatusCode::OK).await, "access_token");
    let setup = expect_json(app.post_bearer("/auth/mfa/setup", &fresh).await, StatusCode::OK).await;
    let mut authenticator = Authenticator::new(setup["secret"].as_str().unwrap());
    let code = authenticator.next_code().await;
    expect_json(
        send(app, reqwest::Method::POST, "/auth/mfa/enable", &fresh, Some(json!({"code": code}))).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(expect_json(app.login(&email, PASSWORD).await, StatusCode::OK).await["mfa_required"], true);
    let reset = send(app, reqwest::Method::POST, &format!("/api/v1/admin/users/{id}/mfa/reset"), &at, None).await;
    assert_eq!(reset.status(), StatusCode::NO_CONTENT);
    expect_error(app.me(&fresh).await, StatusCode::UNAUTHORIZED, "invalid_token").await;
    let direct = expect_json(app.login(&email, PASSWORD).await, StatusCode::OK).await;
    assert!(direct.get("access_token").is_some());
}
on_both!(unlock_mfa_reset_and_session_ending, no_admin_mfa);
