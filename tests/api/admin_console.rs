//! The admin console's pages over HTTP: the dashboard's figures against a seeded audit table, and who may
//! see it.

use latchkey::{domain::roles::Role, service::accounts::InitialPassword};
use reqwest::StatusCode;

use crate::{
    helpers::{PASSWORD, TestApp, csrf_of},
    on_both,
};

const DAY_MS: i64 = 86_400_000;

async fn seed(app: &TestApp, at: i64, action: &str, n: usize) {
    for _ in 0..n {
        sqlx::query(
            "INSERT INTO audit_events (id, at, user_id, action, outcome, ip, user_agent, detail)
             VALUES ($1, $2, NULL, $3, 'success', NULL, NULL, '{}')",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(at)
        .bind(action)
        .execute(app.services.db.pool())
        .await
        .unwrap();
    }
}

async fn signed_in(app: &TestApp, email: &str) -> reqwest::Client {
    let browser =
        reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let page = browser.get(app.url("/login")).send().await.unwrap().text().await.unwrap();
    let form = [("csrf", csrf_of(&page)), ("username", email.into()), ("password", PASSWORD.into())];
    assert_eq!(browser.post(app.url("/login")).form(&form).send().await.unwrap().status(), StatusCode::SEE_OTHER);
    browser
}

/// The row of the figures table for the day starting at `start`: (sign-ins, failed, locks).
fn row_of(html: &str, start: i64) -> (i64, i64, i64) {
    let date = latchkey::clock::rfc3339(start)[..10].to_string();
    let row = html.split(&format!(r#"<time datetime="{date}">"#)).nth(1).expect("a row for the day");
    let cells: Vec<i64> =
        row.split("<td>").skip(1).take(3).map(|c| c.split('<').next().unwrap().trim().parse().unwrap()).collect();
    (cells[0], cells[1], cells[2])
}

fn figure(html: &str, label: &str) -> i64 {
    let after = html.split(&format!("<dt>{label}</dt><dd>")).nth(1).unwrap_or_else(|| panic!("no {label}"));
    after.split('<').next().unwrap().parse().unwrap()
}

/// Counts and the 14-day chart from the audit table; old events fall outside; a real lock counts as a
/// locked account; viewers get 403.
async fn the_dashboard_shows_the_figures(app: &TestApp) {
    let now = latchkey::clock::now_ms();
    let today = now / DAY_MS * DAY_MS;
    let five_days_ago = today - 5 * DAY_MS + 3_600_000;
    seed(app, five_days_ago, "login", 4).await;
    seed(app, five_days_ago, "login_failed", 7).await;
    seed(app, five_days_ago, "account_locked", 1).await;
    seed(app, today - 20 * DAY_MS, "login", 50).await;
    seed(app, now - 1000, "login_failed", 2).await;

    let (victim, _) = app.new_user().await;
    for _ in 0..app.services.config.lockout_threshold {
        app.login(&victim, "wrong password, again").await;
    }
    app.services.create_user("dash@example.com", None, Role::Admin, InitialPassword::Plain(PASSWORD)).await.unwrap();
    let admin = signed_in(app, "dash@example.com").await;
    let r = admin.get(app.url("/admin")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.unwrap();
    assert!(html.contains(r#"<svg role="img""#) && html.contains("<title id=\"chart-title\">"));
    assert_eq!(figure(&html, "Users"), 2);
    assert_eq!(figure(&html, "Locked accounts"), 1);
    let failed_today = app.services.config.lockout_threshold as i64 + 2;
    assert_eq!(figure(&html, "Failed sign-ins, last 24 h"), failed_today);
    assert_eq!(figure(&html, "Sign-ins, last 24 h"), 1, "the admin's own sign-in");
    assert_eq!(row_of(&html, today - 5 * DAY_MS), (4, 7, 1));
    let (_, failed, locked) = row_of(&html, today);
    assert_eq!((failed, locked), (failed_today, 1));
    assert!(!html.contains(&latchkey::clock::rfc3339(today - 20 * DAY_MS)[..10]), "older than 14 days");
    assert_eq!(html.matches("<rect ").count(), 42);
    let audit = admin.get(app.url("/admin/audit?action=account_locked")).send().await.unwrap().text().await.unwrap();
    let words = format!("{} failed sign-ins locked", app.services.config.lockout_threshold);
    assert!(audit.contains(&words) && audit.contains(&victim), "the lock in words, with its count: {audit}");

    let (viewer, _) = app.new_user().await;
    let viewer = signed_in(app, &viewer).await;
    for page in ["/admin", "/admin/users", "/admin/audit"] {
        assert_eq!(viewer.get(app.url(page)).send().await.unwrap().status(), StatusCode::FORBIDDEN, "{page}");
    }
}
on_both!(the_dashboard_shows_the_figures, |c| c.admin_require_mfa = false);

const CHROME: &str =
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36";

/// One user's page: details, live sessions with readable devices, a session revoked from its own form (and
/// then refused), every session ended; viewers get 403, unknown users 404.
async fn the_user_page_shows_and_acts_on_one_user(app: &TestApp) {
    let (email, _) = app.new_user().await;
    let login = |agent: &'static str| {
        let body = serde_json::json!({"username": email, "password": PASSWORD});
        app.client.post(app.url("/auth/login")).header("user-agent", agent).json(&body).send()
    };
    let chrome: serde_json::Value = login(CHROME).await.unwrap().json().await.unwrap();
    let curl: serde_json::Value = login("curl/8.5.0").await.unwrap().json().await.unwrap();
    let id = app.services.find_user(&email).await.unwrap().profile.id;

    app.services.create_user("pages@example.com", None, Role::Admin, InitialPassword::Plain(PASSWORD)).await.unwrap();
    let admin = signed_in(app, "pages@example.com").await;
    let page = |path: String| {
        let admin = admin.clone();
        async move { admin.get(app.url(&path)).send().await.unwrap() }
    };
    let list = page(format!("/admin/users?q={email}")).await.text().await.unwrap();
    assert!(list.contains(&format!(r#"<a href="/admin/users/{id}">{email}</a>"#)));
    let html = page(format!("/admin/users/{id}")).await.text().await.unwrap();
    assert!(html.contains("Chrome 156 on Linux") && html.contains(&format!(r#"title="{CHROME}""#)), "{html}");
    assert!(html.contains(">curl/8.5.0<") && html.contains("just now"));
    assert!(html.contains("<time datetime="), "times are time elements");

    let chrome_sid = app.services.authenticate(chrome["access_token"].as_str().unwrap()).unwrap().sid;
    assert!(html.contains(&format!(r#"name="id" value="{chrome_sid}""#)), "a revoke form per session");
    let form = [
        ("csrf", csrf_of(&html)),
        ("action", "revoke_session".into()),
        ("from", "user".into()),
        ("id", chrome_sid.to_string()),
    ];
    let r = admin.post(app.url(&format!("/admin/users/{id}"))).form(&form).send().await.unwrap();
    assert_eq!(r.headers()["location"], format!("/admin/users/{id}?done=ok").as_str());
    assert_eq!(app.me(chrome["access_token"].as_str().unwrap()).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.me(curl["access_token"].as_str().unwrap()).await.status(), StatusCode::OK);
    let again = admin.post(app.url(&format!("/admin/users/{id}"))).form(&form).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::NOT_FOUND, "an ended session cannot be revoked twice");

    let form = [
        ("csrf", csrf_of(&html)),
        ("action", "end_sessions".into()),
        ("from", "user".into()),
        ("confirm", "yes".into()),
    ];
    admin.post(app.url(&format!("/admin/users/{id}"))).form(&form).send().await.unwrap();
    assert_eq!(app.me(curl["access_token"].as_str().unwrap()).await.status(), StatusCode::UNAUTHORIZED);
    let html = page(format!("/admin/users/{id}")).await.text().await.unwrap();
    assert!(html.contains("session_revoked_by_admin") && html.contains("sessions_revoked_by_admin"));

    let missing = page(format!("/admin/users/{}", uuid::Uuid::new_v4())).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let viewer = signed_in(app, &email).await;
    let r = viewer.get(app.url(&format!("/admin/users/{id}"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}
on_both!(the_user_page_shows_and_acts_on_one_user, |c| c.admin_require_mfa = false);

/// The audit log in words, with the acting admin and the user linked by email, filtered by action, user and
/// dates; the CSV export with the same filters, quoted and safe to open in a spreadsheet.
async fn the_audit_log_reads_in_words_and_exports_csv(app: &TestApp) {
    app.services.create_user("auditor@example.com", None, Role::Admin, InitialPassword::Plain(PASSWORD)).await.unwrap();
    let admin = signed_in(app, "auditor@example.com").await;
    let (email, _) = app.new_user().await;
    let id = app.services.find_user(&email).await.unwrap().profile.id;
    let body = serde_json::json!({"username": email, "password": "not the password"});
    app.client.post(app.url("/auth/login")).header("user-agent", "=HYPERLINK(\"x\")").json(&body).send().await.unwrap();
    let admin_id = app.services.find_user("auditor@example.com").await.unwrap().profile.id;
    app.services
        .admin_end_sessions(latchkey::service::admin::Actor::Admin(admin_id), id, &Default::default())
        .await
        .unwrap();

    let html = admin.get(app.url("/admin/audit")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains(&format!("A sign-in as {email} failed: wrong password")), "{html}");
    assert!(html.contains(&format!("An administrator ended every session of {email}")));
    assert!(html.contains(&format!(r#"<a href="/admin/users/{admin_id}">auditor@example.com</a>"#)), "the actor");
    assert!(html.contains("<dt>sessions ended</dt>"), "labelled details");
    assert!(html.contains(r#"<option value="login_failed">Failed sign-ins</option>"#), "an action picker");

    let only = admin.get(app.url(&format!("/admin/audit?action=login_failed&user={email}"))).send().await.unwrap();
    let only = only.text().await.unwrap();
    assert_eq!(only.matches("<time datetime=").count(), 1, "one failed sign-in for that user");
    let tomorrow = latchkey::clock::rfc3339(latchkey::clock::now_ms() + DAY_MS)[..10].to_string();
    let later = admin.get(app.url(&format!("/admin/audit?from={tomorrow}"))).send().await.unwrap();
    assert_eq!(later.text().await.unwrap().matches("<time datetime=").count(), 0, "nothing from tomorrow on");
    let bad = admin.get(app.url("/admin/audit?from=yesterday")).send().await.unwrap();
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let csv = admin.get(app.url(&format!("/admin/audit.csv?user={email}"))).send().await.unwrap();
    assert_eq!(csv.status(), StatusCode::OK);
    assert!(csv.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let csv = csv.text().await.unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("at,action,outcome,user_email,user_id,actor_email,ip,user_agent,detail"));
    let rows: Vec<&str> = lines.collect();
    assert!(rows.iter().any(|r| r.contains(",login_failed,failure,") && r.contains(&email)));
    assert!(rows.iter().any(|r| r.contains(",sessions_revoked_by_admin,") && r.contains("auditor@example.com")));
    assert!(csv.contains(r#""'=HYPERLINK(""x"")""#), "a formula is defused and quoted: {csv}");
    assert!(rows.iter().all(|r| r.contains(&id.to_string())), "only that user's events");

    let (viewer, _) = app.new_user().await;
    let viewer = signed_in(app, &viewer).await;
    assert_eq!(viewer.get(app.url("/admin/audit.csv")).send().await.unwrap().status(), StatusCode::FORBIDDEN);
}
on_both!(the_audit_log_reads_in_words_and_exports_csv, |c| c.admin_require_mfa = false);

/// Paging and the export lose nothing when many events share one millisecond at a page boundary (50 per
/// page, 500 per CSV chunk).
async fn audit_pages_and_export_skip_nothing_within_one_millisecond(app: &TestApp) {
    app.services.create_user("pager@example.com", None, Role::Admin, InitialPassword::Plain(PASSWORD)).await.unwrap();
    let admin = signed_in(app, "pager@example.com").await;
    let at = latchkey::clock::now_ms() - DAY_MS;
    seed(app, at, "mail_test_sent", 620).await;

    let mut seen = 0;
    let mut page = "/admin/audit?action=mail_test_sent".to_string();
    for _ in 0..20 {
        let html = admin.get(app.url(&page)).send().await.unwrap().text().await.unwrap();
        seen += html.matches("<time datetime=").count();
        let Some(link) = html.find("\">Older events</a>") else { break };
        let start = html[..link].rfind("href=\"").unwrap() + "href=\"".len();
        page = html[start..link].replace("&amp;", "&").replace("&#38;", "&");
    }
    assert_eq!(seen, 620, "every event, once, across the pages");

    let csv = admin.get(app.url("/admin/audit.csv?action=mail_test_sent")).send().await.unwrap().text().await.unwrap();
    assert_eq!(csv.lines().count(), 1 + 620, "the header and every event");
}
on_both!(audit_pages_and_export_skip_nothing_within_one_millisecond, |c| c.admin_require_mfa = false);

/// Organisations from the console: create (the admin becomes its admin), add a member by email, change the
/// role, remove; the last org admin stays; viewers get 403.
async fn organisations_are_run_from_the_console(app: &TestApp) {
    app.services.create_user("orgs@example.com", None, Role::Admin, InitialPassword::Plain(PASSWORD)).await.unwrap();
    let admin = signed_in(app, "orgs@example.com").await;
    let (member, _) = app.new_user().await;
    let html = admin.get(app.url("/admin/orgs")).send().await.unwrap().text().await.unwrap();
    let csrf = csrf_of(&html);
    let form = [("csrf", csrf.as_str()), ("name", "Research"), ("slug", "research")];
    let r = admin.post(app.url("/admin/orgs")).form(&form).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let org_path = r.headers()["location"].to_str().unwrap().to_string();
    let taken = admin.post(app.url("/admin/orgs")).form(&form).send().await.unwrap();
    assert_eq!(taken.status(), StatusCode::CONFLICT);

    let form = [("csrf", csrf.as_str()), ("user", member.as_str()), ("role", "analyst")];
    let r = admin.post(app.url(&format!("{org_path}/members"))).form(&form).send().await.unwrap();
    assert_eq!(r.headers()["location"], format!("{org_path}?invited=1").as_str(), "an org admin invites");
    let html = admin.get(app.url(&format!("{org_path}?invited=1"))).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("Invited") && !html.contains(&member));
    let member_token = crate::helpers::token(
        &crate::helpers::expect_json(app.login(&member, PASSWORD).await, StatusCode::OK).await,
        "access_token",
    );
    let accept = format!("/api/v1{}/invitations/accept", org_path.trim_start_matches("/admin"));
    assert_eq!(app.post_bearer(&accept, &member_token).await.status(), StatusCode::OK);
    let html = admin.get(app.url(&org_path)).send().await.unwrap().text().await.unwrap();
    assert!(html.contains(&member) && html.contains("orgs@example.com"), "{html}");
    let member_id = app.services.find_user(&member).await.unwrap().profile.id;
    let admin_id = app.services.find_user("orgs@example.com").await.unwrap().profile.id;
    let member_path = format!("{org_path}/members/{member_id}");
    let form = [("csrf", csrf.as_str()), ("action", "role"), ("role", "reviewer")];
    admin.post(app.url(&member_path)).form(&form).send().await.unwrap();
    let html = admin.get(app.url(&org_path)).send().await.unwrap().text().await.unwrap();
    let row = html.split(&format!("/admin/users/{member_id}")).nth(1).unwrap();
    assert!(row.split("</tr>").next().unwrap().contains(r#"<option value="reviewer" selected>"#));

    let form = [("csrf", csrf.as_str()), ("action", "remove")];
    let asked = admin.post(app.url(&member_path)).form(&form).send().await.unwrap();
    assert!(asked.text().await.unwrap().contains("Yes, remove from the organisation"), "removal asks first");
    let form = [("csrf", csrf.as_str()), ("action", "remove"), ("confirm", "yes")];
    let last = admin.post(app.url(&format!("{org_path}/members/{admin_id}"))).form(&form).send().await.unwrap();
    assert_eq!(last.status(), StatusCode::CONFLICT, "the last org admin stays");
    admin.post(app.url(&member_path)).form(&form).send().await.unwrap();
    let html = admin.get(app.url(&org_path)).send().await.unwrap().text().await.unwrap();
    assert!(!html.contains(&member));
    let list = admin.get(app.url("/admin/orgs")).send().await.unwrap().text().await.unwrap();
    assert!(list.contains("Research") && list.contains("<td>1</td>"));

    let viewer = signed_in(app, &member).await;
    assert_eq!(viewer.get(app.url("/admin/orgs")).send().await.unwrap().status(), StatusCode::FORBIDDEN);
    assert_eq!(viewer.get(app.url(&org_path)).send().await.unwrap().status(), StatusCode::FORBIDDEN);
}
on_both!(organisations_are_run_from_the_console, |c| c.admin_require_mfa = false);
