//! The gateway cannot be talked around (issue 10), and each workspace signs with its own
//! secrets (issue 15), tested on the real worker under workerd (miniflare) with loopback
//! origins, and end to end with the real `keygate` binary.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keygate_shared::gateway::{self, GatewaySecret};
use keygate_tests::edge::servers::Origin;
use keygate_tests::edge::{
    add_rule, gateway_to_origin, new_key, now_secs, record, Edge, EdgeOptions, TEST_SECRET,
};
use serde_json::json;

fn gateway_call(edge: &Edge, path: &str, key: &str) -> keygate_tests::edge::Reply {
    edge.request("GET", path, &[("x-publishable-key", key)], None)
}

#[test]
fn blacklisted_actions_are_refused_in_every_case_and_encoding() {
    let (edge, origin, key) = gateway_to_origin("ws_case", |r| {
        add_rule(r, "billing", "refund");
    });

    for path in [
        "/x/Billing/refund/v1/refunds",
        "/x/BILLING/REFUND/v1/refunds",
        "/x/billing/Refund/v1/refunds",
        "/x/bill%69ng/refund/v1/refunds",
        "/x/%62illing/%72efund/v1/refunds",
        "/x/bill%2569ng/refund/v1/refunds",
        "/x/billing%2Frefund/x/v1/refunds",
    ] {
        let reply = gateway_call(&edge, path, key.expose());
        assert!(
            matches!(
                (reply.status, reply.verdict().as_str()),
                (403, "BLACKLISTED") | (401, "INVALID")
            ),
            "{path}: {} {}",
            reply.status,
            reply.text()
        );
    }
    // The same through /v1/check.
    for (m, f) in [("Billing", "refund"), ("bill%69ng", "REFUND")] {
        let reply = edge.check(key.expose(), m, f, None);
        assert_eq!(
            (reply.status, reply.verdict().as_str()),
            (403, "BLACKLISTED"),
            "{m}/{f}"
        );
    }
    assert!(
        origin.received().is_empty(),
        "a refused call reached the origin"
    );

    // An allowed action in another case reaches the origin under its canonical labels.
    let reply = gateway_call(&edge, "/x/Billing/CHARGE/v1/charges", key.expose());
    assert_eq!(reply.status, 200, "{}", reply.text());
    let got = origin.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].headers["x-keygate-module"], "billing");
    assert_eq!(got[0].headers["x-keygate-functionality"], "charge");
    assert!(got[0].signature_ok);
}

#[test]
fn rest_paths_that_could_reach_another_path_never_reach_the_origin() {
    let (edge, origin, key) = gateway_to_origin("ws_rest", |r| {
        add_rule(r, "billing", "refund");
        r.origin_url = r.origin_url.take().map(|u| u + "/public");
    });
    for rest in [
        "..%2F..%2Fadmin",
        "..%2fadmin",
        "a%2Fb",
        "%2E%2E%2Fadmin",
        "a/%2e%2e;x=1/admin",
        "a/..;/admin",
        "a%5C..%5Cadmin",
        "a%00b",
        "a%0d%0aX-Injected:%201",
        "%252e%252e/admin",
    ] {
        let reply = gateway_call(&edge, &format!("/x/billing/charge/{rest}"), key.expose());
        assert_eq!(
            (reply.status, reply.reason().as_str()),
            (400, "INVALID_PATH"),
            "{rest}: {}",
            reply.text()
        );
    }
    // Even without a valid key: judged before any lookup.
    let reply = gateway_call(&edge, "/x/billing/charge/..%2Fadmin", "pk_live_nope");
    assert_eq!(reply.status, 400);
    assert!(origin.received().is_empty(), "{:?}", origin.received());
    let reply = gateway_call(&edge, "/x/billing/charge/a/b.c/%20x", key.expose());
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(origin.received()[0].path_and_query, "/public/a/b.c/%20x");

    // Plain dot segments (`..`, `%2e%2e`, `.%2E`) are resolved by the runtime's URL parser
    // before the worker sees the path, so the labels are read from the resolved path: they
    // can neither climb above the origin URL nor reach a blacklisted action.
    let reply = gateway_call(
        &edge,
        "/x/public/read/%2e%2e/%2E%2e/billing/refund/x",
        key.expose(),
    );
    assert_eq!(
        (reply.status, reply.verdict().as_str()),
        (403, "BLACKLISTED"),
        "{}",
        reply.text()
    );
    let reply = gateway_call(&edge, "/x/billing/charge/%2e%2e/.%2e/x/y/z", key.expose());
    assert_eq!(reply.status, 200, "{}", reply.text());
    let got = origin.received();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[1].path_and_query, "/public/z");
    assert_eq!(got[1].headers["x-keygate-module"], "x");
    assert_eq!(got[1].headers["x-keygate-functionality"], "y");
}

