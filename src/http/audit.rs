//! The audit log: `/api/v1/auth/audit` (the caller's own events) and `/api/v1/admin/audit` (everyone's, with
//! filters). Both page by time: pass the last event's `at` as `before` to get the next page.

use axum::{
    Router,
    extract::{Query, State},
    routing::get,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::extract::{AuditRead, CurrentUser, RequirePermission};
use crate::edge::error::{ApiError, ErrorBody};
use crate::{
    app::AppState,
    clock,
    store::audit::{AuditQuery, AuditRecord},
};

pub fn router() -> Router<AppState> {
    Router::new().route("/auth/audit", get(own)).route("/admin/audit", get(all))
}

#[derive(Deserialize, IntoParams)]
pub struct Page {
    /// 1–200, default 50.
    pub limit: Option<i64>,
    /// Only events strictly before this time (RFC 3339).
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[param(value_type = Option<String>, format = DateTime)]
    pub before: Option<OffsetDateTime>,
}

#[derive(Deserialize, IntoParams)]
pub struct Filters {
    /// Only events about this user.
    pub user_id: Option<Uuid>,
    /// Only this action, e.g. `account_locked`.
    pub action: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct AuditEvent {
    pub id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The user the event is about (admin view only); an acting admin is named in `detail.by`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<Uuid>,
    #[schema(example = "login")]
    pub action: String,
    #[schema(example = "success")]
    pub outcome: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub detail: serde_json::Value,
}

impl AuditEvent {
    fn from_record(e: AuditRecord, with_user: bool) -> Self {
        Self {
            id: e.id,
            at: clock::from_ms(e.at),
            user_id: e.user_id.filter(|_| with_user),
            action: e.action,
            outcome: e.outcome,
            ip: e.ip,
            user_agent: e.user_agent,
            detail: e.detail,
        }
    }
}

async fn events(
    app: &AppState,
    user_id: Option<Uuid>,
    action: Option<&str>,
    page: &Page,
    with_user: bool,
) -> Result<axum::Json<Vec<AuditEvent>>, ApiError> {
    let before = page.before.map_or(i64::MAX, |t| (t.unix_timestamp_nanos() / 1_000_000) as i64);
    let limit = page.limit.unwrap_or(50).clamp(1, 200);
    let query = AuditQuery { user_id, action, after: i64::MIN, before, before_id: None, limit };
    let records = app.audit_events(&query).await?;
    Ok(axum::Json(records.into_iter().map(|e| AuditEvent::from_record(e, with_user)).collect()))
}

#[utoipa::path(get, path = "/api/v1/auth/audit", tag = "sessions", security(("bearer" = []), ("password" = [])),
    params(Page),
    responses((status = 200, description = "The caller's security events, newest first", body = [AuditEvent]), (status = 401, body = ErrorBody)))]
async fn own(
    State(app): State<AppState>,
    CurrentUser(auth): CurrentUser,
    Query(page): Query<Page>,
) -> Result<axum::Json<Vec<AuditEvent>>, ApiError> {
    events(&app, Some(auth.sub), None, &page, false).await
}

#[utoipa::path(get, path = "/api/v1/admin/audit", tag = "admin", security(("bearer" = []), ("password" = [])),
    params(Filters, Page),
    responses(
        (status = 200, description = "Security events, newest first", body = [AuditEvent]),
        (status = 401, body = ErrorBody),
        (status = 403, description = "`forbidden`, or `mfa_required` for an admin session without MFA", body = ErrorBody),
    ))]
async fn all(
    State(app): State<AppState>,
    _admin: RequirePermission<AuditRead>,
    Query(filters): Query<Filters>,
    Query(page): Query<Page>,
) -> Result<axum::Json<Vec<AuditEvent>>, ApiError> {
    events(&app, filters.user_id, filters.action.as_deref(), &page, true).await
}
