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
}
