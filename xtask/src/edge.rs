//! The edge worker's automation: its tools, its wasm build, its lints and its benchmark.
//!
//! The build is the four steps worker-build would run (cargo, wasm-bindgen, wasm-opt, esbuild),
//! run here with tools from registries only (worker-build would download `wasm-bindgen`,
//! `wasm-opt` and `esbuild` from GitHub; edge/README.md, "Toolchain notes"):
//! `wasm-bindgen-cli` through `cargo install` (only when missing or at another version),
//! `wasm-opt` (binaryen) and `esbuild` from the pinned npm packages. Its entry module is ours
//! (`edge/js/entry.mjs`), not worker-build's generated shim (see edge/README.md, "Figures").

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cmd::{self, root, run_with, Result};

/// Must equal the `wasm-bindgen` library version pinned in `edge/Cargo.toml`.
pub const WASM_BINDGEN_VERSION: &str = "0.2.129";

fn cargo_bin(name: &str) -> PathBuf {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from(".cargo"));
    home.join("bin").join(name)
}

/// Whether `bin --version` prints `version` as one of its words.
fn has_version(bin: &Path, version: &str) -> bool {
    Command::new(bin)
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .is_some_and(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .any(|w| w.trim_start_matches('v') == version)
        })
}

fn ensure_cargo_tool(bin: &str, krate: &str, version: &str) -> Result {
    if has_version(&cargo_bin(bin), version) {
        return Ok(());
    }
    cmd::run(
        "cargo",
        &["install", krate, "--version", version, "--locked"],
    )
}

/// `wasm-bindgen-cli` at the pinned version (a few minutes the first time, nothing
/// afterwards), and the pinned npm packages.
pub fn ensure_tools() -> Result {
    ensure_cargo_tool("wasm-bindgen", "wasm-bindgen-cli", WASM_BINDGEN_VERSION)?;
    ensure_npm_packages()
}

/// `npm ci` when `node_modules` is missing or older than `package-lock.json` (npm rewrites
/// `node_modules/.package-lock.json` on every install, so its age is the install's age).
pub fn ensure_npm_packages() -> Result {
    let root = root();
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let lock = modified(&root.join("package-lock.json"));
    let installed = modified(&root.join("node_modules/.package-lock.json"));
    match (lock, installed) {
        (Some(lock), Some(installed)) if installed >= lock => Ok(()),
        (None, _) => Err("package-lock.json is missing".into()),
        _ => cmd::run("npm", &["ci", "--no-audit", "--no-fund"]),
    }
}

/// What `cargo xtask build-edge` (and wrangler's `[build]` command) runs: the tools the
/// build needs, then the build. Not the whole `tools::ensure_all` (no browsers for a build).
pub fn install_and_build() -> Result {
    crate::tools::ensure_wasm_target()?;
    ensure_tools()?;
    build()
}

/// `node_modules/.bin`, where npm puts Node 22, wrangler, miniflare, wasm-opt and esbuild.
pub fn npm_bin_dir() -> PathBuf {
    root().join("node_modules").join(".bin")
}

/// `PATH` with `node_modules/.bin` first (binaryen's `wasm-opt` is a Node script and wants
/// Node 22 from there).
pub fn path_with_npm_bin() -> std::ffi::OsString {
    let mut paths = vec![npm_bin_dir()];
    if let Some(p) = std::env::var_os("PATH") {
        paths.extend(std::env::split_paths(&p));
    }
    std::env::join_paths(paths).unwrap_or_default()
}

fn newest_mtime(path: &Path) -> Option<std::time::SystemTime> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_dir() {
        return meta.modified().ok();
    }
    std::fs::read_dir(path)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| newest_mtime(&e.path()))
        .max()
}

/// Whether `edge/build` is newer than every input of the worker.
fn build_is_fresh() -> bool {
    let root = root();
    let Some(built) = newest_mtime(&root.join("edge/build/index_bg.wasm")) else {
        return false;
    };
    [
        "edge/src",
        "edge/js",
        "edge/Cargo.toml",
        "shared/src",
        "shared/testdata",
        "shared/Cargo.toml",
        "Cargo.lock",
        "Cargo.toml",
    ]
    .iter()
    .filter_map(|p| newest_mtime(&root.join(p)))
    .all(|m| m <= built)
}

/// `wasm-opt` flags for the worker: size first (`-Oz`), with the wasm features workerd runs
/// (an explicit list rather than `--all-features`, so binaryen never emits an encoding the
/// runtime does not know yet; the same list worker-build used). The name section is kept
/// (`--debuginfo`), so a panic's stack trace names Rust functions.
const WASM_OPT_FLAGS: &[&str] = &[
    "-Oz",
    "--enable-mutable-globals",
    "--enable-sign-ext",
    "--enable-nontrapping-float-to-int",
    "--enable-bulk-memory",
    "--enable-multivalue",
    "--enable-reference-types",
    "--enable-exception-handling",
    "--debuginfo",
];

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

