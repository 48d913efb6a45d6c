//! Edge delivery (storage): the outbox rows the deliverer (`crate::jobs::deliverer`) claims,
//! leases, acknowledges, backs off and sets aside, and the PostgreSQL plumbing that keeps one
//! replica delivering ([`Leadership`]) and wakes it ([`notify_replicas`], [`ReplicaWakeups`]).

use std::time::Duration;

use keygate_shared::key::KeyDigest;

use crate::store::outbox::{DeliveryAudit, DeliveryEvent, OutboxError, OutboxStore};
use crate::store::{Db, StoreResult};
use crate::{with_db, write_tx};

/// One pending outbox row: the newest pending record of its key, as stored.
#[derive(Debug)]
pub struct Pending {
    /// Row id.
    pub id: i64,
    /// The key's digest (hex).
    pub digest: String,
    /// The row's version.
    pub version: i64,
    /// The record's JSON, as stored.
    pub record: String,
}

/// Each key's newest pending row that is due at `now` (not dead-lettered, not backing off,
/// not leased), oldest first, at most `limit`. Older pending rows of a key are never
/// returned: records are full snapshots.
pub async fn due(db: &Db, now: i64, limit: usize) -> StoreResult<Vec<Pending>> {
    let rows: Vec<(i64, String, i64, String)> = with_db!(db, |pool| {
        sqlx::query_as(
            "SELECT o.id, o.key_digest, o.version, o.record FROM edge_outbox o
              WHERE o.delivered_at IS NULL AND o.dead_at IS NULL AND o.next_attempt_at <= $1
                AND o.version = (SELECT MAX(n.version) FROM edge_outbox n
                                  WHERE n.key_digest = o.key_digest AND n.delivered_at IS NULL)
              ORDER BY o.id LIMIT $2",
        )
        .bind(now)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(pool)
        .await
    })?;
    Ok(rows
        .into_iter()
        .map(|(id, digest, version, record)| Pending {
            id,
            digest,
            version,
            record,
        })
        .collect())
}

/// Reserves rows for this replica until `until` (Unix ms), counting an attempt on each, in
/// one statement.
pub async fn lease(db: &Db, ids: &[i64], until: i64) -> StoreResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    write_tx!(db, |tx| {
        let mut query = sqlx::QueryBuilder::new("UPDATE edge_outbox SET next_attempt_at = ");
        query.push_bind(until);
        query.push(", attempts = attempts + 1 WHERE id IN (");
        let mut list = query.separated(", ");
        for id in ids {
            list.push_bind(*id);
        }
        query.push(")").build().execute(&mut *tx).await?;
    });
    Ok(())
}

/// Marks each (digest, version) delivered at `now`, with every older pending row of the key.
pub async fn mark_delivered(db: &Db, keys: &[(&str, i64)], now: i64) -> StoreResult<()> {
    write_tx!(db, |tx| {
        for (digest, version) in keys {
            sqlx::query(
                "UPDATE edge_outbox SET delivered_at = $1, last_error = NULL
                  WHERE key_digest = $2 AND version <= $3 AND delivered_at IS NULL",
            )
            .bind(now)
            .bind(digest)
            .bind(version)
            .execute(&mut *tx)
            .await?;
        }
    });
    Ok(())
}

/// A row to set aside as a dead letter.
#[derive(Debug)]
pub struct DeadLetterNote<'a> {
    /// Row id.
    pub id: i64,
    /// The workspace named in the record (may be empty for an unreadable one).
    pub workspace_id: &'a str,
    /// The key's digest (hex).
    pub digest: &'a str,
    /// The row's version.
    pub version: i64,
    /// Why, a stable reason.
    pub reason: &'a str,
}

/// Sets one row aside as a dead letter at `now`, supersedes the key's older pending rows and
/// audits it (actor: the edge deliverer), in one transaction.
pub async fn set_aside(db: &Db, letter: &DeadLetterNote<'_>, now: i64) -> StoreResult<()> {
    write_tx!(db, |tx| {
        sqlx::query(
            "UPDATE edge_outbox SET dead_at = $1, dead_reason = $2, last_error = $2
              WHERE id = $3",
        )
        .bind(now)
        .bind(letter.reason)
        .bind(letter.id)
        .execute(&mut *tx)
        .await?;
        // Older snapshots of the key will never be sent: this one, or a newer one, will.
        sqlx::query(
            "UPDATE edge_outbox SET delivered_at = $1, last_error = 'superseded'
              WHERE key_digest = $2 AND version < $3 AND delivered_at IS NULL
                AND dead_at IS NULL",
        )
        .bind(now)
        .bind(letter.digest)
        .bind(letter.version)
        .execute(&mut *tx)
        .await?;
        let event = DeliveryEvent {
            workspace_id: letter.workspace_id,
            key_digest: letter.digest,
            version: letter.version,
            reason: letter.reason,
            actor: "edge deliverer",
            action: "edge_record.dead_letter",
        };
        tx.as_mut().audit_delivery(&event).await?;
    });
    Ok(())
}

