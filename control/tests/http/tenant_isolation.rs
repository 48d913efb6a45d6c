//! Tenant isolation: a second organisation, with a dashboard session and with an all-scopes
//! SDK key, walks every route against the first organisation's ids. Every attempt is a 404
//! (never a hint the object exists), lists never show the other tenant's objects, a foreign
//! API key never verifies, and nothing of the first organisation changes.

use crate::common::{Client, Resp, TestServer, ALL_SCOPES};
use crate::keys_support::add_blacklist_rule;
use serde_json::{json, Value};

/// `POST /api/v1/api-key/verify` of `key`, no scopes requested.
async fn verify(client: &Client, key: &str) -> Resp {
    client
        .post(
            "/api/v1/api-key/verify",
            json!({"key": key, "requestedScopes": []}),
        )
        .await
}

struct Tenant {
    session: Client,
    sdk: Client,
}

async fn tenant(server: &TestServer, session: Client) -> Tenant {
    let sdk = session.sdk_client(ALL_SCOPES, None).await;
    let _ = server;
    Tenant { session, sdk }
}

/// Everything organisation A owns, by id.
struct Owned {
    ws: String,
    rule: String,
    token: String,
    sdk_key: String,
    member: String,
    api_key_id: String,
    api_key: String,
    publishable_key: String,
}

