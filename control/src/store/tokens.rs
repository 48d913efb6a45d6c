//! Workspace tokens and secrets: only their SHA-256 digest, prefix and last four characters
//! are stored.

use serde_json::json;

use crate::api::tokens::WorkspaceToken;
use crate::api::Timestamp;
use crate::ids::rfc3339;
use crate::store::audit::{AuditEntry, AuditStore, ClientInfo};
use crate::store::constraints::is_missing_parent;
use crate::store::{rows_by_id, Db, StoreError, StoreResult};
use crate::write_tx;

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: String,
    kind: String,
    name: String,
    key_prefix: String,
    key_last4: String,
    created_at: i64,
    expires_at: Option<i64>,
    last_used_at: Option<i64>,
}

impl TokenRow {
    fn into_token(self, now: i64) -> WorkspaceToken {
        WorkspaceToken {
            masked: format!("{}_…{}", self.key_prefix, self.key_last4),
            expired: self.expires_at.is_some_and(|t| t <= now),
            id: self.id,
            kind: self.kind,
            name: self.name,
            prefix: self.key_prefix,
            last4: self.key_last4,
            created_at: Timestamp(self.created_at),
            expires_at: self.expires_at.map(Timestamp),
            last_used_at: self.last_used_at.map(Timestamp),
        }
    }
}

/// The workspace's live tokens, oldest first (`expired` as of `now`).
pub async fn list(db: &Db, workspace_id: &str, now: i64) -> StoreResult<Vec<WorkspaceToken>> {
    let sql = "SELECT id, kind, name, key_prefix, key_last4, created_at, expires_at, last_used_at
               FROM workspace_tokens WHERE workspace_id = $1 AND revoked_at IS NULL
              ORDER BY created_at, id";
    let rows: Vec<TokenRow> = rows_by_id(db, sql, workspace_id).await?;
    Ok(rows.into_iter().map(|r| r.into_token(now)).collect())
}

/// Stores `token` (value digest `digest`) in `workspace_id` with its audit row (target and
/// detail set here). `NotFound("workspace")` if the workspace was deleted in between.
pub async fn create(
    db: &Db,
    workspace_id: &str,
    token: &WorkspaceToken,
    digest: &str,
    created_by: &str,
    audit: AuditEntry<'_>,
    client: &ClientInfo,
) -> StoreResult<()> {
    let expires_at = token.expires_at.map(|t| t.0);
    let detail = json!({
        "name": token.name,
        "kind": token.kind,
        "key": token.masked,
        "expiresAt": expires_at.map(rfc3339),
    });
    write_tx!(db, |tx| {
        sqlx::query(
            "INSERT INTO workspace_tokens (id, workspace_id, kind, name, key_digest, key_prefix,
                 key_last4, created_by, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&token.id)
        .bind(workspace_id)
        .bind(&token.kind)
        .bind(&token.name)
        .bind(digest)
        .bind(&token.prefix)
        .bind(&token.last4)
        .bind(created_by)
        .bind(token.created_at.0)
        .bind(expires_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| match is_missing_parent(&e) {
            true => StoreError::NotFound("workspace"),
            false => e.into(),
        })?;
        tx.record_audit(&audit.on(&token.id).with(detail), client)
            .await?;
        Ok(())
    })
}

/// Revokes live token `token_id` of `workspace_id` with its audit row (detail set here).
/// `NotFound("token")` if there is none.
pub async fn revoke(
    db: &Db,
    workspace_id: &str,
    token_id: &str,
    now: i64,
    audit: AuditEntry<'_>,
    client: &ClientInfo,
) -> StoreResult<()> {
    write_tx!(db, |tx| {
        let revoked: Option<(String, String, String, String)> = sqlx::query_as(
            "UPDATE workspace_tokens SET revoked_at = $1
              WHERE id = $2 AND workspace_id = $3 AND revoked_at IS NULL
             RETURNING name, kind, key_prefix, key_last4",
        )
        .bind(now)
        .bind(token_id)
        .bind(workspace_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((name, kind, prefix, last4)) = revoked else {
            return Err(StoreError::NotFound("token"));
        };
        let detail = json!({ "name": name, "kind": kind, "key": format!("{prefix}_…{last4}") });
        tx.record_audit(&audit.with(detail), client).await?;
        Ok(())
    })
}
