//! Helpers shared by the workspace and key tests: people in other roles and organisations,
//! workspaces, and a look at the edge outbox and audit log.
#![allow(dead_code)]

use keygate_control::with_db;
use serde_json::{json, Value};

use crate::common::{Client, Resp, TestServer};

/// The signed-in user's organisation id.
pub async fn org_of(client: &Client) -> String {
    let me = client.get("/api/v1/me").await;
    assert_eq!(me.status, 200, "{me:?}");
    me.body["organisation"]["id"].as_str().unwrap().to_owned()
}

/// Adds a user with `role` to `org_id` directly in the database (invitations are another
/// resource's job) and signs them in.
pub async fn add_user(server: &TestServer, org_id: &str, email: &str, role: &str) -> Client {
    let id = keygate_control::ids::new_id();
    let now = keygate_control::ids::now_ms();
    with_db!(&server.state.db, |pool| {
        sqlx::query(
            "INSERT INTO users (id, org_id, email, role, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&id)
        .bind(org_id)
        .bind(email)
        .bind(role)
        .bind(now)
        .execute(pool)
        .await
        .unwrap();
    });
    server.sign_in(email).await
}

/// A second organisation with its own owner, signed in.
pub async fn other_org_owner(server: &TestServer, email: &str) -> Client {
    let org = keygate_control::ids::new_id();
    let now = keygate_control::ids::now_ms();
    with_db!(&server.state.db, |pool| {
        sqlx::query("INSERT INTO organisations (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(&org)
            .bind("other.example")
            .bind(now)
            .execute(pool)
            .await
            .unwrap();
    });
    add_user(server, &org, email, "owner").await
}

/// Creates a workspace through the API and returns its JSON.
pub async fn create_workspace(client: &Client, name: &str) -> Value {
    let r = client
        .post("/api/v1/workspace", json!({ "name": name }))
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    r.body["workspace"].clone()
}

/// `owner@example.com`, signed in, and a new workspace named `name`: (owner, workspace id).
pub async fn owner_with_workspace(server: &TestServer, name: &str) -> (Client, String) {
    let owner = server.sign_in("owner@example.com").await;
    let id = workspace_id(&owner, name).await;
    (owner, id)
}

/// Revokes (rotates) a workspace's publishable key; asserts the 200.
pub async fn revoke_publishable_key(client: &Client, ws: &str) {
    let r = client
        .post(
            &format!("/api/v1/workspace/{ws}/publishable-key/revoke"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
}

/// Reveals a secret behind `base` (an SDK key, `/api/v1/sdk-keys/{id}`, or a workspace's
/// access key) as `owner@example.com`: asks for a code, then verifies it. Asserts both 200s
/// and returns the verify answer (the key is its `key`).
pub async fn reveal(server: &TestServer, client: &Client, base: &str) -> Resp {
    let r = client.post(&format!("{base}/reveal"), json!({})).await;
    assert_eq!(r.status, 200, "{r:?}");
    let challenge = r.body["challengeId"].as_str().unwrap().to_owned();
    let code = server.outbox_code("owner@example.com").await;
    let r = reveal_verify(client, base, &challenge, &code).await;
    assert_eq!(r.status, 200, "{r:?}");
    r
}

/// `POST {base}/reveal/verify` with a challenge and its code.
pub async fn reveal_verify(client: &Client, base: &str, challenge: &str, code: &str) -> Resp {
    client
        .post(
            &format!("{base}/reveal/verify"),
            json!({"challengeId": challenge, "code": code}),
        )
        .await
}

/// The actions of an organisation's audit events, newest first.
pub async fn audit_actions(server: &TestServer, org: &str) -> Vec<String> {
    audit(server, org).await.into_iter().map(|e| e.0).collect()
}

/// `POST .../publishable-key/blacklist`: blacklists `module`/`functionality` in `ws`.
pub async fn add_blacklist_rule(
    client: &Client,
    ws: &str,
    module: &str,
    functionality: &str,
) -> Resp {
    client
        .post(
            &format!("/api/v1/workspace/{ws}/publishable-key/blacklist"),
            json!({"module": module, "functionality": functionality}),
        )
        .await
}

/// Runs one SQL statement with one integer parameter (`$1`).
pub async fn execute(server: &TestServer, sql: &'static str, arg: i64) {
    with_db!(&server.state.db, |pool| {
        sqlx::query(sql).bind(arg).execute(pool).await.unwrap();
    });
}

/// Same, returning only the id.
pub async fn workspace_id(client: &Client, name: &str) -> String {
    create_workspace(client, name).await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The edge outbox rows of a workspace, oldest first: (id, key digest, record JSON).
pub async fn outbox(server: &TestServer, workspace_id: &str) -> Vec<(i64, String, Value)> {
    let rows: Vec<(i64, String, String)> = with_db!(&server.state.db, |pool| {
        sqlx::query_as(
            "SELECT id, key_digest, record FROM edge_outbox WHERE workspace_id = $1 ORDER BY id",
        )
        .bind(workspace_id)
        .fetch_all(pool)
        .await
        .unwrap()
    });
    rows.into_iter()
        .map(|(id, d, r)| (id, d, serde_json::from_str(&r).unwrap()))
        .collect()
}

/// Audit events of an organisation, oldest first: (action, outcome, target, detail).
pub async fn audit(
    server: &TestServer,
    org_id: &str,
) -> Vec<(String, String, Option<String>, String)> {
    with_db!(&server.state.db, |pool| {
        sqlx::query_as(
            "SELECT action, outcome, target, detail FROM audit_events WHERE org_id = $1
              ORDER BY created_at, id",
        )
        .bind(org_id)
        .fetch_all(pool)
        .await
        .unwrap()
    })
}

/// The audit events of an organisation with `action`, oldest first.
pub async fn audit_of(
    server: &TestServer,
    org_id: &str,
    action: &str,
) -> Vec<(String, String, Option<String>, String)> {
    let mut events = audit(server, org_id).await;
    events.retain(|e| e.0 == action);
    events
}

/// Counts rows of `table` matching a workspace (test-only, fixed table names).
pub async fn count(server: &TestServer, sql: &'static str, arg: &str) -> i64 {
    with_db!(&server.state.db, |pool| {
        sqlx::query_scalar::<_, i64>(sql)
            .bind(arg)
            .fetch_one(pool)
            .await
            .unwrap()
    })
}

/// A well-formed id nobody issued.
pub const UNKNOWN_ID: &str = "01900000-0000-7000-8000-000000000000";
