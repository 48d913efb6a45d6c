//! Master key rotation and the key inventory (`keygate rotate-master-key`, `keygate keys status`).
//!
//! Every value sealed under the master key names its key (`mk1:<key id>:...`, see
//! [`crate::crypto`]). Rotation re-seals, under `KEYGATE_MASTER_KEY`, every value that does
//! not name it yet, opening it with `KEYGATE_MASTER_KEY_PREVIOUS` (or the current key, for
//! values sealed before key ids). It works in batches, each batch one write transaction;
//! each row is updated only if its sealed value is still the one read (a concurrent rotate of
//! the SDK key wins), and a rerun skips rows already under the current key, so an interrupted
//! run is resumed by running it again. Plaintext exists only in memory (zeroized on drop)
//! between opening and sealing; nothing secret is printed or logged.
//!
//! The sealed columns, in plain sight:
//! - `sdk_keys.key_sealed`, context: the row id;
//! - `gateway_secrets.sealed`, context: `gateway-secret:<workspace id>:<row id>`.

use serde::Serialize;

use crate::crypto::Keys;
use crate::http::AppState;
use crate::store::WriteTx;
use crate::with_db;

/// One sealed column.
struct SealedColumn {
    /// Name shown in reports.
    name: &'static str,
    /// `SELECT id, <context part>, <sealed> ... WHERE id > $1 AND <sealed> NOT LIKE $2 ORDER BY id LIMIT $3`.
    select: &'static str,
    /// `UPDATE ... SET <sealed> = $1 WHERE id = $2 AND <sealed> = $3`.
    update: &'static str,
    /// The status query: (key id or '' for values without one, count).
    count: &'static str,
    /// The sealing context from (id, context part).
    context: fn(&str, &str) -> String,
}

const COLUMNS: [SealedColumn; 2] = [
    SealedColumn {
        name: "sdk_keys.key_sealed",
        select: "SELECT id, id, key_sealed FROM sdk_keys
                  WHERE id > $1 AND key_sealed NOT LIKE $2 ORDER BY id LIMIT $3",
        update: "UPDATE sdk_keys SET key_sealed = $1 WHERE id = $2 AND key_sealed = $3",
        count: "SELECT CASE WHEN substr(key_sealed, 1, 4) = 'mk1:' THEN substr(key_sealed, 5, 16)
                            ELSE '' END AS kid, COUNT(*)
                  FROM sdk_keys GROUP BY 1 ORDER BY 1",
        context: |id, _| id.to_owned(),
    },
    SealedColumn {
        name: "gateway_secrets.sealed",
        select: "SELECT id, workspace_id, sealed FROM gateway_secrets
                  WHERE id > $1 AND sealed NOT LIKE $2 ORDER BY id LIMIT $3",
        update: "UPDATE gateway_secrets SET sealed = $1 WHERE id = $2 AND sealed = $3",
        count: "SELECT CASE WHEN substr(sealed, 1, 4) = 'mk1:' THEN substr(sealed, 5, 16)
                            ELSE '' END AS kid, COUNT(*)
                  FROM gateway_secrets GROUP BY 1 ORDER BY 1",
        context: |id, workspace_id| format!("gateway-secret:{workspace_id}:{id}"),
    },
];

/// What a rotation run did.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RotationReport {
    /// Values re-sealed under the current key by this run.
    pub resealed: u64,
    /// Values that open under no configured key (left as they are).
    pub unopenable: u64,
    /// Rows changed by someone else between read and write (left to them, or a rerun).
    pub raced: u64,
    /// Batches committed.
    pub batches: u64,
    /// Whether the run stopped at `max_batches` with values possibly left to do.
    pub stopped_early: bool,
    /// Values still not under the current key after this run.
    pub remaining: u64,
}

