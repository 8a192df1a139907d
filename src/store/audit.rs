//! The `audit_events` table. Rows are written inside the transaction of the change they record.

use sqlx::{AnyConnection, AnyExecutor, FromRow};
use uuid::Uuid;

use super::parse_id;
use crate::error::Result;

#[derive(Clone, Debug)]
pub struct AuditRecord {
    pub id: Uuid,
    pub at: i64,
    pub user_id: Option<Uuid>,
    pub action: String,
    pub outcome: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub detail: serde_json::Value,
}

#[derive(FromRow)]
struct Row {
    id: String,
    at: i64,
    user_id: Option<String>,
    action: String,
    outcome: String,
    ip: Option<String>,
    user_agent: Option<String>,
    detail: String,
}

pub async fn insert(conn: &mut AnyConnection, e: &AuditRecord) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit_events (id, at, user_id, action, outcome, ip, user_agent, detail)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(e.id.to_string())
    .bind(e.at)
    .bind(e.user_id.map(|u| u.to_string()))
    .bind(&e.action)
    .bind(&e.outcome)
    .bind(&e.ip)
    .bind(&e.user_agent)
    .bind(e.detail.to_string())
    .execute(conn)
    .await?;
    Ok(())
}

/// Which events to list: all filters optional, newest first, at or after `after` and before `before` (Unix
/// ms): strictly, or with `before_id` (keyset paging in the list's order) the events at `before` whose id
/// sorts below it too, so that a page boundary inside one millisecond skips nothing.
pub struct AuditQuery<'a> {
    pub user_id: Option<Uuid>,
    pub action: Option<&'a str>,
    pub after: i64,
    pub before: i64,
    pub before_id: Option<Uuid>,
    pub limit: i64,
}

impl<'a> AuditQuery<'a> {
    /// The newest `limit` events, of one user and one action if given.
    pub fn latest(user_id: Option<Uuid>, action: Option<&'a str>, limit: i64) -> Self {
        Self { user_id, action, after: i64::MIN, before: i64::MAX, before_id: None, limit }
    }
}

pub async fn list<'e>(ex: impl AnyExecutor<'e>, q: &AuditQuery<'_>) -> Result<Vec<AuditRecord>> {
    // NULL filters match everything, so one statement serves every combination.
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, at, user_id, action, outcome, ip, user_agent, detail FROM audit_events
         WHERE ($1 IS NULL OR user_id = $1) AND ($2 IS NULL OR action = $2) AND at >= $4
           AND at <= $3 AND (at < $3 OR id < $6)
         ORDER BY at DESC, id DESC LIMIT $5",
    )
    .bind(q.user_id.map(|u| u.to_string()))
    .bind(q.action)
    .bind(q.before)
    .bind(q.after)
    .bind(q.limit)
    .bind(q.before_id.map(|id| id.to_string()))
    .fetch_all(ex)
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok(AuditRecord {
                id: parse_id(&r.id)?,
                at: r.at,
                user_id: r.user_id.as_deref().map(parse_id).transpose()?,
                action: r.action,
                outcome: r.outcome,
                ip: r.ip,
                user_agent: r.user_agent,
                detail: serde_json::from_str(&r.detail).unwrap_or(serde_json::Value::Null),
            })
        })
        .collect()
}
