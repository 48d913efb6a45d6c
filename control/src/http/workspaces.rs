//! Workspaces, as HTTP sees them: the Oneloop-compatible `/api/v1/workspace` routes, the
//! workspace's module/functionality catalogue with its route map, and the route classifier.
//!
//! The organisation is the tenant boundary: another organisation's workspace id answers
//! exactly like an id that never existed (404).

use std::net::IpAddr;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use keygate_shared::authz::Action;
use keygate_shared::blacklist::{BlacklistPolicy, Catalogue, Module};
use keygate_shared::key::ApiKeyPrefix;
use keygate_shared::route::{CanonicalPath, RouteBinding, RouteMap, RoutePolicy, RouteVerdict};
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::paths::WorkspacePath;
use crate::api::workspaces::{
    CatalogueFunctionality, CatalogueModule, ClassifiedAction, ClassifyRequest, CreateWorkspace,
    MappedFunctionality, ModuleCatalogue, OneWorkspace, RouteClassification, UpdateWorkspace,
    WorkspaceList,
};
use crate::api::ErrorBody;
use crate::error::{ApiError, ApiResult};
use crate::http::auth::Principal;
use crate::http::user_workspace::UserWorkspace;
use crate::http::{validate, AppState, ClientInfo, JsonBody};
use crate::ids::{new_id, now_ms};
use crate::store;
use crate::store::audit::AuditEntry;
pub use crate::store::workspaces::ReachableWorkspace;
use crate::store::workspaces::{WorkspaceChanges, WorkspaceRow};

/// Most entries in a workspace's default allowed IPs.
pub const MAX_ALLOWED_IPS: usize = 100;
/// Most modules in a catalogue, and functionalities per module.
pub const MAX_CATALOGUE_ENTRIES: usize = 100;
/// Highest default rate limit a workspace may set, per second.
pub const MAX_RATE_LIMIT_PER_SECOND: i64 = 1_000_000;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_workspaces, create_workspace))
        .routes(routes!(get_workspace, update_workspace))
        .routes(routes!(get_modules, put_modules))
        .routes(routes!(classify_route))
}

/// Loads a workspace the caller may reach: same organisation and, for a workspace-bound SDK
/// key, its own workspace. Anything else (or a malformed id) is a 404, so a caller cannot
/// learn whether another tenant's workspace exists.
pub async fn reachable_workspace(
    state: &AppState,
    principal: &Principal,
    workspace_id: &str,
) -> ApiResult<ReachableWorkspace> {
    validate::id(workspace_id, "workspace")?;
    principal.require_workspace(workspace_id)?;
    Ok(store::workspaces::reachable(&state.db, principal.org_id(), workspace_id).await?)
}

/// Loads a workspace of `org_id`, or 404 (malformed id, unknown id or another organisation's
/// id alike).
pub async fn find_workspace(state: &AppState, org_id: &str, id: &str) -> ApiResult<WorkspaceRow> {
    validate::id(id, "workspace")?;
    Ok(store::workspaces::find(&state.db, org_id, id).await?)
}

/// List workspaces.
#[utoipa::path(
    get, path = "/workspace", tag = "workspaces",
    responses(
        (status = 200, description = "The organisation's workspaces, oldest first (a workspace-bound key sees its own)", body = WorkspaceList),
    ),
    security(("session" = []), ("sdkKey" = ["workspace:read"])),
)]
async fn list_workspaces(
    State(state): State<AppState>,
    principal: Principal,
) -> ApiResult<Json<WorkspaceList>> {
    principal.authorize(Action::ReadWorkspaces)?;
    let workspaces =
        store::workspaces::list(&state.db, principal.org_id(), principal.bound_workspace()).await?;
    Ok(Json(WorkspaceList { workspaces }))
}

