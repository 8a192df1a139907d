//! The per-client-IP rate limit, as a layer on the unauthenticated endpoints that check secrets.

use axum::{
    Router,
    extract::{MatchedPath, Request, State},
    middleware::{self, Next},
    response::Response,
};

use super::{client::ClientInfo, error::ApiError};
use crate::app::AppState;

/// Counts the request against its client IP and route; 429 `rate_limited` past the limit.
async fn limit(
    State(app): State<AppState>,
    ClientInfo(client): ClientInfo,
    path: MatchedPath,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if let Err(refused) = app.rate_limiter.check(path.as_str(), client.ip.as_deref().unwrap_or("unknown")).await {
        metrics::counter!("latchkey_rate_limited_total", "route" => path.as_str().to_string()).increment(1);
        return Err(refused.into());
    }
    Ok(next.run(request).await)
}

/// `router` with the limit on each of its routes (and only those: it is a route layer).
pub fn limited(router: Router<AppState>, state: &AppState) -> Router<AppState> {
    router.route_layer(middleware::from_fn_with_state(state.clone(), limit))
}
