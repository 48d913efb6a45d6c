//! The gateway route map (issue 14) on the real worker under workerd (miniflare): the edge
//! decides the action from the method and path, refuses what the map does not name, and the
//! origin sees only what was allowed.

use keygate_shared::route::RouteBinding;
use keygate_tests::edge::servers::Origin;
use keygate_tests::edge::{add_rule, gateway_to_origin, Edge};

fn bind(module: &str, functionality: &str, routes: &[&str]) -> RouteBinding {
    RouteBinding {
        module: module.into(),
        functionality: functionality.into(),
        routes: routes.iter().map(|s| s.to_string()).collect(),
    }
}

/// A gateway (see `gateway_to_origin`) for `workspace` whose key blacklists billing/refund
/// and maps `routes`.
fn mapped(
    workspace: &str,
    routes: Vec<RouteBinding>,
) -> (Edge, Origin, keygate_shared::key::SecretKey) {
    gateway_to_origin(workspace, |r| {
        add_rule(r, "billing", "refund");
        r.routes = routes;
    })
}

fn call(edge: &Edge, method: &str, path: &str, key: &str) -> keygate_tests::edge::Reply {
    edge.request(method, path, &[("x-publishable-key", key)], None)
}

fn body(r: &keygate_tests::edge::Reply) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

#[test]
fn a_mapped_workspace_refuses_unmapped_and_blacklisted_routes_under_any_spelling() {
    let (edge, origin, key) = mapped(
        "ws_map",
        vec![
            bind("billing", "refund", &["POST /billing/refunds/*"]),
            bind("billing", "charge", &["POST /billing/charges"]),
            bind("billing", "read", &["GET /billing/{id}"]),
        ],
    );
    let k = key.expose();

    // Unmapped: 404 ROUTE_NOT_MAPPED, never forwarded.
    for (method, path) in [
        ("GET", "/g/admin/users"),
        ("DELETE", "/g/billing/charges"),
        ("GET", "/g/billing/42/extra"),
        ("GET", "/g/"),
    ] {
        let reply = call(&edge, method, path, k);
        assert_eq!(
            (reply.status, reply.reason().as_str()),
            (404, "ROUTE_NOT_MAPPED"),
            "{method} {path}: {}",
            body(&reply)
        );
    }
    // The blacklisted route under every spelling: refused (403 BLACKLISTED, or 400 for
    // spellings an origin could read as another path).
    for path in [
        "/g/billing/refunds/1",
        "/g/Billing/REFUNDS/1",
        "/g/billing/refunds",
        "/g/billing/refunds/",
        "/g/billing//refunds//1",
        "//g/billing/refunds/1",
        "/g/%62illing/re%66unds/1",
        "/g/BILL%49NG/refunds/1",
        "/g/billing/x/../refunds/1",
        "/g/billing/%2e%2e/billing/refunds/1",
        "/g/billing/./refunds/1",
        "/g/billing%2Frefunds/1",
        "/g/billing/refunds%2F1",
        "/g/billing/%2561/../refunds",
    ] {
        let reply = call(&edge, "POST", path, k);
        assert!(
            matches!(
                (
                    reply.status,
                    reply.reason().as_str(),
                    reply.verdict().as_str()
                ),
                (403, _, "BLACKLISTED") | (400, "INVALID_PATH", _) | (404, _, _)
            ),
            "{path}: {} {}",
            reply.status,
            body(&reply)
        );
        assert_ne!(reply.status, 200, "{path}");
    }
    assert!(
        origin.received().is_empty(),
        "a refused call reached the origin: {:?}",
        origin.received()
    );

    // Allowed routes are forwarded, under the derived labels, canonical path, signed.
    let reply = call(&edge, "POST", "/g/Billing//charges/?x=1", k);
    assert_eq!(reply.status, 200, "{}", body(&reply));
    let reply = call(&edge, "GET", "/g/billing/a%20b", k);
    assert_eq!(reply.status, 200, "{}", body(&reply));
    let got = origin.received();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].method, "POST");
    assert_eq!(got[0].path_and_query, "/Billing/charges?x=1");
    assert_eq!(got[0].headers["x-keygate-module"], "billing");
    assert_eq!(got[0].headers["x-keygate-functionality"], "charge");
    assert!(got[0].signature_ok);
    assert_eq!(got[1].path_and_query, "/billing/a%20b");
    assert_eq!(got[1].headers["x-keygate-functionality"], "read");
    assert!(got[1].signature_ok);

    // A bad key is refused before the map is consulted.
    let reply = call(&edge, "POST", "/g/billing/charges", "pk_live_nope");
    assert_eq!(reply.status, 401, "{}", body(&reply));
}

