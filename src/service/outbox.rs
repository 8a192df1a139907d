//! The delivery worker: every `outbox_poll` it claims what is due in the outbox and sends it, each item in a
//! task of its own with a timeout, so a slow or dead receiver delays only its own deliveries. At most
//! `IN_FLIGHT` deliveries run at once; what does not fit waits in the table for the next pass. A failure is
//! retried with doubling delays; after the last attempt the item is given up on, logged and counted.
//!
//! Kinds: back-channel logout tokens (OpenID Connect Back-Channel Logout 1.0 §2.4–2.5), POSTed as
//! `logout_token=...` to the client's `backchannel_logout_uri`; mail (`service::mail`), over SMTP.

use std::{sync::Arc, time::Duration};

use jsonwebtoken::Algorithm;
use serde_json::json;
use tokio::sync::Semaphore;
use uuid::Uuid;

use super::Services;
use crate::{
    clock,
    domain::signing,
    error::Result,
    store::{
        oauth as clients,
        outbox::{self, BACKCHANNEL_LOGOUT, BackchannelLogout, MAIL, OutboxItem},
    },
};

/// Items one pass takes at most, and deliveries in flight at once.
const BATCH: usize = 32;
const IN_FLIGHT: usize = 64;
/// A delivery not answered within this is a failed attempt.
const TIMEOUT: Duration = Duration::from_secs(5);
/// How long a claimed item stays away from other workers: past the timeout of its delivery.
const LEASE_MS: i64 = 30_000;
/// Retries wait twice as long each time, but never more than this: a receiver that comes back gets what
/// waited within a minute.
const LONGEST_WAIT_MS: i64 = 60_000;

/// Attempts before giving up: a back-channel logout is worth a few minutes of trying (the session it
/// reports has long ended after that); a mail a day.
fn max_attempts(kind: &str) -> i64 {
    if kind == MAIL { 24 * 60 + 10 } else { 12 }
}
const LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// The `typ` Back-Channel Logout §2.4 recommends, so no logout token passes as another kind of JWT.
pub const LOGOUT_TOKEN_TYPE: &str = "logout+jwt";

/// How one attempt went.
enum Attempt {
    Sent,
    /// Worth trying again later: the receiver was down, slow, or answered 5xx, 408 or 429.
    Failed(String),
    /// No retry can help: the client is gone or has no address any more, or it refused the token.
    Hopeless(String),
}

impl Services {
    pub fn spawn_outbox(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let this = Arc::clone(self);
        let slots = Arc::new(Semaphore::new(IN_FLIGHT));
        super::spawn_periodic(every, "delivering the outbox", move || {
            let (this, slots) = (this.clone(), slots.clone());
            async move { this.deliver_due(&slots).await.map(|_| ()) }
        })
    }

    /// One pass: claims as many due items as there are free delivery slots and starts their deliveries,
    /// without waiting for them (a receiver that hangs holds only its own slot, until the timeout).
    /// Returns how many it started.
    pub async fn deliver_due(self: &Arc<Self>, slots: &Arc<Semaphore>) -> Result<usize> {
        let free = slots.available_permits().min(BATCH);
        if free == 0 {
            return Ok(0);
        }
        let now = clock::now_ms();
        // One statement, so no transaction: a pass that finds nothing due (nearly every pass) holds the
        // SQLite write lock only while that statement runs, never across an await.
        let mut conn = self.db.pool().acquire().await?;
        let items = outbox::claim(&mut conn, now, now + LEASE_MS, free as i64, self.db.skip_locked()).await?;
        drop(conn);
        let count = items.len();
        for item in items {
            let Ok(slot) = slots.clone().try_acquire_owned() else { break };
            let this = Arc::clone(self);
            tokio::spawn(async move {
                let attempt = this.attempt(&item).await;
                if let Err(e) = this.record(&item, attempt).await {
                    tracing::warn!(error = %e, "could not record a delivery; it is retried after its lease");
                }
                drop(slot);
            });
        }
        Ok(count)
    }

