//! RP-Initiated Logout 1.0, after the OpenID Foundation's `oidcc-rp-initiated-logout-*` OP test modules:
//! with a valid hint the session ends and the browser returns with `state`; without one the person is
//! asked; an unregistered or unprovable return address is shown an error page, never followed.

use jsonwebtoken::Algorithm;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{
    helpers::{TestApp, csrf_of},
    oidc::{Rp, browser, client, location, param, tokens_for, unescape, userinfo},
    on_both,
};

const BYE: &str = "https://rp.example/signed-out";

async fn rp_with_logout(app: &TestApp) -> Rp {
    client(app, json!({"name": "Logout RP", "post_logout_redirect_uris": [BYE, "https://rp.example/bye?lang=en"]}))
        .await
}

async fn end_session(browser: &reqwest::Client, app: &TestApp, params: &[(&str, &str)]) -> reqwest::Response {
    let query = serde_urlencoded::to_string(params).unwrap();
    browser.get(format!("{}/oauth2/logout?{query}", app.base)).send().await.unwrap()
}

async fn signed_in(app: &TestApp, browser: &reqwest::Client) -> bool {
    browser.get(app.url("/account")).send().await.unwrap().status() == StatusCode::OK
}

fn cleared_cookie(r: &reqwest::Response) -> bool {
    r.headers().get_all("set-cookie").iter().any(|c| c.to_str().unwrap().contains("Max-Age=0"))
}

/// oidcc-rp-initiated-logout: hint, registered URI and state; the application's tokens end with the session.
async fn a_valid_hint_signs_out_and_returns_with_state(app: &TestApp) {
    let rp = rp_with_logout(app).await;
    let (browser, _) = browser(app).await;
    let tokens = tokens_for(app, &rp, &browser, &[]).await;
    let hint = tokens["id_token"].as_str().unwrap();
    let r =
        end_session(&browser, app, &[("id_token_hint", hint), ("post_logout_redirect_uri", BYE), ("state", "st 1")])
            .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(cleared_cookie(&r));
    let to = location(&r);
    assert_eq!(to.as_str(), format!("{BYE}?state=st+1"));
    assert!(!signed_in(app, &browser).await);
    assert_eq!(userinfo(app, tokens["access_token"].as_str().unwrap()).await.status(), StatusCode::UNAUTHORIZED);
}
on_both!(a_valid_hint_signs_out_and_returns_with_state);

/// oidcc-rp-initiated-logout-query-added-to-post-logout-redirect-uri, and the POST form of the request
/// (sent cross-site, as an application's page sends it).
async fn a_registered_query_is_kept_and_post_works(app: &TestApp) {
    let rp = rp_with_logout(app).await;
    let (browser, _) = browser(app).await;
    let tokens = tokens_for(app, &rp, &browser, &[]).await;
    let form = [
        ("id_token_hint", tokens["id_token"].as_str().unwrap()),
        ("post_logout_redirect_uri", "https://rp.example/bye?lang=en"),
        ("state", "s2"),
    ];
    let r = browser
        .post(app.url("/oauth2/logout"))
        .header("sec-fetch-site", "cross-site")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r).as_str(), "https://rp.example/bye?lang=en&state=s2");
    assert!(!signed_in(app, &browser).await);
}
on_both!(a_registered_query_is_kept_and_post_works);

/// oidcc-rp-initiated-logout-no-post-logout-redirect-uri: signed out, and told so on our page.
async fn without_a_return_address_the_page_says_signed_out(app: &TestApp) {
    let rp = rp_with_logout(app).await;
    let (browser, _) = browser(app).await;
    let tokens = tokens_for(app, &rp, &browser, &[]).await;
    let r = end_session(&browser, app, &[("id_token_hint", tokens["id_token"].as_str().unwrap())]).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(cleared_cookie(&r));
    assert!(r.text().await.unwrap().contains("You are signed out"));
    assert!(!signed_in(app, &browser).await);
}
on_both!(without_a_return_address_the_page_says_signed_out);

