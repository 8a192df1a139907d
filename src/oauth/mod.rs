//! The OAuth 2.0 / OpenID Connect endpoints that programs call: discovery, the token endpoint, userinfo,
//! introspection and revocation.
//! Their errors are RFC 6749's (`{"error", "error_description"}`), not the JSON API's. The authorization
//! endpoint and the consent page are pages for people and live with them (`web::authorize`).

mod discovery;
mod introspection;
mod token;

use axum::{
    Router,
    routing::{get, post},
};

use crate::app::AppState;

/// With CORS from the allowlist: single-page apps call the token endpoint and userinfo from the browser.
pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery::document))
        .route("/.well-known/oauth-authorization-server", get(discovery::document))
        .route("/oauth2/token", post(token::token))
        .route("/oauth2/userinfo", get(token::userinfo).post(token::userinfo))
        .route("/oauth2/introspect", post(introspection::introspect))
        .route("/oauth2/revoke", post(introspection::revoke))
        .layer(crate::edge::headers::cors(&state.config.cors_origins))
}
