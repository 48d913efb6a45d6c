//! `POST /__keygate/sync`: the control plane pushes records; the edge stores the newer ones.
//!
//! A push is accepted only if it is signed with the edge secret
//! (`keygate_shared::signing`, [`Purpose::Sync`], over timestamp, nonce and the exact body),
//! fresh (within `MAX_CLOCK_SKEW_SECS`), and its nonce was not seen in the last
//! `NONCE_TTL_SECS` (nonces are remembered in KV with that TTL). Each record is then stored
//! only if `record::should_apply` prefers it over the stored one (newer, and never a revoked
//! key made active again), both in this location's KV and in the global change log
//! (`crate::changes`, which may know of a revocation delivered to another location), so
//! retried, duplicated and reordered pushes converge. The change log takes the records before
//! the answer, a `SyncAck` with the counts: an acknowledged push is known to every location.
//!
//! Caveats the deliverer must respect: the version check is a read then a write on KV, not
//! atomic, so two pushes touching the same key must not be in flight at once (deliver in
//! outbox order, one batch at a time); and KV nonce memory is per location, so a replay sent to
//! another location within KV's propagation delay is only stopped by the version check (it
//! can re-apply nothing older than what is stored).

use keygate_shared::record::{SyncBatch, SYNC_PATH};
use keygate_shared::signing::{self, Purpose, SignatureError};

use crate::error::ApiError;

/// The route.
pub const PATH: &str = SYNC_PATH;
/// Largest push accepted.
pub const MAX_SYNC_BODY: usize = 1024 * 1024;
/// Most records in one push.
pub const MAX_SYNC_RECORDS: usize = 1_000;

/// The signature headers of a push, as received.
#[derive(Clone, Copy, Debug, Default)]
pub struct SyncHeaders<'a> {
    /// `x-keygate-timestamp`.
    pub timestamp: Option<&'a str>,
    /// `x-keygate-nonce`.
    pub nonce: Option<&'a str>,
    /// `x-keygate-signature`.
    pub signature: Option<&'a str>,
    /// `x-keygate-key-id` (optional: pushes from older control planes lack it).
    pub key_id: Option<&'a str>,
}

/// Checks a push's signature and freshness; returns its nonce (replay is checked by the
/// caller against KV).
pub fn authenticate<'a>(
    secrets: &[&[u8]],
    headers: SyncHeaders<'a>,
    body: &[u8],
    now_secs: u64,
) -> Result<&'a str, ApiError> {
    let malformed = || ApiError::signature(SignatureError::Malformed);
    let (Some(ts), Some(nonce), Some(tag)) = (headers.timestamp, headers.nonce, headers.signature)
    else {
        return Err(malformed());
    };
    let ts = signing::parse_timestamp(ts).map_err(ApiError::signature)?;
    signing::verify_any(
        secrets,
        headers.key_id,
        Purpose::Sync,
        ts,
        nonce,
        body,
        tag,
        now_secs,
    )
    .map_err(ApiError::signature)?;
    Ok(nonce)
}

/// Parses an authenticated push.
pub fn parse_batch(body: &[u8]) -> Result<SyncBatch, ApiError> {
    let batch: SyncBatch = serde_json::from_slice(body).map_err(ApiError::invalid_json)?;
    if batch.records.len() > MAX_SYNC_RECORDS {
        return Err(ApiError::new(
            413,
            "TOO_MANY_RECORDS",
            format!("a push carries at most {MAX_SYNC_RECORDS} records"),
        ));
    }
    Ok(batch)
}

#[cfg(target_arch = "wasm32")]
pub use runtime::handle;

#[cfg(target_arch = "wasm32")]
mod runtime {
    use std::rc::Rc;

    use keygate_shared::record::{
        should_apply, HeldRecord, RefusedRecord, SyncAck, REFUSED_UNSUPPORTED_FORMAT,
    };
    use keygate_shared::signing::{
        SignatureError, HEADER_KEY_ID, HEADER_NONCE, HEADER_SIGNATURE, HEADER_TIMESTAMP,
    };
    use worker::{Env, Request, Response};

    use super::{authenticate, parse_batch, SyncHeaders, MAX_SYNC_BODY};
    use crate::cache::{with_cache, Cached};
    use crate::changes;
    use crate::error::ApiError;
    use crate::http::{self, header, now_ms};
    use crate::store::Store;

