//! What `POST /api/v1/api-key/verify` reads and the two counters it keeps exact across
//! replicas:
//!
//! - a usage-limited key's uses are spent by group commit ([`write_batch`]): concurrent
//!   verifies join one write transaction that reads the uses left once per key (row locked
//!   on PostgreSQL), grants them in arrival order and writes the rest back, so N concurrent
//!   verifies of a key with N uses give exactly N `VALID` across replicas, on SQLite and
//!   PostgreSQL alike; billing usage is added in the same transaction;
//! - a `rateLimitConfig {id, limit}` is counted in a per-second window row
//!   ([`count_in_window`]: `INSERT ... ON CONFLICT DO UPDATE SET count = count + 1
//!   RETURNING count`).
//!
//! **No cache.** Revocation, deletion, disabling and rotation must hold on the very next
//! verify on every replica, so each verify reads the database once anyway; with the SDK key
//! (caller) and the API key resolved by that one indexed read ([`caller_and_key`]) there is
//! nothing left for a cache to save. That read runs on verify's own connections
//! ([`VerifyConnections`]): one round trip to the database, where a pooled query costs three.

mod connections;

use std::collections::{BTreeMap, HashMap};

use keygate_shared::api_key::{grant_uses, ApiKeyState, UseGrants};
use keygate_shared::scope::ApiKeyScope;

use crate::store::billing_usage::{BillingUsageStore, UsageSlot};
use crate::store::sdk_keys::SdkKeyCaller;
use crate::store::{Db, StoreResult, WriteTx};
use crate::with_db;
use connections::SpareFor;
pub use connections::VerifyConnections;

/// An API key in the caller's reach, as verify needs it.
#[derive(Clone, Debug)]
pub struct VerifiableKey {
    /// Its id.
    pub id: String,
    /// Its workspace.
    pub workspace_id: String,
    /// The platform's customer.
    pub customer_id: Option<String>,
    /// What it grants (an unreadable column grants nothing: fail closed).
    pub scopes: Vec<ApiKeyScope>,
    /// Switched on.
    pub enabled: bool,
    /// Deleted for good.
    pub deleted: bool,
    /// Expiry, Unix ms.
    pub expires_at: Option<i64>,
    /// Whether uses are counted against `usage_left`.
    pub limit_usage: bool,
    /// Uses left, when limited.
    pub usage_left: Option<i64>,
    /// Until when this (rotated-out) value still verifies, Unix ms.
    pub retired_until: Option<i64>,
}

impl VerifiableKey {
    /// The facts `keygate_shared::api_key::decide` judges.
    pub fn state(&self) -> ApiKeyState<'_> {
        ApiKeyState {
            deleted: self.deleted,
            enabled: self.enabled,
            expires_at: self.expires_at,
            retired_until: self.retired_until,
            limit_usage: self.limit_usage,
            usage_left: self.usage_left,
            scopes: &self.scopes,
        }
    }
}

/// The calling SDK key and, if in its reach, the API key: one read.
#[derive(Clone, Debug)]
pub struct CallerAndKey {
    /// The SDK key making the call.
    pub caller: SdkKeyCaller,
    /// The API key, if its value is known in the caller's organisation (and workspace, for
    /// a workspace-bound SDK key).
    pub key: Option<VerifiableKey>,
}

/// What verify reads about the API key (all NULL when no value has that digest in the
/// caller's organisation).
#[derive(Debug, sqlx::FromRow)]
struct KeyColumns {
    k_id: Option<String>,
    k_workspace_id: Option<String>,
    k_customer_id: Option<String>,
    k_scopes: Option<String>,
    k_enabled: Option<bool>,
    k_deleted: Option<bool>,
    k_expires_at: Option<i64>,
    k_limit_usage: Option<bool>,
    k_usage_left: Option<i64>,
    v_retired_until: Option<i64>,
}

/// The caller (SDK key) and the API key in one row.
#[derive(Debug, sqlx::FromRow)]
struct CallerAndKeyRow {
    #[sqlx(flatten)]
    caller: SdkKeyCaller,
    #[sqlx(flatten)]
    key: KeyColumns,
}

/// One read: the SDK key by its digest ($1) and, in the same organisation, the API key
/// value by its digest ($2).
const CALLER_AND_KEY: &str = "
SELECT s.id AS id, s.org_id AS org_id, s.workspace_id AS workspace_id,
       s.scopes AS scopes, s.last_used_at AS last_used_at,
       k.id AS k_id, k.workspace_id AS k_workspace_id, k.customer_id AS k_customer_id,
       k.scopes AS k_scopes, k.enabled AS k_enabled, k.deleted AS k_deleted,
       k.expires_at AS k_expires_at, k.limit_usage AS k_limit_usage,
       k.usage_left AS k_usage_left, v.retired_until AS v_retired_until
  FROM sdk_keys s
  LEFT JOIN api_key_values v ON v.key_digest = $2
  LEFT JOIN api_keys k ON k.id = v.api_key_id AND k.org_id = s.org_id
 WHERE s.key_digest = $1 AND s.revoked_at IS NULL";

