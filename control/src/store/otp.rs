//! Email one-time-password challenges and the rate windows that limit them.

use keygate_shared::otp::{self as policy, Purpose};

use crate::store::{Db, StoreResult};
use crate::{impl_for_both_backends, with_db, write_tx};

/// The newest pending challenge for (`email`, `purpose`) that client `ip` asked for: what a
/// sign-in without a challenge id judges, so a stranger's wrong guesses never spend the
/// attempts of the owner's challenge.
pub async fn newest_pending(
    db: &Db,
    email: &str,
    purpose: &str,
    ip: &str,
) -> StoreResult<Option<String>> {
    Ok(with_db!(db, |pool| {
        sqlx::query_scalar(
            "SELECT id FROM otp_challenges
              WHERE email = $1 AND purpose = $2 AND consumed_at IS NULL AND ip = $3
              ORDER BY created_at DESC, id DESC LIMIT 1",
        )
        .bind(email)
        .bind(purpose)
        .bind(ip)
        .fetch_optional(pool)
        .await
    })?)
}

/// Counts one hit in `bucket`'s fixed window of `window_secs` and returns the window's hits,
/// this one included: one upsert, so parallel requests each see a distinct count on both
/// databases.
pub async fn bump_window(db: &Db, bucket: &str, window_secs: i64, now: i64) -> StoreResult<i64> {
    let start = policy::window_start(now, window_secs);
    Ok(with_db!(db, |pool| {
        sqlx::query_scalar(
            "INSERT INTO rate_windows (bucket, window_start, hits, expires_at) VALUES ($1, $2, 1, $3)
             ON CONFLICT (bucket, window_start) DO UPDATE SET hits = rate_windows.hits + 1
             RETURNING hits",
        )
        .bind(bucket)
        .bind(start)
        .bind(start + window_secs * 1000)
        .fetch_one(pool)
        .await
    })?)
}

/// The hits so far in `bucket`'s current window of `window_secs`.
pub async fn window_hits(db: &Db, bucket: &str, window_secs: i64, now: i64) -> StoreResult<i64> {
    let start = policy::window_start(now, window_secs);
    let hits: Option<i64> = with_db!(db, |pool| {
        sqlx::query_scalar("SELECT hits FROM rate_windows WHERE bucket = $1 AND window_start = $2")
            .bind(bucket)
            .bind(start)
            .fetch_optional(pool)
            .await
    })?;
    Ok(hits.unwrap_or(0))
}

/// A challenge to store.
#[derive(Clone, Copy, Debug)]
pub struct NewChallenge<'a> {
    /// Its id.
    pub id: &'a str,
    /// What it unlocks.
    pub purpose: Purpose,
    /// The address the code goes to.
    pub email: &'a str,
    /// The user it is issued to (`None`: a sign-in by an address with no user yet).
    pub user_id: Option<&'a str>,
    /// The subject it is bound to (a key id, a session id, `bootstrap`, `decoy`, ``).
    pub subject: &'a str,
    /// The keyed hash of a newly generated code.
    pub code_hash: &'a str,
    /// A decoy (no code matches it).
    pub decoy: bool,
    /// The client's IP.
    pub ip: Option<&'a str>,
    /// Now (Unix ms).
    pub now: i64,
}

/// What storing a challenge decided (`keygate_shared::otp::issue_decision`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Issued {
    /// Stored with its own new code, which the caller mails; it stops working then (ms).
    Mail {
        /// When the code stops working (Unix ms).
        expires_at: i64,
    },
    /// Stored as sharing the newest live code already in the mailbox (nothing to mail).
    Absorbed {
        /// When the shared code stops working (Unix ms).
        expires_at: i64,
    },
    /// Nothing stored: a code was just sent; ask again in this many seconds.
    Wait(i64),
}

