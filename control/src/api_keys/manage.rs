//! Creating and managing customer API keys: create, list, get, edit, delete, rotate, refill.
//!
//! Each change runs in one write transaction that reads the row, checks it, changes it and
//! records the audit event, so concurrent edits cannot lose each other's work and the log
//! never claims a change that rolled back. Only SHA-256 digests of key values are stored.

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::Json;
use keygate_shared::authz::Action;
use keygate_shared::key::{ApiKeyPrefix, SecretKey};
use keygate_shared::scope::{is_valid_representation, ApiKeyScope};
use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};

use super::{
    key_columns, ApiKeyRow, ApiKeyStore, MAX_CUSTOMER_ID_LEN, MAX_GRACE_MS, MAX_NAME_LEN,
    MAX_SCOPES, MAX_USAGE,
};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::http::workspaces::reachable_workspace;
use crate::http::{AppState, ClientInfo, JsonBody};
use crate::ids::{is_valid_id, new_id, now_ms};
use crate::store::audit::{AuditEntry, AuditStore};
use crate::store::WriteTx;
use crate::with_db;

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
fn nullable<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// `CreateApiKeyRequest`, plus keygate's `rotationGracePeriodMs`. Oneloop's `metadata` and
/// `externalMeterId` are accepted and ignored.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateApiKey {
    name: String,
    workspace_id: String,
    #[serde(default)]
    prefix: Option<String>,
    /// Unix milliseconds.
    #[serde(default)]
    expires_at: Option<i64>,
    #[serde(default)]
    total_usage_allowed: Option<i64>,
    #[serde(default)]
    scopes: Vec<ApiKeyScope>,
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    customer_id: Option<String>,
    #[serde(default)]
    rotation_grace_period_ms: Option<i64>,
    #[serde(default, rename = "metadata")]
    _metadata: Option<Value>,
    #[serde(default, rename = "externalMeterId")]
    _external_meter_id: Option<Value>,
}

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

