//! Gateway mode: `ANY /x/{module}/{functionality}/{rest}` with `X-Publishable-Key`.
//!
//! `{rest}` is judged first (`keygate_shared::gateway::check_rest`: no encoded slashes, dot
//! segments or backslashes; `400 INVALID_PATH`). The key is then checked exactly as
//! `POST /v1/check` would (same `decide`, labels in canonical form); a refused request is
//! answered with the verdict and never reaches the origin. An allowed one is forwarded to the
//! record's `originUrl` + `/{rest}` (query kept), body streamed through, if the origin URL is a
//! permitted target (`keygate_shared::origin::check_forward_target`: https and public unless
//! `KEYGATE_ALLOW_PRIVATE_ORIGINS=true`), with `x-keygate-workspace`, `x-keygate-module`,
//! `x-keygate-functionality` (canonical) and `x-keygate-gateway-signature`
//! (`keygate_shared::gateway::Signer`: one signature per live workspace secret, or the legacy
//! derived key for records without secrets) added. The origin's answer streams back (plus
//! CORS). Headers that could spoof those (any incoming `x-keygate-*`), the key itself,
//! hop-by-hop headers and, unless the workspace forwards cookies, `Cookie` and `Set-Cookie`
//! are dropped.

use keygate_shared::action::canonical_action;
use keygate_shared::gateway;
use keygate_shared::route::{CanonicalPath, RoutePolicy, RouteVerdict};

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

/// `true` (or `1`) lets the gateway forward to http and private addresses (local development).
pub const VAR_ALLOW_PRIVATE_ORIGINS: &str = "KEYGATE_ALLOW_PRIVATE_ORIGINS";

/// Reads [`VAR_ALLOW_PRIVATE_ORIGINS`]; anything but `true`/`1` is `false`.
pub fn allows_private_origins(value: Option<&str>) -> bool {
    value.is_some_and(|v| matches!(v.trim(), "true" | "1"))
}

/// Parses `/x/{module}/{functionality}[/{rest}]`; a `{rest}` that could reach another path
/// than the one judged is refused here (`INVALID_PATH`), before any lookup.
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
    gateway::check_rest(rest).map_err(|e| ApiError::invalid_path(&e.to_string()))?;
    Ok(Route {
        module,
        functionality,
        rest,
    })
}

/// The classified gateway form's prefix: `ANY /g/{rest}`, the action decided by the route map.
pub const CLASSIFIED_PREFIX: &str = "/g/";

/// The `{rest}` of `/g/{rest}`; refused like the labelled form's `{rest}` when an origin could
/// read it as another path.
pub fn parse_classified(path: &str) -> Result<&str, ApiError> {
    let rest = path
        .strip_prefix(CLASSIFIED_PREFIX)
        .ok_or_else(ApiError::not_found)?;
    gateway::check_rest(rest).map_err(|e| ApiError::invalid_path(&e.to_string()))?;
    Ok(rest)
}

/// The labels a gateway request is checked and signed with, and the path the origin gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// Module (canonical when mapped; as given otherwise, canonicalised by the check).
    pub module: String,
    /// Functionality.
    pub functionality: String,
    /// `{rest}` to forward: the canonical path when a map classified it, else as sent.
    pub rest: String,
}

