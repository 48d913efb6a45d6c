//! Key strings: minting, parsing, digests and masks for every kind of key keygate issues.
//!
//! Every key reads `<prefix>_<body><checksum>`:
//! - `prefix` names the kind and environment (`pk_live`, `sk_test`, ...) or, for a customer
//!   API key, the workspace's chosen prefix (`acme`, `acme_live`, ...);
//! - `body` is [`BODY_LEN`] base62 symbols from the OS CSPRNG (178 bits);
//! - `checksum` is the CRC-32 of `<prefix>_<body>` as [`CHECKSUM_LEN`] base62 symbols.
//!
//! CRC-32 catches every error burst of up to 32 bits, so any single changed symbol and any
//! swap of two neighbouring symbols in the prefix or body is rejected by [`parse`] without a
//! lookup. Secret scanners can match the shape and checksum too.
//!
//! ```
//! use keygate_shared::key::{self, Environment, KeyKind, SecretKey};
//! let key = SecretKey::generate(KeyKind::Publishable, Environment::Live);
//! let parsed = key::parse(key.expose()).unwrap();
//! assert_eq!(parsed.kind(), KeyKind::Publishable);
//! assert!(key.mask().starts_with("pk_live_"));
//! assert_eq!(key.digest(), key::digest(key.expose()));
//! ```

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

use crate::base62;

/// Random base62 symbols in every key: 30 * log2(62) = 178.6 bits of entropy.
pub const BODY_LEN: usize = 30;
/// Base62 symbols of the CRC-32 checksum at the end of every key.
pub const CHECKSUM_LEN: usize = 6;
/// Symbols after the last `_`: body and checksum.
pub const PAYLOAD_LEN: usize = BODY_LEN + CHECKSUM_LEN;
/// Longest prefix accepted (customer API-key prefixes included).
pub const MAX_PREFIX_LEN: usize = 24;
/// Longest string [`parse`] looks at; anything longer is refused before any other work.
pub const MAX_KEY_LEN: usize = MAX_PREFIX_LEN + 1 + PAYLOAD_LEN;

/// What a key is for; decided by its prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    /// Frontend key sent to edge endpoints; safe to expose (`pk_`).
    Publishable,
    /// Backend SDK key with scopes (`sk_`).
    Sdk,
    /// Workspace integration token (`wt_`).
    WorkspaceToken,
    /// Workspace integration secret (`ws_`).
    WorkspaceSecret,
    /// A platform customer's own API key, with the workspace's prefix.
    ApiKey,
}

impl KeyKind {
    /// The two-letter family that starts this kind's prefix; `None` for API keys, whose
    /// prefix the workspace chooses.
    pub fn family(self) -> Option<&'static str> {
        match self {
            KeyKind::Publishable => Some("pk"),
            KeyKind::Sdk => Some("sk"),
            KeyKind::WorkspaceToken => Some("wt"),
            KeyKind::WorkspaceSecret => Some("ws"),
            KeyKind::ApiKey => None,
        }
    }

    /// Stable lowercase name (`publishable`, `sdk`, ...), as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Publishable => "publishable",
            KeyKind::Sdk => "sdk",
            KeyKind::WorkspaceToken => "workspace_token",
            KeyKind::WorkspaceSecret => "workspace_secret",
            KeyKind::ApiKey => "api_key",
        }
    }

    /// Whether a key of this kind is a secret (everything but publishable keys).
    pub fn is_secret(self) -> bool {
        self != KeyKind::Publishable
    }

    const RESERVED: [KeyKind; 4] = [
        KeyKind::Publishable,
        KeyKind::Sdk,
        KeyKind::WorkspaceToken,
        KeyKind::WorkspaceSecret,
    ];
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Live (production) or test keys; part of the prefix so a test key is never mistaken for a
/// live one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Environment {
    /// Production.
    Live,
    /// Development and testing.
    Test,
}

impl Environment {
    /// `live` or `test`.
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Live => "live",
            Environment::Test => "test",
        }
    }

    fn from_suffix(s: &str) -> Option<Self> {
        match s {
            "live" => Some(Environment::Live),
            "test" => Some(Environment::Test),
            _ => None,
        }
    }
}

