//! `latchkey-verify` against a real Latchkey: every kind of token a resource server may be shown, key
//! rotation, a flood of made-up key ids, revocation through introspection, and the drafts example end to end.

#[path = "../../examples/drafts/app.rs"]
mod drafts;

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use latchkey::{
    domain::{roles::Role, tokens::AccessClaims},
    service::{accounts::InitialPassword, admin::Actor},
};
use latchkey_verify::{Verifier, VerifyError};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{
    helpers::{PASSWORD, TestApp, expect_error, expect_json, token},
    oidc,
    oidc_interop::issuer_is_the_address,
    on_both,
};

fn verifier(app: &TestApp) -> Verifier {
    Verifier::builder(&app.services.config.issuer).audience("latchkey").build()
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// A token signed by a key of the attacker's, with whatever header it likes.
fn forged(header: Value, claims: &Value) -> String {
    let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
    let input = format!("{}.{}", b64(&header), b64(claims));
    let signature = ed25519_dalek::Signer::sign(&key, input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
}

fn kid_of(jwt: &str) -> String {
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(jwt.split('.').next().unwrap()).unwrap()).unwrap();
    header["kid"].as_str().unwrap().to_string()
}

fn payload_of(jwt: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(jwt.split('.').nth(1).unwrap()).unwrap()).unwrap()
}

/// Claims as the server would sign them for `user`, changed by `change`, signed with the server's own key.
fn signed_by_the_server(app: &TestApp, real: &str, change: impl FnOnce(&mut AccessClaims)) -> String {
    let mut claims: AccessClaims = serde_json::from_value(payload_of(real)).unwrap();
    change(&mut claims);
    app.services.keys.load().sign(&claims)
}

/// Only a live access token of this issuer for this audience passes; everything else is refused with why.
async fn every_kind_of_token_is_judged(app: &TestApp) {
    let verifier = verifier(app);
    let (_, pair) = app.new_user().await;
    let access = token(&pair, "access_token");
    let claims = verifier.verify(&access).await.expect("a valid token passes");
    assert_eq!(claims.sub, pair["user"]["id"].as_str().unwrap());
    assert_eq!((claims.role, claims.mfa, claims.aud.clone()), (Some(Role::Viewer), false, vec!["latchkey".into()]));

    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let refused = [
        (signed_by_the_server(app, &access, |c| c.exp = now - 60), VerifyError::Expired),
        (signed_by_the_server(app, &access, |c| c.aud = "another-api".into()), VerifyError::WrongAudience),
        (signed_by_the_server(app, &access, |c| c.iss = "https://evil.example".into()), VerifyError::WrongIssuer),
        (token(&pair, "refresh_token"), VerifyError::Malformed),
        ("not a token".into(), VerifyError::Malformed),
    ];
    for (token, why) in refused {
        assert_eq!(verifier.verify(&token).await.unwrap_err(), why);
    }

    let kid = &kid_of(&access);
    let claims = payload_of(&access);
    let none = format!("{}.{}.", b64(&json!({"alg": "none", "typ": "at+jwt", "kid": kid})), b64(&claims));
    assert!(verifier.verify(&none).await.is_err(), "alg none");
    let jwks: Value = app.client.get(app.url("/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
    for key in jwks["keys"].as_array().unwrap() {
        let public = key["x"].as_str().or(key["n"].as_str()).unwrap();
        let mut h = Header::new(Algorithm::HS256);
        h.typ = Some("at+jwt".into());
        h.kid = key["kid"].as_str().map(str::to_string);
        for secret in [public.as_bytes().to_vec(), URL_SAFE_NO_PAD.decode(public).unwrap()] {
            let hmac = jsonwebtoken::encode(&h, &claims, &EncodingKey::from_secret(&secret)).unwrap();
            assert_eq!(
                verifier.verify(&hmac).await.unwrap_err(),
                VerifyError::WrongAlgorithm,
                "HS256 with a public key"
            );
        }
    }
    let unknown = forged(json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "made-up"}), &claims);
    assert_eq!(verifier.verify(&unknown).await.unwrap_err(), VerifyError::UnknownKey);
    let swapped = forged(json!({"alg": "EdDSA", "typ": "at+jwt", "kid": kid}), &claims);
    assert_eq!(verifier.verify(&swapped).await.unwrap_err(), VerifyError::BadSignature, "our kid, another key");
    let embedded = forged(json!({"alg": "EdDSA", "typ": "JWT", "kid": kid}), &claims);
    assert_eq!(verifier.verify(&embedded).await.unwrap_err(), VerifyError::WrongType);

    let rp = oidc::confidential(app).await;
    let (browser, _) = oidc::browser(app).await;
    let tokens = oidc::tokens_for(app, &rp, &browser, &[]).await;
    let id_token = tokens["id_token"].as_str().unwrap();
    assert_eq!(verifier.verify(id_token).await.unwrap_err(), VerifyError::WrongType, "an ID token");
    let oauth = tokens["access_token"].as_str().unwrap();
    assert_eq!(verifier.verify(oauth).await.unwrap_err(), VerifyError::WrongAudience, "a token for the client");
    let for_the_client = Verifier::builder(&app.services.config.issuer).audience(&rp.id).build();
    let oauth_claims = for_the_client.verify(oauth).await.expect("an OAuth access token for its audience");
    assert!(oauth_claims.has_scope("openid") && oauth_claims.client_id.as_deref() == Some(rp.id.as_str()));
}
on_both!(every_kind_of_token_is_judged, issuer_is_the_address);

