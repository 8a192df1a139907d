//! `/admin`: the dashboard; `/admin/users` with search and paging, role and state changes, unlock, MFA
//! reset, reset links; `/admin/audit`; the test mail.

use askama::Template;
use axum::{
    Router,
    extract::{Path, Query, State},
    http::{StatusCode, header},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    account::parts,
    audit_words, chart,
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
        audit::actor_of,
        dashboard::{Dashboard, Day},
    },
    store::{
        audit::{AuditQuery, AuditRecord},
        orgs::OrgRecord,
        users::{UserFilter, UserRecord},
    },
};

const PAGE: i64 = 25;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin", get(dashboard))
        .route("/admin/users", get(users))
        .route("/admin/audit", get(audit))
        .route("/admin/audit.csv", get(audit_csv))
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
    at: When,
    /// (id, email) of the user the event is about, while that account exists.
    user: Option<(Uuid, String)>,
    /// The acting administrator, when one acted.
    actor: Option<(Uuid, String)>,
    text: String,
    outcome: String,
    ip: String,
    details: Vec<(String, String)>,
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
    /// (value, name, ` selected`) for the role and state pickers.
    role_filter: Vec<(&'static str, &'static str, &'static str)>,
    state_filter: Vec<(&'static str, &'static str, &'static str)>,
    /// The search and filters as a query string, for the paging links.
    filter_query: String,
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
    filter: AuditFilter,
    /// The picker: (action, name, ` selected` on the chosen one).
    actions: Vec<(&'static str, &'static str, &'static str)>,
    events: Vec<AuditRow>,
    /// The query string of the same filters, for the older page and the CSV export.
    filter_query: String,
    /// The last event's time and id, when there may be older ones.
    older: Option<(i64, Uuid)>,
    notice: Option<&'static str>,
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
    permitted(&app, &session, Permission::UsersRead, "/admin", &client).await?;
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

#[derive(Deserialize, Serialize)]
struct UsersQuery {
    #[serde(default)]
    q: String,
    /// A role name, or empty for every role.
    #[serde(default)]
    role: String,
    /// `active`, `deactivated`, or empty for both.
    #[serde(default)]
    state: String,
    #[serde(default, skip_serializing)]
    offset: i64,
    #[serde(skip_serializing)]
    done: Option<String>,
}

async fn users(
    State(app): State<AppState>,
    SignedIn(session): SignedIn,
    ClientInfo(client): ClientInfo,
    Query(query): Query<UsersQuery>,
) -> Result<Response, PageError> {
    permitted(&app, &session, Permission::UsersRead, "/admin/users", &client).await?;
    let offset = query.offset.max(0);
    let filter = UserFilter {
        q: &query.q,
        role: query.role.parse().ok(),
        active: match query.state.as_str() {
            "active" => Some(true),
            "deactivated" => Some(false),
            _ => None,
        },
    };
    let (users, total) = app.admin_list_users(&filter, PAGE, offset).await?;
    let page = UsersPage {
        csrf: session.csrf.clone(),
        is_admin: true,
        section: "users",
        q: query.q.clone(),
        role_filter: [("", "Every role")]
            .into_iter()
            .chain(Role::ALL.iter().map(|r| (r.as_str(), r.as_str())))
            .map(|(value, name)| (value, name, if value == query.role { " selected" } else { "" }))
            .collect(),
        state_filter: [("", "Active and deactivated"), ("active", "Active"), ("deactivated", "Deactivated")]
            .into_iter()
            .map(|(value, name)| (value, name, if value == query.state { " selected" } else { "" }))
            .collect(),
        filter_query: serde_urlencoded::to_string(&query).unwrap_or_default(),
        total,
        prev_offset: (offset > 0).then(|| (offset - PAGE).max(0)),
        next_offset: (offset + PAGE < total).then_some(offset + PAGE),
        users: users.into_iter().map(row_of).collect(),
        notice: query.done.as_deref().filter(|d| *d == "ok").map(|_| "Done."),
    };
    Ok(render(StatusCode::OK, &page))
}

#[derive(Clone, Default, Deserialize, Serialize)]
struct AuditFilter {
    #[serde(default)]
    action: String,
    /// An email, username or id.
    #[serde(default)]
    user: String,
    /// `YYYY-MM-DD`, from the start of that day (UTC).
    #[serde(default)]
    from: String,
    /// `YYYY-MM-DD`, to the end of that day (UTC).
    #[serde(default)]
    to: String,
    /// Keyset paging: events before this time (Unix ms), and at it with an id below `before_id`.
    #[serde(default, skip_serializing)]
    before: Option<i64>,
    #[serde(default, skip_serializing)]
    before_id: Option<Uuid>,
}

const AUDIT_PAGE: i64 = 50;

/// A filter turned into a query: `None` when it names a user that does not exist (nothing matches).
async fn audit_query<'a>(app: &AppState, filter: &'a AuditFilter) -> Result<Option<AuditQuery<'a>>, PageError> {
    let user_id = match filter.user.trim() {
        "" => None,
        user => match app.find_user(user).await {
            Ok(found) => Some(found.profile.id),
            Err(crate::error::Error::NotFound) => return Ok(None),
            Err(e) => return Err(e.into()),
        },
    };
    let day = |text: &str, field: &'static str| -> Result<Option<i64>, PageError> {
        match text.trim() {
            "" => Ok(None),
            text => {
                let date = parse_date(text)
                    .ok_or_else(|| crate::error::Error::invalid_field(field, "A date is written YYYY-MM-DD."))?;
                Ok(Some(date.midnight().assume_utc().unix_timestamp() * 1000))
            }
        }
    };
    let to = day(&filter.to, "to")?.map(|start| start + 86_400_000);
    Ok(Some(AuditQuery {
        user_id,
        action: Some(filter.action.trim()).filter(|a| !a.is_empty()),
        after: day(&filter.from, "from")?.unwrap_or(i64::MIN),
        before: filter.before.unwrap_or(i64::MAX).min(to.unwrap_or(i64::MAX)),
        before_id: filter.before.and(filter.before_id),
        limit: AUDIT_PAGE,
    }))
}

