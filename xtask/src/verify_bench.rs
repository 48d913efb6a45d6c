//! `cargo xtask bench-verify`: the load benchmark of customer API-key verify
//! (`control/benches/verify_load.rs`): release build, SQLite, loopback only, bounded in time.
//! Tune with `KEYGATE_BENCH_SECONDS`, `KEYGATE_BENCH_CONNECTIONS` and `KEYGATE_BENCH_RATE`.

use crate::cmd::{run, Result};

/// Builds and runs the benchmark; it fails if any usage count comes out wrong.
pub fn run_bench(args: &[String]) -> Result {
    if !args.is_empty() {
        return Err(format!(
            "bench-verify takes no arguments (got {args:?}); use the KEYGATE_BENCH_* variables"
        ));
    }
    run(
        "cargo",
        &["bench", "-p", "keygate-control", "--bench", "verify_load"],
    )
}
