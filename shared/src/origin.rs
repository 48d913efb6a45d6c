//! Allowed origins: which browser origins may use a publishable key.
//!
//! An entry is an exact origin (`https://app.example.com`, `http://localhost:3000`) or a
//! wildcard over subdomains (`https://*.example.com`, which matches `https://a.example.com`
//! and `https://a.b.example.com` but not `https://example.com`). Matching is
//! case-insensitive and ignores a default port written out (`:443` for https, `:80` for http).
//!
//! An empty list restricts nothing. A request without an `Origin` header (a server, curl) is
//! not a browser and is not restricted by origins: the header is trivially forged outside
//! browsers, so it only protects users' browsers from other sites using the key.

use std::collections::HashSet;
use std::fmt;

/// Longest origin accepted.
pub const MAX_ORIGIN_LEN: usize = 253 + 16;

/// Why an allowed-origin entry was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OriginError(pub String);

impl fmt::Display for OriginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for OriginError {}

/// An origin in canonical form: lowercase `scheme://host[:port]`, default port dropped.
/// `None` when `s` is not an http(s) origin (paths, queries, user info and `null` refused).
pub fn normalize(s: &str) -> Option<String> {
    if s.len() > MAX_ORIGIN_LEN {
        return None;
    }
    let lower = s.trim().to_ascii_lowercase();
    let (scheme, rest) = lower.split_once("://")?;
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => {
            if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            (h, Some(p.parse::<u16>().ok()?))
        }
        _ => (rest, None),
    };
    if !is_valid_host(host) {
        return None;
    }
    let default = if scheme == "https" { 443 } else { 80 };
    Some(match port {
        Some(p) if p != default => format!("{scheme}://{host}:{p}"),
        _ => format!("{scheme}://{host}"),
    })
}

fn is_valid_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// One allowed-origin entry, validated. Returns its canonical text.
pub fn validate_entry(entry: &str) -> Result<String, OriginError> {
    let bad = || {
        OriginError(format!(
            "`{}` is not an origin such as https://app.example.com or https://*.example.com",
            entry.chars().take(80).collect::<String>()
        ))
    };
    if let Some((scheme, rest)) = entry.split_once("://*.") {
        let canonical = normalize(&format!("{scheme}://{rest}")).ok_or_else(bad)?;
        let (scheme, rest) = canonical.split_once("://").ok_or_else(bad)?;
        // A wildcard over a bare top-level name (`https://*.com`) would allow the world.
        if !rest.split(':').next().unwrap_or_default().contains('.') {
            return Err(bad());
        }
        return Ok(format!("{scheme}://*.{rest}"));
    }
    normalize(entry).ok_or_else(bad)
}

/// Longest origin URL accepted.
pub const MAX_ORIGIN_URL_LEN: usize = 2048;

/// Path bytes an origin URL may carry besides letters and digits.
const ORIGIN_URL_PATH_BYTES: &[u8] = b"-._~/%!$&'()*+,;=:";

/// A workspace's origin URL (where the edge forwards allowed gateway calls) in canonical form:
/// an http(s) origin as [`normalize`] gives it, plus an optional path without a trailing `/`.
/// No user info, query or fragment, so what the edge signs is exactly what the origin gets.
pub fn validate_origin_url(raw: &str) -> Result<String, OriginError> {
    let bad = || {
        OriginError(
            "the origin URL is an http(s) URL such as https://api.example.com or \
             https://example.com/api (no user, query or fragment)"
                .into(),
        )
    };
    let url = raw.trim();
    if url.len() > MAX_ORIGIN_URL_LEN {
        return Err(bad());
    }
    let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if authority.contains('@') {
        return Err(bad());
    }
    let base = normalize(&format!("{scheme}://{authority}")).ok_or_else(bad)?;
    if !path
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || ORIGIN_URL_PATH_BYTES.contains(&b))
    {
        return Err(bad());
    }
    Ok(format!("{base}{}", path.trim_end_matches('/')))
}

