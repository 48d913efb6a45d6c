//! Verify statistics, written in batches: per key, the valid uses of keys without a usage
//! limit (`usage_count`, `last_used_at`) and, per workspace, key and UTC day, the count of
//! each outcome (`verification_counts`).
//!
//! Neither decides a later verify, so `crate::jobs::verify_stats` sums them in memory and
//! hands them to [`flush`] once a second, which writes them in one transaction as increments
//! (`usage_count = usage_count + n`, `n = n + excluded.n`), which several replicas can apply
//! independently and exactly. Usage *limits* never depend on them (limited keys are spent by
//! group commit, `super::verify::write_batch`).

use std::collections::HashMap;

use keygate_shared::verdict::Status;

use crate::store::{Db, StoreResult, WriteTx};
use crate::with_db;

/// What one key (or, for unknown keys, one workspace) was verified with since the last
/// flush.
#[derive(Clone, Debug, Default)]
pub struct KeyStats {
    /// The organisation.
    pub org_id: String,
    /// The workspace.
    pub workspace_id: String,
    /// Valid uses to add to `usage_count` (keys without a usage limit).
    pub uses: i64,
    /// The latest such use, Unix ms.
    pub last_used_at: i64,
    /// (UTC day, outcome, count).
    pub outcomes: Vec<(i64, Status, i64)>,
}

impl KeyStats {
    /// Counts `n` verifies answered `outcome` on `day`.
    pub fn add_outcome(&mut self, day: i64, outcome: Status, n: i64) {
        match self
            .outcomes
            .iter_mut()
            .find(|(d, o, _)| *d == day && *o == outcome)
        {
            Some((_, _, c)) => *c += n,
            None => self.outcomes.push((day, outcome, n)),
        }
    }

    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: KeyStats) {
        self.uses += other.uses;
        self.last_used_at = self.last_used_at.max(other.last_used_at);
        for (day, outcome, n) in other.outcomes {
            self.add_outcome(day, outcome, n);
        }
    }
}

/// Pending statistics: by API key id, and by workspace id for verifies of unknown keys.
#[derive(Clone, Debug, Default)]
pub struct PendingStats {
    /// By API key id.
    pub keys: HashMap<String, KeyStats>,
    /// Verifies of unknown keys (`INVALID`), by the workspace of the SDK key that asked.
    pub unknown: HashMap<String, KeyStats>,
}

impl PendingStats {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.unknown.is_empty()
    }

    /// Adds `other` to these (a failed flush handed back).
    pub fn merge(&mut self, other: PendingStats) {
        for (id, s) in other.keys {
            self.keys.entry(id).or_default().merge(s);
        }
        for (id, s) in other.unknown {
            self.unknown.entry(id).or_default().merge(s);
        }
    }
}

const ADD_USES: &str = "
UPDATE api_keys SET usage_count = usage_count + $1,
       last_used_at = CASE WHEN last_used_at IS NULL OR last_used_at < $2
                           THEN $2 ELSE last_used_at END
 WHERE id = $3";

const ADD_OUTCOME: &str = "
INSERT INTO verification_counts (org_id, workspace_id, api_key_id, day, outcome, n)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (workspace_id, api_key_id, day, outcome)
DO UPDATE SET n = verification_counts.n + excluded.n";

/// Writes `pending` in one transaction, as increments.
pub async fn flush(db: &Db, pending: &PendingStats) -> StoreResult<()> {
    let rows = pending
        .keys
        .iter()
        .map(|(id, s)| (id.as_str(), s))
        .chain(pending.unknown.values().map(|s| ("", s)));
    with_db!(db, |pool| {
        let mut tx = pool.begin_write().await?;
        for (key_id, s) in rows {
            if s.uses > 0 {
                sqlx::query(ADD_USES)
                    .bind(s.uses)
                    .bind(s.last_used_at)
                    .bind(key_id)
                    .execute(&mut *tx)
                    .await?;
            }
            for (day, outcome, n) in &s.outcomes {
                sqlx::query(ADD_OUTCOME)
                    .bind(&s.org_id)
                    .bind(&s.workspace_id)
                    .bind(key_id)
                    .bind(day)
                    .bind(outcome.as_str())
                    .bind(n)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    })
}

/// Verification counts of workspace `workspace_id` (only key `api_key_id`'s when given) from
/// UTC day `from_day` on: `(day, outcome, count)`, oldest first.
pub async fn daily_outcomes(
    db: &Db,
    workspace_id: &str,
    api_key_id: Option<&str>,
    from_day: i64,
) -> StoreResult<Vec<(i64, String, i64)>> {
    let rows = with_db!(db, |pool| {
        sqlx::query_as(
            "SELECT day, outcome, CAST(SUM(n) AS BIGINT)
               FROM verification_counts
              WHERE workspace_id = $1 AND day >= $2
                AND ($3 IS NULL OR api_key_id = $3)
              GROUP BY day, outcome ORDER BY day, outcome",
        )
        .bind(workspace_id)
        .bind(from_day)
        .bind(api_key_id)
        .fetch_all(pool)
        .await
    })?;
    Ok(rows)
}
