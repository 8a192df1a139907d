//! The web pages over HTTP, as a browser without JavaScript uses them: cookies, CSRF, the sign-in steps,
//! two-factor enrollment, sessions, admin. (Browser tests in headless Chromium are still to come.)

use latchkey::{domain::roles::Role, service::accounts::InitialPassword};
use reqwest::{StatusCode, header};

use crate::{
    helpers::{PASSWORD, TestApp, csrf_of},
    on_both,
};

/// A browser: a cookie store, no automatic redirects (so that each step can be checked).
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent("<img src=x onerror=alert(1)> TestBrowser")
        .build()
        .unwrap()
}

async fn get(b: &reqwest::Client, app: &TestApp, path: &str) -> (StatusCode, String) {
    let r = b.get(app.url(path)).header(header::ACCEPT, "text/html").send().await.unwrap();
    (r.status(), r.text().await.unwrap())
}

async fn post(b: &reqwest::Client, app: &TestApp, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
    b.post(app.url(path)).form(form).send().await.unwrap()
}

fn location(r: &reqwest::Response) -> &str {
    r.headers().get(header::LOCATION).map(|v| v.to_str().unwrap()).unwrap_or_default()
}

fn session_cookie(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("latchkey_session="))
}

/// Registers through the form; returns the browser, signed in.
async fn register(app: &TestApp, email: &str) -> reqwest::Client {
    let b = browser();
    let (_, html) = get(&b, app, "/register").await;
    let csrf = csrf_of(&html);
    let r = post(&b, app, "/register", &[("csrf", &csrf), ("email", email), ("username", ""), ("password", PASSWORD)])
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/account");
    b
}

async fn sign_in(b: &reqwest::Client, app: &TestApp, username: &str, password: &str, next: &str) -> reqwest::Response {
    let (_, html) = get(b, app, &format!("/login?next={next}")).await;
    let csrf = csrf_of(&html);
    post(b, app, &format!("/login?next={next}"), &[("csrf", &csrf), ("username", username), ("password", password)])
        .await
}

async fn register_sign_out_sign_in(app: &TestApp) {
    let b = register(app, "web@example.com").await;
    let (status, html) = get(&b, app, "/account").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("web@example.com") && html.contains("This device"));
    // User input is escaped in the page (the user agent is shown in the sessions table).
    let sessions = html.split("Sessions</h2>").nth(1).unwrap_or_default().split("</table>").next().unwrap_or_default();
    assert!(sessions.contains("&#60;img src=x") && !html.contains("<img src=x"), "{sessions}");

    let csrf = csrf_of(&html);
    let out = post(&b, app, "/logout", &[("csrf", &csrf)]).await;
    assert_eq!(location(&out), "/login");
    assert!(session_cookie(&out).unwrap().contains("Max-Age=0"));
    assert!(out.headers().contains_key("clear-site-data"));
    assert_eq!(location(&b.get(app.url("/account")).send().await.unwrap()), "/login");

    let r = sign_in(&b, app, "web@example.com", PASSWORD, "/account").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let cookie = session_cookie(&r).expect("a new session cookie");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/"));
    assert!(!cookie.contains("Domain="));
    let value = cookie.split(';').next().unwrap().split_once('=').unwrap().1;
    assert!(value.len() >= 43 && !value.contains('.'), "opaque, not a JWT: {value}");
    assert_eq!(get(&b, app, "/account").await.0, StatusCode::OK);
}
on_both!(register_sign_out_sign_in);

