//! Workspaces, as HTTP sees them.

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::http::AppState;
use crate::ids::is_valid_id;
use crate::store;
pub use crate::store::workspaces::ReachableWorkspace;

/// Loads a workspace the caller may reach: same organisation and, for a workspace-bound SDK
/// key, its own workspace. Anything else (or a malformed id) is a 404, so a caller cannot
/// learn whether another tenant's workspace exists.
pub async fn reachable_workspace(
    state: &AppState,
    principal: &Principal,
    workspace_id: &str,
) -> ApiResult<ReachableWorkspace> {
    if !is_valid_id(workspace_id) {
        return Err(ApiError::not_found("workspace"));
    }
    principal.require_workspace(workspace_id)?;
    Ok(store::workspaces::reachable(&state.db, principal.org_id(), workspace_id).await?)
}
