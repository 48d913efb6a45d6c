//! The edge outbox deliverer (push).
//!
//! Every change the edge must learn committed an `edge_outbox` row with the full record and
//! its version (from the persisted clock, see [`crate::store::outbox`]). One replica at a
//! time delivers (a PostgreSQL advisory lock, [`Leadership`]), one batch at a time. [`run`]
//! claims **each key's newest pending row** that is due (records are full snapshots, so
//! older ones are never sent), oldest key first, cut by bytes and count
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
//! Latency: a successful write request wakes this replica's deliverer at once (the `wakeup`
//! handed to [`run`], see `crate::http::edge_sync::wake_after_write`) and, on PostgreSQL,
//! the delivering replica through `NOTIFY keygate_outbox`; a lost notification is made up by
//! the next poll, within [`POLL_INTERVAL`].

use std::sync::Arc;
use std::time::Duration;

use keygate_shared::record::{batch_len, EdgeRecord, SyncAck, MAX_BATCH_RECORDS, SYNC_PATH};
use keygate_shared::signing::{
    self, Purpose, HEADER_KEY_ID, HEADER_NONCE, HEADER_SIGNATURE, HEADER_TIMESTAMP,
};
use tokio::sync::Notify;

use crate::config::Settings;
use crate::ids::{now_ms, unix_secs};
use crate::store::delivery::{self, DeadLetterNote, Leadership, ReplicaWakeups};
use crate::store::outbox::OutboxError;
use crate::store::{Db, StoreResult};

/// How often an idle deliverer looks for rows written by other replicas.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// How long a claimed row is reserved for the claiming replica (longer than a send may take).
const LEASE_MS: i64 = 10_000;
/// Longest wait between retries of a row: after an edge outage ends, every pending change is
/// tried again within this, then delivered in the next few batches.
pub const MAX_BACKOFF_MS: i64 = 2_000;

