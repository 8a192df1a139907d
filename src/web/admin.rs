//! `/admin`: the dashboard; `/admin/users` with search and paging, role and state changes, unlock, MFA
//! reset, reset links; `/admin/audit`; the test mail.

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
    chart,
    pages::render,
    readable::{EventRow, SessionRow, When, when},
    session::{PageError, SignedIn, SignedInForm},
};
use crate::{
    app::AppState,
    clock,
    domain::roles::{Permission, Role},
    edge::client::ClientInfo,
    service::{
        admin::{Actor, UserChanges},
        dashboard::{Dashboard, Day},
    },
    store::{audit::AuditQuery, orgs::OrgRecord, users::UserRecord},
};

const PAGE: i64 = 25;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin", get(dashboard))
        .route("/admin/users", get(users))
        .route("/admin/audit", get(audit))
        .route("/admin/users/{id}", get(user_page).post(act))
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

struct AuditRow {
    at: String,
    user: String,
    action: String,
    outcome: String,
    ip: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "admin_dashboard.html")]
struct DashboardPage {
    csrf: String,
    is_admin: bool,
    section: &'static str,
    d: Dashboard,
    chart: chart::Chart,
    width: i64,
    height: i64,
    /// (RFC 3339 date, "3 Dec", figures), newest first.
    rows: Vec<(String, String, Day)>,
    mail_enabled: bool,
}

#[derive(Template)]
#[template(path = "admin_users.html")]
struct UsersPage {
    csrf: String,
    is_admin: bool,
    section: &'static str,
    q: String,
    total: i64,
    users: Vec<UserRow>,
    prev_offset: Option<i64>,
    next_offset: Option<i64>,
    notice: Option<&'static str>,
}

#[derive(Template)]
#[template(path = "admin_audit.html")]
struct AuditPage {
    csrf: String,
    is_admin: bool,
    section: &'static str,
    action: String,
    events: Vec<AuditRow>,
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

async fn dashboard(
    State(app): State<AppState>,
    SignedIn(session): SignedIn,
    ClientInfo(client): ClientInfo,
) -> Result<Response, PageError> {
    let (_, claims) = parts(&session)?;
    app.authorize(claims, Permission::UsersRead, "/admin", &client).await?;
    let d = app.dashboard().await?;
    let rows = d
        .days
        .iter()
        .rev()
        .map(|day| (clock::rfc3339(day.start)[..10].to_string(), chart::day_label(day.start), day.clone()));
    let page = DashboardPage {
        csrf: session.csrf.clone(),
        is_admin: true,
        section: "dashboard",
        chart: chart::draw(&d.days),
        width: chart::WIDTH,
        height: chart::HEIGHT,
        rows: rows.collect(),
        d,
        mail_enabled: app.mail_enabled(),
    };
    Ok(render(StatusCode::OK, &page))
}

#[derive(Deserialize)]
struct UsersQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    offset: i64,
    done: Option<String>,
}

async fn users(
    State(app): State<AppState>,
    SignedIn(session): SignedIn,
    ClientInfo(client): ClientInfo,
    Query(query): Query<UsersQuery>,
) -> Result<Response, PageError> {
    let (_, claims) = parts(&session)?;
    app.authorize(claims, Permission::UsersRead, "/admin/users", &client).await?;
    let offset = query.offset.max(0);
    let (users, total) = app.admin_list_users(&query.q, PAGE, offset).await?;
    let page = UsersPage {
        csrf: session.csrf.clone(),
        is_admin: true,
        section: "users",
        q: query.q.clone(),
        total,
        prev_offset: (offset > 0).then(|| (offset - PAGE).max(0)),
        next_offset: (offset + PAGE < total).then_some(offset + PAGE),
        users: users.into_iter().map(row_of).collect(),
        notice: query.done.as_deref().filter(|d| *d == "ok").map(|_| "Done."),
    };
    Ok(render(StatusCode::OK, &page))
}

#[derive(Deserialize)]
struct AuditFilter {
    #[serde(default)]
    action: String,
}

