//! Regenerates `shared/testdata/vectors.json` from the current implementation.
//!
//! Run only when a decision changes on purpose, and review the diff: the file is the contract
//! the edge is held to. `cargo run -p keygate-shared --example gen_vectors > shared/testdata/vectors.json`

use keygate_shared::blacklist::Rule;
use keygate_shared::check::{check, CheckRequest};
use keygate_shared::conformance::*;
use keygate_shared::key::{self, ApiKeyPrefix, Environment, KeyKind, SecretKey};
use keygate_shared::record::{EdgeRecord, KeyState};
use keygate_shared::{gateway, signing};

fn key_vector(s: &str) -> KeyVector {
    let parsed = key::parse(s);
    KeyVector {
        key: s.to_owned(),
        error: parsed.as_ref().err().map(|e| e.code().to_owned()),
        kind: parsed.as_ref().ok().map(|p| p.kind()),
        digest: key::digest(s).to_hex(),
        mask: key::mask(s),
    }
}

fn main() {
    let mut v = Vectors::default();
    let mut minted = Vec::new();
    for kind in [
        KeyKind::Publishable,
        KeyKind::Sdk,
        KeyKind::WorkspaceToken,
        KeyKind::WorkspaceSecret,
    ] {
        for env in [Environment::Live, Environment::Test] {
            minted.push(SecretKey::generate(kind, env).expose().to_owned());
        }
    }
    minted.push(
        SecretKey::generate_api_key(&ApiKeyPrefix::new("acme").unwrap())
            .expose()
            .to_owned(),
    );
    minted.push(
        SecretKey::generate_api_key(&ApiKeyPrefix::new("acme_live").unwrap())
            .expose()
            .to_owned(),
    );
    let pk = minted[0].clone();
    let mut broken = vec![
        String::new(),
        "x".repeat(100),
        "nounderscore".into(),
        pk.replace("pk_live_", "pk_prod_"),
        pk[..pk.len() - 1].to_owned(),
        format!("{}-", &pk[..pk.len() - 1]),
    ];
    let mut swapped = pk.clone().into_bytes();
    swapped.swap(10, 11);
    broken.push(String::from_utf8(swapped).unwrap());
    let mut changed = pk.clone().into_bytes();
    changed[20] = if changed[20] == b'a' { b'b' } else { b'a' };
    broken.push(String::from_utf8(changed).unwrap());
    for s in minted.iter().chain(broken.iter()) {
        v.keys.push(key_vector(s));
    }

    let now = 1_800_000_000;
    let body = r#"{"records":[]}"#;
    let sig = |purpose, secret: &str, ts, nonce: &str, body: &str, tag: Option<String>, now| {
        let tag = tag.unwrap_or_else(|| {
            signing::sign(secret.as_bytes(), purpose, ts, nonce, body.as_bytes())
        });
        let error = signing::verify(
            secret.as_bytes(),
            purpose,
            ts,
            nonce,
            body.as_bytes(),
            &tag,
            now,
        )
        .err()
        .map(|e| e.code().to_owned());
        let name = match purpose {
            signing::Purpose::Sync => "sync",
            signing::Purpose::Pull => "pull",
            signing::Purpose::PullReply => "pull_reply",
        };
        SignatureVector {
            purpose: name.into(),
            secret: secret.into(),
            timestamp: ts,
            nonce: nonce.into(),
            body: body.into(),
            tag,
            now,
            error,
        }
    };
    use signing::Purpose::*;
    let forged = signing::sign(
        b"wrong-secret",
        Sync,
        now,
        "nonce-forge-01",
        body.as_bytes(),
    );
    let pull_tag = signing::sign(b"edge-secret", Pull, now, "nonce-cross-01", body.as_bytes());
    let pull_path = "/api/v1/edge/records/ab";
    // (purpose, timestamp, nonce, body, tag if not the right one, verified at)
    let cases = [
        (Sync, now, "nonce-fresh-01", body, None, now),
        (Pull, now, "nonce-pull-001", pull_path, None, now + 5),
        (PullReply, now, "nonce-reply-01", body, None, now),
        (Sync, now - 301, "nonce-stale-01", body, None, now),
        (Sync, now + 301, "nonce-futur-01", body, None, now),
        (Sync, now, "nonce-forge-01", body, Some(forged), now),
        (Sync, now, "nonce-cross-01", body, Some(pull_tag), now),
        (Sync, now, "short", body, None, now),
    ];
    for (purpose, ts, nonce, body, tag, at) in cases {
        v.signatures
            .push(sig(purpose, "edge-secret", ts, nonce, body, tag, at));
    }

    for (ws, path) in [("ws_1", "/v1/charge?amount=5"), ("ws_2", "/")] {
        let signing_key = gateway::workspace_signing_key(b"edge-secret", ws);
        let req = gateway::ForwardedRequest {
            method: "POST",
            path_and_query: path,
            workspace_id: ws,
            module: "billing",
            functionality: "charge",
        };
        v.gateway.push(GatewayVector {
            edge_secret: "edge-secret".into(),
            workspace_id: ws.into(),
            header: gateway::sign(&signing_key, now, &req),
            signing_key,
            method: "POST".into(),
            path_and_query: path.into(),
            module: "billing".into(),
            functionality: "charge".into(),
            timestamp: now,
        });
    }

    let record = |k: &str, state| EdgeRecord {
        blacklist: vec![
            Rule::new("billing", "refund").unwrap(),
            Rule::new("admin", "*").unwrap(),
        ],
        allowed_origins: vec![
            "https://app.example.com".into(),
            "https://*.example.org".into(),
        ],
        origin_url: Some("http://127.0.0.1:9000".into()),
        ..EdgeRecord::new(key::digest(k), "ws_1".into(), state, 3)
    };
    let sdk = minted[2].clone();
    let other_pk = minted[1].clone();
    type Case<'a> = (
        &'a str,
        &'a str,
        &'a str,
        &'a str,
        Option<&'a str>,
        Option<EdgeRecord>,
    );
    let cases: Vec<Case<'_>> = vec![
        (
            "valid key, allowed call",
            &pk,
            "billing",
            "charge",
            Some("https://app.example.com"),
            Some(record(&pk, KeyState::Active)),
        ),
        (
            "valid key, no origin header",
            &pk,
            "billing",
            "charge",
            None,
            Some(record(&pk, KeyState::Active)),
        ),
        (
            "wildcard origin",
            &pk,
            "billing",
            "charge",
            Some("https://shop.example.org"),
            Some(record(&pk, KeyState::Active)),
        ),
        (
            "blacklisted functionality",
            &pk,
            "billing",
            "refund",
            None,
            Some(record(&pk, KeyState::Active)),
        ),
        (
            "whole module blacklisted",
            &pk,
            "admin",
            "users",
            None,
            Some(record(&pk, KeyState::Active)),
        ),
        (
            "origin not allowed",
            &pk,
            "billing",
            "charge",
            Some("https://evil.example.com"),
            Some(record(&pk, KeyState::Active)),
        ),
        (
            "revoked key",
            &pk,
            "billing",
            "charge",
            None,
            Some(record(&pk, KeyState::Revoked)),
        ),
        ("unknown key", &pk, "billing", "charge", None, None),
        (
            "record of another key",
            &other_pk,
            "billing",
            "charge",
            None,
            Some(record(&pk, KeyState::Active)),
        ),
        (
            "sdk key is not publishable",
            &sdk,
            "billing",
            "charge",
            None,
            Some(record(&sdk, KeyState::Active)),
        ),
        (
            "bad checksum",
            &broken[7],
            "billing",
            "charge",
            None,
            Some(record(&pk, KeyState::Active)),
        ),
        (
            "blacklisted action in another case",
            &pk,
            "Billing",
            "REFUND",
            None,
            Some(record(&pk, KeyState::Active)),
        ),
        (
            "blacklisted action percent-encoded",
            &pk,
            "bill%69ng",
            "%72efund",
            None,
            Some(record(&pk, KeyState::Active)),
        ),
        (
            "whole module blacklisted, another case",
            &pk,
            "ADMIN",
            "Users",
            None,
            Some(record(&pk, KeyState::Active)),
        ),
        (
            "encoded slash in a label",
            &pk,
            "billing%2Frefund",
            "x",
            None,
            Some(record(&pk, KeyState::Active)),
        ),
        (
            "double-encoded label",
            &pk,
            "bill%2569ng",
            "refund",
            None,
            Some(record(&pk, KeyState::Active)),
        ),
        (
            "malformed module name",
            &pk,
            "bill ing",
            "refund",
            None,
            Some(record(&pk, KeyState::Active)),
        ),
    ];
    for (name, k, module, func, origin, rec) in cases {
        let compiled = rec.clone().map(EdgeRecord::compile);
        let req = CheckRequest {
            key: k,
            module,
            functionality: func,
            origin,
        };
        let status = check(&req, compiled.as_ref()).status;
        v.checks.push(CheckVector {
            name: name.into(),
            key: k.into(),
            module: module.into(),
            functionality: func.into(),
            origin: origin.map(str::to_owned),
            record: rec,
            status: status.as_str().into(),
        });
    }
    for raw in [
        "billing",
        "Billing",
        "BILLING",
        "bill%69ng",
        "%62ILLING",
        "refund-v2.x_1",
        "",
        ".",
        "..",
        "%2e%2e",
        "billing%2Frefund",
        "a/b",
        "a\\b",
        "bill%2569ng",
        "bill%",
        "bill%zz",
        "b%C0%AEx",
        "bil\u{212a}",
        "*",
        "_x",
        &"a".repeat(64),
        &"a".repeat(65),
    ] {
        v.labels.push(LabelVector {
            raw: raw.to_owned(),
            canonical: keygate_shared::action::canonical_label(raw)
                .ok()
                .map(|c| c.into_owned()),
        });
    }
    for rest in [
        "",
        "v1/charges/42",
        "files/%20name",
        "a;b=1",
        "..%2F..%2Fadmin",
        "a%2fb",
        "a%5Cb",
        "a\\b",
        "..",
        "a/../b",
        "%2e%2E/b",
        ".%2e",
        "a/..;x/b",
        ".%3b",
        "a%00b",
        "%252e%252e/x",
        "a%zz",
    ] {
        v.rests.push(RestVector {
            rest: rest.to_owned(),
            error: gateway::check_rest(rest).err().map(|e| e.code().to_owned()),
        });
    }
    for url in [
        "https://api.example.com/v1",
        "http://api.example.com",
        "https://localhost",
        "https://127.0.0.1",
        "https://10.1.2.3",
        "https://169.254.169.254",
        "https://100.64.0.1",
        "https://2130706433",
        "https://0x7f.1",
        "https://0177.0.0.1",
        "https://[::ffff:127.0.0.1]",
        "https://8.8.8.8",
        "http://127.0.0.1:9000",
    ] {
        for allow_private in [false, true] {
            v.forward_targets.push(ForwardTargetVector {
                url: url.to_owned(),
                allow_private,
                allowed: keygate_shared::origin::check_forward_target(url, allow_private).is_ok(),
            });
        }
    }
    let edge_secret = "edge-secret-edge-secret-edge-secret!";
    let secret = gateway::GatewaySecret::generate();
    let sealed = gateway::seal_for_edge(edge_secret.as_bytes(), "ws_1", &secret, None);
    for (ws, opens) in [("ws_1", true), ("ws_2", false)] {
        v.sealed_secrets.push(SealedSecretVector {
            edge_secret: edge_secret.into(),
            workspace_id: ws.into(),
            sealed: sealed.clone(),
            secret: opens.then(|| secret.expose().to_owned()),
            path_and_query: "/v1/charge?x=1".into(),
            timestamp: now,
        });
    }
    let bind = |m: &str, f: &str, routes: &[&str]| keygate_shared::route::RouteBinding {
        module: m.into(),
        functionality: f.into(),
        routes: routes.iter().map(|r| r.to_string()).collect(),
    };
    let maps = [
        vec![
            bind("billing", "refund", &["POST /billing/refunds/*"]),
            bind(
                "billing",
                "read",
                &["GET,HEAD /billing/{id}", "GET /billing/*"],
            ),
            bind("billing", "me", &["GET /billing/me"]),
            bind("public", "read", &["GET /*"]),
            bind("users", "admin", &["GET /users/admin/{x}"]),
            bind("users", "get", &["GET /users/{id}/profile"]),
        ],
        vec![
            bind("a", "x", &["GET /items/{id}"]),
            bind("b", "y", &["GET /Items/{other}/"]),
        ],
        vec![bind("a", "x", &["GET /*/items"])],
    ];
    let requests = [
        ("POST", "billing/refunds/1"),
        ("POST", "Billing//REFUNDS/1/"),
        ("POST", "%62illing/re%66unds"),
        ("post", "billing/refunds"),
        ("DELETE", "billing/refunds/1"),
        ("GET", "billing/me"),
        ("GET", "billing/42"),
        ("HEAD", "billing/42"),
        ("GET", "billing/42/x"),
        ("GET", ""),
        ("GET", "users/admin/profile"),
        ("GET", "users/bob/profile"),
        ("GET", "billing/%2e%2e/admin"),
        ("GET", "billing%2Frefunds"),
        ("GET", "a/%ff"),
    ];
    for bindings in maps {
        let (compile_error, cases) = match keygate_shared::route::RouteMap::compile(&bindings) {
            Err(e) => (Some(e.code.to_owned()), Vec::new()),
            Ok(map) => (
                None,
                requests
                    .iter()
                    .map(|(m, p)| {
                        let outcome = keygate_shared::conformance::route_outcome(&map, m, p);
                        (m.to_string(), p.to_string(), outcome)
                    })
                    .collect(),
            ),
        };
        v.routes.push(keygate_shared::conformance::RouteVector {
            bindings,
            compile_error,
            cases,
        });
    }
    println!("{}", serde_json::to_string_pretty(&v).unwrap());
}
