//! Rendering templates into responses, and the shared error page.

use askama::Template;
use axum::{
    http::{StatusCode, header},
    response::{Html, IntoResponse, Response},
};

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
