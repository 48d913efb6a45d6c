//! Settings: flags, then `KEYGATE_*` environment variables, then an optional `keygate.toml`,
//! then defaults (the README's "Configuration" table lists them all). Secrets read here (master key, edge secret,
//! SMTP password) are never logged: [`Settings`]'s `Debug` masks them.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use clap::Args;
use serde::Deserialize;

/// The `serve`/`migrate`/`user` commands' shared options. Each can also come from the
/// environment or from the config file.
#[derive(Args, Debug, Clone, Default)]
pub struct SettingsArgs {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "KEYGATE_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Where the SQLite file, generated master key and mail outbox live.
    #[arg(long, env = "KEYGATE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// `sqlite://...` or `postgres://...` [default: SQLite file in the data directory].
    #[arg(long, env = "KEYGATE_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// 32-byte key (64 hex chars or base64) encrypting revealable secrets.
    #[arg(long, env = "KEYGATE_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<String>,
    /// The master key being rotated away from: what was sealed or keyed under it still opens
    /// until `keygate rotate-master-key` has re-sealed everything and this is removed.
    #[arg(long, env = "KEYGATE_MASTER_KEY_PREVIOUS", hide_env_values = true)]
    pub master_key_previous: Option<String>,
    /// `smtp://user:pass@host:587` (STARTTLS) or `smtps://...`; unset: mail goes to the outbox file.
    #[arg(long, env = "KEYGATE_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,
    /// The sender address of keygate's email.
    #[arg(long, env = "KEYGATE_MAIL_FROM")]
    pub mail_from: Option<String>,
    /// mbox file receiving mail when no SMTP server is set [default: <data dir>/outbox.mbox].
    #[arg(long, env = "KEYGATE_MAIL_OUTBOX")]
    pub mail_outbox: Option<PathBuf>,
    /// The edge worker's base URL, where edge updates are delivered.
    #[arg(long, env = "KEYGATE_EDGE_URL")]
    pub edge_url: Option<String>,
    /// The HMAC secret shared with the edge worker.
    #[arg(long, env = "KEYGATE_EDGE_SECRET", hide_env_values = true)]
    pub edge_secret: Option<String>,
    /// The edge secret being rotated away from: pull requests signed with it are still
    /// accepted during the overlap (everything is signed with `KEYGATE_EDGE_SECRET`).
    #[arg(long, env = "KEYGATE_EDGE_SECRET_PREVIOUS", hide_env_values = true)]
    pub edge_secret_previous: Option<String>,
    /// Mark cookies `Secure` with the `__Host-` prefix [default: true when the public URL is
    /// https, else false; `false` keeps plain-http loopback use working].
    #[arg(long, env = "KEYGATE_SECURE_COOKIES")]
    pub secure_cookies: Option<bool>,
    /// Allow workspace origin URLs on http and on loopback/private addresses (local
    /// development only) [default: false].
    #[arg(long, env = "KEYGATE_ALLOW_PRIVATE_ORIGINS")]
    pub allow_private_origins: Option<bool>,
    /// The URL users reach the dashboard at (e.g. `https://keygate.example.com`).
    #[arg(long, env = "KEYGATE_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Comma-separated proxy addresses or CIDR ranges whose `X-Forwarded-For` is believed
    /// (the client IP that rate limits and the audit log use) [default: none].
    #[arg(long, env = "KEYGATE_TRUSTED_PROXIES")]
    pub trusted_proxies: Option<String>,
    /// How long a link token (the customer portal's) lives, in seconds, 1 to 86400
    /// [default: 900].
    #[arg(long, env = "KEYGATE_LINK_TOKEN_TTL_SECS")]
    pub link_token_ttl_secs: Option<u64>,
    /// Log format: `text` or `json` [default: text].
    #[arg(long, env = "KEYGATE_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Config file [default: ./keygate.toml if present].
    #[arg(long, env = "KEYGATE_CONFIG")]
    pub config: Option<PathBuf>,
}

