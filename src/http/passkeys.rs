//! `/api/v1/auth/passkeys*` and `/api/v1/auth/mfa/passkey/start`: passkeys for programs (the web pages
//! run the same ceremonies through `static/passkeys.js`).

use axum::{
    Router,
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
    routing::{get, patch, post},
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;
use webauthn_rs_core::proto::{PublicKeyCredential, RegisterPublicKeyCredential};

use super::{
    auth::TokenPair,
    extract::{CurrentUser, Json},
};
use crate::{
    app::AppState,
    clock,
    edge::{
        client::ClientInfo,
        error::{ApiError, ErrorBody},
        rate_limit,
    },
    error::Error,
    service::passkeys::Ceremony,
    store::passkeys::PasskeyRecord,
};

pub fn router(state: &AppState) -> Router<AppState> {
    let limited = Router::new()
        .route("/auth/passkeys/login/start", post(login_start))
        .route("/auth/passkeys/login/finish", post(login_finish))
        .route("/auth/mfa/passkey/start", post(mfa_start));
    rate_limit::limited(limited, state)
        .route("/auth/passkeys", get(list))
        .route("/auth/passkeys/register/start", post(register_start))
        .route("/auth/passkeys/register/finish", post(register_finish))
        .route("/auth/passkeys/{id}", patch(rename).delete(remove))
}

/// A ceremony's first step: give `options` to `navigator.credentials.create` (registration) or `.get`
/// (sign-in), then send the answer with `challenge_id` within 5 minutes. Each challenge works once.
#[derive(Serialize, ToSchema)]
pub struct CeremonyStart {
    pub challenge_id: String,
    /// `{publicKey: {...}}` with binary fields base64url, as `PublicKeyCredential.parse*OptionsFromJSON` take.
    #[schema(value_type = Object)]
    pub options: serde_json::Value,
}

impl From<Ceremony> for CeremonyStart {
    fn from(c: Ceremony) -> Self {
        Self { challenge_id: c.challenge_id, options: c.options }
    }
}

#[derive(Serialize, ToSchema)]
pub struct Passkey {
    pub id: Uuid,
    pub name: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
}

impl From<PasskeyRecord> for Passkey {
    fn from(p: PasskeyRecord) -> Self {
        Self {
            id: p.id,
            name: p.name,
            created_at: clock::from_ms(p.created_at),
            last_used_at: p.last_used_at.map(clock::from_ms),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct PasskeyAdded {
    #[serde(flatten)]
    pub passkey: Passkey,
    /// Ten single-use codes, shown this once: only when this passkey is the account's first second factor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup_codes: Option<Vec<String>>,
}

/// `PublicKeyCredential.toJSON()` of what `navigator.credentials.get` gave, as the server reads it
/// (WebAuthn Level 3 §5.1): binary fields are unpadded base64url (the pattern admits only what decodes), and
/// unknown members such as `clientExtensionResults` are ignored. Documentation only: the server parses it as
/// `webauthn_rs_core::proto::PublicKeyCredential`.
#[derive(ToSchema)]
pub struct AssertionJson {
    /// The credential id, as base64url.
    pub id: String,
    #[schema(
        rename = "rawId",
        pattern = "^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-][AQgw]|[A-Za-z0-9_-]{2}[AEIMQUYcgkosw048])?$"
    )]
    pub raw_id: String,
    pub response: AssertionResponseJson,
    /// `public-key`.
    #[schema(rename = "type")]
    pub kind: String,
}

/// `AuthenticatorAssertionResponse`, its binary fields unpadded base64url.
#[derive(ToSchema)]
pub struct AssertionResponseJson {
    #[schema(
        rename = "authenticatorData",
        pattern = "^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-][AQgw]|[A-Za-z0-9_-]{2}[AEIMQUYcgkosw048])?$"
    )]
    pub authenticator_data: String,
    #[schema(
        rename = "clientDataJSON",
        pattern = "^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-][AQgw]|[A-Za-z0-9_-]{2}[AEIMQUYcgkosw048])?$"
    )]
    pub client_data_json: String,
    #[schema(pattern = "^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-][AQgw]|[A-Za-z0-9_-]{2}[AEIMQUYcgkosw048])?$")]
    pub signature: String,
    /// The account's user handle, for a discoverable credential.
    #[schema(
        rename = "userHandle",
        pattern = "^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-][AQgw]|[A-Za-z0-9_-]{2}[AEIMQUYcgkosw048])?$"
    )]
    pub user_handle: Option<String>,
}

