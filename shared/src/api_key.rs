//! Customer API keys: the verify decision and the rate-limit window.
//!
//! The control plane loads a key's row by digest and asks [`decide`]; a `VALID` answer for a
//! usage-limited key is then confirmed in the database: concurrent verifies of one key join
//! one write transaction, which reads the uses left once and lets [`grant_uses`] answer each
//! of them in arrival order (so a late one may still become `USAGE_LIMITED`).

use crate::scope::{grants_cover, ApiKeyScope};
use crate::verdict::Status;

/// What verify needs to know about a stored API key. Times are Unix milliseconds.
#[derive(Clone, Copy, Debug)]
pub struct ApiKeyState<'a> {
    /// Deleted for good.
    pub deleted: bool,
    /// Switched on.
    pub enabled: bool,
    /// Expiry, if any.
    pub expires_at: Option<i64>,
    /// When this value stopped being the key's current value (rotation), and until when it
    /// still verifies (the grace period); `None` for the current value.
    pub retired_until: Option<i64>,
    /// Whether usage is counted against an allowance.
    pub limit_usage: bool,
    /// Uses left, when limited.
    pub usage_left: Option<i64>,
    /// The key's scopes.
    pub scopes: &'a [ApiKeyScope],
}

/// Decides a verify, in this order: deleted, retired past its grace (`INVALID`), disabled,
/// expired, missing scopes, allowance spent. Rate limits are checked after a `VALID` here,
/// by [`RateWindow`].
pub fn decide(state: &ApiKeyState<'_>, now_ms: i64, requested: &[ApiKeyScope]) -> Status {
    if state.deleted {
        Status::Deleted
    } else if state.retired_until.is_some_and(|until| now_ms >= until) {
        Status::Invalid
    } else if !state.enabled {
        Status::Disabled
    } else if state.expires_at.is_some_and(|t| now_ms >= t) {
        Status::Expired
    } else if !grants_cover(state.scopes, requested) {
        Status::InvalidScopes
    } else if state.limit_usage && state.usage_left.unwrap_or(0) <= 0 {
        Status::UsageLimited
    } else {
        Status::Valid
    }
}

/// A fixed one-second window rate limit (Oneloop's `rateLimitConfig.limit` is per second).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateWindow {
    /// Window length in milliseconds.
    pub length_ms: i64,
}

impl Default for RateWindow {
    fn default() -> Self {
        RateWindow { length_ms: 1000 }
    }
}

impl RateWindow {
    /// The start of the window `now_ms` falls in.
    pub fn start(&self, now_ms: i64) -> i64 {
        now_ms - now_ms.rem_euclid(self.length_ms)
    }

    /// When the window `now_ms` falls in ends.
    pub fn reset_at(&self, now_ms: i64) -> i64 {
        self.start(now_ms) + self.length_ms
    }

    /// Given the count in this window *including* the current call, whether it is allowed and
    /// how many calls remain.
    pub fn admit(&self, count_including_this: i64, limit: i64) -> (bool, i64) {
        let allowed = count_including_this <= limit;
        (allowed, (limit - count_including_this).max(0))
    }
}

/// The answers to a batch of verifies of one usage-limited key, in arrival order: the first
/// [`UseGrants::granted`] get one use each, the rest are refused (`USAGE_LIMITED`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UseGrants {
    /// Uses left before the batch (a negative stored value counts as none).
    pub left_before: i64,
    /// How many requests of the batch got a use.
    pub granted: u64,
}

impl UseGrants {
    /// Uses left after the whole batch.
    pub fn left_after(&self) -> i64 {
        self.left_before - self.granted as i64
    }

    /// The answer to request `i` (0-based, arrival order): `Some(uses left after it)` if it
    /// got a use, `None` if the allowance ran out before it.
    pub fn answer(&self, i: u64) -> Option<i64> {
        (i < self.granted).then(|| self.left_before - i as i64 - 1)
    }
}

/// Grants `requests` verifies of a key with `usage_left` uses, one use each, first come
/// first served: `min(usage_left, requests)` are granted.
pub fn grant_uses(usage_left: i64, requests: u64) -> UseGrants {
    let left_before = usage_left.max(0);
    UseGrants {
        left_before,
        granted: requests.min(left_before as u64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(rep: &str, read: bool) -> ApiKeyScope {
        ApiKeyScope {
            representation: rep.into(),
            create: false,
            read,
            update: false,
            del: false,
        }
    }

    fn state(scopes: &[ApiKeyScope]) -> ApiKeyState<'_> {
        ApiKeyState {
            deleted: false,
            enabled: true,
            expires_at: None,
            retired_until: None,
            limit_usage: false,
            usage_left: None,
            scopes,
        }
    }

    #[test]
    fn statuses_follow_the_documented_order() {
        let scopes = [scope("orders", true)];
        let s = state(&scopes);
        let want = [scope("orders", true)];
        assert_eq!(decide(&s, 0, &want), Status::Valid);
        assert_eq!(
            decide(&s, 0, &[scope("billing", true)]),
            Status::InvalidScopes
        );
        // The key `s` changed by the first, asked about at the second.
        type Change = fn(&mut ApiKeyState);
        let cases: [(Change, i64, Status); 8] = [
            (
                |k| (k.deleted, k.enabled) = (true, false),
                0,
                Status::Deleted,
            ),
            (
                |k| (k.enabled, k.expires_at) = (false, Some(0)),
                5,
                Status::Disabled,
            ),
            (|k| k.expires_at = Some(5), 5, Status::Expired),
            (|k| k.expires_at = Some(6), 5, Status::Valid),
            (
                |k| (k.limit_usage, k.usage_left) = (true, Some(0)),
                0,
                Status::UsageLimited,
            ),
            (
                |k| (k.limit_usage, k.usage_left) = (true, Some(1)),
                0,
                Status::Valid,
            ),
            (|k| k.retired_until = Some(10), 9, Status::Valid),
            (|k| k.retired_until = Some(10), 10, Status::Invalid),
        ];
        for (change, now, status) in cases {
            let mut key = s;
            change(&mut key);
            assert_eq!(decide(&key, now, &want), status, "{key:?} at {now}");
        }
    }

    #[test]
    fn rate_window_counts_per_second() {
        let w = RateWindow::default();
        assert_eq!(w.start(12_345), 12_000);
        assert_eq!(w.reset_at(12_345), 13_000);
        assert_eq!(w.admit(3, 3), (true, 0));
        assert_eq!(w.admit(4, 3), (false, 0));
        assert_eq!(w.admit(1, 3), (true, 2));
    }

    #[test]
    fn uses_are_granted_in_arrival_order_until_spent() {
        let g = grant_uses(3, 5);
        assert_eq!(g.granted, 3);
        assert_eq!(g.left_after(), 0);
        let answers: Vec<_> = (0..5).map(|i| g.answer(i)).collect();
        assert_eq!(answers, [Some(2), Some(1), Some(0), None, None]);

        let plenty = grant_uses(1_000, 4);
        assert_eq!((plenty.granted, plenty.left_after()), (4, 996));
        assert_eq!(plenty.answer(3), Some(996));
        assert_eq!(plenty.answer(4), None);

        for spent in [0, -2] {
            let none = grant_uses(spent, 2);
            assert_eq!((none.granted, none.left_after()), (0, 0));
            assert_eq!(none.answer(0), None);
        }
        assert_eq!(grant_uses(5, 0).left_after(), 5);
    }
}