/// Get a workspace.
#[utoipa::path(
    get, path = "/workspace/{id}", tag = "workspaces",
    params(WorkspacePath),
    responses(
        (status = 200, description = "The workspace", body = OneWorkspace),
    ),
    security(("session" = []), ("sdkKey" = ["workspace:read"])),
)]
async fn get_workspace(
    State(state): State<AppState>,
    principal: Principal,
    Path(WorkspacePath { id }): Path<WorkspacePath>,
) -> ApiResult<Json<OneWorkspace>> {
    principal.authorize(Action::ReadWorkspaces)?;
    principal.require_workspace(&id)?;
    let row = find_workspace(&state, principal.org_id(), &id).await?;
    Ok(Json(OneWorkspace {
        workspace: row.to_api(),
    }))
}

/// Create a workspace with its publishable key and SDK access key.
#[utoipa::path(
    post, path = "/workspace", tag = "workspaces",
    request_body = CreateWorkspace,
    responses(
        (status = 201, description = "The new workspace", body = OneWorkspace),
        (status = 403, description = "`WORKSPACE_BOUND_KEY`: a workspace-bound SDK key cannot create workspaces", body = ErrorBody),
    ),
    security(("session" = []), ("sdkKey" = ["workspace:write"])),
)]
async fn create_workspace(
    State(state): State<AppState>,
    principal: Principal,
    client: ClientInfo,
    JsonBody(body): JsonBody<CreateWorkspace>,
) -> ApiResult<(StatusCode, Json<OneWorkspace>)> {
    principal.authorize(Action::ManageWorkspaces)?;
    if principal.bound_workspace().is_some() {
        return Err(ApiError::forbidden(
            "WORKSPACE_BOUND_KEY",
            "an SDK key bound to one workspace cannot create workspaces",
        ));
    }
    let row = new_workspace(body, principal.org_id())?;
    let audit = AuditEntry::by(&principal, "workspace.create")
        .in_workspace(&row.id)
        .on(&row.id);
    store::workspaces::create(
        &state.db,
        (&state.keys, state.settings.edge_secret.as_deref()),
        &row,
        principal.actor_id(),
        audit,
        &client,
    )
    .await?;
    tracing::info!(workspace = %row.id, org = %row.org_id, "workspace created");
    Ok((
        StatusCode::CREATED,
        Json(OneWorkspace {
            workspace: row.to_api(),
        }),
    ))
}

/// The row a valid create request stores.
fn new_workspace(body: CreateWorkspace, org_id: &str) -> ApiResult<WorkspaceRow> {
    let name = validate::name(&body.name, "workspace")?;
    let environment = parse_environment(body.environment.as_deref().unwrap_or("live"))?;
    let default_key_prefix = body
        .default_key_prefix
        .as_deref()
        .map(validate_key_prefix)
        .transpose()?;
    let allowed_ips = validate_allowed_ips(body.default_allowed_ips.as_deref().unwrap_or(&[]))?;
    let default_rate_limit_per_second = body
        .default_rate_limit_per_second
        .map(validate_rate_limit)
        .transpose()?;
    let default_expiration = body
        .default_expiration
        .map(validate_expiration)
        .transpose()?;
    let now = now_ms();
    Ok(WorkspaceRow {
        id: new_id(),
        org_id: org_id.to_owned(),
        name,
        environment: environment.to_owned(),
        default_key_prefix,
        default_allowed_ips: json!(allowed_ips).to_string(),
        default_rate_limit_per_second,
        default_expiration,
        catalogue: r#"{"modules":[]}"#.to_owned(),
        allowed_origins: "[]".to_owned(),
        origin_url: None,
        created_at: now,
        updated_at: now,
    })
}

/// Update a workspace's name and defaults.
#[utoipa::path(
    patch, path = "/workspace/{id}", tag = "workspaces",
    params(WorkspacePath),
    request_body = UpdateWorkspace,
    responses(
        (status = 200, description = "The workspace as it is now", body = OneWorkspace),
    ),
    security(("session" = []), ("sdkKey" = ["workspace:write"])),
)]
async fn update_workspace(
    State(state): State<AppState>,
    principal: Principal,
    client: ClientInfo,
    Path(WorkspacePath { id }): Path<WorkspacePath>,
    JsonBody(body): JsonBody<UpdateWorkspace>,
) -> ApiResult<Json<OneWorkspace>> {
    principal.authorize(Action::ManageWorkspaces)?;
    principal.require_workspace(&id)?;
    // Validate everything before touching the database.
    let changes = workspace_changes(body)?;
    validate::id(&id, "workspace")?;
    let audit = AuditEntry::by(&principal, "workspace.update")
        .in_workspace(&id)
        .on(&id);
    let workspace =
        store::workspaces::update(&state.db, principal.org_id(), &id, &changes, audit, &client)
            .await?;
    Ok(Json(OneWorkspace { workspace }))
}

