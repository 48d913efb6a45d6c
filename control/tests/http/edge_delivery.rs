//! The outbox deliverer against a recording sync receiver on loopback that checks every
//! request's signature with `keygate_shared::signing` and keeps versions per key exactly as
//! the worker does: records arrive in order per key, coalesced (only each key's newest
//! snapshot), retried until acknowledged; a refused record is set aside as a dead letter
//! (metric, audit, retry) without holding up others; versions come from the persisted clock
//! and catch up with an edge that holds newer ones; with two replicas on one PostgreSQL only
//! one delivers at a time so no older version can overtake a newer one.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{Client, TestServer};
use crate::keys_support::{add_blacklist_rule, revoke_publishable_key};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use keygate_control::config::SettingsArgs;
use keygate_shared::key::KeyDigest;
use keygate_shared::record::{HeldRecord, SyncAck, SyncBatch};
use keygate_shared::signing::{self, Purpose, HEADER_NONCE, HEADER_SIGNATURE, HEADER_TIMESTAMP};
use serde_json::json;

const SECRET: &str = "delivery-test-secret-0123456789abcdef";

#[derive(Default)]
struct Received {
    /// (version, digest, state, blacklist length) in arrival order.
    records: Vec<(u64, String, String, usize)>,
    /// Requests refused on purpose before accepting.
    fail_first: usize,
    refused: usize,
    /// While set, every request is answered 503 (an outage).
    down: bool,
    /// A batch carrying this digest is answered 400 (a record this edge cannot take).
    reject_digest: Option<String>,
    /// A record for this digest is acknowledged as refused (`SyncAck.refused`), as an edge
    /// refuses a record format it does not speak.
    ack_refuse_digest: Option<String>,
    /// Requests answered 400 because of `reject_digest`.
    rejected: usize,
    /// What this edge holds: digest -> version (applied only if newer, as the worker does).
    held: HashMap<String, u64>,
    /// Concurrent requests seen at once (max).
    in_flight: usize,
    max_in_flight: usize,
    /// Largest body received.
    max_body: usize,
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
        if r.down {
            return (StatusCode::SERVICE_UNAVAILABLE, "down".into());
        }
        if r.refused < r.fail_first {
            r.refused += 1;
            return (StatusCode::SERVICE_UNAVAILABLE, "not yet".into());
        }
        if let Some(d) = &r.reject_digest {
            if std::str::from_utf8(&body).unwrap().contains(d.as_str()) {
                r.rejected += 1;
                return (
                    StatusCode::BAD_REQUEST,
                    json!({"error": {"code": 400, "message": "no", "reason": "RECORD_NOT_ACCEPTED"}}).to_string(),
                );
            }
        }
        r.max_body = r.max_body.max(body.len());
        r.in_flight += 1;
        r.max_in_flight = r.max_in_flight.max(r.in_flight);
    }
    // Hold the request a little so overlapping deliveries would be seen.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let batch: SyncBatch = serde_json::from_slice(&body).expect("a sync batch");
    let mut r = rx.lock().unwrap();
    r.in_flight -= 1;
    let mut ack = SyncAck::default();
    for rec in &batch.records {
        assert!(rec.version <= keygate_shared::clock::MAX_VERSION);
        let state = serde_json::to_value(rec.state)
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned();
        let digest = rec.key_digest.to_hex();
        r.records
            .push((rec.version, digest.clone(), state, rec.blacklist.len()));
        if r.ack_refuse_digest.as_deref() == Some(digest.as_str()) {
            ack.refused.push(keygate_shared::record::RefusedRecord {
                key_digest: rec.key_digest,
                version: rec.version,
                reason: keygate_shared::record::REFUSED_UNSUPPORTED_FORMAT.into(),
            });
            continue;
        }
        let held = r.held.get(&digest).copied();
        // Versions only, as an edge without "revoked is terminal" would: the catch-up test
        // needs a receiver that refuses an older revocation.
        let active = keygate_shared::record::KeyState::Active;
        if keygate_shared::record::should_apply(held.map(|v| (v, active)), (rec.version, active)) {
            r.held.insert(digest, rec.version);
            ack.applied += 1;
        } else {
            ack.skipped += 1;
            let key_digest = rec.key_digest;
            let newer = held.filter(|v| *v > rec.version);
            ack.held_newer.extend(newer.map(|version| HeldRecord {
                key_digest,
                version,
            }));
        }
    }
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

