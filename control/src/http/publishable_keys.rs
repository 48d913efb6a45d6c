//! The workspace's publishable key: viewing it, replacing it ("revoke"), its blacklist of
//! (module, functionality) rules and its allowed origins / origin URL.
//!
//! Everything here changes what the edge decides, so storage commits every change together
//! with an outbox row carrying the key's new edge record. Revoking is conditional on the key
//! the caller saw still being live, guarded by the partial unique index "one live key per
//! workspace": of two concurrent revokes of the same key exactly one commits a successor, the
//! other gets a 409 and leaves nothing behind. Dashboard session only; members may read, only
//! owners and admins change anything.

use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{header, StatusCode};
use axum::Json;
use keygate_shared::authz::Action;
use keygate_shared::origin;
use serde::de::DeserializeOwned;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::paths::{BlacklistRulePath, WorkspacePath};
use crate::api::publishable_keys::{
    CreatedBlacklistRule, NewBlacklistRule, OnePublishableKey, RevokePublishableKey, UpdateOrigins,
};
use crate::api::ErrorBody;
use crate::error::{ApiError, ApiResult};
use crate::http::user_workspace::UserWorkspace;
use crate::http::{validate, AppState, ClientInfo, JsonBody};
use crate::store;
use crate::store::audit::AuditEntry;
use crate::store::publishable_keys::{NamedKey, OriginChanges};

/// Most allowed origins per workspace.
pub const MAX_ALLOWED_ORIGINS: usize = 50;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_publishable_key, update_origins))
        .routes(routes!(revoke_publishable_key))
        .routes(routes!(add_blacklist_rule))
        .routes(routes!(remove_blacklist_rule))
}

/// A JSON body that may be left out entirely (no body, no content type): `None` then.
pub struct OptionalJson<T>(pub Option<T>);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let h = req.headers();
        let no_body = h.get(header::CONTENT_TYPE).is_none()
            && h.get(header::TRANSFER_ENCODING).is_none()
            && h.get(header::CONTENT_LENGTH).is_none_or(|v| v == "0");
        if no_body {
            return Ok(OptionalJson(None));
        }
        let JsonBody(v) = JsonBody::<T>::from_request(req, state).await?;
        Ok(OptionalJson(Some(v)))
    }
}

async fn answer(state: &AppState, org_id: &str, id: &str) -> ApiResult<Json<OnePublishableKey>> {
    let publishable_key = store::publishable_keys::current(&state.db, org_id, id).await?;
    Ok(Json(OnePublishableKey { publishable_key }))
}

/// Get the publishable key, its blacklist and origins.
#[utoipa::path(
    get, path = "/workspace/{id}/publishable-key", tag = "publishable key",
    params(WorkspacePath),
    responses(
        (status = 200, description = "The live publishable key", body = OnePublishableKey),
    ),
    security(("session" = [])),
)]
async fn get_publishable_key(
    State(state): State<AppState>,
    UserWorkspace { user, workspace }: UserWorkspace,
) -> ApiResult<Json<OnePublishableKey>> {
    user.authorize(Action::ReadDashboard)?;
    answer(&state, &user.org_id, &workspace.id).await
}

