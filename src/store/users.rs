//! The `users` table.

use sqlx::{AnyConnection, AnyExecutor, FromRow};
use uuid::Uuid;

use super::orgs::OrgRecord;
use super::parse_id;
use crate::{
    domain::{identity::LoginIdentifier, roles::Role},
    error::{Error, Result},
};

/// A user as stored: what they are, and the password hash nothing but sign-in reads.
#[derive(Clone)]
pub struct UserRecord {
    pub profile: Profile,
    pub password_hash: String,
}

/// A user without the password hash: what pages, tokens and the API show, and what is kept in memory.
#[derive(Clone, Debug)]
pub struct Profile {
    pub id: Uuid,
    pub email: String,
    pub username: Option<String>,
    pub role: Role,
    pub is_active: bool,
    pub mfa_enabled: bool,
    /// The address was confirmed from a mailed link, or the account was made by an operator.
    pub email_verified: bool,
    pub created_at: i64,
    pub last_login_at: Option<i64>,
}

/// A user with their organisation memberships, in the order they joined.
#[derive(Clone, Debug)]
pub struct UserView {
    pub profile: Profile,
    pub memberships: Vec<(OrgRecord, Role)>,
}

impl std::fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRecord")
            .field("id", &self.profile.id)
            .field("role", &self.profile.role)
            .finish_non_exhaustive()
    }
}

#[derive(FromRow)]
struct Row {
    id: String,
    email: String,
    username: Option<String>,
    password_hash: String,
    role: String,
    is_active: i64,
    mfa_enabled: i64,
    email_verified: i64,
    created_at: i64,
    last_login_at: Option<i64>,
}

impl TryFrom<Row> for UserRecord {
    type Error = sqlx::Error;

    fn try_from(r: Row) -> Result<Self, sqlx::Error> {
        let profile = Profile {
            id: parse_id(&r.id)?,
            role: r.role.parse().map_err(|e: String| sqlx::Error::Decode(e.into()))?,
            email: r.email,
            username: r.username,
            is_active: r.is_active != 0,
            mfa_enabled: r.mfa_enabled != 0,
            email_verified: r.email_verified != 0,
            created_at: r.created_at,
            last_login_at: r.last_login_at,
        };
        Ok(Self { profile, password_hash: r.password_hash })
    }
}

const COLUMNS: &str =
    "id, email, username, password_hash, role, is_active, mfa_enabled, email_verified, created_at, last_login_at";

/// Inserts a user; a taken email or username is a conflict, not an internal error.
pub async fn insert(conn: &mut AnyConnection, user: &UserRecord) -> Result<()> {
    let result = sqlx::query(
        "INSERT INTO users
         (id, email, username, password_hash, role, is_active, mfa_enabled, email_verified, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
    )
    .bind(user.profile.id.to_string())
    .bind(&user.profile.email)
    .bind(&user.profile.username)
    .bind(&user.password_hash)
    .bind(user.profile.role.as_str())
    .bind(i64::from(user.profile.is_active))
    .bind(i64::from(user.profile.mfa_enabled))
    .bind(i64::from(user.profile.email_verified))
    .bind(user.profile.created_at)
    .execute(conn)
    .await;
    result.map(|_| ()).map_err(taken)
}

/// A unique violation on `users` is a conflict, not an internal error.
fn taken(e: sqlx::Error) -> Error {
    match e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            // PostgreSQL names the constraint; SQLite names the column in its message.
            let which = format!("{} {}", db.constraint().unwrap_or_default(), db.message());
            if which.contains("username") {
                Error::Conflict { code: "username_taken", message: "That username is already taken." }
            } else {
                Error::Conflict { code: "email_taken", message: "An account with that email already exists." }
            }
        }
        e => e.into(),
    }
}

/// A new, confirmed address for the account; one another account has is a conflict.
pub async fn set_email(conn: &mut AnyConnection, id: Uuid, email: &str, now: i64) -> Result<()> {
    sqlx::query("UPDATE users SET email = $1, email_verified = 1, updated_at = $2 WHERE id = $3")
        .bind(email)
        .bind(now)
        .bind(id.to_string())
        .execute(conn)
        .await
        .map(|_| ())
        .map_err(taken)
}

