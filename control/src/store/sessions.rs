//! Dashboard sessions: finding the one a cookie names, opening one on sign-in (founding the
//! organisation on an empty instance), ending one, switching organisation, the step-up
//! window, and what `/me` lists. Sessions are stored by the digest of their cookie, never
//! the cookie itself.

use serde_json::json;

use crate::api::sessions::{Membership, SessionOrganisation, SessionUser};
use crate::store::audit::{AuditEntry, AuditStore, ClientInfo};
use crate::store::organisations::{self, OrganisationStore};
use crate::store::{Db, StoreError, StoreResult, WriteTx};
use crate::{impl_for_both_backends, with_db, write_tx};

/// A live session, as the cookie extractor reads it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct LiveSession {
    /// The session's id.
    pub session_id: String,
    /// Its user.
    pub user_id: String,
    /// The user's organisation.
    pub org_id: String,
    /// The user's address.
    pub email: String,
    /// The user's role, as stored (`owner`, `admin`, `member`).
    pub role: String,
    /// Until when its step-up window is open, if it was ever opened (Unix ms).
    pub step_up_until: Option<i64>,
}

/// The session whose cookie digests to `token_digest`, if it is neither revoked nor expired
/// at `now`.
pub async fn live(db: &Db, token_digest: &str, now: i64) -> StoreResult<Option<LiveSession>> {
    Ok(with_db!(db, |pool| {
        sqlx::query_as(
            "SELECT s.id AS session_id, u.id AS user_id, u.org_id, u.email, u.role, s.step_up_until
               FROM sessions s JOIN users u ON u.id = s.user_id
              WHERE s.token_digest = $1 AND s.revoked_at IS NULL AND s.expires_at > $2",
        )
        .bind(token_digest)
        .bind(now)
        .fetch_optional(pool)
        .await
    })?)
}

/// A session about to be opened.
#[derive(Clone, Copy, Debug)]
pub struct NewSession<'a> {
    /// Its id.
    pub id: &'a str,
    /// The digest of its cookie.
    pub token_digest: &'a str,
    /// When it starts (Unix ms).
    pub now: i64,
    /// When it ends (Unix ms).
    pub expires_at: i64,
    /// Until when its step-up window is open from the start, if at all.
    pub step_up_until: Option<i64>,
}

