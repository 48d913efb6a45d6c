//! Link tokens (Oneloop's `generateLinkToken` and `validateLinkToken`): short-lived tokens
//! bound to one (workspace, customer) that a platform hands to its own customer.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /api/v1/link-token` (Oneloop's `GenerateLinkTokenRequest`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GenerateLinkToken {
    /// The platform's customer the token is for (1 to 256 characters).
    pub customer_id: String,
    /// The workspace the token is for.
    pub workspace_id: String,
}

/// Oneloop's `GenerateLinkTokenResponse`: the token, shown once.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GeneratedLinkToken {
    /// The token (`lt_...`); keygate keeps only its digest.
    pub token: String,
    /// When it expires, in Unix milliseconds.
    pub expires_at: i64,
}

/// Oneloop's `ValidateLinkTokenResponse` (`GET /api/v1/link-token/{token}`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LinkTokenValidity {
    /// Whether the token is still usable (false once expired).
    pub valid: bool,
    /// When it expires (or expired), in Unix milliseconds.
    pub expires_at: i64,
    /// The workspace it is bound to.
    pub workspace_id: String,
    /// The customer it is bound to.
    pub customer_id: String,
}
