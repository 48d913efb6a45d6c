//! Delivery faults with the real `keygate` binary and the real worker under workerd
//! (miniflare): the control plane delivers through a small loopback proxy that the test
//! switches between passing requests on, answering as if the edge were down, and refusing
//! batches that carry one key's record (as an edge refuses a record it cannot take).
//!
//! - an outage during a large blacklist edit in one workspace (10 modules x 60
//!   functionalities, 64-character names) and a revoke in another: after recovery everything
//!   arrives, the revocation within 5 s (the time is printed);
//! - the edge refusing one record: the others arrive, the refused one is a dead letter
//!   (metric, audit event, `keygate outbox dead-letters`) and `keygate outbox retry` delivers
//!   it;
//! - a fresh database pointed at an edge that holds higher versions still revokes, and so
//!   does a database restored from a backup taken before changes the edge already applied.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keygate_shared::key::digest as digest_of;
use keygate_shared::record::{EdgeRecord, KeyState};
use keygate_tests::control::{binary, free_port, Keygate, Session};
use keygate_tests::edge::Edge;
use keygate_tests::system::{control_delivering_to, edge_pulling_from};
use serde_json::json;

const SECRET: &str = "e2e-delivery-faults-secret-0123456789abcdef";
/// The (module, functionality) pairs the scenarios check.
const CHARGE: (&str, &str) = ("billing", "charge");
const REFUND: (&str, &str) = ("billing", "refund");

/// What the proxy does with a sync request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
enum Mode {
    /// Forward to the worker.
    #[default]
    Pass,
    /// Answer 503, as an unreachable edge would (to the deliverer: a transient failure).
    Down,
    /// Answer 413 to a batch carrying this digest; forward the rest.
    Refuse(String),
}

/// A loopback proxy in front of the worker's sync endpoint.
struct Proxy {
    url: String,
    seen: Arc<Seen>,
    server: Arc<tiny_http::Server>,
}

/// The proxy's mode and what it saw, shared with its thread.
#[derive(Default)]
struct Seen {
    mode: Mutex<Mode>,
    /// The largest body forwarded or refused.
    max_body: AtomicUsize,
    /// Requests answered 413 in `Mode::Refuse`.
    refused: AtomicUsize,
}

impl Proxy {
    fn start(edge_url: &str) -> Proxy {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind the proxy"));
        let url = format!(
            "http://{}",
            server.server_addr().to_ip().expect("an IP address")
        );
        let seen = Arc::<Seen>::default();
        let (s, shared) = (server.clone(), seen.clone());
        let edge_url = edge_url.to_owned();
        std::thread::spawn(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(10)))
                .build()
                .into();
            for mut req in s.incoming_requests() {
                let mut body = Vec::new();
                let _ = req.as_reader().read_to_end(&mut body);
                shared.max_body.fetch_max(body.len(), Ordering::Relaxed);
                let mode = shared.mode.lock().unwrap().clone();
                let answer = |status: u16, text: String| {
                    tiny_http::Response::from_string(text).with_status_code(status)
                };
                let reply = match mode {
                    Mode::Down => answer(503, "edge down (test)".into()),
                    Mode::Refuse(d) if String::from_utf8_lossy(&body).contains(&d) => {
                        shared.refused.fetch_add(1, Ordering::Relaxed);
                        answer(
                            413,
                            json!({"error": {"code": 413, "message": "record too large", "reason": "RECORD_TOO_LARGE"}}).to_string(),
                        )
                    }
                    _ => {
                        let mut builder = ureq::http::Request::builder()
                            .method(req.method().as_str())
                            .uri(format!("{edge_url}{}", req.url()));
                        for h in req.headers() {
                            let name = h.field.as_str().as_str().to_ascii_lowercase();
                            if name.starts_with("x-keygate-") || name == "content-type" {
                                builder = builder.header(name, h.value.as_str());
                            }
                        }
                        match agent.run(builder.body(body).unwrap()) {
                            Ok(resp) => {
                                let status = resp.status().as_u16();
                                let text = resp.into_body().read_to_string().unwrap_or_default();
                                answer(status, text)
                            }
                            Err(e) => answer(502, format!("proxy: {e}")),
                        }
                    }
                };
                let reply = reply.with_header(
                    "content-type: application/json"
                        .parse::<tiny_http::Header>()
                        .unwrap(),
                );
                let _ = req.respond(reply);
            }
        });
        Proxy { url, seen, server }
    }

    fn set(&self, mode: Mode) {
        *self.seen.mode.lock().unwrap() = mode;
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.server.unblock();
    }
}

