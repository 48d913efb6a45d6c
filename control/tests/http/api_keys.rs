//! Workspace scopes and customer API keys over HTTP against the real server: every verify
//! status, rotation with a grace period, usage limits (exactly, under concurrency), rate
//! limits, SDK-key scopes, tenant isolation and every error path.

use crate::common::{Client, Resp, TestServer, ALL_SCOPES};
use keygate_shared::key::{ApiKeyPrefix, SecretKey};
use serde_json::{json, Value};

/// A signed-in owner, a workspace with scopes `orders` and `billing`, and an SDK key with
/// every scope.
struct World {
    server: TestServer,
    owner: Client,
    sdk: Client,
    ws: String,
}

async fn workspace(owner: &Client, body: Value) -> String {
    let r = owner.post("/api/v1/workspace", body).await;
    assert!(
        r.status == 201 || r.status == 200,
        "create workspace: {r:?}"
    );
    r.body["workspace"]["id"].as_str().unwrap().to_owned()
}

async fn world(server: TestServer) -> World {
    let owner = server.sign_in("owner@example.com").await;
    let ws = workspace(&owner, json!({ "name": "Shop" })).await;
    let sdk = owner.with_bearer(&owner.sdk_key(ALL_SCOPES, None).await);
    for rep in ["orders", "billing"] {
        let r = sdk
            .post(
                &format!("/api/v1/workspace/{ws}/scope"),
                json!({ "name": rep, "representation": rep, "description": "d" }),
            )
            .await;
        assert_eq!(r.status, 200, "{r:?}");
    }
    World {
        server,
        owner,
        sdk,
        ws,
    }
}

fn orders(create: bool, read: bool) -> Value {
    json!({ "representation": "orders", "create": create, "read": read, "update": false, "del": false })
}

impl World {
    async fn create_key(&self, extra: Value) -> (String, String) {
        let mut body = json!({
            "name": "customer key",
            "workspaceId": self.ws,
            "scopes": [orders(true, true)],
            "enabled": true,
            "customerId": "cus_1",
        });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = self.sdk.post("/api/v1/api-key", body).await;
        assert_eq!(r.status, 200, "{r:?}");
        (
            r.body["apiKey"]["id"].as_str().unwrap().to_owned(),
            r.body["apiKey"]["key"].as_str().unwrap().to_owned(),
        )
    }

    async fn verify_with(&self, body: Value) -> Resp {
        let r = self.sdk.post("/api/v1/api-key/verify", body).await;
        assert_eq!(r.status, 200, "verify answers 200 with a status: {r:?}");
        r
    }

    async fn status(&self, key: &str, scopes: Value) -> String {
        let r = self
            .verify_with(json!({ "key": key, "requestedScopes": scopes }))
            .await;
        r.body["status"].as_str().unwrap().to_owned()
    }

    fn key_path(&self, id: &str) -> String {
        format!("/api/v1/workspace/{}/api-key/{id}", self.ws)
    }

    async fn get_key(&self, id: &str) -> Value {
        let r = self.sdk.get(&self.key_path(id)).await;
        assert_eq!(r.status, 200, "{r:?}");
        r.body["apiKey"].clone()
    }
}

