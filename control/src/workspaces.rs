//! Workspaces: the Oneloop-compatible `/api/v1/workspace` routes and the workspace's
//! module/functionality catalogue.
//!
//! A workspace is born complete: creating one writes, in one transaction, the workspace, its
//! publishable key (with the outbox row that tells the edge), its SDK access key (sealed) and
//! an audit event, so no workspace ever exists without its keys.
//!
//! The organisation is the tenant boundary of every query here (`WHERE org_id = $n`): another
//! organisation's workspace id answers exactly like an id that never existed (404).

use std::net::IpAddr;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use keygate_shared::authz::Action;
use keygate_shared::blacklist::{BlacklistPolicy, Catalogue, Module, Rule};
use keygate_shared::key::{ApiKeyPrefix, Environment};
use keygate_shared::route::{CanonicalPath, RouteBinding, RouteMap, RoutePolicy, RouteVerdict};
use keygate_shared::scope::SdkScopes;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::json;

use crate::auth::{CurrentUser, Principal};
use crate::error::{ApiError, ApiResult};
use crate::http::{AppState, ClientInfo, JsonBody};
use crate::ids::{is_valid_id, new_id, now_ms, rfc3339};
use crate::outbox::OutboxStore;
use crate::publishable_keys::PublishableKeyStore;
use crate::store::audit::{AuditEntry, AuditStore};
use crate::store::sdk_keys::{NewSdkKey, SdkKeyStore, ACCESS_KEY_NAME};
use crate::store::WriteTx;
use crate::with_db;

/// Longest name of anything a user names (workspaces, tokens, SDK keys).
pub const MAX_NAME_CHARS: usize = 100;
/// Most entries in a workspace's default allowed IPs.
pub const MAX_ALLOWED_IPS: usize = 100;
/// Most modules in a catalogue, and functionalities per module.
pub const MAX_CATALOGUE_ENTRIES: usize = 100;
/// Highest default rate limit a workspace may set, per second.
pub const MAX_RATE_LIMIT_PER_SECOND: i64 = 1_000_000;

/// The workspace routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/workspace", get(list_workspaces).post(create_workspace))
        .route(
            "/workspace/{id}",
            get(get_workspace).patch(update_workspace),
        )
        .route("/workspace/{id}/modules", get(get_modules).put(put_modules))
        .route(
            "/workspace/{id}/routes/classify",
            axum::routing::post(classify_route),
        )
}

/// A workspace row as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WorkspaceRow {
    /// Id.
    pub id: String,
    /// Owning organisation.
    pub org_id: String,
    /// Display name.
    pub name: String,
    /// `live` or `test`.
    pub environment: String,
    /// Prefix of customer API keys made in this workspace.
    pub default_key_prefix: Option<String>,
    /// JSON array of IPs/CIDRs.
    pub default_allowed_ips: String,
    /// Default rate limit of new API keys.
    pub default_rate_limit_per_second: Option<i64>,
    /// Default expiration of new API keys.
    pub default_expiration: Option<i64>,
    /// JSON catalogue `{"modules": [...]}`.
    pub catalogue: String,
    /// JSON array of canonical origins.
    pub allowed_origins: String,
    /// Where the edge forwards allowed requests.
    pub origin_url: Option<String>,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub updated_at: i64,
}

const WORKSPACE_COLUMNS: &str = "id, org_id, name, environment, default_key_prefix, \
     default_allowed_ips, default_rate_limit_per_second, default_expiration, catalogue, \
     allowed_origins, origin_url, created_at, updated_at";

impl WorkspaceRow {
    /// The key environment of the workspace (`pk_live_` or `pk_test_`, ...).
    pub fn environment(&self) -> Environment {
        if self.environment == "test" {
            Environment::Test
        } else {
            Environment::Live
        }
    }

    /// The stored catalogue (empty if unreadable, which validation on write prevents).
    pub fn catalogue(&self) -> Catalogue {
        serde_json::from_str(&self.catalogue).unwrap_or_default()
    }

