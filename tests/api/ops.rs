//! Health, readiness, the OpenAPI document, Swagger UI, and the headers every response carries.

use reqwest::StatusCode;
use serde_json::Value;

use crate::{
    helpers::{TestApp, expect_json},
    on_both,
};

async fn health_and_readiness(app: &TestApp) {
    let health = expect_json(app.client.get(app.url("/healthz")).send().await.unwrap(), StatusCode::OK).await;
    assert_eq!(health["status"], "ok");
    let ready = expect_json(app.client.get(app.url("/readyz")).send().await.unwrap(), StatusCode::OK).await;
    assert_eq!(ready["status"], "ok");
}
on_both!(health_and_readiness);

async fn openapi_documents_every_endpoint(app: &TestApp) {
    let doc: Value = app.client.get(app.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/api/v1/auth/register",
        "/api/v1/auth/login",
        "/api/v1/auth/refresh",
        "/api/v1/auth/logout",
        "/api/v1/auth/logout-all",
        "/api/v1/auth/me",
        "/api/v1/auth/change-password",
        "/api/v1/auth/sessions",
        "/api/v1/auth/sessions/{id}",
        "/api/v1/auth/audit",
        "/healthz",
        "/readyz",
        "/.well-known/jwks.json",
    ] {
        assert!(paths.contains_key(path), "{path} missing from the OpenAPI document");
    }
    let flow = &doc["components"]["securitySchemes"]["password"]["flows"]["password"];
    let token_url = format!("{}/api/v1/auth/login", app.services.config.issuer);
    assert_eq!(flow["tokenUrl"], token_url.as_str(), "absolute, as OpenAPI 3.1 requires");
    let text = doc.to_string();
    for absent in ["hint", "security_question", "password_expires"] {
        assert!(!text.contains(absent));
    }
}
on_both!(openapi_documents_every_endpoint);

/// Every `(method, path)` that `src/http/` and `/metrics` route, read from their `.route(…)` calls: the API
/// modules are nested under `/api/v1`, `ops.rs` and the metrics router are not.
fn served_routes() -> Vec<(String, String)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<_> = std::fs::read_dir(root.join("src/http")).unwrap().map(|e| e.unwrap().path()).collect();
    files.push(root.join("src/edge/metrics.rs"));
    let mut routes = Vec::new();
    for file in files {
        let name = file.file_name().unwrap().to_str().unwrap().to_string();
        let prefix = if ["ops.rs", "metrics.rs"].contains(&name.as_str()) { "" } else { "/api/v1" };
        let text = std::fs::read_to_string(&file).unwrap();
        for (start, _) in text.match_indices(".route(\"") {
            let rest = &text[start + ".route(\"".len()..];
            let path = &rest[..rest.find('"').unwrap()];
            let mut depth = 1;
            let end = rest.char_indices().find_map(|(i, c)| {
                depth += match c {
                    '(' => 1,
                    ')' => -1,
                    _ => 0,
                };
                (depth == 0).then_some(i)
            });
            let call = &rest[..end.unwrap()];
            // A proxy's subrequest (`any`) comes with the original request's method: documented as GET.
            for (router, method) in [
                ("get", "get"),
                ("any", "get"),
                ("post", "post"),
                ("put", "put"),
                ("patch", "patch"),
                ("delete", "delete"),
            ] {
                let called = call.match_indices(&format!("{router}(")).any(|(i, _)| {
                    i == 0 || !call.as_bytes()[i - 1].is_ascii_alphanumeric() && call.as_bytes()[i - 1] != b'_'
                });
                if called {
                    routes.push((method.to_string(), format!("{prefix}{path}")));
                }
            }
        }
    }
    routes
}