async fn audit(
    State(app): State<AppState>,
    SignedIn(session): SignedIn,
    ClientInfo(client): ClientInfo,
    Query(query): Query<AuditFilter>,
) -> Result<Response, PageError> {
    let (_, claims) = parts(&session)?;
    app.authorize(claims, Permission::AuditRead, "/admin/audit", &client).await?;
    let action = Some(query.action.trim()).filter(|a| !a.is_empty());
    let events = app.audit_events(&AuditQuery { user_id: None, action, before: i64::MAX, limit: 50 }).await?;
    let page = AuditPage {
        csrf: session.csrf.clone(),
        is_admin: true,
        section: "audit",
        action: query.action.clone(),
        events: events
            .into_iter()
            .map(|e| AuditRow {
                at: clock::rfc3339(e.at),
                user: e.user_id.map(|u| u.to_string()).unwrap_or_default(),
                action: e.action,
                outcome: e.outcome,
                ip: e.ip.unwrap_or_default(),
                detail: e.detail.to_string(),
            })
            .collect(),
    };
    Ok(render(StatusCode::OK, &page))
}

#[derive(Template)]
#[template(path = "admin_user.html")]
struct UserPage {
    csrf: String,
    is_admin: bool,
    section: &'static str,
    row: UserRow,
    username: String,
    email_verified: bool,
    created: When,
    last_login: Option<When>,
    backup_codes_left: i64,
    orgs: Vec<(OrgRecord, &'static str)>,
    sessions: Vec<SessionRow>,
    revoke_action: String,
    revoke_fields: Vec<(&'static str, &'static str)>,
    events: Vec<EventRow>,
    notice: Option<&'static str>,
}

/// The forms a user offers an administrator: (action, button label).
fn actions_for(u: &UserRecord) -> Vec<(&'static str, &'static str)> {
    [
        Some(if u.is_active { ("deactivate", "Deactivate") } else { ("reactivate", "Reactivate") }),
        Some(("unlock", "Unlock")),
        u.mfa_enabled.then_some(("reset_mfa", "Reset 2FA")),
        Some(("reset_link", "Reset link")),
    ]
    .into_iter()
    .flatten()
    .collect()
}

fn row_of(u: UserRecord) -> UserRow {
    UserRow {
        actions: actions_for(&u),
        role_options: Role::ALL.iter().map(|r| (r.as_str(), if *r == u.role { " selected" } else { "" })).collect(),
        id: u.id,
        email: u.email,
        is_active: u.is_active,
        mfa_enabled: u.mfa_enabled,
    }
}

async fn user_page(
    State(app): State<AppState>,
    SignedIn(session): SignedIn,
    ClientInfo(client): ClientInfo,
    Path(id): Path<Uuid>,
    Query(query): Query<UsersQuery>,
) -> Result<Response, PageError> {
    let (_, claims) = parts(&session)?;
    app.authorize(claims, Permission::UsersRead, "/admin/users", &client).await?;
    let o = app.admin_user_overview(id).await?;
    let now = clock::now_ms();
    let page = UserPage {
        csrf: session.csrf.clone(),
        is_admin: true,
        section: "users",
        username: o.user.username.clone().unwrap_or_else(|| "—".into()),
        email_verified: o.user.email_verified,
        created: when(o.user.created_at, now),
        last_login: o.user.last_login_at.map(|at| when(at, now)),
        backup_codes_left: o.backup_codes_left,
        orgs: o.orgs.into_iter().map(|(org, role)| (org, role.as_str())).collect(),
        sessions: o.sessions.into_iter().map(|s| SessionRow::of(s, None, now)).collect(),
        revoke_action: format!("/admin/users/{id}"),
        revoke_fields: vec![("action", "revoke_session"), ("from", "user")],
        events: o.events.into_iter().map(|e| EventRow::of(e, now)).collect(),
        row: row_of(o.user),
        notice: query.done.as_deref().filter(|d| *d == "ok").map(|_| "Done."),
    };
    Ok(render(StatusCode::OK, &page))
}

#[derive(Deserialize)]
struct ActForm {
    action: String,
    role: Option<Role>,
    /// The session, for `revoke_session`.
    id: Option<Uuid>,
    /// `user` when the form is on the user's own page, which the answer goes back to.
    #[serde(default)]
    from: String,
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
        ("end_sessions", _) => app.admin_end_sessions(actor, id, &client).await,
        ("revoke_session", _) => match form.id {
            Some(session_id) => app.admin_revoke_session(actor, id, session_id, &client).await,
            None => Err(crate::error::Error::BadRequest("Which session?".into())),
        },
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
    let back = if form.from == "user" { format!("/admin/users/{id}?done=ok") } else { "/admin/users?done=ok".into() };
    Ok(Redirect::to(&back).into_response())
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
