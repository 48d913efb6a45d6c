//! The customer portal's storage: finding the link token behind a portal request, spending
//! its change allowance, the per-workspace portal policy, one customer's keys, and creating
//! a customer's key with its live-key count checked in the same transaction.

use keygate_shared::portal::PortalPolicy;
use keygate_shared::scope::ApiKeyScope;
use serde_json::json;

use crate::api::api_keys::ApiKey;
use crate::store::api_keys::{ApiKeyRow, InsertApiKey};
use crate::store::audit::{AuditEntry, AuditStore, ClientInfo};
use crate::store::{rows_by, Db, StoreResult};
use crate::{with_db, write_tx};

/// The link token behind a portal request.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct PortalToken {
    /// Its organisation.
    pub org_id: String,
    /// The workspace it is bound to.
    pub workspace_id: String,
    /// The customer it is bound to.
    pub customer_id: String,
    /// When it expires, Unix ms.
    pub expires_at: i64,
    /// The workspace's name.
    pub workspace_name: String,
}

/// The token with this digest, in any organisation (the digest alone names it).
pub async fn find_token(db: &Db, digest: &str) -> StoreResult<Option<PortalToken>> {
    Ok(with_db!(db, |pool| {
        sqlx::query_as(
            "SELECT t.org_id, t.workspace_id, t.customer_id, t.expires_at, w.name AS workspace_name
               FROM link_tokens t JOIN workspaces w ON w.id = t.workspace_id AND w.org_id = t.org_id
              WHERE t.digest = $1",
        )
        .bind(digest)
        .fetch_optional(pool)
        .await
    })?)
}

/// Spends one of the token's `max` changes, in one conditional statement (so concurrent
/// requests cannot overspend); `false` when none is left or the token expired.
pub async fn spend_change(db: &Db, digest: &str, now: i64, max: i64) -> StoreResult<bool> {
    let done = with_db!(db, |pool| {
        sqlx::query(
            "UPDATE link_tokens SET portal_writes = portal_writes + 1
              WHERE digest = $1 AND portal_writes < $2 AND expires_at > $3",
        )
        .bind(digest)
        .bind(max)
        .bind(now)
        .execute(pool)
        .await
        .map(|done| done.rows_affected())
    })?;
    Ok(done == 1)
}

/// The allowed origins of workspace `workspace_id` (none if there is no such workspace).
pub async fn allowed_origins(db: &Db, workspace_id: &str) -> StoreResult<Vec<String>> {
    crate::store::workspaces::json_column(db, "allowed_origins", workspace_id).await
}

/// One `portal_policies` row.
#[derive(sqlx::FromRow)]
struct PolicyRow {
    allowed_scopes: String,
    max_expiry_ms: Option<i64>,
    max_usage: Option<i64>,
    max_live_keys: i64,
}

impl PolicyRow {
    /// The policy (an unreadable scope list reads as no scope at all: fail closed).
    fn policy(self) -> PortalPolicy {
        PortalPolicy {
            allowed_scopes: serde_json::from_str::<Vec<ApiKeyScope>>(&self.allowed_scopes)
                .unwrap_or_default(),
            max_expiry_ms: self.max_expiry_ms,
            max_usage: self.max_usage,
            max_live_keys: u32::try_from(self.max_live_keys).unwrap_or(0),
        }
    }
}

/// The policy workspace `workspace_id`'s admins set, if they did.
pub async fn policy(db: &Db, workspace_id: &str) -> StoreResult<Option<PortalPolicy>> {
    let row: Option<PolicyRow> = with_db!(db, |pool| {
        sqlx::query_as(
            "SELECT allowed_scopes, max_expiry_ms, max_usage, max_live_keys
               FROM portal_policies WHERE workspace_id = $1",
        )
        .bind(workspace_id)
        .fetch_optional(pool)
        .await
    })?;
    Ok(row.map(PolicyRow::policy))
}

