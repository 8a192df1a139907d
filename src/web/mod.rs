//! The web pages for people: server-rendered (askama), forms that work without JavaScript, a cookie
//! session holding an opaque reference, a CSRF token on every state-changing form. They call the same
//! services as the API, so lockout, rate limits and audit apply exactly alike.

mod account;
mod admin;
mod admin_clients;
mod admin_orgs;
mod audit_words;
mod authorize;
mod chart;
mod end_session;
mod mail_links;
pub mod pages;
mod passkeys;
mod readable;
pub mod session;
mod sign_in;

use axum::{
    Router,
    extract::Request,
    http::{StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
};

use crate::app::AppState;

pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .merge(sign_in::router(state))
        .merge(account::router())
        .merge(passkeys::router())
        .merge(mail_links::router(state))
        .merge(admin::router())
        .merge(admin_clients::router())
        .merge(admin_orgs::router())
        .merge(authorize::router())
        .merge(end_session::router())
        .route(
            "/static/app.css",
            get(|| async { asset("text/css; charset=utf-8", include_str!("../../static/app.css")) }),
        )
        .route(
            "/static/form_post.js",
            get(|| async { asset("text/javascript; charset=utf-8", include_str!("../../static/form_post.js")) }),
        )
        .route(
            "/static/passkeys.js",
            get(|| async { asset("text/javascript; charset=utf-8", include_str!("../../static/passkeys.js")) }),
        )
        .route(
            "/static/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", include_str!("../../static/app.js")) }),
        )
        .route_layer(middleware::from_fn(refuse_cross_site))
}

/// Where other sites send browsers by design, with a POST too (OpenID Connect Core §3.1.2.1, RP-Initiated
/// Logout §2): nothing there changes state on the strength of the cookie alone.
const CROSS_SITE_ENTRY_POINTS: [&str; 2] = ["/oauth2/authorize", "/oauth2/logout"];

/// SECURITY.md A.8 (Fetch Metadata): a state change that the browser says another site started is refused,
/// whatever cookie and token it carries.
async fn refuse_cross_site(request: Request, next: Next) -> Response {
    let cross_site = request.headers().get("sec-fetch-site").is_some_and(|site| site == "cross-site");
    if cross_site && !request.method().is_safe() && !CROSS_SITE_ENTRY_POINTS.contains(&request.uri().path()) {
        return session::PageError::Csrf.into_response();
    }
    next.run(request).await
}

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "public, max-age=3600")], body)
}

/// A friendly 404 for people; programs (anything not asking for HTML) get the API's JSON 404.
pub async fn not_found(headers: axum::http::HeaderMap) -> axum::response::Response {
    let wants_html = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("text/html"));
    if wants_html {
        pages::ErrorPage::new(StatusCode::NOT_FOUND, "Page not found", "There is nothing at this address.")
            .into_response()
    } else {
        crate::edge::error::ApiError::for_status(StatusCode::NOT_FOUND).into_response()
    }
}
