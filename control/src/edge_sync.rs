//! Keeping the edge in sync: the outbox deliverer (push) and the pull endpoint.
//!
//! **Push.** Every change the edge must learn committed an `edge_outbox` row with the full
//! record. One replica at a time delivers (a PostgreSQL advisory lock; see `Leadership`).
//! [`run_deliverer`] claims the oldest pending rows in id order with a lease
//! (`next_attempt_at` moved 10 s ahead, so rows a dying deliverer held are retried), sends
//! them as one signed [`SyncBatch`] with `version = row id`, and marks them delivered only on
//! the edge's `200`. Failures back off exponentially (250 ms to 30 s) and hold the queue: no
//! row overtakes an older one.
//! Delivery is at-least-once; the edge applies a record only if its version is newer, so the
//! effect is exactly once.
//!
//! Latency: a successful write request wakes this replica's deliverer at once
//! ([`wake_after_writes`]) and, on PostgreSQL, the delivering replica through
//! `NOTIFY keygate_outbox`; a lost notification is made up by the next poll, within
//! [`POLL_INTERVAL`].
//!
//! **Pull.** `GET /api/v1/edge/records/{digest}` answers the edge's signed pull on a cache and
//! KV miss with the key's current record, the reply signed and bound to the request's nonce
//! (contract in `keygate_shared::record::pull_path`).

use std::time::Duration;

use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use keygate_shared::key::KeyDigest;
use keygate_shared::record::{pull_path, EdgeRecord, PullReply, SyncAck, SyncBatch, SYNC_PATH};
use keygate_shared::signing::{self, Purpose, HEADER_NONCE, HEADER_SIGNATURE, HEADER_TIMESTAMP};

use crate::db::WriteTx;
use crate::error::{ApiError, ApiResult};
use crate::http::AppState;
use crate::ids::now_ms;
use crate::outbox::OutboxStore;
use crate::with_db;

/// How often an idle deliverer looks for rows written by other replicas.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// How long a claimed row is reserved for the claiming replica.
const LEASE_MS: i64 = 10_000;
/// Rows per sync request.
const BATCH: i64 = 100;
/// Longest wait between retries.
const MAX_BACKOFF_MS: i64 = 30_000;

/// Routes: the edge's pull endpoint.
pub fn router() -> Router<AppState> {
    Router::new().route("/edge/records/{digest}", get(pull))
}

/// Middleware: after a successful state-changing request, wake the edge deliverer.
pub async fn wake_after_writes(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let writes = !req.method().is_safe();
    let res = next.run(req).await;
    if writes && res.status().is_success() {
        state.edge_wakeup.notify_one();
        if let crate::db::Db::Postgres(pool) = &state.db {
            // The delivering replica may be another one: tell it through the database.
            let pool = pool.clone();
            tokio::spawn(async move {
                if let Err(e) = sqlx::query(NOTIFY).execute(&pool).await {
                    tracing::debug!(error = %e, "could not notify the delivering replica");
                }
            });
        }
    }
    res
}

/// The PostgreSQL channel replicas use to wake the delivering one.
const CHANNEL: &str = "keygate_outbox";
const NOTIFY: &str = "NOTIFY keygate_outbox";

/// Waits for a wake-up from another replica (PostgreSQL `LISTEN`); never returns without one.
async fn notified_by_another_replica(listener: &mut Option<sqlx::postgres::PgListener>) {
    match listener {
        Some(l) => {
            if l.recv().await.is_err() {
                // The listener reconnects on the next call; avoid a hot loop meanwhile.
                tokio::time::sleep(POLL_INTERVAL).await;
            }
        }
        None => std::future::pending().await,
    }
}

fn unix_secs() -> u64 {
    u64::try_from(now_ms() / 1000).unwrap_or_default()
}

fn edge_secret(state: &AppState) -> Option<&[u8]> {
    state
        .settings
        .edge_secret
        .as_deref()
        .map(str::as_bytes)
        .filter(|s| !s.is_empty())
}

