//! Gateway signatures: how a workspace's origin server knows a request came through the edge
//! and passed the check.
//!
//! The edge signs each forwarded request with a per-workspace key derived from the edge
//! secret ([`workspace_signing_key`]); the control plane shows the same derived key to the
//! workspace's admins, so neither side stores it and the edge secret never leaves keygate.
//! The signature covers the timestamp, method, path (with query), workspace, module and
//! functionality; bodies stream through unsigned (TLS protects them in transit).
//!
//! Header: `x-keygate-gateway-signature: t=<unix seconds>,v1=<hex hmac>`.

use hmac::{Hmac, Mac};
use sha2::Sha256;

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

/// The per-workspace signing key: HMAC-SHA256(edge secret, label + workspace id), as hex.
pub fn workspace_signing_key(edge_secret: &[u8], workspace_id: &str) -> String {
    let mut m = HmacSha256::new_from_slice(edge_secret).expect("HMAC takes keys of any length");
    m.update(b"keygate-gateway-key-v1\n");
    m.update(workspace_id.as_bytes());
    hex::encode(m.finalize().into_bytes())
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
    /// Module.
    pub module: &'a str,
    /// Functionality.
    pub functionality: &'a str,
}

fn mac(signing_key: &str, timestamp: u64, req: &ForwardedRequest<'_>) -> HmacSha256 {
    let mut m = HmacSha256::new_from_slice(signing_key.as_bytes()).expect("any length");
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

/// The signature header value for a forwarded request.
pub fn sign(signing_key: &str, timestamp: u64, req: &ForwardedRequest<'_>) -> String {
    let tag = hex::encode(mac(signing_key, timestamp, req).finalize().into_bytes());
    format!("t={timestamp},v1={tag}")
}

/// Verifies a signature header at `now` (Unix seconds); what an origin server runs.
pub fn verify(signing_key: &str, header: &str, req: &ForwardedRequest<'_>, now: u64) -> bool {
    let mut timestamp = None;
    let mut tag = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", v)) => timestamp = v.parse::<u64>().ok(),
            Some(("v1", v)) => tag = Some(v),
            _ => return false,
        }
    }
    let (Some(ts), Some(tag)) = (timestamp, tag) else {
        return false;
    };
    if ts + MAX_CLOCK_SKEW_SECS < now || ts > now + MAX_CLOCK_SKEW_SECS {
        return false;
    }
    let mut raw = [0u8; 32];
    if hex::decode_to_slice(tag, &mut raw).is_err() {
        return false;
    }
    mac(signing_key, ts, req).verify_slice(&raw).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req<'a>(path: &'a str) -> ForwardedRequest<'a> {
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
}
