//! `/api/v1/auth/sessions` and the user's own security log, `/api/v1/auth/audit`.

use axum::{
    Router,
    extract::{Path, Query, State},
    http::StatusCode,
    routing::{delete, get},
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{
    error::{ApiError, ErrorBody},
    extract::{ClientInfo, CurrentUser},
};
use crate::{app::AppState, clock};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/sessions", get(list))
        .route("/auth/sessions/{id}", delete(revoke))
        .route("/auth/audit", get(own_audit))
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

#[utoipa::path(get, path = "/api/v1/auth/sessions", tag = "sessions", security(("bearer" = []), ("password" = [])),
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

#[derive(Deserialize, IntoParams)]
pub struct AuditQuery {
    /// 1–200, default 50.
    pub limit: Option<i64>,
    /// Only events strictly before this time (RFC 3339): pass the last `at` of a page to get the next.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[param(value_type = Option<String>, format = DateTime)]
    pub before: Option<OffsetDateTime>,
}

#[derive(Serialize, ToSchema)]
pub struct AuditEvent {
    pub id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    #[schema(example = "login")]
    pub action: String,
    #[schema(example = "success")]
    pub outcome: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub detail: serde_json::Value,
}

#[utoipa::path(get, path = "/api/v1/auth/audit", tag = "sessions", security(("bearer" = []), ("password" = [])),
    params(AuditQuery),
    responses((status = 200, description = "The caller's security events, newest first", body = [AuditEvent]), (status = 401, body = ErrorBody)))]
async fn own_audit(
    State(app): State<AppState>,
    CurrentUser(auth): CurrentUser,
    Query(query): Query<AuditQuery>,
) -> Result<axum::Json<Vec<AuditEvent>>, ApiError> {
    let limit = query.limit.unwrap_or(50).clamp(1, 200);
    let before = query.before.map_or(i64::MAX, |t| (t.unix_timestamp_nanos() / 1_000_000) as i64);
    let events = app.audit_for_user(auth.sub, before, limit).await?;
    Ok(axum::Json(
        events
            .into_iter()
            .map(|e| AuditEvent {
                id: e.id,
                at: clock::from_ms(e.at),
                action: e.action,
                outcome: e.outcome,
                ip: e.ip,
                user_agent: e.user_agent,
                detail: e.detail,
            })
            .collect(),
    ))
}
