//! The gateway: what the edge forwards to a workspace's origin, and how the origin knows a
//! request came through the edge and passed the check.
//!
//! **Signatures.** Each workspace has its own random gateway secrets (made by the control
//! plane, [`GatewaySecret::generate`]), each named by a key id (`kid`). The edge signs every
//! forwarded request with each *live* secret of the workspace: during a rotation's overlap
//! that is the new and the previous one, so an origin holding either verifies. Header:
//!
//! ```text
//! x-keygate-gateway-signature: t=<unix seconds>,v1=<kid>:<hex hmac>[,v1=<kid>:<hex hmac>]
//! ```
//!
//! The HMAC-SHA256 (key: the secret's text as bytes) covers the timestamp, method, path (with
//! query), workspace, module and functionality, one per line; bodies stream through unsigned
//! (TLS protects them). An origin runs [`verify_any`] with the secrets it holds. A workspace
//! whose record carries no secrets (a record written by an older control plane) is signed the
//! old way, `t=<unix>,v1=<hex>`, with [`workspace_signing_key`] derived from the edge secret;
//! [`verify`] and [`verify_any`] accept both shapes.
//!
//! **Secrets on their way to the edge** travel in the key's edge record, sealed
//! ([`seal_for_edge`]: AES-256-GCM under a key derived from the edge secret, bound to the
//! workspace and kid), so KV never holds them in plaintext.
//!
//! **What is forwarded.** [`check_rest`] refuses a `{rest}` path an origin could read as
//! another path (encoded slashes, dot segments, backslashes); [`forwards_request_header`] and
//! [`returns_response_header`] drop spoofable, hop-by-hop and (unless the workspace opts in)
//! cookie headers: every workspace shares the edge's host, so one tenant's cookies must not
//! reach another tenant's origin.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::signing::MAX_CLOCK_SKEW_SECS;

type HmacSha256 = Hmac<Sha256>;

/// Header with the signature.
pub const HEADER_SIGNATURE: &str = "x-keygate-gateway-signature";
/// Header naming the workspace.
pub const HEADER_WORKSPACE: &str = "x-keygate-workspace";
/// Header naming the module.
pub const HEADER_MODULE: &str = "x-keygate-module";
/// Header naming the functionality.
pub const HEADER_FUNCTIONALITY: &str = "x-keygate-functionality";

/// Longest signature header [`verify_any`] reads.
pub const MAX_SIGNATURE_HEADER_LEN: usize = 1024;
/// Most signatures in one header (live secrets of a workspace).
pub const MAX_SIGNATURES: usize = 8;
/// Longest key id.
pub const MAX_KID_LEN: usize = 32;

/// The legacy per-workspace signing key: HMAC-SHA256(edge secret, label + workspace id), as
/// hex. Used only for records that carry no gateway secrets of their own.
pub fn workspace_signing_key(edge_secret: &[u8], workspace_id: &str) -> String {
    let mut m =
        <HmacSha256 as Mac>::new_from_slice(edge_secret).expect("HMAC takes keys of any length");
    m.update(b"keygate-gateway-key-v1\n");
    m.update(workspace_id.as_bytes());
    hex::encode(m.finalize().into_bytes())
}

/// Whether a key id is acceptable: 1 to 32 of `[A-Za-z0-9_-]`.
pub fn is_valid_kid(kid: &str) -> bool {
    !kid.is_empty()
        && kid.len() <= MAX_KID_LEN
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// One gateway secret and its key id. `Debug` never prints the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct GatewaySecret {
    kid: String,
    secret: Zeroizing<String>,
}

impl std::fmt::Debug for GatewaySecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GatewaySecret({}, <redacted>)", self.kid)
    }
}

impl GatewaySecret {
    /// A fresh secret from the OS CSPRNG: 32 random bytes as 64 hex characters, with a random
    /// 16-hex-character key id.
    pub fn generate() -> Self {
        let mut raw = Zeroizing::new([0u8; 32]);
        crate::random::fill(&mut raw[..]);
        let mut kid = [0u8; 8];
        crate::random::fill(&mut kid);
        GatewaySecret {
            kid: hex::encode(kid),
            secret: Zeroizing::new(hex::encode(&raw[..])),
        }
    }

