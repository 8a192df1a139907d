//! `/api/v1/auth/grants`: the applications the caller let sign them in, and disconnecting one.

use axum::{
    Router,
    extract::{Path, State},
    http::StatusCode,
    routing::{delete, get},
};
use serde::Serialize;
use utoipa::ToSchema;

use super::extract::CurrentUser;
use crate::{
    app::AppState,
    clock,
    edge::{
        client::ClientInfo,
        error::{ApiError, ErrorBody},
    },
};

pub fn router() -> Router<AppState> {
    Router::new().route("/auth/grants", get(list)).route("/auth/grants/{client_id}", delete(disconnect))
}

/// An application the caller consented to.
#[derive(Serialize, ToSchema)]
pub struct ConnectedApp {
    pub client_id: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub granted_at: String,
    /// When the application last obtained a token for the caller.
    pub last_used_at: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/auth/grants", operation_id = "list_grants", tag = "sessions", security(("bearer" = []), ("password" = [])),
    responses((status = 200, description = "Connected apps, the most recently approved first", body = [ConnectedApp]),
        (status = 401, body = ErrorBody)))]
async fn list(
    State(app): State<AppState>,
    CurrentUser(auth): CurrentUser,
) -> Result<axum::Json<Vec<ConnectedApp>>, ApiError> {
    let apps = app.connected_apps(&auth).await?;
    Ok(axum::Json(
        apps.into_iter()
            .map(|a| ConnectedApp {
                scopes: a.scope.split(' ').filter(|s| !s.is_empty()).map(str::to_string).collect(),
                client_id: a.client_id,
                name: a.name,
                granted_at: clock::rfc3339(a.granted_at),
                last_used_at: a.last_used_at.map(clock::rfc3339),
            })
            .collect(),
    ))
}

#[utoipa::path(delete, path = "/api/v1/auth/grants/{client_id}", tag = "sessions", security(("bearer" = []), ("password" = [])),
    responses((status = 204, description = "The app's tokens end and the consent is forgotten"),
        (status = 401, body = ErrorBody), (status = 404, description = "Not a connected app", body = ErrorBody)))]
async fn disconnect(
    State(app): State<AppState>,
    CurrentUser(auth): CurrentUser,
    ClientInfo(who): ClientInfo,
    Path(client_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    app.disconnect_app(&auth, &client_id, &who).await?;
    Ok(StatusCode::NO_CONTENT)
}
