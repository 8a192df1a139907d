//! `latchkey-verify` with a warm key cache: what a resource server pays per request to check a token, for
//! each algorithm Latchkey signs with. The keys come from a JWKS served on a local port, as from Latchkey.

use std::hint::black_box;

mod common;

use common::{ISSUER, claims};
use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::Algorithm;
use latchkey::domain::tokens::KeyRing;
use latchkey_verify::Verifier;

fn verify(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let ring = KeyRing::generated(None, ISSUER, "latchkey");
    let jwks = ring.jwks().to_string();
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let url = format!("http://{}/jwks", listener.local_addr().unwrap());
    let router = axum::Router::new().route("/jwks", axum::routing::get(move || async move { jwks }));
    runtime.spawn(async move { axum::serve(listener, router).await });
    let verifier = Verifier::builder(ISSUER).jwks_uri(url).build();
    for alg in [Algorithm::EdDSA, Algorithm::RS256, Algorithm::ES256] {
        let token = ring.signing_key(alg).sign("at+jwt", &claims());
        runtime.block_on(verifier.verify(&token)).expect("the token verifies");
        c.bench_function(&format!("latchkey-verify {alg:?}, warm keys"), |b| {
            b.iter(|| runtime.block_on(verifier.verify(black_box(&token))).is_ok())
        });
    }
}

criterion_group!(benches, verify);
criterion_main!(benches);