async fn a_key_goes_through_every_status(server: TestServer) {
    let w = world(server).await;
    let (id, key) = w.create_key(json!({})).await;
    let want = json!([orders(false, true)]);

    let r = w
        .verify_with(json!({ "key": key, "requestedScopes": want }))
        .await;
    assert_eq!(r.body["status"], "VALID", "{r:?}");
    assert_eq!(r.body["apiKeyId"], id.as_str());
    assert_eq!(r.body["customerId"], "cus_1");
    assert_eq!(r.body["requestedScopes"][0]["representation"], "orders");

    let billing = json!([{ "representation": "billing", "create": false, "read": true, "update": false, "del": false }]);
    assert_eq!(w.status(&key, billing).await, "INVALID_SCOPES");
    assert_eq!(
        w.status(&key, json!([orders(true, true)])).await,
        "VALID",
        "rights the key holds"
    );
    let del = json!([{ "representation": "orders", "create": false, "read": false, "update": false, "del": true }]);
    assert_eq!(
        w.status(&key, del).await,
        "INVALID_SCOPES",
        "a right it lacks"
    );

    // Malformed, mistyped and never-issued keys.
    assert_eq!(w.status("", json!([])).await, "INVALID");
    assert_eq!(w.status("not a key", json!([])).await, "INVALID");
    let mut typo = key.clone().into_bytes();
    let last = typo.len() - 1;
    typo[last] = if typo[last] == b'a' { b'b' } else { b'a' };
    assert_eq!(
        w.status(&String::from_utf8(typo).unwrap(), json!([])).await,
        "INVALID"
    );
    let stranger = SecretKey::generate_api_key(&ApiKeyPrefix::default());
    let r = w
        .verify_with(json!({ "key": stranger.expose(), "requestedScopes": [] }))
        .await;
    assert_eq!(r.body["status"], "INVALID");
    assert!(
        r.body.get("apiKeyId").is_none(),
        "nothing about unknown keys"
    );

    // Disabled, then enabled again.
    let r = w
        .sdk
        .patch(&w.key_path(&id), json!({ "enabled": false }))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["apiKey"]["enabled"], false);
    assert_eq!(w.status(&key, json!([])).await, "DISABLED");
    w.sdk
        .patch(&w.key_path(&id), json!({ "enabled": true }))
        .await;
    assert_eq!(w.status(&key, json!([])).await, "VALID");

    // Expired (keygate's edit extension), then not.
    let past = chrono_now_ms() - 1;
    let r = w
        .sdk
        .patch(&w.key_path(&id), json!({ "expiresAt": past }))
        .await;
    assert_eq!(r.body["apiKey"]["expiresAt"], past, "{r:?}");
    assert_eq!(w.status(&key, json!([])).await, "EXPIRED");
    w.sdk
        .patch(&w.key_path(&id), json!({ "expiresAt": null }))
        .await;
    assert_eq!(w.status(&key, json!([])).await, "VALID");

    // Edited scopes apply on the next verify.
    let r = w
        .sdk
        .patch(
            &w.key_path(&id),
            json!({ "name": "renamed", "scopes": [orders(true, false)] }),
        )
        .await;
    assert_eq!(r.body["apiKey"]["name"], "renamed", "{r:?}");
    assert_eq!(w.status(&key, want.clone()).await, "INVALID_SCOPES");

    // Deleted: the very next verify says so; the key still reads, marked deleted, and
    // leaves the list.
    let r = w.sdk.delete(&w.key_path(&id)).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["apiKey"]["deleted"], true);
    assert_eq!(w.status(&key, json!([])).await, "DELETED");
    assert_eq!(w.get_key(&id).await["deleted"], true);
    let list = w
        .sdk
        .get(&format!("/api/v1/workspace/{}/api-key", w.ws))
        .await;
    assert_eq!(list.body["apiKeys"], json!([]), "{list:?}");
    let again = w.sdk.delete(&w.key_path(&id)).await;
    assert_eq!(
        again.status, 200,
        "deleting twice answers the same: {again:?}"
    );
    for (r, what) in [
        (
            w.sdk
                .patch(&w.key_path(&id), json!({ "enabled": true }))
                .await,
            "edit",
        ),
        (
            w.sdk
                .post(&format!("{}/rotate", w.key_path(&id)), json!({}))
                .await,
            "rotate",
        ),
        (
            w.sdk
                .post(
                    &format!("{}/refill", w.key_path(&id)),
                    json!({ "amount": 1 }),
                )
                .await,
            "refill",
        ),
    ] {
        assert_eq!(r.status, 409, "{what} of a deleted key: {r:?}");
        assert_eq!(r.reason(), "KEY_DELETED");
    }
}
on_both_databases!(every_status, a_key_goes_through_every_status);

fn chrono_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

