//! Tells the integration tests which outside services they may use, so that a test which cannot run is
//! built as `#[ignore]` and `cargo test`'s summary counts it as ignored rather than passed
//! (tests/api/helpers.rs). `.ci/run` sets these after starting or installing the services.
//!
//! - `LATCHKEY_TEST_POSTGRES_URL` → `cfg(test_postgres)`
//! - `LATCHKEY_TEST_REDIS_URL` → `cfg(test_redis)`
//! - `LATCHKEY_TEST_PEERS`, a list of `chromium`, `nginx`, `caddy`, `apache`, `node` → `cfg(test_peer = "…")`

const PEERS: [&str; 5] = ["chromium", "nginx", "caddy", "apache", "node"];

fn main() {
    println!("cargo::rustc-check-cfg=cfg(test_postgres)");
    println!("cargo::rustc-check-cfg=cfg(test_redis)");
    let values = PEERS.map(|p| format!("\"{p}\"")).join(", ");
    println!("cargo::rustc-check-cfg=cfg(test_peer, values({values}))");
    for (var, cfg) in [("LATCHKEY_TEST_POSTGRES_URL", "test_postgres"), ("LATCHKEY_TEST_REDIS_URL", "test_redis")] {
        println!("cargo::rerun-if-env-changed={var}");
        if std::env::var(var).is_ok_and(|v| !v.is_empty()) {
            println!("cargo::rustc-cfg={cfg}");
        }
    }
    println!("cargo::rerun-if-env-changed=LATCHKEY_TEST_PEERS");
    let peers = std::env::var("LATCHKEY_TEST_PEERS").unwrap_or_default();
    for peer in peers.split([' ', ',']).filter(|p| !p.is_empty()) {
        if !PEERS.contains(&peer) {
            println!("cargo::warning=LATCHKEY_TEST_PEERS: unknown peer {peer:?} (known: {})", PEERS.join(", "));
            continue;
        }
        println!("cargo::rustc-cfg=test_peer=\"{peer}\"");
    }
}
