//! The workspace's publishable key as the dashboard manages it: the key, its blacklist of
//! (module, functionality) rules, its allowed origins and the gateway's origin URL.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{present, Timestamp};

/// One blacklist rule.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct BlacklistRule {
    /// Its id.
    pub id: String,
    /// The module it blocks (canonical).
    pub module: String,
    /// The functionality it blocks (canonical; `*` for the whole module).
    pub functionality: String,
}

/// The workspace's live publishable key and what the edge checks it against.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PublishableKey {
    /// The key's row id.
    pub id: String,
    /// The key itself (`pk_live_...`): public by design, shipped in browser code.
    pub key: String,
    /// `live` or `test`.
    pub environment: String,
    /// When this key was made.
    pub created_at: Timestamp,
    /// Rules, by module and functionality.
    pub blacklist: Vec<BlacklistRule>,
    /// Canonical origins allowed to call with the key (`https://*.example.com` allowed).
    pub allowed_origins: Vec<String>,
    /// Where the gateway forwards allowed requests (`null`: no gateway).
    pub origin_url: Option<String>,
    /// Whether the gateway passes `Cookie` and `Set-Cookie` between callers and the origin.
    pub forward_cookies: bool,
}

/// Every publishable-key answer: `{"publishableKey": {...}}`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OnePublishableKey {
    /// The key as it is now.
    pub publishable_key: PublishableKey,
}

/// `POST /api/v1/workspace/{id}/publishable-key/revoke` (optional body): which key the
/// caller means to replace. Naming it makes a retried or doubled click safe: a key that is no
/// longer live is a 409, not a second replacement.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RevokePublishableKey {
    /// The key's row id.
    pub key_id: Option<String>,
    /// Or the key itself.
    pub key: Option<String>,
}

/// `PATCH /api/v1/workspace/{id}/publishable-key`: absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateOrigins {
    /// At most 50 origins (`https://app.example.com`, `https://*.example.com`).
    pub allowed_origins: Option<Vec<String>>,
    /// An http(s) URL without credentials, query or fragment; `null` or blank removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub origin_url: Option<Option<String>>,
    /// Whether the gateway passes cookies through.
    pub forward_cookies: Option<bool>,
}

/// `POST /api/v1/workspace/{id}/publishable-key/blacklist`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewBlacklistRule {
    /// A module of the workspace's catalogue.
    pub module: String,
    /// One of its functionalities, or `*` for the whole module.
    pub functionality: String,
}

/// `POST /api/v1/workspace/{id}/publishable-key/blacklist`'s answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedBlacklistRule {
    /// The new rule (canonical names).
    pub rule: BlacklistRule,
}
