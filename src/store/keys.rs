//! The `signing_keys` table: public halves in the clear, private halves sealed. A current key holds its
//! algorithm's slot; a retired one has none and a `retired_at`.

use sqlx::{AnyConnection, AnyExecutor};

use crate::error::Result;

pub struct StoredKey {
    pub kid: String,
    pub alg: String,
    /// The public key as published, for people reading the table; the server derives it from the private key.
    pub public: String,
    pub sealed_private: Vec<u8>,
    pub current: bool,
}

/// The slot of the current key of `alg`. Ed25519's keeps the name it had when it was the only key.
fn slot(alg: &str) -> String {
    if alg == "EdDSA" { "current".into() } else { format!("current:{alg}") }
}

/// Stores `key` as the current key of its algorithm unless another instance got there first; either way
/// the caller then reads the winner with [`usable`].
pub async fn insert_current_if_absent(conn: &mut AnyConnection, key: &StoredKey, now: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO signing_keys (kid, slot, alg, public_x, sealed_private, created_at)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (slot) DO NOTHING",
    )
    .bind(&key.kid)
    .bind(slot(&key.alg))
    .bind(&key.alg)
    .bind(&key.public)
    .bind(&key.sealed_private)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Takes every current key out of its slot (they stay, published, as retired keys).
pub async fn retire_current(conn: &mut AnyConnection, now: i64) -> Result<u64> {
    let done = sqlx::query("UPDATE signing_keys SET slot = NULL, retired_at = $1 WHERE slot IS NOT NULL")
        .bind(now)
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}

type KeyRow = (String, String, String, Vec<u8>, Option<String>);

/// The current keys, and the keys retired at or after `retired_since`.
pub async fn usable<'e>(ex: impl AnyExecutor<'e>, retired_since: i64) -> Result<Vec<StoredKey>> {
    let rows: Vec<KeyRow> = sqlx::query_as(
        "SELECT kid, alg, public_x, sealed_private, slot FROM signing_keys
         WHERE slot IS NOT NULL OR retired_at >= $1 ORDER BY created_at",
    )
    .bind(retired_since)
    .fetch_all(ex)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(kid, alg, public, sealed_private, slot)| StoredKey {
            kid,
            alg,
            public,
            sealed_private,
            current: slot.is_some(),
        })
        .collect())
}
