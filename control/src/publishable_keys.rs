//! The workspace's publishable key: viewing it, replacing it ("revoke"), its blacklist of
//! (module, functionality) rules and its allowed origins / origin URL.
//!
//! Everything here changes what the edge decides, so every change is committed together with
//! an outbox row carrying the key's new edge record (see [`crate::outbox`]). A revoke writes
//! two: the old key, now `Revoked`, first, then its successor.
//!
//! Revoking is a conditional update of the key the caller saw (`revoked_at IS NULL`) plus the
//! insert of its successor, guarded by the partial unique index "one live key per workspace":
//! of two concurrent revokes of the same key exactly one commits a successor, the other gets a
//! 409 and leaves nothing behind. Dashboard session only; members may read, only owners and
//! admins change anything.

use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{header, StatusCode};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use keygate_shared::authz::Action;
use keygate_shared::key::{Environment, KeyKind, SecretKey};
use keygate_shared::origin;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::json;

use crate::auth::CurrentUser;
use crate::error::{ApiError, ApiResult, ResultExt};
use crate::http::{AppState, ClientInfo, JsonBody};
use crate::ids::{is_valid_id, new_id, now_ms, rfc3339};
use crate::impl_for_both_backends;
use crate::outbox::OutboxStore;
use crate::store::audit::{AuditEntry, AuditStore};
use crate::store::WriteTx;
use crate::with_db;
use crate::workspaces::{find_workspace, WorkspaceRow};

/// Most allowed origins per workspace.
pub const MAX_ALLOWED_ORIGINS: usize = 50;

/// The publishable-key routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/workspace/{id}/publishable-key",
            get(get_publishable_key).patch(update_origins),
        )
        .route(
            "/workspace/{id}/publishable-key/revoke",
            post(revoke_publishable_key),
        )
        .route(
            "/workspace/{id}/publishable-key/blacklist",
            post(add_blacklist_rule),
        )
        .route(
            "/workspace/{id}/publishable-key/blacklist/{rule_id}",
            delete(remove_blacklist_rule),
        )
}

/// Publishable-key storage used inside a caller's transaction (workspace creation, revoke).
#[allow(async_fn_in_trait)]
pub trait PublishableKeyStore {
    /// Mints and inserts a live publishable key with row id `id`; returns the key.
    async fn insert_publishable_key(
        &mut self,
        id: &str,
        workspace_id: &str,
        environment: Environment,
        now: i64,
    ) -> Result<SecretKey, sqlx::Error>;

    /// Takes the workspace's row lock for the rest of the transaction (a no-op write; SQLite's
    /// `BEGIN IMMEDIATE` already serializes writers) and returns its catalogue, or `None` if the
    /// workspace is not in `org_id`. Every change the edge must learn starts here, so changes to
    /// one workspace commit one after another and their outbox rows are in commit order.
    async fn lock_workspace(
        &mut self,
        workspace_id: &str,
        org_id: &str,
    ) -> Result<Option<String>, sqlx::Error>;

    /// The id of the workspace's live key, if any.
    async fn live_publishable_key_id(
        &mut self,
        workspace_id: &str,
    ) -> Result<Option<String>, sqlx::Error>;
}

impl_for_both_backends!(PublishableKeyStore {
    async fn insert_publishable_key(
        &mut self,
        id: &str,
        workspace_id: &str,
        environment: Environment,
        now: i64,
    ) -> Result<SecretKey, sqlx::Error> {
        let key = SecretKey::generate(KeyKind::Publishable, environment);
        sqlx::query(
            "INSERT INTO publishable_keys (id, workspace_id, key_value, key_digest, created_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(workspace_id)
        .bind(key.expose())
        .bind(key.digest().to_hex())
        .bind(now)
        .execute(&mut *self)
        .await?;
        Ok(key)
    }

    async fn lock_workspace(&mut self, workspace_id: &str, org_id: &str) -> Result<Option<String>, sqlx::Error> {
        sqlx::query_scalar(
            "UPDATE workspaces SET updated_at = $1 WHERE id = $2 AND org_id = $3 RETURNING catalogue",
        )
        .bind(now_ms())
        .bind(workspace_id)
        .bind(org_id)
        .fetch_optional(&mut *self)
        .await
    }

    async fn live_publishable_key_id(&mut self, workspace_id: &str) -> Result<Option<String>, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT id FROM publishable_keys WHERE workspace_id = $1 AND revoked_at IS NULL",
        )
        .bind(workspace_id)
        .fetch_optional(&mut *self)
        .await
    }
});

