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

use crate::config::Settings;
use crate::crypto::Keys;
use crate::store::master_key::{reseal_batch, sealed_counts, COLUMNS};
use crate::store::{Db, StoreResult};

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
    db: &Db,
    keys: &Keys,
    batch_size: u32,
    max_batches: Option<u64>,
) -> StoreResult<RotationReport> {
    let done_pattern = format!("mk1:{}:%", keys.key_id());
    let batch_size = i64::from(batch_size.max(1));
    let reseal = |sealed: &str, context: &str| {
        let plain = keys.open(sealed, context)?;
        Some(keys.seal(&plain, context))
    };
    let mut report = RotationReport::default();
    'columns: for column in &COLUMNS {
        let mut cursor = String::new();
        loop {
            if max_batches.is_some_and(|m| report.batches >= m) {
                report.stopped_early = true;
                break 'columns;
            }
            let batch =
                reseal_batch(db, column, &cursor, &done_pattern, batch_size, reseal).await?;
            let Some(last) = batch.last else { break };
            report.batches += 1;
            report.resealed += batch.resealed;
            report.unopenable += batch.unopenable;
            report.raced += batch.raced;
            tracing::info!(
                column = column.name,
                batch = report.batches,
                resealed = batch.resealed,
                "master key rotation: batch committed"
            );
            cursor = last;
        }
    }
    report.remaining = status(db, keys, None)
        .await?
        .sealed
        .iter()
        .filter(|c| c.key_id.as_deref() != Some(keys.key_id()))
        .map(|c| c.count)
        .sum();
    Ok(report)
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

/// The key inventory (no secret in it: key ids are one-way); the edge secrets' ids come
/// from `settings`, if given.
pub async fn status(db: &Db, keys: &Keys, settings: Option<&Settings>) -> StoreResult<KeyStatus> {
    let mut sealed = Vec::new();
    for column in &COLUMNS {
        let counts = sealed_counts(db, column).await?;
        sealed.extend(counts.into_iter().map(|(kid, count)| SealedCount {
            column: column.name,
            key_id: (!kid.is_empty()).then_some(kid),
            count,
        }));
    }
    let kid = |s: Option<&[u8]>| s.map(keygate_shared::signing::key_id);
    Ok(KeyStatus {
        master_key_id: keys.key_id().to_owned(),
        master_key_previous_id: keys.previous_key_id().map(str::to_owned),
        edge_secret_id: kid(settings.and_then(Settings::edge_secret_bytes)),
        edge_secret_previous_id: kid(settings.and_then(Settings::edge_secret_previous_bytes)),
        sealed,
    })
}
