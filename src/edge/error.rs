//! The error JSON of API.md, for every failure: the flows' errors, axum's own rejections, and responses
//! produced by layers (unknown route, wrong method, body too large), which `normalize` rewrites.

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{Error, FieldError};

const REALM: &str = r#"Bearer realm="latchkey""#;
const REALM_INVALID: &str = r#"Bearer realm="latchkey", error="invalid_token""#;

/// `{"error": "invalid_credentials", "message": "...", "details": [...]}`; `details` only on 422.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// A stable snake_case code (see API.md).
    #[schema(example = "invalid_credentials")]
    pub error: &'static str,
    /// For people; never internals.
    #[schema(example = "Invalid username or password.")]
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Vec<FieldDetail>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FieldDetail {
    pub field: String,
    pub message: String,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
    www_authenticate: Option<&'static str>,
    retry_after: Option<u64>,
}

/// Marks a response whose body is already an `ErrorBody`, so that `normalize` leaves it alone.
#[derive(Clone, Copy)]
struct Normalized;

impl ApiError {
    pub fn new(status: StatusCode, error: &'static str, message: impl Into<String>) -> Self {
        let www_authenticate = (status == StatusCode::UNAUTHORIZED).then_some(REALM);
        Self {
            status,
            body: ErrorBody { error, message: message.into(), details: None },
            www_authenticate,
            retry_after: None,
        }
    }

    fn with_details(mut self, details: Vec<FieldError>) -> Self {
        self.body.details =
            Some(details.into_iter().map(|d| FieldDetail { field: d.field.to_string(), message: d.message }).collect());
        self
    }

    pub fn validation(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        let mut e = Self::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", message.clone());
        e.body.details = Some(vec![FieldDetail { field: field.to_string(), message }]);
        e
    }

    /// The answer for a status that a layer or the router produced without a body of ours.
    pub fn for_status(status: StatusCode) -> Self {
        match status {
            StatusCode::NOT_FOUND => Self::new(status, "not_found", "There is nothing at this address."),
            StatusCode::METHOD_NOT_ALLOWED => {
                Self::new(status, "method_not_allowed", "This address does not accept that method.")
            }
            StatusCode::PAYLOAD_TOO_LARGE => {
                Self::new(status, "payload_too_large", "The request body is larger than 64 KiB.")
            }
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                Self::new(status, "unsupported_media_type", "Send the body as application/json.")
            }
            StatusCode::REQUEST_TIMEOUT => Self::new(status, "timeout", "The request took too long."),
            s if s.is_server_error() => Self::new(status, "internal_error", "Something went wrong on our side."),
            s => Self::new(s, "bad_request", "The request is not valid."),
        }
    }
}

impl ApiError {
    /// The `error` code a flow's error answers with, e.g. for metric labels.
    pub fn code_of(err: &Error) -> &'static str {
        match err {
            Error::BadRequest(_) => "bad_request",
            Error::InvalidCredentials => "invalid_credentials",
            Error::MissingToken | Error::InvalidToken | Error::InvalidLink => "invalid_token",
            Error::WrongPassword => "wrong_password",
            Error::Forbidden => "forbidden",
            Error::InactiveUser => "inactive_user",
            Error::EmailNotVerified => "email_not_verified",
            Error::MfaRequired => "mfa_required",
            Error::InvalidCode { .. } => "invalid_code",
            Error::NotFound => "not_found",
            Error::Conflict { code, .. } | Error::TooManyRequests { code, .. } => code,
            Error::Validation(_) => "validation_failed",
            Error::WeakPassword(_) => "weak_password",
            Error::Unavailable => "unavailable",
            Error::Internal(_) => "internal_error",
        }
    }
}

