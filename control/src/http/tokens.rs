//! Workspace tokens and secrets: credentials for one workspace's integrations (`wt_...` for
//! tokens, `ws_...` for secrets). The value is shown once, in the creation response. Dashboard
//! session only; members may list, owners and admins create and revoke.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use keygate_shared::authz::Action;
use keygate_shared::key::{KeyKind, SecretKey};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::paths::{TokenPath, WorkspacePath};
use crate::api::tokens::{
    CreateWorkspaceToken, CreatedWorkspaceToken, WorkspaceToken, WorkspaceTokenList,
};
use crate::api::Timestamp;
use crate::error::{ApiError, ApiResult};
use crate::http::user_workspace::UserWorkspace;
use crate::http::{validate, AppState, ClientInfo, JsonBody};
use crate::ids::{new_id, now_ms};
use crate::store;
use crate::store::audit::AuditEntry;

/// Latest expiry accepted: ten years ahead.
const MAX_EXPIRY_MS: i64 = 10 * 366 * 24 * 60 * 60 * 1000;

/// The token routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(revoke_token))
}

/// Workspace tokens and secrets, masked.
#[utoipa::path(
    get, path = "/workspace/{id}/tokens", tag = "tokens",
    params(WorkspacePath),
    responses(
        (status = 200, description = "Live tokens and secrets, oldest first", body = WorkspaceTokenList),
    ),
    security(("session" = [])),
)]
async fn list_tokens(
    State(state): State<AppState>,
    UserWorkspace { user, workspace }: UserWorkspace,
) -> ApiResult<Json<WorkspaceTokenList>> {
    user.authorize(Action::ReadDashboard)?;
    let tokens = store::tokens::list(&state.db, &workspace.id, now_ms()).await?;
    Ok(Json(WorkspaceTokenList { tokens }))
}

fn parse_expiry(raw: &str, now: i64) -> ApiResult<i64> {
    let at = chrono::DateTime::parse_from_rfc3339(raw.trim())
        .map_err(|_| {
            ApiError::bad_request(
                "INVALID_EXPIRY",
                "expiresAt is an RFC 3339 time such as 2030-01-31T12:00:00Z",
            )
        })?
        .timestamp_millis();
    if at <= now {
        return Err(ApiError::bad_request(
            "INVALID_EXPIRY",
            "expiresAt must be in the future",
        ));
    }
    if at - now > MAX_EXPIRY_MS {
        return Err(ApiError::bad_request(
            "INVALID_EXPIRY",
            "expiresAt is at most ten years ahead",
        ));
    }
    Ok(at)
}

/// `token` (default) or `secret`, and the key kind it mints.
fn parse_kind(raw: Option<&str>) -> ApiResult<(&'static str, KeyKind)> {
    match raw.unwrap_or("token") {
        "token" => Ok(("token", KeyKind::WorkspaceToken)),
        "secret" => Ok(("secret", KeyKind::WorkspaceSecret)),
        _ => Err(ApiError::bad_request(
            "INVALID_KIND",
            "kind is `token` or `secret`",
        )),
    }
}

/// Create a workspace token or secret; the value is shown once.
#[utoipa::path(
    post, path = "/workspace/{id}/tokens", tag = "tokens",
    params(WorkspacePath),
    request_body = CreateWorkspaceToken,
    responses(
        (status = 201, description = "The new token, its value shown once", body = CreatedWorkspaceToken),
    ),
    security(("session" = [])),
)]
async fn create_token(
    State(state): State<AppState>,
    UserWorkspace { user, workspace }: UserWorkspace,
    client: ClientInfo,
    JsonBody(body): JsonBody<CreateWorkspaceToken>,
) -> ApiResult<(StatusCode, Json<CreatedWorkspaceToken>)> {
    user.authorize(Action::ManageTokens)?;
    let name = validate::name(&body.name, "token")?;
    let (kind, key_kind) = parse_kind(body.kind.as_deref())?;
    let now = now_ms();
    let expires_at = body
        .expires_at
        .as_deref()
        .map(|e| parse_expiry(e, now))
        .transpose()?;
    let key = SecretKey::generate(key_kind, workspace.environment());
    let token = WorkspaceToken {
        id: new_id(),
        kind: kind.to_owned(),
        name,
        masked: key.mask(),
        prefix: key.prefix().to_owned(),
        last4: key.last4().to_owned(),
        created_at: Timestamp(now),
        expires_at: expires_at.map(Timestamp),
        expired: false,
        last_used_at: None,
    };
    let audit = AuditEntry::by_user(&user, "workspace_token.create").in_workspace(&workspace.id);
    let digest = key.digest().to_hex();
    store::tokens::create(
        &state.db,
        &workspace.id,
        &token,
        &digest,
        &user.user_id,
        audit,
        &client,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedWorkspaceToken {
            key: key.expose().to_owned(),
            token,
        }),
    ))
}

/// Revoke a workspace token or secret.
#[utoipa::path(
    delete, path = "/workspace/{id}/tokens/{tokenId}", tag = "tokens",
    params(TokenPath),
    responses(
        (status = 204, description = "Revoked"),
    ),
    security(("session" = [])),
)]
async fn revoke_token(
    State(state): State<AppState>,
    UserWorkspace { user, workspace }: UserWorkspace,
    client: ClientInfo,
    Path(TokenPath { token_id, .. }): Path<TokenPath>,
) -> ApiResult<StatusCode> {
    user.authorize(Action::ManageTokens)?;
    validate::id(&token_id, "token")?;
    let audit = AuditEntry::by_user(&user, "workspace_token.revoke")
        .in_workspace(&workspace.id)
        .on(&token_id);
    store::tokens::revoke(
        &state.db,
        &workspace.id,
        &token_id,
        now_ms(),
        audit,
        &client,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_must_be_a_future_rfc3339_time_within_ten_years() {
        let now = chrono::Utc::now().timestamp_millis();
        assert!(parse_expiry("2999-01-01T00:00:00Z", now).is_err());
        assert!(parse_expiry("2000-01-01T00:00:00Z", now).is_err());
        assert!(parse_expiry("tomorrow", now).is_err());
        let soon = crate::ids::rfc3339(now + 86_400_000);
        assert_eq!(parse_expiry(&soon, now).unwrap(), now + 86_400_000);
    }
}
