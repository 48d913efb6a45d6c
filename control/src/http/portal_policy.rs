//! A workspace's portal policy, set by its admins from the dashboard:
//! `GET /api/v1/workspace/{id}/portal-policy` (any member) and `PUT` (who may manage
//! customer API keys: owners and admins). Without a stored policy,
//! `keygate_shared::portal::PortalPolicy::default()` applies.

use axum::extract::State;
use axum::Json;
use keygate_shared::authz::Action;
use keygate_shared::portal::{check_policy, PortalPolicy};
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::paths::WorkspacePath;
use crate::api::portal::{PortalPolicyBody, PortalPolicyResponse};
use crate::api::ErrorBody;
use crate::error::{ApiError, ApiResult};
use crate::http::user_workspace::UserWorkspace;
use crate::http::validate;
use crate::http::{AppState, ClientInfo, JsonBody};
use crate::store;
use crate::store::audit::AuditEntry;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_policy, put_policy))
}

/// The policy in force in workspace `workspace_id`, and whether its admins set it.
pub async fn policy_in_force(
    state: &AppState,
    workspace_id: &str,
) -> ApiResult<(PortalPolicy, bool)> {
    Ok(
        match store::portal::policy(&state.db, workspace_id).await? {
            Some(policy) => (policy, true),
            None => (PortalPolicy::default(), false),
        },
    )
}

/// Get a workspace's portal policy.
#[utoipa::path(
    get, path = "/workspace/{id}/portal-policy", tag = "customer portal",
    params(WorkspacePath),
    responses(
        (status = 200, description = "The policy in force (the default until set)", body = PortalPolicyResponse),
    ),
    security(("session" = [])),
)]
async fn get_policy(
    State(state): State<AppState>,
    UserWorkspace { user, workspace }: UserWorkspace,
) -> ApiResult<Json<PortalPolicyResponse>> {
    user.authorize(Action::ReadApiKeys)?;
    let (policy, customised) = policy_in_force(&state, &workspace.id).await?;
    Ok(Json(PortalPolicyResponse {
        workspace_id: workspace.id,
        customised,
        policy: policy.into(),
    }))
}

/// The policy of a PUT body, validated: bounds (`keygate_shared::portal::check_policy`),
/// and scopes the workspace defines.
async fn checked_policy(
    state: &AppState,
    workspace_id: &str,
    body: PortalPolicyBody,
) -> ApiResult<PortalPolicy> {
    let policy = PortalPolicy::from(body);
    check_policy(&policy).map_err(|e| {
        ApiError::bad_request(
            e.reason(),
            "maxExpiryMs is 1 ms to 10 years, maxUsage 0 to 10^12, maxLiveKeys 0 to 100",
        )
    })?;
    validate::api_key_scopes(&policy.allowed_scopes)?;
    let defined = store::api_keys::defined_scopes(&state.db, workspace_id).await?;
    if policy
        .allowed_scopes
        .iter()
        .any(|s| !defined.contains(&s.representation))
    {
        return Err(ApiError::bad_request(
            "UNKNOWN_SCOPE",
            "allowedScopes names a scope the workspace does not define",
        ));
    }
    Ok(policy)
}

/// Set a workspace's portal policy.
#[utoipa::path(
    put, path = "/workspace/{id}/portal-policy", tag = "customer portal",
    params(WorkspacePath),
    request_body = PortalPolicyBody,
    responses(
        (status = 200, description = "The policy now in force", body = PortalPolicyResponse),
        (status = 400, description = "`INVALID_MAX_EXPIRY`, `INVALID_MAX_USAGE`, `INVALID_MAX_LIVE_KEYS`, `UNKNOWN_SCOPE`, or an invalid body", body = ErrorBody),
    ),
    security(("session" = [])),
)]
async fn put_policy(
    State(state): State<AppState>,
    UserWorkspace { user, workspace }: UserWorkspace,
    client: ClientInfo,
    JsonBody(body): JsonBody<PortalPolicyBody>,
) -> ApiResult<Json<PortalPolicyResponse>> {
    user.authorize(Action::ManageApiKeys)?;
    let policy = checked_policy(&state, &workspace.id, body).await?;
    let detail = json!({
        "allowedScopes": policy.allowed_scopes.len(),
        "maxExpiryMs": policy.max_expiry_ms,
        "maxUsage": policy.max_usage,
        "maxLiveKeys": policy.max_live_keys,
    });
    let audit = AuditEntry::by_user(&user, "portal_policy.update")
        .in_workspace(&workspace.id)
        .on(&workspace.id)
        .with(detail);
    store::portal::put_policy(
        &state.db,
        (&workspace.org_id, &workspace.id),
        &policy,
        &audit,
        &client,
    )
    .await?;
    Ok(Json(PortalPolicyResponse {
        workspace_id: workspace.id,
        customised: true,
        policy: policy.into(),
    }))
}
