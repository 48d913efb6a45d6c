//! `cargo xtask dashboard-types`: the dashboard's JavaScript type-checked against the API.
//!
//! 1. `target/debug/keygate openapi` writes the OpenAPI document to `target/dashboard/openapi.json`;
//! 2. `openapi-typescript` turns it into `target/dashboard/api.d.ts` (`paths`, `components`);
//! 3. `tsc -p control/dashboard/tsconfig.json` checks every page (JSDoc annotations such as
//!    `import('./types').Answer<'/api/v1/sdk-keys', 'get'>`, see `control/dashboard/types.d.ts`).
//!
//! [`check`] (run by `cargo xtask test`) needs the `keygate` binary built and the npm packages
//! installed; [`run`] (`cargo xtask dashboard-types`) sees to both first.

use std::process::Command;

use crate::cmd::{self, root, Result};
use crate::edge::{npm_bin_dir, path_with_npm_bin};

/// Installs the npm packages if needed, builds `keygate`, then generates the types and
/// type-checks the dashboard.
pub fn run(args: &[String]) -> Result {
    if !args.is_empty() {
        return Err(format!("unknown arguments {args:?}"));
    }
    crate::edge::ensure_npm_packages()?;
    cmd::run(
        "cargo",
        &["build", "-p", "keygate-control", "--bin", "keygate"],
    )?;
    check()
}

/// Generates the types from the already built `keygate` binary and runs `tsc` on the dashboard.
pub fn check() -> Result {
    let out = root().join("target").join("dashboard");
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let keygate = root().join("target").join("debug").join("keygate");
    let document = Command::new(&keygate)
        .arg("openapi")
        .output()
        .map_err(|e| format!("cannot start {}: {e}", keygate.display()))?;
    if !document.status.success() {
        return Err(format!("`keygate openapi` failed ({})", document.status));
    }
    let json = out.join("openapi.json");
    std::fs::write(&json, &document.stdout)
        .map_err(|e| format!("cannot write {}: {e}", json.display()))?;
    let bin = npm_bin_dir();
    cmd::run_with(
        Command::new(bin.join("openapi-typescript"))
            .arg(&json)
            .arg("--output")
            .arg(out.join("api.d.ts"))
            .env("PATH", path_with_npm_bin()),
    )?;
    cmd::run_with(
        Command::new(bin.join("tsc"))
            .args(["-p", "control/dashboard/tsconfig.json", "--pretty", "false"])
            .env("PATH", path_with_npm_bin()),
    )
}
