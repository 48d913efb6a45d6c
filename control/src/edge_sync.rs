//! Keeping the edge in sync: the outbox deliverer (push) and the pull endpoint.
//!
//! **Push.** Every change the edge must learn committed an `edge_outbox` row with the full
//! record and its version (from the persisted clock, see `outbox`). One replica at a time
//! delivers (a PostgreSQL advisory lock; see `Leadership`), one batch at a time.
//! [`run_deliverer`] claims **each key's newest pending row** that is due (records are full
//! snapshots, so older ones are never sent), oldest key first, cut by bytes and count
//! (`keygate_shared::record::batch_len`, far below the edge's 1 MiB and 1,000 records), with
//! a lease (rows a dying deliverer held are retried after `LEASE_MS`), and sends them as one
//! signed `SyncBatch`. On the edge's `200`:
//! - records it refused (`SyncAck.refused`) are set aside as **dead letters** (metric
//!   `keygate_edge_dead_letters`, a log line, an audit entry `edge_record.dead_letter`;
//!   `keygate outbox dead-letters` lists them, `keygate outbox retry` puts them back);
//! - keys it holds at a newer version (`SyncAck.heldNewer`: this database's clock is behind,
//!   e.g. restored from a backup) move the clock past that version and are re-issued;
//! - the rest is delivered, with every older pending row of the same key.
//!
//! A `400` or `413` for a whole batch splits it in halves until the culprit is alone, then
//! sets it aside. A revocation is never set aside: it is retried with backoff, which holds up
//! no other key. Anything else (unreachable, 5xx) retries each row with a backoff of 250 ms
//! doubling up to [`MAX_BACKOFF_MS`], so after an outage every pending change is retried
//! within 2 s. Delivery is at-least-once; the edge applies a record only if its version is
//! newer, so the effect is exactly once.
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
use keygate_shared::record::{
    batch_len, pull_path, EdgeRecord, PullReply, SyncAck, MAX_BATCH_RECORDS, SYNC_PATH,
};
use keygate_shared::signing::{
    self, Purpose, HEADER_KEY_ID, HEADER_NONCE, HEADER_SIGNATURE, HEADER_TIMESTAMP,
};

use crate::error::{ApiError, ApiResult};
use crate::http::AppState;
use crate::ids::now_ms;
use crate::outbox::{DeliveryAudit, OutboxError, OutboxStore};
use crate::store::WriteTx;
use crate::with_db;