#[test]
fn cookies_cross_the_gateway_only_when_the_workspace_forwards_them() {
    let (edge, origin, key) = gateway_to_origin("ws_cookie", |_| ());
    let call = || {
        edge.request(
            "GET",
            "/x/billing/charge/me",
            &[
                ("x-publishable-key", key.expose()),
                ("cookie", "other_tenant_session=s3cr3t"),
            ],
            None,
        )
    };
    let reply = call();
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("set-cookie"), None, "Set-Cookie passed back");
    assert_eq!(reply.header("x-origin"), Some("reached"));
    assert!(
        !origin.received()[0].headers.contains_key("cookie"),
        "Cookie forwarded"
    );

    let mut r = record(&key, "ws_cookie", 2);
    r.origin_url = Some(origin.url.clone());
    r.forward_cookies = true;
    assert_eq!(edge.sync(&[r]).status, 200);
    let reply = call();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("set-cookie"), Some("origin_session=1; Path=/"));
    assert_eq!(
        origin.received()[1]
            .headers
            .get("cookie")
            .map(String::as_str),
        Some("other_tenant_session=s3cr3t")
    );
}

#[test]
fn private_origins_are_refused_at_the_edge_unless_the_operator_allows_them() {
    let mut options = EdgeOptions::default();
    options
        .vars
        .insert("KEYGATE_ALLOW_PRIVATE_ORIGINS".into(), "false".into());
    let edge = Edge::start(options);
    let origin = Origin::start(TEST_SECRET, "ws_private");
    let key = new_key();
    let mut r = record(&key, "ws_private", 1);
    r.origin_url = Some(origin.url.clone());
    assert_eq!(edge.sync(&[r]).status, 200);
    let reply = gateway_call(&edge, "/x/billing/charge/x", key.expose());
    assert_eq!(
        (reply.status, reply.reason().as_str()),
        (502, "ORIGIN_NOT_PUBLIC"),
        "{}",
        reply.text()
    );
    assert!(origin.received().is_empty());
}

#[test]
fn workspace_secrets_sign_every_live_secret_and_retire_after_the_overlap() {
    let edge = Edge::start_default();
    let (old, new) = (GatewaySecret::generate(), GatewaySecret::generate());
    let old_only = Origin::start_with_secrets(vec![old.clone()]);
    let new_only = Origin::start_with_secrets(vec![new.clone()]);
    let key = new_key();
    let retire_at = now_secs() + 3;
    let sealed = vec![
        gateway::seal_for_edge(TEST_SECRET.as_bytes(), "ws_rot", &new, None),
        gateway::seal_for_edge(TEST_SECRET.as_bytes(), "ws_rot", &old, Some(retire_at)),
    ];
    let push = |url: &str, version: u64| {
        let mut r = record(&key, "ws_rot", version);
        r.origin_url = Some(url.to_owned());
        r.gateway_secrets = sealed.clone();
        assert_eq!(edge.sync(&[r]).status, 200);
    };
    // During the overlap both origins verify.
    push(&old_only.url, 1);
    let reply = gateway_call(&edge, "/x/billing/charge/a", key.expose());
    assert_eq!(reply.status, 200, "{}", reply.text());
    let header = old_only.received()[0].headers[gateway::HEADER_SIGNATURE].clone();
    assert!(header.contains(&format!("v1={}:", old.kid())), "{header}");
    assert!(header.contains(&format!("v1={}:", new.kid())), "{header}");
    push(&new_only.url, 2);
    assert_eq!(
        gateway_call(&edge, "/x/billing/charge/a", key.expose()).status,
        200
    );
    // The derived key is not used once a workspace has its own secrets.
    let derived = gateway::workspace_signing_key(TEST_SECRET.as_bytes(), "ws_rot");
    assert!(!new_only.received()[0].headers[gateway::HEADER_SIGNATURE].contains(&derived));

    // After the overlap, the retired secret no longer verifies; the new one does.
    while now_secs() <= retire_at {
        std::thread::sleep(Duration::from_millis(100));
    }
    push(&old_only.url, 3);
    let reply = gateway_call(&edge, "/x/billing/charge/a", key.expose());
    assert_eq!(reply.status, 401, "the retired secret still verifies");
    assert!(!old_only.received().last().unwrap().signature_ok);
    push(&new_only.url, 4);
    assert_eq!(
        gateway_call(&edge, "/x/billing/charge/a", key.expose()).status,
        200
    );

    // Secrets sealed under another edge secret: refused, never signed with another key.
    let mut r = record(&key, "ws_rot", 5);
    r.origin_url = Some(new_only.url.clone());
    r.gateway_secrets = vec![gateway::seal_for_edge(
        b"another-edge-secret-another-edge-secret",
        "ws_rot",
        &new,
        None,
    )];
    assert_eq!(edge.sync(&[r]).status, 200);
    let reply = gateway_call(&edge, "/x/billing/charge/a", key.expose());
    assert_eq!(
        (reply.status, reply.reason().as_str()),
        (503, "GATEWAY_SECRET_UNREADABLE")
    );
}