/// Splits an origin URL into `scheme://authority` and its path without a trailing `/`, as the
/// edge forwards to it; `None` unless it is a plain `http(s)://host[:port][/path]` URL.
pub fn split_origin_url(origin_url: &str) -> Option<(&str, &str)> {
    let after_scheme = origin_url
        .strip_prefix("https://")
        .or_else(|| origin_url.strip_prefix("http://"))?;
    let authority_len = after_scheme.find('/').unwrap_or(after_scheme.len());
    let authority = &after_scheme[..authority_len];
    let path = after_scheme[authority_len..].trim_end_matches('/');
    let plain_authority = authority
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~%:[]".contains(&b));
    let plain_path = path
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || ORIGIN_URL_PATH_BYTES.contains(&b));
    (!authority.is_empty() && plain_authority && plain_path).then(|| {
        (
            &origin_url[..origin_url.len() - after_scheme.len() + authority_len],
            path,
        )
    })
}

/// Host names that never name a public server: `localhost` and names under these suffixes.
const PRIVATE_NAME_SUFFIXES: &[&str] = &[
    ".localhost",
    ".local",
    ".internal",
    ".localdomain",
    ".home.arpa",
    ".lan",
    ".intranet",
    ".corp",
    ".private",
];

/// Whether a canonical dotted-quad IPv4 address is public: not unspecified (`0/8`), private
/// (`10/8`, `172.16/12`, `192.168/16`), shared/CGNAT (`100.64/10`), loopback (`127/8`),
/// link-local (`169.254/16`), IETF/documentation/benchmarking (`192.0.0/24`, `192.0.2/24`,
/// `198.18/15`, `198.51.100/24`, `203.0.113/24`), multicast or reserved (`224/3`).
fn is_public_ipv4(ip: std::net::Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(a == 0
        || a == 10
        || a == 127
        || (a == 100 && (64..128).contains(&b))
        || (a == 169 && b == 254)
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 168)
        || (a == 192 && b == 0 && (c == 0 || c == 2))
        || (a == 198 && (b == 18 || b == 19))
        || (a == 198 && b == 51 && c == 100)
        || (a == 203 && b == 0 && c == 113)
        || a >= 224)
}

/// Whether the last label of a host "ends in a number" the way URL parsers read it as an
/// IPv4 address (`127.1`, `0x7f.1`, `2130706433`, `0177.0.0.1`).
fn ends_in_a_number(host: &str) -> bool {
    let last = host.rsplit('.').next().unwrap_or_default();
    !last.is_empty()
        && (last.bytes().all(|b| b.is_ascii_digit())
            || ((last.starts_with("0x") || last.starts_with("0X"))
                && last[2..].bytes().all(|b| b.is_ascii_hexdigit())))
}

