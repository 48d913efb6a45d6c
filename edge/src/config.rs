//! The worker's configuration: one secret and a few vars from `wrangler.toml` / `.dev.vars`.
//!
//! Parsing is pure ([`Config::from_lookup`]) so it is tested natively; the worker feeds it
//! from its `Env`. Every knob has a safe default, and out-of-range values are clamped rather
//! than refused, so a typo in a var never takes the edge down.

use std::fmt;

/// Secret shared with the control plane: signs sync pushes, pulls and gateway requests.
pub const VAR_EDGE_SECRET: &str = "KEYGATE_EDGE_SECRET";
/// The edge secret being rotated away from: pushes and pull replies signed with it are still
/// accepted during the overlap (the worker signs with `KEYGATE_EDGE_SECRET` only).
pub const VAR_EDGE_SECRET_PREVIOUS: &str = "KEYGATE_EDGE_SECRET_PREVIOUS";
/// Base URL of the control plane for pulls on a miss (empty: never pull).
pub const VAR_CONTROL_URL: &str = "KEYGATE_CONTROL_URL";
/// How long this isolate trusts a found record, in milliseconds.
pub const VAR_CACHE_TTL_MS: &str = "KEYGATE_CACHE_TTL_MS";
/// How long this isolate remembers that a key is unknown, in milliseconds.
pub const VAR_NEGATIVE_CACHE_TTL_MS: &str = "KEYGATE_NEGATIVE_CACHE_TTL_MS";
/// How long a pull may take before the edge gives up on it, in milliseconds.
pub const VAR_PULL_TIMEOUT_MS: &str = "KEYGATE_PULL_TIMEOUT_MS";
/// Most pulls one isolate starts per second (bounds what invented keys can cost upstream).
pub const VAR_PULLS_PER_SEC: &str = "KEYGATE_PULLS_PER_SEC";
/// `1` enables `GET /__keygate/selftest` (the conformance vectors inside workerd).
pub const VAR_SELFTEST: &str = "KEYGATE_SELFTEST";
/// An isolate refreshes its view of the change log in the background once it is this old (ms).
pub const VAR_CHANGES_POLL_MS: &str = "KEYGATE_CHANGES_POLL_MS";
/// An isolate whose view is older than this (ms) refreshes it before answering: the
/// worldwide bound on a revocation's staleness.
pub const VAR_CHANGES_MAX_AGE_MS: &str = "KEYGATE_CHANGES_MAX_AGE_MS";
/// Give up on a refresh of the view after this long (ms).
pub const VAR_CHANGES_TIMEOUT_MS: &str = "KEYGATE_CHANGES_TIMEOUT_MS";
/// After a failed refresh, requests stop waiting for the log for this long (ms).
pub const VAR_CHANGES_RETRY_MS: &str = "KEYGATE_CHANGES_RETRY_MS";
/// How long the change log keeps a change (ms): longer than KV's propagation delay.
pub const VAR_CHANGES_WINDOW_MS: &str = "KEYGATE_CHANGES_WINDOW_MS";
/// `closed`: refuse checks (503) while the change log cannot be reached and the view is
/// stale; anything else (default `open`): answer from KV and what the view holds.
pub const VAR_CHANGES_FAIL: &str = "KEYGATE_CHANGES_FAIL";

/// The name of the KV namespace binding holding records and sync nonces.
pub const KV_BINDING: &str = "KEYGATE_KV";

/// Shortest edge secret accepted; a shorter one is treated as absent (fail closed).
pub const MIN_SECRET_LEN: usize = 32;
/// Shortest change-log window honoured: KV's propagation delay.
pub const MIN_CHANGES_WINDOW_MS: u64 = 60_000;
/// Longest isolate-cache TTL honoured: the cache must never hide a revocation for long.
pub const MAX_CACHE_TTL_MS: u64 = 60_000;

/// Defaults, documented in the README.
pub const DEFAULT_CACHE_TTL_MS: u64 = 1_000;
/// Default negative-cache TTL.
pub const DEFAULT_NEGATIVE_CACHE_TTL_MS: u64 = 1_000;
/// Default pull timeout.
pub const DEFAULT_PULL_TIMEOUT_MS: u64 = 1_500;
/// Default pull rate per isolate.
pub const DEFAULT_PULLS_PER_SEC: u64 = 20;
/// Default background refresh age of the view.
pub const DEFAULT_CHANGES_POLL_MS: u64 = 1_000;
/// Default age beyond which the view is refreshed before answering.
pub const DEFAULT_CHANGES_MAX_AGE_MS: u64 = 1_500;
/// Default refresh timeout.
pub const DEFAULT_CHANGES_TIMEOUT_MS: u64 = 1_000;
/// Default pause after a failed refresh.
pub const DEFAULT_CHANGES_RETRY_MS: u64 = 5_000;
/// Default change log window: twice KV's documented propagation delay (about 60 s).
pub const DEFAULT_CHANGES_WINDOW_MS: u64 = 120_000;

