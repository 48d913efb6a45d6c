//! The edge outbox (storage): every change the edge must learn is written here in the same transaction
//! as the change itself, as the full [`EdgeRecord`] of each affected publishable key.
//!
//! A row's `version` comes from the persisted hybrid logical clock (`edge_clock`, one row,
//! [`keygate_shared::clock`]), advanced in the same transaction by one conditional statement
//! that works alike on SQLite and PostgreSQL and across replicas (the row lock orders
//! concurrent writers). Versions therefore never go backwards: not after a restore, a move to
//! another database or a fresh control plane pointed at an edge that already holds records.
//! Nothing is lost if the process dies between the commit and the delivery: the deliverer
//! picks the row up again.
//!
//! A change that would make a record exceed the limits of
//! [`EdgeRecord::check_limits`] is refused here (400 `BLACKLIST_TOO_LARGE` or
//! `EDGE_RECORD_TOO_LARGE`) and its transaction rolls back; a revocation is never refused.

use std::sync::atomic::{AtomicU64, Ordering};

use keygate_shared::blacklist::Rule;
use keygate_shared::clock::{self, ClockExhausted};
use keygate_shared::key::KeyDigest;
use keygate_shared::record::{EdgeRecord, KeyState, RecordLimit};

use crate::ids::now_ms;
use crate::impl_for_both_backends;
use crate::store::audit::ClientInfo;
use crate::store::gateway_secrets::GatewaySecretStore;
use crate::store::{rows_by, Db, Refusal, StoreError, StoreResult};
use crate::{with_db, write_tx};

/// Why a record could not be queued.
#[derive(Debug)]
pub enum OutboxError {
    /// The database failed.
    Db(sqlx::Error),
    /// The change would make the key's record exceed a limit (the caller's fault: 4xx).
    Limit(RecordLimit),
    /// The version clock is exhausted (see `keygate_shared::clock`).
    Clock(ClockExhausted),
}

impl From<sqlx::Error> for OutboxError {
    fn from(e: sqlx::Error) -> Self {
        OutboxError::Db(e)
    }
}

/// A record over a limit is the caller's to fix (400 with the limit's reason); an exhausted
/// clock is the server's (500, logged).
impl From<OutboxError> for StoreError {
    fn from(e: OutboxError) -> Self {
        match e {
            OutboxError::Db(e) => StoreError::Database(e),
            OutboxError::Limit(limit) => {
                StoreError::refused(Refusal::Invalid, limit.reason(), limit.to_string())
            }
            OutboxError::Clock(e) => StoreError::Database(sqlx::Error::Protocol(e.to_string())),
        }
    }
}

impl std::fmt::Display for OutboxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OutboxError::Db(e) => write!(f, "database: {e}"),
            OutboxError::Limit(l) => write!(f, "{l}"),
            OutboxError::Clock(e) => write!(f, "{e}"),
        }
    }
}

/// Outbox rows this process has written so far (committed or rolled back).
static WRITTEN: AtomicU64 = AtomicU64::new(0);

/// How many outbox rows this process has written so far, committed or not: the request
/// middleware wakes the deliverer only when a request moved it (a rolled-back row costs one
/// needless wake-up, never a missed one).
pub fn rows_written() -> u64 {
    WRITTEN.load(Ordering::Relaxed)
}

/// The conditional clock step of `keygate_shared::clock::next_version`, in SQL.
const CLOCK_TICK: &str =
    "UPDATE edge_clock SET last = CASE WHEN $1 > last THEN $1 ELSE last + 1 END
  WHERE id = 1 RETURNING last";

/// Writing outbox rows inside the caller's transaction.
#[allow(async_fn_in_trait)]
pub trait OutboxStore {
    /// Builds the current edge record of one publishable key (by its row id) from the
    /// tables, as this transaction sees them, with a new version, and queues it for the edge.
    async fn enqueue_publishable_key(&mut self, key_id: &str) -> Result<(), OutboxError>;

    /// Same, by the key's digest (re-issuing a record with a newer version). `false` if
    /// keygate knows no publishable key with that digest.
    async fn enqueue_digest(&mut self, digest: &KeyDigest) -> Result<bool, OutboxError>;

    /// Advances the version clock and returns the new version.
    async fn next_version(&mut self) -> Result<u64, OutboxError>;

    /// Moves the clock to at least `seen` (a version the edge holds), so the next version
    /// issued is greater. Versions above 2^53 - 1 are refused.
    async fn catch_up_clock(&mut self, seen: u64) -> Result<(), OutboxError>;

    /// The current edge record of the publishable key with this digest, if keygate issued
    /// one; `version` is its newest outbox row's (0 if none). Serves the edge's pulls.
    async fn current_edge_record(
        &mut self,
        digest: &KeyDigest,
    ) -> Result<Option<EdgeRecord>, sqlx::Error>;
}

