//! Simulated locations: the real worker as two (or more) locations in one workerd, each with
//! its own KV namespace (its own view of KV) and one shared change log Durable Object, as on
//! Cloudflare. KV "propagates" only when a test copies it, so these tests show what a location
//! does with a stale KV copy: it must refuse a revoked key, and accept its replacement, within
//! 2 s of the revocation reaching any one location, including on its first request after
//! idling.
//!
//! Needs `cargo xtask build-edge` first (`cargo xtask test` does it).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use keygate_shared::key::SecretKey;
use keygate_shared::record::KeyState;
use keygate_tests::edge::{new_key, record, with_rule, At, Edge, EdgeOptions, Location};

/// The promise: every location within 2 s.
const BOUND: Duration = Duration::from_secs(2);

fn two_locations() -> Edge {
    Edge::start(EdgeOptions {
        locations: vec![Location::new("a"), Location::new("b")],
        ..EdgeOptions::default()
    })
}

/// A new key whose active record (`workspace`, `version`) location `at` accepted.
fn synced_key(at: &At<'_>, workspace: &str, version: u64) -> SecretKey {
    let key = new_key();
    assert_eq!(at.sync(&[record(&key, workspace, version)]).status, 200);
    key
}

/// A key location a accepted (workspace `ws`, `version`), its record then copied into b's KV.
fn key_in_both(edge: &Edge, version: u64) -> SecretKey {
    let key = synced_key(&edge.at("a"), "ws", version);
    edge.copy_kv("a", "b");
    key
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

fn kv_state(edge: &Edge, loc: &str, key: &keygate_shared::key::SecretKey) -> Option<String> {
    edge.kv_get(loc, &format!("rec:{}", key.digest().to_hex()))
        .map(|json| serde_json::from_str::<serde_json::Value>(&json).unwrap()["state"].to_string())
}

#[test]
fn a_revocation_delivered_to_one_location_is_honoured_at_another_within_2_s() {
    let edge = two_locations();
    let (a, b) = (edge.at("a"), edge.at("b"));
    // b is a busy location: other traffic keeps its view refreshing on its own rhythm, so
    // revocations land at every phase of it (without it, the test's own checks just before
    // each revoke would refresh b's view then, and every revoke would wait a full cycle).
    let busy = synced_key(&a, "ws-busy", 1);
    let stop = AtomicBool::new(false);
    let (refused, accepted) = std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                b.check(busy.expose(), "m", "f");
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        let measured = revoke_at_a_and_watch_b(&edge);
        stop.store(true, Ordering::Relaxed);
        measured
    });
    report("busy b", refused, accepted);
}

