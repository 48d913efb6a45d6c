//! Customer API keys: creating, reading and changing them ([`create`], [`list`], [`get`],
//! [`edit`], [`delete`], [`rotate`], [`refill`]), verification reads and counters
//! ([`verify`]) and the batched usage statistics of unlimited keys ([`usage`]).
//!
//! Each change runs in one write transaction that reads the row (locked), checks it, changes
//! it and records the audit event, so concurrent edits cannot lose each other's work and the
//! log never claims a change that rolled back. Only SHA-256 digests of key values are stored.

pub mod usage;
pub mod verify;

use keygate_shared::key::{ApiKeyPrefix, SecretKey};
use keygate_shared::scope::ApiKeyScope;
use serde_json::{json, Value};

use crate::api::api_keys::ApiKey;
use crate::api::Timestamp;
use crate::store::audit::{AuditEntry, AuditStore, ClientInfo};
use crate::store::{rows_by_id, Db, Refusal, StoreError, StoreResult, WriteTx};
use crate::{impl_for_both_backends, with_db, write_tx};

/// The columns of [`ApiKeyRow`], in order.
macro_rules! key_columns {
    () => {
        "id, org_id, workspace_id, name, prefix, key_last4, customer_id, scopes, enabled, \
         deleted, expires_at, limit_usage, usage_left, usage_count, rotation_grace_ms, \
         last_used_at, created_at, updated_at"
    };
}

/// One `api_keys` row.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ApiKeyRow {
    /// Id.
    pub id: String,
    /// Organisation (tenant boundary).
    pub org_id: String,
    /// Workspace.
    pub workspace_id: String,
    /// Name.
    pub name: String,
    /// Prefix of its values.
    pub prefix: String,
    /// Last four symbols of the current value.
    pub key_last4: String,
    /// The platform's customer this key belongs to.
    pub customer_id: Option<String>,
    /// JSON array of [`ApiKeyScope`].
    pub scopes: String,
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
    /// Valid verifications so far (unlimited keys: up to ~1 s behind).
    pub usage_count: i64,
    /// Default grace period of a rotation, ms.
    pub rotation_grace_ms: i64,
    /// Last valid verification, Unix ms.
    pub last_used_at: Option<i64>,
    /// Created, Unix ms.
    pub created_at: i64,
    /// Last changed, Unix ms.
    pub updated_at: i64,
}

