//! `/`, `/login`, `/login/mfa`, `/register` and `/logout`.

use askama::Template;
use axum::{
    Router,
    extract::{Query, State},
    http::{HeaderValue, StatusCode},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;

use super::{
    pages::{ErrorPage, posting_to, render},
    session::{Browser, CookieNames, NoFields, PageError, SessionForm, read_cookie, signed_out, with_cookies},
};
use crate::{
    app::AppState,
    domain::{device_token::LIFETIME_SECONDS, pre_session},
    edge::{client::ClientInfo, error::ApiError, rate_limit},
    error::Error,
    service::{
        accounts::NewAccount,
        mfa::Proof,
        web::{BrowserState, Step},
    },
};

pub fn router(state: &AppState) -> Router<AppState> {
    let limited = Router::new()
        .route("/login", post(login_submit))
        .route("/login/passkey/options", post(passkey_options))
        .route("/login/passkey", post(passkey_submit))
        .route("/login/mfa", post(mfa_submit))
        .route("/login/mfa/passkey/options", post(mfa_passkey_options))
        .route("/register", post(register_submit));
    rate_limit::limited(limited, state)
        .route("/", get(root))
        .route("/login", get(login_page))
        .route("/login/mfa", get(mfa_page))
        .route("/register", get(register_page))
        .route("/logout", post(logout))
}

#[derive(Deserialize)]
pub struct Next {
    next: Option<String>,
    /// An application asked for a fresh sign-in (`prompt=login`, `max_age`): show the form even when
    /// signed in.
    again: Option<String>,
    /// An application's guess of who signs in (OpenID Connect `login_hint`): fills the username field.
    login_hint: Option<String>,
}

impl Next {
    fn target(&self, app: &AppState) -> String {
        app.web_return_to(self.next.as_deref())
    }
}

async fn root(browser: Option<Browser>) -> Redirect {
    match browser {
        Some(Browser(s)) if matches!(s.state, BrowserState::SignedIn { .. }) => Redirect::to("/account"),
        _ => Redirect::to("/login"),
    }
}

/// The browser's session for a sign-in form, or a new pre-session (with its cookie to set).
pub(super) fn form_session(app: &AppState, browser: Option<Browser>) -> (String, Option<HeaderValue>) {
    if let Some(Browser(s)) = browser {
        return (s.csrf, None);
    }
    let (cookie, csrf) = app.web_pre_session();
    let names = CookieNames::for_state(app);
    (csrf, Some(names.set(names.session, &cookie, pre_session::LIFETIME_SECONDS)))
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    /// Mail is on: the page offers the forgotten-password link.
    mail: bool,
    csrf: String,
    next: String,
    username: String,
    error: Option<String>,
}

async fn login_page(
    State(app): State<AppState>,
    browser: Option<Browser>,
    Query(next): Query<Next>,
) -> Result<Response, PageError> {
    if let Some(Browser(s)) = &browser {
        match s.state {
            BrowserState::SignedIn { .. } if next.again.is_none() => {
                return Ok(Redirect::to(&next.target(&app)).into_response());
            }
            BrowserState::SignedIn { .. } => {}
            BrowserState::SecondFactorOwed { .. } | BrowserState::Anonymous => {}
        }
    }
    let (csrf, cookie) = form_session(&app, browser);
    let username = next.login_hint.clone().filter(|hint| hint.len() <= 254).unwrap_or_default();
    let next_path = next.next.clone().unwrap_or_default();
    let page = LoginPage { mail: app.mail_enabled(), csrf, next: next_path, username, error: None };
    leading_on(&app, &next, with_cookies(render(StatusCode::OK, &page), cookie)).await
}

#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: String,
}