async fn fetch_one_where<'e>(ex: impl AnyExecutor<'e>, clause: &str, value: String) -> Result<Option<UserRecord>> {
    let row: Option<Row> =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM users WHERE {clause}")).bind(value).fetch_optional(ex).await?;
    Ok(row.map(UserRecord::try_from).transpose()?)
}

/// The email of each of `ids` that is still an account.
pub async fn emails_of<'e>(ex: impl AnyExecutor<'e>, ids: &[Uuid]) -> Result<std::collections::HashMap<Uuid, String>> {
    if ids.is_empty() {
        return Ok(Default::default());
    }
    let placeholders: Vec<String> = (1..=ids.len()).map(|n| format!("${n}")).collect();
    let sql = format!("SELECT id, email FROM users WHERE id IN ({})", placeholders.join(", "));
    let mut query = sqlx::query_as::<_, (String, String)>(&sql);
    for id in ids {
        query = query.bind(id.to_string());
    }
    query.fetch_all(ex).await?.into_iter().map(|(id, email)| Ok((parse_id(&id)?, email))).collect()
}

pub async fn find_by_id<'e>(ex: impl AnyExecutor<'e>, id: Uuid) -> Result<Option<UserRecord>> {
    fetch_one_where(ex, "id = $1", id.to_string()).await
}

pub async fn find_by_identifier<'e>(
    ex: impl AnyExecutor<'e>,
    identifier: &LoginIdentifier,
) -> Result<Option<UserRecord>> {
    match identifier {
        LoginIdentifier::Email(email) => fetch_one_where(ex, "email = $1", email.clone()).await,
        LoginIdentifier::Username(name) => fetch_one_where(ex, "username = $1", name.clone()).await,
    }
}

