//! The whole system: the real `keygate` binary and the real worker under workerd (miniflare),
//! talking over loopback through the outbox deliverer, the signed sync and the signed pull.

use std::time::{Duration, Instant};

use keygate_tests::control::{free_port, ControlOptions, Keygate, Session};
use keygate_tests::edge::servers::Origin;
use keygate_tests::edge::{Edge, EdgeOptions};
use keygate_tests::system::{control_delivering_to, edge_pulling_from, wired};
use serde_json::json;

const SECRET: &str = "e2e-shared-edge-secret-0123456789abcdef";

struct Workspace {
    id: String,
    key: String,
}

fn workspace(session: &Session, name: &str) -> Workspace {
    let id = session.create_workspace(name);
    let key = session.publishable_key(&id);
    Workspace { id, key }
}

/// Polls the edge until `key` gets `want` for `module`/charge (bounded); returns how long it took.
fn until_verdict(edge: &Edge, key: &str, module: &str, want: &str, limit: Duration) -> Duration {
    edge.until_verdict(key, (module, "charge"), want, limit)
}

#[test]
fn keys_blacklists_origins_and_revocation_reach_the_edge() {
    let (edge, control) = wired(SECRET);
    let owner = control.sign_in("owner@example.com");
    let w = workspace(&owner, "Shop");
    until_verdict(&edge, &w.key, "billing", "VALID", Duration::from_secs(5));
    let r = edge.check(&w.key, "billing", "charge", None);
    assert_eq!(
        (r.status, r.json()["workspaceId"].as_str()),
        (200, Some(w.id.as_str()))
    );

    // A blacklist rule picked from the catalogue.
    owner.write(
        "PUT",
        &format!("/api/v1/workspace/{}/modules", w.id),
        json!({"modules": [{"name": "billing", "functionalities": ["charge", "refund"]}, {"name": "admin", "functionalities": ["users"]}]}),
    );
    let rule = owner.write(
        "POST",
        &format!("/api/v1/workspace/{}/publishable-key/blacklist", w.id),
        json!({"module": "billing", "functionality": "*"}),
    );
    until_verdict(
        &edge,
        &w.key,
        "billing",
        "BLACKLISTED",
        Duration::from_secs(2),
    );
    assert_eq!(edge.check(&w.key, "billing", "charge", None).status, 403);
    assert_eq!(
        edge.check(&w.key, "admin", "charge", None).verdict(),
        "VALID"
    );
    let rule_id = rule["rule"]["id"]
        .as_str()
        .or_else(|| {
            rule["blacklist"]
                .as_array()
                .and_then(|a| a[0]["id"].as_str())
        })
        .map(str::to_owned)
        .unwrap_or_else(|| {
            owner.get(&format!("/api/v1/workspace/{}/publishable-key", w.id))["publishableKey"]
                ["blacklist"][0]["id"]
                .as_str()
                .unwrap()
                .to_owned()
        });
    owner.write(
        "DELETE",
        &format!(
            "/api/v1/workspace/{}/publishable-key/blacklist/{rule_id}",
            w.id
        ),
        json!({}),
    );
    until_verdict(&edge, &w.key, "billing", "VALID", Duration::from_secs(2));

    // Allowed origins.
    owner.write(
        "PATCH",
        &format!("/api/v1/workspace/{}/publishable-key", w.id),
        json!({"allowedOrigins": ["https://app.example.com"], "originUrl": null}),
    );
    let deadline = Instant::now() + Duration::from_secs(2);
    while edge
        .check(
            &w.key,
            "billing",
            "charge",
            Some("https://evil.example.net"),
        )
        .verdict()
        != "ORIGIN_NOT_ALLOWED"
    {
        assert!(Instant::now() < deadline, "origins never reached the edge");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        edge.check(&w.key, "billing", "charge", Some("https://app.example.com"))
            .verdict(),
        "VALID"
    );

    // Revoke: the old key is refused within well under a second, the new one works.
    let start = Instant::now();
    owner.revoke(&w.id);
    let took = until_verdict(&edge, &w.key, "billing", "REVOKED", Duration::from_secs(1));
    eprintln!(
        "revocation visible at the edge {:?} after the revoke returned ({:?} including the call)",
        took,
        start.elapsed()
    );
    let r = edge.check(&w.key, "billing", "charge", None);
    assert_eq!((r.status, r.json()["valid"].as_bool()), (401, Some(false)));
    let new_key = owner.publishable_key(&w.id);
    assert_ne!(new_key, w.key);
    until_verdict(&edge, &new_key, "billing", "VALID", Duration::from_secs(1));
}

