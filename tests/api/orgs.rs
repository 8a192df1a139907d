//! Organisations: per-org roles, invisibility to non-members, org-admin boundaries, the token's `orgs`.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{
    helpers::{TestApp, expect_error, expect_json, token},
    on_both,
};

async fn call(app: &TestApp, method: Method, path: &str, bearer: &str, body: Option<Value>) -> reqwest::Response {
    let mut request = app.client.request(method, app.url(path)).bearer_auth(bearer);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

async fn create_org(app: &TestApp, bearer: &str, slug: &str) -> String {
    let body = json!({"name": format!("Org {slug}"), "slug": slug});
    let org = expect_json(call(app, Method::POST, "/api/v1/orgs", bearer, Some(body)).await, StatusCode::CREATED).await;
    org["id"].as_str().unwrap().to_string()
}

/// The invited user accepts; returns their membership as `GET /orgs` lists it.
async fn accept(app: &TestApp, org: &str, bearer: &str) -> Value {
    let path = format!("/api/v1/orgs/{org}/invitations/accept");
    expect_json(call(app, Method::POST, &path, bearer, None).await, StatusCode::OK).await
}

fn claims(pair: &Value) -> Value {
    let payload = token(pair, "access_token").split('.').nth(1).unwrap().to_string();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

async fn one_person_different_roles_in_different_orgs(app: &TestApp) {
    let (_, ana) = app.new_user().await;
    let (_, bob) = app.new_user().await;
    let (ana_at, bob_at) = (token(&ana, "access_token"), token(&bob, "access_token"));
    let a = create_org(app, &ana_at, "org-a").await;
    let b = create_org(app, &bob_at, "org-b").await;
    let ana_id = ana["user"]["id"].as_str().unwrap();
    let set = |org: String, role: &'static str, bearer: String| async move {
        let path = format!("/api/v1/orgs/{org}/members/{ana_id}");
        call(app, Method::PUT, &path, &bearer, Some(json!({"role": role}))).await
    };
    // Bob invites Ana to B as a viewer and she accepts. In A, which she created, she is the only admin and
    // must stay one.
    let membership = expect_json(set(b.clone(), "viewer", bob_at.clone()).await, StatusCode::OK).await;
    assert_eq!((membership["role"].as_str(), membership["status"].as_str()), (Some("viewer"), Some("invited")));
    assert_eq!(accept(app, &b, &ana_at).await["role"], "viewer");
    expect_error(set(a.clone(), "editor", ana_at.clone()).await, StatusCode::CONFLICT, "last_admin").await;

    let mine = expect_json(call(app, Method::GET, "/api/v1/orgs", &ana_at, None).await, StatusCode::OK).await;
    let roles: Vec<(&str, &str)> =
        mine.as_array().unwrap().iter().map(|o| (o["slug"].as_str().unwrap(), o["role"].as_str().unwrap())).collect();
    assert_eq!(roles, [("org-a", "admin"), ("org-b", "viewer")]);
    let me = expect_json(app.me(&ana_at).await, StatusCode::OK).await;
    assert_eq!(me["memberships"].as_array().unwrap().len(), 2);

    // The next token carries both.
    let fresh = expect_json(app.refresh(&token(&ana, "refresh_token")).await, StatusCode::OK).await;
    let orgs = &claims(&fresh)["orgs"];
    assert_eq!(orgs.as_array().unwrap().len(), 2);
    assert!(orgs.as_array().unwrap().contains(&json!({"id": b, "role": "viewer"})));
}
on_both!(one_person_different_roles_in_different_orgs);

async fn non_members_cannot_see_an_org(app: &TestApp) {
    let (_, owner) = app.new_user().await;
    let (_, stranger) = app.new_user().await;
    let org = create_org(app, &token(&owner, "access_token"), "secret-org").await;
    let at = token(&stranger, "access_token");
    let me = stranger["user"]["id"].as_str().unwrap();
    for (method, path, body) in [
        (Method::GET, format!("/api/v1/orgs/{org}"), None),
        (Method::GET, format!("/api/v1/orgs/{org}/members"), None),
        (Method::PUT, format!("/api/v1/orgs/{org}/members/{me}"), Some(json!({"role": "admin"}))),
        (Method::DELETE, format!("/api/v1/orgs/{org}/members/{me}"), None),
        (Method::GET, format!("/api/v1/orgs/{}", uuid::Uuid::new_v4()), None),
    ] {
        expect_error(call(app, method, &path, &at, body).await, StatusCode::NOT_FOUND, "not_found").await;
    }
}
on_both!(non_members_cannot_see_an_org);

async fn org_admins_manage_only_their_org(app: &TestApp) {
    let (_, admin_a) = app.new_user().await;
    let (_, admin_b) = app.new_user().await;
    let (_, member) = app.new_user().await;
    let (at_a, at_b, at_m) =
        (token(&admin_a, "access_token"), token(&admin_b, "access_token"), token(&member, "access_token"));
    let a = create_org(app, &at_a, "team-a").await;
    let b = create_org(app, &at_b, "team-b").await;
    let member_id = member["user"]["id"].as_str().unwrap();
    let path = |org: &str, user: &str| format!("/api/v1/orgs/{org}/members/{user}");
    let set = |org: String, user: String, bearer: String, role: &'static str| async move {
        call(app, Method::PUT, &path(&org, &user), &bearer, Some(json!({"role": role}))).await
    };
    expect_json(set(a.clone(), member_id.into(), at_a.clone(), "editor").await, StatusCode::OK).await;
    accept(app, &a, &at_m).await;
    // Admin of A has no say in B (and cannot even see it).
    expect_error(set(b.clone(), member_id.into(), at_a.clone(), "editor").await, StatusCode::NOT_FOUND, "not_found")
        .await;
    // A plain member of A cannot change roles in A.
    let admin_a_id = admin_a["user"]["id"].as_str().unwrap().to_string();
    expect_error(set(a.clone(), admin_a_id.clone(), at_m.clone(), "viewer").await, StatusCode::FORBIDDEN, "forbidden")
        .await;
    let members =
        expect_json(call(app, Method::GET, &format!("/api/v1/orgs/{a}/members"), &at_m, None).await, StatusCode::OK)
            .await;
    assert_eq!(members.as_array().unwrap().len(), 2);
    // Members may leave; the last admin may not.
    let leave = call(app, Method::DELETE, &path(&a, member_id), &at_m, None).await;
    assert_eq!(leave.status(), StatusCode::NO_CONTENT);
    expect_error(
        call(app, Method::DELETE, &path(&a, &admin_a_id), &at_a, None).await,
        StatusCode::CONFLICT,
        "last_admin",
    )
    .await;
    expect_error(
        call(app, Method::GET, &format!("/api/v1/orgs/{a}"), &at_m, None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    // Unknown users cannot be added.
    let ghost = uuid::Uuid::new_v4().to_string();
    expect_error(set(a.clone(), ghost, at_a.clone(), "viewer").await, StatusCode::NOT_FOUND, "not_found").await;
}
on_both!(org_admins_manage_only_their_org);

async fn slugs_are_unique_and_validated(app: &TestApp) {
    let (_, user) = app.new_user().await;
    let at = token(&user, "access_token");
    create_org(app, &at, "acme").await;
    let again = call(app, Method::POST, "/api/v1/orgs", &at, Some(json!({"name": "Other", "slug": "ACME"}))).await;
    expect_error(again, StatusCode::CONFLICT, "slug_taken").await;
    for bad in ["a", "-acme", "acme-", "ac me", "ácme"] {
        let response = call(app, Method::POST, "/api/v1/orgs", &at, Some(json!({"name": "X", "slug": bad}))).await;
        expect_error(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    }
}
on_both!(slugs_are_unique_and_validated);

/// Review finding 11: an org admin could add any user id without their consent and learned their email.
/// Now the user is invited, the org learns nothing until they accept, and their tokens carry nothing of it.
async fn org_admins_invite_and_learn_nothing_until_accepted(app: &TestApp) {
    let (_, owner) = app.new_user().await;
    let (invitee_email, invitee) = app.new_user().await;
    let (owner_at, invitee_at) = (token(&owner, "access_token"), token(&invitee, "access_token"));
    let org = create_org(app, &owner_at, "inviting").await;
    let invitee_id = invitee["user"]["id"].as_str().unwrap();
    let member_path = format!("/api/v1/orgs/{org}/members/{invitee_id}");

    let answer = call(app, Method::PUT, &member_path, &owner_at, Some(json!({"role": "editor"}))).await;
    let text = answer.text().await.unwrap();
    assert!(!text.contains(&invitee_email), "the invitee's email was disclosed: {text}");
    let members = expect_json(
        call(app, Method::GET, &format!("/api/v1/orgs/{org}/members"), &owner_at, None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(members.as_array().unwrap().len(), 1, "only the owner is a member: {members}");
    let fresh = expect_json(app.refresh(&token(&invitee, "refresh_token")).await, StatusCode::OK).await;
    assert!(claims(&fresh)["orgs"].as_array().is_none_or(Vec::is_empty), "{}", claims(&fresh));
    expect_error(
        call(app, Method::GET, &format!("/api/v1/orgs/{org}"), &invitee_at, None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;

    let open =
        expect_json(call(app, Method::GET, "/api/v1/orgs/invitations", &invitee_at, None).await, StatusCode::OK).await;
    assert_eq!(open[0]["org"]["slug"], "inviting");
    assert_eq!(open[0]["role"], "editor");
    // Nobody else can accept it, and the invitee can decline it.
    expect_error(
        call(app, Method::POST, &format!("/api/v1/orgs/{org}/invitations/accept"), &owner_at, None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let decline =
        call(app, Method::DELETE, &format!("/api/v1/orgs/{org}/invitations/{invitee_id}"), &invitee_at, None).await;
    assert_eq!(decline.status(), StatusCode::NO_CONTENT);
    expect_error(
        call(app, Method::POST, &format!("/api/v1/orgs/{org}/invitations/accept"), &invitee_at, None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;

    // Invited again, accepted: now a member, with the email visible to the org.
    expect_json(call(app, Method::PUT, &member_path, &owner_at, Some(json!({"role": "editor"}))).await, StatusCode::OK)
        .await;
    assert_eq!(accept(app, &org, &invitee_at).await["role"], "editor");
    let members = expect_json(
        call(app, Method::GET, &format!("/api/v1/orgs/{org}/members"), &owner_at, None).await,
        StatusCode::OK,
    )
    .await;
    assert!(members.to_string().contains(&invitee_email));
    let changed = expect_json(
        call(app, Method::PUT, &member_path, &owner_at, Some(json!({"role": "viewer"}))).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!((changed["status"].as_str(), changed["email"].as_str()), (Some("active"), Some(invitee_email.as_str())));
}
on_both!(org_admins_invite_and_learn_nothing_until_accepted);
