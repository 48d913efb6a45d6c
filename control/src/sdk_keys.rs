//! SDK keys: the organisation's backend keys (`/api/v1/sdk-keys`) and each workspace's SDK
//! access key (`/api/v1/workspace/{id}/sdk-access-key`).
//!
//! An SDK key is created only from a dashboard session, never with another SDK key; its full
//! value appears once, in the creation (or rotation) response. It is stored sealed with
//! AES-256-GCM under the master key (the row id as associated data, so a sealed value copied
//! to another row does not open) plus its SHA-256 digest for lookups. Showing it again needs
//! a one-time code emailed to the signed-in user, bound to this key's id ([`crate::otp`]), and
//! every attempt, good or bad, is audited. Members can list keys but cannot create, reveal,
//! rotate or revoke them.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use keygate_shared::authz::Action;
use keygate_shared::key::{Environment, KeyKind, SecretKey};
use keygate_shared::otp::Purpose;
use keygate_shared::scope::SdkScopes;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::auth::CurrentUser;
use crate::crypto::Keys;
use crate::error::{ApiError, ApiResult, ResultExt};
use crate::http::{AppState, ClientInfo, JsonBody};
use crate::ids::{is_valid_id, new_id, now_ms, rfc3339};
use crate::impl_for_both_backends;
use crate::otp;
use crate::store::audit::{record_now, AuditEntry, AuditStore};
use crate::store::WriteTx;
use crate::with_db;
use crate::workspaces::{find_workspace, validate_name};

/// The name of every workspace's SDK access key.
pub const ACCESS_KEY_NAME: &str = "SDK access key";

/// The SDK-key routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/workspace/{id}/sdk-access-key", get(get_access_key))
        .route(
            "/workspace/{id}/sdk-access-key/reveal",
            post(start_access_key_reveal),
        )
        .route(
            "/workspace/{id}/sdk-access-key/reveal/verify",
            post(verify_access_key_reveal),
        )
        .route(
            "/workspace/{id}/sdk-access-key/rotate",
            post(rotate_access_key),
        )
        .route("/sdk-keys", get(list_sdk_keys).post(create_sdk_key))
        .route("/sdk-keys/{id}", delete(revoke_sdk_key))
        .route("/sdk-keys/{id}/reveal", post(start_sdk_key_reveal))
        .route("/sdk-keys/{id}/reveal/verify", post(verify_sdk_key_reveal))
}

/// What to store for a new SDK key.
#[derive(Debug, Clone)]
pub struct NewSdkKey<'a> {
    /// Owning organisation.
    pub org_id: &'a str,
    /// The workspace it is bound to (`None`: the whole organisation).
    pub workspace_id: Option<&'a str>,
    /// Display name.
    pub name: &'a str,
    /// What it may do.
    pub scopes: SdkScopes,
    /// `sk_live_` or `sk_test_`.
    pub environment: Environment,
    /// Whether it is a workspace's SDK access key.
    pub is_access_key: bool,
    /// The user (or key) creating it.
    pub created_by: Option<&'a str>,
    /// Unix ms.
    pub now: i64,
}

/// SDK-key storage inside a caller's transaction.
#[allow(async_fn_in_trait)]
pub trait SdkKeyStore {
    /// Mints, seals and inserts a key; returns its row id and the key.
    async fn insert_sdk_key(
        &mut self,
        keys: &Keys,
        new: &NewSdkKey<'_>,
    ) -> Result<(String, SecretKey), sqlx::Error>;
}

impl_for_both_backends!(SdkKeyStore {
    async fn insert_sdk_key(&mut self, keys: &Keys, new: &NewSdkKey<'_>) -> Result<(String, SecretKey), sqlx::Error> {
        let id = new_id();
        let key = SecretKey::generate(KeyKind::Sdk, new.environment);
        sqlx::query(
            "INSERT INTO sdk_keys (id, org_id, workspace_id, name, scopes, key_digest, key_sealed,
                 key_prefix, key_last4, is_access_key, created_by, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&id)
        .bind(new.org_id)
        .bind(new.workspace_id)
        .bind(new.name)
        .bind(new.scopes.to_string())
        .bind(key.digest().to_hex())
        .bind(keys.seal(key.expose(), &id))
        .bind(key.prefix())
        .bind(key.last4())
        .bind(new.is_access_key)
        .bind(new.created_by)
        .bind(new.now)
        .execute(&mut *self)
        .await?;
        Ok((id, key))
    }
});

