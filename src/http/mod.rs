//! The HTTP API: routes under `/api/v1`, operations endpoints, the OpenAPI document, and the layers
//! every response passes through.

pub mod admin;
pub mod audit;
pub mod auth;
pub mod authz;
pub mod error;
pub mod extract;
pub mod headers;
pub mod metrics;
pub mod mfa;
pub mod openapi;
pub mod ops;
pub mod orgs;
pub mod rate_limit;
pub mod serve;
pub mod sessions;

use axum::{
    Router,
    extract::Request,
    http::{HeaderName, HeaderValue, header},
    middleware,
};
use tower::ServiceBuilder;
use tower_http::{
    limit::RequestBodyLimitLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    set_header::SetResponseHeaderLayer,
    trace::TraceLayer,
};

use crate::app::AppState;

/// API.md: request bodies over 64 KiB get 413.
pub const BODY_LIMIT: usize = 64 * 1024;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub fn router(state: AppState) -> Router {
    metrics::handle();
    let api = Router::new()
        .merge(auth::router(&state))
        .merge(mfa::router(&state))
        .merge(sessions::router())
        .merge(audit::router())
        .merge(admin::router())
        .merge(orgs::router())
        .merge(authz::router())
        // Responses under /api carry tokens or personal data: never cache them.
        .layer(SetResponseHeaderLayer::overriding(header::CACHE_CONTROL, HeaderValue::from_static("no-store")));

    Router::new()
        .nest("/api/v1", api)
        .merge(ops::router())
        .merge(metrics::router())
        .merge(openapi::swagger_ui())
        .merge(crate::web::router(&state))
        .fallback(crate::web::not_found)
        .route_layer(middleware::from_fn(metrics::track))
        .layer(RequestBodyLimitLayer::new(BODY_LIMIT))
        .layer(middleware::map_response(error::normalize))
        .layer(headers::cors(&state.config.cors_origins))
        .layer(middleware::from_fn_with_state(state.clone(), headers::security_headers))
        .with_state(state)
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
                    let id = req.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or_default();
                    // The path only: query strings could carry something a client should not have sent.
                    tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
                })
                // Not an error line per 5xx: internal errors and an unreachable database are logged where they
                // happen, and a 503 that sheds load under a flood must stay cheap.
                .on_failure(()))
                .layer(PropagateRequestIdLayer::new(REQUEST_ID)),
        )
}
