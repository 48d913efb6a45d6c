//! The signed pull: on a miss (no cache entry, nothing in KV) the edge asks the control plane
//! for the key's record.
//!
//! The contract (types and path in `keygate_shared::record`):
//!
//! ```text
//! GET {KEYGATE_CONTROL_URL}/api/v1/edge/records/{64 hex digest}
//! x-keygate-timestamp: <unix seconds>
//! x-keygate-nonce:     <32 hex chars, fresh per pull>
//! x-keygate-signature: hex HMAC-SHA256, signing::sign(secret, Purpose::Pull, ts, nonce, path)
//!                      where path = "/api/v1/edge/records/{hex}" (no host, no query)
//!
//! 200 OK, body {"record": EdgeRecord | null}
//! x-keygate-timestamp: <unix seconds of the reply>
//! x-keygate-nonce:     <the request's nonce, echoed>
//! x-keygate-signature: signing::sign(secret, Purpose::PullReply, ts, nonce, exact body bytes)
//! ```
//!
//! Anything else (another status, a bad signature, a nonce that is not ours, a record for
//! another digest, a timeout) counts as "unknown" for this check and is cached negatively for
//! `KEYGATE_NEGATIVE_CACHE_TTL_MS`: the edge fails closed. Pulled records go to the isolate
//! cache only, never to KV: KV is written by sync alone, in outbox order, so a slow pull can
//! never overwrite a newer revocation there.

use std::fmt;

use keygate_shared::key::KeyDigest;
use keygate_shared::record::{pull_path, EdgeRecord, PullReply};
use keygate_shared::signing::{self, Purpose, SignatureError};

/// A pull request's signed parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedPull {
    /// Path on the control plane (also what is signed).
    pub path: String,
    /// Unix seconds.
    pub timestamp: u64,
    /// Fresh nonce; the reply must echo it.
    pub nonce: String,
    /// Hex HMAC tag.
    pub signature: String,
}

/// Signs a pull for `digest` at `now_secs` with `nonce`.
pub fn sign_pull(secret: &[u8], digest: &KeyDigest, now_secs: u64, nonce: String) -> SignedPull {
    let path = pull_path(digest);
    let signature = signing::sign(secret, Purpose::Pull, now_secs, &nonce, path.as_bytes());
    SignedPull {
        path,
        timestamp: now_secs,
        nonce,
        signature,
    }
}

/// Why a pull gave no usable answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PullError {
    /// No control URL or no secret configured.
    NotConfigured,
    /// This isolate is over its pull rate.
    RateLimited,
    /// The control plane could not be reached or took too long.
    Unreachable,
    /// It answered with another status than 200.
    Status(u16),
    /// The reply's signature, freshness or nonce is wrong.
    Signature(SignatureError),
    /// The reply was signed but is not a `PullReply`, or names another digest.
    BadReply,
}

impl fmt::Display for PullError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PullError::NotConfigured => f.write_str("pulls are not configured"),
            PullError::RateLimited => f.write_str("pull rate limit reached"),
            PullError::Unreachable => f.write_str("control plane unreachable or too slow"),
            PullError::Status(s) => write!(f, "control plane answered {s}"),
            PullError::Signature(e) => write!(f, "pull reply refused: {e}"),
            PullError::BadReply => f.write_str("pull reply is not a record for this key"),
        }
    }
}

/// The signature headers of a reply, as received.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReplyHeaders<'a> {
    /// `x-keygate-timestamp`.
    pub timestamp: Option<&'a str>,
    /// `x-keygate-nonce`.
    pub nonce: Option<&'a str>,
    /// `x-keygate-signature`.
    pub signature: Option<&'a str>,
    /// `x-keygate-key-id` (optional: replies from older control planes lack it).
    pub key_id: Option<&'a str>,
}

/// Verifies a `200` reply to `pull` and returns the record it carries (`None`: unknown key).
pub fn open_reply(
    secrets: &[&[u8]],
    digest: &KeyDigest,
    pull: &SignedPull,
    headers: ReplyHeaders<'_>,
    body: &[u8],
    now_secs: u64,
) -> Result<Option<EdgeRecord>, PullError> {
    let malformed = PullError::Signature(SignatureError::Malformed);
    let (Some(ts), Some(nonce), Some(tag)) = (headers.timestamp, headers.nonce, headers.signature)
    else {
        return Err(malformed);
    };
    if nonce != pull.nonce {
        return Err(PullError::Signature(SignatureError::Replayed));
    }
    let ts = signing::parse_timestamp(ts).map_err(PullError::Signature)?;
    signing::verify_any(
        secrets,
        headers.key_id,
        Purpose::PullReply,
        ts,
        nonce,
        body,
        tag,
        now_secs,
    )
    .map_err(PullError::Signature)?;
    let reply: PullReply = serde_json::from_slice(body).map_err(|_| PullError::BadReply)?;
    match reply.record {
        Some(r) if r.key_digest != *digest => Err(PullError::BadReply),
        other => Ok(other),
    }
}

