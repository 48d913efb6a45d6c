//! Project automation in Rust, run as `cargo xtask <command>` (see `.cargo/config.toml`).
//!
//! - `cargo xtask test`: installs what the suite needs, then every test and the wasm builds.
//! - `cargo xtask lint`: `cargo fmt --check` and clippy (native and wasm32); CI runs it first.
//! - `cargo xtask run`: runs keygate (control plane + edge worker) for local use.
//! - `cargo xtask bench`: the benchmarks whose figures the README quotes.
//! - `cargo xtask fuzz`: fuzzing of every parser of untrusted bytes (minutes, not in CI).
//! - `cargo xtask dashboard-types`: the dashboard's JavaScript type-checked against the API.
//!
//! Plain `std::process` with no dependencies, so it builds in seconds on a fresh machine.

mod bench_load;
mod cmd;
mod dashboard;
mod edge;
mod fuzz;
mod postgres;
mod run;
mod test;
mod tools;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test::run(&args[1..]),
        Some("lint") => test::lint(&args[1..]),
        Some("run") => run::run(&args[1..]),
        Some("install") => tools::ensure_all(),
        Some("bench") => test::bench(&args[1..]),
        Some("with-postgres") => postgres::with_cluster(&args[1..]),
        Some("build-edge") => edge::install_and_build(),
        Some("bench-edge") => edge::bench(&args[1..]),
        Some("deploy-dry-run") => edge::install_and_build().and_then(|()| edge::deploy_dry_run()),
        Some("edge-dev") => edge::dev(&args[1..]),
        Some("bench-verify") => bench_load::run_bench("bench-verify", "verify_load", &args[1..]),
        Some("bench-control") => bench_load::run_bench("bench-control", "control_load", &args[1..]),
        Some("fuzz") => fuzz::run(&args[1..]),
        Some("dashboard-types") => dashboard::run(&args[1..]),
        Some("schemathesis") => test::schemathesis(&args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask <command>\n\n\
                 commands:\n  \
                 run [--release] [--port N] [--edge-port N]  keygate + edge worker, wired together\n  \
                 test     install tools, then all tests and wasm builds\n  \
                 lint     cargo fmt --check and clippy -D warnings (native and wasm32)\n  \
                 install  only install the tools the suite needs\n  \
                 bench    run the benchmarks quoted in the README\n  \
                 with-postgres CMD...  run CMD with KEYGATE_TEST_POSTGRES_URL set to a throw-away cluster\n  \
                 build-edge  build the edge worker into edge/build (local tools only)\n  \
                 bench-edge  edge load benchmark (check vs healthz) and wasm size\n  \
                 deploy-dry-run  build the worker, then `wrangler deploy --dry-run` (offline)\n  \
                 edge-dev [port] [control-url]  wrangler dev for the edge alone, with .dev.vars\n  \
                 bench-verify  load benchmark of API-key verify (release, SQLite, loopback)\n  \
                 bench-control  load benchmark of listing, dashboard reads, revoke, rotate (release, SQLite, loopback)\n  \
                 fuzz [--seconds S | --iterations N] [--target NAME]  fuzz every parser of untrusted bytes (release)\n  \
                 dashboard-types  dashboard JavaScript type-checked against types from the OpenAPI document\n  \
                 schemathesis [EXAMPLES]  schemathesis against the real binary, EXAMPLES per operation (default 200)"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}
