//! `cargo run --release --example drafts`: the drafts service of `app.rs`, trusting the Latchkey at
//! `DRAFTS_ISSUER` (default `http://localhost:8080`) for tokens of audience `DRAFTS_AUDIENCE` (default
//! `latchkey`), on `DRAFTS_BIND` (default `127.0.0.1:8090`). Drafts live in memory.

mod app;

use latchkey_verify::Verifier;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let var = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_string());
    let issuer = var("DRAFTS_ISSUER", "http://localhost:8080");
    let verifier = Verifier::builder(&issuer).audience(var("DRAFTS_AUDIENCE", "latchkey")).build();
    let bind = var("DRAFTS_BIND", "127.0.0.1:8090");
    let listener = tokio::net::TcpListener::bind(&bind).await?;
    println!("drafts on http://{bind}, trusting tokens from {issuer}");
    axum::serve(listener, app::router(verifier)).await
}
