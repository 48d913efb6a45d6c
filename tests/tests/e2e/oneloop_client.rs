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

use keygate_tests::control::{ControlOptions, Keygate};
use std::process::{Command, Stdio};

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
    "link-token",
    "customer-portal",
    "billing-usage",
    "delete",
    "errors",
];

/// `{"step":"NAME","ok":BOOL,...}` as printed by the story (JSON.stringify's exact form).
fn parse_step(line: &str) -> Option<(&str, bool)> {
    let rest = line.strip_prefix("{\"step\":\"")?;
    let (name, rest) = rest.split_once('"')?;
    Some((name, rest.starts_with(",\"ok\":true")))
}

#[test]
fn oneloops_own_client_works_against_keygate() {
    let root = keygate_tests::edge::root();
    assert!(
        root.join("node_modules/@oneloop-hq/oneloop-ts/package.json")
            .exists(),
        "the Oneloop client is not installed; run `cargo xtask install`"
    );
    let server = Keygate::start(ControlOptions::default());
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
