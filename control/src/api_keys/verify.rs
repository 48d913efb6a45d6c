//! `POST /api/v1/api-key/verify`: the hot path.
//!
//! Every status comes from [`keygate_shared::api_key::decide`]; this module only loads what
//! it needs and applies the two counters that must be exact across replicas:
//!
//! - a usage-limited key is consumed by one atomic statement,
//!   `UPDATE ... SET usage_left = usage_left - 1 WHERE id = $1 AND usage_left > 0
//!   RETURNING usage_left`, so N concurrent verifies of a key with N uses give exactly N
//!   `VALID`, on SQLite and PostgreSQL alike;
//! - a `rateLimitConfig {id, limit}` is counted in a per-second window row
//!   (`INSERT ... ON CONFLICT DO UPDATE SET count = count + 1 RETURNING count`).
//!
//! **No cache.** Revocation, deletion, disabling and rotation must hold on the very next
//! verify on every replica, so each verify reads the database once anyway; with the SDK key
//! (caller) and the API key resolved by that one indexed read there is nothing left for a
//! cache to save. A cache re-validated per call would cost the same read. Unlimited keys do
//! no write on the hot path: their statistics go through [`super::usage`].
//!
//! The answer is always 200 with the status in the body (Oneloop's client treats any 4xx as
//! an exception and retries 429s); only a bad caller (no or unknown SDK key, missing scope,
//! malformed body) gets an error.

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::header;
use axum::{Extension, Json};
use keygate_shared::api_key::{decide, ApiKeyState, RateWindow};
use keygate_shared::key::{self, KeyKind};
use keygate_shared::scope::{Access, ApiKeyScope, Permission, Resource, SdkScopes};
use keygate_shared::verdict::Status;
use serde::{Deserialize, Serialize};

use super::usage::UsageRecorder;
use super::MAX_SCOPES;
use crate::auth::CurrentUser;
use crate::error::{ApiError, ApiResult};
use crate::http::{AppState, JsonBody};
use crate::ids::now_ms;
use crate::with_db;

/// `last_used_at` of the calling SDK key is written at most this often.
const SDK_LAST_USED_GRANULARITY_MS: i64 = 60 * 1000;
/// Longest `rateLimitConfig.id`.
const MAX_LIMIT_ID_LEN: usize = 128;

/// `VerifyApiKeyRequest`. `route` and `billing` are accepted and ignored.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VerifyRequest {
    key: String,
    #[serde(default)]
    requested_scopes: Vec<ApiKeyScope>,
    #[serde(default)]
    rate_limit_config: Option<RateLimitConfig>,
    #[serde(default, rename = "route")]
    _route: Option<serde_json::Value>,
    #[serde(default, rename = "billing")]
    _billing: Option<serde_json::Value>,
}

/// `VerifyApiKeyRequestRateLimitConfig`: at most `limit` valid verifies per second for this
/// key under the name `id`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    id: String,
    limit: i64,
}

/// `VerifyApiKeyResponse`, plus `apiKeyId`, `customerId`, `scopes` (as Oneloop's API
/// answers) and keygate's `totalUsageLeft`. Nothing about the key is shown unless the key
/// was found in the caller's reach.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    api_key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<i64>,
    requested_scopes: Vec<ApiKeyScope>,
    status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    rate_limit: Option<RateLimitState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    customer_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scopes: Option<Vec<ApiKeyScope>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    total_usage_left: Option<i64>,
}

/// `VerifyApiKeyResponseRateLimit`: calls left in this window and when it ends (Unix ms).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitState {
    remaining: i64,
    reset_at: i64,
}

/// What verify reads about the API key (all NULL when no value has that digest in the
/// caller's organisation).
#[derive(Debug, sqlx::FromRow)]
struct KeyColumns {
    k_id: Option<String>,
    k_workspace_id: Option<String>,
    k_customer_id: Option<String>,
    k_scopes: Option<String>,
    k_enabled: Option<bool>,
    k_deleted: Option<bool>,
    k_expires_at: Option<i64>,
    k_limit_usage: Option<bool>,
    k_usage_left: Option<i64>,
    v_retired_until: Option<i64>,
}

