//! The real edge worker (wasm, under workerd via miniflare) on its own: seeded by signed sync
//! pushes from the test, checked over loopback. Run after `cargo xtask build-edge`
//! (`cargo xtask test` does both).

use std::time::{Duration, Instant};

use keygate_shared::key::SecretKey;
use keygate_shared::record::KeyState;
use keygate_shared::signing::Purpose;
use keygate_tests::edge::servers::{Control, PullMode};
use keygate_tests::edge::{
    add_rule, fresh_nonce, gateway_to_origin, new_key, now_secs, record, signed_headers, sync_body,
    with_rule, Edge, EdgeOptions, TEST_SECRET,
};

#[test]
fn conformance_vectors_give_the_same_results_inside_workerd_as_natively() {
    let native = keygate_shared::conformance::run(keygate_shared::conformance::VECTORS_JSON)
        .expect("vectors parse");
    assert!(native.failures.is_empty(), "{:?}", native.failures);
    let edge = Edge::start(EdgeOptions {
        selftest: true,
        ..EdgeOptions::default()
    });
    let reply = edge.request("GET", "/__keygate/selftest", &[], None);
    assert_eq!(reply.status, 200);
    let report: keygate_shared::conformance::Report =
        serde_json::from_slice(&reply.body).expect("a Report");
    assert_eq!(report.failures, Vec::<String>::new());
    assert_eq!(report.passed, native.passed);
    assert!(report.passed > 0);
}

#[test]
fn selftest_route_is_off_unless_enabled() {
    let edge = Edge::start_default();
    let reply = edge.request("GET", "/__keygate/selftest", &[], None);
    assert_eq!((reply.status, reply.reason().as_str()), (404, "NOT_FOUND"));
    let health = edge.request("GET", "/healthz", &[], None);
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["status"], "ok");
}