/// A control plane (on `db`, `None`: SQLite) delivering to a fresh recording receiver that
/// refuses its first `fail_first` requests, and the owner, signed in.
async fn delivering(db: Option<String>, fail_first: usize) -> (TestServer, Client, Shared) {
    let (edge_url, rx) = receiver(fail_first).await;
    let server = TestServer::start_with(db, edge_args(&edge_url)).await;
    let owner = server.sign_in("owner@example.com").await;
    (server, owner, rx)
}

/// The two workspaces of the dead-letter scenarios, delivered: (shop, blog) and their keys'
/// digests.
async fn shop_and_blog(server: &TestServer, owner: &Client) -> ([String; 2], [String; 2]) {
    let shop = workspace(owner).await;
    let blog = workspace(owner).await;
    until_delivered(server).await;
    let keys = [
        key_digest(owner, &shop).await,
        key_digest(owner, &blog).await,
    ];
    ([shop, blog], keys)
}

async fn dead_letters(server: &TestServer) -> Vec<keygate_control::store::outbox::DeadLetter> {
    keygate_control::store::outbox::dead_letters(&server.state.db)
        .await
        .unwrap()
}

/// Two control planes on one PostgreSQL database delivering to one receiver, the owner signed
/// in on each, and a workspace.
async fn two_replicas(db: String) -> ([TestServer; 2], [Client; 2], String, Shared) {
    let (edge_url, rx) = receiver(0).await;
    let a = TestServer::start_with(Some(db.clone()), edge_args(&edge_url)).await;
    let b = TestServer::start_with(Some(db), edge_args(&edge_url)).await;
    let owner_a = a.sign_in("owner@example.com").await;
    let owner_b = b.sign_in("owner@example.com").await;
    let ws = workspace(&owner_a).await;
    ([a, b], [owner_a, owner_b], ws, rx)
}

