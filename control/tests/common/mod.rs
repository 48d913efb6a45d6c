//! Test harness: the real control plane (the same router and state as `keygate serve`) on a
//! free loopback port with a temporary data directory, on SQLite or on a fresh PostgreSQL
//! database, and an HTTP client that signs in through the real email-code flow.
//!
//! PostgreSQL: set `KEYGATE_TEST_POSTGRES_URL` to an admin URL (`cargo xtask test` starts a
//! throw-away cluster and sets it); each server gets its own new database. Without it, the
//! PostgreSQL variants print a loud SKIPPED line and pass.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Once, OnceLock};

use keygate_control::config::{Settings, SettingsArgs};
use keygate_control::http::{self, AppState};
use serde_json::Value;

/// Runs a scenario twice, on SQLite and on a fresh PostgreSQL database (skipped, with a loud
/// note, when none is configured).
///
/// - `on_both_databases!(name, scenario)`: `async fn scenario(TestServer)`, default settings;
/// - `on_both_databases!(name, scenario, |url| start)`: `start` builds the scenario's argument
///   from `url` (`None`: SQLite) inside the generated `mod name`, e.g. `|url| url` for an
///   `async fn scenario(Option<String>)`, or `|url| super::server(url).await`.
#[macro_export]
macro_rules! on_both_databases {
    ($name:ident, $scenario:ident) => {
        $crate::on_both_databases!($name, $scenario, |url| {
            $crate::common::TestServer::start_with(url, Default::default()).await
        });
    };
    ($name:ident, $scenario:ident, |$url:ident| $start:expr) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let $url: Option<String> = None;
                super::$scenario($start).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(url) = $crate::common::TestServer::new_postgres_database().await {
                    let $url = Some(url);
                    super::$scenario($start).await
                }
            }
        }
    };
}

/// Every SDK-key scope (`Client::sdk_key` takes scopes in this JSON form).
pub const ALL_SCOPES: &str = r#"{"workspace":["read","write"],"workspace_scopes":["read","write"],"api_keys":["read","write"]}"#;

static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
static INIT: Once = Once::new();

#[derive(Clone)]
struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn init_logs() {
    INIT.call_once(|| {
        let buf = LOGS
            .get_or_init(|| Arc::new(Mutex::new(Vec::new())))
            .clone();
        let writer = move || LogWriter(buf.clone());
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "trace,cookie_store=off,reqwest=off,hyper_util::client=off",
            ))
            .with_writer(writer)
            .with_ansi(false)
            .init();
    });
}

/// Everything logged so far by every server in this test binary, at every level.
pub fn captured_logs() -> String {
    LOGS.get()
        .map(|b| String::from_utf8_lossy(&b.lock().unwrap()).into_owned())
        .unwrap_or_default()
}

