//! Gateway mode: `ANY /x/{module}/{functionality}/{rest}` with `X-Publishable-Key`.
//!
//! The key is checked exactly as `POST /v1/check` would (same `decide`); a refused request is
//! answered with the verdict and never reaches the origin. An allowed one is forwarded to the
//! record's `originUrl` + `/{rest}` (query kept), body streamed through, with
//! `x-keygate-workspace`, `x-keygate-module`, `x-keygate-functionality` and
//! `x-keygate-gateway-signature` (`keygate_shared::gateway::sign` with the workspace's key,
//! derived from the edge secret) added. The origin's answer streams back unchanged (plus CORS).
//! Headers that could spoof those (any incoming `x-keygate-*`), the key itself and hop-by-hop
//! headers are not forwarded.

use keygate_shared::gateway;

use crate::error::ApiError;

/// The gateway's path prefix.
pub const PREFIX: &str = "/x/";

/// A parsed gateway path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route<'a> {
    /// Module being called.
    pub module: &'a str,
    /// Functionality being called.
    pub functionality: &'a str,
    /// The rest of the path, without its leading `/` (may be empty).
    pub rest: &'a str,
}

/// Parses `/x/{module}/{functionality}[/{rest}]`.
pub fn parse_route(path: &str) -> Result<Route<'_>, ApiError> {
    let tail = path.strip_prefix(PREFIX).ok_or_else(ApiError::not_found)?;
    let mut parts = tail.splitn(3, '/');
    let module = parts.next().unwrap_or_default();
    let functionality = parts.next().unwrap_or_default();
    let rest = parts.next().unwrap_or_default();
    if module.is_empty() || functionality.is_empty() {
        return Err(ApiError::invalid_path(
            "gateway paths read /x/{module}/{functionality}/{rest}",
        ));
    }
    Ok(Route {
        module,
        functionality,
        rest,
    })
}

/// Where a gateway request goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// Full URL to fetch.
    pub url: String,
    /// Path and query as the origin will see them (what the signature covers).
    pub path_and_query: String,
}

fn is_dot_segment(segment: &str) -> bool {
    let s = segment.to_ascii_lowercase().replace("%2e", ".");
    s == "." || s == ".."
}

/// The URL for `rest` (and `query`) under the workspace's `origin_url`. `rest` and `query`
/// come from the runtime's already-normalized request URL; dot segments are refused anyway,
/// so a request can never climb above the origin URL's path.
pub fn target(origin_url: &str, rest: &str, query: Option<&str>) -> Result<Target, ApiError> {
    if rest.split('/').any(is_dot_segment) {
        return Err(ApiError::invalid_path(
            "`.` and `..` segments are not forwarded",
        ));
    }
    let (scheme_and_authority, base_path) = keygate_shared::origin::split_origin_url(origin_url)
        .ok_or_else(|| {
            ApiError::new(
                502,
                "ORIGIN_MISCONFIGURED",
                "the workspace's origin URL is not a plain http(s) URL",
            )
        })?;
    let path_and_query = match query.filter(|q| !q.is_empty()) {
        Some(q) => format!("{base_path}/{rest}?{q}"),
        None => format!("{base_path}/{rest}"),
    };
    Ok(Target {
        url: format!("{scheme_and_authority}{path_and_query}"),
        path_and_query,
    })
}

/// The query of a serialized request URL (what follows the first `?`, without a fragment).
pub fn query_of(url: &str) -> Option<&str> {
    let q = url.split_once('?')?.1;
    Some(q.split_once('#').map_or(q, |(q, _)| q))
}

/// Whether an incoming request header is passed on to the origin.
pub fn forwards_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    !(n.starts_with("x-keygate-")
        || n.starts_with("cf-")
        || matches!(
            n.as_str(),
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
        ))
}

