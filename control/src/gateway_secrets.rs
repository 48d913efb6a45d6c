//! Each workspace's gateway signing secrets: what an origin uses to verify that a request came
//! through the edge (`keygate_shared::gateway`).
//!
//! A secret is random (`GatewaySecret::generate`), independent of the edge secret, and stored
//! twice, never in plaintext: sealed under the master key (`crypto::Keys::seal`, shown to
//! owners and admins) and sealed for the edge (`gateway::seal_for_edge`, copied into the
//! workspace's edge records). A workspace gets its first secret when its secret is first read
//! or rotated; until then the edge signs with the legacy key derived from the edge secret, so
//! origins set up before per-workspace secrets existed keep working until their admins switch.
//!
//! Rotation makes a new current secret and gives the previous ones `retires_at = now +
//! overlapSeconds`; until then the edge signs with both (one `v1=<kid>:<hex>` each), so an
//! origin can be moved to the new secret without a gap. Every change is committed with the
//! outbox row of the workspace's live publishable key and an audit row.
//!
//! Routes (dashboard session; owners and admins; answers carry `Cache-Control: no-store`):
//! `GET /api/v1/workspace/{id}/gateway-secret` and
//! `POST /api/v1/workspace/{id}/gateway-secret/rotate {overlapSeconds?}`.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use keygate_shared::authz::Action;
use keygate_shared::gateway::{self, GatewaySecret, SealedGatewaySecret};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::auth::CurrentUser;
use crate::crypto::Keys;
use crate::error::{ApiError, ApiResult, ResultExt};
use crate::http::{AppState, ClientInfo};
use crate::ids::{new_id, now_ms, rfc3339};
use crate::impl_for_both_backends;
use crate::outbox::OutboxStore;
use crate::publishable_keys::{OptionalJson, PublishableKeyStore};
use crate::store::audit::{AuditEntry, AuditStore};
use crate::store::WriteTx;
use crate::with_db;
use crate::workspaces::find_workspace;

/// Default overlap of a rotation: origins have a day to switch.
pub const DEFAULT_OVERLAP_SECONDS: u64 = 24 * 60 * 60;
/// Longest overlap accepted (30 days).
pub const MAX_OVERLAP_SECONDS: u64 = 30 * 24 * 60 * 60;

/// The gateway-secret routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/workspace/{id}/gateway-secret", get(get_gateway_secret))
        .route(
            "/workspace/{id}/gateway-secret/rotate",
            post(rotate_gateway_secret),
        )
}

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
            // Rounded up: the edge stops signing no earlier than the overlap promised.
            not_after: self
                .retires_at
                .map(|ms| u64::try_from(ms).unwrap_or(0).div_ceil(1000)),
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

/// One secret as shown to owners and admins.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SecretJson {
    kid: String,
    secret: String,
    created_at: String,
    /// When the edge stops signing with it (`null`: the current secret).
    retires_at: Option<String>,
}

fn view(keys: &Keys, workspace_id: &str, rows: &[StoredSecret]) -> ApiResult<impl IntoResponse> {
    let mut secrets = Vec::with_capacity(rows.len());
    for r in rows {
        let secret = keys
            .open(&r.sealed, &sealing_context(&r.id, workspace_id))
            .ok_or_else(|| {
                ApiError::internal("a gateway secret does not open with the master key")
            })?;
        secrets.push(SecretJson {
            kid: r.kid.clone(),
            secret: secret.to_string(),
            created_at: rfc3339(r.created_at),
            retires_at: r.retires_at.map(rfc3339),
        });
    }
    Ok((
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({
            "gatewaySecrets": secrets,
            "signatureHeader": gateway::HEADER_SIGNATURE,
        })),
    ))
}