/// The same settings as read from `keygate.toml` (snake_case keys).
#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    master_key: Option<String>,
    master_key_previous: Option<String>,
    smtp_url: Option<String>,
    mail_from: Option<String>,
    mail_outbox: Option<PathBuf>,
    edge_url: Option<String>,
    edge_secret: Option<String>,
    edge_secret_previous: Option<String>,
    secure_cookies: Option<bool>,
    allow_private_origins: Option<bool>,
    public_url: Option<String>,
    trusted_proxies: Option<String>,
    link_token_ttl_secs: Option<u64>,
    log_format: Option<String>,
}

/// Resolved settings.
#[derive(Clone)]
pub struct Settings {
    /// Listen address.
    pub listen: SocketAddr,
    /// Data directory (created if missing).
    pub data_dir: PathBuf,
    /// Database URL.
    pub database_url: String,
    /// Master key text, if configured (else generated in the data directory).
    pub master_key: Option<String>,
    /// The previous master key, while a rotation is pending.
    pub master_key_previous: Option<String>,
    /// SMTP URL, if any.
    pub smtp_url: Option<String>,
    /// Sender address.
    pub mail_from: String,
    /// mbox outbox path.
    pub mail_outbox: PathBuf,
    /// Edge base URL, if any.
    pub edge_url: Option<String>,
    /// Edge HMAC secret, if any.
    pub edge_secret: Option<String>,
    /// The previous edge secret, still accepted during a rotation's overlap.
    pub edge_secret_previous: Option<String>,
    /// `Secure` cookies with the `__Host-` prefix.
    pub secure_cookies: bool,
    /// Whether origin URLs may be http or private addresses (`KEYGATE_ALLOW_PRIVATE_ORIGINS`).
    pub allow_private_origins: bool,
    /// Public URL, if set.
    pub public_url: Option<String>,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// How long a link token lives, in milliseconds.
    pub link_token_ttl_ms: i64,
    /// `text` or `json`.
    pub log_format: String,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |o: &Option<String>| if o.is_some() { "<set>" } else { "<unset>" };
        f.debug_struct("Settings")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("database", &redact_url(&self.database_url))
            .field("master_key", &set(&self.master_key))
            .field("master_key_previous", &set(&self.master_key_previous))
            .field("smtp_url", &self.smtp_url.as_deref().map(redact_url))
            .field("mail_from", &self.mail_from)
            .field("mail_outbox", &self.mail_outbox)
            .field("edge_url", &self.edge_url)
            .field("edge_secret", &set(&self.edge_secret))
            .field("edge_secret_previous", &set(&self.edge_secret_previous))
            .field("secure_cookies", &self.secure_cookies)
            .field("allow_private_origins", &self.allow_private_origins)
            .field("public_url", &self.public_url)
            .field("trusted_proxies", &self.trusted_proxies)
            .finish()
    }
}

/// A URL with any password replaced by `***`, for logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..s + 3], user, &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

fn default_data_dir() -> PathBuf {
    directories::ProjectDirs::from("", "", "keygate")
        .map(|d| d.data_dir().to_path_buf())
        .unwrap_or_else(|| PathBuf::from(".keygate"))
}

impl Settings {
    /// `KEYGATE_EDGE_SECRET`'s bytes, if set and not empty.
    pub fn edge_secret_bytes(&self) -> Option<&[u8]> {
        non_empty(&self.edge_secret)
    }

    /// `KEYGATE_EDGE_SECRET_PREVIOUS`'s bytes, if set and not empty.
    pub fn edge_secret_previous_bytes(&self) -> Option<&[u8]> {
        non_empty(&self.edge_secret_previous)
    }