/// Replace the publishable key; the old one stops working at once.
#[utoipa::path(
    post, path = "/workspace/{id}/publishable-key/revoke", tag = "publishable key",
    params(WorkspacePath),
    request_body(content = Option<RevokePublishableKey>, description = "Optional: the key meant (by id or value); without a body, the live key"),
    responses(
        (status = 200, description = "The new live key", body = OnePublishableKey),
        (status = 409, description = "`KEY_ALREADY_REVOKED`: the key was already replaced", body = ErrorBody),
    ),
    security(("session" = [])),
)]
async fn revoke_publishable_key(
    State(state): State<AppState>,
    UserWorkspace { user, workspace }: UserWorkspace,
    client: ClientInfo,
    OptionalJson(body): OptionalJson<RevokePublishableKey>,
) -> ApiResult<Json<OnePublishableKey>> {
    user.authorize(Action::RevokePublishableKey)?;
    let body = body.unwrap_or_default();
    let named = NamedKey {
        id: body.key_id.as_deref(),
        value: body.key.as_deref(),
    };
    let audit = AuditEntry::by_user(&user, "publishable_key.revoke").in_workspace(&workspace.id);
    let (revoked, new) =
        store::publishable_keys::revoke(&state.db, &workspace, named, audit, &client).await?;
    tracing::info!(workspace = %workspace.id, %revoked, %new, "publishable key replaced");
    answer(&state, &user.org_id, &workspace.id).await
}

fn validate_origins(list: &[String]) -> ApiResult<Vec<String>> {
    validate::bounded(
        list,
        "allowedOrigins",
        MAX_ALLOWED_ORIGINS,
        "TOO_MANY_ORIGINS",
    )?;
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for entry in list {
        let canonical = origin::validate_entry(entry.trim())
            .map_err(|e| ApiError::bad_request("INVALID_ORIGIN", e.to_string()))?;
        if !out.contains(&canonical) {
            out.push(canonical);
        }
    }
    Ok(out)
}

/// `origin::validate_origin_url` with keygate's error shape (syntax only; see
/// [`validate_forward_target`] for where it may point).
pub fn validate_origin_url(raw: &str) -> ApiResult<String> {
    origin::validate_origin_url(raw)
        .map_err(|e| ApiError::bad_request("INVALID_ORIGIN_URL", e.to_string()))
}

/// A canonical origin URL must be https on a public address unless the operator allows
/// private ones (`KEYGATE_ALLOW_PRIVATE_ORIGINS`): `origin::check_forward_target`, the same
/// decision the edge makes before forwarding.
pub fn validate_forward_target(canonical: &str, allow_private: bool) -> ApiResult<()> {
    origin::check_forward_target(canonical, allow_private)
        .map_err(|e| ApiError::bad_request("ORIGIN_URL_NOT_PUBLIC", e.to_string()))
}

/// The changes a valid PATCH body asks for.
fn origin_changes(body: UpdateOrigins, allow_private: bool) -> ApiResult<OriginChanges> {
    let origin_url = match body.origin_url {
        Some(Some(u)) if !u.trim().is_empty() => {
            let canonical = validate_origin_url(&u)?;
            validate_forward_target(&canonical, allow_private)?;
            Some(Some(canonical))
        }
        Some(_) => Some(None),
        None => None,
    };
    Ok(OriginChanges {
        allowed_origins: body
            .allowed_origins
            .as_deref()
            .map(validate_origins)
            .transpose()?,
        origin_url,
        forward_cookies: body.forward_cookies,
    })
}

/// Set the allowed origins, origin URL and cookie forwarding.
#[utoipa::path(
    patch, path = "/workspace/{id}/publishable-key", tag = "publishable key",
    params(WorkspacePath),
    request_body = UpdateOrigins,
    responses(
        (status = 200, description = "The key as it is now", body = OnePublishableKey),
        (status = 400, description = "`INVALID_ORIGIN`, `TOO_MANY_ORIGINS`, `INVALID_ORIGIN_URL`, `ORIGIN_URL_NOT_PUBLIC`, or an invalid body", body = ErrorBody),
    ),
    security(("session" = [])),
)]
async fn update_origins(
    State(state): State<AppState>,
    UserWorkspace { user, workspace }: UserWorkspace,
    client: ClientInfo,
    JsonBody(body): JsonBody<UpdateOrigins>,
) -> ApiResult<Json<OnePublishableKey>> {
    user.authorize(Action::ChangeOrigins)?;
    let changes = origin_changes(body, state.settings.allow_private_origins)?;
    let audit = AuditEntry::by_user(&user, "publishable_key.origins.update")
        .in_workspace(&workspace.id)
        .on(&workspace.id)
        .with(json!({
            "allowedOrigins": changes.allowed_origins,
            "originUrl": changes.origin_url,
            "forwardCookies": changes.forward_cookies,
        }));
    store::publishable_keys::update_origins(
        &state.db,
        &user.org_id,
        &workspace.id,
        &changes,
        &audit,
        &client,
    )
    .await?;
    answer(&state, &user.org_id, &workspace.id).await
}

