//! The `signing_keys` table: public halves in the clear, private halves sealed.

use sqlx::{AnyConnection, AnyExecutor};

use crate::error::Result;

pub struct StoredKey {
    pub kid: String,
    pub public_x: String,
    pub sealed_private: Vec<u8>,
}

/// Stores `key` as the current signing key unless another instance got there first; either way the
/// caller then reads the winner with [`current`].
pub async fn insert_current_if_absent(conn: &mut AnyConnection, key: &StoredKey, alg: &str, now: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO signing_keys (kid, slot, alg, public_x, sealed_private, created_at)
         VALUES ($1, 'current', $2, $3, $4, $5) ON CONFLICT (slot) DO NOTHING",
    )
    .bind(&key.kid)
    .bind(alg)
    .bind(&key.public_x)
    .bind(&key.sealed_private)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn current<'e>(ex: impl AnyExecutor<'e>) -> Result<Option<StoredKey>> {
    let row: Option<(String, String, Vec<u8>)> =
        sqlx::query_as("SELECT kid, public_x, sealed_private FROM signing_keys WHERE slot = 'current'")
            .fetch_optional(ex)
            .await?;
    Ok(row.map(|(kid, public_x, sealed_private)| StoredKey { kid, public_x, sealed_private }))
}
