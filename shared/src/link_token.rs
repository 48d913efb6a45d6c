//! Link tokens and billing usage: the decisions behind Oneloop's `generateLinkToken`,
//! `validateLinkToken` and verify's `billing` field.
//!
//! A link token reads `lt_<body><checksum>`: [`crate::key::BODY_LEN`] base62 symbols from the
//! OS CSPRNG and the CRC-32 of `lt_<body>` as [`crate::key::CHECKSUM_LEN`] base62 symbols, so
//! a tampered or mistyped token is refused by [`parse`] without a lookup. Storage keeps only
//! its SHA-256 ([`digest`]). A token is short-lived ([`DEFAULT_TTL_MS`]) and bound to one
//! (workspace, customer) pair.
//!
//! ```
//! use keygate_shared::link_token::{self, LinkToken};
//! let token = LinkToken::generate();
//! assert!(link_token::parse(token.expose()).is_some());
//! assert_eq!(link_token::digest(token.expose()).len(), 64);
//! assert!(!link_token::is_expired(1_000, 999));
//! assert!(link_token::is_expired(1_000, 1_000));
//! ```

use sha2::{Digest as _, Sha256};
use zeroize::Zeroize;

use crate::base62;
use crate::key::{BODY_LEN, CHECKSUM_LEN, PAYLOAD_LEN};

/// What starts every link token.
pub const PREFIX: &str = "lt";
/// Length of every link token.
pub const TOKEN_LEN: usize = PREFIX.len() + 1 + PAYLOAD_LEN;
/// How long a link token lives unless configured otherwise: 15 minutes.
pub const DEFAULT_TTL_MS: i64 = 15 * 60 * 1000;

/// Largest `billing.usage` one verify may add.
pub const MAX_BILLING_USAGE: i64 = 1_000_000_000;
/// Longest billing id.
pub const MAX_BILLING_ID_LEN: usize = 256;
/// Days of billing usage returned, today included.
pub const USAGE_DAYS: i64 = 90;
/// Milliseconds in a UTC day.
pub const DAY_MS: i64 = 86_400_000;

/// A freshly minted link token. Its value leaves memory only through [`LinkToken::expose`].
pub struct LinkToken(String);

impl LinkToken {
    /// Mints a token from the OS CSPRNG.
    pub fn generate() -> Self {
        let mut body = [0u8; BODY_LEN];
        base62::random_symbols(&mut body);
        let mut check = [0u8; CHECKSUM_LEN];
        base62::encode_fixed(u64::from(checksum(&body)), &mut check);
        let mut s = String::with_capacity(TOKEN_LEN);
        s.push_str(PREFIX);
        s.push('_');
        s.extend(body.iter().chain(check.iter()).map(|&b| char::from(b)));
        body.zeroize();
        LinkToken(s)
    }

    /// The token, to hand to the caller once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// SHA-256 of the token (hex): what storage keeps.
    pub fn digest(&self) -> String {
        digest(&self.0)
    }
}

impl Drop for LinkToken {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl std::fmt::Debug for LinkToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkToken(lt_…)")
    }
}

/// CRC-32 of `lt_<body>`.
fn checksum(body: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(PREFIX.as_bytes());
    hasher.update(b"_");
    hasher.update(body);
    hasher.finalize()
}

/// The token if it is well formed (prefix, length, alphabet, checksum); `None` otherwise.
pub fn parse(s: &str) -> Option<&str> {
    if s.len() != TOKEN_LEN {
        return None;
    }
    let payload = s.strip_prefix(PREFIX)?.strip_prefix('_')?.as_bytes();
    if payload.iter().any(|&b| base62::value(b).is_none()) {
        return None;
    }
    let (body, check) = payload.split_at(BODY_LEN);
    (base62::decode_fixed(check) == Some(u64::from(checksum(body)))).then_some(s)
}

/// SHA-256 of a token string (hex).
pub fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Whether a token expiring at `expires_at` (Unix ms) is expired at `now` (Unix ms).
pub fn is_expired(expires_at: i64, now: i64) -> bool {
    now >= expires_at
}

/// Why a `billing` field is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BillingError {
    /// `usage` is not a whole number from 0 to [`MAX_BILLING_USAGE`].
    Usage,
    /// Neither `id` nor `useCustomerIdForBilling: true`, or an id of the wrong length.
    Id,
}

