//! # keygate-edge
//!
//! The Cloudflare Worker that checks publishable keys near users (see `edge/README.md` for
//! routes, configuration, the control-plane contract and the staleness bound).
//!
//! This file is only the router. The modules hold the logic, and every verdict comes from
//! `keygate_shared::check::check`: the edge decides nothing itself.
//!
//! - [`check`]: `POST /v1/check` (parse, isolate cache, KV, signed pull, shared check);
//! - [`gateway`]: `/x/{module}/{functionality}/{rest}` and `/g/{rest}` (route map) forwarding
//!   with a signature;
//! - [`sync`]: `POST /__keygate/sync`, signed pushes from the control plane;
//! - [`pull`]: the signed pull from the control plane on a miss;
//! - [`cache`], [`store`]: the per-isolate cache and KV;
//! - [`changes`], [`view`]: the global change log (a Durable Object) and this isolate's
//!   view of it, so no location trusts a KV copy older than a change it could know;
//! - [`cors`], [`config`], [`error`]: browsers, knobs and error answers.
//!
//! Runtime glue is compiled for `wasm32` only; the rest is plain Rust with native unit tests.
//! `POST /v1/check` and `GET /healthz` are dispatched before the general route table,
//! on the JavaScript request itself (see `edge/README.md`, "Figures", for why).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cache;
pub mod changes;
pub mod check;
pub mod config;
pub mod cors;
pub mod error;
pub mod gateway;
#[cfg(target_arch = "wasm32")]
pub mod http;
pub mod pull;
pub mod store;
pub mod sync;
pub mod view;

/// `GET /__keygate/selftest`: runs keygate-shared's conformance vectors inside the runtime.
pub const SELFTEST_PATH: &str = "/__keygate/selftest";
/// `POST /__keygate/selftest/trap`: panics on purpose (a wasm trap), so a test can show that
/// the next request is served by a fresh instance. Only with the self-test enabled.
pub const TRAP_PATH: &str = "/__keygate/selftest/trap";

/// The path of an already-serialised WHATWG URL (what `Request.url` returns), without query
/// or fragment and without parsing the URL again: the first `/` after the host starts the
/// path, and `?`/`#` inside a path are always percent-encoded.
pub fn path_of(url: &str) -> &str {
    let rest = match url.find("://") {
        Some(i) => &url[i + 3..],
        None => return url.split(['?', '#']).next().unwrap_or("/"),
    };
    match rest.find('/') {
        Some(i) => {
            let path = &rest[i..];
            &path[..path.find(['?', '#']).unwrap_or(path.len())]
        }
        None => "/",
    }
}

#[cfg(target_arch = "wasm32")]
mod router {
    use worker::wasm_bindgen::{self, prelude::wasm_bindgen, JsValue};
    use worker::{web_sys, Context, Env, Method, Request, Response};

    use crate::error::ApiError;
    use crate::{check, cors, gateway, http, path_of, sync, view, SELFTEST_PATH, TRAP_PATH};

    /// The worker's `fetch` handler, exported by hand rather than with `#[event(fetch)]`, so
    /// the hot paths pay no more glue than they need (see `edge/README.md`, "Figures"):
    /// - `GET /healthz` answers synchronously: no Rust future, no promise, no microtask, and
    ///   no conversion of the request into a `worker::Request` (which reads its method, URL,
    ///   headers and `cf` from JavaScript);
    /// - `POST /v1/check` with a fresh view of recent changes and a plain `Content-Length`
    ///   body returns `undefined`: the entry module (`edge/js/entry.mjs`) then reads the
    ///   body and calls [`check_body`], synchronous up to a KV read. Other checks work on
    ///   the JavaScript request in a Rust future;
    /// - every other route goes through [`route`] as before.
    ///
    /// Unread request bodies are drained after answering, as before.
    #[wasm_bindgen]
    pub fn fetch(raw: web_sys::Request, env: Env, ctx: worker::worker_sys::Context) -> JsValue {
        let url = raw.url();
        let path = path_of(&url);
        let method = raw.method();
        if path == "/healthz" && (method == "GET" || method == "HEAD") && raw.body().is_none() {
            return http::health().into();
        }
        let ctx = Context::new(ctx);
        if method == "POST" && path == "/v1/check" {
            let refresh = view::before_lookup(&env, &ctx);
            if refresh.is_none() && check::body_is_simple(&raw) {
                return JsValue::UNDEFINED;
            }
            let req = Clone::clone(&raw);
            return respond_later(raw, async move {
                if let Some(refresh) = refresh {
                    refresh.await?;
                }
                check::handle(&req, &env, &ctx).await
            });
        }
        let path = path.to_owned();
        let req = Request::from(Clone::clone(&raw));
        respond_later(raw, async move {
            route(req, &path, &env, &ctx)
                .await
                .map(web_sys::Response::from)
        })
    }

