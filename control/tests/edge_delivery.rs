//! The outbox deliverer against a recording sync receiver on loopback that checks every
//! request's signature with `keygate_shared::signing` exactly as the worker does: records
//! arrive in order, once, retried until acknowledged, and with two replicas on one
//! PostgreSQL only one delivers at a time so no older version can overtake a newer one.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use common::{Client, TestServer};
use keygate_control::config::SettingsArgs;
use keygate_shared::record::{SyncAck, SyncBatch};
use keygate_shared::signing::{self, Purpose, HEADER_NONCE, HEADER_SIGNATURE, HEADER_TIMESTAMP};
use serde_json::json;

const SECRET: &str = "delivery-test-secret-0123456789abcdef";

#[derive(Default)]
struct Received {
    /// (version, digest, state) in arrival order.
    records: Vec<(u64, String, String)>,
    /// Requests refused on purpose before accepting.
    fail_first: usize,
    refused: usize,
    /// Concurrent requests seen at once (max).
    in_flight: usize,
    max_in_flight: usize,
    nonces: Vec<String>,
}

type Shared = Arc<Mutex<Received>>;

async fn sync(State(rx): State<Shared>, headers: HeaderMap, body: Bytes) -> (StatusCode, String) {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let ts = signing::parse_timestamp(&h(HEADER_TIMESTAMP)).unwrap_or(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if signing::verify(
        SECRET.as_bytes(),
        Purpose::Sync,
        ts,
        &h(HEADER_NONCE),
        &body,
        &h(HEADER_SIGNATURE),
        now,
    )
    .is_err()
    {
        return (StatusCode::UNAUTHORIZED, "bad signature".into());
    }
    {
        let mut r = rx.lock().unwrap();
        assert!(!r.nonces.contains(&h(HEADER_NONCE)), "a nonce was reused");
        r.nonces.push(h(HEADER_NONCE));
        if r.refused < r.fail_first {
            r.refused += 1;
            return (StatusCode::SERVICE_UNAVAILABLE, "not yet".into());
        }
        r.in_flight += 1;
        r.max_in_flight = r.max_in_flight.max(r.in_flight);
    }
    // Hold the request a little so overlapping deliveries would be seen.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let batch: SyncBatch = serde_json::from_slice(&body).expect("a sync batch");
    let mut r = rx.lock().unwrap();
    r.in_flight -= 1;
    for rec in &batch.records {
        let state = serde_json::to_value(rec.state)
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned();
        r.records
            .push((rec.version, rec.key_digest.to_hex(), state));
    }
    let ack = SyncAck {
        applied: batch.records.len() as u32,
        ..SyncAck::default()
    };
    (StatusCode::OK, serde_json::to_string(&ack).unwrap())
}

async fn receiver(fail_first: usize) -> (String, Shared) {
    let shared: Shared = Arc::new(Mutex::new(Received {
        fail_first,
        ..Default::default()
    }));
    let app = Router::new()
        .route("/__keygate/sync", post(sync))
        .with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), shared)
}

fn edge_args(edge_url: &str) -> SettingsArgs {
    SettingsArgs {
        edge_url: Some(edge_url.to_owned()),
        edge_secret: Some(SECRET.into()),
        master_key: Some("11".repeat(32)),
        ..Default::default()
    }
}

async fn pending(server: &TestServer) -> i64 {
    keygate_control::with_db!(&server.state.db, |pool| {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM edge_outbox WHERE delivered_at IS NULL")
            .fetch_one(pool)
            .await
            .unwrap()
    })
}