fn check_usage(n: i64, field: &str) -> ApiResult<i64> {
    if !(0..=MAX_USAGE).contains(&n) {
        return Err(ApiError::bad_request(
            "INVALID_USAGE",
            format!("{field} is a whole number from 0 to {MAX_USAGE}"),
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
    if scopes.len() > MAX_SCOPES {
        return Err(ApiError::bad_request(
            "TOO_MANY_SCOPES",
            format!("a key grants at most {MAX_SCOPES} scopes"),
        ));
    }
    if scopes
        .iter()
        .any(|s| !is_valid_representation(&s.representation))
    {
        return Err(ApiError::bad_request(
            "INVALID_REPRESENTATION",
            "a scope representation is 1 to 64 characters of letters, digits, `_`, `-`, `.`, `:` and `/`",
        ));
    }
    if !scopes.is_empty() {
        let defined: Vec<String> = with_db!(&state.db, |pool| {
            sqlx::query_scalar(
                "SELECT representation FROM workspace_scopes WHERE workspace_id = $1",
            )
            .bind(workspace_id)
            .fetch_all(pool)
            .await
        })?;
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
    let mut merged: Vec<ApiKeyScope> = Vec::with_capacity(scopes.len());
    for s in scopes {
        match merged
            .iter_mut()
            .find(|m| m.representation == s.representation)
        {
            Some(m) => {
                m.create |= s.create;
                m.read |= s.read;
                m.update |= s.update;
                m.del |= s.del;
            }
            None => merged.push(s),
        }
    }
    serde_json::to_string(&merged).map_err(ApiError::internal)
}

fn deleted_conflict() -> ApiError {
    ApiError::conflict("KEY_DELETED", "this API key was deleted")
}

/// `POST /api/v1/api-key`: a new key; its value is in the answer and nowhere else.
pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    client: ClientInfo,
    JsonBody(body): JsonBody<CreateApiKey>,
) -> ApiResult<Json<Value>> {
    principal.authorize(Action::ManageApiKeys)?;
    let ws = reachable_workspace(&state, &principal, &body.workspace_id).await?;
    let name = check_name(&body.name)?;
    let prefix_text = body
        .prefix
        .clone()
        .or_else(|| ws.default_key_prefix.clone())
        .unwrap_or_else(|| ApiKeyPrefix::DEFAULT.to_owned());
    let prefix = ApiKeyPrefix::new(&prefix_text).map_err(|_| {
        ApiError::bad_request(
            "INVALID_PREFIX",
            "a prefix is 1 to 24 characters of a-z, 0-9 and single `_`, starting with a letter, \
             and not pk, sk, wt or ws",
        )
    })?;
    let now = now_ms();
    let expires_at = match body.expires_at {
        Some(t) => Some(check_expires_at(t)?),
        None => ws
            .default_expiration
            .filter(|d| *d > 0)
            .map(|d| now.saturating_add(d)),
    };
    let usage_left = body
        .total_usage_allowed
        .map(|n| check_usage(n, "totalUsageAllowed"))
        .transpose()?;
    let grace = check_grace(body.rotation_grace_period_ms.unwrap_or(0))?;
    let customer_id = check_customer_id(body.customer_id)?;
    let scopes = check_scopes(&state, &ws.id, body.scopes).await?;

    let secret = SecretKey::generate_api_key(&prefix);
    let row = ApiKeyRow {
        id: new_id(),
        org_id: ws.org_id.clone(),
        workspace_id: ws.id.clone(),
        name,
        prefix: prefix.as_str().to_owned(),
        key_last4: secret.last4().to_owned(),
        customer_id,
        scopes,
        enabled: body.enabled.unwrap_or(true),
        deleted: false,
        expires_at,
        limit_usage: usage_left.is_some(),
        usage_left,
        usage_count: 0,
        rotation_grace_ms: grace,
        last_used_at: None,
        created_at: now,
        updated_at: now,
    };
    let digest = secret.digest().to_hex();
    let entry = AuditEntry::by(&principal, "api_key.create")
        .in_workspace(&ws.id)
        .on(&row.id)
        .with(json!({ "key": secret.mask(), "customerId": row.customer_id }));
    with_db!(&state.db, |pool| {
        let mut tx = pool.begin_write().await?;
        sqlx::query(
            "INSERT INTO api_keys
                 (id, org_id, workspace_id, name, prefix, key_last4, customer_id, scopes, enabled,
                  deleted, expires_at, limit_usage, usage_left, usage_count, rotation_grace_ms,
                  created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, FALSE, $10, $11, $12, 0, $13, $14, $14)",
        )
        .bind(&row.id)
        .bind(&row.org_id)
        .bind(&row.workspace_id)
        .bind(&row.name)
        .bind(&row.prefix)
        .bind(&row.key_last4)
        .bind(&row.customer_id)
        .bind(&row.scopes)
        .bind(row.enabled)
        .bind(row.expires_at)
        .bind(row.limit_usage)
        .bind(row.usage_left)
        .bind(row.rotation_grace_ms)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO api_key_values (key_digest, api_key_id, created_at) VALUES ($1, $2, $3)",
        )
        .bind(&digest)
        .bind(&row.id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.record_audit(&entry, &client).await?;
        tx.commit().await
    })?;
    let mut view = row.view();
    view.key = Some(secret.expose().to_owned());
    Ok(Json(json!({ "apiKey": view })))
}

/// `GET /api/v1/workspace/{id}/api-key`: the workspace's keys that are not deleted.
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Path(workspace_id): Path<String>,
) -> ApiResult<Json<Value>> {
    principal.authorize(Action::ReadApiKeys)?;
    let ws = reachable_workspace(&state, &principal, &workspace_id).await?;
    let rows: Vec<ApiKeyRow> = with_db!(&state.db, |pool| {
        sqlx::query_as(concat!(
            "SELECT ",
            key_columns!(),
            " FROM api_keys WHERE workspace_id = $1 AND NOT deleted ORDER BY created_at, id"
        ))
        .bind(&ws.id)
        .fetch_all(pool)
        .await
    })?;
    let keys: Vec<_> = rows.iter().map(ApiKeyRow::view).collect();
    Ok(Json(json!({ "apiKeys": keys })))
}

async fn load_for_read(
    state: &AppState,
    principal: &Principal,
    workspace_id: &str,
    akid: &str,
) -> ApiResult<ApiKeyRow> {
    let ws = reachable_workspace(state, principal, workspace_id).await?;
    if !is_valid_id(akid) {
        return Err(ApiError::not_found("API key"));
    }
    let row = with_db!(&state.db, |pool| {
        let mut conn = pool.acquire().await?;
        conn.load_api_key(&ws.id, akid, false).await
    })?;
    row.ok_or_else(|| ApiError::not_found("API key"))
}

/// `GET /api/v1/workspace/{id}/api-key/{akid}` (deleted keys too, with `deleted: true`).
pub async fn get_one(
    State(state): State<AppState>,
    principal: Principal,
    Path((workspace_id, akid)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    principal.authorize(Action::ReadApiKeys)?;
    let row = load_for_read(&state, &principal, &workspace_id, &akid).await?;
    Ok(Json(json!({ "apiKey": row.view() })))
}

/// `EditApiKeyRequest` (`name`, `enabled`, `scopes`) plus keygate's `expiresAt` (null: never),
/// `totalUsageAllowed` (null: unlimited; a number: that many uses left from now),
/// `customerId` and `rotationGracePeriodMs`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EditApiKey {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    scopes: Option<Vec<ApiKeyScope>>,
    #[serde(default, deserialize_with = "nullable")]
    expires_at: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable", alias = "totalUsageLeft")]
    total_usage_allowed: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    customer_id: Option<Option<String>>,
    #[serde(default)]
    rotation_grace_period_ms: Option<i64>,
}

/// How a change touches the usage allowance. Never a read-modify-write of `usage_left`:
/// verifies decrement it concurrently.
#[derive(Clone, Copy, Debug)]
enum UsageChange {
    /// Leave `limit_usage` and `usage_left` alone.
    Keep,
    /// Set them: `Some(n)` limited to `n` uses left, `None` unlimited.
    Set(Option<i64>),
    /// Add uses to the allowance.
    Add(i64),
}

/// Runs `change` on the key inside one write transaction (row locked) with its audit row;
/// returns the row as stored afterwards. `change` gets the current row and edits a copy.
async fn change_key(
    state: &AppState,
    principal: &Principal,
    client: &ClientInfo,
    workspace_id: &str,
    akid: &str,
    action: &str,
    change: impl FnOnce(&ApiKeyRow) -> ApiResult<(ApiKeyRow, UsageChange, Value)>,
) -> ApiResult<ApiKeyRow> {
    let ws = reachable_workspace(state, principal, workspace_id).await?;
    if !is_valid_id(akid) {
        return Err(ApiError::not_found("API key"));
    }
    with_db!(&state.db, |pool| {
        let mut tx = pool.begin_write().await?;
        let current = tx
            .load_api_key(&ws.id, akid, true)
            .await?
            .ok_or_else(|| ApiError::not_found("API key"))?;
        let (next, usage, detail) = change(&current)?;
        let (op, limit, amount) = match usage {
            UsageChange::Keep => (0_i64, current.limit_usage, None),
            UsageChange::Set(n) => (1, n.is_some(), n),
            UsageChange::Add(n) => (2, current.limit_usage, Some(n)),
        };
        let stored: ApiKeyRow = sqlx::query_as(concat!(
            "UPDATE api_keys SET name = $1, enabled = $2, scopes = $3, expires_at = $4,
                    customer_id = $5, rotation_grace_ms = $6, deleted = $7,
                    deleted_at = CASE WHEN $7 AND deleted_at IS NULL THEN $8 ELSE deleted_at END,
                    limit_usage = CASE WHEN $9 = 1 THEN $10 ELSE limit_usage END,
                    usage_left = CASE WHEN $9 = 1 THEN $11
                                      WHEN $9 = 2 THEN usage_left + $11
                                      ELSE usage_left END,
                    updated_at = $8
              WHERE id = $12 RETURNING ",
            key_columns!()
        ))
        .bind(&next.name)
        .bind(next.enabled)
        .bind(&next.scopes)
        .bind(next.expires_at)
        .bind(&next.customer_id)
        .bind(next.rotation_grace_ms)
        .bind(next.deleted)
        .bind(now_ms())
        .bind(op)
        .bind(limit)
        .bind(amount)
        .bind(&current.id)
        .fetch_one(&mut *tx)
        .await?;
        let entry = AuditEntry::by(principal, action)
            .in_workspace(&ws.id)
            .on(&stored.id)
            .with(detail);
        tx.record_audit(&entry, client).await?;
        tx.commit().await?;
        Ok::<_, ApiError>(stored)
    })
}

/// `PATCH /api/v1/workspace/{id}/api-key/{akid}`.
pub async fn edit(
    State(state): State<AppState>,
    principal: Principal,
    client: ClientInfo,
    Path((workspace_id, akid)): Path<(String, String)>,
    JsonBody(body): JsonBody<EditApiKey>,
) -> ApiResult<Json<Value>> {
    principal.authorize(Action::ManageApiKeys)?;
    // Validate everything that needs no row first, so a bad request changes nothing.
    let name = body.name.as_deref().map(check_name).transpose()?;
    let scopes = match body.scopes {
        Some(s) => {
            let ws = reachable_workspace(&state, &principal, &workspace_id).await?;
            Some(check_scopes(&state, &ws.id, s).await?)
        }
        None => None,
    };
    let expires_at = match body.expires_at {
        Some(Some(t)) => Some(Some(check_expires_at(t)?)),
        other => other,
    };
    let usage = match body.total_usage_allowed {
        Some(Some(n)) => Some(Some(check_usage(n, "totalUsageAllowed")?)),
        other => other,
    };
    let customer_id = match body.customer_id {
        Some(c) => Some(check_customer_id(c)?),
        None => None,
    };
    let grace = body.rotation_grace_period_ms.map(check_grace).transpose()?;
    let row = change_key(
        &state,
        &principal,
        &client,
        &workspace_id,
        &akid,
        "api_key.edit",
        |current| {
            if current.deleted {
                return Err(deleted_conflict());
            }
            let mut next = current.clone();
            let mut usage_change = UsageChange::Keep;
            let mut changed = Vec::new();
            if let Some(n) = name {
                next.name = n;
                changed.push("name");
            }
            if let Some(e) = body.enabled {
                next.enabled = e;
                changed.push("enabled");
            }
            if let Some(s) = scopes {
                next.scopes = s;
                changed.push("scopes");
            }
            if let Some(e) = expires_at {
                next.expires_at = e;
                changed.push("expiresAt");
            }
            if let Some(u) = usage {
                usage_change = UsageChange::Set(u);
                changed.push("totalUsageAllowed");
            }
            if let Some(c) = customer_id {
                next.customer_id = c;
                changed.push("customerId");
            }
            if let Some(g) = grace {
                next.rotation_grace_ms = g;
                changed.push("rotationGracePeriodMs");
            }
            Ok((next, usage_change, json!({ "changed": changed })))
        },
    )
    .await?;
    Ok(Json(json!({ "apiKey": row.view() })))
}

/// `DELETE /api/v1/workspace/{id}/api-key/{akid}`: for good; the next verify says `DELETED`.
/// Deleting a deleted key answers the same again.
pub async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    client: ClientInfo,
    Path((workspace_id, akid)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    principal.authorize(Action::ManageApiKeys)?;
    let row = change_key(
        &state,
        &principal,
        &client,
        &workspace_id,
        &akid,
        "api_key.delete",
        |current| {
            let mut next = current.clone();
            next.deleted = true;
            Ok((
                next,
                UsageChange::Keep,
                json!({ "alreadyDeleted": current.deleted }),
            ))
        },
    )
    .await?;
    Ok(Json(json!({ "apiKey": row.view() })))
}

/// keygate's extension to rotate: how long the old value keeps verifying. Given in the body
/// (`{"gracePeriodMs": 60000}`) or the query (`?gracePeriodMs=60000`); without either, the
/// key's `rotationGracePeriodMs` (default 0: the old value stops at once).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RotateOptions {
    #[serde(default)]
    grace_period_ms: Option<i64>,
}

fn parse_optional_body<T: for<'de> Deserialize<'de> + Default>(body: &Bytes) -> ApiResult<T> {
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

/// `POST /api/v1/workspace/{id}/api-key/{akid}/rotate`: a new value (in the answer only); the
/// old one verifies until the grace period ends, then is `INVALID`.
pub async fn rotate(
    State(state): State<AppState>,
    principal: Principal,
    client: ClientInfo,
    Path((workspace_id, akid)): Path<(String, String)>,
    query: Result<Query<RotateOptions>, QueryRejection>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    principal.authorize(Action::ManageApiKeys)?;
    let Query(from_query) = query.map_err(|_| {
        ApiError::bad_request(
            "INVALID_QUERY",
            "the only query parameter is gracePeriodMs, a number of milliseconds",
        )
    })?;
    let from_body: RotateOptions = parse_optional_body(&body)?;
    let grace = from_body
        .grace_period_ms
        .or(from_query.grace_period_ms)
        .map(check_grace)
        .transpose()?;
    let ws = reachable_workspace(&state, &principal, &workspace_id).await?;
    if !is_valid_id(&akid) {
        return Err(ApiError::not_found("API key"));
    }
    let (row, secret) = with_db!(&state.db, |pool| {
        let mut tx = pool.begin_write().await?;
        let mut row = tx
            .load_api_key(&ws.id, &akid, true)
            .await?
            .ok_or_else(|| ApiError::not_found("API key"))?;
        if row.deleted {
            return Err(deleted_conflict());
        }
        let prefix = ApiKeyPrefix::new(&row.prefix).map_err(ApiError::internal)?;
        let secret = SecretKey::generate_api_key(&prefix);
        let now = now_ms();
        let grace = grace.unwrap_or(row.rotation_grace_ms);
        sqlx::query(
            "UPDATE api_key_values SET retired_at = $1, retired_until = $2
              WHERE api_key_id = $3 AND retired_at IS NULL",
        )
        .bind(now)
        .bind(now.saturating_add(grace))
        .bind(&row.id)
        .execute(&mut *tx)
        .await?;
        // Values past their grace period can never verify again: forget them.
        sqlx::query("DELETE FROM api_key_values WHERE api_key_id = $1 AND retired_until <= $2")
            .bind(&row.id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO api_key_values (key_digest, api_key_id, created_at) VALUES ($1, $2, $3)",
        )
        .bind(secret.digest().to_hex())
        .bind(&row.id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE api_keys SET key_last4 = $1, updated_at = $2 WHERE id = $3")
            .bind(secret.last4())
            .bind(now)
            .bind(&row.id)
            .execute(&mut *tx)
            .await?;
        row.key_last4 = secret.last4().to_owned();
        row.updated_at = now;
        let entry = AuditEntry::by(&principal, "api_key.rotate")
            .in_workspace(&ws.id)
            .on(&row.id)
            .with(json!({ "key": secret.mask(), "gracePeriodMs": grace }));
        tx.record_audit(&entry, &client).await?;
        tx.commit().await?;
        Ok::<_, ApiError>((row, secret))
    })?;
    let mut view = row.view();
    view.key = Some(secret.expose().to_owned());
    Ok(Json(json!({ "apiKey": view })))
}

/// `RefillApiKeyRequest`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefillApiKey {
    amount: i64,
}

/// `POST /api/v1/workspace/{id}/api-key/{akid}/refill`: adds `amount` uses to a
/// usage-limited key's allowance.
pub async fn refill(
    State(state): State<AppState>,
    principal: Principal,
    client: ClientInfo,
    Path((workspace_id, akid)): Path<(String, String)>,
    JsonBody(body): JsonBody<RefillApiKey>,
) -> ApiResult<Json<Value>> {
    principal.authorize(Action::ManageApiKeys)?;
    if !(1..=MAX_USAGE).contains(&body.amount) {
        return Err(ApiError::bad_request(
            "INVALID_AMOUNT",
            format!("amount is a whole number from 1 to {MAX_USAGE}"),
        ));
    }
    let row = change_key(
        &state,
        &principal,
        &client,
        &workspace_id,
        &akid,
        "api_key.refill",
        |current| {
            if current.deleted {
                return Err(deleted_conflict());
            }
            if !current.limit_usage {
                return Err(ApiError::bad_request(
                    "NOT_USAGE_LIMITED",
                    "this key has no usage limit to refill; set one with PATCH totalUsageAllowed",
                ));
            }
            if current.usage_left.unwrap_or(0) > MAX_USAGE - body.amount {
                return Err(ApiError::bad_request(
                    "INVALID_AMOUNT",
                    format!("a key holds at most {MAX_USAGE} uses"),
                ));
            }
            Ok((
                current.clone(),
                UsageChange::Add(body.amount),
                json!({ "amount": body.amount }),
            ))
        },
    )
    .await?;
    Ok(Json(json!({ "apiKey": row.view() })))
}