#[test]
fn synced_key_is_valid_blacklisted_or_refused_by_origin_as_shared_decides() {
    let edge = Edge::start_default();
    let key = new_key();
    let mut r = with_rule(record(&key, "ws_acme", 1), "billing", "refund");
    r.allowed_origins = vec!["https://app.acme.example".into()];
    let ack = edge.sync(&[r]);
    assert_eq!(ack.status, 200, "{:?}", ack.json());
    assert_eq!(ack.json(), serde_json::json!({"applied": 1, "skipped": 0}));

    let valid = edge.check(
        key.expose(),
        "billing",
        "charge",
        Some("https://app.acme.example"),
    );
    assert_eq!(valid.status, 200);
    assert_eq!(valid.json()["valid"], true);
    assert_eq!(valid.json()["status"], "VALID");
    assert_eq!(valid.json()["workspaceId"], "ws_acme");
    assert_eq!(
        valid.header("access-control-allow-origin"),
        Some("https://app.acme.example")
    );

    let blacklisted = edge.check(key.expose(), "billing", "refund", None);
    blacklisted.assert_verdict(403, "BLACKLISTED");
    assert!(
        blacklisted.json().get("workspaceId").is_none(),
        "refusals name no workspace"
    );

    let elsewhere = edge.check(
        key.expose(),
        "billing",
        "charge",
        Some("https://evil.example"),
    );
    elsewhere.assert_verdict(403, "ORIGIN_NOT_ALLOWED");
    assert_eq!(elsewhere.header("access-control-allow-origin"), None);

    // The key may come in the X-Publishable-Key header instead of the body.
    let by_header = edge.request(
        "POST",
        "/v1/check",
        &[("x-publishable-key", key.expose())],
        Some(br#"{"module":"billing","functionality":"charge"}"#),
    );
    by_header.assert_verdict(200, "VALID");
}

/// A stand-in control plane answering signed pulls, and a worker pulling from it.
fn edge_over_stub_control() -> (Control, Edge) {
    let control = Control::start(TEST_SECRET);
    let edge = Edge::start(EdgeOptions {
        control_url: Some(control.url.clone()),
        ..EdgeOptions::default()
    });
    (control, edge)
}

/// The edge's verdict for `key` on module `m`, functionality `f`.
fn verdict_mf(edge: &Edge, key: &SecretKey) -> String {
    edge.check(key.expose(), "m", "f", None).verdict()
}

#[test]
fn a_newer_revoke_record_is_refused_at_once_and_an_older_one_never_wins() {
    let edge = Edge::start_default();
    let key = new_key();
    assert_eq!(edge.sync(&[record(&key, "ws_1", 10)]).status, 200);
    assert_eq!(edge.check(key.expose(), "m", "f", None).verdict(), "VALID");

    let mut revoked = record(&key, "ws_1", 11);
    revoked.state = KeyState::Revoked;
    let started = Instant::now();
    assert_eq!(edge.sync(&[revoked]).json()["applied"], 1);
    let after = edge.check(key.expose(), "m", "f", None);
    assert_eq!((after.status, after.verdict().as_str()), (401, "REVOKED"));
    assert!(started.elapsed() < Duration::from_secs(1));

    // A delayed or replayed delivery of the older active record is acknowledged, not applied.
    let ack = edge.sync(&[record(&key, "ws_1", 10)]);
    // It names the version it holds, so a control plane whose clock is behind catches up.
    assert_eq!(
        ack.json(),
        serde_json::json!({"applied": 0, "skipped": 1,
            "heldNewer": [{"keyDigest": key.digest().to_hex(), "version": 11}]})
    );
    assert_eq!(verdict_mf(&edge, &key), "REVOKED");
}

#[test]
fn revoked_is_terminal_whatever_the_version_and_a_lower_versioned_revocation_still_lands() {
    let edge = Edge::start_default();
    let key = new_key();
    let mut revoked = record(&key, "ws_1", 5);
    revoked.state = KeyState::Revoked;
    assert_eq!(edge.sync(&[revoked]).json()["applied"], 1);
    // No later record, however new, makes the key active again.
    for version in [6, 1_000, (1 << 53) - 1] {
        let ack = edge.sync(&[record(&key, "ws_1", version)]);
        assert_eq!(ack.json(), serde_json::json!({"applied": 0, "skipped": 1}));
        assert_eq!(verdict_mf(&edge, &key), "REVOKED");
    }

    // A control plane whose versions went backwards (restored database) can still revoke.
    let other = new_key();
    assert_eq!(edge.sync(&[record(&other, "ws_1", 900)]).status, 200);
    assert_eq!(verdict_mf(&edge, &other), "VALID");
    let mut low = record(&other, "ws_1", 3);
    low.state = KeyState::Revoked;
    assert_eq!(edge.sync(&[low]).json()["applied"], 1);
    assert_eq!(verdict_mf(&edge, &other), "REVOKED");
}

#[test]
fn a_batch_larger_than_one_storage_call_is_applied_and_recorded_globally_in_one_push() {
    // More records than the change log's storage API takes in one call (128).
    let edge = Edge::start_default();
    let keys: Vec<_> = (0..300).map(|_| new_key()).collect();
    let records: Vec<_> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| record(k, &format!("ws_{i}"), 1))
        .collect();
    let ack = edge.sync(&records);
    assert_eq!(ack.status, 200, "{}", String::from_utf8_lossy(&ack.body));
    assert_eq!(ack.json()["applied"], 300);
    // Sent again (a lost acknowledgement): nothing new, still acknowledged.
    let again = edge.sync(&records);
    assert_eq!(
        again.json(),
        serde_json::json!({"applied": 0, "skipped": 300})
    );
    for k in [&keys[0], &keys[149], &keys[299]] {
        assert_eq!(edge.check(k.expose(), "m", "f", None).verdict(), "VALID");
    }
}

