//! Billing usage: per (workspace, billing id, UTC day) totals, added to in batches by
//! `crate::jobs::verify_writes` (in the verify batch's transaction) and read per billing id.

use std::collections::HashMap;

use crate::store::{Db, StoreResult};
use crate::{impl_for_both_backends, with_db, write_tx};

/// Where one increment goes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UsageSlot {
    /// The organisation.
    pub org_id: String,
    /// The workspace of the verified key.
    pub workspace_id: String,
    /// The billing id charged.
    pub billing_id: String,
    /// The UTC day (days since 1970-01-01).
    pub day: i64,
}

/// Adding billing usage inside the caller's write transaction.
#[allow(async_fn_in_trait)]
pub trait BillingUsageStore {
    /// Adds every increment of `batch`, as `total = total + n`, so replicas writing at once
    /// add up exactly.
    async fn add_billing_usage(
        &mut self,
        batch: &HashMap<UsageSlot, i64>,
    ) -> Result<(), sqlx::Error>;
}

impl_for_both_backends!(BillingUsageStore {
    async fn add_billing_usage(&mut self, batch: &HashMap<UsageSlot, i64>) -> Result<(), sqlx::Error> {
        for (slot, n) in batch {
            sqlx::query(
                "INSERT INTO billing_usage (org_id, workspace_id, billing_id, day, total)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (workspace_id, billing_id, day)
                 DO UPDATE SET total = billing_usage.total + excluded.total",
            )
            .bind(&slot.org_id)
            .bind(&slot.workspace_id)
            .bind(&slot.billing_id)
            .bind(slot.day)
            .bind(n)
            .execute(&mut *self)
            .await?;
        }
        Ok(())
    }
});

/// Adds every increment of `batch` in one transaction (see [`BillingUsageStore`]).
pub async fn add(db: &Db, batch: &HashMap<UsageSlot, i64>) -> StoreResult<()> {
    write_tx!(db, |tx| {
        tx.add_billing_usage(batch).await?;
        Ok(())
    })
}

/// Daily totals of `billing_id` in `org_id` (only `workspace_id`'s when given) from day
/// `from_day` on, newest first: `(day, total)`.
pub async fn daily(
    db: &Db,
    org_id: &str,
    workspace_id: Option<&str>,
    billing_id: &str,
    from_day: i64,
) -> StoreResult<Vec<(i64, i64)>> {
    let rows: Vec<(i64, i64)> = with_db!(db, |pool| {
        sqlx::query_as(
            "SELECT day, CAST(SUM(total) AS BIGINT)
               FROM billing_usage
              WHERE org_id = $1 AND billing_id = $2 AND day >= $3
                AND ($4 IS NULL OR workspace_id = $4)
              GROUP BY day ORDER BY day DESC",
        )
        .bind(org_id)
        .bind(billing_id)
        .bind(from_day)
        .bind(workspace_id)
        .fetch_all(pool)
        .await
    })?;
    Ok(rows)
}

/// Daily totals of every billing id charged in workspace `workspace_id` from day `from_day`
/// on: `(billing id, day, total)`.
pub async fn by_workspace(
    db: &Db,
    workspace_id: &str,
    from_day: i64,
) -> StoreResult<Vec<(String, i64, i64)>> {
    let rows = with_db!(db, |pool| {
        sqlx::query_as(
            "SELECT billing_id, day, total FROM billing_usage
              WHERE workspace_id = $1 AND day >= $2
              ORDER BY billing_id, day",
        )
        .bind(workspace_id)
        .bind(from_day)
        .fetch_all(pool)
        .await
    })?;
    Ok(rows)
}
