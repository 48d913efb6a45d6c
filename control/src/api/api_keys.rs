//! Customer API keys in Oneloop's shapes (`@oneloop-hq/oneloop-ts` 1.0.9 reads them), plus
//! keygate's extensions. Field names and omissions are part of that contract: an `Option`
//! marked `skip_serializing_if` is left out of the JSON when it is `None`.

use keygate_shared::scope::ApiKeyScope;
use keygate_shared::verdict::Status;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{present, Timestamp};

/// One grant of an API key on a workspace scope (Oneloop's `ApiKeyScope`; documentation
/// only: the wire type is `keygate_shared::scope::ApiKeyScope`).
#[derive(ToSchema)]
#[schema(as = ApiKeyScope)]
#[allow(dead_code)]
pub struct ApiKeyScopeSchema {
    /// The workspace scope's representation (`orders`, `billing.refunds`).
    representation: String,
    /// May create.
    #[schema(default = false)]
    create: bool,
    /// May read.
    #[schema(default = false)]
    read: bool,
    /// May update.
    #[schema(default = false)]
    update: bool,
    /// May delete.
    #[schema(default = false)]
    del: bool,
}

/// `POST /api/v1/api-key/verify` (Oneloop's `VerifyApiKeyRequest`). `route` is accepted and
/// ignored; `billing` adds usage to a billing id when the answer is VALID.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VerifyApiKeyRequest {
    /// The customer's API key value.
    pub key: String,
    /// Scopes the call needs; `INVALID_SCOPES` unless the key grants all of them. At most 100.
    #[serde(default)]
    #[schema(value_type = Vec<ApiKeyScopeSchema>)]
    pub requested_scopes: Vec<ApiKeyScope>,
    /// Count this call against a per-second limit.
    pub rate_limit_config: Option<RateLimitConfig>,
    /// Accepted and ignored (Oneloop's route metadata).
    pub route: Option<serde_json::Value>,
    /// Add `usage` to a billing id (per UTC day) when the answer is VALID.
    pub billing: Option<super::billing_usage::VerifyBilling>,
}

/// Oneloop's `VerifyApiKeyRequestRateLimitConfig`: at most `limit` valid verifies per second
/// for this key under the name `id`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// The limit's name, 1 to 128 characters.
    pub id: String,
    /// Valid verifies allowed per second, 0 or more.
    pub limit: i64,
}

/// Oneloop's `VerifyApiKeyResponse`, plus `apiKeyId`, `customerId`, `scopes` (as Oneloop's
/// API answers) and keygate's `totalUsageLeft`. Nothing about the key is shown unless the
/// key was found in the caller's reach.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerifyApiKeyResponse {
    /// The key's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key_id: Option<String>,
    /// When the key expires, Unix milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    /// The scopes asked for, echoed.
    #[schema(value_type = Vec<ApiKeyScopeSchema>)]
    pub requested_scopes: Vec<ApiKeyScope>,
    /// `VALID`, `EXPIRED`, `DISABLED`, `DELETED`, `RATE_LIMITED`, `USAGE_LIMITED`,
    /// `INVALID_SCOPES` or `INVALID`.
    #[schema(value_type = String, example = "VALID")]
    pub status: Status,
    /// The rate window, when `rateLimitConfig` was sent and the key was otherwise valid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitState>,
    /// The platform's customer the key belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    /// What the key grants.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<ApiKeyScopeSchema>>)]
    pub scopes: Option<Vec<ApiKeyScope>>,
    /// Uses left, for a usage-limited key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_usage_left: Option<i64>,
}

impl VerifyApiKeyResponse {
    /// The answer for a key that is not in the caller's reach: `INVALID`, nothing else.
    pub fn invalid(requested_scopes: Vec<ApiKeyScope>) -> Self {
        VerifyApiKeyResponse {
            api_key_id: None,
            expires_at: None,
            requested_scopes,
            status: Status::Invalid,
            rate_limit: None,
            customer_id: None,
            scopes: None,
            total_usage_left: None,
        }
    }
}

/// Oneloop's `VerifyApiKeyResponseRateLimit`: calls left in this window and when it ends.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitState {
    /// Valid calls left in the window.
    pub remaining: i64,
    /// When the window ends, Unix milliseconds.
    pub reset_at: i64,
}

