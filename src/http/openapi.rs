//! The OpenAPI document and Swagger UI (vendored into the binary, nothing fetched at run time).

use utoipa::{
    Modify, OpenApi,
    openapi::{
        Content, Ref, RefOr, ResponseBuilder,
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
/// `components.responses`: a JSON body's 400/413/415/422, a bearer's 401, the database's 503.
struct SharedResponses;

const SHARED: [(&str, &str, &str); 6] = [
    ("400", "BadRequest", "`bad_request`: the body is not valid JSON, or a parameter is malformed"),
    (
        "401",
        "Unauthenticated",
        "`missing_token` or `invalid_token`: no bearer token, or one that is invalid, expired or revoked",
    ),
    ("413", "PayloadTooLarge", "`payload_too_large`: the body is larger than 64 KiB"),
    ("415", "UnsupportedMediaType", "`unsupported_media_type`: the body is not sent as `application/json`"),
    ("422", "ValidationFailed", "`validation_failed`: a field is missing or has the wrong type, with details"),
    ("503", "Unavailable", "`unavailable`: the database cannot be reached, or too much is waiting (`Retry-After`)"),
];

impl Modify for SharedResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (_, name, description) in SHARED {
            let response = ResponseBuilder::new()
                .description(description)
                .content("application/json", Content::new(Some(Ref::from_schema_name("ErrorBody"))))
                .build();
            components.responses.insert(name.to_string(), RefOr::T(response));
        }
        for (path, item) in openapi.paths.paths.iter_mut() {
            let operations = [&mut item.get, &mut item.post, &mut item.put, &mut item.patch, &mut item.delete];
            for operation in operations.into_iter().flatten() {
                let json_body =
                    operation.request_body.as_ref().is_some_and(|b| b.content.contains_key("application/json"));
                let bearer = operation.security.as_ref().is_some_and(|s| !s.is_empty());
                let database = path != "/healthz";
                for (status, name, _) in SHARED {
                    let applies = match status {
                        "400" | "413" | "415" | "422" => json_body,
                        "401" => bearer,
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
