//! Deleting rows nothing needs any more.

use sqlx::AnyConnection;

use crate::error::Result;

/// What one pruning pass deleted, per table.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    pub audit_events: u64,
    pub sessions: u64,
    pub mfa_challenges: u64,
    pub lockouts: u64,
    pub outbox: u64,
    pub mail_tokens: u64,
    pub user_changes: u64,
}

/// `audit_before`: audit events older than this go. `dead_before`: sessions that ended (revoked, expired
/// or idle) before this, challenges that expired before it, lockout rows untouched since, and deliveries
/// finished before it. `changes_before`: user changes every instance has read long ago.
pub async fn prune(
    conn: &mut AnyConnection,
    audit_before: i64,
    dead_before: i64,
    idle_before: i64,
    changes_before: i64,
) -> Result<Pruned> {
    let run = |sql: &'static str| sqlx::query(sql);
    let audit_events =
        run("DELETE FROM audit_events WHERE at < $1").bind(audit_before).execute(&mut *conn).await?.rows_affected();
    // Refresh tokens go with their session (ON DELETE CASCADE). A revoked session stays while one of its
    // access tokens could still be presented: the revocation set is loaded from these rows.
    let sessions = run("DELETE FROM sessions WHERE (revoked_at < $1 OR expires_at < $1 OR last_used_at < $2)
                        AND (access_expires_at IS NULL OR access_expires_at < $1)")
    .bind(dead_before)
    .bind(idle_before)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    let mfa_challenges = run("DELETE FROM mfa_challenges WHERE expires_at < $1")
        .bind(dead_before)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    let lockouts =
        run("DELETE FROM login_lockouts WHERE updated_at < $1 AND (locked_until IS NULL OR locked_until < $1)")
            .bind(dead_before)
            .execute(&mut *conn)
            .await?
            .rows_affected();
    let outbox =
        run("DELETE FROM outbox WHERE done_at < $1").bind(dead_before).execute(&mut *conn).await?.rows_affected();
    let mail_tokens = run("DELETE FROM mail_tokens WHERE expires_at < $1")
        .bind(dead_before)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    let user_changes = run("DELETE FROM user_changes WHERE changed_at < $1")
        .bind(changes_before)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    Ok(Pruned { audit_events, sessions, mfa_challenges, lockouts, outbox, mail_tokens, user_changes })
}
