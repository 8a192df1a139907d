//! The admin pages for OAuth clients over HTTP, as a browser without JavaScript uses them: list, register
//! (the secret shown once), edit, bad input kept on the form, rotate, delete behind a confirmation; roles,
//! CSRF and the audit trail.

use latchkey::{
    config::Config,
    domain::roles::Role,
    service::{Client, accounts::InitialPassword, admin::Actor, oauth_clients::ClientSettings},
};
use reqwest::{StatusCode, header};

use crate::{
    helpers::{PASSWORD, TestApp, csrf_of, expect_json, token},
    on_both,
};

fn no_admin_mfa(c: &mut Config) {
    c.admin_require_mfa = false;
}

/// An administrator signed in through the pages (the browser), and an API token to check what the pages did.
struct Admin {
    browser: reqwest::Client,
    bearer: String,
}

async fn admin(app: &TestApp) -> Admin {
    let email = "boss@example.com";
    app.services.create_user(email, None, Role::Admin, InitialPassword::Plain(PASSWORD)).await.unwrap();
    let browser =
        reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let (_, login) = page(&browser, app, "/login").await;
    let csrf = csrf_of(&login);
    let form = [("csrf", csrf.as_str()), ("username", email), ("password", PASSWORD)];
    assert_eq!(post(&browser, app, "/login", &form).await.status(), StatusCode::SEE_OTHER);
    let bearer = token(&expect_json(app.login(email, PASSWORD).await, StatusCode::OK).await, "access_token");
    Admin { browser, bearer }
}

impl Admin {
    async fn api(&self, app: &TestApp, path: &str) -> reqwest::Response {
        app.get_bearer(path, &self.bearer).await
    }

    /// The page's CSRF token, for posting as this browser.
    async fn csrf(&self, app: &TestApp) -> String {
        csrf_of(&page(&self.browser, app, "/admin/clients").await.1)
    }
}

async fn page(b: &reqwest::Client, app: &TestApp, path: &str) -> (StatusCode, String) {
    let r = b.get(app.url(path)).header(header::ACCEPT, "text/html").send().await.unwrap();
    (r.status(), r.text().await.unwrap())
}

async fn post(b: &reqwest::Client, app: &TestApp, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
    b.post(app.url(path)).form(form).send().await.unwrap()
}

fn location(r: &reqwest::Response) -> String {
    r.headers().get(header::LOCATION).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default()
}

/// The text of the element `id` (a `<code>` on the secret page).
fn text_of(html: &str, id: &str) -> String {
    let marker = format!(r#"id="{id}" class="secret">"#);
    html.split(&marker).nth(1).unwrap_or_else(|| panic!("no {id} in {html}")).split('<').next().unwrap().to_string()
}

/// A machine client's form: the client_credentials grant only, no redirect URI.
fn machine_form<'a>(csrf: &'a str, name: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("csrf", csrf),
        ("name", name),
        ("type", "confidential"),
        ("redirect_uris", ""),
        ("post_logout_redirect_uris", ""),
        ("grant_types", "client_credentials"),
        ("scopes", "roles"),
        ("consent", "required"),
        ("id_token_alg", "RS256"),
        ("backchannel_logout_uri", ""),
    ]
}

async fn client_credentials(app: &TestApp, client_id: &str, secret: &str) -> StatusCode {
    let r = app.client.post(format!("{}/oauth2/token", app.base)).basic_auth(client_id, Some(secret));
    r.form(&[("grant_type", "client_credentials")]).send().await.unwrap().status()
}

/// Registers a client as an operator would, for the tests that are not about registering.
async fn operator_client(app: &TestApp) -> String {
    let settings = ClientSettings {
        name: Some("Grafana".into()),
        redirect_uris: Some(vec!["https://grafana.example.com/cb".into()]),
        ..ClientSettings::default()
    };
    let who = Client { ip: None, user_agent: None };
    app.services.create_client(Actor::Operator, settings, &who).await.unwrap().client.client_id
}

async fn viewers_are_refused_everywhere(app: &TestApp) {
    let id = operator_client(app).await;
    let (viewer, _) = app.signed_in_browser("viewer@example.com").await;
    for path in ["/admin/clients".to_string(), "/admin/clients/new".into(), format!("/admin/clients/{id}")] {
        assert_eq!(page(&viewer, app, &path).await.0, StatusCode::FORBIDDEN, "GET {path}");
    }
    let csrf = csrf_of(&page(&viewer, app, "/account").await.1);
    let mut form = machine_form(&csrf, "Taken over");
    form.push(("confirm", "yes"));
    for path in ["/admin/clients".to_string(), format!("/admin/clients/{id}"), format!("/admin/clients/{id}/secret")]
        .into_iter()
        .chain([format!("/admin/clients/{id}/delete")])
    {
        assert_eq!(post(&viewer, app, &path, &form).await.status(), StatusCode::FORBIDDEN, "POST {path}");
    }
    let clients = app.services.list_clients().await.unwrap();
    assert_eq!(clients.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["Grafana"], "nothing changed");
    let stranger = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = stranger.get(app.url("/admin/clients")).send().await.unwrap();
    assert_eq!((r.status(), location(&r)), (StatusCode::SEE_OTHER, "/login".to_string()));
}
on_both!(viewers_are_refused_everywhere, no_admin_mfa);

