//! Workspaces: finding one within its organisation (the tenant boundary of every query
//! here), creating one complete with its keys, changing its defaults and saving its
//! module/functionality catalogue with the route map.
//!
//! A workspace is born complete: [`create`] writes, in one transaction, the workspace, its
//! publishable key (with the outbox row that tells the edge), its SDK access key (sealed) and
//! an audit event, so no workspace ever exists without its keys.

use keygate_shared::blacklist::{Catalogue, Rule};
use keygate_shared::key::Environment;
use keygate_shared::route::RouteBinding;
use keygate_shared::scope::SdkScopes;
use serde_json::json;

use crate::api::workspaces::Workspace;
use crate::api::Timestamp;
use crate::crypto::Keys;
use crate::ids::{new_id, now_ms};
use crate::store::audit::{AuditEntry, AuditStore, ClientInfo};
use crate::store::gateway_secrets::add_current;
use crate::store::publishable_keys::{requeue_live_key, PublishableKeyStore};
use crate::store::sdk_keys::{NewSdkKey, SdkKeyStore, ACCESS_KEY_NAME};
use crate::store::{row_by, Db, StoreError, StoreResult};
use crate::{with_db, write_tx};

/// What a workspace gives new API keys, once the caller is known to reach it.
#[derive(Clone, Debug)]
pub struct ReachableWorkspace {
    /// Its id.
    pub id: String,
    /// Its organisation.
    pub org_id: String,
    /// The prefix new keys get when the request names none.
    pub default_key_prefix: Option<String>,
    /// How long new keys live, in milliseconds, when the request gives no expiry.
    pub default_expiration: Option<i64>,
}

/// The workspace `workspace_id` of organisation `org_id`; `NotFound` for one in another
/// organisation, so a caller cannot learn whether it exists.
pub async fn reachable(
    db: &Db,
    org_id: &str,
    workspace_id: &str,
) -> StoreResult<ReachableWorkspace> {
    let sql = "SELECT id, org_id, default_key_prefix, default_expiration
               FROM workspaces WHERE id = $1 AND org_id = $2";
    let (id, org_id, default_key_prefix, default_expiration) =
        row_by(db, sql, &[workspace_id, org_id], "workspace").await?;
    Ok(ReachableWorkspace {
        id,
        org_id,
        default_key_prefix,
        default_expiration,
    })
}

/// A workspace row as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WorkspaceRow {
    /// Id.
    pub id: String,
    /// Owning organisation.
    pub org_id: String,
    /// Display name.
    pub name: String,
    /// `live` or `test`.
    pub environment: String,
    /// Prefix of customer API keys made in this workspace.
    pub default_key_prefix: Option<String>,
    /// JSON array of IPs/CIDRs.
    pub default_allowed_ips: String,
    /// Default rate limit of new API keys.
    pub default_rate_limit_per_second: Option<i64>,
    /// Default expiration of new API keys.
    pub default_expiration: Option<i64>,
    /// JSON catalogue `{"modules": [...]}`.
    pub catalogue: String,
    /// JSON array of canonical origins.
    pub allowed_origins: String,
    /// Where the edge forwards allowed requests.
    pub origin_url: Option<String>,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub updated_at: i64,
}

const WORKSPACE_COLUMNS: &str = "id, org_id, name, environment, default_key_prefix, \
     default_allowed_ips, default_rate_limit_per_second, default_expiration, catalogue, \
     allowed_origins, origin_url, created_at, updated_at";

impl WorkspaceRow {
    /// The key environment of the workspace (`pk_live_` or `pk_test_`, ...).
    pub fn environment(&self) -> Environment {
        if self.environment == "test" {
            Environment::Test
        } else {
            Environment::Live
        }
    }

    /// The stored catalogue (empty if unreadable, which validation on write prevents).
    pub fn catalogue(&self) -> Catalogue {
        serde_json::from_str(&self.catalogue).unwrap_or_default()
    }

    /// The stored allowed origins.
    pub fn allowed_origins(&self) -> Vec<String> {
        serde_json::from_str(&self.allowed_origins).unwrap_or_default()
    }