impl BillingError {
    /// The stable reason code of the 400.
    pub fn reason(self) -> &'static str {
        match self {
            BillingError::Usage => "INVALID_BILLING_USAGE",
            BillingError::Id => "INVALID_BILLING_ID",
        }
    }
}

/// `usage` as a count to add: a whole number from 0 to [`MAX_BILLING_USAGE`].
pub fn check_usage(usage: f64) -> Result<i64, BillingError> {
    if usage.is_finite()
        && usage.fract() == 0.0
        && (0.0..=MAX_BILLING_USAGE as f64).contains(&usage)
    {
        // In range and whole, so the cast is exact.
        Ok(usage as i64)
    } else {
        Err(BillingError::Usage)
    }
}

/// Whether a billing id is 1 to [`MAX_BILLING_ID_LEN`] characters.
pub fn is_valid_billing_id(id: &str) -> bool {
    !id.is_empty() && id.chars().count() <= MAX_BILLING_ID_LEN
}

/// The billing id a VALID verify charges: the key's customer id when asked
/// (`useCustomerIdForBilling`) and the key has one, else the explicit id.
pub fn billing_target<'a>(
    explicit: Option<&'a str>,
    use_customer_id: bool,
    customer_id: Option<&'a str>,
) -> Option<&'a str> {
    if use_customer_id {
        customer_id.or(explicit)
    } else {
        explicit
    }
}

/// The UTC day of a Unix time in ms, as days since 1970-01-01.
pub fn day_number(unix_ms: i64) -> i64 {
    unix_ms.div_euclid(DAY_MS)
}

/// A day number as `YYYY-MM-DD` (proleptic Gregorian, UTC).
pub fn day_string(day: i64) -> String {
    // Howard Hinnant's civil_from_days.
    let z = day + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_parse_and_differ() {
        let a = LinkToken::generate();
        let b = LinkToken::generate();
        assert_eq!(parse(a.expose()), Some(a.expose()));
        assert_ne!(a.expose(), b.expose());
        assert_eq!(a.expose().len(), TOKEN_LEN);
        assert_eq!(a.digest(), digest(a.expose()));
    }

    #[test]
    fn tampered_tokens_are_refused() {
        let t = LinkToken::generate();
        let s = t.expose();
        for i in 3..s.len() {
            let mut bytes = s.as_bytes().to_vec();
            bytes[i] = if bytes[i] == b'a' { b'b' } else { b'a' };
            let tampered = String::from_utf8(bytes).unwrap();
            assert_eq!(parse(&tampered), None, "position {i}");
        }
        assert_eq!(parse(""), None);
        assert_eq!(parse(&s.replacen("lt_", "sk_", 1)), None);
        assert_eq!(parse(&format!("{s}x")), None);
        assert_eq!(parse("lt_ééééééééééééééééé"), None);
    }

    #[test]
    fn usage_is_a_bounded_whole_number() {
        assert_eq!(check_usage(0.0), Ok(0));
        assert_eq!(check_usage(7.0), Ok(7));
        assert_eq!(check_usage(MAX_BILLING_USAGE as f64), Ok(MAX_BILLING_USAGE));
        for bad in [-1.0, 1.5, f64::NAN, f64::INFINITY, 1e12] {
            assert_eq!(check_usage(bad), Err(BillingError::Usage));
        }
    }

    #[test]
    fn billing_target_prefers_the_customer_when_asked() {
        assert_eq!(billing_target(Some("b"), false, Some("c")), Some("b"));
        assert_eq!(billing_target(Some("b"), true, Some("c")), Some("c"));
        assert_eq!(billing_target(None, true, None), None);
        assert_eq!(billing_target(Some("b"), true, None), Some("b"));
    }

    #[test]
    fn days_are_utc_dates() {
        assert_eq!(day_string(0), "1970-01-01");
        assert_eq!(day_string(day_number(1_709_164_800_000)), "2024-02-29");
        assert_eq!(day_string(day_number(1_735_689_599_999)), "2024-12-31");
        assert_eq!(day_string(day_number(1_735_689_600_000)), "2025-01-01");
        assert_eq!(day_string(-1), "1969-12-31");
    }
}
