//! Creating and managing customer API keys: create, list, get, edit, delete, rotate, refill.
//! Validation is here; each change is one call into `crate::store::api_keys`.

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::Json;
use keygate_shared::authz::Action;
use keygate_shared::key::{ApiKeyPrefix, SecretKey};
use keygate_shared::scope::ApiKeyScope;
use serde_json::json;

use super::{MAX_CUSTOMER_ID_LEN, MAX_GRACE_MS, MAX_NAME_LEN, MAX_USAGE};
use crate::api::api_keys::{
    ApiKeyList, ApiKeyResponse, CreateApiKey, EditApiKey, RefillApiKey, RotateApiKey,
};
use crate::api::paths::{ApiKeyPath, WorkspacePath};
use crate::api::ErrorBody;
use crate::error::{ApiError, ApiResult};
use crate::http::auth::Principal;
use crate::http::workspaces::{reachable_workspace, ReachableWorkspace};
use crate::http::{validate, AppState, ClientInfo, JsonBody};
use crate::ids::now_ms;
use crate::store;
use crate::store::api_keys::{merge_scopes, ApiKeyEdit, ApiKeyRow};
use crate::store::audit::AuditEntry;

fn check_name(name: &str) -> ApiResult<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_LEN {
        return Err(ApiError::bad_request(
            "INVALID_NAME",
            format!("a key name is 1 to {MAX_NAME_LEN} characters"),
        ));
    }
    Ok(name.to_owned())
}

fn check_expires_at(t: i64) -> ApiResult<i64> {
    if t <= 0 {
        return Err(ApiError::bad_request(
            "INVALID_EXPIRES_AT",
            "expiresAt is a positive Unix time in milliseconds",
        ));
    }
    Ok(t)
}

fn check_usage(n: i64) -> ApiResult<i64> {
    if !(0..=MAX_USAGE).contains(&n) {
        return Err(ApiError::bad_request(
            "INVALID_USAGE",
            format!("totalUsageAllowed is a whole number from 0 to {MAX_USAGE}"),
        ));
    }
    Ok(n)
}

fn check_grace(ms: i64) -> ApiResult<i64> {
    if !(0..=MAX_GRACE_MS).contains(&ms) {
        return Err(ApiError::bad_request(
            "INVALID_GRACE_PERIOD",
            format!("a grace period is 0 to {MAX_GRACE_MS} milliseconds"),
        ));
    }
    Ok(ms)
}

fn check_customer_id(id: Option<String>) -> ApiResult<Option<String>> {
    match id {
        Some(c) if c.chars().count() > MAX_CUSTOMER_ID_LEN => Err(ApiError::bad_request(
            "INVALID_CUSTOMER_ID",
            format!("a customer id is at most {MAX_CUSTOMER_ID_LEN} characters"),
        )),
        Some(c) if c.is_empty() => Ok(None),
        other => Ok(other),
    }
}

/// Scopes must be well formed and name scopes the workspace defines; they are stored with
/// the rights of repeated representations merged.
async fn check_scopes(
    state: &AppState,
    workspace_id: &str,
    scopes: Vec<ApiKeyScope>,
) -> ApiResult<String> {
    validate::api_key_scopes(&scopes)?;
    if !scopes.is_empty() {
        let defined = store::api_keys::defined_scopes(&state.db, workspace_id).await?;
        if let Some(unknown) = scopes.iter().find(|s| !defined.contains(&s.representation)) {
            return Err(ApiError::bad_request(
                "UNKNOWN_SCOPE",
                format!(
                    "the workspace defines no scope `{}`; create it first (POST /api/v1/workspace/{{id}}/scope)",
                    unknown.representation
                ),
            ));
        }
    }
    Ok(merge_scopes(scopes))
}

/// The prefix of a new key's values: the request's, the workspace's, or `key`.
fn key_prefix(asked: Option<&str>, ws: &ReachableWorkspace) -> ApiResult<ApiKeyPrefix> {
    let text = asked
        .or(ws.default_key_prefix.as_deref())
        .unwrap_or(ApiKeyPrefix::DEFAULT);
    ApiKeyPrefix::new(text).map_err(|_| {
        ApiError::bad_request(
            "INVALID_PREFIX",
            "a prefix is 1 to 24 characters of a-z, 0-9 and single `_`, starting with a letter, \
             and not pk, sk, wt or ws",
        )
    })
}

