//! The HTTP surface: shared state, the router that merges every resource's routes, and the
//! request plumbing every handler uses (JSON bodies with clean errors, client info).
//!
//! Each resource module owns `pub fn router() -> Router<AppState>`; this module merges them
//! under `/api/v1`, adds `/healthz`, and answers unknown routes and methods in the same JSON
//! error shape as everything else.

mod json;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

pub use json::JsonBody;

use crate::config::Settings;
use crate::crypto::Keys;
use crate::db::Db;
use crate::error::ApiError;
use crate::mail::Mailer;

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
    /// Wakes this replica's edge deliverer after a change (others find it by polling).
    pub edge_wakeup: Arc<tokio::sync::Notify>,
}

/// The whole application.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .merge(crate::sessions::router())
        .merge(crate::members::router())
        .merge(crate::audit::router())
        .merge(crate::workspace_scopes::router())
        .merge(crate::api_keys::router())
        .merge(crate::workspaces::router())
        .merge(crate::publishable_keys::router())
        .merge(crate::gateway_secrets::router())
        .merge(crate::sdk_keys::router())
        .merge(crate::tokens::router())
        .merge(crate::edge_sync::router());
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(crate::metrics::metrics))
        .route("/openapi.json", get(crate::openapi::serve))
        .nest("/api/v1", api)
        .merge(crate::dashboard::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::edge_sync::wake_after_writes,
        ))
        .layer(axum::middleware::from_fn(crate::metrics::count_responses))
        .with_state(state)
}

async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    if state.db.ping().await {
        (
            StatusCode::OK,
            Json(json!({"status": "ok", "database": state.db.backend()})),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "database": state.db.backend()})),
        )
    }
}

/// Unknown routes: a browser navigating to a dashboard page gets the page (its own router
/// decides what to show); everything else gets the JSON 404.
async fn not_found(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    if let Some(page) = crate::dashboard::fallback_page(&method, &uri, &headers) {
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

/// Who is on the other end, for the audit log: peer IP and (truncated) user agent.
#[derive(Clone, Debug, Default)]
pub struct ClientInfo {
    /// Peer address (the proxy's, behind a proxy).
    pub ip: Option<String>,
    /// `User-Agent`, at most 256 characters.
    pub user_agent: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for ClientInfo {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip().to_string());
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(256).collect());
        Ok(ClientInfo { ip, user_agent })
    }
}
