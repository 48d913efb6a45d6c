//! Load benchmark of `POST /api/v1/api-key/verify` (loopback only, bounded in time).
//!
//! Runs the real router and state (`server::build_state` + `http::router`, as `keygate serve`
//! does, SQLite in a temporary data directory) on its own 2-thread runtime, sets up through
//! the HTTP API (sign-in by emailed code, SDK key, workspace, scope, keys), then drives it
//! from a separate thread with a minimal keep-alive HTTP/1.1 load generator over raw TCP, so
//! the generator costs as little of the shared CPU as possible (server start, sign-in,
//! generator and report are shared with `control_load` in `benches/load/`).
//!
//! Compared scenarios, alternated for `KEYGATE_BENCH_ROUNDS` rounds (default 5), each run
//! `KEYGATE_BENCH_SECONDS` (default 5 s) on `KEYGATE_BENCH_CONNECTIONS` connections (default
//! 32), reported per run and as medians, with the medians of the per-round ratios to the
//! baseline and to plain verify (the machine is shared: only same-run ratios compare):
//! 0. baseline: `GET /healthz` (the same HTTP stack and one `SELECT 1`), the floor of "one
//!    database read per request" on this machine at this moment;
//! 1. unlimited key, as fast as possible;
//! 2. the same with `billing: {id, usage: 2}`, the stored billing usage checked against
//!    twice the number of `VALID` answers;
//! 3. usage-limited key (huge allowance), as fast as possible, the stored uses left and count
//!    checked against the number of `VALID` answers.
//!
//! Then once: unlimited key at a fixed rate (`KEYGATE_BENCH_RATE`, default 7,500/s), latency
//! measured from each send (the generator's lag behind its schedule is printed); a
//! usage-limited key with 20,000 uses hit 25,000 times: exactly 20,000 `VALID`.
//!
//! `cargo xtask bench-verify` (or `cargo bench -p keygate-control --bench verify_load`).

mod load;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use load::{drive, env_num, find, post, report, Pace};
use serde_json::{json, Value};

struct Setup {
    addr: SocketAddr,
    sdk_key: String,
    ws: String,
    unlimited: String,
    limited_id: String,
    limited: String,
}

