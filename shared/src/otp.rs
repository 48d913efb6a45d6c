//! One-time passwords for sign-in and step-up (revealing a secret).
//!
//! A code is 6 digits drawn uniformly from the CSPRNG. It is stored only as an HMAC keyed with
//! a server-side pepper over the code *and its binding*: the challenge, the purpose, the user
//! and the subject it unlocks. A code sent to reveal key A therefore never matches a challenge
//! for key B, nor a sign-in. The numbers of the policy live here as constants so every
//! part of keygate applies the same ones.

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
/// Codes one user (or email address) may request per rolling hour.
pub const MAX_CODES_PER_HOUR: u32 = 10;

/// What a code is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// Signing in to the dashboard.
    SignIn,
    /// Revealing an SDK key's full value.
    RevealSdkKey,
}

impl Purpose {
    /// Stable name for storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::SignIn => "sign_in",
            Purpose::RevealSdkKey => "reveal_sdk_key",
        }
    }

    /// Parses a stored name.
    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "sign_in" => Some(Purpose::SignIn),
            "reveal_sdk_key" => Some(Purpose::RevealSdkKey),
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
