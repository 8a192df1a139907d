//! The `user_changes` table, which the database's triggers fill (migration 0017).

use sqlx::AnyExecutor;
use uuid::Uuid;

use super::parse_id;
use crate::error::Result;

/// The users changed after `after` (the database's Unix ms), each with its latest change, and the latest
/// change of all (`after` when there is none).
pub async fn since<'e>(ex: impl AnyExecutor<'e>, after: i64) -> Result<(Vec<Uuid>, i64)> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT user_id, MAX(changed_at) FROM user_changes WHERE changed_at > $1 GROUP BY user_id")
            .bind(after)
            .fetch_all(ex)
            .await?;
    let latest = rows.iter().map(|(_, at)| *at).max().unwrap_or(after);
    let ids = rows.iter().map(|(id, _)| parse_id(id)).collect::<Result<_, _>>()?;
    Ok((ids, latest))
}

/// The latest change recorded, or `None` on an empty table.
pub async fn latest<'e>(ex: impl AnyExecutor<'e>) -> Result<Option<i64>> {
    let (latest,): (Option<i64>,) = sqlx::query_as("SELECT MAX(changed_at) FROM user_changes").fetch_one(ex).await?;
    Ok(latest)
}
