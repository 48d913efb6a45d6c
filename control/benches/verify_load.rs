//! Load benchmark of `POST /api/v1/api-key/verify` (loopback only, bounded in time).
//!
//! Runs the real router and state (`server::build_state` + `http::router`, as `keygate serve`
//! does, SQLite in a temporary data directory) on its own 2-thread runtime, sets up through
//! the HTTP API (sign-in by emailed code, SDK key, workspace, scope, keys), then drives it
//! from a separate thread with a minimal keep-alive HTTP/1.1 load generator over raw TCP, so
//! the generator costs as little of the shared CPU as possible.
//!
//! Scenarios (each `KEYGATE_BENCH_SECONDS`, default 8 s, `KEYGATE_BENCH_CONNECTIONS`
//! connections, default 32):
//! 0. baseline: `GET /healthz` (the same HTTP stack and one `SELECT 1`), the floor of "one
//!    database read per request" on this machine at this moment;
//! 1. unlimited key, as fast as possible;
//! 2. unlimited key at a fixed rate (`KEYGATE_BENCH_RATE`, default 7,500/s: half the target),
//!    latency measured from each send (the generator's lag behind its schedule is printed);
//! 3. usage-limited key (huge allowance), as fast as possible, then the stored count is
//!    checked against the number of `VALID` answers;
//! 4. usage-limited key with 20,000 uses hit 25,000 times: exactly 20,000 `VALID`.
//!
//! `cargo xtask bench-verify` (or `cargo bench -p keygate-control --bench verify_load`).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use keygate_control::config::{Settings, SettingsArgs};
use keygate_control::http;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Setup {
    addr: SocketAddr,
    sdk_key: String,
    ws: String,
    unlimited: String,
    limited_id: String,
    limited: String,
}

async fn post(
    http: &reqwest::Client,
    url: String,
    body: Value,
    csrf: Option<&str>,
    bearer: Option<&str>,
) -> Value {
    let mut r = http.post(&url).json(&body);
    if let Some(c) = csrf {
        r = r.header("x-csrf-token", c);
    }
    if let Some(b) = bearer {
        r = r.bearer_auth(b);
    }
    let res = r.send().await.unwrap();
    let status = res.status().as_u16();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    assert!(status < 300, "{url}: {status} {body}");
    body
}

