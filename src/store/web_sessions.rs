//! The `web_sessions` table.

use sqlx::{AnyConnection, AnyExecutor, FromRow};
use uuid::Uuid;

use super::parse_id;
use crate::error::Result;

pub struct WebSessionRecord {
    pub token_hash: String,
    pub session_id: Option<Uuid>,
    pub sealed_mfa_token: Option<Vec<u8>>,
    pub csrf: String,
    pub expires_at: i64,
}

pub async fn insert(conn: &mut AnyConnection, w: &WebSessionRecord, now: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO web_sessions (token_hash, session_id, sealed_mfa_token, csrf, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&w.token_hash)
    .bind(w.session_id.map(|id| id.to_string()))
    .bind(&w.sealed_mfa_token)
    .bind(&w.csrf)
    .bind(now)
    .bind(w.expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(FromRow)]
struct Row {
    token_hash: String,
    session_id: Option<String>,
    sealed_mfa_token: Option<Vec<u8>>,
    csrf: String,
    expires_at: i64,
}

pub async fn find<'e>(ex: impl AnyExecutor<'e>, token_hash: &str, now: i64) -> Result<Option<WebSessionRecord>> {
    let row: Option<Row> = sqlx::query_as(
        "SELECT token_hash, session_id, sealed_mfa_token, csrf, expires_at FROM web_sessions
         WHERE token_hash = $1 AND expires_at > $2",
    )
    .bind(token_hash)
    .bind(now)
    .fetch_optional(ex)
    .await?;
    let Some(r) = row else { return Ok(None) };
    Ok(Some(WebSessionRecord {
        session_id: r.session_id.as_deref().map(parse_id).transpose()?,
        token_hash: r.token_hash,
        sealed_mfa_token: r.sealed_mfa_token,
        csrf: r.csrf,
        expires_at: r.expires_at,
    }))
}

pub async fn delete(conn: &mut AnyConnection, token_hash: &str) -> Result<()> {
    sqlx::query("DELETE FROM web_sessions WHERE token_hash = $1").bind(token_hash).execute(conn).await?;
    Ok(())
}

pub async fn delete_expired(conn: &mut AnyConnection, now: i64) -> Result<u64> {
    Ok(sqlx::query("DELETE FROM web_sessions WHERE expires_at < $1").bind(now).execute(conn).await?.rows_affected())
}