impl_for_both_backends!(OutboxStore {
    async fn enqueue_publishable_key(&mut self, key_id: &str) -> Result<(), OutboxError> {
        let digest_hex: String =
            sqlx::query_scalar("SELECT key_digest FROM publishable_keys WHERE id = $1")
                .bind(key_id)
                .fetch_one(&mut *self)
                .await?;
        let digest = KeyDigest::from_hex(&digest_hex)
            .ok_or_else(|| sqlx::Error::Decode("stored key digest is not hex".into()))?;
        if self.enqueue_digest(&digest).await? {
            Ok(())
        } else {
            Err(sqlx::Error::RowNotFound.into())
        }
    }

    async fn enqueue_digest(&mut self, digest: &KeyDigest) -> Result<bool, OutboxError> {
        // The clock first: its row lock orders concurrent writers, so what is read below
        // already includes every change committed with a lower version.
        let version = self.next_version().await?;
        let Some(mut record) = self.current_edge_record(digest).await? else {
            return Ok(false);
        };
        record.version = version;
        if record.state == KeyState::Active {
            record.check_limits().map_err(OutboxError::Limit)?;
        }
        let json = serde_json::to_string(&record).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        sqlx::query(
            "INSERT INTO edge_outbox (workspace_id, key_digest, version, record, created_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&record.workspace_id)
        .bind(digest.to_hex())
        .bind(version as i64)
        .bind(json)
        .bind(now_ms())
        .execute(&mut *self)
        .await?;
        WRITTEN.fetch_add(1, Ordering::Relaxed);
        Ok(true)
    }

    async fn next_version(&mut self) -> Result<u64, OutboxError> {
        let now = clock::wall_clock_version(u64::try_from(now_ms()).unwrap_or_default());
        let now = i64::try_from(clock::check_version(now).map_err(OutboxError::Clock)?)
            .map_err(|_| OutboxError::Clock(ClockExhausted))?;
        let last: i64 = sqlx::query_scalar(CLOCK_TICK)
            .bind(now)
            .fetch_one(&mut *self)
            .await?;
        clock::check_version(u64::try_from(last).unwrap_or(u64::MAX)).map_err(OutboxError::Clock)
    }

    async fn catch_up_clock(&mut self, seen: u64) -> Result<(), OutboxError> {
        let seen = clock::catch_up(0, seen).map_err(OutboxError::Clock)?;
        sqlx::query("UPDATE edge_clock SET last = $1 WHERE id = 1 AND last < $1")
            .bind(seen as i64)
            .execute(&mut *self)
            .await?;
        Ok(())
    }

    async fn current_edge_record(&mut self, digest: &KeyDigest) -> Result<Option<EdgeRecord>, sqlx::Error> {
        type KeyRow = (String, Option<i64>, String, Option<String>, bool, String);
        let row: Option<KeyRow> = sqlx::query_as(
            "SELECT k.workspace_id, k.revoked_at, w.allowed_origins, w.origin_url, w.forward_cookies,
                    w.route_map
               FROM publishable_keys k JOIN workspaces w ON w.id = k.workspace_id
              WHERE k.key_digest = $1",
        )
        .bind(digest.to_hex())
        .fetch_optional(&mut *self)
        .await?;
        let Some((workspace_id, revoked_at, origins_json, origin_url, forward_cookies, route_map)) = row else {
            return Ok(None);
        };
        // The workspace's gateway secrets, sealed for the edge (see `gateway_secrets`).
        let gateway_secrets = self
            .live_gateway_secrets(&workspace_id, now_ms())
            .await?
            .iter()
            .filter_map(crate::store::gateway_secrets::StoredSecret::for_edge)
            .collect();
        let rules: Vec<(String, String)> = sqlx::query_as(
            "SELECT module, functionality FROM blacklist_rules WHERE workspace_id = $1 ORDER BY module, functionality",
        )
        .bind(&workspace_id)
        .fetch_all(&mut *self)
        .await?;
        let version: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM edge_outbox WHERE key_digest = $1")
                .bind(digest.to_hex())
                .fetch_one(&mut *self)
                .await?;
        let state = if revoked_at.is_some() { KeyState::Revoked } else { KeyState::Active };
        let version = version.unwrap_or(0).max(0) as u64;
        Ok(Some(EdgeRecord {
            blacklist: rules
                .into_iter()
                .map(|(module, functionality)| Rule { module, functionality })
                .collect(),
            allowed_origins: serde_json::from_str(&origins_json).unwrap_or_default(),
            origin_url,
            forward_cookies,
            gateway_secrets,
            // Validated on save (`workspaces::put_modules`); the edge fails closed if not.
            routes: serde_json::from_str(&route_map).unwrap_or_default(),
            ..EdgeRecord::new(*digest, workspace_id, state, version)
        }))
    }
});

/// One dead letter: a record the edge refused, set aside.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    /// Outbox row id.
    pub id: i64,
    /// The workspace.
    pub workspace_id: String,
    /// The key's digest (hex).
    pub key_digest: String,
    /// The record's version.
    pub version: i64,
    /// Why the edge refused it (a stable reason, with the HTTP status when there was one).
    pub reason: String,
    /// When it was set aside (Unix ms).
    pub dead_at: i64,
}

