//! Installing what the suite needs on a fresh machine, each step skipped when already done.

use std::path::Path;
use std::process::Command;

use crate::cmd::{output, run, run_with, Result};

/// Everything `cargo xtask test` needs.
pub fn ensure_all() -> Result {
    ensure_wasm_target()?;
    crate::edge::ensure_tools()?;
    ensure_chromium()?;
    ensure_schemathesis().map(|_| ())
}

/// The schemathesis release the suite fuzzes with (from PyPI), pinned so a new release cannot
/// change what CI finds.
pub const SCHEMATHESIS_VERSION: &str = "4.32.5";

/// Schemathesis in its own virtual environment under `target/tools/`, installed from PyPI
/// when missing. Returns the path of its executable.
pub fn ensure_schemathesis() -> std::result::Result<std::path::PathBuf, String> {
    let venv = crate::cmd::root().join("target/tools/schemathesis");
    let exe = venv.join("bin/schemathesis");
    let wanted = format!("schemathesis, version {SCHEMATHESIS_VERSION}");
    let have = output(exe.to_str().unwrap_or_default(), &["--version"]).unwrap_or_default();
    if have.trim() == wanted {
        return Ok(exe);
    }
    let venv_str = venv.to_str().ok_or("non-UTF-8 path")?;
    run("python3", &["-m", "venv", "--clear", venv_str])?;
    let pip = venv.join("bin/pip");
    run(
        pip.to_str().ok_or("non-UTF-8 path")?,
        &[
            "install",
            "--quiet",
            "--disable-pip-version-check",
            &format!("schemathesis=={SCHEMATHESIS_VERSION}"),
        ],
    )?;
    Ok(exe)
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
