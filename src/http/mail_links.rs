//! The flows that go through a link in a mail: `/api/v1/auth/password/forgot` and `.../reset` (self-service
//! password reset), `/api/v1/auth/email/verify` and `.../verify/resend` (confirming the address),
//! `/api/v1/auth/email/change` and `.../confirm` (a new address).

use axum::{Router, extract::State, http::StatusCode, routing::post};
use serde::Deserialize;
use utoipa::ToSchema;

use super::{
    auth::User,
    extract::{CurrentUser, Json},
};
use crate::{
    app::AppState,
    edge::{
        client::ClientInfo,
        error::{ApiError, ErrorBody},
        rate_limit,
    },
};

/// The unauthenticated ones rate-limited per client address, like the other unauthenticated endpoints.
pub fn router(state: &AppState) -> Router<AppState> {
    let routes = Router::new()
        .route("/auth/password/forgot", post(forgot))
        .route("/auth/password/reset", post(reset))
        .route("/auth/email/verify", post(verify))
        .route("/auth/email/confirm", post(confirm));
    rate_limit::limited(routes, state)
        .route("/auth/email/verify/resend", post(resend_verification))
        .route("/auth/email/change", post(change))
}

type Accepted = (StatusCode, axum::Json<serde_json::Value>);

/// 202 `{}`: the mail is on its way, or (by design) nothing is said about whether it is.
fn accepted() -> Accepted {
    (StatusCode::ACCEPTED, axum::Json(serde_json::json!({})))
}

#[derive(Deserialize, ToSchema)]
pub struct ForgotRequest {
    #[schema(example = "ana@example.com")]
    pub email: String,
}

#[derive(Deserialize, ToSchema)]
pub struct ResetRequest {
    /// The `token` of the link in the mail.
    pub token: String,
    pub new_password: String,
}

#[utoipa::path(post, path = "/api/v1/auth/password/forgot", tag = "auth", request_body = ForgotRequest,
    responses(
        (status = 202, description = "The same answer whether or not the address has an account; an existing, \
            active account is mailed a link (at most 3 an hour)"),
        (status = 404, description = "Mail is off on this server (no `LATCHKEY_SMTP_URL`)", body = ErrorBody),
        (status = 429, body = ErrorBody),
    ))]
async fn forgot(
    State(app): State<AppState>,
    ClientInfo(client): ClientInfo,
    Json(body): Json<ForgotRequest>,
) -> Result<Accepted, ApiError> {
    app.forgot_password(&body.email, &client)?;
    Ok(accepted())
}

#[utoipa::path(post, path = "/api/v1/auth/password/reset", tag = "auth", request_body = ResetRequest,
    responses(
        (status = 204, description = "The password is changed, every session ended; the link is spent. The \
            second factor stays: the next sign-in asks for it"),
        (status = 400, description = "`invalid_token`: unknown, expired or used link", body = ErrorBody),
        (status = 422, description = "`weak_password`; the link stays usable", body = ErrorBody),
        (status = 429, body = ErrorBody),
    ))]
async fn reset(
    State(app): State<AppState>,
    ClientInfo(client): ClientInfo,
    Json(body): Json<ResetRequest>,
) -> Result<StatusCode, ApiError> {
    app.reset_password(&body.token, &body.new_password, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
pub struct VerifyRequest {
    /// The `token` of the link in the mail.
    pub token: String,
}

#[utoipa::path(post, path = "/api/v1/auth/email/verify", tag = "auth", request_body = VerifyRequest,
    responses(
        (status = 200, description = "The address is confirmed", body = User),
        (status = 400, description = "`invalid_token`: unknown, expired or used link", body = ErrorBody),
        (status = 429, body = ErrorBody),
    ))]
async fn verify(
    State(app): State<AppState>,
    ClientInfo(client): ClientInfo,
    Json(body): Json<VerifyRequest>,
) -> Result<axum::Json<User>, ApiError> {
    Ok(axum::Json(app.verify_email(&body.token, &client).await?.into()))
}

#[utoipa::path(post, path = "/api/v1/auth/email/verify/resend", tag = "auth",
    security(("bearer" = []), ("password" = [])),
    responses(
        (status = 202, description = "A new link is on its way, unless the address is confirmed or three were \
            sent this hour"),
        (status = 401, body = ErrorBody),
        (status = 404, description = "Mail is off on this server", body = ErrorBody),
    ))]
async fn resend_verification(
    State(app): State<AppState>,
    CurrentUser(auth): CurrentUser,
    ClientInfo(client): ClientInfo,
) -> Result<Accepted, ApiError> {
    app.resend_verification(&auth, &client).await?;
    Ok(accepted())
}

#[derive(Deserialize, ToSchema)]
pub struct ChangeEmailRequest {
    #[schema(example = "ana@new.example")]
    pub new_email: String,
    pub password: String,
}

#[utoipa::path(post, path = "/api/v1/auth/email/change", tag = "auth", request_body = ChangeEmailRequest,
    security(("bearer" = []), ("password" = [])),
    responses(
        (status = 202, description = "A link is on its way to the new address; nothing changes until it is followed"),
        (status = 400, description = "`wrong_password`", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "`mfa_required`: two-factor authentication is on and this session did not \
            give it", body = ErrorBody),
        (status = 404, description = "Mail is off on this server", body = ErrorBody),
        (status = 409, description = "`email_taken`", body = ErrorBody),
        (status = 422, description = "`validation_failed`: not an email address", body = ErrorBody),
    ))]
async fn change(
    State(app): State<AppState>,
    CurrentUser(auth): CurrentUser,
    ClientInfo(client): ClientInfo,
    Json(body): Json<ChangeEmailRequest>,
) -> Result<Accepted, ApiError> {
    app.change_email(&auth, &body.new_email, &body.password, &client).await?;
    Ok(accepted())
}

#[utoipa::path(post, path = "/api/v1/auth/email/confirm", tag = "auth", request_body = VerifyRequest,
    responses(
        (status = 200, description = "The new address is the account's, confirmed; the old one was told", body = User),
        (status = 400, description = "`invalid_token`: unknown, expired or used link", body = ErrorBody),
        (status = 409, description = "`email_taken`: another account took the address meanwhile", body = ErrorBody),
        (status = 429, body = ErrorBody),
    ))]
async fn confirm(
    State(app): State<AppState>,
    ClientInfo(client): ClientInfo,
    Json(body): Json<VerifyRequest>,
) -> Result<axum::Json<User>, ApiError> {
    Ok(axum::Json(app.confirm_email(&body.token, &client).await?.into()))
}
