//! Workspace scopes: listing a workspace's scopes and creating one (with its audit row).

use crate::api::workspace_scopes::WorkspaceScope;
use crate::api::Timestamp;
use crate::store::audit::{AuditEntry, AuditStore, ClientInfo};
use crate::store::constraints::SCOPE_REPRESENTATION;
use crate::store::{rows_by_id, Db, StoreResult};
use crate::write_tx;

type ScopeRow = (String, String, String, Option<String>, i64, i64);

fn from_row(
    (id, name, representation, description, created_at, updated_at): ScopeRow,
) -> WorkspaceScope {
    WorkspaceScope {
        id,
        name,
        representation,
        description,
        created_at: Timestamp(created_at),
        updated_at: Timestamp(updated_at),
    }
}

/// The workspace's scopes, oldest first.
pub async fn list(db: &Db, workspace_id: &str) -> StoreResult<Vec<WorkspaceScope>> {
    let sql = "SELECT id, name, representation, description, created_at, updated_at
               FROM workspace_scopes WHERE workspace_id = $1 ORDER BY created_at, id";
    let rows: Vec<ScopeRow> = rows_by_id(db, sql, workspace_id).await?;
    Ok(rows.into_iter().map(from_row).collect())
}

/// Stores `scope` in `workspace_id` with its audit row. `409 SCOPE_EXISTS` if the workspace
/// already has a scope with that representation.
pub async fn create(
    db: &Db,
    workspace_id: &str,
    scope: &WorkspaceScope,
    audit: &AuditEntry<'_>,
    client: &ClientInfo,
) -> StoreResult<()> {
    write_tx!(db, |tx| {
        sqlx::query(
            "INSERT INTO workspace_scopes
                 (id, workspace_id, name, representation, description, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&scope.id)
        .bind(workspace_id)
        .bind(&scope.name)
        .bind(&scope.representation)
        .bind(&scope.description)
        .bind(scope.created_at.0)
        .bind(scope.updated_at.0)
        .execute(&mut *tx)
        .await
        .map_err(SCOPE_REPRESENTATION.conflict(
            "SCOPE_EXISTS",
            "this workspace already has a scope with that representation",
        ))?;
        tx.record_audit(audit, client).await?;
        Ok(())
    })
}