/// How often an idle deliverer looks for rows written by other replicas.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// How long a claimed row is reserved for the claiming replica (longer than a send may take).
const LEASE_MS: i64 = 10_000;
/// Longest wait between retries of a row: after an edge outage ends, every pending change is
/// tried again within this, then delivered in the next few batches.
pub const MAX_BACKOFF_MS: i64 = 2_000;

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
        if let crate::store::Db::Postgres(pool) = &state.db {
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
    // The current secret and, during a rotation's overlap, the previous one.
    let previous = state
        .settings
        .edge_secret_previous
        .as_deref()
        .map(str::as_bytes)
        .filter(|s| !s.is_empty());
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
    let record: Option<EdgeRecord> = with_db!(&state.db, |pool| {
        let mut conn = pool.acquire().await?;
        conn.current_edge_record(&digest).await
    })?;
    let body = serde_json::to_vec(&PullReply { record }).map_err(ApiError::internal)?;
    let now = unix_secs();
    // Answer with the key the edge asked with: it surely accepts that one.
    let secret = accepted[used];
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

/// One claimed outbox row: the newest pending record of its key.
#[derive(Debug)]
struct Claimed {
    id: i64,
    digest: String,
    version: i64,
    record: EdgeRecord,
    /// The record's JSON, as sent.
    json: String,
}

/// Claims the next batch: each key's newest pending row that is due (not dead-lettered, not
/// backing off, not leased), oldest first, as many as fit [`batch_len`]. Older pending rows
/// of a key are never sent: records are full snapshots, so an outage never queues more than
/// one per key. A key backing off or dead-lettered holds back only itself.
async fn claim(state: &AppState) -> Result<Vec<Claimed>, sqlx::Error> {
    let now = now_ms();
    let candidates: Vec<(i64, String, i64, String)> = with_db!(&state.db, |pool| {
        sqlx::query_as(
            "SELECT o.id, o.key_digest, o.version, o.record FROM edge_outbox o
              WHERE o.delivered_at IS NULL AND o.dead_at IS NULL AND o.next_attempt_at <= $1
                AND o.version = (SELECT MAX(n.version) FROM edge_outbox n
                                  WHERE n.key_digest = o.key_digest AND n.delivered_at IS NULL)
              ORDER BY o.id LIMIT $2",
        )
        .bind(now)
        .bind(MAX_BATCH_RECORDS as i64)
        .fetch_all(pool)
        .await
    })?;
    let mut rows = Vec::with_capacity(candidates.len());
    for (id, digest, version, json) in candidates {
        match serde_json::from_str::<EdgeRecord>(&json) {
            Ok(mut record) => {
                // The row's version is the truth (rows from before the clock carried another).
                record.version = u64::try_from(version).unwrap_or_default();
                let json = serde_json::to_string(&record).unwrap_or(json);
                rows.push(Claimed {
                    id,
                    digest,
                    version,
                    record,
                    json,
                });
            }
            Err(e) => {
                tracing::error!(row = id, error = %e, "an outbox row is not a record; set aside");
                set_aside(
                    state,
                    id,
                    &workspace_of(&json),
                    &digest,
                    version,
                    "UNREADABLE_RECORD",
                )
                .await?;
            }
        }
    }
    let sizes: Vec<usize> = rows.iter().map(|r| r.json.len()).collect();
    rows.truncate(batch_len(&sizes));
    if rows.is_empty() {
        return Ok(rows);
    }
    with_db!(&state.db, |pool| {
        async {
            let mut tx = pool.begin_write().await?;
            for row in &rows {
                sqlx::query(
                    "UPDATE edge_outbox SET next_attempt_at = $1, attempts = attempts + 1 WHERE id = $2",
                )
                .bind(now + LEASE_MS)
                .bind(row.id)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await
        }
        .await
    })?;
    Ok(rows)
}

/// The workspace named in a record's JSON, even one that no longer parses as a record.
fn workspace_of(json: &str) -> String {
    serde_json::from_str::<serde_json::Value>(json)
        .ok()
        .and_then(|v| v["workspaceId"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// What the edge made of one sync request.
#[derive(Debug)]
enum Sent {
    /// `200` with its acknowledgement.
    Acked(SyncAck),
    /// `400` or `413`: something in the batch is unacceptable (a one-record batch pins it).
    Rejected(String),
    /// Anything else (unreachable, 5xx, signature refused): retry later, unchanged.
    Failed(String),
}

async fn send(http: &reqwest::Client, edge_url: &str, secret: &[u8], rows: &[Claimed]) -> Sent {
    let mut body = String::from(r#"{"records":["#);
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&row.json);
    }
    body.push_str("]}");
    let timestamp = unix_secs();
    let nonce = keygate_shared::random::hex_token();
    let tag = signing::sign(secret, Purpose::Sync, timestamp, &nonce, body.as_bytes());
    let res = match http
        .post(format!("{edge_url}{SYNC_PATH}"))
        .header("content-type", "application/json")
        .header(HEADER_TIMESTAMP, timestamp.to_string())
        .header(HEADER_NONCE, &nonce)
        .header(HEADER_SIGNATURE, tag)
        .header(HEADER_KEY_ID, signing::key_id(secret))
        .body(body)
        .send()
        .await
    {
        Ok(res) => res,
        Err(e) => return Sent::Failed(format!("edge unreachable: {e}")),
    };
    let status = res.status();
    let text = res.text().await.unwrap_or_default();
    if status == StatusCode::BAD_REQUEST || status == StatusCode::PAYLOAD_TOO_LARGE {
        let reason = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["error"]["reason"].as_str().map(str::to_owned))
            .filter(|r| r.len() <= 64 && r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
            .unwrap_or_else(|| "UNKNOWN".into());
        return Sent::Rejected(format!("HTTP_{}_{reason}", status.as_u16()));
    }
    if !status.is_success() {
        let snippet: String = text.chars().take(200).collect();
        return Sent::Failed(format!("edge answered {status}: {snippet}"));
    }
    match serde_json::from_str(&text) {
        Ok(ack) => Sent::Acked(ack),
        Err(e) => Sent::Failed(format!("edge acknowledgement unreadable: {e}")),
    }
}

/// Delivers claimed rows. A batch the edge rejects as a whole (`400`/`413`) is split in
/// halves until the culprit is alone, so one bad record never holds back the others; the
/// culprit is set aside ([`refuse`]). A transient failure puts every row not yet settled
/// back with a capped backoff. Returns whether anything was acknowledged.
async fn deliver(
    state: &AppState,
    http: &reqwest::Client,
    edge_url: &str,
    secret: &[u8],
    rows: Vec<Claimed>,
) -> Result<bool, sqlx::Error> {
    let mut acked = false;
    let mut todo = vec![rows];
    while let Some(mut chunk) = todo.pop() {
        match send(http, edge_url, secret, &chunk).await {
            Sent::Acked(ack) => {
                acked = true;
                settle(state, &chunk, &ack).await?;
            }
            Sent::Rejected(reason) if chunk.len() > 1 => {
                tracing::info!(rows = chunk.len(), %reason, "edge refused a batch; splitting it");
                let right = chunk.split_off(chunk.len() / 2);
                todo.push(right);
                todo.push(chunk);
            }
            Sent::Rejected(reason) => {
                refuse(state, &chunk[0], &reason).await?;
            }
            Sent::Failed(error) => {
                crate::metrics::EDGE_FAILURES.add(1);
                let pending: Vec<&Claimed> = chunk.iter().chain(todo.iter().flatten()).collect();
                tracing::warn!(error = %error, rows = pending.len(), "edge delivery failed; will retry");
                mark_failed(state, &pending, &error).await?;
                break;
            }
        }
    }
    Ok(acked)
}

/// Applies an acknowledgement: refused records are set aside, keys the edge holds at a newer
/// version get the clock moved past it and a re-issued record, everything else is delivered
/// (with every older pending row of the same key).
async fn settle(state: &AppState, rows: &[Claimed], ack: &SyncAck) -> Result<(), sqlx::Error> {
    let mut delivered = Vec::new();
    for row in rows {
        let refused = ack
            .refused
            .iter()
            .find(|r| r.key_digest == row.record.key_digest && r.version == row.record.version);
        if let Some(r) = refused {
            let reason: String = r.reason.chars().take(64).collect();
            refuse(state, row, &format!("REFUSED_{reason}")).await?;
            continue;
        }
        delivered.push(row);
    }
    let now = now_ms();
    with_db!(&state.db, |pool| {
        async {
            let mut tx = pool.begin_write().await?;
            for row in &delivered {
                sqlx::query(
                    "UPDATE edge_outbox SET delivered_at = $1, last_error = NULL
                      WHERE key_digest = $2 AND version <= $3 AND delivered_at IS NULL",
                )
                .bind(now)
                .bind(&row.digest)
                .bind(row.version)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await
        }
        .await
    })?;
    crate::metrics::EDGE_DELIVERED.add(delivered.len() as u64);
    tracing::debug!(
        rows = rows.len(),
        applied = ack.applied,
        skipped = ack.skipped,
        refused = ack.refused.len(),
        "edge acknowledged"
    );
    for held in &ack.held_newer {
        let Some(row) = rows
            .iter()
            .find(|r| r.record.key_digest == held.key_digest && held.version > r.record.version)
        else {
            continue;
        };
        reissue(state, row, held.version).await?;
    }
    Ok(())
}

/// The edge holds `held`, newer than the version sent: this database's clock is behind (a
/// restore, a move, a fresh database). Move the clock past it and queue the key's current
/// record again, so it lands with a newer version.
async fn reissue(state: &AppState, row: &Claimed, held: u64) -> Result<(), sqlx::Error> {
    let digest = row.record.key_digest;
    let result: Result<bool, OutboxError> = with_db!(&state.db, |pool| {
        async {
            let mut tx = pool.begin_write().await?;
            tx.as_mut().catch_up_clock(held).await?;
            let queued = tx.as_mut().enqueue_digest(&digest).await?;
            tx.commit().await?;
            Ok::<_, OutboxError>(queued)
        }
        .await
    });
    match result {
        Ok(_) => {
            crate::metrics::EDGE_REISSUED.add(1);
            tracing::warn!(
                workspace = %row.record.workspace_id,
                key = %&row.digest[..12],
                sent = row.version,
                held,
                "the edge holds a newer version of this key than this database issued; clock moved past it, record re-issued"
            );
            state.edge_wakeup.notify_one();
            Ok(())
        }
        Err(OutboxError::Db(e)) => Err(e),
        Err(e) => {
            tracing::error!(key = %&row.digest[..12], held, error = %e, "cannot re-issue a record past the edge's version");
            Ok(())
        }
    }
}

/// The edge refused this one record. A revocation is retried with backoff (revoked is
/// terminal and must arrive; its backoff holds up no other key); anything else is set aside
/// as a dead letter.
async fn refuse(state: &AppState, row: &Claimed, reason: &str) -> Result<(), sqlx::Error> {
    if !row.record.may_dead_letter() {
        tracing::error!(
            workspace = %row.record.workspace_id,
            key = %&row.digest[..12],
            version = row.version,
            %reason,
            "the edge refused a revocation; retrying it with backoff"
        );
        return mark_failed(state, &[row], reason).await;
    }
    set_aside(
        state,
        row.id,
        &row.record.workspace_id,
        &row.digest,
        row.version,
        reason,
    )
    .await
}

/// Sets one row aside as a dead letter: metric, log line, audit entry; `keygate outbox
/// retry` puts it back.
async fn set_aside(
    state: &AppState,
    id: i64,
    workspace_id: &str,
    digest: &str,
    version: i64,
    reason: &str,
) -> Result<(), sqlx::Error> {
    let now = now_ms();
    let client = crate::http::ClientInfo::default();
    with_db!(&state.db, |pool| {
        async {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "UPDATE edge_outbox SET dead_at = $1, dead_reason = $2, last_error = $2 WHERE id = $3",
            )
            .bind(now)
            .bind(reason)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            // Older snapshots of the key will never be sent: this one, or a newer one, will.
            sqlx::query(
                "UPDATE edge_outbox SET delivered_at = $1, last_error = 'superseded'
                  WHERE key_digest = $2 AND version < $3 AND delivered_at IS NULL AND dead_at IS NULL",
            )
            .bind(now)
            .bind(digest)
            .bind(version)
            .execute(&mut *tx)
            .await?;
            tx.as_mut()
                .audit_delivery(
                    workspace_id,
                    "edge deliverer",
                    "edge_record.dead_letter",
                    digest,
                    serde_json::json!({"version": version, "reason": reason}),
                    &client,
                )
                .await?;
            tx.commit().await
        }
        .await
    })?;
    crate::metrics::EDGE_DEAD_LETTERED.add(1);
    tracing::warn!(
        workspace = %workspace_id,
        key = %digest.get(..12).unwrap_or(digest),
        version,
        %reason,
        "the edge refused a record; set aside as a dead letter (retry: keygate outbox retry)"
    );
    Ok(())
}

async fn mark_failed(state: &AppState, rows: &[&Claimed], error: &str) -> Result<(), sqlx::Error> {
    let now = now_ms();
    let error: String = error.chars().take(500).collect();
    with_db!(&state.db, |pool| {
        async {
            let mut tx = pool.begin_write().await?;
            for row in rows {
                let attempts: i64 =
                    sqlx::query_scalar("SELECT attempts FROM edge_outbox WHERE id = $1")
                        .bind(row.id)
                        .fetch_one(&mut *tx)
                        .await?;
                sqlx::query(
                    "UPDATE edge_outbox SET next_attempt_at = $1, last_error = $2 WHERE id = $3",
                )
                .bind(now + backoff_ms(attempts - 1))
                .bind(&error)
                .bind(row.id)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await
        }
        .await
    })
}

/// The wait before retrying a row after `attempts + 1` failed attempts: 250 ms doubling,
/// capped at [`MAX_BACKOFF_MS`], so after an outage ends every pending row is tried again
/// within that cap.
pub fn backoff_ms(attempts: i64) -> i64 {
    (250i64 << attempts.clamp(0, 20)).min(MAX_BACKOFF_MS)
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
        let crate::store::Db::Postgres(pool) = &state.db else {
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
            Ok(rows) => match deliver(&state, &http, &edge_url, &secret, rows).await {
                Ok(acked) => acked,
                Err(e) => {
                    tracing::error!(error = %e, "could not record a delivery outcome; rows will be resent");
                    false
                }
            },
            Err(e) => {
                tracing::error!(error = %e, "could not claim outbox rows");
                false
            }
        };
        if delivered_something {
            continue;
        }
        if listener.is_none() {
            if let crate::store::Db::Postgres(pool) = &state.db {
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