async fn forms_without_csrf_are_refused(app: &TestApp) {
    let b = register(app, "csrf@example.com").await;
    let r = post(
        &b,
        app,
        "/account/password",
        &[("current_password", PASSWORD), ("new_password", "another long passphrase here")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = post(
        &b,
        app,
        "/account/password",
        &[("csrf", "forged"), ("current_password", PASSWORD), ("new_password", "another long passphrase here")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // The password did not change.
    assert_eq!(app.login("csrf@example.com", PASSWORD).await.status(), StatusCode::OK);
    // Login CSRF: a correct password without the pre-session's token signs nobody in.
    let stranger = browser();
    let r = post(&stranger, app, "/login", &[("username", "csrf@example.com"), ("password", PASSWORD)]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(session_cookie(&r).is_none());
}
on_both!(forms_without_csrf_are_refused);

async fn sign_in_renews_the_session_and_refuses_open_redirects(app: &TestApp) {
    register(app, "renew@example.com").await;
    let b = browser();
    let first = b.get(app.url("/login")).send().await.unwrap();
    let c0 = session_cookie(&first).expect("a pre-session");
    let r = sign_in(&b, app, "renew@example.com", PASSWORD, "%2F%2Fevil.example").await;
    assert_eq!(location(&r), "/account", "never off-site");
    let c1 = session_cookie(&r).unwrap();
    assert_ne!(c0, c1);
    // The pre-session's cookie is dead.
    let old = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let c0_value = c0.split(';').next().unwrap();
    let r = old.get(app.url("/account")).header(header::COOKIE, c0_value).send().await.unwrap();
    assert_eq!(location(&r), "/login");
    for next in ["https://evil.example/", "/\\evil.example", "javascript:alert(1)"] {
        let b = browser();
        let r = sign_in(&b, app, "renew@example.com", PASSWORD, &urlencode(next)).await;
        assert_eq!(location(&r), "/account", "{next}");
    }
    let b = browser();
    let r = sign_in(&b, app, "renew@example.com", PASSWORD, "%2Faccount%23sessions").await;
    assert_eq!(location(&r), "/account#sessions");
}
on_both!(sign_in_renews_the_session_and_refuses_open_redirects);

fn urlencode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

async fn two_factor_through_the_pages(app: &TestApp) {
    let b = register(app, "totp@example.com").await;
    let (mut authenticator, codes) = app.enable_mfa_in_browser(&b).await;
    assert_eq!(codes.len(), 10);

    // Sign out, sign in: the second step asks for a code.
    let (_, html) = get(&b, app, "/account").await;
    post(&b, app, "/logout", &[("csrf", &csrf_of(&html))]).await;
    let r = sign_in(&b, app, "totp@example.com", PASSWORD, "/account").await;
    assert!(location(&r).starts_with("/login/mfa"));
    let (_, mfa_page) = get(&b, app, "/login/mfa?next=/account").await;
    let wrong = post(&b, app, "/login/mfa?next=/account", &[("csrf", &csrf_of(&mfa_page)), ("code", "000000")]).await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let code = authenticator.next_code().await;
    let r = post(&b, app, "/login/mfa?next=/account", &[("csrf", &csrf_of(&mfa_page)), ("code", &code)]).await;
    assert_eq!(location(&r), "/account");
    let (_, html) = get(&b, app, "/account").await;
    assert!(html.contains("9 backup codes left") || html.contains("10 backup codes left"));

    // A backup code works once, in another browser.
    let other = browser();
    sign_in(&other, app, "totp@example.com", PASSWORD, "/account").await;
    let (_, mfa_page) = get(&other, app, "/login/mfa").await;
    let r = post(&other, app, "/login/mfa", &[("csrf", &csrf_of(&mfa_page)), ("code", &codes[0].to_lowercase())]).await;
    assert_eq!(location(&r), "/account");

    // Revoke the other browser's session from the first, then sign out everywhere.
    let (_, html) = get(&b, app, "/account").await;
    let other_row =
        html.split("<tr>").find(|row| row.contains(r#"name="id""#) && !row.contains("This device")).unwrap();
    let other_id = other_row.split(r#"name="id" value=""#).nth(1).unwrap().split('"').next().unwrap();
    let r = post(&b, app, "/account/sessions/revoke", &[("csrf", &csrf_of(&html)), ("id", other_id)]).await;
    assert_eq!(location(&r), "/account?done=revoked");
    assert_eq!(location(&other.get(app.url("/account")).send().await.unwrap()), "/login");
    let revoke_all = post(&b, app, "/account/sessions/revoke-all", &[("csrf", &csrf_of(&html))]).await;
    assert_eq!(location(&revoke_all), "/login");
    assert_eq!(location(&b.get(app.url("/account")).send().await.unwrap()), "/login");
}
on_both!(two_factor_through_the_pages);

async fn admin_page_for_admins_only(app: &TestApp) {
    let viewer = register(app, "plain@example.com").await;
    let (status, _) = get(&viewer, app, "/admin").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    app.services.create_user("boss@example.com", None, Role::Admin, InitialPassword::Plain(PASSWORD)).await.unwrap();
    let admin = browser();
    sign_in(&admin, app, "boss@example.com", PASSWORD, "/admin").await;
    let (status, html) = get(&admin, app, "/admin/users?q=plain").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("plain@example.com") && !html.contains("<td>boss@example.com"));
    let id = html.split(r#"action="/admin/users/"#).nth(1).unwrap().split('"').next().unwrap().to_string();
    let path = format!("/admin/users/{id}");
    let asked = post(&admin, app, &path, &[("csrf", &csrf_of(&html)), ("action", "deactivate")]).await;
    assert_eq!(asked.status(), StatusCode::OK, "a destructive action asks first");
    let question = asked.text().await.unwrap();
    assert!(question.contains("Yes, deactivate") && question.contains("plain@example.com"));
    assert_eq!(viewer.get(app.url("/account")).send().await.unwrap().status(), StatusCode::OK, "nothing done yet");
    let r = post(&admin, app, &path, &[("csrf", &csrf_of(&html)), ("action", "deactivate"), ("confirm", "yes")]).await;
    assert_eq!(location(&r), "/admin/users?done=ok");
    let (_, deactivated) = get(&admin, app, "/admin/users?state=deactivated").await;
    assert!(deactivated.contains("plain@example.com") && !deactivated.contains(">boss@example.com<"));
    let (_, admins) = get(&admin, app, "/admin/users?role=admin&state=deactivated").await;
    assert!(admins.contains("0 accounts"), "filters combine");
    assert_eq!(location(&viewer.get(app.url("/account")).send().await.unwrap()), "/login", "signed out at once");
    let (_, html) = get(&admin, app, "/admin/audit?action=user_deactivated").await;
    assert!(html.contains("user_deactivated"));
}
on_both!(admin_page_for_admins_only, |c| c.admin_require_mfa = false);

async fn pages_are_locked_down(app: &TestApp) {
    let r = browser().get(app.url("/login")).send().await.unwrap();
    let csp = r.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(
        csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe-inline")
    );
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    let html = r.text().await.unwrap();
    assert!(html.contains(r#"type="password""#) && html.contains(r#"autocomplete="current-password""#));
    assert!(!html.contains("<script>"), "no inline script");
    let (status, html) = get(&browser(), app, "/no-such-page").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(html.contains("Page not found"));
    assert_eq!(location(&browser().get(app.url("/")).send().await.unwrap()), "/login");
}
on_both!(pages_are_locked_down);

/// Review finding 5: every anonymous `GET /login` used to store a pre-session row (2,000 views, 4.3 MB).
async fn anonymous_page_views_store_nothing(app: &TestApp) {
    for path in ["/login", "/register"] {
        for _ in 0..100 {
            let (status, _) = get(&browser(), app, path).await;
            assert_eq!(status, StatusCode::OK);
        }
    }
    let (rows,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM web_sessions").fetch_one(app.services.db.pool()).await.unwrap();
    assert_eq!(rows, 0);

    // The stateless pre-session still binds the form: another pre-session's token, or a made-up cookie, fails.
    assert_eq!(app.register("pre@example.com", PASSWORD).await.status(), StatusCode::CREATED);
    let (a, b) = (browser(), browser());
    let (_, page_a) = get(&a, app, "/login").await;
    get(&b, app, "/login").await;
    let form = [("csrf", csrf_of(&page_a)), ("username", "pre@example.com".into()), ("password", PASSWORD.into())];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(post(&b, app, "/login", &form).await.status(), StatusCode::FORBIDDEN);
    let forged = app
        .client
        .post(app.url("/login"))
        .header(header::COOKIE, format!("latchkey_session=pre.{}.{}", 1, "x".repeat(43)))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let r = post(&a, app, "/login", &form).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(session_cookie(&r).is_some());
}
on_both!(anonymous_page_views_store_nothing);

/// Review finding 8 (SECURITY.md A.8): a form posted with `Sec-Fetch-Site: cross-site` is refused even with
/// the right cookie and token.
async fn cross_site_form_posts_are_refused(app: &TestApp) {
    let b = register(app, "fetch-meta@example.com").await;
    let (_, html) = get(&b, app, "/account").await;
    let form = [
        ("csrf", csrf_of(&html)),
        ("current_password", PASSWORD.to_string()),
        ("new_password", "another long passphrase here".to_string()),
    ];
    let r = b.post(app.url("/account/password")).header("sec-fetch-site", "cross-site").form(&form).send().await;
    assert_eq!(r.unwrap().status(), StatusCode::FORBIDDEN);
    assert_eq!(app.login("fetch-meta@example.com", PASSWORD).await.status(), StatusCode::OK, "nothing changed");
    let r = b.post(app.url("/account/password")).header("sec-fetch-site", "same-origin").form(&form).send().await;
    assert_eq!(r.unwrap().status(), StatusCode::SEE_OTHER);
}
on_both!(cross_site_form_posts_are_refused);
