//! `/admin/orgs`: every organisation with its size, creating one, and `/admin/orgs/{id}`: its members, adding
//! one by email, changing a role, removing. The rules (the last org admin stays, audit) are
//! `service::orgs`'s, the same the API applies.

use askama::Template;
use axum::{
    Router,
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use serde::Deserialize;
use uuid::Uuid;

use super::{
    admin::{ConfirmPage, permitted, role_options},
    pages::render,
    session::{PageError, SignedIn, SignedInForm},
};
use crate::{
    app::AppState,
    domain::roles::{Permission, Role},
    edge::client::ClientInfo,
    service::orgs::Membership,
    store::orgs::{MemberRecord, OrgRecord},
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/orgs", get(list).post(create))
        .route("/admin/orgs/{id}", get(org_page))
        .route("/admin/orgs/{id}/members", post(add_member))
        .route("/admin/orgs/{id}/members/{user_id}", post(change_member))
}

#[derive(Template)]
#[template(path = "admin_orgs.html")]
struct ListPage {
    csrf: String,
    is_admin: bool,
    section: &'static str,
    orgs: Vec<(OrgRecord, i64)>,
}

async fn list(
    State(app): State<AppState>,
    SignedIn(session): SignedIn,
    ClientInfo(client): ClientInfo,
) -> Result<Response, PageError> {
    permitted(&app, &session, Permission::OrgsManage, "/admin/orgs", &client).await?;
    let page = ListPage { csrf: session.csrf.clone(), is_admin: true, section: "orgs", orgs: app.all_orgs().await? };
    Ok(render(StatusCode::OK, &page))
}

#[derive(Deserialize)]
struct NewOrg {
    name: String,
    slug: String,
}

async fn create(
    State(app): State<AppState>,
    ClientInfo(client): ClientInfo,
    SignedInForm(session, form): SignedInForm<NewOrg>,
) -> Result<Response, PageError> {
    let claims = permitted(&app, &session, Permission::OrgsManage, "/admin/orgs", &client).await?;
    let org = app.create_org(claims, &form.name, &form.slug, &client).await?;
    Ok(Redirect::to(&format!("/admin/orgs/{}", org.id)).into_response())
}

#[derive(Template)]
#[template(path = "admin_org.html")]
struct OrgPage {
    csrf: String,
    is_admin: bool,
    section: &'static str,
    org: OrgRecord,
    /// Each member with every role, ` selected` on theirs.
    members: Vec<(MemberRecord, Vec<(&'static str, &'static str)>)>,
    roles: Vec<&'static str>,
    notice: Option<&'static str>,
}

#[derive(Deserialize)]
struct OrgQuery {
    invited: Option<String>,
}

async fn org_page(
    State(app): State<AppState>,
    SignedIn(session): SignedIn,
    ClientInfo(client): ClientInfo,
    Path(id): Path<Uuid>,
    Query(query): Query<OrgQuery>,
) -> Result<Response, PageError> {
    let claims = permitted(&app, &session, Permission::OrgsManage, "/admin/orgs", &client).await?;
    let org = app.org(claims, id).await?;
    let members = app.org_members(claims, id).await?;
    let page = OrgPage {
        csrf: session.csrf.clone(),
        is_admin: true,
        section: "orgs",
        org,
        members: members
            .into_iter()
            .map(|m| {
                let options = role_options(m.role);
                (m, options)
            })
            .collect(),
        roles: Role::ALL.iter().map(|r| r.as_str()).collect(),
        // As one of its admins, an administrator invites; the person joins by accepting on their account page.
        notice: query.invited.map(|_| "Invited: they become a member when they accept on their account page."),
    };
    Ok(render(StatusCode::OK, &page))
}

#[derive(Deserialize)]
struct NewMember {
    /// An email or username.
    user: String,
    role: Role,
}

async fn add_member(
    State(app): State<AppState>,
    ClientInfo(client): ClientInfo,
    Path(id): Path<Uuid>,
    SignedInForm(session, form): SignedInForm<NewMember>,
) -> Result<Response, PageError> {
    let claims = permitted(&app, &session, Permission::OrgsManage, "/admin/orgs", &client).await?;
    let user = app.find_user(form.user.trim()).await?;
    let done = match app.set_org_member(claims, id, user.profile.id, form.role, &client).await? {
        Membership::Invited { .. } => "?invited=1",
        Membership::Active(_) => "",
    };
    Ok(Redirect::to(&format!("/admin/orgs/{id}{done}")).into_response())
}

#[derive(Deserialize)]
struct MemberChange {
    /// `role` (with `role`) or `remove`.
    action: String,
    role: Option<Role>,
    /// `yes` once the administrator confirmed a removal.
    confirm: Option<String>,
}

async fn change_member(
    State(app): State<AppState>,
    ClientInfo(client): ClientInfo,
    Path((id, user_id)): Path<(Uuid, Uuid)>,
    SignedInForm(session, form): SignedInForm<MemberChange>,
) -> Result<Response, PageError> {
    let claims = permitted(&app, &session, Permission::OrgsManage, "/admin/orgs", &client).await?;
    if form.action == "remove" && form.confirm.as_deref() != Some("yes") {
        let member = app.admin_get_user(user_id).await?;
        let org = app.org(claims, id).await?;
        let page = ConfirmPage {
            csrf: session.csrf.clone(),
            is_admin: true,
            subject: format!("{} in {}", member.profile.email, org.name),
            form_action: format!("/admin/orgs/{id}/members/{user_id}"),
            fields: vec![("action", "remove".into())],
            button: "Yes, remove from the organisation",
            consequence: "They lose the role they have in this organisation; their account stays.",
            back: format!("/admin/orgs/{id}"),
        };
        return Ok(render(StatusCode::OK, &page));
    }
    match (form.action.as_str(), form.role) {
        ("role", Some(role)) => app.set_org_member(claims, id, user_id, role, &client).await.map(|_| ()),
        ("remove", _) => app.remove_org_member(claims, id, user_id, &client).await,
        _ => Err(crate::error::Error::BadRequest("Unknown action.".into())),
    }?;
    Ok(Redirect::to(&format!("/admin/orgs/{id}")).into_response())
}