#[test]
fn labelled_calls_must_agree_with_the_map() {
    let (edge, origin, key) = mapped(
        "ws_lbl",
        vec![
            bind("billing", "refund", &["POST /billing/refunds/*"]),
            bind("public", "read", &["GET /docs/*"]),
        ],
    );
    let k = key.expose();
    // The attack: innocuous labels, a blacklisted path.
    for path in [
        "/x/public/read/billing/refunds/1",
        "/x/public/read/BILLING/refunds",
        "/x/public/read/billing//refunds/",
    ] {
        let reply = call(&edge, "POST", path, k);
        assert_eq!(
            (reply.status, reply.reason().as_str()),
            (403, "ROUTE_MISMATCH"),
            "{path}: {}",
            body(&reply)
        );
    }
    let reply = call(&edge, "GET", "/x/public/read/admin", k);
    assert_eq!(
        (reply.status, reply.reason().as_str()),
        (404, "ROUTE_NOT_MAPPED")
    );
    assert!(origin.received().is_empty(), "{:?}", origin.received());
    // Labels that agree (in any case) are forwarded.
    let reply = call(&edge, "GET", "/x/Public/READ/docs/intro", k);
    assert_eq!(reply.status, 200, "{}", body(&reply));
    assert_eq!(origin.received()[0].path_and_query, "/docs/intro");
}

#[test]
fn without_a_map_the_labelled_form_is_unchanged_and_the_classified_form_is_refused() {
    let (edge, origin, key) = gateway_to_origin("ws_nomap", |_| ());
    let reply = call(&edge, "GET", "/x/a/b/any/path", key.expose());
    assert_eq!(reply.status, 200, "{}", body(&reply));
    let reply = call(&edge, "GET", "/g/any/path", key.expose());
    assert_eq!(
        (reply.status, reply.reason().as_str()),
        (404, "ROUTE_NOT_MAPPED")
    );
    assert_eq!(origin.received().len(), 1);
}

#[test]
fn a_map_saved_on_the_control_plane_reaches_the_edge_and_decides_end_to_end() {
    use serde_json::json;
    use std::time::{Duration, Instant};
    const SECRET: &str = "e2e-route-map-edge-secret-0123456789abcdef";
    let (edge, control) = keygate_tests::system::wired(SECRET);
    let owner = control.sign_in("owner@example.com");
    let id = owner.create_workspace("Shop");
    let pk_path = format!("/api/v1/workspace/{id}/publishable-key");
    let key = owner.publishable_key(&id);
    let origin = Origin::start_with_secrets(owner.gateway_secrets(&id));
    owner.write("PATCH", &pk_path, json!({"originUrl": origin.url}));
    owner.write(
        "PUT",
        &format!("/api/v1/workspace/{id}/modules"),
        json!({"modules": [{"name": "billing", "functionalities": [
            {"name": "refund", "routes": ["POST /billing/refunds/*"]},
            {"name": "charge", "routes": ["POST /billing/charges"]}
        ]}]}),
    );
    owner.write(
        "POST",
        &format!("{pk_path}/blacklist"),
        json!({"module": "billing", "functionality": "refund"}),
    );
    // The record travels through the outbox to the edge.
    let start = Instant::now();
    loop {
        let r = call(&edge, "POST", "/g/billing/charges", &key);
        if r.status == 200 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "still {} {}",
            r.status,
            body(&r)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The map and the rule are two writes, so two records: wait (on /v1/check, which never
    // forwards) until the edge holds the rule too, or a refund could reach the origin through
    // the map alone.
    edge.until_verdict(
        &key,
        ("billing", "refund"),
        "BLACKLISTED",
        Duration::from_secs(10),
    );
    let start = Instant::now();
    loop {
        let r = call(&edge, "POST", "/g/Billing/REFUNDS/1", &key);
        if r.status == 403 {
            assert_eq!(r.verdict(), "BLACKLISTED");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{}", body(&r));
        std::thread::sleep(Duration::from_millis(50));
    }
    let r = call(&edge, "GET", "/g/admin", &key);
    assert_eq!((r.status, r.reason().as_str()), (404, "ROUTE_NOT_MAPPED"));
    let r = call(&edge, "POST", "/x/billing/charge/billing/refunds/1", &key);
    assert_eq!((r.status, r.reason().as_str()), (403, "ROUTE_MISMATCH"));
    let got = origin.received();
    assert!(!got.is_empty());
    for g in &got {
        assert_eq!(g.path_and_query, "/billing/charges", "{got:?}");
        assert_eq!(g.headers["x-keygate-functionality"], "charge");
    }
}