/// The parsed configuration.
#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    /// The edge secret, if set and long enough.
    pub edge_secret: Option<String>,
    /// The previous edge secret, if set and long enough (accepted, never used to sign).
    pub edge_secret_previous: Option<String>,
    /// The control plane's base URL without a trailing `/`, if pulls are enabled.
    pub control_url: Option<String>,
    /// Positive isolate-cache TTL.
    pub cache_ttl_ms: u64,
    /// Negative isolate-cache TTL.
    pub negative_cache_ttl_ms: u64,
    /// Pull timeout.
    pub pull_timeout_ms: u64,
    /// Pull rate limit per isolate.
    pub pulls_per_sec: u64,
    /// Whether the self-test route answers.
    pub selftest: bool,
    /// Background refresh age of the change-log view.
    pub changes_poll_ms: u64,
    /// Age beyond which the view is refreshed before answering (at least `changes_poll_ms`).
    pub changes_max_age_ms: u64,
    /// Refresh timeout.
    pub changes_timeout_ms: u64,
    /// Pause after a failed refresh before requests wait for the log again.
    pub changes_retry_ms: u64,
    /// How long the change log keeps a change.
    pub changes_window_ms: u64,
    /// Refuse checks while the log is unreachable and the view stale.
    pub changes_fail_closed: bool,
}