/// A running control plane.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Its state (database pool, settings, keys).
    pub state: AppState,
    /// Its data directory (SQLite file, master key, mail outbox).
    pub data_dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestServer {
    /// A server on a fresh SQLite database.
    pub async fn start() -> TestServer {
        Self::start_with(None, SettingsArgs::default()).await
    }

    /// A fresh, empty PostgreSQL database's URL, or `None` (with a loud note) when no
    /// PostgreSQL is configured for tests.
    pub async fn new_postgres_database() -> Option<String> {
        let Ok(admin) = std::env::var("KEYGATE_TEST_POSTGRES_URL") else {
            eprintln!("SKIPPED: PostgreSQL variant (KEYGATE_TEST_POSTGRES_URL is not set; `cargo xtask test` sets it)");
            return None;
        };
        let name = format!("kg_test_{}", uuid_like());
        let pool = sqlx::PgPool::connect(&admin)
            .await
            .expect("connect to the test PostgreSQL");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&pool)
            .await
            .expect("create a test database");
        pool.close().await;
        let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
        Some(format!("{base}/{name}"))
    }

    /// A server on a fresh PostgreSQL database, or `None` (with a loud note) when no
    /// PostgreSQL is configured for tests.
    pub async fn start_postgres() -> Option<TestServer> {
        let url = Self::new_postgres_database().await?;
        Some(Self::start_with(Some(url), SettingsArgs::default()).await)
    }

    /// A server on SQLite with the settings `set` makes.
    pub async fn configured(set: impl FnOnce(&mut SettingsArgs)) -> TestServer {
        let mut args = SettingsArgs::default();
        set(&mut args);
        Self::start_with(None, args).await
    }

    /// A server with explicit settings (`database_url` `None`: SQLite in the data dir).
    pub async fn start_with(database_url: Option<String>, mut args: SettingsArgs) -> TestServer {
        init_logs();
        let data_dir = tempfile::tempdir().expect("temp dir");
        args.data_dir = Some(data_dir.path().to_path_buf());
        args.database_url = database_url.or(args.database_url);
        let settings = Settings::resolve(args).expect("settings");
        let state = keygate_control::server::build_state(settings)
            .await
            .expect("server state");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = http::router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
        let (_stop, stop_rx) = tokio::sync::watch::channel(false);
        let deliverer = tokio::spawn(keygate_control::jobs::deliverer::run(
            state.db.clone(),
            state.settings.clone(),
            state.edge_wakeup.clone(),
            stop_rx,
        ));
        let task = tokio::spawn(async move {
            let _keep_deliverer_running = _stop;
            axum::serve(listener, app).await.unwrap();
            deliverer.abort();
        });
        TestServer {
            base: format!("http://{addr}"),
            state,
            data_dir,
            task,
        }
    }

    /// Absolute URL of a path.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// The mail outbox's whole text, once every queued message was written.
    pub async fn outbox(&self) -> String {
        self.state.mail.flushed().await;
        std::fs::read_to_string(self.data_dir.path().join("outbox.mbox")).unwrap_or_default()
    }

    /// How many messages went to `email`.
    pub async fn mail_count(&self, email: &str) -> usize {
        self.outbox()
            .await
            .split("\nFrom ")
            .filter(|m| m.contains(&format!("To: {email}")))
            .count()
    }

    /// The 6-digit code in the newest message to `email`.
    pub async fn outbox_code(&self, email: &str) -> String {
        keygate_tests::control::code_in_mbox(&self.outbox().await, email)
    }

    /// A client with no credentials.
    pub fn anonymous(&self) -> Client {
        Client::new(&self.base)
    }

    /// Founds organisation `name` with `owner` as its owner (another tenant: the first
    /// sign-in founds the instance's own organisation) and signs the owner in.
    pub async fn sign_in_to_new_organisation(&self, name: &str, owner: &str) -> Client {
        keygate_control::http::members::create_organisation(&self.state.db, name, owner)
            .await
            .unwrap();
        self.sign_in(owner).await
    }

    /// Signs `email` in through the real flow (code by email) and returns its client.
    pub async fn sign_in(&self, email: &str) -> Client {
        let mut client = self.anonymous();
        let r = client
            .post("/api/v1/auth/otp", serde_json::json!({"email": email}))
            .await;
        assert_eq!(r.status, 202, "{r:?}");
        let challenge = r.body["challengeId"].as_str().map(str::to_owned);
        let code = self.outbox_code(&email.to_ascii_lowercase()).await;
        let r = client
            .post(
                "/api/v1/auth/session",
                serde_json::json!({"email": email, "code": code, "challengeId": challenge}),
            )
            .await;
        assert_eq!(r.status, 201, "sign-in of {email} failed: {r:?}");
        client.csrf = r.body["csrfToken"].as_str().map(str::to_owned);
        client
    }
}

fn uuid_like() -> String {
    keygate_shared::random::hex_token()
}

/// An HTTP client with its own cookie jar. State-changing requests carry the CSRF header
/// once signed in; `bearer` sends an SDK key instead.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    /// The CSRF token sent on non-GET requests.
    pub csrf: Option<String>,
    /// `Authorization: Bearer` value.
    pub bearer: Option<String>,
    /// `X-Forwarded-For` value (believed only from a trusted proxy).
    pub forwarded_for: Option<String>,
}

/// A response: status, JSON body (`Null` if not JSON), headers.
#[derive(Debug, Clone)]
pub struct Resp {
    /// HTTP status.
    pub status: u16,
    /// Parsed JSON body.
    pub body: Value,
    /// Raw body text.
    pub text: String,
    /// Headers.
    pub headers: reqwest::header::HeaderMap,
}

impl Resp {
    /// The `error.reason` of an error body.
    pub fn reason(&self) -> &str {
        self.body["error"]["reason"].as_str().unwrap_or_default()
    }

    /// Asserts an error answer with `status` and `error.reason`.
    #[track_caller]
    pub fn assert_error(&self, status: u16, reason: &str) {
        assert_eq!((self.status, self.reason()), (status, reason), "{self:?}");
    }
}

