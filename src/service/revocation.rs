//! Revoked sessions, kept in memory so that checking an access token needs no database read.
//!
//! Every instance re-reads the sessions revoked within the last access-token lifetime (plus leeway and
//! clock skew) every `revocation_poll`, so a logout on one instance is refused on the others within
//! that period. Entries older than that are dropped: every token of such a session has expired anyway.

use std::{collections::HashMap, sync::Arc, sync::RwLock, time::Duration};

use uuid::Uuid;

use crate::{
    clock,
    config::Config,
    error::Result,
    store::{Db, sessions},
};

/// Leeway of token verification plus a minute for clocks that disagree between instances.
const MARGIN_MS: i64 = 65_000;

pub struct Revocations {
    revoked: RwLock<HashMap<Uuid, i64>>,
    keep_ms: i64,
}

impl Revocations {
    pub fn new(config: &Config) -> Self {
        Self { revoked: RwLock::default(), keep_ms: clock::duration_ms(config.access_ttl) + MARGIN_MS }
    }

    pub fn is_revoked(&self, session_id: Uuid) -> bool {
        self.revoked.read().unwrap_or_else(|p| p.into_inner()).contains_key(&session_id)
    }

    /// Called after a commit that revoked sessions, so this instance refuses their tokens at once.
    pub fn add(&self, session_ids: impl IntoIterator<Item = Uuid>, at: i64) {
        let mut revoked = self.revoked.write().unwrap_or_else(|p| p.into_inner());
        revoked.extend(session_ids.into_iter().map(|id| (id, at)));
    }

    pub async fn sync(&self, db: &Db) -> Result<()> {
        let cutoff = clock::now_ms() - self.keep_ms;
        let recent = sessions::revoked_since(db.pool(), cutoff).await?;
        let mut revoked = self.revoked.write().unwrap_or_else(|p| p.into_inner());
        revoked.retain(|_, at| *at >= cutoff);
        revoked.extend(recent);
        Ok(())
    }

    /// Keeps syncing until the runtime shuts down. While the database is unreachable the set keeps what
    /// it has: revocations are never forgotten early.
    pub fn spawn_sync(self: &Arc<Self>, db: Db, every: Duration) -> tokio::task::JoinHandle<()> {
        let this = Arc::clone(self);
        super::spawn_periodic(every, "refreshing revoked sessions", move || {
            let (this, db) = (this.clone(), db.clone());
            async move { this.sync(&db).await }
        })
    }
}
