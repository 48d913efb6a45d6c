//! A workspace's gateway signing secrets (dashboard session; owners and admins; answers carry
//! `Cache-Control: no-store`): `GET /api/v1/workspace/{id}/gateway-secret` and
//! `POST /api/v1/workspace/{id}/gateway-secret/rotate {overlapSeconds?}`.

use axum::extract::State;
use axum::Json;
use keygate_shared::authz::Action;
use keygate_shared::gateway;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::gateway_secrets::{GatewaySecrets, RotateGatewaySecret, WorkspaceGatewaySecret};
use crate::api::paths::WorkspacePath;
use crate::api::ErrorBody;
use crate::error::{ApiError, ApiResult};
use crate::http::publishable_keys::OptionalJson;
use crate::http::user_workspace::UserWorkspace;
use crate::http::{AppState, ClientInfo};
use crate::store;
use crate::store::audit::AuditEntry;

/// Default overlap of a rotation: origins have a day to switch.
pub const DEFAULT_OVERLAP_SECONDS: u64 = 24 * 60 * 60;
/// Longest overlap accepted (30 days).
pub const MAX_OVERLAP_SECONDS: u64 = 30 * 24 * 60 * 60;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_gateway_secret))
        .routes(routes!(rotate_gateway_secret))
}

fn answer(gateway_secrets: Vec<WorkspaceGatewaySecret>) -> Json<GatewaySecrets> {
    Json(GatewaySecrets {
        gateway_secrets,
        signature_header: gateway::HEADER_SIGNATURE.to_owned(),
    })
}

/// The workspace's gateway signing secrets.
#[utoipa::path(
    get, path = "/workspace/{id}/gateway-secret", tag = "gateway",
    params(WorkspacePath),
    responses(
        (status = 200, description = "The live secrets, newest (current) first; the read is audited", body = GatewaySecrets),
    ),
    security(("session" = [])),
)]
async fn get_gateway_secret(
    State(state): State<AppState>,
    UserWorkspace { user, workspace }: UserWorkspace,
    client: ClientInfo,
) -> ApiResult<Json<GatewaySecrets>> {
    user.authorize(Action::ReadGatewaySecret)?;
    let audit = AuditEntry::by_user(&user, "gateway_secret.read")
        .in_workspace(&workspace.id)
        .on(&workspace.id);
    let secrets =
        store::gateway_secrets::reveal(&state.db, &state.keys, &workspace.id, audit, &client)
            .await?;
    Ok(answer(secrets))
}

/// Rotate the gateway signing secret.
#[utoipa::path(
    post, path = "/workspace/{id}/gateway-secret/rotate", tag = "gateway",
    params(WorkspacePath),
    request_body(content = Option<RotateGatewaySecret>, description = "Optional: how long the previous secrets stay live (default a day)"),
    responses(
        (status = 200, description = "The live secrets, the new current one first", body = GatewaySecrets),
        (status = 409, description = "`TOO_MANY_GATEWAY_SECRETS`: rotate with overlapSeconds 0, or `CONCURRENT_CHANGE`", body = ErrorBody),
        (status = 400, description = "`INVALID_OVERLAP`: more than 30 days, or an invalid body", body = ErrorBody),
    ),
    security(("session" = [])),
)]
async fn rotate_gateway_secret(
    State(state): State<AppState>,
    UserWorkspace { user, workspace }: UserWorkspace,
    client: ClientInfo,
    OptionalJson(body): OptionalJson<RotateGatewaySecret>,
) -> ApiResult<Json<GatewaySecrets>> {
    user.authorize(Action::RotateGatewaySecret)?;
    let overlap = body
        .unwrap_or_default()
        .overlap_seconds
        .unwrap_or(DEFAULT_OVERLAP_SECONDS);
    if overlap > MAX_OVERLAP_SECONDS {
        return Err(ApiError::bad_request(
            "INVALID_OVERLAP",
            format!("overlapSeconds is at most {MAX_OVERLAP_SECONDS} (30 days)"),
        ));
    }
    let audit = AuditEntry::by_user(&user, "gateway_secret.rotate")
        .in_workspace(&workspace.id)
        .on(&workspace.id);
    let secrets = store::gateway_secrets::rotate(
        &state.db,
        &state.keys,
        state.settings.edge_secret.as_deref(),
        (&user.org_id, &workspace.id),
        overlap,
        audit,
        &client,
    )
    .await?;
    tracing::info!(workspace = %workspace.id, overlap, "gateway secret rotated");
    Ok(answer(secrets))
}
