//! The OpenAPI document and Swagger UI (vendored into the binary, nothing fetched at run time).

use utoipa::{
    Modify, OpenApi,
    openapi::{
        Content, Header, Object, Ref, RefOr, ResponseBuilder, Type,
        path::{Parameter, ParameterIn},
        security::{Flow, HttpAuthScheme, HttpBuilder, OAuth2, Password, Scopes, SecurityScheme},
    },
};
use utoipa_swagger_ui::SwaggerUi;

use super::{admin, audit, auth, authz, clients, extract, grants, mail_links, mfa, ops, orgs, passkeys, sessions};
use crate::edge::{error, metrics};

#[derive(OpenApi)]
#[openapi(
    info(title = "Latchkey", description = "Self-hosted authentication: accounts, sessions, JWT access tokens."),
    paths(
        auth::register, auth::login, auth::refresh, auth::logout, auth::logout_all, auth::me, auth::change_password,
        mail_links::forgot, mail_links::reset, mail_links::verify,
        mail_links::resend_verification, mail_links::change, mail_links::confirm,
        mfa::setup, mfa::qr_png, mfa::enable, mfa::disable, mfa::backup_codes_remaining, mfa::regenerate,
        mfa::challenge,
        passkeys::list, passkeys::register_start, passkeys::register_finish, passkeys::rename, passkeys::remove,
        passkeys::login_start, passkeys::login_finish, passkeys::mfa_start,
        sessions::list, sessions::revoke, grants::list, grants::disconnect, audit::own, audit::all,
        admin::list, admin::show, admin::update, admin::unlock, admin::reset_mfa, admin::end_sessions, admin::reset_link, admin::mail_test,
        clients::create, clients::list, clients::show, clients::update, clients::remove, clients::rotate_secret,
        orgs::create, orgs::list, orgs::show, orgs::members, orgs::set_member, orgs::remove_member,
        orgs::invitations, orgs::accept_invitation, orgs::remove_invitation,
        authz::forward_auth, authz::auth_request,
        ops::healthz, ops::readyz, ops::jwks, metrics::scrape,
    ),
    components(schemas(error::ErrorBody, error::FieldDetail, extract::LoginRequest, extract::PasswordGrant)),
    modifiers(&Security, &SharedResponses),
    tags(
        (name = "auth", description = "Accounts, login and tokens"),
        (name = "mfa", description = "Two-factor authentication: TOTP and backup codes"),
        (name = "passkeys", description = "Passkeys (WebAuthn): registering, signing in, managing"),
        (name = "sessions", description = "The caller's sessions and security log"),
        (name = "admin", description = "Administration: accounts and the audit log (role admin)"),
        (name = "orgs", description = "Organisations and their members"),
        (name = "authz", description = "Forward authentication for reverse proxies"),
        (name = "operations", description = "Health, readiness, keys"),
    )
)]
pub struct ApiDoc;

/// Bearer tokens; the password grant (so that Swagger UI's Authorize button can sign in) is added in
/// `swagger_ui`, which knows the issuer.
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
        components.add_security_scheme(
            "metrics",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("`LATCHKEY_METRICS_TOKEN`, when it is set"))
                    .build(),
            ),
        );
    }
}

/// Answers that the extractors and layers give on any operation, listed on each operation they can reach
/// (so that a client, or a fuzzer, finds every status documented) and written once, under
/// `components.responses`: a JSON body's 400/413/415/422, a parameter's 400, a bearer's 401, the per-IP
/// rate limit's 429, the database's 503.
struct SharedResponses;

const SHARED: [(&str, &str, &str); 7] = [
    ("400", "BadRequest", "`bad_request`: the body is not valid JSON, or a parameter is malformed"),
    (
        "401",
        "Unauthenticated",
        "`missing_token` or `invalid_token`: no bearer token, or one that is invalid, expired or revoked",
    ),
    ("413", "PayloadTooLarge", "`payload_too_large`: the body is larger than 64 KiB"),
    ("415", "UnsupportedMediaType", "`unsupported_media_type`: the body is not sent as `application/json`"),
    ("422", "ValidationFailed", "`validation_failed`: a field is missing or has the wrong type, with details"),
    ("429", "RateLimited", "`rate_limited`: too many requests from this address in the last minute (`Retry-After`)"),
    ("503", "Unavailable", "`unavailable`: the database cannot be reached, or too much is waiting (`Retry-After`)"),
];

