//! `/api/v1/orgs*`: organisations and their members.

use axum::{
    Router,
    extract::{Path, State},
    http::StatusCode,
    response::IntoResponse,
    routing::{delete, get, post, put},
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use super::extract::{CurrentUser, Json};
use crate::edge::client::ClientInfo;
use crate::edge::error::{ApiError, ErrorBody};
use crate::{
    app::AppState,
    clock,
    domain::roles::Role,
    service::orgs::Membership,
    store::orgs::{MemberRecord, OrgRecord},
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/orgs", get(list).post(create))
        .route("/orgs/{id}", get(show))
        .route("/orgs/{id}/members", get(members))
        .route("/orgs/{id}/members/{user_id}", put(set_member).delete(remove_member))
        .route("/orgs/invitations", get(invitations))
        .route("/orgs/{id}/invitations/accept", post(accept_invitation))
        .route("/orgs/{id}/invitations/{user_id}", delete(remove_invitation))
}

#[derive(Serialize, ToSchema)]
pub struct Org {
    pub id: Uuid,
    #[schema(example = "Acme Research")]
    pub name: String,
    #[schema(example = "acme-research")]
    pub slug: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl From<OrgRecord> for Org {
    fn from(o: OrgRecord) -> Self {
        Self { id: o.id, name: o.name, slug: o.slug, created_at: clock::from_ms(o.created_at) }
    }
}

/// An organisation and the caller's role in it.
#[derive(Serialize, ToSchema)]
pub struct MyOrg {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
    pub role: Role,
}

impl From<(OrgRecord, Role)> for MyOrg {
    fn from((o, role): (OrgRecord, Role)) -> Self {
        Self { id: o.id, name: o.name, slug: o.slug, role }
    }
}

#[derive(Serialize, ToSchema)]
pub struct Member {
    pub user_id: Uuid,
    pub email: String,
    pub role: Role,
}

impl From<MemberRecord> for Member {
    fn from(m: MemberRecord) -> Self {
        Self { user_id: m.user_id, email: m.email, role: m.role }
    }
}

/// What a membership change did: `active` with the member, or `invited` (the user joins by accepting; no
/// email until then).
#[derive(Serialize, ToSchema)]
pub struct MembershipChange {
    pub user_id: Uuid,
    /// Absent while the user is only invited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub role: Role,
    #[schema(example = "active")]
    pub status: &'static str,
}

impl From<Membership> for MembershipChange {
    fn from(m: Membership) -> Self {
        match m {
            Membership::Active(m) => Self { user_id: m.user_id, email: Some(m.email), role: m.role, status: "active" },
            Membership::Invited { user_id, role } => Self { user_id, email: None, role, status: "invited" },
        }
    }
}

/// An open invitation to the caller.
#[derive(Serialize, ToSchema)]
pub struct Invitation {
    pub org: Org,
    /// The role the caller gets on accepting.
    pub role: Role,
    #[serde(with = "time::serde::rfc3339")]
    pub invited_at: OffsetDateTime,
}

#[derive(Deserialize, ToSchema)]
pub struct NewOrg {
    /// 1–100 characters, surrounding spaces not counted.
    #[schema(min_length = 1, max_length = 100, pattern = "\\S")]
    pub name: String,
    /// 2–40 of `a-z 0-9 -`, not starting or ending with `-`; unique.
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,38}[a-z0-9]$")]
    pub slug: String,
}

#[derive(Deserialize, ToSchema)]
pub struct MemberRole {
    pub role: Role,
}

#[utoipa::path(post, path = "/api/v1/orgs", operation_id = "create_org", tag = "orgs", request_body = NewOrg, security(("bearer" = []), ("password" = [])),
    responses(
        (status = 201, description = "Created; the caller is its admin", body = Org),
        (status = 401, body = ErrorBody),
        (status = 409, description = "`slug_taken`", body = ErrorBody),
        (status = 422, body = ErrorBody),
    ))]
async fn create(
    State(app): State<AppState>,
    CurrentUser(auth): CurrentUser,
    ClientInfo(client): ClientInfo,
    Json(body): Json<NewOrg>,
) -> Result<impl IntoResponse, ApiError> {
    let org = app.create_org(&auth, &body.name, &body.slug, &client).await?;
    Ok((StatusCode::CREATED, axum::Json(Org::from(org))))
}

#[utoipa::path(get, path = "/api/v1/orgs", operation_id = "list_orgs", tag = "orgs", security(("bearer" = []), ("password" = [])),
    responses((status = 200, description = "The caller's organisations and role in each", body = [MyOrg]), (status = 401, body = ErrorBody)))]
