//! The customer self-serve portal over HTTP against the real server, on SQLite and
//! PostgreSQL: a customer holding a link token lists, creates, rotates and revokes only their
//! own keys in the token's workspace; another customer's, workspace's or organisation's keys
//! are 404; the workspace's portal policy bounds what is created; expired, tampered and
//! missing tokens get stable 401 reasons; the audit log names the customer; the page's
//! `frame-ancestors` follows the workspace's allowed origins; the sweep removes expired
//! tokens.

use super::link_tokens_and_billing::Tenant;
use crate::common::{Client, Resp, TestServer};
use keygate_control::ids::now_ms;
use keygate_shared::link_token;
use serde_json::{json, Value};

const DAY_MS: i64 = 86_400_000;

/// A signed-in owner, an all-scopes SDK key, and two workspaces, the first defining the
/// scopes `orders` and `billing`.
async fn tenant(server: &TestServer, email: &str) -> Tenant {
    let t = super::link_tokens_and_billing::tenant(server, email).await;
    for rep in ["orders", "billing"] {
        let r = t
            .sdk
            .post(
                &format!("/api/v1/workspace/{}/scope", t.ws),
                json!({ "name": rep, "representation": rep, "description": "d" }),
            )
            .await;
        assert_eq!(r.status, 200, "{r:?}");
    }
    t
}

/// A portal client for `customer` in `ws`, and its token.
async fn portal(server: &TestServer, sdk: &Client, ws: &str, customer: &str) -> (Client, String) {
    let r = sdk
        .post(
            "/api/v1/link-token",
            json!({ "customerId": customer, "workspaceId": ws }),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let token = r.body["token"].as_str().unwrap().to_owned();
    (server.anonymous().with_bearer(&token), token)
}

fn orders_read() -> Value {
    json!([{ "representation": "orders", "read": true }])
}

async fn create(portal: &Client, body: Value) -> Resp {
    portal.post("/api/v1/portal/api-key", body).await
}

async fn verify(sdk: &Client, key: &str) -> String {
    let r = sdk
        .post("/api/v1/api-key/verify", json!({ "key": key }))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    r.body["status"].as_str().unwrap().to_owned()
}

async fn set_token_expiry(server: &TestServer, token: &str, expires_at: i64) {
    keygate_control::with_db!(&server.state.db, |pool| {
        sqlx::query("UPDATE link_tokens SET expires_at = $1 WHERE digest = $2")
            .bind(expires_at)
            .bind(link_token::digest(token))
            .execute(pool)
            .await
            .unwrap();
    });
}

/// The policy: set by owners, validated, 404 for another organisation.
async fn policy_is_set_by_the_workspace(a: &Tenant, b: &Tenant) {
    let path = format!("/api/v1/workspace/{}/portal-policy", a.ws);
    let r = a.owner.get(&path).await;
    assert_eq!(
        (r.status, &r.body["customised"]),
        (200, &json!(false)),
        "{r:?}"
    );
    assert_eq!(r.body["policy"]["maxLiveKeys"], 5);
    for (body, reason) in [
        (
            json!({ "allowedScopes": [{ "representation": "nope", "read": true }], "maxExpiryMs": 1, "maxUsage": null, "maxLiveKeys": 1 }),
            "UNKNOWN_SCOPE",
        ),
        (
            json!({ "allowedScopes": [], "maxExpiryMs": 0, "maxUsage": null, "maxLiveKeys": 1 }),
            "INVALID_MAX_EXPIRY",
        ),
        (
            json!({ "allowedScopes": [], "maxExpiryMs": null, "maxUsage": -1, "maxLiveKeys": 1 }),
            "INVALID_MAX_USAGE",
        ),
        (
            json!({ "allowedScopes": [], "maxExpiryMs": null, "maxUsage": null, "maxLiveKeys": 101 }),
            "INVALID_MAX_LIVE_KEYS",
        ),
        (json!({ "allowedScopes": [] }), "INVALID_BODY"),
    ] {
        let r = a.owner.put(&path, body).await;
        assert_eq!((r.status, r.reason()), (400, reason), "{r:?}");
    }
    let policy = json!({ "allowedScopes": orders_read(), "maxExpiryMs": 30 * DAY_MS,
                         "maxUsage": 1000, "maxLiveKeys": 2 });
    let r = b.owner.put(&path, policy.clone()).await;
    assert_eq!(r.status, 404, "{r:?}");
    let r = a.owner.put(&path, policy).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["customised"], true);
    let r = a.owner.get(&path).await;
    assert_eq!(r.body["policy"]["maxUsage"], 1000, "{r:?}");
}

