//! Who is asking: the client's address and user agent, and a bearer token if it sent one. Every face reads
//! requests through these.

use std::net::SocketAddr;

use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::{header, request::Parts},
};

use crate::{
    app::AppState,
    domain::client_ip::client_ip,
    service::{Client, audit::truncate_user_agent},
};

/// The token of an `Authorization: Bearer <token>` header (the scheme in any case), if there is one.
pub fn bearer_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
}

/// The client's address (the socket peer, or what a trusted proxy forwarded) and user agent.
pub struct ClientInfo(pub Client);

impl FromRequestParts<AppState> for ClientInfo {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let forwarded = parts.headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| client_ip(addr.ip(), forwarded, &state.config.trusted_proxies).to_string());
        let user_agent =
            parts.headers.get(header::USER_AGENT).map(|v| truncate_user_agent(&String::from_utf8_lossy(v.as_bytes())));
        Ok(Self(Client { ip, user_agent }))
    }
}