async fn list(State(app): State<AppState>, CurrentUser(auth): CurrentUser) -> Result<axum::Json<Vec<MyOrg>>, ApiError> {
    Ok(axum::Json(app.my_orgs(auth.sub).await?.into_iter().map(MyOrg::from).collect()))
}

#[utoipa::path(get, path = "/api/v1/orgs/{id}", operation_id = "show_org", tag = "orgs", security(("bearer" = []), ("password" = [])),
    responses((status = 200, body = Org), (status = 404, description = "Not a member (organisations cannot be discovered)", body = ErrorBody)))]
async fn show(
    State(app): State<AppState>,
    CurrentUser(auth): CurrentUser,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<Org>, ApiError> {
    Ok(axum::Json(app.org(&auth, id).await?.into()))
}

#[utoipa::path(get, path = "/api/v1/orgs/{id}/members", tag = "orgs", security(("bearer" = []), ("password" = [])),
    responses((status = 200, body = [Member]), (status = 404, description = "Not a member", body = ErrorBody)))]
async fn members(
    State(app): State<AppState>,
    CurrentUser(auth): CurrentUser,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<Vec<Member>>, ApiError> {
    Ok(axum::Json(app.org_members(&auth, id).await?.into_iter().map(Member::from).collect()))
}

#[utoipa::path(put, path = "/api/v1/orgs/{id}/members/{user_id}", tag = "orgs", request_body = MemberRole,
    security(("bearer" = []), ("password" = [])),
    responses(
        (status = 200, description = "The membership; a user who is not a member yet is invited instead (`status: invited`, no email) unless a global admin adds them", body = MembershipChange),
        (status = 403, description = "A member who is not an org admin", body = ErrorBody),
        (status = 404, description = "Not a member, or no such user", body = ErrorBody),
        (status = 409, description = "`last_admin` of the organisation", body = ErrorBody),
    ))]
async fn set_member(
    State(app): State<AppState>,
    CurrentUser(auth): CurrentUser,
    ClientInfo(client): ClientInfo,
    Path((id, user_id)): Path<(Uuid, Uuid)>,
    Json(body): Json<MemberRole>,
) -> Result<axum::Json<MembershipChange>, ApiError> {
    Ok(axum::Json(app.set_org_member(&auth, id, user_id, body.role, &client).await?.into()))
}

#[utoipa::path(delete, path = "/api/v1/orgs/{id}/members/{user_id}", tag = "orgs", security(("bearer" = []), ("password" = [])),
    responses(
        (status = 204, description = "Removed (members may remove themselves)"),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "`last_admin` of the organisation", body = ErrorBody),
    ))]
async fn remove_member(
    State(app): State<AppState>,
    CurrentUser(auth): CurrentUser,
    ClientInfo(client): ClientInfo,
    Path((id, user_id)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode, ApiError> {
    app.remove_org_member(&auth, id, user_id, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/orgs/invitations", tag = "orgs", security(("bearer" = []), ("password" = [])),
    responses((status = 200, description = "The caller's open invitations", body = [Invitation]), (status = 401, body = ErrorBody)))]
async fn invitations(
    State(app): State<AppState>,
    CurrentUser(auth): CurrentUser,
) -> Result<axum::Json<Vec<Invitation>>, ApiError> {
    let open = app.my_invitations(auth.sub).await?;
    let listed =
        open.into_iter().map(|(org, role, at)| Invitation { org: org.into(), role, invited_at: clock::from_ms(at) });
    Ok(axum::Json(listed.collect()))
}

#[utoipa::path(post, path = "/api/v1/orgs/{id}/invitations/accept", tag = "orgs", security(("bearer" = []), ("password" = [])),
    responses(
        (status = 200, description = "Joined with the offered role; new tokens carry the organisation", body = MyOrg),
        (status = 404, description = "No open invitation for the caller", body = ErrorBody),
    ))]
async fn accept_invitation(
    State(app): State<AppState>,
    CurrentUser(auth): CurrentUser,
    ClientInfo(client): ClientInfo,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<MyOrg>, ApiError> {
    Ok(axum::Json(app.accept_org_invitation(&auth, id, &client).await?.into()))
}

#[utoipa::path(delete, path = "/api/v1/orgs/{id}/invitations/{user_id}", tag = "orgs", security(("bearer" = []), ("password" = [])),
    responses(
        (status = 204, description = "Declined by the invited user, or withdrawn by an org admin"),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
async fn remove_invitation(
    State(app): State<AppState>,
    CurrentUser(auth): CurrentUser,
    ClientInfo(client): ClientInfo,
    Path((id, user_id)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode, ApiError> {
    app.remove_org_invitation(&auth, id, user_id, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}