/// `PublicKeyCredential.toJSON()` of what `navigator.credentials.create` gave, as the server reads it: binary
/// fields unpadded base64url, unknown members ignored. Documentation only: the server parses it as
/// `webauthn_rs_core::proto::RegisterPublicKeyCredential`.
#[derive(ToSchema)]
pub struct AttestationJson {
    /// The credential id, as base64url.
    pub id: String,
    #[schema(
        rename = "rawId",
        pattern = "^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-][AQgw]|[A-Za-z0-9_-]{2}[AEIMQUYcgkosw048])?$"
    )]
    pub raw_id: String,
    pub response: AttestationResponseJson,
    /// `public-key`.
    #[schema(rename = "type")]
    pub kind: String,
}

/// `AuthenticatorAttestationResponse`, its binary fields unpadded base64url.
#[derive(ToSchema)]
pub struct AttestationResponseJson {
    #[schema(
        rename = "attestationObject",
        pattern = "^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-][AQgw]|[A-Za-z0-9_-]{2}[AEIMQUYcgkosw048])?$"
    )]
    pub attestation_object: String,
    #[schema(
        rename = "clientDataJSON",
        pattern = "^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-][AQgw]|[A-Za-z0-9_-]{2}[AEIMQUYcgkosw048])?$"
    )]
    pub client_data_json: String,
    /// `getTransports()`: `usb`, `nfc`, `ble`, `internal`, `hybrid`; others are ignored.
    pub transports: Option<Vec<String>>,
}

#[derive(Deserialize, ToSchema)]
pub struct RegisterFinish {
    pub challenge_id: String,
    /// At most 64 characters once trimmed, no control characters; "Passkey" when empty.
    #[serde(default)]
    #[schema(max_length = 64, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$")]
    pub name: String,
    #[schema(value_type = AttestationJson)]
    pub credential: RegisterPublicKeyCredential,
}

#[derive(Deserialize, ToSchema)]
pub struct Rename {
    /// At most 64 characters once trimmed, no control characters; "Passkey" when empty.
    #[schema(max_length = 64, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$")]
    pub name: String,
}

#[derive(Deserialize, ToSchema)]
pub struct LoginStart {
    /// Optional: list this account's passkeys (for authenticators that hold no discoverable credential).
    pub username: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct LoginFinish {
    pub challenge_id: String,
    #[schema(value_type = AssertionJson)]
    pub credential: PublicKeyCredential,
    /// As for `/auth/login`: proof that this client signed in to the account before.
    pub device_token: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct MfaStart {
    pub mfa_token: String,
}

#[derive(Deserialize, ToSchema, Default)]
pub struct Remove {
    /// Needed when this is the account's last second factor.
    pub password: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/auth/passkeys", operation_id = "list_passkeys", tag = "passkeys", security(("bearer" = []), ("password" = [])),
    responses((status = 200, body = [Passkey]), (status = 401, body = ErrorBody)))]
async fn list(
    State(app): State<AppState>,
    CurrentUser(auth): CurrentUser,
) -> Result<axum::Json<Vec<Passkey>>, ApiError> {
    Ok(axum::Json(app.passkeys(&auth).await?.into_iter().map(Passkey::from).collect()))
}

#[utoipa::path(post, path = "/api/v1/auth/passkeys/register/start", tag = "passkeys",
    security(("bearer" = []), ("password" = [])),
    responses(
        (status = 200, body = CeremonyStart),
        (status = 401, body = ErrorBody),
        (status = 403, description = "`mfa_required`: the account has two factors and this session gave one", body = ErrorBody),
    ))]
async fn register_start(
    State(app): State<AppState>,
    CurrentUser(auth): CurrentUser,
) -> Result<axum::Json<CeremonyStart>, ApiError> {
    Ok(axum::Json(app.passkey_register_start(&auth).await?.into()))
}

#[utoipa::path(post, path = "/api/v1/auth/passkeys/register/finish", tag = "passkeys", request_body = RegisterFinish,
    security(("bearer" = []), ("password" = [])),
    responses(
        (status = 201, description = "Registered; the first second factor turns two-factor on and ends the other sessions", body = PasskeyAdded),
        (status = 401, body = ErrorBody),
        (status = 403, description = "`mfa_required`", body = ErrorBody),
        (status = 409, description = "`passkey_exists`", body = ErrorBody),
        (status = 422, description = "`validation_failed`: an expired challenge, a credential that does not verify, a bad name", body = ErrorBody),
    ))]
