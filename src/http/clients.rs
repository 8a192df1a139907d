//! `/api/v1/admin/clients*`: administrators register the applications that sign users in through
//! Latchkey (OpenID Connect relying parties).

use axum::{
    Router,
    extract::{Path, State},
    http::StatusCode,
    routing::{get, post},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{Json, RequirePermission, UsersWrite};
use crate::{
    app::AppState,
    clock,
    edge::{
        client::ClientInfo,
        error::{ApiError, ErrorBody},
    },
    service::{
        admin::Actor,
        oauth_clients::{ClientSettings, IssuedClient},
    },
    store::oauth::ClientRecord,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/clients", get(list).post(create))
        .route("/admin/clients/{client_id}", get(show).patch(update).delete(remove))
        .route("/admin/clients/{client_id}/secret", post(rotate_secret))
}

/// A registered client as the API and the CLI show it.
#[derive(Serialize, ToSchema)]
pub struct ClientView {
    pub client_id: String,
    /// Only when it was just made: it is stored hashed and cannot be shown again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    pub name: String,
    pub public: bool,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub grant_types: Vec<String>,
    pub scopes: Vec<String>,
    pub consent: String,
    pub require_mfa: bool,
    pub require_pkce: bool,
    pub id_token_signed_response_alg: String,
    pub backchannel_logout_uri: Option<String>,
    pub created_at: String,
    /// When the client last obtained a token.
    pub last_token_at: Option<String>,
}

impl ClientView {
    pub fn new(client: ClientRecord, secret: Option<String>) -> Self {
        Self {
            public: client.secret_hash.is_none(),
            client_secret: secret,
            client_id: client.client_id,
            name: client.name,
            redirect_uris: client.redirect_uris,
            post_logout_redirect_uris: client.post_logout_redirect_uris,
            grant_types: client.grant_types,
            scopes: client.scopes,
            consent: client.consent,
            require_mfa: client.require_mfa,
            require_pkce: client.require_pkce,
            id_token_signed_response_alg: client.id_token_alg,
            backchannel_logout_uri: client.backchannel_logout_uri,
            created_at: clock::rfc3339(client.created_at),
            last_token_at: client.last_token_at.map(clock::rfc3339),
        }
    }
}

impl From<IssuedClient> for ClientView {
    fn from(issued: IssuedClient) -> Self {
        Self::new(issued.client, issued.secret)
    }
}

#[derive(Serialize, ToSchema)]
pub struct Secret {
    pub client_secret: String,
}

/// A grant type a client may be allowed (`service::oauth_clients::GRANT_TYPES`).
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    AuthorizationCode,
    RefreshToken,
    ClientCredentials,
}

/// A scope this server offers (`domain::oauth::SCOPES`).
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Openid,
    Profile,
    Email,
    OfflineAccess,
    Roles,
}

/// `required`: the person is asked; `implicit`: first-party apps, never asked (not for a public client).
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Consent {
    Required,
    Implicit,
}

/// How ID tokens are signed.
#[derive(Deserialize, ToSchema)]
pub enum IdTokenAlg {
    #[serde(rename = "RS256")]
    Rs256,
    #[serde(rename = "EdDSA")]
    EdDsa,
    #[serde(rename = "ES256")]
    Es256,
}

/// `POST /admin/clients`: a new client's settings; absent ones get their default. Documentation only (the
/// handler reads `ClientSettings` and checks the rules no schema states: the `authorization_code` grant needs
/// a redirect URI, each URI must be registrable, a public client must use PKCE and ask for consent and cannot
/// use `client_credentials`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewClient {
    /// 1–100 characters, surrounding spaces not counted.
    #[schema(min_length = 1, max_length = 100, pattern = "\\S")]
    pub name: String,
    /// Where the authorization code may be sent: `https`, or `http` on a loopback address.
    pub redirect_uris: Option<Vec<String>>,
    pub post_logout_redirect_uris: Option<Vec<String>>,
    /// A public client (a single-page or native app) has no secret and must use PKCE. Fixed at creation.
    pub public: Option<bool>,
    /// `authorization_code` and `refresh_token` by default.
    pub grant_types: Option<Vec<GrantType>>,
    /// All by default.
    pub scopes: Option<Vec<Scope>>,
    /// `required` by default.
    pub consent: Option<Consent>,
    pub require_mfa: Option<bool>,
    /// On for a public client, and it cannot be turned off there.
    pub require_pkce: Option<bool>,
    /// `RS256` by default.
    pub id_token_signed_response_alg: Option<IdTokenAlg>,
    /// Empty for none.
    pub backchannel_logout_uri: Option<String>,
}