/// Add a blacklist rule (`*` blocks the whole module).
#[utoipa::path(
    post, path = "/workspace/{id}/publishable-key/blacklist", tag = "publishable key",
    params(WorkspacePath),
    request_body = NewBlacklistRule,
    responses(
        (status = 201, description = "The new rule", body = CreatedBlacklistRule),
        (status = 409, description = "`DUPLICATE_RULE`: already blacklisted", body = ErrorBody),
        (status = "4XX", description = "Not in the catalogue, not allowed, or no such workspace", body = ErrorBody),
    ),
    security(("session" = [])),
)]
async fn add_blacklist_rule(
    State(state): State<AppState>,
    UserWorkspace { user, workspace }: UserWorkspace,
    client: ClientInfo,
    JsonBody(body): JsonBody<NewBlacklistRule>,
) -> ApiResult<(StatusCode, Json<CreatedBlacklistRule>)> {
    user.authorize(Action::AddBlacklistRule)?;
    let audit = AuditEntry::by_user(&user, "blacklist.add").in_workspace(&workspace.id);
    let rule = store::publishable_keys::add_rule(
        &state.db,
        &user.org_id,
        &workspace.id,
        (&body.module, &body.functionality),
        audit,
        &client,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(CreatedBlacklistRule { rule })))
}

/// Remove a blacklist rule.
#[utoipa::path(
    delete, path = "/workspace/{id}/publishable-key/blacklist/{ruleId}", tag = "publishable key",
    params(BlacklistRulePath),
    responses(
        (status = 204, description = "Removed"),
    ),
    security(("session" = [])),
)]
async fn remove_blacklist_rule(
    State(state): State<AppState>,
    UserWorkspace { user, workspace }: UserWorkspace,
    client: ClientInfo,
    Path(BlacklistRulePath { rule_id, .. }): Path<BlacklistRulePath>,
) -> ApiResult<StatusCode> {
    user.authorize(Action::RemoveBlacklistRule)?;
    validate::id(&rule_id, "blacklist rule")?;
    let audit = AuditEntry::by_user(&user, "blacklist.remove")
        .in_workspace(&workspace.id)
        .on(&rule_id);
    store::publishable_keys::remove_rule(
        &state.db,
        &user.org_id,
        &workspace.id,
        &rule_id,
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
    fn origin_urls_are_checked_by_shared_with_keygate_s_reasons() {
        assert_eq!(
            validate_origin_url("https://API.example.com:443/v1/").unwrap(),
            "https://api.example.com/v1"
        );
        let bad = validate_origin_url("https://user:pw@example.com").unwrap_err();
        assert_eq!(bad.reason, "INVALID_ORIGIN_URL");
        assert!(!bad.message.contains("pw"));
    }

    #[test]
    fn origins_are_canonical_deduplicated_and_bounded() {
        let list = vec![
            "https://App.example.com".to_owned(),
            "https://app.example.com:443".to_owned(),
            "https://*.example.com".to_owned(),
        ];
        assert_eq!(
            validate_origins(&list).unwrap(),
            vec!["https://app.example.com", "https://*.example.com"]
        );
        assert!(validate_origins(&["https://example.com/path".to_owned()]).is_err());
        let many: Vec<String> = (0..51)
            .map(|i| format!("https://a{i}.example.com"))
            .collect();
        assert!(validate_origins(&many).is_err());
    }
}