/// Who a sign-in is for.
#[derive(Clone, Copy, Debug)]
pub enum SignInAs<'a> {
    /// An existing user.
    User(&'a str),
    /// The first address on an empty instance: founds the organisation as its owner.
    Founder(&'a str),
    /// An address no organisation invited.
    Nobody,
}

/// The user a candidate address signs in as (the membership used last: one address may
/// belong to several organisations), and how many organisations the instance has.
pub async fn sign_in_candidate(db: &Db, email: &str) -> StoreResult<(Option<String>, i64)> {
    with_db!(db, |pool| {
        let user: Option<String> = sqlx::query_scalar(
            "SELECT id FROM users WHERE email = $1
              ORDER BY COALESCE(last_sign_in_at, 0) DESC, created_at, id LIMIT 1",
        )
        .bind(email)
        .fetch_optional(pool)
        .await?;
        let orgs: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM organisations")
            .fetch_one(pool)
            .await?;
        Ok((user, orgs))
    })
}

/// The membership `email` signed in with last, as (user id, organisation id): where a failed
/// sign-in is audited.
pub async fn latest_membership(db: &Db, email: &str) -> StoreResult<Option<(String, String)>> {
    Ok(with_db!(db, |pool| {
        sqlx::query_as(
            "SELECT id, org_id FROM users WHERE email = $1
              ORDER BY COALESCE(last_sign_in_at, 0) DESC, created_at, id LIMIT 1",
        )
        .bind(email)
        .fetch_optional(pool)
        .await
    })?)
}

/// Opens `session` for `who` with its `session.create` audit row, in one transaction; a
/// founder first founds the organisation (of two racing first sign-ins, one founds and the
/// other is refused like any uninvited address). `403 SIGN_IN_CLOSED` for nobody.
pub async fn sign_in(
    db: &Db,
    who: SignInAs<'_>,
    session: &NewSession<'_>,
    client: &ClientInfo,
) -> StoreResult<(SessionUser, SessionOrganisation)> {
    type Row = (String, String, String, String, String);
    let row: Option<Row> = with_db!(db, |pool| {
        let mut tx = pool.begin_write().await?;
        let user_id = match who {
            SignInAs::User(id) => Some(id.to_owned()),
            SignInAs::Founder(email) => {
                let org = crate::ids::new_id();
                if tx.claim_founding(&org).await? {
                    let name = organisations::name_for(email);
                    Some(tx.insert_organisation_as(&org, name, email).await?)
                } else {
                    None
                }
            }
            SignInAs::Nobody => None,
        };
        match user_id {
            None => None,
            Some(user_id) => {
                tx.insert_session(&user_id, session, client).await?;
                let row: Row = sqlx::query_as(
                    "SELECT u.id, u.email, u.role, o.id, o.name
                       FROM users u JOIN organisations o ON o.id = u.org_id WHERE u.id = $1",
                )
                .bind(&user_id)
                .fetch_one(&mut *tx)
                .await?;
                // Not yet a signed-in caller: the user and organisation just read back.
                let entry =
                    AuditEntry::new(&row.3, &row.0, &row.1, "session.create").on(session.id);
                tx.as_mut().record_audit(&entry, client).await?;
                tx.commit().await?;
                Some(row)
            }
        }
    });
    let (id, email, role, org_id, org_name) = row.ok_or_else(|| {
        StoreError::refused(
            crate::store::Refusal::Forbidden,
            "SIGN_IN_CLOSED",
            "this address is not invited to any organisation",
        )
    })?;
    Ok((
        SessionUser { id, email, role },
        SessionOrganisation {
            id: org_id,
            name: org_name,
        },
    ))
}

/// Records a failed sign-in of `email` (in the organisation it signed in to last; nothing
/// for an unknown address). Failing to record is logged, never answered.
pub async fn record_failed_sign_in(db: &Db, email: &str, client: &ClientInfo, reason: &str) {
    let result: StoreResult<()> = async {
        if let Some((user_id, org_id)) = latest_membership(db, email).await? {
            // In the organisation of the address that failed to sign in (there is no caller).
            let entry = AuditEntry::new(&org_id, &user_id, email, "session.create")
                .failed()
                .with(json!({ "reason": reason }));
            crate::store::audit::record_now(db, &entry, client).await?;
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, "could not audit a failed sign-in");
    }
}

/// Ends session `session_id` at `now` with its audit row.
pub async fn sign_out(
    db: &Db,
    session_id: &str,
    now: i64,
    audit: &AuditEntry<'_>,
    client: &ClientInfo,
) -> StoreResult<()> {
    write_tx!(db, |tx| {
        tx.revoke_session(session_id, now).await?;
        tx.as_mut().record_audit(audit, client).await?;
        Ok(())
    })
}

/// Moves the holder of session `from` (address `email`) to their membership in `org_id`:
/// opens `session` there (no step-up window), ends `from`, audits `session.switch`, in one
/// transaction. Returns the user id in `org_id`; `404` when the address is no member there.
pub async fn switch(
    db: &Db,
    email: &str,
    org_id: &str,
    from: &str,
    session: &NewSession<'_>,
    client: &ClientInfo,
) -> StoreResult<String> {
    write_tx!(db, |tx| {
        let target: Option<String> =
            sqlx::query_scalar("SELECT id FROM users WHERE email = $1 AND org_id = $2")
                .bind(email)
                .bind(org_id)
                .fetch_optional(&mut *tx)
                .await?;
        let target = target.ok_or(StoreError::NotFound("organisation"))?;
        tx.revoke_session(from, session.now).await?;
        tx.insert_session(&target, session, client).await?;
        let entry = AuditEntry::new(org_id, &target, email, "session.switch").on(session.id);
        tx.as_mut().record_audit(&entry, client).await?;
        Ok(target)
    })
}

/// Session rows inside the caller's transaction.
#[allow(async_fn_in_trait)]
trait SessionStore {
    /// Inserts `session` for `user_id` and stamps the user's last sign-in.
    async fn insert_session(
        &mut self,
        user_id: &str,
        session: &NewSession<'_>,
        client: &ClientInfo,
    ) -> Result<(), sqlx::Error>;

    /// Revokes `session_id` at `now` unless it already was.
    async fn revoke_session(&mut self, session_id: &str, now: i64) -> Result<(), sqlx::Error>;
}

impl_for_both_backends!(SessionStore {
        async fn insert_session(
            &mut self,
            user_id: &str,
            session: &NewSession<'_>,
            client: &ClientInfo,
        ) -> Result<(), sqlx::Error> {
            sqlx::query(
                "INSERT INTO sessions
                     (token_digest, id, user_id, created_at, expires_at, ip, user_agent, step_up_until)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(session.token_digest)
            .bind(session.id)
            .bind(user_id)
            .bind(session.now)
            .bind(session.expires_at)
            .bind(client.ip.as_deref())
            .bind(client.user_agent.as_deref())
            .bind(session.step_up_until)
            .execute(&mut *self)
            .await?;
            sqlx::query("UPDATE users SET last_sign_in_at = $1 WHERE id = $2")
                .bind(session.now)
                .bind(user_id)
                .execute(&mut *self)
                .await?;
            Ok(())
        }

        async fn revoke_session(&mut self, session_id: &str, now: i64) -> Result<(), sqlx::Error> {
            sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(now)
                .bind(session_id)
                .execute(&mut *self)
                .await?;
            Ok(())
        }
});

/// Opens (or extends) session `session_id`'s step-up window until `until` (Unix ms).
pub async fn open_step_up(db: &Db, session_id: &str, until: i64) -> StoreResult<()> {
    set_step_up(db, session_id, Some(until)).await
}

/// Closes session `session_id`'s step-up window now.
pub async fn close_step_up(db: &Db, session_id: &str) -> StoreResult<()> {
    set_step_up(db, session_id, None).await
}

async fn set_step_up(db: &Db, session_id: &str, until: Option<i64>) -> StoreResult<()> {
    with_db!(db, |pool| {
        sqlx::query("UPDATE sessions SET step_up_until = $1 WHERE id = $2")
            .bind(until)
            .bind(session_id)
            .execute(pool)
            .await
            .map(|_| ())
    })?;
    Ok(())
}

/// Organisation `org_id`'s name, and every organisation `email` belongs to (by name).
pub async fn memberships(
    db: &Db,
    org_id: &str,
    email: &str,
) -> StoreResult<(String, Vec<Membership>)> {
    let (name, rows): (String, Vec<(String, String, String)>) = with_db!(db, |pool| {
        let name: String = sqlx::query_scalar("SELECT name FROM organisations WHERE id = $1")
            .bind(org_id)
            .fetch_one(pool)
            .await?;
        let all = sqlx::query_as(
            "SELECT o.id, o.name, u.role FROM users u JOIN organisations o ON o.id = u.org_id
              WHERE u.email = $1 ORDER BY o.name, o.id",
        )
        .bind(email)
        .fetch_all(pool)
        .await?;
        Ok::<_, sqlx::Error>((name, all))
    })?;
    let memberships = rows
        .into_iter()
        .map(|(id, name, role)| Membership { id, name, role })
        .collect();
    Ok((name, memberships))
}