/// A token bucket: at most `rate` pulls per second per isolate, bursts up to `2 * rate`.
#[derive(Clone, Debug, Default)]
pub struct PullBudget {
    tokens_milli: u64,
    last_ms: u64,
}

impl PullBudget {
    /// Takes one pull from the budget at `now_ms`; `false` when spent.
    pub fn try_take(&mut self, now_ms: u64, rate_per_sec: u64) -> bool {
        let cap = rate_per_sec.saturating_mul(2).saturating_mul(1000);
        if self.last_ms == 0 {
            self.tokens_milli = cap;
        } else {
            let elapsed = now_ms.saturating_sub(self.last_ms);
            self.tokens_milli = self
                .tokens_milli
                .saturating_add(elapsed.saturating_mul(rate_per_sec))
                .min(cap);
        }
        self.last_ms = now_ms.max(1);
        if self.tokens_milli >= 1000 {
            self.tokens_milli -= 1000;
            true
        } else {
            false
        }
    }
}

#[cfg(target_arch = "wasm32")]
pub use runtime::pull;

#[cfg(target_arch = "wasm32")]
mod runtime {
    use std::cell::RefCell;
    use std::time::Duration;

    use futures_util::future::{select, Either};
    use keygate_shared::key::KeyDigest;
    use keygate_shared::random;
    use keygate_shared::record::EdgeRecord;
    use keygate_shared::signing::{
        self as signing, HEADER_KEY_ID, HEADER_NONCE, HEADER_SIGNATURE, HEADER_TIMESTAMP,
    };
    use worker::{Delay, Fetch, Headers, Method, Request, RequestInit};

    use super::{open_reply, sign_pull, PullBudget, PullError, ReplyHeaders};
    use crate::config::Config;
    use crate::http::now_ms;

    thread_local! {
        static BUDGET: RefCell<PullBudget> = RefCell::new(PullBudget::default());
    }

    /// Pulls the record for `digest` from the control plane, within the configured timeout.
    pub async fn pull(
        config: &Config,
        digest: &KeyDigest,
    ) -> Result<Option<EdgeRecord>, PullError> {
        let (Some(base), Some(secret)) = (config.control_url.as_deref(), config.secret()) else {
            return Err(PullError::NotConfigured);
        };
        let now = now_ms();
        if !BUDGET.with(|b| b.borrow_mut().try_take(now, config.pulls_per_sec)) {
            return Err(PullError::RateLimited);
        }
        let signed = sign_pull(secret, digest, now / 1000, random::hex_token());
        let headers = Headers::new();
        let set = |k: &str, v: &str| headers.set(k, v).map_err(|_| PullError::Unreachable);
        set(HEADER_TIMESTAMP, &signed.timestamp.to_string())?;
        set(HEADER_NONCE, &signed.nonce)?;
        set(HEADER_SIGNATURE, &signed.signature)?;
        set(HEADER_KEY_ID, &signing::key_id(secret))?;
        set("accept", "application/json")?;
        let mut init = RequestInit::new();
        init.with_method(Method::Get).with_headers(headers);
        let request = Request::new_with_init(&format!("{base}{}", signed.path), &init)
            .map_err(|_| PullError::Unreachable)?;
        let fetch = Fetch::Request(request);
        let send = Box::pin(async {
            let mut resp = fetch.send().await.map_err(|_| PullError::Unreachable)?;
            if resp.status_code() != 200 {
                return Err(PullError::Status(resp.status_code()));
            }
            let body = resp.bytes().await.map_err(|_| PullError::Unreachable)?;
            let h = resp.headers();
            let get = |name| h.get(name).ok().flatten();
            let (ts, nonce, sig, kid) = (
                get(HEADER_TIMESTAMP),
                get(HEADER_NONCE),
                get(HEADER_SIGNATURE),
                get(HEADER_KEY_ID),
            );
            open_reply(
                &config.secrets(),
                digest,
                &signed,
                ReplyHeaders {
                    timestamp: ts.as_deref(),
                    nonce: nonce.as_deref(),
                    signature: sig.as_deref(),
                    key_id: kid.as_deref(),
                },
                &body,
                now_ms() / 1000,
            )
        });
        let timeout = Delay::from(Duration::from_millis(config.pull_timeout_ms));
        let outcome = select(send, timeout).await;
        match outcome {
            Either::Left((result, _)) => result,
            Either::Right(_) => Err(PullError::Unreachable),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keygate_shared::key::digest;
    use keygate_shared::record::KeyState;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const NOW: u64 = 1_800_000_000;

    fn record(key: &str) -> EdgeRecord {
        EdgeRecord::new(digest(key), "w1".into(), KeyState::Active, 3)
    }

    /// The headers of a reply at `ts` echoing `nonce`, signed `signature`, naming no key.
    fn signed_by<'a>(ts: &'a str, nonce: &'a str, signature: &'a str) -> ReplyHeaders<'a> {
        ReplyHeaders {
            timestamp: Some(ts),
            nonce: Some(nonce),
            signature: Some(signature),
            key_id: None,
        }
    }