/// One blacklist rule as shown.
#[derive(Serialize, sqlx::FromRow)]
struct RuleJson {
    id: String,
    module: String,
    functionality: String,
}

/// The publishable key as the dashboard shows it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PublishableKeyJson {
    id: String,
    key: String,
    environment: String,
    created_at: String,
    blacklist: Vec<RuleJson>,
    allowed_origins: Vec<String>,
    origin_url: Option<String>,
    /// Whether the gateway passes `Cookie` and `Set-Cookie` between callers and the origin.
    forward_cookies: bool,
}

async fn load_view(
    state: &AppState,
    _user: &CurrentUser,
    workspace: &WorkspaceRow,
) -> ApiResult<Json<serde_json::Value>> {
    let (key_rows, rules) = with_db!(&state.db, |pool| {
        let key: Option<(String, String, i64, bool)> = sqlx::query_as(
            "SELECT k.id, k.key_value, k.created_at, w.forward_cookies
               FROM publishable_keys k JOIN workspaces w ON w.id = k.workspace_id
              WHERE k.workspace_id = $1 AND k.revoked_at IS NULL",
        )
        .bind(&workspace.id)
        .fetch_optional(pool)
        .await?;
        let rules: Vec<RuleJson> = sqlx::query_as(
            "SELECT id, module, functionality FROM blacklist_rules
              WHERE workspace_id = $1 ORDER BY module, functionality",
        )
        .bind(&workspace.id)
        .fetch_all(pool)
        .await?;
        (key, rules)
    });
    let (id, key, created_at, forward_cookies) =
        key_rows.ok_or_else(|| ApiError::internal("workspace without a live publishable key"))?;
    let view = PublishableKeyJson {
        id,
        key,
        environment: workspace.environment.clone(),
        created_at: rfc3339(created_at),
        blacklist: rules,
        allowed_origins: workspace.allowed_origins(),
        origin_url: workspace.origin_url.clone(),
        forward_cookies,
    };
    Ok(Json(json!({ "publishableKey": view })))
}

async fn get_publishable_key(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let workspace = find_workspace(&state, &user.org_id, &id).await?;
    user.authorize(Action::ReadDashboard)?;
    load_view(&state, &user, &workspace).await
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

/// Which key the caller means to revoke. Naming it makes a retried or doubled click safe: a
/// key that is no longer live is a 409, not a second replacement.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RevokeBody {
    #[serde(default)]
    key_id: Option<String>,
    #[serde(default)]
    key: Option<String>,
}

fn already_revoked() -> ApiError {
    ApiError::conflict(
        "KEY_ALREADY_REVOKED",
        "that publishable key was already replaced; reload to see the current key",
    )
}

