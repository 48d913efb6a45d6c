//! Verify's group-committed writes are exact under concurrency: a usage-limited key with
//! 1,000 uses hit 1,600 times from 8 tasks gives exactly 1,000 `VALID`, spends exactly its
//! allowance and bills exactly the `VALID` answers, on SQLite and PostgreSQL, and with two
//! servers (two pools, two group-commit writers) on one database; a key without a limit is
//! billed exactly too, and its uses are counted once its statistics are flushed.

use crate::common::{Client, TestServer};
use keygate_control::config::SettingsArgs;
use serde_json::{json, Value};

const TASKS: usize = 8;
const CALLS_PER_TASK: usize = 200;
const USES: i64 = 1_000;

/// An SDK key (as a client) with the `api_keys` scope and a workspace.
async fn sdk_and_workspace(server: &TestServer) -> (Client, String) {
    let owner = server.sign_in("owner@example.com").await;
    let r = owner
        .post("/api/v1/workspace", json!({ "name": "Shop" }))
        .await;
    let ws = r.body["workspace"]["id"].as_str().unwrap().to_owned();
    let scopes = json!({ "api_keys": ["read", "write"] });
    let r = owner
        .post("/api/v1/sdk-keys", json!({ "name": "b", "scopes": scopes }))
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    (owner.with_bearer(r.body["key"].as_str().unwrap()), ws)
}

/// A key of `ws` with `USES` uses: (id, value).
async fn limited_key(sdk: &Client, ws: &str) -> (String, String) {
    let body = json!({ "name": "k", "workspaceId": ws, "scopes": [], "enabled": true, "totalUsageAllowed": USES });
    let r = sdk.post("/api/v1/api-key", body).await;
    assert_eq!(r.status, 200, "{r:?}");
    let k = &r.body["apiKey"];
    (
        k["id"].as_str().unwrap().into(),
        k["key"].as_str().unwrap().into(),
    )
}

/// `TASKS` tasks, each spread over `clients` in turn, each verifying `key` `CALLS_PER_TASK`
/// times with 3 units of billing usage: (VALID, USAGE_LIMITED) answers.
async fn hammer(clients: &[Client], key: &str) -> (i64, i64) {
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let sdk = clients[t % clients.len()].clone();
        let body =
            json!({ "key": key, "requestedScopes": [], "billing": { "id": "bid_1", "usage": 3 } });
        tasks.push(tokio::spawn(async move {
            let mut counts = (0, 0);
            let mut last_left = i64::MAX;
            for _ in 0..CALLS_PER_TASK {
                let r = sdk.post("/api/v1/api-key/verify", body.clone()).await;
                assert_eq!(r.status, 200, "{r:?}");
                match r.body["status"].as_str().unwrap() {
                    "VALID" => {
                        counts.0 += 1;
                        let left = r.body["totalUsageLeft"].as_i64().unwrap();
                        assert!((0..USES).contains(&left) && left < last_left, "{r:?}");
                        last_left = left;
                    }
                    "USAGE_LIMITED" => counts.1 += 1,
                    other => panic!("unexpected status {other}"),
                }
            }
            counts
        }));
    }
    let mut total = (0, 0);
    for t in tasks {
        let (v, l) = t.await.unwrap();
        total = (total.0 + v, total.1 + l);
    }
    total
}

/// The key's stored uses left and count, and the billed total of `bid_1`.
async fn stored(sdk: &Client, ws: &str, id: &str) -> (Value, Value, i64) {
    let k = sdk
        .get(&format!("/api/v1/workspace/{ws}/api-key/{id}"))
        .await;
    let usage = sdk.get("/api/v1/usage/bid_1").await;
    let billed = usage.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["totalBillingUsage"].as_i64().unwrap())
        .sum();
    (
        k.body["apiKey"]["totalUsageLeft"].clone(),
        k.body["apiKey"]["usageCount"].clone(),
        billed,
    )
}

async fn assert_exact(clients: &[Client], ws: &str) {
    let (id, key) = limited_key(&clients[0], ws).await;
    let (valid, limited) = hammer(clients, &key).await;
    assert_eq!(valid, USES, "exactly the allowance is VALID");
    assert_eq!(limited, (TASKS * CALLS_PER_TASK) as i64 - USES);
    let (left, count, billed) = stored(&clients[0], ws, &id).await;
    assert_eq!((left, count), (json!(0), json!(USES)));
    assert_eq!(billed, 3 * USES, "only VALID answers are billed, each once");
}

async fn one_server(server: TestServer) {
    let (sdk, ws) = sdk_and_workspace(&server).await;
    assert_exact(&[sdk], &ws).await;
}
on_both_databases!(one_server_is_exact, one_server);

/// A second server (its own pool and writer) on `first`'s database.
async fn second_server(first: &TestServer) -> TestServer {
    let url = first.state.settings.database_url.clone();
    TestServer::start_with(Some(url), SettingsArgs::default()).await
}

async fn two_servers(first: TestServer) {
    let second = second_server(&first).await;
    let (sdk, ws) = sdk_and_workspace(&first).await;
    let via_second = sdk.rebased(&second.base);
    assert_exact(&[sdk, via_second], &ws).await;
}
on_both_databases!(two_servers_on_one_database_are_exact, two_servers);

/// A key without a usage limit, charged billing usage by `TASKS` concurrent tasks: every
/// answer VALID, the billing usage exact as soon as the answers are in (group commit), the
/// uses counted exactly once the statistics are flushed (each second).
async fn unlimited_with_billing(server: TestServer) {
    let (sdk, ws) = sdk_and_workspace(&server).await;
    let body = json!({ "name": "u", "workspaceId": ws, "scopes": [], "enabled": true });
    let r = sdk.post("/api/v1/api-key", body).await;
    assert_eq!(r.status, 200, "{r:?}");
    let id = r.body["apiKey"]["id"].as_str().unwrap().to_owned();
    let key = r.body["apiKey"]["key"].as_str().unwrap().to_owned();
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let (sdk, key) = (sdk.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            let body = json!({ "key": key, "billing": { "id": "bid_1", "usage": 3 } });
            for _ in 0..CALLS_PER_TASK / 4 {
                let r = sdk.post("/api/v1/api-key/verify", body.clone()).await;
                assert_eq!((r.status, r.body["status"].as_str()), (200, Some("VALID")));
                assert!(r.body.get("totalUsageLeft").is_none(), "{r:?}");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let calls = (TASKS * CALLS_PER_TASK / 4) as i64;
    let (left, _, billed) = stored(&sdk, &ws, &id).await;
    assert_eq!((left, billed), (Value::Null, 3 * calls));
    for _ in 0..50 {
        if stored(&sdk, &ws, &id).await.1 == json!(calls) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!(
        "usage count not {calls}: {:?}",
        stored(&sdk, &ws, &id).await
    );
}
on_both_databases!(unlimited_key_billing_is_exact, unlimited_with_billing);
