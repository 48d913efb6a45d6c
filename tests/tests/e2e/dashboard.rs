//! The dashboard in a real browser against the real server.
//!
//! Starts `keygate serve` (the real binary, SQLite in a temporary data directory, mail to the
//! mbox outbox there) on a free loopback port, then runs `tests/browser/dashboard.mjs`: Debian's
//! Chromium driven by `playwright-core`, signing in with the code read from the outbox and
//! clicking through the Tokens page, the blacklist, the Modules page's routes and the SDK keys.
//! Each step prints one JSON line and saves a screenshot under `tests/artifacts/dashboard/`.
//!
//! Needs `/usr/bin/chromium`, `node` and the npm packages; `cargo xtask install` (part of
//! `cargo xtask test`) installs them.

use crate::browser;
use keygate_tests::control::{ControlOptions, Keygate};

/// The Tokens page, the blacklist, the Modules page's routes box and "Test a request", and the
/// SDK keys: the flows the dashboard issues name.
const KEY_FLOWS: &[&str] = &[
    "signin",
    "create-and-revoke-token",
    "reveal-sdk-access-key",
    "reveal-with-dead-code-offers-new-code",
    "rotate-sdk-access-key",
    "modal-keyboard",
    "revoke-publishable-key",
    "blacklist-rule",
    "modules-routes",
    "allowed-origins",
    "gateway-secret",
    "create-and-revoke-sdk-key",
    "controls-are-labelled",
    "phone-width",
    "workspace-switcher",
    "sign-out",
    "no-console-errors",
];

/// The Usage page: charts and tables of verifications and billing usage after some verifies
/// (screenshots at desktop and 390 px width in `target/screenshots/usage-*.png`).
const USAGE_FLOWS: &[&str] = &["signin", "usage", "no-console-errors"];

/// Organisation settings: members and the audit log.
const ORGANISATION_FLOWS: &[&str] = &["signin", "members-and-audit", "no-console-errors"];

#[test]
fn key_flows_work_in_a_real_browser() {
    run_browser_steps("key-flows", KEY_FLOWS);
}

#[test]
fn usage_charts_work_in_a_real_browser() {
    run_browser_steps("usage", USAGE_FLOWS);
}

#[test]
fn members_and_audit_log_work_in_a_real_browser() {
    run_browser_steps("organisation", ORGANISATION_FLOWS);
}

/// Starts a fresh server, runs the named steps of the browser script, and fails with each
/// failed step's error and screenshot. Screenshots go to `tests/artifacts/dashboard/<name>/`.
fn run_browser_steps(name: &str, steps: &[&str]) {
    let root = keygate_tests::edge::root();
    let server = Keygate::start(ControlOptions::default());
    let mut script = browser::script(&root, "dashboard.mjs");
    script
        .env("KEYGATE_URL", &server.url)
        .env("KEYGATE_OUTBOX", server.data_dir.join("outbox.mbox"))
        .env("KEYGATE_EMAIL", "owner@example.com")
        .env(
            "KEYGATE_ARTIFACTS",
            root.join("tests/artifacts/dashboard").join(name),
        );
    browser::run_steps(script, steps);
}