async fn setup(base: &str, data_dir: &std::path::Path) -> Setup {
    let url = |path: &str| format!("{base}{path}");
    let sdk_key = load::sign_in(base, data_dir).await.sdk_key;
    let b = Some(sdk_key.as_str());
    let plain = reqwest::Client::new();
    let ws = post(
        &plain,
        url("/api/v1/workspace"),
        json!({ "name": "bench" }),
        None,
        b,
    )
    .await["workspace"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    post(
        &plain,
        url(&format!("/api/v1/workspace/{ws}/scope")),
        json!({ "name": "orders", "representation": "orders" }),
        None,
        b,
    )
    .await;
    let scopes = json!([{ "representation": "orders", "create": false, "read": true, "update": false, "del": false }]);
    let body = json!({ "name": "bench", "workspaceId": ws, "scopes": scopes, "enabled": true, "customerId": "c" });
    let unlimited = post(&plain, url("/api/v1/api-key"), body.clone(), None, b).await["apiKey"]
        ["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut limited_body = body;
    limited_body["totalUsageAllowed"] = json!(1_000_000_000i64);
    let limited = post(&plain, url("/api/v1/api-key"), limited_body, None, b).await;
    Setup {
        addr: base.trim_start_matches("http://").parse().unwrap(),
        sdk_key,
        ws,
        unlimited,
        limited_id: limited["apiKey"]["id"].as_str().unwrap().to_owned(),
        limited: limited["apiKey"]["key"].as_str().unwrap().to_owned(),
    }
}

/// One pre-serialized verify request.
fn request_bytes(addr: SocketAddr, sdk_key: &str, key: &str) -> Arc<Vec<u8>> {
    request_with(addr, sdk_key, key, None)
}

/// One pre-serialized verify request, with an optional `billing` field.
fn request_with(
    addr: SocketAddr,
    sdk_key: &str,
    key: &str,
    billing: Option<Value>,
) -> Arc<Vec<u8>> {
    let mut body = json!({
        "key": key,
        "requestedScopes": [{ "representation": "orders", "create": false, "read": true, "update": false, "del": false }],
    });
    if let Some(b) = billing {
        body["billing"] = b;
    }
    let body = body.to_string();
    load::request(
        addr,
        "POST",
        "/api/v1/api-key/verify",
        &[format!("Authorization: Bearer {sdk_key}")],
        Some(&body),
    )
}

/// The verify status word in the body (`VALID` also for `/healthz`'s `"status":"ok"`).
fn verdict(status: u16, body: &[u8]) -> &'static str {
    if status != 200 {
        "HTTP_ERROR"
    } else if find(body, b"\"status\":\"ok\"").is_some()
        || find(body, b"\"status\":\"VALID\"").is_some()
    {
        "VALID"
    } else if find(body, b"\"status\":\"USAGE_LIMITED\"").is_some() {
        "USAGE_LIMITED"
    } else {
        "OTHER"
    }
}

async fn key_counts(base: &str, s: &Setup, id: &str) -> (i64, i64) {
    let v = load::get(
        format!("{base}/api/v1/workspace/{}/api-key/{id}", s.ws),
        &s.sdk_key,
    )
    .await;
    (
        v["apiKey"]["totalUsageLeft"].as_i64().unwrap_or(-1),
        v["apiKey"]["usageCount"].as_i64().unwrap_or(-1),
    )
}

/// The stored billing usage of `bench_bid`.
async fn billed(base: &str, s: &Setup) -> i64 {
    let usage = load::get(format!("{base}/api/v1/usage/bench_bid"), &s.sdk_key).await;
    usage["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["totalBillingUsage"].as_i64().unwrap())
        .sum()
}

/// The compared scenarios, run in turn in every round.
const SCENARIOS: [&str; 4] = [
    "baseline: GET /healthz (HTTP + SELECT 1)",
    "unlimited key",
    "unlimited key with billing usage",
    "usage-limited key",
];

/// The median of `v`.
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One round of the compared scenarios, each `d` long: their throughputs, with the stored
/// counts checked against the answers.
async fn round(
    base: &str,
    s: &Setup,
    reqs: &[[Arc<Vec<u8>>; 1]; 4],
    conns: u64,
    d: Duration,
) -> [f64; 4] {
    let mut rps = [0.0; 4];
    for (i, req) in reqs.iter().enumerate() {
        let before = (
            billed(base, s).await,
            key_counts(base, s, &s.limited_id).await,
        );
        let (t, e) = drive(s.addr, req, conns, Pace::Flat(d), verdict).await;
        rps[i] = report(SCENARIOS[i], &t, e);
        assert_eq!(t.count_other_than(&["VALID"]), 0, "every answer VALID");
        let valid = t.count("VALID") as i64;
        let after = (
            billed(base, s).await,
            key_counts(base, s, &s.limited_id).await,
        );
        if i == 2 {
            println!(
                "  billing usage stored +{} for {valid} VALID x 2",
                after.0 - before.0
            );
            assert_eq!(after.0 - before.0, 2 * valid, "billing usage exact");
        }
        if i == 3 {
            let ((l0, c0), (l1, c1)) = (before.1, after.1);
            println!(
                "  usage left -{}, usage count +{} for {valid} VALID",
                l0 - l1,
                c1 - c0
            );
            assert_eq!(
                (l0 - l1, c1 - c0),
                (valid, valid),
                "uses spent and counted once per VALID"
            );
        }
    }
    rps
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is accepted.
    let seconds = env_num("KEYGATE_BENCH_SECONDS", 5);
    let rounds = env_num("KEYGATE_BENCH_ROUNDS", 5);
    let connections = env_num("KEYGATE_BENCH_CONNECTIONS", 32);
    let rate = env_num("KEYGATE_BENCH_RATE", 7_500);
    let data_dir = tempfile::tempdir().expect("temp dir");
    let server = load::start_server(data_dir.path());
    let base = server.base.clone();

    load::client_runtime().block_on(async {
        let s = setup(&base, data_dir.path()).await;
        load::print_conditions("verify load", connections, seconds);
        let d = Duration::from_secs(seconds);
        let unlimited = [request_bytes(s.addr, &s.sdk_key, &s.unlimited)];
        let billing = Some(json!({ "id": "bench_bid", "usage": 2 }));
        let reqs = [
            [load::request(s.addr, "GET", "/healthz", &[], None)],
            unlimited.clone(),
            [request_with(s.addr, &s.sdk_key, &s.unlimited, billing)],
            [request_bytes(s.addr, &s.sdk_key, &s.limited)],
        ];

        // Warm-up (connections, statement caches, pages).
        drive(s.addr, &unlimited, connections, Pace::Count(5_000), verdict).await;

        // Rounds alternate the scenarios so that the machine's load falls on all of them.
        let mut all: Vec<[f64; 4]> = Vec::new();
        for r in 1..=rounds {
            println!("round {r} of {rounds}");
            all.push(round(&base, &s, &reqs, connections, d).await);
        }
        println!("medians over {rounds} rounds (ratios: medians of the per-round ratios)");
        for (i, name) in SCENARIOS.iter().enumerate() {
            let rps = median(all.iter().map(|r| r[i]).collect());
            let vs_healthz = median(all.iter().map(|r| r[i] / r[0]).collect());
            let vs_plain = median(all.iter().map(|r| r[i] / r[1]).collect());
            println!(
                "  {name:<44} {rps:>9.0} req/s  {vs_healthz:.2}x healthz  {vs_plain:.2}x unlimited"
            );
        }
        load::print_conditions("after the rounds", connections, seconds);

        let (t, e) = drive(
            s.addr,
            &unlimited,
            connections,
            Pace::Rate(rate, d),
            verdict,
        )
        .await;
        report(&format!("unlimited key, fixed {rate}/s"), &t, e);
        println!(
            "  (latency from each send; the generator lagged its schedule by at most {:.2} ms)",
            t.max_lag.as_secs_f64() * 1000.0
        );
        assert_eq!(t.count_other_than(&["VALID"]), 0, "every answer VALID");

        exhaustion(&base, &s, connections).await;
    });
    drop(server);
}

/// Exhaustion under load: a key with 20,000 uses hit 25,000 times gives exactly 20,000 VALID.
async fn exhaustion(base: &str, s: &Setup, connections: u64) {
    let created = post(
        &reqwest::Client::new(),
        format!("{base}/api/v1/api-key"),
        json!({ "name": "exhaust", "workspaceId": s.ws, "scopes": [{ "representation": "orders", "read": true }], "enabled": true, "customerId": "c", "totalUsageAllowed": 20_000 }),
        None,
        Some(&s.sdk_key),
    )
    .await;
    let id = created["apiKey"]["id"].as_str().unwrap().to_owned();
    let req = [request_bytes(
        s.addr,
        &s.sdk_key,
        created["apiKey"]["key"].as_str().unwrap(),
    )];
    let (t, e) = drive(s.addr, &req, connections, Pace::Count(25_000), verdict).await;
    report("20,000-use key hit 25,000 times", &t, e);
    let (left, count) = key_counts(base, s, &id).await;
    println!("  stored: usage left {left}, usage count {count}");
    assert_eq!(t.count("VALID"), 20_000, "exactly the allowance is VALID");
    assert_eq!(t.count("USAGE_LIMITED"), 5_000);
    assert_eq!((left, count), (0, 20_000));
}
