//! Link tokens (Oneloop's `generateLinkToken`, `validateLinkToken`):
//! `POST /api/v1/link-token` (`api_keys:write`) and `GET /api/v1/link-token/{token}`
//! (`api_keys:read`). The token format and expiry are decided in
//! `keygate_shared::link_token`; storage keeps only digests.

use axum::extract::{Path, State};
use axum::Json;
use keygate_shared::authz::Action;
use keygate_shared::link_token::{self, LinkToken};
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::link_tokens::{GenerateLinkToken, GeneratedLinkToken, LinkTokenValidity};
use crate::api::ErrorBody;
use crate::error::{ApiError, ApiResult};
use crate::http::api_keys::MAX_CUSTOMER_ID_LEN;
use crate::http::auth::Principal;
use crate::http::workspaces::reachable_workspace;
use crate::http::{AppState, ClientInfo, JsonBody};
use crate::ids::now_ms;
use crate::store;
use crate::store::audit::AuditEntry;
use crate::store::link_tokens::LinkTokenRow;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(generate))
        .routes(routes!(validate_token))
}

/// `400 INVALID_LINK_TOKEN`: unknown, tampered, or out of the caller's reach alike.
fn invalid_link_token() -> ApiError {
    ApiError::bad_request(
        "INVALID_LINK_TOKEN",
        "this link token is unknown or malformed",
    )
}

/// A customer id: 1 to [`MAX_CUSTOMER_ID_LEN`] characters.
fn check_customer_id(id: &str) -> ApiResult<()> {
    if id.is_empty() || id.chars().count() > MAX_CUSTOMER_ID_LEN {
        return Err(ApiError::bad_request(
            "INVALID_CUSTOMER_ID",
            format!("customerId is 1 to {MAX_CUSTOMER_ID_LEN} characters"),
        ));
    }
    Ok(())
}

/// Generate a link token.
#[utoipa::path(
    post, path = "/link-token", tag = "link tokens",
    description = "A token bound to (workspace, customer), valid for 15 minutes (`KEYGATE_LINK_TOKEN_TTL_SECS`); only its digest is kept.",
    request_body = GenerateLinkToken,
    responses(
        (status = 200, description = "The token, shown once", body = GeneratedLinkToken),
    ),
    security(("sdkKey" = ["api_keys:write"]), ("session" = [])),
)]
async fn generate(
    State(state): State<AppState>,
    principal: Principal,
    client: ClientInfo,
    JsonBody(body): JsonBody<GenerateLinkToken>,
) -> ApiResult<Json<GeneratedLinkToken>> {
    principal.authorize(Action::ManageApiKeys)?;
    check_customer_id(&body.customer_id)?;
    let ws = reachable_workspace(&state, &principal, &body.workspace_id).await?;
    let token = LinkToken::generate();
    let now = now_ms();
    let row = LinkTokenRow {
        digest: token.digest(),
        org_id: principal.org_id().to_owned(),
        workspace_id: ws.id,
        customer_id: body.customer_id,
        created_by: principal.actor_id().to_owned(),
        created_at: now,
        expires_at: now + state.settings.link_token_ttl_ms,
    };
    let audit = AuditEntry::by(&principal, "link_token.create")
        .in_workspace(&row.workspace_id)
        .on(&row.customer_id)
        .with(json!({ "customerId": row.customer_id, "expiresAt": row.expires_at }));
    store::link_tokens::create(&state.db, &row, &audit, &client).await?;
    Ok(Json(GeneratedLinkToken {
        token: token.expose().to_owned(),
        expires_at: row.expires_at,
    }))
}

/// Validate a link token.
#[utoipa::path(
    get, path = "/link-token/{token}", tag = "link tokens",
    description = "An expired token is 200 with `valid: false`; an unknown, tampered or other organisation's token is `400 INVALID_LINK_TOKEN`.",
    params(("token" = String, Path, description = "The link token")),
    responses(
        (status = 200, description = "Whether the token is valid, and what it is bound to", body = LinkTokenValidity),
        (status = 400, description = "`INVALID_LINK_TOKEN`", body = ErrorBody),
    ),
    security(("sdkKey" = ["api_keys:read"]), ("session" = [])),
)]
async fn validate_token(
    State(state): State<AppState>,
    principal: Principal,
    Path(token): Path<String>,
) -> ApiResult<Json<LinkTokenValidity>> {
    principal.authorize(Action::ReadApiKeys)?;
    let token = link_token::parse(&token).ok_or_else(invalid_link_token)?;
    let row = store::link_tokens::find(&state.db, principal.org_id(), &link_token::digest(token))
        .await?
        .filter(|row| {
            principal
                .bound_workspace()
                .is_none_or(|bound| bound == row.workspace_id)
        })
        .ok_or_else(invalid_link_token)?;
    Ok(Json(LinkTokenValidity {
        valid: !link_token::is_expired(row.expires_at, now_ms()),
        expires_at: row.expires_at,
        workspace_id: row.workspace_id,
        customer_id: row.customer_id,
    }))
}
