//! Every answer of the server carries the security headers: dashboard pages and assets, API
//! answers and errors alike (one tower-http layer over the whole router).

use crate::common::TestServer;
use keygate_control::http::SECURITY_HEADERS;

#[tokio::test]
async fn pages_assets_api_answers_and_errors_all_carry_the_security_headers() {
    let server = TestServer::start().await;
    let anon = server.anonymous();
    let owner = server.sign_in("owner@example.com").await;
    let answers = [
        ("page", anon.send("GET", "/", None).await),
        ("asset", anon.get("/assets/app.js").await),
        ("missing asset", anon.get("/assets/nope.js").await),
        ("health", anon.get("/healthz").await),
        ("API answer", owner.get("/api/v1/me").await),
        ("API error", anon.get("/api/v1/me").await),
        ("unknown route", anon.get("/api/v1/nope").await),
    ];
    for (what, r) in answers {
        assert!(r.status < 500, "{what}: {r:?}");
        for (name, value) in SECURITY_HEADERS {
            assert_eq!(
                r.headers.get(*name).and_then(|v| v.to_str().ok()),
                Some(*value),
                "{what} lacks {name}"
            );
        }
    }
    let csp = keygate_control::dashboard::CONTENT_SECURITY_POLICY;
    assert!(!csp.contains("unsafe"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
}
