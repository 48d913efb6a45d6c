//! Publishable keys: the workspace's live key, its blacklist and origins, each change
//! committed with the outbox row of the key's new edge record (see `crate::store::outbox`).

use keygate_shared::blacklist::Catalogue;
use keygate_shared::key::{ct_eq, mask, Environment, KeyKind, SecretKey};
use serde_json::json;

use crate::api::publishable_keys::{BlacklistRule, PublishableKey};
use crate::api::Timestamp;
use crate::ids::{new_id, now_ms};
use crate::impl_for_both_backends;
use crate::store::audit::{AuditEntry, AuditStore, ClientInfo};
use crate::store::constraints::{violated, BLACKLIST_RULE_UNIQUE, ONE_LIVE_PUBLISHABLE_KEY};
use crate::store::outbox::OutboxStore;
use crate::store::workspaces::WorkspaceRow;
use crate::store::{Db, Refusal, StoreError, StoreResult};
use crate::{with_db, write_tx};

/// Publishable-key storage used inside a caller's transaction (workspace creation, revoke).
#[allow(async_fn_in_trait)]
pub trait PublishableKeyStore {
    /// Mints and inserts a live publishable key with row id `id`; returns the key.
    async fn insert_publishable_key(
        &mut self,
        id: &str,
        workspace_id: &str,
        environment: Environment,
        now: i64,
    ) -> Result<SecretKey, sqlx::Error>;

    /// Takes the workspace's row lock for the rest of the transaction (a no-op write; SQLite's
    /// `BEGIN IMMEDIATE` already serializes writers) and returns its catalogue, or `None` if the
    /// workspace is not in `org_id`. Every change the edge must learn starts here, so changes to
    /// one workspace commit one after another and their outbox rows are in commit order.
    async fn lock_workspace(
        &mut self,
        workspace_id: &str,
        org_id: &str,
    ) -> Result<Option<String>, sqlx::Error>;

    /// The id of the workspace's live key, if any.
    async fn live_publishable_key_id(
        &mut self,
        workspace_id: &str,
    ) -> Result<Option<String>, sqlx::Error>;
}

impl_for_both_backends!(PublishableKeyStore {
    async fn insert_publishable_key(
        &mut self,
        id: &str,
        workspace_id: &str,
        environment: Environment,
        now: i64,
    ) -> Result<SecretKey, sqlx::Error> {
        let key = SecretKey::generate(KeyKind::Publishable, environment);
        sqlx::query(
            "INSERT INTO publishable_keys (id, workspace_id, key_value, key_digest, created_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(workspace_id)
        .bind(key.expose())
        .bind(key.digest().to_hex())
        .bind(now)
        .execute(&mut *self)
        .await?;
        Ok(key)
    }

    async fn lock_workspace(&mut self, workspace_id: &str, org_id: &str) -> Result<Option<String>, sqlx::Error> {
        sqlx::query_scalar(
            "UPDATE workspaces SET updated_at = $1 WHERE id = $2 AND org_id = $3 RETURNING catalogue",
        )
        .bind(now_ms())
        .bind(workspace_id)
        .bind(org_id)
        .fetch_optional(&mut *self)
        .await
    }

    async fn live_publishable_key_id(&mut self, workspace_id: &str) -> Result<Option<String>, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT id FROM publishable_keys WHERE workspace_id = $1 AND revoked_at IS NULL",
        )
        .bind(workspace_id)
        .fetch_optional(&mut *self)
        .await
    }
});

/// Queues the edge record of the workspace's live key, if it has one: after any change to
/// what the edge checks that key against (origins, blacklist, routes, gateway secrets).
pub async fn requeue_live_key<C>(conn: &mut C, workspace_id: &str) -> StoreResult<()>
where
    C: PublishableKeyStore + OutboxStore,
{
    if let Some(key_id) = conn.live_publishable_key_id(workspace_id).await? {
        conn.enqueue_publishable_key(&key_id).await?;
    }
    Ok(())
}

