//! Back-Channel Logout 1.0, after the OpenID Foundation's back-channel OP tests: whenever a session with a
//! grant for a client ends, that client's `backchannel_logout_uri` receives a logout token (`iss`, `aud`,
//! `iat`, `jti`, `sid`, `sub`, the exact `events` claim, no `nonce`), from a queue that retries a failing
//! receiver and never holds the logout up. The receiver here is a real HTTP server on a port of its own.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{Form, Router, extract::State, http::StatusCode as AxumStatus, routing::post};
use jsonwebtoken::{DecodingKey, Validation, jwk::Jwk};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{
    helpers::{TestApp, csrf_of, expect_json},
    oidc::{Rp, browser, client, eventually, tokens_for},
    on_both,
};

#[derive(Default)]
struct Receiver {
    tokens: Mutex<Vec<String>>,
    /// Answer 503 to this many requests before accepting.
    refuse_first: AtomicUsize,
    requests: AtomicUsize,
}

#[derive(serde::Deserialize)]
struct LogoutForm {
    logout_token: String,
}

async fn receive(State(r): State<Arc<Receiver>>, Form(form): Form<LogoutForm>) -> AxumStatus {
    let n = r.requests.fetch_add(1, Ordering::SeqCst);
    if n < r.refuse_first.load(Ordering::SeqCst) {
        return AxumStatus::SERVICE_UNAVAILABLE;
    }
    r.tokens.lock().unwrap().push(form.logout_token);
    AxumStatus::OK
}

/// An application's back-channel endpoint; `hang` never answers.
async fn receiver(refuse_first: usize) -> (String, Arc<Receiver>) {
    let state = Arc::new(Receiver { refuse_first: AtomicUsize::new(refuse_first), ..Default::default() });
    let app = Router::new()
        .route("/backchannel", post(receive))
        .route("/hang", post(|| async { std::future::pending::<()>().await }))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}"), state)
}

async fn rp_with_backchannel(app: &TestApp, uri: &str) -> Rp {
    client(app, json!({"name": "Back-channel RP", "backchannel_logout_uri": uri})).await
}

/// The next logout token the receiver gets.
async fn next_token(receiver: &Receiver, seen: usize) -> String {
    let got = || async { receiver.tokens.lock().unwrap().len() > seen };
    eventually("a logout token reaching the client", got).await;
    receiver.tokens.lock().unwrap()[seen].clone()
}

fn claims_of(jwt: &str) -> Value {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(jwt.split('.').nth(1).unwrap()).unwrap()).unwrap()
}

/// What a relying party checks (Back-Channel Logout §2.6): signature by a published key, `typ`, issuer,
/// audience, `iat`, the event, `sid`/`sub`, and no `nonce`.
async fn verify_logout_token(app: &TestApp, rp: &Rp, token: &str, id_token: &str) {
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("logout+jwt"));
    let jwks: Value = app.client.get(app.url("/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
    let jwk = jwks["keys"].as_array().unwrap().iter().find(|k| k["kid"] == header.kid.clone().unwrap().as_str());
    let jwk: Jwk = serde_json::from_value(jwk.expect("signed by a published key").clone()).unwrap();
    let mut validation = Validation::new(header.alg);
    validation.set_audience(&[&rp.id]);
    validation.set_issuer(&[&app.services.config.issuer]);
    validation.set_required_spec_claims(&["iss", "aud", "iat", "exp"]);
    let claims = jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(&jwk).unwrap(), &validation)
        .expect("a valid logout token")
        .claims;
    let id = claims_of(id_token);
    assert_eq!(claims["events"], json!({"http://schemas.openid.net/event/backchannel-logout": {}}));
    assert_eq!((&claims["sid"], &claims["sub"]), (&id["sid"], &id["sub"]));
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!((claims["iat"].as_i64().unwrap() - now).abs() < 60);
    assert!(claims.get("nonce").is_none(), "a logout token never has a nonce");
}

