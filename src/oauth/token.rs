//! The token endpoint (RFC 6749 §3.2) and userinfo (OpenID Connect Core §5.3).

use std::collections::HashMap;

use axum::{
    Json,
    body::Bytes,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use percent_encoding::percent_decode_str;
use serde_json::json;

use crate::{
    app::AppState,
    edge::{
        client::{ClientInfo, bearer_token},
        error::{ApiError, keep_as_is},
    },
    error::Error,
    service::oidc::{ClientCredentials, INVALID_CLIENT, TokenError},
};

/// An RFC 6749 §5.2 error answer; `basic` adds the challenge a client that used Basic expects.
pub(super) struct OauthError {
    pub error: TokenError,
    pub basic: bool,
}

impl IntoResponse for OauthError {
    fn into_response(self) -> Response {
        let status = match self.error.error {
            "invalid_client" => StatusCode::UNAUTHORIZED,
            "server_error" => StatusCode::INTERNAL_SERVER_ERROR,
            "temporarily_unavailable" => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        };
        let body = json!({"error": self.error.error, "error_description": self.error.description});
        let mut response = (status, no_store(), Json(body)).into_response();
        if self.basic && status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(r#"Basic realm="latchkey""#));
        }
        keep_as_is(&mut response);
        response
    }
}

pub(super) fn no_store() -> [(header::HeaderName, &'static str); 2] {
    [(header::CACHE_CONTROL, "no-store"), (header::PRAGMA, "no-cache")]
}

pub(super) fn invalid_request(description: &'static str) -> TokenError {
    TokenError { error: "invalid_request", description }
}

/// `Authorization: Basic`: RFC 6749 §2.3.1 form-encodes the id and secret before base64.
fn basic_credentials(headers: &HeaderMap) -> Option<Result<(String, String), ()>> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decode = || -> Option<(String, String)> {
        let text = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
        let (id, secret) = text.split_once(':')?;
        let form_decode = |s: &str| percent_decode_str(&s.replace('+', " ")).decode_utf8().ok().map(|c| c.into_owned());
        Some((form_decode(id)?, form_decode(secret)?))
    };
    Some(decode().ok_or(()))
}

pub async fn token(
    State(app): State<AppState>,
    ClientInfo(who): ClientInfo,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let basic = headers.get(header::AUTHORIZATION).is_some();
    match grant(&app, &who, &headers, &body).await {
        Ok(tokens) => (no_store(), Json(tokens)).into_response(),
        Err(error) => OauthError { error, basic }.into_response(),
    }
}

/// The form of a token, introspection or revocation request: form-encoded, each parameter once.
pub(super) struct OauthForm(HashMap<String, String>);

impl OauthForm {
    pub(super) fn parse(headers: &HeaderMap, body: &[u8]) -> Result<Self, TokenError> {
        let is_form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if !is_form {
            return Err(invalid_request("Send the request as application/x-www-form-urlencoded."));
        }
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_bytes(body).map_err(|_| invalid_request("The form could not be read."))?;
        let mut form = HashMap::new();
        for (name, value) in pairs {
            if form.insert(name, value).is_some() {
                return Err(invalid_request("A parameter was sent more than once."));
            }
        }
        Ok(Self(form))
    }

    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }
}

/// The client's claimed identity: Basic (RFC 6749 §2.3.1), or `client_id` (and `client_secret`) in the form.
pub(super) fn credentials<'a>(
    basic: &'a Option<(String, String)>,
    form: &'a OauthForm,
) -> Result<ClientCredentials<'a>, TokenError> {
    match (basic, form.get("client_id"), form.get("client_secret")) {
        (Some(_), _, Some(_)) => Err(invalid_request("Use one client authentication method, not two.")),
        (Some((id, _)), Some(body_id), _) if id != body_id => {
            Err(invalid_request("client_id differs from the authenticated client."))
        }
        (Some((id, secret)), _, _) => Ok(ClientCredentials { client_id: id, secret: Some(secret) }),
        (None, Some(id), secret) => Ok(ClientCredentials { client_id: id, secret }),
        (None, None, _) => Err(INVALID_CLIENT),
    }
}

pub(super) fn basic_of(headers: &HeaderMap) -> Result<Option<(String, String)>, TokenError> {
    match basic_credentials(headers) {
        Some(Ok(pair)) => Ok(Some(pair)),
        Some(Err(())) => Err(INVALID_CLIENT),
        None => Ok(None),
    }
}

async fn grant(
    app: &AppState,
    who: &crate::service::Client,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<crate::service::oidc::TokenResponse, TokenError> {
    let form = OauthForm::parse(headers, body)?;
    let basic = basic_of(headers)?;
    let credentials = credentials(&basic, &form)?;
    let Some(grant_type) = form.get("grant_type") else { return Err(invalid_request("grant_type is required.")) };
    let client = app.authenticate_client(&credentials).await?;
    match grant_type {
        "authorization_code" => {
            let Some(code) = form.get("code") else { return Err(invalid_request("code is required.")) };
            app.exchange_code(&client, code, form.get("redirect_uri"), form.get("code_verifier"), who).await
        }
        "refresh_token" => {
            let Some(token) = form.get("refresh_token") else {
                return Err(invalid_request("refresh_token is required."));
            };
            app.refresh_grant(&client, token, who).await
        }
        "client_credentials" => app.client_credentials(&client, form.get("scope"), who).await,
        _ => Err(TokenError { error: "unsupported_grant_type", description: "This grant type is not supported." }),
    }
}

/// GET or POST, with the token as a Bearer header or (POST) a form field `access_token` (RFC 6750 §2.2).
pub async fn userinfo(State(app): State<AppState>, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let from_form = || -> Option<String> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).ok()?;
        pairs.into_iter().find(|(k, _)| k == "access_token").map(|(_, v)| v)
    };
    let token = match bearer_token(&headers) {
        Some(token) => token.to_string(),
        None => from_form().ok_or(Error::MissingToken)?,
    };
    let claims = app.userinfo(&token).await?;
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(claims)).into_response())
}