/// 20 revokes delivered to a only, b's KV left stale; how long until b refuses the old key and
/// accepts the new one.
fn revoke_at_a_and_watch_b(edge: &Edge) -> (Vec<Duration>, Vec<Duration>) {
    let (a, b) = (edge.at("a"), edge.at("b"));
    let mut refused = Vec::new();
    let mut accepted = Vec::new();
    for i in 0..20u64 {
        let ws = format!("ws-{i}");
        let old = new_key();
        let new = new_key();
        let v = 100 * (i + 1);
        // Before: the old key is everywhere (KV copied to b), and b has answered for it.
        assert_eq!(a.sync(&[record(&old, &ws, v)]).status, 200);
        edge.copy_kv("a", "b");
        assert_eq!(b.check(old.expose(), "m", "f").verdict(), "VALID");
        // b has also been asked for the replacement before it existed: a negative entry.
        assert_eq!(b.check(new.expose(), "m", "f").verdict(), "INVALID");

        // The revoke (old key revoked, its replacement active) reaches location a only.
        let mut revoked = record(&old, &ws, v + 1);
        revoked.state = KeyState::Revoked;
        let sent = Instant::now();
        let ack = a.sync(&[revoked, record(&new, &ws, v + 2)]);
        assert_eq!(ack.status, 200, "{:?}", ack.json());
        assert_eq!(ack.json()["applied"], 2);

        let mut old_refused = None;
        let mut new_accepted = None;
        let deadline = sent + BOUND + Duration::from_millis(500);
        while (old_refused.is_none() || new_accepted.is_none()) && Instant::now() < deadline {
            if old_refused.is_none() && b.check(old.expose(), "m", "f").verdict() == "REVOKED" {
                old_refused = Some(sent.elapsed());
            }
            if new_accepted.is_none() && b.check(new.expose(), "m", "f").verdict() == "VALID" {
                new_accepted = Some(sent.elapsed());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // b's KV was stale all along: it still holds the old key as active, and not the new.
        assert_eq!(kv_state(edge, "b", &old).as_deref(), Some("\"active\""));
        assert_eq!(kv_state(edge, "b", &new), None);
        let old_refused = old_refused.expect("b refused the revoked key");
        let new_accepted = new_accepted.expect("b accepted the replacement");
        assert!(old_refused < BOUND, "old key refused after {old_refused:?}");
        assert!(
            new_accepted < BOUND,
            "new key accepted after {new_accepted:?}"
        );
        refused.push(old_refused);
        accepted.push(new_accepted);
        // A little jitter between revokes.
        std::thread::sleep(Duration::from_millis(37 * (i % 7)));
    }
    (refused, accepted)
}

fn report(what: &str, mut refused: Vec<Duration>, mut accepted: Vec<Duration>) {
    refused.sort();
    accepted.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    eprintln!(
        "locations ({what}): {} revokes at a with b's KV stale; old key refused at b after \
         p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms; new key accepted at b after p50 {:.0} ms, \
         p99 {:.0} ms, max {:.0} ms",
        refused.len(),
        ms(percentile(&refused, 0.5)),
        ms(percentile(&refused, 0.99)),
        ms(refused[refused.len() - 1]),
        ms(percentile(&accepted, 0.5)),
        ms(percentile(&accepted, 0.99)),
        ms(accepted[accepted.len() - 1]),
    );
}

#[test]
fn the_first_request_after_idling_is_already_correct() {
    let edge = two_locations();
    let (a, b) = (edge.at("a"), edge.at("b"));
    let old = new_key();
    let new = new_key();
    assert_eq!(a.sync(&[record(&old, "ws", 10)]).status, 200);
    edge.copy_kv("a", "b");
    assert_eq!(b.check(old.expose(), "m", "f").verdict(), "VALID");
    // b idles; meanwhile the revoke reaches a only.
    let mut revoked = record(&old, "ws", 11);
    revoked.state = KeyState::Revoked;
    assert_eq!(a.sync(&[revoked, record(&new, "ws", 12)]).status, 200);
    std::thread::sleep(Duration::from_millis(2_500));
    // The very first requests at b after the idle period are right.
    let first = b.check(old.expose(), "m", "f");
    assert_eq!(first.verdict(), "REVOKED", "{:?}", first.json());
    let new_first = b.check(new.expose(), "m", "f");
    assert_eq!(new_first.verdict(), "VALID", "{:?}", new_first.json());
    // Learned from the change log (straight into the isolate cache by the refresh), not KV.
    assert!(
        matches!(
            new_first.header("x-keygate-lookup"),
            Some("changes" | "cache")
        ),
        "{:?}",
        new_first.headers
    );
    assert_eq!(kv_state(&edge, "b", &new), None, "b's KV never had it");
}

#[test]
fn a_blacklist_change_delivered_to_one_location_applies_at_another_within_2_s() {
    let edge = two_locations();
    let (a, b) = (edge.at("a"), edge.at("b"));
    let key = key_in_both(&edge, 1);
    assert_eq!(
        b.check(key.expose(), "billing", "refund").verdict(),
        "VALID"
    );
    let sent = Instant::now();
    let blocked = with_rule(record(&key, "ws", 2), "billing", "*");
    assert_eq!(a.sync(&[blocked]).json()["applied"], 1);
    let mut took = None;
    while took.is_none() && sent.elapsed() < BOUND + Duration::from_millis(500) {
        if b.check(key.expose(), "billing", "refund").verdict() == "BLACKLISTED" {
            took = Some(sent.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let took = took.expect("b applied the blacklist");
    assert!(took < BOUND, "blacklist applied at b after {took:?}");
    assert_eq!(b.check(key.expose(), "search", "query").verdict(), "VALID");
    // b's KV still holds the copy without the rule.
    let stale = edge
        .kv_get("b", &format!("rec:{}", key.digest().to_hex()))
        .unwrap();
    let stale: serde_json::Value = serde_json::from_str(&stale).unwrap();
    assert_eq!(stale["version"], 1);
}

#[test]
fn kv_propagating_an_older_copy_later_never_undoes_a_revocation() {
    let edge = two_locations();
    let (a, b) = (edge.at("a"), edge.at("b"));
    let key = key_in_both(&edge, 10);
    let mut revoked = record(&key, "ws", 11);
    revoked.state = KeyState::Revoked;
    // The revoke reaches b directly; a's KV (still active) then propagates to b late.
    assert_eq!(b.sync(&[revoked.clone()]).status, 200);
    assert!(edge.copy_kv("a", "b") >= 1);
    assert_eq!(kv_state(&edge, "b", &key).as_deref(), Some("\"active\""));
    std::thread::sleep(Duration::from_millis(1_200));
    assert_eq!(b.check(key.expose(), "m", "f").verdict(), "REVOKED");
    // And a, whose KV never saw the revoke, refuses it too.
    assert_eq!(a.check(key.expose(), "m", "f").verdict(), "REVOKED");
    // A newer active record cannot bring it back anywhere.
    let ack = a.sync(&[record(&key, "ws", 99)]);
    assert_eq!(ack.json()["skipped"], 1, "{:?}", ack.json());
    std::thread::sleep(Duration::from_millis(1_200));
    assert_eq!(a.check(key.expose(), "m", "f").verdict(), "REVOKED");
    assert_eq!(b.check(key.expose(), "m", "f").verdict(), "REVOKED");
}

#[test]
fn without_the_change_log_checks_fail_open_to_kv_or_closed_as_configured_and_pushes_are_not_acknowledged(
) {
    let mut closed = Location::new("closed");
    closed.changes = false;
    closed
        .bindings
        .insert("KEYGATE_CHANGES_FAIL".into(), "closed".into());
    let mut open = Location::new("open");
    open.changes = false;
    let edge = Edge::start(EdgeOptions {
        locations: vec![Location::new("a"), open, closed],
        ..EdgeOptions::default()
    });
    let key = new_key();
    assert_eq!(edge.at("a").sync(&[record(&key, "ws", 1)]).status, 200);
    edge.copy_kv("a", "open");
    edge.copy_kv("a", "closed");
    // Open (the default): KV's answer stands.
    assert_eq!(
        edge.at("open").check(key.expose(), "m", "f").verdict(),
        "VALID"
    );
    // Closed: a clear 503, never a verdict the edge cannot vouch for.
    let r = edge.at("closed").check(key.expose(), "m", "f");
    assert_eq!(r.status, 503);
    assert_eq!(r.reason(), "CHANGES_UNAVAILABLE");
    // A push the edge cannot record globally is not acknowledged (the control plane retries).
    let r = edge.at("open").sync(&[record(&key, "ws", 2)]);
    assert_eq!(r.status, 503, "{:?}", r.json());
    assert_eq!(r.reason(), "CHANGES_UNAVAILABLE");
}