async fn get_gateway_secret(
    State(state): State<AppState>,
    user: CurrentUser,
    client: ClientInfo,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let workspace = find_workspace(&state, &user.org_id, &id).await?;
    user.authorize(Action::ReadGatewaySecret)?;
    let now = now_ms();
    let rows = with_db!(&state.db, |pool| {
        let mut conn = pool.acquire().await?;
        let rows = conn.live_gateway_secrets(&workspace.id, now).await?;
        drop(conn);
        if rows.iter().any(|r| r.retires_at.is_none()) {
            rows
        } else {
            // First read: the workspace gets its own secret, and the edge learns it.
            let mut tx = pool.begin_write().await?;
            if tx
                .lock_workspace(&workspace.id, &user.org_id)
                .await?
                .is_none()
            {
                return Err(ApiError::not_found("workspace"));
            }
            let existing = tx.live_gateway_secrets(&workspace.id, now).await?;
            if existing.iter().all(|r| r.retires_at.is_some()) {
                let row = mint(
                    &state.keys,
                    state.settings.edge_secret.as_deref(),
                    &workspace.id,
                    now,
                );
                tx.insert_gateway_secret(&workspace.id, &row)
                    .await
                    .on_constraint(|_| {
                        ApiError::conflict(
                            "CONCURRENT_CHANGE",
                            "the gateway secret changed meanwhile; retry",
                        )
                    })?;
                if let Some(key_id) = tx.live_publishable_key_id(&workspace.id).await? {
                    tx.enqueue_publishable_key(&key_id).await?;
                }
                tx.record_audit(
                    &AuditEntry::by_user(&user, "gateway_secret.create")
                        .in_workspace(&workspace.id)
                        .on(&workspace.id)
                        .with(json!({ "kid": row.kid })),
                    &client,
                )
                .await?;
            }
            let rows = tx.live_gateway_secrets(&workspace.id, now).await?;
            tx.commit().await?;
            rows
        }
    });
    with_db!(&state.db, |pool| {
        let mut conn = pool.acquire().await?;
        conn.record_audit(
            &AuditEntry::by_user(&user, "gateway_secret.read")
                .in_workspace(&workspace.id)
                .on(&workspace.id)
                .with(json!({ "kids": rows.iter().map(|r| r.kid.as_str()).collect::<Vec<_>>() })),
            &client,
        )
        .await?;
    });
    view(&state.keys, &workspace.id, &rows)
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RotateBody {
    #[serde(default)]
    overlap_seconds: Option<u64>,
}

async fn rotate_gateway_secret(
    State(state): State<AppState>,
    user: CurrentUser,
    client: ClientInfo,
    Path(id): Path<String>,
    OptionalJson(body): OptionalJson<RotateBody>,
) -> ApiResult<impl IntoResponse> {
    let workspace = find_workspace(&state, &user.org_id, &id).await?;
    user.authorize(Action::RotateGatewaySecret)?;
    let overlap = body
        .unwrap_or_default()
        .overlap_seconds
        .unwrap_or(DEFAULT_OVERLAP_SECONDS);
    if overlap > MAX_OVERLAP_SECONDS {
        return Err(ApiError::bad_request(
            "INVALID_OVERLAP",
            format!("overlapSeconds is at most {MAX_OVERLAP_SECONDS} (30 days)"),
        ));
    }
    let now = now_ms();
    let retires_at = now + i64::try_from(overlap * 1000).unwrap_or(i64::MAX);
    let rows = with_db!(&state.db, |pool| {
        let mut tx = pool.begin_write().await?;
        if tx
            .lock_workspace(&workspace.id, &user.org_id)
            .await?
            .is_none()
        {
            return Err(ApiError::not_found("workspace"));
        }
        // The edge sends at most MAX_SIGNATURES signatures: more live secrets than that
        // would be listed yet never used.
        let live = tx.live_gateway_secrets(&workspace.id, now).await?.len();
        if overlap > 0 && live >= gateway::MAX_SIGNATURES {
            return Err(ApiError::conflict(
                "TOO_MANY_GATEWAY_SECRETS",
                format!(
                    "{live} gateway secrets are live; rotate with overlapSeconds 0 or wait until one retires"
                ),
            ));
        }
        let retired = tx.retire_gateway_secrets(&workspace.id, retires_at).await?;
        let row = mint(
            &state.keys,
            state.settings.edge_secret.as_deref(),
            &workspace.id,
            now,
        );
        tx.insert_gateway_secret(&workspace.id, &row)
            .await
            .on_constraint(|_| {
                ApiError::conflict(
                    "CONCURRENT_CHANGE",
                    "the gateway secret changed meanwhile; retry",
                )
            })?;
        if let Some(key_id) = tx.live_publishable_key_id(&workspace.id).await? {
            tx.enqueue_publishable_key(&key_id).await?;
        }
        tx.record_audit(
            &AuditEntry::by_user(&user, "gateway_secret.rotate")
                .in_workspace(&workspace.id)
                .on(&workspace.id)
                .with(json!({ "kid": row.kid, "overlapSeconds": overlap, "retired": retired })),
            &client,
        )
        .await?;
        let rows = tx.live_gateway_secrets(&workspace.id, now).await?;
        tx.commit().await?;
        rows
    });
    tracing::info!(workspace = %workspace.id, overlap, "gateway secret rotated");
    view(&state.keys, &workspace.id, &rows)
}

/// Makes sure every live secret's edge copy opens with the configured edge secret (sealing
/// it again from the master-key copy if not, e.g. after the edge secret was set or changed),
/// and queues the affected workspaces' records. Run at start-up; returns how many secrets
/// were sealed again.
pub async fn reseal_for_edge(state: &AppState) -> Result<usize, ApiError> {
    let Some(edge_secret) = state.settings.edge_secret.clone() else {
        return Ok(0);
    };
    let now = now_ms();
    type Row = (String, String, String, String, Option<String>, Option<i64>);
    let rows: Vec<Row> = with_db!(&state.db, |pool| {
        sqlx::query_as(
            "SELECT id, workspace_id, kid, sealed, edge_sealed, retires_at FROM gateway_secrets
              WHERE retires_at IS NULL OR retires_at > $1",
        )
        .bind(now)
        .fetch_all(pool)
        .await?
    });
    let mut resealed = 0;
    for (id, workspace_id, kid, sealed, edge_sealed, retires_at) in rows {
        let opens = edge_sealed.as_ref().is_some_and(|s| {
            gateway::open_at_edge(
                &[edge_secret.as_bytes()],
                &workspace_id,
                &SealedGatewaySecret {
                    kid: kid.clone(),
                    sealed: s.clone(),
                    not_after: None,
                },
            )
            .is_some()
        });
        if opens {
            continue;
        }
        let Some(plain) = state
            .keys
            .open(&sealed, &sealing_context(&id, &workspace_id))
        else {
            tracing::warn!(workspace = %workspace_id, kid = %kid, "a gateway secret does not open with the master key");
            continue;
        };
        let Some(secret) = GatewaySecret::new(&kid, &plain) else {
            continue;
        };
        let not_after = retires_at.map(|ms| u64::try_from(ms).unwrap_or(0).div_ceil(1000));
        let fresh =
            gateway::seal_for_edge(edge_secret.as_bytes(), &workspace_id, &secret, not_after);
        with_db!(&state.db, |pool| {
            let mut tx = pool.begin_write().await?;
            tx.set_edge_sealed(&id, &fresh.sealed).await?;
            if let Some(key_id) = tx.live_publishable_key_id(&workspace_id).await? {
                tx.enqueue_publishable_key(&key_id).await?;
            }
            tx.commit().await?;
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
