//! Workspace scopes (Oneloop's `WorkspaceScope`): the named rights a workspace defines, which
//! its customer API keys then grant by `representation`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Timestamp;

/// One scope, as Oneloop's client reads it.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceScope {
    /// Its id.
    pub id: String,
    /// A name for people.
    pub name: String,
    /// What API keys grant it by (`orders`, `billing.refunds`); unique in its workspace.
    pub representation: String,
    /// What it allows, for people.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

/// `GET /api/v1/workspace/{id}/scopes`.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkspaceScopeList {
    /// Oldest first.
    pub scopes: Vec<WorkspaceScope>,
}

/// `POST /api/v1/workspace/{id}/scope` (Oneloop's `CreateWorkspaceScopeRequest`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWorkspaceScope {
    /// 1 to 100 characters (trimmed).
    pub name: String,
    /// 1 to 64 characters of letters, digits, `_`, `-`, `.`, `:` and `/`.
    pub representation: String,
    /// At most 1,000 characters; blank means none.
    pub description: Option<String>,
}

/// `POST /api/v1/workspace/{id}/scope`'s answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedWorkspaceScope {
    /// The new scope.
    pub scope: WorkspaceScope,
}