/// `YYYY-MM-DD`, as `<input type="date">` sends it.
fn parse_date(text: &str) -> Option<time::Date> {
    let mut parts = text.splitn(3, '-').map(str::parse::<u16>);
    let (year, month, day) = (parts.next()?.ok()?, parts.next()?.ok()?, parts.next()?.ok()?);
    let month = time::Month::try_from(u8::try_from(month).ok()?).ok()?;
    time::Date::from_calendar_date(i32::from(year), month, u8::try_from(day).ok()?).ok()
}

fn audit_row(e: AuditRecord, emails: &HashMap<Uuid, String>, now: i64) -> AuditRow {
    let person = |id: Option<Uuid>| id.and_then(|id| emails.get(&id).map(|email| (id, email.clone())));
    let user = person(e.user_id);
    let actor = person(actor_of(&e));
    let who = user.as_ref().map_or("someone", |(_, email)| email.as_str());
    AuditRow {
        text: audit_words::describe(&e.action, who, &e.detail),
        details: audit_words::details(&e.detail),
        at: when(e.at, now),
        user,
        actor,
        outcome: e.outcome,
        ip: e.ip.unwrap_or_default(),
    }
}

async fn audit(
    State(app): State<AppState>,
    SignedIn(session): SignedIn,
    ClientInfo(client): ClientInfo,
    Query(filter): Query<AuditFilter>,
) -> Result<Response, PageError> {
    permitted(&app, &session, Permission::AuditRead, "/admin/audit", &client).await?;
    let (events, emails) = match audit_query(&app, &filter).await? {
        Some(query) => app.audit_events_with_people(&query).await?,
        None => Default::default(),
    };
    let now = clock::now_ms();
    let older = (events.len() as i64 == AUDIT_PAGE).then(|| events.last().map(|e| (e.at, e.id))).flatten();
    let page = AuditPage {
        csrf: session.csrf.clone(),
        is_admin: true,
        section: "audit",
        actions: audit_words::ACTIONS
            .iter()
            .map(|(action, name)| (*action, *name, if *action == filter.action.trim() { " selected" } else { "" }))
            .collect(),
        filter_query: serde_urlencoded::to_string(&filter).unwrap_or_default(),
        notice: (!filter.user.trim().is_empty() && events.is_empty()).then_some("No events for that user."),
        events: events.into_iter().map(|e| audit_row(e, &emails, now)).collect(),
        older,
        filter,
    };
    Ok(render(StatusCode::OK, &page))
}

const CSV_HEADER: &str = "at,action,outcome,user_email,user_id,actor_email,ip,user_agent,detail\r\n";
const CSV_PAGE: i64 = 500;

