//! The `sessions` and `refresh_tokens` tables.

use sqlx::{AnyConnection, AnyExecutor, FromRow};
use uuid::Uuid;

use super::{outbox, parse_id};
use crate::{domain::roles::Role, error::Result};

#[derive(Clone, Debug)]
pub struct SessionRecord {
    pub id: Uuid,
    pub user_id: Uuid,
    pub created_at: i64,
    pub last_used_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    pub mfa: bool,
    pub amr: Vec<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

#[derive(FromRow)]
struct Row {
    id: String,
    user_id: String,
    created_at: i64,
    last_used_at: i64,
    expires_at: i64,
    revoked_at: Option<i64>,
    mfa: i64,
    amr: String,
    ip: Option<String>,
    user_agent: Option<String>,
}

impl TryFrom<Row> for SessionRecord {
    type Error = sqlx::Error;

    fn try_from(r: Row) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: parse_id(&r.id)?,
            user_id: parse_id(&r.user_id)?,
            created_at: r.created_at,
            last_used_at: r.last_used_at,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
            mfa: r.mfa != 0,
            amr: r.amr.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect(),
            ip: r.ip,
            user_agent: r.user_agent,
        })
    }
}

/// The one definition of a live session: not revoked, not past its absolute expiry, and used after the idle
/// cutoff. The arguments are the placeholder numbers of `now` and of the cutoff in the statement.
fn live(now: u8, idle_cutoff: u8) -> String {
    format!("s.revoked_at IS NULL AND s.expires_at > ${now} AND s.last_used_at > ${idle_cutoff}")
}

const COLUMNS: &str =
    "s.id, s.user_id, s.created_at, s.last_used_at, s.expires_at, s.revoked_at, s.mfa, s.amr, s.ip, s.user_agent";

pub async fn insert(conn: &mut AnyConnection, s: &SessionRecord) -> Result<()> {
    sqlx::query(
        "INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, mfa, amr, ip, user_agent)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(s.id.to_string())
    .bind(s.user_id.to_string())
    .bind(s.created_at)
    .bind(s.last_used_at)
    .bind(s.expires_at)
    .bind(i64::from(s.mfa))
    .bind(s.amr.join(","))
    .bind(&s.ip)
    .bind(&s.user_agent)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn insert_refresh_token(conn: &mut AnyConnection, hash: &str, session_id: Uuid, now: i64) -> Result<()> {
    sqlx::query("INSERT INTO refresh_tokens (token_hash, session_id, created_at) VALUES ($1, $2, $3)")
        .bind(hash)
        .bind(session_id.to_string())
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

/// A presented refresh token, its session, and what the token needs to know of the user.
pub struct RefreshLookup {
    pub session: SessionRecord,
    pub spent_at: Option<i64>,
    pub role: Role,
    pub user_active: bool,
}

#[derive(FromRow)]
struct RefreshRow {
    #[sqlx(flatten)]
    session: Row,
    spent_at: Option<i64>,
    role: String,
    is_active: i64,
}

pub async fn find_by_refresh_token<'e>(ex: impl AnyExecutor<'e>, hash: &str) -> Result<Option<RefreshLookup>> {
    let row: Option<RefreshRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS}, r.spent_at, u.role, u.is_active
         FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id JOIN users u ON u.id = s.user_id
         WHERE r.token_hash = $1"
    ))
    .bind(hash)
    .fetch_optional(ex)
    .await?;
    let Some(row) = row else { return Ok(None) };
    Ok(Some(RefreshLookup {
        session: row.session.try_into()?,
        spent_at: row.spent_at,
        role: row.role.parse().map_err(|e: String| sqlx::Error::Decode(e.into()))?,
        user_active: row.is_active != 0,
    }))
}

/// Marks a refresh token spent. False when another request spent it first.
pub async fn spend_refresh_token(conn: &mut AnyConnection, hash: &str, now: i64) -> Result<bool> {
    let done = sqlx::query("UPDATE refresh_tokens SET spent_at = $1 WHERE token_hash = $2 AND spent_at IS NULL")
        .bind(now)
        .bind(hash)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn touch(conn: &mut AnyConnection, id: Uuid, now: i64) -> Result<()> {
    sqlx::query("UPDATE sessions SET last_used_at = $1 WHERE id = $2")
        .bind(now)
        .bind(id.to_string())
        .execute(conn)
        .await?;
    Ok(())
}

/// Ends one of `user_id`'s sessions, and queues the back-channel logouts of the applications it signed in to;
/// false when it is not theirs or already ended.
pub async fn revoke(conn: &mut AnyConnection, id: Uuid, user_id: Uuid, now: i64, reason: &str) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE sessions SET revoked_at = $1, revoke_reason = $2 WHERE id = $3 AND user_id = $4 AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(reason)
    .bind(id.to_string())
    .bind(user_id.to_string())
    .execute(&mut *conn)
    .await?;
    let ended = done.rows_affected() == 1;
    if ended {
        outbox::enqueue_backchannel_logouts(conn, &[id], now).await?;
    }
    Ok(ended)
}

