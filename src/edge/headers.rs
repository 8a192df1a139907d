//! Security headers on every response (SECURITY.md A.3, A.10), and CORS from an allowlist (A.5).

use axum::{
    extract::{Request, State},
    http::{HeaderName, HeaderValue, Method, header},
    middleware::Next,
    response::Response,
};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::app::AppState;

/// API answers are data, never documents: nothing may load, run or frame.
const API_CSP: &str =
    "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'; form-action 'none'";
/// The pages: own scripts and styles only (no inline script), QR codes as data: images, forms to self.
const PAGE_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                        frame-ancestors 'none'; base-uri 'none'; object-src 'none'; form-action 'self'";
/// Swagger UI loads its own scripts and styles (it sets inline style attributes) and shows data: images.
const DOCS_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
                        connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'; form-action 'self'";

/// The pages' policy for a page whose form ends, through redirects, at `origin`: browsers check `form-action`
/// against each redirect that follows a submission, not only the form's own action.
pub fn page_csp_posting_to(origin: &str) -> String {
    PAGE_CSP.replace("form-action 'self'", &format!("form-action 'self' {origin}"))
}

pub async fn security_headers(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let is_docs = request.uri().path().starts_with("/docs");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let is_html = headers.get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    let csp = match (is_docs, is_html) {
        (true, _) => DOCS_CSP,
        (false, true) => PAGE_CSP,
        (false, false) => API_CSP,
    };
    // A page with a narrower policy of its own (the form-post response, which must post to the client)
    // keeps it.
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(csp));
    }
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(HeaderName::from_static("cross-origin-opener-policy"), HeaderValue::from_static("same-origin"));
    headers.insert(HeaderName::from_static("cross-origin-resource-policy"), HeaderValue::from_static("same-origin"));
    // Only a deployment whose public address is https can promise HTTPS for the next two years.
    if app.config.issuer.starts_with("https://") {
        headers
            .insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=63072000; includeSubDomains"));
    }
    if headers.get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes() == b"application/json") {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
    }
    response
}

/// Exactly the configured origins (never `*`, never a reflected or `null` origin); none by default.
/// Bearer tokens travel in a header, so no credentials (cookies) are allowed cross-origin.
pub fn cors(origins: &[HeaderValue]) -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins.iter().cloned()))
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .max_age(std::time::Duration::from_secs(600))
}
