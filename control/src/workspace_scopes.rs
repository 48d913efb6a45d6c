//! Workspace scopes (Oneloop's `WorkspaceScope`): the named rights a workspace defines, which
//! its customer API keys then grant by `representation` (`orders`, `billing.refunds`).
//!
//! `GET /api/v1/workspace/{id}/scopes` lists them (`workspace_scopes:read`);
//! `POST /api/v1/workspace/{id}/scope` creates one (`workspace_scopes:write`). A
//! representation is unique within its workspace; the database enforces it (409).

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use keygate_shared::authz::Action;
use keygate_shared::scope::is_valid_representation;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::audit::{AuditEntry, AuditStore};
use crate::auth::Principal;
use crate::db::WriteTx;
use crate::error::{ApiError, ApiResult, ResultExt};
use crate::http::{AppState, ClientInfo, JsonBody};
use crate::ids::{is_valid_id, new_id, now_ms, rfc3339};
use crate::with_db;

/// Longest scope name accepted.
pub const MAX_NAME_LEN: usize = 100;
/// Longest scope description accepted.
pub const MAX_DESCRIPTION_LEN: usize = 1000;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/workspace/{id}/scopes", get(list_scopes))
        .route("/workspace/{id}/scope", post(create_scope))
}

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
    let row: Option<(String, String, Option<String>, Option<i64>)> = with_db!(&state.db, |pool| {
        sqlx::query_as(
            "SELECT id, org_id, default_key_prefix, default_expiration
                   FROM workspaces WHERE id = $1 AND org_id = $2",
        )
        .bind(workspace_id)
        .bind(principal.org_id())
        .fetch_optional(pool)
        .await
    })?;
    let (id, org_id, default_key_prefix, default_expiration) =
        row.ok_or_else(|| ApiError::not_found("workspace"))?;
    Ok(ReachableWorkspace {
        id,
        org_id,
        default_key_prefix,
        default_expiration,
    })
}

/// One scope, as Oneloop's client reads it.
#[derive(Debug, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceScope {
    id: String,
    name: String,
    representation: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(serialize_with = "as_rfc3339")]
    created_at: i64,
    #[serde(serialize_with = "as_rfc3339")]
    updated_at: i64,
}

fn as_rfc3339<S: serde::Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*ms))
}

async fn list_scopes(
    State(state): State<AppState>,
    principal: Principal,
    Path(workspace_id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    principal.authorize(Action::ReadWorkspaceScopes)?;
    let ws = reachable_workspace(&state, &principal, &workspace_id).await?;
    let scopes: Vec<WorkspaceScope> = with_db!(&state.db, |pool| {
        sqlx::query_as(
            "SELECT id, name, representation, description, created_at, updated_at
               FROM workspace_scopes WHERE workspace_id = $1 ORDER BY created_at, id",
        )
        .bind(&ws.id)
        .fetch_all(pool)
        .await
    })?;
    Ok(Json(json!({ "scopes": scopes })))
}

/// `CreateWorkspaceScopeRequest`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateScope {
    name: String,
    representation: String,
    #[serde(default)]
    description: Option<String>,
}

async fn create_scope(
    State(state): State<AppState>,
    principal: Principal,
    client: ClientInfo,
    Path(workspace_id): Path<String>,
    JsonBody(body): JsonBody<CreateScope>,
) -> ApiResult<Json<serde_json::Value>> {
    principal.authorize(Action::ManageWorkspaceScopes)?;
    let ws = reachable_workspace(&state, &principal, &workspace_id).await?;
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_LEN {
        return Err(ApiError::bad_request(
            "INVALID_NAME",
            format!("a scope name is 1 to {MAX_NAME_LEN} characters"),
        ));
    }
    if !is_valid_representation(&body.representation) {
        return Err(ApiError::bad_request(
            "INVALID_REPRESENTATION",
            "a representation is 1 to 64 characters of letters, digits, `_`, `-`, `.`, `:` and `/`",
        ));
    }
    let description = body
        .description
        .as_deref()
        .map(str::trim)
        .filter(|d| !d.is_empty());
    if description.is_some_and(|d| d.chars().count() > MAX_DESCRIPTION_LEN) {
        return Err(ApiError::bad_request(
            "INVALID_DESCRIPTION",
            format!("a description is at most {MAX_DESCRIPTION_LEN} characters"),
        ));
    }
    let scope = WorkspaceScope {
        id: new_id(),
        name: name.to_owned(),
        representation: body.representation.clone(),
        description: description.map(str::to_owned),
        created_at: now_ms(),
        updated_at: now_ms(),
    };
    // `ws` was loaded within the caller's organisation, so its org is the principal's.
    let audit = AuditEntry::by(&principal, "workspace_scope.create")
        .in_workspace(&ws.id)
        .on(&scope.id)
        .with(json!({ "representation": scope.representation }));
    with_db!(&state.db, |pool| {
        let mut tx = pool.begin_write().await?;
        sqlx::query(
            "INSERT INTO workspace_scopes
                 (id, workspace_id, name, representation, description, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&scope.id)
        .bind(&ws.id)
        .bind(&scope.name)
        .bind(&scope.representation)
        .bind(&scope.description)
        .bind(scope.created_at)
        .bind(scope.updated_at)
        .execute(&mut *tx)
        .await
        .on_constraint(|_| {
            ApiError::conflict(
                "SCOPE_EXISTS",
                "this workspace already has a scope with that representation",
            )
        })?;
        tx.record_audit(&audit, &client).await?;
        tx.commit().await?;
        Ok::<_, ApiError>(())
    })?;
    Ok(Json(json!({ "scope": scope })))
}
