//! The customer portal in a real browser against the real server.
//!
//! Starts `keygate serve` (the real binary, SQLite in a temporary data directory), makes a
//! workspace with a scope, its portal policy and an SDK key through the API, then link tokens
//! for two customers with that SDK key (and one that expires after a second, minted while the
//! server runs with `KEYGATE_LINK_TOKEN_TTL_SECS=1`), and runs `tests/browser/portal.mjs`:
//! Debian's Chromium driven by `playwright-core` opens `/portal#token=…`, creates a key (value
//! shown once, copied), rolls it, revokes it (each checked with a real verify), checks that the
//! second customer sees none of the first's keys, the phone width, and the expired link's
//! message, the dashboard's portal policy page, and that only the workspace's allowed origin
//! can frame the portal. Screenshots go to `target/screenshots/portal-*.png`.
//!
//! Needs `/usr/bin/chromium`, `node` and the npm packages (`cargo xtask install`).

use crate::browser;
use keygate_tests::control::{ControlOptions, Keygate, Session};
use serde_json::{json, Value};

const STEPS: &[&str] = &[
    "open-with-fragment",
    "create-key-shown-once",
    "roll-key",
    "revoke-key",
    "another-customer-sees-none-of-it",
    "phone-width",
    "expired-link",
    "policy-page",
    "framed-only-by-allowed-origins",
    "no-console-errors",
];

/// An edge secret for the restarts (no edge runs in this test).
const UNUSED_EDGE_SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// A link token for `customer` in `workspace`, made by the platform's backend with its SDK key.
fn link_token(server: &Keygate, sdk_key: &str, workspace: &str, customer: &str) -> String {
    let body = json!({ "customerId": customer, "workspaceId": workspace }).to_string();
    let mut res = ureq::post(format!("{}/api/v1/link-token", server.url))
        .header("authorization", &format!("Bearer {sdk_key}"))
        .header("content-type", "application/json")
        .send(body.as_bytes())
        .expect("POST /api/v1/link-token");
    let text = res.body_mut().read_to_string().expect("a body");
    let body: Value = serde_json::from_str(&text).expect("JSON");
    body["token"].as_str().expect("token").to_owned()
}

/// A workspace with the scope `orders`, a portal policy allowing it, and an SDK key that may
/// manage API keys: (workspace id, SDK key).
fn platform(owner: &Session) -> (String, String) {
    let ws = owner.write("POST", "/api/v1/workspace", json!({ "name": "Acme Cloud" }));
    let ws = ws["workspace"]["id"]
        .as_str()
        .expect("workspace id")
        .to_owned();
    owner.write(
        "POST",
        &format!("/api/v1/workspace/{ws}/scope"),
        json!({ "name": "Orders", "representation": "orders", "description": "Orders API" }),
    );
    owner.write(
        "PUT",
        &format!("/api/v1/workspace/{ws}/portal-policy"),
        json!({ "allowedScopes": [{ "representation": "orders", "read": true, "create": true }],
                "maxExpiryMs": 90_i64 * 86_400_000, "maxUsage": null, "maxLiveKeys": 3 }),
    );
    let sdk = owner.write(
        "POST",
        "/api/v1/sdk-keys",
        json!({ "name": "platform backend", "scopes": { "api_keys": ["read", "write"] } }),
    );
    (ws, sdk["key"].as_str().expect("SDK key").to_owned())
}

#[test]
fn customers_manage_their_own_keys_in_a_real_browser() {
    let mut server = Keygate::start(ControlOptions::default());
    let owner = server.sign_in("owner@example.com");
    let (ws, sdk_key) = platform(&owner);

    // A token that lives one second, minted by a server configured so.
    server.restart_with(UNUSED_EDGE_SECRET, &[("KEYGATE_LINK_TOKEN_TTL_SECS", "1")]);
    let expired = link_token(&server, &sdk_key, &ws, "carol");
    std::thread::sleep(std::time::Duration::from_millis(1_500));
    server.restart_with(UNUSED_EDGE_SECRET, &[]);
    let alice = link_token(&server, &sdk_key, &ws, "alice");
    let bob = link_token(&server, &sdk_key, &ws, "bob");

    // The platform's own site embeds the portal as the policy page's snippet says. One page
    // server, two origins: `127.0.0.1:port`, which the workspace allows, and `localhost:port`,
    // which it does not.
    let snippet = format!(
        r#"<!doctype html><title>platform</title><iframe id="portal" style="width:900px;height:700px" src="{}/portal?workspace={ws}#token={alice}"></iframe>"#,
        server.url
    );
    let port = serve_page(snippet);
    let (embed_allowed, embed_refused) = (
        format!("http://127.0.0.1:{port}"),
        format!("http://localhost:{port}"),
    );
    owner.write(
        "PATCH",
        &format!("/api/v1/workspace/{ws}/publishable-key"),
        json!({ "allowedOrigins": [embed_allowed] }),
    );

    let root = keygate_tests::edge::root();
    let mut script = browser::script(&root, "portal.mjs");
    script
        .env("KEYGATE_URL", &server.url)
        .env("KEYGATE_SDK_KEY", &sdk_key)
        .env("PORTAL_ALICE", &alice)
        .env("PORTAL_BOB", &bob)
        .env("PORTAL_EXPIRED", &expired)
        .env("KEYGATE_COOKIE", owner.cookie())
        .env("KEYGATE_WORKSPACE", &ws)
        .env("PORTAL_EMBED_ALLOWED", &embed_allowed)
        .env("PORTAL_EMBED_REFUSED", &embed_refused)
        .env("KEYGATE_ARTIFACTS", root.join("target/screenshots"));
    browser::run_steps(script, STEPS);
}

/// Serves `html` to every request on a loopback port (returned) for the rest of the test.
fn serve_page(html: String) -> u16 {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let port = listener.local_addr().expect("its address").port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut request = [0_u8; 4096];
            let _ = stream.read(&mut request);
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                html.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(html.as_bytes());
        }
    });
    port
}