/// The workspace's live publishable key with its blacklist and origins. `NotFound` if the
/// workspace is not one of `org_id`'s.
pub async fn current(db: &Db, org_id: &str, workspace_id: &str) -> StoreResult<PublishableKey> {
    let workspace = crate::store::workspaces::find(db, org_id, workspace_id).await?;
    type KeyRow = (String, String, i64, bool);
    let (key, rules): (Option<KeyRow>, Vec<(String, String, String)>) = with_db!(db, |pool| {
        let key = sqlx::query_as(
            "SELECT k.id, k.key_value, k.created_at, w.forward_cookies
               FROM publishable_keys k JOIN workspaces w ON w.id = k.workspace_id
              WHERE k.workspace_id = $1 AND k.revoked_at IS NULL",
        )
        .bind(&workspace.id)
        .fetch_optional(pool)
        .await?;
        let rules = sqlx::query_as(
            "SELECT id, module, functionality FROM blacklist_rules
              WHERE workspace_id = $1 ORDER BY module, functionality",
        )
        .bind(&workspace.id)
        .fetch_all(pool)
        .await?;
        (key, rules)
    });
    // Every workspace is created with a live key and a revoke replaces it in one transaction.
    let (id, key, created_at, forward_cookies) =
        key.ok_or(StoreError::Database(sqlx::Error::RowNotFound))?;
    Ok(PublishableKey {
        id,
        key,
        environment: workspace.environment.clone(),
        created_at: Timestamp(created_at),
        blacklist: rules
            .into_iter()
            .map(|(id, module, functionality)| BlacklistRule {
                id,
                module,
                functionality,
            })
            .collect(),
        allowed_origins: workspace.allowed_origins(),
        origin_url: workspace.origin_url,
        forward_cookies,
    })
}

fn already_revoked() -> StoreError {
    StoreError::Conflict {
        reason: "KEY_ALREADY_REVOKED",
        message: "that publishable key was already replaced; reload to see the current key".into(),
    }
}

/// Which key a revoke means: its row id or its value (`None`: whichever is live).
#[derive(Debug, Default)]
pub struct NamedKey<'a> {
    /// The key's row id.
    pub id: Option<&'a str>,
    /// The key itself (compared in constant time).
    pub value: Option<&'a str>,
}

/// The live key (row id, value), if it is the one `named`; `409 KEY_ALREADY_REVOKED` if not.
async fn live_key_named(
    db: &Db,
    workspace_id: &str,
    named: NamedKey<'_>,
) -> StoreResult<(String, String)> {
    let current: Option<(String, String)> = with_db!(db, |pool| {
        sqlx::query_as(
            "SELECT id, key_value FROM publishable_keys WHERE workspace_id = $1 AND revoked_at IS NULL",
        )
        .bind(workspace_id)
        .fetch_optional(pool)
        .await
    })?;
    let (id, value) = current.ok_or_else(already_revoked)?;
    let names_other =
        named.id.is_some_and(|k| k != id) || named.value.is_some_and(|k| !ct_eq(k, &value));
    if names_other {
        return Err(already_revoked());
    }
    Ok((id, value))
}

/// Replaces the workspace's live key (the one `named`, if named) with a new one: the old key
/// is marked revoked and both edge records are queued, the old one first, with the audit row
/// (`audit` plus the masks). `409 KEY_ALREADY_REVOKED` if the named key, or the key live when
/// this started, is no longer live. Returns the old and new keys' masks.
pub async fn revoke(
    db: &Db,
    workspace: &WorkspaceRow,
    named: NamedKey<'_>,
    audit: AuditEntry<'_>,
    client: &ClientInfo,
) -> StoreResult<(String, String)> {
    let (old_id, old_value) = live_key_named(db, &workspace.id, named).await?;
    let old_mask = mask(&old_value);
    let new_id = new_id();
    let now = now_ms();
    let new_key = write_tx!(db, |tx| {
        if tx
            .lock_workspace(&workspace.id, &workspace.org_id)
            .await?
            .is_none()
        {
            return Err(StoreError::NotFound("workspace"));
        }
        let done = sqlx::query(
            "UPDATE publishable_keys SET revoked_at = $1, replaced_by = $2
              WHERE id = $3 AND workspace_id = $4 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(&new_id)
        .bind(&old_id)
        .bind(&workspace.id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Err(already_revoked());
        }
        let new_key = tx
            .insert_publishable_key(&new_id, &workspace.id, workspace.environment(), now)
            .await
            .map_err(|e| match violated(&e) {
                Some(c) if *c == ONE_LIVE_PUBLISHABLE_KEY => already_revoked(),
                _ => e.into(),
            })?;
        tx.enqueue_publishable_key(&old_id).await?;
        tx.enqueue_publishable_key(&new_id).await?;
        let audit = audit.on(&old_id).with(json!({
            "revoked": old_mask,
            "replacedBy": new_id,
            "newKey": new_key.mask(),
        }));
        tx.record_audit(&audit, client).await?;
        new_key
    });
    Ok((old_mask, new_key.mask()))
}

/// What a PATCH of the key's origins changes; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct OriginChanges {
    /// New allowed origins (canonical).
    pub allowed_origins: Option<Vec<String>>,
    /// A new origin URL (`Some(None)` removes it).
    pub origin_url: Option<Option<String>>,
    /// Whether the gateway forwards cookies.
    pub forward_cookies: Option<bool>,
}

