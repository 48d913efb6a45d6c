//! Canonical actions: the one spelling of a (module, functionality) pair that blacklists are
//! saved in and checks are decided on.
//!
//! A label reaches keygate from a JSON body (`/v1/check`), from a URL path segment
//! (`/x/{module}/{functionality}/...`) or from the dashboard (catalogue, blacklist rules). If
//! two spellings of one action could be judged differently, a blacklist could be talked
//! around (`/x/Billing/refund` past a `billing/refund` rule). So every label goes through
//! [`canonical_label`] first, with these rules:
//!
//! 1. at most [`MAX_RAW_LABEL_LEN`] bytes as sent;
//! 2. percent-escapes (`%XX`, either case) are decoded **once**; a `%` not followed by two hex
//!    digits is refused;
//! 3. the decoded bytes must be ASCII letters, digits, `_`, `-` or `.`, starting with a letter
//!    or digit, 1 to [`MAX_NAME_LEN`] long. So a decoded `%` (double encoding), `/`, `\`,
//!    control characters, spaces, non-ASCII bytes (overlong UTF-8 included) and dot segments
//!    (`.`, `..`) are refused, never reinterpreted;
//! 4. ASCII letters are lowercased (no Unicode case folding: non-ASCII is refused in step 3).
//!
//! What is refused does not canonicalise and is never compared with a rule: a check with such
//! a label is `INVALID` (fail closed). Canonicalising a canonical label returns it unchanged.

use std::borrow::Cow;

use crate::blacklist::MAX_NAME_LEN;

/// Longest label accepted as sent (every byte of a longest name percent-encoded).
pub const MAX_RAW_LABEL_LEN: usize = 3 * MAX_NAME_LEN;

/// Why a label does not canonicalise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LabelError {
    /// Empty, or longer than [`MAX_NAME_LEN`] decoded / [`MAX_RAW_LABEL_LEN`] as sent.
    Length,
    /// A `%` not followed by two hex digits.
    BadEscape,
    /// A byte outside the label alphabet after decoding (or a leading `_`, `-`, `.`).
    Character,
}

impl LabelError {
    /// Stable machine-readable code.
    pub fn code(self) -> &'static str {
        match self {
            LabelError::Length => "LABEL_LENGTH",
            LabelError::BadEscape => "LABEL_BAD_ESCAPE",
            LabelError::Character => "LABEL_CHARACTER",
        }
    }
}

impl std::fmt::Display for LabelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LabelError::Length => "a module or functionality name is 1 to 64 characters",
            LabelError::BadEscape => "a `%` must start a two-digit hex escape",
            LabelError::Character => {
                "module and functionality names are ASCII letters, digits, '_', '-' or '.', \
                 starting with a letter or digit"
            }
        })
    }
}

impl std::error::Error for LabelError {}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn is_label_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
}

/// Whether `s` is already canonical (so [`canonical_label`] returns it unchanged).
pub fn is_canonical_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_NAME_LEN
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter().all(|&c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'-' | b'.')
        })
}

/// The canonical form of a module or functionality label (see the module docs), borrowing
/// when the label is canonical already.
pub fn canonical_label(raw: &str) -> Result<Cow<'_, str>, LabelError> {
    if is_canonical_label(raw) {
        return Ok(Cow::Borrowed(raw));
    }
    let bytes = raw.as_bytes();
    if bytes.is_empty() || bytes.len() > MAX_RAW_LABEL_LEN {
        return Err(LabelError::Length);
    }
    let mut out = Vec::with_capacity(bytes.len().min(MAX_NAME_LEN));
    let mut i = 0;
    while i < bytes.len() {
        let b = if bytes[i] == b'%' {
            let hi = bytes.get(i + 1).copied().and_then(hex_value);
            let lo = bytes.get(i + 2).copied().and_then(hex_value);
            let (Some(hi), Some(lo)) = (hi, lo) else {
                return Err(LabelError::BadEscape);
            };
            i += 3;
            hi << 4 | lo
        } else {
            i += 1;
            bytes[i - 1]
        };
        if !is_label_byte(b) {
            return Err(LabelError::Character);
        }
        if out.len() == MAX_NAME_LEN {
            return Err(LabelError::Length);
        }
        out.push(b.to_ascii_lowercase());
    }
    if !out[0].is_ascii_alphanumeric() {
        return Err(LabelError::Character);
    }
    // Every byte is ASCII by construction.
    Ok(Cow::Owned(out.into_iter().map(char::from).collect()))
}

/// A (module, functionality) pair in canonical form.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Action<'a> {
    /// The module, canonical.
    pub module: Cow<'a, str>,
    /// The functionality, canonical.
    pub functionality: Cow<'a, str>,
}

/// Which half of an action did not canonicalise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActionError {
    /// The module label.
    Module(LabelError),
    /// The functionality label.
    Functionality(LabelError),
}

impl ActionError {
    /// Stable machine-readable code: `INVALID_MODULE` or `INVALID_FUNCTIONALITY`.
    pub fn code(self) -> &'static str {
        match self {
            ActionError::Module(_) => "INVALID_MODULE",
            ActionError::Functionality(_) => "INVALID_FUNCTIONALITY",
        }
    }
}

