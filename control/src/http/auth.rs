//! Who is calling: a signed-in dashboard user (session cookie) or a backend holding an SDK
//! key (`Authorization: Bearer sk_...`), and what each may do.
//!
//! - [`CurrentUser`] extracts a session. Dashboard-only routes take it, so they can never be
//!   reached with an SDK key. State-changing requests must carry `X-CSRF-Token` equal to the
//!   session's CSRF token (HMAC of the session id; also set in the readable `keygate_csrf`
//!   cookie), compared in constant time.
//! - [`Principal`] extracts either; backend API routes take it and call
//!   [`Principal::authorize`] with the action they perform and [`Principal::require_workspace`] for
//!   the workspace they touch. Its extractor (the one SDK-key authentication path) is in
//!   `crate::http::sdk_auth`.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, Method};
use hmac::{Hmac, Mac};
use keygate_shared::authz::{self, Action, Denial};
use keygate_shared::key;
use keygate_shared::scope::SdkScopes;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::error::{ApiError, ApiResult};
use crate::http::AppState;
use crate::ids::now_ms;

/// The session cookie (HttpOnly, SameSite=Strict).
pub const SESSION_COOKIE: &str = "keygate_session";
/// The CSRF cookie (readable by the page's script, SameSite=Strict).
pub const CSRF_COOKIE: &str = "keygate_csrf";
/// The header a state-changing dashboard request must echo the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// How long a session lasts.
pub const SESSION_TTL_MS: i64 = 12 * 60 * 60 * 1000;

pub use keygate_shared::authz::Role;

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
    /// Until when (Unix ms) the session's step-up window is open, if it was ever opened.
    pub step_up_until: Option<i64>,
}

impl CurrentUser {
    /// Asks the role x action table in `keygate_shared::authz` whether this user may perform
    /// `action` now: `403 ROLE_REQUIRED`, or `403 STEP_UP_REQUIRED` when the action needs
    /// a step-up window and this session has none open. Every dashboard handler calls it.
    pub fn authorize(&self, action: Action) -> ApiResult<()> {
        authz::decide(
            self.role,
            action,
            authz::step_up_open(self.step_up_until, now_ms()),
        )
        .map_err(denied)
    }
}

/// The error a denial becomes.
pub fn denied(denial: Denial) -> ApiError {
    match denial {
        Denial::RoleRequired => ApiError::forbidden(
            "ROLE_REQUIRED",
            "your role in this organisation does not allow this",
        ),
        Denial::StepUpRequired => ApiError::forbidden(
            "STEP_UP_REQUIRED",
            "confirm it is you: ask for a code (POST /api/v1/auth/step-up), verify it, then retry",
        ),
        Denial::MissingScope(p) => ApiError::forbidden(
            "MISSING_SCOPE",
            format!("this SDK key lacks the `{p}` scope"),
        ),
        Denial::DashboardOnly => ApiError::forbidden(
            "DASHBOARD_ONLY",
            "only a signed-in dashboard user can do this, not an SDK key",
        ),
    }
}

/// A cookie's name on the wire: `__Host-` prefixed when cookies are `Secure` (the browser
/// then insists on `Secure`, `Path=/` and no `Domain`, so no sibling host can plant it).
pub fn cookie_name(base: &str, secure: bool) -> String {
    if secure {
        format!("__Host-{base}")
    } else {
        base.to_owned()
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
        let name = cookie_name(SESSION_COOKIE, state.settings.secure_cookies);
        let token = cookie(parts, &name).ok_or_else(not_signed_in)?;
        if token.is_empty() || token.len() > 128 {
            return Err(not_signed_in());
        }
        let session = crate::store::sessions::live(&state.db, &session_digest(token), now_ms())
            .await?
            .ok_or_else(not_signed_in)?;
        let role = Role::parse(&session.role)
            .ok_or_else(|| ApiError::internal("unknown role in database"))?;
        let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        if !safe {
            let sent = parts
                .headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            // Tokens made under the previous master key (during a rotation) still verify.
            let matches = state.keys.csrf_keys().into_iter().fold(false, |ok, key| {
                let expected = csrf_token(key, &session.session_id);
                ok | bool::from(sent.as_bytes().ct_eq(expected.as_bytes()))
            });
            if !matches {
                return Err(ApiError::forbidden(
                    "CSRF_TOKEN_INVALID",
                    "missing or wrong X-CSRF-Token header (send the value of the keygate_csrf cookie)",
                ));
            }
        }
        Ok(CurrentUser {
            user_id: session.user_id,
            org_id: session.org_id,
            email: session.email,
            role,
            session_id: session.session_id,
            step_up_until: session.step_up_until,
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

    /// Asks `keygate_shared::authz` whether the caller may perform `action`: a user by their
    /// role (and step-up window), an SDK key by its scopes.
    pub fn authorize(&self, action: Action) -> ApiResult<()> {
        match self {
            Principal::User(u) => u.authorize(action),
            Principal::Sdk(k) => authz::decide_sdk(k.scopes, action).map_err(denied),
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

/// Audit entries by the caller (the row's organisation is always the caller's: the tenant
/// boundary).
impl<'a> crate::store::audit::AuditEntry<'a> {
    /// An event by a signed-in user, in their organisation, shown as their email.
    pub fn by_user(user: &'a CurrentUser, action: &'a str) -> Self {
        Self::new(&user.org_id, &user.user_id, &user.email, action)
    }

    /// An event by a user or an SDK key, in its organisation, shown as the email or the
    /// key's mask.
    pub fn by(principal: &'a Principal, action: &'a str) -> Self {
        Self::new(
            principal.org_id(),
            principal.actor_id(),
            principal.actor_label(),
            action,
        )
    }
}
