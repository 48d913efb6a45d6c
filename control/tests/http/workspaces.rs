//! Workspaces over HTTP: the Oneloop routes, what creating a workspace sets up, the catalogue,
//! roles, scopes and tenant isolation.

use crate::common::{Client, TestServer};
use crate::keys_support::*;
use serde_json::json;

async fn creating_a_workspace_sets_up_its_keys_in_one_go(server: TestServer) {
    let owner = server.sign_in("owner@example.com").await;
    let org = org_of(&owner).await;
    let ws = create_workspace(&owner, "  Production  ").await;
    let id = ws["id"].as_str().unwrap();
    assert_eq!(ws["name"], "Production");
    assert_eq!(ws["teamId"], org.as_str());
    assert_eq!(ws["environment"], "live");
    assert_eq!(ws["defaultAllowedIPs"], json!([]));
    assert!(ws["createdAt"].as_str().unwrap().ends_with('Z'));

    let pk = owner
        .get(&format!("/api/v1/workspace/{id}/publishable-key"))
        .await;
    assert_eq!(pk.status, 200, "{pk:?}");
    let key = pk.body["publishableKey"]["key"].as_str().unwrap();
    assert!(key.starts_with("pk_live_"), "{key}");
    let sdk = owner
        .get(&format!("/api/v1/workspace/{id}/sdk-access-key"))
        .await;
    assert_eq!(sdk.status, 200, "{sdk:?}");
    assert!(sdk.body["sdkAccessKey"]["masked"]
        .as_str()
        .unwrap()
        .starts_with("sk_live_…"));
    assert!(sdk.body["sdkAccessKey"]["lastUsedAt"].is_null());

    // The edge learns about the new key from the outbox, in the same commit.
    let rows = outbox(&server, id).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let digest = keygate_shared::key::digest(key).to_hex();
    assert_eq!(rows[0].1, digest);
    assert_eq!(rows[0].2["state"], "active");
    assert_eq!(rows[0].2["workspaceId"], id);

    let events = audit(&server, &org).await;
    let created = events
        .iter()
        .find(|e| e.0 == "workspace.create")
        .expect("audited");
    assert_eq!(created.2.as_deref(), Some(id));
    assert!(!created.3.contains(key), "the audit log holds masks only");

    // A test workspace gets test keys.
    let r = owner
        .post(
            "/api/v1/workspace",
            json!({"name": "Staging", "environment": "test"}),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let test_id = r.body["workspace"]["id"].as_str().unwrap();
    let pk = owner
        .get(&format!("/api/v1/workspace/{test_id}/publishable-key"))
        .await;
    assert!(pk.body["publishableKey"]["key"]
        .as_str()
        .unwrap()
        .starts_with("pk_test_"));
}
on_both_databases!(create, creating_a_workspace_sets_up_its_keys_in_one_go);

async fn workspaces_are_listed_read_and_patched_like_oneloop(server: TestServer) {
    let (owner, a) = owner_with_workspace(&server, "A").await;
    let b = workspace_id(&owner, "B").await;
    let list = owner.get("/api/v1/workspace").await;
    assert_eq!(list.status, 200);
    let ids: Vec<&str> = list.body["workspaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![a.as_str(), b.as_str()]);

    let one = owner.get(&format!("/api/v1/workspace/{a}")).await;
    assert_eq!(one.status, 200);
    assert_eq!(one.body["workspace"]["name"], "A");

    // Oneloop's UpdateWorkspaceRequest; unknown fields from its client are tolerated.
    let r = owner
        .patch(
            &format!("/api/v1/workspace/{a}"),
            json!({
                "defaultAllowedIPs": ["10.0.0.0/8", "203.0.113.7", "10.0.0.0/8"],
                "defaultKeyPrefix": "acme",
                "defaultRateLimitPerSecond": 20,
                "defaultExpiration": 86400,
                "somethingNew": true
            }),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let w = &r.body["workspace"];
    assert_eq!(w["defaultAllowedIPs"], json!(["10.0.0.0/8", "203.0.113.7"]));
    assert_eq!(w["defaultKeyPrefix"], "acme");
    assert_eq!(w["defaultRateLimitPerSecond"], 20);
    assert_eq!(w["defaultExpiration"], 86400);

    // Absent fields stay; null clears.
    let r = owner
        .patch(
            &format!("/api/v1/workspace/{a}"),
            json!({"defaultKeyPrefix": null, "name": "Renamed"}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let w = &r.body["workspace"];
    assert!(w.get("defaultKeyPrefix").is_none());
    assert_eq!(w["name"], "Renamed");
    assert_eq!(w["defaultRateLimitPerSecond"], 20);

    for (body, reason) in [
        (json!({"defaultKeyPrefix": "pk"}), "INVALID_KEY_PREFIX"),
        (
            json!({"defaultKeyPrefix": "Bad-Prefix"}),
            "INVALID_KEY_PREFIX",
        ),
        (
            json!({"defaultAllowedIPs": ["example.com"]}),
            "INVALID_ALLOWED_IP",
        ),
        (
            json!({"defaultAllowedIPs": ["10.0.0.0/33"]}),
            "INVALID_ALLOWED_IP",
        ),
        (
            json!({"defaultRateLimitPerSecond": 0}),
            "INVALID_RATE_LIMIT",
        ),
        (json!({"defaultExpiration": -5}), "INVALID_EXPIRATION"),
        (json!({"defaultAllowedIPs": "10.0.0.1"}), "INVALID_BODY"),
        (json!({"name": ""}), "INVALID_NAME"),
    ] {
        let r = owner
            .patch(&format!("/api/v1/workspace/{a}"), body.clone())
            .await;
        assert_eq!(r.status, 400, "{body}: {r:?}");
        assert_eq!(r.reason(), reason, "{body}");
    }
}
on_both_databases!(
    read_and_patch,
    workspaces_are_listed_read_and_patched_like_oneloop
);

async fn bad_workspace_input_gets_clear_4xx_answers(server: TestServer) {
    let owner = server.sign_in("owner@example.com").await;
    let long = "x".repeat(101);
    for (body, reason) in [
        (json!({"name": ""}), "INVALID_NAME"),
        (json!({"name": "   "}), "INVALID_NAME"),
        (json!({"name": long}), "INVALID_NAME"),
        (json!({"name": "two\nlines"}), "INVALID_NAME"),
        (json!({"name": "nul\u{0}"}), "INVALID_NAME"),
        (json!({"name": 5}), "INVALID_BODY"),
        (json!({}), "INVALID_BODY"),
        (json!([]), "INVALID_BODY"),
        (
            json!({"name": "x", "environment": "prod"}),
            "INVALID_ENVIRONMENT",
        ),
    ] {
        let r = owner.post("/api/v1/workspace", body.clone()).await;
        assert_eq!(r.status, 400, "{body}: {r:?}");
        assert_eq!(r.reason(), reason, "{body}");
        assert!(r.body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    let r = owner
        .post_raw(
            "/api/v1/workspace",
            "application/json",
            b"{\"name\":".to_vec(),
        )
        .await;
    assert_eq!((r.status, r.reason()), (400, "MALFORMED_JSON"), "{r:?}");
    let r = owner
        .post_raw(
            "/api/v1/workspace",
            "text/plain",
            b"{\"name\":\"x\"}".to_vec(),
        )
        .await;
    assert_eq!(r.status, 415, "{r:?}");
    let huge = format!("{{\"name\":\"{}\"}}", "x".repeat(70 * 1024));
    let r = owner
        .post_raw("/api/v1/workspace", "application/json", huge.into_bytes())
        .await;
    assert_eq!(r.status, 413, "{r:?}");
    // Nothing half-made.
    let list = owner.get("/api/v1/workspace").await;
    assert_eq!(list.body["workspaces"], json!([]));
    assert_eq!(
        count(
            &server,
            "SELECT COUNT(*) FROM publishable_keys WHERE $1 = $1",
            "x"
        )
        .await,
        0
    );
    // Malformed and unknown ids are plain 404s.
    for id in ["nope", UNKNOWN_ID, "../../etc"] {
        let r = owner.get(&format!("/api/v1/workspace/{id}")).await;
        assert_eq!(r.status, 404, "{id}: {r:?}");
    }
}
on_both_databases!(bad_input, bad_workspace_input_gets_clear_4xx_answers);

async fn another_organisation_sees_nothing(server: TestServer) {
    let (owner, id) = owner_with_workspace(&server, "Mine").await;
    let stranger = other_org_owner(&server, "boss@other.example").await;
    let unknown = stranger
        .get(&format!("/api/v1/workspace/{UNKNOWN_ID}"))
        .await;
    let foreign = stranger.get(&format!("/api/v1/workspace/{id}")).await;
    assert_eq!(foreign.status, 404);
    assert_eq!(foreign.body, unknown.body, "no hint that it exists");
    let list = stranger.get("/api/v1/workspace").await;
    assert_eq!(list.body["workspaces"], json!([]));
    for (method, path, body) in [
        (
            "PATCH",
            format!("/api/v1/workspace/{id}"),
            json!({"name": "mine now"}),
        ),
        (
            "GET",
            format!("/api/v1/workspace/{id}/modules"),
            json!(null),
        ),
        (
            "PUT",
            format!("/api/v1/workspace/{id}/modules"),
            json!({"modules": []}),
        ),
    ] {
        let r = match method {
            "PATCH" => stranger.patch(&path, body).await,
            "PUT" => stranger.put(&path, body).await,
            _ => stranger.get(&path).await,
        };
        assert_eq!(r.status, 404, "{method} {path}: {r:?}");
        assert_eq!(r.reason(), "NOT_FOUND");
    }
    let mine = owner.get(&format!("/api/v1/workspace/{id}")).await;
    assert_eq!(mine.body["workspace"]["name"], "Mine");
}
on_both_databases!(tenant_isolation, another_organisation_sees_nothing);

async fn members_read_but_only_admins_change(server: TestServer) {
    let owner = server.sign_in("owner@example.com").await;
    let org = org_of(&owner).await;
    let id = workspace_id(&owner, "Shared").await;
    let member = add_user(&server, &org, "member@example.com", "member").await;
    let admin = add_user(&server, &org, "admin@example.com", "admin").await;
    assert_eq!(member.get("/api/v1/workspace").await.status, 200);
    assert_eq!(
        member.get(&format!("/api/v1/workspace/{id}")).await.status,
        200
    );
    assert_eq!(
        member
            .get(&format!("/api/v1/workspace/{id}/modules"))
            .await
            .status,
        200
    );
    for r in [
        member.post("/api/v1/workspace", json!({"name": "x"})).await,
        member
            .patch(&format!("/api/v1/workspace/{id}"), json!({"name": "y"}))
            .await,
        member
            .put(
                &format!("/api/v1/workspace/{id}/modules"),
                json!({"modules": []}),
            )
            .await,
    ] {
        assert_eq!((r.status, r.reason()), (403, "ROLE_REQUIRED"), "{r:?}");
    }
    assert_eq!(
        admin
            .post("/api/v1/workspace", json!({"name": "x"}))
            .await
            .status,
        201
    );
    // Without the CSRF header a session cannot change anything.
    let mut no_csrf = owner.clone();
    no_csrf.csrf = None;
    let r = no_csrf
        .post("/api/v1/workspace", json!({"name": "z"}))
        .await;
    assert_eq!((r.status, r.reason()), (403, "CSRF_TOKEN_INVALID"));
}
on_both_databases!(roles, members_read_but_only_admins_change);

async fn sdk_keys_need_the_workspace_scope_and_stay_in_their_workspace(server: TestServer) {
    let (owner, a) = owner_with_workspace(&server, "A").await;
    let b = workspace_id(&owner, "B").await;
    let make = |scopes: serde_json::Value, ws: Option<&str>| {
        let mut body = json!({"name": "backend", "scopes": scopes});
        if let Some(ws) = ws {
            body["workspaceId"] = json!(ws);
        }
        body
    };
    let r = owner
        .post(
            "/api/v1/sdk-keys",
            make(json!({"workspace": ["read"]}), None),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let reader = owner.with_bearer(r.body["key"].as_str().unwrap());
    assert_eq!(reader.get("/api/v1/workspace").await.status, 200);
    let r = reader.post("/api/v1/workspace", json!({"name": "x"})).await;
    assert_eq!((r.status, r.reason()), (403, "MISSING_SCOPE"), "{r:?}");
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("workspace:write"));

    let r = owner
        .post(
            "/api/v1/sdk-keys",
            make(json!({"workspace": ["read", "write"]}), None),
        )
        .await;
    let writer = owner.with_bearer(r.body["key"].as_str().unwrap());
    let r = writer
        .post("/api/v1/workspace", json!({"name": "From the backend"}))
        .await;
    assert_eq!(r.status, 201, "{r:?}");

    let r = owner
        .post(
            "/api/v1/sdk-keys",
            make(json!({"workspace": ["read", "write"]}), Some(&a)),
        )
        .await;
    let bound = owner.with_bearer(r.body["key"].as_str().unwrap());
    let list = bound.get("/api/v1/workspace").await;
    assert_eq!(list.body["workspaces"].as_array().unwrap().len(), 1);
    assert_eq!(list.body["workspaces"][0]["id"], a.as_str());
    assert_eq!(
        bound.get(&format!("/api/v1/workspace/{b}")).await.status,
        404
    );
    let r = bound.post("/api/v1/workspace", json!({"name": "x"})).await;
    assert_eq!((r.status, r.reason()), (403, "WORKSPACE_BOUND_KEY"));
    // Dashboard-only routes never accept an SDK key.
    let r = writer.get(&format!("/api/v1/workspace/{a}/modules")).await;
    assert_eq!(r.status, 401, "{r:?}");
}
on_both_databases!(
    sdk_scopes,
    sdk_keys_need_the_workspace_scope_and_stay_in_their_workspace
);

/// The owner, signed in, a workspace `Shop` and the path of its catalogue.
async fn owner_and_catalogue_path(server: &TestServer) -> (Client, String, String) {
    let (owner, id) = owner_with_workspace(server, "Shop").await;
    let path = format!("/api/v1/workspace/{id}/modules");
    (owner, id, path)
}

async fn the_catalogue_is_validated_and_guards_blacklist_rules(server: TestServer) {
    let (owner, id, path) = owner_and_catalogue_path(&server).await;
    assert_eq!(owner.get(&path).await.body, json!({"modules": []}));
    let catalogue = json!({"modules": [
        {"name": "billing", "functionalities": ["charge", "refund"]},
        {"name": "orders", "functionalities": []}
    ]});
    let r = owner.put(&path, catalogue.clone()).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(owner.get(&path).await.body, catalogue);

    for (body, reason) in [
        (
            json!({"modules": [{"name": "bad name", "functionalities": []}]}),
            "INVALID_MODULE",
        ),
        (
            json!({"modules": [{"name": "a", "functionalities": ["*"]}]}),
            "INVALID_FUNCTIONALITY",
        ),
        (
            json!({"modules": [{"name": "a", "functionalities": ["x", "x"]}]}),
            "DUPLICATE_NAME",
        ),
        (
            json!({"modules": [{"name": "a", "functionalities": []}, {"name": "a", "functionalities": []}]}),
            "DUPLICATE_NAME",
        ),
        (
            json!({"modules": [{"name": "a", "functionalities": [], "extra": 1}]}),
            "INVALID_BODY",
        ),
        (json!({"modules": [], "extra": 1}), "INVALID_BODY"),
        (json!({"modules": "billing"}), "INVALID_BODY"),
    ] {
        let r = owner.put(&path, body.clone()).await;
        assert_eq!(r.status, 400, "{body}: {r:?}");
        assert_eq!(r.reason(), reason, "{body}");
    }
    let many: Vec<_> = (0..101)
        .map(|i| json!({"name": format!("m{i}"), "functionalities": []}))
        .collect();
    let r = owner.put(&path, json!({"modules": many})).await;
    assert_eq!((r.status, r.reason()), (400, "CATALOGUE_TOO_LARGE"));

    // A rule blocks billing/refund: the catalogue cannot drop it while the rule exists.
    let r = add_blacklist_rule(&owner, &id, "billing", "refund").await;
    assert_eq!(r.status, 201, "{r:?}");
    let rule = r.body["rule"]["id"].as_str().unwrap().to_owned();
    let r = owner
        .put(
            &path,
            json!({"modules": [{"name": "billing", "functionalities": ["charge"]}]}),
        )
        .await;
    assert_eq!((r.status, r.reason()), (409, "CATALOGUE_IN_USE"), "{r:?}");
    assert_eq!(owner.get(&path).await.body, catalogue, "unchanged");
    owner
        .delete(&format!(
            "/api/v1/workspace/{id}/publishable-key/blacklist/{rule}"
        ))
        .await;
    let r = owner
        .put(
            &path,
            json!({"modules": [{"name": "billing", "functionalities": ["charge"]}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
}
on_both_databases!(
    catalogue,
    the_catalogue_is_validated_and_guards_blacklist_rules
);

async fn route_maps_are_validated_stored_classified_and_sent_to_the_edge(server: TestServer) {
    let (owner, id, path) = owner_and_catalogue_path(&server).await;
    let mapped = json!({"modules": [
        {"name": "billing", "functionalities": [
            "charge",
            {"name": "refund", "routes": ["POST /billing/refunds/*"]},
            {"name": "read", "routes": ["GET,HEAD /billing/{id}", "GET /billing/*"]}
        ]},
        {"name": "public", "functionalities": [{"name": "read", "routes": ["GET /*"]}]}
    ]});
    let r = owner.put(&path, mapped.clone()).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, mapped);
    assert_eq!(
        owner.get(&path).await.body,
        mapped,
        "GET returns the same shape"
    );

    // The newest edge record carries the map.
    let record: String = keygate_control::with_db!(&server.state.db, |pool| {
        sqlx::query_scalar::<_, String>(
            "SELECT record FROM edge_outbox WHERE workspace_id = $1 ORDER BY version DESC LIMIT 1",
        )
        .bind(&id)
        .fetch_one(pool)
        .await
        .unwrap()
    });
    let record: serde_json::Value = serde_json::from_str(&record).unwrap();
    assert_eq!(
        record["routes"][0],
        json!({"module": "billing", "functionality": "refund", "routes": ["POST /billing/refunds/*"]}),
        "{record}"
    );

    // Overlaps and bad routes: 4xx naming the conflict; nothing saved.
    let conflicting = json!({"modules": [
        {"name": "billing", "functionalities": [
            {"name": "refund", "routes": ["POST /billing/{id}"]},
            {"name": "charge", "routes": ["GET,POST /Billing/{other}/"]}
        ]}
    ]});
    let r = owner.put(&path, conflicting).await;
    assert_eq!((r.status, r.reason()), (400, "ROUTE_CONFLICT"), "{r:?}");
    let message = r.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("billing/refund") && message.contains("billing/charge"),
        "{message}"
    );
    for (route, reason) in [
        ("/no/method", "ROUTE_SYNTAX"),
        ("GET /*/x", "ROUTE_WILDCARD"),
        ("get /x", "ROUTE_METHOD"),
        ("GET /a/../b", "ROUTE_SYNTAX"),
    ] {
        let body = json!({"modules": [{"name": "a", "functionalities": [{"name": "b", "routes": [route]}]}]});
        let r = owner.put(&path, body).await;
        assert_eq!((r.status, r.reason()), (400, reason), "{route}: {r:?}");
    }
    let r = owner
        .put(
            &path,
            json!({"modules": [{"name": "a", "functionalities": [{"name": "b", "routes": [], "x": 1}]}]}),
        )
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(owner.get(&path).await.body, mapped, "unchanged");

    // The "test a request" endpoint: action, blacklist, any spelling.
    let r = add_blacklist_rule(&owner, &id, "billing", "refund").await;
    assert_eq!(r.status, 201, "{r:?}");
    let classify = format!("/api/v1/workspace/{id}/routes/classify");
    let classify_as =
        |method: &str, path: &str| owner.post(&classify, json!({"method": method, "path": path}));
    for spelling in [
        "/billing/refunds/7",
        "/Billing//REFUNDS/7/",
        "/g/billing/re%66unds/7",
    ] {
        let r = classify_as("POST", spelling).await;
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.body["status"], "BLACKLISTED", "{spelling}: {r:?}");
        assert_eq!(r.body["action"]["functionality"], "refund");
        assert_eq!(r.body["allowed"], false);
    }
    let r = classify_as("GET", "/billing/42").await;
    assert_eq!(
        (
            r.body["status"].as_str(),
            r.body["action"]["route"].as_str()
        ),
        (Some("VALID"), Some("GET,HEAD /billing/{id}"))
    );
    let r = classify_as("DELETE", "/billing/42").await;
    assert_eq!(r.body["status"], "ROUTE_NOT_MAPPED");
    let r = classify_as("GET", "/a/%2e%2e/billing").await;
    assert_eq!(r.body["status"], "INVALID_PATH");
}
on_both_databases!(
    route_map,
    route_maps_are_validated_stored_classified_and_sent_to_the_edge
);