impl std::fmt::Display for ActionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ActionError::Module(e) => write!(f, "module: {e}"),
            ActionError::Functionality(e) => write!(f, "functionality: {e}"),
        }
    }
}

impl std::error::Error for ActionError {}

/// Canonicalises both labels of an action as sent (JSON string or path segment alike).
pub fn canonical_action<'a>(
    module: &'a str,
    functionality: &'a str,
) -> Result<Action<'a>, ActionError> {
    Ok(Action {
        module: canonical_label(module).map_err(ActionError::Module)?,
        functionality: canonical_label(functionality).map_err(ActionError::Functionality)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn c(s: &str) -> Result<String, LabelError> {
        canonical_label(s).map(Cow::into_owned)
    }

    #[test]
    fn case_and_escapes_collapse_to_one_spelling() {
        for spelling in [
            "billing",
            "Billing",
            "BILLING",
            "bIlLiNg",
            "%62illing",
            "bill%69ng",
            "bill%49ng",
            "%42%49%4c%4c%49%4e%47",
            "%42%49%4C%4C%49%4E%47",
        ] {
            assert_eq!(c(spelling).as_deref(), Ok("billing"), "{spelling}");
        }
        assert!(matches!(canonical_label("billing"), Ok(Cow::Borrowed(_))));
        assert_eq!(c("refund-v2.x_1").as_deref(), Ok("refund-v2.x_1"));
    }

    #[test]
    fn what_does_not_canonicalise_is_refused() {
        use LabelError::*;
        for (raw, err) in [
            ("", Length),
            ("billing%2Frefund", Character),
            ("billing%2frefund", Character),
            ("billing/refund", Character),
            ("billing%5Crefund", Character),
            ("bill%2569ng", Character), // double encoding: decodes to a `%`
            ("bill%ing", BadEscape),
            ("bill%6", BadEscape),
            ("bill%", BadEscape),
            ("%zz", BadEscape),
            (".", Character),
            ("..", Character),
            ("%2e%2e", Character),
            ("%2E", Character),
            ("_billing", Character),
            ("-x", Character),
            ("bill ing", Character),
            ("billing\n", Character),
            ("bill%00ing", Character),
            ("bill%0aing", Character),
            ("b%C0%AEx", Character),    // overlong UTF-8 for `.`
            ("bil\u{212a}", Character), // KELVIN SIGN lowercases to `k` in Unicode
            ("billİng", Character),
            ("*", Character),
        ] {
            assert_eq!(c(raw), Err(err), "{raw:?}");
        }
        assert_eq!(c(&"a".repeat(64)).unwrap().len(), 64);
        assert_eq!(c(&"a".repeat(65)), Err(Length));
        assert_eq!(c(&"A".repeat(65)), Err(Length));
        assert_eq!(c(&"%61".repeat(64)).unwrap(), "a".repeat(64));
        assert_eq!(c(&"%61".repeat(65)), Err(Length));
    }

    #[test]
    fn actions_name_the_half_that_failed() {
        assert_eq!(
            canonical_action("x/y", "ok").unwrap_err().code(),
            "INVALID_MODULE"
        );
        assert_eq!(
            canonical_action("ok", "..").unwrap_err().code(),
            "INVALID_FUNCTIONALITY"
        );
        let a = canonical_action("Billing", "REFUND").unwrap();
        assert_eq!((&*a.module, &*a.functionality), ("billing", "refund"));
    }

    /// Every way of spelling a label: each byte as itself, upper or lower case, or
    /// percent-encoded with upper or lower hex digits.
    fn spellings(canonical: String) -> impl Strategy<Value = String> {
        let n = canonical.len();
        proptest::collection::vec(0u8..5, n).prop_map(move |choices| {
            canonical
                .bytes()
                .zip(choices)
                .map(|(b, how)| match how {
                    0 => char::from(b).to_string(),
                    1 => char::from(b.to_ascii_uppercase()).to_string(),
                    2 => format!("%{:02X}", b),
                    3 => format!("%{:02x}", b),
                    _ => format!("%{:02X}", b.to_ascii_uppercase()),
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn every_spelling_canonicalises_to_the_same_label(
            s in "[a-z0-9][a-z0-9_.-]{0,20}".prop_flat_map(spellings),
        ) {
            let canonical = c(&s).unwrap();
            prop_assert!(is_canonical_label(&canonical));
            // Idempotent: canonical labels are fixed points.
            prop_assert_eq!(c(&canonical).unwrap(), canonical.clone());
            // And it is the lowercase decoded form.
            prop_assert_eq!(canonical.len() <= s.len(), true);
        }

        #[test]
        fn canonical_labels_are_fixed_points_and_never_contain_separators(s in "\\PC{0,80}") {
            if let Ok(canonical) = canonical_label(&s) {
                prop_assert!(is_canonical_label(&canonical));
                prop_assert_eq!(canonical_label(&canonical).unwrap(), canonical.clone());
                prop_assert!(!canonical.contains(['/', '\\', '%']));
                prop_assert!(canonical != "." && canonical != "..");
            }
        }
    }
}
