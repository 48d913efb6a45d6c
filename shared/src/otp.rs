//! One-time passwords for sign-in and step-up (revealing a secret).
//!
//! A code is 6 digits drawn uniformly from the CSPRNG. It is stored only as an HMAC keyed with
//! a server-side pepper over the code *and its binding*: the challenge, the purpose, the user
//! and the subject it unlocks. A code sent to reveal key A therefore never matches a challenge
//! for key B, nor a sign-in. The numbers of the policy live here as constants so every
//! part of keygate applies the same ones.
//!
//! **A door, not a weapon.** The attacker has no access to the mailbox but may send many
//! requests from many addresses. So:
//! - nothing an anonymous caller does ever makes a request for someone else's address fail:
//!   per address there is no refusal, only absorption. A new code for an (address, purpose)
//!   is mailed at most every [`RESEND_AFTER_SECS`] and while fewer than [`MAX_LIVE_CODES`]
//!   are live; any other request gets its own challenge on the newest code already in the
//!   mailbox ([`issue_decision`]). The mailbox therefore receives at most
//!   `MAX_LIVE_CODES` codes per [`LIFETIME_SECS`] per purpose, and its owner always holds a
//!   live code whenever their own request did not mail one;
//! - a pending code is never replaced or killed by a later request, and wrong guesses count
//!   against the guesser's own challenge ([`MAX_ATTEMPTS`]), never against someone else's;
//! - what an anonymous caller can be refused is bounded per client IP:
//!   [`MAX_REQUESTS_PER_CLIENT`] code requests and [`MAX_WRONG_PER_CLIENT`] wrong codes per
//!   [`CLIENT_WINDOW_SECS`], which caps how fast one client can mail people or guess.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

type HmacSha256 = Hmac<Sha256>;

/// Digits in a code.
pub const CODE_DIGITS: usize = 6;
/// How long a code is valid.
pub const LIFETIME_SECS: i64 = 10 * 60;
/// Wrong tries after which a challenge is dead.
pub const MAX_ATTEMPTS: u32 = 5;
/// A new code for one (address, purpose) is mailed at most this often.
pub const RESEND_AFTER_SECS: i64 = 30;
/// Codes live at once for one (address, purpose); further requests are absorbed.
pub const MAX_LIVE_CODES: u32 = 3;
/// The client-IP window.
pub const CLIENT_WINDOW_SECS: i64 = 10 * 60;
/// Code requests one client IP may make per window (all addresses and purposes).
pub const MAX_REQUESTS_PER_CLIENT: u32 = 20;
/// Wrong codes one client IP may send per window (all addresses and purposes).
pub const MAX_WRONG_PER_CLIENT: u32 = 10;

/// What to do with a request for a code, given the (address, purpose)'s live codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IssueDecision {
    /// Mail a new code.
    Mail,
    /// Mail nothing: give the caller a challenge of its own on the newest live code for the
    /// same subject, which is already in the mailbox.
    Absorb,
    /// Mail nothing and there is no live code for this subject to share (a signed-in user
    /// asking for a code for another subject right after one): retry after this many seconds.
    Wait(i64),
}

/// Whether a request for a code at `now` (Unix ms) mails one. `newest_mailed_at`: when the
/// newest live code of this (address, purpose) was mailed, whatever its subject;
/// `live_codes`: how many are live; `live_for_subject`: whether one of them is for the
/// subject asked for.
pub fn issue_decision(
    now: i64,
    newest_mailed_at: Option<i64>,
    live_codes: u32,
    live_for_subject: bool,
) -> IssueDecision {
    let resend_at =
        newest_mailed_at.map_or(i64::MIN, |t| t.saturating_add(RESEND_AFTER_SECS * 1000));
    if now >= resend_at && live_codes < MAX_LIVE_CODES {
        IssueDecision::Mail
    } else if live_for_subject {
        IssueDecision::Absorb
    } else {
        // No live code for this subject to share (a signed-in user asking about another
        // key right after a code): wait out the resend delay, at least a second.
        IssueDecision::Wait(((resend_at.saturating_sub(now)) / 1000).clamp(1, RESEND_AFTER_SECS))
    }
}

/// The start (Unix ms) of the fixed window of `window_secs` containing `now`.
pub fn window_start(now: i64, window_secs: i64) -> i64 {
    let w = window_secs.max(1) * 1000;
    now.div_euclid(w) * w
}

/// What a code is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// Signing in to the dashboard.
    SignIn,
    /// Revealing an SDK key's full value.
    RevealSdkKey,
    /// Opening a session's step-up window.
    StepUp,
}

impl Purpose {
    /// Stable name for storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::SignIn => "sign_in",
            Purpose::RevealSdkKey => "reveal_sdk_key",
            Purpose::StepUp => "step_up",
        }
    }

    /// Parses a stored name.
    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "sign_in" => Some(Purpose::SignIn),
            "reveal_sdk_key" => Some(Purpose::RevealSdkKey),
            "step_up" => Some(Purpose::StepUp),
            _ => None,
        }
    }
}

/// Everything a code is bound to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Binding<'a> {
    /// The challenge's id.
    pub challenge_id: &'a str,
    /// What the code is for.
    pub purpose: Purpose,
    /// Who it was sent to (user id, or email for a first sign-in).
    pub user: &'a str,
    /// What it unlocks (key id; empty for sign-in).
    pub subject: &'a str,
}

/// A code as sent by email. Printing it shows only `******`.
#[derive(Clone, PartialEq, Eq)]
pub struct OtpCode(String);

impl OtpCode {
    /// The digits, for the email body only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl Drop for OtpCode {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for OtpCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OtpCode(******)")
    }
}

