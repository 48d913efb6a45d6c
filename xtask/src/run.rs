//! `cargo xtask run`: keygate for local use, wired together: the control plane with its
//! dashboard on an embedded SQLite database in `.keygate/`, and the edge worker under
//! `wrangler dev`, sharing a generated secret (`.dev.vars`, git-ignored).

use std::process::{Child, Command};
use std::time::Duration;

use crate::cmd::{root, run_with, Result};
use crate::edge;

struct Options {
    release: bool,
    port: u16,
    edge_port: u16,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut o = Options {
        release: false,
        port: 8080,
        edge_port: 8787,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut port = |name: &str| -> Result<u16> {
            it.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{name} takes a port number"))
        };
        match a.as_str() {
            "--release" => o.release = true,
            "--port" => o.port = port("--port")?,
            "--edge-port" => o.edge_port = port("--edge-port")?,
            other => {
                return Err(format!(
                    "unknown argument `{other}` (try --release, --port N, --edge-port N)"
                ))
            }
        }
    }
    Ok(o)
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Builds everything, starts both servers, waits until one stops (Ctrl-C stops both).
pub fn run(args: &[String]) -> Result {
    let o = parse(args)?;
    crate::tools::ensure_wasm_target()?;
    edge::ensure_tools()?;
    edge::build()?;
    let secret = edge::ensure_dev_vars()?;
    let mut build = Command::new("cargo");
    build.args(["build", "-p", "keygate-control", "--bin", "keygate"]);
    if o.release {
        build.arg("--release");
    }
    run_with(&mut build)?;
    let profile = if o.release { "release" } else { "debug" };
    let data_dir = root().join(".keygate");
    let control_url = format!("http://127.0.0.1:{}", o.port);
    let edge_url = format!("http://127.0.0.1:{}", o.edge_port);

    let control = Command::new(root().join("target").join(profile).join("keygate"))
        .arg("serve")
        .env("KEYGATE_LISTEN", format!("127.0.0.1:{}", o.port))
        .env("KEYGATE_DATA_DIR", &data_dir)
        .env("KEYGATE_EDGE_URL", &edge_url)
        .env("KEYGATE_EDGE_SECRET", &secret)
        // The dashboard's example origin runs on loopback: allowed for local use only.
        .env("KEYGATE_ALLOW_PRIVATE_ORIGINS", "true")
        .current_dir(root())
        .spawn()
        .map_err(|e| format!("cannot start keygate: {e}"))?;
    let mut control = KillOnDrop(control);
    let worker = edge::wrangler_dev_command(o.edge_port, &control_url)
        .spawn()
        .map_err(|e| format!("cannot start wrangler dev: {e}"))?;
    let mut worker = KillOnDrop(worker);

    std::thread::sleep(Duration::from_secs(3));
    eprintln!(
        "\n\
         keygate is running\n\
         \x20 dashboard and API  {control_url}   (sign in with any email on a new instance; the code\n\
         \x20                    lands in {}/outbox.mbox)\n\
         \x20 edge worker        {edge_url}   (POST /v1/check, /x/<module>/<functionality>/...)\n\
         \x20 data               {}   (SQLite, master key, mail)\n\n\
         Try it: copy the publishable key from the dashboard, then\n\
         \x20 curl -s {edge_url}/v1/check -H 'content-type: application/json' \\\n\
         \x20      -d '{{\"key\":\"pk_test_...\",\"module\":\"billing\",\"functionality\":\"charge\"}}'\n\
         Revoke the key in the dashboard and run it again: the edge answers REVOKED at once.\n\
         Ctrl-C stops both.\n",
        data_dir.display(),
        data_dir.display(),
    );
    loop {
        if let Some(status) = control.0.try_wait().map_err(|e| e.to_string())? {
            return Err(format!("keygate stopped ({status})"));
        }
        if let Some(status) = worker.0.try_wait().map_err(|e| e.to_string())? {
            return Err(format!("wrangler dev stopped ({status})"));
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}
