//! Retention (storage): deleting rows that have done their job, so tables stay the size of
//! what is live. The deletes are idempotent; `crate::jobs::retention` runs them periodically.
//!
//! - edge outbox rows delivered (or superseded) more than [`OUTBOX_KEEP_MS`] ago, except each
//!   key's newest row (its version is the one the pull endpoint answers with); dead letters
//!   are kept until retried;
//! - one-time-password challenges that expired more than a day ago (the hourly request cap
//!   only looks back one hour);
//! - sessions that expired or were signed out more than a day ago;
//! - verification counts of UTC days more than [`VERIFICATION_COUNT_DAYS`] days old.
//!
//! The audit log is kept: how long to keep it is the operator's policy, not ours.

use crate::store::{Db, StoreResult};
use crate::with_db;

/// How long delivered outbox rows are kept (for inspection).
pub const OUTBOX_KEEP_MS: i64 = 7 * 24 * 60 * 60 * 1000;
const DAY_MS: i64 = 24 * 60 * 60 * 1000;
/// How many UTC days of verification counts are kept (today included).
pub const VERIFICATION_COUNT_DAYS: i64 = 400;

/// Rows deleted by one sweep.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    /// Delivered outbox rows.
    pub outbox: u64,
    /// Expired OTP challenges.
    pub challenges: u64,
    /// Ended sessions.
    pub sessions: u64,
    /// Verification counts of days past [`VERIFICATION_COUNT_DAYS`].
    pub verification_counts: u64,
}

/// Deletes what is past its retention at time `now` (Unix ms).
pub async fn sweep(db: &Db, now: i64) -> StoreResult<Swept> {
    Ok(with_db!(db, |pool| {
        async {
            let outbox = sqlx::query(
                "DELETE FROM edge_outbox
                  WHERE delivered_at IS NOT NULL AND delivered_at < $1
                    AND version < (SELECT MAX(newer.version) FROM edge_outbox newer
                                    WHERE newer.key_digest = edge_outbox.key_digest)",
            )
            .bind(now - OUTBOX_KEEP_MS)
            .execute(pool)
            .await?
            .rows_affected();
            let challenges = sqlx::query("DELETE FROM otp_challenges WHERE expires_at < $1")
                .bind(now - DAY_MS)
                .execute(pool)
                .await?
                .rows_affected();
            let sessions =
                sqlx::query("DELETE FROM sessions WHERE expires_at < $1 OR revoked_at < $1")
                    .bind(now - DAY_MS)
                    .execute(pool)
                    .await?
                    .rows_affected();
            let first_kept =
                keygate_shared::link_token::day_number(now) - VERIFICATION_COUNT_DAYS + 1;
            let verification_counts = sqlx::query("DELETE FROM verification_counts WHERE day < $1")
                .bind(first_kept)
                .execute(pool)
                .await?
                .rows_affected();
            Ok::<_, sqlx::Error>(Swept {
                outbox,
                challenges,
                sessions,
                verification_counts,
            })
        }
        .await
    })?)
}