/// The worker, a proxy in front of it, a control plane delivering through the proxy, and its
/// owner, signed in.
fn system() -> (Edge, Proxy, Keygate, Session) {
    let control_port = free_port();
    let edge = edge_pulling_from(SECRET, control_port);
    let proxy = Proxy::start(&edge.url);
    let control = control_delivering_to(SECRET, control_port, &proxy.url);
    let owner = control.sign_in("owner@example.com");
    (edge, proxy, control, owner)
}

fn digest(key: &str) -> String {
    keygate_shared::key::digest(key).to_hex()
}

/// Revokes `ws`'s key and waits (5 s at most) until the edge says REVOKED for the old key
/// (checked on `action`) and VALID for its replacement (on billing/charge); returns how long
/// the revocation took, and the new key.
fn revocation_reaches(
    edge: &Edge,
    owner: &Session,
    ws: &str,
    (old_key, action): (&str, (&str, &str)),
) -> (Duration, String) {
    owner.revoke(ws);
    let new_key = owner.publishable_key(ws);
    let took = edge.until_verdict(old_key, action, "REVOKED", Duration::from_secs(5));
    edge.until_verdict(&new_key, CHARGE, "VALID", Duration::from_secs(5));
    (took, new_key)
}

/// A valid 64-character name ending in `tag`.
/// Waits until the control plane has nothing left to deliver. A check can turn VALID through
/// a pull before the pushed record has landed; a test that then takes the edge away must
/// first know that the edge holds the record itself.
fn until_delivered(control: &Keygate) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let metrics = control.metrics();
        if metrics.contains("keygate_edge_outbox_pending 0\n") {
            return;
        }
        assert!(Instant::now() < deadline, "the outbox never drained");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn long_name(prefix: &str, i: usize) -> String {
    let tag = format!("{prefix}{i}");
    format!("{tag}{}", "x".repeat(64 - tag.len()))
}

#[test]
fn an_outage_during_a_large_blacklist_edit_delays_no_revocation() {
    let (edge, proxy, control, owner) = system();
    let big = owner.create_workspace("Catalogue");
    let small = owner.create_workspace("Shop");
    let modules: Vec<String> = (0..10).map(|m| long_name("m", m)).collect();
    let functionalities: Vec<String> = (0..60).map(|f| long_name("f", f)).collect();
    let catalogue: Vec<_> = modules
        .iter()
        .map(|m| json!({"name": m, "functionalities": functionalities}))
        .collect();
    owner.write(
        "PUT",
        &format!("/api/v1/workspace/{big}/modules"),
        json!({ "modules": catalogue }),
    );
    let big_key = owner.publishable_key(&big);
    let small_key = owner.publishable_key(&small);
    edge.until_verdict(&big_key, CHARGE, "VALID", Duration::from_secs(10));
    edge.until_verdict(&small_key, CHARGE, "VALID", Duration::from_secs(10));

    until_delivered(&control);
    proxy.set(Mode::Down);
    let edit = Instant::now();
    for m in &modules {
        for f in &functionalities {
            owner.write(
                "POST",
                &format!("/api/v1/workspace/{big}/publishable-key/blacklist"),
                json!({"module": m, "functionality": f}),
            );
        }
    }
    eprintln!("600 rule changes took {:?}", edit.elapsed());
    owner.revoke(&small);
    let new_small_key = owner.publishable_key(&small);
    // Long enough for every pending row to back off to the cap.
    std::thread::sleep(Duration::from_secs(3));
    let during = edge.check(&small_key, "billing", "charge", None);
    assert_eq!(
        during.verdict(),
        "VALID",
        "nothing got through while the edge was down (lookup: {:?})",
        during.headers.get("x-keygate-lookup")
    );

    proxy.set(Mode::Pass);
    let revoked = edge.until_verdict(&small_key, CHARGE, "REVOKED", Duration::from_secs(5));
    let replaced = edge.until_verdict(&new_small_key, CHARGE, "VALID", Duration::from_secs(5));
    let last = (modules[9].as_str(), functionalities[59].as_str());
    let blacklisted = edge.until_verdict(&big_key, last, "BLACKLISTED", Duration::from_secs(5));
    eprintln!(
        "after the outage: revocation at the edge in {revoked:?}, replacement key {replaced:?}, 600-rule blacklist {blacklisted:?}; largest sync body {} bytes",
        proxy.seen.max_body.load(Ordering::Relaxed)
    );
    assert!(proxy.seen.max_body.load(Ordering::Relaxed) < 512 * 1024 + 1);
    assert_eq!(
        edge.check(&big_key, &modules[0], &functionalities[0], None)
            .verdict(),
        "BLACKLISTED"
    );
}