async fn pull(
    State(state): State<AppState>,
    Path(digest_hex): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let Some(secret) = edge_secret(&state) else {
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
    signing::verify(
        secret,
        Purpose::Pull,
        timestamp,
        &nonce,
        path.as_bytes(),
        header(HEADER_SIGNATURE),
        unix_secs(),
    )
    .map_err(refused)?;
    let record: Option<EdgeRecord> = with_db!(&state.db, |pool| {
        let mut conn = pool.acquire().await?;
        conn.current_edge_record(&digest).await
    })?;
    let body = serde_json::to_vec(&PullReply { record }).map_err(ApiError::internal)?;
    let now = unix_secs();
    let tag = signing::sign(secret, Purpose::PullReply, now, &nonce, &body);
    let mut res = (StatusCode::OK, body).into_response();
    let h = res.headers_mut();
    h.insert("content-type", HeaderValue::from_static("application/json"));
    for (name, value) in [
        (HEADER_TIMESTAMP, now.to_string()),
        (HEADER_NONCE, nonce),
        (HEADER_SIGNATURE, tag),
    ] {
        h.insert(
            name,
            HeaderValue::from_str(&value).map_err(ApiError::internal)?,
        );
    }
    Ok(res)
}

/// One claimed outbox row.
type Claimed = (i64, String);

/// Claims the oldest undelivered rows, in id order, if the oldest one is due. The queue is
/// strictly ordered: while its head waits out a backoff, nothing behind it overtakes it.
async fn claim(state: &AppState) -> Result<Vec<Claimed>, sqlx::Error> {
    let now = now_ms();
    let mut rows: Vec<Claimed> = with_db!(&state.db, |pool| {
        async {
        let mut tx = pool.begin_write().await?;
        let head: Option<i64> = sqlx::query_scalar(
            "SELECT next_attempt_at FROM edge_outbox WHERE delivered_at IS NULL ORDER BY id LIMIT 1",
        )
        .fetch_optional(&mut *tx)
        .await?;
        if head.is_none_or(|due| due > now) {
            return Ok(Vec::new());
        }
        let rows = sqlx::query_as(
            "UPDATE edge_outbox SET next_attempt_at = $1, attempts = attempts + 1
              WHERE id IN (SELECT id FROM edge_outbox WHERE delivered_at IS NULL ORDER BY id LIMIT $2)
              RETURNING id, record",
        )
        .bind(now + LEASE_MS)
        .bind(BATCH)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok::<_, sqlx::Error>(rows)
    }
    .await
    })?;
    rows.sort_by_key(|(id, _)| *id);
    Ok(rows)
}

/// Why a batch was not acknowledged.
#[derive(Debug)]
struct DeliveryError(String);

async fn send(
    state: &AppState,
    http: &reqwest::Client,
    edge_url: &str,
    secret: &[u8],
    rows: &[Claimed],
) -> Result<SyncAck, DeliveryError> {
    let mut batch = SyncBatch::default();
    for (id, json) in rows {
        let mut record: EdgeRecord = serde_json::from_str(json)
            .map_err(|e| DeliveryError(format!("outbox row {id} is not a record: {e}")))?;
        record.version = u64::try_from(*id).unwrap_or_default();
        batch.records.push(record);
    }
    let body = serde_json::to_vec(&batch).map_err(|e| DeliveryError(e.to_string()))?;
    let timestamp = unix_secs();
    let nonce = keygate_shared::random::hex_token();
    let tag = signing::sign(secret, Purpose::Sync, timestamp, &nonce, &body);
    let res = http
        .post(format!("{edge_url}{SYNC_PATH}"))
        .header("content-type", "application/json")
        .header(HEADER_TIMESTAMP, timestamp.to_string())
        .header(HEADER_NONCE, &nonce)
        .header(HEADER_SIGNATURE, tag)
        .body(body)
        .send()
        .await
        .map_err(|e| DeliveryError(format!("edge unreachable: {e}")))?;
    let status = res.status();
    let text = res.text().await.unwrap_or_default();
    if !status.is_success() {
        let snippet: String = text.chars().take(200).collect();
        return Err(DeliveryError(format!("edge answered {status}: {snippet}")));
    }
    let _ = state;
    serde_json::from_str(&text)
        .map_err(|e| DeliveryError(format!("edge acknowledgement unreadable: {e}")))
}

async fn mark_delivered(state: &AppState, ids: &[i64]) -> Result<(), sqlx::Error> {
    let now = now_ms();
    with_db!(&state.db, |pool| {
        let mut tx = pool.begin().await?;
        for id in ids {
            sqlx::query(
                "UPDATE edge_outbox SET delivered_at = $1, last_error = NULL WHERE id = $2",
            )
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await
    })
}

async fn mark_failed(state: &AppState, ids: &[i64], error: &str) -> Result<(), sqlx::Error> {
    let now = now_ms();
    with_db!(&state.db, |pool| {
        let mut tx = pool.begin().await?;
        for id in ids {
            let attempts: i64 =
                sqlx::query_scalar("SELECT attempts FROM edge_outbox WHERE id = $1")
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?;
            let backoff = (250i64 << attempts.clamp(0, 20)).min(MAX_BACKOFF_MS);
            sqlx::query(
                "UPDATE edge_outbox SET next_attempt_at = $1, last_error = $2 WHERE id = $3",
            )
            .bind(now + backoff)
            .bind(error)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await
    })
}

/// Which replica delivers. The edge applies a record only if its version is newer, but that
/// check is a KV read then write: two batches in flight at once that touch one key could let
/// the older one win. So exactly one replica delivers at a time, one batch at a time: on
/// PostgreSQL the holder of a session advisory lock (released by the database when that
/// replica's connection dies, so another takes over within [`POLL_INTERVAL`]); on SQLite there
/// is one process.
#[derive(Default)]
struct Leadership {
    conn: Option<sqlx::PgConnection>,
}

/// The advisory lock key: "keygate outbox" in ASCII, as a number.
const LEADER_LOCK: i64 = 0x6b67_6f75_7462_6f78;

impl Leadership {
    async fn hold(&mut self, state: &AppState) -> bool {
        let crate::db::Db::Postgres(pool) = &state.db else {
            return true;
        };
        if self.conn.is_some() {
            // Still ours while the session lives.
            let alive = match self.conn.as_mut() {
                Some(c) => sqlx::query("SELECT 1").execute(&mut *c).await.is_ok(),
                None => false,
            };
            if alive {
                return true;
            }
            self.conn = None;
        }
        let Ok(conn) = pool.acquire().await else {
            return false;
        };
        // Detached: a pooled connection would carry the session lock back into the pool.
        let mut conn = conn.detach();
        match sqlx::query_scalar::<_, bool>("SELECT pg_try_advisory_lock($1)")
            .bind(LEADER_LOCK)
            .fetch_one(&mut conn)
            .await
        {
            Ok(true) => {
                tracing::info!("this replica now delivers edge updates");
                self.conn = Some(conn);
                true
            }
            _ => false,
        }
    }
}

/// Delivers until `shutdown` fires. Does nothing (returns at once) without an edge URL and
/// secret: rows then wait in the outbox until one is configured.
pub async fn run_deliverer(state: AppState, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let (Some(edge_url), Some(secret)) = (
        state.settings.edge_url.clone(),
        edge_secret(&state).map(<[u8]>::to_vec),
    ) else {
        tracing::warn!(
            "KEYGATE_EDGE_URL or KEYGATE_EDGE_SECRET is not set: edge updates stay in the outbox"
        );
        return;
    };
    let http = match reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the HTTP client for edge delivery");
            return;
        }
    };
    tracing::info!(edge = %edge_url, "edge deliverer started");
    let mut leadership = Leadership::default();
    let mut listener: Option<sqlx::postgres::PgListener> = None;
    loop {
        if !leadership.hold(&state).await {
            // Another replica delivers; look again later (it may die).
            tokio::select! {
                _ = tokio::time::sleep(POLL_INTERVAL) => continue,
                _ = shutdown.changed() => return,
            }
        }
        let delivered_something = match claim(&state).await {
            Ok(rows) if rows.is_empty() => false,
            Ok(rows) => {
                let ids: Vec<i64> = rows.iter().map(|(id, _)| *id).collect();
                match send(&state, &http, &edge_url, &secret, &rows).await {
                    Ok(ack) => {
                        crate::metrics::EDGE_DELIVERED.add(ids.len() as u64);
                        tracing::debug!(
                            rows = ids.len(),
                            applied = ack.applied,
                            skipped = ack.skipped,
                            "edge acknowledged"
                        );
                        if let Err(e) = mark_delivered(&state, &ids).await {
                            tracing::error!(error = %e, "could not mark outbox rows delivered; they will be resent");
                        }
                        true
                    }
                    Err(DeliveryError(e)) => {
                        crate::metrics::EDGE_FAILURES.add(1);
                        tracing::warn!(error = %e, rows = ids.len(), "edge delivery failed; will retry");
                        if let Err(e) = mark_failed(&state, &ids, &e).await {
                            tracing::error!(error = %e, "could not record a failed delivery");
                        }
                        false
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "could not claim outbox rows");
                false
            }
        };
        if delivered_something {
            continue;
        }
        if listener.is_none() {
            if let crate::db::Db::Postgres(pool) = &state.db {
                listener = match sqlx::postgres::PgListener::connect_with(pool).await {
                    Ok(mut l) => l.listen(CHANNEL).await.ok().map(|_| l),
                    Err(_) => None,
                };
            }
        }
        tokio::select! {
            _ = state.edge_wakeup.notified() => {}
            _ = notified_by_another_replica(&mut listener) => {}
            _ = tokio::time::sleep(POLL_INTERVAL) => {}
            _ = shutdown.changed() => return,
        }
    }
}