/// Sets the new session cookie (and the device cookie after a completed sign-in) and goes on.
fn stepped(app: &AppState, step: Step, to: &str) -> Response {
    let names = CookieNames::for_state(app);
    let mut cookies = vec![names.set(names.session, &step.cookie, app.config.refresh_ttl.as_secs() as i64)];
    if let Some(device) = step.device_token {
        cookies.push(names.set(names.device, &device, LIFETIME_SECONDS));
    }
    // 303: the browser follows with a GET, never re-posting the credentials.
    with_cookies(Redirect::to(to).into_response(), cookies)
}

async fn login_submit(
    State(app): State<AppState>,
    ClientInfo(client): ClientInfo,
    Query(next): Query<Next>,
    headers: axum::http::HeaderMap,
    SessionForm(session, form): SessionForm<LoginForm>,
) -> Result<Response, PageError> {
    let device = read_cookie(&headers, CookieNames::for_state(&app).device);
    match app.web_sign_in(&session, &form.username, &form.password, device, &client).await {
        Ok(step) if step.signed_in => Ok(stepped(&app, step, &next.target(&app))),
        Ok(step) => {
            let to = format!("/login/mfa?next={}", utf8_percent_encode(&next.target(&app), NON_ALPHANUMERIC));
            Ok(stepped(&app, step, &to))
        }
        Err(e) => login_failed(&app, &next, session.csrf, form.username, e).await,
    }
}

/// The sign-in page again, with the reason and the status the API would give.
async fn login_failed(
    app: &AppState,
    next: &Next,
    csrf: String,
    username: String,
    error: Error,
) -> Result<Response, PageError> {
    let api = ApiError::from(error);
    login_refused(app, next, csrf, username, api.status, api.body.message).await
}

async fn login_refused(
    app: &AppState,
    next: &Next,
    csrf: String,
    username: String,
    status: StatusCode,
    message: String,
) -> Result<Response, PageError> {
    let next_path = next.next.clone().unwrap_or_default();
    let page = LoginPage { mail: app.mail_enabled(), csrf, next: next_path, username, error: Some(message) };
    leading_on(app, next, render(status, &page)).await
}

/// A passkey ceremony's first step for a sign-in page (the script asks for it; JSON).
async fn passkey_options(
    State(app): State<AppState>,
    SessionForm(_, NoFields {}): SessionForm<NoFields>,
) -> Result<Response, ApiError> {
    Ok(axum::Json(app.passkey_login_start(None).await?).into_response())
}

/// What the passkey script posts back: the ceremony and the browser's `PublicKeyCredential.toJSON()`.
#[derive(Deserialize)]
pub(super) struct PasskeyForm {
    pub challenge_id: String,
    pub credential: String,
}

impl PasskeyForm {
    pub fn credential<T: serde::de::DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_str(&self.credential)
            .map_err(|_| Error::invalid_field("credential", "The browser's passkey answer could not be read."))
    }
}

async fn passkey_submit(
    State(app): State<AppState>,
    ClientInfo(client): ClientInfo,
    Query(next): Query<Next>,
    headers: axum::http::HeaderMap,
    SessionForm(session, form): SessionForm<PasskeyForm>,
) -> Result<Response, PageError> {
    let device = read_cookie(&headers, CookieNames::for_state(&app).device);
    let result = match form.credential() {
        Ok(credential) => app.web_passkey_sign_in(&session, &form.challenge_id, &credential, device, &client).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(step) => Ok(stepped(&app, step, &next.target(&app))),
        // "Invalid username or password" would puzzle someone who typed neither.
        Err(Error::InvalidCredentials) => {
            let words = format!("{PASSKEY_REFUSED} Sign in with your password, or try another passkey.");
            login_refused(&app, &next, session.csrf, String::new(), StatusCode::UNAUTHORIZED, words).await
        }
        Err(e) => login_failed(&app, &next, session.csrf, String::new(), e).await,
    }
}

/// What a refused passkey is told, on the sign-in pages.
const PASSKEY_REFUSED: &str = "This passkey was not accepted: it may have been removed from its account.";