    fn reply(body: &str, nonce: &str) -> (String, String) {
        let sig = signing::sign(SECRET, Purpose::PullReply, NOW, nonce, body.as_bytes());
        (body.to_owned(), sig)
    }

    #[test]
    fn pulls_are_signed_over_the_path() {
        let d = digest("k");
        let p = sign_pull(SECRET, &d, NOW, "nonce-0001".into());
        assert_eq!(p.path, format!("/api/v1/edge/records/{}", d.to_hex()));
        assert!(signing::verify(
            SECRET,
            Purpose::Pull,
            NOW,
            "nonce-0001",
            p.path.as_bytes(),
            &p.signature,
            NOW
        )
        .is_ok());
    }

    #[test]
    fn a_signed_reply_echoing_our_nonce_is_opened() {
        let d = digest("k");
        let p = sign_pull(SECRET, &d, NOW, "nonce-0001".into());
        let body = serde_json::to_string(&PullReply {
            record: Some(record("k")),
        })
        .unwrap();
        let (body, sig) = reply(&body, "nonce-0001");
        let ts = NOW.to_string();
        let h = signed_by(&ts, "nonce-0001", &sig);
        assert_eq!(
            open_reply(&[SECRET], &d, &p, h, body.as_bytes(), NOW),
            Ok(Some(record("k")))
        );
        // During an overlap the reply may be signed with the previous secret, named or not;
        // after it, a reply naming a retired key is refused as such.
        let kid = signing::key_id(SECRET);
        let named = ReplyHeaders {
            key_id: Some(&kid),
            ..h
        };
        let other: &[u8] = b"the-next-edge-secret-0123456789ab";
        assert_eq!(
            open_reply(&[other, SECRET], &d, &p, named, body.as_bytes(), NOW),
            Ok(Some(record("k")))
        );
        assert_eq!(
            open_reply(&[other, SECRET], &d, &p, h, body.as_bytes(), NOW),
            Ok(Some(record("k")))
        );
        assert_eq!(
            open_reply(&[other], &d, &p, named, body.as_bytes(), NOW),
            Err(PullError::Signature(SignatureError::UnknownKey))
        );
        let (null_body, null_sig) = reply(r#"{"record":null}"#, "nonce-0001");
        let h = ReplyHeaders {
            signature: Some(&null_sig),
            ..h
        };
        assert_eq!(
            open_reply(&[SECRET], &d, &p, h, null_body.as_bytes(), NOW),
            Ok(None)
        );
    }

    #[test]
    fn forged_replayed_or_mismatched_replies_are_refused() {
        let d = digest("k");
        let p = sign_pull(SECRET, &d, NOW, "nonce-0001".into());
        let ts = NOW.to_string();
        let good = serde_json::to_string(&PullReply {
            record: Some(record("k")),
        })
        .unwrap();
        // Signed for another request's nonce.
        let (body, sig) = reply(&good, "nonce-0002");
        let h = signed_by(&ts, "nonce-0002", &sig);
        assert!(open_reply(&[SECRET], &d, &p, h, body.as_bytes(), NOW).is_err());
        // Signed with another secret.
        let forged = signing::sign(
            b"wrong",
            Purpose::PullReply,
            NOW,
            "nonce-0001",
            good.as_bytes(),
        );
        let h = signed_by(&ts, "nonce-0001", &forged);
        assert_eq!(
            open_reply(&[SECRET], &d, &p, h, good.as_bytes(), NOW),
            Err(PullError::Signature(SignatureError::BadSignature))
        );
        // A genuine record, but for another key.
        let other = serde_json::to_string(&PullReply {
            record: Some(record("other")),
        })
        .unwrap();
        let (body, sig) = reply(&other, "nonce-0001");
        let h = signed_by(&ts, "nonce-0001", &sig);
        assert_eq!(
            open_reply(&[SECRET], &d, &p, h, body.as_bytes(), NOW),
            Err(PullError::BadReply)
        );
        // Signed as a sync push, not as a pull reply.
        let wrong_purpose =
            signing::sign(SECRET, Purpose::Sync, NOW, "nonce-0001", good.as_bytes());
        let h = signed_by(&ts, "nonce-0001", &wrong_purpose);
        assert!(open_reply(&[SECRET], &d, &p, h, good.as_bytes(), NOW).is_err());
        assert!(open_reply(
            &[SECRET],
            &d,
            &p,
            ReplyHeaders::default(),
            good.as_bytes(),
            NOW
        )
        .is_err());
    }

    #[test]
    fn the_budget_limits_pull_bursts() {
        let mut b = PullBudget::default();
        let taken = (0..100).filter(|_| b.try_take(1_000, 10)).count();
        assert_eq!(taken, 20, "burst of 2 * rate");
        assert!(!b.try_take(1_050, 10));
        assert!(b.try_take(1_100, 10), "refills at rate per second");
    }
}