async fn register_finish(
    State(app): State<AppState>,
    CurrentUser(auth): CurrentUser,
    ClientInfo(client): ClientInfo,
    Json(body): Json<RegisterFinish>,
) -> Result<(StatusCode, axum::Json<PasskeyAdded>), ApiError> {
    let registered =
        app.passkey_register_finish(&auth, &body.challenge_id, &body.name, &body.credential, &client).await?;
    let added = PasskeyAdded { passkey: registered.passkey.into(), backup_codes: registered.backup_codes };
    Ok((StatusCode::CREATED, axum::Json(added)))
}

#[utoipa::path(patch, path = "/api/v1/auth/passkeys/{id}", tag = "passkeys", request_body = Rename,
    security(("bearer" = []), ("password" = [])),
    responses(
        (status = 200, body = Passkey),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ))]
async fn rename(
    State(app): State<AppState>,
    CurrentUser(auth): CurrentUser,
    Path(id): Path<Uuid>,
    Json(body): Json<Rename>,
) -> Result<axum::Json<Passkey>, ApiError> {
    Ok(axum::Json(app.passkey_rename(&auth, id, &body.name).await?.into()))
}

#[utoipa::path(delete, path = "/api/v1/auth/passkeys/{id}", operation_id = "remove_passkey", tag = "passkeys", request_body(content = Option<Remove>),
    security(("bearer" = []), ("password" = [])),
    responses(
        (status = 204, description = "Removed; the last second factor going turns two-factor off"),
        (status = 400, description = "`wrong_password`: the last second factor needs the password", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "`mfa_required`", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ))]
async fn remove(
    State(app): State<AppState>,
    CurrentUser(auth): CurrentUser,
    ClientInfo(client): ClientInfo,
    Path(id): Path<Uuid>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    // The body is optional (none, or JSON `null`, as the document allows): only the last second factor needs
    // the password.
    let body: Remove = if body.iter().all(u8::is_ascii_whitespace) {
        Remove::default()
    } else {
        serde_json::from_slice::<Option<Remove>>(&body)
            .map_err(|_| Error::invalid_field("password", "The body must be {\"password\"}."))?
            .unwrap_or_default()
    };
    app.passkey_remove(&auth, id, body.password.as_deref(), &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/auth/passkeys/login/start", tag = "passkeys", request_body = LoginStart,
    responses((status = 200, body = CeremonyStart), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn login_start(
    State(app): State<AppState>,
    Json(body): Json<LoginStart>,
) -> Result<axum::Json<CeremonyStart>, ApiError> {
    Ok(axum::Json(app.passkey_login_start(body.username.as_deref()).await?.into()))
}

#[utoipa::path(post, path = "/api/v1/auth/passkeys/login/finish", tag = "passkeys", request_body = LoginFinish,
    responses(
        (status = 200, description = "Signed in: `mfa: true`, `amr: [pop, mfa]` when the authenticator verified the user, else `amr: [pop]`", body = TokenPair),
        (status = 401, description = "`invalid_credentials`: unknown passkey, another user's handle, a bad signature or a counter that went back", body = ErrorBody),
        (status = 403, description = "`inactive_user`", body = ErrorBody),
        (status = 422, description = "`validation_failed`: an expired or used challenge", body = ErrorBody),
        (status = 429, description = "`account_locked` or `rate_limited`", body = ErrorBody),
    ))]
async fn login_finish(
    State(app): State<AppState>,
    ClientInfo(client): ClientInfo,
    Json(body): Json<LoginFinish>,
) -> Result<axum::Json<TokenPair>, ApiError> {
    let result =
        app.passkey_login_finish(&body.challenge_id, &body.credential, body.device_token.as_deref(), &client).await;
    let outcome = result.as_ref().map_or_else(ApiError::code_of, |_| "success");
    metrics::counter!("latchkey_passkey_logins_total", "outcome" => outcome).increment(1);
    Ok(axum::Json(result?.into()))
}

#[utoipa::path(post, path = "/api/v1/auth/mfa/passkey/start", tag = "mfa", request_body = MfaStart,
    responses(
        (status = 200, description = "Answer it through `/auth/mfa/challenge` with `challenge_id` and `credential`", body = CeremonyStart),
        (status = 401, description = "`invalid_token`: an unknown, expired or spent mfa_token", body = ErrorBody),
        (status = 404, description = "The account has no passkey", body = ErrorBody),
        (status = 429, body = ErrorBody),
    ))]
async fn mfa_start(
    State(app): State<AppState>,
    Json(body): Json<MfaStart>,
) -> Result<axum::Json<CeremonyStart>, ApiError> {
    Ok(axum::Json(app.passkey_mfa_start(&body.mfa_token).await?.into()))
}
