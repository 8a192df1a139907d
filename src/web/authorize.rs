//! The authorization endpoint (GET and POST) and the consent form: pages for people in an OAuth flow. The
//! decisions are the service's (`service::oidc`); this turns them into redirects and pages.

use askama::Template;
use axum::{
    Router,
    body::Bytes,
    extract::{RawQuery, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;

use super::{
    pages::{ErrorPage, origin_of, posting_to, render},
    session::{Browser, PageError, SessionForm},
};
use crate::{
    app::AppState,
    domain::oauth::{AuthorizationRequest, ResponseMode, scope_in_words},
    edge::client::ClientInfo,
    service::{oidc::Authorize, web::BrowserSession},
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/oauth2/authorize", get(authorize_get).post(authorize_post))
        .route("/oauth2/consent", post(consent))
}

fn parse(query: &str) -> Option<AuthorizationRequest> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).ok()?;
    Some(AuthorizationRequest::from_pairs(&pairs))
}

fn refused(message: &str) -> Response {
    ErrorPage::new(StatusCode::BAD_REQUEST, "This sign-in link is not valid", message).into_response()
}

async fn authorize_get(
    State(app): State<AppState>,
    browser: Option<Browser>,
    RawQuery(query): RawQuery,
) -> Result<Response, PageError> {
    authorize(&app, browser.map(|Browser(s)| s), &query.unwrap_or_default()).await
}

/// OpenID Connect Core §3.1.2.1: the same request, form-encoded in the body.
async fn authorize_post(
    State(app): State<AppState>,
    browser: Option<Browser>,
    body: Bytes,
) -> Result<Response, PageError> {
    authorize(&app, browser.map(|Browser(s)| s), &String::from_utf8_lossy(&body)).await
}

async fn authorize(app: &AppState, browser: Option<BrowserSession>, query: &str) -> Result<Response, PageError> {
    let Some(request) = parse(query) else { return Ok(refused("The request could not be read.")) };
    let decision = app.oauth_authorize(&request, query, browser.as_ref()).await?;
    Ok(answer(decision, browser.as_ref(), query))
}

#[derive(Deserialize)]
struct ConsentForm {
    request: String,
    decision: String,
}

async fn consent(
    State(app): State<AppState>,
    ClientInfo(who): ClientInfo,
    SessionForm(session, form): SessionForm<ConsentForm>,
) -> Result<Response, PageError> {
    let Some(request) = parse(&form.request) else { return Ok(refused("The request could not be read.")) };
    let allow = form.decision == "allow";
    let decision = app.decide_consent(&request, &form.request, &session, allow, &who).await?;
    Ok(answer(decision, Some(&session), &form.request))
}

#[derive(Template)]
#[template(path = "consent.html")]
struct ConsentPage {
    csrf: String,
    request: String,
    client_name: String,
    scopes: Vec<&'static str>,
}

#[derive(Template)]
#[template(path = "form_post.html")]
struct FormPostPage {
    action: String,
    fields: Vec<(&'static str, String)>,
}

fn encoded(value: &str) -> String {
    utf8_percent_encode(value, NON_ALPHANUMERIC).to_string()
}

fn answer(decision: Authorize, browser: Option<&BrowserSession>, query: &str) -> Response {
    match decision {
        Authorize::Refuse(message) => refused(message),
        Authorize::Respond { redirect_uri, params, mode: ResponseMode::Query } => {
            let separator = if redirect_uri.contains('?') { '&' } else { '?' };
            let params = serde_urlencoded::to_string(&params).unwrap_or_default();
            Redirect::to(&format!("{redirect_uri}{separator}{params}")).into_response()
        }
        Authorize::Respond { redirect_uri, params, mode: ResponseMode::FormPost } => form_post(redirect_uri, params),
        Authorize::SignIn { next, again, login_hint } => {
            let again = if again { "&again=1" } else { "" };
            let hint = login_hint.map(|h| format!("&login_hint={}", encoded(&h))).unwrap_or_default();
            Redirect::to(&format!("/login?next={}{again}{hint}", encoded(&next))).into_response()
        }
        Authorize::SecondFactor { next } => {
            Redirect::to(&format!("/login/mfa?next={}", encoded(&next))).into_response()
        }
        Authorize::Consent { client_name, scopes, redirect_uri } => {
            let page = ConsentPage {
                csrf: browser.map(|b| b.csrf.clone()).unwrap_or_default(),
                request: query.to_string(),
                client_name,
                scopes: scopes.iter().map(|s| scope_in_words(s)).collect(),
            };
            posting_to(render(StatusCode::OK, &page), Some(&redirect_uri))
        }
    }
}

/// OAuth 2.0 Form Post Response Mode: a page that posts the answer to the client. Its policy lets the form
/// go to the client's origin only.
fn form_post(redirect_uri: String, fields: Vec<(&'static str, String)>) -> Response {
    let origin = origin_of(&redirect_uri).unwrap_or_default();
    let mut response = render(StatusCode::OK, &FormPostPage { action: redirect_uri, fields });
    let csp =
        format!("default-src 'none'; script-src 'self'; form-action {origin}; frame-ancestors 'none'; base-uri 'none'");
    if let Ok(value) = HeaderValue::from_str(&csp) {
        response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, value);
    }
    response
}