async fn mfa_passkey_options(
    State(app): State<AppState>,
    SessionForm(session, NoFields {}): SessionForm<NoFields>,
) -> Result<Response, ApiError> {
    Ok(axum::Json(app.web_second_factor_passkey_start(&session).await?).into_response())
}

#[derive(Template)]
#[template(path = "login_mfa.html")]
struct MfaPage {
    csrf: String,
    next: String,
    /// A signed-in session giving the second factor an application asks for, not a sign-in finishing.
    step_up: bool,
    /// The account has a passkey to give as the second factor.
    passkey: bool,
    error: Option<String>,
}

/// A sign-in page whose form, once it succeeds, redirects on to `next`, possibly on another origin.
async fn leading_on(app: &AppState, next: &Next, page: Response) -> Result<Response, PageError> {
    let target = app.sign_in_leads_to(next.next.as_deref()).await?;
    Ok(posting_to(page, target.as_deref()))
}

/// Back to the sign-in page, keeping where it was going.
fn sign_in_again(next: &Next) -> Response {
    let to = match &next.next {
        Some(next) => format!("/login?next={}", utf8_percent_encode(next, NON_ALPHANUMERIC)),
        None => "/login".into(),
    };
    Redirect::to(&to).into_response()
}

/// `/login/mfa` finishes a sign-in that owes its second factor, and steps up a signed-in session that
/// has not given one when an application's rule wants it.
async fn mfa_page(
    State(app): State<AppState>,
    browser: Option<Browser>,
    Query(next): Query<Next>,
) -> Result<Response, PageError> {
    let Some(Browser(session)) = browser else { return Ok(sign_in_again(&next)) };
    let step_up = match &session.state {
        BrowserState::SecondFactorOwed { .. } => false,
        BrowserState::SignedIn { claims, .. } if claims.mfa => {
            return Ok(Redirect::to(&next.target(&app)).into_response());
        }
        BrowserState::SignedIn { user, .. } if !user.profile.mfa_enabled => {
            return Ok(ErrorPage::new(
                StatusCode::FORBIDDEN,
                "Two-factor authentication needed",
                "This application asks for a second factor. Turn on two-factor authentication on your account \
                 page, then open the application again.",
            )
            .into_response());
        }
        BrowserState::SignedIn { .. } => true,
        BrowserState::Anonymous => return Ok(sign_in_again(&next)),
    };
    let passkey = app.web_second_factor_has_passkey(&session).await?;
    let next_path = next.next.clone().unwrap_or_default();
    let page = MfaPage { csrf: session.csrf, next: next_path, step_up, passkey, error: None };
    leading_on(&app, &next, render(StatusCode::OK, &page)).await
}

/// A code from the form, or a passkey's answer from the passkey script.
#[derive(Deserialize)]
pub(super) struct SecondFactorForm {
    #[serde(default)]
    code: String,
    #[serde(flatten)]
    passkey: Option<PasskeyForm>,
}

/// What a `SecondFactorForm` gives, read: `as_proof` lends it to a service.
pub(super) enum GivenProof {
    Code(String),
    Passkey { challenge_id: String, credential: Box<webauthn_rs_core::proto::PublicKeyCredential> },
}

impl SecondFactorForm {
    pub fn given(self) -> Result<GivenProof, Error> {
        match self.passkey {
            None => Ok(GivenProof::Code(self.code)),
            Some(passkey) => {
                let credential = Box::new(passkey.credential()?);
                Ok(GivenProof::Passkey { challenge_id: passkey.challenge_id, credential })
            }
        }
    }
}

impl GivenProof {
    pub fn as_proof(&self) -> Proof<'_> {
        match self {
            GivenProof::Code(code) => Proof::Code(code),
            GivenProof::Passkey { challenge_id, credential } => {
                Proof::Passkey { challenge_id, credential: credential.as_ref() }
            }
        }
    }
}

