//! The `orgs` and `org_members` tables.

use sqlx::{AnyConnection, AnyExecutor, FromRow};
use uuid::Uuid;

use super::parse_id;
use crate::{
    domain::roles::Role,
    error::{Error, Result},
};

#[derive(Clone, Debug)]
pub struct OrgRecord {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
    pub created_at: i64,
}

#[derive(Clone, Debug)]
pub struct MemberRecord {
    pub user_id: Uuid,
    pub email: String,
    pub role: Role,
}

fn role(text: &str) -> Result<Role, sqlx::Error> {
    text.parse().map_err(|e: String| sqlx::Error::Decode(e.into()))
}

#[derive(FromRow)]
struct OrgRow {
    id: String,
    name: String,
    slug: String,
    created_at: i64,
}

impl TryFrom<OrgRow> for OrgRecord {
    type Error = sqlx::Error;

    fn try_from(r: OrgRow) -> Result<Self, sqlx::Error> {
        Ok(Self { id: parse_id(&r.id)?, name: r.name, slug: r.slug, created_at: r.created_at })
    }
}

pub async fn insert(conn: &mut AnyConnection, org: &OrgRecord) -> Result<()> {
    let result = sqlx::query("INSERT INTO orgs (id, name, slug, created_at) VALUES ($1, $2, $3, $4)")
        .bind(org.id.to_string())
        .bind(&org.name)
        .bind(&org.slug)
        .bind(org.created_at)
        .execute(conn)
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
            Err(Error::Conflict { code: "slug_taken", message: "An organisation with that slug already exists." })
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn find<'e>(ex: impl AnyExecutor<'e>, id: Uuid) -> Result<Option<OrgRecord>> {
    let row: Option<OrgRow> = sqlx::query_as("SELECT id, name, slug, created_at FROM orgs WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(ex)
        .await?;
    Ok(row.map(OrgRecord::try_from).transpose()?)
}

/// Every organisation, by name, with its member count; at most `limit`.
pub async fn all_with_sizes<'e>(ex: impl AnyExecutor<'e>, limit: i64) -> Result<Vec<(OrgRecord, i64)>> {
    let rows: Vec<(String, String, String, i64, i64)> = sqlx::query_as(
        "SELECT o.id, o.name, o.slug, o.created_at, (SELECT COUNT(*) FROM org_members m WHERE m.org_id = o.id)
         FROM orgs o ORDER BY o.name, o.id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(ex)
    .await?;
    rows.into_iter()
        .map(|(id, name, slug, created_at, size)| {
            Ok((OrgRecord::try_from(OrgRow { id, name, slug, created_at })?, size))
        })
        .collect()
}

/// Adds a member or changes their role.
pub async fn set_member(conn: &mut AnyConnection, org_id: Uuid, user_id: Uuid, role: Role, now: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO org_members (org_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (org_id, user_id) DO UPDATE SET role = excluded.role",
    )
    .bind(org_id.to_string())
    .bind(user_id.to_string())
    .bind(role.as_str())
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn remove_member(conn: &mut AnyConnection, org_id: Uuid, user_id: Uuid) -> Result<bool> {
    let done = sqlx::query("DELETE FROM org_members WHERE org_id = $1 AND user_id = $2")
        .bind(org_id.to_string())
        .bind(user_id.to_string())
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn role_of<'e>(ex: impl AnyExecutor<'e>, org_id: Uuid, user_id: Uuid) -> Result<Option<Role>> {
    let row: Option<(String,)> = sqlx::query_as("SELECT role FROM org_members WHERE org_id = $1 AND user_id = $2")
        .bind(org_id.to_string())
        .bind(user_id.to_string())
        .fetch_optional(ex)
        .await?;
    Ok(row.map(|(r,)| role(&r)).transpose()?)
}

/// The org's admins; `lock` as in `users::active_admins`.
pub async fn admins(conn: &mut AnyConnection, org_id: Uuid, lock: &str) -> Result<Vec<Uuid>> {
    let rows: Vec<(String,)> =
        sqlx::query_as(&format!("SELECT user_id FROM org_members WHERE org_id = $1 AND role = 'admin' {lock}"))
            .bind(org_id.to_string())
            .fetch_all(conn)
            .await?;
    Ok(rows.iter().map(|(id,)| parse_id(id)).collect::<Result<_, _>>()?)
}

pub async fn members<'e>(ex: impl AnyExecutor<'e>, org_id: Uuid) -> Result<Vec<MemberRecord>> {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT m.user_id, u.email, m.role FROM org_members m JOIN users u ON u.id = m.user_id
         WHERE m.org_id = $1 ORDER BY m.created_at, u.email",
    )
    .bind(org_id.to_string())
    .fetch_all(ex)
    .await?;
    rows.into_iter()
        .map(|(user_id, email, r)| Ok(MemberRecord { user_id: parse_id(&user_id)?, email, role: role(&r)? }))
        .collect()
}