/// The stored row of a new key from a validated request.
async fn new_row(
    state: &AppState,
    ws: &ReachableWorkspace,
    body: CreateApiKey,
    prefix: &ApiKeyPrefix,
    secret: &SecretKey,
) -> ApiResult<ApiKeyRow> {
    let now = now_ms();
    let expires_at = match body.expires_at {
        Some(t) => Some(check_expires_at(t)?),
        None => ws
            .default_expiration
            .filter(|d| *d > 0)
            .map(|d| now.saturating_add(d)),
    };
    let usage_left = body.total_usage_allowed.map(check_usage).transpose()?;
    let grace = check_grace(body.rotation_grace_period_ms.unwrap_or(0))?;
    let customer_id = check_customer_id(body.customer_id)?;
    let scopes = check_scopes(state, &ws.id, body.scopes).await?;
    let ids = (ws.org_id.clone(), ws.id.clone());
    Ok(ApiKeyRow {
        customer_id,
        scopes,
        enabled: body.enabled.unwrap_or(true),
        expires_at,
        limit_usage: usage_left.is_some(),
        usage_left,
        rotation_grace_ms: grace,
        ..ApiKeyRow::fresh(ids, check_name(&body.name)?, prefix, secret)
    })
}

/// Create a customer API key; the value is shown once.
#[utoipa::path(
    post, path = "/api-key", tag = "api keys",
    request_body = CreateApiKey,
    responses(
        (status = 200, description = "The new key with its value (`apiKey.key`)", body = ApiKeyResponse),
    ),
    security(("session" = []), ("sdkKey" = ["api_keys:write"])),
)]
pub(super) async fn create(
    State(state): State<AppState>,
    principal: Principal,
    client: ClientInfo,
    JsonBody(body): JsonBody<CreateApiKey>,
) -> ApiResult<Json<ApiKeyResponse>> {
    principal.authorize(Action::ManageApiKeys)?;
    let ws = reachable_workspace(&state, &principal, &body.workspace_id).await?;
    check_name(&body.name)?;
    let prefix = key_prefix(body.prefix.as_deref(), &ws)?;
    let secret = SecretKey::generate_api_key(&prefix);
    let row = new_row(&state, &ws, body, &prefix, &secret).await?;
    let audit = AuditEntry::by(&principal, "api_key.create")
        .in_workspace(&ws.id)
        .on(&row.id)
        .with(json!({ "key": secret.mask(), "customerId": row.customer_id }));
    let digest = secret.digest().to_hex();
    store::api_keys::create(&state.db, &row, &digest, &audit, &client).await?;
    let mut api_key = row.view();
    api_key.key = Some(secret.expose().to_owned());
    Ok(Json(ApiKeyResponse { api_key }))
}

/// List a workspace's API keys.
#[utoipa::path(
    get, path = "/workspace/{id}/api-key", tag = "api keys",
    params(WorkspacePath),
    responses(
        (status = 200, description = "Keys not deleted, oldest first", body = ApiKeyList),
    ),
    security(("session" = []), ("sdkKey" = ["api_keys:read"])),
)]
pub(super) async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Path(WorkspacePath { id: workspace_id }): Path<WorkspacePath>,
) -> ApiResult<Json<ApiKeyList>> {
    principal.authorize(Action::ReadApiKeys)?;
    let ws = reachable_workspace(&state, &principal, &workspace_id).await?;
    let api_keys = store::api_keys::list(&state.db, &ws.id).await?;
    Ok(Json(ApiKeyList { api_keys }))
}

/// The workspace of a key the caller may reach, after checking the key id's shape.
async fn key_workspace(
    state: &AppState,
    principal: &Principal,
    key: &ApiKeyPath,
) -> ApiResult<ReachableWorkspace> {
    let ws = reachable_workspace(state, principal, &key.id).await?;
    validate::id(&key.akid, "API key")?;
    Ok(ws)
}

