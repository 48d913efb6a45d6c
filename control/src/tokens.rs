//! Workspace tokens and secrets: credentials for one workspace's integrations (`wt_...` for
//! tokens, `ws_...` for secrets). The value is shown once, in the creation response; only its
//! SHA-256 digest, prefix and last four characters are stored. Lists show masks. Dashboard
//! session only; members may list, owners and admins create and revoke.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use keygate_shared::authz::Action;
use keygate_shared::key::{KeyKind, SecretKey};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::auth::CurrentUser;
use crate::error::{ApiError, ApiResult, ResultExt};
use crate::http::{AppState, ClientInfo, JsonBody};
use crate::ids::{is_valid_id, new_id, now_ms, rfc3339};
use crate::store::audit::{AuditEntry, AuditStore};
use crate::store::WriteTx;
use crate::with_db;
use crate::workspaces::{find_workspace, validate_name};

/// Latest expiry accepted: ten years ahead.
const MAX_EXPIRY_MS: i64 = 10 * 366 * 24 * 60 * 60 * 1000;

/// The token routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/workspace/{id}/tokens",
            get(list_tokens).post(create_token),
        )
        .route("/workspace/{id}/tokens/{token_id}", delete(revoke_token))
}

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: String,
    kind: String,
    name: String,
    key_prefix: String,
    key_last4: String,
    created_at: i64,
    expires_at: Option<i64>,
    last_used_at: Option<i64>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TokenJson {
    id: String,
    kind: String,
    name: String,
    masked: String,
    prefix: String,
    last4: String,
    created_at: String,
    expires_at: Option<String>,
    expired: bool,
    last_used_at: Option<String>,
}

impl TokenRow {
    fn to_json(&self, now: i64) -> TokenJson {
        TokenJson {
            id: self.id.clone(),
            kind: self.kind.clone(),
            name: self.name.clone(),
            masked: format!("{}_…{}", self.key_prefix, self.key_last4),
            prefix: self.key_prefix.clone(),
            last4: self.key_last4.clone(),
            created_at: rfc3339(self.created_at),
            expires_at: self.expires_at.map(rfc3339),
            expired: self.expires_at.is_some_and(|t| t <= now),
            last_used_at: self.last_used_at.map(rfc3339),
        }
    }
}

async fn list_tokens(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let workspace = find_workspace(&state, &user.org_id, &id).await?;
    user.authorize(Action::ReadDashboard)?;
    let rows: Vec<TokenRow> = with_db!(&state.db, |pool| {
        sqlx::query_as(
            "SELECT id, kind, name, key_prefix, key_last4, created_at, expires_at, last_used_at
               FROM workspace_tokens WHERE workspace_id = $1 AND revoked_at IS NULL
              ORDER BY created_at, id",
        )
        .bind(&workspace.id)
        .fetch_all(pool)
        .await
    })?;
    let now = now_ms();
    let list: Vec<TokenJson> = rows.iter().map(|r| r.to_json(now)).collect();
    Ok(Json(json!({ "tokens": list })))
}

/// `{name, kind?: "token" | "secret", expiresAt?: RFC 3339}`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateToken {
    name: String,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    expires_at: Option<String>,
}

fn parse_expiry(raw: &str, now: i64) -> ApiResult<i64> {
    let at = chrono::DateTime::parse_from_rfc3339(raw.trim())
        .map_err(|_| {
            ApiError::bad_request(
                "INVALID_EXPIRY",
                "expiresAt is an RFC 3339 time such as 2030-01-31T12:00:00Z",
            )
        })?
        .timestamp_millis();
    if at <= now {
        return Err(ApiError::bad_request(
            "INVALID_EXPIRY",
            "expiresAt must be in the future",
        ));
    }
    if at - now > MAX_EXPIRY_MS {
        return Err(ApiError::bad_request(
            "INVALID_EXPIRY",
            "expiresAt is at most ten years ahead",
        ));
    }
    Ok(at)
}

