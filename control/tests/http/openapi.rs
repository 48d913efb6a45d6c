//! `/openapi.json` and the router list the same operations, and described operations carry
//! their request and response schemas.

use std::collections::BTreeSet;

use crate::common::TestServer;

/// The public HTTP contract: every operation the server answers. Adding a route means adding
/// it here and to the document (by registering it with `routes!`); the two tests below fail
/// otherwise.
const OPERATIONS: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
    ("post", "/api/v1/auth/otp"),
    ("post", "/api/v1/auth/session"),
    ("delete", "/api/v1/auth/session"),
    ("get", "/api/v1/me"),
    ("post", "/api/v1/auth/step-up"),
    ("delete", "/api/v1/auth/step-up"),
    ("post", "/api/v1/auth/step-up/verify"),
    ("post", "/api/v1/auth/switch"),
    ("get", "/api/v1/members"),
    ("post", "/api/v1/members"),
    ("patch", "/api/v1/members/{id}"),
    ("delete", "/api/v1/members/{id}"),
    ("get", "/api/v1/audit-events"),
    ("get", "/api/v1/workspace"),
    ("post", "/api/v1/workspace"),
    ("get", "/api/v1/workspace/{id}"),
    ("patch", "/api/v1/workspace/{id}"),
    ("get", "/api/v1/workspace/{id}/modules"),
    ("put", "/api/v1/workspace/{id}/modules"),
    ("post", "/api/v1/workspace/{id}/routes/classify"),
    ("get", "/api/v1/workspace/{id}/scopes"),
    ("post", "/api/v1/workspace/{id}/scope"),
    ("post", "/api/v1/api-key"),
    ("get", "/api/v1/workspace/{id}/api-key"),
    ("get", "/api/v1/workspace/{id}/api-key/{akid}"),
    ("patch", "/api/v1/workspace/{id}/api-key/{akid}"),
    ("delete", "/api/v1/workspace/{id}/api-key/{akid}"),
    ("post", "/api/v1/workspace/{id}/api-key/{akid}/rotate"),
    ("post", "/api/v1/workspace/{id}/api-key/{akid}/refill"),
    ("post", "/api/v1/api-key/verify"),
    ("post", "/api/v1/link-token"),
    ("get", "/api/v1/link-token/{token}"),
    ("get", "/api/v1/portal/session"),
    ("get", "/api/v1/portal/api-key"),
    ("post", "/api/v1/portal/api-key"),
    ("post", "/api/v1/portal/api-key/{akid}/rotate"),
    ("delete", "/api/v1/portal/api-key/{akid}"),
    ("get", "/api/v1/workspace/{id}/portal-policy"),
    ("put", "/api/v1/workspace/{id}/portal-policy"),
    ("get", "/api/v1/usage/{billingId}"),
    ("get", "/api/v1/workspace/{id}/usage"),
    ("get", "/api/v1/workspace/{id}/api-key/{akid}/usage"),
    ("get", "/api/v1/workspace/{id}/billing-usage"),
    ("get", "/api/v1/workspace/{id}/publishable-key"),
    ("patch", "/api/v1/workspace/{id}/publishable-key"),
    ("post", "/api/v1/workspace/{id}/publishable-key/revoke"),
    ("post", "/api/v1/workspace/{id}/publishable-key/blacklist"),
    (
        "delete",
        "/api/v1/workspace/{id}/publishable-key/blacklist/{ruleId}",
    ),
    ("get", "/api/v1/workspace/{id}/gateway-secret"),
    ("post", "/api/v1/workspace/{id}/gateway-secret/rotate"),
    ("get", "/api/v1/workspace/{id}/sdk-access-key"),
    ("post", "/api/v1/workspace/{id}/sdk-access-key/reveal"),
    (
        "post",
        "/api/v1/workspace/{id}/sdk-access-key/reveal/verify",
    ),
    ("post", "/api/v1/workspace/{id}/sdk-access-key/rotate"),
    ("get", "/api/v1/workspace/{id}/tokens"),
    ("post", "/api/v1/workspace/{id}/tokens"),
    ("delete", "/api/v1/workspace/{id}/tokens/{tokenId}"),
    ("get", "/api/v1/sdk-keys"),
    ("post", "/api/v1/sdk-keys"),
    ("delete", "/api/v1/sdk-keys/{id}"),
    ("post", "/api/v1/sdk-keys/{id}/reveal"),
    ("post", "/api/v1/sdk-keys/{id}/reveal/verify"),
    ("get", "/api/v1/edge/records/{digest}"),
];

