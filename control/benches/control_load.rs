//! Load benchmark of the control plane's other hot paths (loopback only, bounded in time and
//! requests): listing with an SDK key, dashboard-session reads, publishable-key revokes and
//! API-key rotations.
//!
//! Same machinery as `verify_load` (`benches/load/`): the real router and state on their own
//! 2-thread runtime with SQLite in a temporary data directory, set up through the HTTP API
//! (sign-in by emailed code, SDK key, workspaces, 50 API keys), driven from one separate
//! thread by the raw keep-alive HTTP/1.1 generator.
//!
//! Scenarios (each `KEYGATE_BENCH_SECONDS`, default 8 s, `KEYGATE_BENCH_CONNECTIONS`
//! connections, default 32, unless said otherwise):
//! 0. baseline: `GET /healthz` (HTTP + `SELECT 1`);
//! 1. `GET /api/v1/workspace/{id}/api-key` with an SDK key (50 keys);
//! 2. `GET /api/v1/workspace` with an SDK key (10 workspaces);
//! 3. `GET /api/v1/workspace/{id}/publishable-key` with the session cookie;
//! 4. `POST .../publishable-key/revoke` with the session cookie and `x-csrf-token`, one
//!    connection on each of 8 workspaces (no two revokes of one key in flight);
//! 5. the same, all connections on one workspace: concurrent revokes of the same key get
//!    409 `KEY_ALREADY_REVOKED` by design, counted apart from the 2xx;
//! 6. `POST .../api-key/{akid}/rotate` with an SDK key, the connections spread over the 50
//!    keys.
//!
//! Afterwards it checks what was stored (in the SQLite file and through the API): every
//! workspace has exactly one live publishable key, the one the API shows; the revoked rows and
//! the revoke audit events each number exactly the successful revokes; every API key has
//! exactly one current value, one audit event per successful rotation, and a rotated-out value
//! no longer verifies. Any 5xx, other 4xx or broken connection fails the bench.
//!
//! `cargo xtask bench-control` (or `cargo bench -p keygate-control --bench control_load`).

mod load;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use load::{by_status, drive, env_num, get, post, report, Pace, SignedIn, Tally};
use serde_json::json;
use sqlx::SqlitePool;

/// How many API keys the listed workspace holds.
const API_KEYS: usize = 50;
/// How many workspaces get one revoking connection each.
const REVOKE_WORKSPACES: usize = 8;

struct Setup {
    s: SignedIn,
    /// The workspace with the API keys (also read through the dashboard).
    ws: String,
    /// Its API keys: (id, first value).
    keys: Vec<(String, String)>,
    /// Workspaces revoked one connection each.
    revoke_ws: Vec<String>,
    /// The workspace revoked by every connection at once.
    contended_ws: String,
}

