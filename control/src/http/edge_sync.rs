//! The edge's side of the HTTP surface: the signed pull `GET /api/v1/edge/records/{digest}`
//! (answered on a cache and KV miss with the key's current record, the reply signed and bound
//! to the request's nonce; contract in `keygate_shared::record::pull_path`), and the
//! middleware that wakes the edge deliverer after writes (`crate::jobs::deliverer`).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use keygate_shared::key::KeyDigest;
use keygate_shared::record::{pull_path, PullReply};
use keygate_shared::signing::{
    self, Purpose, HEADER_KEY_ID, HEADER_NONCE, HEADER_SIGNATURE, HEADER_TIMESTAMP,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::edge_sync::EdgePullReply;
use crate::api::ErrorBody;
use crate::error::{ApiError, ApiResult};
use crate::http::AppState;
use crate::ids::unix_secs;
use crate::store;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(pull))
}

/// After a successful state-changing request (`writes`) that wrote outbox rows (the count
/// moved from `outbox_before`; a concurrent request's rows harmlessly count too), wake the
/// edge deliverer: this replica's at once, the delivering one's through the database. A
/// verify, or any other write the edge does not hear of, wakes nothing (on PostgreSQL each
/// wake-up is a `NOTIFY`).
pub fn wake_after_write(state: &AppState, writes: bool, outbox_before: u64, res: &Response) {
    if writes && res.status().is_success() && store::outbox::rows_written() != outbox_before {
        state.edge_wakeup.notify_one();
        store::delivery::notify_replicas(&state.db);
    }
}

/// The edge's signed pull of one publishable key's record.
#[utoipa::path(
    get, path = "/edge/records/{digest}", tag = "edge",
    params(
        ("digest" = String, Path, description = "The publishable key's SHA-256 digest (hex)"),
        ("x-keygate-timestamp" = String, Header, description = "Unix seconds of the signature"),
        ("x-keygate-nonce" = String, Header, description = "A fresh nonce, echoed in the signed reply"),
        ("x-keygate-key-id" = Option<String>, Header, description = "Which edge secret signed"),
    ),
    responses(
        (status = 200, description = "The key's current record (null if unknown), signed with the x-keygate-* headers over these exact bytes", body = EdgePullReply),
        (status = 401, description = "Bad, stale or missing signature", body = ErrorBody),
        (status = 404, description = "`EDGE_NOT_CONFIGURED` (no edge secret), or a digest that is not hex", body = ErrorBody),
    ),
    security(("edgeSignature" = [])),
)]
async fn pull(
    State(state): State<AppState>,
    Path(digest_hex): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let Some(secret) = state.settings.edge_secret_bytes() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "EDGE_NOT_CONFIGURED",
            "this control plane has no KEYGATE_EDGE_SECRET, so it serves no edge records",
        ));
    };
    let refused = |e: signing::SignatureError| ApiError::unauthorized(e.code(), e.to_string());
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    let digest = KeyDigest::from_hex(&digest_hex).ok_or_else(|| ApiError::not_found("record"))?;
    let timestamp = signing::parse_timestamp(header(HEADER_TIMESTAMP)).map_err(refused)?;
    let nonce = header(HEADER_NONCE).to_owned();
    let path = pull_path(&digest);
    // The current secret and, during a rotation's overlap, the previous one.
    let previous = state.settings.edge_secret_previous_bytes();
    let accepted: Vec<&[u8]> = std::iter::once(secret).chain(previous).collect();
    let kid = headers.get(HEADER_KEY_ID).and_then(|v| v.to_str().ok());
    let used = signing::verify_any(
        &accepted,
        kid,
        Purpose::Pull,
        timestamp,
        &nonce,
        path.as_bytes(),
        header(HEADER_SIGNATURE),
        unix_secs(),
    )
    .map_err(refused)?;
    let record = store::outbox::current_record(&state.db, &digest).await?;
    let body = serde_json::to_vec(&PullReply { record }).map_err(ApiError::internal)?;
    // Answer with the key the edge asked with: it surely accepts that one.
    signed_reply(accepted[used], nonce, body)
}

/// The pull's answer: `body`, signed for the edge and bound to its `nonce`.
fn signed_reply(secret: &[u8], nonce: String, body: Vec<u8>) -> ApiResult<Response> {
    let now = unix_secs();
    let tag = signing::sign(secret, Purpose::PullReply, now, &nonce, &body);
    let mut res = (StatusCode::OK, body).into_response();
    let h = res.headers_mut();
    h.insert("content-type", HeaderValue::from_static("application/json"));
    for (name, value) in [
        (HEADER_TIMESTAMP, now.to_string()),
        (HEADER_NONCE, nonce),
        (HEADER_SIGNATURE, tag),
        (HEADER_KEY_ID, signing::key_id(secret)),
    ] {
        h.insert(
            name,
            HeaderValue::from_str(&value).map_err(ApiError::internal)?,
        );
    }
    Ok(res)
}