async fn pending(server: &TestServer) -> i64 {
    keygate_control::with_db!(&server.state.db, |pool| {
        sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM edge_outbox WHERE delivered_at IS NULL AND dead_at IS NULL",
        )
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

/// Versions must arrive increasing per key, each version once.
fn assert_ordered_once(rx: &Received) {
    let mut last: HashMap<&str, u64> = HashMap::new();
    let mut seen = std::collections::HashSet::new();
    for (version, digest, _, _) in &rx.records {
        assert!(seen.insert(*version), "version {version} delivered twice");
        if let Some(prev) = last.insert(digest, *version) {
            assert!(
                *version > prev,
                "version {version} of {digest} arrived after {prev}"
            );
        }
    }
}

async fn delivered_in_order_once_and_retried_until_acknowledged(server_db: Option<String>) {
    let (server, owner, rx) = delivering(server_db, 3).await;
    let ws = workspace(&owner).await;
    for f in ["a", "b"] {
        let r = add_blacklist_rule(&owner, &ws, "billing", f).await;
        assert!(r.status < 300, "{r:?}");
    }
    revoke_publishable_key(&owner, &ws).await;
    until_delivered(&server).await;
    {
        let rx = rx.lock().unwrap();
        assert_eq!(
            rx.refused, 3,
            "the first deliveries were refused and retried"
        );
        assert_ordered_once(&rx);
        // Everything was written while the edge refused: each key's newest snapshot only
        // (the old key revoked with both rules, the new key active with both rules).
        let got: Vec<(&str, usize)> = rx
            .records
            .iter()
            .map(|(_, _, s, n)| (s.as_str(), *n))
            .collect();
        assert!(got.len() >= 2 && got.len() <= 5, "{got:?}");
        assert!(got.contains(&("revoked", 2)), "{got:?}");
        assert_eq!(got.last(), Some(&("active", 2)), "{got:?}");
    }
    let metrics = server.anonymous().get("/metrics").await.text;
    assert!(
        metrics.contains("keygate_edge_outbox_pending 0"),
        "{metrics}"
    );
}

on_both_databases!(
    delivers_in_order_once_and_retries,
    delivered_in_order_once_and_retried_until_acknowledged,
    |url| url
);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_on_one_postgres_deliver_one_at_a_time_in_order() {
    let Some(db) = TestServer::new_postgres_database().await else {
        return;
    };
    let ([a, _b], [owner_a, owner_b], ws, rx) = two_replicas(db).await;
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
    assert!(
        rx.records.len() <= 9,
        "workspace creation + 8 rule changes, coalesced"
    );
    let last = rx.records.last().unwrap();
    let max = rx.records.iter().map(|r| r.0).max().unwrap();
    assert_eq!(last.0, max, "the newest record arrived last");
    assert_eq!(last.3, 8, "and it carries all 8 rules");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_on_either_replica_reaches_the_edge_without_waiting_for_a_poll() {
    let Some(db) = TestServer::new_postgres_database().await else {
        return;
    };
    let ([a, _b], [owner_a, owner_b], ws, rx) = two_replicas(db).await;
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

async fn with_receiver<F: FnOnce(&mut Received)>(rx: &Shared, f: F) {
    f(&mut rx.lock().unwrap());
}

/// Sets a workspace's catalogue: `modules` modules of `functionalities` functionalities.
async fn catalogue(client: &Client, ws: &str, modules: usize, functionalities: usize) {
    let modules: Vec<_> = (0..modules)
        .map(|m| {
            json!({
                "name": format!("m{m}"),
                "functionalities": (0..functionalities).map(|f| format!("f{f}")).collect::<Vec<_>>(),
            })
        })
        .collect();
    let r = client
        .put(
            &format!("/api/v1/workspace/{ws}/modules"),
            json!({ "modules": modules }),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
}

async fn add_rule(client: &Client, ws: &str, module: &str, functionality: &str) {
    let r = add_blacklist_rule(client, ws, module, functionality).await;
    assert!(r.status < 300, "{r:?}");
}

/// The digest (hex) of a workspace's live publishable key.
async fn key_digest(client: &Client, ws: &str) -> String {
    let r = client
        .get(&format!("/api/v1/workspace/{ws}/publishable-key"))
        .await;
    keygate_shared::key::digest(r.body["publishableKey"]["key"].as_str().unwrap()).to_hex()
}

/// Waits until the receiver holds `digest` in `state` (bounded); returns how long it took.
async fn until_received(rx: &Shared, digest: &str, state: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if rx
            .lock()
            .unwrap()
            .records
            .iter()
            .any(|(_, d, s, _)| d == digest && s == state)
        {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "{digest} never arrived {state} within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn audit_actions(server: &TestServer) -> Vec<(String, Option<String>, String)> {
    keygate_control::with_db!(&server.state.db, |pool| {
        sqlx::query_as("SELECT action, target, detail FROM audit_events ORDER BY created_at, id")
            .fetch_all(pool)
            .await
            .unwrap()
    })
}

async fn refused_records_are_set_aside_visibly_retryable_and_hold_up_nobody(db: Option<String>) {
    let (server, owner, rx) = delivering(db, 0).await;
    let ([shop, blog], [shop_key, blog_key]) = shop_and_blog(&server, &owner).await;

    // The edge cannot take the shop's record: it is set aside, the blog's revocation passes.
    with_receiver(&rx, |r| r.reject_digest = Some(shop_key.clone())).await;
    add_rule(&owner, &shop, "billing", "a").await;
    revoke_publishable_key(&owner, &blog).await;
    until_received(&rx, &blog_key, "revoked", Duration::from_secs(5)).await;
    let new_blog_key = key_digest(&owner, &blog).await;
    until_received(&rx, &new_blog_key, "active", Duration::from_secs(5)).await;
    until_delivered(&server).await;
    let dead = dead_letters(&server).await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].key_digest, shop_key);
    assert_eq!(dead[0].workspace_id, shop);
    assert_eq!(dead[0].reason, "HTTP_400_RECORD_NOT_ACCEPTED");
    let metrics = server.anonymous().get("/metrics").await.text;
    assert!(
        metrics.contains("keygate_edge_dead_letters 1\n"),
        "{metrics}"
    );
    let audit = audit_actions(&server).await;
    assert!(
        audit.iter().any(|(a, t, d)| a == "edge_record.dead_letter"
            && t.as_deref() == Some(shop_key.as_str())
            && d.contains("HTTP_400_RECORD_NOT_ACCEPTED")),
        "{audit:?}"
    );
    // Later changes to other keys still flow while the dead letter waits.
    add_rule(&owner, &blog, "billing", "b").await;
    until_delivered(&server).await;
    {
        let r = rx.lock().unwrap();
        let newest = r
            .records
            .iter()
            .filter(|(_, d, _, _)| *d == new_blog_key)
            .max_by_key(|x| x.0)
            .unwrap();
        assert_eq!(r.held[&new_blog_key], newest.0);
        assert_eq!(newest.3, 1, "the blog's new rule arrived");
    }

    // Once the edge accepts it again, an operator retries it and it arrives.
    with_receiver(&rx, |r| r.reject_digest = None).await;
    let n = keygate_control::store::outbox::retry_dead_letters(
        &server.state.db,
        KeyDigest::from_hex(&shop_key).as_ref(),
        "test",
    )
    .await
    .unwrap();
    assert_eq!(n, 1);
    until_delivered(&server).await;
    assert!(rx
        .lock()
        .unwrap()
        .records
        .iter()
        .any(|(_, d, s, rules)| *d == shop_key && s == "active" && *rules == 1));
    assert!(dead_letters(&server).await.is_empty());
    assert!(audit_actions(&server)
        .await
        .iter()
        .any(|(a, t, _)| a == "edge_record.retry" && t.as_deref() == Some(shop_key.as_str())));

    // A revocation the edge refuses is never set aside: retried with backoff until it lands,
    // and meanwhile other keys' changes keep arriving.
    let shop_key = key_digest(&owner, &shop).await;
    with_receiver(&rx, |r| r.reject_digest = Some(shop_key.clone())).await;
    revoke_publishable_key(&owner, &shop).await;
    add_rule(&owner, &blog, "billing", "c").await;
    let before = rx.lock().unwrap().rejected;
    // The revocation is refused again and again while the blog's change still arrives (a
    // refused batch is split, so the blog's record may land just after a refusal: poll).
    let blog_now = || {
        rx.lock()
            .unwrap()
            .records
            .iter()
            .filter(|(_, d, _, _)| *d == new_blog_key)
            .map(|r| r.3)
            .max()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while rx.lock().unwrap().rejected < before + 2 || blog_now() != Some(2) {
        assert!(
            Instant::now() < deadline,
            "within 10 s the revocation was refused {} more times (want 2) and the blog's \
             change arrived as {:?} (want Some(2)): the blog's change must pass the stuck revocation",
            rx.lock().unwrap().rejected - before,
            blog_now()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(dead_letters(&server).await.is_empty());
    with_receiver(&rx, |r| r.reject_digest = None).await;
    until_received(&rx, &shop_key, "revoked", Duration::from_secs(5)).await;
    until_delivered(&server).await;
    assert_ordered_once(&rx.lock().unwrap());
}

on_both_databases!(
    refused_records_are_set_aside_and_retryable,
    refused_records_are_set_aside_visibly_retryable_and_hold_up_nobody,
    |url| url
);

async fn clock_row(server: &TestServer) -> i64 {
    keygate_control::with_db!(&server.state.db, |pool| {
        sqlx::query_scalar::<_, i64>("SELECT last FROM edge_clock WHERE id = 1")
            .fetch_one(pool)
            .await
            .unwrap()
    })
}

async fn set_clock_row(server: &TestServer, last: i64) {
    crate::keys_support::execute(server, "UPDATE edge_clock SET last = $1 WHERE id = 1", last)
        .await;
}

async fn a_database_behind_the_edge_catches_up_and_still_revokes(db: Option<String>) {
    let (server, owner, rx) = delivering(db, 0).await;
    let ws = workspace(&owner).await;
    until_delivered(&server).await;
    let key = key_digest(&owner, &ws).await;
    // The edge holds this key at a version far ahead of this database's clock (records from
    // a database that was later restored from an older backup, or a clock that ran ahead).
    let ahead = clock_row(&server).await as u64 + (1u64 << 40);
    with_receiver(&rx, |r| {
        r.held.insert(key.clone(), ahead);
    })
    .await;
    revoke_publishable_key(&owner, &ws).await;
    until_delivered(&server).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let held = rx.lock().unwrap().held[&key];
        if held > ahead {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the revocation never overtook the edge's version"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
        until_delivered(&server).await;
    }
    let (version, _, state, _) = rx
        .lock()
        .unwrap()
        .records
        .iter()
        .rev()
        .find(|x| x.1 == key)
        .cloned()
        .unwrap();
    assert_eq!(state, "revoked");
    assert!(version > ahead && version <= keygate_shared::clock::MAX_VERSION);
    assert!(
        clock_row(&server).await as u64 > ahead,
        "the clock moved past the edge"
    );
    let metrics = server.anonymous().get("/metrics").await.text;
    assert!(
        !metrics.contains("keygate_edge_reissued_total 0\n"),
        "{metrics}"
    );
}

on_both_databases!(
    a_database_behind_the_edge_catches_up_and_still_revokes,
    a_database_behind_the_edge_catches_up_and_still_revokes,
    |url| url
);

async fn outbox_versions(server: &TestServer) -> Vec<i64> {
    keygate_control::with_db!(&server.state.db, |pool| {
        sqlx::query_scalar::<_, i64>("SELECT version FROM edge_outbox ORDER BY id")
            .fetch_all(pool)
            .await
            .unwrap()
    })
}

async fn versions_never_go_backwards(db: Option<String>) {
    let server = TestServer::start_with(db, SettingsArgs::default()).await;
    let owner = server.sign_in("owner@example.com").await;
    let ws = workspace(&owner).await;
    // Racing writers (the clock row orders them).
    let mut tasks = Vec::new();
    for f in ["a", "b", "c", "d", "e", "f", "g", "h"] {
        let (client, ws) = (owner.clone(), ws.clone());
        tasks.push(tokio::spawn(async move {
            add_rule(&client, &ws, "billing", f).await
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let versions = outbox_versions(&server).await;
    assert_eq!(versions.len(), 9);
    assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
    let now = keygate_shared::clock::wall_clock_version(keygate_control::ids::now_ms() as u64);
    assert!(versions[0] as u64 > now - (60_000 << keygate_shared::clock::COUNTER_BITS));
    // A restore that lost the clock row's progress: the wall clock keeps versions ahead.
    set_clock_row(&server, 0).await;
    revoke_publishable_key(&owner, &ws).await;
    let after = outbox_versions(&server).await;
    assert!(after[9] > versions[8] && after[10] > after[9], "{after:?}");
    // A clock that ran ahead of the wall clock keeps counting from there.
    let ahead = after[10] + (1 << 30);
    set_clock_row(&server, ahead).await;
    revoke_publishable_key(&owner, &ws).await;
    let last = outbox_versions(&server).await;
    assert_eq!(&last[11..], &[ahead + 1, ahead + 2], "{last:?}");
}

on_both_databases!(
    versions_never_go_backwards,
    versions_never_go_backwards,
    |url| url
);

async fn rule_count(server: &TestServer, ws: &str) -> i64 {
    keygate_control::with_db!(&server.state.db, |pool| {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM blacklist_rules WHERE workspace_id = $1")
            .bind(ws)
            .fetch_one(pool)
            .await
            .unwrap()
    })
}

async fn a_blacklist_over_the_limit_is_refused_and_nothing_is_written(server: TestServer) {
    let owner = server.sign_in("owner@example.com").await;
    let ws = workspace(&owner).await;
    // Fill the blacklist to the limit directly (a thousand API calls would only be slower).
    keygate_control::with_db!(&server.state.db, |pool| {
        let mut tx = pool.begin().await.unwrap();
        for i in 0..keygate_shared::record::MAX_BLACKLIST_RULES {
            sqlx::query(
                "INSERT INTO blacklist_rules (id, workspace_id, module, functionality, created_at)
                 VALUES ($1, $2, $3, $4, 0)",
            )
            .bind(keygate_control::ids::new_id())
            .bind(&ws)
            .bind(format!("m{i}"))
            .bind("*")
            .execute(&mut *tx)
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();
    });
    let rows_before = outbox_versions(&server).await.len();
    let r = add_blacklist_rule(&owner, &ws, "billing", "a").await;
    r.assert_error(400, "BLACKLIST_TOO_LARGE");
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("1000"));
    assert_eq!(
        rule_count(&server, &ws).await,
        1_000,
        "the rule was not kept"
    );
    assert_eq!(outbox_versions(&server).await.len(), rows_before);
    // Removing rules is always possible, and revoking is never refused.
    revoke_publishable_key(&owner, &ws).await;
}

on_both_databases!(
    blacklist_limit,
    a_blacklist_over_the_limit_is_refused_and_nothing_is_written
);

async fn an_outage_coalesces_and_everything_arrives_within_seconds_of_recovery(db: Option<String>) {
    let (server, owner, rx) = delivering(db, 0).await;
    let big = workspace(&owner).await;
    catalogue(&owner, &big, 3, 20).await;
    let small = workspace(&owner).await;
    until_delivered(&server).await;
    let big_key = key_digest(&owner, &big).await;
    let small_key = key_digest(&owner, &small).await;
    with_receiver(&rx, |r| r.down = true).await;
    for m in 0..3 {
        for f in 0..20 {
            add_rule(&owner, &big, &format!("m{m}"), &format!("f{f}")).await;
        }
    }
    revoke_publishable_key(&owner, &small).await;
    // Let every row fail a few times and reach the backoff cap.
    tokio::time::sleep(Duration::from_millis(3_000)).await;
    let during = rx.lock().unwrap().records.len();
    with_receiver(&rx, |r| r.down = false).await;
    let took = until_received(&rx, &small_key, "revoked", Duration::from_secs(5)).await;
    until_delivered(&server).await;
    eprintln!("revocation arrived {took:?} after the outage ended");
    let r = rx.lock().unwrap();
    let after: Vec<_> = r.records[during..].iter().collect();
    let big_records: Vec<_> = after.iter().filter(|x| x.1 == big_key).collect();
    assert_eq!(
        big_records.len(),
        1,
        "60 changes, one snapshot: {big_records:?}"
    );
    assert_eq!(big_records[0].3, 60);
    assert!(
        took < Duration::from_millis(
            keygate_control::jobs::deliverer::MAX_BACKOFF_MS as u64 + 1_000
        ),
        "{took:?}"
    );
    assert_ordered_once(&r);
}

on_both_databases!(
    an_outage_coalesces_and_everything_arrives_within_seconds,
    an_outage_coalesces_and_everything_arrives_within_seconds_of_recovery,
    |url| url
);

#[test]
fn backoff_doubles_and_is_capped_at_two_seconds() {
    use keygate_control::jobs::deliverer::{backoff_ms, MAX_BACKOFF_MS};
    assert_eq!(MAX_BACKOFF_MS, 2_000);
    let waits: Vec<i64> = (0..8).map(backoff_ms).collect();
    assert_eq!(waits, [250, 500, 1_000, 2_000, 2_000, 2_000, 2_000, 2_000]);
    assert_eq!(backoff_ms(i64::MAX), 2_000);
}

async fn records_refused_in_the_ack_or_unreadable_are_set_aside(server_db: Option<String>) {
    let (server, owner, rx) = delivering(server_db, 0).await;
    let ([shop, blog], [shop_key, blog_key]) = shop_and_blog(&server, &owner).await;
    // The edge acknowledges the batch but refuses the shop's record in it.
    with_receiver(&rx, |r| r.ack_refuse_digest = Some(shop_key.clone())).await;
    add_rule(&owner, &shop, "billing", "a").await;
    add_rule(&owner, &blog, "billing", "a").await;
    until_delivered(&server).await;
    let dead = dead_letters(&server).await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(
        (dead[0].key_digest.as_str(), dead[0].reason.as_str()),
        (shop_key.as_str(), "REFUSED_UNSUPPORTED_RECORD_FORMAT")
    );
    let blog_rules = rx
        .lock()
        .unwrap()
        .records
        .iter()
        .filter(|x| x.1 == blog_key)
        .max_by_key(|x| x.0)
        .map(|x| x.3);
    assert_eq!(
        blog_rules,
        Some(1),
        "the other key's change in the same batch arrived"
    );
    // A newer change to the key supersedes its dead letter once it is delivered.
    with_receiver(&rx, |r| r.ack_refuse_digest = None).await;
    add_rule(&owner, &shop, "billing", "b").await;
    until_delivered(&server).await;
    assert!(dead_letters(&server).await.is_empty());
    // A row that no longer reads as a record is set aside, not resent forever.
    keygate_control::with_db!(&server.state.db, |pool| {
        sqlx::query(
            "INSERT INTO edge_outbox (workspace_id, key_digest, version, record, created_at)
             VALUES ($1, $2, 1, '{\"workspaceId\": 7', 0)",
        )
        .bind(&blog)
        .bind("ab".repeat(32))
        .execute(pool)
        .await
        .unwrap();
    });
    server.state.edge_wakeup.notify_one();
    until_delivered(&server).await;
    let dead = dead_letters(&server).await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].reason, "UNREADABLE_RECORD");
}

on_both_databases!(
    records_refused_in_the_ack_or_unreadable_are_set_aside,
    records_refused_in_the_ack_or_unreadable_are_set_aside,
    |url| url
);
