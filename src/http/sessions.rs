//! `/api/v1/auth/sessions`: the caller's live sessions, and revoking one.

use axum::{
    Router,
    extract::{Path, State},
    http::StatusCode,
    routing::{delete, get},
};
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use super::extract::CurrentUser;
use crate::edge::client::ClientInfo;
use crate::edge::error::{ApiError, ErrorBody};
use crate::{app::AppState, clock};

pub fn router() -> Router<AppState> {
    Router::new().route("/auth/sessions", get(list)).route("/auth/sessions/{id}", delete(revoke))
}

#[derive(Serialize, ToSchema)]
pub struct Session {
    pub id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_used_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// The session of the token making this request.
    pub current: bool,
}

#[utoipa::path(get, path = "/api/v1/auth/sessions", operation_id = "list_sessions", tag = "sessions", security(("bearer" = []), ("password" = [])),
    responses((status = 200, description = "Live sessions, newest first", body = [Session]), (status = 401, body = ErrorBody)))]
async fn list(
    State(app): State<AppState>,
    CurrentUser(auth): CurrentUser,
) -> Result<axum::Json<Vec<Session>>, ApiError> {
    let sessions = app.list_sessions(&auth).await?;
    Ok(axum::Json(
        sessions
            .into_iter()
            .map(|s| Session {
                current: s.id == auth.sid,
                id: s.id,
                created_at: clock::from_ms(s.created_at),
                last_used_at: clock::from_ms(s.last_used_at),
                expires_at: clock::from_ms(s.expires_at),
                ip: s.ip,
                user_agent: s.user_agent,
            })
            .collect(),
    ))
}

#[utoipa::path(delete, path = "/api/v1/auth/sessions/{id}", tag = "sessions", security(("bearer" = []), ("password" = [])),
    params(("id" = Uuid, Path, description = "A session id from the list")),
    responses(
        (status = 204, description = "The session's tokens stop working"),
        (status = 401, body = ErrorBody),
        (status = 404, description = "Not one of the caller's live sessions", body = ErrorBody),
    ))]
async fn revoke(
    State(app): State<AppState>,
    CurrentUser(auth): CurrentUser,
    ClientInfo(client): ClientInfo,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    app.revoke_session(&auth, id, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}