/// Why a string is not a well-formed key. The messages never repeat the key itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyError {
    /// Nothing was given.
    Empty,
    /// Longer than any key keygate issues.
    TooLong,
    /// No `_` separating prefix from payload.
    MissingPrefix,
    /// The prefix names no kind keygate knows, or is malformed.
    UnknownPrefix,
    /// The payload after the prefix has the wrong number of symbols.
    BadLength {
        /// Symbols a payload must have.
        expected: usize,
        /// Symbols found.
        found: usize,
    },
    /// A symbol outside base62 at this (0-based) position of the payload.
    BadAlphabet {
        /// Position in the payload.
        position: usize,
    },
    /// The checksum does not match: the key was mistyped, truncated or invented.
    BadChecksum,
    /// A well-formed key of another kind than the one expected here.
    WrongKind {
        /// The kind this place takes.
        expected: KeyKind,
        /// The kind given.
        found: KeyKind,
    },
}

impl KeyError {
    /// A stable machine-readable code for API errors.
    pub fn code(&self) -> &'static str {
        match self {
            KeyError::Empty => "KEY_EMPTY",
            KeyError::TooLong => "KEY_TOO_LONG",
            KeyError::MissingPrefix => "KEY_MISSING_PREFIX",
            KeyError::UnknownPrefix => "KEY_UNKNOWN_PREFIX",
            KeyError::BadLength { .. } => "KEY_BAD_LENGTH",
            KeyError::BadAlphabet { .. } => "KEY_BAD_ALPHABET",
            KeyError::BadChecksum => "KEY_BAD_CHECKSUM",
            KeyError::WrongKind { .. } => "KEY_WRONG_KIND",
        }
    }
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::Empty => f.write_str("no key was given"),
            KeyError::TooLong => write!(f, "a key is at most {MAX_KEY_LEN} characters"),
            KeyError::MissingPrefix => f.write_str("a key starts with a prefix such as `pk_live_`"),
            KeyError::UnknownPrefix => f.write_str("the key's prefix names no known kind of key"),
            KeyError::BadLength { expected, found } => write!(
                f,
                "the part after the prefix has {found} characters; keys have {expected}"
            ),
            KeyError::BadAlphabet { position } => write!(
                f,
                "character {} after the prefix is not a letter or digit",
                position + 1
            ),
            KeyError::BadChecksum => {
                f.write_str("the key's checksum does not match: it was mistyped or truncated")
            }
            KeyError::WrongKind { expected, found } => {
                write!(f, "expected a {expected} key but got a {found} key")
            }
        }
    }
}

impl std::error::Error for KeyError {}

/// A validated prefix for customer API keys, chosen per workspace.
///
/// 1 to [`MAX_PREFIX_LEN`] characters of `a-z`, `0-9` and single `_` between them, starting
/// with a letter, and not one of keygate's own families (`pk`, `sk`, `wt`, `ws`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ApiKeyPrefix(String);

impl ApiKeyPrefix {
    /// The default when a workspace chose none.
    pub const DEFAULT: &'static str = "key";

    /// Validates a prefix.
    pub fn new(prefix: &str) -> Result<Self, KeyError> {
        if is_valid_api_prefix(prefix) {
            Ok(ApiKeyPrefix(prefix.to_owned()))
        } else {
            Err(KeyError::UnknownPrefix)
        }
    }

    /// The prefix text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for ApiKeyPrefix {
    fn default() -> Self {
        ApiKeyPrefix(Self::DEFAULT.to_owned())
    }
}

impl TryFrom<String> for ApiKeyPrefix {
    type Error = KeyError;
    fn try_from(s: String) -> Result<Self, KeyError> {
        ApiKeyPrefix::new(&s)
    }
}

impl From<ApiKeyPrefix> for String {
    fn from(p: ApiKeyPrefix) -> String {
        p.0
    }
}