    /// As the API shows it.
    pub fn to_api(&self) -> Workspace {
        Workspace {
            id: self.id.clone(),
            name: self.name.clone(),
            team_id: self.org_id.clone(),
            environment: self.environment.clone(),
            default_key_prefix: self.default_key_prefix.clone(),
            default_allowed_ips: serde_json::from_str(&self.default_allowed_ips)
                .unwrap_or_default(),
            default_rate_limit_per_second: self.default_rate_limit_per_second,
            default_expiration: self.default_expiration,
            created_at: Timestamp(self.created_at),
            updated_at: Timestamp(self.updated_at),
        }
    }
}

/// The workspace `id` of `org_id`; `NotFound` for an unknown id or another organisation's.
pub async fn find(db: &Db, org_id: &str, id: &str) -> StoreResult<WorkspaceRow> {
    let sql = format!("SELECT {WORKSPACE_COLUMNS} FROM workspaces WHERE id = $1 AND org_id = $2");
    row_by(db, &sql, &[id, org_id], "workspace").await
}

/// The workspaces of `org_id`, oldest first; only `bound` if given (a workspace-bound key).
pub async fn list(db: &Db, org_id: &str, bound: Option<&str>) -> StoreResult<Vec<Workspace>> {
    let sql = format!(
        "SELECT {WORKSPACE_COLUMNS} FROM workspaces
          WHERE org_id = $1 AND ($2 IS NULL OR id = $2)
          ORDER BY created_at, id"
    );
    let rows: Vec<WorkspaceRow> = with_db!(db, |pool| {
        sqlx::query_as(&sql)
            .bind(org_id)
            .bind(bound)
            .fetch_all(pool)
            .await
    })?;
    Ok(rows.iter().map(WorkspaceRow::to_api).collect())
}

/// Stores a new workspace with its publishable key, its own gateway signing secret (sealed
/// for the edge with `edge_secret` when one is configured), the key's edge record in the
/// outbox, its SDK access key (bound to it, every scope) and its audit row (`audit` plus the
/// keys' masks and ids), all in one transaction.
pub async fn create(
    db: &Db,
    (keys, edge_secret): (&Keys, Option<&str>),
    row: &WorkspaceRow,
    created_by: &str,
    audit: AuditEntry<'_>,
    client: &ClientInfo,
) -> StoreResult<()> {
    let env = row.environment();
    let now = row.created_at;
    write_tx!(db, |tx| {
        sqlx::query(
            "INSERT INTO workspaces (id, org_id, name, environment, default_key_prefix,
                 default_allowed_ips, default_rate_limit_per_second, default_expiration,
                 catalogue, allowed_origins, origin_url, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(&row.id)
        .bind(&row.org_id)
        .bind(&row.name)
        .bind(&row.environment)
        .bind(&row.default_key_prefix)
        .bind(&row.default_allowed_ips)
        .bind(row.default_rate_limit_per_second)
        .bind(row.default_expiration)
        .bind(&row.catalogue)
        .bind(&row.allowed_origins)
        .bind(&row.origin_url)
        .bind(row.created_at)
        .bind(row.updated_at)
        .execute(&mut *tx)
        .await?;
        let pk_id = new_id();
        let pk = tx.insert_publishable_key(&pk_id, &row.id, env, now).await?;
        // Queues the key's first edge record, with the secret in it.
        let gateway = add_current(&mut *tx, keys, edge_secret, &row.id, now).await?;
        let new_sdk_key = NewSdkKey {
            org_id: &row.org_id,
            workspace_id: Some(&row.id),
            name: ACCESS_KEY_NAME,
            scopes: SdkScopes::all(),
            environment: env,
            is_access_key: true,
            created_by: Some(created_by),
            now,
        };
        let (sdk_id, sdk) = tx.insert_sdk_key(keys, &new_sdk_key).await?;
        let audit = audit.with(json!({
            "name": row.name,
            "environment": row.environment,
            "publishableKey": pk.mask(),
            "publishableKeyId": pk_id,
            "sdkAccessKey": sdk.mask(),
            "sdkAccessKeyId": sdk_id,
            "gatewaySecretKid": gateway.kid,
        }));
        tx.record_audit(&audit, client).await?;
        Ok(())
    })
}

/// The settings a PATCH changes; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct WorkspaceChanges {
    /// A new name.
    pub name: Option<String>,
    /// A new key prefix (`Some(None)` clears it).
    pub default_key_prefix: Option<Option<String>>,
    /// New default allowed IPs (canonical).
    pub default_allowed_ips: Option<Vec<String>>,
    /// A new default rate limit (`Some(None)` clears it).
    pub default_rate_limit_per_second: Option<Option<i64>>,
    /// A new default expiration (`Some(None)` clears it).
    pub default_expiration: Option<Option<i64>>,
}

