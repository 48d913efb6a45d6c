//! `keygate-fuzz [--seconds S | --iterations N] [--target NAME] [--seed X]`: runs the fuzz
//! targets (all by default, sharing the time budget), prints inputs/s per target, and on a
//! failure prints the input and saves it under `fuzz/failures/`, exiting with status 1.
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::time::{Duration, Instant};

use keygate_fuzz::{run_target, TARGETS};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut seconds: Option<f64> = None;
    let mut iterations: Option<u64> = None;
    let mut only: Option<String> = None;
    let mut seed: u64 = 0x5eed;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let value = |it: &mut std::slice::Iter<'_, String>| it.next().cloned().unwrap_or_default();
        match a.as_str() {
            "--seconds" => seconds = value(&mut it).parse().ok(),
            "--iterations" => iterations = value(&mut it).parse().ok(),
            "--target" => only = Some(value(&mut it)),
            "--seed" => seed = value(&mut it).parse().unwrap_or(seed),
            _ => {
                eprintln!(
                    "usage: keygate-fuzz [--seconds S | --iterations N] [--target NAME] [--seed X]\n\
                     targets: {}",
                    TARGETS.iter().map(|t| t.name).collect::<Vec<_>>().join(", ")
                );
                return ExitCode::from(2);
            }
        }
    }
    let targets: Vec<_> = TARGETS
        .iter()
        .filter(|t| only.as_deref().is_none_or(|o| o == t.name))
        .collect();
    if targets.is_empty() {
        eprintln!("no target named {:?}", only.unwrap_or_default());
        return ExitCode::from(2);
    }
    // Default: 60 s shared by the targets. An iteration count alone runs to that count.
    let per_target = match (seconds, iterations) {
        (Some(s), _) => Some(Duration::from_secs_f64(s / targets.len() as f64)),
        (None, Some(_)) => None,
        (None, None) => Some(Duration::from_secs(60 / targets.len() as u64)),
    };
    let iterations = iterations.unwrap_or(u64::MAX);
    // Panics are expected and reported below; keep their default messages off the terminal.
    std::panic::set_hook(Box::new(|_| {}));
    let started = Instant::now();
    let mut total = 0u64;
    println!(
        "{:<20} {:>12} {:>10} {:>12}",
        "target", "inputs", "seconds", "inputs/s"
    );
    for (i, target) in targets.iter().enumerate() {
        let t0 = Instant::now();
        let outcome = run_target(
            target,
            seed.wrapping_add(i as u64),
            iterations,
            per_target.map(|d| t0 + d),
        );
        let secs = t0.elapsed().as_secs_f64();
        total += outcome.inputs;
        println!(
            "{:<20} {:>12} {:>10.1} {:>12.0}",
            target.name,
            outcome.inputs,
            secs,
            outcome.inputs as f64 / secs.max(1e-9)
        );
        if let Some(f) = outcome.failure {
            eprintln!("\nFAILURE in {}: {}", f.target, f.message);
            eprintln!(
                "input ({} bytes): {:?}",
                f.input.len(),
                String::from_utf8_lossy(&f.input)
            );
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("failures");
            let _ = std::fs::create_dir_all(&dir);
            let path = dir.join(format!(
                "{}-{:016x}",
                f.target,
                keygate_fuzz::Rng::new(f.input.len() as u64 ^ seed).next_u64()
            ));
            if std::fs::write(&path, &f.input).is_ok() {
                eprintln!("saved to {}", path.display());
            }
            return ExitCode::from(1);
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{:<20} {:>12} {:>10.1} {:>12.0}",
        "total",
        total,
        secs,
        total as f64 / secs.max(1e-9)
    );
    ExitCode::SUCCESS
}