/// An SDK key row, without its sealed value.
#[derive(Debug, Clone, sqlx::FromRow)]
struct SdkKeyRow {
    id: String,
    workspace_id: Option<String>,
    name: String,
    scopes: String,
    key_prefix: String,
    key_last4: String,
    is_access_key: bool,
    created_at: i64,
    last_used_at: Option<i64>,
}

const SDK_KEY_COLUMNS: &str = "id, workspace_id, name, scopes, key_prefix, key_last4, \
     is_access_key, created_at, last_used_at";

/// An SDK key as lists show it: masked.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SdkKeyJson {
    id: String,
    name: String,
    scopes: SdkScopes,
    workspace_id: Option<String>,
    masked: String,
    prefix: String,
    last4: String,
    is_access_key: bool,
    created_at: String,
    last_used_at: Option<String>,
}

impl SdkKeyRow {
    fn to_json(&self) -> ApiResult<SdkKeyJson> {
        Ok(SdkKeyJson {
            id: self.id.clone(),
            name: self.name.clone(),
            scopes: SdkScopes::parse(&self.scopes).map_err(ApiError::internal)?,
            workspace_id: self.workspace_id.clone(),
            masked: format!("{}_…{}", self.key_prefix, self.key_last4),
            prefix: self.key_prefix.clone(),
            last4: self.key_last4.clone(),
            is_access_key: self.is_access_key,
            created_at: rfc3339(self.created_at),
            last_used_at: self.last_used_at.map(rfc3339),
        })
    }
}

/// The live access key of a workspace (already checked to be in the caller's organisation).
async fn find_access_key(
    state: &AppState,
    org_id: &str,
    workspace_id: &str,
) -> ApiResult<SdkKeyRow> {
    let sql = format!(
        "SELECT {SDK_KEY_COLUMNS} FROM sdk_keys
          WHERE org_id = $1 AND workspace_id = $2 AND is_access_key = TRUE AND revoked_at IS NULL"
    );
    let row: Option<SdkKeyRow> = with_db!(&state.db, |pool| {
        sqlx::query_as(&sql)
            .bind(org_id)
            .bind(workspace_id)
            .fetch_optional(pool)
            .await
    })?;
    row.ok_or_else(|| ApiError::not_found("SDK access key"))
}

/// A live organisation SDK key (not an access key) of `org_id`, or 404.
async fn find_org_key(state: &AppState, org_id: &str, id: &str) -> ApiResult<SdkKeyRow> {
    if !is_valid_id(id) {
        return Err(ApiError::not_found("SDK key"));
    }
    let sql = format!(
        "SELECT {SDK_KEY_COLUMNS} FROM sdk_keys
          WHERE id = $1 AND org_id = $2 AND is_access_key = FALSE AND revoked_at IS NULL"
    );
    let row: Option<SdkKeyRow> = with_db!(&state.db, |pool| {
        sqlx::query_as(&sql)
            .bind(id)
            .bind(org_id)
            .fetch_optional(pool)
            .await
    })?;
    row.ok_or_else(|| ApiError::not_found("SDK key"))
}