    /// A secret as stored; `None` if the kid is invalid or the secret empty.
    pub fn new(kid: &str, secret: &str) -> Option<Self> {
        (is_valid_kid(kid) && !secret.is_empty()).then(|| GatewaySecret {
            kid: kid.to_owned(),
            secret: Zeroizing::new(secret.to_owned()),
        })
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The secret text (what an origin configures).
    pub fn expose(&self) -> &str {
        &self.secret
    }
}

/// What a forwarded request's signature covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForwardedRequest<'a> {
    /// HTTP method, upper case.
    pub method: &'a str,
    /// Path and query as sent to the origin.
    pub path_and_query: &'a str,
    /// Workspace id.
    pub workspace_id: &'a str,
    /// Module (canonical).
    pub module: &'a str,
    /// Functionality (canonical).
    pub functionality: &'a str,
}

fn mac(signing_key: &[u8], timestamp: u64, req: &ForwardedRequest<'_>) -> HmacSha256 {
    let mut m = <HmacSha256 as Mac>::new_from_slice(signing_key).expect("any length");
    for part in [
        timestamp.to_string().as_str(),
        req.method,
        req.path_and_query,
        req.workspace_id,
        req.module,
        req.functionality,
    ] {
        m.update(part.as_bytes());
        m.update(b"\n");
    }
    m
}

fn tag(signing_key: &[u8], timestamp: u64, req: &ForwardedRequest<'_>) -> String {
    hex::encode(mac(signing_key, timestamp, req).finalize().into_bytes())
}

/// The legacy signature header (`t=<unix>,v1=<hex>`) with one key and no key id.
pub fn sign(signing_key: &str, timestamp: u64, req: &ForwardedRequest<'_>) -> String {
    format!(
        "t={timestamp},v1={}",
        tag(signing_key.as_bytes(), timestamp, req)
    )
}

/// The signature header with one `v1=<kid>:<hex>` per secret, in the order given.
pub fn sign_with(secrets: &[GatewaySecret], timestamp: u64, req: &ForwardedRequest<'_>) -> String {
    let mut out = format!("t={timestamp}");
    for s in secrets {
        out.push_str(",v1=");
        out.push_str(&s.kid);
        out.push(':');
        out.push_str(&tag(s.secret.as_bytes(), timestamp, req));
    }
    out
}

/// A signature header taken apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedSignature<'a> {
    /// The signing time, Unix seconds.
    pub timestamp: u64,
    /// Each `v1` signature: its key id if it names one, and the 32-byte tag.
    pub signatures: Vec<(Option<&'a str>, [u8; 32])>,
}

/// Parses a signature header: `t` exactly once (decimal), 1 to [`MAX_SIGNATURES`] `v1`
/// entries (`<kid>:<64 hex>` or `<64 hex>`), other `name=value` entries ignored (later
/// schemes), at most [`MAX_SIGNATURE_HEADER_LEN`] bytes. `None` if malformed.
pub fn parse_signature_header(header: &str) -> Option<ParsedSignature<'_>> {
    if header.len() > MAX_SIGNATURE_HEADER_LEN {
        return None;
    }
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        let (name, value) = part.trim().split_once('=')?;
        match name {
            "t" => {
                if timestamp.is_some()
                    || value.is_empty()
                    || value.len() > 20
                    || !value.bytes().all(|b| b.is_ascii_digit())
                {
                    return None;
                }
                timestamp = Some(value.parse::<u64>().ok()?);
            }
            "v1" => {
                if signatures.len() == MAX_SIGNATURES {
                    return None;
                }
                let (kid, hex_tag) = match value.split_once(':') {
                    Some((kid, t)) if is_valid_kid(kid) => (Some(kid), t),
                    Some(_) => return None,
                    None => (None, value),
                };
                let mut raw = [0u8; 32];
                hex::decode_to_slice(hex_tag, &mut raw).ok()?;
                signatures.push((kid, raw));
            }
            _ if !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric()) => {}
            _ => return None,
        }
    }
    let timestamp = timestamp?;
    (!signatures.is_empty()).then_some(ParsedSignature {
        timestamp,
        signatures,
    })
}