impl WorkspaceChanges {
    /// The API names of the fields this changes, for the audit row.
    pub fn changed(&self) -> Vec<&'static str> {
        [
            (self.name.is_some(), "name"),
            (self.default_key_prefix.is_some(), "defaultKeyPrefix"),
            (self.default_allowed_ips.is_some(), "defaultAllowedIPs"),
            (
                self.default_rate_limit_per_second.is_some(),
                "defaultRateLimitPerSecond",
            ),
            (self.default_expiration.is_some(), "defaultExpiration"),
        ]
        .into_iter()
        .filter_map(|(set, field)| set.then_some(field))
        .collect()
    }
}

/// Writes only the fields `changes` names (so concurrent PATCHes of different fields do not
/// undo each other) with the audit row (`audit` plus the changed field names); returns the
/// workspace as it is now. `NotFound` if `id` is not a workspace of `org_id`.
pub async fn update(
    db: &Db,
    org_id: &str,
    id: &str,
    changes: &WorkspaceChanges,
    audit: AuditEntry<'_>,
    client: &ClientInfo,
) -> StoreResult<Workspace> {
    let ips = changes
        .default_allowed_ips
        .as_ref()
        .map(|ips| serde_json::Value::from(ips.clone()).to_string());
    let audit = audit.with(json!({ "changed": changes.changed() }));
    write_tx!(db, |tx| {
        let done = sqlx::query(
            "UPDATE workspaces SET
                 name = CASE WHEN $3 THEN $4 ELSE name END,
                 default_key_prefix = CASE WHEN $5 THEN $6 ELSE default_key_prefix END,
                 default_allowed_ips = CASE WHEN $7 THEN $8 ELSE default_allowed_ips END,
                 default_rate_limit_per_second = CASE WHEN $9 THEN $10 ELSE default_rate_limit_per_second END,
                 default_expiration = CASE WHEN $11 THEN $12 ELSE default_expiration END,
                 updated_at = $13
             WHERE id = $1 AND org_id = $2",
        )
        .bind(id)
        .bind(org_id)
        .bind(changes.name.is_some())
        .bind(&changes.name)
        .bind(changes.default_key_prefix.is_some())
        .bind(changes.default_key_prefix.clone().flatten())
        .bind(ips.is_some())
        .bind(&ips)
        .bind(changes.default_rate_limit_per_second.is_some())
        .bind(changes.default_rate_limit_per_second.flatten())
        .bind(changes.default_expiration.is_some())
        .bind(changes.default_expiration.flatten())
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("workspace"));
        }
        tx.record_audit(&audit, client).await?;
    });
    Ok(find(db, org_id, id).await?.to_api())
}

/// The workspace's route map (empty if none or unreadable, which validation on write
/// prevents).
pub async fn route_map(db: &Db, workspace_id: &str) -> StoreResult<Vec<RouteBinding>> {
    json_column(db, "route_map", workspace_id).await
}

