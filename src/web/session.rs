//! Cookies, the browser session extractor, CSRF checks, and how page errors are answered.

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, OptionalFromRequestParts, Request},
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Redirect, Response},
};
use serde::{Deserialize, de::DeserializeOwned};
use subtle::ConstantTimeEq;

use super::pages::ErrorPage;
use crate::{
    app::AppState,
    edge::error::ApiError,
    error::Error,
    service::web::{BrowserSession, BrowserState},
};

/// SECURITY.md decision 2: `__Host-` names and `Secure` when the deployment is https; on plain-http
/// development setups (an `http://` issuer) both are dropped, or browsers would refuse the cookies. With
/// `LATCHKEY_COOKIE_DOMAIN` the session cookie is sent to that domain's subdomains too (the applications
/// behind forward authentication): it then has `Domain`, which `__Host-` forbids, so `__Secure-` instead.
pub struct CookieNames<'a> {
    pub session: &'static str,
    pub device: &'static str,
    secure: bool,
    shared_with: Option<&'a str>,
}

impl<'a> CookieNames<'a> {
    pub fn for_state(app: &'a AppState) -> Self {
        let secure = app.config.issuer.starts_with("https://");
        let shared_with = app.config.cookie_domain.as_deref();
        let session = match (secure, shared_with.is_some()) {
            (true, false) => "__Host-latchkey_session",
            (true, true) => "__Secure-latchkey_session",
            (false, _) => "latchkey_session",
        };
        let device = if secure { "__Host-latchkey_device" } else { "latchkey_device" };
        Self { session, device, secure, shared_with }
    }

    /// Every cookie comes from here: HttpOnly, SameSite=Lax, Path=/, no Domain but the shared session's.
    pub fn set(&self, name: &str, value: &str, max_age_secs: i64) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        let domain = match self.shared_with {
            Some(domain) if name == self.session => format!("; Domain={domain}"),
            _ => String::new(),
        };
        let cookie = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}{secure}{domain}");
        HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
    }
}

pub fn with_cookies(mut response: Response, cookies: impl IntoIterator<Item = HeaderValue>) -> Response {
    for cookie in cookies {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// `response` for a browser that just signed out: the session cookie expires and the browser drops what it
/// cached of the pages (SECURITY.md 12).
pub fn signed_out(app: &AppState, response: Response) -> Response {
    let names = CookieNames::for_state(app);
    let mut response = with_cookies(response, [names.set(names.session, "", 0)]);
    response
        .headers_mut()
        .insert(HeaderName::from_static("clear-site-data"), HeaderValue::from_static("\"cache\", \"storage\""));
    response
}

pub fn read_cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The browser session named by the session cookie, when it is valid.
pub struct Browser(pub BrowserSession);

impl OptionalFromRequestParts<AppState> for Browser {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Option<Self>, Self::Rejection> {
        let names = CookieNames::for_state(app);
        let Some(cookie) = read_cookie(&parts.headers, names.session) else { return Ok(None) };
        Ok(app.web_session(cookie).await?.map(Browser))
    }
}

/// A signed-in browser session (else a redirect to the sign-in page).
pub struct SignedIn(pub BrowserSession);

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Self::Rejection> {
        let browser = <Browser as OptionalFromRequestParts<AppState>>::from_request_parts(parts, app).await?;
        match browser {
            Some(Browser(session)) if matches!(session.state, BrowserState::SignedIn { .. }) => Ok(Self(session)),
            _ => Err(PageError::SignIn),
        }
    }
}

/// A form this browser session posted: its `csrf` field equals the session's token (synchronizer token
/// pattern), checked before anything else in the body is read. Every state-changing page takes its body
/// through this or [`SignedInForm`].
pub struct SessionForm<T>(pub BrowserSession, pub T);

#[derive(Deserialize)]
struct CsrfField {
    #[serde(default)]
    csrf: String,
}

impl<T: DeserializeOwned> FromRequest<AppState> for SessionForm<T> {
    type Rejection = PageError;

    async fn from_request(request: Request, app: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = request.into_parts();
        let browser = <Browser as OptionalFromRequestParts<AppState>>::from_request_parts(&mut parts, app).await?;
        let Some(Browser(session)) = browser else { return Err(PageError::Csrf) };
        let bytes = Bytes::from_request(Request::from_parts(parts, body), app).await.map_err(|_| PageError::BadForm)?;
        let CsrfField { csrf } = serde_urlencoded::from_bytes(&bytes).map_err(|_| PageError::BadForm)?;
        if !bool::from(session.csrf.as_bytes().ct_eq(csrf.as_bytes())) {
            return Err(PageError::Csrf);
        }
        let form = serde_urlencoded::from_bytes(&bytes).map_err(|_| PageError::BadForm)?;
        Ok(Self(session, form))
    }
}

/// The body of a form that is only a button (and its CSRF field).
#[derive(Deserialize)]
pub struct NoFields {}

/// A [`SessionForm`] from a signed-in session (else a redirect to the sign-in page).
pub struct SignedInForm<T>(pub BrowserSession, pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for SignedInForm<T> {
    type Rejection = PageError;

    async fn from_request(request: Request, app: &AppState) -> Result<Self, Self::Rejection> {
        let SessionForm(session, form) = SessionForm::from_request(request, app).await?;
        match session.state {
            BrowserState::SignedIn { .. } => Ok(Self(session, form)),
            _ => Err(PageError::SignIn),
        }
    }
}

pub enum PageError {
    /// Not signed in: to the sign-in page.
    SignIn,
    /// A state-changing form without the right CSRF token: refused, nothing changed.
    Csrf,
    /// A form body that is not the form the page sent.
    BadForm,
    Failed(Error),
}

impl From<Error> for PageError {
    fn from(e: Error) -> Self {
        PageError::Failed(e)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match self {
            PageError::SignIn => Redirect::to("/login").into_response(),
            PageError::Csrf => ErrorPage::new(
                StatusCode::FORBIDDEN,
                "This form has expired",
                "Reload the page and try again. Nothing was changed.",
            )
            .into_response(),
            PageError::BadForm => ErrorPage::new(
                StatusCode::BAD_REQUEST,
                "That did not work",
                "The form was incomplete. Go back, fill it in and send it again.",
            )
            .into_response(),
            PageError::Failed(e) => {
                let api = ApiError::from(e);
                let heading = if api.status.is_server_error() { "Something went wrong" } else { "That did not work" };
                ErrorPage::new(api.status, heading, &api.body.message).into_response()
            }
        }
    }
}
