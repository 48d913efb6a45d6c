//! Workspaces (Oneloop's `Workspace`), their module/functionality catalogue with its route
//! map, and the route classifier the dashboard's "test a request" box calls.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{present, Timestamp};

/// Oneloop's `Workspace`, plus the key environment.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Workspace {
    /// Its id.
    pub id: String,
    /// A name for people.
    pub name: String,
    /// The organisation that owns it (Oneloop calls it a team).
    pub team_id: String,
    /// `live` or `test`: the environment of its keys (`pk_live_`, `sk_test_`, ...).
    pub environment: String,
    /// The prefix new customer API keys get when the request names none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_key_prefix: Option<String>,
    /// IPs and CIDR blocks new API keys are limited to (empty: any).
    #[serde(rename = "defaultAllowedIPs")]
    pub default_allowed_ips: Vec<String>,
    /// The rate limit new API keys get, per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_rate_limit_per_second: Option<i64>,
    /// How long new API keys live, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_expiration: Option<i64>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

/// `GET /api/v1/workspace`.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkspaceList {
    /// Oldest first; for an SDK key bound to one workspace, just that one.
    pub workspaces: Vec<Workspace>,
}

/// One workspace: the answer of `GET`, `POST` and `PATCH` on workspaces.
#[derive(Debug, Serialize, ToSchema)]
pub struct OneWorkspace {
    /// The workspace.
    pub workspace: Workspace,
}

/// `POST /api/v1/workspace`: Oneloop's `CreateWorkspaceRequest` (`{name}`), plus optional
/// settings. Unknown fields are ignored: this body belongs to Oneloop's published API.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateWorkspace {
    /// 1 to 100 characters (trimmed).
    pub name: String,
    /// `live` (default) or `test`.
    pub environment: Option<String>,
    /// 1 to 24 lowercase letters, digits and single underscores, starting with a letter.
    pub default_key_prefix: Option<String>,
    /// At most 100 IP addresses or CIDR blocks.
    #[serde(default, rename = "defaultAllowedIPs")]
    pub default_allowed_ips: Option<Vec<String>>,
    /// 1 to 1,000,000 per second.
    pub default_rate_limit_per_second: Option<i64>,
    /// Milliseconds, positive.
    pub default_expiration: Option<i64>,
}

/// `PATCH /api/v1/workspace/{id}`: Oneloop's `UpdateWorkspaceRequest`, plus `name`. Absent
/// fields stay as they are; `null` clears an optional setting. Unknown fields are ignored
/// (Oneloop's API).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateWorkspace {
    /// A new name, 1 to 100 characters (trimmed).
    pub name: Option<String>,
    /// A new key prefix, or `null` for none.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub default_key_prefix: Option<Option<String>>,
    /// New default allowed IPs; `null` means none.
    #[serde(default, rename = "defaultAllowedIPs", deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>)]
    pub default_allowed_ips: Option<Option<Vec<String>>>,
    /// A new default rate limit, or `null` for none.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>)]
    pub default_rate_limit_per_second: Option<Option<i64>>,
    /// A new default expiration, or `null` for none.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>)]
    pub default_expiration: Option<Option<i64>>,
}

/// A functionality as the API reads and writes it: a name, or a name with its routes.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(untagged)]
pub enum CatalogueFunctionality {
    /// Just the name.
    Name(String),
    /// The name and its routes.
    Mapped(MappedFunctionality),
}

/// A functionality bound to routes, e.g. `{"name": "refund", "routes": ["POST /billing/refunds/*"]}`.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MappedFunctionality {
    /// The functionality's name.
    pub name: String,
    /// `METHOD /path` patterns that resolve to it at the gateway.
    #[serde(default)]
    pub routes: Vec<String>,
}

/// One module of the catalogue.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CatalogueModule {
    /// The module's name.
    pub name: String,
    /// Its functionalities (at most 100).
    pub functionalities: Vec<CatalogueFunctionality>,
}

/// `GET`/`PUT /api/v1/workspace/{id}/modules`: the catalogue with its route map.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModuleCatalogue {
    /// At most 100 modules.
    pub modules: Vec<CatalogueModule>,
}

/// `POST /api/v1/workspace/{id}/routes/classify`: a request to classify.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClassifyRequest {
    /// The HTTP method, at most 16 bytes.
    pub method: String,
    /// The path, as sent to the gateway (`/g/` prefix optional), at most 2048 bytes.
    pub path: String,
}

/// The action a classified request resolves to.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClassifiedAction {
    /// Module (canonical).
    pub module: String,
    /// Functionality (canonical).
    pub functionality: String,
    /// The route pattern that matched.
    pub route: String,
}

/// What the edge would do with a request under the saved route map and blacklist.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteClassification {
    /// `VALID`, `BLACKLISTED`, `ROUTE_NOT_MAPPED`, `ROUTE_MAP_INVALID` or `INVALID_PATH`.
    pub status: String,
    /// For `INVALID_PATH`: why the path is refused (stable code).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For `INVALID_PATH`: a sentence for people.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The action it resolves to (`null` when none).
    pub action: Option<ClassifiedAction>,
    /// Whether the publishable key may call it.
    pub allowed: bool,
    /// For a resolved action: the path forwarded to the origin.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forward_path: Option<String>,
}