impl ApiKeyRow {
    /// The row of a new key `name` in workspace `workspace_id` of `org_id`, whose first value
    /// is `secret` with `prefix`: enabled, of no customer, without scopes, expiry, usage limit
    /// or rotation grace period, never used. Callers set what their request asks for.
    pub fn fresh(
        (org_id, workspace_id): (String, String),
        name: String,
        prefix: &ApiKeyPrefix,
        secret: &SecretKey,
    ) -> ApiKeyRow {
        let now = crate::ids::now_ms();
        ApiKeyRow {
            id: crate::ids::new_id(),
            org_id,
            workspace_id,
            name,
            prefix: prefix.as_str().to_owned(),
            key_last4: secret.last4().to_owned(),
            customer_id: None,
            scopes: "[]".to_owned(),
            enabled: true,
            deleted: false,
            expires_at: None,
            limit_usage: false,
            usage_left: None,
            usage_count: 0,
            rotation_grace_ms: 0,
            last_used_at: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// The stored scopes (an unreadable column reads as no scope at all: fail closed).
    pub fn parsed_scopes(&self) -> Vec<ApiKeyScope> {
        serde_json::from_str(&self.scopes).unwrap_or_default()
    }

    /// The key as the client reads it (without its value).
    pub fn view(&self) -> ApiKey {
        ApiKey {
            id: self.id.clone(),
            name: self.name.clone(),
            masked_key: format!("{}_…{}", self.prefix, self.key_last4),
            prefix: self.prefix.clone(),
            expires_at: self.expires_at,
            total_usage_left: if self.limit_usage {
                self.usage_left
            } else {
                None
            },
            limit_usage: self.limit_usage,
            scopes: self.parsed_scopes(),
            enabled: self.enabled,
            customer_id: self.customer_id.clone(),
            deleted: self.deleted,
            created_at: Timestamp(self.created_at),
            updated_at: Timestamp(self.updated_at),
            last_used_at: self.last_used_at.map(Timestamp),
            workspace_id: self.workspace_id.clone(),
            usage_count: self.usage_count,
            rotation_grace_period_ms: self.rotation_grace_ms,
            key: None,
        }
    }
}

/// Reading one key inside a transaction or on a connection.
#[allow(async_fn_in_trait)]
trait ApiKeyStore {
    /// The key `id` of workspace `workspace_id`, deleted or not. With `lock`, the row stays
    /// locked until the transaction ends (`FOR UPDATE` on PostgreSQL; SQLite's
    /// `BEGIN IMMEDIATE` already holds the database's write lock).
    async fn load_api_key(
        &mut self,
        workspace_id: &str,
        id: &str,
        lock: bool,
    ) -> Result<Option<ApiKeyRow>, sqlx::Error>;
}

const LOAD_KEY: &str = concat!(
    "SELECT ",
    key_columns!(),
    " FROM api_keys WHERE id = $1 AND workspace_id = $2"
);

impl ApiKeyStore for sqlx::SqliteConnection {
    async fn load_api_key(
        &mut self,
        workspace_id: &str,
        id: &str,
        _lock: bool,
    ) -> Result<Option<ApiKeyRow>, sqlx::Error> {
        sqlx::query_as(LOAD_KEY)
            .bind(id)
            .bind(workspace_id)
            .fetch_optional(&mut *self)
            .await
    }
}

impl ApiKeyStore for sqlx::PgConnection {
    async fn load_api_key(
        &mut self,
        workspace_id: &str,
        id: &str,
        lock: bool,
    ) -> Result<Option<ApiKeyRow>, sqlx::Error> {
        let sql = if lock {
            concat!(
                "SELECT ",
                key_columns!(),
                " FROM api_keys WHERE id = $1 AND workspace_id = $2 FOR UPDATE"
            )
        } else {
            LOAD_KEY
        };
        sqlx::query_as(sql)
            .bind(id)
            .bind(workspace_id)
            .fetch_optional(&mut *self)
            .await
    }
}

/// The representations of the scopes workspace `workspace_id` defines.
pub async fn defined_scopes(db: &Db, workspace_id: &str) -> StoreResult<Vec<String>> {
    Ok(with_db!(db, |pool| {
        sqlx::query_scalar("SELECT representation FROM workspace_scopes WHERE workspace_id = $1")
            .bind(workspace_id)
            .fetch_all(pool)
            .await
    })?)
}

/// Inserting a new key inside the caller's transaction (`&mut *tx`).
#[allow(async_fn_in_trait)]
pub trait InsertApiKey {
    /// Inserts key `row` and its first value (digest `digest`).
    async fn insert_api_key(&mut self, row: &ApiKeyRow, digest: &str) -> Result<(), sqlx::Error>;
}

impl_for_both_backends!(InsertApiKey {
    async fn insert_api_key(&mut self, row: &ApiKeyRow, digest: &str) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO api_keys
                 (id, org_id, workspace_id, name, prefix, key_last4, customer_id, scopes, enabled,
                  deleted, expires_at, limit_usage, usage_left, usage_count, rotation_grace_ms,
                  created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, FALSE, $10, $11, $12, 0, $13, $14, $14)",
        )
        .bind(&row.id)
        .bind(&row.org_id)
        .bind(&row.workspace_id)
        .bind(&row.name)
        .bind(&row.prefix)
        .bind(&row.key_last4)
        .bind(&row.customer_id)
        .bind(&row.scopes)
        .bind(row.enabled)
        .bind(row.expires_at)
        .bind(row.limit_usage)
        .bind(row.usage_left)
        .bind(row.rotation_grace_ms)
        .bind(row.created_at)
        .execute(&mut *self)
        .await?;
        self.add_value(&row.id, digest, row.created_at).await
    }
});

/// Stores a new key `row` whose first value has digest `digest`, with its audit row.
pub async fn create(
    db: &Db,
    row: &ApiKeyRow,
    digest: &str,
    audit: &AuditEntry<'_>,
    client: &ClientInfo,
) -> StoreResult<()> {
    write_tx!(db, |tx| {
        tx.insert_api_key(row, digest).await?;
        tx.record_audit(audit, client).await?;
    });
    Ok(())
}

/// The workspace's keys that are not deleted, oldest first.
pub async fn list(db: &Db, workspace_id: &str) -> StoreResult<Vec<ApiKey>> {
    let sql = concat!(
        "SELECT ",
        key_columns!(),
        " FROM api_keys WHERE workspace_id = $1 AND NOT deleted ORDER BY created_at, id"
    );
    let rows: Vec<ApiKeyRow> = rows_by_id(db, sql, workspace_id).await?;
    Ok(rows.iter().map(ApiKeyRow::view).collect())
}

