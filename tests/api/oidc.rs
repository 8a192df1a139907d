//! The OpenID Connect provider over HTTP, module by module after the OpenID Foundation's Basic OP plan
//! (`oidcc-*`), plus the attack cases of SECURITY.md §M.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{DecodingKey, Validation, jwk::Jwk};
use latchkey::service::{admin::Actor, oauth_clients::ClientSettings};
use reqwest::{StatusCode, Url, header};
use serde_json::{Value, json};
use sha2::{Digest, Sha256, Sha512};

use crate::{
    helpers::{PASSWORD, TestApp, csrf_of, expect_json},
    on_both,
};

const REDIRECT: &str = "https://rp.example/cb";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

pub(crate) struct Rp {
    pub id: String,
    pub secret: Option<String>,
}

pub(crate) async fn client(app: &TestApp, settings: Value) -> Rp {
    let mut settings = settings;
    if settings.get("redirect_uris").is_none() {
        settings["redirect_uris"] = json!([REDIRECT]);
    }
    let settings: ClientSettings = serde_json::from_value(settings).unwrap();
    let issued = app.services.create_client(Actor::Operator, settings, &Default::default()).await.unwrap();
    Rp { id: issued.client.client_id, secret: issued.secret }
}

pub(crate) async fn confidential(app: &TestApp) -> Rp {
    client(app, json!({"name": "Test RP"})).await
}

