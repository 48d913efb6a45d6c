//! Oneloop's link tokens and billing usage over HTTP against the real server: create,
//! validate, expired, tampered, another tenant's token, workspace-bound SDK keys and scope
//! errors; billing usage exact under concurrent verifies, VALID answers only, per UTC day,
//! tenant isolation and bad `billing` values.

use crate::common::{Client, TestServer, ALL_SCOPES};
use keygate_shared::link_token::{day_number, day_string, LinkToken};
use serde_json::{json, Value};

async fn workspace(owner: &Client, name: &str) -> String {
    let r = owner
        .post("/api/v1/workspace", json!({ "name": name }))
        .await;
    assert!(r.status == 201 || r.status == 200, "{r:?}");
    r.body["workspace"]["id"].as_str().unwrap().to_owned()
}

/// A signed-in owner of a new organisation, two workspaces, and an all-scopes SDK key.
pub(crate) struct Tenant {
    pub owner: Client,
    pub sdk: Client,
    pub ws: String,
    pub other_ws: String,
}

pub(crate) async fn tenant(server: &TestServer, email: &str) -> Tenant {
    // The first sign-in founds the instance's organisation; later ones need one.
    let owner = if email == "owner@a.example" {
        server.sign_in(email).await
    } else {
        server.sign_in_to_new_organisation(email, email).await
    };
    let ws = workspace(&owner, "Shop").await;
    let other_ws = workspace(&owner, "Other").await;
    let sdk = owner.sdk_client(ALL_SCOPES, None).await;
    Tenant {
        owner,
        sdk,
        ws,
        other_ws,
    }
}

async fn link_token(sdk: &Client, ws: &str, customer: &str) -> (u16, Value) {
    let body = json!({ "customerId": customer, "workspaceId": ws });
    let r = sdk.post("/api/v1/link-token", body).await;
    (r.status, r.body)
}

