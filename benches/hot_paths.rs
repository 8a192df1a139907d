//! The hot paths: checking an access token (every authenticated request) and hashing a password
//! (every login and registration), with the production Argon2id parameters.

mod common;

use common::claims;
use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::Algorithm;
use latchkey::domain::{password::Hasher, tokens::KeyRing};
use std::hint::black_box;

/// The server's allocator: Argon2's 19 MiB blocks cost less when they are reused than when they are
/// mapped fresh each time, so the bench measures what the server does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn tokens(c: &mut Criterion) {
    let eddsa = KeyRing::generated(None, "http://localhost:8080", "latchkey");
    let hs256 = KeyRing::generated(Some(&[42u8; 32]), "http://localhost:8080", "latchkey");
    let (ed_token, hs_token) = (eddsa.sign(&claims()), hs256.sign(&claims()));
    c.bench_function("token verify EdDSA", |b| b.iter(|| eddsa.verify(black_box(&ed_token)).is_ok()));
    c.bench_function("token verify HS256", |b| b.iter(|| hs256.verify(black_box(&hs_token)).is_ok()));
    c.bench_function("token sign EdDSA", |b| b.iter(|| eddsa.sign(black_box(&claims()))));
    for alg in [Algorithm::RS256, Algorithm::ES256] {
        let key = eddsa.signing_key(alg);
        c.bench_function(&format!("token sign {alg:?}"), |b| b.iter(|| key.sign("JWT", black_box(&claims()))));
    }
}

fn passwords(c: &mut Criterion) {
    let hasher = Hasher::new(19_456, 2).expect("production parameters");
    let stored = hasher.hash("correct horse battery staple plume").expect("hash");
    let mut group = c.benchmark_group("argon2id m=19456 t=2 p=1");
    group.sample_size(20);
    group.bench_function("hash", |b| b.iter(|| hasher.hash(black_box("correct horse battery staple plume"))));
    group.bench_function("verify", |b| {
        b.iter(|| hasher.verify(black_box("correct horse battery staple plume"), &stored))
    });
    // What a login flood does on a 2-core machine: one verification per core at the same time. The time
    // is for the pair; the two share memory bandwidth and cache, not arithmetic.
    group.bench_function("verify, two at once", |b| {
        b.iter(|| {
            std::thread::scope(|s| {
                for _ in 0..2 {
                    s.spawn(|| hasher.verify(black_box("correct horse battery staple plume"), &stored));
                }
            })
        })
    });
    group.finish();
}

criterion_group!(benches, tokens, passwords);
criterion_main!(benches);
