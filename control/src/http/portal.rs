//! The customer portal's API, `/api/v1/portal/*`, for a customer holding a link token
//! ([`PortalCaller`]): who the token speaks for, and that customer's own API keys in the
//! token's workspace (list masked, create with the value shown once, rotate with a grace
//! period, revoke).
//!
//! Every decision is `keygate_shared::portal`'s: [`Customer::owns`] (another customer's or
//! workspace's key answers exactly like a missing one, 404), [`may_create`] (the workspace's
//! portal policy), [`check_grace`]. Each change spends one of the token's
//! [`MAX_WRITES_PER_TOKEN`] changes (one conditional `UPDATE`) and writes an audit row whose
//! actor is `customer:<customerId>`.
//!
//! [`Customer::owns`]: keygate_shared::portal::Customer::owns

use axum::extract::{Path, State};
use axum::Json;
use keygate_shared::key::{ApiKeyPrefix, SecretKey};
use keygate_shared::portal::{
    self, may_create, CreateRequest, PortalRefusal, MAX_WRITES_PER_TOKEN,
};
use keygate_shared::scope::ApiKeyScope;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::api_keys::{ApiKey, ApiKeyResponse};
use crate::api::portal::{PortalCreateKey, PortalKeyList, PortalRotateKey, PortalSession};
use crate::api::ErrorBody;
use crate::error::{ApiError, ApiResult};
use crate::http::portal_auth::PortalCaller;
use crate::http::portal_policy::policy_in_force;
use crate::http::{validate, AppState, ClientInfo, JsonBody};
use crate::ids::now_ms;
use crate::store;
use crate::store::api_keys::{merge_scopes, ApiKeyRow};
use crate::store::audit::AuditEntry;
use crate::store::{Refusal, StoreError};

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(session))
        .routes(routes!(list_keys, create_key))
        .routes(routes!(rotate_key))
        .routes(routes!(revoke_key))
}

/// The error a portal refusal becomes: 409 for too many keys, 400 otherwise.
fn refusal(r: PortalRefusal) -> StoreError {
    let message = match r {
        PortalRefusal::ScopeNotAllowed => "a scope is outside what this workspace allows",
        PortalRefusal::ExpiryNotAllowed => {
            "the expiry is in the past or later than this workspace allows"
        }
        PortalRefusal::UsageNotAllowed => "the usage allowance is above what this workspace allows",
        PortalRefusal::TooManyKeys => {
            "you hold as many keys as this workspace allows; revoke one first"
        }
        PortalRefusal::GraceNotAllowed => "a grace period is 0 to 7 days",
    };
    let kind = if r.is_conflict() {
        Refusal::Conflict
    } else {
        Refusal::Invalid
    };
    StoreError::refused(kind, r.reason(), message)
}

/// Spends one of the token's changes: `429 TOO_MANY_CHANGES` when none is left.
async fn spend_change(state: &AppState, caller: &PortalCaller) -> ApiResult<()> {
    let spent = store::portal::spend_change(
        &state.db,
        &caller.token_digest,
        now_ms(),
        MAX_WRITES_PER_TOKEN,
    )
    .await?;
    if !spent {
        return Err(ApiError::too_many_requests(
            "TOO_MANY_CHANGES",
            format!("one link makes at most {MAX_WRITES_PER_TOKEN} changes; ask for a new link"),
            60,
        ));
    }
    Ok(())
}

/// An audit entry by the customer, in the token's workspace, on `target`.
fn audit<'a>(caller: &'a PortalCaller, action: &'a str, target: &'a str) -> AuditEntry<'a> {
    AuditEntry::new(
        &caller.customer.org_id,
        &caller.actor,
        &caller.actor,
        action,
    )
    .in_workspace(&caller.customer.workspace_id)
    .on(target)
    .with(json!({ "via": "link_token", "customerId": caller.customer.customer_id }))
}

/// Who the link token speaks for.
#[utoipa::path(
    get, path = "/portal/session", tag = "customer portal",
    description = "The workspace and customer the link token is bound to, its expiry, and the workspace's portal policy.",
    responses(
        (status = 200, description = "The token's customer", body = PortalSession),
        (status = 401, description = "`MISSING_CREDENTIALS`, `INVALID_LINK_TOKEN` or `LINK_TOKEN_EXPIRED`", body = ErrorBody),
    ),
    security(("linkToken" = [])),
)]
async fn session(
    State(state): State<AppState>,
    caller: PortalCaller,
) -> ApiResult<Json<PortalSession>> {
    let (policy, _) = policy_in_force(&state, &caller.customer.workspace_id).await?;
    Ok(Json(PortalSession {
        workspace_id: caller.customer.workspace_id,
        workspace_name: caller.workspace_name,
        customer_id: caller.customer.customer_id,
        expires_at: caller.expires_at,
        policy: policy.into(),
    }))
}