async fn setup(base: &str, data_dir: &std::path::Path) -> Setup {
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let url = |path: &str| format!("{base}{path}");
    let email = "bench@example.com";
    post(
        &http,
        url("/api/v1/auth/otp"),
        json!({ "email": email }),
        None,
        None,
    )
    .await;
    let mbox = std::fs::read_to_string(data_dir.join("outbox.mbox")).unwrap();
    let code = mbox
        .lines()
        .map(str::trim)
        .rfind(|l| l.len() == 6 && l.bytes().all(|b| b.is_ascii_digit()))
        .expect("a code in the outbox")
        .to_owned();
    let session = post(
        &http,
        url("/api/v1/auth/session"),
        json!({ "email": email, "code": code }),
        None,
        None,
    )
    .await;
    let csrf = session["csrfToken"].as_str().unwrap().to_owned();
    let sdk = post(
        &http,
        url("/api/v1/sdk-keys"),
        json!({ "name": "bench", "scopes": { "workspace": ["read", "write"], "workspace_scopes": ["read", "write"], "api_keys": ["read", "write"] } }),
        Some(&csrf),
        None,
    )
    .await;
    let sdk_key = sdk["key"].as_str().unwrap().to_owned();
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
fn request_bytes(addr: SocketAddr, sdk_key: &str, key: &str) -> Vec<u8> {
    let body = json!({
        "key": key,
        "requestedScopes": [{ "representation": "orders", "create": false, "read": true, "update": false, "del": false }],
    })
    .to_string();
    format!(
        "POST /api/v1/api-key/verify HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {sdk_key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    valid: u64,
    usage_limited: u64,
    other: u64,
    max_lag: Duration,
}

/// Sends one request and reads one response on a keep-alive connection; returns the status
/// word found in the body.
async fn round_trip(conn: &mut TcpStream, req: &[u8], buf: &mut Vec<u8>) -> Option<&'static str> {
    conn.write_all(req).await.ok()?;
    buf.clear();
    let mut chunk = [0u8; 4096];
    loop {
        let n = conn.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        let Some(head_end) = find(buf, b"\r\n\r\n") else {
            continue;
        };
        let head = std::str::from_utf8(&buf[..head_end]).ok()?;
        let len: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .unwrap_or(0);
        if buf.len() < head_end + 4 + len {
            continue;
        }
        if !head.starts_with("HTTP/1.1 200") {
            return Some("HTTP_ERROR");
        }
        let body = &buf[head_end + 4..head_end + 4 + len];
        if find(body, b"\"status\":\"ok\"").is_some() {
            return Some("VALID");
        }
        return Some(if find(body, b"\"status\":\"VALID\"").is_some() {
            "VALID"
        } else if find(body, b"\"status\":\"USAGE_LIMITED\"").is_some() {
            "USAGE_LIMITED"
        } else {
            "OTHER"
        });
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

enum Pace {
    /// As fast as each connection can go, for this long.
    Flat(Duration),
    /// This many requests per second over all connections, for this long.
    Rate(u64, Duration),
    /// Exactly this many requests in total.
    Count(u64),
}

async fn drive(
    addr: SocketAddr,
    req: Arc<Vec<u8>>,
    connections: u64,
    pace: Pace,
) -> (Tally, Duration) {
    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let remaining = Arc::new(std::sync::atomic::AtomicI64::new(match pace {
        Pace::Count(n) => n as i64,
        _ => i64::MAX,
    }));
    let mut tasks = Vec::new();
    for c in 0..connections {
        let req = req.clone();
        let stop = stop.clone();
        let remaining = remaining.clone();
        let (deadline, interval) = match pace {
            Pace::Flat(d) => (Some(start + d), None),
            Pace::Rate(rate, d) => (
                Some(start + d),
                Some(Duration::from_secs_f64(connections as f64 / rate as f64)),
            ),
            Pace::Count(_) => (None, None),
        };
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let mut conn = TcpStream::connect(addr).await.expect("connect");
            conn.set_nodelay(true).unwrap();
            let mut buf = Vec::with_capacity(4096);
            let mut i: u32 = 0;
            // Spread the paced connections' first sends over one interval.
            let offset = interval.map(|iv| iv.mul_f64(c as f64 / connections as f64));
            loop {
                if stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                if remaining.fetch_sub(1, Ordering::Relaxed) <= 0 {
                    break;
                }
                if let (Some(iv), Some(off)) = (interval, offset) {
                    let at = start + off + iv * i;
                    tokio::time::sleep_until(at.into()).await;
                    // How far the generator fell behind its schedule (timer slack included).
                    tally.max_lag = tally.max_lag.max(at.elapsed());
                }
                let scheduled = Instant::now();
                i += 1;
                match round_trip(&mut conn, &req, &mut buf).await {
                    Some("VALID") => tally.valid += 1,
                    Some("USAGE_LIMITED") => tally.usage_limited += 1,
                    Some(_) => tally.other += 1,
                    None => {
                        tally.other += 1;
                        conn = TcpStream::connect(addr).await.expect("reconnect");
                    }
                }
                tally
                    .latencies_us
                    .push(scheduled.elapsed().as_micros().min(u32::MAX as u128) as u32);
            }
            tally
        }));
    }
    let mut all = Tally::default();
    for t in tasks {
        let t = t.await.unwrap();
        all.latencies_us.extend(t.latencies_us);
        all.valid += t.valid;
        all.usage_limited += t.usage_limited;
        all.other += t.other;
        all.max_lag = all.max_lag.max(t.max_lag);
    }
    stop.store(true, Ordering::Relaxed);
    (all, start.elapsed())
}

