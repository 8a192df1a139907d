//! The OpenID Connect provider's tables: `oauth_clients`, `oauth_consents`, `oauth_codes`, `oauth_grants`
//! and `oauth_refresh_tokens`.

use sqlx::{AnyConnection, AnyExecutor, FromRow};
use uuid::Uuid;

use super::parse_id;
use crate::error::{Error, Result};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientRecord {
    pub client_id: String,
    /// SHA-256 of the secret, hex; `None` for a public client.
    pub secret_hash: Option<String>,
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub grant_types: Vec<String>,
    pub scopes: Vec<String>,
    /// `required` or `implicit`.
    pub consent: String,
    pub require_mfa: bool,
    pub require_pkce: bool,
    pub id_token_alg: String,
    pub backchannel_logout_uri: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_token_at: Option<i64>,
}

impl ClientRecord {
    /// Whether the client may use a grant type.
    pub fn allows(&self, grant_type: &str) -> bool {
        self.grant_types.iter().any(|g| g == grant_type)
    }
}

#[derive(FromRow)]
struct ClientRow {
    client_id: String,
    secret_hash: Option<String>,
    name: String,
    redirect_uris: String,
    post_logout_redirect_uris: String,
    grant_types: String,
    scopes: String,
    consent: String,
    require_mfa: i64,
    require_pkce: i64,
    id_token_alg: String,
    backchannel_logout_uri: Option<String>,
    created_at: i64,
    updated_at: i64,
    last_token_at: Option<i64>,
}

fn list(text: &str) -> Result<Vec<String>, sqlx::Error> {
    serde_json::from_str(text).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

fn json(values: &[String]) -> String {
    serde_json::Value::from(values.to_vec()).to_string()
}

impl TryFrom<ClientRow> for ClientRecord {
    type Error = sqlx::Error;

    fn try_from(r: ClientRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            redirect_uris: list(&r.redirect_uris)?,
            post_logout_redirect_uris: list(&r.post_logout_redirect_uris)?,
            grant_types: list(&r.grant_types)?,
            scopes: list(&r.scopes)?,
            client_id: r.client_id,
            secret_hash: r.secret_hash,
            name: r.name,
            consent: r.consent,
            require_mfa: r.require_mfa != 0,
            require_pkce: r.require_pkce != 0,
            id_token_alg: r.id_token_alg,
            backchannel_logout_uri: r.backchannel_logout_uri,
            created_at: r.created_at,
            updated_at: r.updated_at,
            last_token_at: r.last_token_at,
        })
    }
}

const CLIENT_COLUMNS: &str = "client_id, secret_hash, name, redirect_uris, post_logout_redirect_uris, grant_types, \
     scopes, consent, require_mfa, require_pkce, id_token_alg, backchannel_logout_uri, created_at, updated_at, \
     last_token_at";

