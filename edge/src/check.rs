//! `POST /v1/check`: is this publishable key allowed this (module, functionality), from this
//! origin?
//!
//! The order is the point: parse and checksum the key first (a malformed or invented key is
//! answered with no storage read at all), then this isolate's cache, then KV merged with what
//! the global change log taught this isolate (`crate::view`), then a signed pull from the
//! control plane. The router makes sure that view is fresh before any lookup. The verdict itself always comes from
//! `keygate_shared::check::check`, the same function the control plane calls.

use serde::Deserialize;
use serde_json::Value;

use crate::error::ApiError;

/// Largest check body accepted.
pub const MAX_CHECK_BODY: usize = 4 * 1024;
/// Header that may carry the key instead of the body.
pub const HEADER_PUBLISHABLE_KEY: &str = "x-publishable-key";
/// Response header naming where the record came from: `none` (malformed key, no lookup),
/// `cache`, `kv`, `changes` (the global change log, newer than KV), `pull` or `miss`
/// (nowhere). For operators and tests; reveals nothing the
/// verdict does not.
pub const HEADER_LOOKUP: &str = "x-keygate-lookup";

/// A parsed check request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckInput {
    /// The key from the body, else from the header; empty if neither had one.
    pub key: String,
    /// Module.
    pub module: String,
    /// Functionality.
    pub functionality: String,
}

#[derive(Deserialize)]
struct RawCheck {
    key: Option<Value>,
    module: Option<Value>,
    functionality: Option<Value>,
}

fn string_field(value: Option<Value>, name: &str) -> Result<Option<String>, ApiError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ApiError::invalid_field(name, "a string")),
    }
}

/// Parses a check body; `header_key` is the `X-Publishable-Key` header, if sent.
pub fn parse_check_body(
    body: &[u8],
    header_key: impl FnOnce() -> Option<String>,
) -> Result<CheckInput, ApiError> {
    if body.len() > MAX_CHECK_BODY {
        return Err(ApiError::payload_too_large(MAX_CHECK_BODY));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::invalid_json(
            "expected {\"key\", \"module\", \"functionality\"}",
        ));
    }
    // Straight into the struct (a non-object is a type error here, still INVALID_JSON);
    // fields stay loosely typed so a wrong type gets its own code.
    let raw: RawCheck = serde_json::from_slice(body).map_err(ApiError::invalid_json)?;
    let key = string_field(raw.key, "key")?
        .or_else(header_key)
        .ok_or_else(|| ApiError::missing_field("key"))?;
    let module =
        string_field(raw.module, "module")?.ok_or_else(|| ApiError::missing_field("module"))?;
    let functionality = string_field(raw.functionality, "functionality")?
        .ok_or_else(|| ApiError::missing_field("functionality"))?;
    Ok(CheckInput {
        key,
        module,
        functionality,
    })
}

/// Where a record came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The key did not parse: nothing was looked up.
    NotLookedUp,
    /// This isolate's cache.
    Cache,
    /// KV.
    Kv,
    /// The global change log (this location's KV was missing it or held an older copy).
    Changes,
    /// A pull from the control plane.
    Pull,
    /// Found nowhere.
    Miss,
}

impl Source {
    /// Value of the [`HEADER_LOOKUP`] header.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::NotLookedUp => "none",
            Source::Cache => "cache",
            Source::Kv => "kv",
            Source::Changes => "changes",
            Source::Pull => "pull",
            Source::Miss => "miss",
        }
    }
}

#[cfg(target_arch = "wasm32")]
pub use runtime::{decide, handle, lookup, Decision};

#[cfg(target_arch = "wasm32")]
mod runtime {
    use std::rc::Rc;

    use keygate_shared::check::{check, CheckRequest};
    use keygate_shared::key::{self, KeyDigest, KeyKind};
    use keygate_shared::record::CompiledRecord;
    use keygate_shared::verdict::Verdict;
    use worker::{web_sys, Env};

    use super::{parse_check_body, Source, HEADER_LOOKUP, HEADER_PUBLISHABLE_KEY, MAX_CHECK_BODY};
    use crate::cache::{with_cache, Cached};
    use crate::config::Config;
    use crate::error::ApiError;
    use crate::http::{self, now_ms, raw_header};
    use crate::store::Store;
    use crate::view::with_view;
    use crate::{cors, pull};

    /// A verdict with the record it was decided on.
    pub struct Decision {
        /// What `keygate_shared::check` decided.
        pub verdict: Verdict,
        /// The record, when one was found.
        pub record: Option<Rc<CompiledRecord>>,
        /// Where the record came from.
        pub source: Source,
    }

