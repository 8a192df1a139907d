//! Users with their memberships, as `GET /auth/me`, userinfo and forward authentication show them, kept in
//! memory: a token-checked request then needs no database read.
//!
//! A view is dropped when it changes. The database's triggers write every change to a user's row, their
//! memberships or an organisation's name to `user_changes`; every instance reads the recent ones each
//! revocation poll and drops those users, so another instance's change is seen within a poll. The instance
//! that made a change drops the user when it commits (`commit_user_change`), so its own next request sees
//! it. Each read re-reads the last `OVERLAP_MS` of changes: a transaction whose trigger ran before a poll
//! but which committed after it is still caught. A view read before a drop is not stored after it
//! (`generation`). What must take effect at once does not depend on this: deactivation and role changes
//! end the user's sessions, and every request checks the revocation set.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicU64, Ordering},
};

use uuid::Uuid;

use super::{Services, cache::Expiring};
use crate::{
    clock,
    error::{Error, Result},
    store::{Db, Tx, user_changes, users, users::UserView},
};

/// How long a view may be used without a change being seen: the net under a poll that keeps failing.
const KEEP_MS: i64 = 60_000;

/// How far back each read of the changes looks again, for transactions that committed late.
const OVERLAP_MS: i64 = 5_000;

#[derive(Default)]
pub struct UserViews {
    views: Expiring<Uuid, Arc<UserView>>,
    /// Counts drops: a view read before the latest one is not stored.
    generation: AtomicU64,
    /// The latest change read (the database's clock); `None` until the first read.
    read_up_to: Mutex<Option<i64>>,
}

impl UserViews {
    pub fn forget(&self, ids: &[Uuid]) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.views.remove_all(ids);
    }

    fn forget_all(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.views.clear();
    }

    /// Drops the users changed since the last read. The first read drops everything.
    pub async fn sync(&self, db: &Db) -> Result<()> {
        let last = *self.read_up_to.lock().unwrap_or_else(|p| p.into_inner());
        let latest = match last {
            None => {
                let latest = user_changes::latest(db.pool()).await?.unwrap_or(i64::MIN + OVERLAP_MS);
                self.forget_all();
                latest
            }
            Some(last) => {
                let (changed, latest) = user_changes::since(db.pool(), last - OVERLAP_MS).await?;
                if !changed.is_empty() {
                    self.forget(&changed);
                }
                latest.max(last)
            }
        };
        *self.read_up_to.lock().unwrap_or_else(|p| p.into_inner()) = Some(latest);
        Ok(())
    }

    /// Keeps syncing until the runtime shuts down.
    pub fn spawn_sync(self: &Arc<Self>, db: Db, every: std::time::Duration) -> tokio::task::JoinHandle<()> {
        let this = Arc::clone(self);
        super::spawn_periodic(every, "reading user changes", move || {
            let (this, db) = (this.clone(), db.clone());
            async move { this.sync(&db).await }
        })
    }
}

impl Services {
    /// The user and their memberships, from memory when nothing changed since they were read.
    pub async fn user_view(&self, id: Uuid) -> Result<Arc<UserView>> {
        let now = clock::now_ms();
        if let Some(view) = self.user_views.views.get(&id, now) {
            return Ok(view);
        }
        let generation = self.user_views.generation.load(Ordering::SeqCst);
        let view = Arc::new(users::find_view(self.db.pool(), id).await?.ok_or(Error::InvalidToken)?);
        if self.user_views.generation.load(Ordering::SeqCst) == generation {
            self.user_views.views.insert(id, Arc::clone(&view), now + KEEP_MS, now);
        }
        Ok(view)
    }

    /// Commits a transaction that changed what the views of `users` show, and drops them here at once.
    pub(crate) async fn commit_user_change(&self, tx: Tx, users: &[Uuid]) -> Result<()> {
        tx.commit().await?;
        self.user_views.forget(users);
        Ok(())
    }
}
