//! `/api/v1/auth/mfa/*`: TOTP enrollment, backup codes, disabling, and login's second step.

use axum::{
    Router,
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
    routing::{get, post},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use serde::{Deserialize, Serialize};
use utoipa::{
    ToSchema,
    openapi::{
        Ref, RefOr,
        schema::{ObjectBuilder, OneOfBuilder, Schema, Type},
    },
};

use super::{
    auth::TokenPair,
    extract::{CurrentUser, Json},
};
use crate::app::AppState;
use crate::edge::client::ClientInfo;
use crate::edge::error::{ApiError, ErrorBody};
use crate::edge::rate_limit;
use crate::error::Error;
use crate::service::mfa::Proof;

pub fn router(state: &AppState) -> Router<AppState> {
    rate_limit::limited(Router::new().route("/auth/mfa/challenge", post(challenge)), state)
        .route("/auth/mfa/setup", post(setup))
        .route("/auth/mfa/qr.png", get(qr_png))
        .route("/auth/mfa/enable", post(enable))
        .route("/auth/mfa/disable", post(disable))
        .route("/auth/mfa/backup-codes", get(backup_codes_remaining))
        .route("/auth/mfa/backup-codes/regenerate", post(regenerate))
}

#[derive(Serialize, ToSchema)]
pub struct MfaSetup {
    /// Base32 without padding, for typing into an authenticator app.
    #[schema(example = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")]
    pub secret: String,
    #[schema(
        example = "otpauth://totp/Latchkey:ana%40example.com?secret=...&issuer=Latchkey&algorithm=SHA1&digits=6&period=30"
    )]
    pub otpauth_uri: String,
    /// The otpauth URI as a QR code: `data:image/png;base64,...`.
    pub qr_png: String,
}

#[derive(Deserialize, ToSchema)]
pub struct CodeRequest {
    /// A 6-digit code from the authenticator app.
    #[schema(example = "123456")]
    pub code: String,
}

#[derive(Serialize, ToSchema)]
pub struct MfaEnabled {
    pub mfa_enabled: bool,
    /// Ten single-use codes, shown this once.
    pub backup_codes: Vec<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct DisableRequest {
    pub password: String,
    /// A TOTP code or a backup code.
    pub code: String,
}

#[derive(Serialize, ToSchema)]
pub struct BackupCodesRemaining {
    pub remaining: i64,
}

#[derive(Serialize, ToSchema)]
pub struct BackupCodes {
    pub backup_codes: Vec<String>,
}

/// A code, or a passkey's answer to the challenge of `/auth/mfa/passkey/start` (documented by hand below:
/// one or the other, never both).
#[derive(Deserialize)]
pub struct ChallengeRequest {
    /// From the `MfaPending` answer of `/auth/login`.
    pub mfa_token: String,
    /// A 6-digit TOTP code or a backup code (case, spaces and dashes are ignored).
    pub code: Option<String>,
    /// From `/auth/mfa/passkey/start`, with `credential`.
    pub challenge_id: Option<String>,
    /// `PublicKeyCredential.toJSON()` of the browser's `navigator.credentials.get`.
    pub credential: Option<webauthn_rs_core::proto::PublicKeyCredential>,
}

/// `oneOf`: `{mfa_token, code}` or `{mfa_token, challenge_id, credential}`; the members of the other form may be
/// absent or `null` (as `ChallengeRequest::proof` reads them).
impl utoipa::PartialSchema for ChallengeRequest {
    fn schema() -> RefOr<Schema> {
        let text = |description: &str| ObjectBuilder::new().schema_type(Type::String).description(Some(description));
        let null = || ObjectBuilder::new().schema_type(Type::Null);
        let mfa_token = || text("From the `MfaPending` answer of `/auth/login`.");
        let code = ObjectBuilder::new()
            .title(Some("code"))
            .property("mfa_token", mfa_token())
            .property("code", text("A 6-digit TOTP code or a backup code (case, spaces and dashes are ignored)."))
            .property("challenge_id", null())
            .property("credential", null())
            .required("mfa_token")
            .required("code");
        let passkey = ObjectBuilder::new()
            .title(Some("passkey"))
            .property("mfa_token", mfa_token())
            .property("challenge_id", text("From `/auth/mfa/passkey/start`."))
            .property("credential", Ref::from_schema_name("AssertionJson"))
            .property("code", null())
            .required("mfa_token")
            .required("challenge_id")
            .required("credential");
        OneOfBuilder::new()
            .description(Some("A code, or a passkey's answer to the challenge of `/auth/mfa/passkey/start`."))
            .item(code)
            .item(passkey)
            .into()
    }
}

impl ToSchema for ChallengeRequest {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push(("AssertionJson".into(), <super::passkeys::AssertionJson as utoipa::PartialSchema>::schema()));
        <super::passkeys::AssertionJson as ToSchema>::schemas(schemas);
    }
}

impl ChallengeRequest {
    fn proof(&self) -> Result<Proof<'_>, ApiError> {
        match (&self.code, &self.challenge_id, &self.credential) {
            (Some(code), None, None) => Ok(Proof::Code(code)),
            (None, Some(challenge_id), Some(credential)) => Ok(Proof::Passkey { challenge_id, credential }),
            _ => Err(Error::invalid_field("code", "Give a code, or a passkey's challenge_id and credential.").into()),
        }
    }
}

#[utoipa::path(post, path = "/api/v1/auth/mfa/setup", tag = "mfa", security(("bearer" = []), ("password" = [])),
    responses(
        (status = 200, description = "A new pending enrollment (replaces an earlier pending one)", body = MfaSetup),
        (status = 401, body = ErrorBody),
        (status = 409, description = "`mfa_already_enabled`", body = ErrorBody),
    ))]
