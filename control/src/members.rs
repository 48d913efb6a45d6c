//! Members of the organisation: invite (the address can then sign in), change role, remove.
//! Only owners and admins manage members; only owners touch owners; the last owner stays.
//! `keygate user add` uses [`add_member`] from the command line.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, patch};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::{CurrentUser, Role};
use crate::error::{ApiError, ApiResult, ResultExt};
use crate::http::{AppState, ClientInfo, JsonBody};
use crate::ids::{is_valid_id, new_id, now_ms, rfc3339};
use crate::sessions::normalize_email;
use crate::store::audit::{AuditEntry, AuditStore};
use crate::store::{Db, WriteTx};
use crate::with_db;
use keygate_shared::authz::Action;

/// Routes: `/members`, `/members/{id}`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/members", get(list).post(invite))
        .route("/members/{id}", patch(change_role).delete(remove))
}

type MemberRow = (String, String, String, i64, Option<i64>);

fn member_json((id, email, role, created_at, last_sign_in_at): MemberRow) -> Value {
    json!({
        "id": id,
        "email": email,
        "role": role,
        "createdAt": rfc3339(created_at),
        "lastSignInAt": last_sign_in_at.map(rfc3339),
    })
}

async fn list(State(state): State<AppState>, user: CurrentUser) -> ApiResult<Json<Value>> {
    user.authorize(Action::ReadDashboard)?;
    let rows: Vec<MemberRow> = with_db!(&state.db, |pool| {
        sqlx::query_as(
            "SELECT id, email, role, created_at, last_sign_in_at FROM users WHERE org_id = $1 ORDER BY created_at, id",
        )
        .bind(&user.org_id)
        .fetch_all(pool)
        .await
    })?;
    Ok(Json(
        json!({"members": rows.into_iter().map(member_json).collect::<Vec<_>>()}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Invite {
    email: String,
    #[serde(default = "default_role")]
    role: String,
}

fn default_role() -> String {
    "member".into()
}

fn parse_role(s: &str) -> ApiResult<Role> {
    Role::parse(s)
        .ok_or_else(|| ApiError::bad_request("INVALID_ROLE", "role must be owner, admin or member"))
}

/// Adds `email` with `role` to organisation `org_id` (or, with `org_id` `None` on an instance
/// with no organisation yet, creates one with this user as owner). Used by the CLI.
pub async fn add_member(
    db: &Db,
    org_id: Option<&str>,
    email: &str,
    role: Role,
) -> ApiResult<(String, String)> {
    let email = normalize_email(email)?;
    let now = now_ms();
    let id = new_id();
    with_db!(db, |pool| {
        let mut tx = pool.begin_write().await?;
        let org_id = match org_id {
            Some(o) => o.to_owned(),
            None => {
                let existing: Option<String> =
                    sqlx::query_scalar("SELECT id FROM organisations ORDER BY created_at LIMIT 1")
                        .fetch_optional(&mut *tx)
                        .await?;
                match existing {
                    Some(o) => o,
                    None => {
                        // An empty instance: this user founds the organisation as its owner.
                        let org = new_id();
                        if !tx.claim_founding(&org).await? {
                            return Err(ApiError::conflict(
                                "ALREADY_FOUNDED",
                                "an organisation was founded at the same moment; try again",
                            ));
                        }
                        let user = tx
                            .insert_organisation_as(&org, organisation_name_for(&email), &email)
                            .await?;
                        tx.commit().await?;
                        return Ok((user, org));
                    }
                }
            }
        };
        let owners: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE org_id = $1 AND role = 'owner'")
                .bind(&org_id)
                .fetch_one(&mut *tx)
                .await?;
        // The first member of an organisation is always its owner.
        let role = if owners == 0 { Role::Owner } else { role };
        sqlx::query(
            "INSERT INTO users (id, org_id, email, role, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&id)
        .bind(&org_id)
        .bind(&email)
        .bind(role.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await
        .on_constraint(|_| {
            ApiError::conflict("MEMBER_EXISTS", "that address is already a member")
        })?;
        tx.commit().await?;
        Ok((id, org_id))
    })
}

/// Creating organisations inside the caller's transaction.
#[allow(async_fn_in_trait)]
pub trait OrganisationStore {
    /// Inserts organisation `name` with `owner_email` (already normalised) as its owner;
    /// returns (organisation id, user id). A taken email is a unique violation.
    async fn insert_organisation(
        &mut self,
        name: &str,
        owner_email: &str,
    ) -> Result<(String, String), sqlx::Error>;

    /// [`OrganisationStore::insert_organisation`] with the organisation id chosen by the
    /// caller; returns the user id.
    async fn insert_organisation_as(
        &mut self,
        org_id: &str,
        name: &str,
        owner_email: &str,
    ) -> Result<String, sqlx::Error>;

    /// Records `org_id` as the organisation founded by the first sign-in on this instance;
    /// `false` when another one already was (one conditional insert, so of two racing
    /// first sign-ins exactly one founds).
    async fn claim_founding(&mut self, org_id: &str) -> Result<bool, sqlx::Error>;
}

crate::impl_for_both_backends!(OrganisationStore {
    async fn insert_organisation(&mut self, name: &str, owner_email: &str) -> Result<(String, String), sqlx::Error> {
        let org_id = new_id();
        let user_id = self.insert_organisation_as(&org_id, name, owner_email).await?;
        Ok((org_id, user_id))
    }

    async fn insert_organisation_as(&mut self, org_id: &str, name: &str, owner_email: &str) -> Result<String, sqlx::Error> {
        let (user_id, now) = (new_id(), now_ms());
        sqlx::query("INSERT INTO organisations (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(org_id)
            .bind(name)
            .bind(now)
            .execute(&mut *self)
            .await?;
        sqlx::query("INSERT INTO users (id, org_id, email, role, created_at) VALUES ($1, $2, $3, 'owner', $4)")
            .bind(&user_id)
            .bind(org_id)
            .bind(owner_email)
            .bind(now)
            .execute(&mut *self)
            .await?;
        Ok(user_id)
    }

    async fn claim_founding(&mut self, org_id: &str) -> Result<bool, sqlx::Error> {
        let claimed = sqlx::query(
            "INSERT INTO instance_founding (singleton, org_id) VALUES (1, $1) ON CONFLICT (singleton) DO NOTHING",
        )
        .bind(org_id)
        .execute(&mut *self)
        .await?
        .rows_affected();
        Ok(claimed == 1)
    }
});

/// The name a new organisation gets from its first owner's address: the email's domain.
pub fn organisation_name_for(email: &str) -> &str {
    email.split('@').nth(1).unwrap_or("my organisation")
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
    let email = normalize_email(owner_email)?;
    with_db!(db, |pool| {
        let mut tx = pool.begin_write().await?;
        let ids = tx
            .insert_organisation(name, &email)
            .await
            .on_constraint(|_| {
                ApiError::conflict(
                    "MEMBER_EXISTS",
                    "that address is already a member of this organisation",
                )
            })?;
        tx.commit().await?;
        Ok(ids)
    })
}

async fn invite(
    State(state): State<AppState>,
    user: CurrentUser,
    client: ClientInfo,
    JsonBody(req): JsonBody<Invite>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    user.authorize(Action::GrantMember)?;
    let role = parse_role(&req.role)?;
    user.authorize(Action::grant(role))?;
    let email = normalize_email(&req.email)?;
    let id = new_id();
    let now = now_ms();
    with_db!(&state.db, |pool| {
        let mut tx = pool.begin_write().await?;
        sqlx::query(
            "INSERT INTO users (id, org_id, email, role, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&id)
        .bind(&user.org_id)
        .bind(&email)
        .bind(role.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await
        // Unique per organisation only: whether the address belongs to other organisations
        // changes nothing in the answer.
        .on_constraint(|_| {
            ApiError::conflict(
                "MEMBER_EXISTS",
                "that address is already a member of this organisation",
            )
        })?;
        tx.as_mut()
            .record_audit(
                &AuditEntry::by_user(&user, "member.invite")
                    .on(&email)
                    .with(json!({"role": role.as_str()})),
                &client,
            )
            .await?;
        tx.commit().await
    })?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"member": member_json((id, email, role.as_str().to_owned(), now, None))})),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleChange {
    role: String,
}

/// Loads a member of the caller's organisation (404 otherwise) inside a transaction.
macro_rules! load_member {
    ($tx:expr, $org:expr, $id:expr) => {{
        let row: Option<(String, String)> =
            sqlx::query_as("SELECT email, role FROM users WHERE id = $1 AND org_id = $2")
                .bind($id)
                .bind($org)
                .fetch_optional(&mut *$tx)
                .await?;
        row.ok_or_else(|| ApiError::not_found("member"))?
    }};
}

/// Holds the organisation's row lock until the transaction ends, so owner checks and the
/// changes they guard run one at a time per organisation. On PostgreSQL a no-op update takes
/// the row lock (a plain read would not: two demotions could each count two owners); on
/// SQLite `BEGIN IMMEDIATE` already serialises writers and the update is harmless.
macro_rules! lock_organisation {
    ($tx:expr, $org:expr) => {{
        sqlx::query("UPDATE organisations SET name = name WHERE id = $1")
            .bind($org)
            .execute(&mut *$tx)
            .await?;
    }};
}

/// How many owners the organisation has, inside a transaction.
macro_rules! owner_count {
    ($tx:expr, $org:expr) => {{
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE org_id = $1 AND role = 'owner'")
                .bind($org)
                .fetch_one(&mut *$tx)
                .await?;
        n
    }};
}

async fn change_role(
    State(state): State<AppState>,
    user: CurrentUser,
    client: ClientInfo,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<RoleChange>,
) -> ApiResult<Json<Value>> {
    user.authorize(Action::ChangeMember)?;
    if !is_valid_id(&id) {
        return Err(ApiError::not_found("member"));
    }
    let role = parse_role(&req.role)?;
    let row: MemberRow = with_db!(&state.db, |pool| {
        let mut tx = pool.begin_write().await?;
        lock_organisation!(tx, &user.org_id);
        let (email, current) = load_member!(tx, &user.org_id, &id);
        let current_role =
            Role::parse(&current).ok_or_else(|| ApiError::internal("unknown role"))?;
        for action in Action::role_change(current_role, role) {
            user.authorize(action)?;
        }
        if current == "owner" && role != Role::Owner && owner_count!(tx, &user.org_id) <= 1 {
            return Err(ApiError::conflict(
                "LAST_OWNER",
                "an organisation keeps at least one owner",
            ));
        }
        sqlx::query("UPDATE users SET role = $1 WHERE id = $2 AND org_id = $3")
            .bind(role.as_str())
            .bind(&id)
            .bind(&user.org_id)
            .execute(&mut *tx)
            .await?;
        tx.as_mut()
            .record_audit(
                &AuditEntry::by_user(&user, "member.role_change")
                    .on(&email)
                    .with(json!({"from": current, "to": role.as_str()})),
                &client,
            )
            .await?;
        let row: MemberRow = sqlx::query_as(
            "SELECT id, email, role, created_at, last_sign_in_at FROM users WHERE id = $1",
        )
        .bind(&id)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        row
    });
    Ok(Json(json!({"member": member_json(row)})))
}

async fn remove(
    State(state): State<AppState>,
    user: CurrentUser,
    client: ClientInfo,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    user.authorize(Action::ChangeMember)?;
    if !is_valid_id(&id) {
        return Err(ApiError::not_found("member"));
    }
    with_db!(&state.db, |pool| {
        let mut tx = pool.begin_write().await?;
        lock_organisation!(tx, &user.org_id);
        let (email, current) = load_member!(tx, &user.org_id, &id);
        let current_role =
            Role::parse(&current).ok_or_else(|| ApiError::internal("unknown role"))?;
        user.authorize(Action::change(current_role))?;
        if current == "owner" && owner_count!(tx, &user.org_id) <= 1 {
            return Err(ApiError::conflict(
                "LAST_OWNER",
                "an organisation keeps at least one owner",
            ));
        }
        // Sessions go with the user (ON DELETE CASCADE); audit rows keep the email.
        sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM users WHERE id = $1 AND org_id = $2")
            .bind(&id)
            .bind(&user.org_id)
            .execute(&mut *tx)
            .await?;
        tx.as_mut()
            .record_audit(
                &AuditEntry::by_user(&user, "member.remove")
                    .on(&email)
                    .with(json!({"role": current})),
                &client,
            )
            .await?;
        tx.commit().await
    })?;
    Ok(StatusCode::NO_CONTENT)
}