/// The document lists every operation the router serves, and every status the shared layers can answer:
/// a JSON body's 400/413/415/422, a bearer's 401, the database's 503, each an `ErrorBody`.
async fn openapi_lists_every_route_and_status(app: &TestApp) {
    let doc: Value = app.client.get(app.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    let routes = served_routes();
    assert!(routes.len() > 60, "the route scan found {} routes", routes.len());
    for (method, path) in &routes {
        let operation = &doc["paths"][path][method];
        assert!(operation.is_object(), "{} {path} is served but not documented", method.to_uppercase());
        let responses = operation["responses"].as_object().unwrap();
        let json_body = operation["requestBody"]["content"].get("application/json").is_some();
        let bearer = operation["security"].as_array().is_some_and(|s| !s.is_empty());
        let owed = [("400", json_body), ("413", json_body), ("415", json_body), ("422", json_body), ("401", bearer)];
        for (status, expected) in owed.into_iter().chain([("503", path != "/healthz")]) {
            assert!(!expected || responses.contains_key(status), "{method} {path} does not list {status}");
        }
        for (status, response) in responses {
            if status.starts_with('4') || status.starts_with('5') {
                let reference = response["$ref"].as_str().map(|r| r.rsplit('/').next().unwrap());
                let response = reference.map_or(response, |name| &doc["components"]["responses"][name]);
                let schema = &response["content"]["application/json"]["schema"]["$ref"];
                assert_eq!(schema, "#/components/schemas/ErrorBody", "{method} {path} {status}: {response}");
            }
        }
    }
    let methods = ["get", "post", "put", "patch", "delete"];
    let items = doc["paths"].as_object().unwrap().values();
    let documented: usize = items.map(|item| methods.iter().filter(|m| item.get(**m).is_some()).count()).sum();
    assert_eq!(documented, routes.len(), "the document lists operations the router does not serve");
    // OpenAPI 3.1 §4.8.10.1: operation ids are unique (scripts/schemathesis.sh validates the rest of the
    // document against the OpenAPI 3.1 schema).
    let mut ids = std::collections::HashSet::new();
    for (method, path) in &routes {
        let id = doc["paths"][path][method]["operationId"].as_str().unwrap();
        assert!(ids.insert(id.to_string()), "{method} {path}: operationId {id} is used twice");
    }
    for path in latchkey::http::openapi::RATE_LIMITED {
        let responses = &doc["paths"][path]["post"]["responses"];
        assert!(responses.get("429").is_some(), "{path} is rate-limited but does not list 429");
    }
    let limited = &doc["components"]["responses"]["RateLimited"];
    assert_eq!(limited["headers"]["Retry-After"]["schema"]["type"], "integer");
}
on_both!(openapi_lists_every_route_and_status);

async fn swagger_ui_is_served_from_the_binary(app: &TestApp) {
    let page = app.client.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui"));
    assert!(!html.contains("cdn") && !html.contains("unpkg"), "nothing from a CDN");
    let initializer =
        app.client.get(app.url("/docs/swagger-initializer.js")).send().await.unwrap().text().await.unwrap();
    assert!(initializer.contains("/openapi.json"));
}
on_both!(swagger_ui_is_served_from_the_binary);

async fn security_headers_on_every_response(app: &TestApp) {
    let responses = [
        app.client.get(app.url("/healthz")).send().await.unwrap(),
        app.client.get(app.url("/api/v1/auth/me")).send().await.unwrap(),
        app.client.get(app.url("/nope")).send().await.unwrap(),
        app.client
            .post(app.url("/api/v1/auth/login"))
            .header("content-type", "application/json")
            .body("{")
            .send()
            .await
            .unwrap(),
    ];
    for r in &responses {
        let csp = r.headers()["content-security-policy"].to_str().unwrap();
        for directive in ["object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'", "default-src 'none'"] {
            assert!(csp.contains(directive), "{csp}");
        }
        assert_eq!(r.headers()["content-type"], "application/json; charset=utf-8");
        assert_eq!(r.headers()["cross-origin-opener-policy"], "same-origin");
        assert!(!r.headers().contains_key("strict-transport-security"), "plain-http deployment");
        assert_eq!(r.headers()["x-content-type-options"], "nosniff");
        assert_eq!(r.headers()["x-frame-options"], "DENY");
        assert!(r.headers().contains_key("x-request-id"));
        assert!(!r.headers().contains_key("server") && !r.headers().contains_key("x-powered-by"));
    }
    assert_eq!(responses[1].headers()["cache-control"], "no-store");
}
on_both!(security_headers_on_every_response);

async fn docs_csp_allows_only_its_own_scripts(app: &TestApp) {
    let page = app.client.get(app.url("/docs/")).send().await.unwrap();
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.contains("script-src 'self'") && !csp.contains("script-src 'self' 'unsafe-inline'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"));
}
on_both!(docs_csp_allows_only_its_own_scripts);