async fn create_token(
    State(state): State<AppState>,
    user: CurrentUser,
    client: ClientInfo,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<CreateToken>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let workspace = find_workspace(&state, &user.org_id, &id).await?;
    user.authorize(Action::ManageTokens)?;
    let name = validate_name(&body.name, "token")?;
    let (kind, key_kind) = match body.kind.as_deref().unwrap_or("token") {
        "token" => ("token", KeyKind::WorkspaceToken),
        "secret" => ("secret", KeyKind::WorkspaceSecret),
        _ => {
            return Err(ApiError::bad_request(
                "INVALID_KIND",
                "kind is `token` or `secret`",
            ))
        }
    };
    let now = now_ms();
    let expires_at = body
        .expires_at
        .as_deref()
        .map(|e| parse_expiry(e, now))
        .transpose()?;
    let key = SecretKey::generate(key_kind, workspace.environment());
    let row = TokenRow {
        id: new_id(),
        kind: kind.to_owned(),
        name,
        key_prefix: key.prefix().to_owned(),
        key_last4: key.last4().to_owned(),
        created_at: now,
        expires_at,
        last_used_at: None,
    };
    with_db!(&state.db, |pool| {
        let mut tx = pool.begin_write().await?;
        sqlx::query(
            "INSERT INTO workspace_tokens (id, workspace_id, kind, name, key_digest, key_prefix,
                 key_last4, created_by, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&row.id)
        .bind(&workspace.id)
        .bind(&row.kind)
        .bind(&row.name)
        .bind(key.digest().to_hex())
        .bind(&row.key_prefix)
        .bind(&row.key_last4)
        .bind(&user.user_id)
        .bind(row.created_at)
        .bind(row.expires_at)
        .execute(&mut *tx)
        .await
        .on_constraint(|_| ApiError::not_found("workspace"))?;
        tx.record_audit(
            &AuditEntry::by_user(&user, "workspace_token.create")
                .in_workspace(&workspace.id)
                .on(&row.id)
                .with(json!({
                    "name": row.name,
                    "kind": row.kind,
                    "key": key.mask(),
                    "expiresAt": row.expires_at.map(rfc3339),
                })),
            &client,
        )
        .await?;
        tx.commit().await?;
    });
    Ok((
        StatusCode::CREATED,
        Json(json!({ "key": key.expose(), "token": row.to_json(now) })),
    ))
}

async fn revoke_token(
    State(state): State<AppState>,
    user: CurrentUser,
    client: ClientInfo,
    Path((id, token_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let workspace = find_workspace(&state, &user.org_id, &id).await?;
    user.authorize(Action::ManageTokens)?;
    if !is_valid_id(&token_id) {
        return Err(ApiError::not_found("token"));
    }
    with_db!(&state.db, |pool| {
        let mut tx = pool.begin_write().await?;
        let revoked: Option<(String, String, String, String)> = sqlx::query_as(
            "UPDATE workspace_tokens SET revoked_at = $1
              WHERE id = $2 AND workspace_id = $3 AND revoked_at IS NULL
             RETURNING name, kind, key_prefix, key_last4",
        )
        .bind(now_ms())
        .bind(&token_id)
        .bind(&workspace.id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((name, kind, prefix, last4)) = revoked else {
            return Err(ApiError::not_found("token"));
        };
        tx.record_audit(
            &AuditEntry::by_user(&user, "workspace_token.revoke")
                .in_workspace(&workspace.id)
                .on(&token_id)
                .with(json!({ "name": name, "kind": kind, "key": format!("{prefix}_…{last4}") })),
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
    fn expiry_must_be_a_future_rfc3339_time_within_ten_years() {
        let now = chrono::Utc::now().timestamp_millis();
        assert!(parse_expiry("2999-01-01T00:00:00Z", now).is_err());
        assert!(parse_expiry("2000-01-01T00:00:00Z", now).is_err());
        assert!(parse_expiry("tomorrow", now).is_err());
        let soon = rfc3339(now + 86_400_000);
        assert_eq!(parse_expiry(&soon, now).unwrap(), now + 86_400_000);
    }
}