async fn start_reveal(
    state: &AppState,
    user: &CurrentUser,
    key: &SdkKeyRow,
    client: &ClientInfo,
) -> ApiResult<Json<serde_json::Value>> {
    let masked = format!("{}_…{}", key.key_prefix, key.key_last4);
    let entry = AuditEntry {
        workspace_id: key.workspace_id.as_deref(),
        ..AuditEntry::by_user(user, "sdk_key.reveal.request").on(&key.id)
    };
    let challenge = match otp::issue(state, Purpose::RevealSdkKey, user, &key.id, client).await {
        Ok(c) => c,
        Err(e) => {
            let detail = json!({ "key": masked, "reason": e.reason });
            record_now(&state.db, &entry.failed().with(detail), client).await?;
            return Err(e);
        }
    };
    let detail = json!({ "key": masked, "challengeId": challenge.id });
    record_now(&state.db, &entry.with(detail), client).await?;
    Ok(Json(json!({
        "challengeId": challenge.id,
        "expiresAt": rfc3339(challenge.expires_at),
    })))
}

/// `{challengeId, code}`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct VerifyReveal {
    challenge_id: String,
    code: String,
}

async fn finish_reveal(
    state: &AppState,
    user: &CurrentUser,
    key: &SdkKeyRow,
    body: &VerifyReveal,
    client: &ClientInfo,
) -> ApiResult<zeroize::Zeroizing<String>> {
    let masked = format!("{}_…{}", key.key_prefix, key.key_last4);
    let entry = AuditEntry {
        workspace_id: key.workspace_id.as_deref(),
        ..AuditEntry::by_user(user, "sdk_key.reveal").on(&key.id)
    };
    let code = body.code.trim();
    // A verified reveal code also opens the session's step-up window.
    if let Err(e) = otp::redeem(
        state,
        &body.challenge_id,
        Purpose::RevealSdkKey,
        user,
        &key.id,
        code,
        client,
    )
    .await
    {
        let detail = json!({ "key": masked, "reason": e.reason });
        record_now(&state.db, &entry.failed().with(detail), client).await?;
        return Err(e);
    }
    let sealed: Option<String> = with_db!(&state.db, |pool| {
        sqlx::query_scalar("SELECT key_sealed FROM sdk_keys WHERE id = $1 AND revoked_at IS NULL")
            .bind(&key.id)
            .fetch_optional(pool)
            .await
    })?;
    let opened = sealed.and_then(|s| state.keys.open(&s, &key.id));
    let Some(value) = opened else {
        let detail = json!({ "key": masked, "reason": "UNSEALABLE" });
        record_now(&state.db, &entry.failed().with(detail), client).await?;
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "KEY_UNAVAILABLE",
            "this key cannot be revealed (it was revoked, or the master key changed); rotate or create a new one",
        ));
    };
    record_now(&state.db, &entry.with(json!({ "key": masked })), client).await?;
    Ok(value)
}

async fn get_access_key(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let workspace = find_workspace(&state, &user.org_id, &id).await?;
    user.authorize(Action::ReadDashboard)?;
    let key = find_access_key(&state, &user.org_id, &workspace.id).await?;
    Ok(Json(json!({ "sdkAccessKey": key.to_json()? })))
}

async fn start_access_key_reveal(
    State(state): State<AppState>,
    user: CurrentUser,
    client: ClientInfo,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let workspace = find_workspace(&state, &user.org_id, &id).await?;
    user.authorize(Action::RevealSdkKey)?;
    let key = find_access_key(&state, &user.org_id, &workspace.id).await?;
    start_reveal(&state, &user, &key, &client).await
}

async fn verify_access_key_reveal(
    State(state): State<AppState>,
    user: CurrentUser,
    client: ClientInfo,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<VerifyReveal>,
) -> ApiResult<Json<serde_json::Value>> {
    let workspace = find_workspace(&state, &user.org_id, &id).await?;
    user.authorize(Action::RevealSdkKey)?;
    let key = find_access_key(&state, &user.org_id, &workspace.id).await?;
    let value = finish_reveal(&state, &user, &key, &body, &client).await?;
    Ok(Json(
        json!({ "key": value.as_str(), "sdkAccessKey": key.to_json()? }),
    ))
}

