//! Workspace tokens and secrets over HTTP: shown once, stored as a digest, listed masked,
//! revoked; bad input, roles and tenant isolation.

use crate::common::{captured_logs, TestServer};
use crate::keys_support::*;
use keygate_control::with_db;
use serde_json::json;

async fn tokens_are_shown_once_and_stored_as_digests(server: TestServer) {
    let owner = server.sign_in("owner@example.com").await;
    let org = org_of(&owner).await;
    let id = workspace_id(&owner, "Shop").await;
    let path = format!("/api/v1/workspace/{id}/tokens");
    assert_eq!(owner.get(&path).await.body, json!({"tokens": []}));

    let r = owner.post(&path, json!({"name": " CI deploy "})).await;
    assert_eq!(r.status, 201, "{r:?}");
    let token = r.body["key"].as_str().unwrap().to_owned();
    assert!(token.starts_with("wt_live_"), "{token}");
    assert_eq!(r.body["token"]["name"], "CI deploy");
    assert_eq!(r.body["token"]["kind"], "token");
    assert!(r.body["token"]["expiresAt"].is_null());
    let token_id = r.body["token"]["id"].as_str().unwrap().to_owned();

    let expires = keygate_control::ids::rfc3339(keygate_control::ids::now_ms() + 30 * 86_400_000);
    let r = owner
        .post(
            &path,
            json!({"name": "Webhook signing", "kind": "secret", "expiresAt": expires}),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let secret = r.body["key"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("ws_live_"));
    assert_eq!(r.body["token"]["expiresAt"], expires.as_str());
    assert_eq!(r.body["token"]["expired"], false);

    let list = owner.get(&path).await;
    assert_eq!(list.status, 200);
    assert!(!list.text.contains(&token) && !list.text.contains(&secret));
    let items = list.body["tokens"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(
        items[0]["masked"],
        keygate_shared::key::mask(&token).as_str()
    );
    assert!(items[0]["lastUsedAt"].is_null());

    let stored: Vec<String> = with_db!(&server.state.db, |pool| {
        sqlx::query_scalar(
            "SELECT key_digest FROM workspace_tokens WHERE workspace_id = $1 ORDER BY created_at",
        )
        .bind(&id)
        .fetch_all(pool)
        .await
        .unwrap()
    });
    assert_eq!(
        stored,
        vec![
            keygate_shared::key::digest(&token).to_hex(),
            keygate_shared::key::digest(&secret).to_hex()
        ]
    );

    let r = owner.delete(&format!("{path}/{token_id}")).await;
    assert_eq!(r.status, 204, "{r:?}");
    assert_eq!(
        owner.get(&path).await.body["tokens"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        owner.delete(&format!("{path}/{token_id}")).await.status,
        404
    );
    for bad in ["nope", UNKNOWN_ID] {
        assert_eq!(owner.delete(&format!("{path}/{bad}")).await.status, 404);
    }
    // A token of another workspace is not reachable through this one.
    let other = workspace_id(&owner, "Other").await;
    let secret_id = owner.get(&path).await.body["tokens"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        owner
            .delete(&format!("/api/v1/workspace/{other}/tokens/{secret_id}"))
            .await
            .status,
        404
    );

    let events = audit(&server, &org).await;
    assert!(events.iter().any(|e| e.0 == "workspace_token.create"));
    assert!(events.iter().any(|e| e.0 == "workspace_token.revoke"));
    assert!(events
        .iter()
        .all(|e| !e.3.contains(&token[8..]) && !e.3.contains(&secret[8..])));
    let logs = captured_logs();
    assert!(!logs.contains(&token[8..]) && !logs.contains(&secret[8..]));
}
on_both_databases!(lifecycle, tokens_are_shown_once_and_stored_as_digests);

async fn bad_token_input_gets_clear_4xx_answers(server: TestServer) {
    let (owner, id) = owner_with_workspace(&server, "Shop").await;
    let path = format!("/api/v1/workspace/{id}/tokens");
    for (body, reason) in [
        (json!({"name": ""}), "INVALID_NAME"),
        (json!({"name": "x".repeat(101)}), "INVALID_NAME"),
        (json!({"name": "bell\u{7}"}), "INVALID_NAME"),
        (json!({"name": 1}), "INVALID_BODY"),
        (json!({"name": "x", "kind": "password"}), "INVALID_KIND"),
        (
            json!({"name": "x", "expiresAt": "next week"}),
            "INVALID_EXPIRY",
        ),
        (
            json!({"name": "x", "expiresAt": "2001-01-01T00:00:00Z"}),
            "INVALID_EXPIRY",
        ),
        (
            json!({"name": "x", "expiresAt": "2999-01-01T00:00:00Z"}),
            "INVALID_EXPIRY",
        ),
        (json!({"name": "x", "expiresAt": 1}), "INVALID_BODY"),
        (json!({"name": "x", "scope": "all"}), "INVALID_BODY"),
    ] {
        let r = owner.post(&path, body.clone()).await;
        assert_eq!(r.status, 400, "{body}: {r:?}");
        assert_eq!(r.reason(), reason, "{body}");
    }
    let r = owner
        .send("POST", &path, Some(("application/json", b"nope".to_vec())))
        .await;
    assert_eq!((r.status, r.reason()), (400, "MALFORMED_JSON"));
    let big = format!("{{\"name\":\"{}\"}}", "t".repeat(80_000));
    assert_eq!(
        owner
            .send("POST", &path, Some(("application/json", big.into_bytes())))
            .await
            .status,
        413
    );
    assert_eq!(owner.get(&path).await.body["tokens"], json!([]));
}
on_both_databases!(bad_input, bad_token_input_gets_clear_4xx_answers);

async fn members_list_and_strangers_see_nothing(server: TestServer) {
    let owner = server.sign_in("owner@example.com").await;
    let org = org_of(&owner).await;
    let id = workspace_id(&owner, "Shop").await;
    let path = format!("/api/v1/workspace/{id}/tokens");
    let token_id = owner.post(&path, json!({"name": "t"})).await.body["token"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let member = add_user(&server, &org, "member@example.com", "member").await;
    assert_eq!(member.get(&path).await.status, 200);
    let r = member.post(&path, json!({"name": "m"})).await;
    assert_eq!((r.status, r.reason()), (403, "ROLE_REQUIRED"));
    let r = member.delete(&format!("{path}/{token_id}")).await;
    assert_eq!((r.status, r.reason()), (403, "ROLE_REQUIRED"));

    let stranger = other_org_owner(&server, "boss@other.example").await;
    assert_eq!(stranger.get(&path).await.status, 404);
    assert_eq!(stranger.post(&path, json!({"name": "s"})).await.status, 404);
    assert_eq!(
        stranger.delete(&format!("{path}/{token_id}")).await.status,
        404
    );
    // SDK keys cannot manage tokens.
    let backend = owner
        .sdk_client(r#"{"workspace": ["read", "write"]}"#, None)
        .await;
    assert_eq!(backend.get(&path).await.status, 401);
    assert_eq!(
        owner.get(&path).await.body["tokens"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}
on_both_databases!(roles_and_isolation, members_list_and_strangers_see_nothing);
