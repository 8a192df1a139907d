//! Builds the shared state and the router, binds the listener, and serves until told to stop.

use std::{future::Future, net::SocketAddr, sync::Arc};

use tokio::net::TcpListener;

use crate::{config::Config, http, service::Services};

pub type AppState = Arc<Services>;

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
        let sync = self.services.revocations.spawn_sync(self.services.db.clone(), self.services.config.revocation_poll);
        let pruning = self.services.spawn_pruning(std::time::Duration::from_secs(3600));
        let router = http::router(self.services.clone());
        let served = http::serve::serve(self.listener, router, self.services.config.connections, shutdown).await;
        sync.abort();
        pruning.abort();
        served
    }
}