    /// The stored allowed origins.
    pub fn allowed_origins(&self) -> Vec<String> {
        serde_json::from_str(&self.allowed_origins).unwrap_or_default()
    }

    fn to_json(&self) -> WorkspaceJson {
        WorkspaceJson {
            id: self.id.clone(),
            name: self.name.clone(),
            team_id: self.org_id.clone(),
            environment: self.environment.clone(),
            default_key_prefix: self.default_key_prefix.clone(),
            default_allowed_ips: serde_json::from_str(&self.default_allowed_ips)
                .unwrap_or_default(),
            default_rate_limit_per_second: self.default_rate_limit_per_second,
            default_expiration: self.default_expiration,
            created_at: rfc3339(self.created_at),
            updated_at: rfc3339(self.updated_at),
        }
    }
}

/// Oneloop's `Workspace`, plus the key environment.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WorkspaceJson {
    id: String,
    name: String,
    team_id: String,
    environment: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    default_key_prefix: Option<String>,
    #[serde(rename = "defaultAllowedIPs")]
    default_allowed_ips: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    default_rate_limit_per_second: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    default_expiration: Option<i64>,
    created_at: String,
    updated_at: String,
}

/// Loads a workspace of `org_id`, or 404 (malformed id, unknown id or another organisation's
/// id alike). Every workspace-scoped handler starts here.
pub async fn find_workspace(state: &AppState, org_id: &str, id: &str) -> ApiResult<WorkspaceRow> {
    if !is_valid_id(id) {
        return Err(ApiError::not_found("workspace"));
    }
    let sql = format!("SELECT {WORKSPACE_COLUMNS} FROM workspaces WHERE id = $1 AND org_id = $2");
    let row: Option<WorkspaceRow> = with_db!(&state.db, |pool| {
        sqlx::query_as(&sql)
            .bind(id)
            .bind(org_id)
            .fetch_optional(pool)
            .await
    })?;
    row.ok_or_else(|| ApiError::not_found("workspace"))
}

/// A user-given name: trimmed, 1 to [`MAX_NAME_CHARS`] characters, no control characters.
pub fn validate_name(raw: &str, what: &str) -> ApiResult<String> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(ApiError::bad_request(
            "INVALID_NAME",
            format!("the {what} needs a name"),
        ));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::bad_request(
            "INVALID_NAME",
            format!("a {what} name is at most {MAX_NAME_CHARS} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "INVALID_NAME",
            format!("a {what} name cannot contain control characters such as newlines or tabs"),
        ));
    }
    Ok(name.to_owned())
}

/// Deserializes a present field (even `null`) as `Some(..)`, so PATCH bodies can tell "leave
/// as is" (absent) from "clear" (`null`).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// One allowed IP entry (an address or a CIDR block), in canonical text.
fn validate_ip_entry(entry: &str) -> ApiResult<String> {
    let bad = || {
        ApiError::bad_request(
            "INVALID_ALLOWED_IP",
            format!(
                "`{}` is not an IP address or CIDR block such as 203.0.113.7 or 10.0.0.0/8",
                entry.chars().take(60).collect::<String>()
            ),
        )
    };
    let entry = entry.trim();
    let (addr, prefix) = match entry.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (entry, None),
    };
    let ip: IpAddr = addr.parse().map_err(|_| bad())?;
    match prefix {
        None => Ok(ip.to_string()),
        Some(p) => {
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let bits: u8 = p
                .parse()
                .ok()
                .filter(|b| *b <= max && p.len() <= 3)
                .ok_or_else(bad)?;
            Ok(format!("{ip}/{bits}"))
        }
    }
}

