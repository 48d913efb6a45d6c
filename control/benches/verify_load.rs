//! Load benchmark of `POST /api/v1/api-key/verify` (loopback only, bounded in time).
//!
//! Runs the real router and state (`server::build_state` + `http::router`, as `keygate serve`
//! does, SQLite in a temporary data directory) on its own 2-thread runtime, sets up through
//! the HTTP API (sign-in by emailed code, SDK key, workspace, scope, keys), then drives it
//! from a separate thread with a minimal keep-alive HTTP/1.1 load generator over raw TCP, so
//! the generator costs as little of the shared CPU as possible (server start, sign-in,
//! generator and report are shared with `control_load` in `benches/load/`).
//!
//! Scenarios (each `KEYGATE_BENCH_SECONDS`, default 8 s, `KEYGATE_BENCH_CONNECTIONS`
//! connections, default 32):
//! 0. baseline: `GET /healthz` (the same HTTP stack and one `SELECT 1`), the floor of "one
//!    database read per request" on this machine at this moment;
//! 1. unlimited key, as fast as possible; then the same with `billing: {id, usage: 2}`, the
//!    stored billing usage checked against twice the number of `VALID` answers;
//! 2. unlimited key at a fixed rate (`KEYGATE_BENCH_RATE`, default 7,500/s: half the target),
//!    latency measured from each send (the generator's lag behind its schedule is printed);
//! 3. usage-limited key (huge allowance), as fast as possible, then the stored count is
//!    checked against the number of `VALID` answers;
//! 4. usage-limited key with 20,000 uses hit 25,000 times: exactly 20,000 `VALID`.
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
    let v: Value = reqwest::Client::new()
        .get(format!("{base}/api/v1/workspace/{}/api-key/{id}", s.ws))
        .bearer_auth(&s.sdk_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (
        v["apiKey"]["totalUsageLeft"].as_i64().unwrap_or(-1),
        v["apiKey"]["usageCount"].as_i64().unwrap_or(-1),
    )
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is accepted.
    let seconds = env_num("KEYGATE_BENCH_SECONDS", 8);
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
        let limited = [request_bytes(s.addr, &s.sdk_key, &s.limited)];

        // Warm-up (connections, statement caches, pages).
        drive(s.addr, &unlimited, connections, Pace::Count(5_000), verdict).await;

        // Baseline: the same HTTP stack and one trivial query (`SELECT 1`), to show what the
        // floor of "one database round trip per request" is on this machine right now.
        let healthz = [load::request(s.addr, "GET", "/healthz", &[], None)];
        let (t, e) = drive(s.addr, &healthz, connections, Pace::Flat(d), verdict).await;
        report("baseline: GET /healthz (HTTP + SELECT 1)", &t, e);

        let (t, e) = drive(s.addr, &unlimited, connections, Pace::Flat(d), verdict).await;
        report("unlimited key, max throughput", &t, e);
        assert_eq!(t.count_other_than(&["VALID"]), 0, "every answer VALID");

        // Billing usage: every VALID verify waits for its group-committed increment.
        let billed = [request_with(
            s.addr,
            &s.sdk_key,
            &s.unlimited,
            Some(json!({ "id": "bench_bid", "usage": 2 })),
        )];
        let (t, e) = drive(s.addr, &billed, connections, Pace::Flat(d), verdict).await;
        report("unlimited key with billing usage, max throughput", &t, e);
        assert_eq!(t.count_other_than(&["VALID"]), 0, "every answer VALID");
        let usage: Value = reqwest::Client::new()
            .get(format!("{base}/api/v1/usage/bench_bid"))
            .bearer_auth(&s.sdk_key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let total: i64 = usage["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["totalBillingUsage"].as_i64().unwrap())
            .sum();
        println!("  stored billing usage {total}; VALID answers {}", t.count("VALID"));
        assert_eq!(total, 2 * t.count("VALID") as i64, "billing usage exact");

        let (t, e) = drive(s.addr, &unlimited, connections, Pace::Rate(rate, d), verdict).await;
        report(&format!("unlimited key, fixed {rate}/s"), &t, e);
        println!(
            "  (latency from each send; the generator lagged its schedule by at most {:.2} ms)",
            t.max_lag.as_secs_f64() * 1000.0
        );
        assert_eq!(t.count_other_than(&["VALID"]), 0, "every answer VALID");

        let (before_left, before_count) = key_counts(&base, &s, &s.limited_id).await;
        let (t, e) = drive(s.addr, &limited, connections, Pace::Flat(d), verdict).await;
        report("usage-limited key, max throughput", &t, e);
        let valid = t.count("VALID") as i64;
        let (left, count) = key_counts(&base, &s, &s.limited_id).await;
        println!(
            "  stored: usage left {before_left} -> {left} (-{}), usage count {before_count} -> {count} (+{}); VALID answers {valid}",
            before_left - left,
            count - before_count,
        );
        assert_eq!(before_left - left, valid, "allowance decremented once per VALID");
        assert_eq!(count - before_count, valid, "usage counted once per VALID");

        // Exhaustion under load: exactly the allowance is VALID.
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
        let (left, count) = key_counts(&base, &s, &id).await;
        println!("  stored: usage left {left}, usage count {count}");
        assert_eq!(t.count("VALID"), 20_000, "exactly the allowance is VALID");
        assert_eq!(t.count("USAGE_LIMITED"), 5_000);
        assert_eq!((left, count), (0, 20_000));
    });
    drop(server);
}
