//! Every route, called with garbage by a signed-in owner and by an all-scopes SDK key,
//! answers a 4xx in the JSON error shape: never a 5xx, never a panic, never HTML.

use crate::common::{TestServer, ALL_SCOPES};
use crate::keys_support::owner_with_workspace;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_never_gets_a_5xx() {
    let server = TestServer::start().await;
    let (owner, ws) = owner_with_workspace(&server, "Shop").await;
    let sdk = owner.sdk_client(ALL_SCOPES, None).await;
    let long = "x".repeat(5000);
    let ids = [
        ws.as_str(),
        "not-an-id",
        "00000000-0000-0000-0000-000000000000",
        "%00",
        "..%2F..%2Fetc",
        long.as_str(),
        "🔑",
    ];
    let bodies: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"null".to_vec(),
        b"[]".to_vec(),
        b"\"string\"".to_vec(),
        b"{\"name\": 1e999999}".to_vec(),
        b"{\"name\": \"\\u0000\", \"email\": \"\\ud800\"}".to_vec(),
        vec![0xff, 0xfe, 0x00, 0x7b],
        format!("{}1{}", "[".repeat(200), "]".repeat(200)).into_bytes(),
        json!({"name": long, "key": long, "module": long, "functionality": "*", "code": "123456", "challengeId": "x",
               "scopes": {"workspace": ["admin"]}, "allowedOrigins": ["javascript:alert(1)"], "originUrl": "file:///etc/passwd",
               "workspaceId": "🔑", "requestedScopes": [{"representation": long}], "amount": -5, "expiresAt": -1,
               "role": "owner", "email": "a@b.c"}).to_string().into_bytes(),
    ];
    let mut calls = 0;
    // Signing out last, so the session stays valid for every other route.
    let routes = keygate_control::openapi::operations()
        .into_iter()
        .filter(|(m, p)| p.starts_with("/api/") && !(m == "delete" && p == "/api/v1/auth/session"));
    for (method, path) in routes {
        for id in ids {
            let concrete: String = path
                .split('/')
                .map(|seg| if seg.starts_with('{') { id } else { seg })
                .collect::<Vec<_>>()
                .join("/");
            for client in [&owner, &sdk] {
                for body in &bodies {
                    let r = client
                        .send(
                            &method.to_uppercase(),
                            &concrete,
                            Some(("application/json", body.clone())),
                        )
                        .await;
                    calls += 1;
                    assert!(
                        r.status < 500,
                        "{method} {concrete} with {:?}: {} {}",
                        String::from_utf8_lossy(body)
                            .chars()
                            .take(80)
                            .collect::<String>(),
                        r.status,
                        r.text
                    );
                    if r.status >= 400 && !concrete.starts_with("/api/v1/edge/") {
                        assert!(
                            r.body["error"]["reason"].is_string(),
                            "{method} {concrete}: not the error shape: {}",
                            r.text
                        );
                    }
                }
            }
        }
    }
    assert!(calls > 5000, "{calls}");
    // The server is still healthy and the owner still signed in.
    assert_eq!(owner.get("/api/v1/me").await.status, 200);
}

#[tokio::test]
async fn a_path_segment_that_is_not_utf8_gets_a_json_error() {
    let server = TestServer::start().await;
    let owner = server.sign_in("owner@example.com").await;
    for path in [
        "/api/v1/usage/%00%ff",
        "/api/v1/workspace/%ff",
        "/api/v1/link-token/%c3%28",
    ] {
        let r = owner.get(path).await;
        assert_eq!(
            (r.status, r.reason()),
            (400, "INVALID_REQUEST"),
            "{path}: {r:?}"
        );
        assert_eq!(r.body["error"]["code"], 400, "{path}");
    }
}
