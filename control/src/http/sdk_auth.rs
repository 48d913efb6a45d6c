//! The one SDK-key authentication path: `Authorization: Bearer sk_...` parsed, looked up
//! (with the last-used bookkeeping in `crate::store::sdk_keys`) and turned into a
//! [`Principal`], with the same errors everywhere (`401 INVALID_SDK_KEY`, and `401
//! MISSING_CREDENTIALS` when neither a key nor a session is sent).
//!
//! `POST /api/v1/api-key/verify` takes the [`Credential`] (parsed, not yet looked up) and
//! looks the SDK key up together with the API key in one read, then records the use through
//! the same [`crate::store::sdk_keys::record_use`].

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use keygate_shared::key::{self, KeyKind};
use keygate_shared::scope::SdkScopes;

use crate::error::{ApiError, ApiResult};
use crate::http::auth::{CurrentUser, Principal, SdkCaller};
use crate::http::AppState;
use crate::ids::now_ms;
use crate::store;
use crate::store::sdk_keys::SdkKeyCaller;

/// An SDK key as presented in `Authorization`: well formed, not yet looked up.
#[derive(Clone, Debug)]
pub struct PresentedSdkKey {
    /// SHA-256 of the value (hex), as stored.
    pub digest: String,
    /// Its mask, for the audit log.
    pub mask: String,
}

/// What the caller sent: an SDK key (parsed, not yet looked up) or a session.
#[derive(Clone, Debug)]
pub enum Credential {
    /// `Authorization: Bearer sk_...`.
    SdkKey(PresentedSdkKey),
    /// A dashboard session (no `Authorization` header).
    Session(CurrentUser),
}

/// `401 INVALID_SDK_KEY`.
fn bad_sdk_key(message: impl Into<String>) -> ApiError {
    ApiError::unauthorized("INVALID_SDK_KEY", message)
}

/// `401 INVALID_SDK_KEY` for a well-formed key that is unknown or revoked.
pub fn unknown_sdk_key() -> ApiError {
    bad_sdk_key("this SDK key is unknown or revoked")
}

/// The SDK key in `Authorization`, if the header is there: `401 INVALID_SDK_KEY` when it
/// is not `Bearer <a well-formed SDK key>`.
pub fn presented_sdk_key(headers: &HeaderMap) -> ApiResult<Option<PresentedSdkKey>> {
    let Some(auth) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = auth
        .to_str()
        .map_err(|_| bad_sdk_key("the Authorization header is not text"))?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .ok_or_else(|| bad_sdk_key("use `Authorization: Bearer <SDK key>`"))?
        .trim();
    let parsed = key::parse_as(token, KeyKind::Sdk)
        .map_err(|e| bad_sdk_key(format!("not a usable SDK key: {e}")))?;
    Ok(Some(PresentedSdkKey {
        digest: parsed.digest().to_hex(),
        mask: parsed.mask(),
    }))
}

/// The caller as a [`Principal`], from a stored SDK key row and the presented key's mask.
pub fn sdk_principal(row: SdkKeyCaller, mask: String) -> ApiResult<Principal> {
    Ok(Principal::Sdk(SdkCaller {
        scopes: SdkScopes::parse(&row.scopes).map_err(ApiError::internal)?,
        key_id: row.id,
        org_id: row.org_id,
        workspace_id: row.workspace_id,
        mask,
    }))
}

impl FromRequestParts<AppState> for Credential {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(presented) = presented_sdk_key(&parts.headers)? {
            return Ok(Credential::SdkKey(presented));
        }
        CurrentUser::from_request_parts(parts, state)
            .await
            .map(Credential::Session)
            .map_err(|e| {
                if e.reason == "NOT_SIGNED_IN" {
                    ApiError::unauthorized(
                        "MISSING_CREDENTIALS",
                        "send `Authorization: Bearer <SDK key>` or sign in",
                    )
                } else {
                    e
                }
            })
    }
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match Credential::from_request_parts(parts, state).await? {
            Credential::Session(user) => Ok(Principal::User(user)),
            Credential::SdkKey(presented) => {
                let row = store::sdk_keys::authenticate(&state.db, &presented.digest, now_ms())
                    .await?
                    .ok_or_else(unknown_sdk_key)?;
                sdk_principal(row, presented.mask)
            }
        }
    }
}
