//! Who is calling: a signed-in dashboard user (session cookie) or a backend holding an SDK
//! key (`Authorization: Bearer sk_...`), and what each may do.
//!
//! - [`CurrentUser`] extracts a session. Dashboard-only routes take it, so they can never be
//!   reached with an SDK key. State-changing requests must carry `X-CSRF-Token` equal to the
//!   session's CSRF token (HMAC of the session id; also set in the readable `keygate_csrf`
//!   cookie), compared in constant time.
//! - [`Principal`] extracts either; backend API routes take it and call
//!   [`Principal::require`] with the scope they need and [`Principal::require_workspace`] for
//!   the workspace they touch.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, Method};
use hmac::{Hmac, Mac};
use keygate_shared::key::{self, KeyKind};
use keygate_shared::scope::{Permission, SdkScopes};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::error::{ApiError, ApiResult};
use crate::http::AppState;
use crate::ids::now_ms;
use crate::with_db;

/// The session cookie (HttpOnly, SameSite=Strict).
pub const SESSION_COOKIE: &str = "keygate_session";
/// The CSRF cookie (readable by the page's script, SameSite=Strict).
pub const CSRF_COOKIE: &str = "keygate_csrf";
/// The header a state-changing dashboard request must echo the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// How long a session lasts.
pub const SESSION_TTL_MS: i64 = 12 * 60 * 60 * 1000;
/// `last_used_at` of an SDK key is written at most this often, to keep reads read-only.
const LAST_USED_GRANULARITY_MS: i64 = 60 * 1000;

/// A member's role in the organisation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, including managing owners.
    Owner,
    /// Everything but managing owners.
    Admin,
    /// Reads, and creates nothing secret; cannot reveal, rotate or revoke secrets.
    Member,
}

impl Role {
    /// Stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }

    /// Parses a stored or wire name.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "owner" => Some(Role::Owner),
            "admin" => Some(Role::Admin),
            "member" => Some(Role::Member),
            _ => None,
        }
    }

    /// Whether this role may reveal, create, rotate or revoke secrets and manage members.
    pub fn is_admin(self) -> bool {
        matches!(self, Role::Owner | Role::Admin)
    }
}

/// A signed-in dashboard user.
#[derive(Clone, Debug)]
pub struct CurrentUser {
    /// User id.
    pub user_id: String,
    /// Their organisation.
    pub org_id: String,
    /// Email (lower case).
    pub email: String,
    /// Role.
    pub role: Role,
    /// The session's id (not its token).
    pub session_id: String,
}

impl CurrentUser {
    /// 403 unless the user is an owner or admin.
    pub fn require_admin(&self) -> ApiResult<()> {
        if self.role.is_admin() {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "ROLE_REQUIRED",
                "only owners and admins can do this",
            ))
        }
    }
}

/// The CSRF token of a session.
pub fn csrf_token(csrf_key: &[u8], session_id: &str) -> String {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(csrf_key).expect("any key length");
    m.update(b"keygate-csrf-v1\n");
    m.update(session_id.as_bytes());
    hex::encode(m.finalize().into_bytes())
}

/// The SHA-256 of a session token, as stored.
pub fn session_digest(token: &str) -> String {
    key::digest(token).to_hex()
}

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn not_signed_in() -> ApiError {
    ApiError::unauthorized("NOT_SIGNED_IN", "sign in first")
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = cookie(parts, SESSION_COOKIE).ok_or_else(not_signed_in)?;
        if token.is_empty() || token.len() > 128 {
            return Err(not_signed_in());
        }
        let digest = session_digest(token);
        let row: Option<(String, String, String, String, String)> = with_db!(&state.db, |pool| {
            sqlx::query_as(
                "SELECT s.id, u.id, u.org_id, u.email, u.role
                   FROM sessions s JOIN users u ON u.id = s.user_id
                  WHERE s.token_digest = $1 AND s.revoked_at IS NULL AND s.expires_at > $2",
            )
            .bind(&digest)
            .bind(now_ms())
            .fetch_optional(pool)
            .await
        })?;
        let (session_id, user_id, org_id, email, role) = row.ok_or_else(not_signed_in)?;
        let role =
            Role::parse(&role).ok_or_else(|| ApiError::internal("unknown role in database"))?;
        let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        if !safe {
            let expected = csrf_token(state.keys.csrf_key(), &session_id);
            let sent = parts
                .headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            if !bool::from(sent.as_bytes().ct_eq(expected.as_bytes())) {
                return Err(ApiError::forbidden(
                    "CSRF_TOKEN_INVALID",
                    "missing or wrong X-CSRF-Token header (send the value of the keygate_csrf cookie)",
                ));
            }
        }
        Ok(CurrentUser {
            user_id,
            org_id,
            email,
            role,
            session_id,
        })
    }
}

