//! Workspace scopes: `GET /api/v1/workspace/{id}/scopes` (`workspace_scopes:read`) and
//! `POST /api/v1/workspace/{id}/scope` (`workspace_scopes:write`).

use axum::extract::{Path, State};
use axum::Json;
use keygate_shared::authz::Action;
use keygate_shared::scope::is_valid_representation;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::paths::WorkspacePath;
use crate::api::workspace_scopes::{
    CreateWorkspaceScope, CreatedWorkspaceScope, WorkspaceScope, WorkspaceScopeList,
};
use crate::api::{ErrorBody, Timestamp};
use crate::error::{ApiError, ApiResult};
use crate::http::auth::Principal;
use crate::http::workspaces::reachable_workspace;
use crate::http::{validate, AppState, ClientInfo, JsonBody};
use crate::ids::{new_id, now_ms};
use crate::store;
use crate::store::audit::AuditEntry;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_scopes))
        .routes(routes!(create_scope))
}

/// List workspace scopes.
#[utoipa::path(
    get, path = "/workspace/{id}/scopes", tag = "workspace scopes",
    params(WorkspacePath),
    responses(
        (status = 200, description = "The workspace's scopes, oldest first", body = WorkspaceScopeList),
    ),
    security(("session" = []), ("sdkKey" = ["workspace_scopes:read"])),
)]
async fn list_scopes(
    State(state): State<AppState>,
    principal: Principal,
    Path(WorkspacePath { id: workspace_id }): Path<WorkspacePath>,
) -> ApiResult<Json<WorkspaceScopeList>> {
    principal.authorize(Action::ReadWorkspaceScopes)?;
    let ws = reachable_workspace(&state, &principal, &workspace_id).await?;
    let scopes = store::workspace_scopes::list(&state.db, &ws.id).await?;
    Ok(Json(WorkspaceScopeList { scopes }))
}

/// Create a workspace scope.
#[utoipa::path(
    post, path = "/workspace/{id}/scope", tag = "workspace scopes",
    params(WorkspacePath),
    request_body = CreateWorkspaceScope,
    responses(
        (status = 200, description = "The new scope", body = CreatedWorkspaceScope),
        (status = 409, description = "`SCOPE_EXISTS`: the representation is taken", body = ErrorBody),
    ),
    security(("session" = []), ("sdkKey" = ["workspace_scopes:write"])),
)]
async fn create_scope(
    State(state): State<AppState>,
    principal: Principal,
    client: ClientInfo,
    Path(WorkspacePath { id: workspace_id }): Path<WorkspacePath>,
    JsonBody(body): JsonBody<CreateWorkspaceScope>,
) -> ApiResult<Json<CreatedWorkspaceScope>> {
    principal.authorize(Action::ManageWorkspaceScopes)?;
    let ws = reachable_workspace(&state, &principal, &workspace_id).await?;
    let name = validate::name(&body.name, "scope")?;
    if !is_valid_representation(&body.representation) {
        return Err(ApiError::bad_request(
            "INVALID_REPRESENTATION",
            "a representation is 1 to 64 characters of letters, digits, `_`, `-`, `.`, `:` and `/`",
        ));
    }
    let description = validate::optional_text(
        body.description.as_deref(),
        "a description",
        validate::MAX_DESCRIPTION_CHARS,
        "INVALID_DESCRIPTION",
    )?;
    let now = Timestamp(now_ms());
    let scope = WorkspaceScope {
        id: new_id(),
        name,
        representation: body.representation,
        description,
        created_at: now,
        updated_at: now,
    };
    // `ws` was loaded within the caller's organisation, so its org is the principal's.
    let audit = AuditEntry::by(&principal, "workspace_scope.create")
        .in_workspace(&ws.id)
        .on(&scope.id)
        .with(json!({ "representation": scope.representation }));
    store::workspace_scopes::create(&state.db, &ws.id, &scope, &audit, &client).await?;
    Ok(Json(CreatedWorkspaceScope { scope }))
}