async fn create_applies_the_workspace_defaults_and_shows_the_value_once(server: TestServer) {
    let w = world(server).await;
    let acme = workspace(
        &w.owner,
        json!({ "name": "Acme", "defaultKeyPrefix": "acme", "defaultExpiration": 3_600_000 }),
    )
    .await;
    let before = chrono_now_ms();
    let r = w
        .sdk
        .post(
            "/api/v1/api-key",
            json!({ "name": "k", "workspaceId": acme, "scopes": [], "enabled": true, "customerId": "c" }),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let created = &r.body["apiKey"];
    let key = created["key"].as_str().unwrap();
    assert!(key.starts_with("acme_"), "the workspace's prefix: {key}");
    assert_eq!(created["prefix"], "acme");
    assert_eq!(created["limitUsage"], false);
    assert_eq!(created["deleted"], false);
    let masked = created["maskedKey"].as_str().unwrap();
    assert!(masked.starts_with("acme_") && masked.ends_with(&key[key.len() - 4..]));
    assert!(!masked.contains(&key[6..20]));
    let expires = created["expiresAt"].as_i64().unwrap();
    assert!(
        (before + 3_600_000..=chrono_now_ms() + 3_600_000).contains(&expires),
        "default expiry applied: {expires}"
    );
    assert!(created["createdAt"].as_str().unwrap().ends_with('Z'));

    // A prefix in the request wins; without any, `key_`.
    let (_, plain) = w.create_key(json!({})).await;
    assert!(plain.starts_with("key_"), "{plain}");
    let (_, custom) = w.create_key(json!({ "prefix": "shop_live" })).await;
    assert!(custom.starts_with("shop_live_"), "{custom}");

    // The value is never shown again, and never stored.
    let id = created["id"].as_str().unwrap();
    let got = w
        .sdk
        .get(&format!("/api/v1/workspace/{acme}/api-key/{id}"))
        .await;
    assert_eq!(got.status, 200, "{got:?}");
    assert!(got.body["apiKey"].get("key").is_none());
    assert!(!got.text.contains(key));
    let list = w
        .sdk
        .get(&format!("/api/v1/workspace/{acme}/api-key"))
        .await;
    assert_eq!(list.body["apiKeys"].as_array().unwrap().len(), 1);
    assert!(!list.text.contains(key));
    if let keygate_control::store::Db::Sqlite(pool) = &w.server.state.db {
        sqlx::query("PRAGMA wal_checkpoint(FULL)")
            .execute(pool)
            .await
            .unwrap();
    }
    for entry in std::fs::read_dir(w.server.data_dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(
            !bytes.windows(key.len()).any(|win| win == key.as_bytes()),
            "the key's value is stored nowhere"
        );
    }
}
on_both_databases!(
    defaults,
    create_applies_the_workspace_defaults_and_shows_the_value_once
);

async fn usage_limits_run_out_and_refill(server: TestServer) {
    let w = world(server).await;
    let (id, key) = w.create_key(json!({ "totalUsageAllowed": 2 })).await;
    assert_eq!(w.get_key(&id).await["totalUsageLeft"], 2);
    assert_eq!(w.get_key(&id).await["limitUsage"], true);
    let r = w
        .verify_with(json!({ "key": key, "requestedScopes": [] }))
        .await;
    assert_eq!(r.body["status"], "VALID");
    assert_eq!(r.body["totalUsageLeft"], 1);
    assert_eq!(w.status(&key, json!([])).await, "VALID");
    assert_eq!(w.status(&key, json!([])).await, "USAGE_LIMITED");
    assert_eq!(w.status(&key, json!([])).await, "USAGE_LIMITED");
    let k = w.get_key(&id).await;
    assert_eq!(k["totalUsageLeft"], 0);
    assert_eq!(k["usageCount"], 2);
    assert!(k["lastUsedAt"].is_string());

    let refill = format!("{}/refill", w.key_path(&id));
    let r = w.sdk.post(&refill, json!({ "amount": 3 })).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["apiKey"]["totalUsageLeft"], 3);
    assert_eq!(w.status(&key, json!([])).await, "VALID");
    assert_eq!(w.get_key(&id).await["totalUsageLeft"], 2);

    for bad in [json!({ "amount": 0 }), json!({ "amount": -1 }), json!({})] {
        let r = w.sdk.post(&refill, bad).await;
        assert_eq!(r.status, 400, "{r:?}");
    }
    // Unlimited keys have nothing to refill; an edit can limit (or unlimit) them.
    let (free, free_key) = w.create_key(json!({})).await;
    let r = w
        .sdk
        .post(
            &format!("{}/refill", w.key_path(&free)),
            json!({ "amount": 1 }),
        )
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(r.reason(), "NOT_USAGE_LIMITED");
    let r = w
        .sdk
        .patch(&w.key_path(&free), json!({ "totalUsageAllowed": 1 }))
        .await;
    assert_eq!(r.body["apiKey"]["totalUsageLeft"], 1, "{r:?}");
    assert_eq!(w.status(&free_key, json!([])).await, "VALID");
    assert_eq!(w.status(&free_key, json!([])).await, "USAGE_LIMITED");
    w.sdk
        .patch(&w.key_path(&free), json!({ "totalUsageAllowed": null }))
        .await;
    assert_eq!(w.status(&free_key, json!([])).await, "VALID");
}
on_both_databases!(usage_limits, usage_limits_run_out_and_refill);

