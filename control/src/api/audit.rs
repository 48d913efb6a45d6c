//! The audit log, as the organisation reads it.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::Timestamp;

/// One event: who did what, when, from where.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    /// Its id.
    pub id: String,
    /// The workspace it concerns; `null` for organisation-wide events.
    #[schema(required = true)]
    pub workspace_id: Option<String>,
    /// Who acted: an email, or an SDK key's mask.
    pub actor: String,
    /// What happened: `session.create`, `publishable_key.revoke`, `sdk_key.reveal`, ...
    pub action: String,
    /// The object acted on (an id, email or mask); `null` if none.
    #[schema(required = true)]
    pub target: Option<String>,
    /// `success` or `failure`.
    pub outcome: String,
    /// The client's IP; `null` if unknown.
    #[schema(required = true)]
    pub ip: Option<String>,
    /// The client's `User-Agent` (at most 256 characters); `null` if none.
    #[schema(required = true)]
    pub user_agent: Option<String>,
    /// Extra structured detail (never a secret).
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
    /// When it happened.
    pub created_at: Timestamp,
}

/// `GET /api/v1/audit-events`: one page of events, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditPage {
    /// Newest first.
    pub events: Vec<AuditEvent>,
    /// Pass as `before` for the next page; `null` on the last page.
    #[schema(required = true)]
    pub next_before: Option<String>,
}

/// `GET /api/v1/audit-events`'s query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only events in this workspace.
    pub workspace_id: Option<String>,
    /// Only events with this action (`member.invite`, ...).
    pub action: Option<String>,
    /// Only events before this cursor: a page's `nextBefore` (`<ms>.<event id>`), or a bare
    /// `<ms>` (everything strictly older).
    pub before: Option<String>,
    /// At most this many events, 1 to 500 (default 100).
    pub limit: Option<i64>,
}