/// Oneloop's `ApiKey` (and `CreateApiKeyResponseApiKey`/`RotateApiKeyResponseApiKey` when
/// `key` is set), plus `workspaceId`, `usageCount` and `rotationGracePeriodMs`.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKey {
    /// Its id.
    pub id: String,
    /// A name for people.
    pub name: String,
    /// `prefix_…abcd`.
    pub masked_key: String,
    /// The prefix of its values.
    pub prefix: String,
    /// When it expires, Unix milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    /// Uses left, for a usage-limited key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_usage_left: Option<i64>,
    /// Whether uses are counted against an allowance.
    pub limit_usage: bool,
    /// What it grants.
    #[schema(value_type = Vec<ApiKeyScopeSchema>)]
    pub scopes: Vec<ApiKeyScope>,
    /// Switched on.
    pub enabled: bool,
    /// The platform's customer it belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    /// Deleted for good.
    pub deleted: bool,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
    /// Its last valid verification (unlimited keys: up to about a second behind).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<Timestamp>,
    /// Its workspace.
    pub workspace_id: String,
    /// Valid verifications so far.
    pub usage_count: i64,
    /// How long an old value keeps verifying after a rotation, by default, in milliseconds.
    pub rotation_grace_period_ms: i64,
    /// The full value: only in the answer to create and rotate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// One key: the answer to create, get, edit, delete, rotate and refill.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyResponse {
    /// The key as stored after the call.
    pub api_key: ApiKey,
}

/// `GET /api/v1/workspace/{id}/api-key`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyList {
    /// The workspace's keys that are not deleted, oldest first.
    pub api_keys: Vec<ApiKey>,
}

/// `POST /api/v1/api-key` (Oneloop's `CreateApiKeyRequest`, plus keygate's
/// `rotationGracePeriodMs`). `metadata` and `externalMeterId` are accepted and ignored.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateApiKey {
    /// 1 to 200 characters (trimmed).
    pub name: String,
    /// The workspace it belongs to.
    pub workspace_id: String,
    /// The prefix of its values; default: the workspace's, else `key`.
    pub prefix: Option<String>,
    /// Expiry, Unix milliseconds; default: the workspace's default lifetime, if any.
    pub expires_at: Option<i64>,
    /// A usage allowance (0 to 10^12); absent: unlimited.
    pub total_usage_allowed: Option<i64>,
    /// What it grants: scopes the workspace defines. At most 100.
    #[serde(default)]
    #[schema(value_type = Vec<ApiKeyScopeSchema>)]
    pub scopes: Vec<ApiKeyScope>,
    /// Default `true`.
    pub enabled: Option<bool>,
    /// The platform's customer, at most 256 characters.
    pub customer_id: Option<String>,
    /// Default grace period of its rotations, 0 to 30 days in milliseconds.
    pub rotation_grace_period_ms: Option<i64>,
    /// Accepted and ignored.
    pub metadata: Option<serde_json::Value>,
    /// Accepted and ignored.
    pub external_meter_id: Option<serde_json::Value>,
}

/// `PATCH /api/v1/workspace/{id}/api-key/{akid}` (Oneloop's `EditApiKeyRequest`: `name`,
/// `enabled`, `scopes`; plus keygate's fields). An absent field is left as is.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EditApiKey {
    /// 1 to 200 characters (trimmed).
    pub name: Option<String>,
    /// Switch it on or off.
    pub enabled: Option<bool>,
    /// Replace what it grants.
    #[schema(value_type = Option<Vec<ApiKeyScopeSchema>>)]
    pub scopes: Option<Vec<ApiKeyScope>>,
    /// Expiry, Unix milliseconds; `null`: never.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>)]
    pub expires_at: Option<Option<i64>>,
    /// Uses left from now; `null`: unlimited. Also accepted as `totalUsageLeft`.
    #[serde(default, deserialize_with = "present", alias = "totalUsageLeft")]
    #[schema(value_type = Option<i64>)]
    pub total_usage_allowed: Option<Option<i64>>,
    /// The platform's customer; `null` or empty: none.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub customer_id: Option<Option<String>>,
    /// Default grace period of its rotations, in milliseconds.
    pub rotation_grace_period_ms: Option<i64>,
}

/// keygate's extension to rotate: how long the old value keeps verifying. Given in the body
/// or as `?gracePeriodMs=`; without either, the key's `rotationGracePeriodMs` (default 0: the
/// old value stops at once). The body may be empty.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RotateApiKey {
    /// 0 to 30 days, in milliseconds.
    pub grace_period_ms: Option<i64>,
}

/// `POST /api/v1/workspace/{id}/api-key/{akid}/refill` (Oneloop's `RefillApiKeyRequest`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefillApiKey {
    /// Uses to add, 1 to 10^12.
    pub amount: i64,
}