fn validate_allowed_ips(list: &[String]) -> ApiResult<Vec<String>> {
    if list.len() > MAX_ALLOWED_IPS {
        return Err(ApiError::bad_request(
            "TOO_MANY_ALLOWED_IPS",
            format!("at most {MAX_ALLOWED_IPS} allowed IPs"),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for e in list {
        let canonical = validate_ip_entry(e)?;
        if !out.contains(&canonical) {
            out.push(canonical);
        }
    }
    Ok(out)
}

fn validate_key_prefix(prefix: &str) -> ApiResult<String> {
    ApiKeyPrefix::new(prefix)
        .map(String::from)
        .map_err(|_| {
            ApiError::bad_request(
                "INVALID_KEY_PREFIX",
                "a key prefix is 1-24 lowercase letters, digits and single underscores, starts with a letter, and is not pk, sk, wt or ws",
            )
        })
}

fn validate_rate_limit(n: i64) -> ApiResult<i64> {
    if (1..=MAX_RATE_LIMIT_PER_SECOND).contains(&n) {
        Ok(n)
    } else {
        Err(ApiError::bad_request(
            "INVALID_RATE_LIMIT",
            format!("the default rate limit is 1 to {MAX_RATE_LIMIT_PER_SECOND} per second"),
        ))
    }
}

fn validate_expiration(n: i64) -> ApiResult<i64> {
    if n > 0 {
        Ok(n)
    } else {
        Err(ApiError::bad_request(
            "INVALID_EXPIRATION",
            "the default expiration must be a positive number",
        ))
    }
}

fn parse_environment(s: &str) -> ApiResult<&'static str> {
    match s {
        "live" => Ok("live"),
        "test" => Ok("test"),
        _ => Err(ApiError::bad_request(
            "INVALID_ENVIRONMENT",
            "the environment is `live` or `test`",
        )),
    }
}

/// Session users change workspaces only as owners or admins; SDK keys need the scope (both
/// decided by `keygate_shared::authz`).
fn require_workspace_write(principal: &Principal) -> ApiResult<()> {
    principal.authorize(Action::ManageWorkspaces)
}

async fn list_workspaces(
    State(state): State<AppState>,
    principal: Principal,
) -> ApiResult<Json<serde_json::Value>> {
    principal.authorize(Action::ReadWorkspaces)?;
    let org_id = principal.org_id().to_owned();
    let bound = principal.bound_workspace().map(str::to_owned);
    let sql = format!(
        "SELECT {WORKSPACE_COLUMNS} FROM workspaces
          WHERE org_id = $1 AND ($2 IS NULL OR id = $2)
          ORDER BY created_at, id"
    );
    let rows: Vec<WorkspaceRow> = with_db!(&state.db, |pool| {
        sqlx::query_as(&sql)
            .bind(&org_id)
            .bind(&bound)
            .fetch_all(pool)
            .await
    })?;
    let list: Vec<WorkspaceJson> = rows.iter().map(WorkspaceRow::to_json).collect();
    Ok(Json(json!({ "workspaces": list })))
}

async fn get_workspace(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    principal.authorize(Action::ReadWorkspaces)?;
    principal.require_workspace(&id)?;
    let row = find_workspace(&state, principal.org_id(), &id).await?;
    Ok(Json(json!({ "workspace": row.to_json() })))
}

/// Oneloop's `CreateWorkspaceRequest` (`{name}`), plus optional settings. Unknown fields are
/// ignored: this body belongs to Oneloop's published API.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateWorkspace {
    name: String,
    #[serde(default)]
    environment: Option<String>,
    #[serde(default)]
    default_key_prefix: Option<String>,
    #[serde(default, rename = "defaultAllowedIPs")]
    default_allowed_ips: Option<Vec<String>>,
    #[serde(default)]
    default_rate_limit_per_second: Option<i64>,
    #[serde(default)]
    default_expiration: Option<i64>,
}

async fn create_workspace(
    State(state): State<AppState>,
    principal: Principal,
    client: ClientInfo,
    JsonBody(body): JsonBody<CreateWorkspace>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    require_workspace_write(&principal)?;
    if principal.bound_workspace().is_some() {
        return Err(ApiError::forbidden(
            "WORKSPACE_BOUND_KEY",
            "an SDK key bound to one workspace cannot create workspaces",
        ));
    }
    let name = validate_name(&body.name, "workspace")?;
    let environment = parse_environment(body.environment.as_deref().unwrap_or("live"))?;
    let key_prefix = body
        .default_key_prefix
        .as_deref()
        .map(validate_key_prefix)
        .transpose()?;
    let allowed_ips = validate_allowed_ips(body.default_allowed_ips.as_deref().unwrap_or(&[]))?;
    let rate_limit = body
        .default_rate_limit_per_second
        .map(validate_rate_limit)
        .transpose()?;
    let expiration = body
        .default_expiration
        .map(validate_expiration)
        .transpose()?;

    let now = now_ms();
    let row = WorkspaceRow {
        id: new_id(),
        org_id: principal.org_id().to_owned(),
        name,
        environment: environment.to_owned(),
        default_key_prefix: key_prefix,
        default_allowed_ips: serde_json::to_string(&allowed_ips).map_err(ApiError::internal)?,
        default_rate_limit_per_second: rate_limit,
        default_expiration: expiration,
        catalogue: r#"{"modules":[]}"#.to_owned(),
        allowed_origins: "[]".to_owned(),
        origin_url: None,
        created_at: now,
        updated_at: now,
    };
    let env = row.environment();
    with_db!(&state.db, |pool| {
        let mut tx = pool.begin_write().await?;
        sqlx::query(
            "INSERT INTO workspaces (id, org_id, name, environment, default_key_prefix,
                 default_allowed_ips, default_rate_limit_per_second, default_expiration,
                 catalogue, allowed_origins, origin_url, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(&row.id)
        .bind(&row.org_id)
        .bind(&row.name)
        .bind(&row.environment)
        .bind(&row.default_key_prefix)
        .bind(&row.default_allowed_ips)
        .bind(row.default_rate_limit_per_second)
        .bind(row.default_expiration)
        .bind(&row.catalogue)
        .bind(&row.allowed_origins)
        .bind(&row.origin_url)
        .bind(row.created_at)
        .bind(row.updated_at)
        .execute(&mut *tx)
        .await?;
        let pk_id = new_id();
        let pk = tx.insert_publishable_key(&pk_id, &row.id, env, now).await?;
        tx.enqueue_publishable_key(&pk_id).await?;
        let (sdk_id, sdk) = tx
            .insert_sdk_key(
                &state.keys,
                &NewSdkKey {
                    org_id: &row.org_id,
                    workspace_id: Some(&row.id),
                    name: ACCESS_KEY_NAME,
                    scopes: SdkScopes::all(),
                    environment: env,
                    is_access_key: true,
                    created_by: Some(principal.actor_id()),
                    now,
                },
            )
            .await?;
        tx.record_audit(
            &AuditEntry::by(&principal, "workspace.create")
                .in_workspace(&row.id)
                .on(&row.id)
                .with(json!({
                    "name": row.name,
                    "environment": row.environment,
                    "publishableKey": pk.mask(),
                    "publishableKeyId": pk_id,
                    "sdkAccessKey": sdk.mask(),
                    "sdkAccessKeyId": sdk_id,
                })),
            &client,
        )
        .await?;
        tx.commit().await?;
    });
    tracing::info!(workspace = %row.id, org = %row.org_id, "workspace created");
    Ok((
        StatusCode::CREATED,
        Json(json!({ "workspace": row.to_json() })),
    ))
}

/// Oneloop's `UpdateWorkspaceRequest`, plus `name`. Absent fields stay as they are; `null`
/// clears an optional setting. Unknown fields are ignored (Oneloop's API).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateWorkspace {
    #[serde(default)]
    name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    default_key_prefix: Option<Option<String>>,
    #[serde(default, rename = "defaultAllowedIPs", deserialize_with = "present")]
    default_allowed_ips: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "present")]
    default_rate_limit_per_second: Option<Option<i64>>,
    #[serde(default, deserialize_with = "present")]
    default_expiration: Option<Option<i64>>,
}

