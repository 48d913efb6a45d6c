//! `cargo xtask bench-control`: the load benchmark of the control plane's listing, dashboard
//! reads, publishable-key revokes and API-key rotations (`control/benches/control_load.rs`):
//! release build, SQLite, loopback only, bounded in time and requests. Tune with
//! `KEYGATE_BENCH_SECONDS` and `KEYGATE_BENCH_CONNECTIONS`.

use crate::cmd::{run, Result};

/// Builds and runs the benchmark; it fails on any 5xx or if what was stored comes out wrong.
pub fn run_bench(args: &[String]) -> Result {
    if !args.is_empty() {
        return Err(format!(
            "bench-control takes no arguments (got {args:?}); use the KEYGATE_BENCH_* variables"
        ));
    }
    run(
        "cargo",
        &["bench", "-p", "keygate-control", "--bench", "control_load"],
    )
}