pub async fn email_exists<'e>(ex: impl AnyExecutor<'e>, email: &str) -> Result<bool> {
    let (count,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM users WHERE email = $1").bind(email).fetch_one(ex).await?;
    Ok(count > 0)
}

pub async fn set_password_hash(conn: &mut AnyConnection, id: Uuid, hash: &str, now: i64) -> Result<()> {
    sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3")
        .bind(hash)
        .bind(now)
        .bind(id.to_string())
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn set_email_verified(conn: &mut AnyConnection, id: Uuid, now: i64) -> Result<()> {
    sqlx::query("UPDATE users SET email_verified = 1, updated_at = $1 WHERE id = $2")
        .bind(now)
        .bind(id.to_string())
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn record_login(conn: &mut AnyConnection, id: Uuid, now: i64) -> Result<()> {
    sqlx::query("UPDATE users SET last_login_at = $1 WHERE id = $2")
        .bind(now)
        .bind(id.to_string())
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn set_mfa_enabled(conn: &mut AnyConnection, id: Uuid, enabled: bool, now: i64) -> Result<()> {
    sqlx::query("UPDATE users SET mfa_enabled = $1, updated_at = $2 WHERE id = $3")
        .bind(i64::from(enabled))
        .bind(now)
        .bind(id.to_string())
        .execute(conn)
        .await?;
    Ok(())
}

/// `q` (case-insensitive substring of email or username, matched literally), ordered by creation; and the
/// number of matches.
/// Which accounts a search lists: `q` a substring of the email or username, and optionally one role and one
/// state.
#[derive(Default)]
pub struct UserFilter<'a> {
    pub q: &'a str,
    pub role: Option<Role>,
    pub active: Option<bool>,
}

pub async fn search(
    conn: &mut AnyConnection,
    filter: &UserFilter<'_>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<UserRecord>, i64)> {
    let escaped = filter.q.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    let pattern = format!("%{escaped}%");
    let role = filter.role.map(Role::as_str);
    let active = filter.active.map(i64::from);
    let condition = "WHERE (email LIKE $1 ESCAPE '\\' OR username LIKE $1 ESCAPE '\\')
                     AND ($2 IS NULL OR role = $2) AND ($3 IS NULL OR is_active = $3)";
    let (total,): (i64,) = sqlx::query_as(&format!("SELECT COUNT(*) FROM users {condition}"))
        .bind(&pattern)
        .bind(role)
        .bind(active)
        .fetch_one(&mut *conn)
        .await?;
    let rows: Vec<Row> =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM users {condition} ORDER BY created_at, id LIMIT $4 OFFSET $5"))
            .bind(&pattern)
            .bind(role)
            .bind(active)
            .bind(limit)
            .bind(offset)
            .fetch_all(&mut *conn)
            .await?;
    Ok((rows.into_iter().map(UserRecord::try_from).collect::<Result<_, _>>()?, total))
}

pub async fn set_role_and_active(
    conn: &mut AnyConnection,
    id: Uuid,
    role: Role,
    is_active: bool,
    now: i64,
) -> Result<()> {
    sqlx::query("UPDATE users SET role = $1, is_active = $2, updated_at = $3 WHERE id = $4")
        .bind(role.as_str())
        .bind(i64::from(is_active))
        .bind(now)
        .bind(id.to_string())
        .execute(conn)
        .await?;
    Ok(())
}

/// Ids of active admins. `lock` (PostgreSQL: `FOR UPDATE`) makes concurrent demotions queue behind each
/// other, so that two admins cannot demote each other at once; SQLite's write transaction already does.
/// Takes the user's row lock (`lock` is `Db::row_lock`), so that checks of one account happen one after
/// the other.
pub async fn lock_row(conn: &mut AnyConnection, id: Uuid, lock: &str) -> Result<()> {
    sqlx::query(&format!("SELECT id FROM users WHERE id = $1 {lock}"))
        .bind(id.to_string())
        .fetch_optional(conn)
        .await?;
    Ok(())
}

pub async fn active_admins(conn: &mut AnyConnection, lock: &str) -> Result<Vec<Uuid>> {
    let rows: Vec<(String,)> =
        sqlx::query_as(&format!("SELECT id FROM users WHERE role = 'admin' AND is_active = 1 {lock}"))
            .fetch_all(conn)
            .await?;
    Ok(rows.iter().map(|(id,)| parse_id(id)).collect::<Result<_, _>>()?)
}

/// A user and their organisation memberships in one round trip (the hot path of `GET /auth/me`).
pub async fn find_view<'e>(ex: impl AnyExecutor<'e>, id: Uuid) -> Result<Option<UserView>> {
    #[derive(FromRow)]
    struct Joined {
        #[sqlx(flatten)]
        user: Row,
        org_id: Option<String>,
        org_name: Option<String>,
        org_slug: Option<String>,
        org_created_at: Option<i64>,
        org_role: Option<String>,
    }
    let rows: Vec<Joined> = sqlx::query_as(
        "SELECT u.id, u.email, u.username, u.password_hash, u.role, u.is_active, u.mfa_enabled, u.email_verified, u.created_at,
                u.last_login_at, o.id AS org_id, o.name AS org_name, o.slug AS org_slug,
                o.created_at AS org_created_at, m.role AS org_role
         FROM users u LEFT JOIN org_members m ON m.user_id = u.id LEFT JOIN orgs o ON o.id = m.org_id
         WHERE u.id = $1 ORDER BY m.created_at, o.slug",
    )
    .bind(id.to_string())
    .fetch_all(ex)
    .await?;
    let mut memberships = Vec::new();
    let mut user = None;
    for row in rows {
        if let (Some(org_id), Some(name), Some(slug), Some(created_at), Some(role)) =
            (row.org_id, row.org_name, row.org_slug, row.org_created_at, row.org_role)
        {
            let org = OrgRecord { id: parse_id(&org_id)?, name, slug, created_at };
            memberships.push((org, role.parse().map_err(|e: String| sqlx::Error::Decode(e.into()))?));
        }
        if user.is_none() {
            user = Some(UserRecord::try_from(row.user)?);
        }
    }
    Ok(user.map(|u| UserView { profile: u.profile, memberships }))
}