async fn the_portal(server: TestServer) {
    let a = tenant(&server, "owner@a.example").await;
    let b = tenant(&server, "owner@b.example").await;
    policy_is_set_by_the_workspace(&a, &b).await;
    let (alice, alice_token) = portal(&server, &a.sdk, &a.ws, "alice").await;
    let (bob, _) = portal(&server, &a.sdk, &a.ws, "bob").await;

    // Who the token speaks for.
    let r = alice.get("/api/v1/portal/session").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["customerId"], "alice");
    assert_eq!(r.body["workspaceId"], json!(a.ws));
    assert_eq!(r.body["workspaceName"], "Shop");
    assert_eq!(r.body["policy"]["maxLiveKeys"], 2);

    // Create: bounded by the policy; absent expiry and usage become the policy's bounds.
    let now = now_ms();
    let r = create(&alice, json!({ "name": "Prod", "scopes": orders_read() })).await;
    assert_eq!(r.status, 200, "{r:?}");
    let first = r.body["apiKey"].clone();
    let first_value = first["key"].as_str().unwrap().to_owned();
    assert_eq!(first["customerId"], "alice");
    assert_eq!(first["totalUsageLeft"], 1000);
    let expires = first["expiresAt"].as_i64().unwrap();
    assert!((now + 30 * DAY_MS - 60_000..=now + 30 * DAY_MS + 60_000).contains(&expires));
    assert_eq!(verify(&a.sdk, &first_value).await, "VALID");
    for (body, status, reason) in [
        (
            json!({ "name": "x", "scopes": [{ "representation": "billing", "read": true }] }),
            400,
            "SCOPE_NOT_ALLOWED",
        ),
        (
            json!({ "name": "x", "scopes": [{ "representation": "orders", "read": true, "del": true }] }),
            400,
            "SCOPE_NOT_ALLOWED",
        ),
        (
            json!({ "name": "x", "expiresAt": now + 31 * DAY_MS }),
            400,
            "EXPIRY_NOT_ALLOWED",
        ),
        (
            json!({ "name": "x", "expiresAt": now - 1 }),
            400,
            "EXPIRY_NOT_ALLOWED",
        ),
        (
            json!({ "name": "x", "totalUsageAllowed": 1001 }),
            400,
            "USAGE_NOT_ALLOWED",
        ),
        (json!({ "name": "" }), 400, "INVALID_NAME"),
        (
            json!({ "name": "x", "customerId": "bob" }),
            400,
            "INVALID_BODY",
        ),
    ] {
        let r = create(&alice, body).await;
        assert_eq!((r.status, r.reason()), (status, reason), "{r:?}");
    }
    let r = create(
        &alice,
        json!({ "name": "Staging", "totalUsageAllowed": 10 }),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let second_id = r.body["apiKey"]["id"].as_str().unwrap().to_owned();
    let r = create(&alice, json!({ "name": "Third" })).await;
    assert_eq!((r.status, r.reason()), (409, "TOO_MANY_KEYS"), "{r:?}");

    // List: only alice's, masked, never a value.
    let r = alice.get("/api/v1/portal/api-key").await;
    let keys = r.body["apiKeys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "{r:?}");
    assert!(keys
        .iter()
        .all(|k| k.get("key").is_none() && k["customerId"] == "alice"));
    assert!(!r.text.contains(&first_value));
    let r = bob.get("/api/v1/portal/api-key").await;
    assert_eq!(r.body["apiKeys"], json!([]), "{r:?}");

    // Another customer's key, a key of nobody, another workspace's or organisation's token:
    // 404, as if it did not exist.
    let first_id = first["id"].as_str().unwrap().to_owned();
    let r = a
        .sdk
        .post(
            "/api/v1/api-key",
            json!({ "name": "no customer", "workspaceId": a.ws }),
        )
        .await;
    let nobodys = r.body["apiKey"]["id"].as_str().unwrap().to_owned();
    let (other_ws_alice, _) = portal(&server, &a.sdk, &a.other_ws, "alice").await;
    let (b_alice, _) = portal(&server, &b.sdk, &b.ws, "alice").await;
    for (who, id) in [
        (&bob, &first_id),
        (&alice, &nobodys),
        (&other_ws_alice, &first_id),
        (&b_alice, &first_id),
        (&alice, &"not-an-id".to_owned()),
    ] {
        let r = who
            .post(&format!("/api/v1/portal/api-key/{id}/rotate"), json!({}))
            .await;
        assert_eq!((r.status, r.reason()), (404, "NOT_FOUND"), "{r:?}");
        let r = who.delete(&format!("/api/v1/portal/api-key/{id}")).await;
        assert_eq!((r.status, r.reason()), (404, "NOT_FOUND"), "{r:?}");
    }
    for who in [&other_ws_alice, &b_alice] {
        let r = who.get("/api/v1/portal/api-key").await;
        assert_eq!(r.body["apiKeys"], json!([]), "{r:?}");
    }
    assert_eq!(verify(&a.sdk, &first_value).await, "VALID");

    // Rotate with a grace period: both values verify; too long a grace is refused.
    let rotate = format!("/api/v1/portal/api-key/{first_id}/rotate");
    let r = alice
        .post(&rotate, json!({ "gracePeriodMs": 8 * DAY_MS }))
        .await;
    assert_eq!(
        (r.status, r.reason()),
        (400, "GRACE_PERIOD_NOT_ALLOWED"),
        "{r:?}"
    );
    let r = alice
        .post(&rotate, json!({ "gracePeriodMs": 60_000 }))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let new_value = r.body["apiKey"]["key"].as_str().unwrap().to_owned();
    assert_ne!(new_value, first_value);
    assert_eq!(verify(&a.sdk, &new_value).await, "VALID");
    assert_eq!(verify(&a.sdk, &first_value).await, "VALID");

    // Revoke: the key is deleted, verifies DELETED, leaves the list, frees a slot.
    let r = alice
        .delete(&format!("/api/v1/portal/api-key/{first_id}"))
        .await;
    assert_eq!(
        (r.status, &r.body["apiKey"]["deleted"]),
        (200, &json!(true)),
        "{r:?}"
    );
    assert_eq!(verify(&a.sdk, &new_value).await, "DELETED");
    let r = alice.get("/api/v1/portal/api-key").await;
    assert_eq!(r.body["apiKeys"].as_array().unwrap().len(), 1, "{r:?}");
    assert_eq!(r.body["apiKeys"][0]["id"], json!(second_id));
    let r = alice.post(&rotate, json!({})).await;
    assert_eq!((r.status, r.reason()), (409, "KEY_DELETED"), "{r:?}");

    // The audit log names the customer, never the token or a key value.
    let r = a.owner.get("/api/v1/audit-events").await;
    let events = r.body["events"].as_array().unwrap();
    for action in ["api_key.create", "api_key.rotate", "api_key.delete"] {
        assert!(
            events
                .iter()
                .any(|e| e["action"] == action && e["actor"] == "customer:alice"),
            "{action} by customer:alice missing: {}",
            r.text
        );
    }
    assert!(!r.text.contains(&alice_token) && !r.text.contains(&new_value));

    tokens_are_refused_with_stable_reasons(&server, &alice, &alice_token).await;
    the_page_may_be_framed_only_by_allowed_origins(&server, &a, &alice_token).await;
    expired_tokens_are_swept(&server, &a).await;
}
on_both_databases!(customer_portal, the_portal);

async fn tokens_are_refused_with_stable_reasons(server: &TestServer, alice: &Client, token: &str) {
    // A token's changes are bounded.
    keygate_control::with_db!(&server.state.db, |pool| {
        sqlx::query("UPDATE link_tokens SET portal_writes = $1 WHERE digest = $2")
            .bind(keygate_shared::portal::MAX_WRITES_PER_TOKEN)
            .bind(link_token::digest(token))
            .execute(pool)
            .await
            .unwrap();
    });
    let r = create(alice, json!({ "name": "x" })).await;
    assert_eq!((r.status, r.reason()), (429, "TOO_MANY_CHANGES"), "{r:?}");

    let anon = server.anonymous();
    let r = anon.get("/api/v1/portal/api-key").await;
    assert_eq!(
        (r.status, r.reason()),
        (401, "MISSING_CREDENTIALS"),
        "{r:?}"
    );
    let mut tampered = token.as_bytes().to_vec();
    tampered[10] = if tampered[10] == b'a' { b'b' } else { b'a' };
    let unknown = link_token::LinkToken::generate().expose().to_owned();
    for t in [
        String::from_utf8(tampered).unwrap(),
        unknown,
        "sk_nope".into(),
    ] {
        let r = anon.with_bearer(&t).get("/api/v1/portal/api-key").await;
        assert_eq!((r.status, r.reason()), (401, "INVALID_LINK_TOKEN"), "{r:?}");
    }
    set_token_expiry(server, token, now_ms() - 1).await;
    for r in [
        alice.get("/api/v1/portal/api-key").await,
        alice.get("/api/v1/portal/session").await,
        create(alice, json!({ "name": "x" })).await,
    ] {
        assert_eq!((r.status, r.reason()), (401, "LINK_TOKEN_EXPIRED"), "{r:?}");
    }
}

fn header<'a>(r: &'a Resp, name: &str) -> &'a str {
    r.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