/// Get an API key (deleted keys too, with `deleted: true`).
#[utoipa::path(
    get, path = "/workspace/{id}/api-key/{akid}", tag = "api keys",
    params(ApiKeyPath),
    responses(
        (status = 200, description = "The key", body = ApiKeyResponse),
    ),
    security(("session" = []), ("sdkKey" = ["api_keys:read"])),
)]
pub(super) async fn get_one(
    State(state): State<AppState>,
    principal: Principal,
    Path(key): Path<ApiKeyPath>,
) -> ApiResult<Json<ApiKeyResponse>> {
    principal.authorize(Action::ReadApiKeys)?;
    let ws = key_workspace(&state, &principal, &key).await?;
    let api_key = store::api_keys::get(&state.db, &ws.id, &key.akid).await?;
    Ok(Json(ApiKeyResponse { api_key }))
}

/// The validated edit of a PATCH body; scopes are checked against `workspace_id`.
async fn check_edit(
    state: &AppState,
    principal: &Principal,
    workspace_id: &str,
    body: EditApiKey,
) -> ApiResult<ApiKeyEdit> {
    let name = body.name.as_deref().map(check_name).transpose()?;
    let scopes = match body.scopes {
        Some(s) => {
            let ws = reachable_workspace(state, principal, workspace_id).await?;
            Some(check_scopes(state, &ws.id, s).await?)
        }
        None => None,
    };
    Ok(ApiKeyEdit {
        name,
        enabled: body.enabled,
        scopes,
        expires_at: body
            .expires_at
            .map(|e| e.map(check_expires_at).transpose())
            .transpose()?,
        usage: body
            .total_usage_allowed
            .map(|u| u.map(check_usage).transpose())
            .transpose()?,
        customer_id: body.customer_id.map(check_customer_id).transpose()?,
        rotation_grace_ms: body.rotation_grace_period_ms.map(check_grace).transpose()?,
    })
}

/// Edit an API key: name, enabled, expiry, scopes, usage, customer, grace period.
#[utoipa::path(
    patch, path = "/workspace/{id}/api-key/{akid}", tag = "api keys",
    params(ApiKeyPath),
    request_body = EditApiKey,
    responses(
        (status = 200, description = "The key as changed", body = ApiKeyResponse),
        (status = 409, description = "`KEY_DELETED`", body = ErrorBody),
    ),
    security(("session" = []), ("sdkKey" = ["api_keys:write"])),
)]
pub(super) async fn edit(
    State(state): State<AppState>,
    principal: Principal,
    client: ClientInfo,
    Path(key): Path<ApiKeyPath>,
    JsonBody(body): JsonBody<EditApiKey>,
) -> ApiResult<Json<ApiKeyResponse>> {
    principal.authorize(Action::ManageApiKeys)?;
    // Validate everything that needs no row first, so a bad request changes nothing.
    let edit = check_edit(&state, &principal, &key.id, body).await?;
    let ws = key_workspace(&state, &principal, &key).await?;
    let audit = AuditEntry::by(&principal, "api_key.edit")
        .in_workspace(&ws.id)
        .on(&key.akid);
    let api_key = store::api_keys::edit(&state.db, &ws.id, &key.akid, edit, audit, &client).await?;
    Ok(Json(ApiKeyResponse { api_key }))
}

/// Delete an API key for good; the next verify says `DELETED`.
#[utoipa::path(
    delete, path = "/workspace/{id}/api-key/{akid}", tag = "api keys",
    params(ApiKeyPath),
    responses(
        (status = 200, description = "The deleted key (deleting again answers the same)", body = ApiKeyResponse),
    ),
    security(("session" = []), ("sdkKey" = ["api_keys:write"])),
)]
pub(super) async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    client: ClientInfo,
    Path(key): Path<ApiKeyPath>,
) -> ApiResult<Json<ApiKeyResponse>> {
    principal.authorize(Action::ManageApiKeys)?;
    let ws = key_workspace(&state, &principal, &key).await?;
    let audit = AuditEntry::by(&principal, "api_key.delete")
        .in_workspace(&ws.id)
        .on(&key.akid);
    let api_key = store::api_keys::delete(&state.db, &ws.id, &key.akid, audit, &client).await?;
    Ok(Json(ApiKeyResponse { api_key }))
}