fn is_valid_prefix_grammar(prefix: &str) -> bool {
    let bytes = prefix.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_PREFIX_LEN
        && bytes[0].is_ascii_lowercase()
        && bytes[bytes.len() - 1] != b'_'
        && !prefix.contains("__")
        && bytes
            .iter()
            .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn is_valid_api_prefix(prefix: &str) -> bool {
    is_valid_prefix_grammar(prefix)
        && !KeyKind::RESERVED.iter().any(|k| {
            let family = k.family().unwrap_or_default();
            prefix == family
                || prefix
                    .strip_prefix(family)
                    .is_some_and(|rest| rest.starts_with('_'))
        })
}

/// Classifies a prefix: the kind and, for keygate's own kinds, the environment.
fn classify_prefix(prefix: &str) -> Result<(KeyKind, Option<Environment>), KeyError> {
    for kind in KeyKind::RESERVED {
        let family = kind.family().unwrap_or_default();
        if let Some(rest) = prefix.strip_prefix(family) {
            if let Some(env) = rest.strip_prefix('_').and_then(Environment::from_suffix) {
                return Ok((kind, Some(env)));
            }
        }
    }
    if is_valid_api_prefix(prefix) {
        Ok((KeyKind::ApiKey, None))
    } else {
        Err(KeyError::UnknownPrefix)
    }
}

/// CRC-32 of `<prefix>_<body>`, the checksum every key ends with.
fn checksum(prefix: &str, body: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(prefix.as_bytes());
    hasher.update(b"_");
    hasher.update(body);
    hasher.finalize()
}

/// A well-formed key borrowed from its string: checksum verified, kind known.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ParsedKey<'a> {
    raw: &'a str,
    prefix: &'a str,
    kind: KeyKind,
    environment: Option<Environment>,
}

impl<'a> ParsedKey<'a> {
    /// What the key is for.
    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// Live or test, for keygate's own kinds; `None` for customer API keys.
    pub fn environment(&self) -> Option<Environment> {
        self.environment
    }

    /// The prefix, without the trailing `_`.
    pub fn prefix(&self) -> &'a str {
        self.prefix
    }

    /// The whole key string.
    pub fn as_str(&self) -> &'a str {
        self.raw
    }

    /// SHA-256 of the whole key: what storage keeps and looks up by.
    pub fn digest(&self) -> KeyDigest {
        digest(self.raw)
    }

    /// Prefix plus last four symbols, for logs and display.
    pub fn mask(&self) -> String {
        mask(self.raw)
    }
}

impl fmt::Debug for ParsedKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParsedKey")
            .field("key", &self.mask())
            .field("kind", &self.kind)
            .field("environment", &self.environment)
            .finish()
    }
}

/// Checks a key string's shape and checksum, with no lookup. The error says what is wrong.
pub fn parse(s: &str) -> Result<ParsedKey<'_>, KeyError> {
    if s.is_empty() {
        return Err(KeyError::Empty);
    }
    if s.len() > MAX_KEY_LEN {
        return Err(KeyError::TooLong);
    }
    let (prefix, payload) = s.rsplit_once('_').ok_or(KeyError::MissingPrefix)?;
    let (kind, environment) = classify_prefix(prefix)?;
    if payload.len() != PAYLOAD_LEN {
        return Err(KeyError::BadLength {
            expected: PAYLOAD_LEN,
            found: payload.chars().count(),
        });
    }
    let bytes = payload.as_bytes();
    if let Some(position) = bytes.iter().position(|&b| base62::value(b).is_none()) {
        return Err(KeyError::BadAlphabet { position });
    }
    let (body, check) = bytes.split_at(BODY_LEN);
    let expected = u64::from(checksum(prefix, body));
    if base62::decode_fixed(check) != Some(expected) {
        return Err(KeyError::BadChecksum);
    }
    Ok(ParsedKey {
        raw: s,
        prefix,
        kind,
        environment,
    })
}

/// [`parse`], then insists on one kind (an SDK key where a publishable key belongs is refused).
pub fn parse_as(s: &str, expected: KeyKind) -> Result<ParsedKey<'_>, KeyError> {
    let parsed = parse(s)?;
    if parsed.kind != expected {
        return Err(KeyError::WrongKind {
            expected,
            found: parsed.kind,
        });
    }
    Ok(parsed)
}