/// Whether `timestamp` is within [`MAX_CLOCK_SKEW_SECS`] of `now` (no overflow anywhere).
pub fn is_fresh(timestamp: u64, now: u64) -> bool {
    timestamp.abs_diff(now) <= MAX_CLOCK_SKEW_SECS
}

/// What an origin runs: whether `header` is a fresh signature of `req` by any of `secrets`.
/// A signature naming a kid is checked only against the secret with that kid; one without a
/// kid (the legacy shape) against each. Tags are compared in constant time.
pub fn verify_any(
    secrets: &[GatewaySecret],
    header: &str,
    req: &ForwardedRequest<'_>,
    now: u64,
) -> bool {
    let Some(parsed) = parse_signature_header(header) else {
        return false;
    };
    if !is_fresh(parsed.timestamp, now) {
        return false;
    }
    parsed.signatures.iter().any(|(kid, raw)| {
        secrets
            .iter()
            .filter(|s| kid.is_none_or(|k| k == s.kid))
            .any(|s| {
                mac(s.secret.as_bytes(), parsed.timestamp, req)
                    .verify_slice(raw)
                    .is_ok()
            })
    })
}

/// [`verify_any`] with one key and no key id (e.g. a [`workspace_signing_key`]): any `v1`
/// entry made with that key verifies, whatever kid it names.
pub fn verify(signing_key: &str, header: &str, req: &ForwardedRequest<'_>, now: u64) -> bool {
    let Some(parsed) = parse_signature_header(header) else {
        return false;
    };
    is_fresh(parsed.timestamp, now)
        && parsed.signatures.iter().any(|(_, raw)| {
            mac(signing_key.as_bytes(), parsed.timestamp, req)
                .verify_slice(raw)
                .is_ok()
        })
}

/// A gateway secret as the edge record carries it: sealed for the edge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SealedGatewaySecret {
    /// Key id.
    pub kid: String,
    /// hex(nonce || AES-256-GCM ciphertext and tag), see [`seal_for_edge`].
    pub sealed: String,
    /// Unix seconds after which the edge stops signing with it (the end of a rotation's
    /// overlap); absent for the current secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<u64>,
}

impl SealedGatewaySecret {
    /// Whether the edge still signs with it at `now` (Unix seconds).
    pub fn is_live(&self, now: u64) -> bool {
        self.not_after.is_none_or(|t| now < t)
    }
}

fn sealing_cipher(edge_secret: &[u8]) -> Aes256Gcm {
    let mut m = <HmacSha256 as Mac>::new_from_slice(edge_secret).expect("any length");
    m.update(b"keygate-gateway-secret-seal-v1");
    let key = Zeroizing::new(<[u8; 32]>::from(m.finalize().into_bytes()));
    Aes256Gcm::new_from_slice(&key[..]).expect("32-byte key")
}

fn sealing_aad(workspace_id: &str, kid: &str) -> Vec<u8> {
    format!("keygate-gateway-secret\n{workspace_id}\n{kid}").into_bytes()
}

/// Seals a workspace's gateway secret for the edge: AES-256-GCM under
/// HMAC-SHA256(edge secret, "keygate-gateway-secret-seal-v1"), a random 96-bit nonce, the
/// workspace id and kid bound as associated data (a sealed secret copied into another
/// workspace's record does not open).
pub fn seal_for_edge(
    edge_secret: &[u8],
    workspace_id: &str,
    secret: &GatewaySecret,
    not_after: Option<u64>,
) -> SealedGatewaySecret {
    let mut nonce = [0u8; 12];
    crate::random::fill(&mut nonce);
    let aad = sealing_aad(workspace_id, &secret.kid);
    let ct = sealing_cipher(edge_secret)
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: secret.secret.as_bytes(),
                aad: &aad,
            },
        )
        .expect("AES-GCM encryption of a short message cannot fail");
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ct);
    SealedGatewaySecret {
        kid: secret.kid.clone(),
        sealed: hex::encode(out),
        not_after,
    }
}