/// Whether the edge may forward to `origin_url` (canonical, as [`validate_origin_url`] gives
/// it): always when `allow_private` (the operator's `KEYGATE_ALLOW_PRIVATE_ORIGINS`, for
/// local development); otherwise only `https` to a public address. Refused then: `http`;
/// `localhost` and names under `.localhost`, `.local`, `.internal` and other private-use
/// suffixes; single-label names (`intranet`); IP literals of loopback, private, link-local,
/// CGNAT, unspecified, documentation, multicast and reserved ranges; IPv4 written any other
/// way than four plain decimal numbers (`2130706433`, `0x7f.1`, `0177.0.0.1`, `127.1`), so a
/// parser's reading cannot differ from this one; and IPv6 literals (IPv4-mapped forms
/// included), which an origin URL has no need for.
///
/// A public name that resolves to a private address (DNS rebinding) cannot be decided
/// without a lookup; on Cloudflare the edge's `fetch` cannot reach private networks anyway.
pub fn check_forward_target(origin_url: &str, allow_private: bool) -> Result<(), OriginError> {
    let not_public = |why: &str| {
        OriginError(format!(
            "the origin URL must be https on a public address ({why}); \
             KEYGATE_ALLOW_PRIVATE_ORIGINS=true allows others for local development"
        ))
    };
    let (base, _) = split_origin_url(origin_url)
        .ok_or_else(|| OriginError("the origin URL is not a plain http(s) URL".into()))?;
    if allow_private {
        return Ok(());
    }
    let Some(authority) = base.strip_prefix("https://") else {
        return Err(not_public("plain http"));
    };
    let host = match authority.rsplit_once(':') {
        Some((h, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => authority,
    }
    .to_ascii_lowercase();
    if host.contains(['[', ']', ':']) {
        return Err(not_public("IPv6 literals are not accepted"));
    }
    if host.contains('%') {
        return Err(not_public("encoded host"));
    }
    let host = host.trim_end_matches('.');
    if host == "localhost" || PRIVATE_NAME_SUFFIXES.iter().any(|s| host.ends_with(s)) {
        return Err(not_public("a local name"));
    }
    if ends_in_a_number(host) {
        let ip: std::net::Ipv4Addr = host
            .parse()
            .map_err(|_| not_public("IPv4 addresses are written as four decimal numbers"))?;
        if ip.to_string() != host {
            return Err(not_public(
                "IPv4 addresses are written as four decimal numbers",
            ));
        }
        if !is_public_ipv4(ip) {
            return Err(not_public("a loopback, private or reserved address"));
        }
        return Ok(());
    }
    if !host.contains('.') {
        return Err(not_public("a single-label name"));
    }
    Ok(())
}

/// Compiled allowed origins: a hash set of exact origins plus wildcard suffixes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OriginPolicy {
    exact: HashSet<String>,
    /// `(scheme, ".host[:port]")` pairs from wildcard entries.
    wildcard: Vec<(String, String)>,
}

impl OriginPolicy {
    /// Compiles entries; invalid entries are skipped (they are refused when saved, so none
    /// should reach here).
    pub fn compile<S: AsRef<str>>(entries: impl IntoIterator<Item = S>) -> Self {
        let mut policy = OriginPolicy::default();
        for e in entries {
            let Ok(canonical) = validate_entry(e.as_ref()) else {
                continue;
            };
            match canonical.split_once("://*") {
                Some((scheme, suffix)) => {
                    policy.wildcard.push((scheme.to_owned(), suffix.to_owned()))
                }
                None => {
                    policy.exact.insert(canonical);
                }
            }
        }
        policy
    }

    /// Whether any restriction is configured.
    pub fn is_unrestricted(&self) -> bool {
        self.exact.is_empty() && self.wildcard.is_empty()
    }

    /// Whether a request with this `Origin` header (if any) may use the key.
    pub fn allows(&self, origin: Option<&str>) -> bool {
        let Some(origin) = origin else { return true };
        if self.is_unrestricted() {
            return true;
        }
        // Fast path: browsers send canonical lowercase origins.
        if self.exact.contains(origin) {
            return true;
        }
        let Some(canonical) = normalize(origin) else {
            return false;
        };
        if self.exact.contains(&canonical) {
            return true;
        }
        let Some((scheme, host_port)) = canonical.split_once("://") else {
            return false;
        };
        self.wildcard.iter().any(|(s, suffix)| {
            s == scheme && host_port.len() > suffix.len() && host_port.ends_with(suffix.as_str())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_normalized() {
        assert_eq!(
            normalize("HTTPS://App.Example.com:443").as_deref(),
            Some("https://app.example.com")
        );
        assert_eq!(
            normalize("http://localhost:3000").as_deref(),
            Some("http://localhost:3000")
        );
        assert_eq!(
            normalize("http://x.com:80").as_deref(),
            Some("http://x.com")
        );
        for bad in [
            "null",
            "ftp://x.com",
            "https://x.com/path",
            "https://",
            "https://x.com:",
            "https://x.com:99999",
            "https://a..b",
            "https://user@x.com",
        ] {
            assert_eq!(normalize(bad), None, "{bad}");
        }
    }

    #[test]
    fn exact_and_wildcard_entries_match_as_documented() {
        let p = OriginPolicy::compile([
            "https://app.example.com",
            "https://*.example.org",
            "http://localhost:3000",
        ]);
        assert!(p.allows(Some("https://app.example.com")));
        assert!(p.allows(Some("HTTPS://APP.EXAMPLE.COM:443")));
        assert!(!p.allows(Some("http://app.example.com")));
        assert!(p.allows(Some("https://a.example.org")));
        assert!(p.allows(Some("https://a.b.example.org")));
        assert!(!p.allows(Some("https://example.org")));
        assert!(!p.allows(Some("https://evilexample.org")));
        assert!(!p.allows(Some("https://example.org.evil.com")));
        assert!(p.allows(Some("http://localhost:3000")));
        assert!(!p.allows(Some("http://localhost:3001")));
        assert!(!p.allows(Some("null")));
        assert!(p.allows(None), "non-browser callers send no Origin");
    }

    #[test]
    fn empty_policy_allows_every_origin() {
        let p = OriginPolicy::compile(Vec::<String>::new());
        assert!(p.is_unrestricted());
        assert!(p.allows(Some("https://anything.example")));
    }

    #[test]
    fn origin_urls_are_canonical_and_what_the_edge_accepts() {
        assert_eq!(
            validate_origin_url("https://API.example.com:443/v1/").unwrap(),
            "https://api.example.com/v1"
        );
        assert_eq!(
            validate_origin_url("http://127.0.0.1:9000").unwrap(),
            "http://127.0.0.1:9000"
        );
        for bad in [
            "ftp://x.com",
            "https://u:p@x.com",
            "https://x.com/a?b=1",
            "https://x.com/#f",
            "x.com",
            "https://",
        ] {
            assert!(validate_origin_url(bad).is_err(), "{bad}");
        }
        for good in [
            "https://api.example.com/v1",
            "http://127.0.0.1:9000",
            "https://a.b.c:8443/x/y;z=1",
        ] {
            let canonical = validate_origin_url(good).unwrap();
            let (base, path) =
                split_origin_url(&canonical).expect("the edge accepts what control saves");
            assert_eq!(format!("{base}{path}"), canonical);
        }
        assert_eq!(
            split_origin_url("https://x.com/base/"),
            Some(("https://x.com", "/base"))
        );
        assert_eq!(split_origin_url("https://u@x.com"), None);
        assert_eq!(split_origin_url("https://x.com/a?b"), None);
    }

    #[test]
    fn entries_are_validated() {
        assert_eq!(
            validate_entry("https://*.Example.com").unwrap(),
            "https://*.example.com"
        );
        assert!(validate_entry("https://*.com").is_err());
        assert!(validate_entry("*").is_err());
        assert!(validate_entry("https://*").is_err());
        assert!(validate_entry("example.com").is_err());
    }

    #[test]
    fn only_https_public_origin_urls_are_forward_targets_unless_private_ones_are_allowed() {
        for good in [
            "https://api.example.com",
            "https://api.example.com:8443/v1",
            "https://8.8.8.8",
            "https://1.1.1.1/x",
            "https://100.128.0.1",
            "https://172.32.0.1",
            "https://example.co.uk",
        ] {
            assert_eq!(check_forward_target(good, false), Ok(()), "{good}");
        }
        for bad in [
            "http://api.example.com",
            "https://localhost",
            "https://localhost:8443",
            "https://app.localhost",
            "https://printer.local",
            "https://db.internal",
            "https://intranet",
            "https://127.0.0.1",
            "https://127.1.2.3",
            "https://10.0.0.1",
            "https://172.16.0.1",
            "https://172.31.255.255",
            "https://192.168.1.1",
            "https://169.254.169.254",
            "https://100.64.0.1",
            "https://100.127.255.255",
            "https://0.0.0.0",
            "https://0.1.2.3",
            "https://192.0.2.1",
            "https://198.18.0.1",
            "https://203.0.113.9",
            "https://224.0.0.1",
            "https://255.255.255.255",
            "https://2130706433",
            "https://0x7f000001",
            "https://0x7f.0.0.1",
            "https://0177.0.0.1",
            "https://127.1",
            "https://017700000001",
            "https://[::1]",
            "https://[::ffff:127.0.0.1]",
            "https://[::ffff:7f00:1]",
            "https://[fe80::1]",
            "https://08.8.8.8",
        ] {
            assert!(check_forward_target(bad, false).is_err(), "{bad}");
            // What does not even parse stays refused when private origins are allowed.
            if split_origin_url(bad).is_some() {
                assert_eq!(check_forward_target(bad, true), Ok(()), "{bad}");
            }
        }
        assert_eq!(
            check_forward_target("http://127.0.0.1:9000/api", true),
            Ok(())
        );
        assert!(check_forward_target("ftp://x.com", true).is_err());
    }
}
