//! Usage you can see: verifications per UTC day by outcome per workspace and per API key,
//! and billing usage per billing id of a workspace, over HTTP against the real server on
//! both databases: counts exact after the once-a-second flush, zero-filled days, a member
//! may read, bad queries and other tenants' ids refused, old days swept, and what is pending
//! written on a graceful shutdown.

use std::time::Duration;

use crate::common::{Client, TestServer};
use keygate_shared::link_token::{day_number, day_string};
use serde_json::{json, Value};

fn today() -> String {
    day_string(day_number(keygate_control::ids::now_ms()))
}

struct World {
    owner: Client,
    sdk: Client,
    ws: String,
}

/// An owner, a workspace and an SDK key bound to it (`api_keys` read and write).
async fn world(server: &TestServer) -> World {
    let owner = server.sign_in("owner@example.com").await;
    let r = owner
        .post("/api/v1/workspace", json!({ "name": "Shop" }))
        .await;
    let ws = r.body["workspace"]["id"].as_str().unwrap().to_owned();
    let body =
        json!({ "name": "b", "workspaceId": ws, "scopes": { "api_keys": ["read", "write"] } });
    let r = owner.post("/api/v1/sdk-keys", body).await;
    assert_eq!(r.status, 201, "{r:?}");
    let sdk = owner.with_bearer(r.body["key"].as_str().unwrap());
    World { owner, sdk, ws }
}

impl World {
    /// A new key with `extra` fields: (id, value).
    async fn key(&self, extra: Value) -> (String, String) {
        let mut body =
            json!({ "name": "k", "workspaceId": self.ws, "scopes": [], "enabled": true });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = self.sdk.post("/api/v1/api-key", body).await;
        assert_eq!(r.status, 200, "{r:?}");
        let k = &r.body["apiKey"];
        (
            k["id"].as_str().unwrap().into(),
            k["key"].as_str().unwrap().into(),
        )
    }

    /// Verifies `key` with `extra` fields; the status.
    async fn verify(&self, key: &str, extra: Value) -> String {
        let mut body = json!({ "key": key, "requestedScopes": [] });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = self.sdk.post("/api/v1/api-key/verify", body).await;
        assert_eq!(r.status, 200, "{r:?}");
        r.body["status"].as_str().unwrap().to_owned()
    }
}

