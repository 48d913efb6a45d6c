//! CORS for browser callers, answered from the workspace's allowed origins.
//!
//! A browser's preflight (`OPTIONS`) carries no custom headers, so it cannot carry
//! `X-Publishable-Key`; the page may put the key in the query (`?key=pk_...`) so the preflight
//! is answered from that key's allowed origins. Without a key the preflight is answered for
//! any origin: the real request is checked against the key's origins anyway, and a refused
//! one gets no `Access-Control-Allow-Origin`, so the page cannot read it.
//!
//! On a real request `Access-Control-Allow-Origin` echoes the caller's origin when the key's
//! record allows it (or when no record was found: an `INVALID` verdict reveals nothing).

use keygate_shared::record::CompiledRecord;

/// Methods a preflight may ask for.
pub const ALLOW_METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";
/// Headers allowed when the preflight names none we can reflect.
pub const DEFAULT_ALLOW_HEADERS: &str = "content-type, x-publishable-key";
/// How long a browser may reuse a preflight answer, in seconds.
pub const MAX_AGE_SECS: &str = "600";
/// Longest `Access-Control-Request-Headers` value reflected.
const MAX_REFLECTED_HEADERS_LEN: usize = 1024;

/// The origin to echo in `Access-Control-Allow-Origin`, if any.
pub fn allowed_origin<'a>(
    origin: Option<&'a str>,
    record: Option<&CompiledRecord>,
) -> Option<&'a str> {
    let origin = origin?;
    record
        .is_none_or(|r| r.origins.allows(Some(origin)))
        .then_some(origin)
}

/// The headers a preflight answer allows: the requested ones when they are plain header
/// names (gateway calls forward arbitrary headers to the origin), else the default list.
pub fn allow_headers(requested: Option<&str>) -> String {
    match requested {
        Some(r)
            if !r.trim().is_empty()
                && r.len() <= MAX_REFLECTED_HEADERS_LEN
                && r.split(',').all(|h| {
                    let h = h.trim();
                    !h.is_empty()
                        && h.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                }) =>
        {
            r.to_ascii_lowercase()
        }
        _ => DEFAULT_ALLOW_HEADERS.to_owned(),
    }
}

/// The `key` query parameter of a URL query string, if present.
pub fn key_from_query(query: Option<&str>) -> Option<&str> {
    query?
        .split('&')
        .find_map(|pair| pair.strip_prefix("key="))
        .filter(|k| !k.is_empty())
}

#[cfg(target_arch = "wasm32")]
pub use runtime::preflight;

#[cfg(target_arch = "wasm32")]
mod runtime {
    use keygate_shared::key::{self, KeyKind};
    use worker::{Env, Headers, Request, Response};

    use super::{allow_headers, allowed_origin, key_from_query, ALLOW_METHODS, MAX_AGE_SECS};
    use crate::check::{lookup, HEADER_PUBLISHABLE_KEY};
    use crate::error::ApiError;
    use crate::http::{self, header};

    /// `OPTIONS` on `/v1/check` and `/x/...`: a CORS preflight.
    pub async fn preflight(req: Request, env: &Env) -> Result<Response, ApiError> {
        let headers = Headers::new();
        headers.set("allow", ALLOW_METHODS)?;
        let Some(origin) = header(&req, "origin") else {
            // Not a browser preflight: just say what the route accepts.
            return Ok(Response::builder()
                .with_status(204)
                .with_headers(headers)
                .empty());
        };
        let url = req.inner().url();
        let key = header(&req, HEADER_PUBLISHABLE_KEY)
            .or_else(|| key_from_query(crate::gateway::query_of(&url)).map(str::to_owned));
        let record = match key
            .as_deref()
            .map(|k| key::parse_as(k, KeyKind::Publishable))
        {
            Some(Ok(parsed)) => lookup(env, &http::config(env), &parsed.digest()).await?.0,
            _ => None,
        };
        let Some(allowed) = allowed_origin(Some(&origin), record.as_deref()) else {
            return Err(ApiError::new(
                403,
                "ORIGIN_NOT_ALLOWED",
                "this key may not be used from this origin",
            ));
        };
        headers.set("access-control-allow-origin", allowed)?;
        headers.set("access-control-allow-methods", ALLOW_METHODS)?;
        headers.set(
            "access-control-allow-headers",
            &allow_headers(header(&req, "access-control-request-headers").as_deref()),
        )?;
        headers.set("access-control-max-age", MAX_AGE_SECS)?;
        headers.set("vary", "Origin, Access-Control-Request-Headers")?;
        Ok(Response::builder()
            .with_status(204)
            .with_headers(headers)
            .empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keygate_shared::key::digest;
    use keygate_shared::record::{EdgeRecord, KeyState};

    fn record(origins: &[&str]) -> CompiledRecord {
        EdgeRecord {
            allowed_origins: origins.iter().map(|s| s.to_string()).collect(),
            ..EdgeRecord::new(digest("k"), "w".into(), KeyState::Active, 1)
        }
        .compile()
    }

    #[test]
    fn origin_is_echoed_only_when_allowed() {
        let r = record(&["https://app.example.com"]);
        assert_eq!(
            allowed_origin(Some("https://app.example.com"), Some(&r)),
            Some("https://app.example.com")
        );
        assert_eq!(allowed_origin(Some("https://evil.example"), Some(&r)), None);
        assert_eq!(allowed_origin(None, Some(&r)), None);
        assert_eq!(
            allowed_origin(Some("https://any.example"), None),
            Some("https://any.example")
        );
        let open = record(&[]);
        assert_eq!(
            allowed_origin(Some("https://any.example"), Some(&open)),
            Some("https://any.example")
        );
    }

    #[test]
    fn requested_headers_are_reflected_only_when_plain() {
        assert_eq!(
            allow_headers(Some("X-Publishable-Key, Content-Type")),
            "x-publishable-key, content-type"
        );
        assert_eq!(allow_headers(Some("bad header\r\n")), DEFAULT_ALLOW_HEADERS);
        assert_eq!(allow_headers(None), DEFAULT_ALLOW_HEADERS);
    }

    #[test]
    fn key_is_found_in_the_query() {
        assert_eq!(key_from_query(Some("a=1&key=pk_x")), Some("pk_x"));
        assert_eq!(key_from_query(Some("key=")), None);
        assert_eq!(key_from_query(None), None);
    }
}
