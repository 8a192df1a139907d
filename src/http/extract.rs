//! Extractors of the JSON API: bodies that fail in the API's error shape, the bearer-authenticated caller,
//! and the login body (JSON or the OAuth2 password grant form).

use std::marker::PhantomData;

use axum::{
    extract::{FromRequest, FromRequestParts, Request, rejection::JsonRejection},
    http::{StatusCode, header, request::Parts},
};
use serde::{Deserialize, de::DeserializeOwned};
use utoipa::ToSchema;

use crate::{
    app::AppState,
    domain::{roles::Permission, tokens::AccessClaims},
    edge::{
        client::{ClientInfo, bearer_token},
        error::ApiError,
    },
    error::Error,
};

/// `axum::Json`, with its rejections turned into API errors. Every body the API takes is a JSON object (as
/// the OpenAPI document says): anything else is refused with 422, where serde would read a struct from an
/// array of its fields in order (`[null, null]` as `{"role": null, "is_active": null}`).
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !json_content_type(req.headers()) {
            return Err(ApiError::for_status(StatusCode::UNSUPPORTED_MEDIA_TYPE));
        }
        let bytes = axum::body::Bytes::from_request(req, state).await.map_err(|r| ApiError::for_status(r.status()))?;
        let object = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
        match axum::Json::<T>::from_bytes(&bytes) {
            Ok(_) if !object => Err(ApiError::validation("body", "The body must be a JSON object.")),
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

/// `application/json` or any `application/*+json`, with or without parameters: what `axum::Json` accepts.
fn json_content_type(headers: &header::HeaderMap) -> bool {
    let mime = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()?.parse::<mime::Mime>().ok());
    mime.is_some_and(|m| {
        m.type_() == mime::APPLICATION && (m.subtype() == mime::JSON || m.suffix() == Some(mime::JSON))
    })
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::for_status(StatusCode::UNSUPPORTED_MEDIA_TYPE),
        JsonRejection::JsonSyntaxError(_) => {
            ApiError::new(StatusCode::BAD_REQUEST, "bad_request", "The body is not valid JSON.")
        }
        JsonRejection::JsonDataError(e) => data_error(&e.body_text()),
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::for_status(StatusCode::PAYLOAD_TOO_LARGE),
        _ => ApiError::new(StatusCode::BAD_REQUEST, "bad_request", "The request body could not be read."),
    }
}

/// serde says "missing field `email`" or "invalid type: integer `5`, expected a string"; name the field
/// where serde does, without echoing the client's values back.
fn data_error(text: &str) -> ApiError {
    let quoted =
        |marker: &str| text.split_once(marker).and_then(|(_, rest)| rest.split('`').next()).map(str::to_string);
    if let Some(field) = quoted("missing field `") {
        return ApiError::validation(&field, format!("The field {field} is required."));
    }
    if let Some(field) = quoted("unknown field `") {
        return ApiError::validation(&field, format!("The field {field} is not accepted here."));
    }
    ApiError::validation("body", "A field has the wrong type or format.")
}

/// A caller with a valid, unrevoked bearer access token.
pub struct CurrentUser(pub AccessClaims);

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if !parts.headers.contains_key(header::AUTHORIZATION) {
            return Err(Error::MissingToken.into());
        }
        let token = bearer_token(&parts.headers).ok_or(Error::InvalidToken)?;
        Ok(Self(state.authenticate(token)?))
    }
}

/// A permission a handler requires, named as a type so that the requirement is in the handler's signature.
pub trait Needs {
    const PERMISSION: Permission;
}

macro_rules! permission_markers {
    ($($name:ident => $permission:ident),* $(,)?) => {
        $(
            pub struct $name;
            impl Needs for $name {
                const PERMISSION: Permission = Permission::$permission;
            }
        )*
    };
}

permission_markers!(UsersRead => UsersRead, UsersWrite => UsersWrite, AuditRead => AuditRead, OrgsManage => OrgsManage);

/// A caller whose role has permission `P` (else 403 `forbidden`, audited as `access_denied`). For
/// administrative permissions the session must also have passed MFA while `LATCHKEY_ADMIN_REQUIRE_MFA` is
/// on (else 403 `mfa_required`).
pub struct RequirePermission<P>(pub AccessClaims, pub PhantomData<P>);

impl<P: Needs> FromRequestParts<AppState> for RequirePermission<P> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let CurrentUser(auth) = CurrentUser::from_request_parts(parts, state).await?;
        let ClientInfo(client) =
            ClientInfo::from_request_parts(parts, state).await.unwrap_or_else(|never| match never {});
        state.authorize(&auth, P::PERMISSION, parts.uri.path(), &client).await?;
        Ok(Self(auth, PhantomData))
    }
}

/// `POST /auth/login` as JSON: `username` is an email or a username.
#[derive(Deserialize, ToSchema)]
pub struct LoginRequest {
    #[schema(example = "ana@example.com")]
    pub username: String,
    pub password: String,
    /// The `device_token` of an earlier login from this client: exempts it from the lockout of its identifier.
    pub device_token: Option<String>,
}

/// The OAuth2 password grant (RFC 6749 §4.3), as Swagger UI's Authorize button sends it.
#[derive(Deserialize, ToSchema)]
pub struct PasswordGrant {
    /// Must be `password`.
    #[schema(pattern = "^password$")]
    pub grant_type: String,
    pub username: String,
    pub password: String,
    /// Accepted and ignored: the password grant is a first-party login only.
    pub scope: Option<String>,
    pub client_id: Option<String>,
    /// As in the JSON login: exempts a known device from the lockout of its identifier.
    pub device_token: Option<String>,
}

/// A login body in either of its two accepted encodings.
pub struct LoginBody(pub LoginRequest);

impl<S: Send + Sync> FromRequest<S> for LoginBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
        if content_type.starts_with("application/x-www-form-urlencoded") {
            let bytes =
                axum::body::Bytes::from_request(req, state).await.map_err(|r| ApiError::for_status(r.status()))?;
            let grant: PasswordGrant = serde_urlencoded::from_bytes(&bytes).map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    "The form needs grant_type, username and password.",
                )
            })?;
            if grant.grant_type != "password" {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    "Only grant_type=password is supported here.",
                ));
            }
            return Ok(Self(LoginRequest {
                username: grant.username,
                password: grant.password,
                device_token: grant.device_token,
            }));
        }
        let Json(body) = Json::<LoginRequest>::from_request(req, state).await?;
        Ok(Self(body))
    }
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue, header};

    #[test]
    fn json_content_types_are_the_ones_axum_accepts() {
        let with = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(value));
            super::json_content_type(&headers)
        };
        for accepted in
            ["application/json", "application/json; charset=utf-8", "Application/JSON", "application/merge-patch+json"]
        {
            assert!(with(accepted), "{accepted}");
        }
        for refused in ["text/json", "application/jsonl", "application/x-www-form-urlencoded", "json", ""] {
            assert!(!with(refused), "{refused}");
        }
        assert!(!super::json_content_type(&HeaderMap::new()));
    }
}