    async fn attempt(&self, item: &OutboxItem) -> Attempt {
        match item.kind.as_str() {
            BACKCHANNEL_LOGOUT => match serde_json::from_str(&item.payload) {
                Ok(notice) => self.send_logout_token(&notice).await,
                Err(e) => Attempt::Hopeless(format!("unreadable payload: {e}")),
            },
            MAIL => match self.send_queued_mail(&item.payload).await {
                Ok(()) => Attempt::Sent,
                Err(e) if e.permanent => Attempt::Hopeless(e.message),
                Err(e) => Attempt::Failed(e.message),
            },
            other => Attempt::Hopeless(format!("unknown kind {other}")),
        }
    }

    async fn record(&self, item: &OutboxItem, attempt: Attempt) -> Result<()> {
        let now = clock::now_ms();
        let outcome = match attempt {
            Attempt::Sent => {
                outbox::finish(self.db.pool(), item.id, now, "sent", None).await?;
                "sent"
            }
            Attempt::Failed(why) if item.attempts < max_attempts(&item.kind) => {
                let doubled = clock::duration_ms(self.config.outbox_retry) << (item.attempts - 1).clamp(0, 16);
                let delay = doubled.min(LONGEST_WAIT_MS);
                outbox::retry_at(self.db.pool(), item.id, now + delay, &why).await?;
                tracing::info!(id = %item.id, kind = item.kind, attempts = item.attempts, error = why, "delivery failed; will retry");
                "failed"
            }
            Attempt::Failed(why) | Attempt::Hopeless(why) => {
                outbox::finish(self.db.pool(), item.id, now, "gave_up", Some(&why)).await?;
                tracing::warn!(id = %item.id, kind = item.kind, attempts = item.attempts, error = why, "delivery given up");
                "gave_up"
            }
        };
        metrics::counter!("latchkey_outbox_deliveries_total", "kind" => item.kind.clone(), "outcome" => outcome)
            .increment(1);
        Ok(())
    }

    async fn send_logout_token(&self, notice: &BackchannelLogout) -> Attempt {
        let client = match clients::find_client(self.db.pool(), &notice.client_id).await {
            Ok(Some(client)) => client,
            Ok(None) => return Attempt::Hopeless("the client was deleted".into()),
            Err(e) => return Attempt::Failed(format!("database: {e}")),
        };
        let Some(uri) = &client.backchannel_logout_uri else {
            return Attempt::Hopeless("the client has no back-channel logout address any more".into());
        };
        let token = self.logout_token(notice, &client.id_token_alg);
        let sent = self.http.post(uri).form(&[("logout_token", token)]).timeout(TIMEOUT).send().await;
        match sent {
            Ok(r) if r.status().is_success() => Attempt::Sent,
            Ok(r) if r.status().is_client_error() && !matches!(r.status().as_u16(), 408 | 429) => {
                Attempt::Hopeless(format!("the client answered {}", r.status()))
            }
            Ok(r) => Attempt::Failed(format!("the client answered {}", r.status())),
            Err(e) => Attempt::Failed(format!("no answer: {}", e.without_url())),
        }
    }

    /// Back-Channel Logout §2.4: `iss`, `aud`, `iat`, `exp`, `jti`, `sub`, `sid` and the `events` claim with
    /// the logout event's empty object; never a `nonce`. Signed like the client's ID tokens.
    fn logout_token(&self, notice: &BackchannelLogout, alg: &str) -> String {
        let now = clock::now_ms() / 1000;
        let claims = json!({
            "iss": self.config.issuer,
            "aud": notice.client_id,
            "iat": now,
            "exp": now + 120,
            "jti": Uuid::new_v4(),
            "sub": notice.sub,
            "sid": notice.sid,
            "events": { LOGOUT_EVENT: {} },
        });
        let alg = signing::parse_alg(alg).unwrap_or(Algorithm::RS256);
        self.keys.load().signing_key(alg).sign(LOGOUT_TOKEN_TYPE, &claims)
    }

    /// How many items wait for delivery and when the oldest was queued, for `/metrics`.
    pub async fn outbox_pending(&self) -> Result<(i64, Option<i64>)> {
        outbox::pending(self.db.pool()).await
    }
}
