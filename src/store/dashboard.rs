//! The figures of the admin dashboard: counts over the audit table (by the `(action, at)` index), the users
//! and the lockouts.

use sqlx::AnyExecutor;

use crate::error::Result;

/// The audit actions the dashboard counts: a completed sign-in, a refused one, a lock.
pub const SIGN_IN: &str = "login";
pub const FAILED_SIGN_IN: &str = "login_failed";
pub const LOCKED: &str = "account_locked";

/// How many events of each counted action happened since `since` (Unix ms), in buckets of `bucket_ms` from
/// 1970: `(bucket number, action, count)`. `i64::MAX` puts everything in bucket 0.
pub async fn counts_since<'e>(ex: impl AnyExecutor<'e>, since: i64, bucket_ms: i64) -> Result<Vec<(i64, String, i64)>> {
    Ok(sqlx::query_as(&format!(
        "SELECT at / {bucket_ms} AS bucket, action, COUNT(*) FROM audit_events
         WHERE action IN ($1, $2, $3) AND at >= $4 GROUP BY at / {bucket_ms}, action"
    ))
    .bind(SIGN_IN)
    .bind(FAILED_SIGN_IN)
    .bind(LOCKED)
    .bind(since)
    .fetch_all(ex)
    .await?)
}

pub async fn user_count<'e>(ex: impl AnyExecutor<'e>) -> Result<i64> {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users").fetch_one(ex).await?;
    Ok(n)
}

/// Accounts with a sign-in name (email or username) locked at `now`; locks of unknown names and of single
/// devices are not accounts.
pub async fn locked_accounts<'e>(ex: impl AnyExecutor<'e>, now: i64) -> Result<i64> {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT COUNT(DISTINCT u.id) FROM login_lockouts l JOIN users u
           ON l.lock_key = 'email:' || u.email OR l.lock_key = 'username:' || u.username
         WHERE l.locked_until > $1",
    )
    .bind(now)
    .fetch_one(ex)
    .await?;
    Ok(n)
}
