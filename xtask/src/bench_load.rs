//! `cargo xtask bench-verify` and `cargo xtask bench-control`: the control plane's load
//! benchmarks (`control/benches/`), release build, SQLite, loopback only, bounded in time and
//! requests; each fails on any 5xx or if what was stored comes out wrong. Tune with
//! `KEYGATE_BENCH_SECONDS`, `KEYGATE_BENCH_CONNECTIONS` and (verify) `KEYGATE_BENCH_RATE`.
//!
//! - `verify_load`: customer API-key verify.
//! - `control_load`: listing, dashboard reads, publishable-key revokes and API-key rotations.

use crate::cmd::{run, Result};

/// Builds and runs the benchmark `bench` (`verify_load` or `control_load`) for the command
/// `command`, which takes no arguments.
pub fn run_bench(command: &str, bench: &str, args: &[String]) -> Result {
    if !args.is_empty() {
        return Err(format!(
            "{command} takes no arguments (got {args:?}); use the KEYGATE_BENCH_* variables"
        ));
    }
    run(
        "cargo",
        &["bench", "-p", "keygate-control", "--bench", bench],
    )
}