/// Stores `challenge` unless the address asked too recently, in one write transaction per
/// address: the request counts against the address's window first, and on PostgreSQL that
/// upsert holds the window row's lock until commit, so requests for one address decide one
/// at a time (SQLite's `BEGIN IMMEDIATE` serialises every writer).
pub async fn issue(db: &Db, challenge: &NewChallenge<'_>) -> StoreResult<Issued> {
    let c = challenge;
    let address_bucket = format!("otp-address:{}:{}", c.purpose.as_str(), c.email);
    let window_start = policy::window_start(c.now, policy::LIFETIME_SECS);
    type Live = (String, Option<String>, String, String, i64, i64);
    write_tx!(db, |tx| {
        sqlx::query(
            "INSERT INTO rate_windows (bucket, window_start, hits, expires_at) VALUES ($1, $2, 1, $3)
             ON CONFLICT (bucket, window_start) DO UPDATE SET hits = rate_windows.hits + 1",
        )
        .bind(&address_bucket)
        .bind(window_start)
        .bind(window_start + policy::LIFETIME_SECS * 1000)
        .execute(&mut *tx)
        .await?;
        // Live codes for this (address, purpose, subject): a reveal of key B is not held up
        // by a code for key A (only the signed-in user can ask for those anyway).
        let live: Vec<Live> = sqlx::query_as(
            "SELECT id, user_id, subject, code_hash, created_at, expires_at FROM otp_challenges
              WHERE email = $1 AND purpose = $2 AND subject = $3 AND code_id IS NULL
                AND consumed_at IS NULL AND expires_at > $4
              ORDER BY created_at DESC, id DESC",
        )
        .bind(c.email)
        .bind(c.purpose.as_str())
        .bind(c.subject)
        .bind(c.now)
        .fetch_all(&mut *tx)
        .await?;
        let same = live
            .iter()
            .find(|(_, owner, subj, ..)| subj == c.subject && owner.as_deref() == c.user_id);
        let decision = policy::issue_decision(
            c.now,
            live.first().map(|l| l.4),
            u32::try_from(live.len()).unwrap_or(u32::MAX),
            same.is_some(),
        );
        let (code_id, code_hash, expires_at) = match (decision, same) {
            (policy::IssueDecision::Mail, _) => {
                (None, c.code_hash, c.now + policy::LIFETIME_SECS * 1000)
            }
            (policy::IssueDecision::Absorb, Some((shared, _, _, hash, _, expires_at))) => {
                (Some(shared.as_str()), hash.as_str(), *expires_at)
            }
            (policy::IssueDecision::Wait(s), _) => return Ok(Issued::Wait(s)),
            (policy::IssueDecision::Absorb, None) => {
                return Ok(Issued::Wait(policy::RESEND_AFTER_SECS))
            }
        };
        let stored = NewChallenge { code_hash, ..*c };
        tx.insert_challenge(&stored, expires_at, code_id).await?;
        Ok(match code_id {
            None => Issued::Mail { expires_at },
            Some(_) => Issued::Absorbed { expires_at },
        })
    })
}

/// Writing challenges inside the caller's transaction.
#[allow(async_fn_in_trait)]
trait ChallengeStore {
    /// Inserts `c`, its code expiring at `expires_at`, sharing challenge `code_id`'s code if
    /// given.
    async fn insert_challenge(
        &mut self,
        c: &NewChallenge<'_>,
        expires_at: i64,
        code_id: Option<&str>,
    ) -> Result<(), sqlx::Error>;
}

impl_for_both_backends!(ChallengeStore {
    async fn insert_challenge(&mut self, c: &NewChallenge<'_>, expires_at: i64, code_id: Option<&str>) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO otp_challenges (id, purpose, email, user_id, subject, code_hash, created_at, expires_at, ip, code_id, decoy)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(c.id)
        .bind(c.purpose.as_str())
        .bind(c.email)
        .bind(c.user_id)
        .bind(c.subject)
        .bind(c.code_hash)
        .bind(c.now)
        .bind(expires_at)
        .bind(c.ip)
        .bind(code_id)
        .bind(c.decoy)
        .execute(&mut *self)
        .await?;
        Ok(())
    }
});

