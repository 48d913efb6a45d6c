//! Group commit for verify's writes: a usage-limited key's use and billing usage.
//!
//! Verify hands its write to the [`VerifyWriter`] and waits for the batch that contains it.
//! One flusher task per writer writes whatever is pending in one transaction
//! (`crate::store::api_keys::verify::write_batch`: each key's uses left read once, granted in
//! arrival order, written back; billing usage of the granted verifies added as
//! `total = total + n`); writes that arrive while a batch is being written form the next one.
//! Verify answers only after its batch is committed, so a crash loses no acknowledged use or
//! usage (the crash-loss bound is zero); under load many verifies share one transaction, so
//! the database sees one write per batch rather than one per call. Counts are exact across
//! replicas because every batch decides and adds inside the database under its write lock.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::{oneshot, Notify};

use crate::store::api_keys::verify::{write_batch, Spent, VerifyWrite};
use crate::store::Db;

/// Longest a flusher idles before checking that its writer still exists.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// The write of a batch failed (the message names the database error, never a secret).
#[derive(Clone, Debug)]
pub struct NotRecorded(pub String);

type Waiter = oneshot::Sender<Result<Spent, NotRecorded>>;

#[derive(Default)]
struct Pending {
    writes: Vec<VerifyWrite>,
    waiters: Vec<Waiter>,
    flusher_started: bool,
}

/// Collects verify writes into batches written one transaction at a time. One per router
/// (so per server).
#[derive(Default)]
pub struct VerifyWriter {
    pending: Mutex<Pending>,
    wake: Arc<Notify>,
}

impl VerifyWriter {
    /// Queues `write` and waits until the batch holding it is committed: whether its use was
    /// granted.
    pub async fn write(
        self: &Arc<Self>,
        db: &Db,
        write: VerifyWrite,
    ) -> Result<Spent, NotRecorded> {
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            pending.writes.push(write);
            pending.waiters.push(tx);
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
            .unwrap_or_else(|_| Err(NotRecorded("the verify writer stopped".into())))
    }

    fn take(&self) -> (Vec<VerifyWrite>, Vec<Waiter>) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        (
            std::mem::take(&mut pending.writes),
            std::mem::take(&mut pending.waiters),
        )
    }
}

/// Writes pending batches until the writer (that is, its router) is dropped.
async fn flush_loop(writer: Weak<VerifyWriter>, wake: Arc<Notify>, db: Db) {
    loop {
        let _ = tokio::time::timeout(IDLE_CHECK, wake.notified()).await;
        let Some(writer) = writer.upgrade() else {
            return;
        };
        let (writes, waiters) = writer.take();
        drop(writer);
        if waiters.is_empty() {
            continue;
        }
        match write_batch(&db, &writes).await {
            Ok(answers) => {
                for (waiter, answer) in waiters.into_iter().zip(answers) {
                    let _ = waiter.send(Ok(answer));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, writes = writes.len(), "could not write a verify batch");
                let failed = NotRecorded(format!("the verify was not recorded: {e}"));
                for waiter in waiters {
                    let _ = waiter.send(Err(failed.clone()));
                }
            }
        }
    }
}