#[test]
fn records_from_a_newer_control_plane_apply_and_unknown_formats_are_refused_alone() {
    let edge = Edge::start_default();
    let (newer, future) = (new_key(), new_key());
    let mut fields = serde_json::to_value(record(&newer, "ws_1", 1)).unwrap();
    fields["aFieldFromTheFuture"] = serde_json::json!({"x": [1, 2]});
    let mut unknown_format = serde_json::to_value(record(&future, "ws_1", 1)).unwrap();
    unknown_format["format"] = (keygate_shared::record::FORMAT_VERSION + 1).into();
    let body =
        serde_json::json!({"records": [unknown_format, fields], "from": "later"}).to_string();
    let headers = signed_headers(
        &edge.secret,
        keygate_shared::signing::Purpose::Sync,
        now_secs(),
        &fresh_nonce(),
        body.as_bytes(),
    );
    let ack = edge.send_sync(&headers, body.as_bytes());
    assert_eq!(ack.status, 200, "{}", String::from_utf8_lossy(&ack.body));
    let ack = ack.json();
    assert_eq!(
        (ack["applied"].as_u64(), ack["skipped"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(ack["refused"][0]["keyDigest"], future.digest().to_hex());
    assert_eq!(ack["refused"][0]["reason"], "UNSUPPORTED_RECORD_FORMAT");
    assert_eq!(verdict_mf(&edge, &newer), "VALID");
    assert_eq!(verdict_mf(&edge, &future), "INVALID");
}

#[test]
fn malformed_and_unknown_keys_are_invalid_and_malformed_ones_touch_no_storage() {
    let (control, edge) = edge_over_stub_control();
    let key = new_key();
    let mut typo = key.expose().to_owned();
    let last = typo.pop().expect("non-empty");
    typo.push(if last == 'a' { 'b' } else { 'a' });
    for bad in [typo.as_str(), "pk_live_nope", "", "sk_live_whatever"] {
        let reply = edge.check(bad, "m", "f", None);
        assert_eq!(
            (reply.status, reply.verdict().as_str()),
            (401, "INVALID"),
            "{bad}"
        );
        assert_eq!(reply.header("x-keygate-lookup"), Some("none"), "{bad}");
    }
    assert_eq!(
        control.pulls() + control.refused(),
        0,
        "no pull for malformed keys"
    );

    // Well-formed but unknown: one signed pull, then the negative cache answers.
    let unknown = edge.check(key.expose(), "m", "f", None);
    unknown.assert_verdict(401, "INVALID");
    assert_eq!(unknown.header("x-keygate-lookup"), Some("pull"));
    let again = edge.check(key.expose(), "m", "f", None);
    assert_eq!(again.header("x-keygate-lookup"), Some("cache"));
    assert_eq!((control.pulls(), control.refused()), (1, 0));
}

#[test]
fn a_miss_is_pulled_from_the_control_plane_with_signed_request_and_reply() {
    let (control, edge) = edge_over_stub_control();
    let key = new_key();
    control.insert(record(&key, "ws_pulled", 3));
    let first = edge.check(key.expose(), "m", "f", None);
    assert_eq!((first.status, first.verdict().as_str()), (200, "VALID"));
    assert_eq!(first.json()["workspaceId"], "ws_pulled");
    assert_eq!(first.header("x-keygate-lookup"), Some("pull"));
    assert_eq!(
        edge.check(key.expose(), "m", "f", None)
            .header("x-keygate-lookup"),
        Some("cache")
    );
    assert_eq!((control.pulls(), control.refused()), (1, 0));

    // Replies that are forged, for another request, or missing fail closed.
    for (mode, name) in [
        (PullMode::ForgedReply, "forged"),
        (PullMode::WrongNonce, "wrong nonce"),
        (PullMode::Unavailable, "503"),
    ] {
        control.set_mode(mode);
        let other = new_key();
        control.insert(record(&other, "ws_pulled", 1));
        let reply = edge.check(other.expose(), "m", "f", None);
        assert_eq!(
            (reply.status, reply.verdict().as_str()),
            (401, "INVALID"),
            "{name}"
        );
    }
}

#[test]
fn keys_in_kv_keep_working_when_the_control_plane_is_down() {
    let control = Control::start(TEST_SECRET);
    let url = control.url.clone();
    drop(control);
    let edge = Edge::start(EdgeOptions {
        control_url: Some(url),
        ..EdgeOptions::default()
    });
    let key = new_key();
    assert_eq!(edge.sync(&[record(&key, "ws_1", 1)]).status, 200);
    let reply = edge.check(key.expose(), "m", "f", None);
    assert_eq!((reply.status, reply.verdict().as_str()), (200, "VALID"));
    let unknown = edge.check(new_key().expose(), "m", "f", None);
    unknown.assert_verdict(401, "INVALID");
}

#[test]
fn forged_stale_replayed_and_malformed_sync_pushes_are_refused() {
    let edge = Edge::start_default();
    let key = new_key();
    let body = sync_body(&[record(&key, "ws_1", 1)]);
    let now = now_secs();

    let sign = |secret: &str, purpose: Purpose, at: u64| {
        signed_headers(secret, purpose, at, &fresh_nonce(), body.as_bytes())
    };
    let forger = "not-the-secret-but-long-enough-0123456789";
    for (headers, reason) in [
        (sign(forger, Purpose::Sync, now), "SIGNATURE_INVALID"),
        (
            sign(TEST_SECRET, Purpose::Sync, now - 3_600),
            "SIGNATURE_STALE",
        ),
        (
            sign(TEST_SECRET, Purpose::PullReply, now),
            "SIGNATURE_INVALID",
        ),
    ] {
        let r = edge.send_sync(&headers, body.as_bytes());
        assert_eq!((r.status, r.reason().as_str()), (401, reason));
    }

    let r = edge.send_sync(&[], body.as_bytes());
    assert_eq!(
        (r.status, r.reason().as_str()),
        (401, "SIGNATURE_MALFORMED")
    );

    // Nothing refused was applied.
    assert_eq!(verdict_mf(&edge, &key), "INVALID");

    let good = sign(TEST_SECRET, Purpose::Sync, now);
    assert_eq!(edge.send_sync(&good, body.as_bytes()).status, 200);
    let replay = edge.send_sync(&good, body.as_bytes());
    assert_eq!(
        (replay.status, replay.reason().as_str()),
        (401, "SIGNATURE_REPLAYED")
    );

    // Tampering with a signed body breaks the signature.
    let tampered = body.replace("ws_1", "ws_2");
    let fresh = sign(TEST_SECRET, Purpose::Sync, now);
    let r = edge.send_sync(&fresh, tampered.as_bytes());
    assert_eq!((r.status, r.reason().as_str()), (401, "SIGNATURE_INVALID"));

    // Authentic but not a batch.
    let junk = br#"{"records": "nope"}"#;
    let h = signed_headers(TEST_SECRET, Purpose::Sync, now, &fresh_nonce(), junk);
    let r = edge.send_sync(&h, junk);
    assert_eq!((r.status, r.reason().as_str()), (400, "INVALID_JSON"));
}

#[test]
fn bad_requests_get_stable_4xx_json_errors() {
    let edge = Edge::start_default();
    let post = |body: &[u8]| edge.request("POST", "/v1/check", &[], Some(body));
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (b"{not json".to_vec(), 400, "INVALID_JSON"),
        (b"[]".to_vec(), 400, "INVALID_JSON"),
        (b"".to_vec(), 400, "INVALID_JSON"),
        (
            br#"{"key":"pk_live_x","module":"m"}"#.to_vec(),
            400,
            "MISSING_FIELD",
        ),
        (
            br#"{"module":"m","functionality":"f"}"#.to_vec(),
            400,
            "MISSING_FIELD",
        ),
        (
            br#"{"key":1,"module":"m","functionality":"f"}"#.to_vec(),
            400,
            "INVALID_FIELD",
        ),
        (vec![b' '; 64 * 1024], 413, "PAYLOAD_TOO_LARGE"),
    ];
    for (body, status, reason) in cases {
        let r = post(&body);
        assert_eq!(
            (r.status, r.reason().as_str()),
            (status, reason),
            "{}",
            String::from_utf8_lossy(&body[..body.len().min(40)])
        );
        assert_eq!(r.json()["error"]["code"], status);
        assert!(r.json()["error"]["message"].is_string());
    }
    let r = edge.request("GET", "/v1/check", &[], None);
    assert_eq!((r.status, r.reason().as_str()), (405, "METHOD_NOT_ALLOWED"));
    let r = edge.request("GET", "/__keygate/sync", &[], None);
    assert_eq!((r.status, r.reason().as_str()), (405, "METHOD_NOT_ALLOWED"));
    let r = edge.request("GET", "/nowhere", &[], None);
    assert_eq!((r.status, r.reason().as_str()), (404, "NOT_FOUND"));
    let r = edge.request("GET", "/x/only-a-module", &[], None);
    assert_eq!((r.status, r.reason().as_str()), (400, "INVALID_PATH"));
    // Just over the limit: the edge drains it and answers (a far larger body gets the same
    // 413 but may see its connection closed before it is all sent).
    let huge = vec![b'x'; 1024 * 1024 + 1024];
    let r = edge.send_sync(&[], &huge);
    assert_eq!((r.status, r.reason().as_str()), (413, "PAYLOAD_TOO_LARGE"));
}

#[test]
fn gateway_forwards_allowed_requests_signed_and_never_forwards_refused_ones() {
    let (edge, origin, key) = gateway_to_origin("ws_gw", |r| {
        add_rule(r, "billing", "refund");
        r.origin_url = r.origin_url.take().map(|u| u + "/api");
    });
    let status_of = |key: &str| {
        let headers = [("x-publishable-key", key)];
        edge.request("GET", "/x/billing/charge/status", &headers, None)
    };

    let body = br#"{"amount": 42}"#;
    let reply = edge.request(
        "POST",
        "/x/billing/charge/v1/charges?currency=eur",
        &[
            ("x-publishable-key", key.expose()),
            ("content-type", "application/json"),
            ("x-keygate-workspace", "ws_spoofed"),
        ],
        Some(body),
    );
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.header("x-origin"), Some("reached"));
    assert_eq!(reply.json()["verified"], true);
    assert_eq!(reply.json()["path"], "/api/v1/charges?currency=eur");
    assert_eq!(reply.json()["bodyLen"], body.len());
    let got = origin.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, body);
    let req = &got[0];
    assert!(req.signature_ok);
    assert_eq!(req.method, "POST");
    assert_eq!(req.body, body);
    assert_eq!(
        req.headers["x-keygate-workspace"], "ws_gw",
        "spoofed header replaced"
    );
    assert_eq!(req.headers["x-keygate-module"], "billing");
    assert_eq!(req.headers["x-keygate-functionality"], "charge");
    assert!(!req.headers.contains_key("x-publishable-key"));

    // Bodies stream through whole, far beyond the check body limit.
    let big = vec![b'k'; 3 * 1024 * 1024 + 17];
    let upload = edge.request(
        "PUT",
        "/x/billing/charge/v1/files/big",
        &[
            ("x-publishable-key", key.expose()),
            ("content-type", "application/octet-stream"),
        ],
        Some(&big),
    );
    assert_eq!(
        upload.status,
        200,
        "{}",
        String::from_utf8_lossy(&upload.body)
    );
    assert_eq!(upload.json()["bodyLen"], big.len());
    assert_eq!(upload.json()["verified"], true);

    let get = status_of(key.expose());
    assert_eq!(
        (get.status, get.json()["path"].as_str()),
        (200, Some("/api/status"))
    );

    // Refused requests answer with the verdict and never reach the origin.
    let before = origin.received().len();
    let blacklisted = edge.request(
        "POST",
        "/x/billing/refund/v1/refunds",
        &[("x-publishable-key", key.expose())],
        Some(b"{}"),
    );
    blacklisted.assert_verdict(403, "BLACKLISTED");
    let no_key = edge.request("GET", "/x/billing/charge/status", &[], None);
    assert_eq!((no_key.status, no_key.verdict().as_str()), (401, "INVALID"));
    let invented = status_of(new_key().expose());
    invented.assert_verdict(401, "INVALID");
    assert_eq!(
        origin.received().len(),
        before,
        "refused requests never reach the origin"
    );

    // A valid key of a workspace without an origin URL cannot use the gateway.
    let plain = new_key();
    assert_eq!(edge.sync(&[record(&plain, "ws_plain", 1)]).status, 200);
    let r = status_of(plain.expose());
    assert_eq!(
        (r.status, r.reason().as_str()),
        (404, "GATEWAY_NOT_CONFIGURED")
    );
}

