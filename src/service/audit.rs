//! Security events: one row per event, written in the transaction of the change it records, and the
//! same event as a structured `tracing` record. Details never hold secrets.

use sqlx::AnyConnection;
use uuid::Uuid;

use super::{Client, Services};
use crate::{
    clock,
    error::Result,
    store::audit::{self, AuditRecord},
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        }
    }
}

/// Longest user agent kept; the rest is cut so that a hostile header cannot bloat the log.
const MAX_USER_AGENT: usize = 256;

pub struct Event {
    pub action: &'static str,
    pub outcome: Outcome,
    pub user_id: Option<Uuid>,
    pub detail: serde_json::Value,
}

impl Event {
    pub fn success(action: &'static str, user_id: Uuid) -> Self {
        Self::success_for(action, Some(user_id))
    }

    /// A success that may concern no user (an operator's or a client's own action).
    pub fn success_for(action: &'static str, user_id: Option<Uuid>) -> Self {
        Self { action, outcome: Outcome::Success, user_id, detail: serde_json::json!({}) }
    }

    pub fn failure(action: &'static str, user_id: Option<Uuid>) -> Self {
        Self { action, outcome: Outcome::Failure, user_id, detail: serde_json::json!({}) }
    }

    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.detail[key] = value.into();
        self
    }
}

pub fn truncate_user_agent(ua: &str) -> String {
    ua.chars().take(MAX_USER_AGENT).collect()
}

pub async fn record(conn: &mut AnyConnection, client: &Client, event: Event) -> Result<()> {
    let row = AuditRecord {
        id: Uuid::new_v4(),
        at: clock::now_ms(),
        user_id: event.user_id,
        action: event.action.to_string(),
        outcome: event.outcome.as_str().to_string(),
        ip: client.ip.clone(),
        user_agent: client.user_agent.clone(),
        detail: event.detail,
    };
    audit::insert(conn, &row).await?;
    tracing::info!(
        target: "latchkey::audit",
        action = %row.action,
        outcome = %row.outcome,
        user_id = ?row.user_id,
        ip = ?row.ip,
        detail = %row.detail,
        "audit"
    );
    Ok(())
}

impl Services {
    /// An audit row for an event that changes nothing else, in a transaction of its own.
    pub(crate) async fn record_alone(&self, client: &Client, event: Event) -> Result<()> {
        let mut tx = self.db.begin().await?;
        record(&mut tx, client, event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Security events, newest first, by the query's filters.
    pub async fn audit_events(&self, query: &audit::AuditQuery<'_>) -> Result<Vec<AuditRecord>> {
        audit::list(self.db.pool(), query).await
    }

    /// Events with the email of everyone they name: the user each is about and the admin who acted
    /// (`detail.by`).
    pub async fn audit_events_with_people(
        &self,
        query: &audit::AuditQuery<'_>,
    ) -> Result<(Vec<AuditRecord>, std::collections::HashMap<Uuid, String>)> {
        let events = self.audit_events(query).await?;
        let mut ids: Vec<Uuid> =
            events.iter().filter_map(|e| e.user_id).chain(events.iter().filter_map(actor_of)).collect();
        ids.sort_unstable();
        ids.dedup();
        let emails = crate::store::users::emails_of(self.db.pool(), &ids).await?;
        Ok((events, emails))
    }
}

/// The administrator who made the change an event records, when one did.
pub fn actor_of(event: &AuditRecord) -> Option<Uuid> {
    event.detail.get("by").and_then(|by| by.as_str()).and_then(|by| by.parse().ok())
}