async fn setup(State(app): State<AppState>, CurrentUser(auth): CurrentUser) -> Result<axum::Json<MfaSetup>, ApiError> {
    let enrollment = app.mfa_setup(&auth).await?;
    Ok(axum::Json(MfaSetup {
        secret: enrollment.secret,
        otpauth_uri: enrollment.otpauth_uri,
        qr_png: format!("data:image/png;base64,{}", STANDARD.encode(enrollment.qr_png)),
    }))
}

#[utoipa::path(get, path = "/api/v1/auth/mfa/qr.png", tag = "mfa", security(("bearer" = []), ("password" = [])),
    responses(
        (status = 200, description = "The QR code of the pending enrollment", content_type = "image/png", body = Vec<u8>),
        (status = 401, body = ErrorBody),
        (status = 404, description = "No pending enrollment", body = ErrorBody),
    ))]
async fn qr_png(State(app): State<AppState>, CurrentUser(auth): CurrentUser) -> Result<impl IntoResponse, ApiError> {
    let png = app.mfa_qr_png(&auth).await?;
    Ok(([(header::CONTENT_TYPE, "image/png")], png))
}

#[utoipa::path(post, path = "/api/v1/auth/mfa/enable", tag = "mfa", request_body = CodeRequest,
    security(("bearer" = []), ("password" = [])),
    responses(
        (status = 200, description = "On; other sessions end", body = MfaEnabled),
        (status = 400, description = "`invalid_code`", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "No pending enrollment", body = ErrorBody),
        (status = 409, description = "`mfa_already_enabled`", body = ErrorBody),
    ))]
async fn enable(
    State(app): State<AppState>,
    CurrentUser(auth): CurrentUser,
    ClientInfo(client): ClientInfo,
    Json(body): Json<CodeRequest>,
) -> Result<axum::Json<MfaEnabled>, ApiError> {
    let backup_codes = app.mfa_enable(&auth, &body.code, &client).await?;
    Ok(axum::Json(MfaEnabled { mfa_enabled: true, backup_codes }))
}

#[utoipa::path(post, path = "/api/v1/auth/mfa/disable", tag = "mfa", request_body = DisableRequest,
    security(("bearer" = []), ("password" = [])),
    responses(
        (status = 204, description = "Off: the secret and backup codes are deleted; other sessions end"),
        (status = 400, description = "`wrong_password` or `invalid_code`", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "`mfa_required`: the session did not pass the second factor", body = ErrorBody),
        (status = 409, description = "`mfa_not_enabled`", body = ErrorBody),
    ))]
async fn disable(
    State(app): State<AppState>,
    CurrentUser(auth): CurrentUser,
    ClientInfo(client): ClientInfo,
    Json(body): Json<DisableRequest>,
) -> Result<StatusCode, ApiError> {
    app.mfa_disable(&auth, &body.password, &body.code, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/auth/mfa/backup-codes", tag = "mfa", security(("bearer" = []), ("password" = [])),
    responses((status = 200, body = BackupCodesRemaining), (status = 401, body = ErrorBody)))]
async fn backup_codes_remaining(
    State(app): State<AppState>,
    CurrentUser(auth): CurrentUser,
) -> Result<axum::Json<BackupCodesRemaining>, ApiError> {
    Ok(axum::Json(BackupCodesRemaining { remaining: app.backup_codes_remaining(&auth).await? }))
}

#[utoipa::path(post, path = "/api/v1/auth/mfa/backup-codes/regenerate", tag = "mfa", request_body = CodeRequest,
    security(("bearer" = []), ("password" = [])),
    responses(
        (status = 200, description = "Ten new codes; the old ones stop working", body = BackupCodes),
        (status = 400, description = "`invalid_code`", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "`mfa_required`", body = ErrorBody),
        (status = 409, description = "`mfa_not_enabled`", body = ErrorBody),
    ))]
async fn regenerate(
    State(app): State<AppState>,
    CurrentUser(auth): CurrentUser,
    ClientInfo(client): ClientInfo,
    Json(body): Json<CodeRequest>,
) -> Result<axum::Json<BackupCodes>, ApiError> {
    let backup_codes = app.regenerate_backup_codes(&auth, Proof::Code(&body.code), &client).await?;
    Ok(axum::Json(BackupCodes { backup_codes }))
}

#[utoipa::path(post, path = "/api/v1/auth/mfa/challenge", tag = "mfa", request_body = ChallengeRequest,
    responses(
        (status = 200, description = "Signed in; the access token says `mfa: true`", body = TokenPair),
        (status = 401, description = "`invalid_code`, `invalid_credentials` for a refused passkey, or `invalid_token` for an unknown, expired or spent mfa_token", body = ErrorBody),
        (status = 403, description = "`inactive_user`", body = ErrorBody),
        (status = 422, description = "`validation_failed`: neither a code nor a passkey, or an expired passkey challenge", body = ErrorBody),
        (status = 429, description = "`too_many_attempts`: the fifth wrong code spends the mfa_token", body = ErrorBody),
    ))]
async fn challenge(
    State(app): State<AppState>,
    ClientInfo(client): ClientInfo,
    Json(body): Json<ChallengeRequest>,
) -> Result<axum::Json<TokenPair>, ApiError> {
    let result = app.mfa_challenge(&body.mfa_token, body.proof()?, &client).await;
    let outcome = result.as_ref().map_or_else(ApiError::code_of, |_| "success");
    metrics::counter!("latchkey_mfa_challenges_total", "outcome" => outcome).increment(1);
    Ok(axum::Json(result?.into()))
}
