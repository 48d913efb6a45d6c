//! Link tokens: stored by digest only (`keygate_shared::link_token`), with their audit row.

use crate::store::audit::{AuditEntry, AuditStore, ClientInfo};
use crate::store::{Db, StoreResult};
use crate::{with_db, write_tx};

/// A stored link token (its value is never stored).
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct LinkTokenRow {
    /// SHA-256 of the token (hex).
    pub digest: String,
    /// Its organisation.
    pub org_id: String,
    /// The workspace it is bound to.
    pub workspace_id: String,
    /// The customer it is bound to.
    pub customer_id: String,
    /// Who created it (user or SDK key id).
    pub created_by: String,
    /// When, Unix ms.
    pub created_at: i64,
    /// When it expires, Unix ms.
    pub expires_at: i64,
}

/// Stores `token` with its audit row, in one transaction.
pub async fn create(
    db: &Db,
    token: &LinkTokenRow,
    audit: &AuditEntry<'_>,
    client: &ClientInfo,
) -> StoreResult<()> {
    write_tx!(db, |tx| {
        sqlx::query(
            "INSERT INTO link_tokens
                 (digest, org_id, workspace_id, customer_id, created_by, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&token.digest)
        .bind(&token.org_id)
        .bind(&token.workspace_id)
        .bind(&token.customer_id)
        .bind(&token.created_by)
        .bind(token.created_at)
        .bind(token.expires_at)
        .execute(&mut *tx)
        .await?;
        tx.record_audit(audit, client).await?;
        Ok(())
    })
}

/// The token with this digest in organisation `org_id`, if any.
pub async fn find(db: &Db, org_id: &str, digest: &str) -> StoreResult<Option<LinkTokenRow>> {
    Ok(with_db!(db, |pool| {
        sqlx::query_as(
            "SELECT digest, org_id, workspace_id, customer_id, created_by, created_at, expires_at
               FROM link_tokens WHERE digest = $1 AND org_id = $2",
        )
        .bind(digest)
        .bind(org_id)
        .fetch_optional(pool)
        .await
    })?)
}