/// The API key value by digest ($1) within an organisation ($2), for session callers.
const KEY_IN_ORG: &str = "
SELECT k.id AS k_id, k.workspace_id AS k_workspace_id, k.customer_id AS k_customer_id,
       k.scopes AS k_scopes, k.enabled AS k_enabled, k.deleted AS k_deleted,
       k.expires_at AS k_expires_at, k.limit_usage AS k_limit_usage,
       k.usage_left AS k_usage_left, v.retired_until AS v_retired_until
  FROM api_key_values v JOIN api_keys k ON k.id = v.api_key_id
 WHERE v.key_digest = $1 AND k.org_id = $2";

/// The key's state, or `None` if it is not in the caller's reach (unknown, another
/// organisation, or another workspace than the caller's bound one).
fn reachable(key: KeyColumns, bound_workspace: Option<&str>) -> Option<VerifiableKey> {
    let id = key.k_id?;
    let workspace_id = key.k_workspace_id?;
    if bound_workspace.is_some_and(|w| w != workspace_id) {
        return None;
    }
    Some(VerifiableKey {
        id,
        workspace_id,
        customer_id: key.k_customer_id,
        scopes: serde_json::from_str(key.k_scopes.as_deref().unwrap_or("[]")).unwrap_or_default(),
        enabled: key.k_enabled.unwrap_or(false),
        deleted: key.k_deleted.unwrap_or(true),
        expires_at: key.k_expires_at,
        limit_usage: key.k_limit_usage.unwrap_or(true),
        usage_left: key.k_usage_left,
        retired_until: key.v_retired_until,
    })
}

/// The live SDK key with digest `sdk_digest` and the API key whose value has digest
/// `key_digest` (empty: none) in its reach, in one read on one of verify's own connections
/// (`conns`). `None`: no such live SDK key.
pub async fn caller_and_key(
    db: &Db,
    conns: &VerifyConnections,
    sdk_digest: &str,
    key_digest: &str,
) -> StoreResult<Option<CallerAndKey>> {
    let row: Option<CallerAndKeyRow> = with_db!(db, |pool| {
        let mut lease = pool.spare(conns).lease(&pool.connect_options()).await?;
        let row = sqlx::query_as(CALLER_AND_KEY)
            .bind(sdk_digest)
            .bind(key_digest)
            .fetch_optional(&mut *lease)
            .await;
        lease.settle(row)
    })?;
    Ok(row.map(|row| {
        let key = reachable(row.key, row.caller.workspace_id.as_deref());
        CallerAndKey {
            caller: row.caller,
            key,
        }
    }))
}

/// The API key whose value has digest `key_digest` (empty: none) in organisation `org_id`,
/// read on one of verify's own connections (`conns`).
pub async fn key_in_org(
    db: &Db,
    conns: &VerifyConnections,
    key_digest: &str,
    org_id: &str,
) -> StoreResult<Option<VerifiableKey>> {
    if key_digest.is_empty() {
        return Ok(None);
    }
    let row: Option<KeyColumns> = with_db!(db, |pool| {
        let mut lease = pool.spare(conns).lease(&pool.connect_options()).await?;
        let row = sqlx::query_as(KEY_IN_ORG)
            .bind(key_digest)
            .bind(org_id)
            .fetch_optional(&mut *lease)
            .await;
        lease.settle(row)
    })?;
    Ok(row.and_then(|k| reachable(k, None)))
}

/// One verify's write, joined with others into one transaction by [`write_batch`].
#[derive(Clone, Debug)]
pub struct VerifyWrite {
    /// The key used.
    pub key_id: String,
    /// Whether to spend a use of the key (it was read usage-limited): one use taken from its
    /// allowance if it still is, one added to its usage count. Without it (a key without a
    /// limit, charged billing usage), only the charge is written, and the use is counted as
    /// every unlimited use is (`crate::jobs::verify_stats`).
    pub spend: bool,
    /// Billing usage to add if the verify stays `VALID`.
    pub charge: Option<(UsageSlot, i64)>,
    /// When, Unix ms (the key's `last_used_at`).
    pub now: i64,
}

/// The answer to one [`VerifyWrite`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spent {
    /// Granted: the uses left afterwards (`None` when the key is not usage-limited).
    Granted(Option<i64>),
    /// The allowance ran out before this verify (`USAGE_LIMITED`).
    Refused,
}

/// What a batch does to one key's allowance.
#[derive(Clone, Copy, Debug)]
enum KeyGrants {
    /// Usage-limited: decided by [`grant_uses`].
    Limited(UseGrants),
    /// No limit (any more): every use is granted.
    Unlimited,
}

/// The key's limit and uses left, locked until the transaction ends (PostgreSQL; SQLite's
/// `BEGIN IMMEDIATE` holds the database's write lock).
const LOCK_ALLOWANCE_SQLITE: &str = "SELECT limit_usage, usage_left FROM api_keys WHERE id = $1";
const LOCK_ALLOWANCE_PG: &str =
    "SELECT limit_usage, usage_left FROM api_keys WHERE id = $1 FOR UPDATE";

