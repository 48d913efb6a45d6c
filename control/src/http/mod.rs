//! The HTTP surface: shared state, the router that merges every resource's routes, and the
//! request plumbing every handler uses (JSON bodies with clean errors, client info).
//!
//! Each resource module owns `pub fn router() -> Router<AppState>`; this module merges them
//! under `/api/v1`, adds `/healthz`, and answers unknown routes and methods in the same JSON
//! error shape as everything else.

pub mod api_keys;
pub mod audit;
pub mod auth;
pub mod billing_usage;
pub mod dashboard;
pub mod edge_sync;
pub mod gateway_secrets;
mod json;
pub mod link_tokens;
pub mod members;
pub mod otp;
pub mod portal;
mod portal_auth;
pub mod portal_page;
pub mod portal_policy;
pub mod publishable_keys;
pub mod sdk_auth;
pub mod sdk_keys;
pub mod sessions;
pub mod tokens;
pub mod user_workspace;
pub mod validate;
pub mod workspace_scopes;
pub mod workspaces;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use axum::{Json, Router};

use axum::http::HeaderValue;
use tower_http::set_header::SetResponseHeaderLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use json::JsonBody;

pub use crate::store::audit::ClientInfo;

use crate::config::Settings;
use crate::crypto::Keys;
use crate::error::ApiError;
use crate::mail::Mailer;
use crate::store::Db;

/// Most bytes of an oversized body read (and thrown away) before answering its 413, so a
/// client that sends the whole body before reading sees the 413 rather than a reset.
pub const MAX_DRAIN_BYTES: usize = 16 * 1024 * 1024;
/// Longest time spent draining an oversized body.
pub const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Largest request body accepted (413 beyond).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// What every handler can reach. Cheap to clone; holds no per-replica state that another
/// replica would need (everything durable is in the database).
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub db: Db,
    /// Resolved settings.
    pub settings: Arc<Settings>,
    /// Keys derived from the master key.
    pub keys: Arc<Keys>,
    /// Outgoing mail.
    pub mailer: Arc<Mailer>,
    /// Mail waiting to go out through `mailer`, off the request path.
    pub mail: Arc<crate::mail::MailQueue>,
    /// Wakes this replica's edge deliverer after a change (others find it by polling).
    pub edge_wakeup: Arc<tokio::sync::Notify>,
}

/// Every `/api/v1` operation with its OpenAPI description. Each resource module owns
/// `pub fn router() -> OpenApiRouter<AppState>` and registers handlers with
/// `.routes(routes!(handler))`, so a route and its description are one registration.
pub fn api() -> OpenApiRouter<AppState> {
    let api = OpenApiRouter::new()
        .merge(sessions::router())
        .merge(members::router())
        .merge(audit::router())
        .merge(workspaces::router())
        .merge(workspace_scopes::router())
        .merge(publishable_keys::router())
        .merge(gateway_secrets::router())
        .merge(sdk_keys::router())
        .merge(api_keys::router())
        .merge(tokens::router())
        .merge(link_tokens::router())
        .merge(billing_usage::router())
        .merge(portal::router())
        .merge(portal_policy::router())
        .merge(edge_sync::router());
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(crate::metrics::metrics))
        .routes(routes!(crate::openapi::serve))
        .nest("/api/v1", api)
}

/// The whole application.
pub fn router(state: AppState) -> Router {
    let (api, _) = api().split_for_parts();
    let app = Router::new()
        .merge(api)
        .merge(dashboard::router())
        .merge(portal_page::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            around_every_request,
        ));
    SECURITY_HEADERS
        .iter()
        .fold(app, |app, (name, value)| {
            app.layer(SetResponseHeaderLayer::if_not_present(
                header::HeaderName::from_static(name),
                HeaderValue::from_static(value),
            ))
        })
        .layer(axum::middleware::from_fn(portal_page::allow_framing))
        .with_state(state)
}

/// The security headers every answer carries (unless its handler set its own, as the portal
/// page does for its CSP and referrer policy), set by tower-http's `SetResponseHeaderLayer`:
/// the dashboard's Content-Security-Policy, no sniffing, no framing, same-origin referrers and
/// opener, no powerful browser features.
pub const SECURITY_HEADERS: &[(&str, &str)] = &[
    (
        "content-security-policy",
        dashboard::CONTENT_SECURITY_POLICY,
    ),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "same-origin"),
    ("cross-origin-opener-policy", "same-origin"),
    (
        "permissions-policy",
        "camera=(), microphone=(), geolocation=(), payment=()",
    ),
];

