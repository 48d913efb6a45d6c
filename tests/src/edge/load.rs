//! A small closed-loop load generator for loopback benchmarks: `connections` threads, each
//! with one keep-alive HTTP/1.1 connection, sending the same request back to back until a
//! deadline or a request cap, whichever comes first. Deliberately minimal (no TLS, no
//! chunked bodies; answers must carry `Content-Length`, as the worker's JSON answers do), so
//! the client costs little of the two cores it shares with the server.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// What a run measured.
#[derive(Clone, Debug, Default)]
pub struct LoadReport {
    /// Requests answered.
    pub requests: u64,
    /// Connection or protocol failures.
    pub errors: u64,
    /// Answers by HTTP status.
    pub statuses: BTreeMap<u16, u64>,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Every request's latency, in microseconds, sorted.
    pub latencies_us: Vec<u32>,
    /// Paced runs only: every request's scheduled send time (microseconds after the run's
    /// start) and latency (microseconds), in the order sent per connection.
    pub timeline: Vec<(u32, u32)>,
}

impl LoadReport {
    /// Answers per second.
    pub fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The `p`-th percentile latency (0..=100).
    pub fn percentile(&self, p: f64) -> Duration {
        if self.latencies_us.is_empty() {
            return Duration::ZERO;
        }
        let i = ((p / 100.0) * (self.latencies_us.len() - 1) as f64).round() as usize;
        Duration::from_micros(u64::from(self.latencies_us[i]))
    }
}

/// A request with a body, as raw HTTP/1.1 bytes.
pub fn http_request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n");
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method != "GET" {
        out.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// Reads one response; returns its status.
fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<u16> {
    buf.clear();
    let mut chunk = [0u8; 4096];
    let header_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = std::str::from_utf8(&buf[..header_end]).ok()?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let length: usize = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse().ok())
            .flatten()
    })?;
    while buf.len() < header_end + length {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(status)
}

/// Runs the load; stops at `duration` or after `max_requests` in total.
pub fn run(
    addr: SocketAddr,
    request: &[u8],
    connections: usize,
    duration: Duration,
    max_requests: u64,
) -> LoadReport {
    assert!(addr.ip().is_loopback(), "load only ever targets loopback");
    let start = Instant::now();
    let deadline = start + duration;
    let per_conn = max_requests / connections.max(1) as u64;
    let threads: Vec<_> = (0..connections)
        .map(|_| {
            let request = request.to_vec();
            std::thread::spawn(move || {
                let mut report = LoadReport::default();
                let mut buf = Vec::with_capacity(8192);
                let mut stream: Option<TcpStream> = None;
                while Instant::now() < deadline && report.requests < per_conn {
                    let s = match stream.as_mut() {
                        Some(s) => s,
                        None => match TcpStream::connect(addr) {
                            Ok(s) => {
                                let _ = s.set_nodelay(true);
                                let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                                stream.insert(s)
                            }
                            Err(_) => {
                                report.errors += 1;
                                std::thread::sleep(Duration::from_millis(10));
                                continue;
                            }
                        },
                    };
                    let t = Instant::now();
                    let status = s
                        .write_all(&request)
                        .ok()
                        .and_then(|()| read_response(s, &mut buf));
                    match status {
                        Some(code) => {
                            report.requests += 1;
                            *report.statuses.entry(code).or_default() += 1;
                            report
                                .latencies_us
                                .push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
                        }
                        None => {
                            report.errors += 1;
                            stream = None;
                        }
                    }
                }
                report
            })
        })
        .collect();
    let mut total = collect(threads);
    total.elapsed = start.elapsed();
    total
}

/// Opens a keep-alive connection for a load thread.
fn connect(addr: SocketAddr) -> Option<TcpStream> {
    let s = TcpStream::connect(addr).ok()?;
    let _ = s.set_nodelay(true);
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    Some(s)
}

