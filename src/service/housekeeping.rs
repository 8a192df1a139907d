//! The pruning job: audit events past their retention, and sessions, challenges and lockout counters that
//! no rule needs any more. Runs on every instance; the deletes are idempotent.

use std::{sync::Arc, time::Duration};

use super::Services;
use crate::{
    clock,
    error::Result,
    store::housekeeping::{self, Pruned},
};

/// How long ended sessions, spent challenges and idle lockout counters are kept: longer than any access
/// token they could matter to, and long enough to look at yesterday's incident.
const KEEP_DEAD_MS: i64 = 24 * 3600 * 1000;

/// How long user changes are kept: every instance reads them within a poll, so an hour is plenty.
const KEEP_CHANGES_MS: i64 = 3600 * 1000;

impl Services {
    pub async fn prune(&self) -> Result<Pruned> {
        let now = clock::now_ms();
        let audit_before = now - i64::from(self.config.audit_retention_days) * 24 * 3600 * 1000;
        let dead_before = now - KEEP_DEAD_MS - clock::duration_ms(self.config.access_ttl);
        let idle_before = dead_before - clock::duration_ms(self.config.session_idle);
        let mut tx = self.db.begin().await?;
        let pruned =
            housekeeping::prune(&mut tx, audit_before, dead_before, idle_before, now - KEEP_CHANGES_MS).await?;
        tx.commit().await?;
        Ok(pruned)
    }

    pub fn spawn_pruning(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let this = Arc::clone(self);
        super::spawn_periodic(every, "pruning", move || {
            let this = this.clone();
            async move {
                let pruned = this.prune().await?;
                if pruned != Pruned::default() {
                    tracing::info!(?pruned, "pruned old rows");
                }
                Ok(())
            }
        })
    }
}
