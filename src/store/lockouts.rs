//! The `login_lockouts` table and the per-account second-factor failure count.

use sqlx::{AnyConnection, AnyExecutor};
use uuid::Uuid;

use crate::error::Result;

/// When `key` is locked, until when (Unix ms).
pub async fn locked_until<'e>(ex: impl AnyExecutor<'e>, key: &str, now: i64) -> Result<Option<i64>> {
    let row: Option<(Option<i64>,)> = sqlx::query_as("SELECT locked_until FROM login_lockouts WHERE lock_key = $1")
        .bind(key)
        .fetch_optional(ex)
        .await?;
    Ok(row.and_then(|(until,)| until).filter(|until| *until > now))
}

/// Counts an attempt as a failure before its password is checked, in one statement, so that attempts made
/// at the same time (on any instance) each get a place of their own: the attempt's place in the current run
/// of failures (1 for the first), or `None` while the key is locked or `limit` places are already taken (by
/// failures, or by attempts still being judged). A lock that has run out starts a new count.
pub async fn reserve(conn: &mut AnyConnection, key: &str, limit: i64, now: i64) -> Result<Option<i64>> {
    let number: Option<(i64,)> = sqlx::query_as(
        "INSERT INTO login_lockouts (lock_key, failures, locked_until, updated_at) VALUES ($1, 1, NULL, $2)
         ON CONFLICT (lock_key) DO UPDATE SET
             failures = CASE WHEN login_lockouts.locked_until <= $2 THEN 1 ELSE login_lockouts.failures + 1 END,
             locked_until = CASE WHEN login_lockouts.locked_until <= $2 THEN NULL ELSE login_lockouts.locked_until END,
             updated_at = $2
         WHERE (login_lockouts.locked_until IS NULL AND login_lockouts.failures < $3)
            OR login_lockouts.locked_until <= $2
         RETURNING failures",
    )
    .bind(key)
    .bind(now)
    .bind(limit)
    .fetch_optional(conn)
    .await?;
    Ok(number.map(|(n,)| n))
}

/// When the last attempt was counted against `key` (Unix ms).
pub async fn last_counted<'e>(ex: impl AnyExecutor<'e>, key: &str) -> Result<Option<i64>> {
    let row: Option<(i64,)> = sqlx::query_as("SELECT updated_at FROM login_lockouts WHERE lock_key = $1")
        .bind(key)
        .fetch_optional(ex)
        .await?;
    Ok(row.map(|(at,)| at))
}

/// Gives back an attempt that was counted but never judged (the server could not check it).
pub async fn release(conn: &mut AnyConnection, key: &str) -> Result<()> {
    sqlx::query("UPDATE login_lockouts SET failures = failures - 1 WHERE lock_key = $1 AND failures > 0")
        .bind(key)
        .execute(conn)
        .await?;
    Ok(())
}

/// Locks `key` until `until`; false when it was already locked (so the lock is reported once).
pub async fn lock(conn: &mut AnyConnection, key: &str, until: i64, now: i64) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO login_lockouts (lock_key, failures, locked_until, updated_at) VALUES ($1, 0, $2, $3)
         ON CONFLICT (lock_key) DO UPDATE SET locked_until = $2, failures = 0, updated_at = $3
         WHERE login_lockouts.locked_until IS NULL OR login_lockouts.locked_until <= $3",
    )
    .bind(key)
    .bind(until)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A successful sign-in ends the run of failures, but never a lock in force: returns that lock instead.
pub async fn clear_unless_locked(conn: &mut AnyConnection, key: &str, now: i64) -> Result<Option<i64>> {
    sqlx::query("DELETE FROM login_lockouts WHERE lock_key = $1 AND (locked_until IS NULL OR locked_until <= $2)")
        .bind(key)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    locked_until(conn, key, now).await
}

/// An administrator's unlock: the lock and the count go.
pub async fn clear(conn: &mut AnyConnection, key: &str) -> Result<()> {
    sqlx::query("DELETE FROM login_lockouts WHERE lock_key = $1").bind(key).execute(conn).await?;
    Ok(())
}

pub async fn add_mfa_failure(conn: &mut AnyConnection, user_id: Uuid) -> Result<i64> {
    let (failures,): (i64,) =
        sqlx::query_as("UPDATE users SET mfa_failures = mfa_failures + 1 WHERE id = $1 RETURNING mfa_failures")
            .bind(user_id.to_string())
            .fetch_one(conn)
            .await?;
    Ok(failures)
}

pub async fn reset_mfa_failures(conn: &mut AnyConnection, user_id: Uuid) -> Result<()> {
    sqlx::query("UPDATE users SET mfa_failures = 0 WHERE id = $1 AND mfa_failures <> 0")
        .bind(user_id.to_string())
        .execute(conn)
        .await?;
    Ok(())
}