/// Key `id` of workspace `workspace_id`, deleted or not.
pub async fn get(db: &Db, workspace_id: &str, id: &str) -> StoreResult<ApiKey> {
    let row = with_db!(db, |pool| {
        let mut conn = pool.acquire().await?;
        conn.load_api_key(workspace_id, id, false).await
    })?;
    Ok(row.ok_or(StoreError::NotFound("API key"))?.view())
}

/// A validated edit: each `Some` field is set (`expires_at`, `usage` and `customer_id`
/// take `Some(None)` to clear).
#[derive(Debug, Default)]
pub struct ApiKeyEdit {
    /// New name.
    pub name: Option<String>,
    /// Switch on or off.
    pub enabled: Option<bool>,
    /// New scopes, as stored (see [`merge_scopes`]).
    pub scopes: Option<String>,
    /// New expiry (Unix ms) or none.
    pub expires_at: Option<Option<i64>>,
    /// Uses left from now, or unlimited.
    pub usage: Option<Option<i64>>,
    /// New customer or none.
    pub customer_id: Option<Option<String>>,
    /// New default rotation grace period, ms.
    pub rotation_grace_ms: Option<i64>,
}

/// Scopes as stored: the rights of repeated representations merged.
pub fn merge_scopes(scopes: Vec<ApiKeyScope>) -> String {
    let mut merged: Vec<ApiKeyScope> = Vec::with_capacity(scopes.len());
    for s in scopes {
        match merged
            .iter_mut()
            .find(|m| m.representation == s.representation)
        {
            Some(m) => {
                m.create |= s.create;
                m.read |= s.read;
                m.update |= s.update;
                m.del |= s.del;
            }
            None => merged.push(s),
        }
    }
    serde_json::to_string(&merged).unwrap_or_else(|_| "[]".into())
}

/// How a change touches the usage allowance. Never a read-modify-write of `usage_left`:
/// verifies decrement it concurrently.
#[derive(Clone, Copy, Debug)]
enum UsageChange {
    /// Leave `limit_usage` and `usage_left` alone.
    Keep,
    /// Set them: `Some(n)` limited to `n` uses left, `None` unlimited.
    Set(Option<i64>),
    /// Add uses to the allowance.
    Add(i64),
}

/// `409 KEY_DELETED` if `key` was deleted: nothing but a repeated delete changes one.
fn refuse_deleted(key: &ApiKeyRow) -> StoreResult<()> {
    if key.deleted {
        return Err(StoreError::refused(
            Refusal::Conflict,
            "KEY_DELETED",
            "this API key was deleted",
        ));
    }
    Ok(())
}

/// What a change does to the current row: the next row, the usage change, audit detail.
type Change = (ApiKeyRow, UsageChange, Value);

/// Runs `change` on key `id` inside one write transaction (row locked) with its audit row
/// (`audit` gets the change's detail); returns the key as stored afterwards.
async fn change_key(
    db: &Db,
    workspace_id: &str,
    id: &str,
    audit: AuditEntry<'_>,
    client: &ClientInfo,
    change: impl FnOnce(&ApiKeyRow) -> StoreResult<Change>,
) -> StoreResult<ApiKey> {
    write_tx!(db, |tx| {
        let current = tx
            .load_api_key(workspace_id, id, true)
            .await?
            .ok_or(StoreError::NotFound("API key"))?;
        let (next, usage, detail) = change(&current)?;
        let (op, limit, amount) = match usage {
            UsageChange::Keep => (0_i64, current.limit_usage, None),
            UsageChange::Set(n) => (1, n.is_some(), n),
            UsageChange::Add(n) => (2, current.limit_usage, Some(n)),
        };
        let stored: ApiKeyRow = sqlx::query_as(concat!(
            "UPDATE api_keys SET name = $1, enabled = $2, scopes = $3, expires_at = $4,
                    customer_id = $5, rotation_grace_ms = $6, deleted = $7,
                    deleted_at = CASE WHEN $7 AND deleted_at IS NULL THEN $8 ELSE deleted_at END,
                    limit_usage = CASE WHEN $9 = 1 THEN $10 ELSE limit_usage END,
                    usage_left = CASE WHEN $9 = 1 THEN $11
                                      WHEN $9 = 2 THEN usage_left + $11
                                      ELSE usage_left END,
                    updated_at = $8
              WHERE id = $12 RETURNING ",
            key_columns!()
        ))
        .bind(&next.name)
        .bind(next.enabled)
        .bind(&next.scopes)
        .bind(next.expires_at)
        .bind(&next.customer_id)
        .bind(next.rotation_grace_ms)
        .bind(next.deleted)
        .bind(crate::ids::now_ms())
        .bind(op)
        .bind(limit)
        .bind(amount)
        .bind(&current.id)
        .fetch_one(&mut *tx)
        .await?;
        tx.record_audit(&audit.with(detail), client).await?;
        Ok(stored.view())
    })
}

