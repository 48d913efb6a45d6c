//! Workspace tokens and secrets (`wt_...`, `ws_...`): masked in lists, the value only in the
//! answer to create.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Timestamp;

/// A workspace token or secret, masked.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceToken {
    /// Its id.
    pub id: String,
    /// `token` or `secret`.
    pub kind: String,
    /// A name for people.
    pub name: String,
    /// `wt_live_…abcd`.
    pub masked: String,
    /// `wt_live`, `ws_test`, ...
    pub prefix: String,
    /// The value's last four characters.
    pub last4: String,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it stops being valid; `null`: never.
    pub expires_at: Option<Timestamp>,
    /// Whether that time has passed.
    pub expired: bool,
    /// When it was last used; `null`: never.
    pub last_used_at: Option<Timestamp>,
}

/// `GET /api/v1/workspace/{id}/tokens`.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkspaceTokenList {
    /// Live tokens and secrets, oldest first.
    pub tokens: Vec<WorkspaceToken>,
}

/// `POST /api/v1/workspace/{id}/tokens`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateWorkspaceToken {
    /// 1 to 100 characters (trimmed).
    pub name: String,
    /// `token` (default) or `secret`.
    pub kind: Option<String>,
    /// RFC 3339, in the future, at most ten years ahead; absent: never expires.
    pub expires_at: Option<String>,
}

/// `POST /api/v1/workspace/{id}/tokens`'s answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedWorkspaceToken {
    /// The full value. Shown here only.
    pub key: String,
    /// The token, masked.
    pub token: WorkspaceToken,
}
