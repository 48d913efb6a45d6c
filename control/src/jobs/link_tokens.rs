//! The sweep of expired link tokens: every replica deletes, every [`SWEEP_INTERVAL`], the
//! tokens that expired more than a day ago (`crate::store::portal::sweep_expired_tokens`;
//! idempotent). Until then an expired token is still known, so the portal answers
//! `LINK_TOKEN_EXPIRED` rather than `INVALID_LINK_TOKEN`.

use std::time::Duration;

use crate::ids::now_ms;
use crate::store::Db;

/// How often a replica sweeps.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(10 * 60);

/// Sweeps expired link tokens every `interval` until `shutdown` fires.
pub async fn run(db: Db, interval: Duration, shutdown: tokio::sync::watch::Receiver<bool>) {
    super::every(interval, "link-token sweep", shutdown, || {
        crate::store::portal::sweep_expired_tokens(&db, now_ms())
    })
    .await
}