/// Builds the worker into `edge/build` (`index.js`, `index_bg.wasm`) with local tools only,
/// optimised for size; skipped when the build is newer than every source. The steps:
/// `cargo build` for wasm32, `wasm-bindgen --target module` (with the reset function that
/// trap recovery uses), `wasm-opt`, then esbuild bundles the entry module `edge/js/entry.mjs`
/// (the worker's `fetch` and the Durable Object class) with wasm-bindgen's glue.
pub fn build() -> Result {
    if build_is_fresh() {
        eprintln!("edge/build is up to date");
        return Ok(());
    }
    let root = root();
    // A target folder of its own: this release wasm32 build shares no artifact with the
    // workspace's debug builds, and with its own folder it needs not wait for their lock, so
    // the test command runs it beside the test build.
    let edge_target = target_dir().join("edge");
    run_with(
        Command::new("cargo")
            .env("CARGO_TARGET_DIR", &edge_target)
            .args([
                "build",
                "--lib",
                "--release",
                "--target",
                "wasm32-unknown-unknown",
            ])
            .args(["-p", "keygate-edge"])
            // wasm-bindgen's macros use js-sys's futures (as worker-build set it).
            .env("WASM_BINDGEN_USE_JS_SYS", "1")
            // Size over speed for the whole dependency graph of this one build; the
            // workspace's release profile (used by the control plane) is left alone.
            .env("CARGO_PROFILE_RELEASE_OPT_LEVEL", "s")
            .env("CARGO_PROFILE_RELEASE_LTO", "fat")
            .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1"),
    )?;
    let staging = edge_target.join("edge-build");
    let _ = std::fs::remove_dir_all(&staging);
    let wasm = edge_target.join("wasm32-unknown-unknown/release/keygate_edge.wasm");
    run_with(
        Command::new(cargo_bin("wasm-bindgen"))
            .arg(&wasm)
            .arg("--out-dir")
            .arg(&staging)
            .args([
                "--out-name",
                "index",
                "--target",
                "module",
                "--no-typescript",
            ])
            .arg("--experimental-reset-state-function"),
    )?;
    let glue = staging.join("index_bg.wasm");
    run_with(
        Command::new(npm_bin_dir().join("wasm-opt"))
            .arg(&glue)
            .arg("-o")
            .arg(staging.join("index_bg.opt.wasm"))
            .args(WASM_OPT_FLAGS)
            .env("PATH", path_with_npm_bin()),
    )?;
    std::fs::copy(root.join("edge/js/entry.mjs"), staging.join("entry.mjs"))
        .map_err(|e| format!("edge/js/entry.mjs: {e}"))?;
    run_with(
        Command::new(npm_bin_dir().join("esbuild"))
            .args(["entry.mjs", "--bundle", "--format=esm", "--minify"])
            .args(["--external:./index_bg.wasm", "--external:cloudflare:*"])
            .arg("--outfile=bundle.js")
            .current_dir(&staging)
            .env("PATH", path_with_npm_bin()),
    )?;
    publish_build(&staging)
}

/// Moves the finished build into `edge/build`: the bundle (its source-phase wasm import made
/// a plain one, which wrangler and miniflare load as a compiled module) and the optimised wasm.
fn publish_build(staging: &Path) -> Result {
    let out = root().join("edge/build");
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let io = |e: std::io::Error| format!("edge build: {e}");
    let bundle = std::fs::read_to_string(staging.join("bundle.js")).map_err(io)?;
    std::fs::write(
        out.join("index.js"),
        bundle.replace("import source ", "import "),
    )
    .map_err(io)?;
    std::fs::copy(staging.join("index_bg.opt.wasm"), out.join("index_bg.wasm")).map_err(io)?;
    // Left over from worker-build's layout.
    let _ = std::fs::remove_dir_all(out.join("worker"));
    let _ = std::fs::remove_file(out.join("package.json"));
    Ok(())
}

/// `wrangler deploy --dry-run` into a temporary folder, offline: proves that `wrangler.toml`
/// (bindings, Durable Object migrations) and the bundle are deployable, without an account.
pub fn deploy_dry_run() -> Result {
    let out = std::env::temp_dir().join(format!("keygate-deploy-dry-run-{}", std::process::id()));
    let result = run_with(
        Command::new(npm_bin_dir().join("wrangler"))
            .args(["deploy", "--dry-run", "--outdir"])
            .arg(&out)
            .current_dir(root())
            .env("PATH", path_with_npm_bin())
            .env("WRANGLER_SEND_METRICS", "false")
            .env("CLOUDFLARE_CF_FETCH_ENABLED", "false"),
    );
    let _ = std::fs::remove_dir_all(&out);
    result
}