async fn update_workspace(
    State(state): State<AppState>,
    principal: Principal,
    client: ClientInfo,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<UpdateWorkspace>,
) -> ApiResult<Json<serde_json::Value>> {
    require_workspace_write(&principal)?;
    principal.require_workspace(&id)?;
    // Validate everything before touching the database.
    let name = body
        .name
        .as_deref()
        .map(|n| validate_name(n, "workspace"))
        .transpose()?;
    let key_prefix = match &body.default_key_prefix {
        Some(Some(p)) => Some(Some(validate_key_prefix(p)?)),
        Some(None) => Some(None),
        None => None,
    };
    let allowed_ips = match &body.default_allowed_ips {
        Some(list) => Some(validate_allowed_ips(list.as_deref().unwrap_or(&[]))?),
        None => None,
    };
    let rate_limit = match body.default_rate_limit_per_second {
        Some(Some(n)) => Some(Some(validate_rate_limit(n)?)),
        other => other,
    };
    let expiration = match body.default_expiration {
        Some(Some(n)) => Some(Some(validate_expiration(n)?)),
        other => other,
    };
    let mut row = find_workspace(&state, principal.org_id(), &id).await?;
    let mut changed = Vec::new();
    if let Some(n) = name {
        row.name = n;
        changed.push("name");
    }
    if let Some(p) = key_prefix {
        row.default_key_prefix = p;
        changed.push("defaultKeyPrefix");
    }
    if let Some(ips) = allowed_ips {
        row.default_allowed_ips = serde_json::to_string(&ips).map_err(ApiError::internal)?;
        changed.push("defaultAllowedIPs");
    }
    if let Some(r) = rate_limit {
        row.default_rate_limit_per_second = r;
        changed.push("defaultRateLimitPerSecond");
    }
    if let Some(e) = expiration {
        row.default_expiration = e;
        changed.push("defaultExpiration");
    }
    row.updated_at = now_ms();
    // Only the fields this request names are written, so concurrent PATCHes of different
    // fields do not undo each other.
    with_db!(&state.db, |pool| {
        let mut tx = pool.begin_write().await?;
        let done = sqlx::query(
            "UPDATE workspaces SET
                 name = CASE WHEN $3 THEN $4 ELSE name END,
                 default_key_prefix = CASE WHEN $5 THEN $6 ELSE default_key_prefix END,
                 default_allowed_ips = CASE WHEN $7 THEN $8 ELSE default_allowed_ips END,
                 default_rate_limit_per_second = CASE WHEN $9 THEN $10 ELSE default_rate_limit_per_second END,
                 default_expiration = CASE WHEN $11 THEN $12 ELSE default_expiration END,
                 updated_at = $13
             WHERE id = $1 AND org_id = $2",
        )
        .bind(&row.id)
        .bind(&row.org_id)
        .bind(changed.contains(&"name"))
        .bind(&row.name)
        .bind(changed.contains(&"defaultKeyPrefix"))
        .bind(&row.default_key_prefix)
        .bind(changed.contains(&"defaultAllowedIPs"))
        .bind(&row.default_allowed_ips)
        .bind(changed.contains(&"defaultRateLimitPerSecond"))
        .bind(row.default_rate_limit_per_second)
        .bind(changed.contains(&"defaultExpiration"))
        .bind(row.default_expiration)
        .bind(row.updated_at)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(ApiError::not_found("workspace"));
        }
        tx.record_audit(
            &AuditEntry::by(&principal, "workspace.update")
                .in_workspace(&row.id)
                .on(&row.id)
                .with(json!({ "changed": changed })),
            &client,
        )
        .await?;
        tx.commit().await?;
    });
    let row = find_workspace(&state, principal.org_id(), &id).await?;
    Ok(Json(json!({ "workspace": row.to_json() })))
}

