//! Builds the shared state and the router, binds the listener, and serves until told to stop.
//!
//! The router is the faces side by side: the JSON API (`http`), the pages for people (`web`), each calling
//! the same services, with the layers of `edge` around all of them. CORS is the API's and the OAuth endpoints'
//! only: pages, and above all the authorization endpoint (RFC 9700 §2.6), are never called cross-origin.

use std::{future::Future, net::SocketAddr, sync::Arc};

use axum::{Router, extract::Request, http::HeaderName, middleware};
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::{
    limit::RequestBodyLimitLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::TraceLayer,
};

use crate::{
    config::Config,
    edge::{error, headers, metrics, serve},
    http, oauth,
    service::Services,
    web,
};

pub type AppState = Arc<Services>;

/// API.md: request bodies over 64 KiB get 413.
pub const BODY_LIMIT: usize = 64 * 1024;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A server bound to its address but not yet serving; `local_addr` is the real port (tests bind port 0).
pub struct Application {
    listener: TcpListener,
    services: AppState,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let bind = config.bind;
        let services = Services::start(config).await?;
        let listener = TcpListener::bind(bind).await?;
        Ok(Self { listener, services })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn services(&self) -> &AppState {
        &self.services
    }

    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let background = [
            self.services.revocations.spawn_sync(self.services.db.clone(), self.services.config.revocation_poll),
            self.services.user_views.spawn_sync(self.services.db.clone(), self.services.config.revocation_poll),
            self.services.spawn_pruning(std::time::Duration::from_secs(3600)),
            self.services.spawn_key_reload(self.services.config.key_reload),
            self.services.spawn_outbox(self.services.config.outbox_poll),
        ];
        if self.services.mailer.is_some() {
            let services = self.services.clone();
            tokio::spawn(async move {
                if let Some(mailer) = &services.mailer {
                    mailer.check().await;
                }
            });
        }
        let router = router(self.services.clone());
        let served = serve::serve(self.listener, router, self.services.config.connections, shutdown).await;
        background.iter().for_each(|task| task.abort());
        served
    }
}

pub fn router(state: AppState) -> Router {
    metrics::handle();
    Router::new()
        .merge(http::router(&state))
        .merge(oauth::router(&state))
        .merge(metrics::router())
        .merge(web::router(&state))
        .fallback(web::not_found)
        .route_layer(middleware::from_fn(metrics::track))
        .layer(RequestBodyLimitLayer::new(BODY_LIMIT))
        .layer(middleware::map_response(error::normalize))
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