#[test]
fn cors_preflight_is_answered_from_the_keys_allowed_origins() {
    let edge = Edge::start_default();
    let key = new_key();
    let mut r = record(&key, "ws_cors", 1);
    r.allowed_origins = vec!["https://app.acme.example".into()];
    assert_eq!(edge.sync(&[r]).status, 200);
    let preflight = |path: &str, origin: &str| {
        edge.request(
            "OPTIONS",
            path,
            &[
                ("origin", origin),
                ("access-control-request-method", "POST"),
                (
                    "access-control-request-headers",
                    "content-type, x-publishable-key",
                ),
            ],
            None,
        )
    };
    let with_key = format!("/v1/check?key={}", key.expose());
    let ok = preflight(&with_key, "https://app.acme.example");
    assert_eq!(ok.status, 204);
    assert_eq!(
        ok.header("access-control-allow-origin"),
        Some("https://app.acme.example")
    );
    assert!(ok
        .header("access-control-allow-methods")
        .unwrap_or_default()
        .contains("POST"));
    assert_eq!(
        ok.header("access-control-allow-headers"),
        Some("content-type, x-publishable-key")
    );
    let refused = preflight(&with_key, "https://evil.example");
    assert_eq!(
        (refused.status, refused.reason().as_str()),
        (403, "ORIGIN_NOT_ALLOWED")
    );
    assert_eq!(refused.header("access-control-allow-origin"), None);

    let gateway_path = format!("/x/billing/charge/v1?key={}", key.expose());
    assert_eq!(
        preflight(&gateway_path, "https://app.acme.example").status,
        204
    );
    // Without a key the preflight cannot know the workspace: it lets the browser ask, and
    // the real request is then judged (and refused without CORS headers) by origin.
    assert_eq!(preflight("/v1/check", "https://evil.example").status, 204);
}

#[test]
fn keep_alive_connections_survive_requests_refused_before_their_body_is_read() {
    let edge = Edge::start_default();
    let key = new_key();
    let mut r = with_rule(record(&key, "ws_ka", 1), "billing", "refund");
    r.origin_url = Some("http://127.0.0.1:9".into());
    assert_eq!(edge.sync(&[r]).status, 200);
    let addr = edge
        .url
        .trim_start_matches("http://")
        .parse()
        .expect("host:port");
    // Refused by the blacklist: the gateway never reads the body, the edge drains it.
    let refused = keygate_tests::edge::load::http_request(
        "POST",
        "/x/billing/refund/v1/refunds",
        &[("x-publishable-key", key.expose())],
        &[b'x'; 10_000],
    );
    let report = keygate_tests::edge::load::run(addr, &refused, 1, Duration::from_secs(10), 30);
    assert_eq!(report.requests, 30);
    assert_eq!(report.errors, 0, "one connection served every request");
    assert_eq!(report.statuses.get(&403), Some(&30));
}