/// Writes a batch of verifies in one transaction and answers each, in order: the allowance
/// of every key a write spends ([`VerifyWrite::spend`]) is read once (locked, keys in id order so replicas cannot deadlock), its uses
/// granted first come first served ([`grant_uses`]) and written back with the usage count;
/// then the billing usage of the granted verifies is added. Nothing is answered before the
/// commit, so an answered verify is never lost.
pub async fn write_batch(db: &Db, writes: &[VerifyWrite]) -> StoreResult<Vec<Spent>> {
    let mut wanted: BTreeMap<&str, (u64, i64)> = BTreeMap::new();
    for w in writes.iter().filter(|w| w.spend) {
        let e = wanted.entry(&w.key_id).or_insert((0, w.now));
        e.0 += 1;
        e.1 = e.1.max(w.now);
    }
    let lock = match db {
        Db::Sqlite(_) => LOCK_ALLOWANCE_SQLITE,
        Db::Postgres(_) => LOCK_ALLOWANCE_PG,
    };
    with_db!(db, |pool| {
        let mut tx = pool.begin_write().await?;
        let mut grants = HashMap::with_capacity(wanted.len());
        for (id, (n, last)) in wanted {
            let row: Option<(bool, Option<i64>)> = sqlx::query_as(lock)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            let g = match row {
                Some((false, _)) => KeyGrants::Unlimited,
                Some((true, left)) => KeyGrants::Limited(grant_uses(left.unwrap_or(0), n)),
                None => KeyGrants::Limited(grant_uses(0, n)),
            };
            let spent = match g {
                KeyGrants::Limited(g) => g.granted as i64,
                KeyGrants::Unlimited => n as i64,
            };
            sqlx::query(SPEND_USES)
                .bind(id)
                .bind(spent)
                .bind(last)
                .execute(&mut *tx)
                .await?;
            grants.insert(id, (g, 0_u64));
        }
        let (answers, charges) = answer_in_order(writes, &mut grants);
        if !charges.is_empty() {
            tx.add_billing_usage(&charges).await?;
        }
        tx.commit().await?;
        Ok(answers)
    })
}

/// Takes `$2` uses (`usage_left` only if limited) of key `$1`, last used at `$3`.
const SPEND_USES: &str = "
UPDATE api_keys SET usage_left = CASE WHEN limit_usage THEN usage_left - $2 ELSE usage_left END,
       usage_count = usage_count + $2,
       last_used_at = CASE WHEN last_used_at IS NULL OR last_used_at < $3
                           THEN $3 ELSE last_used_at END
 WHERE id = $1";

/// Each write's answer, in arrival order, and the billing usage of those granted.
fn answer_in_order(
    writes: &[VerifyWrite],
    grants: &mut HashMap<&str, (KeyGrants, u64)>,
) -> (Vec<Spent>, HashMap<UsageSlot, i64>) {
    let mut charges: HashMap<UsageSlot, i64> = HashMap::new();
    let answers = writes
        .iter()
        .map(|w| {
            let grant = grants.get_mut(w.key_id.as_str()).filter(|_| w.spend);
            let answer = match grant {
                None | Some((KeyGrants::Unlimited, _)) => Spent::Granted(None),
                Some((KeyGrants::Limited(g), seen)) => {
                    let answer = g.answer(*seen);
                    *seen += 1;
                    answer.map_or(Spent::Refused, |left| Spent::Granted(Some(left)))
                }
            };
            if let (Spent::Granted(_), Some((slot, n))) = (answer, &w.charge) {
                *charges.entry(slot.clone()).or_insert(0) += n;
            }
            answer
        })
        .collect();
    (answers, charges)
}

/// Counts this call in the key's window for `limit_id` and returns the count including it.
/// The first call of a window also drops the key's older windows for that id.
pub async fn count_in_window(
    db: &Db,
    api_key_id: &str,
    limit_id: &str,
    window_start: i64,
) -> StoreResult<i64> {
    let count: i64 = with_db!(db, |pool| {
        sqlx::query_scalar(
            "INSERT INTO api_key_rate_windows (api_key_id, limit_id, window_start, count)
             VALUES ($1, $2, $3, 1)
             ON CONFLICT (api_key_id, limit_id, window_start)
             DO UPDATE SET count = api_key_rate_windows.count + 1
             RETURNING count",
        )
        .bind(api_key_id)
        .bind(limit_id)
        .bind(window_start)
        .fetch_one(pool)
        .await
    })?;
    if count == 1 {
        with_db!(db, |pool| {
            sqlx::query(
                "DELETE FROM api_key_rate_windows
                  WHERE api_key_id = $1 AND limit_id = $2 AND window_start < $3",
            )
            .bind(api_key_id)
            .bind(limit_id)
            .bind(window_start)
            .execute(pool)
            .await
            .map(|_| ())
        })?;
    }
    Ok(count)
}
