//! `/openapi.json` lists exactly what the router serves.

mod common;

use common::TestServer;
use keygate_control::openapi::ROUTES;

#[tokio::test]
async fn every_documented_route_is_served() {
    let server = TestServer::start().await;
    let anon = server.anonymous();
    for (method, path, ..) in ROUTES {
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
            "{method} {path} is documented but not served: {r:?}"
        );
        assert!(r.status < 500, "{method} {path}: {r:?}");
    }
    let doc = anon.get("/openapi.json").await;
    assert_eq!(doc.status, 200);
    assert_eq!(doc.body["openapi"], "3.1.0");
    assert!(doc.body["paths"]["/api/v1/api-key/verify"]["post"]["summary"].is_string());
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
