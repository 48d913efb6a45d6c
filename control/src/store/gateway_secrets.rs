//! Each workspace's gateway signing secrets: what an origin uses to verify that a request came
//! through the edge (`keygate_shared::gateway`).
//!
//! A secret is random (`GatewaySecret::generate`), independent of the edge secret, and stored
//! twice, never in plaintext: sealed under the master key (`crypto::Keys::seal`, shown to
//! owners and admins) and sealed for the edge (`gateway::seal_for_edge`, copied into the
//! workspace's edge records). Every workspace gets its first secret when it is created
//! ([`add_current`], inside `store::workspaces::create`); workspaces made before that get one
//! at start-up ([`backfill`]), so no origin verifies with a key derived from the edge secret
//! and rotating the edge secret never changes what an origin verifies.
//!
//! Rotation makes a new current secret and gives the previous ones `retires_at = now +
//! overlap`; until then the edge signs with both (one `v1=<kid>:<hex>` each), so an origin can
//! be moved to the new secret without a gap. Every change is committed with the outbox row of
//! the workspace's live publishable key and an audit row.

use keygate_shared::gateway::{self, GatewaySecret, SealedGatewaySecret};
use serde_json::json;

use crate::api::gateway_secrets::WorkspaceGatewaySecret;
use crate::api::Timestamp;
use crate::crypto::Keys;
use crate::ids::{new_id, now_ms};
use crate::impl_for_both_backends;
use crate::store::audit::{AuditEntry, AuditStore, ClientInfo};
use crate::store::constraints::ONE_CURRENT_GATEWAY_SECRET;
use crate::store::outbox::OutboxStore;
use crate::store::publishable_keys::{requeue_live_key, PublishableKeyStore};
use crate::store::{Db, Refusal, StoreError, StoreResult, WriteTx};
use crate::{with_db, write_tx};

/// One stored secret (still sealed).
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct StoredSecret {
    /// Row id (the master-key sealing context).
    pub id: String,
    /// Key id.
    pub kid: String,
    /// Sealed under the master key.
    pub sealed: String,
    /// Sealed for the edge, if an edge secret was configured.
    pub edge_sealed: Option<String>,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms after which the edge no longer signs with it; `None` for the current one.
    pub retires_at: Option<i64>,
}

impl StoredSecret {
    /// As an edge record carries it (`None` without an edge copy).
    pub fn for_edge(&self) -> Option<SealedGatewaySecret> {
        Some(SealedGatewaySecret {
            kid: self.kid.clone(),
            sealed: self.edge_sealed.clone()?,
            not_after: self.not_after(),
        })
    }

    /// When the edge stops signing with it, in Unix seconds, rounded up: the edge stops no
    /// earlier than the overlap promised.
    fn not_after(&self) -> Option<u64> {
        self.retires_at
            .map(|ms| u64::try_from(ms).unwrap_or(0).div_ceil(1000))
    }

    /// Opened with the master key, as shown to owners and admins.
    fn reveal(&self, keys: &Keys, workspace_id: &str) -> StoreResult<WorkspaceGatewaySecret> {
        let secret = keys
            .open(&self.sealed, &sealing_context(&self.id, workspace_id))
            .ok_or_else(|| {
                StoreError::Database(sqlx::Error::Protocol(
                    "a gateway secret does not open with the master key".into(),
                ))
            })?;
        Ok(WorkspaceGatewaySecret {
            kid: self.kid.clone(),
            secret: secret.to_string(),
            created_at: Timestamp(self.created_at),
            retires_at: self.retires_at.map(Timestamp),
        })
    }
}

/// Gateway-secret storage inside a caller's transaction.
#[allow(async_fn_in_trait)]
pub trait GatewaySecretStore {
    /// The workspace's secrets still in use at `now` (Unix ms), newest first.
    async fn live_gateway_secrets(
        &mut self,
        workspace_id: &str,
        now: i64,
    ) -> Result<Vec<StoredSecret>, sqlx::Error>;

    /// Stores a new current secret.
    async fn insert_gateway_secret(
        &mut self,
        workspace_id: &str,
        row: &StoredSecret,
    ) -> Result<(), sqlx::Error>;