async fn admins_register_edit_rotate_and_delete(app: &TestApp) {
    let admin = admin(app).await;
    let b = &admin.browser;
    assert!(page(b, app, "/admin").await.1.contains(r#"href="/admin/clients""#));
    let (status, html) = page(b, app, "/admin/clients/new").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(r#"value="authorization_code" checked"#) && html.contains(r#"value="RS256" selected"#));

    // Register: the secret is on the answer to the POST itself, never in a URL, and works at once.
    let csrf = csrf_of(&html);
    let created = post(b, app, "/admin/clients", &machine_form(&csrf, "Batch <job>")).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    assert!(location(&created).is_empty());
    assert_eq!(created.headers()[header::CACHE_CONTROL], "no-store");
    let html = created.text().await.unwrap();
    assert!(html.contains("Batch &#60;job&#62;") && html.contains(r#"data-copy="client-secret""#));
    let (id, secret) = (text_of(&html, "client-id"), text_of(&html, "client-secret"));
    assert!(secret.len() >= 43, "{secret}");
    assert_eq!(client_credentials(app, &id, &secret).await, StatusCode::OK);
    let (_, list) = page(b, app, "/admin/clients").await;
    let row = list.split("<tr>").find(|row| row.contains(&id)).expect("the client in the list");
    assert!(
        row.contains("confidential") && row.contains("client_credentials") && row.contains("just now</time>"),
        "{row}"
    );
    let (_, edit) = page(b, app, &format!("/admin/clients/{id}")).await;
    assert!(!edit.contains(&secret) && !list.contains(&secret), "shown once");

    // Edit every setting.
    let path = format!("/admin/clients/{id}");
    let uris = "https://app.example.com/cb\r\n  https://app.example.com/cb2\r\n\r\n";
    let form = [
        ("csrf", csrf.as_str()),
        ("name", "Batch 2"),
        ("redirect_uris", uris),
        ("post_logout_redirect_uris", "https://app.example.com/bye"),
        ("grant_types", "client_credentials"),
        ("grant_types", "authorization_code"),
        ("scopes", "openid"),
        ("scopes", "roles"),
        ("consent", "implicit"),
        ("require_mfa", "yes"),
        ("require_pkce", "yes"),
        ("id_token_alg", "ES256"),
        ("backchannel_logout_uri", "https://app.example.com/backchannel"),
    ];
    let saved = post(b, app, &path, &form).await;
    assert_eq!(location(&saved), format!("{path}?done=saved"));
    let shown = expect_json(admin.api(app, &format!("/api/v1/admin/clients/{id}")).await, StatusCode::OK).await;
    let expected = serde_json::json!({
        "name": "Batch 2", "redirect_uris": ["https://app.example.com/cb", "https://app.example.com/cb2"],
        "post_logout_redirect_uris": ["https://app.example.com/bye"],
        "grant_types": ["client_credentials", "authorization_code"], "scopes": ["openid", "roles"],
        "consent": "implicit", "require_mfa": true, "require_pkce": true, "id_token_signed_response_alg": "ES256",
        "backchannel_logout_uri": "https://app.example.com/backchannel", "public": false,
    });
    for (key, value) in expected.as_object().unwrap() {
        assert_eq!(&shown[key], value, "{key}");
    }
    assert!(page(b, app, &format!("{path}?done=saved")).await.1.contains("Saved."));

    // Bad input: the form again with the reason beside the field and what was typed; nothing changed.
    let mut bad = form.to_vec();
    bad[1] = ("name", "Renamed");
    bad[2] = ("redirect_uris", "http://example.com/cb");
    let refused = post(b, app, &path, &bad).await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = refused.text().await.unwrap();
    let error = html.split(r#"id="redirect_uris-error">"#).nth(1).expect("an error by the field");
    assert!(error.starts_with("http://example.com/cb"), "{error}");
    assert!(html.contains(r#"value="Renamed""#) && html.contains(">http://example.com/cb</textarea>"));
    let unchanged = expect_json(admin.api(app, &format!("/api/v1/admin/clients/{id}")).await, StatusCode::OK).await;
    assert_eq!(unchanged, shown);

    // Rotate: the new secret on the answer, the old one refused.
    let rotated = post(b, app, &format!("{path}/secret"), &[("csrf", &csrf)]).await;
    assert_eq!(rotated.status(), StatusCode::OK);
    let new_secret = text_of(&rotated.text().await.unwrap(), "client-secret");
    assert_ne!(new_secret, secret);
    assert_eq!(client_credentials(app, &id, &secret).await, StatusCode::UNAUTHORIZED);
    assert_eq!(client_credentials(app, &id, &new_secret).await, StatusCode::OK);

    // Delete: not without the confirmation.
    let unconfirmed = post(b, app, &format!("{path}/delete"), &[("csrf", &csrf)]).await;
    assert_eq!(unconfirmed.status(), StatusCode::BAD_REQUEST);
    assert!(unconfirmed.text().await.unwrap().contains(r#"id="confirm-error""#));
    assert_eq!(admin.api(app, &format!("/api/v1/admin/clients/{id}")).await.status(), StatusCode::OK);
    let deleted = post(b, app, &format!("{path}/delete"), &[("csrf", &csrf), ("confirm", "yes")]).await;
    assert_eq!(location(&deleted), "/admin/clients?done=deleted");
    assert_eq!(admin.api(app, &format!("/api/v1/admin/clients/{id}")).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(client_credentials(app, &id, &new_secret).await, StatusCode::UNAUTHORIZED);
    assert_eq!(page(b, app, &path).await.0, StatusCode::NOT_FOUND);

    for action in
        ["oauth_client_created", "oauth_client_updated", "oauth_client_secret_rotated", "oauth_client_deleted"]
    {
        let events = admin.api(app, &format!("/api/v1/admin/audit?action={action}")).await;
        let events = expect_json(events, StatusCode::OK).await;
        let events = events.as_array().unwrap();
        assert_eq!(events.len(), 1, "{action}: {events:?}");
        assert_eq!(events[0]["detail"]["client_id"], id.as_str());
        assert_eq!(events[0]["detail"]["by"], events[0]["user_id"], "the acting admin");
    }
}
on_both!(admins_register_edit_rotate_and_delete, no_admin_mfa);

async fn public_clients_and_bad_registrations(app: &TestApp) {
    let admin = admin(app).await;
    let csrf = admin.csrf(app).await;
    let mut form = machine_form(&csrf, "");
    let refused = post(&admin.browser, app, "/admin/clients", &form).await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.text().await.unwrap().contains(r#"id="name-error""#));
    form[1] = ("name", "SPA");
    form[2] = ("type", "public");
    form[5] = ("grant_types", "authorization_code");
    form[3] = ("redirect_uris", "https://spa.example.com/cb");
    let refused = post(&admin.browser, app, "/admin/clients", &form).await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY, "a public client must use PKCE");
    let html = refused.text().await.unwrap();
    assert!(html.contains(r#"id="require_pkce-error""#) && html.contains(r#"<option value="public" selected>"#));
    assert!(app.services.list_clients().await.unwrap().is_empty());
    form.push(("require_pkce", "yes"));
    let created = post(&admin.browser, app, "/admin/clients", &form).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let html = created.text().await.unwrap();
    assert!(!html.contains("client-secret") && html.contains("no secret"));
    let id = text_of(&html, "client-id");
    let (_, edit) = page(&admin.browser, app, &format!("/admin/clients/{id}")).await;
    assert!(edit.contains("public (no secret") && !edit.contains("/secret\""), "no rotation for a public client");
    let rotate = post(&admin.browser, app, &format!("/admin/clients/{id}/secret"), &[("csrf", &csrf)]).await;
    assert_eq!(rotate.status(), StatusCode::NOT_FOUND);
    assert_eq!(page(&admin.browser, app, "/admin/clients/no-such-client").await.0, StatusCode::NOT_FOUND);
}
on_both!(public_clients_and_bad_registrations, no_admin_mfa);

async fn forms_without_csrf_change_nothing(app: &TestApp) {
    let id = operator_client(app).await;
    let admin = admin(app).await;
    let paths = [
        "/admin/clients".to_string(),
        format!("/admin/clients/{id}"),
        format!("/admin/clients/{id}/secret"),
        format!("/admin/clients/{id}/delete"),
    ];
    for forged in [None, Some("forged")] {
        let mut form = machine_form(forged.unwrap_or_default(), "Forged");
        form.push(("confirm", "yes"));
        if forged.is_none() {
            form.remove(0);
        }
        for path in &paths {
            assert_eq!(post(&admin.browser, app, path, &form).await.status(), StatusCode::FORBIDDEN, "{path}");
        }
    }
    let clients = app.services.list_clients().await.unwrap();
    assert_eq!(clients.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["Grafana"]);
    let audit = expect_json(admin.api(app, "/api/v1/admin/audit?action=oauth_client_updated").await, StatusCode::OK);
    assert_eq!(audit.await, serde_json::json!([]));
}
on_both!(forms_without_csrf_change_nothing, no_admin_mfa);