/// Serves the app's JWKS on a port of its own, counting the requests.
async fn counting_jwks(app: &TestApp) -> (String, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let (upstream, counter) = (app.url("/.well-known/jwks.json"), count.clone());
    let router = axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            let upstream = upstream.clone();
            async move { reqwest::get(upstream).await.unwrap().text().await.unwrap() }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, count)
}

/// A new key is picked up without a restart; a flood of made-up key ids fetches the keys once per interval.
async fn rotation_is_picked_up_and_kid_floods_are_bounded(app: &TestApp) {
    let (jwks, fetches) = counting_jwks(app).await;
    let verifier = Verifier::builder(&app.services.config.issuer)
        .jwks_uri(&jwks)
        .min_refresh_interval(Duration::from_millis(300))
        .build();
    let (email, pair) = app.new_user().await;
    let claims = payload_of(&token(&pair, "access_token"));
    let flood = (0..300).map(|n| {
        let token = forged(json!({"alg": "EdDSA", "typ": "at+jwt", "kid": format!("made-up-{n}")}), &claims);
        let verifier = verifier.clone();
        async move { verifier.verify(&token).await }
    });
    let started = std::time::Instant::now();
    let refused = futures_join_all(flood).await;
    assert!(refused.iter().all(|r| *r == Err(VerifyError::UnknownKey)));
    // One fetch per 300 ms interval at most: one, unless a loaded machine made the flood outlast an interval.
    let intervals = 1 + (started.elapsed().as_millis() / 300) as usize;
    let fetched = fetches.load(Ordering::SeqCst);
    assert!((1..=intervals).contains(&fetched), "300 unknown kids: {fetched} fetches in {intervals} intervals");
    verifier.verify(&token(&pair, "access_token")).await.expect("the current key");
    assert_eq!(fetches.load(Ordering::SeqCst), fetched, "known keys need no fetch");

    latchkey::service::keys::rotate(&app.services.db, &app.services.sealer).await.unwrap();
    // The server's own periodic reload may pick the new key up first; either way it signs with it now.
    app.services.reload_keys().await.unwrap();
    let fresh = token(&expect_json(app.login(&email, PASSWORD).await, StatusCode::OK).await, "access_token");
    assert_ne!(kid_of(&fresh), kid_of(&token(&pair, "access_token")), "signed with the new key");
    tokio::time::sleep(Duration::from_millis(350)).await;
    verifier.verify(&fresh).await.expect("a token signed with the new key");
    assert_eq!(fetches.load(Ordering::SeqCst), fetched + 1);
    verifier.verify(&token(&pair, "access_token")).await.expect("the retired key still verifies its tokens");
}
on_both!(rotation_is_picked_up_and_kid_floods_are_bounded, issuer_is_the_address);

async fn futures_join_all<T: Send + 'static>(
    tasks: impl Iterator<Item = impl std::future::Future<Output = T> + Send + 'static>,
) -> Vec<T> {
    let handles: Vec<_> = tasks.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for handle in handles {
        out.push(handle.await.unwrap());
    }
    out
}

/// With introspection, a sign-out reaches the resource server within the cache's lifetime; without it the
/// token stays good until it expires.
async fn introspection_notices_a_sign_out(app: &TestApp) {
    let rp = oidc::confidential(app).await;
    let checked = Verifier::builder(&app.services.config.issuer)
        .introspection(&rp.id, rp.secret.clone().unwrap(), Duration::from_millis(200))
        .build();
    let local = verifier(app);
    let (_, pair) = app.new_user().await;
    let access = token(&pair, "access_token");
    checked.verify(&access).await.expect("active");
    assert_eq!(app.post_bearer("/auth/logout", &access).await.status(), StatusCode::NO_CONTENT);
    checked.verify(&access).await.expect("the cached answer, for at most 200 ms");
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(checked.verify(&access).await.unwrap_err(), VerifyError::Revoked);
    local.verify(&access).await.expect("without introspection, valid until it expires");
    let wrong = Verifier::builder(&app.services.config.issuer)
        .introspection(&rp.id, "not the secret", Duration::from_secs(1))
        .build();
    assert!(matches!(wrong.verify(&access).await, Err(VerifyError::IssuerUnavailable(_))));
}
on_both!(introspection_notices_a_sign_out, issuer_is_the_address);