async fn concurrent_verifies_consume_exactly_the_allowance(server: TestServer) {
    const USES: usize = 40;
    const CALLS: usize = 120;
    let w = world(server).await;
    let (id, key) = w.create_key(json!({ "totalUsageAllowed": USES })).await;
    let mut tasks = Vec::new();
    for _ in 0..CALLS {
        let sdk = w.sdk.clone();
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            let r = sdk
                .post(
                    "/api/v1/api-key/verify",
                    json!({ "key": key, "requestedScopes": [] }),
                )
                .await;
            assert_eq!(r.status, 200, "{r:?}");
            r.body["status"].as_str().unwrap().to_owned()
        }));
    }
    let mut valid = 0;
    let mut limited = 0;
    for t in tasks {
        match t.await.unwrap().as_str() {
            "VALID" => valid += 1,
            "USAGE_LIMITED" => limited += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(valid, USES, "exactly the allowance is VALID");
    assert_eq!(limited, CALLS - USES);
    let k = w.get_key(&id).await;
    assert_eq!(k["totalUsageLeft"], 0);
    assert_eq!(k["usageCount"], USES as i64);
}
on_both_databases!(
    concurrency,
    concurrent_verifies_consume_exactly_the_allowance
);

async fn rotation_keeps_the_old_value_only_during_the_grace_period(server: TestServer) {
    let w = world(server).await;
    let (id, first) = w.create_key(json!({})).await;
    let rotate = format!("{}/rotate", w.key_path(&id));

    // With a grace period (keygate's extension): both values verify until it ends.
    let r = w.sdk.post(&rotate, json!({ "gracePeriodMs": 1500 })).await;
    assert_eq!(r.status, 200, "{r:?}");
    let second = r.body["apiKey"]["key"].as_str().unwrap().to_owned();
    assert_ne!(second, first);
    assert_eq!(r.body["apiKey"]["id"], id.as_str());
    assert!(r.body["apiKey"]["maskedKey"]
        .as_str()
        .unwrap()
        .ends_with(&second[second.len() - 4..]));
    assert_eq!(w.status(&second, json!([])).await, "VALID");
    assert_eq!(w.status(&first, json!([])).await, "VALID", "within grace");
    tokio::time::sleep(std::time::Duration::from_millis(1600)).await;
    assert_eq!(w.status(&first, json!([])).await, "INVALID", "after grace");
    assert_eq!(w.status(&second, json!([])).await, "VALID");

    // As Oneloop's client calls it (no body): the key's own grace period, 0 by default.
    let r = w.sdk.send("POST", &rotate, None).await;
    assert_eq!(r.status, 200, "{r:?}");
    let third = r.body["apiKey"]["key"].as_str().unwrap().to_owned();
    assert_eq!(w.status(&second, json!([])).await, "INVALID", "no grace");
    assert_eq!(w.status(&third, json!([])).await, "VALID");

    // The key's default grace period, and the query form.
    w.sdk
        .patch(&w.key_path(&id), json!({ "rotationGracePeriodMs": 60_000 }))
        .await;
    let r = w.sdk.send("POST", &rotate, None).await;
    let fourth = r.body["apiKey"]["key"].as_str().unwrap().to_owned();
    assert_eq!(
        w.status(&third, json!([])).await,
        "VALID",
        "key default grace"
    );
    let r = w
        .sdk
        .send("POST", &format!("{rotate}?gracePeriodMs=0"), None)
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        w.status(&fourth, json!([])).await,
        "INVALID",
        "query override"
    );
    assert_eq!(
        w.status(&third, json!([])).await,
        "VALID",
        "an earlier value keeps its own grace"
    );

    // A disabled key stays disabled through a rotation.
    w.sdk
        .patch(&w.key_path(&id), json!({ "enabled": false }))
        .await;
    let r = w.sdk.send("POST", &rotate, None).await;
    let fifth = r.body["apiKey"]["key"].as_str().unwrap().to_owned();
    assert_eq!(w.status(&fifth, json!([])).await, "DISABLED");

    for bad in [
        w.sdk.post(&rotate, json!({ "gracePeriodMs": -1 })).await,
        w.sdk.post(&rotate, json!({ "grace": 5 })).await,
        w.sdk
            .send("POST", &format!("{rotate}?gracePeriodMs=soon"), None)
            .await,
        w.sdk
            .send("POST", &rotate, Some(("application/json", b"{".to_vec())))
            .await,
    ] {
        assert_eq!(bad.status, 400, "{bad:?}");
    }
}
on_both_databases!(
    rotation,
    rotation_keeps_the_old_value_only_during_the_grace_period
);

async fn rate_limits_count_per_second(server: TestServer) {
    let w = world(server).await;
    let (_, key) = w.create_key(json!({})).await;
    // Start early in a second so the four calls share one window.
    while chrono_now_ms() % 1000 > 300 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let call = || {
        w.verify_with(json!({
            "key": key, "requestedScopes": [], "rateLimitConfig": { "id": "search", "limit": 3 }
        }))
    };
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let r = call().await;
        assert_eq!(r.body["status"], "VALID", "{r:?}");
        remaining.push(r.body["rateLimit"]["remaining"].as_i64().unwrap());
    }
    assert_eq!(remaining, [2, 1, 0]);
    let r = call().await;
    assert_eq!(r.body["status"], "RATE_LIMITED", "{r:?}");
    let reset = r.body["rateLimit"]["resetAt"].as_i64().unwrap();
    assert_eq!(reset % 1000, 0);
    assert!(reset > chrono_now_ms() - 5);
    // Another limit id has its own window; no config, no limit.
    let r = w
        .verify_with(json!({
            "key": key, "requestedScopes": [], "rateLimitConfig": { "id": "upload", "limit": 3 }
        }))
        .await;
    assert_eq!(r.body["status"], "VALID");
    assert_eq!(w.status(&key, json!([])).await, "VALID");
    // The next second starts afresh.
    tokio::time::sleep(std::time::Duration::from_millis(
        (reset - chrono_now_ms()).max(0) as u64 + 20,
    ))
    .await;
    assert_eq!(call().await.body["status"], "VALID");
    let bad = w
        .sdk
        .post(
            "/api/v1/api-key/verify",
            json!({ "key": key, "requestedScopes": [], "rateLimitConfig": { "id": "", "limit": 3 } }),
        )
        .await;
    assert_eq!(bad.status, 400, "{bad:?}");
}
on_both_databases!(rate_limits, rate_limits_count_per_second);

