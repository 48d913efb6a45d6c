//! What the control plane's load benchmarks share (`mod load;` in each bench): the server
//! started as `keygate serve` starts it, set-up helpers over the HTTP API (sign-in by emailed
//! code, an SDK key), and a minimal keep-alive HTTP/1.1 load generator over raw TCP with its
//! latency tally and report line.
//!
//! The server runs on its own 2-thread runtime; the generator on one thread of its own
//! ([`client_runtime`]), so it costs as little of the shared CPU as possible. Every run is
//! bounded in time and in requests ([`MAX_REQUESTS_PER_RUN`]); loopback only.

// Each bench uses only part of this module.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use keygate_control::config::{Settings, SettingsArgs};
use keygate_control::http;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// No run sends more than this many requests, whatever its duration.
pub const MAX_REQUESTS_PER_RUN: u64 = 2_000_000;

/// A number from the environment, or `default`.
pub fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The server under test: the same state and router as `keygate serve`, SQLite in `data_dir`
/// (or the database `KEYGATE_BENCH_DATABASE_URL` names: the verify bench checks what was
/// stored through the API, so it runs on PostgreSQL too).
pub struct Server {
    /// Its runtime (2 worker threads); dropping it stops the server.
    pub rt: tokio::runtime::Runtime,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    pub addr: SocketAddr,
    /// The database URL, for the benches' own checks of what was stored.
    pub database_url: String,
}

/// Starts the server on a loopback port of its own.
pub fn start_server(data_dir: &Path) -> Server {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (addr, database_url) = rt.block_on(async {
        let args = SettingsArgs {
            data_dir: Some(data_dir.to_path_buf()),
            database_url: std::env::var("KEYGATE_BENCH_DATABASE_URL").ok(),
            ..SettingsArgs::default()
        };
        let settings = Settings::resolve(args).expect("settings");
        let database_url = settings.database_url.clone();
        let state = keygate_control::server::build_state(settings)
            .await
            .expect("state");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = http::router(state).into_make_service_with_connect_info::<SocketAddr>();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (addr, database_url)
    });
    Server {
        rt,
        base: format!("http://{addr}"),
        addr,
        database_url,
    }
}

/// The load generator's runtime: one thread.
pub fn client_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Prints the run's conditions: cores and load average.
pub fn print_conditions(what: &str, connections: u64, seconds: u64) {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "{what}: {}, {connections} keep-alive connections, {seconds} s per run, loopback; \
         {} cores, load average {}",
        if std::env::var("KEYGATE_BENCH_DATABASE_URL").is_ok_and(|u| u.starts_with("postgres")) {
            "PostgreSQL on the same machine"
        } else {
            "SQLite"
        },
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
}