async fn mfa_submit(
    State(app): State<AppState>,
    ClientInfo(client): ClientInfo,
    Query(next): Query<Next>,
    SessionForm(session, form): SessionForm<SecondFactorForm>,
) -> Result<Response, PageError> {
    let step_up = matches!(session.state, BrowserState::SignedIn { .. });
    let result = match form.given() {
        Ok(given) if step_up => app.web_step_up(&session, given.as_proof(), &client).await,
        Ok(given) => app.web_second_factor(&session, given.as_proof(), &client).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(step) => Ok(stepped(&app, step, &next.target(&app))),
        // A spent or expired sign-in starts over.
        Err(Error::InvalidToken) => Ok(sign_in_again(&next)),
        Err(Error::TooManyRequests { .. }) if !step_up => Ok(sign_in_again(&next)),
        Err(e) => {
            let passkey = app.web_second_factor_has_passkey(&session).await?;
            let refused_passkey = matches!(e, Error::InvalidCredentials);
            let api = ApiError::from(e);
            let error = if refused_passkey {
                format!("{PASSKEY_REFUSED} Try another passkey, or a code.")
            } else {
                api.body.message
            };
            let page = MfaPage {
                csrf: session.csrf,
                next: next.next.clone().unwrap_or_default(),
                step_up,
                passkey,
                error: Some(error),
            };
            leading_on(&app, &next, render(api.status, &page)).await
        }
    }
}

#[derive(Template, Default)]
#[template(path = "register.html")]
struct RegisterPage {
    csrf: String,
    min_length: usize,
    email: String,
    username: String,
    error: Option<String>,
    email_error: Option<String>,
    username_error: Option<String>,
    password_error: Option<String>,
}

async fn register_page(State(app): State<AppState>, browser: Option<Browser>) -> Result<Response, PageError> {
    let (csrf, cookie) = form_session(&app, browser);
    let page = RegisterPage { csrf, min_length: app.config.password_min_length, ..Default::default() };
    Ok(with_cookies(render(StatusCode::OK, &page), cookie))
}

#[derive(Deserialize)]
struct RegisterForm {
    email: String,
    #[serde(default)]
    username: String,
    password: String,
}

async fn register_submit(
    State(app): State<AppState>,
    ClientInfo(client): ClientInfo,
    SessionForm(session, form): SessionForm<RegisterForm>,
) -> Result<Response, PageError> {
    let new = NewAccount { email: &form.email, username: Some(form.username.as_str()), password: &form.password };
    match app.web_register(&session, new, &client).await {
        Ok(Some(step)) => Ok(stepped(&app, step, "/account")),
        Ok(None) => Ok(ErrorPage::new(
            StatusCode::CREATED,
            "Check your mail",
            "Your account is made. Follow the link we mailed you to confirm the address, then sign in.",
        )
        .into_response()),
        Err(e) => {
            let mut page = RegisterPage {
                csrf: session.csrf,
                min_length: app.config.password_min_length,
                email: form.email.clone(),
                username: form.username.clone(),
                ..Default::default()
            };
            match &e {
                Error::Validation(fields) => {
                    for f in fields {
                        let slot = if f.field == "username" { &mut page.username_error } else { &mut page.email_error };
                        *slot = Some(f.message.clone());
                    }
                }
                Error::WeakPassword(f) => page.password_error = Some(f.message.clone()),
                Error::Conflict { code: "username_taken", message } => page.username_error = Some((*message).into()),
                Error::Conflict { message, .. } => page.email_error = Some((*message).into()),
                _ => {}
            }
            let api = ApiError::from(e);
            if page.email_error.is_none() && page.username_error.is_none() && page.password_error.is_none() {
                page.error = Some(api.body.message);
            }
            Ok(render(api.status, &page))
        }
    }
}

async fn logout(
    State(app): State<AppState>,
    ClientInfo(client): ClientInfo,
    SessionForm(session, NoFields {}): SessionForm<NoFields>,
) -> Result<Response, PageError> {
    app.web_sign_out(&session, &client).await?;
    Ok(signed_out(&app, Redirect::to("/login").into_response()))
}