async fn user_with_role(app: &TestApp, email: &str, role: Role) -> String {
    app.services.create_user(email, None, role, InitialPassword::Plain(PASSWORD)).await.unwrap();
    token(&expect_json(app.login(email, PASSWORD).await, StatusCode::OK).await, "access_token")
}

/// The drafts service: viewers read, analysts save, a reviewer commits only with a second factor and never
/// their own draft; every refusal in Latchkey's error shape.
async fn the_drafts_example_end_to_end(app: &TestApp) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = drafts::router(verifier(app));
    tokio::spawn(async move { axum::serve(listener, router).await });
    let client = reqwest::Client::new();
    let call = |method: reqwest::Method, path: &str, bearer: Option<&str>, body: Option<Value>| {
        let mut request = client.request(method, format!("{base}{path}"));
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send()
    };
    use reqwest::Method;
    let draft = json!({"title": "Quarterly figures", "body": "Up and to the right."});

    let r = call(Method::GET, "/drafts", None, None).await.unwrap();
    assert_eq!(r.headers()["www-authenticate"], r#"Bearer realm="latchkey""#);
    expect_error(r, StatusCode::UNAUTHORIZED, "invalid_token").await;
    let r = call(Method::GET, "/drafts", Some("garbage"), None).await.unwrap();
    assert!(r.headers()["www-authenticate"].to_str().unwrap().contains(r#"error="invalid_token""#));

    let viewer = user_with_role(app, "viewer@drafts.example", Role::Viewer).await;
    assert_eq!(
        expect_json(call(Method::GET, "/drafts", Some(&viewer), None).await.unwrap(), StatusCode::OK).await,
        json!([])
    );
    let r = call(Method::POST, "/drafts", Some(&viewer), Some(draft.clone())).await.unwrap();
    expect_error(r, StatusCode::FORBIDDEN, "forbidden").await;

    let analyst = user_with_role(app, "analyst@drafts.example", Role::Analyst).await;
    let r = call(Method::POST, "/drafts", Some(&analyst), Some(json!({"title": " ", "body": ""}))).await.unwrap();
    expect_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    let saved = expect_json(
        call(Method::POST, "/drafts", Some(&analyst), Some(draft.clone())).await.unwrap(),
        StatusCode::CREATED,
    )
    .await;
    let analyst_id = app.services.find_user("analyst@drafts.example").await.unwrap().profile.id.to_string();
    assert_eq!((saved["author"].as_str(), saved["status"].as_str()), (Some(analyst_id.as_str()), Some("draft")));
    assert_eq!(saved["committed_by"], Value::Null);
    let commit = format!("/drafts/{}/commit", saved["id"].as_str().unwrap());
    expect_error(call(Method::POST, &commit, Some(&analyst), None).await.unwrap(), StatusCode::FORBIDDEN, "forbidden")
        .await;

    let reviewer = user_with_role(app, "reviewer@drafts.example", Role::Reviewer).await;
    let r = call(Method::POST, &commit, Some(&reviewer), None).await.unwrap();
    expect_error(r, StatusCode::FORBIDDEN, "mfa_required").await;

    let enrolled = crate::mfa::enroll(app).await;
    let id = app.services.find_user(&enrolled.email).await.unwrap().profile.id;
    let changes = latchkey::service::admin::UserChanges { role: Some(Role::Reviewer), is_active: None };
    app.services.admin_update_user(Actor::Operator, id, changes, &Default::default()).await.unwrap();
    let pending = expect_json(app.login(&enrolled.email, PASSWORD).await, StatusCode::OK).await;
    let body = json!({"mfa_token": pending["mfa_token"], "code": enrolled.backup_codes[0]});
    let strong =
        token(&expect_json(app.post_json("/auth/mfa/challenge", &body).await, StatusCode::OK).await, "access_token");
    let committed = expect_json(call(Method::POST, &commit, Some(&strong), None).await.unwrap(), StatusCode::OK).await;
    assert_eq!(
        (committed["status"].as_str(), committed["committed_by"].as_str()),
        (Some("committed"), Some(id.to_string().as_str()))
    );

    let own =
        expect_json(call(Method::POST, "/drafts", Some(&strong), Some(draft)).await.unwrap(), StatusCode::CREATED)
            .await;
    let own_commit = format!("/drafts/{}/commit", own["id"].as_str().unwrap());
    expect_error(
        call(Method::POST, &own_commit, Some(&strong), None).await.unwrap(),
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    let missing = format!("/drafts/{}/commit", uuid::Uuid::new_v4());
    expect_error(call(Method::POST, &missing, Some(&strong), None).await.unwrap(), StatusCode::NOT_FOUND, "not_found")
        .await;
    let listed = expect_json(call(Method::GET, "/drafts", Some(&viewer), None).await.unwrap(), StatusCode::OK).await;
    assert_eq!(listed.as_array().unwrap().len(), 2);
}
on_both!(the_drafts_example_end_to_end, issuer_is_the_address);