/// The caller (SDK key) and the API key in one row.
#[derive(Debug, sqlx::FromRow)]
struct CallerAndKey {
    s_id: String,
    s_workspace_id: Option<String>,
    s_scopes: String,
    s_last_used_at: Option<i64>,
    #[sqlx(flatten)]
    key: KeyColumns,
}

/// One read: the SDK key by its digest ($1) and, in the same organisation, the API key
/// value by its digest ($2).
const CALLER_AND_KEY: &str = "
SELECT s.id AS s_id, s.workspace_id AS s_workspace_id,
       s.scopes AS s_scopes, s.last_used_at AS s_last_used_at,
       k.id AS k_id, k.workspace_id AS k_workspace_id, k.customer_id AS k_customer_id,
       k.scopes AS k_scopes, k.enabled AS k_enabled, k.deleted AS k_deleted,
       k.expires_at AS k_expires_at, k.limit_usage AS k_limit_usage,
       k.usage_left AS k_usage_left, v.retired_until AS v_retired_until
  FROM sdk_keys s
  LEFT JOIN api_key_values v ON v.key_digest = $2
  LEFT JOIN api_keys k ON k.id = v.api_key_id AND k.org_id = s.org_id
 WHERE s.key_digest = $1 AND s.revoked_at IS NULL";

/// The API key value by digest ($1) within an organisation ($2), for session callers.
const KEY_IN_ORG: &str = "
SELECT k.id AS k_id, k.workspace_id AS k_workspace_id, k.customer_id AS k_customer_id,
       k.scopes AS k_scopes, k.enabled AS k_enabled, k.deleted AS k_deleted,
       k.expires_at AS k_expires_at, k.limit_usage AS k_limit_usage,
       k.usage_left AS k_usage_left, v.retired_until AS v_retired_until
  FROM api_key_values v JOIN api_keys k ON k.id = v.api_key_id
 WHERE v.key_digest = $1 AND k.org_id = $2";

fn bad_sdk_key(message: impl Into<String>) -> ApiError {
    ApiError::unauthorized("INVALID_SDK_KEY", message)
}

/// The key's state, or `None` if it is not in the caller's reach (unknown, another
/// organisation, or another workspace than the caller's bound one).
fn reachable(key: KeyColumns, bound_workspace: Option<&str>) -> Option<FoundKey> {
    let id = key.k_id?;
    let workspace_id = key.k_workspace_id?;
    if bound_workspace.is_some_and(|w| w != workspace_id) {
        return None;
    }
    Some(FoundKey {
        id,
        customer_id: key.k_customer_id,
        // An unreadable column grants nothing: fail closed.
        scopes: serde_json::from_str(key.k_scopes.as_deref().unwrap_or("[]")).unwrap_or_default(),
        enabled: key.k_enabled.unwrap_or(false),
        deleted: key.k_deleted.unwrap_or(true),
        expires_at: key.k_expires_at,
        limit_usage: key.k_limit_usage.unwrap_or(true),
        usage_left: key.k_usage_left,
        retired_until: key.v_retired_until,
    })
}

struct FoundKey {
    id: String,
    customer_id: Option<String>,
    scopes: Vec<ApiKeyScope>,
    enabled: bool,
    deleted: bool,
    expires_at: Option<i64>,
    limit_usage: bool,
    usage_left: Option<i64>,
    retired_until: Option<i64>,
}