/// Sets `slot` to `value` if there is one, noting `field` as changed.
fn set<T>(slot: &mut T, value: Option<T>, field: &'static str, changed: &mut Vec<&'static str>) {
    if let Some(v) = value {
        *slot = v;
        changed.push(field);
    }
}

/// Applies `edit` to key `id` (`Conflict KEY_DELETED` for a deleted key); the audit detail
/// lists the changed fields.
pub async fn edit(
    db: &Db,
    workspace_id: &str,
    id: &str,
    edit: ApiKeyEdit,
    audit: AuditEntry<'_>,
    client: &ClientInfo,
) -> StoreResult<ApiKey> {
    change_key(db, workspace_id, id, audit, client, |current| {
        refuse_deleted(current)?;
        let mut next = current.clone();
        let mut changed = Vec::new();
        set(&mut next.name, edit.name, "name", &mut changed);
        set(&mut next.enabled, edit.enabled, "enabled", &mut changed);
        set(&mut next.scopes, edit.scopes, "scopes", &mut changed);
        set(
            &mut next.expires_at,
            edit.expires_at,
            "expiresAt",
            &mut changed,
        );
        let mut usage = UsageChange::Keep;
        if let Some(u) = edit.usage {
            usage = UsageChange::Set(u);
            changed.push("totalUsageAllowed");
        }
        set(
            &mut next.customer_id,
            edit.customer_id,
            "customerId",
            &mut changed,
        );
        let grace = edit.rotation_grace_ms;
        set(
            &mut next.rotation_grace_ms,
            grace,
            "rotationGracePeriodMs",
            &mut changed,
        );
        Ok((next, usage, json!({ "changed": changed })))
    })
    .await
}

/// Deletes key `id` for good (again for a deleted key: the same answer).
pub async fn delete(
    db: &Db,
    workspace_id: &str,
    id: &str,
    audit: AuditEntry<'_>,
    client: &ClientInfo,
) -> StoreResult<ApiKey> {
    delete_if(db, (workspace_id, id), |_| true, audit, client).await
}

/// [`delete`], only if `reachable` holds for the key as read inside the deleting transaction
/// (a `NotFound` otherwise): a check made before the transaction could be stale by then.
pub async fn delete_if(
    db: &Db,
    (workspace_id, id): (&str, &str),
    reachable: impl FnOnce(&ApiKeyRow) -> bool,
    audit: AuditEntry<'_>,
    client: &ClientInfo,
) -> StoreResult<ApiKey> {
    change_key(db, workspace_id, id, audit, client, |current| {
        if !reachable(current) {
            return Err(StoreError::NotFound("API key"));
        }
        let mut next = current.clone();
        next.deleted = true;
        let detail = json!({ "alreadyDeleted": current.deleted });
        Ok((next, UsageChange::Keep, detail))
    })
    .await
}

/// Adds `amount` uses to usage-limited key `id`, keeping it at most `max` uses
/// (`Invalid NOT_USAGE_LIMITED` / `INVALID_AMOUNT`, `Conflict KEY_DELETED`).
pub async fn refill(
    db: &Db,
    workspace_id: &str,
    id: &str,
    (amount, max): (i64, i64),
    audit: AuditEntry<'_>,
    client: &ClientInfo,
) -> StoreResult<ApiKey> {
    change_key(db, workspace_id, id, audit, client, |current| {
        refuse_deleted(current)?;
        if !current.limit_usage {
            return Err(StoreError::refused(
                Refusal::Invalid,
                "NOT_USAGE_LIMITED",
                "this key has no usage limit to refill; set one with PATCH totalUsageAllowed",
            ));
        }
        if current.usage_left.unwrap_or(0) > max - amount {
            return Err(StoreError::refused(
                Refusal::Invalid,
                "INVALID_AMOUNT",
                format!("a key holds at most {max} uses"),
            ));
        }
        let detail = json!({ "amount": amount });
        Ok((current.clone(), UsageChange::Add(amount), detail))
    })
    .await
}

