//! Criterion benchmarks of the hot paths: `parse`, `digest`, and the full publishable-key
//! `check` with 0, 10 and 1,000 blacklist rules.
//!
//! `cargo bench -p keygate-shared --bench hot_paths`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use keygate_shared::blacklist::Rule;
use keygate_shared::check::{check, CheckRequest};
use keygate_shared::key::{self, Environment, KeyKind, SecretKey};
use keygate_shared::record::{EdgeRecord, KeyState};

fn bench_parse_and_digest(c: &mut Criterion) {
    let k = SecretKey::generate(KeyKind::Publishable, Environment::Live);
    c.bench_function("parse", |b| {
        b.iter(|| key::parse(black_box(k.expose())).is_ok())
    });
    c.bench_function("digest", |b| b.iter(|| key::digest(black_box(k.expose()))));
}

fn bench_check(c: &mut Criterion) {
    let k = SecretKey::generate(KeyKind::Publishable, Environment::Live);
    let mut group = c.benchmark_group("check");
    for rules in [0usize, 10, 1000] {
        let blacklist: Vec<Rule> = (0..rules)
            .map(|i| Rule::new(&format!("module{}", i % 50), &format!("func{i}")).unwrap())
            .collect();
        let record = EdgeRecord {
            blacklist,
            allowed_origins: vec![
                "https://app.example.com".into(),
                "https://*.example.org".into(),
            ],
            ..EdgeRecord::new(k.digest(), "ws_01HZX".into(), KeyState::Active, 1)
        }
        .compile();
        let req = CheckRequest {
            key: k.expose(),
            module: "module7",
            functionality: "charge",
            origin: Some("https://app.example.com"),
        };
        group.bench_with_input(
            BenchmarkId::new("valid_key_rules", rules),
            &record,
            |b, r| b.iter(|| check(black_box(&req), Some(r))),
        );
    }
    group.finish();
}

criterion_group!(benches, bench_parse_and_digest, bench_check);
criterion_main!(benches);
