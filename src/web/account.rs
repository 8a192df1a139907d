//! `/account`: profile, password, two-factor enrollment and backup codes, sessions, connected apps, the
//! security log.

use askama::Template;
use axum::{
    Router,
    extract::{Query, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use serde::Deserialize;
use uuid::Uuid;

use super::{
    pages::render,
    readable::{EventRow, SessionRow, When, when},
    session::{NoFields, PageError, SignedIn, SignedInForm},
    sign_in::SecondFactorForm,
};
use crate::{
    app::AppState,
    clock,
    domain::{oauth::scope_in_words, roles::Permission, tokens::AccessClaims},
    edge::{client::ClientInfo, error::ApiError},
    service::web::{BrowserSession, BrowserState},
    store::{audit::AuditQuery, users::UserRecord},
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/account", get(account))
        .route("/account/password", post(change_password))
        .route("/account/mfa/setup", post(mfa_setup))
        .route("/account/mfa/enable", post(mfa_enable))
        .route("/account/mfa/regenerate", post(regenerate))
        .route("/account/mfa/regenerate/options", post(regenerate_options))
        .route("/account/mfa/disable", post(mfa_disable))
        .route("/account/sessions/revoke", post(revoke))
        .route("/account/sessions/revoke-all", post(revoke_all))
        .route("/account/apps/disconnect", post(disconnect_app))
}

/// The signed-in user and the claims the services expect.
pub fn parts(session: &BrowserSession) -> Result<(&UserRecord, &AccessClaims), PageError> {
    match &session.state {
        BrowserState::SignedIn { user, claims, .. } => Ok((user, claims)),
        _ => Err(PageError::SignIn),
    }
}

pub struct PasskeyRow {
    id: String,
    name: String,
    created: When,
    last_used: Option<When>,
}

pub struct AppRow {
    client_id: String,
    name: String,
    scopes: Vec<&'static str>,
    granted: When,
    last_used: Option<When>,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    csrf: String,
    is_admin: bool,
    email: String,
    username: String,
    role: &'static str,
    mfa_enabled: bool,
    totp_enabled: bool,
    backup_codes_remaining: i64,
    passkeys: Vec<PasskeyRow>,
    /// Removing a passkey asks for the password: it is the account's last second factor.
    last_factor_is_passkey: bool,
    sessions: Vec<SessionRow>,
    revoke_action: String,
    revoke_fields: Vec<(&'static str, &'static str)>,
    apps: Vec<AppRow>,
    events: Vec<EventRow>,
    notice: Option<&'static str>,
    error: Option<String>,
}

async fn account_page(
    app: &AppState,
    session: &BrowserSession,
    notice: Option<&'static str>,
    error: Option<String>,
) -> Result<AccountPage, PageError> {
    let (user, claims) = parts(session)?;
    let sessions = app.list_sessions(claims).await?;
    let apps = app.connected_apps(claims).await?;
    let query = AuditQuery::latest(Some(user.profile.id), None, 20);
    let events = app.audit_events(&query).await?;
    let now = clock::now_ms();
    let passkeys = app.passkeys(claims).await?;
    let totp_enabled = app.second_factor_methods_of(user.profile.id).await?.contains(&"totp");
    Ok(AccountPage {
        last_factor_is_passkey: passkeys.len() == 1 && !totp_enabled,
        totp_enabled,
        passkeys: passkeys
            .into_iter()
            .map(|p| PasskeyRow {
                id: p.id.to_string(),
                name: p.name,
                created: when(p.created_at, now),
                last_used: p.last_used_at.map(|at| when(at, now)),
            })
            .collect(),
        csrf: session.csrf.clone(),
        is_admin: user.profile.role.allows(Permission::UsersRead),
        email: user.profile.email.clone(),
        username: user.profile.username.clone().unwrap_or_else(|| "—".into()),
        role: user.profile.role.as_str(),
        mfa_enabled: user.profile.mfa_enabled,
        backup_codes_remaining: app.backup_codes_remaining(claims).await?,
        sessions: sessions.into_iter().map(|s| SessionRow::of(s, Some(claims.sid), now)).collect(),
        revoke_action: "/account/sessions/revoke".into(),
        revoke_fields: Vec::new(),
        apps: apps
            .into_iter()
            .map(|a| AppRow {
                scopes: a.scope.split(' ').filter(|s| !s.is_empty()).map(scope_in_words).collect(),
                client_id: a.client_id,
                name: a.name,
                granted: when(a.granted_at, now),
                last_used: a.last_used_at.map(|at| when(at, now)),
            })
            .collect(),
        events: events.into_iter().map(|e| EventRow::of(e, now)).collect(),
        notice,
        error,
    })
}

#[derive(Deserialize)]
struct Notice {
    done: Option<String>,
}

/// Notices are fixed texts chosen by a code, so nothing from the URL is echoed into the page.
fn notice_text(code: Option<&str>) -> Option<&'static str> {
    match code? {
        "password" => Some("Your password was changed. Your other sessions were signed out."),
        "mfa_off" => Some("Two-factor authentication is off."),
        "revoked" => Some("The session was signed out."),
        "passkey_added" => Some("The passkey was added. You can sign in with it."),
        "passkey_renamed" => Some("The passkey was renamed."),
        "passkey_removed" => Some("The passkey was removed."),
        "disconnected" => Some("The application was disconnected: it must ask you again to sign you in."),
        _ => None,
    }
}

async fn account(
    State(app): State<AppState>,
    SignedIn(session): SignedIn,
    Query(q): Query<Notice>,
) -> Result<Response, PageError> {
    let page = account_page(&app, &session, notice_text(q.done.as_deref()), None).await?;
    Ok(render(StatusCode::OK, &page))
}

/// A failed action re-renders the account page with the reason and the status the API would give.
async fn failed(app: &AppState, session: &BrowserSession, error: crate::error::Error) -> Result<Response, PageError> {
    let api = ApiError::from(error);
    let page = account_page(app, session, None, Some(api.body.message)).await?;
    Ok(render(api.status, &page))
}

/// On to `to` after a change, or back to the account page with the reason.
pub(super) async fn done(
    app: &AppState,
    session: &BrowserSession,
    result: crate::error::Result<()>,
    to: &str,
) -> Result<Response, PageError> {
    match result {
        Ok(()) => Ok(Redirect::to(to).into_response()),
        Err(e) => failed(app, session, e).await,
    }
}

#[derive(Deserialize)]
struct PasswordForm {
    current_password: String,
    new_password: String,
}

async fn change_password(
    State(app): State<AppState>,
    ClientInfo(client): ClientInfo,
    SignedInForm(session, form): SignedInForm<PasswordForm>,
) -> Result<Response, PageError> {
    let (_, claims) = parts(&session)?;
    let result = app.change_password(claims, &form.current_password, &form.new_password, &client).await;
    done(&app, &session, result, "/account?done=password").await
}

#[derive(Template)]
#[template(path = "mfa_setup.html")]
struct MfaSetupPage {
    csrf: String,
    is_admin: bool,
    qr_data_uri: String,
    secret_grouped: String,
}

async fn mfa_setup(
    State(app): State<AppState>,
    SignedInForm(session, NoFields {}): SignedInForm<NoFields>,
) -> Result<Response, PageError> {
    let (user, claims) = parts(&session)?;
    let enrollment = app.mfa_setup(claims).await?;
    let secret_grouped =
        enrollment.secret.as_bytes().chunks(4).map(|c| String::from_utf8_lossy(c)).collect::<Vec<_>>().join(" ");
    let page = MfaSetupPage {
        csrf: session.csrf.clone(),
        is_admin: user.profile.role.allows(Permission::UsersRead),
        qr_data_uri: format!("data:image/png;base64,{}", STANDARD.encode(&enrollment.qr_png)),
        secret_grouped,
    };
    Ok(render(StatusCode::OK, &page))
}

#[derive(Template)]
#[template(path = "backup_codes.html")]
struct BackupCodesPage {
    csrf: String,
    is_admin: bool,
    codes: Vec<String>,
}

#[derive(Deserialize)]
struct CodeForm {
    code: String,
}

/// New backup codes, shown this once; or the account page with the reason they were not made.
pub(super) async fn show_codes(
    app: &AppState,
    session: &BrowserSession,
    result: crate::error::Result<Vec<String>>,
) -> Result<Response, PageError> {
    let (user, _) = parts(session)?;
    match result {
        Ok(codes) => {
            let is_admin = user.profile.role.allows(Permission::UsersRead);
            Ok(render(StatusCode::OK, &BackupCodesPage { csrf: session.csrf.clone(), is_admin, codes }))
        }
        Err(e) => failed(app, session, e).await,
    }
}

async fn mfa_enable(
    State(app): State<AppState>,
    ClientInfo(client): ClientInfo,
    SignedInForm(session, form): SignedInForm<CodeForm>,
) -> Result<Response, PageError> {
    let (_, claims) = parts(&session)?;
    let result = app.mfa_enable(claims, &form.code, &client).await;
    show_codes(&app, &session, result).await
}

/// New backup codes, confirmed with a TOTP code or (an account without TOTP) a passkey.
async fn regenerate(
    State(app): State<AppState>,
    ClientInfo(client): ClientInfo,
    SignedInForm(session, form): SignedInForm<SecondFactorForm>,
) -> Result<Response, PageError> {
    let (_, claims) = parts(&session)?;
    let result = match form.given() {
        Ok(given) => app.regenerate_backup_codes(claims, given.as_proof(), &client).await,
        Err(e) => Err(e),
    };
    show_codes(&app, &session, result).await
}

/// The passkey ceremony for new backup codes (the page's script asks for it; JSON).
async fn regenerate_options(
    State(app): State<AppState>,
    SignedInForm(session, NoFields {}): SignedInForm<NoFields>,
) -> Result<Response, ApiError> {
    let (_, claims) = parts(&session).map_err(|_| crate::error::Error::InvalidToken)?;
    Ok(axum::Json(app.passkey_backup_codes_start(claims).await?).into_response())
}

#[derive(Deserialize)]
struct DisableForm {
    password: String,
    code: String,
}

async fn mfa_disable(
    State(app): State<AppState>,
    ClientInfo(client): ClientInfo,
    SignedInForm(session, form): SignedInForm<DisableForm>,
) -> Result<Response, PageError> {
    let (_, claims) = parts(&session)?;
    let result = app.mfa_disable(claims, &form.password, &form.code, &client).await;
    done(&app, &session, result, "/account?done=mfa_off").await
}

#[derive(Deserialize)]
struct RevokeForm {
    id: Uuid,
}

async fn revoke(
    State(app): State<AppState>,
    ClientInfo(client): ClientInfo,
    SignedInForm(session, form): SignedInForm<RevokeForm>,
) -> Result<Response, PageError> {
    let (_, claims) = parts(&session)?;
    app.revoke_session(claims, form.id, &client).await?;
    let to = if form.id == claims.sid { "/login" } else { "/account?done=revoked" };
    Ok(Redirect::to(to).into_response())
}

async fn revoke_all(
    State(app): State<AppState>,
    ClientInfo(client): ClientInfo,
    SignedInForm(session, NoFields {}): SignedInForm<NoFields>,
) -> Result<Response, PageError> {
    let (_, claims) = parts(&session)?;
    app.logout_all(claims, &client).await?;
    Ok(Redirect::to("/login").into_response())
}

#[derive(Deserialize)]
struct DisconnectForm {
    client_id: String,
}

async fn disconnect_app(
    State(app): State<AppState>,
    ClientInfo(client): ClientInfo,
    SignedInForm(session, form): SignedInForm<DisconnectForm>,
) -> Result<Response, PageError> {
    let (_, claims) = parts(&session)?;
    let result = app.disconnect_app(claims, &form.client_id, &client).await;
    done(&app, &session, result, "/account?done=disconnected").await
}