async fn unlimited_keys_count_usage_and_last_use(server: TestServer) {
    let w = world(server).await;
    let (id, key) = w.create_key(json!({})).await;
    assert!(w.get_key(&id).await.get("lastUsedAt").is_none());
    for _ in 0..3 {
        assert_eq!(w.status(&key, json!([])).await, "VALID");
    }
    assert_eq!(
        w.status(&key, json!([{"representation": "billing", "read": true}]))
            .await,
        "INVALID_SCOPES"
    );
    // Written in batches, at most about a second behind.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let k = w.get_key(&id).await;
        if k["usageCount"] == 3 && k["lastUsedAt"].is_string() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "usage not recorded: {k}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
on_both_databases!(usage_stats, unlimited_keys_count_usage_and_last_use);

async fn sdk_key_scopes_gate_every_call(server: TestServer) {
    let w = world(server).await;
    let (id, key) = w.create_key(json!({})).await;
    let ws = &w.ws;
    let read_only = w.owner.with_bearer(
        &w.owner
            .sdk_key(r#"{"api_keys":["read"],"workspace_scopes":["read"]}"#, None)
            .await,
    );
    let nothing = w
        .owner
        .with_bearer(&w.owner.sdk_key(r#"{"workspace":["read"]}"#, None).await);
    let body =
        json!({ "name": "k", "workspaceId": ws, "scopes": [], "enabled": true, "customerId": "c" });
    let key_path = format!("/api/v1/workspace/{ws}/api-key/{id}");

    // Reads work with read.
    assert_eq!(
        read_only
            .get(&format!("/api/v1/workspace/{ws}/api-key"))
            .await
            .status,
        200
    );
    assert_eq!(read_only.get(&key_path).await.status, 200);
    assert_eq!(
        read_only
            .get(&format!("/api/v1/workspace/{ws}/scopes"))
            .await
            .status,
        200
    );
    let r = read_only
        .post(
            "/api/v1/api-key/verify",
            json!({ "key": key, "requestedScopes": [] }),
        )
        .await;
    assert_eq!(r.body["status"], "VALID", "verify needs only read: {r:?}");

    // Writes need write.
    for r in [
        read_only.post("/api/v1/api-key", body.clone()).await,
        read_only.patch(&key_path, json!({ "name": "x" })).await,
        read_only.delete(&key_path).await,
        read_only
            .post(&format!("{key_path}/rotate"), json!({}))
            .await,
        read_only
            .post(&format!("{key_path}/refill"), json!({ "amount": 1 }))
            .await,
        read_only
            .post(
                &format!("/api/v1/workspace/{ws}/scope"),
                json!({ "name": "n", "representation": "n" }),
            )
            .await,
    ] {
        assert_eq!(r.status, 403, "{r:?}");
        assert_eq!(r.reason(), "MISSING_SCOPE");
    }
    // No api_keys scope at all: not even verify.
    for r in [
        nothing
            .get(&format!("/api/v1/workspace/{ws}/api-key"))
            .await,
        nothing.get(&format!("/api/v1/workspace/{ws}/scopes")).await,
        nothing
            .post(
                "/api/v1/api-key/verify",
                json!({ "key": key, "requestedScopes": [] }),
            )
            .await,
    ] {
        assert_eq!(r.status, 403, "{r:?}");
        assert_eq!(r.reason(), "MISSING_SCOPE");
    }
    assert_eq!(w.status(&key, json!([])).await, "VALID", "nothing changed");
}
on_both_databases!(scopes_gate, sdk_key_scopes_gate_every_call);

async fn callers_reach_only_their_workspace_and_organisation(server: TestServer) {
    let w = world(server).await;
    let (id, key) = w.create_key(json!({})).await;
    let other_ws = workspace(&w.owner, json!({ "name": "Other" })).await;
    let r = w
        .sdk
        .post(
            &format!("/api/v1/workspace/{other_ws}/scope"),
            json!({ "name": "orders", "representation": "orders" }),
        )
        .await;
    assert_eq!(
        r.status, 200,
        "the same representation in another workspace: {r:?}"
    );

    // A key bound to the other workspace sees nothing of the first one.
    let bound = w
        .owner
        .with_bearer(&w.owner.sdk_key(ALL_SCOPES, Some(&other_ws)).await);
    for r in [
        bound.get(&format!("/api/v1/workspace/{}/api-key", w.ws)).await,
        bound.get(&w.key_path(&id)).await,
        bound.get(&format!("/api/v1/workspace/{}/scopes", w.ws)).await,
        bound.delete(&w.key_path(&id)).await,
        bound
            .post(
                "/api/v1/api-key",
                json!({ "name": "k", "workspaceId": w.ws, "scopes": [], "enabled": true, "customerId": "c" }),
            )
            .await,
    ] {
        assert_eq!(r.status, 404, "{r:?}");
        assert_eq!(r.reason(), "NOT_FOUND");
    }
    let r = bound
        .post(
            "/api/v1/api-key/verify",
            json!({ "key": key, "requestedScopes": [] }),
        )
        .await;
    assert_eq!(
        r.body["status"], "INVALID",
        "another workspace's key: {r:?}"
    );
    assert!(r.body.get("apiKeyId").is_none());
    // ... but its own workspace works, and the global key reaches both.
    let r = bound
        .post(
            "/api/v1/api-key",
            json!({ "name": "k", "workspaceId": other_ws, "scopes": [orders(false, true)], "enabled": true, "customerId": "c" }),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let bound_key = r.body["apiKey"]["key"].as_str().unwrap().to_owned();
    assert_eq!(
        w.status(&bound_key, json!([orders(false, true)])).await,
        "VALID"
    );

    // A key id from another workspace of the same organisation is a 404 under this one.
    assert_eq!(
        w.sdk
            .get(&format!("/api/v1/workspace/{other_ws}/api-key/{id}"))
            .await
            .status,
        404
    );

    // Another organisation's workspace and keys: 404 and INVALID, as if they did not exist.
    let foreign_ws = "01900000-0000-7000-8000-000000000001";
    let foreign_key = SecretKey::generate_api_key(&ApiKeyPrefix::default());
    let foreign_id = "01900000-0000-7000-8000-000000000002";
    keygate_control::with_db!(&w.server.state.db, |pool| {
        for sql in [
            "INSERT INTO organisations (id, name, created_at) VALUES ('01900000-0000-7000-8000-000000000000', 'other', 0)",
            "INSERT INTO workspaces (id, org_id, name, created_at, updated_at) VALUES ('01900000-0000-7000-8000-000000000001', '01900000-0000-7000-8000-000000000000', 'theirs', 0, 0)",
            "INSERT INTO api_keys (id, org_id, workspace_id, name, prefix, key_last4, created_at, updated_at) VALUES ('01900000-0000-7000-8000-000000000002', '01900000-0000-7000-8000-000000000000', '01900000-0000-7000-8000-000000000001', 'theirs', 'key', 'abcd', 0, 0)",
        ] {
            sqlx::query(sql).execute(pool).await.unwrap();
        }
        sqlx::query(
            "INSERT INTO api_key_values (key_digest, api_key_id, created_at) VALUES ($1, $2, 0)",
        )
        .bind(foreign_key.digest().to_hex())
        .bind(foreign_id)
        .execute(pool)
        .await
        .unwrap();
    });
    for r in [
        w.sdk.get(&format!("/api/v1/workspace/{foreign_ws}/api-key")).await,
        w.sdk.get(&format!("/api/v1/workspace/{foreign_ws}/api-key/{foreign_id}")).await,
        w.sdk.get(&format!("/api/v1/workspace/{foreign_ws}/scopes")).await,
        w.sdk.delete(&format!("/api/v1/workspace/{foreign_ws}/api-key/{foreign_id}")).await,
        w.sdk
            .post(
                "/api/v1/api-key",
                json!({ "name": "k", "workspaceId": foreign_ws, "scopes": [], "enabled": true, "customerId": "c" }),
            )
            .await,
        w.owner.get(&format!("/api/v1/workspace/{foreign_ws}/api-key")).await,
    ] {
        assert_eq!(r.status, 404, "{r:?}");
    }
    let r = w
        .verify_with(json!({ "key": foreign_key.expose(), "requestedScopes": [] }))
        .await;
    assert_eq!(
        r.body["status"], "INVALID",
        "another organisation's key: {r:?}"
    );
    let r = w
        .owner
        .post(
            "/api/v1/api-key/verify",
            json!({ "key": foreign_key.expose(), "requestedScopes": [] }),
        )
        .await;
    assert_eq!(r.body["status"], "INVALID", "also for a session: {r:?}");
}
on_both_databases!(
    isolation,
    callers_reach_only_their_workspace_and_organisation
);

async fn a_dashboard_session_can_use_the_backend_api(server: TestServer) {
    let w = world(server).await;
    let r = w
        .owner
        .post(
            "/api/v1/api-key",
            json!({ "name": "k", "workspaceId": w.ws, "scopes": [orders(false, true)], "enabled": true, "customerId": "c" }),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let key = r.body["apiKey"]["key"].as_str().unwrap();
    let r = w
        .owner
        .post(
            "/api/v1/api-key/verify",
            json!({ "key": key, "requestedScopes": [orders(false, true)] }),
        )
        .await;
    assert_eq!(r.body["status"], "VALID", "{r:?}");
    let scopes = w
        .owner
        .get(&format!("/api/v1/workspace/{}/scopes", w.ws))
        .await;
    assert_eq!(
        scopes.body["scopes"].as_array().unwrap().len(),
        2,
        "{scopes:?}"
    );
    assert_eq!(scopes.body["scopes"][0]["representation"], "orders");
    assert_eq!(scopes.body["scopes"][0]["description"], "d");
    // Without the CSRF header a session cannot write.
    let mut no_csrf = w.owner.clone();
    no_csrf.csrf = None;
    let r = no_csrf
        .post(
            "/api/v1/api-key/verify",
            json!({ "key": key, "requestedScopes": [] }),
        )
        .await;
    assert_eq!(r.status, 403, "{r:?}");
}
on_both_databases!(session, a_dashboard_session_can_use_the_backend_api);

async fn bad_requests_get_clean_errors(server: TestServer) {
    let w = world(server).await;
    let ws = w.ws.clone();
    let base =
        json!({ "name": "k", "workspaceId": ws, "scopes": [], "enabled": true, "customerId": "c" });
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    let cases = [
        (with("prefix", json!("Bad Prefix")), "INVALID_PREFIX"),
        (with("prefix", json!("sk_live")), "INVALID_PREFIX"),
        (with("name", json!("  ")), "INVALID_NAME"),
        (with("expiresAt", json!(0)), "INVALID_EXPIRES_AT"),
        (with("totalUsageAllowed", json!(-1)), "INVALID_USAGE"),
        (
            with("rotationGracePeriodMs", json!(-5)),
            "INVALID_GRACE_PERIOD",
        ),
        (
            with(
                "scopes",
                json!([{ "representation": "nope", "read": true }]),
            ),
            "UNKNOWN_SCOPE",
        ),
        (
            with(
                "scopes",
                json!([{ "representation": "has space", "read": true }]),
            ),
            "INVALID_REPRESENTATION",
        ),
        (
            with("customerId", json!("x".repeat(300))),
            "INVALID_CUSTOMER_ID",
        ),
        (with("surprise", json!(1)), "INVALID_BODY"),
        (with("name", json!(5)), "INVALID_BODY"),
        (json!({ "workspaceId": ws }), "INVALID_BODY"),
    ];
    for (body, reason) in cases {
        let r = w.sdk.post("/api/v1/api-key", body.clone()).await;
        assert_eq!(r.status, 400, "{body}: {r:?}");
        assert_eq!(r.reason(), reason, "{body}: {r:?}");
        assert_eq!(r.body["error"]["code"], 400);
    }
    let r = w
        .sdk
        .post("/api/v1/api-key", with("workspaceId", json!("nope")))
        .await;
    assert_eq!(r.status, 404, "{r:?}");
    let list = w.sdk.get(&format!("/api/v1/workspace/{ws}/api-key")).await;
    assert_eq!(list.body["apiKeys"], json!([]), "nothing half-made");

    let (id, _) = w.create_key(json!({})).await;
    let path = w.key_path(&id);
    for (body, reason) in [
        (json!({ "name": "" }), "INVALID_NAME"),
        (json!({ "expiresAt": -3 }), "INVALID_EXPIRES_AT"),
        (
            json!({ "scopes": [{ "representation": "ghost", "read": true }] }),
            "UNKNOWN_SCOPE",
        ),
        (json!({ "enabled": "yes" }), "INVALID_BODY"),
        (json!({ "id": "x" }), "INVALID_BODY"),
    ] {
        let r = w.sdk.patch(&path, body.clone()).await;
        assert_eq!((r.status, r.reason()), (400, reason), "{body}: {r:?}");
    }
    assert_eq!(w.get_key(&id).await["name"], "customer key", "unchanged");

    // Ids that are malformed or unknown are 404s.
    for p in [
        format!("/api/v1/workspace/{ws}/api-key/not-an-id"),
        format!("/api/v1/workspace/{ws}/api-key/01900000-0000-7000-8000-00000000dead"),
        "/api/v1/workspace/not-an-id/api-key".to_owned(),
        "/api/v1/workspace/01900000-0000-7000-8000-00000000dead/scopes".to_owned(),
    ] {
        let r = w.sdk.get(&p).await;
        assert_eq!((r.status, r.reason()), (404, "NOT_FOUND"), "{p}: {r:?}");
    }

    // Scopes: validation and uniqueness (the database decides).
    let scope = format!("/api/v1/workspace/{ws}/scope");
    for (body, status, reason) in [
        (
            json!({ "name": "Orders", "representation": "orders" }),
            409,
            "SCOPE_EXISTS",
        ),
        (
            json!({ "name": "x", "representation": "" }),
            400,
            "INVALID_REPRESENTATION",
        ),
        (
            json!({ "name": "x", "representation": "a b" }),
            400,
            "INVALID_REPRESENTATION",
        ),
        (
            json!({ "name": "", "representation": "ok" }),
            400,
            "INVALID_NAME",
        ),
        (
            json!({ "name": "x", "representation": "ok", "description": "d".repeat(1001) }),
            400,
            "INVALID_DESCRIPTION",
        ),
        (json!({ "representation": "ok" }), 400, "INVALID_BODY"),
    ] {
        let r = w.sdk.post(&scope, body.clone()).await;
        assert_eq!((r.status, r.reason()), (status, reason), "{body}: {r:?}");
    }
    let scopes = w.sdk.get(&format!("/api/v1/workspace/{ws}/scopes")).await;
    assert_eq!(scopes.body["scopes"].as_array().unwrap().len(), 2);

    // Verify: the caller must be known; the body must be JSON.
    let verify = "/api/v1/api-key/verify";
    let anon = w.server.anonymous();
    let r = anon
        .post(verify, json!({ "key": "k", "requestedScopes": [] }))
        .await;
    r.assert_error(401, "MISSING_CREDENTIALS");
    for token in ["nonsense", "sk_live_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"] {
        let r = anon
            .with_bearer(token)
            .post(verify, json!({ "key": "k", "requestedScopes": [] }))
            .await;
        assert_eq!((r.status, r.reason()), (401, "INVALID_SDK_KEY"), "{r:?}");
    }
    let stranger = SecretKey::generate(
        keygate_shared::key::KeyKind::Sdk,
        keygate_shared::key::Environment::Live,
    );
    let r = anon
        .with_bearer(stranger.expose())
        .post(verify, json!({ "key": "k", "requestedScopes": [] }))
        .await;
    assert_eq!((r.status, r.reason()), (401, "INVALID_SDK_KEY"), "{r:?}");
    let r = w.sdk.send("POST", verify, None).await;
    assert_eq!(r.status, 415, "{r:?}");
    let r = w
        .sdk
        .post_raw(verify, "application/json", b"{\"key\":".to_vec())
        .await;
    assert_eq!((r.status, r.reason()), (400, "MALFORMED_JSON"), "{r:?}");
    let r = w.sdk.post(verify, json!({ "requestedScopes": [] })).await;
    assert_eq!((r.status, r.reason()), (400, "INVALID_BODY"), "{r:?}");
    let r = w
        .sdk
        .post(verify, json!({ "key": "k", "requestedScopes": [], "rateLimitConfig": { "id": "a", "limit": -1 } }))
        .await;
    assert_eq!((r.status, r.reason()), (400, "INVALID_RATE_LIMIT"), "{r:?}");
    // Oneloop's optional fields are accepted.
    let r = w
        .sdk
        .post(
            verify,
            json!({ "key": "k", "requestedScopes": [], "route": "/x", "billing": { "usage": 1 } }),
        )
        .await;
    assert_eq!(r.body["status"], "INVALID", "{r:?}");

    // A revoked SDK key stops at once.
    let r = w
        .owner
        .post(
            "/api/v1/sdk-keys",
            json!({ "name": "temp", "scopes": { "api_keys": ["read"] } }),
        )
        .await;
    let temp_id = r.body["sdkKey"]["id"].as_str().unwrap().to_owned();
    let temp = w.owner.with_bearer(r.body["key"].as_str().unwrap());
    assert_eq!(
        temp.post(verify, json!({ "key": "k", "requestedScopes": [] }))
            .await
            .status,
        200
    );
    let r = w.owner.delete(&format!("/api/v1/sdk-keys/{temp_id}")).await;
    assert!(r.status < 300, "{r:?}");
    let r = temp
        .post(verify, json!({ "key": "k", "requestedScopes": [] }))
        .await;
    assert_eq!((r.status, r.reason()), (401, "INVALID_SDK_KEY"), "{r:?}");

    // Unknown routes and methods answer in the same shape.
    let r = w.sdk.get("/api/v1/api-key/nope").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.body["error"]["code"], 404);
    let r = w.sdk.get("/api/v1/api-key/verify").await;
    assert_eq!((r.status, r.reason()), (405, "METHOD_NOT_ALLOWED"), "{r:?}");
    let r = w.sdk.send("PUT", &path, None).await;
    assert_eq!(r.status, 405);
    assert_eq!(r.body["error"]["code"], 405);
}
on_both_databases!(bad_requests, bad_requests_get_clean_errors);