/// The headers the edge adds to a forwarded request: workspace, module, functionality and
/// the signature, in that order.
pub fn signed_headers(
    edge_secret: &[u8],
    workspace_id: &str,
    method: &str,
    target: &Target,
    route: &Route<'_>,
    now_secs: u64,
) -> [(&'static str, String); 4] {
    let key = gateway::workspace_signing_key(edge_secret, workspace_id);
    let signature = gateway::sign(
        &key,
        now_secs,
        &gateway::ForwardedRequest {
            method,
            path_and_query: &target.path_and_query,
            workspace_id,
            module: route.module,
            functionality: route.functionality,
        },
    );
    [
        (gateway::HEADER_WORKSPACE, workspace_id.to_owned()),
        (gateway::HEADER_MODULE, route.module.to_owned()),
        (
            gateway::HEADER_FUNCTIONALITY,
            route.functionality.to_owned(),
        ),
        (gateway::HEADER_SIGNATURE, signature),
    ]
}

#[cfg(target_arch = "wasm32")]
pub use runtime::handle;

#[cfg(target_arch = "wasm32")]
mod runtime {
    use worker::web_sys;
    use worker::{Env, Request, Response};

    use super::{forwards_header, parse_route, query_of, signed_headers, target};
    use crate::check::{decide, HEADER_LOOKUP, HEADER_PUBLISHABLE_KEY};
    use crate::cors;
    use crate::error::ApiError;
    use crate::http::{self, header, now_ms};

    /// `ANY /x/{module}/{functionality}/{rest}`.
    pub async fn handle(req: Request, env: &Env) -> Result<Response, ApiError> {
        let path = req.path();
        let route = parse_route(&path)?;
        let config = http::config(env);
        let secret = config.secret().ok_or_else(|| {
            ApiError::not_configured("KEYGATE_EDGE_SECRET is missing or shorter than 32 bytes")
        })?;
        let key = header(&req, HEADER_PUBLISHABLE_KEY).unwrap_or_default();
        let origin = header(&req, "origin");
        let d = decide(
            env,
            &config,
            &key,
            route.module,
            route.functionality,
            origin.as_deref(),
        )
        .await?;
        let allow_origin = cors::allowed_origin(origin.as_deref(), d.record.as_deref());
        let (Some(record), true) = (&d.record, d.verdict.status.is_valid()) else {
            let mut resp = http::json(d.verdict.http_status(), &d.verdict.response())?;
            resp.headers_mut().set(HEADER_LOOKUP, d.source.as_str())?;
            return http::with_cors(resp, allow_origin);
        };
        let origin_url = record
            .record
            .origin_url
            .as_deref()
            .ok_or_else(ApiError::gateway_not_configured)?;
        let url = req.inner().url();
        let target = target(origin_url, route.rest, query_of(&url))?;
        let method = req.inner().method();

        let headers = web_sys::Headers::new().map_err(js)?;
        for (name, value) in req.headers().entries() {
            if forwards_header(&name) {
                headers.append(&name, &value).map_err(js)?;
            }
        }
        for (name, value) in signed_headers(
            secret,
            &record.record.workspace_id,
            &method,
            &target,
            &route,
            now_ms() / 1000,
        ) {
            headers.set(name, &value).map_err(js)?;
        }
        let init = web_sys::RequestInit::new();
        init.set_method(&method);
        init.set_headers(&headers);
        init.set_redirect(web_sys::RequestRedirect::Manual);
        if !matches!(method.as_str(), "GET" | "HEAD") {
            if let Some(body) = req.inner().body() {
                init.set_body(&body);
            }
        }
        let forwarded = web_sys::Request::new_with_str_and_init(&target.url, &init).map_err(js)?;
        let upstream = worker::Fetch::Request(forwarded.into())
            .send()
            .await
            .map_err(|e| {
                worker::console_warn!("keygate: gateway fetch failed: {e}");
                ApiError::origin_unreachable()
            })?;
        // Fetched responses have immutable headers: answer with a copy around the same body.
        let upstream: web_sys::Response = upstream.into();
        let out_headers = web_sys::Headers::new_with_headers(&upstream.headers()).map_err(js)?;
        if let Some(o) = allow_origin {
            out_headers
                .set("access-control-allow-origin", o)
                .map_err(js)?;
            out_headers.append("vary", "Origin").map_err(js)?;
        }
        let init = web_sys::ResponseInit::new();
        init.set_status(upstream.status());
        init.set_status_text(&upstream.status_text());
        init.set_headers(&out_headers);
        let resp = web_sys::Response::new_with_opt_readable_stream_and_init(
            upstream.body().as_ref(),
            &init,
        )
        .map_err(js)?;
        Ok(resp.into())
    }

    fn js(e: worker::wasm_bindgen::JsValue) -> ApiError {
        ApiError::from(worker::Error::from(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_parsed() {
        assert_eq!(
            parse_route("/x/billing/charge/v1/charges/42").unwrap(),
            Route {
                module: "billing",
                functionality: "charge",
                rest: "v1/charges/42"
            }
        );
        assert_eq!(parse_route("/x/billing/charge").unwrap().rest, "");
        assert_eq!(
            parse_route("/x/billing").unwrap_err().reason,
            "INVALID_PATH"
        );
        assert_eq!(
            parse_route("/x//charge/a").unwrap_err().reason,
            "INVALID_PATH"
        );
    }

    #[test]
    fn targets_keep_the_origin_path_and_query() {
        let t = target("http://127.0.0.1:9000", "v1/charges", Some("a=1&b=2")).unwrap();
        assert_eq!(t.url, "http://127.0.0.1:9000/v1/charges?a=1&b=2");
        assert_eq!(t.path_and_query, "/v1/charges?a=1&b=2");
        let t = target("https://api.example.com/base/", "x", None).unwrap();
        assert_eq!(t.url, "https://api.example.com/base/x");
        assert_eq!(t.path_and_query, "/base/x");
        let t = target("https://api.example.com", "", Some("")).unwrap();
        assert_eq!(t.path_and_query, "/");
    }

    #[test]
    fn dot_segments_and_bad_origins_are_refused() {
        for rest in ["../admin", "a/./b", "a/%2e%2E/b", "%2E"] {
            assert_eq!(
                target("https://api.example.com/base", rest, None)
                    .unwrap_err()
                    .reason,
                "INVALID_PATH",
                "{rest}"
            );
        }
        for bad in [
            "ftp://x",
            "https://",
            "https://user@x.com",
            "https://x.com/a?b",
            "https://x.com/a b",
        ] {
            assert_eq!(
                target(bad, "a", None).unwrap_err().reason,
                "ORIGIN_MISCONFIGURED",
                "{bad}"
            );
        }
    }

    #[test]
    fn queries_are_split_off_urls() {
        assert_eq!(query_of("http://h/x?a=1&b=2"), Some("a=1&b=2"));
        assert_eq!(query_of("http://h/x?a=1#frag"), Some("a=1"));
        assert_eq!(query_of("http://h/x"), None);
    }

    #[test]
    fn spoofable_and_hop_by_hop_headers_are_dropped() {
        assert!(forwards_header("content-type"));
        assert!(forwards_header("authorization"));
        for h in [
            "X-Keygate-Workspace",
            "x-publishable-key",
            "Host",
            "Connection",
            "cf-ray",
        ] {
            assert!(!forwards_header(h), "{h}");
        }
    }

    #[test]
    fn the_origin_can_verify_what_the_edge_signs() {
        let t = target("http://127.0.0.1:9000", "v1/charges", Some("a=1")).unwrap();
        let route = parse_route("/x/billing/charge/v1/charges").unwrap();
        let headers = signed_headers(
            b"edge-secret-edge-secret-edge-secret",
            "w1",
            "POST",
            &t,
            &route,
            1_000,
        );
        let key = gateway::workspace_signing_key(b"edge-secret-edge-secret-edge-secret", "w1");
        assert!(gateway::verify(
            &key,
            &headers[3].1,
            &gateway::ForwardedRequest {
                method: "POST",
                path_and_query: "/v1/charges?a=1",
                workspace_id: "w1",
                module: "billing",
                functionality: "charge",
            },
            1_001
        ));
    }
}