fn documented(doc: &serde_json::Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            if ["get", "put", "post", "delete", "patch", "head", "options"]
                .contains(&method.as_str())
            {
                ops.insert((method.clone(), path.clone()));
            }
        }
    }
    ops
}

#[tokio::test]
async fn the_document_and_the_router_list_the_same_operations() {
    let server = TestServer::start().await;
    let anon = server.anonymous();
    let doc = anon.get("/openapi.json").await;
    assert_eq!(doc.status, 200);
    assert_eq!(doc.body["openapi"], "3.1.0");
    let expected: BTreeSet<(String, String)> = OPERATIONS
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    let in_doc = documented(&doc.body);
    // Operations outside /api/v1 (health, metrics, the document) may be undocumented.
    let in_doc_api: BTreeSet<_> = in_doc
        .iter()
        .filter(|(_, p)| p.starts_with("/api/"))
        .cloned()
        .collect();
    let expected_api: BTreeSet<_> = expected
        .iter()
        .filter(|(_, p)| p.starts_with("/api/"))
        .cloned()
        .collect();
    assert_eq!(
        in_doc_api.difference(&expected_api).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "documented but not in the contract list"
    );
    assert_eq!(
        expected_api.difference(&in_doc_api).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "in the contract list but not documented"
    );
    // Every listed operation is served: the router answers neither 404 ROUTE_NOT_FOUND nor
    // 405 for it, and never a 5xx.
    for (method, path) in OPERATIONS {
        let concrete = path
            .split('/')
            .map(|seg| {
                if seg.starts_with('{') {
                    "01900000-0000-7000-8000-000000000000"
                } else {
                    seg
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        let r = anon.send(&method.to_uppercase(), &concrete, None).await;
        assert!(
            !matches!(r.reason(), "ROUTE_NOT_FOUND" | "METHOD_NOT_ALLOWED"),
            "{method} {path} is listed but not served: {r:?}"
        );
        assert!(r.status < 500, "{method} {path}: {r:?}");
    }
}

#[tokio::test]
async fn described_operations_name_their_bodies() {
    let doc = keygate_control::openapi::document();
    for (method, path) in documented(doc) {
        if !path.starts_with("/api/") {
            continue;
        }
        let op = &doc["paths"][&path][&method];
        let ok = op["responses"]
            .as_object()
            .expect("responses")
            .iter()
            .find(|(status, _)| status.starts_with('2'))
            .unwrap_or_else(|| panic!("{method} {path} has no 2xx response"));
        assert!(
            ok.0 == "204" || ok.1["content"]["application/json"]["schema"].is_object(),
            "{method} {path}: its {} answer has no schema",
            ok.0
        );
        if ["post", "put", "patch"].contains(&method.as_str()) && !op["requestBody"].is_object() {
            // Bodyless writes (revoke, rotate, reveal) say so in their summary; none may
            // silently accept an undocumented body.
            assert!(
                op["description"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("No request body"),
                "{method} {path} documents no request body"
            );
        }
    }
}

#[tokio::test]
async fn undocumented_paths_are_not_served() {
    let server = TestServer::start().await;
    let r = server
        .anonymous()
        .get("/api/v1/workspace/x/secret-admin")
        .await;
    assert_eq!(r.reason(), "ROUTE_NOT_FOUND");
}

#[test]
fn the_markdown_reference_is_current() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/http-api.md");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == keygate_control::openapi::markdown(),
        "docs/http-api.md is stale: run `cargo run -p keygate-control --bin keygate -- openapi --markdown > docs/http-api.md`"
    );
}