/// The changes a valid PATCH body asks for.
fn workspace_changes(body: UpdateWorkspace) -> ApiResult<WorkspaceChanges> {
    Ok(WorkspaceChanges {
        name: body
            .name
            .as_deref()
            .map(|n| validate::name(n, "workspace"))
            .transpose()?,
        default_key_prefix: match body.default_key_prefix {
            Some(Some(p)) => Some(Some(validate_key_prefix(&p)?)),
            other => other,
        },
        default_allowed_ips: body
            .default_allowed_ips
            .map(|list| validate_allowed_ips(list.as_deref().unwrap_or(&[])))
            .transpose()?,
        default_rate_limit_per_second: match body.default_rate_limit_per_second {
            Some(Some(n)) => Some(Some(validate_rate_limit(n)?)),
            other => other,
        },
        default_expiration: match body.default_expiration {
            Some(Some(n)) => Some(Some(validate_expiration(n)?)),
            other => other,
        },
    })
}

/// Get the module/functionality catalogue.
#[utoipa::path(
    get, path = "/workspace/{id}/modules", tag = "workspaces",
    params(WorkspacePath),
    responses(
        (status = 200, description = "The catalogue, each functionality with its routes if it has any", body = ModuleCatalogue),
    ),
    security(("session" = [])),
)]
async fn get_modules(
    State(state): State<AppState>,
    UserWorkspace { user, workspace }: UserWorkspace,
) -> ApiResult<Json<ModuleCatalogue>> {
    user.authorize(Action::ReadDashboard)?;
    let routes = store::workspaces::route_map(&state.db, &workspace.id).await?;
    Ok(Json(catalogue_answer(workspace.catalogue(), &routes)))
}

/// Replace the catalogue and its route map.
#[utoipa::path(
    put, path = "/workspace/{id}/modules", tag = "workspaces",
    params(WorkspacePath),
    request_body = ModuleCatalogue,
    responses(
        (status = 200, description = "The catalogue as saved (canonical names)", body = ModuleCatalogue),
        (status = 409, description = "`CATALOGUE_IN_USE`: a blacklist rule names what this catalogue removes", body = ErrorBody),
        (status = "4XX", description = "Invalid catalogue or routes, not allowed, or no such workspace", body = ErrorBody),
    ),
    security(("session" = [])),
)]
async fn put_modules(
    State(state): State<AppState>,
    UserWorkspace { user, workspace }: UserWorkspace,
    client: ClientInfo,
    JsonBody(body): JsonBody<ModuleCatalogue>,
) -> ApiResult<Json<ModuleCatalogue>> {
    user.authorize(Action::ManageWorkspaces)?;
    // Saved in canonical form (lowercase ASCII, escapes decoded), the form checks use; the
    // route map is validated (no ambiguous overlap) before anything is written.
    let (catalogue, routes) = catalogue_parts(body)?;
    let route_count: usize = routes.iter().map(|b| b.routes.len()).sum();
    let audit = AuditEntry::by_user(&user, "workspace.modules.update")
        .in_workspace(&workspace.id)
        .on(&workspace.id)
        .with(json!({ "modules": catalogue.modules.len(), "routes": route_count }));
    store::workspaces::save_catalogue(
        &state.db,
        &user.org_id,
        &workspace.id,
        &catalogue,
        &routes,
        &audit,
        &client,
    )
    .await?;
    Ok(Json(catalogue_answer(catalogue, &routes)))
}

/// The catalogue with its route map, as the API shows it.
fn catalogue_answer(catalogue: Catalogue, routes: &[RouteBinding]) -> ModuleCatalogue {
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
                            CatalogueFunctionality::Mapped(MappedFunctionality {
                                name: f,
                                routes: b.routes.clone(),
                            })
                        }
                        _ => CatalogueFunctionality::Name(f),
                    }
                })
                .collect();
            CatalogueModule {
                name: m.name,
                functionalities,
            }
        })
        .collect();
    ModuleCatalogue { modules }
}

