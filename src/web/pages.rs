//! Rendering templates into responses, and the shared error page.

use askama::Template;
use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Response},
};

/// `scheme://authority` of an absolute URI.
pub fn origin_of(uri: &str) -> Option<String> {
    let uri = uri.parse::<axum::http::Uri>().ok()?;
    Some(format!("{}://{}", uri.scheme_str()?, uri.authority()?))
}

/// A page whose form leads (through our redirect) to `target`: its policy lets the submission go there.
pub fn posting_to(mut response: Response, target: Option<&str>) -> Response {
    let csp = target.and_then(origin_of).map(|origin| crate::edge::headers::page_csp_posting_to(&origin));
    if let Some(value) = csp.and_then(|csp| HeaderValue::from_str(&csp).ok()) {
        response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, value);
    }
    response
}

/// Renders `template` with `status`; pages are personal, so never cached.
pub fn render(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => (status, [(header::CACHE_CONTROL, "no-store")], Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "template rendering failed");
            (StatusCode::INTERNAL_SERVER_ERROR, Html("<!doctype html><title>Error</title><p>Something went wrong."))
                .into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    status: StatusCode,
    pub heading: String,
    pub message: String,
}

impl ErrorPage {
    pub fn new(status: StatusCode, heading: &str, message: &str) -> Self {
        Self { status, heading: heading.into(), message: message.into() }
    }
}

impl IntoResponse for ErrorPage {
    fn into_response(self) -> Response {
        render(self.status, &self)
    }
}