/// The current edge record of the publishable key with this digest (the edge's pull).
pub async fn current_record(db: &Db, digest: &KeyDigest) -> StoreResult<Option<EdgeRecord>> {
    Ok(with_db!(db, |pool| {
        let mut conn = pool.acquire().await?;
        conn.current_edge_record(digest).await
    })?)
}

/// Dead letters not yet retried or superseded, oldest first.
pub async fn dead_letters(db: &Db) -> StoreResult<Vec<DeadLetter>> {
    let sql = "SELECT id, workspace_id, key_digest, version,
                      COALESCE(dead_reason, '') AS reason, dead_at
                 FROM edge_outbox
                WHERE dead_at IS NOT NULL AND delivered_at IS NULL ORDER BY dead_at, id";
    rows_by(db, sql, &[]).await
}

/// Puts dead letters back in the queue (all of them, or those of one key digest), to be
/// delivered again at once; each retry is audited in its workspace's organisation. Returns
/// how many.
pub async fn retry_dead_letters(
    db: &Db,
    digest: Option<&KeyDigest>,
    actor: &str,
) -> StoreResult<u64> {
    let letters = dead_letters(db).await?;
    let chosen: Vec<&DeadLetter> = letters
        .iter()
        .filter(|d| digest.is_none_or(|want| want.to_hex() == d.key_digest))
        .collect();
    write_tx!(db, |tx| {
        let mut n = 0;
        for letter in &chosen {
            n += sqlx::query(
                "UPDATE edge_outbox SET dead_at = NULL, dead_reason = NULL, attempts = 0,
                        next_attempt_at = 0, last_error = NULL
                  WHERE id = $1 AND dead_at IS NOT NULL AND delivered_at IS NULL",
            )
            .bind(letter.id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            let event = DeliveryEvent {
                workspace_id: &letter.workspace_id,
                key_digest: &letter.key_digest,
                version: letter.version,
                reason: &letter.reason,
                actor,
                action: "edge_record.retry",
            };
            tx.as_mut().audit_delivery(&event).await?;
        }
        Ok(n)
    })
}

/// An edge delivery event for the audit log: a record of `key_digest` at `version` set aside
/// or retried, for `reason`.
#[derive(Debug)]
pub struct DeliveryEvent<'a> {
    /// The key's workspace (its organisation owns the row).
    pub workspace_id: &'a str,
    /// The key's digest (hex), the row's target.
    pub key_digest: &'a str,
    /// The record's version.
    pub version: i64,
    /// Why it was set aside.
    pub reason: &'a str,
    /// Who acted: the deliverer, or the operator's command.
    pub actor: &'a str,
    /// `edge_record.dead_letter` or `edge_record.retry`.
    pub action: &'a str,
}

/// Audit rows about edge delivery on either backend, in the organisation owning the
/// workspace; the actor is the system, not a user (`actor_id` is `system`).
#[allow(async_fn_in_trait)]
pub trait DeliveryAudit {
    /// Inserts one audit row in the workspace's organisation (nothing if it no longer exists).
    async fn audit_delivery(&mut self, event: &DeliveryEvent<'_>) -> Result<(), sqlx::Error>;
}

impl_for_both_backends!(DeliveryAudit {
    async fn audit_delivery(&mut self, event: &DeliveryEvent<'_>) -> Result<(), sqlx::Error> {
        use crate::store::audit::{AuditEntry, AuditStore};
        let org: Option<String> = sqlx::query_scalar("SELECT org_id FROM workspaces WHERE id = $1")
            .bind(event.workspace_id)
            .fetch_optional(&mut *self)
            .await?;
        let Some(org) = org else { return Ok(()) };
        let entry = AuditEntry {
            workspace_id: Some(event.workspace_id),
            target: Some(event.key_digest),
            detail: serde_json::json!({"version": event.version, "reason": event.reason}),
            ..AuditEntry::new(&org, "system", event.actor, event.action)
        };
        self.record_audit(&entry, &ClientInfo::default()).await
    }
});
