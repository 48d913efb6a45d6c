//! Installing what the suite needs on a fresh machine, each step skipped when already done.

use crate::cmd::{output, run, Result};

/// Everything `cargo xtask test` needs.
pub fn ensure_all() -> Result {
    ensure_wasm_target()?;
    crate::edge::ensure_tools()
}

/// The `wasm32-unknown-unknown` target, for `keygate-shared` and the edge worker.
pub fn ensure_wasm_target() -> Result {
    let installed = output("rustup", &["target", "list", "--installed"]).unwrap_or_default();
    if installed
        .lines()
        .any(|l| l.trim() == "wasm32-unknown-unknown")
    {
        return Ok(());
    }
    run("rustup", &["target", "add", "wasm32-unknown-unknown"])
}