async fn link_tokens(server: TestServer) {
    let a = tenant(&server, "owner@a.example").await;
    let b = tenant(&server, "owner@b.example").await;

    // Create: a token, valid for 15 minutes, bound to (workspace, customer).
    let (status, body) = link_token(&a.sdk, &a.ws, "cus_1").await;
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("lt_"));
    let expires_at = body["expiresAt"].as_i64().unwrap();
    let now = keygate_control::ids::now_ms();
    assert!((now + 14 * 60_000..=now + 15 * 60_000).contains(&expires_at));
    let r = a.sdk.get(&format!("/api/v1/link-token/{token}")).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.body,
        json!({ "valid": true, "expiresAt": expires_at, "workspaceId": a.ws, "customerId": "cus_1" })
    );
    // A session validates too; the audit log names the customer, never the token.
    let r = a.owner.get(&format!("/api/v1/link-token/{token}")).await;
    assert_eq!(r.body["valid"], true, "{r:?}");
    let audit = a.owner.get("/api/v1/audit-events").await;
    let text = audit.body.to_string();
    assert!(text.contains("link_token.create"), "{text}");
    assert!(!text.contains(&token));

    // Stored only as a digest.
    let stored: Vec<String> = keygate_control::with_db!(&server.state.db, |pool| {
        sqlx::query_scalar("SELECT digest FROM link_tokens")
            .fetch_all(pool)
            .await
            .unwrap()
    });
    assert_eq!(stored.len(), 1);
    assert_ne!(stored[0], token);

    // Tampered, unknown, malformed, and another organisation's: 400 INVALID_LINK_TOKEN.
    let mut tampered = token.clone().into_bytes();
    tampered[10] = if tampered[10] == b'a' { b'b' } else { b'a' };
    let tampered = String::from_utf8(tampered).unwrap();
    let unknown = LinkToken::generate().expose().to_owned();
    for t in [tampered.as_str(), unknown.as_str(), "nope", "lt_"] {
        let r = a.sdk.get(&format!("/api/v1/link-token/{t}")).await;
        assert_eq!(
            (r.status, r.reason()),
            (400, "INVALID_LINK_TOKEN"),
            "{t}: {r:?}"
        );
    }
    let r = b.sdk.get(&format!("/api/v1/link-token/{token}")).await;
    assert_eq!((r.status, r.reason()), (400, "INVALID_LINK_TOKEN"), "{r:?}");
    let r = b.owner.get(&format!("/api/v1/link-token/{token}")).await;
    assert_eq!((r.status, r.reason()), (400, "INVALID_LINK_TOKEN"), "{r:?}");
    // Another organisation's workspace: 404, as if it did not exist.
    let (status, body) = link_token(&b.sdk, &a.ws, "cus_1").await;
    assert_eq!(status, 404, "{body}");

    // A workspace-bound SDK key: only its own workspace.
    let bound = a.owner.sdk_client(ALL_SCOPES, Some(&a.other_ws)).await;
    let (status, _) = link_token(&bound, &a.ws, "cus_1").await;
    assert_eq!(status, 404);
    let r = bound.get(&format!("/api/v1/link-token/{token}")).await;
    assert_eq!((r.status, r.reason()), (400, "INVALID_LINK_TOKEN"), "{r:?}");
    let (status, body) = link_token(&bound, &a.other_ws, "cus_2").await;
    assert_eq!(status, 200, "{body}");
    let own = body["token"].as_str().unwrap();
    let r = bound.get(&format!("/api/v1/link-token/{own}")).await;
    assert_eq!(r.body["customerId"], "cus_2", "{r:?}");

    // Scopes: write to create, read to validate.
    let read_only = a.owner.sdk_client(r#"{"api_keys":["read"]}"#, None).await;
    let (status, body) = link_token(&read_only, &a.ws, "cus_1").await;
    assert_eq!(status, 403, "{body}");
    let r = read_only.get(&format!("/api/v1/link-token/{token}")).await;
    assert_eq!(r.status, 200, "{r:?}");
    let no_keys = a.owner.sdk_client(r#"{"workspace":["read"]}"#, None).await;
    let r = no_keys.get(&format!("/api/v1/link-token/{token}")).await;
    assert_eq!(r.status, 403, "{r:?}");
    let r = server
        .anonymous()
        .get(&format!("/api/v1/link-token/{token}"))
        .await;
    assert_eq!(r.status, 401, "{r:?}");

    // Bad bodies.
    for (body, reason) in [
        (
            json!({ "customerId": "", "workspaceId": a.ws }),
            "INVALID_CUSTOMER_ID",
        ),
        (
            json!({ "customerId": "x".repeat(257), "workspaceId": a.ws }),
            "INVALID_CUSTOMER_ID",
        ),
        (json!({ "workspaceId": a.ws }), "INVALID_BODY"),
    ] {
        let r = a.sdk.post("/api/v1/link-token", body).await;
        assert_eq!((r.status, r.reason()), (400, reason), "{r:?}");
    }

    // Expired: 200 with valid: false and what it was bound to.
    keygate_control::with_db!(&server.state.db, |pool| {
        sqlx::query("UPDATE link_tokens SET expires_at = $1 WHERE digest = $2")
            .bind(now - 1)
            .bind(keygate_shared::link_token::digest(&token))
            .execute(pool)
            .await
            .unwrap();
    });
    let r = a.sdk.get(&format!("/api/v1/link-token/{token}")).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.body,
        json!({ "valid": false, "expiresAt": now - 1, "workspaceId": a.ws, "customerId": "cus_1" })
    );
}
on_both_databases!(link_token_lifecycle, link_tokens);

async fn api_key(sdk: &Client, ws: &str, customer: Option<&str>, extra: Value) -> String {
    let mut body = json!({ "name": "k", "workspaceId": ws, "enabled": true });
    if let Some(c) = customer {
        body["customerId"] = json!(c);
    }
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let r = sdk.post("/api/v1/api-key", body).await;
    assert_eq!(r.status, 200, "{r:?}");
    r.body["apiKey"]["key"].as_str().unwrap().to_owned()
}

