//! The real control plane as a child process: `target/debug/keygate serve` on a chosen
//! loopback port with its own data directory (SQLite, master key, mbox mail outbox), that a
//! test can kill (SIGKILL, no graceful shutdown) and restart on the same data.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

use crate::edge::root;

/// Builds the `keygate` binary once per test process and returns its path; with
/// `KEYGATE_BINARY` set (`cargo xtask test` sets it once its one build has made every binary),
/// that binary, unbuilt.
pub fn binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            if let Some(built) = std::env::var_os("KEYGATE_BINARY") {
                return PathBuf::from(built);
            }
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
                .current_dir(root())
                .status()
                .expect("run cargo build");
            assert!(status.success(), "building the keygate binary failed");
            let target = std::env::var("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|_| root().join("target"));
            target.join("debug").join("keygate")
        })
        .clone()
}

/// The 6-digit sign-in code in the newest message to `email` of an mbox outbox's text (the
/// control plane's tests read their outbox with it too).
pub fn code_in_mbox(text: &str, email: &str) -> String {
    let message = text
        .split("\nFrom ")
        .filter(|m| m.contains(&format!("To: {email}")))
        .last()
        .unwrap_or_else(|| panic!("no mail to {email} in the outbox"));
    message
        .lines()
        .map(str::trim)
        .find(|l| l.len() == 6 && l.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or_else(|| panic!("no code in the mail to {email}"))
        .to_owned()
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// How to start the control plane.
#[derive(Clone, Debug, Default)]
pub struct ControlOptions {
    /// Port (default: a free one).
    pub port: Option<u16>,
    /// `KEYGATE_EDGE_URL`.
    pub edge_url: Option<String>,
    /// `KEYGATE_EDGE_SECRET`.
    pub edge_secret: Option<String>,
    /// `KEYGATE_DATABASE_URL` (default: SQLite in the data directory).
    pub database_url: Option<String>,
}

/// A fresh, empty PostgreSQL database on the cluster `KEYGATE_TEST_POSTGRES_URL` names (an
/// admin URL; `cargo xtask test` starts a throw-away cluster and sets it), created with
/// `psql`; `None`, with a loud note, when no PostgreSQL is configured.
pub fn new_postgres_database() -> Option<String> {
    let Ok(admin) = std::env::var("KEYGATE_TEST_POSTGRES_URL") else {
        eprintln!("SKIPPED: PostgreSQL variant (KEYGATE_TEST_POSTGRES_URL is not set; `cargo xtask test` sets it)");
        return None;
    };
    let name = format!("kg_e2e_{}", keygate_shared::random::hex_token());
    let out = Command::new(psql())
        .arg(&admin)
        .args(["-v", "ON_ERROR_STOP=1", "-q", "-c"])
        .arg(format!("CREATE DATABASE {name}"))
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "create a test database: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
    Some(format!("{base}/{name}"))
}

/// `psql`: from PATH, else the newest `/usr/lib/postgresql/*/bin` (Debian's server package).
fn psql() -> PathBuf {
    if Command::new("psql")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return PathBuf::from("psql");
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin/psql"))
        .filter(|p| p.exists())
        .collect();
    found.sort();
    found.pop().unwrap_or_else(|| PathBuf::from("psql"))
}

/// A running `keygate serve`; killed and its data removed on drop.
pub struct Keygate {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Its data directory.
    pub data_dir: PathBuf,
    options: ControlOptions,
    port: u16,
    child: Option<Child>,
    env: Vec<(String, String)>,
}

impl Keygate {
    /// Starts a control plane with a fresh data directory.
    pub fn start(options: ControlOptions) -> Keygate {
        let port = options.port.unwrap_or_else(free_port);
        let data_dir = std::env::temp_dir().join(format!(
            "keygate-e2e-{}-{}",
            std::process::id(),
            keygate_shared::random::hex_token()
        ));
        let mut k = Keygate {
            url: format!("http://127.0.0.1:{port}"),
            data_dir,
            options,
            port,
            child: None,
            env: Vec::new(),
        };
        // A port found free can be taken by another process before keygate binds it (tests run
        // in parallel): when the caller did not choose the port, try another one.
        for _ in 0..4 {
            match k.try_spawn() {
                Ok(()) => return k,
                Err(e) if k.options.port.is_none() => {
                    eprintln!("{e}; retrying on another port");
                    k.port = free_port();
                    k.url = format!("http://127.0.0.1:{}", k.port);
                }
                Err(e) => panic!("{e}"),
            }
        }
        k.spawn();
        k
    }

    fn spawn(&mut self) {
        if let Err(e) = self.try_spawn() {
            panic!("{e}");
        }
    }

    fn try_spawn(&mut self) -> Result<(), String> {
        // Its own working directory, so no ./keygate.toml of the caller is picked up.
        std::fs::create_dir_all(&self.data_dir).expect("create the data directory");
        let mut cmd = Command::new(binary());
        cmd.current_dir(&self.data_dir);
        cmd.arg("serve")
            .env("KEYGATE_LISTEN", format!("127.0.0.1:{}", self.port))
            .env("KEYGATE_DATA_DIR", &self.data_dir)
            .env("KEYGATE_LOG", "warn")
            // Test origins run on loopback.
            .env("KEYGATE_ALLOW_PRIVATE_ORIGINS", "true")
            .env_remove("KEYGATE_DATABASE_URL")
            .env_remove("KEYGATE_SMTP_URL")
            .env_remove("KEYGATE_MAIL_OUTBOX")
            .env_remove("KEYGATE_CONFIG")
            .env_remove("KEYGATE_MASTER_KEY")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(u) = &self.options.edge_url {
            cmd.env("KEYGATE_EDGE_URL", u);
        }
        if let Some(s) = &self.options.edge_secret {
            cmd.env("KEYGATE_EDGE_SECRET", s);
        }
        if let Some(u) = &self.options.database_url {
            cmd.env("KEYGATE_DATABASE_URL", u);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start keygate serve");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            for line in lines.by_ref() {
                let Ok(line) = line else { break };
                if line.starts_with("keygate listening on ") {
                    let _ = tx.send(());
                    break;
                }
            }
            for _ in lines {}
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(()) => {
                self.child = Some(child);
                Ok(())
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = child.wait().ok();
                Err(format!(
                    "keygate serve on port {} exited before listening ({status:?})",
                    self.port
                ))
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                Err("keygate serve did not start within 60 s".into())
            }
        }
    }

    /// Kills the process at once (SIGKILL): no graceful shutdown, no flushing.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Runs `keygate <args>` (a command-line tool such as `outbox`) on this control plane's
    /// data directory and database, with `env` added; asserts it succeeded and returns its
    /// stdout.
    pub fn cli(&self, env: &[(&str, &str)], args: &[&str]) -> String {
        let mut cmd = Command::new(binary());
        cmd.args(args)
            .current_dir(&self.data_dir)
            .env("KEYGATE_DATA_DIR", &self.data_dir)
            .env("KEYGATE_LOG", "warn")
            .env_remove("KEYGATE_DATABASE_URL")
            .env_remove("KEYGATE_CONFIG")
            .env_remove("KEYGATE_MASTER_KEY");
        if let Some(url) = self.database_url() {
            cmd.env("KEYGATE_DATABASE_URL", url);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("run keygate");
        assert!(
            out.status.success(),
            "keygate {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Its `/metrics` text.
    pub fn metrics(&self) -> String {
        ureq::get(format!("{}/metrics", self.url))
            .call()
            .expect("GET /metrics")
            .into_body()
            .read_to_string()
            .expect("metrics text")
    }

    /// The database URL it runs on, if not the default SQLite file.
    pub fn database_url(&self) -> Option<&str> {
        self.options.database_url.as_deref()
    }

    /// Starts it again on the same port and data, optionally pointing at another edge URL.
    pub fn restart(&mut self, edge_url: Option<String>) {
        self.kill();
        if edge_url.is_some() {
            self.options.edge_url = edge_url;
        }
        self.spawn();
    }

    /// Starts it again (same port and data) with another edge secret and extra environment
    /// (e.g. `KEYGATE_EDGE_SECRET_PREVIOUS`), as an operator changing its settings would.
    pub fn restart_with(&mut self, edge_secret: &str, env: &[(&str, &str)]) {
        self.kill();
        self.options.edge_secret = Some(edge_secret.to_owned());
        self.env = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.spawn();
    }

    /// Messages to `email` in the outbox so far.
    pub fn mail_count(&self, email: &str) -> usize {
        std::fs::read_to_string(self.data_dir.join("outbox.mbox"))
            .unwrap_or_default()
            .split("\nFrom ")
            .filter(|m| m.contains(&format!("To: {email}")))
            .count()
    }

    /// Waits (up to 10 s) until more than `before` messages went to `email`: mail leaves the
    /// server off the request path.
    pub fn wait_for_mail(&self, email: &str, before: usize) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while self.mail_count(email) <= before && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// The 6-digit code in the newest mail to `email` (waiting for a first one).
    pub fn outbox_code(&self, email: &str) -> String {
        self.wait_for_mail(email, 0);
        let text = std::fs::read_to_string(self.data_dir.join("outbox.mbox")).unwrap_or_default();
        code_in_mbox(&text, email)
    }

    /// Signs `email` in through the emailed code and returns the session.
    pub fn sign_in(&self, email: &str) -> Session {
        let anon = Session {
            base: self.url.clone(),
            cookie: String::new(),
            csrf: String::new(),
            agent: agent(),
        };
        let before = self.mail_count(email);
        let (status, _) = anon.send(
            "POST",
            "/api/v1/auth/otp",
            Some(serde_json::json!({"email": email})),
        );
        assert_eq!(status, 202);
        self.wait_for_mail(email, before);
        let code = self.outbox_code(email);
        let mut req = ureq::http::Request::builder()
            .method("POST")
            .uri(format!("{}/api/v1/auth/session", self.url))
            .header("content-type", "application/json");
        req = req.header("user-agent", "keygate-e2e");
        let body = serde_json::json!({"email": email, "code": code}).to_string();
        let resp = anon
            .agent
            .run(req.body(body.into_bytes()).unwrap())
            .expect("sign in");
        assert_eq!(resp.status().as_u16(), 201, "sign-in failed");
        let cookie = resp
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.split(';').next())
            .collect::<Vec<_>>()
            .join("; ");
        let json: Value = serde_json::from_slice(&resp.into_body().read_to_vec().unwrap()).unwrap();
        Session {
            base: self.url.clone(),
            cookie,
            csrf: json["csrfToken"].as_str().unwrap().to_owned(),
            agent: agent(),
        }
    }
}

impl Drop for Keygate {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into()
}

/// A signed-in dashboard session (cookie + CSRF token).
pub struct Session {
    base: String,
    cookie: String,
    csrf: String,
    agent: ureq::Agent,
}

impl Session {
    /// The `Cookie` header value this session sends.
    pub fn cookie(&self) -> &str {
        &self.cookie
    }

    /// The CSRF token writes echo in `X-CSRF-Token`.
    pub fn csrf(&self) -> &str {
        &self.csrf
    }

    /// Sends a request; returns status and JSON body (`Null` if none).
    pub fn send(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if !self.cookie.is_empty() {
            req = req
                .header("cookie", &self.cookie)
                .header("x-csrf-token", &self.csrf);
        }
        let result = match body {
            Some(b) => self.agent.run(
                req.header("content-type", "application/json")
                    .body(b.to_string().into_bytes())
                    .unwrap(),
            ),
            None => self.agent.run(req.body(()).unwrap()),
        };
        let resp = result.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status().as_u16();
        let bytes = resp.into_body().read_to_vec().unwrap_or_default();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// The workspace's gateway signing secrets (owners and admins), as its origin is set up
    /// with them: every workspace has its own from creation.
    pub fn gateway_secrets(
        &self,
        workspace_id: &str,
    ) -> Vec<keygate_shared::gateway::GatewaySecret> {
        let body = self.get(&format!("/api/v1/workspace/{workspace_id}/gateway-secret"));
        body["gatewaySecrets"]
            .as_array()
            .expect("gatewaySecrets")
            .iter()
            .filter_map(|s| {
                keygate_shared::gateway::GatewaySecret::new(
                    s["kid"].as_str()?,
                    s["secret"].as_str()?,
                )
            })
            .collect()
    }

    /// GET, asserting 2xx; the JSON body.
    pub fn get(&self, path: &str) -> Value {
        let (status, body) = self.send("GET", path, None);
        assert!((200..300).contains(&status), "GET {path}: {status} {body}");
        body
    }

    /// Creates a workspace named `name`; its id.
    pub fn create_workspace(&self, name: &str) -> String {
        let w = self.write(
            "POST",
            "/api/v1/workspace",
            serde_json::json!({"name": name}),
        );
        w["workspace"]["id"].as_str().unwrap().to_owned()
    }

    /// The live publishable key of workspace `ws`.
    pub fn publishable_key(&self, ws: &str) -> String {
        self.get(&format!("/api/v1/workspace/{ws}/publishable-key"))["publishableKey"]["key"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Revokes (rotates) the publishable key of workspace `ws`.
    pub fn revoke(&self, ws: &str) {
        self.write(
            "POST",
            &format!("/api/v1/workspace/{ws}/publishable-key/revoke"),
            serde_json::json!({}),
        );
    }

    /// A write, asserting 2xx; the JSON body.
    pub fn write(&self, method: &str, path: &str, body: Value) -> Value {
        let (status, out) = self.send(method, path, Some(body));
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {out}"
        );
        out
    }
}