async fn the_page_may_be_framed_only_by_allowed_origins(
    server: &TestServer,
    a: &Tenant,
    token: &str,
) {
    let anon = server.anonymous();
    let r = anon.get("/portal").await;
    assert_eq!(r.status, 200);
    assert!(r.text.contains("portal.js"), "{}", r.text);
    assert!(header(&r, "content-security-policy").contains("frame-ancestors 'none'"));
    assert_eq!(header(&r, "x-frame-options"), "DENY");
    assert_eq!(header(&r, "referrer-policy"), "no-referrer");

    keygate_control::with_db!(&server.state.db, |pool| {
        sqlx::query("UPDATE workspaces SET allowed_origins = $1 WHERE id = $2")
            .bind(r#"["https://App.example.com","https://*.example.org"]"#)
            .bind(&a.ws)
            .execute(pool)
            .await
            .unwrap();
    });
    let by_workspace = anon.get(&format!("/portal?workspace={}", a.ws)).await;
    let by_token = anon.get(&format!("/portal?token={token}")).await;
    for r in [by_workspace, by_token] {
        let csp = header(&r, "content-security-policy");
        assert!(
            csp.contains("frame-ancestors https://app.example.com https://*.example.org"),
            "{csp}"
        );
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe"),
            "{csp}"
        );
        assert_eq!(header(&r, "x-frame-options"), "");
        assert_eq!(header(&r, "referrer-policy"), "no-referrer");
    }
    // A workspace without origins, an unknown one, and the dashboard: never framed.
    for path in [
        format!("/portal?workspace={}", a.other_ws),
        "/portal?workspace=01900000-0000-7000-8000-000000000000".to_owned(),
        "/portal?workspace=%3Bscript-src%20*".to_owned(),
        "/".to_owned(),
    ] {
        let r = anon.get(&path).await;
        assert!(
            header(&r, "content-security-policy").contains("frame-ancestors 'none'"),
            "{path}"
        );
        assert_eq!(header(&r, "x-frame-options"), "DENY", "{path}");
    }
}