/// Ends every live session of a user except `keep` (queueing their back-channel logouts, as `revoke` does);
/// returns the ids it ended.
pub async fn revoke_all(
    conn: &mut AnyConnection,
    user_id: Uuid,
    keep: Option<Uuid>,
    now: i64,
    reason: &str,
) -> Result<Vec<Uuid>> {
    let ids: Vec<(String,)> = sqlx::query_as(
        "UPDATE sessions SET revoked_at = $1, revoke_reason = $2
         WHERE user_id = $3 AND revoked_at IS NULL AND id <> $4 RETURNING id",
    )
    .bind(now)
    .bind(reason)
    .bind(user_id.to_string())
    .bind(keep.map(|k| k.to_string()).unwrap_or_default())
    .fetch_all(&mut *conn)
    .await?;
    let ids: Vec<Uuid> = ids.iter().map(|(id,)| parse_id(id)).collect::<Result<_, _>>()?;
    outbox::enqueue_backchannel_logouts(conn, &ids, now).await?;
    Ok(ids)
}

/// Sessions that are neither revoked, past their absolute expiry, nor idle since `idle_cutoff`.
pub async fn list_live<'e>(
    ex: impl AnyExecutor<'e>,
    user_id: Uuid,
    now: i64,
    idle_cutoff: i64,
) -> Result<Vec<SessionRecord>> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM sessions s WHERE s.user_id = $1 AND {} ORDER BY s.created_at DESC",
        live(2, 3)
    ))
    .bind(user_id.to_string())
    .bind(now)
    .bind(idle_cutoff)
    .fetch_all(ex)
    .await?;
    Ok(rows.into_iter().map(SessionRecord::try_from).collect::<Result<_, _>>()?)
}

/// Sessions revoked at or after `since`, with the time each was revoked.
/// Records that an access token expiring at `exp` (Unix ms) was issued for the session.
pub async fn extend_access_expiry(conn: &mut AnyConnection, id: Uuid, exp: i64) -> Result<()> {
    sqlx::query(
        "UPDATE sessions SET access_expires_at = $2
         WHERE id = $1 AND (access_expires_at IS NULL OR access_expires_at < $2)",
    )
    .bind(id.to_string())
    .bind(exp)
    .execute(conn)
    .await?;
    Ok(())
}

/// Revoked sessions (and OAuth grants, revoked or of a revoked session: their ids share the set) that issued an access token still valid at `tokens_at`, or that were revoked since
/// `revoked_since`: (id, latest access-token expiry, revoked at).
pub async fn revoked_recently<'e>(
    ex: impl AnyExecutor<'e>,
    tokens_at: i64,
    revoked_since: i64,
) -> Result<Vec<(Uuid, i64, i64)>> {
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT id, COALESCE(access_expires_at, 0), revoked_at FROM sessions \
         WHERE revoked_at IS NOT NULL AND access_expires_at >= $1 \
         UNION SELECT id, COALESCE(access_expires_at, 0), revoked_at FROM sessions WHERE revoked_at >= $2 \
         UNION SELECT id, access_expires_at, revoked_at FROM oauth_grants \
         WHERE revoked_at IS NOT NULL AND access_expires_at >= $1 \
         UNION SELECT g.id, g.access_expires_at, s.revoked_at FROM oauth_grants g JOIN sessions s ON s.id = g.session_id \
         WHERE s.revoked_at IS NOT NULL AND g.access_expires_at >= $1",
    )
    .bind(tokens_at)
    .bind(revoked_since)
    .fetch_all(ex)
    .await?;
    Ok(rows.into_iter().map(|(id, exp, at)| Ok((parse_id(&id)?, exp, at))).collect::<Result<_, sqlx::Error>>()?)
}

pub async fn count_live<'e>(ex: impl AnyExecutor<'e>, now: i64, idle_cutoff: i64) -> Result<i64> {
    let (count,): (i64,) = sqlx::query_as(&format!("SELECT COUNT(*) FROM sessions s WHERE {}", live(1, 2)))
        .bind(now)
        .bind(idle_cutoff)
        .fetch_one(ex)
        .await?;
    Ok(count)
}

/// A session that is neither revoked, expired nor idle since `idle_cutoff`.
pub async fn find_live<'e>(
    ex: impl AnyExecutor<'e>,
    id: Uuid,
    now: i64,
    idle_cutoff: i64,
) -> Result<Option<SessionRecord>> {
    let row: Option<Row> =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM sessions s WHERE s.id = $1 AND {}", live(2, 3)))
            .bind(id.to_string())
            .bind(now)
            .bind(idle_cutoff)
            .fetch_optional(ex)
            .await?;
    Ok(row.map(SessionRecord::try_from).transpose()?)
}