    /// Resolves flags/env over the config file over defaults.
    pub fn resolve(args: SettingsArgs) -> Result<Settings, String> {
        let file = config_file(args.config.clone())?;
        let data_dir = args
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(default_data_dir);
        let database_url = args
            .database_url
            .or(file.database_url)
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("keygate.db").display()));
        let mail_outbox = args
            .mail_outbox
            .or(file.mail_outbox)
            .unwrap_or_else(|| data_dir.join("outbox.mbox"));
        let log_format = log_format(args.log_format.or(file.log_format))?;
        let public_url = args.public_url.or(file.public_url);
        let trusted_proxies = match args.trusted_proxies.or(file.trusted_proxies) {
            None => Vec::new(),
            Some(list) => parse_trusted_proxies(&list)?,
        };
        let secure_cookies = args
            .secure_cookies
            .or(file.secure_cookies)
            .unwrap_or_else(|| {
                public_url
                    .as_deref()
                    .is_some_and(|u| u.starts_with("https://"))
            });
        Ok(Settings {
            listen: args
                .listen
                .or(file.listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            data_dir,
            database_url,
            master_key: args.master_key.or(file.master_key),
            master_key_previous: args
                .master_key_previous
                .or(file.master_key_previous)
                .filter(|s| !s.trim().is_empty()),
            smtp_url: args.smtp_url.or(file.smtp_url),
            mail_from: args
                .mail_from
                .or(file.mail_from)
                .unwrap_or_else(|| "keygate <keygate@localhost>".into()),
            mail_outbox,
            edge_url: args
                .edge_url
                .or(file.edge_url)
                .map(|u| u.trim_end_matches('/').to_owned()),
            edge_secret: args.edge_secret.or(file.edge_secret),
            edge_secret_previous: args
                .edge_secret_previous
                .or(file.edge_secret_previous)
                .filter(|s| !s.is_empty()),
            secure_cookies,
            allow_private_origins: args
                .allow_private_origins
                .or(file.allow_private_origins)
                .unwrap_or(false),
            public_url,
            trusted_proxies,
            link_token_ttl_ms: link_token_ttl_ms(
                args.link_token_ttl_secs.or(file.link_token_ttl_secs),
            )?,
            log_format,
        })
    }
}

/// The settings file: `path` if given, else `keygate.toml` in the working folder if there is
/// one, else none (all defaults).
fn config_file(path: Option<PathBuf>) -> Result<FileSettings, String> {
    let path = path.or_else(|| {
        let p = PathBuf::from("keygate.toml");
        p.exists().then_some(p)
    });
    match &path {
        Some(p) => load_file(p),
        None => Ok(FileSettings::default()),
    }
}

/// `KEYGATE_LINK_TOKEN_TTL_SECS` in milliseconds: 1 s to a day, 15 minutes by default.
fn link_token_ttl_ms(secs: Option<u64>) -> Result<i64, String> {
    match secs {
        None => Ok(keygate_shared::link_token::DEFAULT_TTL_MS),
        Some(s @ 1..=86_400) => Ok(s as i64 * 1000),
        Some(s) => Err(format!(
            "the link token lifetime is 1 to 86400 seconds, not {s}"
        )),
    }
}

/// The log format: `text` (the default) or `json`.
fn log_format(value: Option<String>) -> Result<String, String> {
    match value.as_deref().unwrap_or("text") {
        f @ ("text" | "json") => Ok(f.to_owned()),
        other => Err(format!(
            "log format must be `text` or `json`, not `{other}`"
        )),
    }
}

/// `KEYGATE_TRUSTED_PROXIES`: comma-separated addresses or CIDR ranges.
fn parse_trusted_proxies(list: &str) -> Result<Vec<IpNet>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            IpNet::parse(s).ok_or_else(|| {
                format!("KEYGATE_TRUSTED_PROXIES: `{s}` is not an IP address or CIDR range")
            })
        })
        .collect()
}