pub(crate) async fn browser(app: &TestApp) -> (reqwest::Client, String) {
    let email = format!("rp-{}@example.com", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let (browser, _) = app.signed_in_browser(&email).await;
    (browser, email)
}

fn authorize_url(app: &TestApp, rp: &Rp, extra: &[(&str, &str)]) -> String {
    let mut params = vec![("client_id", rp.id.as_str()), ("redirect_uri", REDIRECT), ("response_type", "code")];
    params.extend_from_slice(&[("scope", "openid email profile"), ("state", "s1"), ("nonce", "n1")]);
    for (name, value) in extra {
        params.retain(|(n, _)| n != name);
        if !value.is_empty() {
            params.push((name, value));
        }
    }
    format!("{}/oauth2/authorize?{}", app.base, serde_urlencoded::to_string(&params).unwrap())
}

pub(crate) fn location(response: &reqwest::Response) -> Url {
    let to = response.headers().get(header::LOCATION).expect("a redirect").to_str().unwrap();
    Url::parse(to).unwrap_or_else(|_| Url::parse("http://self.invalid").unwrap().join(to).unwrap())
}

pub(crate) fn param(url: &Url, name: &str) -> Option<String> {
    url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// A hidden field's value as the browser would send it.
pub(crate) fn unescape(html: &str) -> String {
    let mut out = String::new();
    let mut rest = html;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let end = rest[at..].find(';').map(|e| at + e).expect("an entity");
        let entity = &rest[at + 1..end];
        let c = match entity {
            "amp" => '&',
            "quot" => '"',
            "lt" => '<',
            "gt" => '>',
            _ if entity.starts_with("#x") => char::from_u32(u32::from_str_radix(&entity[2..], 16).unwrap()).unwrap(),
            _ => char::from_u32(entity[1..].parse().unwrap()).unwrap(),
        };
        out.push(c);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Follows one authorization through consent (if asked) to the client's redirect URI.
async fn code_for(app: &TestApp, browser: &reqwest::Client, url: &str) -> Url {
    let r = browser.get(url).send().await.unwrap();
    let r = if r.status() == StatusCode::OK {
        let page = r.text().await.unwrap();
        assert!(page.contains(r#"name="decision" value="allow""#), "a consent page: {page}");
        let request = page.split(r#"name="request" value=""#).nth(1).unwrap().split('"').next().unwrap();
        let request = unescape(request);
        let form = [("csrf", csrf_of(&page)), ("request", request), ("decision", "allow".into())];
        browser.post(format!("{}/oauth2/consent", app.base)).form(&form).send().await.unwrap()
    } else {
        r
    };
    if r.status() != StatusCode::SEE_OTHER {
        panic!("{} {}", r.status(), r.text().await.unwrap());
    }
    let to = location(&r);
    assert!(to.as_str().starts_with(REDIRECT), "{to}");
    to
}

pub(crate) async fn token_request(app: &TestApp, rp: &Rp, form: &[(&str, &str)], basic: bool) -> reqwest::Response {
    let mut form: Vec<(&str, &str)> = form.to_vec();
    let mut request = app.client.post(format!("{}/oauth2/token", app.base));
    match (&rp.secret, basic) {
        (Some(secret), true) => request = request.basic_auth(&rp.id, Some(secret)),
        (Some(secret), false) => form.extend([("client_id", rp.id.as_str()), ("client_secret", secret.as_str())]),
        (None, _) => form.push(("client_id", rp.id.as_str())),
    }
    request.form(&form).send().await.unwrap()
}

async fn redeem(app: &TestApp, rp: &Rp, code: &str, extra: &[(&str, &str)]) -> reqwest::Response {
    let mut form = vec![("grant_type", "authorization_code"), ("code", code), ("redirect_uri", REDIRECT)];
    form.extend_from_slice(extra);
    token_request(app, rp, &form, true).await
}

pub(crate) async fn tokens_for(app: &TestApp, rp: &Rp, browser: &reqwest::Client, extra: &[(&str, &str)]) -> Value {
    let to = code_for(app, browser, &authorize_url(app, rp, extra)).await;
    let code = param(&to, "code").expect("a code");
    let r = redeem(app, rp, &code, &[]).await;
    assert_eq!(r.headers()[header::CACHE_CONTROL], "no-store");
    expect_json(r, StatusCode::OK).await
}

/// Verifies an ID token against the published JWKS, as a relying party does.
async fn verify_id_token(app: &TestApp, rp: &Rp, id_token: &str) -> Value {
    let header = jsonwebtoken::decode_header(id_token).unwrap();
    let jwks: Value = app.client.get(app.url("/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
    let jwk = jwks["keys"].as_array().unwrap().iter().find(|k| k["kid"] == header.kid.clone().unwrap().as_str());
    let jwk: Jwk = serde_json::from_value(jwk.expect("the kid is published").clone()).unwrap();
    let mut validation = Validation::new(header.alg);
    validation.set_audience(&[&rp.id]);
    validation.set_issuer(&[&app.services.config.issuer]);
    jsonwebtoken::decode::<Value>(id_token, &DecodingKey::from_jwk(&jwk).unwrap(), &validation).expect("valid").claims
}

fn half_hash<D: Digest>(value: &str) -> String {
    let digest = D::digest(value.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..digest.len() / 2])
}

pub(crate) async fn userinfo(app: &TestApp, access_token: &str) -> reqwest::Response {
    app.client.get(format!("{}/oauth2/userinfo", app.base)).bearer_auth(access_token).send().await.unwrap()
}

/// oidcc-discovery-endpoint-verification, SECURITY.md 89 and 94.
async fn discovery_tells_the_truth(app: &TestApp) {
    for path in ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"] {
        let doc = expect_json(app.client.get(app.url(path)).send().await.unwrap(), StatusCode::OK).await;
        assert_eq!(doc["issuer"], app.services.config.issuer.as_str());
        assert_eq!(doc["response_types_supported"], json!(["code"]));
        assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));
        assert_eq!(doc["id_token_signing_alg_values_supported"][0], "RS256");
        assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
        assert_eq!(
            (&doc["backchannel_logout_supported"], &doc["backchannel_logout_session_supported"]),
            (&json!(true), &json!(true))
        );
        let grants = doc["grant_types_supported"].as_array().unwrap();
        assert!(!grants.contains(&json!("implicit")) && !grants.contains(&json!("password")));
        let endpoints =
            ["authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri", "end_session_endpoint"];
        for endpoint in endpoints {
            let url = doc[endpoint].as_str().unwrap();
            assert!(url.starts_with(&app.services.config.issuer), "{endpoint}");
        }
        let jwks: Value = app
            .client
            .get(doc["jwks_uri"].as_str().unwrap().replace(&app.services.config.issuer, &app.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let first = &jwks["keys"][0];
        assert_eq!((&first["kty"], &first["alg"], &first["use"]), (&json!("RSA"), &json!("RS256"), &json!("sig")));
        assert!(first["kid"].is_string() && first.get("d").is_none());
    }
}
on_both!(discovery_tells_the_truth);

/// oidcc-server, oidcc-scope-email/-profile, oidcc-idtoken-signature, oidcc-userinfo-get/-post-header/
/// -post-body, SECURITY.md 94.
async fn the_code_flow_signs_a_person_in(app: &TestApp) {
    let rp = confidential(app).await;
    let (browser, email) = browser(app).await;
    let to = code_for(app, &browser, &authorize_url(app, &rp, &[])).await;
    assert_eq!(param(&to, "state").as_deref(), Some("s1"));
    assert_eq!(param(&to, "iss").as_deref(), Some(app.services.config.issuer.as_str()));
    let r = redeem(app, &rp, &param(&to, "code").unwrap(), &[]).await;
    assert_eq!(r.headers()[header::CACHE_CONTROL], "no-store");
    let tokens = expect_json(r, StatusCode::OK).await;
    assert_eq!(tokens["token_type"], "Bearer");
    assert!(tokens.get("refresh_token").is_none(), "no offline_access, no refresh token");
    let id_token = tokens["id_token"].as_str().unwrap();
    assert_eq!(jsonwebtoken::decode_header(id_token).unwrap().alg, jsonwebtoken::Algorithm::RS256);
    let claims = verify_id_token(app, &rp, id_token).await;
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(claims["nonce"], "n1");
    assert_eq!(claims["azp"], rp.id.as_str());
    assert_eq!(claims["email"], email.as_str());
    assert_eq!(claims["preferred_username"], email.as_str());
    assert_eq!(claims["acr"], "pwd");
    assert_eq!(claims["amr"], json!(["pwd"]));
    assert!(claims["auth_time"].is_i64() && claims["sid"].is_string());
    assert_eq!(claims["at_hash"], half_hash::<Sha256>(access));
    assert!(claims.get("role").is_none(), "no roles scope, no role claim");
    let info = expect_json(userinfo(app, access).await, StatusCode::OK).await;
    assert_eq!((&info["sub"], &info["email"]), (&claims["sub"], &claims["email"]));
    let post_header =
        app.client.post(format!("{}/oauth2/userinfo", app.base)).bearer_auth(access).send().await.unwrap();
    assert_eq!(expect_json(post_header, StatusCode::OK).await["sub"], claims["sub"]);
    let post_body = app
        .client
        .post(format!("{}/oauth2/userinfo", app.base))
        .form(&[("access_token", access)])
        .send()
        .await
        .unwrap();
    assert_eq!(expect_json(post_body, StatusCode::OK).await["sub"], claims["sub"]);
    // An ID token is not an access token; an OAuth access token is not an API token.
    let r = userinfo(app, id_token).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().contains_key(header::WWW_AUTHENTICATE));
    assert_eq!(app.me(access).await.status(), StatusCode::UNAUTHORIZED);
}
on_both!(the_code_flow_signs_a_person_in);

/// oidcc-server-client-secret-post, oidcc-ensure-request-without-nonce-succeeds-for-code-flow,
/// oidcc-ensure-request-with-unknown-parameter-succeeds, oidcc-display-page/-popup, oidcc-ui-locales,
/// oidcc-claims-locales, oidcc-ensure-request-with-acr-values-succeeds, oidcc-login-hint,
/// oidcc-ensure-post-request-succeeds, oidcc-scope-all.
async fn tolerated_variations_succeed(app: &TestApp) {
    let rp = confidential(app).await;
    let (browser, email) = browser(app).await;
    let to = code_for(app, &browser, &authorize_url(app, &rp, &[("nonce", "")])).await;
    let r = token_request(
        app,
        &rp,
        &[("grant_type", "authorization_code"), ("code", &param(&to, "code").unwrap()), ("redirect_uri", REDIRECT)],
        false,
    )
    .await;
    let claims = verify_id_token(app, &rp, expect_json(r, StatusCode::OK).await["id_token"].as_str().unwrap()).await;
    assert!(claims.get("nonce").is_none());
    for extra in [
        [("extra", "foobar"), ("display", "page")],
        [("display", "popup"), ("ui_locales", "se")],
        [("claims_locales", "se"), ("acr_values", "1 2")],
        [("login_hint", email.as_str()), ("scope", "openid email profile roles offline_access")],
    ] {
        let to = code_for(app, &browser, &authorize_url(app, &rp, &extra)).await;
        assert!(param(&to, "code").is_some(), "{extra:?}: {to}");
    }
    let tokens = tokens_for(app, &rp, &browser, &[("scope", "openid roles")]).await;
    let claims = verify_id_token(app, &rp, tokens["id_token"].as_str().unwrap()).await;
    assert_eq!((&claims["role"], &claims["orgs"]), (&json!("viewer"), &json!([])));
    // oidcc-id-token-hint (with prompt=none, signed in) and oidcc-claims-essential (claims by scope).
    let hint = tokens["id_token"].as_str().unwrap();
    let essential = r#"{"userinfo":{"name":{"essential":true}}}"#;
    for extra in [[("id_token_hint", hint), ("prompt", "none")], [("claims", essential), ("scope", "openid profile")]] {
        let r = browser.get(authorize_url(app, &rp, &extra)).send().await.unwrap();
        assert!(param(&location(&r), "code").is_some(), "{extra:?}");
    }
    // The request in a POST body.
    let url = authorize_url(app, &rp, &[]);
    let (_, query) = url.split_once('?').unwrap();
    let r = browser
        .post(format!("{}/oauth2/authorize", app.base))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(query.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(param(&location(&r), "code").is_some());
}
on_both!(tolerated_variations_succeed);

/// oidcc-response-type-missing, SECURITY.md 89: errors after the client is known go back to it.
async fn request_errors_go_back_to_the_client(app: &TestApp) {
    let rp = client(app, json!({"name": "Test RP", "scopes": ["openid", "email", "profile"]})).await;
    let (browser, _) = browser(app).await;
    for (extra, error) in [
        (vec![("response_type", "")], "invalid_request"),
        (vec![("response_type", "token")], "unsupported_response_type"),
        (vec![("response_type", "id_token token")], "unsupported_response_type"),
        (vec![("scope", "openid roles")], "invalid_scope"),
        (vec![("prompt", "bogus")], "invalid_request"),
    ] {
        let r = browser.get(authorize_url(app, &rp, &extra)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{extra:?}");
        let to = location(&r);
        assert!(to.as_str().starts_with(REDIRECT));
        assert_eq!(param(&to, "error").as_deref(), Some(error), "{extra:?}");
        assert_eq!(param(&to, "state").as_deref(), Some("s1"));
        assert_eq!(param(&to, "iss").as_deref(), Some(app.services.config.issuer.as_str()));
        let description = param(&to, "error_description").unwrap();
        assert!(description.is_ascii() && !description.contains('"') && !description.contains('\\'));
    }
    // A repeated parameter.
    let twice = format!("{}&state=again", authorize_url(app, &rp, &[]));
    assert_eq!(
        param(&location(&browser.get(twice).send().await.unwrap()), "error").as_deref(),
        Some("invalid_request")
    );
}
on_both!(request_errors_go_back_to_the_client);

/// oidcc-ensure-registered-redirect-uri, SECURITY.md 86: never a redirect to an unregistered address.
async fn bad_clients_and_redirect_uris_are_shown_not_followed(app: &TestApp) {
    let rp = confidential(app).await;
    let (browser, _) = browser(app).await;
    for uri in [
        "https://rp.example/cb/",
        "https://rp.example/cb?x=1",
        "https://rp.example/cb/../evil",
        "https://RP.example/cb",
        "https://rp.example.evil.com/cb",
        "http://rp.example/cb",
        "https://rp.example/cb#x",
        "",
    ] {
        let r = browser.get(authorize_url(app, &rp, &[("redirect_uri", uri)])).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{uri}");
        assert!(r.headers().get(header::LOCATION).is_none());
        assert!(r.text().await.unwrap().contains("not registered"));
    }
    let stranger = Rp { id: "no-such-client".into(), secret: None };
    let r = browser.get(authorize_url(app, &stranger, &[])).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.headers().get(header::LOCATION).is_none());
    // SECURITY.md 96: no CORS at the authorization endpoint.
    let r = app
        .client
        .request(reqwest::Method::OPTIONS, authorize_url(app, &rp, &[]))
        .header("Origin", "https://evil.example")
        .header("Access-Control-Request-Method", "GET")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
}
on_both!(bad_clients_and_redirect_uris_are_shown_not_followed);

/// oidcc-prompt-none-not-logged-in (128-character state), oidcc-prompt-none-logged-in, oidcc-prompt-login,
/// and signing in through the ordinary pages in the middle of a flow (SECURITY.md 96: 303 after the POST).
async fn prompts_and_sign_in_through_the_pages(app: &TestApp) {
    let rp = confidential(app).await;
    let state = "s".repeat(128);
    let anonymous =
        reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = anonymous.get(authorize_url(app, &rp, &[("prompt", "none"), ("state", &state)])).send().await.unwrap();
    let to = location(&r);
    assert_eq!(param(&to, "error").as_deref(), Some("login_required"));
    assert_eq!(param(&to, "state").as_deref(), Some(state.as_str()));
    // Not signed in: to the sign-in page, and back after it.
    let email = format!("flow-{}@example.com", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    assert_eq!(app.register(&email, PASSWORD).await.status(), StatusCode::CREATED);
    let r = anonymous.get(authorize_url(app, &rp, &[("login_hint", &email)])).send().await.unwrap();
    let login = location(&r);
    assert_eq!(login.path(), "/login");
    let next = param(&login, "next").unwrap();
    assert!(next.starts_with("/oauth2/authorize?"));
    // oidcc-login-hint: the sign-in form comes filled in.
    let hinted = anonymous.get(login.as_str().replace("http://self.invalid", &app.base)).send().await.unwrap();
    assert!(hinted.text().await.unwrap().contains(&format!(r#"value="{email}""#)));
    let page = anonymous
        .get(format!("{}/login?next={}", app.base, urlencode(&next)))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let form = [("csrf", csrf_of(&page)), ("username", email.clone()), ("password", PASSWORD.into())];
    let r = anonymous.post(format!("{}/login?next={}", app.base, urlencode(&next))).form(&form).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "303, never 307, after the credentials");
    assert_eq!(location(&r).path(), "/oauth2/authorize");
    let first = code_for(app, &anonymous, &format!("{}{next}", app.base)).await;
    let code = param(&first, "code").unwrap();
    let tokens = expect_json(redeem(app, &rp, &code, &[]).await, StatusCode::OK).await;
    let first_auth =
        verify_id_token(app, &rp, tokens["id_token"].as_str().unwrap()).await["auth_time"].as_i64().unwrap();
    // Signed in and consented: prompt=none answers with a code.
    let r = anonymous.get(authorize_url(app, &rp, &[("prompt", "none")])).send().await.unwrap();
    assert!(param(&location(&r), "code").is_some(), "{}", location(&r));
    // prompt=login: the sign-in form again, even though signed in; then a later auth_time.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let r = anonymous.get(authorize_url(app, &rp, &[("prompt", "login")])).send().await.unwrap();
    let login = location(&r);
    assert_eq!((login.path(), param(&login, "again").as_deref()), ("/login", Some("1")));
    let next = param(&login, "next").unwrap();
    let page = anonymous.get(login.as_str().replace("http://self.invalid", &app.base)).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK, "the form is shown to a signed-in browser");
    let page = page.text().await.unwrap();
    let form = [("csrf", csrf_of(&page)), ("username", email.clone()), ("password", PASSWORD.into())];
    let r = anonymous.post(format!("{}/login?next={}", app.base, urlencode(&next))).form(&form).send().await.unwrap();
    let back = location(&r);
    let to = code_for(app, &anonymous, &format!("{}{}?{}", app.base, back.path(), back.query().unwrap())).await;
    let tokens = expect_json(redeem(app, &rp, &param(&to, "code").unwrap(), &[]).await, StatusCode::OK).await;
    let second_auth =
        verify_id_token(app, &rp, tokens["id_token"].as_str().unwrap()).await["auth_time"].as_i64().unwrap();
    assert!(second_auth > first_auth);
    // oidcc-max-age-1: older than a second sends to sign in; oidcc-max-age-10000 does not.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let r = anonymous.get(authorize_url(app, &rp, &[("max_age", "1")])).send().await.unwrap();
    assert_eq!(location(&r).path(), "/login");
    let r = anonymous.get(authorize_url(app, &rp, &[("max_age", "10000")])).send().await.unwrap();
    assert!(param(&location(&r), "code").is_some());
}
on_both!(prompts_and_sign_in_through_the_pages);

fn urlencode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// oidcc-codereuse, SECURITY.md 88 and 91.
async fn codes_are_single_use_and_bound_to_their_client(app: &TestApp) {
    let rp = confidential(app).await;
    let other = confidential(app).await;
    let (browser, _) = browser(app).await;
    let to = code_for(app, &browser, &authorize_url(app, &rp, &[])).await;
    let code = param(&to, "code").unwrap();
    let stolen = expect_json(redeem(app, &other, &code, &[]).await, StatusCode::BAD_REQUEST).await;
    assert_eq!(stolen["error"], "invalid_grant");
    let tokens = expect_json(redeem(app, &rp, &code, &[]).await, StatusCode::OK).await;
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(userinfo(app, access).await.status(), StatusCode::OK);
    let again = expect_json(redeem(app, &rp, &code, &[]).await, StatusCode::BAD_REQUEST).await;
    assert_eq!(again["error"], "invalid_grant");
    let description = again["error_description"].as_str().unwrap();
    assert!(description.is_ascii() && !description.contains('"') && !description.contains('\\'));
    assert_eq!(userinfo(app, access).await.status(), StatusCode::UNAUTHORIZED, "reuse revokes what the code gave");
    // Client authentication and the error format.
    let wrong = Rp { id: rp.id.clone(), secret: Some("not-the-secret".into()) };
    let r = redeem(app, &wrong, "x", &[]).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers()[header::WWW_AUTHENTICATE].to_str().unwrap().starts_with("Basic"));
    assert!(r.headers()[header::CONTENT_TYPE].to_str().unwrap().starts_with("application/json"));
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_client");
    let r = token_request(app, &rp, &[("code", "x")], true).await;
    assert_eq!(expect_json(r, StatusCode::BAD_REQUEST).await["error"], "invalid_request");
    let r = token_request(app, &rp, &[("grant_type", "password"), ("username", "a"), ("password", "b")], true).await;
    assert_eq!(expect_json(r, StatusCode::BAD_REQUEST).await["error"], "unsupported_grant_type");
}
on_both!(codes_are_single_use_and_bound_to_their_client);

/// A code redeemed after its 60 seconds is refused (oidcc-codereuse-30seconds waits half of that).
async fn expired_codes_are_refused(app: &TestApp) {
    let rp = confidential(app).await;
    let (browser, _) = browser(app).await;
    let to = code_for(app, &browser, &authorize_url(app, &rp, &[])).await;
    let code = param(&to, "code").unwrap();
    let hash = latchkey::domain::random::token_digest(&code);
    sqlx::query("UPDATE oauth_codes SET expires_at = 0 WHERE code_hash = $1")
        .bind(hash)
        .execute(app.services.db.pool())
        .await
        .unwrap();
    let r = redeem(app, &rp, &code, &[]).await;
    assert_eq!(expect_json(r, StatusCode::BAD_REQUEST).await["error"], "invalid_grant");
}
on_both!(expired_codes_are_refused);

/// oidcc-ensure-request-with-valid-pkce-succeeds, SECURITY.md 87.
async fn pkce_is_required_of_public_clients_and_checked(app: &TestApp) {
    let public = client(app, json!({"name": "SPA", "public": true, "require_pkce": true})).await;
    assert!(public.secret.is_none());
    let (browser, _) = browser(app).await;
    let r = browser.get(authorize_url(app, &public, &[])).send().await.unwrap();
    assert_eq!(param(&location(&r), "error").as_deref(), Some("invalid_request"));
    let plain = [("code_challenge", CHALLENGE), ("code_challenge_method", "plain")];
    let r = browser.get(authorize_url(app, &public, &plain)).send().await.unwrap();
    assert_eq!(param(&location(&r), "error").as_deref(), Some("invalid_request"));
    let s256 = [("code_challenge", CHALLENGE), ("code_challenge_method", "S256")];
    let code = param(&code_for(app, &browser, &authorize_url(app, &public, &s256)).await, "code").unwrap();
    let wrong = "x".repeat(43);
    let r = redeem(app, &public, &code, &[("code_verifier", &wrong)]).await;
    assert_eq!(expect_json(r, StatusCode::BAD_REQUEST).await["error"], "invalid_grant");
    let code = param(&code_for(app, &browser, &authorize_url(app, &public, &s256)).await, "code").unwrap();
    let r = redeem(app, &public, &code, &[("code_verifier", VERIFIER)]).await;
    assert!(expect_json(r, StatusCode::OK).await["id_token"].is_string());
    // A confidential client that sent no challenge may not send a verifier.
    let rp = confidential(app).await;
    let code = param(&code_for(app, &browser, &authorize_url(app, &rp, &[])).await, "code").unwrap();
    let r = redeem(app, &rp, &code, &[("code_verifier", VERIFIER)]).await;
    assert_eq!(expect_json(r, StatusCode::BAD_REQUEST).await["error"], "invalid_grant");
}
on_both!(pkce_is_required_of_public_clients_and_checked);

/// oidcc-refresh-token, SECURITY.md 90.
async fn refresh_tokens_rotate_and_reuse_revokes(app: &TestApp) {
    let rp = confidential(app).await;
    let other = confidential(app).await;
    let (browser, _) = browser(app).await;
    let offline = [("scope", "openid email offline_access"), ("prompt", "consent")];
    let first = tokens_for(app, &rp, &browser, &offline).await;
    let rt1 = first["refresh_token"].as_str().expect("offline_access with prompt=consent gives a refresh token");
    let id1 = verify_id_token(app, &rp, first["id_token"].as_str().unwrap()).await;
    let r = token_request(app, &other, &[("grant_type", "refresh_token"), ("refresh_token", rt1)], true).await;
    assert_eq!(expect_json(r, StatusCode::BAD_REQUEST).await["error"], "invalid_grant", "another client's token");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let r = token_request(app, &rp, &[("grant_type", "refresh_token"), ("refresh_token", rt1)], false).await;
    let second = expect_json(r, StatusCode::OK).await;
    let id2 = verify_id_token(app, &rp, second["id_token"].as_str().unwrap()).await;
    for claim in ["iss", "sub", "aud", "azp", "auth_time"] {
        assert_eq!(id1[claim], id2[claim], "{claim}");
    }
    assert!(id2["iat"].as_i64() > id1["iat"].as_i64());
    let rt2 = second["refresh_token"].as_str().unwrap();
    assert_ne!(rt1, rt2);
    let r = token_request(app, &rp, &[("grant_type", "refresh_token"), ("refresh_token", rt1)], true).await;
    assert_eq!(expect_json(r, StatusCode::BAD_REQUEST).await["error"], "invalid_grant");
    let r = token_request(app, &rp, &[("grant_type", "refresh_token"), ("refresh_token", rt2)], true).await;
    assert_eq!(expect_json(r, StatusCode::BAD_REQUEST).await["error"], "invalid_grant", "the family is revoked");
    assert_eq!(userinfo(app, second["access_token"].as_str().unwrap()).await.status(), StatusCode::UNAUTHORIZED);
    // offline_access is granted again without asking once consented to; without prompt=consent at first,
    // never.
    let third = tokens_for(app, &rp, &browser, &[("scope", "openid offline_access")]).await;
    assert!(third["refresh_token"].is_string());
    let fresh = confidential(app).await;
    let no_prompt = tokens_for(app, &fresh, &browser, &[("scope", "openid offline_access")]).await;
    assert!(no_prompt.get("refresh_token").is_none());
    assert_eq!(no_prompt["scope"], "openid");
}
on_both!(refresh_tokens_rotate_and_reuse_revokes);

/// A grant belongs to the browser session that approved it: signing out ends its tokens.
async fn signing_out_ends_the_grants(app: &TestApp) {
    let rp = confidential(app).await;
    let (browser, _) = browser(app).await;
    let tokens = tokens_for(app, &rp, &browser, &[("scope", "openid offline_access"), ("prompt", "consent")]).await;
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(userinfo(app, access).await.status(), StatusCode::OK);
    let account = browser.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
    let r = browser.post(app.url("/logout")).form(&[("csrf", csrf_of(&account))]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(userinfo(app, access).await.status(), StatusCode::UNAUTHORIZED);
    let rt = tokens["refresh_token"].as_str().unwrap();
    let r = token_request(app, &rp, &[("grant_type", "refresh_token"), ("refresh_token", rt)], true).await;
    assert_eq!(expect_json(r, StatusCode::BAD_REQUEST).await["error"], "invalid_grant");
    // Another instance, or this one after the first minute, learns it from the database: the grant of the
    // ended session stays refused for as long as its access tokens live.
    let fresh = latchkey::service::revocation::Revocations::new(&app.services.config);
    fresh.sync(&app.services.db).await.unwrap();
    let payload = URL_SAFE_NO_PAD.decode(access.split('.').nth(1).unwrap()).unwrap();
    let grant: uuid::Uuid =
        serde_json::from_slice::<Value>(&payload).unwrap()["grant_id"].as_str().unwrap().parse().unwrap();
    assert!(fresh.is_revoked(grant));
}
on_both!(signing_out_ends_the_grants);

/// Signing in again (prompt=login) keeps the applications the browser approved, and signing out then ends
/// them: the grants move to the new session and the old one ends.
async fn signing_in_again_keeps_the_apps(app: &TestApp) {
    let rp = confidential(app).await;
    let other = confidential(app).await;
    let (browser, email) = browser(app).await;
    let offline = [("scope", "openid offline_access"), ("prompt", "consent")];
    let kept = tokens_for(app, &rp, &browser, &offline).await;
    let r = browser.get(authorize_url(app, &other, &[("prompt", "login")])).send().await.unwrap();
    let login = location(&r);
    let next = param(&login, "next").unwrap();
    let page = browser.get(format!("{}/login?next={}&again=1", app.base, urlencode(&next))).send().await.unwrap();
    let page = page.text().await.unwrap();
    let form = [("csrf", csrf_of(&page)), ("username", email), ("password", PASSWORD.into())];
    let r = browser.post(format!("{}/login?next={}", app.base, urlencode(&next))).form(&form).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let rt = kept["refresh_token"].as_str().unwrap();
    let r = token_request(app, &rp, &[("grant_type", "refresh_token"), ("refresh_token", rt)], true).await;
    let renewed = expect_json(r, StatusCode::OK).await;
    let account = browser.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
    browser.post(app.url("/logout")).form(&[("csrf", csrf_of(&account))]).send().await.unwrap();
    let rt = renewed["refresh_token"].as_str().unwrap();
    let r = token_request(app, &rp, &[("grant_type", "refresh_token"), ("refresh_token", rt)], true).await;
    assert_eq!(expect_json(r, StatusCode::BAD_REQUEST).await["error"], "invalid_grant");
}
on_both!(signing_in_again_keeps_the_apps);

/// Consent: named client and scopes, deny, remembered, asked again with prompt=consent; implicit clients
/// never ask (SECURITY.md 95).
async fn consent_is_asked_remembered_and_refusable(app: &TestApp) {
    let rp = confidential(app).await;
    let (browser, _) = browser(app).await;
    let page = browser.get(authorize_url(app, &rp, &[])).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Test RP") && page.contains("See your email address"));
    let request = unescape(page.split(r#"name="request" value=""#).nth(1).unwrap().split('"').next().unwrap());
    let form = [("csrf", csrf_of(&page)), ("request", request.clone()), ("decision", "deny".into())];
    let r = browser.post(format!("{}/oauth2/consent", app.base)).form(&form).send().await.unwrap();
    assert_eq!(param(&location(&r), "error").as_deref(), Some("access_denied"));
    let form = [("csrf", "wrong".to_string()), ("request", request), ("decision", "allow".into())];
    let r = browser.post(format!("{}/oauth2/consent", app.base)).form(&form).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "the consent form checks CSRF");
    code_for(app, &browser, &authorize_url(app, &rp, &[])).await;
    let r = browser.get(authorize_url(app, &rp, &[])).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "remembered");
    let r = browser.get(authorize_url(app, &rp, &[("prompt", "consent")])).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "asked again");
    let r = browser
        .get(authorize_url(app, &rp, &[("scope", "openid email profile roles"), ("prompt", "none")]))
        .send()
        .await
        .unwrap();
    assert_eq!(param(&location(&r), "error").as_deref(), Some("consent_required"), "a wider scope asks again");
    let first_party = client(app, json!({"name": "Own app", "consent": "implicit"})).await;
    let r = browser.get(authorize_url(app, &first_party, &[])).send().await.unwrap();
    assert!(param(&location(&r), "code").is_some());
    let narrow = client(app, json!({"name": "Narrow", "scopes": ["openid", "profile"]})).await;
    let r = browser.get(authorize_url(app, &narrow, &[("scope", "openid email")])).send().await.unwrap();
    assert_eq!(param(&location(&r), "error").as_deref(), Some("invalid_scope"));
}
on_both!(consent_is_asked_remembered_and_refusable);

/// A client marked require_mfa gets only sessions that passed a second factor.
async fn a_client_can_require_a_second_factor(app: &TestApp) {
    let rp = client(app, json!({"name": "Vault", "require_mfa": true, "consent": "implicit"})).await;
    let (browser, _) = browser(app).await;
    let r = browser.get(authorize_url(app, &rp, &[])).send().await.unwrap();
    assert_eq!(location(&r).path(), "/login/mfa");
    let r = browser.get(authorize_url(app, &rp, &[("prompt", "none")])).send().await.unwrap();
    assert_eq!(param(&location(&r), "error").as_deref(), Some("interaction_required"));
    let (mut authenticator, _) = app.enable_mfa_in_browser(&browser).await;
    let page = browser.get(app.url("/login/mfa")).send().await.unwrap().text().await.unwrap();
    let form = [("csrf", csrf_of(&page)), ("code", authenticator.next_code().await)];
    let r = browser.post(app.url("/login/mfa")).form(&form).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let tokens = tokens_for(app, &rp, &browser, &[]).await;
    let claims = verify_id_token(app, &rp, tokens["id_token"].as_str().unwrap()).await;
    assert_eq!(claims["acr"], "mfa");
}
on_both!(a_client_can_require_a_second_factor);

/// id_token_signed_response_alg: EdDSA and ES256 per client, at_hash with the algorithm's hash; and
/// response_mode=form_post.
async fn other_algorithms_and_form_post(app: &TestApp) {
    let (browser, _) = browser(app).await;
    for (alg, sha512) in [("EdDSA", true), ("ES256", false)] {
        let rp = client(app, json!({"name": alg, "id_token_signed_response_alg": alg, "consent": "implicit"})).await;
        let tokens = tokens_for(app, &rp, &browser, &[]).await;
        let id_token = tokens["id_token"].as_str().unwrap();
        assert_eq!(jsonwebtoken::decode_header(id_token).unwrap().alg.to_owned(), alg.parse().unwrap());
        let claims = verify_id_token(app, &rp, id_token).await;
        let access = tokens["access_token"].as_str().unwrap();
        let expected = if sha512 { half_hash::<Sha512>(access) } else { half_hash::<Sha256>(access) };
        assert_eq!(claims["at_hash"], expected);
    }
    let rp = client(app, json!({"name": "Form post", "consent": "implicit"})).await;
    let r = browser.get(authorize_url(app, &rp, &[("response_mode", "form_post")])).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let csp = r.headers()[header::CONTENT_SECURITY_POLICY].to_str().unwrap().to_string();
    assert!(csp.contains("form-action https://rp.example") && csp.contains("frame-ancestors 'none'"), "{csp}");
    let page = r.text().await.unwrap();
    assert!(page.contains(r#"action="https://rp.example/cb""#) && page.contains(r#"name="code""#));
    assert!(page.contains(r#"name="state" value="s1""#) && page.contains(r#"name="iss""#));
}
on_both!(other_algorithms_and_form_post);

/// The admin API for clients: create (secret shown once), list, show, change, rotate the secret, delete.
async fn admins_register_clients(app: &TestApp) {
    let email = format!("admin-{}@example.com", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    app.services
        .create_user(
            &email,
            None,
            latchkey::domain::roles::Role::Admin,
            latchkey::service::accounts::InitialPassword::Plain(PASSWORD),
        )
        .await
        .unwrap();
    let admin =
        crate::helpers::token(&expect_json(app.login(&email, PASSWORD).await, StatusCode::OK).await, "access_token");
    let url = app.url("/api/v1/admin/clients");
    let r = app
        .client
        .post(&url)
        .bearer_auth(&admin)
        .json(&json!({"name": "Grafana", "redirect_uris": ["http://grafana.example/cb"]}))
        .send()
        .await
        .unwrap();
    let body = expect_json(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(body["details"][0]["field"], "redirect_uris");
    let r = app
        .client
        .post(&url)
        .bearer_auth(&admin)
        .json(&json!({"name": "Grafana", "redirect_uris": [REDIRECT]}))
        .send()
        .await
        .unwrap();
    let created = expect_json(r, StatusCode::CREATED).await;
    let id = created["client_id"].as_str().unwrap().to_string();
    let secret = created["client_secret"].as_str().unwrap().to_string();
    assert!(URL_SAFE_NO_PAD.decode(&secret).unwrap().len() >= 32, "a secret of at least 256 bits");
    assert_eq!(created["scopes"], json!(["openid", "profile", "email", "offline_access", "roles"]));
    let listed = expect_json(app.get_bearer("/api/v1/admin/clients", &admin).await, StatusCode::OK).await;
    assert!(listed.as_array().unwrap().iter().all(|c| c.get("client_secret").is_none()));
    let shown = expect_json(app.get_bearer(&format!("/api/v1/admin/clients/{id}"), &admin).await, StatusCode::OK).await;
    assert_eq!(shown["name"], "Grafana");
    let r = app
        .client
        .patch(format!("{url}/{id}"))
        .bearer_auth(&admin)
        .json(&json!({"consent": "implicit", "require_mfa": true}))
        .send()
        .await
        .unwrap();
    let changed = expect_json(r, StatusCode::OK).await;
    assert_eq!((&changed["consent"], &changed["require_mfa"]), (&json!("implicit"), &json!(true)));
    let rotated =
        expect_json(app.post_bearer(&format!("/api/v1/admin/clients/{id}/secret"), &admin).await, StatusCode::OK).await;
    let old = Rp { id: id.clone(), secret: Some(secret) };
    let r = token_request(app, &old, &[("grant_type", "refresh_token"), ("refresh_token", "x")], true).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "the old secret stops working");
    let new = Rp { id: id.clone(), secret: Some(rotated["client_secret"].as_str().unwrap().into()) };
    let r = token_request(app, &new, &[("grant_type", "refresh_token"), ("refresh_token", "x")], true).await;
    assert_eq!(expect_json(r, StatusCode::BAD_REQUEST).await["error"], "invalid_grant");
    let r = app.client.delete(format!("{url}/{id}")).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.get_bearer(&format!("/api/v1/admin/clients/{id}"), &admin).await.status(), StatusCode::NOT_FOUND);
    let (_, viewer) = app.new_user().await;
    let viewer = crate::helpers::token(&viewer, "access_token");
    assert_eq!(app.get_bearer("/api/v1/admin/clients", &viewer).await.status(), StatusCode::FORBIDDEN);
    let audit: Vec<String> =
        sqlx::query_scalar("SELECT action FROM audit_events WHERE action LIKE 'oauth_client%' ORDER BY at")
            .fetch_all(app.services.db.pool())
            .await
            .unwrap();
    assert_eq!(
        audit,
        ["oauth_client_created", "oauth_client_updated", "oauth_client_secret_rotated", "oauth_client_deleted"]
    );
}
on_both!(admins_register_clients, |c| c.admin_require_mfa = false);

/// Client credentials: a token for the client itself, within its scopes, that names no person.
async fn client_credentials_are_for_the_client_itself(app: &TestApp) {
    let machine = client(
        app,
        json!({"name": "Batch", "grant_types": ["client_credentials"], "scopes": ["roles"], "redirect_uris": []}),
    )
    .await;
    let r = token_request(app, &machine, &[("grant_type", "client_credentials")], true).await;
    let tokens = expect_json(r, StatusCode::OK).await;
    assert!(tokens.get("refresh_token").is_none() && tokens.get("id_token").is_none());
    let claims: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD.decode(tokens["access_token"].as_str().unwrap().split('.').nth(1).unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!((&claims["sub"], &claims["client_id"]), (&json!(machine.id), &json!(machine.id)));
    assert_eq!(userinfo(app, tokens["access_token"].as_str().unwrap()).await.status(), StatusCode::UNAUTHORIZED);
    let r = token_request(app, &machine, &[("grant_type", "client_credentials"), ("scope", "openid")], true).await;
    assert_eq!(expect_json(r, StatusCode::BAD_REQUEST).await["error"], "invalid_scope");
    let rp = confidential(app).await;
    let r = token_request(app, &rp, &[("grant_type", "client_credentials")], true).await;
    assert_eq!(expect_json(r, StatusCode::BAD_REQUEST).await["error"], "unauthorized_client");
}
on_both!(client_credentials_are_for_the_client_itself);

async fn published_kids(app: &TestApp) -> Vec<String> {
    let jwks =
        expect_json(app.client.get(app.url("/.well-known/jwks.json")).send().await.unwrap(), StatusCode::OK).await;
    jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_string()).collect()
}

pub(crate) async fn eventually<F: std::future::Future<Output = bool>>(what: &str, check: impl Fn() -> F) {
    for _ in 0..50 {
        if check().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{what} did not happen within 5 s");
}

/// oidcc-server-rotate-keys, end to end: after `keys rotate` (another process, here the same function) the
/// running server signs with the new keys, still accepts tokens of the old ones and publishes them until
/// those tokens have expired, then drops them.
async fn rotated_keys_are_picked_up_and_retired(app: &TestApp) {
    let rp = confidential(app).await;
    let (browser, _) = browser(app).await;
    let before = tokens_for(app, &rp, &browser, &[]).await;
    let kid_of = |token: &serde_json::Value| jsonwebtoken::decode_header(token.as_str().unwrap()).unwrap().kid.unwrap();
    let old_kid = kid_of(&before["id_token"]);
    let old_access = before["access_token"].as_str().unwrap();
    let new = latchkey::service::keys::rotate(&app.services.db, &app.services.sealer).await.unwrap();
    assert!(!new.contains(&old_kid));
    eventually("the new keys being published", || async { published_kids(app).await.len() == 6 }).await;
    let kids = published_kids(app).await;
    assert!(kids.contains(&old_kid) && new.iter().all(|k| kids.contains(k)));
    assert!(new.contains(&kids[0]), "the new RS256 key comes first: {kids:?}");
    let after = tokens_for(app, &rp, &browser, &[]).await;
    assert!(new.contains(&kid_of(&after["id_token"])) && new.contains(&kid_of(&after["access_token"])));
    assert_eq!(userinfo(app, old_access).await.status(), StatusCode::OK, "the old key still verifies");
    let (_, api) = app.new_user().await;
    assert!(new.contains(&kid_of(&api["access_token"])), "API tokens use the new Ed25519 key");

    // Once the last token an old key signed has expired, the key leaves the ring.
    sqlx::query("UPDATE signing_keys SET retired_at = retired_at - 100000000 WHERE retired_at IS NOT NULL")
        .execute(app.services.db.pool())
        .await
        .unwrap();
    eventually("the old keys leaving the JWKS", || async { published_kids(app).await.len() == 3 }).await;
    assert!(!published_kids(app).await.contains(&old_kid));
    assert_eq!(userinfo(app, old_access).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(userinfo(app, after["access_token"].as_str().unwrap()).await.status(), StatusCode::OK);
}
on_both!(rotated_keys_are_picked_up_and_retired);

async fn introspect(app: &TestApp, rp: &Rp, token: &str) -> reqwest::Response {
    token_at(app, "/oauth2/introspect", rp, token).await
}

async fn token_at(app: &TestApp, path: &str, rp: &Rp, token: &str) -> reqwest::Response {
    let mut request = app.client.post(format!("{}{path}", app.base));
    if let Some(secret) = &rp.secret {
        request = request.basic_auth(&rp.id, Some(secret));
    }
    let mut form = vec![("token", token.to_string())];
    if rp.secret.is_none() {
        form.push(("client_id", rp.id.clone()));
    }
    request.form(&form).send().await.unwrap()
}

/// SECURITY.md 93: only authenticated confidential clients introspect; inactive tokens reveal nothing.
async fn introspection_answers_resource_servers(app: &TestApp) {
    let rp = confidential(app).await;
    let resource_server =
        client(app, json!({"name": "API", "grant_types": ["client_credentials"], "redirect_uris": []})).await;
    let (browser, _) = browser(app).await;
    let tokens = tokens_for(app, &rp, &browser, &[("scope", "openid offline_access"), ("prompt", "consent")]).await;
    let access = tokens["access_token"].as_str().unwrap();
    let r = app.client.post(format!("{}/oauth2/introspect", app.base)).form(&[("token", access)]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let public = client(app, json!({"name": "SPA", "public": true, "require_pkce": true})).await;
    assert_eq!(introspect(app, &public, access).await.status(), StatusCode::UNAUTHORIZED);
    let active = expect_json(introspect(app, &resource_server, access).await, StatusCode::OK).await;
    assert_eq!((&active["active"], &active["client_id"], &active["aud"]), (&json!(true), &json!(rp.id), &json!(rp.id)));
    for claim in ["scope", "sub", "exp", "iat", "iss", "token_type"] {
        assert!(active.get(claim).is_some(), "{claim}");
    }
    let refresh =
        expect_json(introspect(app, &resource_server, tokens["refresh_token"].as_str().unwrap()).await, StatusCode::OK)
            .await;
    assert_eq!(refresh["active"], true);
    for garbage in ["garbage", tokens["id_token"].as_str().unwrap()] {
        assert_eq!(
            expect_json(introspect(app, &resource_server, garbage).await, StatusCode::OK).await,
            json!({"active": false})
        );
    }
}
on_both!(introspection_answers_resource_servers);

/// SECURITY.md 92: clients revoke their own tokens; the grant ends; others' tokens stay.
async fn revocation_ends_the_grant(app: &TestApp) {
    let rp = confidential(app).await;
    let other = confidential(app).await;
    let resource_server =
        client(app, json!({"name": "API", "grant_types": ["client_credentials"], "redirect_uris": []})).await;
    let (browser, _) = browser(app).await;
    let tokens = tokens_for(app, &rp, &browser, &[("scope", "openid offline_access"), ("prompt", "consent")]).await;
    let (access, refresh) = (tokens["access_token"].as_str().unwrap(), tokens["refresh_token"].as_str().unwrap());
    assert_eq!(expect_json(token_at(app, "/oauth2/revoke", &rp, "garbage").await, StatusCode::OK).await, json!({}));
    let r = token_at(app, "/oauth2/revoke", &other, refresh).await;
    assert_eq!(expect_json(r, StatusCode::BAD_REQUEST).await["error"], "unauthorized_client");
    assert_eq!(expect_json(introspect(app, &resource_server, access).await, StatusCode::OK).await["active"], true);
    let r = app
        .client
        .post(format!("{}/oauth2/revoke", app.base))
        .form(&[("token", refresh), ("client_id", rp.id.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(
        expect_json(r, StatusCode::UNAUTHORIZED).await["error"],
        "invalid_client",
        "a confidential client must authenticate"
    );
    assert_eq!(token_at(app, "/oauth2/revoke", &rp, refresh).await.status(), StatusCode::OK);
    let r = token_request(app, &rp, &[("grant_type", "refresh_token"), ("refresh_token", refresh)], true).await;
    assert_eq!(expect_json(r, StatusCode::BAD_REQUEST).await["error"], "invalid_grant");
    assert_eq!(
        expect_json(introspect(app, &resource_server, access).await, StatusCode::OK).await,
        json!({"active": false})
    );
    assert_eq!(userinfo(app, access).await.status(), StatusCode::UNAUTHORIZED);
}
on_both!(revocation_ends_the_grant);

/// Connected apps (SECURITY.md 95): the person sees which applications they let in and disconnects one,
/// over the API or on the account page; its tokens end and the next sign-in asks again.
async fn connected_apps_can_be_disconnected(app: &TestApp) {
    let rp = confidential(app).await;
    let other = client(app, json!({"name": "Second RP"})).await;
    let (browser, email) = browser(app).await;
    let tokens =
        tokens_for(app, &rp, &browser, &[("scope", "openid email offline_access"), ("prompt", "consent")]).await;
    tokens_for(app, &other, &browser, &[]).await;
    let api =
        crate::helpers::token(&expect_json(app.login(&email, PASSWORD).await, StatusCode::OK).await, "access_token");
    let apps = expect_json(app.get_bearer("/api/v1/auth/grants", &api).await, StatusCode::OK).await;
    let names: Vec<&str> = apps.as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 2);
    assert!(names.contains(&"Test RP") && names.contains(&"Second RP"));
    let listed = apps.as_array().unwrap().iter().find(|a| a["client_id"] == rp.id.as_str()).unwrap();
    assert_eq!(listed["scopes"], json!(["email", "offline_access", "openid"]));
    assert!(listed["last_used_at"].is_string());
    let r =
        app.client.delete(app.url(&format!("/api/v1/auth/grants/{}", rp.id))).bearer_auth(&api).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let rt = tokens["refresh_token"].as_str().unwrap();
    let r = token_request(app, &rp, &[("grant_type", "refresh_token"), ("refresh_token", rt)], true).await;
    assert_eq!(expect_json(r, StatusCode::BAD_REQUEST).await["error"], "invalid_grant");
    assert_eq!(userinfo(app, tokens["access_token"].as_str().unwrap()).await.status(), StatusCode::UNAUTHORIZED);
    let r =
        app.client.delete(app.url(&format!("/api/v1/auth/grants/{}", rp.id))).bearer_auth(&api).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = browser.get(authorize_url(app, &rp, &[])).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "the consent is forgotten: asked again");
    // The account page lists the other one and disconnects it with its form.
    let page = browser.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Second RP") && page.contains("Connected apps"));
    let form = [("csrf", csrf_of(&page)), ("client_id", other.id.clone())];
    let r = browser.post(app.url("/account/apps/disconnect")).form(&form).send().await.unwrap();
    assert_eq!(location(&r).as_str(), "http://self.invalid/account?done=disconnected");
    assert_eq!(expect_json(app.get_bearer("/api/v1/auth/grants", &api).await, StatusCode::OK).await, json!([]));
    let audit: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_events WHERE action = 'oauth_grant_revoked'")
        .fetch_one(app.services.db.pool())
        .await
        .unwrap();
    assert_eq!(audit, 2);
}
on_both!(connected_apps_can_be_disconnected);

/// Browsers hold every redirect after a form submission to the page's `form-action` (the Chromium test shows
/// it): the sign-in and consent pages of a flow name the client's origin, and only a checked one.
async fn flow_pages_let_their_forms_lead_to_the_client(app: &TestApp) {
    let rp = confidential(app).await;
    let csp = |r: &reqwest::Response| r.headers()["content-security-policy"].to_str().unwrap().to_string();
    let authorize = authorize_url(app, &rp, &[]).replace(&app.base, "");
    let login = app.client.get(app.url(&format!("/login?next={}", urlencode(&authorize)))).send().await.unwrap();
    assert!(csp(&login).ends_with("form-action 'self' https://rp.example"), "{}", csp(&login));
    let forged = authorize.replace("rp.example%2Fcb", "evil.example%2Fcb");
    assert_ne!(forged, authorize);
    let login = app.client.get(app.url(&format!("/login?next={}", urlencode(&forged)))).send().await.unwrap();
    assert!(csp(&login).ends_with("form-action 'self'"), "an unregistered URI is not allowed: {}", csp(&login));
    assert!(!csp(&login).contains("evil.example"));
    let (browser, _) = browser(app).await;
    let consent = browser.get(authorize_url(app, &rp, &[])).send().await.unwrap();
    assert_eq!(consent.status(), StatusCode::OK);
    assert!(csp(&consent).ends_with("form-action 'self' https://rp.example"), "{}", csp(&consent));
}
on_both!(flow_pages_let_their_forms_lead_to_the_client);
