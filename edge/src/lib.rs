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

#[cfg(target_arch = "wasm32")]
mod router {
    use worker::{event, Context, Env, Method, Request, Response};

    use crate::error::ApiError;
    use crate::{check, cors, gateway, http, sync, view, SELFTEST_PATH};

    #[event(fetch)]
    async fn fetch(req: Request, env: Env, ctx: Context) -> worker::Result<Response> {
        // The same JS object (not `Request.clone()`, which would tee the body).
        let raw = Clone::clone(req.inner());
        let resp = route(req, &env, &ctx)
            .await
            .unwrap_or_else(|e| http::error_response(&e));
        http::drain_unread_body(&raw).await;
        Ok(resp)
    }

    async fn route(req: Request, env: &Env, ctx: &Context) -> Result<Response, ApiError> {
        let path = req.path();
        let gatewayed =
            path.starts_with(gateway::PREFIX) || path.starts_with(gateway::CLASSIFIED_PREFIX);
        // Every route that looks a key up first makes sure this isolate's view of recent
        // changes is fresh (no await while it is).
        if gatewayed || path == "/v1/check" {
            if let Some(refresh) = view::before_lookup(env, ctx) {
                refresh.await?;
            }
        }
        match (req.method(), path.as_str()) {
            (Method::Get | Method::Head, "/healthz") => {
                http::json(200, &serde_json::json!({"status": "ok"}))
            }
            (Method::Options, "/v1/check") => cors::preflight(req, env).await,
            (Method::Options, _) if gatewayed => cors::preflight(req, env).await,
            (Method::Post, "/v1/check") => check::handle(req, env).await,
            (_, "/v1/check") => Err(ApiError::method_not_allowed("POST, OPTIONS")),
            (Method::Post, sync::PATH) => sync::handle(req, env).await,
            (_, sync::PATH) => Err(ApiError::method_not_allowed("POST")),
            (Method::Get, SELFTEST_PATH) if http::config(env).selftest => selftest(),
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
