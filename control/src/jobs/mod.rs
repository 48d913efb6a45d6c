//! Background work. A job takes a storage handle ([`crate::store::Db`]) and what else it
//! needs (settings, a mailer, a wake-up), never the HTTP state, and runs until its shutdown
//! signal fires; `crate::server` starts them.
//!
//! - [`deliverer`]: the edge outbox deliverer (one replica at a time);
//! - [`retention`]: periodic sweeps of rows that have done their job (outbox, sessions, OTP
//!   challenges and rate windows);
//! - [`mail`]: the mail queue's sender;
//! - [`link_tokens`]: the sweep of expired link tokens;
//! - [`gateway_secrets`]: start-up backfill and re-sealing of gateway secrets for the edge;
//! - [`verify_stats`]: verify outcomes per day and unlimited keys' uses, flushed every second;
//! - [`verify_writes`]: group commit of verify's writes (uses of usage-limited keys, billing
//!   usage).

pub mod deliverer;
pub mod gateway_secrets;
pub mod link_tokens;
pub mod mail;
pub mod retention;
pub mod verify_stats;
pub mod verify_writes;

use std::future::Future;
use std::time::Duration;

/// Runs `task` every `interval` until `shutdown` fires (the first run after one interval).
/// A failed run is logged and tried again at the next tick.
pub async fn every<F, Fut, T, E>(
    interval: Duration,
    what: &'static str,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    mut task: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    T: std::fmt::Debug,
    E: std::fmt::Display,
{
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => return,
        }
        match task().await {
            Ok(done) => tracing::debug!(?done, "{what}"),
            Err(e) => tracing::warn!(error = %e, "{what} failed; will retry"),
        }
    }
}
