//! The `totp_credentials`, `backup_codes` and `mfa_challenges` tables.

use sqlx::{AnyConnection, AnyExecutor};
use uuid::Uuid;

use super::parse_id;
use crate::error::Result;

pub struct TotpCredential {
    pub sealed_secret: Vec<u8>,
    pub enabled: bool,
    pub last_step: i64,
}

pub async fn totp<'e>(ex: impl AnyExecutor<'e>, user_id: Uuid) -> Result<Option<TotpCredential>> {
    let row: Option<(Vec<u8>, i64, i64)> =
        sqlx::query_as("SELECT sealed_secret, enabled, last_step FROM totp_credentials WHERE user_id = $1")
            .bind(user_id.to_string())
            .fetch_optional(ex)
            .await?;
    Ok(row.map(|(sealed_secret, enabled, last_step)| TotpCredential {
        sealed_secret,
        enabled: enabled != 0,
        last_step,
    }))
}

/// Stores a new pending secret, replacing an earlier pending one; an enabled credential is left alone.
/// False when the user already has MFA enabled.
pub async fn set_pending_totp(conn: &mut AnyConnection, user_id: Uuid, sealed: &[u8], now: i64) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO totp_credentials (user_id, sealed_secret, enabled, last_step, created_at) VALUES ($1, $2, 0, -1, $3)
         ON CONFLICT (user_id) DO UPDATE SET sealed_secret = excluded.sealed_secret, last_step = -1, created_at = excluded.created_at
         WHERE totp_credentials.enabled = 0",
    )
    .bind(user_id.to_string())
    .bind(sealed)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records `step` as used, enabling the credential if it was pending. False when a code for this or a
/// later step was accepted first (a replay, possibly on another instance).
pub async fn use_totp_step(conn: &mut AnyConnection, user_id: Uuid, step: i64) -> Result<bool> {
    let done =
        sqlx::query("UPDATE totp_credentials SET last_step = $1, enabled = 1 WHERE user_id = $2 AND last_step < $1")
            .bind(step)
            .bind(user_id.to_string())
            .execute(conn)
            .await?;
    Ok(done.rows_affected() == 1)
}

/// Removes every second factor of a user: the TOTP credential, the passkeys and the backup codes.
pub async fn delete_all(conn: &mut AnyConnection, user_id: Uuid) -> Result<()> {
    for table in ["totp_credentials", "passkeys", "backup_codes"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE user_id = $1"))
            .bind(user_id.to_string())
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Removes the TOTP credential only (the account keeps its passkeys and backup codes).
pub async fn delete_totp(conn: &mut AnyConnection, user_id: Uuid) -> Result<()> {
    sqlx::query("DELETE FROM totp_credentials WHERE user_id = $1").bind(user_id.to_string()).execute(conn).await?;
    Ok(())
}

pub async fn replace_backup_codes(conn: &mut AnyConnection, user_id: Uuid, hashes: &[String], now: i64) -> Result<()> {
    sqlx::query("DELETE FROM backup_codes WHERE user_id = $1").bind(user_id.to_string()).execute(&mut *conn).await?;
    for hash in hashes {
        sqlx::query("INSERT INTO backup_codes (user_id, code_hash, created_at) VALUES ($1, $2, $3)")
            .bind(user_id.to_string())
            .bind(hash)
            .bind(now)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Spends a backup code; false when it is not one of the user's unused codes.
pub async fn use_backup_code(conn: &mut AnyConnection, user_id: Uuid, hash: &str, now: i64) -> Result<bool> {
    let done =
        sqlx::query("UPDATE backup_codes SET used_at = $1 WHERE user_id = $2 AND code_hash = $3 AND used_at IS NULL")
            .bind(now)
            .bind(user_id.to_string())
            .bind(hash)
            .execute(conn)
            .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn remaining_backup_codes<'e>(ex: impl AnyExecutor<'e>, user_id: Uuid) -> Result<i64> {
    let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM backup_codes WHERE user_id = $1 AND used_at IS NULL")
        .bind(user_id.to_string())
        .fetch_one(ex)
        .await?;
    Ok(count)
}

pub struct Challenge {
    pub user_id: Uuid,
    pub expires_at: i64,
    pub spent: bool,
    /// The password step came from a device the account had not signed in from.
    pub new_device: bool,
}

pub async fn insert_challenge(
    conn: &mut AnyConnection,
    hash: &str,
    user_id: Uuid,
    now: i64,
    expires_at: i64,
    new_device: bool,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO mfa_challenges (token_hash, user_id, created_at, expires_at, new_device)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(hash)
    .bind(user_id.to_string())
    .bind(now)
    .bind(expires_at)
    .bind(i64::from(new_device))
    .execute(conn)
    .await?;
    Ok(())
}

/// `lock` as in `users::active_admins`: inside a transaction, the row stays as read until it ends.
pub async fn challenge<'e>(ex: impl AnyExecutor<'e>, hash: &str, lock: &str) -> Result<Option<Challenge>> {
    let row: Option<(String, i64, Option<i64>, i64)> = sqlx::query_as(&format!(
        "SELECT user_id, expires_at, spent_at, new_device FROM mfa_challenges WHERE token_hash = $1 {lock}"
    ))
    .bind(hash)
    .fetch_optional(ex)
    .await?;
    row.map(|(user_id, expires_at, spent_at, new_device)| {
        Ok(Challenge {
            user_id: parse_id(&user_id)?,
            expires_at,
            spent: spent_at.is_some(),
            new_device: new_device != 0,
        })
    })
    .transpose()
}

/// Counts a wrong code; spends the challenge when this failure reaches `max`. Returns the failure count.
pub async fn fail_challenge(conn: &mut AnyConnection, hash: &str, max: i64, now: i64) -> Result<i64> {
    let (failures,): (i64,) = sqlx::query_as(
        "UPDATE mfa_challenges SET failures = failures + 1,
             spent_at = CASE WHEN failures + 1 >= $1 THEN $2 ELSE spent_at END
         WHERE token_hash = $3 RETURNING failures",
    )
    .bind(max)
    .bind(now)
    .bind(hash)
    .fetch_one(conn)
    .await?;
    Ok(failures)
}

/// Spends a challenge on success; false when a parallel request spent it first.
pub async fn spend_challenge(conn: &mut AnyConnection, hash: &str, now: i64) -> Result<bool> {
    let done = sqlx::query("UPDATE mfa_challenges SET spent_at = $1 WHERE token_hash = $2 AND spent_at IS NULL")
        .bind(now)
        .bind(hash)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Spends every open challenge of a user (when the account is locked for second-factor guessing).
pub async fn spend_open_challenges(conn: &mut AnyConnection, user_id: Uuid, now: i64) -> Result<()> {
    sqlx::query("UPDATE mfa_challenges SET spent_at = $1 WHERE user_id = $2 AND spent_at IS NULL")
        .bind(now)
        .bind(user_id.to_string())
        .execute(conn)
        .await?;
    Ok(())
}