/// The wait before retrying a row after `attempts + 1` failed attempts: 250 ms doubling,
/// capped at [`MAX_BACKOFF_MS`], so after an outage ends every pending row is tried again
/// within that cap.
pub fn backoff_ms(attempts: i64) -> i64 {
    (250i64 << attempts.clamp(0, 20)).min(MAX_BACKOFF_MS)
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

/// What the deliverer works with: the database, where the edge is, and how to wake it.
struct Deliverer {
    db: Db,
    http: reqwest::Client,
    edge_url: String,
    secret: Vec<u8>,
    wakeup: Arc<Notify>,
}

/// Delivers until `shutdown` fires. Does nothing (returns at once) without an edge URL and
/// secret in `settings`: rows then wait in the outbox until one is configured. `wakeup` is
/// notified after every successful write request on this replica.
pub async fn run(
    db: Db,
    settings: Arc<Settings>,
    wakeup: Arc<Notify>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let (Some(edge_url), Some(secret)) = (
        settings.edge_url.clone(),
        settings.edge_secret_bytes().map(<[u8]>::to_vec),
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
    let deliverer = Deliverer {
        db,
        http,
        edge_url,
        secret,
        wakeup,
    };
    let mut leadership = Leadership::default();
    let mut wakeups = ReplicaWakeups::default();
    loop {
        if !leadership.hold(&deliverer.db).await {
            // Another replica delivers; look again later (it may die).
            tokio::select! {
                _ = tokio::time::sleep(POLL_INTERVAL) => continue,
                _ = shutdown.changed() => return,
            }
        }
        if deliverer.round().await {
            continue;
        }
        wakeups.listen(&deliverer.db).await;
        tokio::select! {
            _ = deliverer.wakeup.notified() => {}
            _ = wakeups.notified(POLL_INTERVAL) => {}
            _ = tokio::time::sleep(POLL_INTERVAL) => {}
            _ = shutdown.changed() => return,
        }
    }
}

impl Deliverer {
    /// Claims and delivers one batch; whether the edge acknowledged anything.
    async fn round(&self) -> bool {
        match self.claim().await {
            Ok(rows) if rows.is_empty() => false,
            Ok(rows) => match self.deliver(rows).await {
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
        }
    }

    /// Claims the next batch: each key's newest pending row that is due, oldest first, as
    /// many as fit [`batch_len`], leased to this replica. A row that is not a record is set
    /// aside. A key backing off or dead-lettered holds back only itself.
    async fn claim(&self) -> StoreResult<Vec<Claimed>> {
        let now = now_ms();
        let mut rows = Vec::new();
        for pending in delivery::due(&self.db, now, MAX_BATCH_RECORDS).await? {
            match serde_json::from_str::<EdgeRecord>(&pending.record) {
                Ok(mut record) => {
                    // The row's version is the truth (rows from before the clock carried another).
                    record.version = u64::try_from(pending.version).unwrap_or_default();
                    let json = serde_json::to_string(&record).unwrap_or(pending.record);
                    rows.push(Claimed {
                        id: pending.id,
                        digest: pending.digest,
                        version: pending.version,
                        record,
                        json,
                    });
                }
                Err(e) => {
                    tracing::error!(row = pending.id, error = %e, "an outbox row is not a record; set aside");
                    let workspace_id = workspace_of(&pending.record);
                    self.set_aside(&DeadLetterNote {
                        id: pending.id,
                        workspace_id: &workspace_id,
                        digest: &pending.digest,
                        version: pending.version,
                        reason: "UNREADABLE_RECORD",
                    })
                    .await?;
                }
            }
        }
        let sizes: Vec<usize> = rows.iter().map(|r| r.json.len()).collect();
        rows.truncate(batch_len(&sizes));
        if !rows.is_empty() {
            let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
            delivery::lease(&self.db, &ids, now + LEASE_MS).await?;
        }
        Ok(rows)
    }

    /// Delivers claimed rows. A batch the edge rejects as a whole (`400`/`413`) is split in
    /// halves until the culprit is alone, so one bad record never holds back the others; the
    /// culprit is set aside ([`Self::refuse`]). A transient failure puts every row not yet
    /// settled back with a capped backoff. Returns whether anything was acknowledged.
    async fn deliver(&self, rows: Vec<Claimed>) -> StoreResult<bool> {
        let mut acked = false;
        let mut todo = vec![rows];
        while let Some(mut chunk) = todo.pop() {
            match self.send(&chunk).await {
                Sent::Acked(ack) => {
                    acked = true;
                    self.settle(&chunk, &ack).await?;
                }
                Sent::Rejected(reason) if chunk.len() > 1 => {
                    tracing::info!(rows = chunk.len(), %reason, "edge refused a batch; splitting it");
                    let right = chunk.split_off(chunk.len() / 2);
                    todo.push(right);
                    todo.push(chunk);
                }
                Sent::Rejected(reason) => {
                    self.refuse(&chunk[0], &reason).await?;
                }
                Sent::Failed(error) => {
                    crate::metrics::METRICS.edge_failures.inc();
                    let pending: Vec<&Claimed> =
                        chunk.iter().chain(todo.iter().flatten()).collect();
                    tracing::warn!(error = %error, rows = pending.len(), "edge delivery failed; will retry");
                    self.back_off(&pending, &error).await?;
                    break;
                }
            }
        }
        Ok(acked)
    }

    /// Sends one signed batch and reads the edge's answer.
    async fn send(&self, rows: &[Claimed]) -> Sent {
        let records: Vec<&str> = rows.iter().map(|r| r.json.as_str()).collect();
        let body = format!(r#"{{"records":[{}]}}"#, records.join(","));
        let timestamp = unix_secs();
        let nonce = keygate_shared::random::hex_token();
        let secret = &self.secret;
        let tag = signing::sign(secret, Purpose::Sync, timestamp, &nonce, body.as_bytes());
        let res = match self
            .http
            .post(format!("{}{SYNC_PATH}", self.edge_url))
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
        Sent::read(status, &text)
    }

    /// Applies an acknowledgement: refused records are set aside, keys the edge holds at a
    /// newer version get the clock moved past it and a re-issued record, everything else is
    /// delivered (with every older pending row of the same key).
    async fn settle(&self, rows: &[Claimed], ack: &SyncAck) -> StoreResult<()> {
        let mut delivered = Vec::new();
        for row in rows {
            let refused = ack
                .refused
                .iter()
                .find(|r| r.key_digest == row.record.key_digest && r.version == row.record.version);
            if let Some(r) = refused {
                let reason: String = r.reason.chars().take(64).collect();
                self.refuse(row, &format!("REFUSED_{reason}")).await?;
                continue;
            }
            delivered.push((row.digest.as_str(), row.version));
        }
        delivery::mark_delivered(&self.db, &delivered, now_ms()).await?;
        crate::metrics::METRICS
            .edge_delivered
            .inc_by(delivered.len() as u64);
        tracing::debug!(
            rows = rows.len(),
            applied = ack.applied,
            skipped = ack.skipped,
            refused = ack.refused.len(),
            "edge acknowledged"
        );
        for held in &ack.held_newer {
            let Some(row) = rows.iter().find(|r| {
                r.record.key_digest == held.key_digest && held.version > r.record.version
            }) else {
                continue;
            };
            self.reissue(row, held.version).await?;
        }
        Ok(())
    }

    /// The edge holds `held`, newer than the version sent: this database's clock is behind
    /// (a restore, a move, a fresh database). Move the clock past it and queue the key's
    /// current record again, so it lands with a newer version.
    async fn reissue(&self, row: &Claimed, held: u64) -> StoreResult<()> {
        match delivery::reissue(&self.db, &row.record.key_digest, held).await {
            Ok(_) => {
                crate::metrics::METRICS.edge_reissued.inc();
                tracing::warn!(
                    workspace = %row.record.workspace_id,
                    key = %&row.digest[..12],
                    sent = row.version,
                    held,
                    "the edge holds a newer version of this key than this database issued; clock moved past it, record re-issued"
                );
                self.wakeup.notify_one();
                Ok(())
            }
            Err(OutboxError::Db(e)) => Err(e.into()),
            Err(e) => {
                tracing::error!(key = %&row.digest[..12], held, error = %e, "cannot re-issue a record past the edge's version");
                Ok(())
            }
        }
    }

    /// The edge refused this one record. A revocation is retried with backoff (revoked is
    /// terminal and must arrive; its backoff holds up no other key); anything else is set
    /// aside as a dead letter.
    async fn refuse(&self, row: &Claimed, reason: &str) -> StoreResult<()> {
        if !row.record.may_dead_letter() {
            tracing::error!(
                workspace = %row.record.workspace_id,
                key = %&row.digest[..12],
                version = row.version,
                %reason,
                "the edge refused a revocation; retrying it with backoff"
            );
            return self.back_off(&[row], reason).await;
        }
        self.set_aside(&DeadLetterNote {
            id: row.id,
            workspace_id: &row.record.workspace_id,
            digest: &row.digest,
            version: row.version,
            reason,
        })
        .await
    }

    /// Sets one row aside as a dead letter: metric, log line, audit entry; `keygate outbox
    /// retry` puts it back.
    async fn set_aside(&self, letter: &DeadLetterNote<'_>) -> StoreResult<()> {
        delivery::set_aside(&self.db, letter, now_ms()).await?;
        crate::metrics::METRICS.edge_dead_lettered.inc();
        tracing::warn!(
            workspace = %letter.workspace_id,
            key = %letter.digest.get(..12).unwrap_or(letter.digest),
            version = letter.version,
            reason = %letter.reason,
            "the edge refused a record; set aside as a dead letter (retry: keygate outbox retry)"
        );
        Ok(())
    }

    /// Puts rows back with a capped backoff, noting the error (at most 500 characters).
    async fn back_off(&self, rows: &[&Claimed], error: &str) -> StoreResult<()> {
        let error: String = error.chars().take(500).collect();
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        delivery::back_off(&self.db, &ids, now_ms(), &error, backoff_ms).await
    }
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

impl Sent {
    /// Reads the edge's answer: its status and body.
    fn read(status: reqwest::StatusCode, text: &str) -> Sent {
        use reqwest::StatusCode;
        if status == StatusCode::BAD_REQUEST || status == StatusCode::PAYLOAD_TOO_LARGE {
            let reason = serde_json::from_str::<serde_json::Value>(text)
                .ok()
                .and_then(|v| v["error"]["reason"].as_str().map(str::to_owned))
                .filter(|r| {
                    r.len() <= 64 && r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                })
                .unwrap_or_else(|| "UNKNOWN".into());
            return Sent::Rejected(format!("HTTP_{}_{reason}", status.as_u16()));
        }
        if !status.is_success() {
            let snippet: String = text.chars().take(200).collect();
            return Sent::Failed(format!("edge answered {status}: {snippet}"));
        }
        match serde_json::from_str(text) {
            Ok(ack) => Sent::Acked(ack),
            Err(e) => Sent::Failed(format!("edge acknowledgement unreadable: {e}")),
        }
    }
}