async fn revoke_publishable_key(
    State(state): State<AppState>,
    user: CurrentUser,
    client: ClientInfo,
    Path(id): Path<String>,
    OptionalJson(body): OptionalJson<RevokeBody>,
) -> ApiResult<Json<serde_json::Value>> {
    let workspace = find_workspace(&state, &user.org_id, &id).await?;
    user.authorize(Action::RevokePublishableKey)?;
    let body = body.unwrap_or_default();
    // The key being revoked: the one the caller names, else the one live as the request is
    // read. The replacement below is conditional on it still being live.
    let current: Option<(String, String)> = with_db!(&state.db, |pool| {
        sqlx::query_as(
            "SELECT id, key_value FROM publishable_keys WHERE workspace_id = $1 AND revoked_at IS NULL",
        )
        .bind(&workspace.id)
        .fetch_optional(pool)
        .await
    })?;
    let (old_id, old_value) = current.ok_or_else(already_revoked)?;
    let names_other = body.key_id.as_deref().is_some_and(|k| k != old_id)
        || body
            .key
            .as_deref()
            .is_some_and(|k| !keygate_shared::key::ct_eq(k, &old_value));
    if names_other {
        return Err(already_revoked());
    }
    let old_mask = keygate_shared::key::mask(&old_value);
    let new_id = new_id();
    let now = now_ms();
    let env = workspace.environment();
    let new_key = with_db!(&state.db, |pool| {
        let mut tx = pool.begin_write().await?;
        if tx
            .lock_workspace(&workspace.id, &user.org_id)
            .await?
            .is_none()
        {
            return Err(ApiError::not_found("workspace"));
        }
        let done = sqlx::query(
            "UPDATE publishable_keys SET revoked_at = $1, replaced_by = $2
              WHERE id = $3 AND workspace_id = $4 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(&new_id)
        .bind(&old_id)
        .bind(&workspace.id)
        .execute(&mut *tx)
        .await
        .on_constraint(|_| already_revoked())?;
        if done.rows_affected() != 1 {
            return Err(already_revoked());
        }
        let new_key = tx
            .insert_publishable_key(&new_id, &workspace.id, env, now)
            .await
            .on_constraint(|_| already_revoked())?;
        tx.enqueue_publishable_key(&old_id).await?;
        tx.enqueue_publishable_key(&new_id).await?;
        tx.record_audit(
            &AuditEntry::by_user(&user, "publishable_key.revoke")
                .in_workspace(&workspace.id)
                .on(&old_id)
                .with(json!({
                    "revoked": old_mask,
                    "replacedBy": new_id,
                    "newKey": new_key.mask(),
                })),
            &client,
        )
        .await?;
        tx.commit().await.on_constraint(|_| already_revoked())?;
        new_key
    });
    tracing::info!(workspace = %workspace.id, revoked = %old_mask, new = %new_key.mask(), "publishable key replaced");
    load_view(&state, &user, &workspace).await
}

/// Deserializes a present field (even `null`) as `Some(..)`.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UpdateOrigins {
    #[serde(default)]
    allowed_origins: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    origin_url: Option<Option<String>>,
    #[serde(default)]
    forward_cookies: Option<bool>,
}