impl From<Error> for ApiError {
    fn from(err: Error) -> Self {
        use StatusCode as S;
        match err {
            Error::BadRequest(message) => Self::new(S::BAD_REQUEST, "bad_request", message),
            Error::InvalidCredentials => {
                Self::new(S::UNAUTHORIZED, "invalid_credentials", "Invalid username or password.")
            }
            Error::MissingToken => Self::new(S::UNAUTHORIZED, "invalid_token", "This needs a bearer access token."),
            Error::InvalidToken => {
                let mut e = Self::new(S::UNAUTHORIZED, "invalid_token", "The token is invalid, expired or revoked.");
                e.www_authenticate = Some(REALM_INVALID);
                e
            }
            Error::InvalidLink => {
                Self::new(S::BAD_REQUEST, "invalid_token", "The link is invalid, expired or already used.")
            }
            Error::WrongPassword => Self::new(S::BAD_REQUEST, "wrong_password", "The current password is not correct."),
            Error::Forbidden => Self::new(S::FORBIDDEN, "forbidden", "You are not allowed to do this."),
            Error::InactiveUser => Self::new(S::FORBIDDEN, "inactive_user", "This account has been deactivated."),
            Error::EmailNotVerified => Self::new(
                S::FORBIDDEN,
                "email_not_verified",
                "Confirm your email address first: follow the link in the mail we sent.",
            ),
            Error::MfaRequired => {
                Self::new(S::FORBIDDEN, "mfa_required", "Sign in with your second factor to do this.")
            }
            Error::InvalidCode { at_login } => Self::new(
                if at_login { S::UNAUTHORIZED } else { S::BAD_REQUEST },
                "invalid_code",
                "The code is not correct, or it was already used.",
            ),
            Error::NotFound => Self::for_status(S::NOT_FOUND),
            Error::Conflict { code, message } => Self::new(S::CONFLICT, code, message),
            Error::Validation(details) => {
                let message =
                    details.first().map_or_else(|| "The request is not valid.".to_string(), |d| d.message.clone());
                Self::new(S::UNPROCESSABLE_ENTITY, "validation_failed", message).with_details(details)
            }
            Error::WeakPassword(detail) => {
                Self::new(S::UNPROCESSABLE_ENTITY, "weak_password", detail.message.clone()).with_details(vec![detail])
            }
            Error::TooManyRequests { code, retry_after } => {
                let mut e = Self::new(S::TOO_MANY_REQUESTS, code, "Too many attempts. Try again later.");
                e.retry_after = Some(retry_after.as_secs().max(1));
                e
            }
            Error::Unavailable => {
                let mut e = Self::new(
                    S::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "The service is temporarily unavailable. Try again shortly.",
                );
                e.retry_after = Some(1);
                e
            }
            Error::Internal(err) => {
                // The cause goes to the log (inside the request's span, with its id), never to the client.
                tracing::error!(error = format!("{err:#}"), "internal error");
                Self::for_status(S::INTERNAL_SERVER_ERROR)
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        let headers = response.headers_mut();
        if let Some(value) = self.www_authenticate {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(value));
        }
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response.extensions_mut().insert(Normalized);
        response
    }
}

/// For a face with an error shape of its own (OAuth's RFC 6749 JSON): `normalize` leaves the response alone.
pub fn keep_as_is(response: &mut Response) {
    response.extensions_mut().insert(Normalized);
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        ApiError::from(self).into_response()
    }
}

/// Gives every error response produced outside a handler (404 fallback, 405, 413 from the body limit,
/// rejections) the JSON shape of API.md, keeping its status and headers such as `Allow`. Pages' own error
/// pages (HTML) are left as they are.
pub async fn normalize(response: Response) -> Response {
    let status = response.status();
    let is_page = response.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    if !(status.is_client_error() || status.is_server_error())
        || is_page
        || response.extensions().get::<Normalized>().is_some()
    {
        return response;
    }
    let (mut parts, _) = response.into_parts();
    let fresh = ApiError::for_status(status).into_response();
    parts.headers.remove(header::CONTENT_LENGTH);
    let (fresh_parts, body) = fresh.into_parts();
    parts.headers.extend(fresh_parts.headers);
    parts.extensions.insert(Normalized);
    Response::from_parts(parts, body)
}
