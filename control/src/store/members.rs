//! Members of an organisation: listing, inviting, changing a role, removing, and adding one
//! from the command line. Owner rules (only owners touch owners, the last owner stays) are
//! checked inside the transaction that makes the change, under the organisation's row lock.

use keygate_shared::authz::{Action, Role};
use serde_json::json;

use crate::api::members::Member;
use crate::api::Timestamp;
use crate::ids::{new_id, now_ms};
use crate::store::audit::{AuditEntry, AuditStore, ClientInfo};
use crate::store::organisations::{self, member_exists, OrganisationStore};
use crate::store::{rows_by_id, Db, Refusal, StoreError, StoreResult, WriteTx};
use crate::{with_db, write_tx};

type MemberRow = (String, String, String, i64, Option<i64>);

fn from_row((id, email, role, created_at, last_sign_in_at): MemberRow) -> Member {
    Member {
        id,
        email,
        role,
        created_at: Timestamp(created_at),
        last_sign_in_at: last_sign_in_at.map(Timestamp),
    }
}

/// Organisation `org_id`'s members, oldest first.
pub async fn list(db: &Db, org_id: &str) -> StoreResult<Vec<Member>> {
    let sql = "SELECT id, email, role, created_at, last_sign_in_at
               FROM users WHERE org_id = $1 ORDER BY created_at, id";
    let rows: Vec<MemberRow> = rows_by_id(db, sql, org_id).await?;
    Ok(rows.into_iter().map(from_row).collect())
}

/// Stores `member` (new, never signed in) in `org_id` with its audit row.
/// `409 MEMBER_EXISTS` if the address already is a member there (whether it belongs to other
/// organisations changes nothing).
pub async fn invite(
    db: &Db,
    org_id: &str,
    member: &Member,
    audit: &AuditEntry<'_>,
    client: &ClientInfo,
) -> StoreResult<()> {
    write_tx!(db, |tx| {
        sqlx::query(
            "INSERT INTO users (id, org_id, email, role, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&member.id)
        .bind(org_id)
        .bind(&member.email)
        .bind(&member.role)
        .bind(member.created_at.0)
        .execute(&mut *tx)
        .await
        .map_err(member_exists)?;
        tx.as_mut().record_audit(audit, client).await?;
        Ok(())
    })
}

/// A change to one member, decided inside its transaction.
pub struct MemberChange<'a> {
    /// The organisation (the caller's).
    pub org_id: &'a str,
    /// The member.
    pub member_id: &'a str,
    /// Asks whether the caller may perform each action the change implies, given the
    /// member's current role (the handler asks `keygate_shared::authz`); its refusal is the
    /// answer.
    pub allowed: &'a (dyn Fn(Action) -> StoreResult<()> + Sync),
    /// The audit row's base (actor, action); detail and target are filled in.
    pub audit: AuditEntry<'a>,
    /// Who is on the other end.
    pub client: &'a ClientInfo,
}

fn last_owner() -> StoreError {
    StoreError::refused(
        Refusal::Conflict,
        "LAST_OWNER",
        "an organisation keeps at least one owner",
    )
}

/// Gives the member `role`: allowed when the caller may perform every action
/// `Action::role_change(current, role)` names; never demotes the last owner. Returns the
/// member as stored now. `404` for a member of another organisation.
pub async fn change_role(db: &Db, change: MemberChange<'_>, role: Role) -> StoreResult<Member> {
    let (org_id, member_id) = (change.org_id, change.member_id);
    write_tx!(db, |tx| {
        let (email, current) = tx.guard(&change, Some(role)).await?;
        sqlx::query("UPDATE users SET role = $1 WHERE id = $2 AND org_id = $3")
            .bind(role.as_str())
            .bind(member_id)
            .bind(org_id)
            .execute(&mut *tx)
            .await?;
        let detail = json!({"from": current.as_str(), "to": role.as_str()});
        let entry = change.audit.clone().on(&email).with(detail);
        tx.as_mut().record_audit(&entry, change.client).await?;
        let row: MemberRow = sqlx::query_as(
            "SELECT id, email, role, created_at, last_sign_in_at FROM users WHERE id = $1",
        )
        .bind(member_id)
        .fetch_one(&mut *tx)
        .await?;
        Ok(from_row(row))
    })
}