fn report(name: &str, tally: &mut Tally, elapsed: Duration) -> f64 {
    tally.latencies_us.sort_unstable();
    let pct = |p: f64| {
        let v = &tally.latencies_us;
        if v.is_empty() {
            0.0
        } else {
            v[((v.len() as f64 * p) as usize).min(v.len() - 1)] as f64 / 1000.0
        }
    };
    let n = tally.latencies_us.len() as f64;
    let rps = n / elapsed.as_secs_f64();
    println!(
        "{name:<44} {rps:>9.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  max {:>7.2} ms  ({} VALID, {} USAGE_LIMITED, {} other, {:.1} s)",
        pct(0.50),
        pct(0.99),
        pct(1.0),
        tally.valid,
        tally.usage_limited,
        tally.other,
        elapsed.as_secs_f64()
    );
    rps
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

    // The server: the same state and router as `keygate serve`, on 2 worker threads.
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let base = server_rt.block_on(async {
        let args = SettingsArgs {
            data_dir: Some(data_dir.path().to_path_buf()),
            ..SettingsArgs::default()
        };
        let settings = Settings::resolve(args).expect("settings");
        let state = keygate_control::server::build_state(settings)
            .await
            .expect("state");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = http::router(state).into_make_service_with_connect_info::<SocketAddr>();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}")
    });

    // The load generator: one thread of its own.
    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    client_rt.block_on(async {
        let s = setup(&base, data_dir.path()).await;
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        println!(
            "verify load: SQLite, {connections} keep-alive connections, {seconds} s per run, loopback; \
             {} cores, load average {}",
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
        );
        let d = Duration::from_secs(seconds);
        let unlimited = Arc::new(request_bytes(s.addr, &s.sdk_key, &s.unlimited));
        let limited = Arc::new(request_bytes(s.addr, &s.sdk_key, &s.limited));

        // Warm-up (connections, statement caches, pages).
        drive(s.addr, unlimited.clone(), connections, Pace::Count(5_000)).await;

        // Baseline: the same HTTP stack and one trivial query (`SELECT 1`), to show what the
        // floor of "one database round trip per request" is on this machine right now.
        let healthz = Arc::new(
            format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", s.addr).into_bytes(),
        );
        let (mut t, e) = drive(s.addr, healthz, connections, Pace::Flat(d)).await;
        report("baseline: GET /healthz (HTTP + SELECT 1)", &mut t, e);

        let (mut t, e) = drive(s.addr, unlimited.clone(), connections, Pace::Flat(d)).await;
        report("unlimited key, max throughput", &mut t, e);
        assert_eq!(t.other, 0, "every answer VALID");

        let (mut t, e) = drive(s.addr, unlimited.clone(), connections, Pace::Rate(rate, d)).await;
        report(&format!("unlimited key, fixed {rate}/s"), &mut t, e);
        println!(
            "  (latency from each send; the generator lagged its schedule by at most {:.2} ms)",
            t.max_lag.as_secs_f64() * 1000.0
        );
        assert_eq!(t.other, 0, "every answer VALID");

        let (before_left, before_count) = key_counts(&base, &s, &s.limited_id).await;
        let (mut t, e) = drive(s.addr, limited.clone(), connections, Pace::Flat(d)).await;
        report("usage-limited key, max throughput", &mut t, e);
        let (left, count) = key_counts(&base, &s, &s.limited_id).await;
        println!(
            "  stored: usage left {before_left} -> {left} (-{}), usage count {before_count} -> {count} (+{}); VALID answers {}",
            before_left - left,
            count - before_count,
            t.valid
        );
        assert_eq!(before_left - left, t.valid as i64, "allowance decremented once per VALID");
        assert_eq!(count - before_count, t.valid as i64, "usage counted once per VALID");

        // Exhaustion under load: exactly the allowance is VALID.
        let http = reqwest::Client::new();
        let created: Value = http
            .post(format!("{base}/api/v1/api-key"))
            .bearer_auth(&s.sdk_key)
            .json(&json!({ "name": "exhaust", "workspaceId": s.ws, "scopes": [{ "representation": "orders", "read": true }], "enabled": true, "customerId": "c", "totalUsageAllowed": 20_000 }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = created["apiKey"]["id"].as_str().unwrap().to_owned();
        let req = Arc::new(request_bytes(
            s.addr,
            &s.sdk_key,
            created["apiKey"]["key"].as_str().unwrap(),
        ));
        let (mut t, e) = drive(s.addr, req, connections, Pace::Count(25_000)).await;
        report("20,000-use key hit 25,000 times", &mut t, e);
        let (left, count) = key_counts(&base, &s, &id).await;
        println!("  stored: usage left {left}, usage count {count}");
        assert_eq!(t.valid, 20_000, "exactly the allowance is VALID");
        assert_eq!(t.usage_limited, 5_000);
        assert_eq!((left, count), (0, 20_000));
    });
    drop(server_rt);
}