/// An IP address range (`10.0.0.0/8`, `::1/128`; a bare address is a /32 or /128).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Parses `addr` or `addr/prefix`.
    pub fn parse(s: &str) -> Option<IpNet> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
            None => (s.parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(IpNet { addr, prefix })
    }

    /// Whether `ip` is in the range (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// The client's IP: the peer, unless the peer is a trusted proxy; then the rightmost entry
/// of `X-Forwarded-For` (the values of every such header, in order) that is not itself a
/// trusted proxy. Entries left of it were written by the client and prove nothing.
pub fn client_ip(peer: IpAddr, forwarded_for: &[&str], trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let mut client = peer;
    for entry in forwarded_for.iter().rev().flat_map(|h| h.rsplit(',')) {
        match entry.trim().parse::<IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !is_trusted(ip) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    client
}

fn load_file(path: &Path) -> Result<FileSettings, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| format!("config file {}: {}", path.display(), e.message()))
}

fn non_empty(secret: &Option<String>) -> Option<&[u8]> {
    secret
        .as_deref()
        .map(str::as_bytes)
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_trusted_proxies_name_the_client() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let trusted = [
            IpNet::parse("10.0.0.0/8").unwrap(),
            IpNet::parse("::1").unwrap(),
        ];
        // An untrusted peer's header is ignored.
        assert_eq!(
            client_ip(ip("203.0.113.9"), &["1.2.3.4"], &trusted),
            ip("203.0.113.9")
        );
        // A trusted proxy: the rightmost untrusted entry, not what the client wrote first.
        assert_eq!(
            client_ip(
                ip("10.1.2.3"),
                &["6.6.6.6, 198.51.100.7, 10.9.9.9"],
                &trusted
            ),
            ip("198.51.100.7")
        );
        assert_eq!(
            client_ip(ip("::1"), &["6.6.6.6", "198.51.100.7"], &trusted),
            ip("198.51.100.7")
        );
        assert_eq!(client_ip(ip("10.1.2.3"), &[], &trusted), ip("10.1.2.3"));
        assert_eq!(
            client_ip(ip("10.1.2.3"), &["junk"], &trusted),
            ip("10.1.2.3")
        );
        assert!(IpNet::parse("10.0.0.0/33").is_none());
        assert!(IpNet::parse("nope").is_none());
        assert!(IpNet::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(IpNet::parse("127.0.0.1")
            .unwrap()
            .contains(ip("::ffff:127.0.0.1")));
    }

    #[test]
    fn cookies_are_secure_by_default_behind_an_https_public_url() {
        let resolve = |public: Option<&str>, secure: Option<bool>| {
            Settings::resolve(SettingsArgs {
                data_dir: Some("/tmp/kg".into()),
                public_url: public.map(str::to_owned),
                secure_cookies: secure,
                ..Default::default()
            })
            .unwrap()
            .secure_cookies
        };
        assert!(!resolve(None, None));
        assert!(resolve(Some("https://kg.example.com"), None));
        assert!(!resolve(Some("http://127.0.0.1:8080"), None));
        assert!(!resolve(Some("https://kg.example.com"), Some(false)));
        assert!(resolve(None, Some(true)));
    }

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            redact_url("postgres://kg:s3cret@db:5432/kg"),
            "postgres://kg:***@db:5432/kg"
        );
        assert_eq!(redact_url("sqlite:///tmp/x.db"), "sqlite:///tmp/x.db");
        assert_eq!(redact_url("smtp://user@host"), "smtp://user@host");
    }

    #[test]
    fn defaults_put_everything_in_the_data_dir() {
        let s = Settings::resolve(SettingsArgs {
            data_dir: Some("/tmp/kg".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(s.database_url, "sqlite:///tmp/kg/keygate.db");
        assert_eq!(s.mail_outbox, PathBuf::from("/tmp/kg/outbox.mbox"));
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
        let shown = format!("{s:?}");
        assert!(!shown.contains("s3cret"));
    }
}
