//! The fuzz targets, briefly, as part of the test suite (`cargo xtask fuzz` runs millions).

use std::time::{Duration, Instant};

use keygate_fuzz::{run_one, run_target, TARGETS};

#[test]
fn every_target_survives_a_short_run() {
    // About 0.4 s per target in a debug build: a smoke run, not the real thing.
    for (i, target) in TARGETS.iter().enumerate() {
        let outcome = run_target(
            target,
            0xC0FFEE + i as u64,
            200_000,
            Some(Instant::now() + Duration::from_millis(400)),
        );
        assert!(
            outcome.inputs > 100,
            "{} ran only {} inputs",
            target.name,
            outcome.inputs
        );
        if let Some(f) = outcome.failure {
            panic!(
                "{}: {} on input {:?}",
                f.target,
                f.message,
                String::from_utf8_lossy(&f.input)
            );
        }
    }
}

#[test]
fn the_oracles_catch_what_they_guard() {
    // A target whose property fails is reported as a failure with its input, not swallowed.
    let target = keygate_fuzz::Target {
        name: "always-fails",
        seeds: || vec![b"x".to_vec()],
        dictionary: &[],
        run: |input| assert!(input.is_empty(), "non-empty input"),
    };
    let f = run_one(&target, b"abc").unwrap_err();
    assert_eq!(f.input, b"abc");
    assert!(f.message.contains("non-empty input"));
    let outcome = run_target(&target, 1, 10, None);
    assert!(outcome.failure.is_some());
    assert_eq!(outcome.inputs, 1, "the run stops at the first failure");
}