async fn verify(sdk: &Client, key: &str, billing: Value) -> (u16, Value) {
    let body = json!({ "key": key, "billing": billing });
    let r = sdk.post("/api/v1/api-key/verify", body).await;
    (r.status, r.body)
}

async fn usage(sdk: &Client, billing_id: &str) -> Value {
    let r = sdk.get(&format!("/api/v1/usage/{billing_id}")).await;
    assert_eq!(r.status, 200, "{r:?}");
    r.body
}

fn today() -> String {
    day_string(day_number(keygate_control::ids::now_ms()))
}

async fn billing_usage_is_exact_under_concurrency(server: TestServer) {
    const TASKS: usize = 8;
    const CALLS: usize = 200;
    let a = tenant(&server, "owner@a.example").await;
    let key = api_key(&a.sdk, &a.ws, Some("cus_9"), json!({})).await;
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let sdk = a.sdk.clone();
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..CALLS {
                // Half to an explicit id (3 units), half to the key's customer (1 unit).
                let billing = if (t + i) % 2 == 0 {
                    json!({ "id": "bid_1", "usage": 3 })
                } else {
                    json!({ "useCustomerIdForBilling": true, "usage": 1 })
                };
                let (status, body) = verify(&sdk, &key, billing).await;
                assert_eq!(status, 200, "{body}");
                assert_eq!(body["status"], "VALID");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let half = (TASKS * CALLS / 2) as i64;
    // Verify answers after its batch is committed: the totals are there at once.
    assert_eq!(
        usage(&a.sdk, "bid_1").await,
        json!({ "data": [{ "billingId": "bid_1", "day": today(), "totalBillingUsage": 3 * half }] })
    );
    assert_eq!(
        usage(&a.sdk, "cus_9").await["data"][0]["totalBillingUsage"],
        half
    );
}
on_both_databases!(
    billing_concurrency,
    billing_usage_is_exact_under_concurrency
);

async fn billing_counts_valid_answers_per_day_per_tenant(server: TestServer) {
    let a = tenant(&server, "owner@a.example").await;
    let b = tenant(&server, "owner@b.example").await;
    let key = api_key(&a.sdk, &a.ws, None, json!({})).await;
    let off = api_key(&a.sdk, &a.ws, None, json!({ "enabled": false })).await;
    let other = api_key(&a.sdk, &a.other_ws, Some("cus_o"), json!({})).await;

    let (_, body) = verify(&a.sdk, &key, json!({ "id": "bid", "usage": 5 })).await;
    assert_eq!(body["status"], "VALID");
    // Refused answers add nothing: disabled, unknown, missing scope.
    let (_, body) = verify(&a.sdk, &off, json!({ "id": "bid", "usage": 100 })).await;
    assert_eq!(body["status"], "DISABLED");
    let (_, body) = verify(&a.sdk, "key_nope", json!({ "id": "bid", "usage": 100 })).await;
    assert_eq!(body["status"], "INVALID");
    let r = a
        .sdk
        .post(
            "/api/v1/api-key/verify",
            json!({ "key": key, "requestedScopes": [{"representation": "x", "read": true, "create": false, "update": false, "del": false}], "billing": { "id": "bid", "usage": 100 } }),
        )
        .await;
    assert_eq!(r.body["status"], "INVALID_SCOPES", "{r:?}");
    // Zero adds nothing; no customer id and no explicit id charges nothing (and is accepted).
    verify(&a.sdk, &key, json!({ "id": "bid", "usage": 0 })).await;
    let (status, body) = verify(&a.sdk, &key, json!({ "usage": 9 })).await;
    assert_eq!((status, &body["status"]), (200, &json!("VALID")), "{body}");
    verify(
        &a.sdk,
        &key,
        json!({ "useCustomerIdForBilling": true, "usage": 7 }),
    )
    .await;
    // The other workspace, same billing id: the organisation sees both.
    let (_, body) = verify(&a.sdk, &other, json!({ "id": "bid", "usage": 2 })).await;
    assert_eq!(body["status"], "VALID");

    // Earlier days (written directly) come after today, newest first; older than 90 days
    // are left out.
    let today_n = day_number(keygate_control::ids::now_ms());
    keygate_control::with_db!(&server.state.db, |pool| {
        for (day, total) in [(today_n - 1, 11_i64), (today_n - 89, 4), (today_n - 90, 99)] {
            sqlx::query(
                "INSERT INTO billing_usage (org_id, workspace_id, billing_id, day, total)
                 SELECT org_id, id, 'bid', $1, $2 FROM workspaces WHERE id = $3",
            )
            .bind(day)
            .bind(total)
            .bind(&a.ws)
            .execute(pool)
            .await
            .unwrap();
        }
    });
    assert_eq!(
        usage(&a.sdk, "bid").await,
        json!({ "data": [
            { "billingId": "bid", "day": today(), "totalBillingUsage": 7 },
            { "billingId": "bid", "day": day_string(today_n - 1), "totalBillingUsage": 11 },
            { "billingId": "bid", "day": day_string(today_n - 89), "totalBillingUsage": 4 },
        ] })
    );
    // A session reads it too; a workspace-bound key sees its workspace only.
    assert_eq!(
        usage(&a.owner, "bid").await["data"][0]["totalBillingUsage"],
        7
    );
    let bound = a.owner.sdk_client(ALL_SCOPES, Some(&a.other_ws)).await;
    assert_eq!(
        usage(&bound, "bid").await,
        json!({ "data": [{ "billingId": "bid", "day": today(), "totalBillingUsage": 2 }] })
    );
    // Another organisation sees nothing of it.
    assert_eq!(usage(&b.sdk, "bid").await, json!({ "data": [] }));
    assert_eq!(usage(&b.owner, "bid").await, json!({ "data": [] }));

    // Reading needs api_keys read.
    let no_keys = a.owner.sdk_client(r#"{"workspace":["read"]}"#, None).await;
    assert_eq!(no_keys.get("/api/v1/usage/bid").await.status, 403);
    assert_eq!(
        server.anonymous().get("/api/v1/usage/bid").await.status,
        401
    );
    let long = "x".repeat(257);
    let r = a.sdk.get(&format!("/api/v1/usage/{long}")).await;
    assert_eq!((r.status, r.reason()), (400, "INVALID_BILLING_ID"), "{r:?}");

    // Bad billing values: 400 with a stable reason, and nothing added.
    for (billing, reason) in [
        (json!({ "id": "bid", "usage": -1 }), "INVALID_BILLING_USAGE"),
        (
            json!({ "id": "bid", "usage": 1.5 }),
            "INVALID_BILLING_USAGE",
        ),
        (
            json!({ "id": "bid", "usage": 1e12 }),
            "INVALID_BILLING_USAGE",
        ),
        (json!({ "id": "", "usage": 1 }), "INVALID_BILLING_ID"),
        (json!({ "id": long, "usage": 1 }), "INVALID_BILLING_ID"),
        (json!({ "id": "bid", "usage": "1" }), "INVALID_BODY"),
        (json!({ "id": "bid" }), "INVALID_BODY"),
    ] {
        let (status, body) = verify(&a.sdk, &key, billing.clone()).await;
        assert_eq!(
            (status, body["error"]["reason"].as_str().unwrap_or_default()),
            (400, reason),
            "{billing}: {body}"
        );
    }
    assert_eq!(
        usage(&a.sdk, "bid").await["data"][0]["totalBillingUsage"],
        7
    );
}
on_both_databases!(
    billing_rules,
    billing_counts_valid_answers_per_day_per_tenant
);
