//! A stock relying-party library (the `openidconnect` crate) signs a person in through the real web
//! login: discovery, PKCE, nonce, ID-token verification against the published JWKS, userinfo, refresh.

use openidconnect::{
    AccessTokenHash, AuthenticationFlow, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, Scope, TokenResponse,
    core::{CoreAuthPrompt, CoreClient, CoreProviderMetadata, CoreResponseType, CoreUserInfoClaims},
};
use reqwest::{StatusCode, Url, header};
use serde_json::json;

use crate::{
    helpers::{PASSWORD, TestApp, csrf_of},
    oidc::unescape,
    on_both,
};

const REDIRECT: &str = "http://127.0.0.1:9/callback";

/// The library insists that the discovered issuer is the URL it was given: serve on a port chosen here,
/// and make that the issuer.
pub(crate) fn issuer_is_the_address(config: &mut latchkey::config::Config) {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    config.bind = free;
    config.issuer = format!("http://{free}");
}

/// What a person does on a Latchkey page in the middle of a flow: signs in, or allows the application.
pub(crate) async fn fill_in(app: &TestApp, browser: &reqwest::Client, page: &str, email: &str) -> reqwest::Response {
    let csrf = csrf_of(page);
    if page.contains(r#"name="decision""#) {
        let request = unescape(page.split(r#"name="request" value=""#).nth(1).unwrap().split('"').next().unwrap());
        let form = [("csrf", csrf), ("request", request), ("decision", "allow".into())];
        browser.post(format!("{}/oauth2/consent", app.base)).form(&form).send().await.unwrap()
    } else {
        let action = page.split(r#"<form method="post" action=""#).nth(1).unwrap().split('"').next().unwrap();
        let form = [("csrf", csrf), ("username", email.into()), ("password", PASSWORD.into())];
        browser.post(format!("{}{}", app.base, unescape(action))).form(&form).send().await.unwrap()
    }
}

/// Signs in through the pages and consents, following the browser's way; returns the code and state.
async fn through_the_pages(app: &TestApp, url: &Url, email: &str) -> (String, String) {
    let browser =
        reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let mut next = url.to_string();
    for _ in 0..8 {
        let r = browser.get(&next).send().await.unwrap();
        let r = match r.status() {
            StatusCode::SEE_OTHER | StatusCode::FOUND => r,
            StatusCode::OK => fill_in(app, &browser, &r.text().await.unwrap(), email).await,
            other => panic!("{other} at {next}"),
        };
        let to = r.headers()[header::LOCATION].to_str().unwrap();
        let to = Url::parse(&app.base).unwrap().join(to).unwrap();
        if to.as_str().starts_with(REDIRECT) {
            let get = |name: &str| to.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned()).unwrap();
            return (get("code"), get("state"));
        }
        next = to.to_string();
    }
    panic!("the flow did not come back to the client");
}

async fn a_stock_relying_party_signs_in(app: &TestApp) {
    let email = format!("rp-{}@example.com", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    assert_eq!(app.register(&email, PASSWORD).await.status(), StatusCode::CREATED);
    let settings = serde_json::from_value(json!({"name": "Stock RP", "redirect_uris": [REDIRECT]})).unwrap();
    let operator = latchkey::service::admin::Actor::Operator;
    let registered = app.services.create_client(operator, settings, &Default::default()).await.unwrap();

    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let issuer = IssuerUrl::new(app.services.config.issuer.clone()).unwrap();
    let metadata = CoreProviderMetadata::discover_async(issuer, &http).await.expect("discovery");
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(registered.client.client_id.clone()),
        registered.secret.map(ClientSecret::new),
    )
    .set_redirect_uri(RedirectUrl::new(REDIRECT.into()).unwrap());

    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, nonce) = client
        .authorize_url(
            AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("offline_access".into()))
        .add_prompt(CoreAuthPrompt::Consent)
        .set_pkce_challenge(challenge)
        .url();
    let (code, returned_state) = through_the_pages(app, &url, &email).await;
    assert_eq!(&returned_state, state.secret());

    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("the token exchange");
    let id_token = tokens.id_token().expect("an ID token");
    let verifier = client.id_token_verifier();
    let claims = id_token.claims(&verifier, &nonce).expect("the ID token verifies");
    assert_eq!(claims.email().map(|e| e.as_str()), Some(email.as_str()));
    let expected = AccessTokenHash::from_token(
        tokens.access_token(),
        id_token.signing_alg().unwrap(),
        id_token.signing_key(&verifier).unwrap(),
    )
    .unwrap();
    assert_eq!(claims.access_token_hash(), Some(&expected));

    let info: CoreUserInfoClaims = client
        .user_info(tokens.access_token().clone(), Some(claims.subject().clone()))
        .unwrap()
        .request_async(&http)
        .await
        .expect("userinfo");
    assert_eq!(info.email().map(|e| e.as_str()), Some(email.as_str()));

    let refresh = tokens.refresh_token().expect("offline_access gives a refresh token");
    let refreshed = client.exchange_refresh_token(refresh).unwrap().request_async(&http).await.expect("refresh");
    let renewed = refreshed.id_token().expect("a renewed ID token");
    // A refreshed ID token carries no nonce (OpenID Connect Core §12.2); the library checks the rest.
    let renewed = renewed.claims(&verifier, |_: Option<&Nonce>| Ok(())).expect("the renewed ID token verifies");
    assert_eq!(renewed.subject(), claims.subject());
}
on_both!(a_stock_relying_party_signs_in, issuer_is_the_address);