/// SHA-256 of a key string.
///
/// Keys carry 178 random bits, so an unsalted fast hash is the right tool: nobody can
/// brute-force the preimage, and lookups stay a single indexed read.
pub fn digest(key: &str) -> KeyDigest {
    KeyDigest(Sha256::digest(key.as_bytes()).into())
}

/// A display form that identifies a key without revealing it: `pk_live_…Ab3d`.
///
/// Strings that are not keys are masked to `…` plus at most their last four characters
/// (none if shorter than 12), so a pasted secret of another shape never leaks whole.
pub fn mask(key: &str) -> String {
    let tail = |s: &str| -> String {
        let chars: Vec<char> = s.chars().collect();
        if chars.len() < 12 {
            String::new()
        } else {
            chars[chars.len() - 4..].iter().collect()
        }
    };
    match parse(key) {
        Ok(p) => format!("{}_…{}", p.prefix, &p.raw[p.raw.len() - 4..]),
        Err(_) => format!("…{}", tail(key)),
    }
}

/// Compares two secrets in time that depends only on their lengths.
pub fn ct_eq(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// A SHA-256 key digest. Comparisons are constant-time; hex is its storage form.
#[derive(Clone, Copy, Eq)]
pub struct KeyDigest([u8; 32]);

impl KeyDigest {
    /// Wraps raw digest bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        KeyDigest(bytes)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// 64 lowercase hex characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex characters.
    pub fn from_hex(s: &str) -> Option<Self> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(KeyDigest(out))
    }
}

impl PartialEq for KeyDigest {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl std::hash::Hash for KeyDigest {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyDigest({})", self.to_hex())
    }
}

impl fmt::Display for KeyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for KeyDigest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for KeyDigest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        KeyDigest::from_hex(&s).ok_or_else(|| serde::de::Error::custom("expected 64 hex digits"))
    }
}

/// A freshly minted (or revealed) secret key string. It cannot be printed by accident:
/// `Debug` and `Display` show the mask, and the memory is wiped on drop. Call
/// [`SecretKey::expose`] at the one place the full value must leave (a response shown once).
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey(String);

impl SecretKey {
    /// Mints a new key of one of keygate's own kinds. For [`KeyKind::ApiKey`] the default
    /// API-key prefix is used; see [`SecretKey::generate_api_key`].
    pub fn generate(kind: KeyKind, environment: Environment) -> Self {
        match kind.family() {
            Some(family) => Self::mint(&format!("{family}_{}", environment.as_str())),
            None => Self::generate_api_key(&ApiKeyPrefix::default()),
        }
    }

    /// Mints a customer API key with a workspace's prefix.
    pub fn generate_api_key(prefix: &ApiKeyPrefix) -> Self {
        Self::mint(prefix.as_str())
    }

    fn mint(prefix: &str) -> Self {
        let mut body = [0u8; BODY_LEN];
        base62::random_symbols(&mut body);
        let mut check = [0u8; CHECKSUM_LEN];
        base62::encode_fixed(u64::from(checksum(prefix, &body)), &mut check);
        let mut s = String::with_capacity(prefix.len() + 1 + PAYLOAD_LEN);
        s.push_str(prefix);
        s.push('_');
        // Both arrays hold base62 ASCII only.
        s.extend(body.iter().chain(check.iter()).map(|&b| char::from(b)));
        body.zeroize();
        SecretKey(s)
    }

    /// Wraps a key string that has been parsed (for example one decrypted from storage).
    pub fn from_parsed(parsed: ParsedKey<'_>) -> Self {
        SecretKey(parsed.raw.to_owned())
    }

    /// The full key. Every call site is a place the secret leaves memory: keep them few.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// SHA-256 of the key.
    pub fn digest(&self) -> KeyDigest {
        digest(&self.0)
    }

    /// Prefix and last four symbols.
    pub fn mask(&self) -> String {
        mask(&self.0)
    }

    /// Last four symbols (what lists show next to the prefix).
    pub fn last4(&self) -> &str {
        &self.0[self.0.len() - 4..]
    }

