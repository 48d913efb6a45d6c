//! `cargo xtask test`: the whole suite, as CI runs it.

use crate::cmd::{self, Result};
use crate::tools;

/// Installs tools, then runs every test and the wasm builds (the lints are [`lint`]'s).
///
/// Where the time goes on a fresh clone (README, "Test"): compiling. So the downloads (npm
/// packages, schemathesis, Chromium) run beside the first compiles, and the control plane is
/// compiled once for the tests and the binary together.
pub fn run_suite() -> Result {
    tools::ensure_wasm_target()?;
    let installs = std::thread::spawn(install_downloads);
    // The edge worker's unit tests (native; the crate stays out of the workspace test below,
    // whose dev-dependencies it does not build with).
    cmd::run("cargo", &["test", "-p", "keygate-edge"])?;
    let schemathesis = installs
        .join()
        .map_err(|_| "installing the tools panicked".to_owned())??;
    // Then the real worker build that the end-to-end tests run under miniflare (release,
    // wasm32, in its own target folder: its long single-threaded LTO overlaps the test
    // build), beside every test binary and the `keygate` binary the end-to-end tests start,
    // in one build: a separate `cargo build --bin keygate` resolves features without the
    // dev-dependencies' and so compiles the control plane (and reqwest) a second time.
    let edge_build = std::thread::spawn(crate::edge::build);
    let test_args = ["test", "--workspace", "--exclude", "keygate-edge"];
    let test_build = cmd::run("cargo", &[&test_args[..], &["--no-run"]].concat());
    edge_build
        .join()
        .map_err(|_| "the edge build panicked".to_owned())??;
    test_build?;
    crate::edge::deploy_dry_run()?;
    // The dashboard's JavaScript, type-checked against types generated from its OpenAPI document.
    crate::dashboard::check()?;
    // A throw-away PostgreSQL for the control plane's PostgreSQL variants (stopped on drop).
    let cluster = crate::postgres::Cluster::start()?;
    let mut test = std::process::Command::new("cargo");
    test.args(test_args);
    test.env("KEYGATE_SCHEMATHESIS", schemathesis);
    // The end-to-end tests run the `keygate` this build made instead of building their own
    // (which, with the features of `-p keygate-control` alone, would compile it again).
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| cmd::root().join("target"));
    test.env("KEYGATE_BINARY", target.join("debug").join("keygate"));
    if let Some(c) = &cluster {
        test.env("KEYGATE_TEST_POSTGRES_URL", &c.url);
    }
    cmd::run_with(&mut test)?;
    Ok(())
}

/// What `tools::ensure_all` installs besides the wasm target: the edge's tools and npm
/// packages, Chromium and schemathesis (whose path it returns). Mostly downloads, so it runs
/// on its own thread beside fmt and clippy.
fn install_downloads() -> Result<std::path::PathBuf> {
    crate::edge::ensure_tools()?;
    tools::ensure_chromium()?;
    tools::ensure_schemathesis()
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
                "e2e",
                "schemathesis",
                "--",
                "--nocapture",
            ])
            .env("KEYGATE_SCHEMATHESIS", exe)
            .env("KEYGATE_SCHEMATHESIS_EXAMPLES", examples),
    )
}

/// `cargo xtask lint`: `cargo fmt --check`, then clippy with `-D warnings` on every crate,
/// the edge worker both for wasm32 (which covers `shared` for wasm32 too) and natively.
/// CI runs it before the test command (`.ci/run`).
pub fn lint(args: &[String]) -> Result {
    if !args.is_empty() {
        return Err(format!("unknown arguments {args:?}"));
    }
    tools::ensure_wasm_target()?;
    cmd::run("cargo", &["fmt", "--all", "--", "--check"])?;
    cmd::clippy(&["--workspace", "--exclude", "keygate-edge", "--all-targets"])?;
    cmd::clippy(&["-p", "keygate-edge", "--target", "wasm32-unknown-unknown"])?;
    cmd::clippy(&["-p", "keygate-edge", "--all-targets"])
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
