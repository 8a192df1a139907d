//! Per-client-IP rate limits on register, login, MFA challenge and refresh; client IPs from trusted proxies
//! only; counters shared through Redis when configured.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{
    helpers::{Backend, PASSWORD, TestApp, expect_error, expect_json, spawn},
    on_both,
};

fn limited(c: &mut latchkey::config::Config) {
    c.rate_limit_per_minute = 60;
}

fn behind_proxy(c: &mut latchkey::config::Config) {
    c.rate_limit_per_minute = 60;
    c.trusted_proxies = latchkey::domain::client_ip::parse_trusted("127.0.0.1").unwrap();
}

async fn post(app: &TestApp, path: &str, body: &Value, forwarded_for: Option<&str>) -> reqwest::Response {
    let mut request = app.client.post(app.url(path)).json(body);
    if let Some(ip) = forwarded_for {
        request = request.header("x-forwarded-for", ip);
    }
    request.send().await.unwrap()
}

async fn expect_rate_limited(response: reqwest::Response) {
    let retry: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    expect_error(response, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

/// 60 requests from one IP pass (whatever they answer); the 61st is refused, on each endpoint separately.
async fn sixty_one_requests_from_one_ip(app: &TestApp) {
    type Body = fn(usize) -> Value;
    let endpoints: [(&str, Body); 4] = [
        ("/auth/login", |i| json!({"username": format!("u{i}@example.com"), "password": "wrong wrong wrong"})),
        ("/auth/register", |i| json!({"email": format!("r{i}@example.com"), "password": PASSWORD})),
        ("/auth/refresh", |i| json!({"refresh_token": format!("nope{i}")})),
        ("/auth/mfa/challenge", |i| json!({"mfa_token": format!("nope{i}"), "code": "123456"})),
    ];
    for (path, body) in endpoints {
        for i in 0..60 {
            let response = post(app, path, &body(i), Some(&format!("10.9.{}.{}", i / 200, i % 200))).await;
            assert_ne!(response.status(), StatusCode::TOO_MANY_REQUESTS, "{path} request {i}");
        }
        expect_rate_limited(post(app, path, &body(60), Some("10.99.99.99")).await).await;
    }
}
// X-Forwarded-For varies on every request, and no proxy is trusted: the socket address is what counts.
on_both!(sixty_one_requests_from_one_ip, limited);

async fn forwarded_addresses_count_only_from_trusted_proxies(app: &TestApp) {
    // A different name each time, so that the identifier lockout does not answer first.
    let login = |i: usize| json!({"username": format!("x{i}@example.com"), "password": "wrong wrong wrong"});
    for i in 0..70 {
        let response = post(app, "/auth/login", &login(i), Some(&format!("198.51.100.{i}"))).await;
        assert_ne!(response.status(), StatusCode::TOO_MANY_REQUESTS, "each forwarded client has its own budget");
    }
    for i in 0..60 {
        post(app, "/auth/login", &login(i), Some("203.0.113.7")).await;
    }
    expect_rate_limited(post(app, "/auth/login", &login(60), Some("203.0.113.7")).await).await;
    // The audit log records the forwarded client address.
    let body = json!({"email": "seen@example.com", "password": PASSWORD});
    let pair = expect_json(post(app, "/auth/register", &body, Some("192.0.2.44")).await, StatusCode::CREATED).await;
    let audit =
        expect_json(app.get_bearer("/auth/audit", pair["access_token"].as_str().unwrap()).await, StatusCode::OK).await;
    assert_eq!(audit[0]["ip"], "192.0.2.44", "{audit}");
}
on_both!(forwarded_addresses_count_only_from_trusted_proxies, behind_proxy);

/// Two instances on one Redis share one budget per client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(test_redis), ignore = "needs LATCHKEY_TEST_REDIS_URL when built")]
async fn redis_shares_the_limit_between_instances() {
    let redis =
        crate::helpers::redis_url().expect("LATCHKEY_TEST_REDIS_URL was set when these tests were built, not now");
    let config = |c: &mut latchkey::config::Config| {
        behind_proxy(c);
        c.redis_url = Some(redis.clone());
    };
    let a = spawn(Backend::Sqlite, config).await.unwrap();
    let b = spawn(Backend::Sqlite, config).await.unwrap();
    // A client address of its own, so that parallel test runs do not share its counter.
    let client = format!("198.18.{}.{}", rand_octet(), rand_octet());
    let login = |i: usize| json!({"username": format!("x{i}@example.com"), "password": "wrong wrong wrong"});
    for i in 0..60 {
        let app = if i % 2 == 0 { &a } else { &b };
        assert_ne!(post(app, "/auth/login", &login(i), Some(&client)).await.status(), StatusCode::TOO_MANY_REQUESTS);
    }
    expect_rate_limited(post(&a, "/auth/login", &login(60), Some(&client)).await).await;
    expect_rate_limited(post(&b, "/auth/login", &login(61), Some(&client)).await).await;
    a.finish().await;
    b.finish().await;
}

fn rand_octet() -> u8 {
    uuid::Uuid::new_v4().as_bytes()[0]
}

/// The OpenAPI document's list of rate-limited operations (each of which documents 429) is the router's:
/// with a limit of one request a minute, the second call of every documented operation is refused with 429
/// exactly when its path is listed in `RATE_LIMITED`.
async fn the_documented_rate_limits_are_the_served_ones(app: &TestApp) {
    let doc: Value = app.client.get(app.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    let listed = latchkey::http::openapi::RATE_LIMITED;
    let mut seen = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        let concrete = path
            .replace("{id}", "00000000-0000-4000-8000-000000000000")
            .replace("{user_id}", "x")
            .replace("{client_id}", "x");
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_none() {
                continue;
            }
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let url = format!("{}{concrete}", app.base);
            let mut last = StatusCode::OK;
            for _ in 0..2 {
                last = app.client.request(method.clone(), &url).json(&json!({})).send().await.unwrap().status();
            }
            let limited = listed.contains(&path.as_str());
            assert_eq!(last == StatusCode::TOO_MANY_REQUESTS, limited, "{method} {path}: second call answered {last}");
            seen += usize::from(limited);
        }
    }
    assert_eq!(seen, listed.len(), "RATE_LIMITED names a path the document does not list");
}
on_both!(the_documented_rate_limits_are_the_served_ones, |c: &mut latchkey::config::Config| c.rate_limit_per_minute =
    1);
