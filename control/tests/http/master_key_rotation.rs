//! Master key rotation with the real `keygate` binary on both databases: values sealed under
//! the old key, an interrupted `rotate-master-key` run, the server answering meanwhile with
//! both keys (reveals, sign-in codes and CSRF tokens made under the old key), a resumed run,
//! then the old key retired: every SDK key and gateway secret still reveals, nothing is
//! sealed under the old key, no secret reached the output.

use crate::common::{captured_logs, TestServer};
use crate::keys_support::*;
use keygate_control::config::SettingsArgs;
use keygate_control::crypto::{sealed_key_id, Keys};
use keygate_control::with_db;
use serde_json::{json, Value};

const OLD: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const NEW: &str = "2222222222222222222222222222222222222222222222222222222222222222";

fn master(hex_key: &str) -> [u8; 32] {
    let mut k = [0u8; 32];
    hex::decode_to_slice(hex_key, &mut k).unwrap();
    k
}

/// Runs the real binary against `db_url` with the given keys; returns (success, stdout, stderr).
fn keygate(
    db_url: &str,
    data_dir: &std::path::Path,
    keys: (&str, Option<&str>),
    args: &[&str],
) -> (bool, String, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_keygate"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("KEYGATE_DATABASE_URL", db_url)
        .env("KEYGATE_DATA_DIR", data_dir)
        .env("KEYGATE_MASTER_KEY", keys.0)
        .env("KEYGATE_LOG", "info");
    if let Some(previous) = keys.1 {
        cmd.env("KEYGATE_MASTER_KEY_PREVIOUS", previous);
    }
    let out = cmd.output().expect("run keygate");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn server(db_url: &str, keys: (&str, Option<&str>)) -> TestServer {
    TestServer::start_with(
        Some(db_url.to_owned()),
        SettingsArgs {
            master_key: Some(keys.0.into()),
            master_key_previous: keys.1.map(str::to_owned),
            ..SettingsArgs::default()
        },
    )
    .await
}

async fn sealed_ids(server: &TestServer) -> Vec<Option<String>> {
    let rows: Vec<(String,)> = with_db!(&server.state.db, |pool| {
        sqlx::query_as(
            "SELECT key_sealed FROM sdk_keys UNION ALL SELECT sealed FROM gateway_secrets",
        )
        .fetch_all(pool)
        .await
        .unwrap()
    });
    rows.iter()
        .map(|(s,)| sealed_key_id(s).map(str::to_owned))
        .collect()
}

async fn reveal_key(server: &TestServer, owner: &crate::common::Client, id: &str) -> String {
    let r = reveal(server, owner, &format!("/api/v1/sdk-keys/{id}")).await;
    r.body["key"].as_str().unwrap().to_owned()
}

async fn scenario(db_url: String) {
    let work = tempfile::tempdir().unwrap();
    // `keygate <args>` mid-rotation: the new master key, the old one as previous.
    let rotating = |args: &[&str]| keygate(&db_url, work.path(), (NEW, Some(OLD)), args);
    let old_kid = Keys::from_master(&master(OLD)).key_id().to_owned();
    let new_kid = Keys::from_master(&master(NEW)).key_id().to_owned();

    // Before: everything sealed under the old key.
    let before = server(&db_url, (OLD, None)).await;
    let owner = before.sign_in("owner@example.com").await;
    let ws = workspace_id(&owner, "Shop").await;
    let mut keys = Vec::new();
    for i in 0..4 {
        let r = owner
            .post(
                "/api/v1/sdk-keys",
                json!({"name": format!("k{i}"), "scopes": {"api_keys": ["read"]}}),
            )
            .await;
        assert_eq!(r.status, 201, "{r:?}");
        keys.push((
            r.body["sdkKey"]["id"].as_str().unwrap().to_owned(),
            r.body["key"].as_str().unwrap().to_owned(),
        ));
    }
    for _ in 0..2 {
        let r = owner
            .post(
                &format!("/api/v1/workspace/{ws}/gateway-secret/rotate"),
                json!({"overlapSeconds": 3600}),
            )
            .await;
        assert_eq!(r.status, 200, "{r:?}");
    }
    let gateway_before: Value = owner
        .get(&format!("/api/v1/workspace/{ws}/gateway-secret"))
        .await
        .body;
    assert!(
        gateway_before["gatewaySecrets"]
            .as_array()
            .is_some_and(|a| a.len() >= 2),
        "{gateway_before}"
    );
    let total = sealed_ids(&before).await.len();
    assert!(total >= 6, "4 SDK keys, 2 gateway secrets: {total}");
    assert!(sealed_ids(&before)
        .await
        .iter()
        .all(|k| k.as_deref() == Some(old_kid.as_str())));
    // A sign-in code requested under the old key, answered after the switch.
    let pending = owner
        .post(&format!("/api/v1/sdk-keys/{}/reveal", keys[0].0), json!({}))
        .await;
    assert_eq!(pending.status, 200, "{pending:?}");
    let pending_code = before.outbox_code("owner@example.com").await;
    drop(before);

    // An interrupted run: two rows per batch, one batch.
    let (ok, out, err) = rotating(&[
        "rotate-master-key",
        "--batch-size",
        "2",
        "--max-batches",
        "1",
        "--json",
    ]);
    assert!(ok, "{out}\n{err}");
    let report: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(report["resealed"], 2, "{report}");
    assert_eq!(report["stoppedEarly"], true);
    assert_eq!(report["remaining"], total as u64 - 2);
    let (ok, status, err) = rotating(&["keys", "status", "--json"]);
    assert!(ok, "{err}");
    let status: Value = serde_json::from_str(status.trim()).unwrap();
    assert_eq!(status["masterKeyId"], new_kid.as_str());
    assert_eq!(status["masterKeyPreviousId"], old_kid.as_str());
    let under = |kid: &str| -> u64 {
        status["sealed"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["keyId"] == kid)
            .map(|c| c["count"].as_u64().unwrap())
            .sum()
    };
    assert_eq!((under(&new_kid), under(&old_kid)), (2, total as u64 - 2));

    // Mid-rotation the server opens both: the session, its CSRF token and the pending code
    // made under the old key still work; every key reveals.
    let during = server(&db_url, (NEW, Some(OLD))).await;
    let owner = owner.rebased(&during.base);
    let r = owner
        .post(
            &format!("/api/v1/sdk-keys/{}/reveal/verify", keys[0].0),
            json!({"challengeId": pending.body["challengeId"], "code": pending_code}),
        )
        .await;
    assert_eq!(
        r.status, 200,
        "a code hashed under the old key verifies: {r:?}"
    );
    assert_eq!(r.body["key"], keys[0].1.as_str());
    for (id, key) in &keys[1..] {
        assert_eq!(&reveal_key(&during, &owner, id).await, key);
    }
    drop(during);

    // The resumed run finishes; a rerun has nothing left to do.
    let (ok, out, err) = rotating(&["rotate-master-key", "--batch-size", "2"]);
    assert!(ok, "{out}\n{err}");
    assert!(
        out.contains(&format!("re-sealed {} value(s)", total - 2)),
        "{out}"
    );
    assert!(out.contains("0 remaining"), "{out}");
    let (ok, out, _) = rotating(&["rotate-master-key"]);
    assert!(ok && out.contains("re-sealed 0 value(s)"), "{out}");
    for (_, key) in &keys {
        assert!(
            !out.contains(&key[8..]) && !err.contains(&key[8..]),
            "a key in the output"
        );
    }

    // The old key retired: everything opens with the new key alone.
    let after = server(&db_url, (NEW, None)).await;
    assert!(sealed_ids(&after)
        .await
        .iter()
        .all(|k| k.as_deref() == Some(new_kid.as_str())));
    let owner = after.sign_in("owner@example.com").await;
    assert_eq!(&reveal_key(&after, &owner, &keys[3].0).await, &keys[3].1);
    let gateway_after: Value = owner
        .get(&format!("/api/v1/workspace/{ws}/gateway-secret"))
        .await
        .body;
    assert_eq!(
        gateway_after, gateway_before,
        "gateway secrets unchanged by the rotation"
    );
    let retired = Keys::from_master(&master(NEW));
    let rows: Vec<(String, String)> = with_db!(&after.state.db, |pool| {
        sqlx::query_as("SELECT id, key_sealed FROM sdk_keys")
            .fetch_all(pool)
            .await
            .unwrap()
    });
    for (id, sealed) in &rows {
        assert!(
            retired.open(sealed, id).is_some(),
            "{id} opens with the new key alone"
        );
    }
    // A rotation whose previous key is missing leaves what it cannot open and says so.
    let (ok, _, err) = keygate(
        &db_url,
        work.path(),
        (
            "3333333333333333333333333333333333333333333333333333333333333333",
            None,
        ),
        &["rotate-master-key"],
    );
    assert!(!ok && err.contains("open under neither"), "{err}");
    assert!(sealed_ids(&after)
        .await
        .iter()
        .all(|k| k.as_deref() == Some(new_kid.as_str())));
    for (_, key) in &keys {
        assert!(
            !captured_logs().contains(&key[8..]),
            "an SDK key reached the logs"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_and_resumed_rotation_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    scenario(format!("sqlite://{}/keygate.db", dir.path().display())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_and_resumed_rotation_postgres() {
    if let Some(url) = TestServer::new_postgres_database().await {
        scenario(url).await;
    }
}