async fn get_modules(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<Json<CatalogueJson>> {
    let row = find_workspace(&state, &user.org_id, &id).await?;
    user.authorize(Action::ReadDashboard)?;
    let routes = stored_route_map(&state, &row.id).await?;
    Ok(Json(CatalogueJson::from_parts(row.catalogue(), &routes)))
}

/// The stored route map of a workspace (empty if none or unreadable, which validation on
/// write prevents).
async fn stored_route_map(state: &AppState, workspace_id: &str) -> ApiResult<Vec<RouteBinding>> {
    let text: Option<String> = with_db!(&state.db, |pool| {
        sqlx::query_scalar("SELECT route_map FROM workspaces WHERE id = $1")
            .bind(workspace_id)
            .fetch_optional(pool)
            .await?
    });
    Ok(text
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default())
}

/// A functionality as the API reads and writes it: a name, or a name with its routes.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(untagged)]
enum FunctionalityJson {
    /// Just the name.
    Name(String),
    /// The name and its routes.
    Mapped(MappedFunctionality),
}

/// A functionality bound to routes, e.g. `{"name": "refund", "routes": ["POST /billing/refunds/*"]}`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct MappedFunctionality {
    name: String,
    #[serde(default)]
    routes: Vec<String>,
}

/// One module as the API reads and writes it.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct ModuleJson {
    name: String,
    functionalities: Vec<FunctionalityJson>,
}

