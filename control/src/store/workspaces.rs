//! Workspaces.

use crate::store::{Db, StoreError, StoreResult};
use crate::with_db;

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
    let row: Option<(String, String, Option<String>, Option<i64>)> = with_db!(db, |pool| {
        sqlx::query_as(
            "SELECT id, org_id, default_key_prefix, default_expiration
               FROM workspaces WHERE id = $1 AND org_id = $2",
        )
        .bind(workspace_id)
        .bind(org_id)
        .fetch_optional(pool)
        .await
    })?;
    let (id, org_id, default_key_prefix, default_expiration) =
        row.ok_or(StoreError::NotFound("workspace"))?;
    Ok(ReachableWorkspace {
        id,
        org_id,
        default_key_prefix,
        default_expiration,
    })
}