/// A user's organisations and role in each, oldest membership first, at most `limit`.
pub async fn of_user<'e>(ex: impl AnyExecutor<'e>, user_id: Uuid, limit: i64) -> Result<Vec<(OrgRecord, Role)>> {
    let rows: Vec<(String, String, String, i64, String)> = sqlx::query_as(
        "SELECT o.id, o.name, o.slug, o.created_at, m.role FROM org_members m JOIN orgs o ON o.id = m.org_id
         WHERE m.user_id = $1 ORDER BY m.created_at, o.slug LIMIT $2",
    )
    .bind(user_id.to_string())
    .bind(limit)
    .fetch_all(ex)
    .await?;
    rows.into_iter()
        .map(|(id, name, slug, created_at, r)| {
            Ok((OrgRecord { id: parse_id(&id)?, name, slug, created_at }, role(&r)?))
        })
        .collect()
}

/// Invites `user_id` (or changes the role of their open invitation).
pub async fn invite(
    conn: &mut AnyConnection,
    org_id: Uuid,
    user_id: Uuid,
    role: Role,
    invited_by: Uuid,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO org_invitations (org_id, user_id, role, invited_by, created_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (org_id, user_id) DO UPDATE SET role = excluded.role, invited_by = excluded.invited_by",
    )
    .bind(org_id.to_string())
    .bind(user_id.to_string())
    .bind(role.as_str())
    .bind(invited_by.to_string())
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes an open invitation and returns its role.
pub async fn take_invitation(conn: &mut AnyConnection, org_id: Uuid, user_id: Uuid) -> Result<Option<Role>> {
    let row: Option<(String,)> =
        sqlx::query_as("DELETE FROM org_invitations WHERE org_id = $1 AND user_id = $2 RETURNING role")
            .bind(org_id.to_string())
            .bind(user_id.to_string())
            .fetch_optional(conn)
            .await?;
    Ok(row.map(|(r,)| role(&r)).transpose()?)
}

/// A user's open invitations: the organisation, the role offered, and when (Unix ms).
pub async fn invitations_of_user<'e>(
    ex: impl AnyExecutor<'e>,
    user_id: Uuid,
    limit: i64,
) -> Result<Vec<(OrgRecord, Role, i64)>> {
    let rows: Vec<(String, String, String, i64, String, i64)> = sqlx::query_as(
        "SELECT o.id, o.name, o.slug, o.created_at, i.role, i.created_at FROM org_invitations i
         JOIN orgs o ON o.id = i.org_id WHERE i.user_id = $1 ORDER BY i.created_at, o.slug LIMIT $2",
    )
    .bind(user_id.to_string())
    .bind(limit)
    .fetch_all(ex)
    .await?;
    rows.into_iter()
        .map(|(id, name, slug, created_at, r, invited_at)| {
            Ok((OrgRecord { id: parse_id(&id)?, name, slug, created_at }, role(&r)?, invited_at))
        })
        .collect()
}
