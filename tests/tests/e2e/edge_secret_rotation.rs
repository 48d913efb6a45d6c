//! Edge secret rotation with the real binary and the real worker, in the README's order: the
//! worker gets the new secret with the old one as `KEYGATE_EDGE_SECRET_PREVIOUS`, then the
//! control plane switches (restarted mid-delivery) while revokes are being delivered: none is
//! lost, none refused or set aside. After the overlap, signatures made with the retired key
//! are refused by the worker and by the control plane's pull endpoint. On SQLite and on
//! PostgreSQL (`KEYGATE_TEST_POSTGRES_URL`, set by `cargo xtask test`).

use std::time::Duration;

use keygate_shared::signing::{self, Purpose, HEADER_KEY_ID};
use keygate_tests::control::{free_port, new_postgres_database, ControlOptions, Keygate, Session};
use keygate_tests::edge::{signed_headers, Edge, EdgeOptions};

const OLD: &str = "e2e-rotation-old-edge-secret-0123456789abcdef";
const NEW: &str = "e2e-rotation-new-edge-secret-fedcba9876543210";

fn workspace(session: &Session, name: &str) -> (String, String) {
    let id = session.create_workspace(name);
    let key = session.publishable_key(&id);
    (id, key)
}

fn until_verdict(edge: &Edge, key: &str, want: &str, limit: Duration) {
    edge.until_verdict(key, ("billing", "charge"), want, limit);
}

#[test]
fn rotating_the_edge_secret_while_revokes_are_delivered_loses_none_sqlite() {
    rotate_while_delivering(None);
}

#[test]
fn rotating_the_edge_secret_while_revokes_are_delivered_loses_none_postgres() {
    if let Some(url) = new_postgres_database() {
        rotate_while_delivering(Some(url));
    }
}

fn rotate_while_delivering(database_url: Option<String>) {
    let control_port = free_port();
    // Step 1: the worker accepts both, signs (pulls) with the new one.
    let edge = Edge::start(EdgeOptions {
        secret: NEW.into(),
        control_url: Some(format!("http://127.0.0.1:{control_port}")),
        vars: [("KEYGATE_EDGE_SECRET_PREVIOUS".to_owned(), OLD.to_owned())].into(),
        ..EdgeOptions::default()
    });
    // The control plane still signs with the old one.
    let mut control = Keygate::start(ControlOptions {
        port: Some(control_port),
        edge_url: Some(edge.url.clone()),
        edge_secret: Some(OLD.into()),
        database_url,
    });
    let owner = control.sign_in("owner@example.com");
    let keys: Vec<(String, String)> = (0..12)
        .map(|i| workspace(&owner, &format!("w{i}")))
        .collect();
    for (_, key) in &keys {
        until_verdict(&edge, key, "VALID", Duration::from_secs(10));
    }

    // Revokes in flight while the control plane switches to the new secret.
    for (id, _) in &keys[..6] {
        owner.revoke(id);
    }
    control.restart_with(NEW, &[("KEYGATE_EDGE_SECRET_PREVIOUS", OLD)]);
    let owner = control.sign_in("owner@example.com");
    for (id, _) in &keys[6..] {
        owner.revoke(id);
    }
    for (_, key) in &keys {
        until_verdict(&edge, key, "REVOKED", Duration::from_secs(15));
    }
    let letters = control.cli(&[], &["outbox", "dead-letters"]);
    assert!(letters.contains("no dead letters"), "{letters}");
    let status = control.cli(
        &[
            ("KEYGATE_EDGE_SECRET", NEW),
            ("KEYGATE_EDGE_SECRET_PREVIOUS", OLD),
        ],
        &["keys", "status"],
    );
    assert!(
        status.contains(&signing::key_id(NEW.as_bytes())),
        "{status}"
    );
    assert!(
        status.contains(&signing::key_id(OLD.as_bytes())),
        "{status}"
    );

    // Step 3: the old secret retired on both sides.
    control.restart_with(NEW, &[]);
    let retired = Edge::start(EdgeOptions {
        secret: NEW.into(),
        ..EdgeOptions::default()
    });
    let body = br#"{"records":[]}"#;
    let now = keygate_tests::edge::now_secs();
    let mut old_named = signed_headers(OLD, Purpose::Sync, now, "nonce-rot-0001", body);
    old_named.push((HEADER_KEY_ID.to_owned(), signing::key_id(OLD.as_bytes())));
    let r = retired.send_sync(&old_named, body);
    assert_eq!(
        (r.status, r.reason()),
        (401, "SIGNATURE_KEY_UNKNOWN".to_owned()),
        "{r:?}"
    );
    let old_bare = signed_headers(OLD, Purpose::Sync, now, "nonce-rot-0002", body);
    let r = retired.send_sync(&old_bare, body);
    assert_eq!(
        (r.status, r.reason()),
        (401, "SIGNATURE_INVALID".to_owned()),
        "{r:?}"
    );
    let new_named = {
        let mut h = signed_headers(NEW, Purpose::Sync, now, "nonce-rot-0003", body);
        h.push((HEADER_KEY_ID.to_owned(), signing::key_id(NEW.as_bytes())));
        h
    };
    assert_eq!(retired.send_sync(&new_named, body).status, 200);

    // The control plane's pull endpoint refuses the retired key too, and answers the new one.
    let digest = keygate_shared::key::digest(&keys[0].1);
    let path = keygate_shared::record::pull_path(&digest);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into();
    let pull = |secret: &str, nonce: &str| -> (u16, String) {
        let mut req = ureq::http::Request::builder()
            .method("GET")
            .uri(format!("{}{path}", control.url));
        for (k, v) in signed_headers(secret, Purpose::Pull, now, nonce, path.as_bytes()) {
            req = req.header(k, v);
        }
        let req = req
            .header(HEADER_KEY_ID, signing::key_id(secret.as_bytes()))
            .body(())
            .unwrap();
        let resp = agent.run(req).unwrap();
        let status = resp.status().as_u16();
        (status, resp.into_body().read_to_string().unwrap())
    };
    let (status, body) = pull(OLD, "nonce-rot-0004");
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("SIGNATURE_KEY_UNKNOWN"), "{body}");
    let (status, body) = pull(NEW, "nonce-rot-0005");
    assert_eq!(status, 200, "{body}");
}