    /// `POST /v1/check` once the entry module has read its body (see [`fetch`]): the answer
    /// (a `Response`), or a promise of it when the record must be looked up first.
    #[wasm_bindgen(js_name = checkBody)]
    pub fn check_body(
        raw: web_sys::Request,
        body: &[u8],
        env: Env,
        ctx: worker::worker_sys::Context,
    ) -> JsValue {
        match check::answer(&raw, body, &env, &Context::new(ctx)) {
            check::Answer::Now(resp) => resp.unwrap_or_else(|e| http::error_raw(&e)).into(),
            check::Answer::Later(later) => worker::wasm_bindgen_futures::future_to_promise(async {
                Ok(later.await.unwrap_or_else(|e| http::error_raw(&e)).into())
            })
            .into(),
        }
    }

    /// The promise of `answer`'s response (errors answered as JSON), draining what is left
    /// of the request body afterwards.
    fn respond_later(
        raw: web_sys::Request,
        answer: impl std::future::Future<Output = Result<web_sys::Response, ApiError>> + 'static,
    ) -> JsValue {
        worker::wasm_bindgen_futures::future_to_promise(async move {
            let resp = answer.await.unwrap_or_else(|e| http::error_raw(&e));
            http::drain_unread_body(&raw).await;
            Ok(resp.into())
        })
        .into()
    }

    async fn route(
        req: Request,
        path: &str,
        env: &Env,
        ctx: &Context,
    ) -> Result<Response, ApiError> {
        let gatewayed =
            path.starts_with(gateway::PREFIX) || path.starts_with(gateway::CLASSIFIED_PREFIX);
        // Every route that looks a key up first makes sure this isolate's view of recent
        // changes is fresh (no await while it is).
        if gatewayed || path == "/v1/check" {
            if let Some(refresh) = view::before_lookup(env, ctx) {
                refresh.await?;
            }
        }
        match (req.method(), path) {
            (Method::Get | Method::Head, "/healthz") => {
                http::json(200, &serde_json::json!({"status": "ok"}))
            }
            (Method::Options, "/v1/check") => cors::preflight(req, env).await,
            (Method::Options, _) if gatewayed => cors::preflight(req, env).await,
            (_, "/v1/check") => Err(ApiError::method_not_allowed("POST, OPTIONS")),
            (Method::Post, sync::PATH) => sync::handle(req, env).await,
            (_, sync::PATH) => Err(ApiError::method_not_allowed("POST")),
            (Method::Get, SELFTEST_PATH) if http::config(env).selftest => selftest(),
            (Method::Post, TRAP_PATH) if http::config(env).selftest => {
                panic!("keygate: trap requested by {TRAP_PATH}")
            }
            _ if gatewayed => gateway::handle(req, env).await,
            _ => Err(ApiError::not_found()),
        }
    }

    fn selftest() -> Result<Response, ApiError> {
        let report = keygate_shared::conformance::run(keygate_shared::conformance::VECTORS_JSON)
            .map_err(|e| ApiError::new(500, "VECTORS_UNREADABLE", e))?;
        http::json(200, &report)
    }
}

#[cfg(test)]
mod tests {
    use super::path_of;

    #[test]
    fn paths_come_from_serialised_urls() {
        assert_eq!(path_of("https://edge.example.com/v1/check"), "/v1/check");
        assert_eq!(path_of("http://127.0.0.1:8787/healthz?x=1#f"), "/healthz");
        assert_eq!(path_of("https://edge.example.com"), "/");
        assert_eq!(
            path_of("https://edge.example.com/x/m/f/a%3Fb?q"),
            "/x/m/f/a%3Fb"
        );
        assert_eq!(path_of("/v1/check?x"), "/v1/check");
    }
}
