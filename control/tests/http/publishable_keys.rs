//! The publishable key over HTTP: viewing, revoking (also concurrently), blacklist rules,
//! origins, the edge outbox rows each change writes, roles and tenant isolation.

use crate::common::{Client, TestServer};
use crate::keys_support::*;
use keygate_control::config::SettingsArgs;
use keygate_control::with_db;
use serde_json::{json, Value};

fn pk_path(id: &str, rest: &str) -> String {
    format!("/api/v1/workspace/{id}/publishable-key{rest}")
}

async fn current(client: &Client, id: &str) -> Value {
    let r = client.get(&pk_path(id, "")).await;
    assert_eq!(r.status, 200, "{r:?}");
    r.body["publishableKey"].clone()
}

async fn shop(server: &TestServer) -> (Client, String) {
    let (owner, id) = owner_with_workspace(server, "Shop").await;
    shop_catalogue(&owner, &id).await;
    (owner, id)
}

/// Sets the shop's catalogue: billing (charge, refund) and orders (list).
async fn shop_catalogue(owner: &Client, id: &str) {
    let r = owner
        .put(
            &format!("/api/v1/workspace/{id}/modules"),
            json!({"modules": [
                {"name": "billing", "functionalities": ["charge", "refund"]},
                {"name": "orders", "functionalities": ["list"]}
            ]}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
}

async fn revoking_replaces_the_key_and_tells_the_edge_in_order(server: TestServer) {
    let (owner, id) = shop(&server).await;
    let org = org_of(&owner).await;
    let before = current(&owner, &id).await;
    let old_key = before["key"].as_str().unwrap().to_owned();
    assert!(before["createdAt"].as_str().is_some());
    assert_eq!(before["blacklist"], json!([]));
    assert!(
        before.get("signingSecret").is_none(),
        "no edge secret configured"
    );
    owner
        .post(
            &pk_path(&id, "/blacklist"),
            json!({"module": "billing", "functionality": "refund"}),
        )
        .await;

    let r = owner.post(&pk_path(&id, "/revoke"), json!({})).await;
    assert_eq!(r.status, 200, "{r:?}");
    let new_key = r.body["publishableKey"]["key"].as_str().unwrap().to_owned();
    assert_ne!(new_key, old_key);
    assert!(new_key.starts_with("pk_live_"));
    assert_eq!(
        r.body["publishableKey"]["blacklist"][0]["module"], "billing",
        "the blacklist belongs to the workspace and survives the revoke"
    );
    assert_eq!(current(&owner, &id).await["key"], new_key.as_str());

    // Outbox: created, rule added, then the old key revoked before the new one appears.
    let rows = outbox(&server, &id).await;
    let old_digest = keygate_shared::key::digest(&old_key).to_hex();
    let new_digest = keygate_shared::key::digest(&new_key).to_hex();
    let summary: Vec<(String, String, usize)> = rows
        .iter()
        .map(|(_, d, r)| {
            (
                if *d == old_digest {
                    "old"
                } else if *d == new_digest {
                    "new"
                } else {
                    "?"
                }
                .to_owned(),
                r["state"].as_str().unwrap().to_owned(),
                r["blacklist"].as_array().unwrap().len(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("old".into(), "active".into(), 0),
            ("old".into(), "active".into(), 1),
            ("old".into(), "revoked".into(), 1),
            ("new".into(), "active".into(), 1),
        ]
    );

    let events = audit(&server, &org).await;
    let revoke = events
        .iter()
        .find(|e| e.0 == "publishable_key.revoke")
        .unwrap();
    assert_eq!(revoke.1, "success");

    // A stale client naming the old key gets a 409, not a second replacement.
    let old_id = before["id"].as_str().unwrap();
    let r = owner
        .post(&pk_path(&id, "/revoke"), json!({"keyId": old_id}))
        .await;
    r.assert_error(409, "KEY_ALREADY_REVOKED");
    let r = owner
        .post(&pk_path(&id, "/revoke"), json!({"key": old_key}))
        .await;
    assert_eq!(r.status, 409, "{r:?}");
    let r = owner
        .post(&pk_path(&id, "/revoke"), json!({"keyId": 7}))
        .await;
    assert_eq!((r.status, r.reason()), (400, "INVALID_BODY"));
    let r = owner
        .post(&pk_path(&id, "/revoke"), json!({"nope": 1}))
        .await;
    assert_eq!((r.status, r.reason()), (400, "INVALID_BODY"));
    // No body at all is fine.
    let r = owner.send("POST", &pk_path(&id, "/revoke"), None).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(outbox(&server, &id).await.len(), 6);
}
on_both_databases!(
    revoke,
    revoking_replaces_the_key_and_tells_the_edge_in_order
);

async fn keys_of(server: &TestServer, id: &str) -> Vec<(String, Option<i64>, Option<String>)> {
    with_db!(&server.state.db, |pool| {
        sqlx::query_as(
            "SELECT id, revoked_at, replaced_by FROM publishable_keys WHERE workspace_id = $1",
        )
        .bind(id)
        .fetch_all(pool)
        .await
        .unwrap()
    })
}

fn assert_no_orphans(keys: &[(String, Option<i64>, Option<String>)]) {
    let live = keys.iter().filter(|k| k.1.is_none()).count();
    assert_eq!(live, 1, "exactly one live key: {keys:?}");
    for (id, revoked, replaced_by) in keys {
        if revoked.is_some() {
            let successor = replaced_by
                .as_deref()
                .expect("a revoked key names its successor");
            assert!(
                keys.iter().any(|k| k.0 == successor),
                "{id} -> {successor} missing"
            );
        }
    }
}

async fn concurrent_revokes_of_one_key_make_exactly_one_new_key(server: TestServer) {
    let (owner, id) = shop(&server).await;
    let key_id = current(&owner, &id).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let c = owner.clone();
            let path = pk_path(&id, "/revoke");
            let body = json!({"keyId": key_id});
            tokio::spawn(async move { c.post(&path, body).await })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        if r.status == 409 {
            assert_eq!(r.reason(), "KEY_ALREADY_REVOKED");
        }
        statuses.push(r.status);
    }
    statuses.sort();
    assert_eq!(statuses, vec![200, 409, 409, 409, 409, 409], "{statuses:?}");
    let keys = keys_of(&server, &id).await;
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert_no_orphans(&keys);
    // One revoked record and one new record, no more.
    assert_eq!(outbox(&server, &id).await.len(), 3);

    // Without naming the key, concurrent revokes never fail badly and never leave two live keys.
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let c = owner.clone();
            let path = pk_path(&id, "/revoke");
            tokio::spawn(async move { c.post(&path, json!({})).await })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        let r = t.await.unwrap();
        assert!(r.status == 200 || r.status == 409, "{r:?}");
        ok += usize::from(r.status == 200);
    }
    let keys = keys_of(&server, &id).await;
    assert_eq!(keys.len(), 2 + ok);
    assert_no_orphans(&keys);
    assert_eq!(outbox(&server, &id).await.len(), 3 + 2 * ok);
}
on_both_databases!(
    concurrent_revoke,
    concurrent_revokes_of_one_key_make_exactly_one_new_key
);

async fn blacklist_rules_come_from_the_catalogue(server: TestServer) {
    let (owner, id) = shop(&server).await;
    let org = org_of(&owner).await;
    let add = |m: &str, f: &str| json!({"module": m, "functionality": f});
    let r = owner
        .post(&pk_path(&id, "/blacklist"), add("billing", "refund"))
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let refund = r.body["rule"]["id"].as_str().unwrap().to_owned();
    assert_eq!(r.body["rule"]["functionality"], "refund");
    let r = owner
        .post(&pk_path(&id, "/blacklist"), add("orders", "*"))
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let r = owner
        .post(&pk_path(&id, "/blacklist"), add("billing", "refund"))
        .await;
    assert_eq!((r.status, r.reason()), (409, "DUPLICATE_RULE"));
    for (body, reason) in [
        (add("shipping", "x"), "UNKNOWN_MODULE"),
        (add("billing", "void"), "UNKNOWN_FUNCTIONALITY"),
        (add("bad name", "x"), "INVALID_MODULE"),
        (add("billing", "re fund"), "INVALID_FUNCTIONALITY"),
        (add("", "x"), "INVALID_MODULE"),
        (json!({"module": "billing"}), "INVALID_BODY"),
        (
            json!({"module": "billing", "functionality": 1}),
            "INVALID_BODY",
        ),
        (
            json!({"module": "billing", "functionality": "charge", "x": 1}),
            "INVALID_BODY",
        ),
    ] {
        let r = owner.post(&pk_path(&id, "/blacklist"), body.clone()).await;
        assert_eq!(r.status, 400, "{body}: {r:?}");
        assert_eq!(r.reason(), reason, "{body}");
    }
    let view = current(&owner, &id).await;
    assert_eq!(view["blacklist"].as_array().unwrap().len(), 2);
    let last = outbox(&server, &id).await.pop().unwrap().2;
    assert_eq!(
        last["blacklist"],
        json!([{"module": "billing", "functionality": "refund"}, {"module": "orders", "functionality": "*"}])
    );

    let r = owner
        .delete(&pk_path(&id, &format!("/blacklist/{refund}")))
        .await;
    assert_eq!(r.status, 204, "{r:?}");
    let last = outbox(&server, &id).await.pop().unwrap().2;
    assert_eq!(
        last["blacklist"],
        json!([{"module": "orders", "functionality": "*"}])
    );
    for rule in [refund.as_str(), "not-an-id", UNKNOWN_ID] {
        let r = owner
            .delete(&pk_path(&id, &format!("/blacklist/{rule}")))
            .await;
        assert_eq!(r.status, 404, "{rule}: {r:?}");
    }
    // A rule of another workspace is not reachable through this one.
    let other = workspace_id(&owner, "Other").await;
    let orders_rule = current(&owner, &id).await["blacklist"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = owner
        .delete(&pk_path(&other, &format!("/blacklist/{orders_rule}")))
        .await;
    assert_eq!(r.status, 404);
    let actions = audit_actions(&server, &org).await;
    assert!(actions.contains(&"blacklist.add".to_owned()));
    assert!(actions.contains(&"blacklist.remove".to_owned()));
}
on_both_databases!(blacklist, blacklist_rules_come_from_the_catalogue);

async fn origins_are_validated_and_reach_the_edge(server: TestServer) {
    let (owner, id) = shop(&server).await;
    let r = owner
        .patch(
            &pk_path(&id, ""),
            json!({
                "allowedOrigins": ["https://App.Example.com:443", "https://*.example.org", "http://localhost:3000"],
                "originUrl": "https://api.example.com/v1/"
            }),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let view = &r.body["publishableKey"];
    assert_eq!(
        view["allowedOrigins"],
        json!([
            "https://app.example.com",
            "https://*.example.org",
            "http://localhost:3000"
        ])
    );
    assert_eq!(view["originUrl"], "https://api.example.com/v1");
    let last = outbox(&server, &id).await.pop().unwrap().2;
    assert_eq!(last["allowedOrigins"], view["allowedOrigins"]);
    assert_eq!(last["originUrl"], "https://api.example.com/v1");

    // Only what is named changes; null clears the origin URL.
    let r = owner
        .patch(&pk_path(&id, ""), json!({"originUrl": null}))
        .await;
    assert_eq!(r.status, 200);
    assert!(r.body["publishableKey"]["originUrl"].is_null());
    assert_eq!(
        r.body["publishableKey"]["allowedOrigins"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    let too_many: Vec<String> = (0..51)
        .map(|i| format!("https://a{i}.example.com"))
        .collect();
    for (body, reason) in [
        (
            json!({"allowedOrigins": ["https://example.com/path"]}),
            "INVALID_ORIGIN",
        ),
        (json!({"allowedOrigins": ["*"]}), "INVALID_ORIGIN"),
        (
            json!({"allowedOrigins": ["https://*.com"]}),
            "INVALID_ORIGIN",
        ),
        (json!({"allowedOrigins": ["null"]}), "INVALID_ORIGIN"),
        (json!({"allowedOrigins": too_many}), "TOO_MANY_ORIGINS"),
        (
            json!({"originUrl": "ftp://example.com"}),
            "INVALID_ORIGIN_URL",
        ),
        (
            json!({"originUrl": "https://user:pw@example.com"}),
            "INVALID_ORIGIN_URL",
        ),
        (
            json!({"originUrl": "javascript:alert(1)"}),
            "INVALID_ORIGIN_URL",
        ),
        (
            json!({"allowedOrigins": "https://example.com"}),
            "INVALID_BODY",
        ),
        (json!({"allowedOrigin": []}), "INVALID_BODY"),
    ] {
        let r = owner.patch(&pk_path(&id, ""), body.clone()).await;
        assert_eq!(r.status, 400, "{body}: {r:?}");
        assert_eq!(r.reason(), reason, "{body}");
    }
}
on_both_databases!(origins, origins_are_validated_and_reach_the_edge);

async fn members_read_and_strangers_see_nothing(server: TestServer) {
    let (owner, id) = shop(&server).await;
    let org = org_of(&owner).await;
    let rule = owner
        .post(
            &pk_path(&id, "/blacklist"),
            json!({"module": "billing", "functionality": "charge"}),
        )
        .await
        .body["rule"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let member = add_user(&server, &org, "member@example.com", "member").await;
    assert_eq!(member.get(&pk_path(&id, "")).await.status, 200);
    let stranger = other_org_owner(&server, "boss@other.example").await;
    let unknown = stranger.get(&pk_path(UNKNOWN_ID, "")).await;
    let calls: Vec<(&str, String, Value)> = vec![
        ("PATCH", pk_path(&id, ""), json!({"allowedOrigins": []})),
        ("POST", pk_path(&id, "/revoke"), json!({})),
        (
            "POST",
            pk_path(&id, "/blacklist"),
            json!({"module": "billing", "functionality": "refund"}),
        ),
        (
            "DELETE",
            pk_path(&id, &format!("/blacklist/{rule}")),
            Value::Null,
        ),
    ];
    for (method, path, body) in &calls {
        let send = |c: &Client| {
            let (c, path, body) = (c.clone(), path.clone(), body.clone());
            async move {
                match *method {
                    "PATCH" => c.patch(&path, body).await,
                    "POST" => c.post(&path, body).await,
                    _ => c.delete(&path).await,
                }
            }
        };
        let r = send(&member).await;
        assert_eq!(
            (r.status, r.reason()),
            (403, "ROLE_REQUIRED"),
            "member {method} {path}"
        );
        let r = send(&stranger).await;
        assert_eq!(r.status, 404, "stranger {method} {path}: {r:?}");
        assert_eq!(r.body, unknown.body);
    }
    assert_eq!(stranger.get(&pk_path(&id, "")).await.body, unknown.body);
    // Nothing changed.
    let view = current(&owner, &id).await;
    assert_eq!(view["blacklist"].as_array().unwrap().len(), 1);
    assert_eq!(keys_of(&server, &id).await.len(), 1);
    // SDK keys never reach the dashboard routes.
    let backend = owner
        .sdk_client(r#"{"workspace": ["read", "write"]}"#, None)
        .await;
    assert_eq!(backend.get(&pk_path(&id, "")).await.status, 401);
    let revoke = pk_path(&id, "/revoke");
    assert_eq!(backend.post(&revoke, json!({})).await.status, 401);
}
on_both_databases!(roles_and_isolation, members_read_and_strangers_see_nothing);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_publishable_key_no_longer_carries_a_gateway_signing_secret() {
    // Each workspace's own secret lives behind GET .../gateway-secret (gateway.rs).
    let args = SettingsArgs {
        edge_secret: Some("edge-secret-for-tests-0123456789abcdef".into()),
        ..SettingsArgs::default()
    };
    let server = TestServer::start_with(None, args).await;
    let (owner, id) = owner_with_workspace(&server, "Gateway").await;
    let r = owner.get(&pk_path(&id, "")).await;
    assert!(r.body["publishableKey"].get("signingSecret").is_none());
    let derived = keygate_shared::gateway::workspace_signing_key(
        b"edge-secret-for-tests-0123456789abcdef",
        &id,
    );
    assert!(!r.text.contains(&derived));
}

async fn concurrent_changes_leave_the_edge_with_the_final_state(server: TestServer) {
    let (owner, id) = shop(&server).await;
    for round in 0..5 {
        // Two rules added at once: the newest outbox record carries both.
        let adds: Vec<_> = [("billing", "charge"), ("orders", "list")]
            .into_iter()
            .map(|(m, f)| {
                let (c, p) = (owner.clone(), pk_path(&id, "/blacklist"));
                tokio::spawn(
                    async move { c.post(&p, json!({"module": m, "functionality": f})).await },
                )
            })
            .collect();
        for t in adds {
            assert_eq!(t.await.unwrap().status, 201);
        }
        let last = outbox(&server, &id).await.pop().unwrap().2;
        assert_eq!(
            last["blacklist"].as_array().unwrap().len(),
            2,
            "round {round}: {last}"
        );

        // Shrinking the catalogue while a rule for what it removes is added: never both.
        let put = {
            let (c, p) = (owner.clone(), format!("/api/v1/workspace/{id}/modules"));
            tokio::spawn(async move {
                c.put(
                    &p,
                    json!({"modules": [
                        {"name": "billing", "functionalities": ["charge"]},
                        {"name": "orders", "functionalities": ["list"]}
                    ]}),
                )
                .await
            })
        };
        let add = {
            let (c, p) = (owner.clone(), pk_path(&id, "/blacklist"));
            tokio::spawn(async move {
                c.post(&p, json!({"module": "billing", "functionality": "refund"}))
                    .await
            })
        };
        let (put, add) = (put.await.unwrap(), add.await.unwrap());
        assert!(
            (put.status == 200) != (add.status == 201),
            "round {round}: exactly one wins: {put:?} {add:?}"
        );
        // Reset for the next round.
        let view = current(&owner, &id).await;
        for rule in view["blacklist"].as_array().unwrap() {
            let rid = rule["id"].as_str().unwrap();
            assert_eq!(
                owner
                    .delete(&pk_path(&id, &format!("/blacklist/{rid}")))
                    .await
                    .status,
                204
            );
        }
        shop_catalogue(&owner, &id).await;
    }
}
on_both_databases!(
    concurrent_changes,
    concurrent_changes_leave_the_edge_with_the_final_state
);
