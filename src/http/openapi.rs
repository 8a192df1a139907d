//! The OpenAPI document and Swagger UI (vendored into the binary, nothing fetched at run time).

use utoipa::{
    Modify, OpenApi,
    openapi::security::{Flow, HttpAuthScheme, HttpBuilder, OAuth2, Password, Scopes, SecurityScheme},
};
use utoipa_swagger_ui::SwaggerUi;

use super::{admin, audit, auth, authz, clients, extract, grants, mail_links, mfa, ops, orgs, sessions};
use crate::edge::error;

#[derive(OpenApi)]
#[openapi(
    info(title = "Latchkey", description = "Self-hosted authentication: accounts, sessions, JWT access tokens."),
    paths(
        auth::register, auth::login, auth::refresh, auth::logout, auth::logout_all, auth::me, auth::change_password,
        mail_links::forgot, mail_links::reset, mail_links::verify,
        mail_links::resend_verification, mail_links::change, mail_links::confirm,
        mfa::setup, mfa::qr_png, mfa::enable, mfa::disable, mfa::backup_codes_remaining, mfa::regenerate,
        mfa::challenge,
        sessions::list, sessions::revoke, grants::list, grants::disconnect, audit::own, audit::all,
        admin::list, admin::show, admin::update, admin::unlock, admin::reset_mfa, admin::end_sessions, admin::reset_link, admin::mail_test,
        clients::create, clients::list, clients::show, clients::update, clients::remove, clients::rotate_secret,
        orgs::create, orgs::list, orgs::show, orgs::members, orgs::set_member, orgs::remove_member,
        orgs::invitations, orgs::accept_invitation, orgs::remove_invitation,
        authz::forward_auth, authz::auth_request,
        ops::healthz, ops::readyz, ops::jwks,
    ),
    components(schemas(error::ErrorBody, error::FieldDetail, extract::LoginRequest, extract::PasswordGrant)),
    modifiers(&Security),
    tags(
        (name = "auth", description = "Accounts, login and tokens"),
        (name = "mfa", description = "Two-factor authentication: TOTP and backup codes"),
        (name = "sessions", description = "The caller's sessions and security log"),
        (name = "admin", description = "Administration: accounts and the audit log (role admin)"),
        (name = "orgs", description = "Organisations and their members"),
        (name = "authz", description = "Forward authentication for reverse proxies"),
        (name = "operations", description = "Health, readiness, keys"),
    )
)]
pub struct ApiDoc;

/// Bearer tokens, and the password grant so that Swagger UI's Authorize button can sign in.
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
        components.add_security_scheme(
            "password",
            SecurityScheme::OAuth2(OAuth2::new([Flow::Password(Password::new("/api/v1/auth/login", Scopes::new()))])),
        );
    }
}

pub fn swagger_ui() -> SwaggerUi {
    SwaggerUi::new("/docs").url("/openapi.json", ApiDoc::openapi())
}
