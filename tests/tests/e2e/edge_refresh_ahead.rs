//! The isolate cache's refresh ahead (`edge/src/cache.rs`): a key checked steadily is re-read
//! from KV in the background shortly before its entry expires, so no check waits for KV once
//! a TTL (each expiry used to send the checks arriving during the KV read to KV: the
//! once-a-second stall behind the edge's half-load tail, see edge/README.md).

use std::time::{Duration, Instant};

use keygate_tests::edge::{new_key, record, Edge, EdgeOptions};

#[test]
fn a_key_checked_steadily_is_always_answered_from_the_isolate_cache() {
    const TTL_MS: u64 = 3_000;
    let edge = Edge::start(EdgeOptions {
        vars: [("KEYGATE_CACHE_TTL_MS".to_owned(), TTL_MS.to_string())].into(),
        ..EdgeOptions::default()
    });
    let key = new_key();
    assert_eq!(edge.sync(&[record(&key, "ws_steady", 1)]).status, 200);
    edge.check(key.expose(), "m", "f", None)
        .assert_verdict(200, "VALID");

    // Every 50 ms for two and a half TTLs: each entry's last quarter (750 ms) sees about a
    // dozen checks, the first of which starts the re-read. A check that came after a pause of
    // the whole machine (over 300 ms since the previous one) proves nothing either way and is
    // not judged.
    let start = Instant::now();
    let mut last = Instant::now();
    let mut judged = Vec::new();
    while start.elapsed() < Duration::from_millis(TTL_MS * 5 / 2) {
        std::thread::sleep(Duration::from_millis(50));
        let reply = edge.check(key.expose(), "m", "f", None);
        reply.assert_verdict(200, "VALID");
        let gap = last.elapsed();
        last = Instant::now();
        if gap < Duration::from_millis(300) {
            judged.push(reply.header("x-keygate-lookup").unwrap_or("").to_owned());
        }
    }
    let elsewhere: Vec<(usize, &String)> = judged
        .iter()
        .enumerate()
        .filter(|(_, l)| l.as_str() != "cache")
        .collect();
    assert!(
        judged.len() >= 20,
        "too few checks judged ({}): the machine is too busy",
        judged.len()
    );
    assert!(
        elsewhere.is_empty(),
        "{} of {} checks were not answered from the cache: {elsewhere:?}",
        elsewhere.len(),
        judged.len()
    );
}