    /// Gives every secret of the workspace retiring later than `retires_at` (or never) that
    /// retirement time; returns how many changed.
    async fn retire_gateway_secrets(
        &mut self,
        workspace_id: &str,
        retires_at: i64,
    ) -> Result<u64, sqlx::Error>;

    /// Replaces the edge copy of one secret.
    async fn set_edge_sealed(&mut self, id: &str, edge_sealed: &str) -> Result<(), sqlx::Error>;
}

impl_for_both_backends!(GatewaySecretStore {
    async fn live_gateway_secrets(&mut self, workspace_id: &str, now: i64) -> Result<Vec<StoredSecret>, sqlx::Error> {
        sqlx::query_as(
            "SELECT id, kid, sealed, edge_sealed, created_at, retires_at FROM gateway_secrets
              WHERE workspace_id = $1 AND (retires_at IS NULL OR retires_at > $2)
              ORDER BY created_at DESC, id DESC",
        )
        .bind(workspace_id)
        .bind(now)
        .fetch_all(&mut *self)
        .await
    }

    async fn insert_gateway_secret(&mut self, workspace_id: &str, row: &StoredSecret) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO gateway_secrets (id, workspace_id, kid, sealed, edge_sealed, created_at, retires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&row.id)
        .bind(workspace_id)
        .bind(&row.kid)
        .bind(&row.sealed)
        .bind(&row.edge_sealed)
        .bind(row.created_at)
        .bind(row.retires_at)
        .execute(&mut *self)
        .await?;
        Ok(())
    }

    async fn retire_gateway_secrets(&mut self, workspace_id: &str, retires_at: i64) -> Result<u64, sqlx::Error> {
        Ok(sqlx::query(
            "UPDATE gateway_secrets SET retires_at = $1
              WHERE workspace_id = $2 AND (retires_at IS NULL OR retires_at > $1)",
        )
        .bind(retires_at)
        .bind(workspace_id)
        .execute(&mut *self)
        .await?
        .rows_affected())
    }

    async fn set_edge_sealed(&mut self, id: &str, edge_sealed: &str) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE gateway_secrets SET edge_sealed = $1 WHERE id = $2")
            .bind(edge_sealed)
            .bind(id)
            .execute(&mut *self)
            .await?;
        Ok(())
    }
});

/// A fresh secret for `workspace_id`, sealed both ways, as a row to insert.
pub fn mint(keys: &Keys, edge_secret: Option<&str>, workspace_id: &str, now: i64) -> StoredSecret {
    let secret = GatewaySecret::generate();
    let id = new_id();
    StoredSecret {
        sealed: keys.seal(secret.expose(), &sealing_context(&id, workspace_id)),
        edge_sealed: edge_secret
            .map(|e| gateway::seal_for_edge(e.as_bytes(), workspace_id, &secret, None).sealed),
        kid: secret.kid().to_owned(),
        id,
        created_at: now,
        retires_at: None,
    }
}

fn sealing_context(id: &str, workspace_id: &str) -> String {
    format!("gateway-secret:{workspace_id}:{id}")
}

/// Mints a new current secret for `workspace_id`, stores it and queues the live publishable
/// key's edge record, which carries it: the one way a secret comes to be. The caller has
/// retired the previous current secret, if any (`409 CONCURRENT_CHANGE` otherwise).
pub async fn add_current<C>(
    conn: &mut C,
    keys: &Keys,
    edge_secret: Option<&str>,
    workspace_id: &str,
    now: i64,
) -> StoreResult<StoredSecret>
where
    C: GatewaySecretStore + PublishableKeyStore + OutboxStore,
{
    let row = mint(keys, edge_secret, workspace_id, now);
    conn.insert_gateway_secret(workspace_id, &row)
        .await
        .map_err(ONE_CURRENT_GATEWAY_SECRET.conflict(
            "CONCURRENT_CHANGE",
            "the gateway secret changed meanwhile; retry",
        ))?;
    requeue_live_key(conn, workspace_id).await?;
    Ok(row)
}