pub async fn insert_client(conn: &mut AnyConnection, c: &ClientRecord) -> Result<()> {
    sqlx::query(&format!(
        "INSERT INTO oauth_clients ({CLIENT_COLUMNS})
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
    ))
    .bind(&c.client_id)
    .bind(&c.secret_hash)
    .bind(&c.name)
    .bind(json(&c.redirect_uris))
    .bind(json(&c.post_logout_redirect_uris))
    .bind(json(&c.grant_types))
    .bind(json(&c.scopes))
    .bind(&c.consent)
    .bind(i64::from(c.require_mfa))
    .bind(i64::from(c.require_pkce))
    .bind(&c.id_token_alg)
    .bind(&c.backchannel_logout_uri)
    .bind(c.created_at)
    .bind(c.updated_at)
    .bind(c.last_token_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Writes every setting of `c` over the stored client (not its secret or creation time).
pub async fn update_client(conn: &mut AnyConnection, c: &ClientRecord) -> Result<()> {
    let done = sqlx::query(
        "UPDATE oauth_clients SET name = $1, redirect_uris = $2, post_logout_redirect_uris = $3, grant_types = $4,
         scopes = $5, consent = $6, require_mfa = $7, require_pkce = $8, id_token_alg = $9,
         backchannel_logout_uri = $10, updated_at = $11 WHERE client_id = $12",
    )
    .bind(&c.name)
    .bind(json(&c.redirect_uris))
    .bind(json(&c.post_logout_redirect_uris))
    .bind(json(&c.grant_types))
    .bind(json(&c.scopes))
    .bind(&c.consent)
    .bind(i64::from(c.require_mfa))
    .bind(i64::from(c.require_pkce))
    .bind(&c.id_token_alg)
    .bind(&c.backchannel_logout_uri)
    .bind(c.updated_at)
    .bind(&c.client_id)
    .execute(conn)
    .await?;
    if done.rows_affected() == 0 { Err(Error::NotFound) } else { Ok(()) }
}

pub async fn set_client_secret(conn: &mut AnyConnection, client_id: &str, hash: &str, now: i64) -> Result<()> {
    let done = sqlx::query(
        "UPDATE oauth_clients SET secret_hash = $1, updated_at = $2 WHERE client_id = $3 AND secret_hash IS NOT NULL",
    )
    .bind(hash)
    .bind(now)
    .bind(client_id)
    .execute(conn)
    .await?;
    if done.rows_affected() == 0 { Err(Error::NotFound) } else { Ok(()) }
}

pub async fn delete_client(conn: &mut AnyConnection, client_id: &str) -> Result<()> {
    let done = sqlx::query("DELETE FROM oauth_clients WHERE client_id = $1").bind(client_id).execute(conn).await?;
    if done.rows_affected() == 0 { Err(Error::NotFound) } else { Ok(()) }
}

pub async fn find_client<'e>(ex: impl AnyExecutor<'e>, client_id: &str) -> Result<Option<ClientRecord>> {
    let row: Option<ClientRow> =
        sqlx::query_as(&format!("SELECT {CLIENT_COLUMNS} FROM oauth_clients WHERE client_id = $1"))
            .bind(client_id)
            .fetch_optional(ex)
            .await?;
    Ok(row.map(ClientRecord::try_from).transpose()?)
}

pub async fn list_clients<'e>(ex: impl AnyExecutor<'e>) -> Result<Vec<ClientRecord>> {
    let rows: Vec<ClientRow> =
        sqlx::query_as(&format!("SELECT {CLIENT_COLUMNS} FROM oauth_clients ORDER BY created_at, client_id"))
            .fetch_all(ex)
            .await?;
    Ok(rows.into_iter().map(ClientRecord::try_from).collect::<Result<_, _>>()?)
}

pub async fn touch_client(conn: &mut AnyConnection, client_id: &str, now: i64) -> Result<()> {
    sqlx::query("UPDATE oauth_clients SET last_token_at = $1 WHERE client_id = $2")
        .bind(now)
        .bind(client_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// The scope set the user consented to for the client, if any.
pub async fn consent<'e>(ex: impl AnyExecutor<'e>, user_id: Uuid, client_id: &str) -> Result<Option<String>> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT scope FROM oauth_consents WHERE user_id = $1 AND client_id = $2")
            .bind(user_id.to_string())
            .bind(client_id)
            .fetch_optional(ex)
            .await?;
    Ok(row.map(|(scope,)| scope))
}

pub async fn save_consent(
    conn: &mut AnyConnection,
    user_id: Uuid,
    client_id: &str,
    scope: &str,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO oauth_consents (user_id, client_id, scope, granted_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (user_id, client_id) DO UPDATE SET scope = excluded.scope, granted_at = excluded.granted_at",
    )
    .bind(user_id.to_string())
    .bind(client_id)
    .bind(scope)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Clone, Debug)]
pub struct CodeRecord {
    pub code_hash: String,
    pub client_id: String,
    pub user_id: Uuid,
    pub session_id: Uuid,
    pub redirect_uri: String,
    pub scope: String,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub auth_time: i64,
    pub expires_at: i64,
    pub spent_at: Option<i64>,
    pub grant_id: Option<Uuid>,
}

#[derive(FromRow)]
struct CodeRow {
    code_hash: String,
    client_id: String,
    user_id: String,
    session_id: String,
    redirect_uri: String,
    scope: String,
    nonce: Option<String>,
    code_challenge: Option<String>,
    auth_time: i64,
    expires_at: i64,
    spent_at: Option<i64>,
    grant_id: Option<String>,
}