/// Longest sealed value opened (hex of nonce + a 64-byte secret + tag, with room to spare).
pub const MAX_SEALED_LEN: usize = 2 * (12 + 256 + 16);

/// Opens what [`seal_for_edge`] made, trying each edge secret in turn (current, then
/// previous during an edge-secret rotation); `None` if none opens it.
pub fn open_at_edge(
    edge_secrets: &[&[u8]],
    workspace_id: &str,
    sealed: &SealedGatewaySecret,
) -> Option<GatewaySecret> {
    if !is_valid_kid(&sealed.kid) || sealed.sealed.len() > MAX_SEALED_LEN {
        return None;
    }
    let raw = hex::decode(&sealed.sealed).ok()?;
    if raw.len() < 12 + 16 {
        return None;
    }
    let (nonce, ct) = raw.split_at(12);
    let aad = sealing_aad(workspace_id, &sealed.kid);
    edge_secrets.iter().find_map(|edge_secret| {
        let pt = sealing_cipher(edge_secret)
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: &aad })
            .ok()?;
        let text = Zeroizing::new(String::from_utf8(pt).ok()?);
        GatewaySecret::new(&sealed.kid, &text)
    })
}

/// Why the edge cannot sign for a workspace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretsError {
    /// The record lists secrets but none is live, or a live one does not open with the edge
    /// secret(s): the edge must not fall back to the derived key (fail closed).
    Unreadable,
}

/// How the edge signs for a workspace at `now`.
#[derive(Debug)]
pub enum Signer {
    /// The workspace's own live secrets (new first, as the record lists them).
    Secrets(Vec<GatewaySecret>),
    /// No secrets in the record: the legacy key derived from the edge secret.
    Derived(String),
}

impl Signer {
    /// Chooses the signer from a record's sealed secrets.
    pub fn for_record(
        edge_secrets: &[&[u8]],
        workspace_id: &str,
        sealed: &[SealedGatewaySecret],
        now: u64,
    ) -> Result<Signer, SecretsError> {
        if sealed.is_empty() {
            let current = edge_secrets.first().ok_or(SecretsError::Unreadable)?;
            return Ok(Signer::Derived(workspace_signing_key(
                current,
                workspace_id,
            )));
        }
        let live: Vec<GatewaySecret> = sealed
            .iter()
            .filter(|s| s.is_live(now))
            .take(MAX_SIGNATURES)
            .map(|s| open_at_edge(edge_secrets, workspace_id, s).ok_or(SecretsError::Unreadable))
            .collect::<Result<_, _>>()?;
        if live.is_empty() {
            return Err(SecretsError::Unreadable);
        }
        Ok(Signer::Secrets(live))
    }

    /// The signature header for a forwarded request.
    pub fn sign(&self, timestamp: u64, req: &ForwardedRequest<'_>) -> String {
        match self {
            Signer::Secrets(s) => sign_with(s, timestamp, req),
            Signer::Derived(key) => sign(key, timestamp, req),
        }
    }
}

/// Why a `{rest}` path is not forwarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestError {
    /// `%2F` or `%5C` (an origin that decodes before routing would see another path).
    EncodedSeparator,
    /// A `.` or `..` segment, raw or encoded (`%2e`, `.%2E`, `..;x`).
    DotSegment,
    /// A raw `\` (some servers read it as `/`).
    Backslash,
    /// A control character, raw or encoded (`%00`, `%0a`, ...).
    ControlCharacter,
    /// A double-encoded escape (`%25` followed by two hex digits) or a `%` that starts no
    /// escape: an origin decoding twice, or leniently, would see another path.
    BadEscape,
}