async fn setup(base: &str, data_dir: &std::path::Path) -> Setup {
    let s = load::sign_in(base, data_dir).await;
    let http = reqwest::Client::new();
    let b = Some(s.sdk_key.as_str());
    let new_workspace = |name: String| {
        let http = http.clone();
        async move {
            post(
                &http,
                format!("{base}/api/v1/workspace"),
                json!({ "name": name }),
                None,
                b,
            )
            .await["workspace"]["id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let ws = new_workspace("bench".into()).await;
    post(
        &http,
        format!("{base}/api/v1/workspace/{ws}/scope"),
        json!({ "name": "orders", "representation": "orders" }),
        None,
        b,
    )
    .await;
    let mut keys = Vec::with_capacity(API_KEYS);
    for i in 0..API_KEYS {
        let scopes = json!([{ "representation": "orders", "create": false, "read": true, "update": false, "del": false }]);
        let created = post(
            &http,
            format!("{base}/api/v1/api-key"),
            json!({ "name": format!("customer {i}"), "workspaceId": ws, "scopes": scopes, "enabled": true, "customerId": format!("cus_{i}") }),
            None,
            b,
        )
        .await;
        keys.push((
            created["apiKey"]["id"].as_str().unwrap().to_owned(),
            created["apiKey"]["key"].as_str().unwrap().to_owned(),
        ));
    }
    let mut revoke_ws = Vec::new();
    for i in 0..REVOKE_WORKSPACES {
        revoke_ws.push(new_workspace(format!("revoke {i}")).await);
    }
    let contended_ws = new_workspace("revoke contended".into()).await;
    Setup {
        s,
        ws,
        keys,
        revoke_ws,
        contended_ws,
    }
}

/// Runs one scenario and prints its line.
async fn run(
    name: &str,
    addr: SocketAddr,
    reqs: &[Arc<Vec<u8>>],
    connections: u64,
    pace: Pace,
) -> Tally {
    let (t, e) = drive(addr, reqs, connections, pace, by_status).await;
    report(name, &t, e);
    t
}

async fn count(db: &SqlitePool, sql: &str, workspaces: &[String]) -> i64 {
    let mut total = 0;
    for ws in workspaces {
        let n: i64 = sqlx::query_scalar(sql)
            .bind(ws)
            .fetch_one(db)
            .await
            .unwrap();
        total += n;
    }
    total
}

/// After revoking: one live key per workspace, the one the API shows; as many revoked rows
/// and revoke audit events as successful revokes.
async fn check_revokes(
    db: &SqlitePool,
    base: &str,
    s: &SignedIn,
    workspaces: &[String],
    t: &Tally,
) {
    let ok = t.count("2xx") as i64;
    assert_eq!(
        t.count_other_than(&["2xx", "409"]),
        0,
        "only 2xx and 409 answers"
    );
    let revoked = count(
        db,
        "SELECT count(*) FROM publishable_keys WHERE workspace_id = $1 AND revoked_at IS NOT NULL",
        workspaces,
    )
    .await;
    let audited = count(
        db,
        "SELECT count(*) FROM audit_events WHERE workspace_id = $1
            AND action = 'publishable_key.revoke' AND outcome = 'success'",
        workspaces,
    )
    .await;
    let http = reqwest::Client::new();
    for ws in workspaces {
        let live: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM publishable_keys WHERE workspace_id = $1 AND revoked_at IS NULL",
        )
        .bind(ws)
        .fetch_all(db)
        .await
        .unwrap();
        assert_eq!(live.len(), 1, "exactly one live publishable key in {ws}");
        let shown: serde_json::Value = http
            .get(format!("{base}/api/v1/workspace/{ws}/publishable-key"))
            .header(reqwest::header::COOKIE, &s.cookie)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            shown["publishableKey"]["id"].as_str(),
            Some(live[0].as_str()),
            "the API shows the live key"
        );
    }
    println!(
        "  stored: {revoked} revoked rows, {audited} revoke audit events, one live key in each of {} workspaces; {ok} 2xx answers",
        workspaces.len()
    );
    assert_eq!(revoked, ok, "one revoked row per successful revoke");
    assert_eq!(audited, ok, "one audit event per successful revoke");
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is accepted.
    let seconds = env_num("KEYGATE_BENCH_SECONDS", 8);
    let connections = env_num("KEYGATE_BENCH_CONNECTIONS", 32);
    let data_dir = tempfile::tempdir().expect("temp dir");
    let server = load::start_server(data_dir.path());
    let (base, addr) = (server.base.clone(), server.addr);

    load::client_runtime().block_on(async {
        let st = setup(&base, data_dir.path()).await;
        assert!(
            server.database_url.starts_with("sqlite:"),
            "the control-plane bench checks its results in SQLite; unset KEYGATE_BENCH_DATABASE_URL"
        );
        let db = SqlitePool::connect(&server.database_url).await.unwrap();
        load::print_conditions("control-plane load", connections, seconds);
        let d = Duration::from_secs(seconds);
        let bearer = [format!("Authorization: Bearer {}", st.s.sdk_key)];
        let session = [
            format!("Cookie: {}", st.s.cookie),
            format!("x-csrf-token: {}", st.s.csrf),
        ];

        let list_keys = [load::request(
            addr,
            "GET",
            &format!("/api/v1/workspace/{}/api-key", st.ws),
            &bearer,
            None,
        )];
        // Warm-up (connections, statement caches, pages).
        drive(addr, &list_keys, connections, Pace::Count(2_000), by_status).await;

        let healthz = [load::request(addr, "GET", "/healthz", &[], None)];
        run(
            "baseline: GET /healthz (HTTP + SELECT 1)",
            addr,
            &healthz,
            connections,
            Pace::Flat(d),
        )
        .await;

        let t = run(
            &format!("list {API_KEYS} API keys (SDK key)"),
            addr,
            &list_keys,
            connections,
            Pace::Flat(d),
        )
        .await;
        assert_eq!(t.count_other_than(&["2xx"]), 0, "every answer 2xx");

        let list_ws = [load::request(addr, "GET", "/api/v1/workspace", &bearer, None)];
        let t = run(
            &format!("list {} workspaces (SDK key)", REVOKE_WORKSPACES + 2),
            addr,
            &list_ws,
            connections,
            Pace::Flat(d),
        )
        .await;
        assert_eq!(t.count_other_than(&["2xx"]), 0, "every answer 2xx");

        let read_pk = [load::request(
            addr,
            "GET",
            &format!("/api/v1/workspace/{}/publishable-key", st.ws),
            &session[..1],
            None,
        )];
        let t = run(
            "publishable key (session)",
            addr,
            &read_pk,
            connections,
            Pace::Flat(d),
        )
        .await;
        assert_eq!(t.count_other_than(&["2xx"]), 0, "every answer 2xx");

        let revoke = |ws: &String| {
            load::request(
                addr,
                "POST",
                &format!("/api/v1/workspace/{ws}/publishable-key/revoke"),
                &session,
                Some("{}"),
            )
        };
        let revokes: Vec<_> = st.revoke_ws.iter().map(revoke).collect();
        let t = run(
            &format!("revoke publishable key, {REVOKE_WORKSPACES} workspaces x 1"),
            addr,
            &revokes,
            REVOKE_WORKSPACES as u64,
            Pace::Flat(d),
        )
        .await;
        check_revokes(&db, &base, &st.s, &st.revoke_ws, &t).await;

        let contended = [revoke(&st.contended_ws)];
        let t = run(
            &format!("revoke publishable key, 1 workspace x {connections}"),
            addr,
            &contended,
            connections,
            Pace::Flat(d),
        )
        .await;
        check_revokes(
            &db,
            &base,
            &st.s,
            std::slice::from_ref(&st.contended_ws),
            &t,
        )
        .await;

        let rotations: Vec<_> = st
            .keys
            .iter()
            .map(|(id, _)| {
                load::request(
                    addr,
                    "POST",
                    &format!("/api/v1/workspace/{}/api-key/{id}/rotate", st.ws),
                    &bearer,
                    Some("{}"),
                )
            })
            .collect();
        let t = run(
            &format!(
                "rotate API key (SDK key), {} keys",
                connections.min(API_KEYS as u64)
            ),
            addr,
            &rotations,
            connections,
            Pace::Flat(d),
        )
        .await;
        assert_eq!(t.count_other_than(&["2xx"]), 0, "every answer 2xx");
        let ws = std::slice::from_ref(&st.ws);
        let audited = count(
            &db,
            "SELECT count(*) FROM audit_events WHERE workspace_id = $1 AND action = 'api_key.rotate'",
            ws,
        )
        .await;
        let not_one_current = count(
            &db,
            "SELECT count(*) FROM api_keys k WHERE k.workspace_id = $1 AND (SELECT count(*)
               FROM api_key_values v WHERE v.api_key_id = k.id AND v.retired_at IS NULL) <> 1",
            ws,
        )
        .await;
        let old = post(
            &reqwest::Client::new(),
            format!("{base}/api/v1/api-key/verify"),
            json!({ "key": st.keys[0].1, "requestedScopes": [{ "representation": "orders", "create": false, "read": true, "update": false, "del": false }] }),
            None,
            Some(&st.s.sdk_key),
        )
        .await;
        let listed = get(format!("{base}/api/v1/workspace/{}/api-key", st.ws), &st.s.sdk_key).await;
        println!(
            "  stored: {audited} rotate audit events, {not_one_current} keys without exactly one current value; \
             a rotated-out value verifies {}",
            old["status"]
        );
        assert_eq!(audited, t.count("2xx") as i64, "one audit event per rotation");
        assert_eq!(not_one_current, 0, "every key has exactly one current value");
        assert_eq!(old["status"], "INVALID", "a rotated-out value stops at once");
        assert_eq!(
            listed["apiKeys"].as_array().map(Vec::len),
            Some(API_KEYS),
            "rotation neither adds nor removes keys"
        );
        db.close().await;
    });
    drop(server);
}