/// A backend holding an SDK key.
#[derive(Clone, Debug)]
pub struct SdkCaller {
    /// The key's id.
    pub key_id: String,
    /// Its organisation.
    pub org_id: String,
    /// The workspace it is bound to, if any (else global to the organisation).
    pub workspace_id: Option<String>,
    /// What it may do.
    pub scopes: SdkScopes,
    /// Its mask, for the audit log.
    pub mask: String,
}

/// Whoever calls the backend API.
#[derive(Clone, Debug)]
pub enum Principal {
    /// A dashboard session: every scope, within the user's organisation.
    User(CurrentUser),
    /// An SDK key: its scopes, within its organisation (and workspace, if bound).
    Sdk(SdkCaller),
}

impl Principal {
    /// The caller's organisation: the tenant boundary of every query.
    pub fn org_id(&self) -> &str {
        match self {
            Principal::User(u) => &u.org_id,
            Principal::Sdk(k) => &k.org_id,
        }
    }

    /// The acting user's or key's id.
    pub fn actor_id(&self) -> &str {
        match self {
            Principal::User(u) => &u.user_id,
            Principal::Sdk(k) => &k.key_id,
        }
    }

    /// A readable actor for the audit log: the email or the key's mask.
    pub fn actor_label(&self) -> &str {
        match self {
            Principal::User(u) => &u.email,
            Principal::Sdk(k) => &k.mask,
        }
    }

    /// 403 naming the scope unless the caller holds it.
    pub fn require(&self, needed: Permission) -> ApiResult<()> {
        match self {
            Principal::User(_) => Ok(()),
            Principal::Sdk(k) if k.scopes.allows(needed) => Ok(()),
            Principal::Sdk(_) => Err(ApiError::forbidden(
                "MISSING_SCOPE",
                format!("this SDK key lacks the `{needed}` scope"),
            )),
        }
    }

    /// 404 if a workspace-bound SDK key reaches for another workspace (the caller must not
    /// learn whether it exists). The organisation check is the query's job.
    pub fn require_workspace(&self, workspace_id: &str) -> ApiResult<()> {
        match self {
            Principal::Sdk(SdkCaller {
                workspace_id: Some(bound),
                ..
            }) if bound != workspace_id => Err(ApiError::not_found("workspace")),
            _ => Ok(()),
        }
    }

    /// The workspace a bound SDK key is limited to.
    pub fn bound_workspace(&self) -> Option<&str> {
        match self {
            Principal::Sdk(k) => k.workspace_id.as_deref(),
            Principal::User(_) => None,
        }
    }
}

fn bad_sdk_key(message: String) -> ApiError {
    ApiError::unauthorized("INVALID_SDK_KEY", message)
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(auth) = parts.headers.get(header::AUTHORIZATION) else {
            return CurrentUser::from_request_parts(parts, state)
                .await
                .map(Principal::User)
                .map_err(|e| {
                    if e.reason == "NOT_SIGNED_IN" {
                        ApiError::unauthorized(
                            "MISSING_CREDENTIALS",
                            "send `Authorization: Bearer <SDK key>` or sign in",
                        )
                    } else {
                        e
                    }
                });
        };
        let value = auth
            .to_str()
            .map_err(|_| bad_sdk_key("the Authorization header is not text".into()))?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or_else(|| bad_sdk_key("use `Authorization: Bearer <SDK key>`".into()))?
            .trim();
        let parsed = key::parse_as(token, KeyKind::Sdk)
            .map_err(|e| bad_sdk_key(format!("not a usable SDK key: {e}")))?;
        let digest = parsed.digest().to_hex();
        type SdkKeyRow = (String, String, Option<String>, String, Option<i64>);
        let row: Option<SdkKeyRow> = with_db!(&state.db, |pool| {
            sqlx::query_as(
                "SELECT id, org_id, workspace_id, scopes, last_used_at
                   FROM sdk_keys WHERE key_digest = $1 AND revoked_at IS NULL",
            )
            .bind(&digest)
            .fetch_optional(pool)
            .await
        })?;
        let (key_id, org_id, workspace_id, scopes, last_used_at) =
            row.ok_or_else(|| bad_sdk_key("this SDK key is unknown or revoked".into()))?;
        let now = now_ms();
        if last_used_at.is_none_or(|t| now - t > LAST_USED_GRANULARITY_MS) {
            with_db!(&state.db, |pool| {
                sqlx::query("UPDATE sdk_keys SET last_used_at = $1 WHERE id = $2")
                    .bind(now)
                    .bind(&key_id)
                    .execute(pool)
                    .await
                    .map(|_| ())
            })?;
        }
        Ok(Principal::Sdk(SdkCaller {
            key_id,
            org_id,
            workspace_id,
            scopes: SdkScopes::parse(&scopes).map_err(ApiError::internal)?,
            mask: parsed.mask(),
        }))
    }
}