async fn populate(a: &Tenant) -> Owned {
    let r = a
        .session
        .post("/api/v1/workspace", json!({"name": "A shop"}))
        .await;
    let ws = r.body["workspace"]["id"]
        .as_str()
        .expect("workspace")
        .to_owned();
    let r = a
        .session
        .put(
            &format!("/api/v1/workspace/{ws}/modules"),
            json!({"modules": [{"name": "billing", "functionalities": ["refund"]}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = add_blacklist_rule(&a.session, &ws, "billing", "refund").await;
    assert!(r.status == 200 || r.status == 201, "{r:?}");
    let pk = a
        .session
        .get(&format!("/api/v1/workspace/{ws}/publishable-key"))
        .await;
    let rule = pk.body["publishableKey"]["blacklist"][0]["id"]
        .as_str()
        .expect("rule")
        .to_owned();
    let publishable_key = pk.body["publishableKey"]["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = a
        .session
        .post(
            &format!("/api/v1/workspace/{ws}/tokens"),
            json!({"name": "ci", "kind": "token"}),
        )
        .await;
    assert!(r.status == 200 || r.status == 201, "{r:?}");
    let token = r.body["token"]["id"].as_str().expect("token id").to_owned();
    let r = a.session.get("/api/v1/sdk-keys").await;
    let sdk_key = r.body["sdkKeys"][0]["id"]
        .as_str()
        .expect("sdk key id")
        .to_owned();
    let r = a
        .session
        .post("/api/v1/members", json!({"email": "a-member@a.example"}))
        .await;
    let member = r.body["member"]["id"].as_str().unwrap().to_owned();
    let r = a
        .sdk
        .post(
            &format!("/api/v1/workspace/{ws}/scope"),
            json!({"name": "orders", "representation": "orders", "description": "d"}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = a
        .sdk
        .post(
            "/api/v1/api-key",
            json!({"name": "k", "workspaceId": ws, "scopes": [], "enabled": true}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    Owned {
        rule,
        token,
        sdk_key,
        member,
        api_key_id: r.body["apiKey"]["id"].as_str().unwrap().to_owned(),
        api_key: r.body["apiKey"]["key"].as_str().unwrap().to_owned(),
        publishable_key,
        ws,
    }
}

fn assert_hidden(what: &str, r: &Resp) {
    assert_eq!(r.status, 404, "{what} answered {}: {}", r.status, r.text);
    assert!(
        !r.text.contains("a-member@a.example") && !r.text.contains("A shop"),
        "{what} leaked: {}",
        r.text
    );
}

async fn another_organisation_can_reach_nothing(server: TestServer) {
    let a = tenant(&server, server.sign_in("owner@a.example").await).await;
    let b = server
        .sign_in_to_new_organisation("B corp", "owner@b.example")
        .await;
    let b = tenant(&server, b).await;
    let o = populate(&a).await;
    let ws = &o.ws;
    let before = a
        .session
        .get(&format!("/api/v1/workspace/{ws}/publishable-key"))
        .await
        .text;

    type Call = (&'static str, String, Option<Value>);
    let at = |rest: &str| format!("/api/v1/workspace/{ws}{rest}");
    let session_calls: Vec<Call> = vec![
        ("GET", at(""), None),
        ("PATCH", at(""), Some(json!({"name": "pwned"}))),
        ("GET", at("/modules"), None),
        ("PUT", at("/modules"), Some(json!({"modules": []}))),
        ("GET", at("/publishable-key"), None),
        (
            "PATCH",
            at("/publishable-key"),
            Some(json!({"allowedOrigins": [], "originUrl": null})),
        ),
        ("POST", at("/publishable-key/revoke"), Some(json!({}))),
        (
            "POST",
            at("/publishable-key/blacklist"),
            Some(json!({"module": "billing", "functionality": "*"})),
        ),
        (
            "DELETE",
            at(&format!("/publishable-key/blacklist/{}", o.rule)),
            None,
        ),
        ("GET", at("/sdk-access-key"), None),
        ("POST", at("/sdk-access-key/reveal"), Some(json!({}))),
        ("POST", at("/sdk-access-key/rotate"), Some(json!({}))),
        ("GET", at("/tokens"), None),
        (
            "POST",
            at("/tokens"),
            Some(json!({"name": "x", "kind": "token"})),
        ),
        ("DELETE", at(&format!("/tokens/{}", o.token)), None),
        ("GET", at("/portal-policy"), None),
        (
            "PUT",
            at("/portal-policy"),
            Some(
                json!({"allowedScopes": [], "maxExpiryMs": null, "maxUsage": null, "maxLiveKeys": 100}),
            ),
        ),
        ("DELETE", format!("/api/v1/sdk-keys/{}", o.sdk_key), None),
        (
            "POST",
            format!("/api/v1/sdk-keys/{}/reveal", o.sdk_key),
            Some(json!({})),
        ),
        (
            "PATCH",
            format!("/api/v1/members/{}", o.member),
            Some(json!({"role": "admin"})),
        ),
        ("DELETE", format!("/api/v1/members/{}", o.member), None),
    ];
    let backend_calls: Vec<Call> = vec![
        ("GET", at(""), None),
        ("PATCH", at(""), Some(json!({"name": "pwned"}))),
        ("GET", at("/scopes"), None),
        (
            "POST",
            at("/scope"),
            Some(json!({"name": "x", "representation": "x", "description": "d"})),
        ),
        (
            "POST",
            "/api/v1/api-key".to_owned(),
            Some(json!({"name": "k", "workspaceId": ws, "scopes": [], "enabled": true})),
        ),
        ("GET", at("/api-key"), None),
        ("GET", at(&format!("/api-key/{}", o.api_key_id)), None),
        ("GET", at("/usage"), None),
        ("GET", at("/billing-usage"), None),
        ("GET", at(&format!("/api-key/{}/usage", o.api_key_id)), None),
        (
            "PATCH",
            at(&format!("/api-key/{}", o.api_key_id)),
            Some(json!({"enabled": false})),
        ),
        (
            "POST",
            at(&format!("/api-key/{}/rotate", o.api_key_id)),
            Some(json!({})),
        ),
        (
            "POST",
            at(&format!("/api-key/{}/refill", o.api_key_id)),
            Some(json!({"amount": 5})),
        ),
        ("DELETE", at(&format!("/api-key/{}", o.api_key_id)), None),
    ];
    for (client, calls) in [
        (&b.session, &session_calls),
        (&b.session, &backend_calls),
        (&b.sdk, &backend_calls),
    ] {
        for (method, path, body) in calls.iter() {
            let body = body
                .as_ref()
                .map(|v| ("application/json", serde_json::to_vec(v).unwrap()));
            let r = client.send(method, path, body).await;
            assert_hidden(&format!("{method} {path}"), &r);
        }
    }

    // Lists show only B's own objects.
    for (client, path) in [
        (&b.session, "/api/v1/workspace"),
        (&b.sdk, "/api/v1/workspace"),
        (&b.session, "/api/v1/sdk-keys"),
        (&b.session, "/api/v1/members"),
        (&b.session, "/api/v1/audit-events"),
    ] {
        let r = client.get(path).await;
        assert_eq!(r.status, 200, "{path}: {r:?}");
        for secret_or_id in [
            ws.as_str(),
            &o.sdk_key,
            &o.member,
            "a-member@a.example",
            "owner@a.example",
        ] {
            assert!(
                !r.text.contains(secret_or_id),
                "{path} shows A's {secret_or_id}: {}",
                r.text
            );
        }
    }
    let r = b
        .session
        .get(&format!("/api/v1/audit-events?workspaceId={ws}"))
        .await;
    assert_eq!(r.body["events"].as_array().map(Vec::len), Some(0), "{r:?}");

    // A's customer API key never verifies for B.
    let r = verify(&b.sdk, &o.api_key).await;
    assert_ne!(r.body["status"], "VALID", "{r:?}");
    let r = verify(&a.sdk, &o.api_key).await;
    assert_eq!(r.body["status"], "VALID", "{r:?}");

    // Nothing of A changed.
    let after = a
        .session
        .get(&format!("/api/v1/workspace/{ws}/publishable-key"))
        .await
        .text;
    assert_eq!(before, after);
    assert!(after.contains(&o.publishable_key));
    assert_eq!(
        a.session.get(&format!("/api/v1/workspace/{ws}")).await.body["workspace"]["name"],
        "A shop"
    );
    assert_eq!(
        a.session.get("/api/v1/members").await.body["members"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}
on_both_databases!(isolation, another_organisation_can_reach_nothing);