/// Writes the fields `changes` names, queues the live key's record and the audit row.
pub async fn update_origins(
    db: &Db,
    org_id: &str,
    workspace_id: &str,
    changes: &OriginChanges,
    audit: &AuditEntry<'_>,
    client: &ClientInfo,
) -> StoreResult<()> {
    let origins_json = changes
        .allowed_origins
        .as_ref()
        .map(|o| serde_json::Value::from(o.clone()).to_string());
    write_tx!(db, |tx| {
        let done = sqlx::query(
            "UPDATE workspaces SET
                 allowed_origins = CASE WHEN $1 THEN $2 ELSE allowed_origins END,
                 origin_url = CASE WHEN $3 THEN $4 ELSE origin_url END,
                 forward_cookies = CASE WHEN $8 THEN $9 ELSE forward_cookies END,
                 updated_at = $5
             WHERE id = $6 AND org_id = $7",
        )
        .bind(origins_json.is_some())
        .bind(origins_json.as_deref().unwrap_or("[]"))
        .bind(changes.origin_url.is_some())
        .bind(changes.origin_url.clone().flatten())
        .bind(now_ms())
        .bind(workspace_id)
        .bind(org_id)
        .bind(changes.forward_cookies.is_some())
        .bind(changes.forward_cookies.unwrap_or(false))
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("workspace"));
        }
        requeue_live_key(&mut *tx, workspace_id).await?;
        tx.record_audit(audit, client).await?;
        Ok(())
    })
}

/// Adds a blacklist rule for (`module`, `functionality`), which must name the catalogue
/// (checked under the workspace's lock, so a concurrent catalogue change cannot slip a rule
/// for a removed module in), queues the live key's record and the audit row (`audit` plus the
/// canonical names). `409 DUPLICATE_RULE` if the workspace already has that rule.
pub async fn add_rule(
    db: &Db,
    org_id: &str,
    workspace_id: &str,
    (module, functionality): (&str, &str),
    audit: AuditEntry<'_>,
    client: &ClientInfo,
) -> StoreResult<BlacklistRule> {
    let id = new_id();
    write_tx!(db, |tx| {
        let catalogue = tx
            .lock_workspace(workspace_id, org_id)
            .await?
            .ok_or(StoreError::NotFound("workspace"))?;
        let catalogue: Catalogue = serde_json::from_str(&catalogue).unwrap_or_default();
        let rule = catalogue
            .rule(module, functionality)
            .map_err(|e| StoreError::refused(Refusal::Invalid, e.code(), e.to_string()))?;
        sqlx::query(
            "INSERT INTO blacklist_rules (id, workspace_id, module, functionality, created_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&id)
        .bind(workspace_id)
        .bind(&rule.module)
        .bind(&rule.functionality)
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(BLACKLIST_RULE_UNIQUE.conflict(
            "DUPLICATE_RULE",
            "this module and functionality are already blacklisted",
        ))?;
        requeue_live_key(&mut *tx, workspace_id).await?;
        let audit = audit
            .on(&id)
            .with(json!({ "module": rule.module, "functionality": rule.functionality }));
        tx.record_audit(&audit, client).await?;
        Ok(BlacklistRule {
            id,
            module: rule.module,
            functionality: rule.functionality,
        })
    })
}

/// Removes the workspace's blacklist rule `rule_id`, queues the live key's record and the
/// audit row (`audit` plus the rule's names). `NotFound` for an unknown rule.
pub async fn remove_rule(
    db: &Db,
    org_id: &str,
    workspace_id: &str,
    rule_id: &str,
    audit: AuditEntry<'_>,
    client: &ClientInfo,
) -> StoreResult<()> {
    write_tx!(db, |tx| {
        if tx.lock_workspace(workspace_id, org_id).await?.is_none() {
            return Err(StoreError::NotFound("workspace"));
        }
        let removed: Option<(String, String)> = sqlx::query_as(
            "DELETE FROM blacklist_rules WHERE id = $1 AND workspace_id = $2
             RETURNING module, functionality",
        )
        .bind(rule_id)
        .bind(workspace_id)
        .fetch_optional(&mut *tx)
        .await?;
        let (module, functionality) = removed.ok_or(StoreError::NotFound("blacklist rule"))?;
        requeue_live_key(&mut *tx, workspace_id).await?;
        let audit = audit.with(json!({ "module": module, "functionality": functionality }));
        tx.record_audit(&audit, client).await?;
        Ok(())
    })
}
