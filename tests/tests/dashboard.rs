//! The dashboard in a real browser against the real server.
//!
//! Starts `keygate serve` (the real binary, SQLite in a temporary data directory, mail to the
//! mbox outbox there) on a free loopback port, then runs `tests/browser/dashboard.mjs`: Debian's
//! Chromium driven by `playwright-core`, signing in with the code read from the outbox and
//! clicking through the Tokens page, the blacklist and the SDK keys. Each step prints one JSON
//! line and saves a screenshot under `tests/artifacts/dashboard/`.
//!
//! Needs `/usr/bin/chromium`, `node` and the npm packages; `cargo xtask install` (part of
//! `cargo xtask test`) installs them.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The Tokens page, the blacklist and the SDK keys: the flows the dashboard issue names.
const KEY_FLOWS: &[&str] = &[
    "signin",
    "create-and-revoke-token",
    "reveal-sdk-access-key",
    "reveal-with-dead-code-offers-new-code",
    "rotate-sdk-access-key",
    "modal-keyboard",
    "revoke-publishable-key",
    "blacklist-rule",
    "allowed-origins",
    "create-and-revoke-sdk-key",
    "controls-are-labelled",
    "phone-width",
    "workspace-switcher",
    "sign-out",
    "no-console-errors",
];

/// Organisation settings: members and the audit log.
const ORGANISATION_FLOWS: &[&str] = &["signin", "members-and-audit", "no-console-errors"];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

/// Builds the `keygate` binary (a no-op when it is fresh) and returns its path.
fn keygate_binary() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "-p",
            "keygate-control",
            "--bin",
            "keygate",
        ])
        .current_dir(workspace_root())
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building the keygate binary failed");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    let bin = target.join("debug").join("keygate");
    assert!(bin.exists(), "no keygate binary at {}", bin.display());
    bin
}

/// A running `keygate serve`, killed on drop, with its data directory removed.
struct Server {
    child: Child,
    url: String,
    data_dir: PathBuf,
}

impl Server {
    fn start() -> Server {
        let data_dir = std::env::temp_dir().join(format!(
            "keygate-dashboard-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock after 1970")
                .as_nanos()
        ));
        std::fs::create_dir_all(&data_dir).expect("temp data dir");
        let mut child = Command::new(keygate_binary())
            .arg("serve")
            .env("KEYGATE_LISTEN", "127.0.0.1:0")
            .env("KEYGATE_DATA_DIR", &data_dir)
            .env("KEYGATE_LOG", "error")
            .env_remove("KEYGATE_DATABASE_URL")
            .env_remove("KEYGATE_SMTP_URL")
            .env_remove("KEYGATE_MAIL_OUTBOX")
            .env_remove("KEYGATE_CONFIG")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .current_dir(&data_dir)
            .spawn()
            .expect("keygate serve starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("keygate listening on ") {
                    let _ = tx.send(url.trim().to_owned());
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(url) => Server {
                child,
                url,
                data_dir,
            },
            Err(_) => {
                let _ = child.kill();
                panic!("keygate serve did not say it was listening within 60 s");
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

fn require_browser_tools(root: &Path) {
    let missing: Vec<&str> = [
        (Path::new("/usr/bin/chromium").exists(), "/usr/bin/chromium"),
        (
            root.join("node_modules/playwright-core/package.json")
                .exists(),
            "node_modules/playwright-core",
        ),
        (
            Command::new("node")
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success()),
            "node",
        ),
    ]
    .into_iter()
    .filter_map(|(present, what)| (!present).then_some(what))
    .collect();
    assert!(
        missing.is_empty(),
        "browser test needs {missing:?}; run `cargo xtask install`"
    );
}

#[test]
fn key_flows_work_in_a_real_browser() {
    run_browser_steps("key-flows", KEY_FLOWS);
}

#[test]
fn members_and_audit_log_work_in_a_real_browser() {
    run_browser_steps("organisation", ORGANISATION_FLOWS);
}

/// Starts a fresh server, runs the named steps of the browser script, and fails with each
/// failed step's error and screenshot. Screenshots go to `tests/artifacts/dashboard/<name>/`.
fn run_browser_steps(name: &str, steps: &[&str]) {
    let root = workspace_root();
    require_browser_tools(&root);
    let server = Server::start();
    let artifacts = root.join("tests/artifacts/dashboard").join(name);
    let output = Command::new("node")
        .arg(root.join("tests/browser/dashboard.mjs"))
        .env("KEYGATE_URL", &server.url)
        .env("KEYGATE_OUTBOX", server.data_dir.join("outbox.mbox"))
        .env("KEYGATE_EMAIL", "owner@example.com")
        .env("KEYGATE_ARTIFACTS", &artifacts)
        .env("KEYGATE_STEPS", steps.join(","))
        .current_dir(&root)
        .stderr(Stdio::inherit())
        .output()
        .expect("node runs the browser script");
    let stdout = String::from_utf8_lossy(&output.stdout);

    let mut passed = Vec::new();
    let mut failures = Vec::new();
    for line in stdout.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let Some(step) = v.get("step").and_then(|s| s.as_str()) else {
            continue;
        };
        if v.get("ok").and_then(|o| o.as_bool()) == Some(true) {
            passed.push(step.to_owned());
        } else {
            failures.push(format!(
                "{step}: {}\n    screenshot: {}",
                v.get("error").and_then(|e| e.as_str()).unwrap_or("?"),
                v.get("screenshot").and_then(|e| e.as_str()).unwrap_or("-"),
            ));
        }
    }
    for step in steps {
        let reported = passed.iter().any(|p| p == step)
            || failures.iter().any(|f| f.starts_with(&format!("{step}:")));
        if !reported {
            failures.push(format!("{step}: never ran"));
        }
    }
    assert!(
        failures.is_empty() && output.status.success(),
        "browser steps failed ({} passed):\n{}\n--- script output ---\n{stdout}",
        passed.len(),
        failures.join("\n"),
    );
}