/// What runs around every request, in this order: the body limit ([`limit_body`]), the
/// handler, then on the way out, for the API, keygate's JSON shape for axum's own rejections
/// ([`json_rejection`]) and `Cache-Control: no-store`; the edge deliverer's wake-up after a
/// write that queued edge records ([`edge_sync::wake_after_write`]); the response counter.
///
/// One layer on purpose: each `from_fn` layer boxes its future and clones the service stack
/// below it on every request, and the verify benchmark pays for each one.
async fn around_every_request(
    State(state): State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let api = req.uri().path().starts_with("/api/");
    let writes = !req.method().is_safe();
    let outbox_before = crate::store::outbox::rows_written();
    let mut res = match limit_body(req).await {
        Ok(req) => next.run(req).await,
        Err(refused) => refused,
    };
    if api {
        res = json_rejection(res).await;
        // API answers are never cached: several carry secrets (a new SDK key, a revealed
        // one, a gateway signing secret) and none is worth a stale copy.
        res.headers_mut().insert(
            header::CACHE_CONTROL,
            axum::http::HeaderValue::from_static("no-store"),
        );
    }
    edge_sync::wake_after_write(&state, writes, outbox_before, &res);
    crate::metrics::count_response(res.status());
    res
}

/// axum's own extractor rejections (a path segment that is not UTF-8, say) answer in plain
/// text; on the API every error leaves in keygate's JSON shape instead, as
/// `INVALID_REQUEST` with the rejection's (bounded) text.
async fn json_rejection(res: Response) -> Response {
    let plain_text = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/plain"));
    if !(plain_text && res.status().is_client_error()) {
        return res;
    }
    let status = res.status();
    let text = axum::body::to_bytes(res.into_body(), 4096)
        .await
        .unwrap_or_default();
    let message: String = String::from_utf8_lossy(&text).chars().take(200).collect();
    ApiError::new(status, "INVALID_REQUEST", message).into_response()
}

/// Reads the body up to [`MAX_BODY_BYTES`]. A larger one (declared or sent) is read on and
/// discarded, up to [`MAX_DRAIN_BYTES`] and [`DRAIN_TIMEOUT`], before its `413
/// PAYLOAD_TOO_LARGE` goes out, so a client that writes the whole body before reading gets
/// the answer instead of a reset connection; beyond those bounds the connection is closed.
/// `Ok`: the request to hand on (its body read, when it had one); `Err`: the refusal to send.
async fn limit_body(req: axum::extract::Request) -> Result<axum::extract::Request, Response> {
    use axum::body::HttpBody;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared == Some(0)
        || matches!(*req.method(), Method::GET | Method::HEAD) && declared.is_none()
    {
        return Ok(req);
    }
    let (parts, mut body) = req.into_parts();
    let mut kept: Vec<u8> = Vec::new();
    let mut seen: usize = 0;
    let too_large = declared.is_some_and(|n| n > MAX_BODY_BYTES as u64);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while let Some(frame) =
            std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await
        {
            let Ok(frame) = frame else { return false };
            let Ok(chunk) = frame.into_data() else {
                continue;
            };
            seen = seen.saturating_add(chunk.len());
            if seen > MAX_DRAIN_BYTES {
                return false;
            }
            if !too_large && seen <= MAX_BODY_BYTES {
                kept.extend_from_slice(&chunk);
            }
        }
        true
    })
    .await
    .unwrap_or(false);
    if too_large || seen > MAX_BODY_BYTES {
        let mut res = ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PAYLOAD_TOO_LARGE",
            format!("the body is larger than {MAX_BODY_BYTES} bytes"),
        )
        .into_response();
        if !drained {
            res.headers_mut().insert(
                header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
        }
        return Err(res);
    }
    if !drained {
        let refused = ApiError::bad_request("INVALID_BODY", "the body could not be read");
        return Err(refused.into_response());
    }
    Ok(axum::extract::Request::from_parts(
        parts,
        axum::body::Body::from(kept),
    ))
}

/// Liveness and database reachability.
#[utoipa::path(
    get, path = "/healthz", tag = "operations",
    responses(
        (status = 200, description = "The database answers", body = crate::api::Health),
        (status = 503, description = "The database does not answer", body = crate::api::Health),
    ),
)]
async fn healthz(State(state): State<AppState>) -> (StatusCode, Json<crate::api::Health>) {
    let up = state.db.ping().await;
    let health = crate::api::Health {
        status: if up { "ok" } else { "unavailable" }.to_owned(),
        database: state.db.backend().to_owned(),
    };
    let status = if up {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(health))
}

/// Unknown routes: a browser navigating to a dashboard page gets the page (its own router
/// decides what to show); everything else gets the JSON 404.
async fn not_found(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    if let Some(page) = dashboard::fallback_page(&method, &uri, &headers) {
        return page;
    }
    ApiError::new(StatusCode::NOT_FOUND, "ROUTE_NOT_FOUND", "no such route").into_response()
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        "this route does not accept that method",
    )
}

impl FromRequestParts<AppState> for ClientInfo {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let forwarded: Vec<&str> = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| {
                crate::config::client_ip(addr.ip(), &forwarded, &state.settings.trusted_proxies)
                    .to_string()
            });
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(256).collect());
        Ok(ClientInfo { ip, user_agent })
    }
}
