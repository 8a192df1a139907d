//! The `outbox` table: deliveries that leave the server, written with the change they belong to and sent by
//! the background worker (`service::outbox`), retried with backoff, each claimed by one instance at a time.

use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, AnyExecutor, FromRow};
use uuid::Uuid;

use super::parse_id;
use crate::error::Result;

/// A back-channel logout token for one client about one ended session (OpenID Connect Back-Channel Logout
/// 1.0). The token is signed when it is sent, with the client's key and address as they are then.
pub const BACKCHANNEL_LOGOUT: &str = "backchannel_logout";
/// A mail, sealed (`service::mail`): it may carry a single-use link.
pub const MAIL: &str = "mail";

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct BackchannelLogout {
    pub client_id: String,
    pub sub: Uuid,
    pub sid: Uuid,
}

#[derive(Debug)]
pub struct OutboxItem {
    pub id: Uuid,
    pub kind: String,
    pub payload: String,
    /// Including the attempt this claim starts.
    pub attempts: i64,
}

#[derive(FromRow)]
struct ItemRow {
    id: String,
    kind: String,
    payload: String,
    attempts: i64,
}

/// Who a queued mail is about and its kind, for the per-account limit on mails of a kind.
pub struct Topic<'a> {
    pub user_id: Uuid,
    pub kind: &'a str,
}

pub async fn enqueue(
    conn: &mut AnyConnection,
    kind: &str,
    payload: &str,
    topic: Option<&Topic<'_>>,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO outbox (id, kind, payload, created_at, next_attempt_at, user_id, topic)
         VALUES ($1, $2, $3, $4, $4, $5, $6)",
    )
    .bind(Uuid::new_v4().to_string())
    .bind(kind)
    .bind(payload)
    .bind(now)
    .bind(topic.map(|t| t.user_id.to_string()))
    .bind(topic.map(|t| t.kind))
    .execute(conn)
    .await?;
    Ok(())
}

/// How many mails of `topic`'s kind were queued about its account since `since` (sent or not).
pub async fn count_since<'e>(ex: impl AnyExecutor<'e>, topic: &Topic<'_>, since: i64) -> Result<i64> {
    let (n,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM outbox WHERE user_id = $1 AND topic = $2 AND created_at >= $3")
            .bind(topic.user_id.to_string())
            .bind(topic.kind)
            .bind(since)
            .fetch_one(ex)
            .await?;
    Ok(n)
}

/// Queues a logout token for every client with a back-channel address that holds a grant of one of these
/// (just ended) sessions. Every way a session ends goes through `sessions::revoke` or `sessions::revoke_all`,
/// which call this inside their transaction, so no way of ending one forgets to tell the applications.
pub async fn enqueue_backchannel_logouts(conn: &mut AnyConnection, session_ids: &[Uuid], now: i64) -> Result<()> {
    if session_ids.is_empty() {
        return Ok(());
    }
    let placeholders: Vec<String> = (1..=session_ids.len()).map(|n| format!("${n}")).collect();
    let sql = format!(
        "SELECT DISTINCT g.client_id, g.user_id, g.session_id FROM oauth_grants g
         JOIN oauth_clients c ON c.client_id = g.client_id
         WHERE c.backchannel_logout_uri IS NOT NULL AND g.session_id IN ({})",
        placeholders.join(", ")
    );
    let mut query = sqlx::query_as::<_, (String, String, String)>(&sql);
    for id in session_ids {
        query = query.bind(id.to_string());
    }
    let targets = query.fetch_all(&mut *conn).await?;
    for (client_id, user_id, session_id) in targets {
        let notice = BackchannelLogout { client_id, sub: parse_id(&user_id)?, sid: parse_id(&session_id)? };
        let payload = serde_json::to_string(&notice).map_err(|e| crate::error::Error::Internal(e.into()))?;
        enqueue(conn, BACKCHANNEL_LOGOUT, &payload, None, now).await?;
    }
    Ok(())
}

/// Takes up to `limit` due items for delivery: each is not due again until `lease_until`, so another
/// instance (or this one, if the delivery dies) picks it up only after that. `skip_locked` is
/// PostgreSQL's `FOR UPDATE SKIP LOCKED` (empty on SQLite, whose writers queue anyway).
pub async fn claim(
    conn: &mut AnyConnection,
    now: i64,
    lease_until: i64,
    limit: i64,
    skip_locked: &str,
) -> Result<Vec<OutboxItem>> {
    let rows: Vec<ItemRow> = sqlx::query_as(&format!(
        "UPDATE outbox SET next_attempt_at = $1, attempts = attempts + 1
         WHERE id IN (SELECT id FROM outbox WHERE done_at IS NULL AND next_attempt_at <= $2
                      ORDER BY next_attempt_at LIMIT $3 {skip_locked})
         RETURNING id, kind, payload, attempts"
    ))
    .bind(lease_until)
    .bind(now)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|r| Ok(OutboxItem { id: parse_id(&r.id)?, kind: r.kind, payload: r.payload, attempts: r.attempts }))
        .collect()
}

/// Delivered (`sent`) or given up on (`gave_up`, with why). The payload goes: what is done needs no copy.
pub async fn finish<'e>(
    ex: impl AnyExecutor<'e>,
    id: Uuid,
    now: i64,
    outcome: &str,
    error: Option<&str>,
) -> Result<()> {
    sqlx::query(
        "UPDATE outbox SET done_at = $1, outcome = $2, last_error = COALESCE($3, last_error), payload = ''
         WHERE id = $4",
    )
    .bind(now)
    .bind(outcome)
    .bind(error)
    .bind(id.to_string())
    .execute(ex)
    .await?;
    Ok(())
}

/// A failed attempt: due again at `at`.
pub async fn retry_at<'e>(ex: impl AnyExecutor<'e>, id: Uuid, at: i64, error: &str) -> Result<()> {
    sqlx::query("UPDATE outbox SET next_attempt_at = $1, last_error = $2 WHERE id = $3")
        .bind(at)
        .bind(error)
        .bind(id.to_string())
        .execute(ex)
        .await?;
    Ok(())
}

/// How many items wait for delivery, and when the oldest of them was queued (Unix ms).
pub async fn pending<'e>(ex: impl AnyExecutor<'e>) -> Result<(i64, Option<i64>)> {
    Ok(sqlx::query_as("SELECT COUNT(*), MIN(created_at) FROM outbox WHERE done_at IS NULL").fetch_one(ex).await?)
}
