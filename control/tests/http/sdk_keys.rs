//! SDK keys over HTTP: organisation keys (create, list, revoke, reveal by emailed code) and
//! each workspace's SDK access key (reveal, rotate), roles, isolation, and no secret at rest
//! or in logs.

use crate::common::{captured_logs, Client, TestServer};
use crate::keys_support::*;
use keygate_control::with_db;
use serde_json::{json, Value};

async fn create_key(owner: &Client, body: Value) -> (String, String) {
    let r = owner.post("/api/v1/sdk-keys", body).await;
    assert_eq!(r.status, 201, "{r:?}");
    (
        r.body["sdkKey"]["id"].as_str().unwrap().to_owned(),
        r.body["key"].as_str().unwrap().to_owned(),
    )
}

fn wrong(code: &str) -> &'static str {
    if code == "000000" {
        "000001"
    } else {
        "000000"
    }
}

async fn sdk_keys_are_shown_once_stored_sealed_and_revocable(server: TestServer) {
    let owner = server.sign_in("owner@example.com").await;
    let org = org_of(&owner).await;
    let ws = workspace_id(&owner, "Shop").await;
    let r = owner
        .post(
            "/api/v1/sdk-keys",
            json!({"name": " backend ", "scopes": {"workspace": ["read"], "api_keys": ["read", "write"]}}),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let key = r.body["key"].as_str().unwrap().to_owned();
    let id = r.body["sdkKey"]["id"].as_str().unwrap().to_owned();
    assert!(key.starts_with("sk_live_"));
    assert_eq!(r.body["sdkKey"]["name"], "backend");
    assert_eq!(
        r.body["sdkKey"]["scopes"],
        json!({"workspace": ["read"], "workspace_scopes": [], "api_keys": ["read", "write"]})
    );
    assert!(r.body["sdkKey"]["workspaceId"].is_null());
    let masked = r.body["sdkKey"]["masked"].as_str().unwrap().to_owned();
    assert_eq!(masked, keygate_shared::key::mask(&key));

    // Stored sealed and digested, never in plaintext.
    let (digest, sealed): (String, String) = with_db!(&server.state.db, |pool| {
        sqlx::query_as("SELECT key_digest, key_sealed FROM sdk_keys WHERE id = $1")
            .bind(&id)
            .fetch_one(pool)
            .await
            .unwrap()
    });
    assert_eq!(digest, keygate_shared::key::digest(&key).to_hex());
    assert!(!sealed.contains(&key[8..]));

    // The list shows masks and when the key was last used.
    let list = owner.get("/api/v1/sdk-keys").await;
    assert_eq!(list.status, 200);
    assert!(!list.text.contains(&key));
    assert_eq!(
        list.body["sdkKeys"].as_array().unwrap().len(),
        1,
        "access keys are listed per workspace"
    );
    assert!(list.body["sdkKeys"][0]["lastUsedAt"].is_null());
    let backend = owner.with_bearer(&key);
    assert_eq!(backend.get("/api/v1/workspace").await.status, 200);
    let list = owner.get("/api/v1/sdk-keys").await;
    assert!(list.body["sdkKeys"][0]["lastUsedAt"].as_str().is_some());

    // Bound to a workspace: test/live follows the workspace.
    let r = owner
        .post(
            "/api/v1/sdk-keys",
            json!({"name": "bound", "scopes": {"workspace": ["read"]}, "workspaceId": ws}),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.body["sdkKey"]["workspaceId"], ws.as_str());

    // Revoked: gone from the list, refused at once.
    let r = owner.delete(&format!("/api/v1/sdk-keys/{id}")).await;
    assert_eq!(r.status, 204, "{r:?}");
    let r = backend.get("/api/v1/workspace").await;
    assert_eq!((r.status, r.reason()), (401, "INVALID_SDK_KEY"));
    assert_eq!(
        owner.get("/api/v1/sdk-keys").await.body["sdkKeys"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        owner.delete(&format!("/api/v1/sdk-keys/{id}")).await.status,
        404
    );
    assert_eq!(
        owner
            .post(&format!("/api/v1/sdk-keys/{id}/reveal"), json!({}))
            .await
            .status,
        404
    );

    let actions = audit_actions(&server, &org).await;
    assert!(actions.contains(&"sdk_key.create".to_owned()));
    assert!(actions.contains(&"sdk_key.revoke".to_owned()));
    assert!(
        !captured_logs().contains(&key[8..]),
        "an SDK key reached the logs"
    );
}
on_both_databases!(
    lifecycle,
    sdk_keys_are_shown_once_stored_sealed_and_revocable
);

async fn bad_sdk_key_input_gets_clear_4xx_answers(server: TestServer) {
    let owner = server.sign_in("owner@example.com").await;
    let ok_scopes = json!({"workspace": ["read"]});
    let stranger = other_org_owner(&server, "boss@other.example").await;
    let foreign_ws = workspace_id(&stranger, "Theirs").await;
    for (body, status, reason) in [
        (json!({"name": "x", "scopes": {}}), 400, "EMPTY_SCOPES"),
        (
            json!({"name": "x", "scopes": {"billing": ["read"]}}),
            400,
            "INVALID_BODY",
        ),
        (
            json!({"name": "x", "scopes": {"workspace": ["admin"]}}),
            400,
            "INVALID_BODY",
        ),
        (
            json!({"name": "x", "scopes": "workspace:read"}),
            400,
            "INVALID_BODY",
        ),
        (
            json!({"name": "x", "scopes": ok_scopes, "extra": 1}),
            400,
            "INVALID_BODY",
        ),
        (
            json!({"name": "", "scopes": ok_scopes}),
            400,
            "INVALID_NAME",
        ),
        (
            json!({"name": "a\tb", "scopes": ok_scopes}),
            400,
            "INVALID_NAME",
        ),
        (
            json!({"name": "x".repeat(101), "scopes": ok_scopes}),
            400,
            "INVALID_NAME",
        ),
        (json!({"scopes": ok_scopes}), 400, "INVALID_BODY"),
        (
            json!({"name": "x", "scopes": ok_scopes, "workspaceId": foreign_ws}),
            404,
            "NOT_FOUND",
        ),
        (
            json!({"name": "x", "scopes": ok_scopes, "workspaceId": "nope"}),
            404,
            "NOT_FOUND",
        ),
    ] {
        let r = owner.post("/api/v1/sdk-keys", body.clone()).await;
        assert_eq!(r.status, status, "{body}: {r:?}");
        assert_eq!(r.reason(), reason, "{body}");
    }
    let r = owner
        .post_raw(
            "/api/v1/sdk-keys",
            "application/json",
            b"{\"name\"".to_vec(),
        )
        .await;
    assert_eq!((r.status, r.reason()), (400, "MALFORMED_JSON"));
    let big = format!("{{\"name\":\"{}\"}}", "y".repeat(100_000));
    let r = owner
        .post_raw("/api/v1/sdk-keys", "application/json", big.into_bytes())
        .await;
    assert_eq!(r.status, 413);
    assert_eq!(
        owner.get("/api/v1/sdk-keys").await.body["sdkKeys"],
        json!([])
    );
    for id in ["nope", UNKNOWN_ID] {
        assert_eq!(
            owner.delete(&format!("/api/v1/sdk-keys/{id}")).await.status,
            404
        );
    }
    // An SDK key cannot make SDK keys, whatever its scopes.
    let (_, key) = create_key(
        &owner,
        json!({"name": "all", "scopes": {"workspace": ["read", "write"], "workspace_scopes": ["read", "write"], "api_keys": ["read", "write"]}}),
    )
    .await;
    let backend = owner.with_bearer(&key);
    let r = backend
        .post(
            "/api/v1/sdk-keys",
            json!({"name": "x", "scopes": ok_scopes}),
        )
        .await;
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(backend.get("/api/v1/sdk-keys").await.status, 401);
}
on_both_databases!(bad_input, bad_sdk_key_input_gets_clear_4xx_answers);

async fn revealing_needs_the_emailed_code_for_that_very_key(server: TestServer) {
    let owner = server.sign_in("owner@example.com").await;
    let org = org_of(&owner).await;
    let scopes = json!({"api_keys": ["read"]});
    let (a, key_a) = create_key(&owner, json!({"name": "a", "scopes": scopes})).await;
    let (b, _) = create_key(&owner, json!({"name": "b", "scopes": scopes})).await;

    let r = owner
        .post(&format!("/api/v1/sdk-keys/{a}/reveal"), json!({}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let challenge = r.body["challengeId"].as_str().unwrap().to_owned();
    assert!(r.body["expiresAt"].as_str().is_some());
    assert!(!r.text.contains(&key_a));
    let code = server.outbox_code("owner@example.com").await;
    assert!(server.outbox().await.contains("reveal an SDK key"));
    let verify = |id: &str, challenge: &str, code: &str| {
        let (owner, path) = (
            owner.clone(),
            format!("/api/v1/sdk-keys/{id}/reveal/verify"),
        );
        let body = json!({"challengeId": challenge, "code": code});
        async move { owner.post(&path, body).await }
    };

    // A code sent for key A never reveals key B.
    let r = verify(&b, &challenge, &code).await;
    assert_eq!(r.status, 404, "{r:?}");
    let r = verify(&a, &challenge, wrong(&code)).await;
    assert_eq!((r.status, r.reason()), (401, "OTP_INVALID"));
    let r = verify(&a, &challenge, &code).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["key"], key_a.as_str());
    let r = verify(&a, &challenge, &code).await;
    assert_eq!((r.status, r.reason()), (410, "OTP_CONSUMED"));
    for body in [
        json!({"challengeId": challenge}),
        json!({"challengeId": challenge, "code": 123456}),
        json!({"challengeId": challenge, "code": "1", "extra": true}),
    ] {
        let r = owner
            .post(&format!("/api/v1/sdk-keys/{a}/reveal/verify"), body)
            .await;
        assert_eq!((r.status, r.reason()), (400, "INVALID_BODY"));
    }
    let r = verify(&a, "not-a-challenge", "123456").await;
    assert_eq!(r.status, 404);

    // Five wrong codes kill the challenge.
    owner
        .post(&format!("/api/v1/sdk-keys/{a}/reveal"), json!({}))
        .await;
    let code = server.outbox_code("owner@example.com").await;
    let challenge = owner
        .post(&format!("/api/v1/sdk-keys/{a}/reveal"), json!({}))
        .await
        .body["challengeId"]
        .as_str()
        .unwrap()
        .to_owned();
    let code2 = server.outbox_code("owner@example.com").await;
    let _ = code;
    for _ in 0..4 {
        assert_eq!(verify(&a, &challenge, wrong(&code2)).await.status, 401);
    }
    let r = verify(&a, &challenge, wrong(&code2)).await;
    assert_eq!((r.status, r.reason()), (410, "OTP_TOO_MANY_ATTEMPTS"));
    let r = verify(&a, &challenge, &code2).await;
    assert_eq!(r.status, 410, "{r:?}");

    let events = audit(&server, &org).await;
    let reveals: Vec<&str> = events
        .iter()
        .filter(|e| e.0 == "sdk_key.reveal")
        .map(|e| e.1.as_str())
        .collect();
    assert_eq!(reveals.iter().filter(|o| **o == "success").count(), 1);
    assert!(
        reveals.iter().filter(|o| **o == "failure").count() >= 8,
        "{reveals:?}"
    );
    assert!(events.iter().all(|e| !e.3.contains(&key_a[8..])));
    assert!(!captured_logs().contains(&key_a[8..]));
}
on_both_databases!(reveal, revealing_needs_the_emailed_code_for_that_very_key);

/// How many live access keys a workspace has.
async fn live_access_keys(server: &TestServer, id: &str) -> i64 {
    count(
        server,
        "SELECT COUNT(*) FROM sdk_keys WHERE workspace_id = $1 AND is_access_key = TRUE AND revoked_at IS NULL",
        id,
    )
    .await
}

async fn the_workspace_access_key_is_revealed_and_rotated(server: TestServer) {
    let (owner, id) = owner_with_workspace(&server, "Shop").await;
    let base = format!("/api/v1/workspace/{id}/sdk-access-key");
    let info = owner.get(&base).await;
    assert_eq!(info.status, 200, "{info:?}");
    let info = info.body["sdkAccessKey"].clone();
    assert_eq!(info["workspaceId"], id.as_str());
    assert_eq!(info["isAccessKey"], true);

    let r = reveal(&server, &owner, &base).await;
    let old = r.body["key"].as_str().unwrap().to_owned();
    assert_eq!(
        keygate_shared::key::mask(&old),
        info["masked"].as_str().unwrap()
    );
    let backend = owner.with_bearer(&old);
    assert_eq!(
        backend.get(&format!("/api/v1/workspace/{id}")).await.status,
        200
    );

    // A pending code for the old key dies with it.
    let pending = owner.post(&format!("{base}/reveal"), json!({})).await.body["challengeId"]
        .as_str()
        .unwrap()
        .to_owned();
    let pending_code = server.outbox_code("owner@example.com").await;

    let r = owner.post(&format!("{base}/rotate"), json!({})).await;
    assert_eq!(r.status, 200, "{r:?}");
    let new = r.body["key"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert_eq!(
        r.body["sdkAccessKey"]["masked"],
        keygate_shared::key::mask(&new).as_str()
    );
    let r = backend.get(&format!("/api/v1/workspace/{id}")).await;
    assert_eq!((r.status, r.reason()), (401, "INVALID_SDK_KEY"));
    assert_eq!(
        owner
            .with_bearer(&new)
            .get(&format!("/api/v1/workspace/{id}"))
            .await
            .status,
        200
    );
    let r = reveal_verify(&owner, &base, &pending, &pending_code).await;
    assert_eq!(r.status, 404, "{r:?}");
    assert_eq!(live_access_keys(&server, &id).await, 1);

    // Concurrent rotations never leave two live access keys.
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let (c, p) = (owner.clone(), format!("{base}/rotate"));
            tokio::spawn(async move { c.post(&p, json!({})).await })
        })
        .collect();
    for t in tasks {
        let r = t.await.unwrap();
        assert!(r.status == 200 || r.status == 409, "{r:?}");
    }
    assert_eq!(live_access_keys(&server, &id).await, 1);
    assert!(!captured_logs().contains(&new[8..]));
}
on_both_databases!(access_key, the_workspace_access_key_is_revealed_and_rotated);

async fn members_and_strangers_cannot_touch_sdk_keys(server: TestServer) {
    let owner = server.sign_in("owner@example.com").await;
    let org = org_of(&owner).await;
    let ws = workspace_id(&owner, "Shop").await;
    let (key_id, _) = create_key(
        &owner,
        json!({"name": "a", "scopes": {"api_keys": ["read"]}}),
    )
    .await;
    let member = add_user(&server, &org, "member@example.com", "member").await;
    let stranger = other_org_owner(&server, "boss@other.example").await;

    assert_eq!(member.get("/api/v1/sdk-keys").await.status, 200);
    assert_eq!(
        member
            .get(&format!("/api/v1/workspace/{ws}/sdk-access-key"))
            .await
            .status,
        200
    );
    assert_eq!(
        stranger.get("/api/v1/sdk-keys").await.body["sdkKeys"],
        json!([])
    );
    assert_eq!(
        stranger
            .get(&format!("/api/v1/workspace/{ws}/sdk-access-key"))
            .await
            .status,
        404
    );
    let verify = json!({"challengeId": UNKNOWN_ID, "code": "123456"});
    let calls = vec![
        (
            "POST",
            "/api/v1/sdk-keys".to_owned(),
            json!({"name": "m", "scopes": {"api_keys": ["read"]}}),
        ),
        ("DELETE", format!("/api/v1/sdk-keys/{key_id}"), Value::Null),
        (
            "POST",
            format!("/api/v1/sdk-keys/{key_id}/reveal"),
            json!({}),
        ),
        (
            "POST",
            format!("/api/v1/sdk-keys/{key_id}/reveal/verify"),
            verify.clone(),
        ),
        (
            "POST",
            format!("/api/v1/workspace/{ws}/sdk-access-key/reveal"),
            json!({}),
        ),
        (
            "POST",
            format!("/api/v1/workspace/{ws}/sdk-access-key/reveal/verify"),
            verify,
        ),
        (
            "POST",
            format!("/api/v1/workspace/{ws}/sdk-access-key/rotate"),
            json!({}),
        ),
    ];
    for (method, path, body) in calls {
        let send = |c: Client| {
            let (path, body) = (path.clone(), body.clone());
            async move {
                if method == "DELETE" {
                    c.delete(&path).await
                } else {
                    c.post(&path, body).await
                }
            }
        };
        let r = send(member.clone()).await;
        assert_eq!(
            (r.status, r.reason()),
            (403, "ROLE_REQUIRED"),
            "member {method} {path}"
        );
        if path != "/api/v1/sdk-keys" {
            let r = send(stranger.clone()).await;
            assert_eq!(
                (r.status, r.reason()),
                (404, "NOT_FOUND"),
                "stranger {method} {path}"
            );
        }
    }
    // Still there and untouched.
    assert_eq!(
        owner.get("/api/v1/sdk-keys").await.body["sdkKeys"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert!(!server
        .outbox()
        .await
        .contains("To: member@example.com\r\nSubject: Your keygate code to reveal"));
}
on_both_databases!(
    roles_and_isolation,
    members_and_strangers_cannot_touch_sdk_keys
);
