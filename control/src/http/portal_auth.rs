//! The portal's one authentication path: `Authorization: Bearer <link token>` becomes a
//! [`PortalCaller`] (the `keygate_shared::portal::Customer` the token is bound to), or a 401
//! with a stable reason: `MISSING_CREDENTIALS` (no header), `INVALID_LINK_TOKEN` (malformed,
//! tampered, unknown or swept), `LINK_TOKEN_EXPIRED` (known but past its expiry).
//!
//! A malformed or tampered token is refused by `keygate_shared::link_token::parse` without a
//! lookup; a well-formed one is looked up by its SHA-256 only.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use keygate_shared::link_token;
use keygate_shared::portal::Customer;

use crate::error::{ApiError, ApiResult};
use crate::http::AppState;
use crate::ids::now_ms;
use crate::store;

/// A customer acting through a valid link token.
#[derive(Clone, Debug)]
pub struct PortalCaller {
    /// Who the token speaks for.
    pub customer: Customer,
    /// The token's digest (to spend its change allowance).
    pub token_digest: String,
    /// When the token expires, Unix ms.
    pub expires_at: i64,
    /// The workspace's name.
    pub workspace_name: String,
    /// `customer:<customerId>`, the audit actor.
    pub actor: String,
}

/// `401 INVALID_LINK_TOKEN`.
fn invalid() -> ApiError {
    ApiError::unauthorized(
        "INVALID_LINK_TOKEN",
        "this link is not valid; ask the site that sent you here for a new one",
    )
}

/// The token of an `Authorization: Bearer` header.
fn bearer(parts: &Parts) -> ApiResult<&str> {
    let value = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| {
            ApiError::unauthorized(
                "MISSING_CREDENTIALS",
                "send `Authorization: Bearer <link token>`",
            )
        })?
        .to_str()
        .map_err(|_| invalid())?;
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .ok_or_else(invalid)
}

impl FromRequestParts<AppState> for PortalCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let token = link_token::parse(bearer(parts)?).ok_or_else(invalid)?;
        let digest = link_token::digest(token);
        let row = store::portal::find_token(&state.db, &digest)
            .await?
            .ok_or_else(invalid)?;
        if link_token::is_expired(row.expires_at, now_ms()) {
            return Err(ApiError::unauthorized(
                "LINK_TOKEN_EXPIRED",
                "this link has expired; ask the site that sent you here for a new one",
            ));
        }
        let customer = Customer {
            org_id: row.org_id,
            workspace_id: row.workspace_id,
            customer_id: row.customer_id,
        };
        Ok(PortalCaller {
            actor: customer.actor(),
            customer,
            token_digest: digest,
            expires_at: row.expires_at,
            workspace_name: row.workspace_name,
        })
    }
}
