//! Signed messages between keygate's parts: HMAC-SHA256 over a purpose label, a timestamp,
//! a nonce and the body, with bounded clock skew and constant-time tag comparison.
//!
//! Three purposes use it, each with its own label so a tag made for one is worthless for
//! another: edge sync pushes ([`Purpose::Sync`]), the edge's pull requests to the control
//! plane ([`Purpose::Pull`]) and the control plane's answers to them ([`Purpose::PullReply`]).
//! The receiver refuses a message outside the skew window and must remember nonces for
//! [`NONCE_TTL_SECS`] to refuse replays (that memory is I/O, so it lives in the edge).
//!
//! ```
//! use keygate_shared::signing::{sign, verify, Purpose};
//! let tag = sign(b"secret", Purpose::Sync, 1_700_000_000, "nonce-0001", b"{}");
//! assert!(verify(b"secret", Purpose::Sync, 1_700_000_000, "nonce-0001", b"{}", &tag, 1_700_000_010).is_ok());
//! assert!(verify(b"other", Purpose::Sync, 1_700_000_000, "nonce-0001", b"{}", &tag, 1_700_000_010).is_err());
//! ```

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Header carrying the Unix timestamp (seconds) of a signed message.
pub const HEADER_TIMESTAMP: &str = "x-keygate-timestamp";
/// Header carrying the message's nonce.
pub const HEADER_NONCE: &str = "x-keygate-nonce";
/// Header carrying the hex HMAC tag.
pub const HEADER_SIGNATURE: &str = "x-keygate-signature";
/// Header naming the key a message was signed with ([`key_id`] of the secret). Optional: a
/// message without it is tried against every accepted secret (senders older than key ids).
pub const HEADER_KEY_ID: &str = "x-keygate-key-id";
/// How far a message's timestamp may be from the receiver's clock, either way.
pub const MAX_CLOCK_SKEW_SECS: u64 = 300;
/// How long a receiver must remember a nonce: anything older is refused as stale anyway.
pub const NONCE_TTL_SECS: u64 = 2 * MAX_CLOCK_SKEW_SECS;
/// Longest nonce accepted.
pub const MAX_NONCE_LEN: usize = 64;

/// What a signed message is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// Control plane pushes records to the edge.
    Sync,
    /// The edge asks the control plane for one record.
    Pull,
    /// The control plane's answer to a pull.
    PullReply,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Purpose::Sync => b"keygate-sync-v1",
            Purpose::Pull => b"keygate-pull-v1",
            Purpose::PullReply => b"keygate-pull-reply-v1",
        }
    }
}

/// Why a signed message was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureError {
    /// A header is missing or not of the right form.
    Malformed,
    /// The timestamp is older than the skew window.
    Stale,
    /// The timestamp is further in the future than the skew window.
    FromTheFuture,
    /// The tag does not match: wrong secret or altered message.
    BadSignature,
    /// The nonce was seen before.
    Replayed,
    /// The message names a key ([`HEADER_KEY_ID`]) the receiver does not accept (retired,
    /// or not yet configured there).
    UnknownKey,
}

impl SignatureError {
    /// Stable machine-readable code.
    pub fn code(self) -> &'static str {
        match self {
            SignatureError::Malformed => "SIGNATURE_MALFORMED",
            SignatureError::Stale => "SIGNATURE_STALE",
            SignatureError::FromTheFuture => "SIGNATURE_FROM_THE_FUTURE",
            SignatureError::BadSignature => "SIGNATURE_INVALID",
            SignatureError::Replayed => "SIGNATURE_REPLAYED",
            SignatureError::UnknownKey => "SIGNATURE_KEY_UNKNOWN",
        }
    }
}

impl fmt::Display for SignatureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SignatureError::Malformed => "signature headers are missing or malformed",
            SignatureError::Stale => "the message is too old",
            SignatureError::FromTheFuture => "the message's timestamp is in the future",
            SignatureError::BadSignature => "the signature does not match",
            SignatureError::Replayed => "the message was already received",
            SignatureError::UnknownKey => {
                "the message was signed with a key this receiver does not accept (retired or not yet configured)"
            }
        })
    }
}

impl std::error::Error for SignatureError {}

fn mac(secret: &[u8], purpose: Purpose, timestamp: u64, nonce: &str, body: &[u8]) -> HmacSha256 {
    let mut m = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    m.update(purpose.label());
    m.update(b"\n");
    m.update(timestamp.to_string().as_bytes());
    m.update(b"\n");
    m.update(nonce.as_bytes());
    m.update(b"\n");
    m.update(body);
    m
}

/// The hex tag for a message.
pub fn sign(secret: &[u8], purpose: Purpose, timestamp: u64, nonce: &str, body: &[u8]) -> String {
    hex::encode(
        mac(secret, purpose, timestamp, nonce, body)
            .finalize()
            .into_bytes(),
    )
}