impl RestError {
    /// Stable machine-readable code.
    pub fn code(self) -> &'static str {
        match self {
            RestError::EncodedSeparator => "ENCODED_SEPARATOR",
            RestError::DotSegment => "DOT_SEGMENT",
            RestError::Backslash => "BACKSLASH",
            RestError::ControlCharacter => "CONTROL_CHARACTER",
            RestError::BadEscape => "BAD_ESCAPE",
        }
    }
}

impl std::fmt::Display for RestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RestError::EncodedSeparator => "encoded `/` or `\\` (%2F, %5C) are not forwarded",
            RestError::DotSegment => "`.` and `..` segments (raw or encoded) are not forwarded",
            RestError::Backslash => "`\\` is not forwarded",
            RestError::ControlCharacter => "control characters are not forwarded",
            RestError::BadEscape => "double-encoded or broken `%` escapes are not forwarded",
        })
    }
}

impl std::error::Error for RestError {}

fn hex_digit(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Whether the `{rest}` of a gateway path (after `/x/{module}/{functionality}/`, as the
/// runtime's URL parser left it) may be forwarded: refused if an origin could read it as a
/// path other than the one checked (see [`RestError`]). Query strings are not inspected.
pub fn check_rest(rest: &str) -> Result<(), RestError> {
    let b = rest.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => return Err(RestError::Backslash),
            c if c < 0x20 || c == 0x7f => return Err(RestError::ControlCharacter),
            b'%' => {
                let (Some(hi), Some(lo)) = (
                    b.get(i + 1).copied().and_then(hex_digit),
                    b.get(i + 2).copied().and_then(hex_digit),
                ) else {
                    return Err(RestError::BadEscape);
                };
                match hi << 4 | lo {
                    b'/' | b'\\' => return Err(RestError::EncodedSeparator),
                    c if c < 0x20 || c == 0x7f => return Err(RestError::ControlCharacter),
                    b'%' if b.get(i + 3).copied().and_then(hex_digit).is_some()
                        && b.get(i + 4).copied().and_then(hex_digit).is_some() =>
                    {
                        return Err(RestError::BadEscape)
                    }
                    _ => {}
                }
                i += 3;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    for segment in rest.split('/') {
        // Judged as an origin may read it: escapes decoded (once: double encoding is refused
        // above), then path parameters stripped (`..;jsessionid=x` and `.%3b` are `..`/`.`).
        let decoded = percent_decode_once(segment.as_bytes());
        let name = decoded.split(|&b| b == b';').next().unwrap_or_default();
        if name == b"." || name == b".." {
            return Err(RestError::DotSegment);
        }
    }
    Ok(())
}

/// Percent-decodes valid `%XX` escapes once, as an origin reads a path; any other `%` is kept
/// as it is ([`check_rest`] refuses those before it decodes).
pub fn percent_decode_once(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if let (Some(hi), Some(lo)) = (
                b.get(i + 1).copied().and_then(hex_digit),
                b.get(i + 2).copied().and_then(hex_digit),
            ) {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

fn is_hop_by_hop_or_internal(n: &str) -> bool {
    n.starts_with("x-keygate-")
        || n.starts_with("cf-")
        || matches!(
            n,
            "x-publishable-key"
                | "host"
                | "connection"
                | "keep-alive"
                | "proxy-connection"
                | "proxy-authorization"
                | "te"
                | "trailer"
                | "transfer-encoding"
                | "upgrade"
                | "content-length"
        )
}

/// Whether an incoming request header is passed on to the origin: not the key, not
/// `x-keygate-*` (which the edge sets), not hop-by-hop ones, and `Cookie` only when the
/// workspace forwards cookies.
pub fn forwards_request_header(name: &str, forward_cookies: bool) -> bool {
    let n = name.to_ascii_lowercase();
    !is_hop_by_hop_or_internal(&n) && (forward_cookies || n != "cookie")
}

/// Whether a header of the origin's answer is passed back to the caller: `Set-Cookie` only
/// when the workspace forwards cookies (the edge's host is shared by every workspace).
pub fn returns_response_header(name: &str, forward_cookies: bool) -> bool {
    let n = name.to_ascii_lowercase();
    forward_cookies || !matches!(n.as_str(), "set-cookie" | "set-cookie2")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn req(path: &str) -> ForwardedRequest<'_> {
        ForwardedRequest {
            method: "POST",
            path_and_query: path,
            workspace_id: "w1",
            module: "billing",
            functionality: "charge",
        }
    }

    #[test]
    fn origin_verifies_what_the_edge_signed() {
        let key = workspace_signing_key(b"edge-secret", "w1");
        let header = sign(&key, 1000, &req("/v1/charge?x=1"));
        assert!(verify(&key, &header, &req("/v1/charge?x=1"), 1010));
        assert!(!verify(&key, &header, &req("/v1/refund?x=1"), 1010));
        assert!(!verify(
            &key,
            &header,
            &req("/v1/charge?x=1"),
            1000 + MAX_CLOCK_SKEW_SECS + 1
        ));
        let other = workspace_signing_key(b"edge-secret", "w2");
        assert_ne!(key, other);
        assert!(!verify(&other, &header, &req("/v1/charge?x=1"), 1010));
        assert!(!verify(&key, "t=1000", &req("/v1/charge?x=1"), 1010));
        assert!(!verify(&key, "garbage", &req("/v1/charge?x=1"), 1010));
    }

    #[test]
    fn timestamps_near_the_ends_of_u64_neither_overflow_nor_verify() {
        let key = workspace_signing_key(b"edge-secret", "w1");
        let r = req("/");
        for (ts, now) in [
            (u64::MAX, 1_000),
            (u64::MAX, u64::MAX - MAX_CLOCK_SKEW_SECS - 1),
            (0, u64::MAX),
            (u64::MAX - 1, 0),
        ] {
            let header = sign(&key, ts, &r);
            assert!(!verify(&key, &header, &r, now), "t={ts} now={now}");
        }
        // At the very end of time both sides agree, without overflowing.
        let header = sign(&key, u64::MAX, &r);
        assert!(verify(&key, &header, &r, u64::MAX));
        assert!(verify(&key, &header, &r, u64::MAX - MAX_CLOCK_SKEW_SECS));
        assert!(!verify(&key, "t=18446744073709551616,v1=00", &r, 0));
        assert!(!verify(
            &key,
            &format!("t={},v1={}", "9".repeat(30), "0".repeat(64)),
            &r,
            0
        ));
    }

    #[test]
    fn headers_are_parsed_strictly() {
        let tag = "ab".repeat(32);
        for bad in [
            String::new(),
            "t=1".into(),
            format!("v1={tag}"),
            format!("t=1,t=2,v1={tag}"),
            format!("t=-1,v1={tag}"),
            format!("t=+1,v1={tag}"),
            format!("t=1,v1={}", "ab".repeat(31)),
            format!("t=1,v1=bad kid:{tag}"),
            format!("t=1,v1=:{tag}"),
            format!("t=1,v1={tag},="),
            format!("t=1,v1={tag},junk"),
            format!("t=1{}", format!(",v1={tag}").repeat(MAX_SIGNATURES + 1)),
            format!("t=1,v1={tag},x={}", "a".repeat(MAX_SIGNATURE_HEADER_LEN)),
        ] {
            assert_eq!(parse_signature_header(&bad), None, "{bad}");
        }
        let header = format!("t=7, v1=k1:{tag},v1={tag},v2=future");
        let p = parse_signature_header(&header).unwrap();
        assert_eq!(p.timestamp, 7);
        assert_eq!(p.signatures.len(), 2);
        assert_eq!(p.signatures[0].0, Some("k1"));
        assert_eq!(p.signatures[1].0, None);
    }

    #[test]
    fn during_an_overlap_either_secret_verifies_and_afterwards_only_the_new_one() {
        let old = GatewaySecret::generate();
        let new = GatewaySecret::generate();
        assert_ne!(old.kid(), new.kid());
        assert_ne!(old.expose(), new.expose());
        assert_eq!(new.expose().len(), 64);
        let r = req("/v1/charge");
        let both = sign_with(&[new.clone(), old.clone()], 1000, &r);
        assert!(both.starts_with(&format!("t=1000,v1={}:", new.kid())));
        assert!(verify_any(std::slice::from_ref(&old), &both, &r, 1000));
        assert!(verify_any(std::slice::from_ref(&new), &both, &r, 1000));
        assert!(verify(old.expose(), &both, &r, 1000));
        let after = sign_with(std::slice::from_ref(&new), 1000, &r);
        assert!(!verify_any(std::slice::from_ref(&old), &after, &r, 1000));
        assert!(verify_any(&[old.clone(), new.clone()], &after, &r, 1000));
        // A signature naming one kid is not tried against another kid's secret.
        let renamed = GatewaySecret::new(old.kid(), new.expose()).unwrap();
        assert!(!verify_any(
            &[renamed],
            &after.replace(new.kid(), "someotherkid"),
            &r,
            1000
        ));
        assert!(!format!("{new:?}").contains(new.expose()));
    }

    #[test]
    fn sealed_secrets_open_only_for_their_workspace_and_edge_secret() {
        let s = GatewaySecret::generate();
        let edge = b"edge-secret-edge-secret-edge-secret!";
        let sealed = seal_for_edge(edge, "w1", &s, None);
        assert!(!sealed.sealed.contains(s.expose()));
        assert_eq!(open_at_edge(&[edge], "w1", &sealed), Some(s.clone()));
        assert_eq!(
            open_at_edge(&[b"other", edge], "w1", &sealed),
            Some(s.clone())
        );
        assert_eq!(open_at_edge(&[b"other"], "w1", &sealed), None);
        assert_eq!(open_at_edge(&[edge], "w2", &sealed), None);
        let mut renamed = sealed.clone();
        renamed.kid = "another".into();
        assert_eq!(open_at_edge(&[edge], "w1", &renamed), None);
        let mut tampered = sealed.clone();
        tampered.sealed.replace_range(30..32, "00");
        if tampered != sealed {
            assert_eq!(open_at_edge(&[edge], "w1", &tampered), None);
        }
        let mut junk = sealed.clone();
        junk.sealed = "zz".into();
        assert_eq!(open_at_edge(&[edge], "w1", &junk), None);
    }

    #[test]
    fn the_edge_signs_with_live_secrets_or_the_derived_key_and_never_falls_back_silently() {
        let edge: &[u8] = b"edge-secret-edge-secret-edge-secret!";
        let (old, new) = (GatewaySecret::generate(), GatewaySecret::generate());
        let sealed = vec![
            seal_for_edge(edge, "w1", &new, None),
            seal_for_edge(edge, "w1", &old, Some(2000)),
        ];
        let r = req("/");
        let during = Signer::for_record(&[edge], "w1", &sealed, 1999).unwrap();
        let h = during.sign(1999, &r);
        assert!(verify_any(std::slice::from_ref(&old), &h, &r, 1999));
        assert!(verify_any(std::slice::from_ref(&new), &h, &r, 1999));
        let after = Signer::for_record(&[edge], "w1", &sealed, 2000).unwrap();
        let h = after.sign(2000, &r);
        assert!(!verify_any(std::slice::from_ref(&old), &h, &r, 2000));
        assert!(verify_any(std::slice::from_ref(&new), &h, &r, 2000));
        // No secrets: the derived key, as before.
        let legacy = Signer::for_record(&[edge], "w1", &[], 5).unwrap();
        assert!(verify(
            &workspace_signing_key(edge, "w1"),
            &legacy.sign(5, &r),
            &r,
            5
        ));
        // Secrets the edge cannot open, or none live: refuse, never the derived key.
        assert!(Signer::for_record(&[b"wrong"], "w1", &sealed, 1999).is_err());
        assert!(Signer::for_record(&[edge], "w1", &sealed[1..], 2000).is_err());
    }

    #[test]
    fn rest_paths_that_could_mean_another_path_are_refused() {
        use RestError::*;
        for ok in [
            "",
            "v1/charges/42",
            "a/b.c/..d/...",
            "files/%20name",
            "a%2Eb",
            "a;b=1",
            "caf%C3%A9",
            "a//b",
            "x/",
        ] {
            assert_eq!(check_rest(ok), Ok(()), "{ok}");
        }
        for (bad, err) in [
            ("..%2F..%2Fadmin", EncodedSeparator),
            ("a%2fb", EncodedSeparator),
            ("a%5Cb", EncodedSeparator),
            ("a%5cb", EncodedSeparator),
            ("a\\b", Backslash),
            ("..", DotSegment),
            ("a/../b", DotSegment),
            ("a/./b", DotSegment),
            ("%2e%2E/b", DotSegment),
            (".%2e", DotSegment),
            ("%2E", DotSegment),
            ("a/..;x=1/b", DotSegment),
            ("a/%2e%2e;/b", DotSegment),
            (".%3b", DotSegment), // found by `cargo xtask fuzz`: `.;` once decoded
            ("..%3Bx=1/a", DotSegment),
            ("%2e%3B", DotSegment),
            ("a%00b", ControlCharacter),
            ("a%0Db", ControlCharacter),
            ("a%7fb", ControlCharacter),
            ("a\nb", ControlCharacter),
            ("%252e%252e/x", BadEscape),
            ("%252F", BadEscape),
            ("a%zz", BadEscape),
            ("a%2", BadEscape),
            ("a%", BadEscape),
        ] {
            assert_eq!(check_rest(bad), Err(err), "{bad}");
        }
    }

    #[test]
    fn cookies_cross_only_when_the_workspace_opts_in() {
        for (name, forward) in [("Cookie", false), ("cookie", false)] {
            assert!(!forwards_request_header(name, forward));
            assert!(forwards_request_header(name, true));
        }
        for name in ["Set-Cookie", "set-cookie", "SET-COOKIE2"] {
            assert!(!returns_response_header(name, false), "{name}");
            assert!(returns_response_header(name, true), "{name}");
        }
        assert!(returns_response_header("content-type", false));
        assert!(forwards_request_header("content-type", false));
        assert!(forwards_request_header("authorization", false));
        for h in [
            "X-Keygate-Workspace",
            "x-publishable-key",
            "Host",
            "Connection",
            "cf-ray",
        ] {
            assert!(!forwards_request_header(h, true), "{h}");
        }
    }

    proptest! {
        #[test]
        fn verify_never_panics_and_rejects_garbage(header in "\\PC{0,200}", now in any::<u64>()) {
            let key = workspace_signing_key(b"k", "w");
            let _ = verify(&key, &header, &req("/"), now);
            let _ = verify_any(&[GatewaySecret::generate()], &header, &req("/"), now);
        }

        #[test]
        fn forwarded_rest_never_hides_a_separator_or_dot_segment(rest in "[a-zA-Z0-9./%;\\\\_-]{0,24}") {
            if check_rest(&rest).is_ok() {
                // Decoding once (what an origin does) yields no backslash and no new `/`...
                let once = percent_decode_once(rest.as_bytes());
                prop_assert!(!once.contains(&b'\\'));
                prop_assert_eq!(once.iter().filter(|&&b| b == b'/').count(), rest.matches('/').count());
                // ...and no dot segment, even after a second decoding.
                let twice = percent_decode_once(&once);
                for seg in twice.split(|&b| b == b'/') {
                    let name = seg.split(|&b| b == b';').next().unwrap_or_default();
                    prop_assert!(name != b"." && name != b"..", "{rest}");
                }
            }
        }
    }
}