const SECRET: &str = "e2e-gateway-edge-secret-0123456789abcdef";

/// An origin whose accepted secrets the test changes as an operator would.
fn switchable_origin() -> (Origin, Arc<Mutex<Vec<GatewaySecret>>>) {
    let accepted: Arc<Mutex<Vec<GatewaySecret>>> = Arc::default();
    let held = accepted.clone();
    let origin = Origin::start_verifying(move |header, req, now| {
        gateway::verify_any(&held.lock().unwrap(), header, req, now)
    });
    (origin, accepted)
}

fn secrets_of(body: &serde_json::Value) -> Vec<GatewaySecret> {
    body["gatewaySecrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            GatewaySecret::new(s["kid"].as_str().unwrap(), s["secret"].as_str().unwrap()).unwrap()
        })
        .collect()
}

#[test]
fn a_rotated_gateway_secret_keeps_origins_working_through_the_overlap_end_to_end() {
    let (edge, control) = keygate_tests::system::wired(SECRET);
    let owner = control.sign_in("owner@example.com");
    let id = owner.create_workspace("Shop");
    let pk_path = format!("/api/v1/workspace/{id}/publishable-key");
    let key = owner.publishable_key(&id);
    let (origin, accepted) = switchable_origin();
    owner.write("PATCH", &pk_path, json!({"originUrl": origin.url}));
    let first = secrets_of(&owner.get(&format!("/api/v1/workspace/{id}/gateway-secret")));
    assert_eq!(first.len(), 1);
    *accepted.lock().unwrap() = first.clone();

    // Polls the gateway until the origin's verdict is `want` (the record travels through the
    // outbox to the edge meanwhile).
    let until = |want: u16, limit: Duration| {
        let start = Instant::now();
        loop {
            let r = gateway_call(&edge, "/x/billing/charge/ping", &key);
            if r.status == want {
                return;
            }
            assert!(
                start.elapsed() < limit,
                "gateway still answers {} ({}), want {want}",
                r.status,
                String::from_utf8_lossy(&r.body)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    until(200, Duration::from_secs(10));

    let rotated = owner.write(
        "POST",
        &format!("/api/v1/workspace/{id}/gateway-secret/rotate"),
        json!({"overlapSeconds": 4}),
    );
    let both = secrets_of(&rotated);
    assert_eq!(both.len(), 2);
    assert_eq!(both[1], first[0], "the previous secret, still live");
    let new = both[0].clone();
    // Wait until the edge signs with the new secret too, then check both verify.
    *accepted.lock().unwrap() = vec![new.clone()];
    until(200, Duration::from_secs(5));
    *accepted.lock().unwrap() = first.clone();
    let r = gateway_call(&edge, "/x/billing/charge/ping", &key);
    assert_eq!(
        r.status, 200,
        "during the overlap the old secret still verifies"
    );
    let header = origin.received().last().unwrap().headers[gateway::HEADER_SIGNATURE].clone();
    assert!(
        header.contains(new.kid()) && header.contains(first[0].kid()),
        "{header}"
    );

    // After the overlap the origin holding only the old secret refuses what the edge sends.
    until(401, Duration::from_secs(8));
    *accepted.lock().unwrap() = vec![new];
    until(200, Duration::from_secs(2));
}

#[test]
fn the_canonical_form_rest_rules_forward_targets_and_sealed_secrets_agree_inside_workerd() {
    let edge = Edge::start(EdgeOptions {
        selftest: true,
        ..EdgeOptions::default()
    });
    let reply = edge.request("GET", "/__keygate/selftest", &[], None);
    assert_eq!(reply.status, 200, "{}", reply.text());
    let report = reply.json();
    assert_eq!(report["failures"], json!([]), "{report}");
    let vectors: serde_json::Value =
        serde_json::from_str(keygate_shared::conformance::VECTORS_JSON).unwrap();
    for part in ["labels", "rests", "forward_targets", "sealed_secrets"] {
        assert!(
            vectors[part].as_array().is_some_and(|a| !a.is_empty()),
            "no {part} vectors"
        );
    }
    let total: usize = vectors
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(report["passed"].as_u64(), Some(total as u64));
}

#[test]
fn the_worker_with_its_sealing_cipher_stays_under_300_kb_gzipped() {
    keygate_tests::edge::require_build();
    let wasm = keygate_tests::edge::root().join("edge/build/index_bg.wasm");
    let out = std::process::Command::new("gzip")
        .args(["-9", "-c"])
        .arg(&wasm)
        .output()
        .expect("gzip");
    assert!(out.status.success());
    let gz = out.stdout.len();
    eprintln!("edge wasm: {gz} bytes gzipped");
    assert!(gz < 300 * 1024, "the worker grew to {gz} bytes gzipped");
}
