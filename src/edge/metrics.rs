//! Prometheus metrics: request counts and latency per route and status (a layer over every route), the
//! security counters the flows record (logins, MFA challenges, lockouts, rate-limit rejections), and live
//! sessions, read at scrape time. `/metrics` is open unless `LATCHKEY_METRICS_TOKEN` is set.

use std::{sync::OnceLock, time::Instant};

use axum::{
    Router,
    extract::{MatchedPath, Request, State},
    http::{Method, header},
    middleware::Next,
    response::{IntoResponse, Response},
    routing::get,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use crate::{app::AppState, error::Error};

const LATENCY_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// The process's one recorder (metrics are process-wide; several apps in one test process share it).
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full("http_request_duration_seconds".into()), LATENCY_BUCKETS)
            .and_then(PrometheusBuilder::install_recorder)
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "metrics recorder not installed; /metrics will be empty");
                PrometheusBuilder::new().build_recorder().handle()
            })
    })
}

pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(scrape))
}

#[utoipa::path(get, path = "/metrics", tag = "operations", security((), ("metrics" = [])),
    responses(
        (status = 200, description = "Prometheus text format: request counts and latencies per route, security counters, live sessions, the mail queue", content_type = "text/plain", body = String),
        (status = 401, description = "`invalid_token`: `LATCHKEY_METRICS_TOKEN` is set and the bearer token is not it", body = crate::edge::error::ErrorBody),
    ))]
pub(crate) async fn scrape(State(app): State<AppState>, request: Request) -> Result<Response, ApiError> {
    if let Some(expected) = &app.config.metrics_token {
        let presented = super::client::bearer_token(request.headers()).unwrap_or_default();
        if !bool::from(presented.as_bytes().ct_eq(expected.as_bytes())) {
            return Err(Error::InvalidToken.into());
        }
    }
    metrics::gauge!("latchkey_active_sessions").set(app.active_sessions().await? as f64);
    let (pending, oldest) = app.outbox_pending().await?;
    metrics::gauge!("latchkey_outbox_pending").set(pending as f64);
    let waiting = oldest.map_or(0, |queued| crate::clock::now_ms() - queued);
    metrics::gauge!("latchkey_outbox_oldest_pending_seconds").set(waiting as f64 / 1000.0);
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], handle().render()).into_response())
}

/// Counts and times every request under its route template (never the raw path, which could hold ids).
pub async fn track(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_string();
    let method = method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("http_requests_total", "method" => method, "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// Label values must come from a fixed set: hyper accepts any token as a method, and each new label value
/// is a new series held for the life of the process.
fn method_label(method: &Method) -> &'static str {
    static KNOWN: [Method; 7] =
        [Method::GET, Method::HEAD, Method::POST, Method::PUT, Method::PATCH, Method::DELETE, Method::OPTIONS];
    KNOWN.iter().find(|known| *known == method).map_or("other", Method::as_str)
}
