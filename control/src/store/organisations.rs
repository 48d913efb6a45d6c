//! Organisations: founding one (the first sign-in on an empty instance, `keygate org add`)
//! with its first owner.

use crate::ids::{new_id, now_ms};
use crate::store::constraints::USER_MEMBERSHIP;
use crate::store::{Db, StoreError, StoreResult};
use crate::{impl_for_both_backends, write_tx};

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

impl_for_both_backends!(OrganisationStore {
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
pub fn name_for(email: &str) -> &str {
    email.split('@').nth(1).unwrap_or("my organisation")
}

/// Creates organisation `name` (already validated) with `owner_email` (already normalised)
/// as its owner: another tenant on the same instance. Returns (organisation id, user id).
pub async fn create(db: &Db, name: &str, owner_email: &str) -> StoreResult<(String, String)> {
    write_tx!(db, |tx| {
        let ids = tx
            .insert_organisation(name, owner_email)
            .await
            .map_err(member_exists)?;
        Ok(ids)
    })
}

/// `409 MEMBER_EXISTS` for a second membership of one address in one organisation.
pub(crate) fn member_exists(e: sqlx::Error) -> StoreError {
    USER_MEMBERSHIP.conflict(
        "MEMBER_EXISTS",
        "that address is already a member of this organisation",
    )(e)
}