/// oidcc-rp-initiated-logout-bad-post-logout-redirect-uri and -no-id-token-hint: an address not registered
/// for the client, or with no client to check it against, is an error page; the session stays.
async fn unregistered_or_unprovable_addresses_are_not_followed(app: &TestApp) {
    let rp = rp_with_logout(app).await;
    let (browser, _) = browser(app).await;
    let tokens = tokens_for(app, &rp, &browser, &[]).await;
    let hint = tokens["id_token"].as_str().unwrap();
    let cases: [&[(&str, &str)]; 4] = [
        &[("id_token_hint", hint), ("post_logout_redirect_uri", "https://evil.example/"), ("state", "x")],
        &[("id_token_hint", hint), ("post_logout_redirect_uri", "https://rp.example/signed-out/"), ("state", "x")],
        &[("post_logout_redirect_uri", BYE), ("state", "x")],
        &[("client_id", "no-such-client"), ("post_logout_redirect_uri", BYE)],
    ];
    for params in cases {
        let r = end_session(&browser, app, params).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{params:?}");
        assert!(r.headers().get("location").is_none());
        assert!(r.text().await.unwrap().contains("This sign-out link is not valid"));
        assert!(signed_in(app, &browser).await, "{params:?} must not sign out");
    }
    // A hint for one client with another client's id.
    let other = rp_with_logout(app).await;
    let r = end_session(&browser, app, &[("id_token_hint", hint), ("client_id", &other.id)]).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // A parameter given twice.
    let r = browser.get(format!("{}/oauth2/logout?state=a&state=b", app.base)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(signed_in(app, &browser).await);
    assert_eq!(userinfo(app, tokens["access_token"].as_str().unwrap()).await.status(), StatusCode::OK);
}
on_both!(unregistered_or_unprovable_addresses_are_not_followed);

/// Submits the confirmation page's form as the person would.
async fn confirm(app: &TestApp, browser: &reqwest::Client, page: &str) -> reqwest::Response {
    let field = |name: &str| {
        let marker = format!(r#"name="{name}" value=""#);
        unescape(page.split(marker.as_str()).nth(1).unwrap().split('"').next().unwrap())
    };
    let form = [
        ("csrf", csrf_of(page)),
        ("client_id", field("client_id")),
        ("post_logout_redirect_uri", field("post_logout_redirect_uri")),
        ("state", field("state")),
    ];
    browser.post(app.url("/oauth2/logout/confirm")).form(&form).send().await.unwrap()
}

/// oidcc-rp-initiated-logout-modified-id-token-hint and -only-client-id: without a valid hint the person is
/// asked, and nothing ends until they confirm with the page's CSRF token.
async fn without_a_valid_hint_the_person_confirms(app: &TestApp) {
    let rp = rp_with_logout(app).await;
    let (browser, _) = browser(app).await;
    let tokens = tokens_for(app, &rp, &browser, &[]).await;
    let hint = tokens["id_token"].as_str().unwrap();
    let (head, rest) = hint.split_once('.').unwrap();
    let (payload, signature) = rest.split_once('.').unwrap();
    let flipped = if signature.starts_with('A') { "B" } else { "A" };
    let modified = format!("{head}.{payload}.{flipped}{}", &signature[1..]);
    let with_client: [&[(&str, &str)]; 2] = [
        &[("id_token_hint", &modified), ("client_id", &rp.id), ("post_logout_redirect_uri", BYE), ("state", "s3")],
        &[("client_id", &rp.id), ("post_logout_redirect_uri", BYE), ("state", "s3")],
    ];
    for params in with_client.into_iter().chain([&[][..]]) {
        let r = end_session(&browser, app, params).await;
        assert_eq!(r.status(), StatusCode::OK, "{params:?}");
        let csp = r.headers()["content-security-policy"].to_str().unwrap().to_string();
        let page = r.text().await.unwrap();
        assert!(page.contains("Sign out of Latchkey?"), "{page}");
        if !params.is_empty() {
            assert!(page.contains("Logout RP asks to sign you out"));
            assert!(csp.contains("form-action 'self' https://rp.example"), "{csp}");
        }
        assert!(signed_in(app, &browser).await, "asking ends nothing");
    }
    // A confirmation without the page's token changes nothing.
    let forged = [("csrf", "wrong"), ("client_id", rp.id.as_str()), ("post_logout_redirect_uri", BYE)];
    let r = browser.post(app.url("/oauth2/logout/confirm")).form(&forged).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(signed_in(app, &browser).await);

    let r =
        end_session(&browser, app, &[("client_id", &rp.id), ("post_logout_redirect_uri", BYE), ("state", "s3")]).await;
    let r = confirm(app, &browser, &r.text().await.unwrap()).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r).as_str(), format!("{BYE}?state=s3"));
    assert!(!signed_in(app, &browser).await);
}
on_both!(without_a_valid_hint_the_person_confirms);

/// A hint counts after it expired (RP-Initiated Logout §2), but only for the person it names: another
/// person signed in in this browser is asked.
async fn expired_hints_count_for_their_own_person_only(app: &TestApp) {
    let rp = rp_with_logout(app).await;
    let (browser, _) = browser(app).await;
    let tokens = tokens_for(app, &rp, &browser, &[]).await;
    let payload = tokens["id_token"].as_str().unwrap().split('.').nth(1).unwrap();
    let mut claims: Value = serde_json::from_slice(&base64_decode(payload)).unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    (claims["iat"], claims["exp"]) = (json!(now - 7200), json!(now - 3600));
    let keys = app.services.keys.load();
    let expired = keys.signing_key(Algorithm::RS256).sign("JWT", &claims);

    let (someone_else, _) = crate::oidc::browser(app).await;
    let r = end_session(&someone_else, app, &[("id_token_hint", &expired), ("post_logout_redirect_uri", BYE)]).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("Sign out of Latchkey?"));
    assert!(signed_in(app, &someone_else).await);

    let r = end_session(&browser, app, &[("id_token_hint", &expired), ("post_logout_redirect_uri", BYE)]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r).as_str(), BYE);
    assert!(param(&location(&r), "state").is_none());
    assert!(!signed_in(app, &browser).await);
    // Not signed in any more: the same request just returns.
    let r = end_session(&browser, app, &[("id_token_hint", &expired), ("post_logout_redirect_uri", BYE)]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
}
on_both!(expired_hints_count_for_their_own_person_only);

fn base64_decode(part: &str) -> Vec<u8> {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    URL_SAFE_NO_PAD.decode(part).unwrap()
}