/// Whether a nonce is acceptable in form: 8 to 64 ASCII letters, digits, `-` or `_`.
pub fn is_valid_nonce(nonce: &str) -> bool {
    (8..=MAX_NONCE_LEN).contains(&nonce.len())
        && nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Verifies a message's tag and freshness against `now` (Unix seconds). Replay is the
/// caller's to check afterwards, with the nonce, for [`NONCE_TTL_SECS`].
pub fn verify(
    secret: &[u8],
    purpose: Purpose,
    timestamp: u64,
    nonce: &str,
    body: &[u8],
    tag_hex: &str,
    now: u64,
) -> Result<(), SignatureError> {
    if !is_valid_nonce(nonce) {
        return Err(SignatureError::Malformed);
    }
    let mut tag = [0u8; 32];
    hex::decode_to_slice(tag_hex, &mut tag).map_err(|_| SignatureError::Malformed)?;
    if timestamp + MAX_CLOCK_SKEW_SECS < now {
        return Err(SignatureError::Stale);
    }
    if timestamp > now + MAX_CLOCK_SKEW_SECS {
        return Err(SignatureError::FromTheFuture);
    }
    mac(secret, purpose, timestamp, nonce, body)
        .verify_slice(&tag)
        .map_err(|_| SignatureError::BadSignature)
}

/// A secret's public key id: 16 hex characters of HMAC-SHA256(secret, "keygate-key-id-v1").
/// It names a key in headers, sealed values and `keygate keys status` without revealing it.
pub fn key_id(secret: &[u8]) -> String {
    let mut m = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    m.update(b"keygate-key-id-v1");
    hex::encode(&m.finalize().into_bytes()[..8])
}

/// Whether a key id header is of the right form (16 lowercase hex characters).
pub fn is_valid_key_id(kid: &str) -> bool {
    kid.len() == 16 && kid.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Verifies a message against every accepted secret (the current one first, then, during a
/// rotation's overlap, the previous one). With a key id (`kid`, from [`HEADER_KEY_ID`]) only
/// the secret of that id is tried, and an id matching none is [`SignatureError::UnknownKey`];
/// without one (older senders) each secret is tried. Returns the index of the secret that
/// verified. Key ids are public, so comparing them need not be constant-time; the tag
/// comparison is.
#[allow(clippy::too_many_arguments)]
pub fn verify_any(
    secrets: &[&[u8]],
    kid: Option<&str>,
    purpose: Purpose,
    timestamp: u64,
    nonce: &str,
    body: &[u8],
    tag_hex: &str,
    now: u64,
) -> Result<usize, SignatureError> {
    match kid.filter(|k| !k.is_empty()) {
        Some(kid) => {
            if !is_valid_key_id(kid) {
                return Err(SignatureError::Malformed);
            }
            let i = secrets
                .iter()
                .position(|s| key_id(s) == kid)
                .ok_or(SignatureError::UnknownKey)?;
            verify(secrets[i], purpose, timestamp, nonce, body, tag_hex, now).map(|()| i)
        }
        None => {
            for (i, s) in secrets.iter().enumerate() {
                match verify(s, purpose, timestamp, nonce, body, tag_hex, now) {
                    Ok(()) => return Ok(i),
                    Err(SignatureError::BadSignature) => {}
                    Err(e) => return Err(e),
                }
            }
            Err(SignatureError::BadSignature)
        }
    }
}

/// Parses a timestamp header.
pub fn parse_timestamp(s: &str) -> Result<u64, SignatureError> {
    if s.is_empty() || s.len() > 12 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SignatureError::Malformed);
    }
    s.parse().map_err(|_| SignatureError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: u64 = 1_800_000_000;

    #[test]
    fn fresh_untampered_messages_verify() {
        let tag = sign(b"s3cret", Purpose::Sync, NOW, "nonce-0001", b"body");
        assert_eq!(
            verify(
                b"s3cret",
                Purpose::Sync,
                NOW,
                "nonce-0001",
                b"body",
                &tag,
                NOW
            ),
            Ok(())
        );
    }

    #[test]
    fn tampering_with_any_part_is_refused() {
        let tag = sign(b"s3cret", Purpose::Sync, NOW, "nonce-0001", b"body");
        let v = |secret: &[u8], p, ts, n: &str, b: &[u8]| verify(secret, p, ts, n, b, &tag, NOW);
        let tampered = [
            v(b"s3cret!", Purpose::Sync, NOW, "nonce-0001", b"body"),
            v(b"s3cret", Purpose::Pull, NOW, "nonce-0001", b"body"),
            v(b"s3cret", Purpose::Sync, NOW - 1, "nonce-0001", b"body"),
            v(b"s3cret", Purpose::Sync, NOW, "nonce-0002", b"body"),
            v(b"s3cret", Purpose::Sync, NOW, "nonce-0001", b"bodY"),
        ];
        for (i, verdict) in tampered.into_iter().enumerate() {
            assert_eq!(verdict, Err(SignatureError::BadSignature), "case {i}");
        }
    }

    #[test]
    fn stale_and_future_messages_are_refused() {
        let old = NOW - MAX_CLOCK_SKEW_SECS - 1;
        let tag = sign(b"k", Purpose::Sync, old, "nonce-0001", b"");
        assert_eq!(
            verify(b"k", Purpose::Sync, old, "nonce-0001", b"", &tag, NOW),
            Err(SignatureError::Stale)
        );
        let future = NOW + MAX_CLOCK_SKEW_SECS + 1;
        let tag = sign(b"k", Purpose::Sync, future, "nonce-0001", b"");
        assert_eq!(
            verify(b"k", Purpose::Sync, future, "nonce-0001", b"", &tag, NOW),
            Err(SignatureError::FromTheFuture)
        );
    }

    #[test]
    fn malformed_headers_are_refused() {
        assert_eq!(
            verify(b"k", Purpose::Sync, NOW, "nonce-0001", b"", "zz", NOW),
            Err(SignatureError::Malformed)
        );
        let tag = sign(b"k", Purpose::Sync, NOW, "", b"");
        assert_eq!(
            verify(b"k", Purpose::Sync, NOW, "", b"", &tag, NOW),
            Err(SignatureError::Malformed)
        );
        assert_eq!(parse_timestamp("12a"), Err(SignatureError::Malformed));
        assert_eq!(
            parse_timestamp("99999999999999"),
            Err(SignatureError::Malformed)
        );
        assert_eq!(parse_timestamp("1700000000"), Ok(1_700_000_000));
    }

    #[test]
    fn key_ids_name_keys_without_revealing_them() {
        let a = key_id(b"old-secret-old-secret-old-secret");
        let b = key_id(b"new-secret-new-secret-new-secret");
        assert!(is_valid_key_id(&a) && is_valid_key_id(&b));
        assert_ne!(a, b);
        assert_eq!(a, key_id(b"old-secret-old-secret-old-secret"));
        assert!(!is_valid_key_id("ABCDEF0123456789"));
        assert!(!is_valid_key_id("abc"));
    }

    #[test]
    fn verify_any_accepts_current_and_previous_and_refuses_retired() {
        let (old, new): (&[u8], &[u8]) = (b"old", b"new");
        let tag_old = sign(old, Purpose::Sync, NOW, "nonce-0001", b"b");
        let tag_new = sign(new, Purpose::Sync, NOW, "nonce-0001", b"b");
        let v = |secrets: &[&[u8]], kid: Option<&str>, tag: &str| {
            verify_any(
                secrets,
                kid,
                Purpose::Sync,
                NOW,
                "nonce-0001",
                b"b",
                tag,
                NOW,
            )
        };
        // Overlap: both accepted, with or without a key id.
        assert_eq!(v(&[new, old], Some(&key_id(old)), &tag_old), Ok(1));
        assert_eq!(v(&[new, old], Some(&key_id(new)), &tag_new), Ok(0));
        assert_eq!(v(&[new, old], None, &tag_old), Ok(1));
        assert_eq!(v(&[new, old], None, &tag_new), Ok(0));
        // A key id must match the key that signed.
        assert_eq!(
            v(&[new, old], Some(&key_id(new)), &tag_old),
            Err(SignatureError::BadSignature)
        );
        // Retired: the old key is refused, by id or by trying.
        assert_eq!(
            v(&[new], Some(&key_id(old)), &tag_old),
            Err(SignatureError::UnknownKey)
        );
        assert_eq!(v(&[new], None, &tag_old), Err(SignatureError::BadSignature));
        assert_eq!(
            v(&[new], Some("not-a-key-id"), &tag_new),
            Err(SignatureError::Malformed)
        );
        assert_eq!(v(&[], None, &tag_new), Err(SignatureError::BadSignature));
    }

    proptest! {
        #[test]
        fn any_flipped_body_byte_is_refused(body in proptest::collection::vec(any::<u8>(), 1..200), idx in any::<usize>(), flip in 1u8..=255) {
            let tag = sign(b"k", Purpose::Sync, NOW, "nonce-0001", &body);
            let mut tampered = body.clone();
            let i = idx % tampered.len();
            tampered[i] ^= flip;
            prop_assert_eq!(verify(b"k", Purpose::Sync, NOW, "nonce-0001", &tampered, &tag, NOW), Err(SignatureError::BadSignature));
        }
    }
}