impl Client {
    fn new(base: &str) -> Client {
        Client {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .build()
                .unwrap(),
            base: base.to_owned(),
            csrf: None,
            bearer: None,
            forwarded_for: None,
        }
    }

    /// The same client (cookie jar, CSRF token) talking to another server on this host: a
    /// session carried across a restart.
    pub fn rebased(&self, base: &str) -> Client {
        Client {
            base: base.to_owned(),
            ..self.clone()
        }
    }

    /// The same client, its requests forwarded for `ip` (as a proxy would say).
    pub fn via_ip(&self, ip: &str) -> Client {
        Client {
            forwarded_for: Some(ip.to_owned()),
            ..self.clone()
        }
    }

    /// A client authenticating with an SDK key only (no cookies).
    pub fn with_bearer(&self, key: &str) -> Client {
        Client {
            http: reqwest::Client::new(),
            base: self.base.clone(),
            csrf: None,
            bearer: Some(key.to_owned()),
            forwarded_for: None,
        }
    }

    /// Sends any request with an optional raw body and content type.
    pub async fn send(&self, method: &str, path: &str, body: Option<(&str, Vec<u8>)>) -> Resp {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .http
            .request(method.clone(), format!("{}{}", self.base, path));
        if method != reqwest::Method::GET {
            if let Some(csrf) = &self.csrf {
                req = req.header("x-csrf-token", csrf);
            }
        }
        if let Some(token) = &self.bearer {
            req = req.bearer_auth(token);
        }
        if let Some(ip) = &self.forwarded_for {
            req = req.header("x-forwarded-for", ip);
        }
        if let Some((content_type, bytes)) = body {
            req = req.header("content-type", content_type).body(bytes);
        }
        let res = req.send().await.expect("request");
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let text = res.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp {
            status,
            body,
            text,
            headers,
        }
    }

    fn json(v: Value) -> Option<(&'static str, Vec<u8>)> {
        Some(("application/json", serde_json::to_vec(&v).unwrap()))
    }

    /// GET.
    pub async fn get(&self, path: &str) -> Resp {
        self.send("GET", path, None).await
    }
    /// POST with a JSON body.
    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.send("POST", path, Self::json(body)).await
    }
    /// PATCH with a JSON body.
    pub async fn patch(&self, path: &str, body: Value) -> Resp {
        self.send("PATCH", path, Self::json(body)).await
    }
    /// PUT with a JSON body.
    pub async fn put(&self, path: &str, body: Value) -> Resp {
        self.send("PUT", path, Self::json(body)).await
    }
    /// POST with a raw body of `content_type`.
    pub async fn post_raw(&self, path: &str, content_type: &str, body: impl Into<Vec<u8>>) -> Resp {
        self.send("POST", path, Some((content_type, body.into())))
            .await
    }
    /// DELETE.
    pub async fn delete(&self, path: &str) -> Resp {
        self.send("DELETE", path, None).await
    }

    /// Creates an SDK key named `backend` with `scopes` (JSON text such as [`ALL_SCOPES`]),
    /// bound to `workspace` if given; returns the key, shown once.
    pub async fn sdk_key(&self, scopes: &str, workspace: Option<&str>) -> String {
        let scopes: Value = serde_json::from_str(scopes).expect("scopes are JSON");
        let mut body = serde_json::json!({ "name": "backend", "scopes": scopes });
        if let Some(w) = workspace {
            body["workspaceId"] = serde_json::json!(w);
        }
        let r = self.post("/api/v1/sdk-keys", body).await;
        assert_eq!(r.status, 201, "create SDK key: {r:?}");
        r.body["key"]
            .as_str()
            .expect("the key is shown once")
            .to_owned()
    }

    /// A client authenticating with a new SDK key (see [`Client::sdk_key`]).
    pub async fn sdk_client(&self, scopes: &str, workspace: Option<&str>) -> Client {
        self.with_bearer(&self.sdk_key(scopes, workspace).await)
    }

    /// `POST /api/v1/auth/session`: redeems an emailed `code` for `email` (no challenge id).
    pub async fn redeem(&self, email: &str, code: &str) -> Resp {
        self.post(
            "/api/v1/auth/session",
            serde_json::json!({"email": email, "code": code}),
        )
        .await
    }

    /// `POST /api/v1/members`: invites `email` with `role`.
    pub async fn invite(&self, email: &str, role: &str) -> Resp {
        self.post(
            "/api/v1/members",
            serde_json::json!({"email": email, "role": role}),
        )
        .await
    }
}