/// Swapping a key's value inside a transaction.
#[allow(async_fn_in_trait)]
trait ApiKeyValues {
    /// Adds a value (its digest) to key `id`.
    async fn add_value(&mut self, id: &str, digest: &str, now: i64) -> Result<(), sqlx::Error>;

    /// Retires key `id`'s current value (it verifies until `retired_until`), forgets values
    /// past their grace period (they can never verify again) and adds `secret` as the current
    /// value.
    async fn replace_value(
        &mut self,
        id: &str,
        secret: &SecretKey,
        now: i64,
        retired_until: i64,
    ) -> Result<(), sqlx::Error>;
}

impl_for_both_backends!(ApiKeyValues {
    async fn add_value(&mut self, id: &str, digest: &str, now: i64) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO api_key_values (key_digest, api_key_id, created_at) VALUES ($1, $2, $3)",
        )
        .bind(digest)
        .bind(id)
        .bind(now)
        .execute(&mut *self)
        .await?;
        Ok(())
    }

    async fn replace_value(&mut self, id: &str, secret: &SecretKey, now: i64, retired_until: i64) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE api_key_values SET retired_at = $1, retired_until = $2
              WHERE api_key_id = $3 AND retired_at IS NULL",
        )
        .bind(now)
        .bind(retired_until)
        .bind(id)
        .execute(&mut *self)
        .await?;
        sqlx::query("DELETE FROM api_key_values WHERE api_key_id = $1 AND retired_until <= $2")
            .bind(id)
            .bind(now)
            .execute(&mut *self)
            .await?;
        self.add_value(id, &secret.digest().to_hex(), now).await?;
        sqlx::query("UPDATE api_keys SET key_last4 = $1, updated_at = $2 WHERE id = $3")
            .bind(secret.last4())
            .bind(now)
            .bind(id)
            .execute(&mut *self)
            .await?;
        Ok(())
    }
});

/// Gives key `id` a new value (returned in `key`); the current one keeps verifying for
/// `grace` ms (default: the key's own grace period), values past their grace are forgotten.
/// `audit` gets the new mask and the grace period. `Conflict KEY_DELETED` for a deleted key.
pub async fn rotate(
    db: &Db,
    workspace_id: &str,
    id: &str,
    grace: Option<i64>,
    audit: AuditEntry<'_>,
    client: &ClientInfo,
) -> StoreResult<ApiKey> {
    rotate_if(db, (workspace_id, id), |_| true, grace, audit, client).await
}

/// [`rotate`], only if `reachable` holds for the key as read inside the rotating transaction
/// (a `NotFound` otherwise): a check made before the transaction could be stale by then.
pub async fn rotate_if(
    db: &Db,
    (workspace_id, id): (&str, &str),
    reachable: impl FnOnce(&ApiKeyRow) -> bool,
    grace: Option<i64>,
    audit: AuditEntry<'_>,
    client: &ClientInfo,
) -> StoreResult<ApiKey> {
    with_db!(db, |pool| {
        let mut tx = pool.begin_write().await?;
        let mut row = tx
            .load_api_key(workspace_id, id, true)
            .await?
            .filter(|row| reachable(row))
            .ok_or(StoreError::NotFound("API key"))?;
        refuse_deleted(&row)?;
        let prefix = ApiKeyPrefix::new(&row.prefix)
            .map_err(|e| StoreError::Database(sqlx::Error::Decode(e.to_string().into())))?;
        let secret = SecretKey::generate_api_key(&prefix);
        let now = crate::ids::now_ms();
        let grace = grace.unwrap_or(row.rotation_grace_ms);
        tx.replace_value(&row.id, &secret, now, now.saturating_add(grace))
            .await?;
        row.key_last4 = secret.last4().to_owned();
        row.updated_at = now;
        let detail = json!({ "key": secret.mask(), "gracePeriodMs": grace });
        tx.record_audit(&audit.with(detail), client).await?;
        tx.commit().await?;
        let mut view = row.view();
        view.key = Some(secret.expose().to_owned());
        Ok(view)
    })
}