/// oidcc-backchannel-rp-initiated-logout and the other ways a session ends: the web sign-out, the
/// end-session endpoint, "sign out everywhere" over the API, an administrator ending the sessions.
async fn every_way_a_session_ends_tells_the_client(app: &TestApp) {
    let (base, received) = receiver(0).await;
    let rp = rp_with_backchannel(app, &format!("{base}/backchannel")).await;
    let quiet = client(app, json!({"name": "No back-channel"})).await;

    let (browser1, _) = browser(app).await;
    let tokens = tokens_for(app, &rp, &browser1, &[]).await;
    tokens_for(app, &quiet, &browser1, &[]).await;
    let id_token = tokens["id_token"].as_str().unwrap();
    let account = browser1.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
    let r = browser1.post(app.url("/logout")).form(&[("csrf", csrf_of(&account))]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let token = next_token(&received, 0).await;
    verify_logout_token(app, &rp, &token, id_token).await;
    assert_ne!(claims_of(&token)["jti"], json!(null));

    let (browser2, _) = browser(app).await;
    let tokens = tokens_for(app, &rp, &browser2, &[]).await;
    let query = serde_urlencoded::to_string([("id_token_hint", tokens["id_token"].as_str().unwrap())]).unwrap();
    let r = browser2.get(format!("{}/oauth2/logout?{query}", app.base)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    verify_logout_token(app, &rp, &next_token(&received, 1).await, tokens["id_token"].as_str().unwrap()).await;

    let (browser3, email) = browser(app).await;
    let tokens = tokens_for(app, &rp, &browser3, &[]).await;
    let api = expect_json(app.login(&email, crate::helpers::PASSWORD).await, StatusCode::OK).await;
    let access = api["access_token"].as_str().unwrap();
    assert_eq!(app.post_bearer("/auth/logout-all", access).await.status(), StatusCode::NO_CONTENT);
    verify_logout_token(app, &rp, &next_token(&received, 2).await, tokens["id_token"].as_str().unwrap()).await;

    let (browser4, _) = browser(app).await;
    let tokens = tokens_for(app, &rp, &browser4, &[]).await;
    let user = claims_of(tokens["id_token"].as_str().unwrap())["sub"].as_str().unwrap().parse().unwrap();
    let operator = latchkey::service::admin::Actor::Operator;
    app.services.admin_end_sessions(operator, user, &Default::default()).await.unwrap();
    verify_logout_token(app, &rp, &next_token(&received, 3).await, tokens["id_token"].as_str().unwrap()).await;

    // One token per ended session and client with an address; the client without one got nothing queued.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(received.tokens.lock().unwrap().len(), 4);
    let (queued,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM outbox").fetch_one(app.services.db.pool()).await.unwrap();
    assert_eq!(queued, 4);
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("latchkey_outbox_deliveries_total"), "{metrics}");
    assert!(metrics.contains("latchkey_outbox_oldest_pending_seconds 0"), "nothing waits: {metrics}");
}
on_both!(every_way_a_session_ends_tells_the_client);

/// A receiver that is down is retried until it takes the token; one that never answers holds nothing up.
async fn failing_and_hanging_clients_never_block_a_logout(app: &TestApp) {
    let (base, received) = receiver(2).await;
    let flaky = rp_with_backchannel(app, &format!("{base}/backchannel")).await;
    let hanging = rp_with_backchannel(app, &format!("{base}/hang")).await;
    let (browser, _) = browser(app).await;
    let tokens = tokens_for(app, &flaky, &browser, &[]).await;
    tokens_for(app, &hanging, &browser, &[]).await;
    let account = browser.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
    let started = Instant::now();
    let r = browser.post(app.url("/logout")).form(&[("csrf", csrf_of(&account))]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(started.elapsed() < Duration::from_secs(1), "the logout waited {:?}", started.elapsed());
    verify_logout_token(app, &flaky, &next_token(&received, 0).await, tokens["id_token"].as_str().unwrap()).await;
    assert_eq!(received.requests.load(Ordering::SeqCst), 3, "two refusals, then the delivery");
    let rows: Vec<(i64, Option<String>)> = sqlx::query_as("SELECT attempts, outcome FROM outbox ORDER BY attempts")
        .fetch_all(app.services.db.pool())
        .await
        .unwrap();
    assert!(rows.contains(&(3, Some("sent".into()))), "{rows:?}");
    assert!(rows.iter().any(|(_, outcome)| outcome.is_none()), "the hanging one is still waiting: {rows:?}");
}
on_both!(failing_and_hanging_clients_never_block_a_logout);
