//! The pages that mailed links open: `/forgot-password` and `/reset-password` (the password-reset flow),
//! `/verify-email` (confirming the address), `/confirm-email` (a new address). A GET never spends a link (mail scanners open links): the
//! page posts a form, which the service checks.

use askama::Template;
use axum::{
    Router,
    extract::{Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Deserialize;

use super::{
    pages::{ErrorPage, render},
    session::{Browser, PageError, SessionForm, with_cookies},
    sign_in::form_session,
};
use crate::{
    app::AppState,
    edge::{client::ClientInfo, error::ApiError, rate_limit},
    error::Error,
};

pub fn router(state: &AppState) -> Router<AppState> {
    let limited = Router::new()
        .route("/forgot-password", post(forgot_submit))
        .route("/reset-password", post(reset_submit))
        .route("/verify-email", post(verify_submit))
        .route("/confirm-email", post(confirm_submit));
    rate_limit::limited(limited, state)
        .route("/forgot-password", get(forgot_page))
        .route("/reset-password", get(reset_page))
        .route("/verify-email", get(verify_page))
        .route("/confirm-email", get(confirm_page))
}

#[derive(Template)]
#[template(path = "forgot_password.html")]
struct ForgotPage {
    csrf: String,
    sent: bool,
}

#[derive(Template)]
#[template(path = "reset_password.html")]
struct ResetPage {
    csrf: String,
    token: String,
    min_length: usize,
    error: Option<String>,
}

fn mail_off() -> Response {
    ErrorPage::new(
        StatusCode::NOT_FOUND,
        "Password reset by mail is off",
        "This server sends no mail. Ask your administrator for a reset link.",
    )
    .into_response()
}

async fn forgot_page(State(app): State<AppState>, browser: Option<Browser>) -> Response {
    if !app.mail_enabled() {
        return mail_off();
    }
    let (csrf, cookie) = form_session(&app, browser);
    with_cookies(render(StatusCode::OK, &ForgotPage { csrf, sent: false }), cookie)
}

#[derive(Deserialize)]
struct ForgotForm {
    email: String,
}

async fn forgot_submit(
    State(app): State<AppState>,
    ClientInfo(who): ClientInfo,
    SessionForm(session, form): SessionForm<ForgotForm>,
) -> Result<Response, PageError> {
    match app.forgot_password(&form.email, &who) {
        Err(Error::NotFound) => Ok(mail_off()),
        result => {
            result?;
            Ok(render(StatusCode::OK, &ForgotPage { csrf: session.csrf, sent: true }))
        }
    }
}

#[derive(Deserialize)]
struct TokenQuery {
    #[serde(default)]
    token: String,
}

async fn reset_page(
    State(app): State<AppState>,
    browser: Option<Browser>,
    Query(query): Query<TokenQuery>,
) -> Response {
    let (csrf, cookie) = form_session(&app, browser);
    let page = ResetPage { csrf, token: query.token, min_length: app.config.password_min_length, error: None };
    with_cookies(render(StatusCode::OK, &page), cookie)
}

#[derive(Deserialize)]
struct ResetForm {
    token: String,
    new_password: String,
}

async fn reset_submit(
    State(app): State<AppState>,
    ClientInfo(who): ClientInfo,
    SessionForm(session, form): SessionForm<ResetForm>,
) -> Result<Response, PageError> {
    match app.reset_password(&form.token, &form.new_password, &who).await {
        Ok(()) => Ok(ErrorPage::new(
            StatusCode::OK,
            "Your password is changed",
            "Every session of your account has ended. Sign in with the new password.",
        )
        .into_response()),
        Err(e @ (Error::WeakPassword(_) | Error::InvalidLink)) => {
            let api = ApiError::from(e);
            let page = ResetPage {
                csrf: session.csrf,
                token: form.token,
                min_length: app.config.password_min_length,
                error: Some(api.body.message),
            };
            Ok(render(api.status, &page))
        }
        Err(e) => Err(e.into()),
    }
}

/// The page a confirming link opens: one button that posts the token to `action`.
#[derive(Template)]
#[template(path = "verify_email.html")]
struct ConfirmPage {
    csrf: String,
    token: String,
    action: &'static str,
    heading: &'static str,
}

fn confirm_form(
    app: &AppState,
    browser: Option<Browser>,
    token: String,
    action: &'static str,
    heading: &'static str,
) -> Response {
    let (csrf, cookie) = form_session(app, browser);
    with_cookies(render(StatusCode::OK, &ConfirmPage { csrf, token, action, heading }), cookie)
}

async fn verify_page(
    State(app): State<AppState>,
    browser: Option<Browser>,
    Query(query): Query<TokenQuery>,
) -> Response {
    confirm_form(&app, browser, query.token, "/verify-email", "Confirm your email address")
}

async fn confirm_page(
    State(app): State<AppState>,
    browser: Option<Browser>,
    Query(query): Query<TokenQuery>,
) -> Response {
    confirm_form(&app, browser, query.token, "/confirm-email", "Confirm the new address of your account")
}

#[derive(Deserialize)]
struct VerifyForm {
    token: String,
}

async fn verify_submit(
    State(app): State<AppState>,
    ClientInfo(who): ClientInfo,
    SessionForm(_, form): SessionForm<VerifyForm>,
) -> Result<Response, PageError> {
    let user = app.verify_email(&form.token, &who).await?;
    let message = format!("{} is confirmed as the address of your account.", user.profile.email);
    Ok(ErrorPage::new(StatusCode::OK, "Your address is confirmed", &message).into_response())
}

async fn confirm_submit(
    State(app): State<AppState>,
    ClientInfo(who): ClientInfo,
    SessionForm(_, form): SessionForm<VerifyForm>,
) -> Result<Response, PageError> {
    let user = app.confirm_email(&form.token, &who).await?;
    let message = format!("Your account's address is now {}.", user.profile.email);
    Ok(ErrorPage::new(StatusCode::OK, "The new address is confirmed", &message).into_response())
}