/// The workspace's live secrets, newest first, opened for owners and admins; the reading is
/// audited (`audit` plus the key ids).
pub async fn reveal(
    db: &Db,
    keys: &Keys,
    workspace_id: &str,
    audit: AuditEntry<'_>,
    client: &ClientInfo,
) -> StoreResult<Vec<WorkspaceGatewaySecret>> {
    let now = now_ms();
    let rows = with_db!(db, |pool| {
        let mut conn = pool.acquire().await?;
        let rows = conn.live_gateway_secrets(workspace_id, now).await?;
        let kids: Vec<&str> = rows.iter().map(|r| r.kid.as_str()).collect();
        conn.record_audit(&audit.with(json!({ "kids": kids })), client)
            .await?;
        rows
    });
    rows.iter().map(|r| r.reveal(keys, workspace_id)).collect()
}

/// Makes a new current secret; the previous ones retire `overlap_seconds` from now (at once
/// for 0). `409 TOO_MANY_GATEWAY_SECRETS` if an overlapping rotation would leave more live
/// secrets than the edge signs with. Returns the live secrets, newest first, opened.
pub async fn rotate(
    db: &Db,
    keys: &Keys,
    edge_secret: Option<&str>,
    (org_id, workspace_id): (&str, &str),
    overlap_seconds: u64,
    audit: AuditEntry<'_>,
    client: &ClientInfo,
) -> StoreResult<Vec<WorkspaceGatewaySecret>> {
    let now = now_ms();
    let retires_at =
        now.saturating_add(i64::try_from(overlap_seconds.saturating_mul(1000)).unwrap_or(i64::MAX));
    let rows = write_tx!(db, |tx| {
        if tx.lock_workspace(workspace_id, org_id).await?.is_none() {
            return Err(StoreError::NotFound("workspace"));
        }
        // The edge sends at most MAX_SIGNATURES signatures: more live secrets than that
        // would be listed yet never used.
        let live = tx.live_gateway_secrets(workspace_id, now).await?.len();
        if overlap_seconds > 0 && live >= gateway::MAX_SIGNATURES {
            return Err(StoreError::refused(
                Refusal::Conflict,
                "TOO_MANY_GATEWAY_SECRETS",
                format!(
                    "{live} gateway secrets are live; rotate with overlapSeconds 0 or wait until one retires"
                ),
            ));
        }
        let retired = tx.retire_gateway_secrets(workspace_id, retires_at).await?;
        let row = add_current(&mut *tx, keys, edge_secret, workspace_id, now).await?;
        let detail =
            json!({ "kid": row.kid, "overlapSeconds": overlap_seconds, "retired": retired });
        tx.record_audit(&audit.with(detail), client).await?;
        let rows = tx.live_gateway_secrets(workspace_id, now).await?;
        rows
    });
    rows.iter().map(|r| r.reveal(keys, workspace_id)).collect()
}

/// Gives every workspace without a current secret (made before workspaces got one at
/// creation) its own, each with its edge record and an audit row by the system. Run at
/// start-up; idempotent (a second run, or another replica's, finds nothing to do). Returns
/// how many were made.
pub async fn backfill(db: &Db, keys: &Keys, edge_secret: Option<&str>) -> StoreResult<usize> {
    let missing: Vec<(String, String)> = with_db!(db, |pool| {
        sqlx::query_as(
            "SELECT w.id, w.org_id FROM workspaces w WHERE NOT EXISTS
               (SELECT 1 FROM gateway_secrets g WHERE g.workspace_id = w.id AND g.retires_at IS NULL)
              ORDER BY w.created_at, w.id",
        )
        .fetch_all(pool)
        .await
    })?;
    let mut made = 0;
    for (workspace_id, org_id) in missing {
        let now = now_ms();
        let done = with_db!(db, |pool| {
            let mut tx = pool.begin_write().await?;
            let live = tx.live_gateway_secrets(&workspace_id, now).await?;
            if live.iter().any(|r| r.retires_at.is_none()) {
                false
            } else {
                let row = add_current(&mut *tx, keys, edge_secret, &workspace_id, now).await?;
                let audit = AuditEntry::new(&org_id, "system", "system", "gateway_secret.create")
                    .in_workspace(&workspace_id)
                    .on(&workspace_id)
                    .with(json!({ "kid": row.kid }));
                tx.record_audit(&audit, &ClientInfo::default()).await?;
                tx.commit().await?;
                true
            }
        });
        made += usize::from(done);
    }
    if made > 0 {
        tracing::info!(made, "workspaces without a gateway secret got their own");
    }
    Ok(made)
}