/// The JSON in `column` of workspace `workspace_id`, decoded; the default if there is no
/// such workspace or the text does not decode (which validation on write prevents).
pub(crate) async fn json_column<T>(db: &Db, column: &str, workspace_id: &str) -> StoreResult<T>
where
    T: serde::de::DeserializeOwned + Default,
{
    let sql = format!("SELECT {column} FROM workspaces WHERE id = $1");
    let text: Option<String> = with_db!(db, |pool| {
        sqlx::query_scalar(&sql)
            .bind(workspace_id)
            .fetch_optional(pool)
            .await
    })?;
    Ok(text
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default())
}

/// The workspace's route map and blacklist rules: what the edge decides a request by.
pub async fn routes_and_rules(
    db: &Db,
    workspace_id: &str,
) -> StoreResult<(Vec<RouteBinding>, Vec<Rule>)> {
    let routes = route_map(db, workspace_id).await?;
    let rules: Vec<(String, String)> = with_db!(db, |pool| {
        sqlx::query_as("SELECT module, functionality FROM blacklist_rules WHERE workspace_id = $1")
            .bind(workspace_id)
            .fetch_all(pool)
            .await
    })?;
    let rules = rules
        .into_iter()
        .map(|(module, functionality)| Rule {
            module,
            functionality,
        })
        .collect();
    Ok((routes, rules))
}

/// Saves the workspace's catalogue (canonical) and route map (validated), with the audit row.
/// `409 CATALOGUE_IN_USE` if a blacklist rule names something the catalogue drops. The key's
/// edge record is queued only when the route map changed (a catalogue edit alone changes
/// nothing the edge holds).
pub async fn save_catalogue(
    db: &Db,
    org_id: &str,
    workspace_id: &str,
    catalogue: &Catalogue,
    routes: &[RouteBinding],
    audit: &AuditEntry<'_>,
    client: &ClientInfo,
) -> StoreResult<()> {
    let text = serde_json::to_string(catalogue).map_err(encode)?;
    let routes_text = serde_json::to_string(routes).map_err(encode)?;
    write_tx!(db, |tx| {
        // The map before this change, read under the row lock (the `SET updated_at` write
        // takes it), so a concurrent save cannot make both skip the edge.
        if tx.lock_workspace(workspace_id, org_id).await?.is_none() {
            return Err(StoreError::NotFound("workspace"));
        }
        let old_routes: Option<String> =
            sqlx::query_scalar("SELECT route_map FROM workspaces WHERE id = $1")
                .bind(workspace_id)
                .fetch_optional(&mut *tx)
                .await?;
        // Writing first takes the workspace's row lock, so a rule added concurrently is
        // either seen below or waits for this commit and then checks the new catalogue.
        sqlx::query(
            "UPDATE workspaces SET catalogue = $1, route_map = $2, updated_at = $3
              WHERE id = $4 AND org_id = $5",
        )
        .bind(&text)
        .bind(&routes_text)
        .bind(now_ms())
        .bind(workspace_id)
        .bind(org_id)
        .execute(&mut *tx)
        .await?;
        // A blacklist rule must keep naming something in the catalogue; removing what a rule
        // blocks would silently unblock it, so the rule has to go first.
        let rules: Vec<(String, String)> = sqlx::query_as(
            "SELECT module, functionality FROM blacklist_rules WHERE workspace_id = $1
              ORDER BY module, functionality",
        )
        .bind(workspace_id)
        .fetch_all(&mut *tx)
        .await?;
        if let Some((m, f)) = rules.iter().find(|(m, f)| catalogue.rule(m, f).is_err()) {
            return Err(StoreError::Conflict {
                reason: "CATALOGUE_IN_USE",
                message: format!(
                    "the blacklist rule {m}/{f} uses what this catalogue removes; remove the rule first"
                ),
            });
        }
        // The route map travels in the key's edge record, versioned like every change.
        if old_routes.as_deref() != Some(routes_text.as_str()) {
            requeue_live_key(&mut *tx, workspace_id).await?;
        }
        tx.record_audit(audit, client).await?;
        Ok(())
    })
}

fn encode(e: serde_json::Error) -> StoreError {
    StoreError::Database(sqlx::Error::Encode(Box::new(e)))
}
