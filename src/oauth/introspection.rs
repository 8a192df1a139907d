//! Introspection (RFC 7662) and revocation (RFC 7009), both for authenticated clients.

use axum::{
    Json,
    body::Bytes,
    extract::State,
    http::{HeaderMap, header},
    response::{IntoResponse, Response},
};

use super::token::{OauthError, OauthForm, basic_of, credentials, invalid_request, no_store};
use crate::{app::AppState, edge::client::ClientInfo, service::oidc::TokenError, store::oauth::ClientRecord};

/// The authenticated client and the `token` it asks about.
async fn client_and_token(
    app: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(ClientRecord, String), TokenError> {
    let form = OauthForm::parse(headers, body)?;
    let basic = basic_of(headers)?;
    let client = app.authenticate_client(&credentials(&basic, &form)?).await?;
    let token = form.get("token").ok_or_else(|| invalid_request("token is required."))?;
    Ok((client, token.to_string()))
}

fn answer(headers: &HeaderMap, result: Result<serde_json::Value, TokenError>) -> Response {
    match result {
        Ok(body) => (no_store(), Json(body)).into_response(),
        Err(error) => OauthError { error, basic: headers.contains_key(header::AUTHORIZATION) }.into_response(),
    }
}

pub async fn introspect(State(app): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let result = async {
        let (client, token) = client_and_token(&app, &headers, &body).await?;
        app.introspect(&client, &token).await
    };
    answer(&headers, result.await)
}

pub async fn revoke(
    State(app): State<AppState>,
    ClientInfo(who): ClientInfo,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = async {
        let (client, token) = client_and_token(&app, &headers, &body).await?;
        app.revoke_token(&client, &token, &who).await?;
        Ok(serde_json::json!({}))
    };
    answer(&headers, result.await)
}