/// Every workspace's secrets still in use at `now`, with their workspace ids.
async fn all_live(db: &Db, now: i64) -> StoreResult<Vec<(String, StoredSecret)>> {
    type Row = (
        String,
        String,
        String,
        String,
        Option<String>,
        i64,
        Option<i64>,
    );
    let rows: Vec<Row> = with_db!(db, |pool| {
        sqlx::query_as(
            "SELECT workspace_id, id, kid, sealed, edge_sealed, created_at, retires_at
               FROM gateway_secrets WHERE retires_at IS NULL OR retires_at > $1",
        )
        .bind(now)
        .fetch_all(pool)
        .await
    })?;
    Ok(rows
        .into_iter()
        .map(
            |(ws, id, kid, sealed, edge_sealed, created_at, retires_at)| {
                let row = StoredSecret {
                    id,
                    kid,
                    sealed,
                    edge_sealed,
                    created_at,
                    retires_at,
                };
                (ws, row)
            },
        )
        .collect())
}

/// Whether `row`'s edge copy opens with `edge_secret`.
fn opens_at_edge(edge_secret: &str, workspace_id: &str, row: &StoredSecret) -> bool {
    row.edge_sealed.as_ref().is_some_and(|s| {
        let sealed = SealedGatewaySecret {
            kid: row.kid.clone(),
            sealed: s.clone(),
            not_after: None,
        };
        gateway::open_at_edge(&[edge_secret.as_bytes()], workspace_id, &sealed).is_some()
    })
}

/// Makes sure every live secret's edge copy opens with `edge_secret` (sealing it again from
/// the master-key copy if not, e.g. after the edge secret was set or changed), and queues the
/// affected workspaces' records. Run at start-up; returns how many secrets were sealed again.
pub async fn reseal_for_edge(db: &Db, keys: &Keys, edge_secret: &str) -> StoreResult<usize> {
    let rows = all_live(db, now_ms()).await?;
    let mut resealed = 0;
    for (workspace_id, row) in rows {
        if opens_at_edge(edge_secret, &workspace_id, &row) {
            continue;
        }
        let Some(plain) = keys.open(&row.sealed, &sealing_context(&row.id, &workspace_id)) else {
            tracing::warn!(workspace = %workspace_id, kid = %row.kid, "a gateway secret does not open with the master key");
            continue;
        };
        let Some(secret) = GatewaySecret::new(&row.kid, &plain) else {
            continue;
        };
        let fresh = gateway::seal_for_edge(
            edge_secret.as_bytes(),
            &workspace_id,
            &secret,
            row.not_after(),
        );
        write_tx!(db, |tx| {
            tx.set_edge_sealed(&row.id, &fresh.sealed).await?;
            requeue_live_key(&mut *tx, &workspace_id).await?;
        });
        resealed += 1;
    }
    if resealed > 0 {
        tracing::info!(
            resealed,
            "gateway secrets sealed again for the configured edge secret"
        );
    }
    Ok(resealed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_secrets_open_with_the_master_key_and_at_the_edge() {
        let keys = Keys::from_master(&[3u8; 32]);
        let edge = "edge-secret-edge-secret-edge-secret!";
        let row = mint(&keys, Some(edge), "w1", 1_000);
        let plain = keys
            .open(&row.sealed, &sealing_context(&row.id, "w1"))
            .unwrap();
        assert_eq!(plain.len(), 64);
        assert!(!row.sealed.contains(plain.as_str()));
        let at_edge =
            gateway::open_at_edge(&[edge.as_bytes()], "w1", &row.for_edge().unwrap()).unwrap();
        assert_eq!(at_edge.expose(), plain.as_str());
        assert_eq!(at_edge.kid(), row.kid);
        assert!(opens_at_edge(edge, "w1", &row));
        assert!(!opens_at_edge(edge, "w2", &row));
        assert!(keys
            .open(&row.sealed, &sealing_context(&row.id, "w2"))
            .is_none());
        assert!(mint(&keys, None, "w1", 1).for_edge().is_none());
        let retiring = StoredSecret {
            retires_at: Some(1_500),
            ..row
        };
        assert_eq!(retiring.for_edge().unwrap().not_after, Some(2));
    }
}
