//! The `mail_tokens` table: the single-use links that mails carry, by the SHA-256 of their token.

use sqlx::AnyConnection;
use uuid::Uuid;

use super::parse_id;
use crate::error::Result;

pub const PASSWORD_RESET: &str = "password_reset";
pub const EMAIL_VERIFICATION: &str = "email_verification";
pub const EMAIL_CHANGE: &str = "email_change";

/// A link to store: what it is for, whose, until when, and (for an email change) the new address.
pub struct NewLink<'a> {
    pub purpose: &'a str,
    pub user_id: Uuid,
    pub expires_at: i64,
    pub new_email: Option<&'a str>,
}

/// Stores a new link, and spends the user's older ones of the same purpose: only the newest link works.
pub async fn replace(conn: &mut AnyConnection, hash: &str, link: &NewLink<'_>, now: i64) -> Result<()> {
    spend_all(conn, link.user_id, link.purpose, now).await?;
    sqlx::query(
        "INSERT INTO mail_tokens (token_hash, purpose, user_id, created_at, expires_at, new_email)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(hash)
    .bind(link.purpose)
    .bind(link.user_id.to_string())
    .bind(now)
    .bind(link.expires_at)
    .bind(link.new_email)
    .execute(conn)
    .await?;
    Ok(())
}

/// The user a live (unspent, unexpired) link of `purpose` belongs to, and the address it carries. `lock`
/// holds the row until the transaction ends, so two uses of one link cannot both pass.
pub async fn find_live(
    conn: &mut AnyConnection,
    hash: &str,
    purpose: &str,
    now: i64,
    lock: &str,
) -> Result<Option<(Uuid, Option<String>)>> {
    let row: Option<(String, Option<String>)> = sqlx::query_as(&format!(
        "SELECT user_id, new_email FROM mail_tokens
         WHERE token_hash = $1 AND purpose = $2 AND spent_at IS NULL AND expires_at > $3 {lock}"
    ))
    .bind(hash)
    .bind(purpose)
    .bind(now)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|(id, email)| Ok::<_, sqlx::Error>((parse_id(&id)?, email))).transpose()?)
}

/// Spends every unspent link of `purpose` of the user (a reset done, a password changed).
pub async fn spend_all(conn: &mut AnyConnection, user_id: Uuid, purpose: &str, now: i64) -> Result<()> {
    sqlx::query("UPDATE mail_tokens SET spent_at = $1 WHERE user_id = $2 AND purpose = $3 AND spent_at IS NULL")
        .bind(now)
        .bind(user_id.to_string())
        .bind(purpose)
        .execute(conn)
        .await?;
    Ok(())
}