async fn expired_tokens_are_swept(server: &TestServer, a: &Tenant) {
    let (_, long_gone) = portal(server, &a.sdk, &a.ws, "carol").await;
    let (recent, just_expired) = portal(server, &a.sdk, &a.ws, "dave").await;
    let (live, _) = portal(server, &a.sdk, &a.ws, "erin").await;
    let now = now_ms();
    set_token_expiry(server, &long_gone, now - 2 * DAY_MS).await;
    set_token_expiry(server, &just_expired, now - 60_000).await;
    let swept = keygate_control::store::portal::sweep_expired_tokens(&server.state.db, now)
        .await
        .unwrap();
    assert!(swept >= 1, "{swept}");
    let r = a.sdk.get(&format!("/api/v1/link-token/{long_gone}")).await;
    assert_eq!((r.status, r.reason()), (400, "INVALID_LINK_TOKEN"), "{r:?}");
    // Expired a minute ago: kept for a day, so the portal still says "expired".
    let r = recent.get("/api/v1/portal/session").await;
    assert_eq!(r.reason(), "LINK_TOKEN_EXPIRED", "{r:?}");
    assert_eq!(live.get("/api/v1/portal/session").await.status, 200);
}

/// Concurrent creates of one customer never hold more keys than the policy allows: the count
/// is taken in the creating transaction with the workspace row held.
async fn concurrent_creates_respect_the_key_limit(server: TestServer) {
    let a = tenant(&server, "owner@a.example").await;
    let policy =
        json!({ "allowedScopes": [], "maxExpiryMs": null, "maxUsage": null, "maxLiveKeys": 3 });
    let r = a
        .owner
        .put(&format!("/api/v1/workspace/{}/portal-policy", a.ws), policy)
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let (alice, _) = portal(&server, &a.sdk, &a.ws, "alice").await;
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let alice = alice.clone();
            tokio::spawn(async move { create(&alice, json!({ "name": format!("k{i}") })).await })
        })
        .collect();
    let mut created = 0;
    for t in tasks {
        let r = t.await.unwrap();
        match r.status {
            200 => created += 1,
            409 => assert_eq!(r.reason(), "TOO_MANY_KEYS", "{r:?}"),
            _ => panic!("unexpected answer: {r:?}"),
        }
    }
    assert_eq!(created, 3);
    let r = alice.get("/api/v1/portal/api-key").await;
    assert_eq!(r.body["apiKeys"].as_array().unwrap().len(), 3, "{r:?}");
}
on_both_databases!(
    portal_key_limit_races,
    concurrent_creates_respect_the_key_limit
);