/// `POST /api/v1/api-key/verify` (`api_keys` read or write).
pub async fn verify(
    State(state): State<AppState>,
    Extension(usage): Extension<Arc<UsageRecorder>>,
    request: Request,
) -> ApiResult<Json<VerifyResponse>> {
    let (mut parts, body) = request.into_parts();
    let sdk_token = match parts.headers.get(header::AUTHORIZATION) {
        Some(v) => {
            let value = v
                .to_str()
                .map_err(|_| bad_sdk_key("the Authorization header is not text"))?;
            let token = value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
                .ok_or_else(|| bad_sdk_key("use `Authorization: Bearer <SDK key>`"))?
                .trim()
                .to_owned();
            let parsed = key::parse_as(&token, KeyKind::Sdk)
                .map_err(|e| bad_sdk_key(format!("not a usable SDK key: {e}")))?;
            Some(parsed.digest().to_hex())
        }
        None => None,
    };
    // A session (no Authorization header) is checked before the body is read, as usual.
    let user = match sdk_token {
        Some(_) => None,
        None => Some(
            CurrentUser::from_request_parts(&mut parts, &state)
                .await
                .map_err(|e| {
                    if e.reason == "NOT_SIGNED_IN" {
                        ApiError::unauthorized(
                            "MISSING_CREDENTIALS",
                            "send `Authorization: Bearer <SDK key>` or sign in",
                        )
                    } else {
                        e
                    }
                })?,
        ),
    };
    let JsonBody(req) =
        JsonBody::<VerifyRequest>::from_request(Request::from_parts(parts, body), &state).await?;
    if req.requested_scopes.len() > MAX_SCOPES {
        return Err(ApiError::bad_request(
            "TOO_MANY_SCOPES",
            format!("ask for at most {MAX_SCOPES} scopes"),
        ));
    }
    if let Some(rl) = &req.rate_limit_config {
        if rl.id.is_empty() || rl.id.len() > MAX_LIMIT_ID_LEN || rl.limit < 0 {
            return Err(ApiError::bad_request(
                "INVALID_RATE_LIMIT",
                format!(
                    "rateLimitConfig is {{id: 1 to {MAX_LIMIT_ID_LEN} characters, limit: a whole number >= 0}}"
                ),
            ));
        }
    }
    // A malformed key (bad shape or checksum) is INVALID without a lookup of its own; the
    // caller is still authenticated by the same single read.
    let key_digest = key::parse_as(&req.key, KeyKind::ApiKey)
        .ok()
        .map(|p| p.digest().to_hex())
        .unwrap_or_default();
    let now = now_ms();

    let found = match (sdk_token, user) {
        (Some(sdk_digest), _) => {
            let row: Option<CallerAndKey> = with_db!(&state.db, |pool| {
                sqlx::query_as(CALLER_AND_KEY)
                    .bind(&sdk_digest)
                    .bind(&key_digest)
                    .fetch_optional(pool)
                    .await
            })?;
            let row = row.ok_or_else(|| bad_sdk_key("this SDK key is unknown or revoked"))?;
            let scopes = SdkScopes::parse(&row.s_scopes).map_err(ApiError::internal)?;
            if !scopes.allows(Permission::new(Resource::ApiKeys, Access::Read))
                && !scopes.allows(Permission::new(Resource::ApiKeys, Access::Write))
            {
                return Err(ApiError::forbidden(
                    "MISSING_SCOPE",
                    "this SDK key lacks the `api_keys:read` scope",
                ));
            }
            if row
                .s_last_used_at
                .is_none_or(|t| now - t > SDK_LAST_USED_GRANULARITY_MS)
            {
                with_db!(&state.db, |pool| {
                    sqlx::query("UPDATE sdk_keys SET last_used_at = $1 WHERE id = $2")
                        .bind(now)
                        .bind(&row.s_id)
                        .execute(pool)
                        .await
                        .map(|_| ())
                })?;
            }
            reachable(row.key, row.s_workspace_id.as_deref())
        }
        (None, Some(user)) => {
            let row: Option<KeyColumns> = if key_digest.is_empty() {
                None
            } else {
                with_db!(&state.db, |pool| {
                    sqlx::query_as(KEY_IN_ORG)
                        .bind(&key_digest)
                        .bind(&user.org_id)
                        .fetch_optional(pool)
                        .await
                })?
            };
            row.and_then(|k| reachable(k, None))
        }
        (None, None) => unreachable!("a caller is either an SDK key or a session"),
    };

    let Some(key) = found else {
        return Ok(Json(VerifyResponse {
            api_key_id: None,
            expires_at: None,
            requested_scopes: req.requested_scopes,
            status: Status::Invalid,
            rate_limit: None,
            customer_id: None,
            scopes: None,
            total_usage_left: None,
        }));
    };

    let mut status = decide(
        &ApiKeyState {
            deleted: key.deleted,
            enabled: key.enabled,
            expires_at: key.expires_at,
            retired_until: key.retired_until,
            limit_usage: key.limit_usage,
            usage_left: key.usage_left,
            scopes: &key.scopes,
        },
        now,
        &req.requested_scopes,
    );

    let mut rate_limit = None;
    if status == Status::Valid {
        if let Some(rl) = &req.rate_limit_config {
            let window = RateWindow::default();
            let start = window.start(now);
            let count = count_in_window(&state, &key.id, &rl.id, start).await?;
            let (allowed, remaining) = window.admit(count, rl.limit);
            rate_limit = Some(RateLimitState {
                remaining,
                reset_at: window.reset_at(now),
            });
            if !allowed {
                status = Status::RateLimited;
            }
        }
    }

    let mut usage_left = if key.limit_usage {
        key.usage_left
    } else {
        None
    };
    if status == Status::Valid {
        if key.limit_usage {
            let left: Option<i64> = with_db!(&state.db, |pool| {
                sqlx::query_scalar(
                    "UPDATE api_keys SET usage_left = usage_left - 1,
                            usage_count = usage_count + 1,
                            last_used_at = CASE WHEN last_used_at IS NULL OR last_used_at < $2
                                                THEN $2 ELSE last_used_at END
                      WHERE id = $1 AND usage_left > 0
                  RETURNING usage_left",
                )
                .bind(&key.id)
                .bind(now)
                .fetch_optional(pool)
                .await
            })?;
            match left {
                Some(n) => usage_left = Some(n),
                None => {
                    // Another verify took the last use since the read.
                    status = Status::UsageLimited;
                    usage_left = Some(0);
                }
            }
        } else {
            usage.record(&state.db, &key.id, now);
        }
    }

    Ok(Json(VerifyResponse {
        api_key_id: Some(key.id),
        expires_at: key.expires_at,
        requested_scopes: req.requested_scopes,
        status,
        rate_limit,
        customer_id: key.customer_id,
        scopes: Some(key.scopes),
        total_usage_left: usage_left,
    }))
}

/// Counts this call in the key's window for `limit_id` and returns the count including it.
/// The first call of a window also drops the key's older windows for that id.
async fn count_in_window(
    state: &AppState,
    api_key_id: &str,
    limit_id: &str,
    window_start: i64,
) -> ApiResult<i64> {
    let count: i64 = with_db!(&state.db, |pool| {
        sqlx::query_scalar(
            "INSERT INTO api_key_rate_windows (api_key_id, limit_id, window_start, count)
             VALUES ($1, $2, $3, 1)
             ON CONFLICT (api_key_id, limit_id, window_start)
             DO UPDATE SET count = api_key_rate_windows.count + 1
             RETURNING count",
        )
        .bind(api_key_id)
        .bind(limit_id)
        .bind(window_start)
        .fetch_one(pool)
        .await
    })?;
    if count == 1 {
        with_db!(&state.db, |pool| {
            sqlx::query(
                "DELETE FROM api_key_rate_windows
                  WHERE api_key_id = $1 AND limit_id = $2 AND window_start < $3",
            )
            .bind(api_key_id)
            .bind(limit_id)
            .bind(window_start)
            .execute(pool)
            .await
            .map(|_| ())
        })?;
    }
    Ok(count)
}
