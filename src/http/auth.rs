//! `/api/v1/auth/*`: register, login, refresh, logout, me, change-password.

use axum::{
    Router,
    extract::State,
    http::StatusCode,
    response::IntoResponse,
    routing::{get, post},
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{
    extract::{CurrentUser, Json, LoginBody, LoginRequest, PasswordGrant},
    orgs::MyOrg,
};
use crate::edge::client::ClientInfo;
use crate::edge::error::{ApiError, ErrorBody};
use crate::edge::rate_limit;
use crate::{
    app::AppState,
    clock,
    domain::roles::Role,
    service::{accounts::NewAccount, mfa::LoginOutcome, sessions::IssuedTokens},
    store::users::{Profile, UserRecord},
};

pub fn router(state: &AppState) -> Router<AppState> {
    let unauthenticated = Router::new()
        .route("/auth/register", post(register))
        .route("/auth/login", post(login))
        .route("/auth/refresh", post(refresh));
    rate_limit::limited(unauthenticated, state)
        .route("/auth/logout", post(logout))
        .route("/auth/logout-all", post(logout_all))
        .route("/auth/me", get(me))
        .route("/auth/change-password", post(change_password))
}

/// An account as the API shows it.
#[derive(Serialize, ToSchema)]
pub struct User {
    pub id: Uuid,
    #[schema(example = "ana@example.com")]
    pub email: String,
    #[schema(example = "ana")]
    pub username: Option<String>,
    pub role: Role,
    pub is_active: bool,
    pub mfa_enabled: bool,
    /// Confirmed from a mailed link (or the account was made by an operator).
    pub email_verified: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_login_at: Option<OffsetDateTime>,
}

impl From<UserRecord> for User {
    fn from(u: UserRecord) -> Self {
        u.profile.into()
    }
}

impl From<Profile> for User {
    fn from(u: Profile) -> Self {
        Self {
            id: u.id,
            email: u.email,
            username: u.username,
            role: u.role,
            is_active: u.is_active,
            mfa_enabled: u.mfa_enabled,
            email_verified: u.email_verified,
            created_at: clock::from_ms(u.created_at),
            last_login_at: u.last_login_at.map(clock::from_ms),
        }
    }
}

/// The caller's account and organisation memberships.
#[derive(Serialize, ToSchema)]
pub struct Me {
    #[serde(flatten)]
    pub user: User,
    pub memberships: Vec<MyOrg>,
}

#[derive(Serialize, ToSchema)]
pub struct TokenPair {
    /// A JWT (`typ: at+jwt`) for `Authorization: Bearer`.
    pub access_token: String,
    /// Opaque; spent by its first use at `/auth/refresh`.
    pub refresh_token: String,
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    #[schema(example = 900)]
    pub expires_in: i64,
    pub mfa_required: bool,
    /// After a completed sign-in: send it back in later logins to be recognised as a known device, which
    /// the lockout of the identifier does not apply to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_token: Option<String>,
}

impl From<IssuedTokens> for TokenPair {
    fn from(t: IssuedTokens) -> Self {
        Self {
            access_token: t.access_token,
            refresh_token: t.refresh_token,
            token_type: "Bearer",
            expires_in: t.expires_in,
            mfa_required: false,
            device_token: t.device_token,
        }
    }
}

/// A correct password for an account with two-factor authentication: send a code to `/auth/mfa/challenge`.
#[derive(Serialize, ToSchema)]
pub struct MfaPending {
    /// Always true here.
    pub mfa_required: bool,
    /// Opaque, single use, accepted only by `/auth/mfa/challenge`.
    pub mfa_token: String,
    /// The second factors this account can give: `totp`, `passkey`, `backup_code`.
    #[schema(example = json!(["totp", "passkey", "backup_code"]))]
    pub methods: Vec<&'static str>,
    /// Seconds the `mfa_token` stays valid.
    #[schema(example = 300)]
    pub expires_in: i64,
}

#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum LoginResponse {
    Tokens(TokenPair),
    MfaPending(MfaPending),
}

impl From<LoginOutcome> for LoginResponse {
    fn from(outcome: LoginOutcome) -> Self {
        match outcome {
            LoginOutcome::Tokens(tokens) => Self::Tokens(tokens.into()),
            LoginOutcome::SecondFactorOwed { mfa_token, expires_in, methods } => {
                Self::MfaPending(MfaPending { mfa_required: true, mfa_token, methods, expires_in })
            }
        }
    }
}

#[derive(Deserialize, ToSchema)]
pub struct RegisterRequest {
    #[schema(example = "ana@example.com")]
    pub email: String,
    /// At least 12 characters, not easy to guess, not containing the email or username.
    pub password: String,
    /// Optional: 3–32 of `a-z 0-9 _ . -`.
    pub username: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct RegisterResponse {
    pub user: User,
    /// Absent when addresses must be confirmed before signing in (`LATCHKEY_REQUIRE_EMAIL_VERIFICATION`).
    #[serde(flatten)]
    pub tokens: Option<TokenPair>,
}

#[derive(Deserialize, ToSchema)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

#[derive(Deserialize, ToSchema)]
pub struct ChangePasswordRequest {
    pub current_password: String,
    pub new_password: String,
}

#[utoipa::path(post, path = "/api/v1/auth/register", tag = "auth", request_body = RegisterRequest,
    responses(
        (status = 201, description = "Registered and signed in", body = RegisterResponse),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 409, description = "`email_taken` or `username_taken`", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 422, description = "`validation_failed` or `weak_password`, with details", body = ErrorBody),
        (status = 503, description = "Database unavailable, or too many password checks waiting (`Retry-After`)", body = ErrorBody),
    ))]