/// `/admin/audit.csv`: the same filters, every matching event, streamed a page at a time so that a large
/// export holds one page in memory.
async fn audit_csv(
    State(app): State<AppState>,
    SignedIn(session): SignedIn,
    ClientInfo(client): ClientInfo,
    Query(filter): Query<AuditFilter>,
) -> Result<Response, PageError> {
    permitted(&app, &session, Permission::AuditRead, "/admin/audit.csv", &client).await?;
    let start = audit_query(&app, &filter).await?.map(|q| (q.user_id, q.after, q.before, q.before_id));
    let action = Some(filter.action.trim().to_string()).filter(|a| !a.is_empty());
    let header = futures_util::stream::once(async { Ok::<_, std::io::Error>(axum::body::Bytes::from(CSV_HEADER)) });
    let pages = futures_util::stream::unfold(start, move |state| {
        let (app, action) = (app.clone(), action.clone());
        async move {
            let (user_id, after, before, before_id) = state?;
            let query = AuditQuery { user_id, action: action.as_deref(), after, before, before_id, limit: CSV_PAGE };
            let (events, emails) = match app.audit_events_with_people(&query).await {
                Ok(found) => found,
                Err(e) => return Some((Err(std::io::Error::other(e.to_string())), None)),
            };
            let last = events.last()?;
            let next = (events.len() as i64 == CSV_PAGE).then_some((user_id, after, last.at, Some(last.id)));
            let chunk: String = events.iter().map(|e| csv_line(e, &emails)).collect();
            Some((Ok(axum::body::Bytes::from(chunk)), next))
        }
    });
    let headers = [
        (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
        (header::CONTENT_DISPOSITION, "attachment; filename=\"audit.csv\""),
        (header::CACHE_CONTROL, "no-store"),
    ];
    Ok((headers, axum::body::Body::from_stream(futures_util::StreamExt::chain(header, pages))).into_response())
}

fn csv_line(e: &AuditRecord, emails: &HashMap<Uuid, String>) -> String {
    let email = |id: Option<Uuid>| id.and_then(|id| emails.get(&id).cloned()).unwrap_or_default();
    let cells = [
        clock::rfc3339(e.at),
        e.action.clone(),
        e.outcome.clone(),
        email(e.user_id),
        e.user_id.map(|id| id.to_string()).unwrap_or_default(),
        email(actor_of(e)),
        e.ip.clone().unwrap_or_default(),
        e.user_agent.clone().unwrap_or_default(),
        e.detail.to_string(),
    ];
    let mut line = cells.iter().map(|c| csv_cell(c)).collect::<Vec<_>>().join(",");
    line.push_str("\r\n");
    line
}

/// RFC 4180 quoting, and a leading `'` on cells a spreadsheet would run as a formula (a user agent is the
/// client's to choose).
fn csv_cell(value: &str) -> String {
    let value =
        if value.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{value}") } else { value.to_string() };
    if value.contains([',', '"', '\r', '\n']) { format!("\"{}\"", value.replace('"', "\"\"")) } else { value }
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
    totp_enabled: bool,
    passkeys: Vec<(Uuid, String, When, Option<When>)>,
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
        Some(if u.profile.is_active { ("deactivate", "Deactivate") } else { ("reactivate", "Reactivate") }),
        Some(("unlock", "Unlock")),
        u.profile.mfa_enabled.then_some(("reset_mfa", "Reset 2FA")),
        Some(("reset_link", "Reset link")),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The signed-in user's claims when they have `permission`; anyone else is refused, and the refusal audited
/// under `path`.
pub(super) async fn permitted<'s>(
    app: &AppState,
    session: &'s crate::service::web::BrowserSession,
    permission: Permission,
    path: &str,
    who: &crate::service::Client,
) -> Result<&'s crate::domain::tokens::AccessClaims, PageError> {
    let (_, claims) = parts(session)?;
    app.authorize(claims, permission, path, who).await?;
    Ok(claims)
}

/// Every role for a `<select>`, with ` selected` on `role`.
pub(super) fn role_options(role: Role) -> Vec<(&'static str, &'static str)> {
    Role::ALL.iter().map(|r| (r.as_str(), if *r == role { " selected" } else { "" })).collect()
}

fn row_of(u: UserRecord) -> UserRow {
    UserRow {
        actions: actions_for(&u),
        role_options: role_options(u.profile.role),
        id: u.profile.id,
        email: u.profile.email,
        is_active: u.profile.is_active,
        mfa_enabled: u.profile.mfa_enabled,
    }
}