/// `PATCH /admin/clients/{client_id}`: the settings to change; absent ones keep their value. Documentation
/// only, as `NewClient`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientChanges {
    /// 1–100 characters, surrounding spaces not counted.
    #[schema(min_length = 1, max_length = 100, pattern = "\\S")]
    pub name: Option<String>,
    pub redirect_uris: Option<Vec<String>>,
    pub post_logout_redirect_uris: Option<Vec<String>>,
    /// Fixed at creation: only the value the client has is accepted.
    pub public: Option<bool>,
    pub grant_types: Option<Vec<GrantType>>,
    pub scopes: Option<Vec<Scope>>,
    pub consent: Option<Consent>,
    pub require_mfa: Option<bool>,
    pub require_pkce: Option<bool>,
    pub id_token_signed_response_alg: Option<IdTokenAlg>,
    /// Empty removes it.
    pub backchannel_logout_uri: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/admin/clients", operation_id = "create_client", tag = "admin", request_body = NewClient,
    security(("bearer" = []), ("password" = [])),
    responses(
        (status = 201, description = "Registered; a confidential client's secret is shown this once", body = ClientView),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 422, description = "A setting is not valid (`details` names it)", body = ErrorBody),
    ))]
async fn create(
    State(app): State<AppState>,
    RequirePermission(admin, _): RequirePermission<UsersWrite>,
    ClientInfo(who): ClientInfo,
    Json(settings): Json<ClientSettings>,
) -> Result<(StatusCode, axum::Json<ClientView>), ApiError> {
    if settings.name.is_none() {
        return Err(ApiError::validation("name", "The field name is required."));
    }
    let issued = app.create_client(Actor::Admin(admin.sub), settings, &who).await?;
    Ok((StatusCode::CREATED, axum::Json(issued.into())))
}

#[utoipa::path(get, path = "/api/v1/admin/clients", operation_id = "list_clients", tag = "admin", security(("bearer" = []), ("password" = [])),
    responses((status = 200, body = [ClientView]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list(
    State(app): State<AppState>,
    _admin: RequirePermission<UsersWrite>,
) -> Result<axum::Json<Vec<ClientView>>, ApiError> {
    Ok(axum::Json(app.list_clients().await?.into_iter().map(|c| ClientView::new(c, None)).collect()))
}

#[utoipa::path(get, path = "/api/v1/admin/clients/{client_id}", operation_id = "show_client", tag = "admin", security(("bearer" = []), ("password" = [])),
    responses((status = 200, body = ClientView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn show(
    State(app): State<AppState>,
    _admin: RequirePermission<UsersWrite>,
    Path(client_id): Path<String>,
) -> Result<axum::Json<ClientView>, ApiError> {
    Ok(axum::Json(ClientView::new(app.find_client(&client_id).await?, None)))
}

#[utoipa::path(patch, path = "/api/v1/admin/clients/{client_id}", operation_id = "update_client", tag = "admin", request_body = ClientChanges,
    security(("bearer" = []), ("password" = [])),
    responses((status = 200, body = ClientView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn update(
    State(app): State<AppState>,
    RequirePermission(admin, _): RequirePermission<UsersWrite>,
    ClientInfo(who): ClientInfo,
    Path(client_id): Path<String>,
    Json(settings): Json<ClientSettings>,
) -> Result<axum::Json<ClientView>, ApiError> {
    let client = app.update_client(Actor::Admin(admin.sub), &client_id, settings, &who).await?;
    Ok(axum::Json(ClientView::new(client, None)))
}

#[utoipa::path(delete, path = "/api/v1/admin/clients/{client_id}", operation_id = "remove_client", tag = "admin", security(("bearer" = []), ("password" = [])),
    responses((status = 204, description = "Deleted, with its grants and tokens"), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn remove(
    State(app): State<AppState>,
    RequirePermission(admin, _): RequirePermission<UsersWrite>,
    ClientInfo(who): ClientInfo,
    Path(client_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    app.delete_client(Actor::Admin(admin.sub), &client_id, &who).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/admin/clients/{client_id}/secret", tag = "admin", security(("bearer" = []), ("password" = [])),
    responses((status = 200, description = "The new secret; the old one stops working", body = Secret),
        (status = 403, body = ErrorBody), (status = 404, description = "No such confidential client", body = ErrorBody)))]
async fn rotate_secret(
    State(app): State<AppState>,
    RequirePermission(admin, _): RequirePermission<UsersWrite>,
    ClientInfo(who): ClientInfo,
    Path(client_id): Path<String>,
) -> Result<axum::Json<Secret>, ApiError> {
    let client_secret = app.rotate_client_secret(Actor::Admin(admin.sub), &client_id, &who).await?;
    Ok(axum::Json(Secret { client_secret }))
}
