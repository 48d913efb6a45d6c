//! Oneloop's published client, `@oneloop-hq/oneloop-ts` 1.0.9 (pinned in package.json),
//! unchanged, against the real `keygate serve`: the drop-in promise of the backend API.
//!
//! Starts the real binary (SQLite in a temporary data directory, mail to the mbox outbox
//! there) on a free loopback port and runs `tests/oneloop/story.mjs`, which signs in with the
//! emailed code, creates an SDK key through the dashboard API, then uses only the client:
//! workspace, scopes, an API key verified VALID, INVALID_SCOPES, INVALID, DISABLED, EXPIRED,
//! USAGE_LIMITED, refill, RATE_LIMITED, rotation (old value within grace, and after), DELETED,
//! and the client's error classes. Each step prints one JSON line.
//!
//! Needs `node` and the npm packages; `cargo xtask install` (part of `cargo xtask test`)
//! installs them.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Every step the story must report as passed.
const REQUIRED_STEPS: &[&str] = &[
    "sign-in-and-create-sdk-key",
    "workspace",
    "scopes",
    "create-api-key",
    "verify-valid",
    "verify-invalid-scopes",
    "verify-invalid",
    "disable",
    "expire",
    "exhaust",
    "refill",
    "rate-limit",
    "rotate-with-grace",
    "rotate-without-grace",
    "delete",
    "errors",
];

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
            "keygate-oneloop-{}-{}",
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
            .env("KEYGATE_LOG", "warn")
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

/// `{"step":"NAME","ok":BOOL,...}` as printed by the story (JSON.stringify's exact form).
fn parse_step(line: &str) -> Option<(&str, bool)> {
    let rest = line.strip_prefix("{\"step\":\"")?;
    let (name, rest) = rest.split_once('"')?;
    Some((name, rest.starts_with(",\"ok\":true")))
}

#[test]
fn oneloops_own_client_works_against_keygate() {
    let root = workspace_root();
    assert!(
        root.join("node_modules/@oneloop-hq/oneloop-ts/package.json")
            .exists(),
        "the Oneloop client is not installed; run `cargo xtask install`"
    );
    let server = Server::start();
    let output = Command::new("node")
        .arg(root.join("tests/oneloop/story.mjs"))
        .env("KEYGATE_URL", &server.url)
        .env("KEYGATE_OUTBOX", server.data_dir.join("outbox.mbox"))
        .env("KEYGATE_EMAIL", "owner@example.com")
        .current_dir(&root)
        .stderr(Stdio::inherit())
        .output()
        .expect("node runs the story");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let steps: Vec<(&str, bool)> = stdout.lines().filter_map(parse_step).collect();
    let mut failures: Vec<String> = steps
        .iter()
        .filter(|(_, ok)| !ok)
        .map(|(name, _)| format!("{name}: failed"))
        .collect();
    for step in REQUIRED_STEPS {
        if !steps.iter().any(|(name, _)| name == step) {
            failures.push(format!("{step}: never ran"));
        }
    }
    assert!(
        failures.is_empty() && output.status.success(),
        "Oneloop client story failed:\n{}\n--- story output ---\n{stdout}",
        failures.join("\n")
    );
}