/// A set-up call that must succeed: POST `body` as JSON; returns the JSON answer.
pub async fn post(
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

/// A set-up GET that must succeed, with an SDK key.
pub async fn get(url: String, bearer: &str) -> Value {
    let res = reqwest::Client::new()
        .get(&url)
        .bearer_auth(bearer)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    assert!(status < 300, "{url}: {status} {body}");
    body
}

/// A signed-in dashboard session (the owner of a fresh organisation) and an SDK key made
/// from it.
pub struct SignedIn {
    /// The session's `Cookie` header value (session and CSRF cookies).
    pub cookie: String,
    /// The CSRF token state-changing dashboard calls echo in `x-csrf-token`.
    pub csrf: String,
    /// A global SDK key with read and write on workspaces, workspace scopes and API keys.
    pub sdk_key: String,
}

/// The newest code in `<data dir>/outbox.mbox`, waiting up to 10 s for the mail queue (codes
/// are sent off the request path).
async fn emailed_code(data_dir: &Path) -> String {
    for _ in 0..200 {
        let mbox = std::fs::read_to_string(data_dir.join("outbox.mbox")).unwrap_or_default();
        let code = mbox
            .lines()
            .map(str::trim)
            .rfind(|l| l.len() == 6 && l.bytes().all(|b| b.is_ascii_digit()));
        if let Some(code) = code {
            return code.to_owned();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no code in the outbox after 10 s");
}

/// Signs in with the real email-code flow (the code is read from `<data dir>/outbox.mbox`)
/// and creates an SDK key.
pub async fn sign_in(base: &str, data_dir: &Path) -> SignedIn {
    let http = reqwest::Client::new();
    let email = "bench@example.com";
    post(
        &http,
        format!("{base}/api/v1/auth/otp"),
        json!({ "email": email }),
        None,
        None,
    )
    .await;
    let code = emailed_code(data_dir).await;
    let res = http
        .post(format!("{base}/api/v1/auth/session"))
        .json(&json!({ "email": email, "code": code }))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "sign-in: {}", res.status());
    let cookie = res
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next())
        .collect::<Vec<_>>()
        .join("; ");
    assert!(cookie.contains("keygate_session="), "no session cookie");
    let session: Value = res.json().await.unwrap();
    let csrf = session["csrfToken"].as_str().unwrap().to_owned();
    let sdk = http
        .post(format!("{base}/api/v1/sdk-keys"))
        .header(reqwest::header::COOKIE, &cookie)
        .header("x-csrf-token", &csrf)
        .json(&json!({ "name": "bench", "scopes": { "workspace": ["read", "write"], "workspace_scopes": ["read", "write"], "api_keys": ["read", "write"] } }))
        .send()
        .await
        .unwrap();
    assert!(sdk.status().is_success(), "SDK key: {}", sdk.status());
    let sdk: Value = sdk.json().await.unwrap();
    SignedIn {
        cookie,
        csrf,
        sdk_key: sdk["key"].as_str().unwrap().to_owned(),
    }
}

/// One pre-serialized HTTP/1.1 request: `headers` are whole lines without the line end; a
/// body is sent as JSON.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[String],
    body: Option<&str>,
) -> Arc<Vec<u8>> {
    let mut r = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n");
    for h in headers {
        r.push_str(h);
        r.push_str("\r\n");
    }
    if let Some(body) = body {
        r.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ));
    } else {
        r.push_str("\r\n");
    }
    Arc::new(r.into_bytes())
}

/// Sorts an answer into a counted outcome, from its status code and body.
pub type Classify = fn(u16, &[u8]) -> &'static str;

/// Outcomes by status class: `2xx`, `409`, `4xx` (any other), `5xx`.
pub fn by_status(status: u16, _body: &[u8]) -> &'static str {
    match status {
        200..=299 => "2xx",
        409 => "409",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "other",
    }
}

/// What one run saw.
#[derive(Default)]
pub struct Tally {
    pub latencies_us: Vec<u32>,
    /// Answers by outcome (see [`Classify`]); `CONNECTION_ERROR` when a connection broke.
    pub counts: Vec<(&'static str, u64)>,
    /// How far a paced generator fell behind its schedule.
    pub max_lag: Duration,
}

impl Tally {
    fn add(&mut self, outcome: &'static str, n: u64) {
        match self.counts.iter_mut().find(|(o, _)| *o == outcome) {
            Some((_, c)) => *c += n,
            None => self.counts.push((outcome, n)),
        }
    }

    /// How many answers had this outcome.
    pub fn count(&self, outcome: &str) -> u64 {
        self.counts
            .iter()
            .find(|(o, _)| *o == outcome)
            .map_or(0, |(_, c)| *c)
    }

    /// How many answers had none of these outcomes.
    pub fn count_other_than(&self, outcomes: &[&str]) -> u64 {
        self.counts
            .iter()
            .filter(|(o, _)| !outcomes.contains(o))
            .map(|(_, c)| c)
            .sum()
    }

