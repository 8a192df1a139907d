//! Operations: liveness, readiness and the public signing keys.

use std::time::Duration;

use axum::{Json, Router, extract::State, routing::get};
use serde::Serialize;
use utoipa::ToSchema;

use crate::edge::error::{ApiError, ErrorBody};
use crate::{app::AppState, error::Error};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/.well-known/jwks.json", get(jwks))
}

#[derive(Serialize, ToSchema)]
pub struct Status {
    #[schema(example = "ok")]
    pub status: &'static str,
}

#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "The process runs", body = Status)))]
async fn healthz() -> Json<Status> {
    Json(Status { status: "ok" })
}

/// Answers within 2 s even when the database hangs, so a load balancer notices an outage quickly.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses(
    (status = 200, description = "The database answers", body = Status),
    (status = 503, description = "`unavailable`", body = ErrorBody)))]
async fn readyz(State(app): State<AppState>) -> Result<Json<Status>, ApiError> {
    match tokio::time::timeout(Duration::from_secs(2), app.db.ping()).await {
        Ok(Ok(())) => Ok(Json(Status { status: "ok" })),
        _ => Err(Error::Unavailable.into()),
    }
}

#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "operations",
    responses((status = 200, description = "The public keys that verify access tokens (RFC 7517)", body = Object)))]
async fn jwks(State(app): State<AppState>) -> Json<serde_json::Value> {
    Json(app.keys.load().jwks().clone())
}
