//! Schemathesis (from PyPI) fuzzes every operation of the real `keygate` binary from its own
//! `/openapi.json`: once as a signed-in owner (session cookie + CSRF header), once as an SDK
//! key with every scope. It must find no server error and no answer that breaks the
//! document (status, content type, body schema).
//!
//! `cargo xtask test` installs schemathesis into a virtual environment and sets
//! `KEYGATE_SCHEMATHESIS` to its executable; `cargo xtask schemathesis` runs this test alone.
//! More examples: `KEYGATE_SCHEMATHESIS_EXAMPLES=200`.

use std::process::Command;

use keygate_tests::control::{ControlOptions, Keygate};
use serde_json::json;

fn schemathesis() -> Option<String> {
    std::env::var("KEYGATE_SCHEMATHESIS")
        .ok()
        .filter(|s| !s.is_empty())
}

/// Runs schemathesis against `base` with `headers`; panics with its output on failure.
fn fuzz(
    st: &str,
    kg: &Keygate,
    who: &str,
    headers: &[(&str, &str)],
    exclude: &[&str],
    workspace_id: &str,
) {
    let base = &kg.url;
    // Path parameters named `id` get the real workspace, so writes reach real rows (random
    // ids are the 404 path, which `control/tests/http/garbage_in.rs` walks).
    let config = kg.data_dir.join("schemathesis.toml");
    std::fs::write(
        &config,
        format!("[parameters]\n\"path.id\" = \"{workspace_id}\"\n"),
    )
    .expect("write schemathesis.toml");
    let examples = std::env::var("KEYGATE_SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| "25".into());
    let mut cmd = Command::new(st);
    cmd.arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(format!("{base}/openapi.json"))
        .args(["--url", base])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
        ])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--max-examples", &examples])
        .args(["--seed", "20261130"])
        // One worker: CPython 3.11 (this machine's) corrupts its AST recursion counter when two
        // threads parse at once (gh-106905), which hypothesis does to describe its lambdas.
        .args(["--workers", "1"])
        .args(["--request-timeout", "20"])
        .args(["--generation-database", "none"])
        .args(["--suppress-health-check", "all"])
        .args(["--generation-with-security-parameters", "false"])
        .arg("--no-color")
        .env("SCHEMATHESIS_HOOKS", "")
        .env("NO_COLOR", "1");
    for (name, value) in headers {
        cmd.args(["--header", &format!("{name}: {value}")]);
    }
    for path in exclude {
        cmd.args(["--exclude-path", path]);
    }
    // Extra arguments for a focused rerun, e.g. `--include-path /api/v1/api-key/verify`.
    if let Ok(extra) = std::env::var("KEYGATE_SCHEMATHESIS_ARGS") {
        cmd.args(extra.split_whitespace());
    }
    let out = cmd.output().expect("run schemathesis");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: String = stdout
        .lines()
        .rev()
        .take(12)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("\n");
    eprintln!("schemathesis as {who}:\n{tail}");
    assert!(
        out.status.success(),
        "schemathesis as {who} found problems:\n{stdout}\n{stderr}"
    );
}

#[test]
fn schemathesis_finds_no_server_error_and_no_answer_that_breaks_the_schema() {
    let Some(st) = schemathesis() else {
        eprintln!(
            "skipped: KEYGATE_SCHEMATHESIS is not set (`cargo xtask test` installs schemathesis and sets it)"
        );
        return;
    };
    let kg = Keygate::start(ControlOptions::default());
    let owner = kg.sign_in("owner@example.com");
    let ws = owner.write("POST", "/api/v1/workspace", json!({"name": "Fuzzed"}));
    let ws_id = ws["workspace"]["id"]
        .as_str()
        .expect("workspace id")
        .to_owned();
    // Open the session's step-up window, so step-up operations are fuzzed past the prompt.
    let before = kg.mail_count("owner@example.com");
    let challenge = owner.write("POST", "/api/v1/auth/step-up", json!({}));
    kg.wait_for_mail("owner@example.com", before);
    owner.write(
        "POST",
        "/api/v1/auth/step-up/verify",
        json!({"challengeId": challenge["challengeId"], "code": kg.outbox_code("owner@example.com")}),
    );
    let all = json!({"workspace": ["read", "write"], "workspace_scopes": ["read", "write"], "api_keys": ["read", "write"]});
    let sdk = owner.write(
        "POST",
        "/api/v1/sdk-keys",
        json!({"name": "fuzz", "scopes": all}),
    );
    let sdk_key = sdk["key"].as_str().expect("the new SDK key").to_owned();

    // Signing out would end the run's own session.
    fuzz(
        &st,
        &kg,
        "an SDK key",
        &[("Authorization", &format!("Bearer {sdk_key}"))],
        &[],
        &ws_id,
    );
    fuzz(
        &st,
        &kg,
        "the owner",
        &[("Cookie", owner.cookie()), ("X-CSRF-Token", owner.csrf())],
        &["/api/v1/auth/session"],
        &ws_id,
    );
    // The server is still healthy and the owner still signed in.
    owner.get("/api/v1/me");
}