/// Sets workspace `workspace_id`'s policy (of organisation `org_id`), with its audit row.
pub async fn put_policy(
    db: &Db,
    (org_id, workspace_id): (&str, &str),
    policy: &PortalPolicy,
    audit: &AuditEntry<'_>,
    client: &ClientInfo,
) -> StoreResult<()> {
    let scopes = serde_json::to_string(&policy.allowed_scopes).unwrap_or_else(|_| "[]".into());
    let updated_by = audit.actor_id.unwrap_or(audit.actor);
    write_tx!(db, |tx| {
        sqlx::query(
            "INSERT INTO portal_policies (workspace_id, org_id, allowed_scopes, max_expiry_ms,
                                          max_usage, max_live_keys, updated_by, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (workspace_id) DO UPDATE SET
                 allowed_scopes = excluded.allowed_scopes, max_expiry_ms = excluded.max_expiry_ms,
                 max_usage = excluded.max_usage, max_live_keys = excluded.max_live_keys,
                 updated_by = excluded.updated_by, updated_at = excluded.updated_at",
        )
        .bind(workspace_id)
        .bind(org_id)
        .bind(&scopes)
        .bind(policy.max_expiry_ms)
        .bind(policy.max_usage)
        .bind(i64::from(policy.max_live_keys))
        .bind(updated_by)
        .bind(crate::ids::now_ms())
        .execute(&mut *tx)
        .await?;
        tx.record_audit(audit, client).await?;
    });
    Ok(())
}

/// The columns of an `api_keys` row, as `crate::store::api_keys` reads them.
const KEY_COLUMNS: &str = "id, org_id, workspace_id, name, prefix, key_last4, customer_id, \
     scopes, enabled, deleted, expires_at, limit_usage, usage_left, usage_count, \
     rotation_grace_ms, last_used_at, created_at, updated_at";

/// Customer `customer_id`'s keys in workspace `workspace_id` that are not deleted, oldest
/// first.
pub async fn customer_keys(
    db: &Db,
    workspace_id: &str,
    customer_id: &str,
) -> StoreResult<Vec<ApiKey>> {
    let sql = format!(
        "SELECT {KEY_COLUMNS} FROM api_keys
          WHERE workspace_id = $1 AND customer_id = $2 AND NOT deleted
          ORDER BY created_at, id"
    );
    let rows: Vec<ApiKeyRow> = rows_by(db, &sql, &[workspace_id, customer_id]).await?;
    Ok(rows.iter().map(ApiKeyRow::view).collect())
}

/// Creates a key for `row.customer_id` in `row.workspace_id`: in one write transaction that
/// holds the workspace row (so concurrent creates of one workspace take turns), counts the
/// customer's live keys, lets `decide` (the policy) refuse or complete the row, then stores
/// it with its first value (`digest`) and its audit row.
pub async fn create_customer_key(
    db: &Db,
    mut row: ApiKeyRow,
    digest: &str,
    audit: AuditEntry<'_>,
    client: &ClientInfo,
    decide: impl FnOnce(u32, &mut ApiKeyRow) -> StoreResult<()>,
) -> StoreResult<ApiKeyRow> {
    let lock = if db.backend() == "postgres" {
        " FOR NO KEY UPDATE"
    } else {
        ""
    };
    let hold_workspace = format!("SELECT id FROM workspaces WHERE id = $1{lock}");
    write_tx!(db, |tx| {
        let _: Option<String> = sqlx::query_scalar(&hold_workspace)
            .bind(&row.workspace_id)
            .fetch_optional(&mut *tx)
            .await?;
        let live: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM api_keys
              WHERE workspace_id = $1 AND customer_id = $2 AND NOT deleted",
        )
        .bind(&row.workspace_id)
        .bind(&row.customer_id)
        .fetch_one(&mut *tx)
        .await?;
        decide(u32::try_from(live).unwrap_or(u32::MAX), &mut row)?;
        tx.insert_api_key(&row, digest).await?;
        let mut detail = audit.detail.clone();
        detail["expiresAt"] = json!(row.expires_at);
        detail["totalUsageAllowed"] = json!(row.usage_left);
        tx.record_audit(&audit.with(detail), client).await?;
        Ok(row)
    })
}

/// How long an expired link token is kept, so the portal can still say "expired" rather
/// than "unknown": one day.
pub const EXPIRED_TOKEN_KEPT_MS: i64 = 24 * 60 * 60 * 1000;

/// Deletes link tokens expired more than [`EXPIRED_TOKEN_KEPT_MS`] before `now`; returns how
/// many. Idempotent, so every replica may run it.
pub async fn sweep_expired_tokens(db: &Db, now: i64) -> StoreResult<u64> {
    let done = with_db!(db, |pool| {
        sqlx::query("DELETE FROM link_tokens WHERE expires_at < $1")
            .bind(now.saturating_sub(EXPIRED_TOKEN_KEPT_MS))
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
    })?;
    Ok(done)
}
