//! Small loopback servers the edge talks to in tests: a workspace origin that verifies the
//! gateway signature, and a stand-in for the control plane's pull endpoint.
//!
//! Both run on `127.0.0.1:0` in a background thread and stop on drop.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use keygate_shared::gateway;
use keygate_shared::record::{EdgeRecord, PullReply, PULL_PATH_PREFIX};
use keygate_shared::signing::{self, Purpose, HEADER_NONCE, HEADER_SIGNATURE, HEADER_TIMESTAMP};

use super::now_secs;

struct Running {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Running {
    fn spawn(handler: impl Fn(tiny_http::Request) + Send + 'static) -> (String, Running) {
        let server = tiny_http::Server::http("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = server.server_addr().to_ip().expect("ip listener").port();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                if let Ok(Some(req)) = server.recv_timeout(Duration::from_millis(50)) {
                    handler(req);
                }
            }
        });
        (
            format!("http://127.0.0.1:{port}"),
            Running {
                stop,
                thread: Some(thread),
            },
        )
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn headers_of(req: &tiny_http::Request) -> BTreeMap<String, String> {
    req.headers()
        .iter()
        .map(|h| {
            (
                h.field.as_str().as_str().to_ascii_lowercase(),
                h.value.as_str().to_owned(),
            )
        })
        .collect()
}

fn header(name: &str, value: &str) -> tiny_http::Header {
    tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("valid header")
}

/// A request as the origin received it.
#[derive(Clone, Debug)]
pub struct Received {
    /// Method.
    pub method: String,
    /// Path and query.
    pub path_and_query: String,
    /// Headers (lowercase names).
    pub headers: BTreeMap<String, String>,
    /// Body.
    pub body: Vec<u8>,
    /// Whether `keygate_shared::gateway::verify` accepted its signature.
    pub signature_ok: bool,
}

/// A workspace's origin server. It answers `200` with
/// `{"path": ..., "bodyLen": ..., "verified": true}` when the gateway signature verifies
/// with the workspace key derived from the edge secret, `401` otherwise.
pub struct Origin {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    received: Arc<Mutex<Vec<Received>>>,
    _running: Running,
}

impl Origin {
    /// Starts an origin for `workspace` behind an edge using `edge_secret`.
    pub fn start(edge_secret: &str, workspace: &str) -> Origin {
        let key = gateway::workspace_signing_key(edge_secret.as_bytes(), workspace);
        Origin::start_verifying(move |header, req, now| gateway::verify(&key, header, req, now))
    }

    /// Starts an origin that verifies with the workspace's own gateway secrets
    /// (`gateway::verify_any`), as an origin set up from `GET .../gateway-secret` does.
    pub fn start_with_secrets(secrets: Vec<gateway::GatewaySecret>) -> Origin {
        Origin::start_verifying(move |header, req, now| {
            gateway::verify_any(&secrets, header, req, now)
        })
    }

    /// Starts an origin that judges signatures with `verify`. It also answers with a
    /// `Set-Cookie` header, so tests can see whether the edge passes it back.
    pub fn start_verifying(
        verify: impl Fn(&str, &gateway::ForwardedRequest<'_>, u64) -> bool + Send + 'static,
    ) -> Origin {
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        let (url, running) = Running::spawn(move |mut req| {
            let headers = headers_of(&req);
            let mut body = Vec::new();
            let _ = req.as_reader().read_to_end(&mut body);
            let method = req.method().as_str().to_owned();
            let path_and_query = req.url().to_owned();
            let get = |n: &str| headers.get(n).map(String::as_str).unwrap_or_default();
            let signature_ok = verify(
                get(gateway::HEADER_SIGNATURE),
                &gateway::ForwardedRequest {
                    method: &method,
                    path_and_query: &path_and_query,
                    workspace_id: get(gateway::HEADER_WORKSPACE),
                    module: get(gateway::HEADER_MODULE),
                    functionality: get(gateway::HEADER_FUNCTIONALITY),
                },
                now_secs(),
            );
            let answer = serde_json::json!({
                "path": path_and_query,
                "bodyLen": body.len(),
                "verified": signature_ok,
            })
            .to_string();
            log.lock().expect("log").push(Received {
                method,
                path_and_query,
                headers,
                body,
                signature_ok,
            });
            let status = if signature_ok { 200 } else { 401 };
            let _ = req.respond(
                tiny_http::Response::from_string(answer)
                    .with_status_code(status)
                    .with_header(header("content-type", "application/json"))
                    .with_header(header("x-origin", "reached"))
                    .with_header(header("set-cookie", "origin_session=1; Path=/")),
            );
        });
        Origin {
            url,
            received,
            _running: running,
        }
    }

    /// Every request received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().expect("log").clone()
    }
}

