//! Verify statistics, summed in memory and written once a second: the outcome of every
//! verify per (workspace, key, UTC day), and the valid uses of keys without a usage limit.
//!
//! Writing them on every call would make the hot path a write (SQLite has one writer), so
//! [`VerifyStats`] adds them up and a flusher writes them every [`FLUSH_EVERY`] in one
//! transaction, as increments (`crate::store::api_keys::usage::flush`), which replicas
//! apply independently and exactly. When the router holding the recorder is dropped (a
//! graceful shutdown, after the last request), what is pending is written one last time;
//! `crate::server` waits for it ([`flushed`]). The crash-loss bound: a process that dies
//! without shutting down loses at most the last [`FLUSH_EVERY`] of these statistics (and
//! whatever a failing database kept pending). Usage *limits* and billing never depend on
//! them: they are written by group commit before verify answers (`super::verify_writes`).

use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use keygate_shared::link_token::day_number;
use keygate_shared::verdict::Status;
use tokio::task::JoinHandle;

use crate::store::api_keys::usage::{flush, KeyStats, PendingStats};
use crate::store::Db;

/// How often pending statistics are written.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// Who a verify was about.
#[derive(Clone, Copy, Debug)]
pub enum Subject<'a> {
    /// A known API key.
    Key {
        /// Its id.
        id: &'a str,
        /// Its workspace.
        workspace_id: &'a str,
    },
    /// An unknown key, asked about by an SDK key bound to this workspace.
    Unknown {
        /// The SDK key's workspace.
        workspace_id: &'a str,
    },
}

#[derive(Default)]
struct State {
    pending: PendingStats,
    db: Option<Db>,
}

/// Sums verify statistics until the next flush. One per router (so per server).
#[derive(Default)]
pub struct VerifyStats {
    state: Mutex<State>,
}

impl VerifyStats {
    /// Counts one verify of `subject` in organisation `org_id` answered `outcome` at
    /// `now_ms`; `use_key` also counts a valid use of a key without a usage limit. Starts the
    /// flusher on first use.
    pub fn record(
        self: &Arc<Self>,
        db: &Db,
        org_id: &str,
        subject: Subject<'_>,
        outcome: Status,
        now_ms: i64,
        use_key: bool,
    ) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.db.is_none() {
            state.db = Some(db.clone());
            tokio::spawn(flush_loop(Arc::downgrade(self), db.clone()));
        }
        let (map, id, workspace_id) = match subject {
            Subject::Key { id, workspace_id } => (&mut state.pending.keys, id, workspace_id),
            Subject::Unknown { workspace_id } => {
                (&mut state.pending.unknown, workspace_id, workspace_id)
            }
        };
        let stats = match map.get_mut(id) {
            Some(s) => s,
            None => map.entry(id.to_owned()).or_insert_with(|| KeyStats {
                org_id: org_id.to_owned(),
                workspace_id: workspace_id.to_owned(),
                ..KeyStats::default()
            }),
        };
        stats.add_outcome(day_number(now_ms), outcome, 1);
        if use_key {
            stats.uses += 1;
            stats.last_used_at = stats.last_used_at.max(now_ms);
        }
    }

    fn take(&self) -> PendingStats {
        std::mem::take(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()).pending)
    }

    fn put_back(&self, batch: PendingStats) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let newer = std::mem::replace(&mut state.pending, batch);
        state.pending.merge(newer);
    }
}

/// The final flushes of dropped recorders, for [`flushed`].
fn final_flushes() -> &'static Mutex<Vec<JoinHandle<()>>> {
    static FINAL: OnceLock<Mutex<Vec<JoinHandle<()>>>> = OnceLock::new();
    FINAL.get_or_init(Default::default)
}

impl Drop for VerifyStats {
    /// Writes what is pending one last time (in a task; [`flushed`] waits for it).
    fn drop(&mut self) {
        let state = std::mem::take(self.state.get_mut().unwrap_or_else(|e| e.into_inner()));
        let (Some(db), false) = (state.db, state.pending.is_empty()) else {
            return;
        };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let task = rt.spawn(async move {
            if let Err(e) = flush(&db, &state.pending).await {
                tracing::warn!(error = %e, "could not write the last verify statistics");
            }
        });
        final_flushes()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(task);
    }
}

/// Waits until the last statistics of every dropped recorder are written (call after the
/// server stopped serving, before closing the database).
pub async fn flushed() {
    let tasks = std::mem::take(&mut *final_flushes().lock().unwrap_or_else(|e| e.into_inner()));
    for task in tasks {
        let _ = task.await;
    }
}

/// Flushes every [`FLUSH_EVERY`] until the recorder (that is, its router) is dropped.
async fn flush_loop(recorder: Weak<VerifyStats>, db: Db) {
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
            tracing::warn!(error = %e, keys = batch.keys.len(), "could not write verify statistics; will retry");
            rec.put_back(batch);
        }
    }
}