/// Open-loop load at a fixed rate: `connections` threads, each sending on its own schedule
/// (`rate` requests per second in total), for `duration`. Latency is measured from each
/// request's scheduled send time, so a stalled server is charged for the requests it delayed
/// (no coordinated omission). For "p99 at half load" comparisons.
///
/// The schedule starts once every thread has its connection open: thread start-up and TCP
/// connects are not charged to the first requests (they were, up to ~8 ms per slice against a
/// runtime-free server on a loaded machine, before).
pub fn run_paced(
    addr: SocketAddr,
    request: &[u8],
    connections: usize,
    rate: f64,
    duration: Duration,
) -> LoadReport {
    assert!(addr.ip().is_loopback(), "load only ever targets loopback");
    let connections = connections.max(1);
    let interval = Duration::from_secs_f64(connections as f64 / rate.max(1.0));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let mut starts = Vec::with_capacity(connections);
    let threads: Vec<_> = (0..connections)
        .map(|i| {
            let request = request.to_vec();
            let ready = ready_tx.clone();
            let (start_tx, start_rx) = std::sync::mpsc::channel::<Instant>();
            starts.push(start_tx);
            // Spread the connections' schedules over one interval.
            let offset = interval.mul_f64(i as f64 / connections as f64);
            std::thread::spawn(move || {
                let stream = connect(addr);
                let _ = ready.send(());
                let start = start_rx.recv().expect("start time");
                let schedule = (start, offset, interval, start + duration);
                paced_connection(addr, &request, stream, schedule)
            })
        })
        .collect();
    drop(ready_tx);
    for _ in 0..connections {
        ready_rx.recv().expect("load thread ready");
    }
    let start = Instant::now() + Duration::from_millis(1);
    for s in starts {
        let _ = s.send(start);
    }
    let mut total = collect(threads);
    total.elapsed = start.elapsed();
    total
}

/// One connection's share of [`run_paced`]: sends at `start + offset + k * interval` until
/// `end`, timing each request from its scheduled send time.
fn paced_connection(
    addr: SocketAddr,
    request: &[u8],
    mut stream: Option<TcpStream>,
    (start, offset, interval, end): (Instant, Duration, Duration, Instant),
) -> LoadReport {
    let mut report = LoadReport::default();
    let mut buf = Vec::with_capacity(8192);
    let mut next = start + offset;
    while next < end {
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        }
        if stream.is_none() {
            stream = connect(addr);
        }
        let Some(s) = stream.as_mut() else {
            report.errors += 1;
            next += interval;
            continue;
        };
        let status = s
            .write_all(request)
            .ok()
            .and_then(|()| read_response(s, &mut buf));
        let latency = next.elapsed().as_micros().min(u32::MAX as u128) as u32;
        match status {
            Some(code) => {
                report.requests += 1;
                *report.statuses.entry(code).or_default() += 1;
                report.latencies_us.push(latency);
                let at = (next - start).as_micros().min(u32::MAX as u128) as u32;
                report.timeline.push((at, latency));
            }
            None => {
                report.errors += 1;
                stream = None;
            }
        }
        next += interval;
    }
    report
}

/// Joins the load threads and adds up their reports (latencies sorted).
fn collect(threads: Vec<std::thread::JoinHandle<LoadReport>>) -> LoadReport {
    let mut total = LoadReport::default();
    for t in threads {
        let r = t.join().expect("load thread");
        total.requests += r.requests;
        total.errors += r.errors;
        for (k, v) in r.statuses {
            *total.statuses.entry(k).or_default() += v;
        }
        total.latencies_us.extend(r.latencies_us);
        total.timeline.extend(r.timeline);
    }
    total.latencies_us.sort_unstable();
    total
}

/// A loopback HTTP/1.1 server that answers every request with the same small JSON `200`, one
/// thread per connection: no runtime behind it, so paced load against it shows what the
/// generator, the kernel and the host add to a latency by themselves. Stops on drop (after
/// its connections close).
pub struct NullServer {
    /// Its address.
    pub addr: SocketAddr,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl NullServer {
    /// Starts it on a free loopback port.
    pub fn start() -> NullServer {
        use std::sync::atomic::{AtomicBool, Ordering};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                if let Ok(conn) = conn {
                    std::thread::spawn(move || serve_null(conn));
                }
            }
        });
        NullServer { addr, stop }
    }
}

impl Drop for NullServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

/// Answers requests on one connection until it closes.
fn serve_null(mut conn: TcpStream) {
    const ANSWER: &[u8] =
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 15\r\n\r\n{\"status\":\"ok\"}";
    let _ = conn.set_nodelay(true);
    let mut buf = Vec::with_capacity(8192);
    let mut chunk = [0u8; 4096];
    loop {
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            match conn.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < end + 4 + length {
            match conn.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.drain(..end + 4 + length);
        if conn.write_all(ANSWER).is_err() {
            return;
        }
    }
}