/// Applies a workspace's route map (`keygate_shared::route`) to a gateway request.
/// `labels` are the `/x/{m}/{f}` labels, `None` for the classified form `/g/`.
///
/// - no map: `/x/` keeps its labels; `/g/` is `404 ROUTE_NOT_MAPPED` (nothing to classify by);
/// - a map and no matching route: `404 ROUTE_NOT_MAPPED` (the origin never sees it);
/// - a match: its action; `/x/` labels naming another action are `403 ROUTE_MISMATCH`;
/// - a map the edge cannot compile: `503 ROUTE_MAP_INVALID` (fail closed).
pub fn resolve(
    policy: &RoutePolicy,
    method: &str,
    rest: &str,
    labels: Option<(&str, &str)>,
) -> Result<Resolved, ApiError> {
    let not_mapped = || {
        ApiError::new(
            404,
            "ROUTE_NOT_MAPPED",
            "no route of the workspace's route map matches this method and path",
        )
    };
    if let (RoutePolicy::None, Some((module, functionality))) = (policy, labels) {
        return Ok(Resolved {
            module: module.to_owned(),
            functionality: functionality.to_owned(),
            rest: rest.to_owned(),
        });
    }
    let path = CanonicalPath::parse(rest).map_err(|e| ApiError::invalid_path(&e.to_string()))?;
    let classified = match policy.classify(method, &path) {
        None => {
            return Err(ApiError::new(
                503,
                "ROUTE_MAP_INVALID",
                "the workspace's route map cannot be read by this edge",
            ))
        }
        Some(RouteVerdict::NoMap | RouteVerdict::NotMapped) => return Err(not_mapped()),
        Some(RouteVerdict::Action(c)) => c,
    };
    if let Some((module, functionality)) = labels {
        let agrees = canonical_action(module, functionality).is_ok_and(|a| {
            a.module == classified.module && a.functionality == classified.functionality
        });
        if !agrees {
            return Err(ApiError::new(
                403,
                "ROUTE_MISMATCH",
                "the labels name another action than the route map gives this method and path",
            ));
        }
    }
    Ok(Resolved {
        module: classified.module.to_owned(),
        functionality: classified.functionality.to_owned(),
        rest: path.to_forward_path(),
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

/// The URL for `rest` (and `query`) under the workspace's `origin_url`. `rest` and `query`
/// come from the runtime's already-normalized request URL; `rest` is judged again by
/// `gateway::check_rest`, so a request can never climb above the origin URL's path. The
/// origin URL must be a permitted target (`origin::check_forward_target`).
pub fn target(
    origin_url: &str,
    rest: &str,
    query: Option<&str>,
    allow_private_origins: bool,
) -> Result<Target, ApiError> {
    gateway::check_rest(rest).map_err(|e| ApiError::invalid_path(&e.to_string()))?;
    let (scheme_and_authority, base_path) = keygate_shared::origin::split_origin_url(origin_url)
        .ok_or_else(|| {
            ApiError::new(
                502,
                "ORIGIN_MISCONFIGURED",
                "the workspace's origin URL is not a plain http(s) URL",
            )
        })?;
    keygate_shared::origin::check_forward_target(origin_url, allow_private_origins)
        .map_err(|e| ApiError::new(502, "ORIGIN_NOT_PUBLIC", e.to_string()))?;
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

/// The headers the edge adds to a forwarded request: workspace, module, functionality (both
/// canonical: what was checked) and the signature, in that order. `edge_secrets` are tried in
/// turn to open the record's sealed gateway secrets; a record whose secrets cannot be opened
/// is refused (`503 GATEWAY_SECRET_UNREADABLE`), never signed with another key.
pub fn signed_headers(
    edge_secrets: &[&[u8]],
    record: &keygate_shared::record::EdgeRecord,
    method: &str,
    target: &Target,
    route: &Route<'_>,
    now_secs: u64,
) -> Result<[(&'static str, String); 4], ApiError> {
    let workspace_id = record.workspace_id.as_str();
    let action = canonical_action(route.module, route.functionality)
        .map_err(|e| ApiError::invalid_path(&e.to_string()))?;
    let signer = gateway::Signer::for_record(
        edge_secrets,
        workspace_id,
        &record.gateway_secrets,
        now_secs,
    )
    .map_err(|_| {
        ApiError::new(
            503,
            "GATEWAY_SECRET_UNREADABLE",
            "the workspace's gateway secrets do not open with this edge's secret",
        )
    })?;
    let signature = signer.sign(
        now_secs,
        &gateway::ForwardedRequest {
            method,
            path_and_query: &target.path_and_query,
            workspace_id,
            module: &action.module,
            functionality: &action.functionality,
        },
    );
    Ok([
        (gateway::HEADER_WORKSPACE, workspace_id.to_owned()),
        (gateway::HEADER_MODULE, action.module.into_owned()),
        (
            gateway::HEADER_FUNCTIONALITY,
            action.functionality.into_owned(),
        ),
        (gateway::HEADER_SIGNATURE, signature),
    ])
}

#[cfg(target_arch = "wasm32")]
pub use runtime::handle;

#[cfg(target_arch = "wasm32")]
mod runtime {
    use worker::web_sys;
    use worker::{Env, Request, Response};

    use keygate_shared::gateway::{forwards_request_header, returns_response_header};

    use super::{
        allows_private_origins, parse_classified, parse_route, query_of, resolve, signed_headers,
        target, Route, CLASSIFIED_PREFIX, VAR_ALLOW_PRIVATE_ORIGINS,
    };
    use crate::check::{decide, HEADER_LOOKUP, HEADER_PUBLISHABLE_KEY};
    use crate::cors;
    use crate::error::ApiError;
    use crate::http::{self, header, now_ms};

    /// `ANY /x/{module}/{functionality}/{rest}` and `ANY /g/{rest}`.
    pub async fn handle(req: Request, env: &Env) -> Result<Response, ApiError> {
        let path = req.path();
        let (labels, rest) = if path.starts_with(CLASSIFIED_PREFIX) {
            (None, parse_classified(&path)?)
        } else {
            let r = parse_route(&path)?;
            (Some((r.module, r.functionality)), r.rest)
        };
        let config = http::config(env);
        config.secret().ok_or_else(|| {
            ApiError::not_configured("KEYGATE_EDGE_SECRET is missing or shorter than 32 bytes")
        })?;
        let key = header(&req, HEADER_PUBLISHABLE_KEY).unwrap_or_default();
        let origin = header(&req, "origin");
        let method = req.inner().method();
        // The classified form looks the key up first (its labels come from the record's map).
        let (probe_m, probe_f) = labels.unwrap_or(("g", "g"));
        let mut d = decide(env, &config, &key, probe_m, probe_f, origin.as_deref()).await?;
        let mut resolved = None;
        if let Some(record) = &d.record {
            if matches!(d.verdict.status.as_str(), "VALID" | "BLACKLISTED") {
                let r = resolve(&record.routes, &method, rest, labels)?;
                if labels.is_none() {
                    d.verdict = keygate_shared::check::check(
                        &keygate_shared::check::CheckRequest {
                            key: &key,
                            module: &r.module,
                            functionality: &r.functionality,
                            origin: origin.as_deref(),
                        },
                        Some(record),
                    );
                }
                resolved = Some(r);
            }
        }
        let allow_origin = cors::allowed_origin(origin.as_deref(), d.record.as_deref());
        let (Some(record), Some(resolved), true) =
            (&d.record, &resolved, d.verdict.status.is_valid())
        else {
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
        let allow_private = allows_private_origins(
            env.var(VAR_ALLOW_PRIVATE_ORIGINS)
                .ok()
                .map(|v| v.to_string())
                .as_deref(),
        );
        let target = target(origin_url, &resolved.rest, query_of(&url), allow_private)?;
        let route = Route {
            module: &resolved.module,
            functionality: &resolved.functionality,
            rest: &resolved.rest,
        };
        let forward_cookies = record.record.forward_cookies;

        let headers = web_sys::Headers::new().map_err(js)?;
        for (name, value) in req.headers().entries() {
            if forwards_request_header(&name, forward_cookies) {
                headers.append(&name, &value).map_err(js)?;
            }
        }
        for (name, value) in signed_headers(
            &config.secrets(),
            &record.record,
            &method,
            &target,
            &route,
            now_ms() / 1000,
        )? {
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
        for name in ["set-cookie", "set-cookie2"] {
            if !returns_response_header(name, forward_cookies) {
                out_headers.delete(name).map_err(js)?;
            }
        }
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
    use keygate_shared::record::{EdgeRecord, KeyState};

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
        for rest in ["..%2F..%2Fadmin", "a%5Cb", "a/%2e%2e/b", "a%00"] {
            assert_eq!(
                parse_route(&format!("/x/billing/charge/{rest}"))
                    .unwrap_err()
                    .reason,
                "INVALID_PATH",
                "{rest}"
            );
        }
    }

    #[test]
    fn targets_keep_the_origin_path_and_query() {
        let t = target("http://127.0.0.1:9000", "v1/charges", Some("a=1&b=2"), true).unwrap();
        assert_eq!(t.url, "http://127.0.0.1:9000/v1/charges?a=1&b=2");
        assert_eq!(t.path_and_query, "/v1/charges?a=1&b=2");
        let t = target("https://api.example.com/base/", "x", None, false).unwrap();
        assert_eq!(t.url, "https://api.example.com/base/x");
        assert_eq!(t.path_and_query, "/base/x");
        let t = target("https://api.example.com", "", Some(""), false).unwrap();
        assert_eq!(t.path_and_query, "/");
    }

    #[test]
    fn dot_segments_private_targets_and_bad_origins_are_refused() {
        for rest in ["../admin", "a/./b", "a/%2e%2E/b", "%2E", "..%2Fx"] {
            assert_eq!(
                target("https://api.example.com/base", rest, None, false)
                    .unwrap_err()
                    .reason,
                "INVALID_PATH",
                "{rest}"
            );
        }
        for private in [
            "http://127.0.0.1:9000",
            "https://10.0.0.1",
            "https://localhost",
        ] {
            let e = target(private, "a", None, false).unwrap_err();
            assert_eq!(
                (e.status, e.reason),
                (502, "ORIGIN_NOT_PUBLIC"),
                "{private}"
            );
            assert!(target(private, "a", None, true).is_ok(), "{private}");
        }
        for bad in [
            "ftp://x",
            "https://",
            "https://user@x.com",
            "https://x.com/a?b",
            "https://x.com/a b",
        ] {
            assert_eq!(
                target(bad, "a", None, true).unwrap_err().reason,
                "ORIGIN_MISCONFIGURED",
                "{bad}"
            );
        }
        assert!(allows_private_origins(Some(" true ")));
        assert!(allows_private_origins(Some("1")));
        assert!(!allows_private_origins(Some("yes")));
        assert!(!allows_private_origins(None));
    }

    #[test]
    fn the_route_map_decides_the_labels_and_refuses_what_it_does_not_map() {
        use keygate_shared::route::{RouteBinding, RoutePolicy};
        let map = RoutePolicy::compile(&[
            RouteBinding {
                module: "billing".into(),
                functionality: "refund".into(),
                routes: vec!["POST /billing/refunds/*".into()],
            },
            RouteBinding {
                module: "public".into(),
                functionality: "read".into(),
                routes: vec!["GET /*".into()],
            },
        ]);
        let r = resolve(&map, "POST", "Billing//refunds/7/", None).unwrap();
        assert_eq!(
            (r.module.as_str(), r.functionality.as_str(), r.rest.as_str()),
            ("billing", "refund", "Billing/refunds/7")
        );
        let e = resolve(&map, "DELETE", "billing/refunds/7", None).unwrap_err();
        assert_eq!((e.status, e.reason), (404, "ROUTE_NOT_MAPPED"));
        let e = resolve(&map, "POST", "billing/refunds", Some(("public", "read"))).unwrap_err();
        assert_eq!((e.status, e.reason), (403, "ROUTE_MISMATCH"));
        assert!(resolve(&map, "POST", "billing/refunds", Some(("Billing", "REFUND"))).is_ok());
        let e = resolve(&RoutePolicy::None, "GET", "a", None).unwrap_err();
        assert_eq!(e.reason, "ROUTE_NOT_MAPPED");
        let r = resolve(&RoutePolicy::None, "GET", "a//b", Some(("m", "f"))).unwrap();
        assert_eq!(r.rest, "a//b", "no map: forwarded as before");
        let e = resolve(&RoutePolicy::Broken, "GET", "a", Some(("m", "f"))).unwrap_err();
        assert_eq!((e.status, e.reason), (503, "ROUTE_MAP_INVALID"));
        assert_eq!(parse_classified("/g/a/b").unwrap(), "a/b");
        assert_eq!(
            parse_classified("/g/a%2Fb").unwrap_err().reason,
            "INVALID_PATH"
        );
    }

    #[test]
    fn queries_are_split_off_urls() {
        assert_eq!(query_of("http://h/x?a=1&b=2"), Some("a=1&b=2"));
        assert_eq!(query_of("http://h/x?a=1#frag"), Some("a=1"));
        assert_eq!(query_of("http://h/x"), None);
    }

    fn record(ws: &str) -> EdgeRecord {
        EdgeRecord::new(
            keygate_shared::key::digest("pk_live_x"),
            ws.into(),
            KeyState::Active,
            1,
        )
    }

    const EDGE: &[u8] = b"edge-secret-edge-secret-edge-secret";

    #[test]
    fn the_origin_can_verify_what_the_edge_signs_with_canonical_labels() {
        let t = target("http://127.0.0.1:9000", "v1/charges", Some("a=1"), true).unwrap();
        let route = parse_route("/x/Billing/CHARGE/v1/charges").unwrap();
        let headers = signed_headers(&[EDGE], &record("w1"), "POST", &t, &route, 1_000).unwrap();
        assert_eq!(headers[1].1, "billing");
        assert_eq!(headers[2].1, "charge");
        let key = gateway::workspace_signing_key(EDGE, "w1");
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

    #[test]
    fn workspaces_with_their_own_secrets_are_signed_with_them_only() {
        let own = gateway::GatewaySecret::generate();
        let mut r = record("w1");
        r.gateway_secrets = vec![gateway::seal_for_edge(EDGE, "w1", &own, None)];
        let t = target("http://127.0.0.1:9000", "x", None, true).unwrap();
        let route = parse_route("/x/billing/charge/x").unwrap();
        let headers = signed_headers(&[EDGE], &r, "GET", &t, &route, 1_000).unwrap();
        let req = gateway::ForwardedRequest {
            method: "GET",
            path_and_query: "/x",
            workspace_id: "w1",
            module: "billing",
            functionality: "charge",
        };
        assert!(gateway::verify_any(
            std::slice::from_ref(&own),
            &headers[3].1,
            &req,
            1_000
        ));
        let derived = gateway::workspace_signing_key(EDGE, "w1");
        assert!(!gateway::verify(&derived, &headers[3].1, &req, 1_000));
        let e =
            signed_headers(&[b"another-edge-secret"], &r, "GET", &t, &route, 1_000).unwrap_err();
        assert_eq!((e.status, e.reason), (503, "GATEWAY_SECRET_UNREADABLE"));
    }
}