/// A new code, uniform over 000000-999999.
pub fn generate() -> OtpCode {
    const RANGE: u32 = 1_000_000;
    // Largest multiple of RANGE below 2^32: values above it would bias low codes.
    const LIMIT: u32 = u32::MAX - (u32::MAX % RANGE);
    loop {
        let mut b = [0u8; 4];
        crate::random::fill(&mut b);
        let n = u32::from_le_bytes(b);
        if n < LIMIT {
            return OtpCode(format!("{:06}", n % RANGE));
        }
    }
}

/// What a user typed, cleaned: spaces and dashes removed; `None` unless exactly 6 digits.
pub fn normalize_input(typed: &str) -> Option<String> {
    let digits: String = typed
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    (digits.len() == CODE_DIGITS && digits.bytes().all(|b| b.is_ascii_digit())).then_some(digits)
}

/// The keyed hash stored for a code, as hex.
pub fn hash(pepper: &[u8], binding: &Binding<'_>, code: &str) -> String {
    let mut m = HmacSha256::new_from_slice(pepper).expect("HMAC takes keys of any length");
    for part in [
        "keygate-otp-v1",
        binding.challenge_id,
        binding.purpose.as_str(),
        binding.user,
        binding.subject,
        code,
    ] {
        m.update(part.as_bytes());
        m.update(&[0]);
    }
    hex::encode(m.finalize().into_bytes())
}

/// Whether a typed code matches the stored hash for this binding (constant-time compare).
pub fn verify(pepper: &[u8], binding: &Binding<'_>, typed: &str, stored_hash: &str) -> bool {
    let Some(code) = normalize_input(typed) else {
        return false;
    };
    let computed = hash(pepper, binding, &code);
    computed.as_bytes().ct_eq(stored_hash.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding<'a>(subject: &'a str, purpose: Purpose) -> Binding<'a> {
        Binding {
            challenge_id: "c1",
            purpose,
            user: "u1",
            subject,
        }
    }

    #[test]
    fn codes_are_six_digits_and_vary() {
        let codes: Vec<String> = (0..50).map(|_| generate().expose().to_owned()).collect();
        assert!(codes
            .iter()
            .all(|c| c.len() == 6 && c.bytes().all(|b| b.is_ascii_digit())));
        let distinct: std::collections::HashSet<_> = codes.iter().collect();
        assert!(distinct.len() > 40);
        assert_eq!(format!("{:?}", generate()), "OtpCode(******)");
    }

    #[test]
    fn a_code_only_opens_what_it_was_bound_to() {
        let pepper = b"pepper";
        let b = binding("key-a", Purpose::RevealSdkKey);
        let stored = hash(pepper, &b, "123456");
        assert!(verify(pepper, &b, "123 456", &stored));
        assert!(!verify(pepper, &b, "123457", &stored));
        assert!(!verify(
            pepper,
            &binding("key-b", Purpose::RevealSdkKey),
            "123456",
            &stored
        ));
        assert!(!verify(
            pepper,
            &binding("key-a", Purpose::SignIn),
            "123456",
            &stored
        ));
        assert!(!verify(b"other pepper", &b, "123456", &stored));
        let other_user = Binding { user: "u2", ..b };
        assert!(!verify(pepper, &other_user, "123456", &stored));
    }

    #[test]
    fn a_request_mails_a_code_only_after_the_resend_delay_and_below_the_live_cap() {
        let t = 1_000_000_000;
        assert_eq!(issue_decision(t, None, 0, false), IssueDecision::Mail);
        // Within 30 s of the last code: the caller shares it, or waits if it is for another subject.
        assert_eq!(
            issue_decision(t + 29_999, Some(t), 1, true),
            IssueDecision::Absorb
        );
        assert_eq!(
            issue_decision(t + 10_000, Some(t), 1, false),
            IssueDecision::Wait(20)
        );
        assert_eq!(
            issue_decision(t + 29_999, Some(t), 1, false),
            IssueDecision::Wait(1)
        );
        assert_eq!(
            issue_decision(t + 30_000, Some(t), 1, true),
            IssueDecision::Mail
        );
        // The live cap: no more than three codes in the mailbox at once.
        assert_eq!(
            issue_decision(t + 60_000, Some(t), 2, true),
            IssueDecision::Mail
        );
        assert_eq!(
            issue_decision(t + 60_000, Some(t), 3, true),
            IssueDecision::Absorb
        );
        // Never a refusal while a live code for the subject exists.
        for live in 1..=MAX_LIVE_CODES + 2 {
            for dt in [0, 1, 29_999, 30_000, 600_000] {
                assert_ne!(
                    std::mem::discriminant(&issue_decision(t + dt, Some(t), live, true)),
                    std::mem::discriminant(&IssueDecision::Wait(0))
                );
            }
        }
    }

    #[test]
    fn windows_are_aligned_and_contain_now() {
        assert_eq!(window_start(0, 600), 0);
        assert_eq!(window_start(599_999, 600), 0);
        assert_eq!(window_start(600_000, 600), 600_000);
        assert_eq!(window_start(-1, 600), -600_000);
        for now in [1, 12_345_678, i64::MAX / 2] {
            let s = window_start(now, 600);
            assert!(s <= now && now < s + 600_000);
        }
        assert_eq!(
            Purpose::from_name(Purpose::StepUp.as_str()),
            Some(Purpose::StepUp)
        );
    }

    #[test]
    fn typed_input_is_normalized() {
        assert_eq!(normalize_input(" 123-456 ").as_deref(), Some("123456"));
        assert_eq!(normalize_input("12345"), None);
        assert_eq!(normalize_input("12345a"), None);
        assert_eq!(normalize_input("1234567"), None);
        assert_eq!(
            normalize_input("١٢٣٤٥٦"),
            None,
            "non-ASCII digits are refused"
        );
    }
}