#[test]
fn the_gateway_forwards_allowed_calls_with_a_signature_the_origin_verifies() {
    let (edge, control) = wired(SECRET);
    let owner = control.sign_in("owner@example.com");
    let w = workspace(&owner, "Shop");
    let origin = Origin::start_with_secrets(owner.gateway_secrets(&w.id));
    owner.write(
        "PUT",
        &format!("/api/v1/workspace/{}/modules", w.id),
        json!({"modules": [{"name": "billing", "functionalities": ["charge", "refund"]}]}),
    );
    owner.write(
        "PATCH",
        &format!("/api/v1/workspace/{}/publishable-key", w.id),
        json!({"allowedOrigins": [], "originUrl": origin.url}),
    );
    owner.write(
        "POST",
        &format!("/api/v1/workspace/{}/publishable-key/blacklist", w.id),
        json!({"module": "billing", "functionality": "refund"}),
    );
    until_verdict(&edge, &w.key, "billing", "VALID", Duration::from_secs(5));
    let deadline = Instant::now() + Duration::from_secs(3);
    let r = loop {
        let r = edge.request(
            "POST",
            "/x/billing/charge/v1/pay?amount=5",
            &[
                ("x-publishable-key", &w.key),
                ("content-type", "application/json"),
            ],
            Some(b"{\"amount\":5}"),
        );
        if r.status == 200 || Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["verified"], true);
    let got = origin.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].path_and_query, "/v1/pay?amount=5");
    assert_eq!(got[0].body, b"{\"amount\":5}");
    assert!(got[0].signature_ok);

    let r = edge.request(
        "POST",
        "/x/billing/refund/v1/refund",
        &[("x-publishable-key", &w.key)],
        Some(b"{}"),
    );
    assert_eq!(r.status, 403);
    let r = edge.request(
        "POST",
        "/x/billing/charge/v1/pay",
        &[("x-publishable-key", "pk_live_invented")],
        Some(b"{}"),
    );
    assert_eq!(r.status, 401);
    assert_eq!(
        origin.received().len(),
        1,
        "refused calls never reach the origin"
    );
}

#[test]
fn the_edge_keeps_answering_from_kv_while_the_control_plane_is_down() {
    let (edge, mut control) = wired(SECRET);
    let owner = control.sign_in("owner@example.com");
    let w = workspace(&owner, "Shop");
    until_verdict(&edge, &w.key, "billing", "VALID", Duration::from_secs(5));
    control.kill();
    std::thread::sleep(Duration::from_millis(1200)); // past the isolate cache TTL: KV answers
    for _ in 0..20 {
        assert_eq!(
            edge.check(&w.key, "billing", "charge", None).verdict(),
            "VALID"
        );
    }
    let other = keygate_tests::edge::new_key();
    assert_eq!(
        edge.check(other.expose(), "billing", "charge", None)
            .verdict(),
        "INVALID"
    );
}

#[test]
fn changes_left_undelivered_by_a_killed_control_plane_arrive_after_restart() {
    let control_port = free_port();
    let edge = Edge::start(EdgeOptions {
        secret: SECRET.into(),
        control_url: None,
        ..EdgeOptions::default()
    });
    // The control plane first delivers to a dead address: nothing reaches the edge.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let mut control = Keygate::start(ControlOptions {
        port: Some(control_port),
        edge_url: Some(dead),
        edge_secret: Some(SECRET.into()),
        ..ControlOptions::default()
    });
    let owner = control.sign_in("owner@example.com");
    let w = workspace(&owner, "Shop");
    owner.revoke(&w.id);
    let new_key = owner.publishable_key(&w.id);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        edge.check(&new_key, "billing", "charge", None).verdict(),
        "INVALID",
        "nothing was delivered yet"
    );
    control.kill();
    control.restart(Some(edge.url.clone()));
    until_verdict(&edge, &new_key, "billing", "VALID", Duration::from_secs(10));
    until_verdict(&edge, &w.key, "billing", "REVOKED", Duration::from_secs(2));
}

#[test]
fn a_key_the_edge_never_received_is_pulled_from_the_control_plane() {
    let control_port = free_port();
    let edge = edge_pulling_from(SECRET, control_port);
    // Deliveries go nowhere; only the pull can tell the edge about the key.
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let control = control_delivering_to(SECRET, control_port, &nowhere);
    let owner = control.sign_in("owner@example.com");
    let w = workspace(&owner, "Shop");
    until_verdict(&edge, &w.key, "billing", "VALID", Duration::from_secs(5));
}

#[test]
fn revocation_latency_over_many_revokes() {
    let (edge, control) = wired(SECRET);
    let owner = control.sign_in("owner@example.com");
    let w = workspace(&owner, "Shop");
    let rounds: usize = std::env::var("KEYGATE_REVOKE_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let mut key = w.key.clone();
    until_verdict(&edge, &key, "billing", "VALID", Duration::from_secs(5));
    let mut samples = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let start = Instant::now();
        owner.revoke(&w.id);
        until_verdict(&edge, &key, "billing", "REVOKED", Duration::from_secs(1));
        samples.push(start.elapsed());
        key = owner.publishable_key(&w.id);
    }
    samples.sort();
    let pct =
        |p: f64| samples[((samples.len() as f64 * p).ceil() as usize).clamp(1, samples.len()) - 1];
    eprintln!(
        "revocation latency over {rounds} revokes (revoke call to REVOKED at the edge): p50 {:?}, p99 {:?}, max {:?}",
        pct(0.50),
        pct(0.99),
        samples[samples.len() - 1]
    );
    assert!(
        pct(0.99) < Duration::from_secs(1),
        "revocation must reach the edge well under a second"
    );
}