async fn register(
    State(app): State<AppState>,
    ClientInfo(client): ClientInfo,
    Json(body): Json<RegisterRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let new = NewAccount { email: &body.email, username: body.username.as_deref(), password: &body.password };
    let (user, tokens) = app.register(new, &client).await?;
    Ok((StatusCode::CREATED, axum::Json(RegisterResponse { user: user.into(), tokens: tokens.map(Into::into) })))
}

#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth",
    request_body(description = "JSON, or the OAuth2 password grant as a form", content(
        (LoginRequest = "application/json"),
        (PasswordGrant = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, description = "Signed in, or (with two-factor authentication on) a second factor owed", body = LoginResponse),
        (status = 400, description = "Malformed body or grant type", body = ErrorBody),
        (status = 401, description = "`invalid_credentials`: unknown user or wrong password, one answer", body = ErrorBody),
        (status = 403, description = "`inactive_user`, or `email_not_verified` where confirmed addresses are required, after a correct password", body = ErrorBody),
        (status = 415, description = "Neither JSON nor a form", body = ErrorBody),
        (status = 429, description = "`account_locked` (with `Retry-After`); `too_many_attempts` (`Retry-After: 1`): as many sign-ins for this identifier as the lockout threshold are being checked; `rate_limited`", body = ErrorBody),
        (status = 503, description = "Database unavailable, or too many password checks waiting (`Retry-After`)", body = ErrorBody),
    ))]
async fn login(
    State(app): State<AppState>,
    ClientInfo(client): ClientInfo,
    LoginBody(body): LoginBody,
) -> Result<axum::Json<LoginResponse>, ApiError> {
    let result = app.login(&body.username, &body.password, body.device_token.as_deref(), &client).await;
    let outcome = match &result {
        Ok(LoginOutcome::Tokens(_)) => "success",
        Ok(LoginOutcome::SecondFactorOwed { .. }) => "mfa_required",
        Err(e) => ApiError::code_of(e),
    };
    metrics::counter!("latchkey_logins_total", "outcome" => outcome).increment(1);
    Ok(axum::Json(result?.into()))
}

#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses(
        (status = 200, description = "A new pair; the presented refresh token is spent", body = TokenPair),
        (status = 401, description = "`invalid_token`: unknown, spent (the session is then revoked), expired or idle", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ))]
async fn refresh(
    State(app): State<AppState>,
    ClientInfo(client): ClientInfo,
    Json(body): Json<RefreshRequest>,
) -> Result<axum::Json<TokenPair>, ApiError> {
    Ok(axum::Json(app.refresh(&body.refresh_token, &client).await?.into()))
}

#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", security(("bearer" = []), ("password" = [])),
    responses((status = 204, description = "This session's tokens stop working"), (status = 401, body = ErrorBody)))]
async fn logout(
    State(app): State<AppState>,
    CurrentUser(auth): CurrentUser,
    ClientInfo(client): ClientInfo,
) -> Result<StatusCode, ApiError> {
    app.logout(&auth, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/auth/logout-all", tag = "auth", security(("bearer" = []), ("password" = [])),
    responses((status = 204, description = "Every session of the user ends"), (status = 401, body = ErrorBody)))]
async fn logout_all(
    State(app): State<AppState>,
    CurrentUser(auth): CurrentUser,
    ClientInfo(client): ClientInfo,
) -> Result<StatusCode, ApiError> {
    app.logout_all(&auth, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth", security(("bearer" = []), ("password" = [])),
    responses((status = 200, body = Me), (status = 401, description = "Missing, invalid, expired or revoked token", body = ErrorBody)))]
async fn me(State(app): State<AppState>, CurrentUser(auth): CurrentUser) -> Result<axum::Json<Me>, ApiError> {
    let view = app.user_view(auth.sub).await?;
    let memberships = view.memberships.iter().cloned().map(MyOrg::from).collect();
    Ok(axum::Json(Me { user: view.profile.clone().into(), memberships }))
}

#[utoipa::path(post, path = "/api/v1/auth/change-password", tag = "auth", request_body = ChangePasswordRequest,
    security(("bearer" = []), ("password" = [])),
    responses(
        (status = 204, description = "Changed; every other session of the user ends"),
        (status = 400, description = "`wrong_password`", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 422, description = "`weak_password`", body = ErrorBody),
    ))]
async fn change_password(
    State(app): State<AppState>,
    CurrentUser(auth): CurrentUser,
    ClientInfo(client): ClientInfo,
    Json(body): Json<ChangePasswordRequest>,
) -> Result<StatusCode, ApiError> {
    app.change_password(&auth, &body.current_password, &body.new_password, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}