async fn hsts_when_the_issuer_is_https(app: &TestApp) {
    let r = app.client.get(app.url("/healthz")).send().await.unwrap();
    let hsts = r.headers()["strict-transport-security"].to_str().unwrap();
    assert!(hsts.starts_with("max-age=63072000") && hsts.contains("includeSubDomains"));
}
on_both!(hsts_when_the_issuer_is_https, |c| c.issuer = "https://auth.example".into());

async fn preflight(app: &TestApp, origin: &str) -> reqwest::Response {
    app.client
        .request(reqwest::Method::OPTIONS, app.url("/api/v1/auth/login"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap()
}

async fn cors_is_closed_by_default(app: &TestApp) {
    for origin in ["https://evil.example", "null"] {
        let r = preflight(app, origin).await;
        assert!(!r.headers().contains_key("access-control-allow-origin"), "{origin}");
    }
}
on_both!(cors_is_closed_by_default);

async fn cors_echoes_only_allowed_origins(app: &TestApp) {
    let r = preflight(app, "https://app.example").await;
    assert_eq!(r.headers()["access-control-allow-origin"], "https://app.example");
    assert!(!r.headers().contains_key("access-control-allow-credentials"));
    for origin in ["https://evil.example", "null", "https://app.example.evil.com"] {
        let r = preflight(app, origin).await;
        assert!(!r.headers().contains_key("access-control-allow-origin"), "{origin}");
    }
    // Single-page apps reach the token endpoint; the authorization endpoint and the pages never answer
    // cross-origin (SECURITY.md 96).
    for (path, allowed) in [("/oauth2/token", true), ("/oauth2/authorize", false), ("/login", false)] {
        let r = app
            .client
            .request(reqwest::Method::OPTIONS, app.url(path))
            .header("origin", "https://app.example")
            .header("access-control-request-method", "POST")
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers().contains_key("access-control-allow-origin"), allowed, "{path}");
    }
}
on_both!(cors_echoes_only_allowed_origins, |c| c.cors_origins =
    vec![reqwest::header::HeaderValue::from_static("https://app.example")]);

async fn metrics_count_requests_and_security_events(app: &TestApp) {
    let (email, _) = app.new_user().await;
    app.login(&email, "not the password at all").await;
    app.login(&email, crate::helpers::PASSWORD).await;
    let text = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    for needle in [
        r#"http_requests_total{method="POST",route="/api/v1/auth/login",status="401"}"#,
        r#"http_request_duration_seconds_bucket{method="POST",route="/api/v1/auth/register""#,
        r#"latchkey_logins_total{outcome="invalid_credentials"}"#,
        r#"latchkey_logins_total{outcome="success"}"#,
        "latchkey_active_sessions",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
    assert!(!text.contains(&email), "no personal data in metrics");
}
on_both!(metrics_count_requests_and_security_events);

async fn metrics_can_require_a_token(app: &TestApp) {
    let open = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(open.status(), StatusCode::UNAUTHORIZED);
    let wrong = app.client.get(app.url("/metrics")).bearer_auth("guess").send().await.unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let right = app.client.get(app.url("/metrics")).bearer_auth("scrape-secret-0123456789").send().await.unwrap();
    assert_eq!(right.status(), StatusCode::OK);
    assert!(right.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
}
on_both!(metrics_can_require_a_token, |c| c.metrics_token = Some("scrape-secret-0123456789".into()));
