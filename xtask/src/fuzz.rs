//! `cargo xtask fuzz [--seconds S | --iterations N] [--target NAME] [--seed X]`: the fuzz
//! targets of `fuzz/` (keygate-fuzz) in a release build, for as long as asked (default 60 s
//! shared by the targets). Not part of `cargo xtask test`, which runs a short pass
//! (`fuzz/tests/short_run.rs`).

use crate::cmd::{self, Result};

/// Runs the fuzzer with the given arguments.
pub fn run(args: &[String]) -> Result {
    let mut cargo_args = vec!["run", "--release", "-p", "keygate-fuzz", "--"];
    cargo_args.extend(args.iter().map(String::as_str));
    cmd::run("cargo", &cargo_args)
}
