//! Customer API keys: the keys a platform (through its SDK key) gives its own customers, in
//! the shape of Oneloop's API so that `@oneloop-hq/oneloop-ts` 1.0.9 works unchanged.
//!
//! - [`manage`]: create (the value is shown once; only SHA-256 digests are stored), list, get,
//!   edit, delete, rotate (with keygate's optional grace period for the old value), refill;
//! - [`verify`]: `POST /api/v1/api-key/verify`, the hot path, every status decided by
//!   [`keygate_shared::api_key::decide`];
//! - [`usage`]: the batched writer of `usage_count`/`last_used_at` for unlimited keys.
//!
//! Every call needs the `api_keys` scope (read for GET, write otherwise; verify takes
//! either) and reaches only the caller's organisation, and only its own workspace for a
//! workspace-bound SDK key; anything else is a 404 (or `INVALID` for verify).

pub mod manage;
pub mod usage;
pub mod verify;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::{Extension, Router};
use keygate_shared::scope::ApiKeyScope;
use serde::Serialize;

use crate::http::AppState;
use crate::ids::rfc3339;

/// Longest key name accepted.
pub const MAX_NAME_LEN: usize = 200;
/// Longest customer id accepted.
pub const MAX_CUSTOMER_ID_LEN: usize = 256;
/// Most scopes one key may grant (and one verify may ask for).
pub const MAX_SCOPES: usize = 100;
/// Longest rotation grace period: 30 days.
pub const MAX_GRACE_MS: i64 = 30 * 24 * 60 * 60 * 1000;
/// Largest usage allowance or refill.
pub const MAX_USAGE: i64 = 1_000_000_000_000;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api-key", post(manage::create))
        .route("/api-key/verify", post(verify::verify))
        .route("/workspace/{id}/api-key", get(manage::list))
        .route(
            "/workspace/{id}/api-key/{akid}",
            get(manage::get_one)
                .patch(manage::edit)
                .delete(manage::delete),
        )
        .route(
            "/workspace/{id}/api-key/{akid}/rotate",
            post(manage::rotate),
        )
        .route(
            "/workspace/{id}/api-key/{akid}/refill",
            post(manage::refill),
        )
        .layer(Extension(Arc::new(usage::UsageRecorder::default())))
}

/// The columns of [`ApiKeyRow`], in order.
macro_rules! key_columns {
    () => {
        "id, org_id, workspace_id, name, prefix, key_last4, customer_id, scopes, enabled, \
         deleted, expires_at, limit_usage, usage_left, usage_count, rotation_grace_ms, \
         last_used_at, created_at, updated_at"
    };
}
pub(crate) use key_columns;

/// One `api_keys` row.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ApiKeyRow {
    /// Id.
    pub id: String,
    /// Organisation (tenant boundary).
    pub org_id: String,
    /// Workspace.
    pub workspace_id: String,
    /// Name.
    pub name: String,
    /// Prefix of its values.
    pub prefix: String,
    /// Last four symbols of the current value.
    pub key_last4: String,
    /// The platform's customer this key belongs to.
    pub customer_id: Option<String>,
    /// JSON array of [`ApiKeyScope`].
    pub scopes: String,
    /// Switched on.
    pub enabled: bool,
    /// Deleted for good.
    pub deleted: bool,
    /// Expiry, Unix ms.
    pub expires_at: Option<i64>,
    /// Whether uses are counted against `usage_left`.
    pub limit_usage: bool,
    /// Uses left, when limited.
    pub usage_left: Option<i64>,
    /// Valid verifications so far (unlimited keys: up to ~1 s behind).
    pub usage_count: i64,
    /// Default grace period of a rotation, ms.
    pub rotation_grace_ms: i64,
    /// Last valid verification, Unix ms.
    pub last_used_at: Option<i64>,
    /// Created, Unix ms.
    pub created_at: i64,
    /// Last changed, Unix ms.
    pub updated_at: i64,
}

impl ApiKeyRow {
    /// The stored scopes (an unreadable column reads as no scope at all: fail closed).
    pub fn parsed_scopes(&self) -> Vec<ApiKeyScope> {
        serde_json::from_str(&self.scopes).unwrap_or_default()
    }

    /// The JSON the client reads (Oneloop's `ApiKey`, plus keygate's extensions).
    pub fn view(&self) -> ApiKeyView {
        ApiKeyView {
            id: self.id.clone(),
            name: self.name.clone(),
            masked_key: format!("{}_…{}", self.prefix, self.key_last4),
            prefix: self.prefix.clone(),
            expires_at: self.expires_at,
            total_usage_left: if self.limit_usage {
                self.usage_left
            } else {
                None
            },
            limit_usage: self.limit_usage,
            scopes: self.parsed_scopes(),
            enabled: self.enabled,
            customer_id: self.customer_id.clone(),
            deleted: self.deleted,
            created_at: rfc3339(self.created_at),
            updated_at: rfc3339(self.updated_at),
            last_used_at: self.last_used_at.map(rfc3339),
            workspace_id: self.workspace_id.clone(),
            usage_count: self.usage_count,
            rotation_grace_period_ms: self.rotation_grace_ms,
            key: None,
        }
    }
}

/// Oneloop's `ApiKey` (and `CreateApiKeyResponseApiKey`/`RotateApiKeyResponseApiKey` when
/// `key` is set), plus `workspaceId`, `usageCount` and `rotationGracePeriodMs`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyView {
    id: String,
    name: String,
    masked_key: String,
    prefix: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    total_usage_left: Option<i64>,
    limit_usage: bool,
    scopes: Vec<ApiKeyScope>,
    enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    customer_id: Option<String>,
    deleted: bool,
    created_at: String,
    updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_used_at: Option<String>,
    workspace_id: String,
    usage_count: i64,
    rotation_grace_period_ms: i64,
    /// The full value: only in the answer to create and rotate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// Reading one key inside a caller's transaction (`&mut *tx`) or on a connection.
#[allow(async_fn_in_trait)]
pub trait ApiKeyStore {
    /// The key `id` of workspace `workspace_id`, deleted or not. With `lock`, the row stays
    /// locked until the transaction ends (`FOR UPDATE` on PostgreSQL; SQLite's
    /// `BEGIN IMMEDIATE` already holds the database's write lock).
    async fn load_api_key(
        &mut self,
        workspace_id: &str,
        id: &str,
        lock: bool,
    ) -> Result<Option<ApiKeyRow>, sqlx::Error>;
}

const LOAD_KEY: &str = concat!(
    "SELECT ",
    key_columns!(),
    " FROM api_keys WHERE id = $1 AND workspace_id = $2"
);

impl ApiKeyStore for sqlx::SqliteConnection {
    async fn load_api_key(
        &mut self,
        workspace_id: &str,
        id: &str,
        _lock: bool,
    ) -> Result<Option<ApiKeyRow>, sqlx::Error> {
        sqlx::query_as(LOAD_KEY)
            .bind(id)
            .bind(workspace_id)
            .fetch_optional(&mut *self)
            .await
    }
}

impl ApiKeyStore for sqlx::PgConnection {
    async fn load_api_key(
        &mut self,
        workspace_id: &str,
        id: &str,
        lock: bool,
    ) -> Result<Option<ApiKeyRow>, sqlx::Error> {
        let sql = if lock {
            concat!(
                "SELECT ",
                key_columns!(),
                " FROM api_keys WHERE id = $1 AND workspace_id = $2 FOR UPDATE"
            )
        } else {
            LOAD_KEY
        };
        sqlx::query_as(sql)
            .bind(id)
            .bind(workspace_id)
            .fetch_optional(&mut *self)
            .await
    }
}