/// The platform moves a key to another customer while that customer's portal revokes it:
/// ownership is decided again on the row the deleting transaction holds, so the two can never
/// both succeed (a revoke checked before its transaction would delete bob's key).
async fn a_key_moved_away_mid_revoke_is_not_revoked(server: TestServer) {
    let a = tenant(&server, "owner@a.example").await;
    let (alice, _) = portal(&server, &a.sdk, &a.ws, "alice").await;
    let (mut revoked, mut moved) = (0, 0);
    for i in 0..25 {
        let r = create(&alice, json!({ "name": format!("k{i}") })).await;
        assert_eq!(r.status, 200, "{r:?}");
        let id = r.body["apiKey"]["id"].as_str().unwrap().to_owned();
        let patch = format!("/api/v1/workspace/{}/api-key/{id}", a.ws);
        let revoke = format!("/api/v1/portal/api-key/{id}");
        let (sdk, portal) = (a.sdk.clone(), alice.clone());
        let (p, d) = tokio::join!(
            tokio::spawn(async move { sdk.patch(&patch, json!({ "customerId": "bob" })).await }),
            tokio::spawn(async move { portal.delete(&revoke).await }),
        );
        let (p, d) = (p.unwrap(), d.unwrap());
        match (p.status, d.status) {
            // Revoked while still alice's; the move then finds a deleted key.
            (409, 200) => {
                assert_eq!(p.reason(), "KEY_DELETED", "{p:?}");
                revoked += 1;
            }
            // Moved first; alice's revoke finds no key of hers.
            (200, 404) => moved += 1,
            other => panic!("move {other:?} must not both succeed: {p:?} {d:?}"),
        }
    }
    assert_eq!(revoked + moved, 25);
}
on_both_databases!(
    portal_revoke_races_a_move,
    a_key_moved_away_mid_revoke_is_not_revoked
);