async fn rotate_access_key(
    State(state): State<AppState>,
    user: CurrentUser,
    client: ClientInfo,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let workspace = find_workspace(&state, &user.org_id, &id).await?;
    user.authorize(Action::RotateSdkAccessKey)?;
    let conflict = || {
        ApiError::conflict(
            "KEY_ALREADY_ROTATED",
            "the SDK access key was rotated at the same moment; reload to see the current key",
        )
    };
    let now = now_ms();
    let (new_id, new_key) = with_db!(&state.db, |pool| {
        let mut tx = pool.begin_write().await?;
        let old: Option<(String, String, String, String)> = sqlx::query_as(
            "SELECT id, scopes, key_prefix, key_last4 FROM sdk_keys
              WHERE org_id = $1 AND workspace_id = $2 AND is_access_key = TRUE AND revoked_at IS NULL",
        )
        .bind(&user.org_id)
        .bind(&workspace.id)
        .fetch_optional(&mut *tx)
        .await?;
        let scopes = match &old {
            Some((old_id, scopes, _, _)) => {
                let done = sqlx::query(
                    "UPDATE sdk_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
                )
                .bind(now)
                .bind(old_id)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() != 1 {
                    return Err(conflict());
                }
                SdkScopes::parse(scopes).map_err(ApiError::internal)?
            }
            None => SdkScopes::all(),
        };
        let (new_id, new_key) = tx
            .insert_sdk_key(
                &state.keys,
                &NewSdkKey {
                    org_id: &user.org_id,
                    workspace_id: Some(&workspace.id),
                    name: ACCESS_KEY_NAME,
                    scopes,
                    environment: workspace.environment(),
                    is_access_key: true,
                    created_by: Some(&user.user_id),
                    now,
                },
            )
            .await
            .on_constraint(|_| conflict())?;
        let revoked = old
            .as_ref()
            .map(|(id, _, p, l)| json!({ "id": id, "key": format!("{p}_…{l}") }));
        tx.record_audit(
            &AuditEntry::by_user(&user, "sdk_key.rotate")
                .in_workspace(&workspace.id)
                .on(&new_id)
                .with(json!({ "revoked": revoked, "newKey": new_key.mask() })),
            &client,
        )
        .await?;
        tx.commit().await.on_constraint(|_| conflict())?;
        (new_id, new_key)
    });
    tracing::info!(workspace = %workspace.id, key = %new_key.mask(), "SDK access key rotated");
    // The row just made, by id: a rotation racing this one may already have replaced it.
    let sql = format!("SELECT {SDK_KEY_COLUMNS} FROM sdk_keys WHERE id = $1 AND org_id = $2");
    let row: SdkKeyRow = with_db!(&state.db, |pool| {
        sqlx::query_as(&sql)
            .bind(&new_id)
            .bind(&user.org_id)
            .fetch_one(pool)
            .await
    })?;
    Ok(Json(
        json!({ "key": new_key.expose(), "sdkAccessKey": row.to_json()? }),
    ))
}

async fn list_sdk_keys(
    State(state): State<AppState>,
    user: CurrentUser,
) -> ApiResult<Json<serde_json::Value>> {
    user.authorize(Action::ReadDashboard)?;
    let sql = format!(
        "SELECT {SDK_KEY_COLUMNS} FROM sdk_keys
          WHERE org_id = $1 AND is_access_key = FALSE AND revoked_at IS NULL
          ORDER BY created_at, id"
    );
    let rows: Vec<SdkKeyRow> = with_db!(&state.db, |pool| {
        sqlx::query_as(&sql)
            .bind(&user.org_id)
            .fetch_all(pool)
            .await
    })?;
    let list = rows
        .iter()
        .map(SdkKeyRow::to_json)
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(json!({ "sdkKeys": list })))
}

/// `{name, scopes: {workspace: [..], workspace_scopes: [..], api_keys: [..]}, workspaceId?}`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateSdkKey {
    name: String,
    scopes: SdkScopes,
    #[serde(default)]
    workspace_id: Option<String>,
}