/// Removes the member and ends their sessions: allowed when the caller may
/// `Action::change(current)`; never the last owner. `404` for a member of another
/// organisation.
pub async fn remove(db: &Db, change: MemberChange<'_>) -> StoreResult<()> {
    let (org_id, member_id) = (change.org_id, change.member_id);
    write_tx!(db, |tx| {
        let (email, current) = tx.guard(&change, None).await?;
        // Sessions go with the user (ON DELETE CASCADE); audit rows keep the email.
        sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(member_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM users WHERE id = $1 AND org_id = $2")
            .bind(member_id)
            .bind(org_id)
            .execute(&mut *tx)
            .await?;
        let entry = change
            .audit
            .clone()
            .on(&email)
            .with(json!({"role": current.as_str()}));
        tx.as_mut().record_audit(&entry, change.client).await?;
        Ok(())
    })
}

/// Adds `email` (already normalised) with `role` to organisation `org_id` or, with `org_id`
/// `None`, to the instance's first organisation (founding it, with this user as owner, on an
/// empty instance). The first member of an organisation is always its owner. Returns
/// (user id, organisation id). Used by `keygate user add`.
pub async fn add(
    db: &Db,
    org_id: Option<&str>,
    email: &str,
    role: Role,
) -> StoreResult<(String, String)> {
    let (id, now) = (new_id(), now_ms());
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
                            return Err(StoreError::Conflict {
                                reason: "ALREADY_FOUNDED",
                                message:
                                    "an organisation was founded at the same moment; try again"
                                        .into(),
                            });
                        }
                        let name = organisations::name_for(email);
                        let user = tx.insert_organisation_as(&org, name, email).await?;
                        tx.commit().await?;
                        return Ok((user, org));
                    }
                }
            }
        };
        let role = if tx.owner_count(&org_id).await? == 0 {
            Role::Owner
        } else {
            role
        };
        sqlx::query(
            "INSERT INTO users (id, org_id, email, role, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&id)
        .bind(&org_id)
        .bind(email)
        .bind(role.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(member_exists)?;
        tx.commit().await?;
        Ok((id, org_id))
    })
}

/// Member rows inside the caller's transaction.
#[allow(async_fn_in_trait)]
trait MemberStore {
    /// Takes the organisation's row lock until the transaction ends, loads the member as
    /// (email, current role) (`404` for none), asks `change.allowed` about each action the
    /// change implies (giving role `to`, or removing with `None`), and refuses to leave the
    /// organisation without an owner (`409 LAST_OWNER`). The lock makes owner checks and the
    /// changes they guard run one at a time per organisation: on PostgreSQL a no-op update
    /// takes the row lock (a plain read would not: two demotions could each count two
    /// owners); on SQLite `BEGIN IMMEDIATE` already serialises writers.
    async fn guard(
        &mut self,
        change: &MemberChange<'_>,
        to: Option<Role>,
    ) -> StoreResult<(String, Role)>;

    /// How many owners organisation `org_id` has.
    async fn owner_count(&mut self, org_id: &str) -> Result<i64, sqlx::Error>;
}

crate::impl_for_both_backends!(MemberStore {
    async fn guard(&mut self, change: &MemberChange<'_>, to: Option<Role>) -> StoreResult<(String, Role)> {
        sqlx::query("UPDATE organisations SET name = name WHERE id = $1")
            .bind(change.org_id)
            .execute(&mut *self)
            .await?;
        let row: Option<(String, String)> =
            sqlx::query_as("SELECT email, role FROM users WHERE id = $1 AND org_id = $2")
                .bind(change.member_id)
                .bind(change.org_id)
                .fetch_optional(&mut *self)
                .await?;
        let (email, role) = row.ok_or(StoreError::NotFound("member"))?;
        let current = Role::parse(&role).ok_or_else(|| {
            StoreError::Database(sqlx::Error::Decode("unknown role in database".into()))
        })?;
        let (actions, stays_owner) = match to {
            Some(role) => (Action::role_change(current, role).to_vec(), role == Role::Owner),
            None => (vec![Action::change(current)], false),
        };
        for action in actions {
            (change.allowed)(action)?;
        }
        if current == Role::Owner && !stays_owner && self.owner_count(change.org_id).await? <= 1 {
            return Err(last_owner());
        }
        Ok((email, current))
    }

    async fn owner_count(&mut self, org_id: &str) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE org_id = $1 AND role = 'owner'")
            .bind(org_id)
            .fetch_one(&mut *self)
            .await
    }
});
