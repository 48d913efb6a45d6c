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
pub use runtime::{answer, body_is_simple, decide, handle, lookup, Answer, Decision};

#[cfg(target_arch = "wasm32")]
mod runtime {
    use std::rc::Rc;

    use futures_util::future::LocalBoxFuture;
    use keygate_shared::check::{check, CheckRequest};
    use keygate_shared::key::{self, KeyDigest, KeyKind};
    use keygate_shared::record::CompiledRecord;
    use keygate_shared::verdict::Verdict;
    use worker::{web_sys, Context, Env};

    use super::{parse_check_body, Source, HEADER_PUBLISHABLE_KEY, MAX_CHECK_BODY};
    use crate::cache::{refresh_ahead_ms, with_cache, Cached};
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

    /// The record for `digest` if this isolate's cache can answer (no await), else `None`.
    pub fn cached(digest: &KeyDigest) -> Option<(Option<Rc<CompiledRecord>>, Source)> {
        match with_cache(|c| c.get(digest, now_ms()))? {
            Cached::Found(r) => Some((Some(r), Source::Cache)),
            Cached::Absent => Some((None, Source::Cache)),
        }
    }

    /// The record for `digest`: isolate cache, then KV, then a pull.
    pub async fn lookup(
        env: &Env,
        config: &Config,
        digest: &KeyDigest,
    ) -> Result<(Option<Rc<CompiledRecord>>, Source), ApiError> {
        if let Some(hit) = cached(digest) {
            return Ok(hit);
        }
        if let Some(found) = from_kv(env, config, digest).await? {
            return Ok(found);
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

    /// The record for `digest` from KV merged with this isolate's view of the change log,
    /// offered to the isolate cache; `None` when neither has one.
    async fn from_kv(
        env: &Env,
        config: &Config,
        digest: &KeyDigest,
    ) -> Result<Option<(Option<Rc<CompiledRecord>>, Source)>, ApiError> {
        let store = Store::from_env(env)?;
        // KV's copy may be older than what the change log taught this isolate: merge.
        let stored = store.record(digest).await?.map(|r| Rc::new(r.compile()));
        let Some(compiled) = with_view(|v| v.merge(digest, stored)) else {
            return Ok(None);
        };
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
        Ok(Some((Some(compiled), source)))
    }

    /// After answering from the cache: when the record's entry is near its expiry (see
    /// `crate::cache`), re-reads it in the background (`ctx.wait_until`), so the next
    /// requests find a fresh entry instead of waiting for KV.
    fn refresh_ahead(env: &Env, ctx: &Context, decision: &Decision) {
        let (Source::Cache, Some(record)) = (decision.source, &decision.record) else {
            return;
        };
        let config = http::config(env);
        let digest = record.record.key_digest;
        let ahead = refresh_ahead_ms(config.cache_ttl_ms);
        if !with_cache(|c| c.claim_refresh(&digest, now_ms(), ahead)) {
            return;
        }
        let env = env.clone();
        ctx.wait_until(async move {
            if let Err(e) = from_kv(&env, &config, &digest).await {
                worker::console_warn!("keygate: refresh ahead for {digest} failed: {e:?}");
            }
        });
    }

    /// A check as far as it can go without waiting: decided when the key is malformed or
    /// this isolate's cache knows its record, else the digest to look up.
    pub fn decide_now(request: &CheckRequest) -> Result<Decision, KeyDigest> {
        let Ok(parsed) = key::parse_as(request.key, KeyKind::Publishable) else {
            return Ok(Decision {
                verdict: check(request, None),
                record: None,
                source: Source::NotLookedUp,
            });
        };
        let digest = parsed.digest();
        match cached(&digest) {
            Some((record, source)) => Ok(Decision {
                verdict: check(request, record.as_deref()),
                record,
                source,
            }),
            None => Err(digest),
        }
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
        let digest = match decide_now(&request) {
            Ok(decision) => return Ok(decision),
            Err(digest) => digest,
        };
        let (record, source) = lookup(env, config, &digest).await?;
        Ok(Decision {
            verdict: check(&request, record.as_deref()),
            record,
            source,
        })
    }

    /// `POST /v1/check`, on the JavaScript request (no `worker::Request` conversion), when
    /// its body has not been read yet (no or an unusual `Content-Length`: see [`answer`]).
    pub async fn handle(
        req: &web_sys::Request,
        env: &Env,
        ctx: &Context,
    ) -> Result<web_sys::Response, ApiError> {
        let body = http::read_raw_body(req, MAX_CHECK_BODY).await?;
        match answer(req, &body, env, ctx) {
            Answer::Now(resp) => resp,
            Answer::Later(later) => later.await,
        }
    }

    /// A check answer: ready now, or after a KV read or a pull.
    pub enum Answer {
        /// Decided without waiting (malformed key, isolate cache hit, bad body).
        Now(Result<web_sys::Response, ApiError>),
        /// The record must be looked up first.
        Later(LocalBoxFuture<'static, Result<web_sys::Response, ApiError>>),
    }

    /// `POST /v1/check` once its body has been read (the worker's entry module reads it when
    /// [`body_is_simple`] says so, then calls this synchronously): with a malformed key or
    /// a record in this isolate's cache, the answer is ready at once, with no Rust future.
    pub fn answer(req: &web_sys::Request, body: &[u8], env: &Env, ctx: &Context) -> Answer {
        let input = match parse_check_body(body, || raw_header(req, HEADER_PUBLISHABLE_KEY)) {
            Ok(input) => input,
            Err(e) => return Answer::Now(Err(e)),
        };
        let origin = raw_header(req, "origin");
        let request = CheckRequest {
            key: &input.key,
            module: &input.module,
            functionality: &input.functionality,
            origin: origin.as_deref(),
        };
        let digest = match decide_now(&request) {
            Ok(d) => {
                let answer = respond(&d, origin.as_deref());
                refresh_ahead(env, ctx, &d);
                return Answer::Now(answer);
            }
            Err(digest) => digest,
        };
        let env = env.clone();
        Answer::Later(Box::pin(async move {
            let config = http::config(&env);
            let (record, source) = lookup(&env, &config, &digest).await?;
            let request = CheckRequest {
                key: &input.key,
                module: &input.module,
                functionality: &input.functionality,
                origin: origin.as_deref(),
            };
            let d = Decision {
                verdict: check(&request, record.as_deref()),
                record,
                source,
            };
            respond(&d, origin.as_deref())
        }))
    }

    /// Whether the check body can be read in one piece before calling [`answer`]: a
    /// `Content-Length` between 1 and [`MAX_CHECK_BODY`]. Anything else (chunked, empty,
    /// too large, unreadable) takes [`handle`], which answers those cases.
    pub fn body_is_simple(req: &web_sys::Request) -> bool {
        raw_header(req, "content-length")
            .and_then(|len| len.trim().parse::<usize>().ok())
            .is_some_and(|len| (1..=MAX_CHECK_BODY).contains(&len))
    }

    /// The verdict as the JSON answer, with the lookup header and CORS.
    fn respond(d: &Decision, origin: Option<&str>) -> Result<web_sys::Response, ApiError> {
        let body = serde_json::to_string(&d.verdict.response())
            .map_err(|_| ApiError::new(500, "INTERNAL", "encoding failed"))?;
        http::verdict_raw(
            d.verdict.http_status(),
            &body,
            d.source.as_str(),
            cors::allowed_origin(origin, d.record.as_deref()),
        )
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
