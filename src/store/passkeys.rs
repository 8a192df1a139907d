//! The `passkeys` and `passkey_challenges` tables.

use sqlx::{AnyConnection, AnyExecutor};
use uuid::Uuid;

use super::parse_id;
use crate::error::Result;

pub struct PasskeyRecord {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    /// webauthn-rs's credential, as JSON.
    pub credential: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

type Row = (String, String, String, String, i64, Option<i64>);

const COLUMNS: &str = "id, user_id, name, credential, created_at, last_used_at";

fn record((id, user_id, name, credential, created_at, last_used_at): Row) -> Result<PasskeyRecord> {
    Ok(PasskeyRecord { id: parse_id(&id)?, user_id: parse_id(&user_id)?, name, credential, created_at, last_used_at })
}

/// A user's passkeys, oldest first.
pub async fn of_user<'e>(ex: impl AnyExecutor<'e>, user_id: Uuid) -> Result<Vec<PasskeyRecord>> {
    let rows: Vec<Row> =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM passkeys WHERE user_id = $1 ORDER BY created_at, id"))
            .bind(user_id.to_string())
            .fetch_all(ex)
            .await?;
    rows.into_iter().map(record).collect()
}

pub async fn count<'e>(ex: impl AnyExecutor<'e>, user_id: Uuid) -> Result<i64> {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM passkeys WHERE user_id = $1")
        .bind(user_id.to_string())
        .fetch_one(ex)
        .await?;
    Ok(n)
}

/// The passkey an authenticator's credential id names, whoever holds it.
pub async fn by_credential_id<'e>(ex: impl AnyExecutor<'e>, credential_id: &str) -> Result<Option<PasskeyRecord>> {
    let row: Option<Row> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM passkeys WHERE credential_id = $1"))
        .bind(credential_id)
        .fetch_optional(ex)
        .await?;
    row.map(record).transpose()
}

/// False when the credential id is registered already (to this account or another).
pub async fn insert(conn: &mut AnyConnection, p: &PasskeyRecord, credential_id: &str) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO passkeys (id, user_id, credential_id, name, credential, created_at, last_used_at)
         VALUES ($1, $2, $3, $4, $5, $6, NULL) ON CONFLICT (credential_id) DO NOTHING",
    )
    .bind(p.id.to_string())
    .bind(p.user_id.to_string())
    .bind(credential_id)
    .bind(&p.name)
    .bind(&p.credential)
    .bind(p.created_at)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// After a sign-in: the updated credential (counter, backup flags) and when.
pub async fn record_use(conn: &mut AnyConnection, id: Uuid, credential: &str, now: i64) -> Result<()> {
    sqlx::query("UPDATE passkeys SET credential = $1, last_used_at = $2 WHERE id = $3")
        .bind(credential)
        .bind(now)
        .bind(id.to_string())
        .execute(conn)
        .await?;
    Ok(())
}

/// False when the user has no passkey with this id.
pub async fn rename(conn: &mut AnyConnection, user_id: Uuid, id: Uuid, name: &str) -> Result<bool> {
    let done = sqlx::query("UPDATE passkeys SET name = $1 WHERE id = $2 AND user_id = $3")
        .bind(name)
        .bind(id.to_string())
        .bind(user_id.to_string())
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// False when the user has no passkey with this id.
pub async fn delete(conn: &mut AnyConnection, user_id: Uuid, id: Uuid) -> Result<bool> {
    let done = sqlx::query("DELETE FROM passkeys WHERE id = $1 AND user_id = $2")
        .bind(id.to_string())
        .bind(user_id.to_string())
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Every passkey of a user (an admin's MFA reset); how many there were.
pub async fn delete_all(conn: &mut AnyConnection, user_id: Uuid) -> Result<u64> {
    let done = sqlx::query("DELETE FROM passkeys WHERE user_id = $1").bind(user_id.to_string()).execute(conn).await?;
    Ok(done.rows_affected())
}

pub struct ChallengeRecord {
    pub purpose: String,
    pub user_id: Option<Uuid>,
    /// What the ceremony belongs to, in the `mfa_token_hash` column: the pending sign-in's `mfa_token` hash
    /// ("mfa") or the session's id ("step_up").
    pub bound_to: Option<String>,
    pub state: String,
    pub expires_at: i64,
}

pub async fn insert_challenge(conn: &mut AnyConnection, id_hash: &str, c: &ChallengeRecord, now: i64) -> Result<()> {
    sqlx::query("DELETE FROM passkey_challenges WHERE expires_at <= $1").bind(now).execute(&mut *conn).await?;
    sqlx::query(
        "INSERT INTO passkey_challenges (id_hash, purpose, user_id, mfa_token_hash, state, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id_hash)
    .bind(&c.purpose)
    .bind(c.user_id.map(|u| u.to_string()))
    .bind(&c.bound_to)
    .bind(&c.state)
    .bind(c.expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes a challenge and returns it: whoever deletes it first is the only one who may verify it.
pub async fn take_challenge(conn: &mut AnyConnection, id_hash: &str) -> Result<Option<ChallengeRecord>> {
    type ChallengeRow = (String, Option<String>, Option<String>, String, i64);
    let row: Option<ChallengeRow> = sqlx::query_as(
        "DELETE FROM passkey_challenges WHERE id_hash = $1
         RETURNING purpose, user_id, mfa_token_hash, state, expires_at",
    )
    .bind(id_hash)
    .fetch_optional(conn)
    .await?;
    row.map(|(purpose, user_id, mfa_token_hash, state, expires_at)| {
        Ok(ChallengeRecord {
            purpose,
            user_id: user_id.as_deref().map(parse_id).transpose()?,
            bound_to: mfa_token_hash,
            state,
            expires_at,
        })
    })
    .transpose()
}