/// Puts rows back to be retried after `backoff(attempts - 1)` ms from `now`, noting `error`.
pub async fn back_off(
    db: &Db,
    ids: &[i64],
    now: i64,
    error: &str,
    backoff: fn(i64) -> i64,
) -> StoreResult<()> {
    write_tx!(db, |tx| {
        for id in ids {
            let attempts: i64 =
                sqlx::query_scalar("SELECT attempts FROM edge_outbox WHERE id = $1")
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?;
            sqlx::query(
                "UPDATE edge_outbox SET next_attempt_at = $1, last_error = $2 WHERE id = $3",
            )
            .bind(now + backoff(attempts - 1))
            .bind(error)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
    });
    Ok(())
}

/// Moves the clock past `held` (a version the edge holds) and queues the key's current
/// record again with a newer version, in one transaction. `false` if keygate knows no key
/// with that digest.
pub async fn reissue(db: &Db, digest: &KeyDigest, held: u64) -> Result<bool, OutboxError> {
    write_tx!(db, |tx| {
        tx.as_mut().catch_up_clock(held).await?;
        let queued = tx.as_mut().enqueue_digest(digest).await?;
        Ok(queued)
    })
}

/// The PostgreSQL channel replicas use to wake the delivering one.
const CHANNEL: &str = "keygate_outbox";
const NOTIFY: &str = "NOTIFY keygate_outbox";

/// Tells the delivering replica (possibly another one) that the outbox has new rows; on
/// PostgreSQL through `NOTIFY`, in the background. Nothing to do on SQLite (one process).
pub fn notify_replicas(db: &Db) {
    if let Db::Postgres(pool) = db {
        let pool = pool.clone();
        tokio::spawn(async move {
            if let Err(e) = sqlx::query(NOTIFY).execute(&pool).await {
                tracing::debug!(error = %e, "could not notify the delivering replica");
            }
        });
    }
}

/// Wake-ups from other replicas (PostgreSQL `LISTEN keygate_outbox`).
#[derive(Default)]
pub struct ReplicaWakeups {
    listener: Option<sqlx::postgres::PgListener>,
}

impl ReplicaWakeups {
    /// Starts listening if not yet (PostgreSQL only; a failure is retried on the next call).
    pub async fn listen(&mut self, db: &Db) {
        if self.listener.is_some() {
            return;
        }
        if let Db::Postgres(pool) = db {
            self.listener = match sqlx::postgres::PgListener::connect_with(pool).await {
                Ok(mut l) => l.listen(CHANNEL).await.ok().map(|_| l),
                Err(_) => None,
            };
        }
    }

    /// Waits for a wake-up from another replica; never returns without one (or, after a
    /// lost connection, `pause`, to avoid a hot loop while the listener reconnects).
    pub async fn notified(&mut self, pause: Duration) {
        match &mut self.listener {
            Some(l) => {
                if l.recv().await.is_err() {
                    tokio::time::sleep(pause).await;
                }
            }
            None => std::future::pending().await,
        }
    }
}

/// Which replica delivers. The edge applies a record only if its version is newer, but that
/// check is a KV read then write: two batches in flight at once that touch one key could let
/// the older one win. So exactly one replica delivers at a time, one batch at a time: on
/// PostgreSQL the holder of a session advisory lock (released by the database when that
/// replica's connection dies, so another takes over at its next try); on SQLite there is one
/// process.
#[derive(Default)]
pub struct Leadership {
    conn: Option<sqlx::PgConnection>,
}

/// The advisory lock key: "keygate outbox" in ASCII, as a number.
const LEADER_LOCK: i64 = 0x6b67_6f75_7462_6f78;

impl Leadership {
    /// Whether this replica delivers now (taking the lock if it is free).
    pub async fn hold(&mut self, db: &Db) -> bool {
        let Db::Postgres(pool) = db else {
            return true;
        };
        if let Some(c) = self.conn.as_mut() {
            // Still ours while the session lives.
            if sqlx::query("SELECT 1").execute(&mut *c).await.is_ok() {
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

/// The outbox at a glance, for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxStats {
    /// Rows not yet acknowledged by the edge (dead letters excepted).
    pub pending: i64,
    /// When the oldest of them was written (Unix ms).
    pub oldest_pending_at: Option<i64>,
    /// Dead letters not yet retried.
    pub dead: i64,
}

/// Counts pending rows and dead letters.
pub async fn outbox_stats(db: &Db) -> StoreResult<OutboxStats> {
    let (pending, oldest_pending_at, dead): (i64, Option<i64>, i64) = with_db!(db, |pool| {
        sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM edge_outbox
                      WHERE delivered_at IS NULL AND dead_at IS NULL),
                    (SELECT MIN(created_at) FROM edge_outbox
                      WHERE delivered_at IS NULL AND dead_at IS NULL),
                    (SELECT COUNT(*) FROM edge_outbox
                      WHERE dead_at IS NOT NULL AND delivered_at IS NULL)",
        )
        .fetch_one(pool)
        .await
    })?;
    Ok(OutboxStats {
        pending,
        oldest_pending_at,
        dead,
    })
}