impl Config {
    /// Builds the configuration from a lookup of bindings by name.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Self {
        let ms = |name: &str, default: u64, max: u64| {
            get(name)
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(default)
                .min(max)
        };
        Config {
            edge_secret: get(VAR_EDGE_SECRET).filter(|s| s.len() >= MIN_SECRET_LEN),
            edge_secret_previous: get(VAR_EDGE_SECRET_PREVIOUS)
                .filter(|s| s.len() >= MIN_SECRET_LEN),
            control_url: get(VAR_CONTROL_URL)
                .map(|u| u.trim().trim_end_matches('/').to_owned())
                .filter(|u| u.starts_with("http://") || u.starts_with("https://")),
            cache_ttl_ms: ms(VAR_CACHE_TTL_MS, DEFAULT_CACHE_TTL_MS, MAX_CACHE_TTL_MS),
            negative_cache_ttl_ms: ms(
                VAR_NEGATIVE_CACHE_TTL_MS,
                DEFAULT_NEGATIVE_CACHE_TTL_MS,
                MAX_CACHE_TTL_MS,
            ),
            pull_timeout_ms: ms(VAR_PULL_TIMEOUT_MS, DEFAULT_PULL_TIMEOUT_MS, 10_000).max(1),
            pulls_per_sec: ms(VAR_PULLS_PER_SEC, DEFAULT_PULLS_PER_SEC, 10_000),
            selftest: get(VAR_SELFTEST).is_some_and(|v| v.trim() == "1"),
            changes_poll_ms: ms(VAR_CHANGES_POLL_MS, DEFAULT_CHANGES_POLL_MS, 60_000),
            changes_max_age_ms: ms(VAR_CHANGES_MAX_AGE_MS, DEFAULT_CHANGES_MAX_AGE_MS, 60_000),
            changes_timeout_ms: ms(VAR_CHANGES_TIMEOUT_MS, DEFAULT_CHANGES_TIMEOUT_MS, 10_000)
                .max(1),
            changes_retry_ms: ms(VAR_CHANGES_RETRY_MS, DEFAULT_CHANGES_RETRY_MS, 600_000),
            // Never shorter than KV's propagation delay, or a forgotten change could still be
            // missing from some location's KV.
            changes_window_ms: ms(VAR_CHANGES_WINDOW_MS, DEFAULT_CHANGES_WINDOW_MS, 3_600_000)
                .max(MIN_CHANGES_WINDOW_MS),
            changes_fail_closed: get(VAR_CHANGES_FAIL)
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("closed")),
        }
        .with_consistent_ages()
    }

    /// Keeps `changes_max_age_ms >= changes_poll_ms` (a background refresh must be due
    /// before a request has to wait for one).
    fn with_consistent_ages(mut self) -> Self {
        self.changes_max_age_ms = self.changes_max_age_ms.max(self.changes_poll_ms);
        self
    }

    /// The edge secret as bytes, if configured.
    pub fn secret(&self) -> Option<&[u8]> {
        self.edge_secret.as_deref().map(str::as_bytes)
    }

    /// Every accepted edge secret: the current one first, then the previous one during a
    /// rotation's overlap. Empty without a current secret (fail closed).
    pub fn secrets(&self) -> Vec<&[u8]> {
        match self.secret() {
            Some(current) => std::iter::once(current)
                .chain(self.edge_secret_previous.as_deref().map(str::as_bytes))
                .collect(),
            None => Vec::new(),
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("edge_secret", &self.edge_secret.as_ref().map(|_| "<set>"))
            .field(
                "edge_secret_previous",
                &self.edge_secret_previous.as_ref().map(|_| "<set>"),
            )
            .field("control_url", &self.control_url)
            .field("cache_ttl_ms", &self.cache_ttl_ms)
            .field("negative_cache_ttl_ms", &self.negative_cache_ttl_ms)
            .field("pull_timeout_ms", &self.pull_timeout_ms)
            .field("pulls_per_sec", &self.pulls_per_sec)
            .field("selftest", &self.selftest)
            .field("changes_poll_ms", &self.changes_poll_ms)
            .field("changes_max_age_ms", &self.changes_max_age_ms)
            .field("changes_timeout_ms", &self.changes_timeout_ms)
            .field("changes_retry_ms", &self.changes_retry_ms)
            .field("changes_window_ms", &self.changes_window_ms)
            .field("changes_fail_closed", &self.changes_fail_closed)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Config {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_are_safe() {
        let c = config(&[]);
        assert_eq!(c.edge_secret, None);
        assert_eq!(c.control_url, None);
        assert_eq!(c.cache_ttl_ms, DEFAULT_CACHE_TTL_MS);
        assert!(!c.selftest);
    }

    #[test]
    fn knobs_are_parsed_and_clamped() {
        let secret = "s".repeat(MIN_SECRET_LEN);
        let c = config(&[
            (VAR_EDGE_SECRET, &secret),
            (VAR_CONTROL_URL, "http://127.0.0.1:8080/"),
            (VAR_CACHE_TTL_MS, "99999999"),
            (VAR_NEGATIVE_CACHE_TTL_MS, "oops"),
            (VAR_SELFTEST, "1"),
        ]);
        assert_eq!(c.secret(), Some(secret.as_bytes()));
        assert_eq!(c.control_url.as_deref(), Some("http://127.0.0.1:8080"));
        assert_eq!(c.cache_ttl_ms, MAX_CACHE_TTL_MS);
        assert_eq!(c.negative_cache_ttl_ms, DEFAULT_NEGATIVE_CACHE_TTL_MS);
        assert!(c.selftest);
        assert!(
            !format!("{c:?}").contains(&secret),
            "Debug masks the secret"
        );
    }

    #[test]
    fn change_log_knobs_default_safely_and_stay_consistent() {
        let c = config(&[]);
        assert_eq!(
            (c.changes_poll_ms, c.changes_max_age_ms, c.changes_window_ms),
            (1_000, 1_500, 120_000)
        );
        assert!(!c.changes_fail_closed, "fails open to KV by default");
        let c = config(&[
            (VAR_CHANGES_POLL_MS, "3000"),
            (VAR_CHANGES_MAX_AGE_MS, "100"),
            (VAR_CHANGES_WINDOW_MS, "5"),
            (VAR_CHANGES_FAIL, "Closed"),
        ]);
        assert_eq!(c.changes_max_age_ms, 3_000, "never below the poll age");
        assert_eq!(c.changes_window_ms, MIN_CHANGES_WINDOW_MS);
        assert!(c.changes_fail_closed);
    }

    #[test]
    fn the_previous_secret_is_accepted_only_beside_a_current_one() {
        let (new, old) = ("n".repeat(MIN_SECRET_LEN), "o".repeat(MIN_SECRET_LEN));
        let c = config(&[(VAR_EDGE_SECRET, &new), (VAR_EDGE_SECRET_PREVIOUS, &old)]);
        assert_eq!(c.secrets(), vec![new.as_bytes(), old.as_bytes()]);
        assert!(!format!("{c:?}").contains(&old), "Debug masks it");
        let c = config(&[(VAR_EDGE_SECRET_PREVIOUS, &old)]);
        assert!(
            c.secrets().is_empty(),
            "a previous secret alone signs nothing"
        );
        let c = config(&[(VAR_EDGE_SECRET, &new), (VAR_EDGE_SECRET_PREVIOUS, "short")]);
        assert_eq!(c.secrets(), vec![new.as_bytes()]);
    }

    #[test]
    fn short_secrets_and_odd_urls_count_as_unset() {
        let c = config(&[(VAR_EDGE_SECRET, "short"), (VAR_CONTROL_URL, "ftp://x")]);
        assert_eq!(c.edge_secret, None);
        assert_eq!(c.control_url, None);
    }
}
