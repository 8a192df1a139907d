//! Two `latchkey serve` processes on one PostgreSQL database and one Redis behave as one service.
//! Runs when `LATCHKEY_TEST_POSTGRES_URL` and `LATCHKEY_TEST_REDIS_URL` are both set (as `.ci/run` does).

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use latchkey::domain::totp;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, csrf_of, postgres_url, redis_url};

struct Instance {
    base: String,
    child: Child,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start(database_url: &str, redis_url: &str, secret_key: &str) -> Instance {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .arg("serve")
        .env("LATCHKEY_BIND", format!("127.0.0.1:{port}"))
        .env("LATCHKEY_DATABASE_URL", database_url)
        .env("LATCHKEY_REDIS_URL", redis_url)
        .env("LATCHKEY_SECRET_KEY", secret_key)
        .env("LATCHKEY_ARGON2_MEMORY_KIB", "1024")
        .env("LATCHKEY_ARGON2_ITERATIONS", "1")
        .env("LATCHKEY_TRUSTED_PROXIES", "127.0.0.1")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("latchkey serve starts");
    Instance { base: format!("http://127.0.0.1:{port}/api/v1"), child }
}

async fn wait_ready(client: &reqwest::Client, instance: &Instance) {
    let ready = instance.base.replace("/api/v1", "/readyz");
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if client.get(&ready).send().await.is_ok_and(|r| r.status() == StatusCode::OK) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{} did not become ready", instance.base);
}

async fn post(client: &reqwest::Client, url: String, body: Value, ip: &str) -> reqwest::Response {
    client.post(url).header("x-forwarded-for", ip).json(&body).send().await.unwrap()
}

fn test_ip() -> String {
    let b = uuid::Uuid::new_v4().into_bytes();
    format!("100.{}.{}.{}", 64 + b[0] % 64, b[1], b[2])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(all(test_postgres, test_redis)),
    ignore = "needs LATCHKEY_TEST_POSTGRES_URL and LATCHKEY_TEST_REDIS_URL when built"
)]
async fn two_instances_behave_as_one() {
    let (Some(admin_url), Some(redis)) = (postgres_url(), redis_url()) else {
        panic!("LATCHKEY_TEST_POSTGRES_URL and LATCHKEY_TEST_REDIS_URL were set when these tests were built, not now");
    };
    let db = crate::helpers::PostgresDb::create(&admin_url).await;
    let key = hex::encode(uuid::Uuid::new_v4().as_bytes().repeat(2));
    // Both start at the same moment on an empty database: migrations and key creation must not race.
    let (a, b) = (start(&db.url, &redis, &key), start(&db.url, &redis, &key));
    let client = reqwest::Client::new();
    wait_ready(&client, &a).await;
    wait_ready(&client, &b).await;
    let ip = test_ip();

    // A registration made on A can log in on B, and B accepts A's tokens.
    let email = format!("c-{}@example.com", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let reg =
        post(&client, format!("{}/auth/register", a.base), json!({"email": email, "password": PASSWORD}), &ip).await;
    assert_eq!(reg.status(), StatusCode::CREATED);
    let reg: Value = reg.json().await.unwrap();
    let login =
        post(&client, format!("{}/auth/login", b.base), json!({"username": email, "password": PASSWORD}), &ip).await;
    assert_eq!(login.status(), StatusCode::OK);
    let at = reg["access_token"].as_str().unwrap().to_string();
    let me = |base: &str| client.get(format!("{base}/auth/me")).bearer_auth(&at).send();
    assert_eq!(me(&b.base).await.unwrap().status(), StatusCode::OK);

    // B now answers /auth/me from memory; an organisation made on A shows there within a second.
    let org = client.post(format!("{}/orgs", a.base)).bearer_auth(&at).json(&json!({"name": "Acme", "slug": "acme"}));
    assert_eq!(org.send().await.unwrap().status(), StatusCode::CREATED);
    let joined = Instant::now();
    loop {
        let seen: Value = me(&b.base).await.unwrap().json().await.unwrap();
        if seen["memberships"][0]["slug"] == "acme" {
            break;
        }
        // As for revocations: the contract is 1 s, the bound leaves room for a debug build.
        assert!(joined.elapsed() < Duration::from_secs(2), "B still shows no membership after 2 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("membership made on A shown by B after {:?}", joined.elapsed());

    // Logged out on A: refused on B within a second.
    let out = client.post(format!("{}/auth/logout", a.base)).bearer_auth(&at).send().await.unwrap();
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    let logged_out = Instant::now();
    while me(&b.base).await.unwrap().status() != StatusCode::UNAUTHORIZED {
        assert!(logged_out.elapsed() < Duration::from_secs(1), "B still accepts the token after 1 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("logout on A refused on B after {:?}", logged_out.elapsed());

    // A web session signed out on A stops passing forward authentication on B within a second, though B
    // answered for it from memory a moment before.
    let site = |instance: &Instance| instance.base.replace("/api/v1", "");
    let page = client.get(format!("{}/login", site(&a))).send().await.unwrap();
    let pre = page.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let form =
        [("csrf", csrf_of(&page.text().await.unwrap())), ("username", email.clone()), ("password", PASSWORD.into())];
    let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let signed_in = no_redirects
        .post(format!("{}/login", site(&a)))
        .header("cookie", &pre)
        .header("x-forwarded-for", &ip)
        .form(&form)
        .send()
        .await
        .unwrap();
    let cookie = signed_in.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let ask_b = || {
        no_redirects
            .get(format!("{}/authz/forward-auth", b.base))
            .header("cookie", &cookie)
            .header("x-forwarded-host", "localhost:8080")
            .header("x-forwarded-uri", "/app")
            .send()
    };
    assert_eq!(ask_b().await.unwrap().status(), StatusCode::OK);
    let account = no_redirects.get(format!("{}/account", site(&a))).header("cookie", &cookie).send().await.unwrap();
    let csrf = csrf_of(&account.text().await.unwrap());
    let out = no_redirects.post(format!("{}/logout", site(&a))).header("cookie", &cookie).form(&[("csrf", csrf)]);
    assert_eq!(out.send().await.unwrap().status(), StatusCode::SEE_OTHER);
    let signed_out = Instant::now();
    while ask_b().await.unwrap().status() != StatusCode::FOUND {
        // The contract is 1 s (B re-reads revocations every 500 ms); the bound leaves room for a debug build
        // on a loaded machine, and the time taken is printed below.
        assert!(signed_out.elapsed() < Duration::from_secs(2), "B still lets the session through after 2 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("web sign-out on A refused by forward auth on B after {:?}", signed_out.elapsed());

    // A TOTP code used on A is refused on B.
    let pair: Value = login.json().await.unwrap();
    let bt = pair["access_token"].as_str().unwrap().to_string();
    let setup: Value =
        client.post(format!("{}/auth/mfa/setup", b.base)).bearer_auth(&bt).send().await.unwrap().json().await.unwrap();
    let secret = totp_rs::Secret::Encoded(setup["secret"].as_str().unwrap().to_string()).to_bytes().unwrap();
    let step = totp::step_at(time::OffsetDateTime::now_utc().unix_timestamp());
    let enable = client
        .post(format!("{}/auth/mfa/enable", b.base))
        .bearer_auth(&bt)
        .json(&json!({"code": totp::code_at_step(&secret, step - 1).unwrap()}));
    assert_eq!(enable.send().await.unwrap().status(), StatusCode::OK);
    let code = totp::code_at_step(&secret, step).unwrap();
    let mut tokens = Vec::new();
    for base in [&a.base, &b.base] {
        let pending: Value =
            post(&client, format!("{base}/auth/login"), json!({"username": email, "password": PASSWORD}), &ip)
                .await
                .json()
                .await
                .unwrap();
        tokens.push(pending["mfa_token"].as_str().unwrap().to_string());
    }
    let on_a =
        post(&client, format!("{}/auth/mfa/challenge", a.base), json!({"mfa_token": tokens[0], "code": code}), &ip)
            .await;
    assert_eq!(on_a.status(), StatusCode::OK);
    let on_b =
        post(&client, format!("{}/auth/mfa/challenge", b.base), json!({"mfa_token": tokens[1], "code": code}), &ip)
            .await;
    assert_eq!(on_b.status(), StatusCode::UNAUTHORIZED, "the replayed code is refused on the other instance");

    // Lockout triggered through A holds on B.
    let victim = format!("v-{}@example.com", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    post(&client, format!("{}/auth/register", a.base), json!({"email": victim, "password": PASSWORD}), &ip).await;
    for _ in 0..5 {
        post(
            &client,
            format!("{}/auth/login", a.base),
            json!({"username": victim, "password": "wrong wrong wrong"}),
            &ip,
        )
        .await;
    }
    let locked =
        post(&client, format!("{}/auth/login", b.base), json!({"username": victim, "password": PASSWORD}), &ip).await;
    assert_eq!(locked.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(locked.json::<Value>().await.unwrap()["error"], "account_locked");

    // The rate limit is shared: 60 requests a minute per client, whichever instance answers.
    let client_ip = test_ip();
    let mut refused = None;
    for i in 0..61 {
        let base = if i % 2 == 0 { &a.base } else { &b.base };
        let r =
            post(&client, format!("{base}/auth/refresh"), json!({"refresh_token": format!("x{i}")}), &client_ip).await;
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            refused = Some(i);
            break;
        }
    }
    assert_eq!(refused, Some(60), "the 61st request across both instances is the first refused");
    drop((a, b));
    db.drop_it().await;
}
