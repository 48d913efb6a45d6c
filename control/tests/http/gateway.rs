//! The gateway's settings over HTTP, on SQLite and PostgreSQL: origin URLs must be https and
//! public unless the operator allows private ones, cookies cross only when the workspace opts
//! in, actions are saved in canonical form, and each workspace's own gateway signing secret
//! (read, rotated with an overlap, delivered sealed in the edge record).

use crate::common::{Client, TestServer};
use crate::keys_support::*;
use keygate_control::config::SettingsArgs;
use keygate_shared::gateway::{self, GatewaySecret, SealedGatewaySecret};
use serde_json::{json, Value};

const EDGE_SECRET: &str = "edge-secret-for-gateway-tests-0123456789";

fn pk_path(id: &str, rest: &str) -> String {
    format!("/api/v1/workspace/{id}/publishable-key{rest}")
}

/// `PATCH` the publishable key's origin URL.
async fn set_origin_url(owner: &Client, id: &str, url: &str) -> crate::common::Resp {
    owner
        .patch(&pk_path(id, ""), json!({ "originUrl": url }))
        .await
}

fn secret_path(id: &str, rest: &str) -> String {
    format!("/api/v1/workspace/{id}/gateway-secret{rest}")
}

async fn with_edge(database_url: Option<String>) -> TestServer {
    TestServer::start_with(
        database_url,
        SettingsArgs {
            edge_secret: Some(EDGE_SECRET.into()),
            ..SettingsArgs::default()
        },
    )
    .await
}

/// Like `on_both_databases!`, with an edge secret configured.
macro_rules! on_both_databases_with_edge {
    ($name:ident, $scenario:ident) => {
        on_both_databases!($name, $scenario, |url| super::with_edge(url).await);
    };
}

async fn private_origin_urls_are_refused_on_save(server: TestServer) {
    let (owner, id) = owner_with_workspace(&server, "Shop").await;
    for bad in [
        "http://api.example.com",
        "https://127.0.0.1:9000",
        "https://localhost",
        "https://10.1.2.3",
        "https://169.254.169.254/latest",
        "https://100.64.0.1",
        "https://2130706433",
        "https://0x7f.0.0.1",
        "https://0177.0.0.1",
        "https://db.internal",
    ] {
        let r = set_origin_url(&owner, &id, bad).await;
        assert_eq!(
            (r.status, r.reason()),
            (400, "ORIGIN_URL_NOT_PUBLIC"),
            "{bad}: {r:?}"
        );
    }
    // IPv6 literals (IPv4-mapped included) do not even parse as origin URLs.
    let r = set_origin_url(&owner, &id, "https://[::ffff:127.0.0.1]").await;
    assert_eq!(r.status, 400, "{r:?}");
    let r = set_origin_url(&owner, &id, "https://API.example.com/v1/").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.body["publishableKey"]["originUrl"],
        "https://api.example.com/v1"
    );
    let rows = outbox(&server, &id).await;
    assert_eq!(
        rows.last().unwrap().2["originUrl"],
        "https://api.example.com/v1"
    );
}
on_both_databases!(private_origins, private_origin_urls_are_refused_on_save);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_may_allow_private_origin_urls_for_development() {
    let server = TestServer::configured(|a| a.allow_private_origins = Some(true)).await;
    let (owner, id) = owner_with_workspace(&server, "Dev").await;
    for ok in ["http://127.0.0.1:9000", "http://localhost:3000/api"] {
        let r = set_origin_url(&owner, &id, ok).await;
        assert_eq!(r.status, 200, "{ok}: {r:?}");
    }
    let r = owner
        .patch(&pk_path(&id, ""), json!({ "originUrl": "ftp://x.example" }))
        .await;
    assert_eq!(r.reason(), "INVALID_ORIGIN_URL");
}

