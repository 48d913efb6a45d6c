//! The periodic retention sweeps: every replica sweeps every [`SWEEP_INTERVAL`] (the deletes
//! are idempotent, see [`crate::store::retention`] and `crate::store::otp::sweep`).

use std::time::Duration;

use crate::ids::now_ms;
use crate::store::Db;

/// How often a replica sweeps.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(10 * 60);

/// Sweeps delivered outbox rows, expired challenges and ended sessions every
/// [`SWEEP_INTERVAL`] until `shutdown` fires.
pub async fn run(db: Db, shutdown: tokio::sync::watch::Receiver<bool>) {
    super::every(SWEEP_INTERVAL, "retention sweep", shutdown, || {
        crate::store::retention::sweep(&db, now_ms())
    })
    .await
}

/// Sweeps ended rate windows and expired (or decoy) OTP challenges every `interval` until
/// `shutdown` fires.
pub async fn run_otp_sweeper(
    db: Db,
    interval: Duration,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    super::every(
        interval,
        "rate-window and challenge sweep",
        shutdown,
        || crate::store::otp::sweep(&db, now_ms()),
    )
    .await
}
