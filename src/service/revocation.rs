//! Revoked sessions, kept in memory so that checking an access token needs no database read.
//!
//! Every instance re-reads, every `revocation_poll`, the revoked sessions that issued an access token which
//! has not expired yet (less leeway and clock skew), so a logout on one instance is refused on the others
//! within that period. Each session records the latest expiry it issued, so this holds whatever access-token
//! lifetime an instance ran with when it issued them. Sessions revoked within the time forward
//! authentication remembers a session are kept too, whatever their tokens (a web session may have issued
//! its last access token long ago). Entries are dropped once neither applies.

use std::{collections::HashMap, sync::Arc, sync::RwLock, time::Duration};

use uuid::Uuid;

use super::forward_auth;
use crate::{
    clock,
    config::Config,
    error::Result,
    store::{Db, sessions},
};

/// Leeway of token verification plus a minute for clocks that disagree between instances.
const MARGIN_MS: i64 = 65_000;

/// Revoked session → until when its access tokens could be presented (Unix ms).
pub struct Revocations {
    revoked: RwLock<HashMap<Uuid, i64>>,
    access_ttl_ms: i64,
}

impl Revocations {
    pub fn new(config: &Config) -> Self {
        Self { revoked: RwLock::default(), access_ttl_ms: clock::duration_ms(config.access_ttl) }
    }

    pub fn is_revoked(&self, session_id: Uuid) -> bool {
        self.revoked.read().unwrap_or_else(|p| p.into_inner()).contains_key(&session_id)
    }

    /// Called after a commit that revoked sessions, so this instance refuses their tokens at once. The next
    /// sync replaces the guess of how long to keep them with what the sessions recorded.
    pub fn add(&self, session_ids: impl IntoIterator<Item = Uuid>, at: i64) {
        let keep_until = at + self.access_ttl_ms.max(forward_auth::REMEMBER_MS) + MARGIN_MS;
        let mut revoked = self.revoked.write().unwrap_or_else(|p| p.into_inner());
        revoked.extend(session_ids.into_iter().map(|id| (id, keep_until)));
    }

    pub async fn sync(&self, db: &Db) -> Result<()> {
        let now = clock::now_ms();
        let remembered = forward_auth::REMEMBER_MS + MARGIN_MS;
        let live = sessions::revoked_recently(db.pool(), now - MARGIN_MS, now - remembered).await?;
        let mut revoked = self.revoked.write().unwrap_or_else(|p| p.into_inner());
        revoked.retain(|_, keep_until| *keep_until >= now);
        revoked.extend(live.into_iter().map(|(id, access_expires_at, revoked_at)| {
            (id, (access_expires_at + MARGIN_MS).max(revoked_at + remembered))
        }));
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