pub async fn insert_code(conn: &mut AnyConnection, c: &CodeRecord) -> Result<()> {
    sqlx::query(
        "INSERT INTO oauth_codes (code_hash, client_id, user_id, session_id, redirect_uri, scope, nonce,
         code_challenge, auth_time, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&c.code_hash)
    .bind(&c.client_id)
    .bind(c.user_id.to_string())
    .bind(c.session_id.to_string())
    .bind(&c.redirect_uri)
    .bind(&c.scope)
    .bind(&c.nonce)
    .bind(&c.code_challenge)
    .bind(c.auth_time)
    .bind(c.expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// The code, locked for the rest of the transaction where the database can (`lock`).
pub async fn find_code(conn: &mut AnyConnection, code_hash: &str, lock: &str) -> Result<Option<CodeRecord>> {
    let row: Option<CodeRow> = sqlx::query_as(&format!(
        "SELECT code_hash, client_id, user_id, session_id, redirect_uri, scope, nonce, code_challenge, auth_time,
                expires_at, spent_at, grant_id FROM oauth_codes WHERE code_hash = $1 {lock}"
    ))
    .bind(code_hash)
    .fetch_optional(conn)
    .await?;
    let Some(r) = row else { return Ok(None) };
    Ok(Some(CodeRecord {
        user_id: parse_id(&r.user_id)?,
        session_id: parse_id(&r.session_id)?,
        grant_id: r.grant_id.as_deref().map(parse_id).transpose()?,
        code_hash: r.code_hash,
        client_id: r.client_id,
        redirect_uri: r.redirect_uri,
        scope: r.scope,
        nonce: r.nonce,
        code_challenge: r.code_challenge,
        auth_time: r.auth_time,
        expires_at: r.expires_at,
        spent_at: r.spent_at,
    }))
}

/// Marks the code spent for `grant_id`; false when another request spent it first.
pub async fn spend_code(conn: &mut AnyConnection, code_hash: &str, grant_id: Uuid, now: i64) -> Result<bool> {
    let done =
        sqlx::query("UPDATE oauth_codes SET spent_at = $1, grant_id = $2 WHERE code_hash = $3 AND spent_at IS NULL")
            .bind(now)
            .bind(grant_id.to_string())
            .bind(code_hash)
            .execute(conn)
            .await?;
    Ok(done.rows_affected() == 1)
}

#[derive(Clone, Debug)]
pub struct GrantRecord {
    pub id: Uuid,
    pub client_id: String,
    pub user_id: Uuid,
    pub session_id: Uuid,
    pub scope: String,
    pub nonce: Option<String>,
    pub auth_time: i64,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

#[derive(FromRow)]
struct GrantRow {
    id: String,
    client_id: String,
    user_id: String,
    session_id: String,
    scope: String,
    nonce: Option<String>,
    auth_time: i64,
    created_at: i64,
    revoked_at: Option<i64>,
}

impl TryFrom<GrantRow> for GrantRecord {
    type Error = sqlx::Error;

    fn try_from(r: GrantRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: parse_id(&r.id)?,
            user_id: parse_id(&r.user_id)?,
            session_id: parse_id(&r.session_id)?,
            client_id: r.client_id,
            scope: r.scope,
            nonce: r.nonce,
            auth_time: r.auth_time,
            created_at: r.created_at,
            revoked_at: r.revoked_at,
        })
    }
}

pub async fn insert_grant(conn: &mut AnyConnection, g: &GrantRecord, access_expires_at: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO oauth_grants (id, client_id, user_id, session_id, scope, nonce, auth_time, created_at,
         last_used_at, access_expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9)",
    )
    .bind(g.id.to_string())
    .bind(&g.client_id)
    .bind(g.user_id.to_string())
    .bind(g.session_id.to_string())
    .bind(&g.scope)
    .bind(&g.nonce)
    .bind(g.auth_time)
    .bind(g.created_at)
    .bind(access_expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// A grant used again: its last use, and the latest expiry of an access token it issued.
pub async fn use_grant(conn: &mut AnyConnection, id: Uuid, now: i64, access_expires_at: i64) -> Result<()> {
    sqlx::query("UPDATE oauth_grants SET last_used_at = $1, access_expires_at = $2 WHERE id = $3")
        .bind(now)
        .bind(access_expires_at)
        .bind(id.to_string())
        .execute(conn)
        .await?;
    Ok(())
}

/// Revokes a grant; false when it already was.
pub async fn revoke_grant(conn: &mut AnyConnection, id: Uuid, now: i64, reason: &str) -> Result<bool> {
    let done =
        sqlx::query("UPDATE oauth_grants SET revoked_at = $1, revoke_reason = $2 WHERE id = $3 AND revoked_at IS NULL")
            .bind(now)
            .bind(reason)
            .bind(id.to_string())
            .execute(conn)
            .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn insert_refresh_token(conn: &mut AnyConnection, hash: &str, grant_id: Uuid, now: i64) -> Result<()> {
    sqlx::query("INSERT INTO oauth_refresh_tokens (token_hash, grant_id, created_at) VALUES ($1, $2, $3)")
        .bind(hash)
        .bind(grant_id.to_string())
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

/// A presented refresh token: its grant, and whether it was spent.
pub async fn find_refresh_token<'e>(ex: impl AnyExecutor<'e>, hash: &str) -> Result<Option<(GrantRecord, bool)>> {
    #[derive(FromRow)]
    struct Joined {
        #[sqlx(flatten)]
        grant: GrantRow,
        spent_at: Option<i64>,
    }
    let row: Option<Joined> = sqlx::query_as(
        "SELECT g.id, g.client_id, g.user_id, g.session_id, g.scope, g.nonce, g.auth_time, g.created_at,
                g.revoked_at, r.spent_at
         FROM oauth_refresh_tokens r JOIN oauth_grants g ON g.id = r.grant_id WHERE r.token_hash = $1",
    )
    .bind(hash)
    .fetch_optional(ex)
    .await?;
    let Some(row) = row else { return Ok(None) };
    Ok(Some((row.grant.try_into()?, row.spent_at.is_some())))
}

/// Marks a refresh token spent; false when another request spent it first.
pub async fn spend_refresh_token(conn: &mut AnyConnection, hash: &str, now: i64) -> Result<bool> {
    let done = sqlx::query("UPDATE oauth_refresh_tokens SET spent_at = $1 WHERE token_hash = $2 AND spent_at IS NULL")
        .bind(now)
        .bind(hash)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// A browser that signed in again (or gave its second factor) keeps its applications: the grants of the
/// session it replaces move to the new one, when both are the same user's.
pub async fn move_grants(conn: &mut AnyConnection, from: Uuid, to: Uuid, user_id: Uuid) -> Result<u64> {
    let done = sqlx::query(
        "UPDATE oauth_grants SET session_id = $1 WHERE session_id = $2 AND user_id = $3 AND revoked_at IS NULL
         AND EXISTS (SELECT 1 FROM sessions WHERE id = $1 AND user_id = $3)",
    )
    .bind(to.to_string())
    .bind(from.to_string())
    .bind(user_id.to_string())
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// The grants of a client that are still live, to refuse their tokens at once when it is deleted.
pub async fn live_grants_of_client(conn: &mut AnyConnection, client_id: &str) -> Result<Vec<Uuid>> {
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT id FROM oauth_grants WHERE client_id = $1 AND revoked_at IS NULL")
            .bind(client_id)
            .fetch_all(conn)
            .await?;
    Ok(rows.iter().map(|(id,)| parse_id(id)).collect::<Result<_, _>>()?)
}

/// An application a user consented to, with when its grants were last used.
pub struct ConnectedApp {
    pub client_id: String,
    pub name: String,
    pub scope: String,
    pub granted_at: i64,
    pub last_used_at: Option<i64>,
}

type AppRow = (String, String, String, i64, Option<i64>);

pub async fn connected_apps<'e>(ex: impl AnyExecutor<'e>, user_id: Uuid) -> Result<Vec<ConnectedApp>> {
    let rows: Vec<AppRow> = sqlx::query_as(
        "SELECT c.client_id, c.name, k.scope, k.granted_at,
                (SELECT MAX(g.last_used_at) FROM oauth_grants g WHERE g.user_id = k.user_id AND g.client_id = k.client_id)
         FROM oauth_consents k JOIN oauth_clients c ON c.client_id = k.client_id
         WHERE k.user_id = $1 ORDER BY k.granted_at DESC",
    )
    .bind(user_id.to_string())
    .fetch_all(ex)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(client_id, name, scope, granted_at, last_used_at)| ConnectedApp {
            client_id,
            name,
            scope,
            granted_at,
            last_used_at,
        })
        .collect())
}

/// Ends a user's grants to a client and forgets the consent; returns the grants it ended, and whether
/// there was anything to end.
pub async fn disconnect(
    conn: &mut AnyConnection,
    user_id: Uuid,
    client_id: &str,
    now: i64,
) -> Result<(Vec<Uuid>, bool)> {
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT id FROM oauth_grants WHERE user_id = $1 AND client_id = $2 AND revoked_at IS NULL")
            .bind(user_id.to_string())
            .bind(client_id)
            .fetch_all(&mut *conn)
            .await?;
    let grants = rows.iter().map(|(id,)| parse_id(id)).collect::<Result<Vec<_>, _>>()?;
    sqlx::query(
        "UPDATE oauth_grants SET revoked_at = $1, revoke_reason = 'disconnected'
         WHERE user_id = $2 AND client_id = $3 AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(user_id.to_string())
    .bind(client_id)
    .execute(&mut *conn)
    .await?;
    let forgotten = sqlx::query("DELETE FROM oauth_consents WHERE user_id = $1 AND client_id = $2")
        .bind(user_id.to_string())
        .bind(client_id)
        .execute(&mut *conn)
        .await?;
    let anything = forgotten.rows_affected() > 0 || !grants.is_empty();
    Ok((grants, anything))
}