async fn user_page(
    State(app): State<AppState>,
    SignedIn(session): SignedIn,
    ClientInfo(client): ClientInfo,
    Path(id): Path<Uuid>,
    Query(query): Query<UsersQuery>,
) -> Result<Response, PageError> {
    permitted(&app, &session, Permission::UsersRead, "/admin/users", &client).await?;
    let o = app.admin_user_overview(id).await?;
    let now = clock::now_ms();
    let page = UserPage {
        csrf: session.csrf.clone(),
        is_admin: true,
        section: "users",
        username: o.user.profile.username.clone().unwrap_or_else(|| "—".into()),
        email_verified: o.user.profile.email_verified,
        created: when(o.user.profile.created_at, now),
        last_login: o.user.profile.last_login_at.map(|at| when(at, now)),
        totp_enabled: o.totp_enabled,
        passkeys: o
            .passkeys
            .into_iter()
            .map(|p| (p.id, p.name, when(p.created_at, now), p.last_used_at.map(|at| when(at, now))))
            .collect(),
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
    /// The session for `revoke_session`, the passkey for `remove_passkey`.
    id: Option<Uuid>,
    /// `user` when the form is on the user's own page, which the answer goes back to.
    #[serde(default)]
    from: String,
    /// `yes` once the administrator confirmed a destructive action.
    confirm: Option<String>,
}

/// The question a destructive action asks before it runs: (button, consequence).
fn confirmation(action: &str) -> Option<(&'static str, &'static str)> {
    match action {
        "deactivate" => {
            Some(("Yes, deactivate", "They are signed out everywhere and cannot sign in until reactivated."))
        }
        "reset_mfa" => Some((
            "Yes, reset two-factor",
            "Their authenticator and backup codes stop working and they are signed out everywhere; \
             they sign in with their password alone until they set up a second factor again.",
        )),
        "end_sessions" => Some(("Yes, end every session", "They are signed out on every device and application.")),
        "remove_passkey" => Some((
            "Yes, remove the passkey",
            "It no longer signs them in. If it was their last second factor, two-factor authentication turns off.",
        )),
        _ => None,
    }
}

/// The question a destructive action asks: the same form again, with `confirm=yes` on its button.
#[derive(Template)]
#[template(path = "admin_confirm.html")]
pub(super) struct ConfirmPage {
    pub csrf: String,
    pub is_admin: bool,
    /// Who or what the action is about.
    pub subject: String,
    pub form_action: String,
    pub fields: Vec<(&'static str, String)>,
    pub button: &'static str,
    pub consequence: &'static str,
    pub back: String,
}

async fn act(
    State(app): State<AppState>,
    ClientInfo(client): ClientInfo,
    Path(id): Path<Uuid>,
    SignedInForm(session, form): SignedInForm<ActForm>,
) -> Result<Response, PageError> {
    let claims = permitted(&app, &session, Permission::UsersWrite, "/admin/users", &client).await?;
    let actor = Actor::Admin(claims.sub);
    let back = if form.from == "user" { format!("/admin/users/{id}") } else { "/admin/users".into() };
    if let Some((button, consequence)) = confirmation(&form.action).filter(|_| form.confirm.as_deref() != Some("yes")) {
        let page = ConfirmPage {
            csrf: session.csrf.clone(),
            is_admin: true,
            subject: app.admin_get_user(id).await?.profile.email,
            form_action: format!("/admin/users/{id}"),
            fields: [("action", form.action.clone()), ("from", form.from.clone())]
                .into_iter()
                .chain(form.id.map(|id| ("id", id.to_string())))
                .collect(),
            button,
            consequence,
            back,
        };
        return Ok(render(StatusCode::OK, &page));
    }
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
        ("remove_passkey", _) => match form.id {
            Some(passkey_id) => app.admin_remove_passkey(actor, id, passkey_id, &client).await,
            None => Err(crate::error::Error::BadRequest("Which passkey?".into())),
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
    Ok(Redirect::to(&format!("{back}?done=ok")).into_response())
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
    let claims = permitted(&app, &session, Permission::UsersWrite, "/admin/mail/test", &client).await?;
    let (heading, message) = match app.send_test_mail(Actor::Admin(claims.sub), &form.to, &client).await? {
        Ok(answer) => ("Test mail sent", format!("The SMTP server took the mail for {}: {answer}", form.to.trim())),
        Err(why) => ("Test mail not sent", format!("The SMTP server did not take the mail: {why}")),
    };
    Ok(render(StatusCode::OK, &HandoverPage { heading, message, ..handover(&session) }))
}
