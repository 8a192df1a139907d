//! Bad input gets a clear JSON error, never a 500.

use reqwest::StatusCode;

use crate::{
    helpers::{TestApp, expect_error},
    on_both,
};

async fn malformed_and_mistyped_bodies(app: &TestApp) {
    let post = |body: &'static [u8], content_type: &'static str| {
        app.client.post(app.url("/auth/login")).header("content-type", content_type).body(body).send()
    };
    expect_error(post(b"{bad", "application/json").await.unwrap(), StatusCode::BAD_REQUEST, "bad_request").await;
    expect_error(post(b"\xff\xfe{}", "application/json").await.unwrap(), StatusCode::BAD_REQUEST, "bad_request").await;
    expect_error(
        post(b"{}", "text/plain").await.unwrap(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    expect_error(post(b"{}", "application/json").await.unwrap(), StatusCode::UNPROCESSABLE_ENTITY, "validation_failed")
        .await;
    for body in [
        &br#"{"username":["a"],"password":"x"}"#[..],
        br#"{"username":{"$ne":""},"password":1}"#,
        b"[]",
        b"123456789012345678901234567890",
    ] {
        let response = post(body, "application/json").await.unwrap();
        let status = response.status();
        assert!(matches!(status, StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY), "{status}");
        let error: serde_json::Value = response.json().await.unwrap();
        assert!(error["error"].is_string(), "{error}");
    }
    // Duplicate keys: serde refuses them, deterministically.
    let dup = post(br#"{"username":"a","username":"b","password":"x"}"#, "application/json").await.unwrap();
    expect_error(dup, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
}
on_both!(malformed_and_mistyped_bodies);

async fn oversized_bodies_get_413(app: &TestApp) {
    let big = format!(r#"{{"username":"a","password":"{}"}}"#, "a".repeat(70 * 1024));
    // The server answers before reading the body and closes the connection: keep it out of the pool.
    let response = app
        .client
        .post(app.url("/auth/login"))
        .header("content-type", "application/json")
        .header("connection", "close")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    // Without a Content-Length (chunked) the limit still holds while the body streams in.
    let head = chunked_post(app, "/api/v1/auth/register", big.as_bytes()).await;
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    assert!(head.contains("payload_too_large"), "{head}");
    // 10,000 characters fit in the body limit and are simply wrong.
    let response = app.login("someone@example.com", &"p".repeat(10_000)).await;
    expect_error(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
}
on_both!(oversized_bodies_get_413);

/// Sends a chunked request by hand (reqwest always knows the length) and returns the raw response.
async fn chunked_post(app: &TestApp, path: &str, body: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(app.base.trim_start_matches("http://")).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    for chunk in body.chunks(8 * 1024) {
        // The server may answer and close before the whole body is sent; that is the point.
        if stream.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).await.is_err()
            || stream.write_all(chunk).await.is_err()
            || stream.write_all(b"\r\n").await.is_err()
        {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    String::from_utf8_lossy(&response).into_owned()
}

async fn unknown_routes_and_methods_answer_json(app: &TestApp) {
    let response = app.client.get(app.url("/nope")).send().await.unwrap();
    expect_error(response, StatusCode::NOT_FOUND, "not_found").await;
    let response = app.client.get(app.url("/api/v1/auth/nope")).send().await.unwrap();
    expect_error(response, StatusCode::NOT_FOUND, "not_found").await;
    let response = app.client.put(app.url("/auth/login")).send().await.unwrap();
    assert_eq!(response.headers()["allow"], "POST");
    expect_error(response, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
    let trace = app.client.request(reqwest::Method::TRACE, app.url("/auth/me")).send().await.unwrap();
    expect_error(trace, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
    let response = app.client.get(app.url("/auth/audit?limit=lots")).bearer_auth("x").send().await.unwrap();
    assert!(response.status().is_client_error());
}
on_both!(unknown_routes_and_methods_answer_json);