    /// The latency at percentile `p` (0..=1), in milliseconds; the tally must be sorted.
    fn pct(&self, p: f64) -> f64 {
        let v = &self.latencies_us;
        if v.is_empty() {
            0.0
        } else {
            v[((v.len() as f64 * p) as usize).min(v.len() - 1)] as f64 / 1000.0
        }
    }
}

/// Sends one request and reads one response on a keep-alive connection; returns the status
/// code, with the body at `buf[body]`. `None` if the connection broke.
async fn round_trip(
    conn: &mut TcpStream,
    req: &[u8],
    buf: &mut Vec<u8>,
) -> Option<(u16, std::ops::Range<usize>)> {
    conn.write_all(req).await.ok()?;
    buf.clear();
    let mut chunk = [0u8; 8192];
    let mut head: Option<(usize, u16, usize)> = None;
    loop {
        let n = conn.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if head.is_none() {
            let Some(head_end) = find(buf, b"\r\n\r\n") else {
                continue;
            };
            let text = std::str::from_utf8(&buf[..head_end]).ok()?;
            let status: u16 = text.get(9..12)?.parse().ok()?;
            let len: usize = text
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .expect("every answer has a Content-Length");
            head = Some((head_end + 4, status, len));
        }
        let (start, status, len) = head?;
        if buf.len() >= start + len {
            return Some((status, start..start + len));
        }
    }
}

/// Where `needle` first occurs in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// How a run is paced.
#[derive(Clone, Copy)]
pub enum Pace {
    /// As fast as each connection can go, for this long.
    Flat(Duration),
    /// This many requests per second over all connections, for this long.
    Rate(u64, Duration),
    /// Exactly this many requests in total.
    Count(u64),
}

/// Drives `connections` keep-alive connections, connection `c` sending `reqs[c % len]` over
/// and over, until the pace says stop (and never more than [`MAX_REQUESTS_PER_RUN`]).
pub async fn drive(
    addr: SocketAddr,
    reqs: &[Arc<Vec<u8>>],
    connections: u64,
    pace: Pace,
    classify: Classify,
) -> (Tally, Duration) {
    assert!(!reqs.is_empty());
    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let remaining = Arc::new(AtomicI64::new(match pace {
        Pace::Count(n) => n as i64,
        _ => MAX_REQUESTS_PER_RUN as i64,
    }));
    let mut tasks = Vec::new();
    for c in 0..connections {
        let req = reqs[c as usize % reqs.len()].clone();
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
            let mut buf = Vec::with_capacity(8192);
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
                let sent = Instant::now();
                i += 1;
                match round_trip(&mut conn, &req, &mut buf).await {
                    Some((status, body)) => tally.add(classify(status, &buf[body]), 1),
                    None => {
                        tally.add("CONNECTION_ERROR", 1);
                        conn = TcpStream::connect(addr).await.expect("reconnect");
                        conn.set_nodelay(true).unwrap();
                    }
                }
                tally
                    .latencies_us
                    .push(sent.elapsed().as_micros().min(u32::MAX as u128) as u32);
            }
            tally
        }));
    }
    let mut all = Tally::default();
    for t in tasks {
        let t = t.await.unwrap();
        all.latencies_us.extend(t.latencies_us);
        for (o, n) in t.counts {
            all.add(o, n);
        }
        all.max_lag = all.max_lag.max(t.max_lag);
    }
    stop.store(true, Ordering::Relaxed);
    all.latencies_us.sort_unstable();
    (all, start.elapsed())
}

/// Prints one result line; returns the throughput (requests per second).
pub fn report(name: &str, tally: &Tally, elapsed: Duration) -> f64 {
    let n = tally.latencies_us.len() as f64;
    let rps = n / elapsed.as_secs_f64();
    let mut counts = tally.counts.clone();
    counts.sort_unstable();
    let counts = counts
        .iter()
        .map(|(o, n)| format!("{n} {o}"))
        .collect::<Vec<_>>()
        .join(", ");
    println!(
        "{name:<44} {rps:>9.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  max {:>7.2} ms  ({counts}, {:.1} s)",
        tally.pct(0.50),
        tally.pct(0.99),
        tally.pct(1.0),
        elapsed.as_secs_f64()
    );
    rps
}