async fn cookies_are_forwarded_only_when_the_workspace_opts_in(server: TestServer) {
    let owner = server.sign_in("owner@example.com").await;
    let org = org_of(&owner).await;
    let id = workspace_id(&owner, "Shop").await;
    let view = owner.get(&pk_path(&id, "")).await;
    assert_eq!(view.body["publishableKey"]["forwardCookies"], false);
    let before = outbox(&server, &id).await;
    assert!(
        before.last().unwrap().2.get("forwardCookies").is_none(),
        "absent means false"
    );
    let r = owner
        .patch(&pk_path(&id, ""), json!({ "forwardCookies": true }))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["publishableKey"]["forwardCookies"], true);
    let rows = outbox(&server, &id).await;
    assert_eq!(rows.len(), before.len() + 1);
    assert_eq!(rows.last().unwrap().2["forwardCookies"], true);
    // Other settings leave it alone; a wrong type is a 400.
    let r = owner
        .patch(&pk_path(&id, ""), json!({ "allowedOrigins": [] }))
        .await;
    assert_eq!(r.body["publishableKey"]["forwardCookies"], true);
    let r = owner
        .patch(&pk_path(&id, ""), json!({ "forwardCookies": "yes" }))
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    let member = add_user(&server, &org, "member@example.com", "member").await;
    let r = member
        .patch(&pk_path(&id, ""), json!({ "forwardCookies": false }))
        .await;
    assert_eq!(r.status, 403, "{r:?}");
    let r = owner
        .patch(&pk_path(&id, ""), json!({ "forwardCookies": false }))
        .await;
    assert_eq!(r.body["publishableKey"]["forwardCookies"], false);
    assert!(outbox(&server, &id)
        .await
        .last()
        .unwrap()
        .2
        .get("forwardCookies")
        .is_none());
}
on_both_databases!(
    cookies,
    cookies_are_forwarded_only_when_the_workspace_opts_in
);