/// A stored challenge, as redeeming reads it.
#[derive(Clone, Debug)]
pub struct StoredChallenge {
    /// What it unlocks (`Purpose::as_str`).
    pub purpose: String,
    /// The address its code went to.
    pub email: String,
    /// The user it was issued to.
    pub user_id: Option<String>,
    /// The subject it is bound to.
    pub subject: String,
    /// The keyed hash of its code.
    pub code_hash: String,
    /// When its code stops working (Unix ms).
    pub expires_at: i64,
    /// Whether its code was used.
    pub consumed: bool,
    /// The challenge whose code it shares (absorbed requests), if any.
    pub code_id: Option<String>,
}

/// Challenge `id`, if it exists.
pub async fn challenge(db: &Db, id: &str) -> StoreResult<Option<StoredChallenge>> {
    type Row = (
        String,
        String,
        Option<String>,
        String,
        String,
        i64,
        Option<i64>,
        Option<String>,
    );
    let row: Option<Row> = with_db!(db, |pool| {
        sqlx::query_as(
            "SELECT purpose, email, user_id, subject, code_hash, expires_at, consumed_at, code_id
               FROM otp_challenges WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(pool)
        .await
    })?;
    Ok(row.map(
        |(purpose, email, user_id, subject, code_hash, expires_at, consumed_at, code_id)| {
            StoredChallenge {
                purpose,
                email,
                user_id,
                subject,
                code_hash,
                expires_at,
                consumed: consumed_at.is_some(),
                code_id,
            }
        },
    ))
}

/// The verdict on one attempt at a challenge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// The code was right and is now used (with every challenge sharing it).
    Redeemed,
    /// The code was already used.
    Consumed,
    /// The challenge has no attempts left.
    Dead,
    /// The code was wrong; this many attempts are left.
    Wrong {
        /// Attempts left (0 or fewer: none).
        left: i64,
    },
}

/// Judges one attempt at challenge `id` whose code was `right` or not. Each step is one
/// conditional statement: the attempt is spent with `... WHERE attempts < max`, so parallel
/// guesses get exactly `max` judgements on both databases, right or wrong; a right code
/// consumes the code (every challenge sharing `code_root`) with `... WHERE consumed_at IS
/// NULL`, so it works once.
pub async fn attempt(
    db: &Db,
    id: &str,
    code_root: &str,
    max: i64,
    right: bool,
    now: i64,
) -> StoreResult<Attempt> {
    with_db!(db, |pool| {
        let spent: Option<i64> = sqlx::query_scalar(
            "UPDATE otp_challenges SET attempts = attempts + 1
              WHERE id = $1 AND attempts < $2 AND consumed_at IS NULL
              RETURNING attempts",
        )
        .bind(id)
        .bind(max)
        .fetch_optional(pool)
        .await?;
        let Some(spent) = spent else {
            let consumed: Option<i64> =
                sqlx::query_scalar("SELECT consumed_at FROM otp_challenges WHERE id = $1")
                    .bind(id)
                    .fetch_one(pool)
                    .await?;
            return Ok(if consumed.is_some() {
                Attempt::Consumed
            } else {
                Attempt::Dead
            });
        };
        if !right {
            return Ok(Attempt::Wrong { left: max - spent });
        }
        let done = sqlx::query(
            "UPDATE otp_challenges SET consumed_at = $1
              WHERE (id = $2 OR code_id = $2) AND consumed_at IS NULL",
        )
        .bind(now)
        .bind(code_root)
        .execute(pool)
        .await?
        .rows_affected();
        Ok(if done > 0 {
            Attempt::Redeemed
        } else {
            Attempt::Consumed
        })
    })
}

/// Deletes rate windows that have ended and challenges that expired (decoys at once, real
/// ones a day later, for the audit trail's sake). Returns the rows deleted.
pub async fn sweep(db: &Db, now: i64) -> StoreResult<u64> {
    const DAY_MS: i64 = 24 * 60 * 60 * 1000;
    with_db!(db, |pool| {
        let windows = sqlx::query("DELETE FROM rate_windows WHERE expires_at < $1")
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected();
        let challenges = sqlx::query(
            "DELETE FROM otp_challenges
              WHERE (decoy AND expires_at < $1) OR expires_at < $2",
        )
        .bind(now)
        .bind(now - DAY_MS)
        .execute(pool)
        .await?
        .rows_affected();
        Ok(windows + challenges)
    })
}