/// The catalogue with its route map: `{modules: [{name, functionalities: [name | {name, routes}]}]}`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct CatalogueJson {
    modules: Vec<ModuleJson>,
}

impl CatalogueJson {
    fn from_parts(catalogue: Catalogue, routes: &[RouteBinding]) -> Self {
        let modules = catalogue
            .modules
            .into_iter()
            .map(|m| {
                let functionalities = m
                    .functionalities
                    .into_iter()
                    .map(|f| {
                        match routes
                            .iter()
                            .find(|b| b.module == m.name && b.functionality == f)
                        {
                            Some(b) if !b.routes.is_empty() => {
                                FunctionalityJson::Mapped(MappedFunctionality {
                                    name: f,
                                    routes: b.routes.clone(),
                                })
                            }
                            _ => FunctionalityJson::Name(f),
                        }
                    })
                    .collect();
                ModuleJson {
                    name: m.name,
                    functionalities,
                }
            })
            .collect();
        CatalogueJson { modules }
    }

    /// Splits into the names-only catalogue (canonical) and the route map, validated: names
    /// as `Catalogue::canonicalize`, routes as `RouteMap::compile` (overlaps named).
    fn into_parts(self) -> ApiResult<(Catalogue, Vec<RouteBinding>)> {
        let mut names = Vec::with_capacity(self.modules.len());
        let mut routes = Vec::with_capacity(self.modules.len());
        for m in self.modules {
            let mut functionalities = Vec::with_capacity(m.functionalities.len());
            let mut bound = Vec::with_capacity(m.functionalities.len());
            for f in m.functionalities {
                match f {
                    FunctionalityJson::Name(n) => {
                        functionalities.push(n);
                        bound.push(Vec::new());
                    }
                    FunctionalityJson::Mapped(mf) => {
                        functionalities.push(mf.name);
                        bound.push(mf.routes.iter().map(|r| r.trim().to_owned()).collect());
                    }
                }
            }
            routes.push(bound);
            names.push(Module {
                name: m.name,
                functionalities,
            });
        }
        let catalogue = Catalogue { modules: names }
            .canonicalize()
            .map_err(|e| ApiError::bad_request(e.code(), e.to_string()))?;
        // `canonicalize` keeps order and count, so the route lists line up.
        let mut bindings = Vec::new();
        for (m, bound) in catalogue.modules.iter().zip(routes) {
            for (f, routes) in m.functionalities.iter().zip(bound) {
                if !routes.is_empty() {
                    bindings.push(RouteBinding {
                        module: m.name.clone(),
                        functionality: f.clone(),
                        routes,
                    });
                }
            }
        }
        RouteMap::compile(&bindings).map_err(|e| ApiError::bad_request(e.code, e.message))?;
        Ok((catalogue, bindings))
    }
}

