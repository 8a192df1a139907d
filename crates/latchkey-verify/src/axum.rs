//! The axum integration (feature `axum`): [`Verified`] extracts verified claims from the bearer token, and
//! refusals answer in Latchkey's JSON error shape (`{"error", "message"}`) with RFC 6750's
//! `WWW-Authenticate`.
//!
//! ```no_run
//! use axum::{Router, extract::FromRef, routing::post};
//! use latchkey_verify::{Denied, Verifier, axum::Verified, roles::Permission};
//!
//! #[derive(Clone)]
//! struct State { verifier: Verifier }
//!
//! impl FromRef<State> for Verifier {
//!     fn from_ref(state: &State) -> Self { state.verifier.clone() }
//! }
//!
//! async fn commit(Verified(claims): Verified) -> Result<&'static str, Denied> {
//!     claims.require_permission(Permission::DraftsCommit)?;
//!     claims.require_mfa()?;
//!     Ok("committed")
//! }
//!
//! let verifier = Verifier::builder("https://auth.example.com").audience("latchkey").build();
//! let app: Router = Router::new().route("/commit", post(commit)).with_state(State { verifier });
//! ```

use axum::{
    extract::{FromRef, FromRequestParts},
    http::{HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};

use crate::{Claims, Denied, Verifier, VerifyError};

/// The claims of the request's verified bearer token. The state must hold a [`Verifier`] (`FromRef`).
#[derive(Clone, Debug)]
pub struct Verified(pub Claims);

impl<S: Send + Sync> FromRequestParts<S> for Verified
where
    Verifier: FromRef<S>,
{
    type Rejection = Unauthorized;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .ok_or(Unauthorized(VerifyError::Missing))?;
        Verifier::from_ref(state).verify(token).await.map(Verified).map_err(Unauthorized)
    }
}

/// A request without a valid token: 401 with `WWW-Authenticate` (503 `unavailable` when the issuer's keys
/// could not be fetched, so the token could not be judged).
#[derive(Debug)]
pub struct Unauthorized(pub VerifyError);

impl IntoResponse for Unauthorized {
    fn into_response(self) -> Response {
        match &self.0 {
            VerifyError::IssuerUnavailable(_) => {
                error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "The token cannot be checked now; try again.")
            }
            VerifyError::Missing => {
                let mut response = error(StatusCode::UNAUTHORIZED, "invalid_token", "A bearer token is required.");
                challenge(&mut response, r#"Bearer realm="latchkey""#.to_string());
                response
            }
            invalid => {
                let message = format!("The access token is not valid: {invalid}.");
                let mut response = error(StatusCode::UNAUTHORIZED, "invalid_token", &message);
                challenge(
                    &mut response,
                    format!(r#"Bearer realm="latchkey", error="invalid_token", error_description="{invalid}""#),
                );
                response
            }
        }
    }
}

/// 403 in Latchkey's shape; `insufficient_scope` also names the scope in `WWW-Authenticate`.
impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        let mut response = error(StatusCode::FORBIDDEN, self.code(), &self.to_string());
        if let Denied::InsufficientScope { scope } = &self {
            challenge(
                &mut response,
                format!(r#"Bearer realm="latchkey", error="insufficient_scope", scope="{scope}""#),
            );
        }
        response
    }
}

/// An answer in Latchkey's JSON error shape.
pub fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({"error": code, "message": message}).to_string();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn challenge(response: &mut Response, value: String) {
    if let Ok(value) = HeaderValue::from_str(&value) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
    }
}