/// Raw and gzipped size of the built wasm, in bytes.
pub fn wasm_size() -> Result<(u64, u64)> {
    let wasm = root().join("edge/build/index_bg.wasm");
    let raw = std::fs::metadata(&wasm)
        .map_err(|e| format!("{}: {e}", wasm.display()))?
        .len();
    let out = Command::new("gzip")
        .args(["-9", "-c"])
        .arg(&wasm)
        .output()
        .map_err(|e| format!("gzip: {e}"))?;
    Ok((raw, out.stdout.len() as u64))
}

/// `cargo xtask bench-edge`: builds the worker, reports its size, then runs the load
/// benchmark (`tests/tests/edge_bench.rs`) against it under miniflare, on loopback only.
pub fn bench(args: &[String]) -> Result {
    crate::tools::ensure_all()?;
    build()?;
    let (raw, gz) = wasm_size()?;
    eprintln!(
        "edge wasm: {:.1} KB raw, {:.1} KB gzipped (target < 300 KB gzipped)",
        raw as f64 / 1000.0,
        gz as f64 / 1000.0
    );
    let mut cargo_args = vec![
        "test",
        "-p",
        "keygate-tests",
        "--test",
        "edge_bench",
        "--",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ];
    cargo_args.extend(args.iter().map(String::as_str));
    run_with(
        Command::new("cargo")
            .args(&cargo_args)
            .env("KEYGATE_EDGE_WASM_GZIP_BYTES", gz.to_string()),
    )
}

/// The local-dev secret file `.dev.vars` (git-ignored): created with a fresh random
/// `KEYGATE_EDGE_SECRET` if missing. Returns the secret, for the control plane to share.
pub fn ensure_dev_vars() -> Result<String> {
    let path = root().join(".dev.vars");
    if let Ok(text) = std::fs::read_to_string(&path) {
        if let Some(secret) = text
            .lines()
            .find_map(|l| l.strip_prefix("KEYGATE_EDGE_SECRET="))
            .map(|s| s.trim().trim_matches('"').to_owned())
            .filter(|s| s.len() >= 32)
        {
            return Ok(secret);
        }
    }
    let mut bytes = [0u8; 32];
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| format!("cannot read /dev/urandom: {e}"))?;
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(
        &path,
        format!(
            "# Local-dev secrets for `wrangler dev` (git-ignored). Share with the control plane.\n\
             KEYGATE_EDGE_SECRET={secret}\n"
        ),
    )
    .map_err(|e| format!("{}: {e}", path.display()))?;
    eprintln!(
        "created {} with a fresh KEYGATE_EDGE_SECRET",
        path.display()
    );
    Ok(secret)
}

/// The `wrangler dev` command for the edge on `127.0.0.1:port`, wired to the control plane at
/// `control_url`, with a fresh local state folder (wrangler versions cannot share one).
pub fn wrangler_dev_command(port: u16, control_url: &str) -> Command {
    let mut c = Command::new(npm_bin_dir().join("wrangler"));
    c.args(["dev", "--ip", "127.0.0.1", "--port"])
        .arg(port.to_string())
        .args(["--log-level", "warn", "--persist-to"])
        .arg(root().join(".wrangler/keygate-dev"))
        .args(["--var", &format!("KEYGATE_CONTROL_URL:{control_url}")])
        // Local development forwards to loopback origins; deployed workers keep the default.
        .args(["--var", "KEYGATE_ALLOW_PRIVATE_ORIGINS:true"])
        .current_dir(root())
        .env("PATH", path_with_npm_bin())
        .env("WRANGLER_SEND_METRICS", "false")
        .env("CLOUDFLARE_CF_FETCH_ENABLED", "false");
    c
}

/// `cargo xtask edge-dev [port] [control-url]`: builds the worker and runs `wrangler dev` with
/// `.dev.vars` (created if missing).
pub fn dev(args: &[String]) -> Result {
    let port: u16 = match args.first() {
        Some(p) => p.parse().map_err(|_| format!("bad port {p}"))?,
        None => 8787,
    };
    let control = args
        .get(1)
        .map(String::as_str)
        .unwrap_or("http://127.0.0.1:8080");
    crate::tools::ensure_all()?;
    build()?;
    ensure_dev_vars()?;
    run_with(&mut wrangler_dev_command(port, control))
}
