//! The customer self-serve portal: what `/api/v1/portal/*` (a customer holding a link token)
//! and `/api/v1/workspace/{id}/portal-policy` (the workspace's admins) take and return.

use keygate_shared::scope::ApiKeyScope;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::api_keys::{ApiKey, ApiKeyScopeSchema};

/// What a workspace lets its customers create through the portal.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortalPolicyBody {
    /// Scopes (with their rights) a customer's key may grant; each must be a scope the
    /// workspace defines. At most 100.
    #[schema(value_type = Vec<ApiKeyScopeSchema>)]
    pub allowed_scopes: Vec<ApiKeyScope>,
    /// Longest lifetime of a customer's key, in milliseconds (1 ms to 10 years); `null`:
    /// keys may never expire.
    pub max_expiry_ms: Option<i64>,
    /// Largest usage allowance of a customer's key (0 to 10^12); `null`: keys may be
    /// unlimited.
    pub max_usage: Option<i64>,
    /// Live keys one customer may hold in the workspace, 0 to 100 (0: none may be created).
    pub max_live_keys: u32,
}

/// `GET`/`PUT /api/v1/workspace/{id}/portal-policy`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PortalPolicyResponse {
    /// The workspace.
    pub workspace_id: String,
    /// Whether the workspace's admins set it (`false`: the default policy applies).
    pub customised: bool,
    /// The policy in force.
    pub policy: PortalPolicyBody,
}

/// `GET /api/v1/portal/session`: who the link token speaks for, and what it may do.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PortalSession {
    /// The workspace the token is bound to.
    pub workspace_id: String,
    /// The workspace's name, for the page's title.
    pub workspace_name: String,
    /// The customer the token is bound to.
    pub customer_id: String,
    /// When the token expires, Unix milliseconds.
    pub expires_at: i64,
    /// What the customer may create.
    pub policy: PortalPolicyBody,
}

/// `POST /api/v1/portal/api-key`: a key for the token's customer in the token's workspace.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortalCreateKey {
    /// 1 to 200 characters (trimmed).
    pub name: String,
    /// What it grants: within the policy's allowed scopes.
    #[serde(default)]
    #[schema(value_type = Vec<ApiKeyScopeSchema>)]
    pub scopes: Vec<ApiKeyScope>,
    /// Expiry, Unix milliseconds, no later than the policy allows; absent: the latest the
    /// policy allows.
    #[serde(default)]
    pub expires_at: Option<i64>,
    /// Usage allowance, at most the policy's; absent: the policy's maximum (or unlimited).
    #[serde(default)]
    pub total_usage_allowed: Option<i64>,
}

/// `POST /api/v1/portal/api-key/{akid}/rotate`. The body may be empty.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortalRotateKey {
    /// How long the old value keeps verifying, 0 to 7 days in milliseconds (default 0).
    #[serde(default)]
    pub grace_period_ms: Option<i64>,
}

/// `GET /api/v1/portal/api-key`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PortalKeyList {
    /// The customer's keys that are not deleted, oldest first, masked.
    pub api_keys: Vec<ApiKey>,
}

impl From<keygate_shared::portal::PortalPolicy> for PortalPolicyBody {
    fn from(p: keygate_shared::portal::PortalPolicy) -> Self {
        PortalPolicyBody {
            allowed_scopes: p.allowed_scopes,
            max_expiry_ms: p.max_expiry_ms,
            max_usage: p.max_usage,
            max_live_keys: p.max_live_keys,
        }
    }
}

impl From<PortalPolicyBody> for keygate_shared::portal::PortalPolicy {
    fn from(p: PortalPolicyBody) -> Self {
        keygate_shared::portal::PortalPolicy {
            allowed_scopes: p.allowed_scopes,
            max_expiry_ms: p.max_expiry_ms,
            max_usage: p.max_usage,
            max_live_keys: p.max_live_keys,
        }
    }
}