async fn put_modules(
    State(state): State<AppState>,
    user: CurrentUser,
    client: ClientInfo,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<CatalogueJson>,
) -> ApiResult<Json<CatalogueJson>> {
    let workspace = find_workspace(&state, &user.org_id, &id).await?;
    user.authorize(Action::ManageWorkspaces)?;
    if body.modules.len() > MAX_CATALOGUE_ENTRIES
        || body
            .modules
            .iter()
            .any(|m| m.functionalities.len() > MAX_CATALOGUE_ENTRIES)
    {
        return Err(ApiError::bad_request(
            "CATALOGUE_TOO_LARGE",
            format!(
                "a catalogue has at most {MAX_CATALOGUE_ENTRIES} modules of at most {MAX_CATALOGUE_ENTRIES} functionalities each"
            ),
        ));
    }
    // Saved in canonical form (lowercase ASCII, escapes decoded), the form checks use; the
    // route map is validated (no ambiguous overlap) before anything is written.
    let (catalogue, routes) = body.into_parts()?;
    let text = serde_json::to_string(&catalogue).map_err(ApiError::internal)?;
    let routes_text = serde_json::to_string(&routes).map_err(ApiError::internal)?;
    let route_count: usize = routes.iter().map(|b| b.routes.len()).sum();
    with_db!(&state.db, |pool| {
        let mut tx = pool.begin_write().await?;
        // The map before this change, read under the row lock (the `SET updated_at` write
        // takes it), so a concurrent save cannot make both skip the edge.
        sqlx::query("UPDATE workspaces SET updated_at = $1 WHERE id = $2 AND org_id = $3")
            .bind(now_ms())
            .bind(&workspace.id)
            .bind(&user.org_id)
            .execute(&mut *tx)
            .await?;
        let old_routes: Option<String> =
            sqlx::query_scalar("SELECT route_map FROM workspaces WHERE id = $1")
                .bind(&workspace.id)
                .fetch_optional(&mut *tx)
                .await?;
        // Writing first takes the workspace's row lock, so a rule added concurrently is
        // either seen below or waits for this commit and then checks the new catalogue.
        let done = sqlx::query(
            "UPDATE workspaces SET catalogue = $1, route_map = $2, updated_at = $3
              WHERE id = $4 AND org_id = $5",
        )
        .bind(&text)
        .bind(&routes_text)
        .bind(now_ms())
        .bind(&workspace.id)
        .bind(&user.org_id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(ApiError::not_found("workspace"));
        }
        // A blacklist rule must keep naming something in the catalogue; removing what a rule
        // blocks would silently unblock it, so the rule has to go first.
        let rules: Vec<(String, String)> = sqlx::query_as(
            "SELECT module, functionality FROM blacklist_rules WHERE workspace_id = $1
              ORDER BY module, functionality",
        )
        .bind(&workspace.id)
        .fetch_all(&mut *tx)
        .await?;
        if let Some((m, f)) = rules.iter().find(|(m, f)| catalogue.rule(m, f).is_err()) {
            return Err(ApiError::conflict(
                "CATALOGUE_IN_USE",
                format!(
                    "the blacklist rule {m}/{f} uses what this catalogue removes; remove the rule first"
                ),
            ));
        }
        // The route map travels in the key's edge record, versioned like every change.
        // Only when the map changed: a catalogue edit alone changes nothing the edge holds.
        if old_routes.as_deref() != Some(routes_text.as_str()) {
            if let Some(key_id) = tx.live_publishable_key_id(&workspace.id).await? {
                tx.enqueue_publishable_key(&key_id).await?;
            }
        }
        tx.record_audit(
            &AuditEntry::by_user(&user, "workspace.modules.update")
                .in_workspace(&workspace.id)
                .on(&workspace.id)
                .with(json!({ "modules": catalogue.modules.len(), "routes": route_count })),
            &client,
        )
        .await?;
        tx.commit().await?;
    });
    Ok(Json(CatalogueJson::from_parts(catalogue, &routes)))
}

