//! The JSON API: routes under `/api/v1`, the operations endpoints and the OpenAPI document.

pub mod admin;
pub mod audit;
pub mod auth;
pub mod authz;
pub mod clients;
pub mod extract;
pub mod grants;
pub mod mail_links;
pub mod mfa;
pub mod openapi;
pub mod ops;
pub mod orgs;
pub mod passkeys;
pub mod sessions;

use axum::{
    Router,
    http::{HeaderValue, header},
};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::app::AppState;

/// Everything under `/api/v1`, plus `/healthz`, `/readyz`, the JWKS and Swagger UI.
pub fn router(state: &AppState) -> Router<AppState> {
    let api = Router::new()
        .merge(auth::router(state))
        .merge(mail_links::router(state))
        .merge(mfa::router(state))
        .merge(passkeys::router(state))
        .merge(sessions::router())
        .merge(grants::router())
        .merge(audit::router())
        .merge(admin::router())
        .merge(clients::router())
        .merge(orgs::router())
        .merge(authz::router())
        // Responses under /api carry tokens or personal data: never cache them.
        .layer(SetResponseHeaderLayer::overriding(header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
    Router::new()
        .nest("/api/v1", api)
        .merge(ops::router())
        .merge(openapi::swagger_ui(&state.config.issuer))
        .layer(crate::edge::headers::cors(&state.config.cors_origins))
}