/// How the stand-in control plane answers pulls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullMode {
    /// As the contract says.
    Honest,
    /// Signs replies with another secret.
    ForgedReply,
    /// Echoes another nonce than the request's.
    WrongNonce,
    /// Answers 503.
    Unavailable,
}

/// A stand-in for the control plane's pull endpoint, implementing the contract of
/// `keygate_shared::record::pull_path` and `PullReply`.
pub struct Control {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    records: Arc<Mutex<HashMap<String, EdgeRecord>>>,
    mode: Arc<Mutex<PullMode>>,
    pulls: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
    _running: Running,
}

impl Control {
    /// Starts it with the edge's secret.
    pub fn start(secret: &str) -> Control {
        let secret = secret.to_owned();
        let records: Arc<Mutex<HashMap<String, EdgeRecord>>> = Arc::default();
        let mode = Arc::new(Mutex::new(PullMode::Honest));
        let pulls = Arc::new(AtomicUsize::new(0));
        let refused = Arc::new(AtomicUsize::new(0));
        let (r, m, p, x) = (
            records.clone(),
            mode.clone(),
            pulls.clone(),
            refused.clone(),
        );
        let (url, running) = Running::spawn(move |req| {
            let headers = headers_of(&req);
            let get = |n: &str| headers.get(n).cloned().unwrap_or_default();
            let path = req.url().to_owned();
            let nonce = get(HEADER_NONCE);
            let authentic = signing::parse_timestamp(&get(HEADER_TIMESTAMP))
                .and_then(|ts| {
                    signing::verify(
                        secret.as_bytes(),
                        Purpose::Pull,
                        ts,
                        &nonce,
                        path.as_bytes(),
                        &get(HEADER_SIGNATURE),
                        now_secs(),
                    )
                })
                .is_ok();
            let digest = path.strip_prefix(PULL_PATH_PREFIX);
            if req.method() != &tiny_http::Method::Get || !authentic || digest.is_none() {
                x.fetch_add(1, Ordering::SeqCst);
                let _ = req.respond(tiny_http::Response::empty(401));
                return;
            }
            p.fetch_add(1, Ordering::SeqCst);
            let mode = *m.lock().expect("mode");
            if mode == PullMode::Unavailable {
                let _ = req.respond(tiny_http::Response::empty(503));
                return;
            }
            let record = r
                .lock()
                .expect("records")
                .get(digest.unwrap_or_default())
                .cloned();
            let body = serde_json::to_string(&PullReply { record }).expect("json");
            let ts = now_secs();
            let (sign_secret, reply_nonce) = match mode {
                PullMode::ForgedReply => ("not-the-edge-secret".to_owned(), nonce),
                PullMode::WrongNonce => (secret.clone(), keygate_shared::random::hex_token()),
                _ => (secret.clone(), nonce),
            };
            let tag = signing::sign(
                sign_secret.as_bytes(),
                Purpose::PullReply,
                ts,
                &reply_nonce,
                body.as_bytes(),
            );
            let _ = req.respond(
                tiny_http::Response::from_string(body)
                    .with_header(header("content-type", "application/json"))
                    .with_header(header(HEADER_TIMESTAMP, &ts.to_string()))
                    .with_header(header(HEADER_NONCE, &reply_nonce))
                    .with_header(header(HEADER_SIGNATURE, &tag)),
            );
        });
        Control {
            url,
            records,
            mode,
            pulls,
            refused,
            _running: running,
        }
    }

    /// Makes `record` known to pulls.
    pub fn insert(&self, record: EdgeRecord) {
        self.records
            .lock()
            .expect("records")
            .insert(record.key_digest.to_hex(), record);
    }

    /// Changes how pulls are answered.
    pub fn set_mode(&self, mode: PullMode) {
        *self.mode.lock().expect("mode") = mode;
    }

    /// Authentic pulls received.
    pub fn pulls(&self) -> usize {
        self.pulls.load(Ordering::SeqCst)
    }

    /// Requests refused for a bad signature or path.
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }
}
