//! The edge outbox: every change the edge must learn is written here in the same transaction
//! as the change itself, as the full [`EdgeRecord`] of each affected publishable key.
//!
//! A row's id becomes the record's `version` when it is delivered, so the edge can drop
//! anything older than what it holds, and nothing is lost if the process dies between the
//! commit and the delivery: the deliverer picks the row up again.

use keygate_shared::blacklist::Rule;
use keygate_shared::key::KeyDigest;
use keygate_shared::record::{EdgeRecord, KeyState};

use crate::gateway_secrets::GatewaySecretStore;
use crate::ids::now_ms;
use crate::impl_for_both_backends;

/// Writing outbox rows inside the caller's transaction.
#[allow(async_fn_in_trait)]
pub trait OutboxStore {
    /// Builds the current edge record of one publishable key (by its row id) from the
    /// tables, as this transaction sees them, and queues it for the edge.
    async fn enqueue_publishable_key(&mut self, key_id: &str) -> Result<(), sqlx::Error>;

    /// The current edge record of the publishable key with this digest, if keygate issued
    /// one; `version` is the newest outbox row for it (0 if none). Serves the edge's pulls.
    async fn current_edge_record(
        &mut self,
        digest: &KeyDigest,
    ) -> Result<Option<EdgeRecord>, sqlx::Error>;
}

impl_for_both_backends!(OutboxStore {
    async fn enqueue_publishable_key(&mut self, key_id: &str) -> Result<(), sqlx::Error> {
        let (workspace_id, digest_hex): (String, String) =
            sqlx::query_as("SELECT workspace_id, key_digest FROM publishable_keys WHERE id = $1")
                .bind(key_id)
                .fetch_one(&mut *self)
                .await?;
        let digest = KeyDigest::from_hex(&digest_hex)
            .ok_or_else(|| sqlx::Error::Decode("stored key digest is not hex".into()))?;
        let Some(record) = self.current_edge_record(&digest).await? else {
            return Err(sqlx::Error::RowNotFound);
        };
        sqlx::query(
            "INSERT INTO edge_outbox (workspace_id, key_digest, record, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&workspace_id)
        .bind(&digest_hex)
        .bind(serde_json::to_string(&record).map_err(|e| sqlx::Error::Encode(Box::new(e)))?)
        .bind(now_ms())
        .execute(&mut *self)
        .await?;
        Ok(())
    }

    async fn current_edge_record(&mut self, digest: &KeyDigest) -> Result<Option<EdgeRecord>, sqlx::Error> {
        type KeyRow = (String, Option<i64>, String, Option<String>, bool);
        let row: Option<KeyRow> = sqlx::query_as(
            "SELECT k.workspace_id, k.revoked_at, w.allowed_origins, w.origin_url, w.forward_cookies
               FROM publishable_keys k JOIN workspaces w ON w.id = k.workspace_id
              WHERE k.key_digest = $1",
        )
        .bind(digest.to_hex())
        .fetch_optional(&mut *self)
        .await?;
        let Some((workspace_id, revoked_at, origins_json, origin_url, forward_cookies)) = row else {
            return Ok(None);
        };
        // The workspace's gateway secrets, sealed for the edge (see `gateway_secrets`).
        let gateway_secrets = self
            .live_gateway_secrets(&workspace_id, now_ms())
            .await?
            .iter()
            .filter_map(crate::gateway_secrets::StoredSecret::for_edge)
            .collect();
        let rules: Vec<(String, String)> = sqlx::query_as(
            "SELECT module, functionality FROM blacklist_rules WHERE workspace_id = $1 ORDER BY module, functionality",
        )
        .bind(&workspace_id)
        .fetch_all(&mut *self)
        .await?;
        let version: Option<i64> =
            sqlx::query_scalar("SELECT MAX(id) FROM edge_outbox WHERE key_digest = $1")
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
            ..EdgeRecord::new(*digest, workspace_id, state, version)
        }))
    }
});