async fn until_delivered(server: &TestServer) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while pending(server).await > 0 {
        assert!(Instant::now() < deadline, "outbox rows still pending");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn workspace(client: &Client) -> String {
    let r = client
        .post("/api/v1/workspace", json!({"name": "Shop"}))
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let ws = r.body["workspace"]["id"].as_str().unwrap().to_owned();
    let r = client
        .put(
            &format!("/api/v1/workspace/{ws}/modules"),
            json!({"modules": [{"name": "billing", "functionalities": ["a", "b", "c", "d", "e", "f", "g", "h"]}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    ws
}

/// Versions must arrive increasing per key, each outbox row once.
fn assert_ordered_once(rx: &Received) {
    let mut last: HashMap<&str, u64> = HashMap::new();
    let mut seen = std::collections::HashSet::new();
    for (version, digest, _) in &rx.records {
        assert!(
            seen.insert(*version),
            "outbox row {version} delivered twice"
        );
        if let Some(prev) = last.insert(digest, *version) {
            assert!(
                *version > prev,
                "version {version} of {digest} arrived after {prev}"
            );
        }
    }
}

async fn delivered_in_order_once_and_retried_until_acknowledged(server_db: Option<String>) {
    let (edge_url, rx) = receiver(3).await;
    let server = TestServer::start_with(server_db, edge_args(&edge_url)).await;
    let owner = server.sign_in("owner@example.com").await;
    let ws = workspace(&owner).await;
    for f in ["a", "b"] {
        let r = owner
            .post(
                &format!("/api/v1/workspace/{ws}/publishable-key/blacklist"),
                json!({"module": "billing", "functionality": f}),
            )
            .await;
        assert!(r.status < 300, "{r:?}");
    }
    let r = owner
        .post(
            &format!("/api/v1/workspace/{ws}/publishable-key/revoke"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    until_delivered(&server).await;
    {
        let rx = rx.lock().unwrap();
        assert_eq!(
            rx.refused, 3,
            "the first deliveries were refused and retried"
        );
        assert_ordered_once(&rx);
        // create, 2 rules (after the catalogue), revoke (old revoked + new active).
        let states: Vec<&str> = rx.records.iter().map(|(_, _, s)| s.as_str()).collect();
        assert_eq!(states.len(), 5, "{states:?}");
        assert_eq!(states.iter().filter(|s| **s == "revoked").count(), 1);
    }
    let metrics = server.anonymous().get("/metrics").await.text;
    assert!(
        metrics.contains("keygate_edge_outbox_pending 0"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_delivers_in_order_once_and_retries() {
    delivered_in_order_once_and_retried_until_acknowledged(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_delivers_in_order_once_and_retries() {
    if let Some(db) = TestServer::new_postgres_database().await {
        delivered_in_order_once_and_retried_until_acknowledged(Some(db)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_on_one_postgres_deliver_one_at_a_time_in_order() {
    let Some(db) = TestServer::new_postgres_database().await else {
        return;
    };
    let (edge_url, rx) = receiver(0).await;
    let a = TestServer::start_with(Some(db.clone()), edge_args(&edge_url)).await;
    let b = TestServer::start_with(Some(db), edge_args(&edge_url)).await;
    let owner_a = a.sign_in("owner@example.com").await;
    let owner_b = b.sign_in("owner@example.com").await;
    let ws = workspace(&owner_a).await;
    // Both replicas change the same key's blacklist at the same time.
    let mut tasks = Vec::new();
    for (i, f) in ["a", "b", "c", "d", "e", "f", "g", "h"]
        .into_iter()
        .enumerate()
    {
        let client = if i % 2 == 0 {
            owner_a.clone()
        } else {
            owner_b.clone()
        };
        let path = format!("/api/v1/workspace/{ws}/publishable-key/blacklist");
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(&path, json!({"module": "billing", "functionality": f}))
                .await;
            assert!(r.status < 300, "{r:?}");
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    until_delivered(&a).await;
    let rx = rx.lock().unwrap();
    assert_ordered_once(&rx);
    assert_eq!(rx.max_in_flight, 1, "two deliveries overlapped");
    assert_eq!(rx.records.len(), 9, "workspace creation + 8 rule changes");
    let last = rx.records.last().unwrap().0;
    let max = rx.records.iter().map(|r| r.0).max().unwrap();
    assert_eq!(last, max, "the newest record arrived last");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_on_either_replica_reaches_the_edge_without_waiting_for_a_poll() {
    let Some(db) = TestServer::new_postgres_database().await else {
        return;
    };
    let (edge_url, rx) = receiver(0).await;
    let a = TestServer::start_with(Some(db.clone()), edge_args(&edge_url)).await;
    let b = TestServer::start_with(Some(db), edge_args(&edge_url)).await;
    let owner_a = a.sign_in("owner@example.com").await;
    let owner_b = b.sign_in("owner@example.com").await;
    let ws = workspace(&owner_a).await;
    until_delivered(&a).await;
    // Whichever replica delivers, the other one's writes must wake it through the database
    // (NOTIFY), not wait for its 250 ms poll.
    for (name, client) in [("a", &owner_a), ("b", &owner_b)] {
        let mut took = Vec::new();
        for f in ["a", "b", "c", "d", "e", "f", "g", "h"] {
            let before = rx.lock().unwrap().records.len();
            let start = Instant::now();
            let path = format!("/api/v1/workspace/{ws}/publishable-key/blacklist");
            let r = client
                .post(&path, json!({"module": "billing", "functionality": f}))
                .await;
            assert!(r.status < 300, "{r:?}");
            while rx.lock().unwrap().records.len() == before {
                assert!(start.elapsed() < Duration::from_secs(5), "never delivered");
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            took.push(start.elapsed());
            let r = client
                .get(&format!("/api/v1/workspace/{ws}/publishable-key"))
                .await;
            let rule = r.body["publishableKey"]["blacklist"][0]["id"]
                .as_str()
                .unwrap()
                .to_owned();
            client.delete(&format!("{path}/{rule}")).await;
            until_delivered(&a).await;
        }
        took.sort();
        let median = took[took.len() / 2];
        assert!(
            median < Duration::from_millis(120),
            "writes on replica {name}: median {median:?} ({took:?})"
        );
    }
}
