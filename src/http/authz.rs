//! `/api/v1/authz/*`: the two forward-authentication endpoints reverse proxies call before each request
//! to a protected application. They differ only in how the proxy names the original request and in how
//! "sign in first" is said (Traefik and Caddy follow a 302; nginx's `auth_request` wants a 401).

use std::net::SocketAddr;

use axum::{
    Router,
    extract::{ConnectInfo, State},
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header},
    response::{IntoResponse, Response},
    routing::any,
};

use crate::edge::client::bearer_token;
use crate::edge::error::{ApiError, ErrorBody};
use crate::{
    app::AppState,
    domain::{
        access_rules::{self, Target},
        client_ip,
    },
    error::Error,
    service::forward_auth::{Answer, Credential},
    web::session::{CookieNames, read_cookie},
};

pub fn router() -> Router<AppState> {
    Router::new().route("/authz/forward-auth", any(forward_auth)).route("/authz/auth-request", any(auth_request))
}

/// The request the proxy asks about, as it described it.
struct Original {
    method: String,
    /// Absolute, as the browser asked for it.
    url: String,
    host: String,
    path: String,
}

impl Original {
    /// `None` for anything but `host[:port]` as the authority (a Host header such as `app.example.com?` or
    /// `user@host` would shift what follows into another part of the URL, and the rules would judge another
    /// path than the application serves) and a path that cannot be judged as the application will see it.
    fn new(method: &str, scheme: &str, authority: &str, path_and_query: &str) -> Option<Self> {
        let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']');
        if !matches!(scheme, "http" | "https") || authority.is_empty() || !authority.chars().all(plain) {
            return None;
        }
        if !path_and_query.starts_with('/') {
            return None;
        }
        let uri: Uri = format!("{scheme}://{authority}{path_and_query}").parse().ok()?;
        let host = uri.host()?.trim_end_matches('.').to_ascii_lowercase();
        let path = access_rules::normalize_path(uri.path())?;
        Some(Self { method: method.to_ascii_uppercase(), url: uri.to_string(), host, path })
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
}

/// Traefik `forwardAuth`, Caddy `forward_auth`: `X-Forwarded-Method`, `-Proto`, `-Host`, `-Uri`. The document
/// describes forms of each header that `Original::new` accepts: a host name with an optional port, and an
/// absolute path without dot segments or percent escapes, with an optional query (an empty optional header
/// counts as absent, so each optional pattern admits the empty string).
#[utoipa::path(get, path = "/api/v1/authz/forward-auth", tag = "authz",
    description = "For Traefik `forwardAuth` and Caddy `forward_auth` (any method). Reads X-Forwarded-Method/-Proto/-Host/-Uri, and the web session cookie or a Bearer token.",
    params(
        ("X-Forwarded-Host" = String, Header, description = "The host the browser asked for", pattern = "^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*(?::[1-9][0-9]{0,3})?$"),
        ("X-Forwarded-Uri" = Option<String>, Header, nullable = false, description = "The path and query it asked for; `/` when absent or empty", pattern = "^(?:/(?:[A-Za-z0-9_~-][A-Za-z0-9._~-]*(?:/[A-Za-z0-9_~-][A-Za-z0-9._~-]*)*/?)?(?:\\?[A-Za-z0-9._~=&-]*)?)?$"),
        ("X-Forwarded-Proto" = Option<String>, Header, nullable = false, description = "`http` or `https`; `https` when absent or empty", pattern = "^(?:https?)?$"),
        ("X-Forwarded-Method" = Option<String>, Header, nullable = false, description = "The method it used; GET without it"),
    ),
    responses(
        (status = 200, description = "Allowed; `Remote-User`, `Remote-Email`, `Remote-User-Id`, `Remote-Groups` name the user"),
        (status = 302, description = "Not signed in: `Location` is the sign-in page, with the original URL as `next`; or a `mfa` rule and a password-only session: the second-factor page (`/login/mfa`)"),
        (status = 400, description = "The forwarded headers are missing, or name the request in a form that cannot be judged", body = ErrorBody),
        (status = 401, description = "A bad Bearer token (never redirected)", body = ErrorBody),
        (status = 403, description = "Not allowed, a host the rules do not name, or a proxy that is not trusted", body = ErrorBody),
    ))]
async fn forward_auth(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let original = header(&headers, "x-forwarded-host").and_then(|host| {
        let method = header(&headers, "x-forwarded-method").unwrap_or("GET");
        let scheme = header(&headers, "x-forwarded-proto").unwrap_or("https");
        Original::new(method, scheme, host, header(&headers, "x-forwarded-uri").unwrap_or("/"))
    });
    decide(&app, peer, &headers, original, StatusCode::FOUND).await
}