    /// `POST /__keygate/sync`.
    pub async fn handle(mut req: Request, env: &Env) -> Result<Response, ApiError> {
        let config = http::config(env);
        let secrets = config.secrets();
        if secrets.is_empty() {
            return Err(ApiError::not_configured(
                "KEYGATE_EDGE_SECRET is missing or shorter than 32 bytes",
            ));
        }
        let body = http::read_body(&mut req, MAX_SYNC_BODY).await?;
        let (ts, nonce, sig, kid) = (
            header(&req, HEADER_TIMESTAMP),
            header(&req, HEADER_NONCE),
            header(&req, HEADER_SIGNATURE),
            header(&req, HEADER_KEY_ID),
        );
        let headers = SyncHeaders {
            timestamp: ts.as_deref(),
            nonce: nonce.as_deref(),
            signature: sig.as_deref(),
            key_id: kid.as_deref(),
        };
        let nonce = authenticate(&secrets, headers, &body, now_ms() / 1000)?;
        let store = Store::from_env(env)?;
        if store.nonce_seen(nonce).await? {
            return Err(ApiError::signature(SignatureError::Replayed));
        }
        store.remember_nonce(nonce).await?;
        let batch = parse_batch(&body)?;
        let mut ack = SyncAck::default();
        // Records KV should hold after this push: newer than its copy (`apply`), or equal to
        // it (an earlier attempt whose acknowledgement was lost).
        let mut candidates = Vec::new();
        for record in batch.records {
            if !record.format_supported() {
                worker::console_error!(
                    "keygate: refused record version {} in format {}",
                    record.version,
                    record.format
                );
                ack.refused.push(RefusedRecord {
                    key_digest: record.key_digest,
                    version: record.version,
                    reason: REFUSED_UNSUPPORTED_FORMAT.into(),
                });
                continue;
            }
            let stored = store
                .record(&record.key_digest)
                .await?
                .map(|r| r.precedence());
            let held = stored.map(|(version, _)| version);
            let apply = should_apply(stored, record.precedence());
            if apply || stored == Some(record.precedence()) {
                candidates.push((record, apply));
            } else {
                ack.skipped += 1;
                // Tell a control plane whose clock is behind which version to catch up past.
                if let Some(held) = held.filter(|v| *v > record.version) {
                    ack.held_newer.push(HeldRecord {
                        key_digest: record.key_digest,
                        version: held,
                    });
                }
            }
        }
        // The change log first: it is the authority (this location's KV may not have seen a
        // revocation delivered elsewhere yet), and an acknowledgement means every location
        // will honour the push within its view's maximum age, whatever its KV says.
        let superseded =
            changes::forward(env, candidates.iter().map(|(r, _)| r.clone()).collect()).await?;
        for (record, apply) in candidates {
            if !apply || superseded.contains(&record.key_digest) {
                ack.skipped += 1;
                continue;
            }
            store.put_record(&record).await?;
            let digest = record.key_digest;
            let compiled = Rc::new(record.compile());
            with_cache(|c| {
                c.offer(
                    digest,
                    Cached::Found(compiled),
                    now_ms(),
                    config.cache_ttl_ms,
                )
            });
            ack.applied += 1;
        }
        http::json(200, &ack)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const NOW: u64 = 1_800_000_000;

    fn headers<'a>(ts: &'a str, nonce: &'a str, sig: &'a str) -> SyncHeaders<'a> {
        SyncHeaders {
            timestamp: Some(ts),
            nonce: Some(nonce),
            signature: Some(sig),
            key_id: None,
        }
    }

    #[test]
    fn signed_fresh_pushes_are_authenticated() {
        let body = br#"{"records":[]}"#;
        let sig = signing::sign(SECRET, Purpose::Sync, NOW, "nonce-0001", body);
        let ts = NOW.to_string();
        assert_eq!(
            authenticate(&[SECRET], headers(&ts, "nonce-0001", &sig), body, NOW + 5),
            Ok("nonce-0001")
        );
    }

    #[test]
    fn forged_stale_and_malformed_pushes_are_refused() {
        let body = br#"{"records":[]}"#;
        let ts = NOW.to_string();
        let forged = signing::sign(b"not-the-secret", Purpose::Sync, NOW, "nonce-0001", body);
        let reason = |h, now| authenticate(&[SECRET], h, body, now).unwrap_err().reason;
        assert_eq!(
            reason(headers(&ts, "nonce-0001", &forged), NOW),
            "SIGNATURE_INVALID"
        );
        let good = signing::sign(SECRET, Purpose::Sync, NOW, "nonce-0001", body);
        assert_eq!(
            reason(headers(&ts, "nonce-0001", &good), NOW + 3_600),
            "SIGNATURE_STALE"
        );
        assert_eq!(
            reason(headers("soon", "nonce-0001", &good), NOW),
            "SIGNATURE_MALFORMED"
        );
        assert_eq!(reason(SyncHeaders::default(), NOW), "SIGNATURE_MALFORMED");
        let pull = signing::sign(SECRET, Purpose::Pull, NOW, "nonce-0001", body);
        assert_eq!(
            reason(headers(&ts, "nonce-0001", &pull), NOW),
            "SIGNATURE_INVALID"
        );
    }

    #[test]
    fn batches_are_parsed_strictly() {
        assert!(parse_batch(br#"{"records":[]}"#).is_ok());
        assert_eq!(parse_batch(b"{").unwrap_err().reason, "INVALID_JSON");
        // A newer control plane may add batch fields; this edge ignores them.
        assert!(parse_batch(br#"{"records":[],"x":1}"#).is_ok());
        assert_eq!(
            parse_batch(br#"{"x":1}"#).unwrap_err().reason,
            "INVALID_JSON"
        );
    }
}