/// List the customer's own API keys.
#[utoipa::path(
    get, path = "/portal/api-key", tag = "customer portal",
    responses(
        (status = 200, description = "The customer's keys that are not deleted, masked, oldest first", body = PortalKeyList),
        (status = 401, description = "`MISSING_CREDENTIALS`, `INVALID_LINK_TOKEN` or `LINK_TOKEN_EXPIRED`", body = ErrorBody),
    ),
    security(("linkToken" = [])),
)]
async fn list_keys(
    State(state): State<AppState>,
    caller: PortalCaller,
) -> ApiResult<Json<PortalKeyList>> {
    let c = &caller.customer;
    let api_keys = store::portal::customer_keys(&state.db, &c.workspace_id, &c.customer_id).await?;
    Ok(Json(PortalKeyList { api_keys }))
}

/// The row of a new key for the caller, before the policy fills in expiry and allowance.
async fn new_key_row(
    state: &AppState,
    caller: &PortalCaller,
    name: String,
    scopes: &[ApiKeyScope],
) -> ApiResult<(ApiKeyRow, SecretKey)> {
    let c = &caller.customer;
    let ws = store::workspaces::reachable(&state.db, &c.org_id, &c.workspace_id).await?;
    let prefix = ws
        .default_key_prefix
        .as_deref()
        .and_then(|p| ApiKeyPrefix::new(p).ok())
        .unwrap_or_default();
    let secret = SecretKey::generate_api_key(&prefix);
    let row = ApiKeyRow {
        customer_id: Some(c.customer_id.clone()),
        scopes: merge_scopes(scopes.to_vec()),
        ..ApiKeyRow::fresh((ws.org_id, ws.id), name, &prefix, &secret)
    };
    Ok((row, secret))
}

/// Create an API key for the customer; the value is shown once.
#[utoipa::path(
    post, path = "/portal/api-key", tag = "customer portal",
    description = "Bounded by the workspace's portal policy: scopes within the allowed set, expiry and usage no more than the maximum (absent: the maximum), at most so many live keys.",
    request_body = PortalCreateKey,
    responses(
        (status = 200, description = "The new key with its value (`apiKey.key`)", body = ApiKeyResponse),
        (status = 400, description = "`SCOPE_NOT_ALLOWED`, `EXPIRY_NOT_ALLOWED`, `USAGE_NOT_ALLOWED`, or an invalid body", body = ErrorBody),
        (status = 409, description = "`TOO_MANY_KEYS`", body = ErrorBody),
        (status = 401, description = "`MISSING_CREDENTIALS`, `INVALID_LINK_TOKEN` or `LINK_TOKEN_EXPIRED`", body = ErrorBody),
        (status = 429, description = "`TOO_MANY_CHANGES`: the link's changes are spent", body = ErrorBody),
    ),
    security(("linkToken" = [])),
)]
async fn create_key(
    State(state): State<AppState>,
    caller: PortalCaller,
    client: ClientInfo,
    JsonBody(body): JsonBody<PortalCreateKey>,
) -> ApiResult<Json<ApiKeyResponse>> {
    let name = validate::name(&body.name, "API key")?;
    validate::api_key_scopes(&body.scopes)?;
    let (policy, _) = policy_in_force(&state, &caller.customer.workspace_id).await?;
    spend_change(&state, &caller).await?;
    let (row, secret) = new_key_row(&state, &caller, name, &body.scopes).await?;
    let key_id = row.id.clone();
    let entry = audit(&caller, "api_key.create", &key_id);
    let mut entry_detail = entry.detail.clone();
    entry_detail["key"] = json!(secret.mask());
    let entry = entry.with(entry_detail);
    let digest = secret.digest().to_hex();
    let stored =
        store::portal::create_customer_key(&state.db, row, &digest, entry, &client, |live, row| {
            let request = CreateRequest {
                scopes: &body.scopes,
                expires_at: body.expires_at,
                usage: body.total_usage_allowed,
                live_keys: live,
                now: row.created_at,
            };
            let granted = may_create(&policy, &request).map_err(refusal)?;
            row.expires_at = granted.expires_at;
            row.limit_usage = granted.usage.is_some();
            row.usage_left = granted.usage;
            Ok(())
        })
        .await?;
    let mut api_key = stored.view();
    api_key.key = Some(secret.expose().to_owned());
    Ok(Json(ApiKeyResponse { api_key }))
}