#[test]
fn a_record_the_edge_refuses_is_set_aside_and_the_rest_arrives() {
    let (edge, proxy, control, owner) = system();
    let a = owner.create_workspace("A");
    let b = owner.create_workspace("B");
    owner.write(
        "PUT",
        &format!("/api/v1/workspace/{a}/modules"),
        json!({"modules": [{"name": "billing", "functionalities": ["refund"]}]}),
    );
    let a_key = owner.publishable_key(&a);
    let b_key = owner.publishable_key(&b);
    edge.until_verdict(&a_key, REFUND, "VALID", Duration::from_secs(10));
    edge.until_verdict(&b_key, REFUND, "VALID", Duration::from_secs(10));

    proxy.set(Mode::Refuse(digest(&a_key)));
    owner.write(
        "POST",
        &format!("/api/v1/workspace/{a}/publishable-key/blacklist"),
        json!({"module": "billing", "functionality": "refund"}),
    );
    owner.revoke(&b);
    edge.until_verdict(&b_key, REFUND, "REVOKED", Duration::from_secs(5));
    let new_b = owner.publishable_key(&b);
    edge.until_verdict(&new_b, REFUND, "VALID", Duration::from_secs(5));
    assert!(proxy.seen.refused.load(Ordering::Relaxed) >= 1);
    assert_eq!(
        edge.check(&a_key, "billing", "refund", None).verdict(),
        "VALID",
        "the refused change did not arrive"
    );

    // Visible: metric, CLI, audit log.
    let deadline = Instant::now() + Duration::from_secs(5);
    let metrics = loop {
        let (_, _) = (0, 0);
        let text = control.metrics();
        if text.contains("keygate_edge_dead_letters 1\n") || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        metrics.contains("keygate_edge_dead_letters 1\n"),
        "{metrics}"
    );
    let listed = control.cli(&[], &["outbox", "dead-letters", "--json"]);
    let letter: serde_json::Value = serde_json::from_str(listed.lines().next().unwrap()).unwrap();
    assert_eq!(letter["keyDigest"], digest(&a_key));
    assert_eq!(letter["workspaceId"], a.as_str());
    assert_eq!(letter["reason"], "HTTP_413_RECORD_TOO_LARGE");
    let audit = owner.get("/api/v1/audit-events");
    assert!(
        audit.to_string().contains("edge_record.dead_letter"),
        "{audit}"
    );

    // Retried once the edge takes it again.
    proxy.set(Mode::Pass);
    let out = control.cli(&[], &["outbox", "retry", &digest(&a_key)]);
    assert!(out.starts_with("1 dead letter"), "{out}");
    let took = edge.until_verdict(&a_key, REFUND, "BLACKLISTED", Duration::from_secs(5));
    eprintln!("a retried dead letter reached the edge {took:?} after `keygate outbox retry`");
    assert_eq!(
        control.cli(&[], &["outbox", "dead-letters"]).trim(),
        "no dead letters"
    );
    assert!(owner
        .get("/api/v1/audit-events")
        .to_string()
        .contains("edge_record.retry"));
    assert!(control
        .cli(&[], &["outbox", "retry", "--all"])
        .starts_with("0 dead letter"));
    let bad = Command::new(binary())
        .args(["outbox", "retry", "not-a-digest"])
        .current_dir(&control.data_dir)
        .env("KEYGATE_DATA_DIR", &control.data_dir)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("64 hexadecimal characters"));
}