fn validate_origins(list: &[String]) -> ApiResult<Vec<String>> {
    if list.len() > MAX_ALLOWED_ORIGINS {
        return Err(ApiError::bad_request(
            "TOO_MANY_ORIGINS",
            format!("at most {MAX_ALLOWED_ORIGINS} allowed origins"),
        ));
    }
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

async fn update_origins(
    State(state): State<AppState>,
    user: CurrentUser,
    client: ClientInfo,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<UpdateOrigins>,
) -> ApiResult<Json<serde_json::Value>> {
    let workspace = find_workspace(&state, &user.org_id, &id).await?;
    user.authorize(Action::ChangeOrigins)?;
    let origins = body
        .allowed_origins
        .as_deref()
        .map(validate_origins)
        .transpose()?;
    let origin_url = match &body.origin_url {
        Some(Some(u)) if !u.trim().is_empty() => {
            let canonical = validate_origin_url(u)?;
            validate_forward_target(&canonical, state.settings.allow_private_origins)?;
            Some(Some(canonical))
        }
        Some(_) => Some(None),
        None => None,
    };
    let origins_json = origins
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(ApiError::internal)?;
    with_db!(&state.db, |pool| {
        let mut tx = pool.begin_write().await?;
        let done = sqlx::query(
            "UPDATE workspaces SET
                 allowed_origins = CASE WHEN $1 THEN $2 ELSE allowed_origins END,
                 origin_url = CASE WHEN $3 THEN $4 ELSE origin_url END,
                 forward_cookies = CASE WHEN $8 THEN $9 ELSE forward_cookies END,
                 updated_at = $5
             WHERE id = $6 AND org_id = $7",
        )
        .bind(origins_json.is_some())
        .bind(origins_json.as_deref().unwrap_or("[]"))
        .bind(origin_url.is_some())
        .bind(origin_url.clone().flatten())
        .bind(now_ms())
        .bind(&workspace.id)
        .bind(&user.org_id)
        .bind(body.forward_cookies.is_some())
        .bind(body.forward_cookies.unwrap_or(false))
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(ApiError::not_found("workspace"));
        }
        if let Some(key_id) = tx.live_publishable_key_id(&workspace.id).await? {
            tx.enqueue_publishable_key(&key_id).await?;
        }
        tx.record_audit(
            &AuditEntry::by_user(&user, "publishable_key.origins.update")
                .in_workspace(&workspace.id)
                .on(&workspace.id)
                .with(json!({
                    "allowedOrigins": origins,
                    "originUrl": origin_url,
                    "forwardCookies": body.forward_cookies,
                })),
            &client,
        )
        .await?;
        tx.commit().await?;
    });
    let workspace = find_workspace(&state, &user.org_id, &id).await?;
    load_view(&state, &user, &workspace).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewRule {
    module: String,
    functionality: String,
}

async fn add_blacklist_rule(
    State(state): State<AppState>,
    user: CurrentUser,
    client: ClientInfo,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<NewRule>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let workspace = find_workspace(&state, &user.org_id, &id).await?;
    user.authorize(Action::AddBlacklistRule)?;
    let rule_id = new_id();
    let rule = with_db!(&state.db, |pool| {
        let mut tx = pool.begin_write().await?;
        // The catalogue is read under the workspace's lock, so a concurrent catalogue change
        // cannot slip a rule for a removed module in.
        let catalogue = tx.lock_workspace(&workspace.id, &user.org_id).await?;
        let catalogue: keygate_shared::blacklist::Catalogue =
            serde_json::from_str(&catalogue.ok_or_else(|| ApiError::not_found("workspace"))?)
                .unwrap_or_default();
        let rule = catalogue
            .rule(&body.module, &body.functionality)
            .map_err(|e| ApiError::bad_request(e.code(), e.to_string()))?;
        sqlx::query(
            "INSERT INTO blacklist_rules (id, workspace_id, module, functionality, created_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&rule_id)
        .bind(&workspace.id)
        .bind(&rule.module)
        .bind(&rule.functionality)
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .on_constraint(|_| {
            ApiError::conflict(
                "DUPLICATE_RULE",
                "this module and functionality are already blacklisted",
            )
        })?;
        if let Some(key_id) = tx.live_publishable_key_id(&workspace.id).await? {
            tx.enqueue_publishable_key(&key_id).await?;
        }
        tx.record_audit(
            &AuditEntry::by_user(&user, "blacklist.add")
                .in_workspace(&workspace.id)
                .on(&rule_id)
                .with(json!({ "module": rule.module, "functionality": rule.functionality })),
            &client,
        )
        .await?;
        tx.commit().await?;
        rule
    });
    Ok((
        StatusCode::CREATED,
        Json(json!({ "rule": RuleJson {
            id: rule_id,
            module: rule.module,
            functionality: rule.functionality,
        } })),
    ))
}

async fn remove_blacklist_rule(
    State(state): State<AppState>,
    user: CurrentUser,
    client: ClientInfo,
    Path((id, rule_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let workspace = find_workspace(&state, &user.org_id, &id).await?;
    user.authorize(Action::RemoveBlacklistRule)?;
    if !is_valid_id(&rule_id) {
        return Err(ApiError::not_found("blacklist rule"));
    }
    with_db!(&state.db, |pool| {
        let mut tx = pool.begin_write().await?;
        if tx
            .lock_workspace(&workspace.id, &user.org_id)
            .await?
            .is_none()
        {
            return Err(ApiError::not_found("workspace"));
        }
        let removed: Option<(String, String)> = sqlx::query_as(
            "DELETE FROM blacklist_rules WHERE id = $1 AND workspace_id = $2
             RETURNING module, functionality",
        )
        .bind(&rule_id)
        .bind(&workspace.id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((module, functionality)) = removed else {
            return Err(ApiError::not_found("blacklist rule"));
        };
        if let Some(key_id) = tx.live_publishable_key_id(&workspace.id).await? {
            tx.enqueue_publishable_key(&key_id).await?;
        }
        tx.record_audit(
            &AuditEntry::by_user(&user, "blacklist.remove")
                .in_workspace(&workspace.id)
                .on(&rule_id)
                .with(json!({ "module": module, "functionality": functionality })),
            &client,
        )
        .await?;
        tx.commit().await?;
    });
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_urls_are_http_urls_without_credentials() {
        assert_eq!(
            validate_origin_url("https://API.example.com:443/v1/").unwrap(),
            "https://api.example.com/v1"
        );
        assert_eq!(
            validate_origin_url("http://127.0.0.1:9000").unwrap(),
            "http://127.0.0.1:9000"
        );
        for bad in [
            "ftp://example.com",
            "https://user:pw@example.com",
            "https://example.com/a b",
            "https://example.com/?q=1",
            "https://example.com/#x",
            "example.com",
            "https://",
        ] {
            assert!(validate_origin_url(bad).is_err(), "{bad}");
        }
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