/// An optional JSON body: empty (or blank) is `T::default()`.
fn parse_optional_body<T: for<'de> serde::Deserialize<'de> + Default>(
    body: &Bytes,
) -> ApiResult<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(
            "INVALID_BODY",
            format!(
                "the body is not the expected JSON (line {}, column {})",
                e.line(),
                e.column()
            ),
        )
    })
}

/// Give an API key a new value; the old one verifies until the grace period ends.
#[utoipa::path(
    post, path = "/workspace/{id}/api-key/{akid}/rotate", tag = "api keys",
    description = "The body is optional (empty: the key's own grace period).",
    params(
        ApiKeyPath,
        ("gracePeriodMs" = Option<i64>, Query, description = "How long the old value keeps verifying, ms (the body's wins)"),
    ),
    request_body = RotateApiKey,
    responses(
        (status = 200, description = "The key with its new value (`apiKey.key`)", body = ApiKeyResponse),
        (status = 409, description = "`KEY_DELETED`", body = ErrorBody),
        (status = "4XX", description = "Invalid grace period, missing scope, or no such workspace or key", body = ErrorBody),
    ),
    security(("session" = []), ("sdkKey" = ["api_keys:write"])),
)]
pub(super) async fn rotate(
    State(state): State<AppState>,
    principal: Principal,
    client: ClientInfo,
    Path(key): Path<ApiKeyPath>,
    query: Result<Query<RotateApiKey>, QueryRejection>,
    body: Bytes,
) -> ApiResult<Json<ApiKeyResponse>> {
    principal.authorize(Action::ManageApiKeys)?;
    let Query(from_query) = query.map_err(|_| {
        ApiError::bad_request(
            "INVALID_QUERY",
            "the only query parameter is gracePeriodMs, a number of milliseconds",
        )
    })?;
    let from_body: RotateApiKey = parse_optional_body(&body)?;
    let grace = from_body
        .grace_period_ms
        .or(from_query.grace_period_ms)
        .map(check_grace)
        .transpose()?;
    let ws = key_workspace(&state, &principal, &key).await?;
    let audit = AuditEntry::by(&principal, "api_key.rotate")
        .in_workspace(&ws.id)
        .on(&key.akid);
    let api_key =
        store::api_keys::rotate(&state.db, &ws.id, &key.akid, grace, audit, &client).await?;
    Ok(Json(ApiKeyResponse { api_key }))
}

/// Add uses to a usage-limited key's allowance.
#[utoipa::path(
    post, path = "/workspace/{id}/api-key/{akid}/refill", tag = "api keys",
    params(ApiKeyPath),
    request_body = RefillApiKey,
    responses(
        (status = 200, description = "The key as refilled", body = ApiKeyResponse),
        (status = 409, description = "`KEY_DELETED`", body = ErrorBody),
        (status = "4XX", description = "Invalid amount, no usage limit, missing scope, or no such workspace or key", body = ErrorBody),
    ),
    security(("session" = []), ("sdkKey" = ["api_keys:write"])),
)]
pub(super) async fn refill(
    State(state): State<AppState>,
    principal: Principal,
    client: ClientInfo,
    Path(key): Path<ApiKeyPath>,
    JsonBody(body): JsonBody<RefillApiKey>,
) -> ApiResult<Json<ApiKeyResponse>> {
    principal.authorize(Action::ManageApiKeys)?;
    if !(1..=MAX_USAGE).contains(&body.amount) {
        return Err(ApiError::bad_request(
            "INVALID_AMOUNT",
            format!("amount is a whole number from 1 to {MAX_USAGE}"),
        ));
    }
    let ws = key_workspace(&state, &principal, &key).await?;
    let audit = AuditEntry::by(&principal, "api_key.refill")
        .in_workspace(&ws.id)
        .on(&key.akid);
    let amount = (body.amount, MAX_USAGE);
    let api_key =
        store::api_keys::refill(&state.db, &ws.id, &key.akid, amount, audit, &client).await?;
    Ok(Json(ApiKeyResponse { api_key }))
}
