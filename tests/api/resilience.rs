//! What the security review of December 2026 found: clients that abort requests, idle or stalled
//! connections, invented methods. Each test failed on the code the review looked at.

use std::time::Duration;

use reqwest::StatusCode;
use tokio::{io::AsyncWriteExt, net::TcpStream};

use crate::{
    helpers::{Backend, PASSWORD, TestApp, expect_json, spawn},
    on_both,
};

fn addr(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_string()
}

/// Sends `request` and resets the connection (SO_LINGER 0) after a varying short pause, the way a client
/// that gives up (or a load tool that stops) does.
async fn send_and_reset(addr: &str, request: &[u8], pause_us: u64) {
    let Ok(mut stream) = TcpStream::connect(addr).await else { return };
    let _ = stream.write_all(request).await;
    tokio::time::sleep(Duration::from_micros(pause_us)).await;
    let _ = stream.set_zero_linger();
    drop(stream);
}

fn raw_post(path: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Review finding 1: 800 aborted requests used to leave a pooled connection inside `BEGIN IMMEDIATE`, after
/// which every write failed (503 "database is locked" or 500) while `/readyz` said 200.
async fn aborted_requests_leave_writes_working(app: &TestApp) {
    let (email, _) = app.new_user().await;
    // Another account: hundreds of sign-ins in flight at once for one identifier lock it (see lockout.rs).
    let (other, _) = app.new_user().await;
    let login = raw_post("/api/v1/auth/login", &format!(r#"{{"username":"{other}","password":"{PASSWORD}"}}"#));
    let requests: Vec<Vec<u8>> = vec![
        b"GET /login HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        login,
        raw_post("/api/v1/auth/register", &format!(r#"{{"email":"a-{}@example.com","password":"{PASSWORD}"}}"#, 1)),
    ];
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let (addr, requests) = (addr(app), requests.clone());
            tokio::spawn(async move {
                for i in 0..100u64 {
                    send_and_reset(&addr, &requests[(i as usize + w) % requests.len()], 500 * (i % 7)).await;
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    for _ in 0..5 {
        expect_json(app.login(&email, PASSWORD).await, StatusCode::OK).await;
    }
    app.new_user().await;
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
}
on_both!(aborted_requests_leave_writes_working);

/// The same class of bug, made deterministic below the HTTP layer: callers that give up on `Db::begin` at
/// every point of its progress must leave no pooled connection inside a transaction (PostgreSQL reports
/// such a connection as `idle in transaction`; on SQLite it would hold the write lock).
async fn abandoned_begins_leave_no_open_transaction(app: &TestApp) {
    let db = &app.services.db;
    for i in 0..400u64 {
        let _ = tokio::time::timeout(Duration::from_micros((i * 7) % 1500), db.begin()).await;
    }
    if db.backend() == latchkey::store::Backend::Postgres {
        // The spawned begins finish and roll back on their own; on a loaded machine that can take a moment.
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        loop {
            let (open,): (i64,) = sqlx::query_as(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state LIKE 'idle in transaction%'",
            )
            .fetch_one(db.pool())
            .await
            .unwrap();
            if open == 0 {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{open} connections left inside a transaction after 3 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    } else {
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let (email, _) = app.new_user().await;
    expect_json(app.login(&email, PASSWORD).await, StatusCode::OK).await;
}
on_both!(abandoned_begins_leave_no_open_transaction, |c| c.argon2_memory_kib = 1024);

/// Review finding 3: each invented method used to become a label value (3,000 of them grew `/metrics` from
/// 6 KB to 4.2 MB).
async fn invented_methods_share_one_metric_label(app: &TestApp) {
    for i in 0..50 {
        let method = reqwest::Method::from_bytes(format!("INVENTED{i}").as_bytes()).unwrap();
        let r = app.client.request(method, app.url("/healthz")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    }
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(!metrics.contains("INVENTED"), "a method name became a label");
    assert!(metrics.contains(r#"method="other""#));
}
on_both!(invented_methods_share_one_metric_label);

/// Reads until the server closes the connection; how long that took.
async fn closed_after(mut stream: TcpStream) -> Duration {
    use tokio::io::AsyncReadExt;
    let started = std::time::Instant::now();
    let mut buf = vec![0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => {}
            Err(_) => panic!("the connection is still open after 10 s"),
        }
    }
}

fn short_timeouts(c: &mut latchkey::config::Config) {
    c.connections.header_read = Duration::from_secs(1);
    c.connections.idle = Duration::from_secs(2);
}

/// Review finding 4: connections that send nothing, stall inside their headers, or idle between requests
/// used to stay open for good.
async fn silent_and_stalled_connections_are_closed(app: &TestApp) {
    let silent = TcpStream::connect(addr(app)).await.unwrap();
    let mut partial = TcpStream::connect(addr(app)).await.unwrap();
    partial.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.unwrap();
    let mut kept_alive = TcpStream::connect(addr(app)).await.unwrap();
    kept_alive.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut stalled_body = TcpStream::connect(addr(app)).await.unwrap();
    stalled_body.write_all(&raw_post("/api/v1/auth/login", r#"{"username":"#)[..]).await.unwrap();
    let (a, b, c, d) =
        tokio::join!(closed_after(silent), closed_after(partial), closed_after(kept_alive), closed_after(stalled_body));
    for waited in [a, b, c] {
        assert!(waited < Duration::from_millis(2500), "closed after {waited:?}");
    }
    assert!(d < Duration::from_millis(4500), "a stalled body closed after {d:?}");
}
on_both!(silent_and_stalled_connections_are_closed, short_timeouts);

/// Connections beyond `max_connections` wait in the backlog instead of taking a descriptor each.
async fn open_connections_are_capped(app: &TestApp) {
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(TcpStream::connect(addr(app)).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let waiting = app.client.get(app.url("/healthz")).timeout(Duration::from_millis(700)).send().await;
    assert!(waiting.is_err(), "a third connection was served while two were open");
    drop(held);
    let served = app.client.get(app.url("/healthz")).timeout(Duration::from_secs(5)).send().await.unwrap();
    assert_eq!(served.status(), StatusCode::OK);
}
on_both!(open_connections_are_capped, |c| c.connections.max_connections = 2);

/// Review finding 1(c): `/readyz` used to stay 200 while the write lock was held for good. Here another
/// process's connection holds it. (SQLite only: PostgreSQL has no database-wide write lock.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_notices_a_stuck_writer() {
    use sqlx::{Connection, Executor};
    let app = &spawn(Backend::Sqlite, |_| {}).await.unwrap();
    let mut other = sqlx::SqliteConnection::connect(&app.services.config.database_url).await.unwrap();
    other.execute("BEGIN IMMEDIATE").await.unwrap();
    let started = std::time::Instant::now();
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(started.elapsed() < Duration::from_secs(3), "answered within the readiness deadline");
    other.execute("ROLLBACK").await.unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
}

/// Review finding 12: the hashing queue was unbounded (a flood took a real login from 18 ms to 514 ms).
/// Beyond `hash_queue` waiting checks, logins are refused at once with 503 and `Retry-After`.
async fn a_full_hashing_queue_sheds_load(app: &TestApp) {
    let attempts: Vec<_> = (0..30)
        .map(|i| {
            let (client, url) = (app.client.clone(), app.url("/auth/login"));
            tokio::spawn(async move {
                let body = serde_json::json!({"username": format!("nobody-{i}@example.com"), "password": PASSWORD});
                let r = client.post(url).json(&body).send().await.unwrap();
                (r.status(), r.headers().contains_key("retry-after"))
            })
        })
        .collect();
    let mut shed = 0;
    for a in attempts {
        let (status, retry_after) = a.await.unwrap();
        assert!(matches!(status.as_u16(), 401 | 503), "{status}");
        if status == StatusCode::SERVICE_UNAVAILABLE {
            assert!(retry_after);
            shed += 1;
        }
    }
    assert!(shed > 0, "no login was refused with a queue of one");
    // Refused attempts do not count towards the lockout of their identifier.
    let (email, _) = app.new_user().await;
    expect_json(app.login(&email, PASSWORD).await, StatusCode::OK).await;
}
on_both!(a_full_hashing_queue_sheds_load, |c| {
    c.hash_queue = 1;
    c.hash_concurrency = 1;
    c.argon2_memory_kib = 8 * 1024;
});

/// Review finding 10: the database and its WAL files were created world-readable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let app = &spawn(Backend::Sqlite, |_| {}).await.unwrap();
    app.new_user().await;
    let path = app.services.config.database_url.trim_start_matches("sqlite://").to_string();
    for file in [path.clone(), format!("{path}-wal"), format!("{path}-shm")] {
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{file}");
    }
}