/// Today's outcomes at `path` once their sum is `total` (the statistics are flushed about
/// once a second).
async fn todays_outcomes(client: &Client, path: &str, total: i64) -> Value {
    for _ in 0..50 {
        let r = client.get(path).await;
        assert_eq!(r.status, 200, "{r:?}");
        let last = r.body["days"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(last["day"], today());
        let sum: i64 = last["outcomes"]
            .as_object()
            .unwrap()
            .values()
            .map(|n| n.as_i64().unwrap())
            .sum();
        if sum == total {
            return last["outcomes"].clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{path} never reached {total} verifications");
}

async fn counts_by_outcome(server: TestServer) {
    let w = world(&server).await;
    let (limited_id, limited) = w.key(json!({ "totalUsageAllowed": 2 })).await;
    let (_, plain) = w.key(json!({ "customerId": "cus_1" })).await;
    let (_, off) = w.key(json!({ "enabled": false })).await;
    let billing = json!({ "billing": { "useCustomerIdForBilling": true, "usage": 5 } });
    for (key, extra, want) in [
        (&limited, json!({}), "VALID"),
        (&limited, json!({}), "VALID"),
        (&limited, json!({}), "USAGE_LIMITED"),
        (&plain, json!({}), "VALID"),
        (&plain, billing.clone(), "VALID"),
        (&plain, billing, "VALID"),
        (
            &plain,
            json!({ "rateLimitConfig": { "id": "x", "limit": 0 } }),
            "RATE_LIMITED",
        ),
        (&off, json!({}), "DISABLED"),
        (&"kg_unknown".to_owned(), json!({}), "INVALID"),
    ] {
        assert_eq!(w.verify(key, extra).await, want);
    }
    let ws_path = format!("/api/v1/workspace/{}/usage", w.ws);
    let all = todays_outcomes(&w.owner, &ws_path, 9).await;
    assert_eq!(
        all,
        json!({ "VALID": 5, "USAGE_LIMITED": 1, "RATE_LIMITED": 1, "DISABLED": 1, "INVALID": 1 })
    );
    let key_path = format!(
        "/api/v1/workspace/{}/api-key/{limited_id}/usage?days=7",
        w.ws
    );
    let one = todays_outcomes(&w.sdk, &key_path, 3).await;
    assert_eq!(one, json!({ "VALID": 2, "USAGE_LIMITED": 1 }));

    // Every day of the period, oldest first, each with every outcome (zero-filled).
    let r = w.owner.get(&key_path).await;
    let days = r.body["days"].as_array().unwrap();
    assert_eq!(days.len(), 7);
    assert_eq!(
        days[0]["outcomes"],
        json!({ "VALID": 0, "USAGE_LIMITED": 0 })
    );
    assert_eq!(r.body["outcomes"], json!(["VALID", "USAGE_LIMITED"]));
    assert_eq!(
        w.owner.get(&ws_path).await.body["days"]
            .as_array()
            .unwrap()
            .len(),
        30
    );

    // Billing usage per billing id: the key's customer id, 2 x 5 units today.
    let r = w
        .owner
        .get(&format!("/api/v1/workspace/{}/billing-usage?days=3", w.ws))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let ids = r.body["billingIds"].as_array().unwrap();
    assert_eq!(ids.len(), 1, "{r:?}");
    assert_eq!(
        (&ids[0]["billingId"], &ids[0]["total"]),
        (&json!("cus_1"), &json!(10))
    );
    let days = ids[0]["days"].as_array().unwrap();
    assert_eq!(days.len(), 3);
    assert_eq!(days[2], json!({ "day": today(), "total": 10 }));
    assert_eq!(days[0]["total"], 0);

    // A member may read.
    let r = w
        .owner
        .post(
            "/api/v1/members",
            json!({ "email": "m@example.com", "role": "member" }),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let member = server.sign_in("m@example.com").await;
    assert_eq!(member.get(&ws_path).await.status, 200);
}
on_both_databases!(verification_counts, counts_by_outcome);

async fn bad_queries_and_other_tenants(server: TestServer) {
    let w = world(&server).await;
    let (id, _) = w.key(json!({})).await;
    let base = format!("/api/v1/workspace/{}", w.ws);
    for q in ["days=0", "days=401", "days=x", "from=1"] {
        for path in [
            format!("{base}/usage?{q}"),
            format!("{base}/billing-usage?{q}"),
        ] {
            let r = w.owner.get(&path).await;
            assert_eq!(
                (r.status, r.reason()),
                (400, "INVALID_QUERY"),
                "{path}: {r:?}"
            );
        }
    }
    assert_eq!(
        w.owner.get(&format!("{base}/usage?days=400")).await.status,
        200
    );
    let other = server
        .sign_in_to_new_organisation("Other", "owner@other.example")
        .await;
    for path in [
        format!("{base}/usage"),
        format!("{base}/billing-usage"),
        format!("{base}/api-key/{id}/usage"),
    ] {
        assert_eq!(other.get(&path).await.status, 404, "{path}");
    }
    let r = other
        .post("/api/v1/workspace", json!({ "name": "B" }))
        .await;
    let theirs = r.body["workspace"]["id"].as_str().unwrap();
    let r = other
        .get(&format!("/api/v1/workspace/{theirs}/api-key/{id}/usage"))
        .await;
    assert_eq!(r.status, 404, "another workspace's key: {r:?}");
}
on_both_databases!(bad_queries, bad_queries_and_other_tenants);

async fn old_days_are_swept(server: TestServer) {
    let w = world(&server).await;
    let (id, key) = w.key(json!({})).await;
    assert_eq!(w.verify(&key, json!({})).await, "VALID");
    let path = format!("/api/v1/workspace/{}/usage", w.ws);
    todays_outcomes(&w.owner, &path, 1).await;
    let now = keygate_control::ids::now_ms();
    let today = day_number(now);
    let db = &server.state.db;
    for day in [today - 399, today - 400] {
        let sql =
            "INSERT INTO verification_counts (org_id, workspace_id, api_key_id, day, outcome, n)
                   SELECT org_id, workspace_id, id, $1, 'VALID', 7 FROM api_keys WHERE id = $2";
        keygate_control::with_db!(db, |pool| sqlx::query(sql)
            .bind(day)
            .bind(&id)
            .execute(pool)
            .await
            .map(|_| ())
            .unwrap());
    }
    let swept = keygate_control::store::retention::sweep(db, now)
        .await
        .unwrap();
    assert_eq!(
        swept.verification_counts, 1,
        "only the 401st day back is swept"
    );
    let r = w.owner.get(&format!("{path}?days=400")).await;
    let days = r.body["days"].as_array().unwrap();
    assert_eq!(days[0]["outcomes"]["VALID"], 7, "day 400 is kept");
    assert_eq!(days[399]["outcomes"]["VALID"], 1);
}
on_both_databases!(retention, old_days_are_swept);

/// A second router on the same state, served until `stop` fires, gracefully.
async fn graceful_server(
    server: &TestServer,
    stop: tokio::sync::oneshot::Receiver<()>,
) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = keygate_control::http::router(server.state.clone())
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop.await;
            })
            .await
            .unwrap();
    });
    (base, task)
}

async fn shutdown_writes_what_is_pending(server: TestServer) {
    let w = world(&server).await;
    let (_, key) = w.key(json!({})).await;
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let (base, task) = graceful_server(&server, stopped).await;
    let via = World {
        owner: w.owner.clone(),
        sdk: w.sdk.rebased(&base),
        ws: w.ws.clone(),
    };
    for _ in 0..20 {
        assert_eq!(via.verify(&key, json!({})).await, "VALID");
    }
    stop.send(()).unwrap();
    task.await.unwrap();
    keygate_control::jobs::verify_stats::flushed().await;
    let path = format!("/api/v1/workspace/{}/usage?days=1", w.ws);
    let r = w.owner.get(&path).await;
    assert_eq!(
        r.body["days"][0]["outcomes"],
        json!({ "VALID": 20 }),
        "{r:?}"
    );
}
on_both_databases!(graceful_shutdown, shutdown_writes_what_is_pending);
