//! Installing what the suite needs on a fresh machine, each step skipped when already done.

use std::path::Path;
use std::process::Command;

use crate::cmd::{output, run, run_with, Result};

/// Everything `cargo xtask test` needs.
pub fn ensure_all() -> Result {
    ensure_wasm_target()?;
    crate::edge::ensure_tools()?;
    ensure_chromium()
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

/// Debian's Chromium, for the dashboard's browser tests (Playwright drives it; it never
/// downloads a browser of its own).
pub fn ensure_chromium() -> Result {
    if Path::new("/usr/bin/chromium").exists() {
        return Ok(());
    }
    let apt = |args: &[&str]| {
        run_with(
            Command::new("apt-get")
                .args(args)
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )
    };
    apt(&["update"])?;
    apt(&["install", "-y", "--no-install-recommends", "chromium"])
}