#[test]
fn a_fresh_database_against_an_edge_holding_higher_versions_still_revokes() {
    let (edge, _proxy, control, owner) = system();
    let ws = owner.create_workspace("Shop");
    let key = owner.publishable_key(&ws);
    edge.until_verdict(&key, CHARGE, "VALID", Duration::from_secs(10));
    // The edge already holds this key at a version far above anything this fresh database
    // has issued (written by a database since lost, or by a control plane whose clock ran
    // years ahead).
    let ahead = keygate_shared::clock::MAX_VERSION / 2;
    let held = EdgeRecord::new(digest_of(&key), ws.clone(), KeyState::Active, ahead);
    assert_eq!(edge.sync(&[held]).status, 200);
    let (took, new_key) = revocation_reaches(&edge, &owner, &ws, (&key, CHARGE));
    eprintln!("revoked at an edge holding a higher version in {took:?}");
    // The revocation landed without help: the edge lets a revocation win whatever its version
    // (revoked is terminal). An ordinary change does need the clock to catch up: the edge also
    // holds the new key far ahead, so the blacklist change below is first skipped, reported
    // back as held newer, and re-issued past the edge's version.
    let held = EdgeRecord::new(digest_of(&new_key), ws.clone(), KeyState::Active, ahead);
    assert_eq!(edge.sync(&[held]).status, 200);
    owner.write(
        "PUT",
        &format!("/api/v1/workspace/{ws}/modules"),
        json!({"modules": [{"name": "billing", "functionalities": ["charge", "refund"]}]}),
    );
    owner.write(
        "POST",
        &format!("/api/v1/workspace/{ws}/publishable-key/blacklist"),
        json!({"module": "billing", "functionality": "refund"}),
    );
    edge.until_verdict(&new_key, REFUND, "BLACKLISTED", Duration::from_secs(5));
    let metrics = control.metrics();
    assert!(
        metrics.contains("keygate_edge_reissued_total 1\n"),
        "{metrics}"
    );
}

/// Copies the SQLite database files (`keygate.db`, `-wal`, `-shm`) from `from` to `to`,
/// removing those `to` had (the process using them is stopped).
fn copy_database(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let name = format!("keygate.db{suffix}");
        let _ = std::fs::remove_file(to.join(&name));
        if from.join(&name).exists() {
            std::fs::copy(from.join(&name), to.join(&name)).unwrap();
        }
    }
}

#[test]
fn a_database_restored_from_a_backup_still_revokes() {
    let (edge, _proxy, mut control, owner) = system();
    let ws = owner.create_workspace("Shop");
    owner.write(
        "PUT",
        &format!("/api/v1/workspace/{ws}/modules"),
        json!({"modules": [{"name": "billing", "functionalities": ["refund", "charge"]}]}),
    );
    let key = owner.publishable_key(&ws);
    edge.until_verdict(&key, CHARGE, "VALID", Duration::from_secs(10));

    // Yesterday's backup.
    control.kill();
    let backup = control.data_dir.join("backup");
    copy_database(&control.data_dir, &backup);
    control.restart(None);

    // Changes after the backup reach the edge, with versions the backup never issued.
    for f in ["refund", "charge"] {
        owner.write(
            "POST",
            &format!("/api/v1/workspace/{ws}/publishable-key/blacklist"),
            json!({"module": "billing", "functionality": f}),
        );
    }
    edge.until_verdict(&key, CHARGE, "BLACKLISTED", Duration::from_secs(5));

    // The database is restored from the backup; the edge keeps what it had.
    control.kill();
    copy_database(&backup, &control.data_dir);
    control.restart(None);
    assert_eq!(
        owner.get(&format!("/api/v1/workspace/{ws}/publishable-key"))["publishableKey"]
            ["blacklist"],
        json!([]),
        "the restored database has not seen the rules"
    );
    let (took, _) = revocation_reaches(&edge, &owner, &ws, (&key, REFUND));
    eprintln!("a restored database's revocation applied at the edge in {took:?}");
}