    /// The prefix, without the trailing `_`.
    pub fn prefix(&self) -> &str {
        self.0.rsplit_once('_').map(|(p, _)| p).unwrap_or_default()
    }
}

impl Drop for SecretKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({})", self.mask())
    }
}

impl fmt::Display for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.mask())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ALL: [(KeyKind, Environment); 8] = [
        (KeyKind::Publishable, Environment::Live),
        (KeyKind::Publishable, Environment::Test),
        (KeyKind::Sdk, Environment::Live),
        (KeyKind::Sdk, Environment::Test),
        (KeyKind::WorkspaceToken, Environment::Live),
        (KeyKind::WorkspaceToken, Environment::Test),
        (KeyKind::WorkspaceSecret, Environment::Live),
        (KeyKind::WorkspaceSecret, Environment::Test),
    ];

    #[test]
    fn every_kind_round_trips_through_parse() {
        for (kind, env) in ALL {
            let key = SecretKey::generate(kind, env);
            let parsed = parse(key.expose()).expect("a minted key parses");
            assert_eq!(parsed.kind(), kind);
            assert_eq!(parsed.environment(), Some(env));
            assert_eq!(
                parsed.prefix(),
                format!("{}_{}", kind.family().unwrap(), env.as_str())
            );
            assert_eq!(parse_as(key.expose(), kind).unwrap().kind(), kind);
        }
    }

    #[test]
    fn api_keys_carry_the_workspace_prefix() {
        let prefix = ApiKeyPrefix::new("acme_live").unwrap();
        let key = SecretKey::generate_api_key(&prefix);
        assert!(key.expose().starts_with("acme_live_"));
        let parsed = parse_as(key.expose(), KeyKind::ApiKey).unwrap();
        assert_eq!(parsed.prefix(), "acme_live");
        assert_eq!(parsed.environment(), None);
    }

    #[test]
    fn reserved_families_cannot_be_api_prefixes() {
        for bad in [
            "pk",
            "pk_live",
            "sk_x",
            "wt_y",
            "ws",
            "",
            "_a",
            "a_",
            "a__b",
            "Acme",
            "1acme",
            "acme-x",
            "this_prefix_is_far_too_long",
        ] {
            assert!(ApiKeyPrefix::new(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["a", "acme", "acme_live", "pkx", "sk2", "x1_y2"] {
            assert!(ApiKeyPrefix::new(good).is_ok(), "{good:?} refused");
        }
    }

    #[test]
    fn keys_have_at_least_128_bits_of_base62_body() {
        let bits = BODY_LEN as f64 * 62f64.log2();
        assert!(bits >= 128.0, "{bits}");
        let key = SecretKey::generate(KeyKind::Sdk, Environment::Live);
        let payload = key.expose().rsplit_once('_').unwrap().1;
        assert_eq!(payload.len(), PAYLOAD_LEN);
        assert!(payload.bytes().all(|b| base62::value(b).is_some()));
    }

    #[test]
    fn parse_errors_say_what_is_wrong() {
        let good = SecretKey::generate(KeyKind::Publishable, Environment::Live);
        let good = good.expose();
        assert_eq!(parse(""), Err(KeyError::Empty));
        assert_eq!(parse(&"a".repeat(200)), Err(KeyError::TooLong));
        assert_eq!(parse("nounderscore"), Err(KeyError::MissingPrefix));
        assert_eq!(
            parse(&good.replace("pk_live_", "pk_prod_")),
            Err(KeyError::UnknownPrefix)
        );
        assert_eq!(
            parse(&good[..good.len() - 1]),
            Err(KeyError::BadLength {
                expected: PAYLOAD_LEN,
                found: PAYLOAD_LEN - 1
            })
        );
        let mut bad_alpha = good.to_owned();
        bad_alpha.replace_range(10..11, "-");
        assert_eq!(
            parse(&bad_alpha),
            Err(KeyError::BadAlphabet { position: 2 })
        );
        let sdk = SecretKey::generate(KeyKind::Sdk, Environment::Test);
        assert_eq!(
            parse_as(sdk.expose(), KeyKind::Publishable),
            Err(KeyError::WrongKind {
                expected: KeyKind::Publishable,
                found: KeyKind::Sdk
            })
        );
    }

    #[test]
    fn errors_never_contain_the_key() {
        let key = SecretKey::generate(KeyKind::Sdk, Environment::Live);
        let mut broken = key.expose().to_owned();
        broken.pop();
        broken.push('!');
        let err = parse(&broken).unwrap_err();
        assert!(!err.to_string().contains(&broken[8..]));
        assert!(!format!("{err:?}").contains(&broken[8..]));
    }

    #[test]
    fn secret_keys_print_only_their_mask() {
        let key = SecretKey::generate(KeyKind::Sdk, Environment::Live);
        let body = &key.expose()[8..];
        for shown in [format!("{key:?}"), format!("{key}"), key.mask()] {
            assert!(!shown.contains(body), "{shown}");
            assert!(shown.contains(key.last4()));
        }
        assert_eq!(key.mask(), format!("sk_live_…{}", key.last4()));
    }

    #[test]
    fn masks_of_non_keys_do_not_leak_short_strings() {
        assert_eq!(mask("hunter2"), "…");
        assert_eq!(mask("not-a-key-but-long-enough"), "…ough");
    }

    #[test]
    fn digests_round_trip_hex_and_compare() {
        let d = digest("pk_live_x");
        assert_eq!(KeyDigest::from_hex(&d.to_hex()), Some(d));
        assert_ne!(d, digest("pk_live_y"));
        assert_eq!(KeyDigest::from_hex("zz"), None);
        assert!(ct_eq("abc", "abc"));
        assert!(!ct_eq("abc", "abd"));
        assert!(!ct_eq("abc", "abcd"));
    }

    fn any_kind() -> impl Strategy<Value = SecretKey> {
        prop_oneof![
            (0..ALL.len()).prop_map(|i| SecretKey::generate(ALL[i].0, ALL[i].1)),
            "[a-z][a-z0-9]{0,10}".prop_filter_map("reserved", |p| ApiKeyPrefix::new(&p)
                .ok()
                .map(|p| SecretKey::generate_api_key(&p))),
        ]
    }

    proptest! {
        #[test]
        fn any_single_symbol_change_is_rejected(key in any_kind(), pos in 0usize..64, sym in 0usize..62) {
            let s = key.expose();
            let pos = pos % s.len();
            let mut bytes = s.as_bytes().to_vec();
            let replacement = base62::ALPHABET[sym];
            prop_assume!(bytes[pos] != replacement && bytes[pos] != b'_');
            bytes[pos] = replacement;
            let mutated = String::from_utf8(bytes).unwrap();
            // A changed prefix may still be a valid (other) prefix: the checksum covers it.
            prop_assert!(parse(&mutated).is_err(), "accepted {}", mutated);
        }

        #[test]
        fn any_neighbour_swap_is_rejected(key in any_kind(), pos in 0usize..64) {
            let s = key.expose();
            let pos = pos % (s.len() - 1);
            let mut bytes = s.as_bytes().to_vec();
            prop_assume!(bytes[pos] != bytes[pos + 1]);
            bytes.swap(pos, pos + 1);
            let mutated = String::from_utf8(bytes).unwrap();
            prop_assert!(parse(&mutated).is_err(), "accepted {}", mutated);
        }

        #[test]
        fn parse_never_panics_on_arbitrary_input(s in "\\PC{0,80}") {
            let _ = parse(&s);
            let _ = mask(&s);
        }
    }

    #[test]
    fn exhaustive_single_changes_of_one_key_are_all_rejected() {
        let key = SecretKey::generate(KeyKind::Publishable, Environment::Live);
        let s = key.expose().as_bytes();
        let mut rejected = 0;
        for pos in 0..s.len() {
            for &sym in base62::ALPHABET.iter().chain(b"_-") {
                if s[pos] == sym {
                    continue;
                }
                let mut m = s.to_vec();
                m[pos] = sym;
                let m = String::from_utf8(m).unwrap();
                assert!(parse(&m).is_err(), "accepted {m}");
                rejected += 1;
            }
        }
        assert!(rejected > 60 * 40);
    }
}