/// Key `akid` if it is the caller's own; a 404 like a missing key otherwise.
async fn own_key(state: &AppState, caller: &PortalCaller, akid: &str) -> ApiResult<ApiKey> {
    validate::id(akid, "API key")?;
    let c = &caller.customer;
    let key = store::api_keys::get(&state.db, &c.workspace_id, akid).await?;
    if !c.owns(&key.workspace_id, key.customer_id.as_deref()) {
        return Err(ApiError::not_found("API key"));
    }
    Ok(key)
}

/// Give one of the customer's keys a new value.
#[utoipa::path(
    post, path = "/portal/api-key/{akid}/rotate", tag = "customer portal",
    description = "The old value keeps verifying for `gracePeriodMs` (0 to 7 days; default 0). Another customer's key is a 404.",
    params(("akid" = String, Path, description = "The API key")),
    request_body = PortalRotateKey,
    responses(
        (status = 200, description = "The key with its new value (`apiKey.key`)", body = ApiKeyResponse),
        (status = 400, description = "`GRACE_PERIOD_NOT_ALLOWED`", body = ErrorBody),
        (status = 404, description = "No such key among the customer's", body = ErrorBody),
        (status = 409, description = "`KEY_DELETED`", body = ErrorBody),
        (status = 401, description = "`MISSING_CREDENTIALS`, `INVALID_LINK_TOKEN` or `LINK_TOKEN_EXPIRED`", body = ErrorBody),
        (status = 429, description = "`TOO_MANY_CHANGES`", body = ErrorBody),
    ),
    security(("linkToken" = [])),
)]
async fn rotate_key(
    State(state): State<AppState>,
    caller: PortalCaller,
    client: ClientInfo,
    Path(akid): Path<String>,
    JsonBody(body): JsonBody<PortalRotateKey>,
) -> ApiResult<Json<ApiKeyResponse>> {
    let grace = portal::check_grace(body.grace_period_ms).map_err(refusal)?;
    let key = own_key(&state, &caller, &akid).await?;
    spend_change(&state, &caller).await?;
    let entry = audit(&caller, "api_key.rotate", &key.id);
    let c = &caller.customer;
    let target = (c.workspace_id.as_str(), key.id.as_str());
    // Ownership again on the row the transaction holds: the platform may have moved the key
    // to another customer since `own_key` read it.
    let owned = |row: &ApiKeyRow| c.owns(&row.workspace_id, row.customer_id.as_deref());
    let api_key =
        store::api_keys::rotate_if(&state.db, target, owned, Some(grace), entry, &client).await?;
    Ok(Json(ApiKeyResponse { api_key }))
}

/// Revoke (delete for good) one of the customer's keys.
#[utoipa::path(
    delete, path = "/portal/api-key/{akid}", tag = "customer portal",
    description = "The next verify of the key says `DELETED`. Another customer's key is a 404.",
    params(("akid" = String, Path, description = "The API key")),
    responses(
        (status = 200, description = "The revoked key", body = ApiKeyResponse),
        (status = 404, description = "No such key among the customer's", body = ErrorBody),
        (status = 401, description = "`MISSING_CREDENTIALS`, `INVALID_LINK_TOKEN` or `LINK_TOKEN_EXPIRED`", body = ErrorBody),
        (status = 429, description = "`TOO_MANY_CHANGES`", body = ErrorBody),
    ),
    security(("linkToken" = [])),
)]
async fn revoke_key(
    State(state): State<AppState>,
    caller: PortalCaller,
    client: ClientInfo,
    Path(akid): Path<String>,
) -> ApiResult<Json<ApiKeyResponse>> {
    let key = own_key(&state, &caller, &akid).await?;
    spend_change(&state, &caller).await?;
    let entry = audit(&caller, "api_key.delete", &key.id);
    let c = &caller.customer;
    let target = (c.workspace_id.as_str(), key.id.as_str());
    // As in `rotate_key`: ownership decided again inside the deleting transaction.
    let owned = |row: &ApiKeyRow| c.owns(&row.workspace_id, row.customer_id.as_deref());
    let api_key = store::api_keys::delete_if(&state.db, target, owned, entry, &client).await?;
    Ok(Json(ApiKeyResponse { api_key }))
}
