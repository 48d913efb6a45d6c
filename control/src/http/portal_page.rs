//! The customer portal page, `GET /portal`: `control/dashboard/portal.html` (embedded like
//! the dashboard, so it works offline), whose script reads the link token from the URL
//! fragment (`/portal#token=lt_…`, never sent to a server, never in a `Referer`), or takes
//! `?token=` and removes it from the address bar at once.
//!
//! The page differs from the dashboard's in two headers:
//!
//! - `Referrer-Policy: no-referrer`, so a `?token=` never leaves in a `Referer`;
//! - its Content-Security-Policy's `frame-ancestors` lists the workspace's allowed origins
//!   (`keygate_shared::portal::frame_ancestors`; `'none'` if it has none), so a platform can
//!   embed its customers' portal in an `<iframe>` and nobody else can. The server learns the
//!   workspace from `?token=` or from `?workspace=<id>` (for `/portal?workspace=<id>#token=…`;
//!   the page refuses to run when the token is bound to another workspace). Without either,
//!   the page cannot be framed.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use keygate_shared::link_token;
use keygate_shared::portal::frame_ancestors;
use serde::Deserialize;

use crate::http::dashboard::{self, CONTENT_SECURITY_POLICY};
use crate::http::AppState;
use crate::store;

/// What `/portal` reads from its query (anything else is ignored: the page is static).
#[derive(Debug, Default, Deserialize)]
pub struct PortalQuery {
    /// A link token given in the query (the fragment is preferred).
    #[serde(default)]
    token: Option<String>,
    /// The workspace whose allowed origins may frame the page.
    #[serde(default)]
    workspace: Option<String>,
}

/// The page's route, merged into the application router.
pub fn router() -> Router<AppState> {
    Router::new().route("/portal", get(page))
}

/// The allowed origins of the workspace the query names (by token or by id); none if it
/// names none, or one that does not exist.
async fn framing_origins(state: &AppState, query: &PortalQuery) -> Vec<String> {
    let workspace_id = match (&query.token, &query.workspace) {
        (Some(token), _) => match link_token::parse(token) {
            Some(token) => store::portal::find_token(&state.db, &link_token::digest(token))
                .await
                .ok()
                .flatten()
                .map(|t| t.workspace_id),
            None => None,
        },
        (None, Some(id)) if crate::ids::is_valid_id(id) => Some(id.clone()),
        _ => None,
    };
    match workspace_id {
        Some(id) => store::portal::allowed_origins(&state.db, &id)
            .await
            .unwrap_or_default(),
        None => Vec::new(),
    }
}

/// The dashboard's policy with `frame-ancestors` replaced by `ancestors`.
pub fn portal_csp(ancestors: &str) -> String {
    CONTENT_SECURITY_POLICY.replace(
        "frame-ancestors 'none'",
        &format!("frame-ancestors {ancestors}"),
    )
}

async fn page(
    State(state): State<AppState>,
    query: Result<Query<PortalQuery>, QueryRejection>,
) -> Response {
    let query = query.map(|Query(q)| q).unwrap_or_default();
    let ancestors = frame_ancestors(&framing_origins(&state, &query).await);
    let Some(mut response) = dashboard::serve("portal.html", &HeaderMap::new()) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let h = response.headers_mut();
    if let Ok(csp) = HeaderValue::from_str(&portal_csp(&ancestors)) {
        h.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // The framing policy depends on the query: never reuse a copy for another.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The outermost layer: on the portal page, drops the `X-Frame-Options: DENY` every answer
/// gets, when the page's own `frame-ancestors` allows some origins (browsers that know CSP
/// already let `frame-ancestors` win; this makes it so for all).
pub async fn allow_framing(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let portal = req.uri().path() == "/portal";
    let mut res = next.run(req).await;
    let framable = res
        .headers()
        .get(header::CONTENT_SECURITY_POLICY)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|csp| !csp.contains("frame-ancestors 'none'"));
    if portal && framable {
        res.headers_mut().remove(header::X_FRAME_OPTIONS);
    }
    res
}
