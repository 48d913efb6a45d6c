//! `cargo xtask test`: the whole suite, as CI runs it.

use crate::cmd::{self, Result};
use crate::tools;

/// Installs tools, then runs fmt, clippy, every test and the wasm builds.
pub fn run_suite() -> Result {
    tools::ensure_all()?;
    cmd::run("cargo", &["fmt", "--all", "--", "--check"])?;
    cmd::clippy(&["--workspace", "--exclude", "keygate-edge", "--all-targets"])?;
    // `shared` compiles (and lints clean) for wasm32; the worker build below links it. A check,
    // not a release build: it shares its artifacts with the edge's wasm32 lint.
    cmd::clippy(&["-p", "keygate-shared", "--target", "wasm32-unknown-unknown"])?;
    // The edge worker: lints (wasm32 and native), unit tests, then the real build that the
    // end-to-end tests in `tests/` run under miniflare.
    crate::edge::lint_and_unit_test()?;
    crate::edge::build()?;
    crate::edge::deploy_dry_run()?;
    // The end-to-end tests start the real `keygate` binary.
    cmd::run(
        "cargo",
        &["build", "-p", "keygate-control", "--bin", "keygate"],
    )?;
    // The dashboard's JavaScript, type-checked against types generated from its OpenAPI document.
    crate::dashboard::check()?;
    // A throw-away PostgreSQL for the control plane's PostgreSQL variants (stopped on drop).
    let cluster = crate::postgres::Cluster::start()?;
    let mut test = std::process::Command::new("cargo");
    test.args(["test", "--workspace", "--exclude", "keygate-edge"]);
    test.env("KEYGATE_SCHEMATHESIS", tools::ensure_schemathesis()?);
    if let Some(c) = &cluster {
        test.env("KEYGATE_TEST_POSTGRES_URL", &c.url);
    }
    cmd::run_with(&mut test)?;
    Ok(())
}

/// `cargo xtask schemathesis [EXAMPLES]`: only the schemathesis run against the real binary,
/// with more examples per operation (default 200).
pub fn schemathesis(args: &[String]) -> Result {
    let examples = args.first().map(String::as_str).unwrap_or("200");
    let exe = tools::ensure_schemathesis()?;
    cmd::run(
        "cargo",
        &["build", "-p", "keygate-control", "--bin", "keygate"],
    )?;
    cmd::run_with(
        std::process::Command::new("cargo")
            .args([
                "test",
                "-p",
                "keygate-tests",
                "--test",
                "schemathesis",
                "--",
                "--nocapture",
            ])
            .env("KEYGATE_SCHEMATHESIS", exe)
            .env("KEYGATE_SCHEMATHESIS_EXAMPLES", examples),
    )
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
