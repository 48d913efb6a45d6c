//! The control plane's layering rule, checked on the source (see ARCHITECTURE.md, "Layers"):
//!
//! - `src/store/` is the only code that names `sqlx`, runs `with_db!` or opens a transaction;
//!   it knows nothing of HTTP (`axum`, `crate::http`, `crate::auth`, `AppState`).
//! - `src/api/` (the contract types) is plain data: no storage, no HTTP, no `sqlx`.
//! - `src/jobs/` (background work) takes a storage handle, never the HTTP state.
//!
//! Run it alone with `cargo test -p keygate-control --test http layering`.

use std::path::{Path, PathBuf};

/// Files that predate the rule and still break it; the list only shrinks.
const NOT_YET_LAYERED: &[&str] = &[];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without its comments (a doc comment may mention `sqlx`).
fn code(text: &str) -> String {
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn violations() -> Vec<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut found = Vec::new();
    for file in files {
        let rel = file
            .strip_prefix(&src)
            .expect("under src")
            .to_string_lossy()
            .replace('\\', "/");
        let text = code(&std::fs::read_to_string(&file).expect("read source"));
        let layer = rel.split('/').next().unwrap_or_default();
        let banned: &[&str] = match layer {
            "store" => &["axum", "crate::http", "crate::auth", "AppState"],
            "api" => &[
                "sqlx",
                "with_db!",
                "crate::store",
                "crate::http",
                "crate::auth",
                "axum",
            ],
            "jobs" => &["sqlx", "with_db!", "begin_write", "AppState", "crate::http"],
            _ if NOT_YET_LAYERED.contains(&rel.as_str()) => &[],
            _ => &["sqlx", "with_db!", "begin_write"],
        };
        for word in banned {
            if text.contains(word) {
                found.push(format!("src/{rel} names `{word}`"));
            }
        }
    }
    found
}

#[test]
fn storage_is_the_only_layer_that_names_the_database() {
    let found = violations();
    assert!(
        found.is_empty(),
        "layering broken:\n  {}",
        found.join("\n  ")
    );
}

#[test]
fn the_not_yet_layered_list_names_only_files_that_still_need_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for rel in NOT_YET_LAYERED {
        let path = src.join(rel);
        let still_needed = path.exists() && {
            let text = code(&std::fs::read_to_string(&path).expect("read source"));
            ["sqlx", "with_db!", "begin_write"]
                .iter()
                .any(|w| text.contains(w))
        };
        assert!(
            still_needed,
            "src/{rel} is layered now (or gone): remove it from NOT_YET_LAYERED"
        );
    }
}
