//! Running a browser script of `tests/browser/` (Debian's Chromium driven by
//! `playwright-core`) and reading its report: every step prints one JSON line
//! `{"step", "ok", "error"?, "screenshot"?}`.

use std::path::Path;
use std::process::{Command, Stdio};

/// `node tests/browser/<name>`, run from the repository root `root`, once the tools it needs
/// are known to be there.
pub fn script(root: &Path, name: &str) -> Command {
    require_browser_tools(root);
    let mut command = Command::new("node");
    command
        .arg(root.join("tests/browser").join(name))
        .current_dir(root)
        .stderr(Stdio::inherit());
    command
}

/// Fails, naming what is missing, unless Chromium, `playwright-core` and node are installed.
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

/// Runs `script` (see [`script`]) with `KEYGATE_STEPS` set to `steps`, and fails with each
/// failed or unreported step's error and screenshot, and the script's output.
pub fn run_steps(mut script: Command, steps: &[&str]) {
    let output = script
        .env("KEYGATE_STEPS", steps.join(","))
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