    /// The record for `digest`: isolate cache, then KV, then a pull.
    pub async fn lookup(
        env: &Env,
        config: &Config,
        digest: &KeyDigest,
    ) -> Result<(Option<Rc<CompiledRecord>>, Source), ApiError> {
        match with_cache(|c| c.get(digest, now_ms())) {
            Some(Cached::Found(r)) => return Ok((Some(r), Source::Cache)),
            Some(Cached::Absent) => return Ok((None, Source::Cache)),
            None => {}
        }
        let store = Store::from_env(env)?;
        // KV's copy may be older than what the change log taught this isolate: merge.
        let stored = store.record(digest).await?.map(|r| Rc::new(r.compile()));
        if let Some(compiled) = with_view(|v| v.merge(digest, stored)) {
            let learned = with_view(|v| v.get(digest).is_some_and(|l| Rc::ptr_eq(l, &compiled)));
            with_cache(|c| {
                c.offer(
                    *digest,
                    Cached::Found(compiled.clone()),
                    now_ms(),
                    config.cache_ttl_ms,
                )
            });
            let source = if learned { Source::Changes } else { Source::Kv };
            return Ok((Some(compiled), source));
        }
        let (found, source) = match pull::pull(config, digest).await {
            // (The view holds nothing for this key, or the merge above had found it.)
            Ok(Some(record)) => (Some(Rc::new(record.compile())), Source::Pull),
            Ok(None) => (None, Source::Pull),
            Err(e) => {
                if e != pull::PullError::NotConfigured {
                    worker::console_warn!("keygate: pull for {digest} failed: {e}");
                }
                (None, Source::Miss)
            }
        };
        let (value, ttl) = match &found {
            Some(r) => (Cached::Found(r.clone()), config.cache_ttl_ms),
            None => (Cached::Absent, config.negative_cache_ttl_ms),
        };
        with_cache(|c| c.offer(*digest, value, now_ms(), ttl));
        Ok((found, source))
    }

    /// Decides a check: parse the key (no lookup if it is malformed), find its record, and
    /// let `keygate_shared::check` decide.
    pub async fn decide(
        env: &Env,
        config: &Config,
        key: &str,
        module: &str,
        functionality: &str,
        origin: Option<&str>,
    ) -> Result<Decision, ApiError> {
        let request = CheckRequest {
            key,
            module,
            functionality,
            origin,
        };
        let Ok(parsed) = key::parse_as(key, KeyKind::Publishable) else {
            return Ok(Decision {
                verdict: check(&request, None),
                record: None,
                source: Source::NotLookedUp,
            });
        };
        let (record, source) = lookup(env, config, &parsed.digest()).await?;
        Ok(Decision {
            verdict: check(&request, record.as_deref()),
            record,
            source,
        })
    }

    /// `POST /v1/check`, on the JavaScript request (no `worker::Request` conversion).
    pub async fn handle(req: &web_sys::Request, env: &Env) -> Result<web_sys::Response, ApiError> {
        let body = http::read_raw_body(req, MAX_CHECK_BODY).await?;
        let input = parse_check_body(&body, || raw_header(req, HEADER_PUBLISHABLE_KEY))?;
        let origin = raw_header(req, "origin");
        let config = http::config(env);
        let d = decide(
            env,
            &config,
            &input.key,
            &input.module,
            &input.functionality,
            origin.as_deref(),
        )
        .await?;
        let body = serde_json::to_string(&d.verdict.response())
            .map_err(|_| ApiError::new(500, "INTERNAL", "encoding failed"))?;
        let resp = http::json_raw(d.verdict.http_status(), &body)?;
        resp.headers()
            .set(HEADER_LOOKUP, d.source.as_str())
            .map_err(worker::Error::from)?;
        http::with_cors_raw(
            &resp,
            cors::allowed_origin(origin.as_deref(), d.record.as_deref()),
        )?;
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_and_header_keys_are_accepted() {
        let input = parse_check_body(
            br#"{"key":"pk_x","module":"m","functionality":"f"}"#,
            || None,
        )
        .unwrap();
        assert_eq!(input.key, "pk_x");
        let input = parse_check_body(br#"{"module":"m","functionality":"f"}"#, || {
            Some("pk_header".into())
        })
        .unwrap();
        assert_eq!(input.key, "pk_header");
        let input = parse_check_body(
            br#"{"key":"pk_body","module":"m","functionality":"f","extra":1}"#,
            || Some("pk_header".into()),
        )
        .unwrap();
        assert_eq!(input.key, "pk_body", "the body wins");
    }

    #[test]
    fn bad_bodies_get_stable_codes() {
        let reason = |b: &[u8]| parse_check_body(b, || None).unwrap_err().reason;
        assert_eq!(reason(b""), "INVALID_JSON");
        assert_eq!(reason(b"{"), "INVALID_JSON");
        assert_eq!(reason(b"[1,2]"), "INVALID_JSON");
        assert_eq!(
            reason(br#"{"module":"m","functionality":"f"}"#),
            "MISSING_FIELD"
        );
        assert_eq!(
            reason(br#"{"key":"k","functionality":"f"}"#),
            "MISSING_FIELD"
        );
        assert_eq!(reason(br#"{"key":"k","module":"m"}"#), "MISSING_FIELD");
        assert_eq!(
            reason(br#"{"key":7,"module":"m","functionality":"f"}"#),
            "INVALID_FIELD"
        );
        assert_eq!(reason(&vec![b' '; MAX_CHECK_BODY + 1]), "PAYLOAD_TOO_LARGE");
    }
}
