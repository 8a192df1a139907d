//! `/admin`: users with search and paging, role and state changes, unlock, MFA reset; the audit log.

use askama::Template;
use axum::{
    Router,
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use serde::Deserialize;
use uuid::Uuid;

use super::{
    account::parts,
    pages::render,
    session::{PageError, SignedIn, SignedInForm},
};
use crate::{
    app::AppState,
    clock,
    domain::roles::{Permission, Role},
    edge::client::ClientInfo,
    service::admin::{Actor, UserChanges},
    store::audit::AuditQuery,
};

const PAGE: i64 = 25;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin", get(page))
        .route("/admin/users/{id}", post(act))
        .route("/admin/mail/test", post(test_mail))
}

struct UserRow {
    id: Uuid,
    email: String,
    /// Every role, with ` selected` on the user's own.
    role_options: Vec<(&'static str, &'static str)>,
    is_active: bool,
    mfa_enabled: bool,
    /// (action, button label) for the forms this user's row offers.
    actions: Vec<(&'static str, &'static str)>,
}

struct EventRow {
    at: String,
    user: String,
    action: String,
    outcome: String,
    ip: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "admin.html")]
struct AdminPage {
    csrf: String,
    is_admin: bool,
    q: String,
    audit_action: String,
    total: i64,
    users: Vec<UserRow>,
    prev_offset: Option<i64>,
    next_offset: Option<i64>,
    events: Vec<EventRow>,
    notice: Option<&'static str>,
    mail_enabled: bool,
}

/// The answer to an action whose result is read once: a reset link to hand over, a test mail's fate.
#[derive(Template)]
#[template(path = "admin_handover.html")]
struct HandoverPage {
    csrf: String,
    is_admin: bool,
    heading: &'static str,
    message: String,
    link: Option<String>,
}

#[derive(Deserialize)]
struct AdminQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    offset: i64,
    #[serde(default)]
    audit_action: String,
    done: Option<String>,
}

async fn page(
    State(app): State<AppState>,
    SignedIn(session): SignedIn,
    ClientInfo(client): ClientInfo,
    Query(query): Query<AdminQuery>,
) -> Result<Response, PageError> {
    let (_, claims) = parts(&session)?;
    app.authorize(claims, Permission::UsersRead, "/admin", &client).await?;
    let offset = query.offset.max(0);
    let (users, total) = app.admin_list_users(&query.q, PAGE, offset).await?;
    let action = Some(query.audit_action.trim()).filter(|a| !a.is_empty());
    let events = app.audit_events(&AuditQuery { user_id: None, action, before: i64::MAX, limit: 50 }).await?;
    let page = AdminPage {
        csrf: session.csrf.clone(),
        is_admin: true,
        q: query.q.clone(),
        audit_action: query.audit_action.clone(),
        total,
        prev_offset: (offset > 0).then(|| (offset - PAGE).max(0)),
        next_offset: (offset + PAGE < total).then_some(offset + PAGE),
        users: users
            .into_iter()
            .map(|u| UserRow {
                actions: [
                    Some(if u.is_active { ("deactivate", "Deactivate") } else { ("reactivate", "Reactivate") }),
                    Some(("unlock", "Unlock")),
                    u.mfa_enabled.then_some(("reset_mfa", "Reset 2FA")),
                    Some(("reset_link", "Reset link")),
                ]
                .into_iter()
                .flatten()
                .collect(),
                id: u.id,
                email: u.email,
                role_options: Role::ALL
                    .iter()
                    .map(|r| (r.as_str(), if *r == u.role { " selected" } else { "" }))
                    .collect(),
                is_active: u.is_active,
                mfa_enabled: u.mfa_enabled,
            })
            .collect(),
        events: events
            .into_iter()
            .map(|e| EventRow {
                at: clock::rfc3339(e.at),
                user: e.user_id.map(|u| u.to_string()).unwrap_or_default(),
                action: e.action,
                outcome: e.outcome,
                ip: e.ip.unwrap_or_default(),
                detail: e.detail.to_string(),
            })
            .collect(),
        notice: match query.done.as_deref() {
            Some("ok") => Some("Done."),
            _ => None,
        },
        mail_enabled: app.mail_enabled(),
    };
    Ok(render(StatusCode::OK, &page))
}

#[derive(Deserialize)]
struct ActForm {
    action: String,
    role: Option<Role>,
}

async fn act(
    State(app): State<AppState>,
    ClientInfo(client): ClientInfo,
    Path(id): Path<Uuid>,
    SignedInForm(session, form): SignedInForm<ActForm>,
) -> Result<Response, PageError> {
    let (_, claims) = parts(&session)?;
    app.authorize(claims, Permission::UsersWrite, "/admin/users", &client).await?;
    let actor = Actor::Admin(claims.sub);
    let change = |role, is_active| UserChanges { role, is_active };
    match (form.action.as_str(), form.role) {
        ("role", Some(role)) => app.admin_update_user(actor, id, change(Some(role), None), &client).await.map(|_| ()),
        ("deactivate", _) => app.admin_update_user(actor, id, change(None, Some(false)), &client).await.map(|_| ()),
        ("reactivate", _) => app.admin_update_user(actor, id, change(None, Some(true)), &client).await.map(|_| ()),
        ("unlock", _) => app.admin_unlock(actor, id, &client).await,
        ("reset_mfa", _) => app.admin_reset_mfa(actor, id, &client).await,
        ("reset_link", _) => {
            let link = app.admin_reset_link(actor, id, &client).await?;
            let minutes = app.config.reset_ttl.as_secs() / 60;
            let message = format!(
                "Give this link to the person, by a way you trust: it sets a new password once, within {minutes} \
                 minutes, and ends their sessions. It is shown only here."
            );
            let page = HandoverPage { heading: "Reset link", message, link: Some(link), ..handover(&session) };
            return Ok(render(StatusCode::OK, &page));
        }
        _ => Err(crate::error::Error::BadRequest("Unknown action.".into())),
    }?;
    Ok(Redirect::to("/admin?done=ok").into_response())
}

fn handover(session: &crate::service::web::BrowserSession) -> HandoverPage {
    HandoverPage { csrf: session.csrf.clone(), is_admin: true, heading: "", message: String::new(), link: None }
}

#[derive(Deserialize)]
struct TestMailForm {
    to: String,
}

/// "Send a test email": sent at once, and the page says what the SMTP server answered.
async fn test_mail(
    State(app): State<AppState>,
    ClientInfo(client): ClientInfo,
    SignedInForm(session, form): SignedInForm<TestMailForm>,
) -> Result<Response, PageError> {
    let (_, claims) = parts(&session)?;
    app.authorize(claims, Permission::UsersWrite, "/admin/mail/test", &client).await?;
    let (heading, message) = match app.send_test_mail(Actor::Admin(claims.sub), &form.to, &client).await? {
        Ok(answer) => ("Test mail sent", format!("The SMTP server took the mail for {}: {answer}", form.to.trim())),
        Err(why) => ("Test mail not sent", format!("The SMTP server did not take the mail: {why}")),
    };
    Ok(render(StatusCode::OK, &HandoverPage { heading, message, ..handover(&session) }))
}
