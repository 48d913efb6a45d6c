//! Criterion benchmarks of the hot paths: `parse`, `digest`, and the full publishable-key
//! `check` with 0, 10 and 1,000 blacklist rules, and route classification with 10 and 1,000
//! routes.
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

/// Route classification (canonical path + trie walk) with 10 and 1,000 routes: the cost must
/// not grow with the number of routes.
fn bench_route(c: &mut Criterion) {
    use keygate_shared::route::{CanonicalPath, RouteBinding, RouteMap};
    let mut group = c.benchmark_group("route");
    for n in [10usize, 1_000] {
        // n routes over 50 modules: literal, parameter and wildcard shapes, 4 segments deep.
        let bindings: Vec<RouteBinding> = (0..n)
            .map(|i| RouteBinding {
                module: format!("m{}", i % 50),
                functionality: format!("f{i}"),
                routes: vec![match i % 3 {
                    0 => format!("GET,POST /api/m{}/r{i}/{{id}}", i % 50),
                    1 => format!("POST /api/m{}/r{i}/items/*", i % 50),
                    _ => format!("DELETE /api/m{}/r{i}/x/{{id}}/y", i % 50),
                }],
            })
            .collect();
        let map = RouteMap::compile(&bindings).unwrap();
        let last = n - 1;
        let path = match last % 3 {
            0 => format!("api/m{}/r{last}/42", last % 50),
            1 => format!("api/M{}//r{last}/items/a/b", last % 50),
            _ => format!("api/m{}/r{last}/x/7/y", last % 50),
        };
        let method = ["GET", "POST", "DELETE"][last % 3];
        assert!(map
            .classify(method, &CanonicalPath::parse(&path).unwrap())
            .is_some());
        group.bench_with_input(BenchmarkId::new("classify", n), &n, |b, _| {
            b.iter(|| {
                let p = CanonicalPath::parse(black_box(&path)).unwrap();
                black_box(map.classify(black_box(method), &p).is_some())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_parse_and_digest, bench_check, bench_route);
criterion_main!(benches);