/// Re-seals every sealed value under the current master key, `batch_size` rows per
/// transaction, stopping after `max_batches` batches if given (a rerun continues).
pub async fn rotate(
    state: &AppState,
    batch_size: u32,
    max_batches: Option<u64>,
) -> Result<RotationReport, sqlx::Error> {
    let keys = &state.keys;
    let done_pattern = format!("mk1:{}:%", keys.key_id());
    let batch_size = i64::from(batch_size.max(1));
    let mut report = RotationReport::default();
    'columns: for column in &COLUMNS {
        let mut cursor = String::new();
        loop {
            if max_batches.is_some_and(|m| report.batches >= m) {
                report.stopped_early = true;
                break 'columns;
            }
            let (rows, last) = with_db!(&state.db, |pool| {
                async {
                    let mut tx = pool.begin_write().await?;
                    let rows: Vec<(String, String, String)> = sqlx::query_as(column.select)
                        .bind(&cursor)
                        .bind(&done_pattern)
                        .bind(batch_size)
                        .fetch_all(&mut *tx)
                        .await?;
                    let mut outcome = BatchOutcome::default();
                    for (id, ctx, sealed) in &rows {
                        match reseal(keys, sealed, &(column.context)(id, ctx)) {
                            Some(fresh) => {
                                let n = sqlx::query(column.update)
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
                            None => outcome.unopenable += 1,
                        }
                    }
                    tx.commit().await?;
                    Ok::<_, sqlx::Error>((outcome, rows.last().map(|r| r.0.clone())))
                }
                .await
            })?;
            let Some(last) = last else { break };
            report.batches += 1;
            report.resealed += rows.resealed;
            report.unopenable += rows.unopenable;
            report.raced += rows.raced;
            tracing::info!(
                column = column.name,
                batch = report.batches,
                resealed = rows.resealed,
                "master key rotation: batch committed"
            );
            cursor = last;
        }
    }
    report.remaining = status(state)
        .await?
        .sealed
        .iter()
        .filter(|c| c.key_id.as_deref() != Some(keys.key_id()))
        .map(|c| c.count)
        .sum();
    Ok(report)
}

#[derive(Default)]
struct BatchOutcome {
    resealed: u64,
    unopenable: u64,
    raced: u64,
}

fn reseal(keys: &Keys, sealed: &str, context: &str) -> Option<String> {
    let plain = keys.open(sealed, context)?;
    Some(keys.seal(&plain, context))
}

/// How many values of one column are sealed under one key.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SealedCount {
    /// The column.
    pub column: &'static str,
    /// The master key id (`None`: sealed before key ids).
    pub key_id: Option<String>,
    /// How many values.
    pub count: u64,
}

/// Which keys are configured and which sealed values are under which master key.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyStatus {
    /// `KEYGATE_MASTER_KEY`'s id.
    pub master_key_id: String,
    /// `KEYGATE_MASTER_KEY_PREVIOUS`'s id, if set.
    pub master_key_previous_id: Option<String>,
    /// `KEYGATE_EDGE_SECRET`'s id, if set (what sync pushes and pull replies are signed with).
    pub edge_secret_id: Option<String>,
    /// `KEYGATE_EDGE_SECRET_PREVIOUS`'s id, if set (still accepted on pulls).
    pub edge_secret_previous_id: Option<String>,
    /// Sealed values per column and master key id.
    pub sealed: Vec<SealedCount>,
}

/// The key inventory (no secret in it: key ids are one-way).
pub async fn status(state: &AppState) -> Result<KeyStatus, sqlx::Error> {
    let mut sealed = Vec::new();
    for column in &COLUMNS {
        let rows: Vec<(String, i64)> = with_db!(&state.db, |pool| {
            sqlx::query_as(column.count).fetch_all(pool).await
        })?;
        sealed.extend(rows.into_iter().map(|(kid, n)| SealedCount {
            column: column.name,
            key_id: (!kid.is_empty()).then_some(kid),
            count: u64::try_from(n).unwrap_or_default(),
        }));
    }
    let kid = |s: &Option<String>| {
        s.as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| keygate_shared::signing::key_id(s.as_bytes()))
    };
    Ok(KeyStatus {
        master_key_id: state.keys.key_id().to_owned(),
        master_key_previous_id: state.keys.previous_key_id().map(str::to_owned),
        edge_secret_id: kid(&state.settings.edge_secret),
        edge_secret_previous_id: kid(&state.settings.edge_secret_previous),
        sealed,
    })
}
