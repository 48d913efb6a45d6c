//! [`UserWorkspace`]: the workspace a dashboard route's `{id}` names, loaded for the signed-in
//! user before the handler runs, so no dashboard handler can reach a workspace without the
//! tenant check.

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;

use crate::api::paths::WorkspacePath;
use crate::error::ApiError;
use crate::http::auth::CurrentUser;
use crate::http::workspaces::find_workspace;
use crate::http::AppState;
use crate::store::workspaces::WorkspaceRow;

/// A signed-in user and the workspace of their organisation the path names. Extracting it
/// answers 401 without a session and 404 for a malformed id, an unknown one or another
/// organisation's (alike); whether the user may act there is the handler's question
/// ([`CurrentUser::authorize`], 403), as on every dashboard route.
pub struct UserWorkspace {
    /// Who asks.
    pub user: CurrentUser,
    /// The workspace, in the user's organisation.
    pub workspace: WorkspaceRow,
}

impl FromRequestParts<AppState> for UserWorkspace {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let user = CurrentUser::from_request_parts(parts, state).await?;
        let Path(WorkspacePath { id }) = Path::<WorkspacePath>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::not_found("workspace"))?;
        let workspace = find_workspace(state, &user.org_id, &id).await?;
        Ok(UserWorkspace { user, workspace })
    }
}
