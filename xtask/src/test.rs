//! `cargo xtask test`: the whole suite, as CI runs it.

use crate::cmd::{self, Result};
use crate::tools;

/// Installs tools, then runs fmt, clippy, every test and the wasm builds.
pub fn run_suite() -> Result {
    tools::ensure_all()?;
    cmd::run("cargo", &["fmt", "--all", "--", "--check"])?;
    cmd::run(
        "cargo",
        &[
            "clippy",
            "--workspace",
            "--exclude",
            "keygate-edge",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    cmd::run(
        "cargo",
        &[
            "build",
            "-p",
            "keygate-shared",
            "--target",
            "wasm32-unknown-unknown",
            "--release",
        ],
    )?;
    // The edge worker: lints (wasm32 and native), unit tests, then the real build that the
    // end-to-end tests in `tests/` run under miniflare.
    crate::edge::lint_and_unit_test()?;
    crate::edge::build()?;
    cmd::run(
        "cargo",
        &["test", "--workspace", "--exclude", "keygate-edge"],
    )?;
    Ok(())
}

/// `cargo xtask test`.
pub fn run(args: &[String]) -> Result {
    if !args.is_empty() {
        return Err(format!("unknown arguments {args:?}"));
    }
    run_suite()
}

/// `cargo xtask bench`: the criterion benchmarks quoted in the README.
pub fn bench(args: &[String]) -> Result {
    let mut cargo_args = vec!["bench", "-p", "keygate-shared", "--bench", "hot_paths"];
    if !args.is_empty() {
        cargo_args.push("--");
        cargo_args.extend(args.iter().map(String::as_str));
    }
    cmd::run("cargo", &cargo_args)
}
