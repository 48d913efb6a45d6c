//! A throw-away PostgreSQL cluster for the test suite: installed from Debian's packages when
//! missing (as root), created with `initdb` in a temporary folder, started on a free loopback
//! port, and stopped and deleted when the guard drops. The control plane's tests read its
//! admin URL from `KEYGATE_TEST_POSTGRES_URL` and create one database per test server.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cmd::{output, run, run_with, Result};

/// A running cluster; stops and deletes it on drop.
pub struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
    as_postgres: bool,
    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub url: String,
}

fn is_root() -> bool {
    output("id", &["-u"]).as_deref() == Some("0")
}

fn find_bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// Installs PostgreSQL's server if missing (needs root). `Err` only on a failed install.
pub fn ensure_installed() -> Result<Option<PathBuf>> {
    if let Some(bin) = find_bin_dir() {
        return Ok(Some(bin));
    }
    if !is_root() {
        return Ok(None);
    }
    run("apt-get", &["update", "-qq"])?;
    run_with(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "postgresql"])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    Ok(find_bin_dir())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(54329)
}

fn pg(bin: &Path, tool: &str, as_postgres: bool, args: &[&str]) -> Result {
    let exe = bin.join(tool);
    if as_postgres {
        let mut line = exe.display().to_string();
        for a in args {
            line.push_str(" '");
            line.push_str(&a.replace('\'', "'\\''"));
            line.push('\'');
        }
        run_with(
            Command::new("su")
                .args(["postgres", "-s", "/bin/sh", "-c", &line])
                .current_dir("/"),
        )
    } else {
        run_with(Command::new(exe).args(args))
    }
}

impl Cluster {
    /// Starts a new cluster, or `None` (with a loud note) where that is impossible.
    pub fn start() -> Result<Option<Cluster>> {
        let Some(bin) = ensure_installed()? else {
            eprintln!("xtask: PostgreSQL is not installed and cannot be (not root): its tests will be SKIPPED");
            return Ok(None);
        };
        let as_postgres = is_root();
        let dir = std::env::temp_dir().join(format!("keygate-pg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        if as_postgres {
            run("chown", &["postgres:postgres", &dir.display().to_string()])?;
        }
        let data = dir.display().to_string();
        pg(
            &bin,
            "initdb",
            as_postgres,
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        )?;
        let port = free_port();
        let opts = format!(
            "-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        );
        pg(
            &bin,
            "pg_ctl",
            as_postgres,
            &[
                "-D",
                &data,
                "-o",
                &opts,
                "-l",
                &format!("{data}/log"),
                "-w",
                "start",
            ],
        )?;
        Ok(Some(Cluster {
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            dir,
            bin,
            as_postgres,
        }))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.dir.display().to_string();
        let _ = pg(
            &self.bin,
            "pg_ctl",
            self.as_postgres,
            &["-D", &data, "-m", "fast", "-w", "stop"],
        );
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `cargo xtask with-postgres CMD ARGS...`: runs a command with a throw-away cluster.
pub fn with_cluster(args: &[String]) -> Result {
    let (program, rest) = args
        .split_first()
        .ok_or("usage: cargo xtask with-postgres CMD [ARGS...]")?;
    let cluster = Cluster::start()?.ok_or("PostgreSQL is not available here")?;
    run_with(
        Command::new(program)
            .args(rest)
            .env("KEYGATE_TEST_POSTGRES_URL", &cluster.url),
    )
}
