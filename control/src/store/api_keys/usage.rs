//! Batched usage statistics for keys without a usage limit.
//!
//! A valid verify of an unlimited key changes nothing that decides a later verify, only
//! `usage_count` and `last_used_at`. Writing them on every call would make the hot path a
//! write (SQLite has one writer), so they are summed in memory and flushed once a second in
//! one transaction, as increments (`usage_count = usage_count + n`), which several replicas
//! can apply independently. A crash loses at most the last second of these statistics;
//! usage *limits* never depend on them (limited keys are decremented in the database on
//! every call).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use crate::store::{Db, WriteTx};
use crate::with_db;

/// How often pending counts are written.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

#[derive(Default)]
struct Pending {
    /// Key id -> (valid uses since the last flush, latest use in Unix ms).
    counts: HashMap<String, (i64, i64)>,
    flusher_started: bool,
}

/// Sums verifications per key until the next flush. One per router (so per server).
#[derive(Default)]
pub struct UsageRecorder {
    pending: Mutex<Pending>,
}

impl UsageRecorder {
    /// Counts one valid use of `key_id` at `now_ms`; starts the flusher on first use.
    pub fn record(self: &Arc<Self>, db: &Db, key_id: &str, now_ms: i64) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        match pending.counts.get_mut(key_id) {
            Some((n, last)) => {
                *n += 1;
                *last = (*last).max(now_ms);
            }
            None => {
                pending.counts.insert(key_id.to_owned(), (1, now_ms));
            }
        }
        if !pending.flusher_started {
            pending.flusher_started = true;
            tokio::spawn(flush_loop(Arc::downgrade(self), db.clone()));
        }
    }

    fn take(&self) -> HashMap<String, (i64, i64)> {
        std::mem::take(
            &mut self
                .pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .counts,
        )
    }

    fn put_back(&self, batch: HashMap<String, (i64, i64)>) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        for (id, (n, last)) in batch {
            let e = pending.counts.entry(id).or_insert((0, last));
            e.0 += n;
            e.1 = e.1.max(last);
        }
    }
}

/// Flushes every [`FLUSH_EVERY`] until the recorder (that is, its router) is dropped.
async fn flush_loop(recorder: Weak<UsageRecorder>, db: Db) {
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(rec) = recorder.upgrade() else {
            return;
        };
        let batch = rec.take();
        if batch.is_empty() {
            continue;
        }
        if let Err(e) = flush(&db, &batch).await {
            tracing::warn!(error = %e, keys = batch.len(), "could not write API-key usage; will retry");
            rec.put_back(batch);
        }
    }
}

async fn flush(db: &Db, batch: &HashMap<String, (i64, i64)>) -> Result<(), sqlx::Error> {
    with_db!(db, |pool| {
        let mut tx = pool.begin_write().await?;
        for (id, (n, last)) in batch {
            sqlx::query(
                "UPDATE api_keys SET usage_count = usage_count + $1,
                        last_used_at = CASE WHEN last_used_at IS NULL OR last_used_at < $2
                                            THEN $2 ELSE last_used_at END
                  WHERE id = $3",
            )
            .bind(n)
            .bind(last)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await
    })
}