/// Splits a catalogue into the names-only catalogue (canonical) and the route map, validated:
/// sizes, names as `Catalogue::canonicalize`, routes as `RouteMap::compile` (overlaps named).
fn catalogue_parts(body: ModuleCatalogue) -> ApiResult<(Catalogue, Vec<RouteBinding>)> {
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
    let mut names = Vec::with_capacity(body.modules.len());
    let mut routes = Vec::with_capacity(body.modules.len());
    for m in body.modules {
        let (functionalities, bound): (Vec<String>, Vec<Vec<String>>) = m
            .functionalities
            .into_iter()
            .map(|f| match f {
                CatalogueFunctionality::Name(n) => (n, Vec::new()),
                CatalogueFunctionality::Mapped(mf) => (
                    mf.name,
                    mf.routes.iter().map(|r| r.trim().to_owned()).collect(),
                ),
            })
            .unzip();
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

/// Classify a request under the route map.
#[utoipa::path(
    post, path = "/workspace/{id}/routes/classify", tag = "workspaces",
    params(WorkspacePath),
    request_body = ClassifyRequest,
    responses(
        (status = 200, description = "Which action the method and path resolve to under the saved route map, and whether the publishable key may call it", body = RouteClassification),
    ),
    security(("session" = [])),
)]
async fn classify_route(
    State(state): State<AppState>,
    UserWorkspace { user, workspace }: UserWorkspace,
    JsonBody(body): JsonBody<ClassifyRequest>,
) -> ApiResult<Json<RouteClassification>> {
    user.authorize(Action::ReadDashboard)?;
    if body.method.len() > 16 || body.path.len() > 2048 {
        return Err(ApiError::bad_request(
            "INVALID_REQUEST",
            "method is at most 16 and path at most 2048 bytes",
        ));
    }
    let (bindings, rules) = store::workspaces::routes_and_rules(&state.db, &workspace.id).await?;
    Ok(Json(classify(&bindings, &rules, &body)))
}

/// What the edge would do with `request` under `bindings` and the blacklist `rules`.
fn classify(
    bindings: &[RouteBinding],
    rules: &[keygate_shared::blacklist::Rule],
    request: &ClassifyRequest,
) -> RouteClassification {
    let refused = |status: &str| RouteClassification {
        status: status.to_owned(),
        reason: None,
        message: None,
        action: None,
        allowed: false,
        forward_path: None,
    };
    let rest = request.path.split(['?', '#']).next().unwrap_or_default();
    let path = match CanonicalPath::parse(rest.strip_prefix("/g/").unwrap_or(rest)) {
        Ok(p) => p,
        Err(e) => {
            return RouteClassification {
                reason: Some(e.code().to_owned()),
                message: Some(e.to_string()),
                ..refused("INVALID_PATH")
            }
        }
    };
    match RoutePolicy::compile(bindings).classify(&request.method, &path) {
        Some(RouteVerdict::Action(c)) => {
            let blocked = BlacklistPolicy::compile(rules).blocks(c.module, c.functionality);
            RouteClassification {
                status: if blocked { "BLACKLISTED" } else { "VALID" }.to_owned(),
                action: Some(ClassifiedAction {
                    module: c.module.to_owned(),
                    functionality: c.functionality.to_owned(),
                    route: c.route.to_owned(),
                }),
                allowed: !blocked,
                forward_path: Some(format!("/{}", path.to_forward_path())),
                ..refused("")
            }
        }
        Some(RouteVerdict::NotMapped) | Some(RouteVerdict::NoMap) => refused("ROUTE_NOT_MAPPED"),
        None => refused("ROUTE_MAP_INVALID"),
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
    validate::bounded(
        list,
        "defaultAllowedIPs",
        MAX_ALLOWED_IPS,
        "TOO_MANY_ALLOWED_IPS",
    )?;
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

#[cfg(test)]
mod tests {
    use super::*;

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