async fn actions_are_saved_in_canonical_form(server: TestServer) {
    let (owner, id) = owner_with_workspace(&server, "Shop").await;
    let r = owner
        .put(
            &format!("/api/v1/workspace/{id}/modules"),
            json!({"modules": [{"name": "Billing", "functionalities": ["Refund", "charge"]}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.body,
        json!({"modules": [{"name": "billing", "functionalities": ["refund", "charge"]}]})
    );
    // The same name in two spellings is one name.
    let r = owner
        .put(
            &format!("/api/v1/workspace/{id}/modules"),
            json!({"modules": [{"name": "billing", "functionalities": ["refund", "REFUND"]}]}),
        )
        .await;
    assert_eq!((r.status, r.reason()), (400, "DUPLICATE_NAME"), "{r:?}");
    for (module, functionality, reason) in [
        ("billing%2Frefund", "x", "INVALID_MODULE"),
        ("billing", "..", "INVALID_FUNCTIONALITY"),
        ("bill ing", "refund", "INVALID_MODULE"),
    ] {
        let r = owner
            .post(
                &pk_path(&id, "/blacklist"),
                json!({"module": module, "functionality": functionality}),
            )
            .await;
        assert_eq!(
            (r.status, r.reason()),
            (400, reason),
            "{module}/{functionality}"
        );
    }
    let r = owner
        .post(
            &pk_path(&id, "/blacklist"),
            json!({"module": "BILLING", "functionality": "Refund"}),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.body["rule"]["module"], "billing");
    assert_eq!(r.body["rule"]["functionality"], "refund");
    let r = owner
        .post(
            &pk_path(&id, "/blacklist"),
            json!({"module": "bill%69ng", "functionality": "refund"}),
        )
        .await;
    assert_eq!((r.status, r.reason()), (409, "DUPLICATE_RULE"), "{r:?}");
    let record = outbox(&server, &id).await.last().unwrap().2.clone();
    assert_eq!(
        record["blacklist"],
        json!([{"module": "billing", "functionality": "refund"}])
    );
}
on_both_databases!(canonical_actions, actions_are_saved_in_canonical_form);

fn secrets_of(body: &Value) -> Vec<(String, String, Option<String>)> {
    body["gatewaySecrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["kid"].as_str().unwrap().to_owned(),
                s["secret"].as_str().unwrap().to_owned(),
                s["retiresAt"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

fn edge_secrets(record: &Value) -> Vec<SealedGatewaySecret> {
    serde_json::from_value(record["gatewaySecrets"].clone()).unwrap_or_default()
}

async fn get_secret(client: &Client, id: &str) -> Value {
    let r = client.get(&secret_path(id, "")).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.headers.get("cache-control").and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    r.body
}

async fn each_workspace_has_its_own_rotatable_gateway_secret(server: TestServer) {
    let owner = server.sign_in("owner@example.com").await;
    let org = org_of(&owner).await;
    let id = workspace_id(&owner, "Shop").await;
    let other = workspace_id(&owner, "Other").await;
    // The publishable key no longer carries a signing secret.
    let view = owner.get(&pk_path(&id, "")).await;
    assert!(view.body["publishableKey"].get("signingSecret").is_none());

    let first = get_secret(&owner, &id).await;
    assert_eq!(first["signatureHeader"], "x-keygate-gateway-signature");
    let secrets = secrets_of(&first);
    assert_eq!(secrets.len(), 1);
    let (kid, secret, retires) = secrets[0].clone();
    assert_eq!(secret.len(), 64);
    assert_eq!(retires, None);
    assert_ne!(
        secret,
        gateway::workspace_signing_key(EDGE_SECRET.as_bytes(), &id),
        "not derived from the edge secret"
    );
    assert_eq!(
        secrets_of(&get_secret(&owner, &id).await),
        secrets,
        "stable"
    );
    assert_ne!(secrets_of(&get_secret(&owner, &other).await)[0].1, secret);

    // Stored sealed, never in plaintext; the edge record carries it sealed for the edge.
    let stored = count(
        &server,
        "SELECT COUNT(*) FROM gateway_secrets WHERE sealed LIKE '%' || $1 || '%' OR edge_sealed LIKE '%' || $1 || '%'",
        &secret,
    )
    .await;
    assert_eq!(stored, 0, "a gateway secret stored in plaintext");
    let record = outbox(&server, &id).await.last().unwrap().2.clone();
    assert!(!record.to_string().contains(&secret));
    let sealed = edge_secrets(&record);
    assert_eq!(sealed.len(), 1);
    let opened = gateway::open_at_edge(&[EDGE_SECRET.as_bytes()], &id, &sealed[0]).unwrap();
    assert_eq!(
        (opened.kid(), opened.expose()),
        (kid.as_str(), secret.as_str())
    );

    // Rotation: a new current secret, the old one retiring after the overlap.
    let r = owner
        .post(
            &secret_path(&id, "/rotate"),
            json!({"overlapSeconds": 3600}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.headers.get("cache-control").and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    let rotated = secrets_of(&r.body);
    assert_eq!(rotated.len(), 2, "{rotated:?}");
    assert_ne!(rotated[0].1, secret);
    assert_eq!(rotated[0].2, None, "newest first, current");
    assert_eq!((&rotated[1].0, &rotated[1].1), (&kid, &secret));
    assert!(rotated[1].2.is_some(), "the old one retires");
    let record = outbox(&server, &id).await.last().unwrap().2.clone();
    let sealed = edge_secrets(&record);
    assert_eq!(sealed.len(), 2);
    assert_eq!(sealed[0].not_after, None);
    let not_after = sealed[1].not_after.unwrap();
    let now = keygate_control::ids::now_ms() as u64 / 1000;
    assert!(
        (now + 3590..=now + 3601).contains(&not_after),
        "{not_after}"
    );
    // What the edge signs with during the overlap, both secrets verify.
    let signer = gateway::Signer::for_record(&[EDGE_SECRET.as_bytes()], &id, &sealed, now).unwrap();
    let req = gateway::ForwardedRequest {
        method: "GET",
        path_and_query: "/x",
        workspace_id: &id,
        module: "billing",
        functionality: "charge",
    };
    let header = signer.sign(now, &req);
    for (k, s, _) in &rotated {
        let origin = GatewaySecret::new(k, s).unwrap();
        assert!(gateway::verify_any(&[origin], &header, &req, now), "{k}");
    }

    // Rotating with no overlap retires every previous secret at once.
    let r = owner
        .post(&secret_path(&id, "/rotate"), json!({"overlapSeconds": 0}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let now_only = secrets_of(&r.body);
    assert_eq!(now_only.len(), 1, "{now_only:?}");
    assert_eq!(
        edge_secrets(&outbox(&server, &id).await.last().unwrap().2).len(),
        1
    );
    // At most 8 live secrets (what the edge signs with); then only an immediate rotation.
    for _ in 0..7 {
        let r = owner
            .post(&secret_path(&id, "/rotate"), json!({"overlapSeconds": 60}))
            .await;
        assert_eq!(r.status, 200, "{r:?}");
    }
    assert_eq!(secrets_of(&get_secret(&owner, &id).await).len(), 8);
    let r = owner
        .post(&secret_path(&id, "/rotate"), json!({"overlapSeconds": 60}))
        .await;
    r.assert_error(409, "TOO_MANY_GATEWAY_SECRETS");
    let r = owner
        .post(&secret_path(&id, "/rotate"), json!({"overlapSeconds": 0}))
        .await;
    assert_eq!(secrets_of(&r.body).len(), 1, "{r:?}");
    // A body is optional; bad ones are 400s.
    let r = owner.send("POST", &secret_path(&id, "/rotate"), None).await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = owner
        .post(
            &secret_path(&id, "/rotate"),
            json!({"overlapSeconds": 31 * 24 * 3600}),
        )
        .await;
    assert_eq!((r.status, r.reason()), (400, "INVALID_OVERLAP"));
    let r = owner
        .post(&secret_path(&id, "/rotate"), json!({"overlapSeconds": -1}))
        .await;
    assert_eq!(r.status, 400, "{r:?}");

    // Members may not read or rotate; another organisation sees nothing.
    let member = add_user(&server, &org, "member@example.com", "member").await;
    assert_eq!(member.get(&secret_path(&id, "")).await.status, 403);
    let rotate = secret_path(&id, "/rotate");
    assert_eq!(member.post(&rotate, json!({})).await.status, 403);
    let stranger = other_org_owner(&server, "stranger@example.com").await;
    assert_eq!(stranger.get(&secret_path(&id, "")).await.status, 404);
    let events = audit_of(&server, &org, "gateway_secret.rotate").await;
    assert_eq!(events.len(), 11, "{events:?}");
    assert!(!format!("{events:?}").contains(&secret));
    assert!(!crate::common::captured_logs().contains(&secret));
}
on_both_databases_with_edge!(
    gateway_secrets,
    each_workspace_has_its_own_rotatable_gateway_secret
);

async fn parallel_first_reads_make_one_secret(server: TestServer) {
    let (owner, id) = owner_with_workspace(&server, "Shop").await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (c, path) = (owner.clone(), secret_path(&id, ""));
        tasks.push(tokio::spawn(async move { c.get(&path).await }));
    }
    let mut seen = std::collections::BTreeSet::new();
    for t in tasks {
        let r = t.await.unwrap();
        if r.status == 200 {
            seen.insert(secrets_of(&r.body)[0].0.clone());
        } else {
            assert_eq!((r.status, r.reason()), (409, "CONCURRENT_CHANGE"), "{r:?}");
        }
    }
    assert!(seen.len() <= 1, "{seen:?}");
    let n = count(
        &server,
        "SELECT COUNT(*) FROM gateway_secrets WHERE workspace_id = $1",
        &id,
    )
    .await;
    assert_eq!(n, 1);
}
on_both_databases_with_edge!(parallel_first_reads, parallel_first_reads_make_one_secret);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_made_without_an_edge_secret_reach_the_edge_once_one_is_set() {
    let server = TestServer::start().await;
    let (owner, id) = owner_with_workspace(&server, "Shop").await;
    let secrets = secrets_of(&get_secret(&owner, &id).await);
    assert!(edge_secrets(&outbox(&server, &id).await.last().unwrap().2).is_empty());
    // The operator configures the edge: start-up seals the secret for it.
    let mut settings = (*server.state.settings).clone();
    settings.edge_secret = Some(EDGE_SECRET.into());
    let state = keygate_control::http::AppState {
        settings: std::sync::Arc::new(settings),
        ..server.state.clone()
    };
    assert_eq!(
        keygate_control::gateway_secrets::reseal_for_edge(&state)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        keygate_control::gateway_secrets::reseal_for_edge(&state)
            .await
            .unwrap(),
        0,
        "nothing to do the second time"
    );
    let sealed = edge_secrets(&outbox(&server, &id).await.last().unwrap().2);
    let opened = gateway::open_at_edge(&[EDGE_SECRET.as_bytes()], &id, &sealed[0]).unwrap();
    assert_eq!(opened.expose(), secrets[0].1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_needs_a_workspace_of_ones_own_organisation() {
    let server = with_edge(None).await;
    let owner = server.sign_in("owner@example.com").await;
    let r = owner.post(&secret_path("nope", "/rotate"), json!({})).await;
    assert_eq!(r.status, 404, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_secrets_are_delivered_with_an_edge_configured() {
    let server = with_edge(None).await;
    let (owner, id) = owner_with_workspace(&server, "Shop").await;
    let secret = secrets_of(&get_secret(&owner, &id).await)[0].clone();
    let sealed = edge_secrets(&outbox(&server, &id).await.last().unwrap().2);
    assert_eq!(sealed[0].kid, secret.0);
}

/// The edge secret after the operator rotated it.
const NEW_EDGE_SECRET: &str = "edge-secret-after-rotation-9876543210abcdef";

/// `server`'s state with `edge_secret` configured instead, as after a restart.
fn with_edge_secret(server: &TestServer, edge_secret: &str) -> keygate_control::http::AppState {
    let mut settings = (*server.state.settings).clone();
    settings.edge_secret = Some(edge_secret.into());
    keygate_control::http::AppState {
        settings: std::sync::Arc::new(settings),
        ..server.state.clone()
    }
}

async fn a_new_workspace_owns_a_gateway_secret_from_creation(server: TestServer) {
    let (owner, id) = owner_with_workspace(&server, "Shop").await;
    // Before anyone reads it, the new key's one edge record carries the workspace's own
    // secret, sealed for the edge.
    let records = outbox(&server, &id).await;
    assert_eq!(records.len(), 1, "{records:?}");
    let sealed = edge_secrets(&records[0].2);
    assert_eq!(sealed.len(), 1);
    let opened = gateway::open_at_edge(&[EDGE_SECRET.as_bytes()], &id, &sealed[0]).unwrap();
    let shown = secrets_of(&get_secret(&owner, &id).await);
    assert_eq!(shown.len(), 1);
    assert_eq!(
        (opened.kid(), opened.expose()),
        (shown[0].0.as_str(), shown[0].1.as_str())
    );
    assert_ne!(
        shown[0].1,
        gateway::workspace_signing_key(EDGE_SECRET.as_bytes(), &id)
    );
}
on_both_databases_with_edge!(
    secret_from_creation,
    a_new_workspace_owns_a_gateway_secret_from_creation
);

async fn rotating_the_edge_secret_keeps_each_workspace_s_signing_key(server: TestServer) {
    let (owner, id) = owner_with_workspace(&server, "Shop").await;
    let before = secrets_of(&get_secret(&owner, &id).await);
    let state = with_edge_secret(&server, NEW_EDGE_SECRET);
    assert_eq!(
        keygate_control::gateway_secrets::reseal_for_edge(&state)
            .await
            .unwrap(),
        1
    );
    // The edge, now on the new edge secret, signs with the same key the origin holds.
    let sealed = edge_secrets(&outbox(&server, &id).await.last().unwrap().2);
    assert_eq!(sealed.len(), 1);
    let opened = gateway::open_at_edge(&[NEW_EDGE_SECRET.as_bytes()], &id, &sealed[0]).unwrap();
    assert_eq!(
        (opened.kid(), opened.expose()),
        (before[0].0.as_str(), before[0].1.as_str())
    );
    assert_eq!(secrets_of(&get_secret(&owner, &id).await), before);
}
on_both_databases_with_edge!(
    edge_secret_rotation,
    rotating_the_edge_secret_keeps_each_workspace_s_signing_key
);

async fn workspaces_made_before_secrets_at_creation_get_one_at_start_up(server: TestServer) {
    let owner = server.sign_in("owner@example.com").await;
    let org = org_of(&owner).await;
    let id = workspace_id(&owner, "Shop").await;
    // A workspace from before: no gateway secret.
    keygate_control::with_db!(&server.state.db, |pool| {
        sqlx::query("DELETE FROM gateway_secrets WHERE workspace_id = $1")
            .bind(&id)
            .execute(pool)
            .await
            .unwrap();
    });
    let state = with_edge_secret(&server, EDGE_SECRET);
    keygate_control::gateway_secrets::reseal_for_edge(&state)
        .await
        .unwrap();
    let count_secrets = "SELECT COUNT(*) FROM gateway_secrets WHERE workspace_id = $1";
    assert_eq!(count(&server, count_secrets, &id).await, 1);
    let shown = secrets_of(&get_secret(&owner, &id).await);
    let sealed = edge_secrets(&outbox(&server, &id).await.last().unwrap().2);
    let opened = gateway::open_at_edge(&[EDGE_SECRET.as_bytes()], &id, &sealed[0]).unwrap();
    assert_eq!(opened.expose(), shown[0].1);
    // Once: the next start-up changes nothing.
    keygate_control::gateway_secrets::reseal_for_edge(&state)
        .await
        .unwrap();
    assert_eq!(count(&server, count_secrets, &id).await, 1);
    let made = audit_of(&server, &org, "gateway_secret.create").await;
    assert_eq!(made.len(), 1, "{made:?}");
}
on_both_databases_with_edge!(
    backfill_at_start_up,
    workspaces_made_before_secrets_at_creation_get_one_at_start_up
);
