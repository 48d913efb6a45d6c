//! Members of the organisation: `GET/POST /api/v1/members`, `PATCH/DELETE
//! /api/v1/members/{id}`. Only owners and admins manage members; only owners touch owners;
//! the last owner stays (`keygate_shared::authz` decides, the storage call checks the owner
//! count under the organisation's lock). `keygate user add` and `keygate org add` use
//! [`add_member`] and [`create_organisation`].

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use keygate_shared::authz::{Action, Role};
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::members::{Invite, Member, MemberAnswer, MemberList, RoleChange};
use crate::api::paths::MemberPath;
use crate::api::{ErrorBody, Timestamp};
use crate::error::{ApiError, ApiResult};
use crate::http::auth::CurrentUser;
use crate::http::{validate, AppState, ClientInfo, JsonBody};
use crate::ids::{new_id, now_ms};
use crate::store;
use crate::store::audit::AuditEntry;
use crate::store::members::MemberChange;
use crate::store::{Db, Refusal, StoreError, StoreResult};

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_members, invite))
        .routes(routes!(change_role, remove))
}

/// List the organisation's members.
#[utoipa::path(
    get, path = "/members", tag = "members",
    responses(
        (status = 200, description = "The organisation's members, oldest first", body = MemberList),
    ),
    security(("session" = [])),
)]
async fn list_members(
    State(state): State<AppState>,
    user: CurrentUser,
) -> ApiResult<Json<MemberList>> {
    user.authorize(Action::ReadDashboard)?;
    let members = store::members::list(&state.db, &user.org_id).await?;
    Ok(Json(MemberList { members }))
}

/// Invite a member.
///
/// The address can then sign in. Owners and admins invite; only owners invite owners.
#[utoipa::path(
    post, path = "/members", tag = "members",
    request_body = Invite,
    responses(
        (status = 201, description = "The new member", body = MemberAnswer),
        (status = 409, description = "`MEMBER_EXISTS`", body = ErrorBody),
        (status = "4XX", description = "`INVALID_EMAIL`, `INVALID_ROLE`, `ROLE_REQUIRED`, `STEP_UP_REQUIRED` or an invalid body", body = ErrorBody),
    ),
    security(("session" = [])),
)]
async fn invite(
    State(state): State<AppState>,
    user: CurrentUser,
    client: ClientInfo,
    JsonBody(req): JsonBody<Invite>,
) -> ApiResult<(StatusCode, Json<MemberAnswer>)> {
    user.authorize(Action::GrantMember)?;
    let role = parse_role(&req.role)?;
    user.authorize(Action::grant(role))?;
    let member = Member {
        id: new_id(),
        email: validate::email(&req.email)?,
        role: role.as_str().to_owned(),
        created_at: Timestamp(now_ms()),
        last_sign_in_at: None,
    };
    let audit = AuditEntry::by_user(&user, "member.invite")
        .on(&member.email)
        .with(json!({"role": role.as_str()}));
    store::members::invite(&state.db, &user.org_id, &member, &audit, &client).await?;
    Ok((StatusCode::CREATED, Json(MemberAnswer { member })))
}

/// Change a member's role.
#[utoipa::path(
    patch, path = "/members/{id}", tag = "members",
    params(MemberPath),
    request_body = RoleChange,
    responses(
        (status = 200, description = "The member as changed", body = MemberAnswer),
        (status = 409, description = "`LAST_OWNER`: an organisation keeps at least one owner", body = ErrorBody),
        (status = "4XX", description = "`INVALID_ROLE`, `ROLE_REQUIRED`, `STEP_UP_REQUIRED`, no such member or an invalid body", body = ErrorBody),
    ),
    security(("session" = [])),
)]
async fn change_role(
    State(state): State<AppState>,
    user: CurrentUser,
    client: ClientInfo,
    Path(MemberPath { id }): Path<MemberPath>,
    JsonBody(req): JsonBody<RoleChange>,
) -> ApiResult<Json<MemberAnswer>> {
    user.authorize(Action::ChangeMember)?;
    validate::id(&id, "member")?;
    let role = parse_role(&req.role)?;
    let allowed = |action: Action| refusal(user.authorize(action));
    let change = MemberChange {
        org_id: &user.org_id,
        member_id: &id,
        allowed: &allowed,
        audit: AuditEntry::by_user(&user, "member.role_change"),
        client: &client,
    };
    let member = store::members::change_role(&state.db, change, role).await?;
    Ok(Json(MemberAnswer { member }))
}

/// Remove a member.
///
/// Their sessions end at once.
#[utoipa::path(
    delete, path = "/members/{id}", tag = "members",
    params(MemberPath),
    responses(
        (status = 204, description = "Removed"),
        (status = 409, description = "`LAST_OWNER`: an organisation keeps at least one owner", body = ErrorBody),
        (status = "4XX", description = "`ROLE_REQUIRED`, `STEP_UP_REQUIRED` or no such member", body = ErrorBody),
    ),
    security(("session" = [])),
)]
async fn remove(
    State(state): State<AppState>,
    user: CurrentUser,
    client: ClientInfo,
    Path(MemberPath { id }): Path<MemberPath>,
) -> ApiResult<StatusCode> {
    user.authorize(Action::ChangeMember)?;
    validate::id(&id, "member")?;
    let allowed = |action: Action| refusal(user.authorize(action));
    let change = MemberChange {
        org_id: &user.org_id,
        member_id: &id,
        allowed: &allowed,
        audit: AuditEntry::by_user(&user, "member.remove"),
        client: &client,
    };
    store::members::remove(&state.db, change).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn parse_role(s: &str) -> ApiResult<Role> {
    Role::parse(s)
        .ok_or_else(|| ApiError::bad_request("INVALID_ROLE", "role must be owner, admin or member"))
}

/// An authorization denial (always a 403) as the refusal a storage call answers with.
fn refusal(decision: ApiResult<()>) -> StoreResult<()> {
    decision.map_err(|e| StoreError::refused(Refusal::Forbidden, e.reason, e.message))
}

/// Adds `email` with `role` to organisation `org_id` (or, with `org_id` `None`, to the
/// instance's organisation, founding it on an empty instance). Returns (user id,
/// organisation id). Used by `keygate user add`.
pub async fn add_member(
    db: &Db,
    org_id: Option<&str>,
    email: &str,
    role: Role,
) -> ApiResult<(String, String)> {
    let email = validate::email(email)?;
    Ok(store::members::add(db, org_id, &email, role).await?)
}

/// Creates a new organisation with `owner_email` as its owner (another tenant on the same
/// instance). Returns (organisation id, user id). Used by `keygate org add`.
pub async fn create_organisation(
    db: &Db,
    name: &str,
    owner_email: &str,
) -> ApiResult<(String, String)> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "INVALID_NAME",
            "organisation names are 1-100 printable characters",
        ));
    }
    let email = validate::email(owner_email)?;
    Ok(store::organisations::create(db, name, &email).await?)
}
