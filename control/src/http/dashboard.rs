//! The web dashboard: the static front end in `control/dashboard/` (ES modules and CSS, no build
//! step), compiled into the binary so the server works offline and ships as one file.
//!
//! - `/assets/{path}` serves one asset with its content type, an `ETag` and `Cache-Control:
//!   no-cache` (asset names carry no content hash, so browsers revalidate; a 304 costs nothing).
//! - `/`, the client-side routes (`/signin`, `/w/...`, `/settings/...`) and, through
//!   [`fallback_page`], any other unknown non-API `GET` that asks for HTML get `index.html`; the
//!   page's router then shows the screen or its own "not found".
//! - Every response of the server carries a strict Content-Security-Policy (scripts, styles
//!   and fetches only from this origin, no inline script or style, no framing) and the other
//!   security headers: [`crate::http::SECURITY_HEADERS`] are set on every answer, pages,
//!   assets and API alike.
//!
//! Architecture invariant: the dashboard is a plain client of the public dashboard API; it has
//! no routes or privileges of its own.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};

use crate::http::AppState;

/// The policy every response carries. No `'unsafe-inline'` anywhere; `data:` images
/// only for the CSS-embedded select arrow.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
     manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! assets {
    ($($path:literal => $content_type:expr),* $(,)?) => {
        &[$(Asset {
            path: $path,
            content_type: $content_type,
            body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/dashboard/", $path)),
        }),*]
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Files of `control/dashboard/` that are not served: the type check's configuration and
/// hand-written types (`cargo xtask dashboard-types`).
#[cfg(test)]
const NOT_SERVED: &[&str] = &["tsconfig.json", "types.d.ts"];

/// Every file of the front end. A unit test checks this list against the folder (apart from
/// [`NOT_SERVED`]).
static ASSETS: &[Asset] = assets! {
    "index.html" => "text/html; charset=utf-8",
    "styles.css" => "text/css; charset=utf-8",
    "favicon.svg" => "image/svg+xml",
    "api.js" => JS,
    "app.js" => JS,
    "chart.js" => JS,
    "otp.js" => JS,
    "session.js" => JS,
    "ui.js" => JS,
    "pages/audit.js" => JS,
    "pages/members.js" => JS,
    "pages/modules.js" => JS,
    "pages/publishable-key.js" => JS,
    "pages/sdk-access-key.js" => JS,
    "pages/sdk-keys.js" => JS,
    "pages/signin.js" => JS,
    "pages/tokens-list.js" => JS,
    "pages/tokens.js" => JS,
    "pages/portal-policy.js" => JS,
    "portal.html" => "text/html; charset=utf-8",
    "portal.js" => JS,
    "pages/usage.js" => JS,
};

/// Strong ETags, computed once: the first 16 bytes of each asset's SHA-256.
static ETAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| format!("\"{}\"", hex::encode(&Sha256::digest(a.body)[..16])))
        .collect()
});

/// The dashboard's routes, merged into the application router.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/signin", get(index))
        .route("/w/{*rest}", get(index))
        .route("/settings/{*rest}", get(index))
        .route("/assets/{*path}", get(asset))
}

async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers).unwrap_or_else(missing)
}

async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    serve(&path, &headers).unwrap_or_else(missing)
}

/// For the application's fallback: `Some(index.html)` when an unknown path is a page a browser
/// navigates to (a `GET`/`HEAD` outside `/api/` that accepts HTML), else `None` so the caller
/// answers with its JSON 404.
pub fn fallback_page(method: &Method, uri: &Uri, headers: &HeaderMap) -> Option<Response> {
    let path = uri.path();
    let navigable = (method == Method::GET || method == Method::HEAD)
        && !path.starts_with("/api/")
        && !path.starts_with("/assets/")
        && headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|accept| accept.contains("text/html"));
    navigable.then(|| serve("index.html", headers).unwrap_or_else(missing))
}

/// One embedded asset with its content type, `ETag` and `Cache-Control: no-cache` (304 when
/// `request` already holds it); `None` for a path that is not embedded.
pub(crate) fn serve(path: &str, request: &HeaderMap) -> Option<Response> {
    let i = ASSETS.iter().position(|a| a.path == path)?;
    let asset = &ASSETS[i];
    let etag = &ETAGS[i];
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        asset.body.into_response()
    };
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    Some(response)
}

fn missing() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "not found",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files_under(dir: &std::path::Path, base: &std::path::Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).expect("dashboard folder is readable") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                files_under(&path, base, out);
            } else {
                let rel = path.strip_prefix(base).expect("inside base");
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }

    #[test]
    fn every_dashboard_file_is_embedded_and_nothing_else() {
        let base = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboard");
        let mut on_disk = Vec::new();
        files_under(&base, &base, &mut on_disk);
        on_disk.retain(|f| !NOT_SERVED.contains(&f.as_str()));
        on_disk.sort();
        let mut embedded: Vec<String> = ASSETS.iter().map(|a| a.path.to_owned()).collect();
        embedded.sort();
        assert_eq!(
            on_disk, embedded,
            "control/dashboard and the ASSETS list differ"
        );
    }

    #[test]
    fn no_inline_script_or_style_in_index() {
        let index = std::str::from_utf8(ASSETS[0].body).expect("utf-8");
        assert!(
            !index.contains("<script>") && !index.contains("<style") && !index.contains("style="),
            "index.html must not need 'unsafe-inline'"
        );
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe"));
    }

    #[test]
    fn nothing_is_loaded_from_another_origin() {
        // Imports, script/style/icon links and CSS urls must all stay on this origin.
        for asset in ASSETS {
            let text = String::from_utf8_lossy(asset.body);
            for opener in [
                "from '", "from \"", "import(", "src=\"", "href=\"", "url(\"",
            ] {
                for (at, _) in text.match_indices(opener) {
                    let target = text[at + opener.len()..].trim_start_matches(['\'', '"']);
                    assert!(
                        !target.starts_with("http") && !target.starts_with("//"),
                        "{} loads {}",
                        asset.path,
                        &target[..target.len().min(60)]
                    );
                }
            }
        }
    }

    #[test]
    fn matching_etag_gets_not_modified() {
        let first = serve("app.js", &HeaderMap::new()).expect("app.js exists");
        assert_eq!(first.status(), StatusCode::OK);
        let etag = first.headers()[header::ETAG].clone();
        let mut again = HeaderMap::new();
        again.insert(header::IF_NONE_MATCH, etag);
        let second = serve("app.js", &again).expect("app.js exists");
        assert_eq!(second.status(), StatusCode::NOT_MODIFIED);
    }

    #[test]
    fn browser_navigation_to_unknown_paths_gets_the_page_but_api_paths_do_not() {
        let mut html = HeaderMap::new();
        html.insert(header::ACCEPT, HeaderValue::from_static("text/html,*/*"));
        let page: Uri = "/some/where".parse().expect("uri");
        let api: Uri = "/api/v1/nope".parse().expect("uri");
        assert!(fallback_page(&Method::GET, &page, &html).is_some());
        assert!(fallback_page(&Method::GET, &api, &html).is_none());
        assert!(fallback_page(&Method::POST, &page, &html).is_none());
        assert!(fallback_page(&Method::GET, &page, &HeaderMap::new()).is_none());
    }
}
