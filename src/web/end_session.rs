//! The end-session endpoint (OpenID Connect RP-Initiated Logout 1.0, GET and POST) and its confirmation
//! form. The decision is the service's (`service::end_session`).

use askama::Template;
use axum::{
    Router,
    body::Bytes,
    extract::{RawQuery, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};

use super::{
    pages::{ErrorPage, posting_to, render},
    session::{Browser, PageError, SessionForm, signed_out},
};
use crate::{
    app::AppState, domain::oauth::EndSessionRequest, edge::client::ClientInfo, service::end_session::EndSession,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/oauth2/logout", get(end_session_get).post(end_session_post))
        .route("/oauth2/logout/confirm", post(confirm))
}

fn parse(query: &str) -> Option<EndSessionRequest> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).ok()?;
    Some(EndSessionRequest::from_pairs(&pairs))
}

async fn end_session_get(
    State(app): State<AppState>,
    ClientInfo(who): ClientInfo,
    browser: Option<Browser>,
    RawQuery(query): RawQuery,
) -> Result<Response, PageError> {
    end_session(&app, &who, browser, &query.unwrap_or_default()).await
}

async fn end_session_post(
    State(app): State<AppState>,
    ClientInfo(who): ClientInfo,
    browser: Option<Browser>,
    body: Bytes,
) -> Result<Response, PageError> {
    end_session(&app, &who, browser, &String::from_utf8_lossy(&body)).await
}

async fn end_session(
    app: &AppState,
    who: &crate::service::Client,
    browser: Option<Browser>,
    query: &str,
) -> Result<Response, PageError> {
    let Some(request) = parse(query) else { return Ok(refused("The sign-out request could not be read.")) };
    let browser = browser.map(|Browser(session)| session);
    let decision = app.rp_logout(&request, browser.as_ref(), who).await?;
    Ok(answer(app, decision, browser.map(|b| b.csrf)))
}

/// The confirmation form's fields: the request as it came, minus the hint.
#[derive(serde::Deserialize)]
struct ConfirmForm {
    client_id: Option<String>,
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
}

async fn confirm(
    State(app): State<AppState>,
    ClientInfo(who): ClientInfo,
    SessionForm(session, form): SessionForm<ConfirmForm>,
) -> Result<Response, PageError> {
    let pairs: Vec<(String, String)> = [
        ("client_id", form.client_id),
        ("post_logout_redirect_uri", form.post_logout_redirect_uri),
        ("state", form.state),
    ]
    .into_iter()
    .filter_map(|(name, value)| Some((name.to_string(), value?)))
    .collect();
    let decision = app.confirm_rp_logout(&EndSessionRequest::from_pairs(&pairs), &session, &who).await?;
    Ok(answer(&app, decision, Some(session.csrf)))
}

#[derive(Template)]
#[template(path = "logout_confirm.html")]
struct ConfirmPage {
    csrf: String,
    client_name: Option<String>,
    client_id: String,
    post_logout_redirect_uri: String,
    state: String,
}

#[derive(Template)]
#[template(path = "signed_out.html")]
struct SignedOutPage {}

fn refused(message: &str) -> Response {
    ErrorPage::new(StatusCode::BAD_REQUEST, "This sign-out link is not valid", message).into_response()
}

fn answer(app: &AppState, decision: EndSession, csrf: Option<String>) -> Response {
    match decision {
        EndSession::Refuse(message) => refused(message),
        EndSession::Confirm { client_name, client_id, post_logout_redirect_uri, state } => {
            let target = post_logout_redirect_uri.clone();
            let page = ConfirmPage {
                csrf: csrf.unwrap_or_default(),
                client_name,
                client_id: client_id.unwrap_or_default(),
                post_logout_redirect_uri: post_logout_redirect_uri.unwrap_or_default(),
                state: state.unwrap_or_default(),
            };
            posting_to(render(StatusCode::OK, &page), target.as_deref())
        }
        EndSession::SignedOut { return_to: Some(target) } => signed_out(app, Redirect::to(&target).into_response()),
        EndSession::SignedOut { return_to: None } => signed_out(app, render(StatusCode::OK, &SignedOutPage {})),
    }
}