/// `POST /api/v1/workspace/{id}/routes/classify` `{method, path}`: what the edge would do with
/// that request under the saved map and blacklist (the dashboard's "test a request" box).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClassifyRequest {
    method: String,
    path: String,
}

async fn classify_route(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ClassifyRequest>,
) -> ApiResult<Json<serde_json::Value>> {
    let workspace = find_workspace(&state, &user.org_id, &id).await?;
    user.authorize(Action::ReadDashboard)?;
    if body.method.len() > 16 || body.path.len() > 2048 {
        return Err(ApiError::bad_request(
            "INVALID_REQUEST",
            "method is at most 16 and path at most 2048 bytes",
        ));
    }
    let bindings = stored_route_map(&state, &workspace.id).await?;
    let rules: Vec<(String, String)> = with_db!(&state.db, |pool| {
        sqlx::query_as("SELECT module, functionality FROM blacklist_rules WHERE workspace_id = $1")
            .bind(&workspace.id)
            .fetch_all(pool)
            .await?
    });
    let rules: Vec<Rule> = rules
        .into_iter()
        .map(|(module, functionality)| Rule {
            module,
            functionality,
        })
        .collect();
    let blacklist = BlacklistPolicy::compile(&rules);
    let rest = body.path.split(['?', '#']).next().unwrap_or_default();
    let path = match CanonicalPath::parse(rest.strip_prefix("/g/").unwrap_or(rest)) {
        Ok(p) => p,
        Err(e) => {
            return Ok(Json(json!({
                "status": "INVALID_PATH", "reason": e.code(), "message": e.to_string(),
                "action": null, "allowed": false,
            })))
        }
    };
    let policy = RoutePolicy::compile(&bindings);
    let out = match policy.classify(&body.method, &path) {
        Some(RouteVerdict::Action(c)) => {
            let blocked = blacklist.blocks(c.module, c.functionality);
            json!({
                "status": if blocked { "BLACKLISTED" } else { "VALID" },
                "action": {"module": c.module, "functionality": c.functionality, "route": c.route},
                "allowed": !blocked,
                "forwardPath": format!("/{}", path.to_forward_path()),
            })
        }
        Some(RouteVerdict::NotMapped) | Some(RouteVerdict::NoMap) => {
            json!({"status": "ROUTE_NOT_MAPPED", "action": null, "allowed": false})
        }
        None => json!({"status": "ROUTE_MAP_INVALID", "action": null, "allowed": false}),
    };
    Ok(Json(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(validate_name("  Prod  ", "workspace").unwrap(), "Prod");
        assert!(validate_name("   ", "workspace").is_err());
        assert!(validate_name(&"é".repeat(100), "workspace").is_ok());
        assert!(validate_name(&"é".repeat(101), "workspace").is_err());
        assert!(validate_name("a\nb", "workspace").is_err());
        assert!(validate_name("a\u{7f}b", "workspace").is_err());
    }

    #[test]
    fn allowed_ips_are_addresses_or_cidrs() {
        assert_eq!(validate_ip_entry("10.0.0.0/8").unwrap(), "10.0.0.0/8");
        assert_eq!(validate_ip_entry(" ::1 ").unwrap(), "::1");
        assert_eq!(validate_ip_entry("2001:db8::/32").unwrap(), "2001:db8::/32");
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "example.com",
            "1.2.3.4/",
            "1.2.3.4/-1",
            "",
        ] {
            assert!(validate_ip_entry(bad).is_err(), "{bad}");
        }
    }
}
