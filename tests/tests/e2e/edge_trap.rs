//! The worker's entry module (`edge/js/entry.mjs`) recovers from a wasm trap: the request that
//! trapped fails, the next one is served by a fresh instance of the module. Run after
//! `cargo xtask build-edge` (`cargo xtask test` does both).

use keygate_tests::edge::{new_key, record, Edge, EdgeOptions};

#[test]
fn a_trap_in_one_request_does_not_break_the_next() {
    let edge = Edge::start(EdgeOptions {
        selftest: true,
        ..EdgeOptions::default()
    });
    let key = new_key();
    assert_eq!(edge.sync(&[record(&key, "ws_trap", 1)]).status, 200);
    let first = edge.check(key.expose(), "billing", "charge", None);
    assert_eq!(first.verdict(), "VALID");
    // An unknown (well-formed) key is remembered by the isolate only (its negative cache;
    // the change log knows nothing of it): the lookup header tells whether the instance that
    // answers is the one that looked it up.
    let unknown = new_key();
    assert_eq!(lookup_of(&edge, unknown.expose()), "miss");
    assert_eq!(lookup_of(&edge, unknown.expose()), "cache");

    for round in 0..2 {
        let trap = edge.request("POST", "/__keygate/selftest/trap", &[], Some(b"{}"));
        assert_eq!(
            trap.status, 500,
            "round {round}: the trapping request fails"
        );

        let health = edge.request("GET", "/healthz", &[], None);
        assert_eq!(health.status, 200, "round {round}");
        assert_eq!(health.json()["status"], "ok");
        // A fresh instance: its isolate cache forgot the unknown key.
        assert_eq!(lookup_of(&edge, unknown.expose()), "miss", "round {round}");
        assert_eq!(lookup_of(&edge, unknown.expose()), "cache", "round {round}");
        let check = edge.check(key.expose(), "billing", "charge", None);
        assert_eq!(check.verdict(), "VALID", "round {round}");
    }
}

fn lookup_of(edge: &Edge, key: &str) -> String {
    let reply = edge.check(key, "billing", "charge", None);
    assert_eq!(reply.verdict(), "INVALID");
    reply.header("x-keygate-lookup").unwrap_or("").to_owned()
}

#[test]
fn the_trap_route_is_off_unless_the_selftest_is_enabled() {
    let edge = Edge::start_default();
    let reply = edge.request("POST", "/__keygate/selftest/trap", &[], Some(b"{}"));
    assert_eq!((reply.status, reply.reason().as_str()), (404, "NOT_FOUND"));
}