/// nginx `auth_request`: `X-Original-URL` and `X-Original-Method`.
#[utoipa::path(get, path = "/api/v1/authz/auth-request", tag = "authz",
    description = "For nginx `auth_request` (any method). Reads X-Original-URL and X-Original-Method, and the web session cookie or a Bearer token.",
    params(
        ("X-Original-URL" = String, Header, description = "The absolute URL the browser asked for", pattern = "^https?://[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*(?::[1-9][0-9]{0,3})?(?:/(?:[A-Za-z0-9_~-][A-Za-z0-9._~-]*(?:/[A-Za-z0-9_~-][A-Za-z0-9._~-]*)*/?)?(?:\\?[A-Za-z0-9._~=&-]*)?)?$"),
        ("X-Original-Method" = Option<String>, Header, nullable = false, description = "The method it used; GET without it"),
    ),
    responses(
        (status = 200, description = "Allowed; `Remote-User`, `Remote-Email`, `Remote-User-Id`, `Remote-Groups` name the user"),
        (status = 400, description = "The original URL is missing, or not in a form that can be judged", body = ErrorBody),
        (status = 401, description = "Not signed in (`Location` is the sign-in page), a `mfa` rule and a password-only session (`mfa_required`, `Location` is the second-factor page), or a bad Bearer token (no `Location`)", body = ErrorBody),
        (status = 403, description = "Not allowed, a host the rules do not name, or a proxy that is not trusted", body = ErrorBody),
    ))]
async fn auth_request(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let original = header(&headers, "x-original-url").and_then(|url| {
        let uri: Uri = url.parse().ok()?;
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        Original::new(
            header(&headers, "x-original-method").unwrap_or("GET"),
            uri.scheme_str()?,
            uri.authority()?.as_str(),
            path,
        )
    });
    decide(&app, peer, &headers, original, StatusCode::UNAUTHORIZED).await
}

async fn decide(
    app: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    original: Option<Original>,
    sign_in_status: StatusCode,
) -> Response {
    // With trusted proxies configured, only they may say what the original request was.
    let trusted = &app.config.trusted_proxies;
    if !trusted.is_empty() && !client_ip::is_trusted(peer.ip(), trusted) {
        return ApiError::from(Error::Forbidden).into_response();
    }
    let Some(original) = original else {
        let unclear = "The proxy did not say which request it asks about, or not in a form that can be judged.";
        return ApiError::from(Error::BadRequest(unclear.into())).into_response();
    };
    let names = CookieNames::for_state(app);
    let credential = match (bearer_token(headers), read_cookie(headers, names.session)) {
        (Some(token), _) => Credential::Bearer(token),
        (None, Some(cookie)) => Credential::Cookie(cookie),
        (None, None) => Credential::None,
    };
    let target = Target { host: &original.host, path: &original.path, method: &original.method };
    match app.forward_auth(&target, credential).await {
        Ok(Answer::Allow(identity)) => {
            let mut response = StatusCode::OK.into_response();
            if let Some(who) = identity {
                let values = [
                    ("remote-user", who.name),
                    ("remote-email", who.email),
                    ("remote-user-id", who.user_id.to_string()),
                    ("remote-groups", who.groups.join(",")),
                ];
                for (name, value) in values {
                    let Ok(value) = HeaderValue::from_bytes(value.as_bytes()) else {
                        return ApiError::from(Error::Forbidden).into_response();
                    };
                    response.headers_mut().insert(HeaderName::from_static(name), value);
                }
            }
            response
        }
        Ok(Answer::SignIn) => {
            to_page(app, "/login", &original.url, sign_in_status, "sign_in_required", "Sign in first.")
        }
        Ok(Answer::StepUp) => {
            let why = "This application wants a second factor.";
            to_page(app, "/login/mfa", &original.url, sign_in_status, "mfa_required", why)
        }
        Ok(Answer::Forbidden) => ApiError::from(Error::Forbidden).into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// The sign-in (or second-factor) page, with the original URL to come back to.
fn to_page(app: &AppState, page: &str, back: &str, status: StatusCode, code: &'static str, message: &str) -> Response {
    let issuer = app.config.issuer.trim_end_matches('/');
    // On the issuer's own host the page can send the browser back by path.
    let back = back.strip_prefix(issuer).filter(|path| path.starts_with('/')).unwrap_or(back);
    let next = percent_encoding::utf8_percent_encode(back, percent_encoding::NON_ALPHANUMERIC);
    let mut response = ApiError::new(status, code, message).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("{issuer}{page}?next={next}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}
