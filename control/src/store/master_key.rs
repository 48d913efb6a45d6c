//! The sealed columns (storage) for master key rotation and the key inventory
//! (`crate::master_key`): reading a batch of values not yet under a key and writing each
//! back only if it is still the one read, and counting values per master key id.

use crate::store::{Db, StoreResult};
use crate::{with_db, write_tx};

/// One sealed column.
pub struct SealedColumn {
    /// Name shown in reports (`table.column`).
    pub name: &'static str,
    /// The table.
    table: &'static str,
    /// The sealed column.
    sealed: &'static str,
    /// The column that, with the row id, makes the sealing context.
    context_part: &'static str,
    /// The sealing context from (id, context part).
    context: fn(&str, &str) -> String,
}

impl SealedColumn {
    /// Up to `$3` (id, context part, sealed) rows after id `$1` whose value is not `LIKE $2`.
    fn select(&self) -> String {
        let Self {
            table,
            sealed,
            context_part,
            ..
        } = self;
        format!(
            "SELECT id, {context_part}, {sealed} FROM {table}
              WHERE id > $1 AND {sealed} NOT LIKE $2 ORDER BY id LIMIT $3"
        )
    }

    /// Sets the value to `$1` in row `$2` only if it still is `$3`.
    fn update(&self) -> String {
        let Self { table, sealed, .. } = self;
        format!("UPDATE {table} SET {sealed} = $1 WHERE id = $2 AND {sealed} = $3")
    }

    /// (key id or '' for values without one, count).
    fn count(&self) -> String {
        let Self { table, sealed, .. } = self;
        format!(
            "SELECT CASE WHEN substr({sealed}, 1, 4) = 'mk1:' THEN substr({sealed}, 5, 16)
                         ELSE '' END AS kid, COUNT(*)
               FROM {table} GROUP BY 1 ORDER BY 1"
        )
    }
}

/// Every column holding values sealed under the master key:
/// - `sdk_keys.key_sealed`, context: the row id;
/// - `gateway_secrets.sealed`, context: `gateway-secret:<workspace id>:<row id>`.
pub const COLUMNS: [SealedColumn; 2] = [
    SealedColumn {
        name: "sdk_keys.key_sealed",
        table: "sdk_keys",
        sealed: "key_sealed",
        context_part: "id",
        context: |id, _| id.to_owned(),
    },
    SealedColumn {
        name: "gateway_secrets.sealed",
        table: "gateway_secrets",
        sealed: "sealed",
        context_part: "workspace_id",
        context: |id, workspace_id| format!("gateway-secret:{workspace_id}:{id}"),
    },
];

/// What one batch did.
#[derive(Debug, Default)]
pub struct BatchOutcome {
    /// Values re-sealed.
    pub resealed: u64,
    /// Values `reseal` could not open.
    pub unopenable: u64,
    /// Rows changed by someone else between read and write.
    pub raced: u64,
    /// The last row id read (the next batch's cursor); `None`: nothing was left.
    pub last: Option<String>,
}

/// In one write transaction, reads up to `batch_size` values of `column` after `cursor` that
/// do not match `done_pattern` (`LIKE`), and writes back `reseal(sealed, context)` for each
/// that it opens, only where the value is still the one read.
pub async fn reseal_batch(
    db: &Db,
    column: &SealedColumn,
    cursor: &str,
    done_pattern: &str,
    batch_size: i64,
    reseal: impl Fn(&str, &str) -> Option<String>,
) -> StoreResult<BatchOutcome> {
    write_tx!(db, |tx| {
        let rows: Vec<(String, String, String)> = sqlx::query_as(&column.select())
            .bind(cursor)
            .bind(done_pattern)
            .bind(batch_size)
            .fetch_all(&mut *tx)
            .await?;
        let mut outcome = BatchOutcome::default();
        let update = column.update();
        for (id, ctx, sealed) in &rows {
            let Some(fresh) = reseal(sealed, &(column.context)(id, ctx)) else {
                outcome.unopenable += 1;
                continue;
            };
            let n = sqlx::query(&update)
                .bind(&fresh)
                .bind(id)
                .bind(sealed)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n == 1 {
                outcome.resealed += 1;
            } else {
                outcome.raced += 1;
            }
        }
        outcome.last = rows.last().map(|r| r.0.clone());
        Ok(outcome)
    })
}

/// How many values of `column` are sealed under each master key id (`""`: sealed before
/// key ids).
pub async fn sealed_counts(db: &Db, column: &SealedColumn) -> StoreResult<Vec<(String, u64)>> {
    let rows: Vec<(String, i64)> = with_db!(db, |pool| sqlx::query_as(&column.count())
        .fetch_all(pool)
        .await)?;
    Ok(rows
        .into_iter()
        .map(|(kid, n)| (kid, u64::try_from(n).unwrap_or_default()))
        .collect())
}