async fn create_sdk_key(
    State(state): State<AppState>,
    user: CurrentUser,
    client: ClientInfo,
    JsonBody(body): JsonBody<CreateSdkKey>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    user.authorize(Action::CreateSdkKey)?;
    let name = validate_name(&body.name, "SDK key")?;
    if body.scopes.is_empty() {
        return Err(ApiError::bad_request(
            "EMPTY_SCOPES",
            "an SDK key needs at least one scope, e.g. {\"api_keys\": [\"read\", \"write\"]}",
        ));
    }
    let workspace = match body.workspace_id.as_deref() {
        Some(id) => Some(find_workspace(&state, &user.org_id, id).await?),
        None => None,
    };
    let environment = workspace
        .as_ref()
        .map_or(Environment::Live, |w| w.environment());
    let now = now_ms();
    let (id, key) = with_db!(&state.db, |pool| {
        let mut tx = pool.begin_write().await?;
        let created = tx
            .insert_sdk_key(
                &state.keys,
                &NewSdkKey {
                    org_id: &user.org_id,
                    workspace_id: workspace.as_ref().map(|w| w.id.as_str()),
                    name: &name,
                    scopes: body.scopes,
                    environment,
                    is_access_key: false,
                    created_by: Some(&user.user_id),
                    now,
                },
            )
            .await
            // The workspace was deleted in between.
            .on_constraint(|_| ApiError::not_found("workspace"))?;
        tx.record_audit(
            &AuditEntry {
                workspace_id: workspace.as_ref().map(|w| w.id.as_str()),
                ..AuditEntry::by_user(&user, "sdk_key.create")
                    .on(&created.0)
                    .with(json!({
                        "name": name,
                        "key": created.1.mask(),
                        "scopes": body.scopes.to_string(),
                    }))
            },
            &client,
        )
        .await?;
        tx.commit().await?;
        created
    });
    tracing::info!(key = %key.mask(), "SDK key created");
    let row = find_org_key(&state, &user.org_id, &id).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "key": key.expose(), "sdkKey": row.to_json()? })),
    ))
}

async fn revoke_sdk_key(
    State(state): State<AppState>,
    user: CurrentUser,
    client: ClientInfo,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let key = find_org_key(&state, &user.org_id, &id).await?;
    user.authorize(Action::RevokeSdkKey)?;
    with_db!(&state.db, |pool| {
        let mut tx = pool.begin_write().await?;
        let done = sqlx::query(
            "UPDATE sdk_keys SET revoked_at = $1
              WHERE id = $2 AND org_id = $3 AND is_access_key = FALSE AND revoked_at IS NULL",
        )
        .bind(now_ms())
        .bind(&key.id)
        .bind(&user.org_id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Err(ApiError::not_found("SDK key"));
        }
        tx.record_audit(
            &AuditEntry {
                workspace_id: key.workspace_id.as_deref(),
                ..AuditEntry::by_user(&user, "sdk_key.revoke")
                    .on(&key.id)
                    .with(json!({ "key": format!("{}_…{}", key.key_prefix, key.key_last4) }))
            },
            &client,
        )
        .await?;
        tx.commit().await?;
    });
    Ok(StatusCode::NO_CONTENT)
}

async fn start_sdk_key_reveal(
    State(state): State<AppState>,
    user: CurrentUser,
    client: ClientInfo,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let key = find_org_key(&state, &user.org_id, &id).await?;
    user.authorize(Action::RevealSdkKey)?;
    start_reveal(&state, &user, &key, &client).await
}

async fn verify_sdk_key_reveal(
    State(state): State<AppState>,
    user: CurrentUser,
    client: ClientInfo,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<VerifyReveal>,
) -> ApiResult<Json<serde_json::Value>> {
    let key = find_org_key(&state, &user.org_id, &id).await?;
    user.authorize(Action::RevealSdkKey)?;
    let value = finish_reveal(&state, &user, &key, &body, &client).await?;
    Ok(Json(
        json!({ "key": value.as_str(), "sdkKey": key.to_json()? }),
    ))
}
