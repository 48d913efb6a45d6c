//! Group commit for billing usage: verify hands its increment to the [`BillingBatcher`] and
//! waits for the batch that contains it to be written.
//!
//! One flusher task per batcher writes whatever increments are pending in one transaction
//! (`crate::store::billing_usage::add`, `total = total + n`); increments that arrive while a
//! write is under way form the next batch. Verify answers only after its batch is committed,
//! so a crash loses no acknowledged usage (the crash-loss bound is zero), and under load many
//! verifies share one transaction, so the database sees one write per batch rather than one per
//! call. Totals are exact across replicas because every batch adds to the stored total.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::{oneshot, Notify};

use crate::store::billing_usage::UsageSlot;
use crate::store::{self, Db};

/// Longest a flusher idles before checking that its batcher still exists.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// The write of a batch failed (the message names the database error, never a secret).
#[derive(Clone, Debug)]
pub struct NotRecorded(pub String);

#[derive(Default)]
struct Batch {
    counts: HashMap<UsageSlot, i64>,
    waiters: Vec<oneshot::Sender<Result<(), NotRecorded>>>,
}

#[derive(Default)]
struct Pending {
    batch: Batch,
    flusher_started: bool,
}

/// Collects billing-usage increments into batches written one transaction at a time. One per
/// router (so per server).
#[derive(Default)]
pub struct BillingBatcher {
    pending: Mutex<Pending>,
    wake: Arc<Notify>,
}

impl BillingBatcher {
    /// Adds `n` to `slot` and waits until the batch holding it is committed.
    pub async fn add(
        self: &Arc<Self>,
        db: &Db,
        slot: UsageSlot,
        n: i64,
    ) -> Result<(), NotRecorded> {
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            *pending.batch.counts.entry(slot).or_insert(0) += n;
            pending.batch.waiters.push(tx);
            if !pending.flusher_started {
                pending.flusher_started = true;
                tokio::spawn(flush_loop(
                    Arc::downgrade(self),
                    Arc::clone(&self.wake),
                    db.clone(),
                ));
            }
        }
        self.wake.notify_one();
        rx.await
            .unwrap_or_else(|_| Err(NotRecorded("the usage writer stopped".into())))
    }

    fn take(&self) -> Batch {
        std::mem::take(&mut self.pending.lock().unwrap_or_else(|e| e.into_inner()).batch)
    }
}

/// Writes pending batches until the batcher (that is, its router) is dropped.
async fn flush_loop(batcher: Weak<BillingBatcher>, wake: Arc<Notify>, db: Db) {
    loop {
        let _ = tokio::time::timeout(IDLE_CHECK, wake.notified()).await;
        let Some(batcher) = batcher.upgrade() else {
            return;
        };
        let batch = batcher.take();
        drop(batcher);
        if batch.waiters.is_empty() {
            continue;
        }
        let outcome = store::billing_usage::add(&db, &batch.counts)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, slots = batch.counts.len(), "could not write billing usage");
                NotRecorded(format!("billing usage was not recorded: {e}"))
            });
        for waiter in batch.waiters {
            let _ = waiter.send(outcome.clone());
        }
    }
}