/// The operations behind the per-IP rate limit (`LATCHKEY_RATE_LIMIT_PER_MINUTE`): the routers that
/// `edge::rate_limit::limited` wraps in `auth.rs`, `mail_links.rs`, `mfa.rs` and `passkeys.rs`.
pub const RATE_LIMITED: [&str; 11] = [
    "/api/v1/auth/register",
    "/api/v1/auth/login",
    "/api/v1/auth/refresh",
    "/api/v1/auth/password/forgot",
    "/api/v1/auth/password/reset",
    "/api/v1/auth/email/verify",
    "/api/v1/auth/email/confirm",
    "/api/v1/auth/mfa/challenge",
    "/api/v1/auth/mfa/passkey/start",
    "/api/v1/auth/passkeys/login/start",
    "/api/v1/auth/passkeys/login/finish",
];

/// Whether a path or query parameter can fail to parse (a UUID, a number, a time): axum's extractors then
/// answer 400 before the handler runs. A plain string parameter always parses.
fn can_be_malformed(parameter: &Parameter) -> bool {
    if !matches!(parameter.parameter_in, ParameterIn::Path | ParameterIn::Query) {
        return false;
    }
    let schema = serde_json::to_value(&parameter.schema).unwrap_or_default();
    let plain_string = match &schema["type"] {
        serde_json::Value::String(t) => t == "string",
        serde_json::Value::Array(types) => types.iter().all(|t| t == "string" || t == "null"),
        _ => false,
    };
    !plain_string || schema.get("format").is_some()
}

impl Modify for SharedResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (status, name, description) in SHARED {
            let mut response = ResponseBuilder::new()
                .description(description)
                .content("application/json", Content::new(Some(Ref::from_schema_name("ErrorBody"))));
            if matches!(status, "429" | "503") {
                let seconds = Header::new(Object::with_type(Type::Integer));
                response = response.header("Retry-After", seconds);
            }
            components.responses.insert(name.to_string(), RefOr::T(response.build()));
        }
        for (path, item) in openapi.paths.paths.iter_mut() {
            let operations = [&mut item.get, &mut item.post, &mut item.put, &mut item.patch, &mut item.delete];
            for operation in operations.into_iter().flatten() {
                let json_body =
                    operation.request_body.as_ref().is_some_and(|b| b.content.contains_key("application/json"));
                let parameters = operation.parameters.iter().flatten().any(can_be_malformed);
                let bearer = operation.security.as_ref().is_some_and(|s| !s.is_empty());
                let limited = RATE_LIMITED.contains(&path.as_str());
                let database = path != "/healthz";
                for (status, name, _) in SHARED {
                    let applies = match status {
                        "400" => json_body || parameters,
                        "413" | "415" | "422" => json_body,
                        "401" => bearer,
                        "429" => limited,
                        _ => database,
                    };
                    if applies {
                        let reference = RefOr::Ref(Ref::new(format!("#/components/responses/{name}")));
                        operation.responses.responses.entry(status.to_string()).or_insert(reference);
                    }
                }
            }
        }
    }
}

/// The document and Swagger UI. OpenAPI 3.1 wants the password flow's `tokenUrl` absolute: it is built from
/// the issuer, as every other address Latchkey hands out.
pub fn swagger_ui(issuer: &str) -> SwaggerUi {
    let mut doc = ApiDoc::openapi();
    let token_url = format!("{issuer}/api/v1/auth/login");
    doc.components.get_or_insert_with(Default::default).add_security_scheme(
        "password",
        SecurityScheme::OAuth2(OAuth2::new([Flow::Password(Password::new(token_url, Scopes::new()))])),
    );
    SwaggerUi::new("/docs").url("/openapi.json", doc)
}
