//! `/api/v1/admin/users*`: administrators list, inspect and change accounts; `/api/v1/admin/mail/test`.

use axum::{
    Router,
    extract::{Path, Query, State},
    http::StatusCode,
    routing::{delete, get, post},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{
    auth::User,
    extract::{Json, RequirePermission, UsersRead, UsersWrite},
};
use crate::edge::client::ClientInfo;
use crate::edge::error::{ApiError, ErrorBody};
use crate::{
    app::AppState,
    domain::roles::Role,
    service::admin::{Actor, UserChanges},
    store::users::UserFilter,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/users", get(list))
        .route("/admin/users/{id}", get(show).patch(update))
        .route("/admin/users/{id}/unlock", post(unlock))
        .route("/admin/users/{id}/mfa/reset", post(reset_mfa))
        .route("/admin/users/{id}/sessions", delete(end_sessions))
        .route("/admin/users/{id}/reset-link", post(reset_link))
        .route("/admin/mail/test", post(mail_test))
}

#[derive(Serialize, ToSchema)]
pub struct ResetLink {
    /// `ISSUER/reset-password?token=...`: single use, `LATCHKEY_RESET_TTL_SECONDS`; older links stop working.
    pub link: String,
}

#[utoipa::path(post, path = "/api/v1/admin/users/{id}/reset-link", tag = "admin", security(("bearer" = []), ("password" = [])),
    responses(
        (status = 200, description = "A one-time reset link to hand to the user (works with mail off too)", body = ResetLink),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn reset_link(
    State(app): State<AppState>,
    RequirePermission(admin, _): RequirePermission<UsersWrite>,
    ClientInfo(client): ClientInfo,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<ResetLink>, ApiError> {
    Ok(axum::Json(ResetLink { link: app.admin_reset_link(Actor::Admin(admin.sub), id, &client).await? }))
}

#[derive(Deserialize, ToSchema)]
pub struct MailTest {
    #[schema(example = "ops@example.com")]
    pub to: String,
}

#[derive(Serialize, ToSchema)]
pub struct MailTestResult {
    pub sent: bool,
    /// The SMTP server's answer, or why the send failed.
    pub answer: String,
}

#[utoipa::path(post, path = "/api/v1/admin/mail/test", tag = "admin", request_body = MailTest,
    security(("bearer" = []), ("password" = [])),
    responses(
        (status = 200, description = "Sent at once (not queued); what the SMTP server said", body = MailTestResult),
        (status = 403, body = ErrorBody),
        (status = 404, description = "Mail is off on this server", body = ErrorBody),
        (status = 422, description = "`validation_failed`: not an address", body = ErrorBody)))]
async fn mail_test(
    State(app): State<AppState>,
    RequirePermission(admin, _): RequirePermission<UsersWrite>,
    ClientInfo(client): ClientInfo,
    Json(body): Json<MailTest>,
) -> Result<axum::Json<MailTestResult>, ApiError> {
    let result = app.send_test_mail(Actor::Admin(admin.sub), &body.to, &client).await?;
    let (sent, answer) = match result {
        Ok(answer) => (true, answer),
        Err(why) => (false, why),
    };
    Ok(axum::Json(MailTestResult { sent, answer }))
}

#[derive(Deserialize, IntoParams)]
pub struct UserSearch {
    /// A case-insensitive substring of the email or username.
    pub q: Option<String>,
    /// 1–200, default 50.
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct UserList {
    pub users: Vec<User>,
    /// All matches, of which this is one page.
    pub total: i64,
}

/// Only these two fields can be changed; anything else in the body is refused.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    pub role: Option<Role>,
    pub is_active: Option<bool>,
}

#[utoipa::path(get, path = "/api/v1/admin/users", operation_id = "list_users", tag = "admin", params(UserSearch), security(("bearer" = []), ("password" = [])),
    responses(
        (status = 200, description = "Ordered by creation time, then id", body = UserList),
        (status = 401, body = ErrorBody),
        (status = 403, description = "`forbidden`, or `mfa_required` for an admin session without MFA", body = ErrorBody),
    ))]
async fn list(
    State(app): State<AppState>,
    _admin: RequirePermission<UsersRead>,
    Query(search): Query<UserSearch>,
) -> Result<axum::Json<UserList>, ApiError> {
    let limit = search.limit.unwrap_or(50).clamp(1, 200);
    let offset = search.offset.unwrap_or(0).max(0);
    let (users, total) = app
        .admin_list_users(
            &UserFilter { q: search.q.as_deref().unwrap_or_default(), ..Default::default() },
            limit,
            offset,
        )
        .await?;
    Ok(axum::Json(UserList { users: users.into_iter().map(User::from).collect(), total }))
}

#[utoipa::path(get, path = "/api/v1/admin/users/{id}", operation_id = "show_user", tag = "admin", security(("bearer" = []), ("password" = [])),
    responses((status = 200, body = User), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn show(
    State(app): State<AppState>,
    _admin: RequirePermission<UsersRead>,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<User>, ApiError> {
    Ok(axum::Json(app.admin_get_user(id).await?.into()))
}

#[utoipa::path(patch, path = "/api/v1/admin/users/{id}", operation_id = "update_user", tag = "admin", request_body = UserPatch,
    security(("bearer" = []), ("password" = [])),
    responses(
        (status = 200, description = "Changed; a role change or deactivation ends the user's sessions", body = User),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "`last_admin`", body = ErrorBody),
        (status = 422, description = "Unknown role or field", body = ErrorBody),
    ))]
async fn update(
    State(app): State<AppState>,
    RequirePermission(admin, _): RequirePermission<UsersWrite>,
    ClientInfo(client): ClientInfo,
    Path(id): Path<Uuid>,
    Json(patch): Json<UserPatch>,
) -> Result<axum::Json<User>, ApiError> {
    let changes = UserChanges { role: patch.role, is_active: patch.is_active };
    Ok(axum::Json(app.admin_update_user(Actor::Admin(admin.sub), id, changes, &client).await?.into()))
}

#[utoipa::path(post, path = "/api/v1/admin/users/{id}/unlock", tag = "admin", security(("bearer" = []), ("password" = [])),
    responses((status = 204, description = "The user's identifiers are no longer locked"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn unlock(
    State(app): State<AppState>,
    RequirePermission(admin, _): RequirePermission<UsersWrite>,
    ClientInfo(client): ClientInfo,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    app.admin_unlock(Actor::Admin(admin.sub), id, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/admin/users/{id}/mfa/reset", tag = "admin", security(("bearer" = []), ("password" = [])),
    responses((status = 204, description = "MFA off, secret and backup codes deleted, sessions ended"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn reset_mfa(
    State(app): State<AppState>,
    RequirePermission(admin, _): RequirePermission<UsersWrite>,
    ClientInfo(client): ClientInfo,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    app.admin_reset_mfa(Actor::Admin(admin.sub), id, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/api/v1/admin/users/{id}/sessions", tag = "admin", security(("bearer" = []), ("password" = [])),
    responses((status = 204, description = "Every session of the user ends"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn end_sessions(
    State(app): State<AppState>,
    RequirePermission(admin, _): RequirePermission<UsersWrite>,
    ClientInfo(client): ClientInfo,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    app.admin_end_sessions(Actor::Admin(admin.sub), id, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}
