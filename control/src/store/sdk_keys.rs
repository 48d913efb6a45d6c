//! SDK keys: minting (sealed under the master key, with its digest for lookups), listing,
//! revoking, rotating a workspace's access key, reading a sealed value for a reveal, and
//! authenticating a presented key (with the last-used bookkeeping every use shares).
//!
//! A key's full value is stored sealed with AES-256-GCM under the master key (the row id as
//! associated data, so a sealed value copied to another row does not open) plus its SHA-256
//! digest for lookups.

use keygate_shared::key::{Environment, KeyKind, SecretKey};
use keygate_shared::scope::SdkScopes;
use serde_json::json;

use crate::api::sdk_keys::SdkKey;
use crate::api::Timestamp;
use crate::crypto::Keys;
use crate::ids::new_id;
use crate::impl_for_both_backends;
use crate::store::audit::{AuditEntry, AuditStore, ClientInfo};
use crate::store::constraints::{is_missing_parent, violated, SDK_ONE_ACCESS_KEY};
use crate::store::{row_by, rows_by_id, Db, StoreError, StoreResult, WriteTx};
use crate::{with_db, write_tx};

/// The name of every workspace's SDK access key.
pub const ACCESS_KEY_NAME: &str = "SDK access key";

/// `last_used_at` of an SDK key is written at most this often, to keep reads read-only.
pub const LAST_USED_GRANULARITY_MS: i64 = 60 * 1000;

/// A live SDK key found by its digest: who is calling and what it may do.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct SdkKeyCaller {
    /// The key's id.
    pub id: String,
    /// Its organisation.
    pub org_id: String,
    /// The workspace it is bound to, if any.
    pub workspace_id: Option<String>,
    /// Its scopes, as stored (`keygate_shared::scope::SdkScopes` text).
    pub scopes: String,
    /// When it was last used (Unix ms), as read.
    pub last_used_at: Option<i64>,
}

/// The live (not revoked) SDK key whose value has SHA-256 `digest` (hex), after recording
/// its use at `now`; `None` if there is none.
pub async fn authenticate(db: &Db, digest: &str, now: i64) -> StoreResult<Option<SdkKeyCaller>> {
    let row: Option<SdkKeyCaller> = with_db!(db, |pool| {
        sqlx::query_as(
            "SELECT id, org_id, workspace_id, scopes, last_used_at
               FROM sdk_keys WHERE key_digest = $1 AND revoked_at IS NULL",
        )
        .bind(digest)
        .fetch_optional(pool)
        .await
    })?;
    if let Some(caller) = &row {
        record_use(db, caller, now).await?;
    }
    Ok(row)
}

/// Records that `caller` was used at `now`: writes `last_used_at` only when the stored one
/// is older than [`LAST_USED_GRANULARITY_MS`], so most authenticated calls write nothing.
pub async fn record_use(db: &Db, caller: &SdkKeyCaller, now: i64) -> StoreResult<()> {
    if caller
        .last_used_at
        .is_some_and(|t| now - t <= LAST_USED_GRANULARITY_MS)
    {
        return Ok(());
    }
    with_db!(db, |pool| {
        sqlx::query("UPDATE sdk_keys SET last_used_at = $1 WHERE id = $2")
            .bind(now)
            .bind(&caller.id)
            .execute(pool)
            .await
            .map(|_| ())
    })?;
    Ok(())
}

/// What to store for a new SDK key.
#[derive(Debug, Clone)]
pub struct NewSdkKey<'a> {
    /// Owning organisation.
    pub org_id: &'a str,
    /// The workspace it is bound to (`None`: the whole organisation).
    pub workspace_id: Option<&'a str>,
    /// Display name.
    pub name: &'a str,
    /// What it may do.
    pub scopes: SdkScopes,
    /// `sk_live_` or `sk_test_`.
    pub environment: Environment,
    /// Whether it is a workspace's SDK access key.
    pub is_access_key: bool,
    /// The user (or key) creating it.
    pub created_by: Option<&'a str>,
    /// Unix ms.
    pub now: i64,
}

/// SDK-key storage inside a caller's transaction.
#[allow(async_fn_in_trait)]
pub trait SdkKeyStore {
    /// Mints, seals and inserts a key; returns its row id and the key.
    async fn insert_sdk_key(
        &mut self,
        keys: &Keys,
        new: &NewSdkKey<'_>,
    ) -> Result<(String, SecretKey), sqlx::Error>;
}

impl_for_both_backends!(SdkKeyStore {
    async fn insert_sdk_key(&mut self, keys: &Keys, new: &NewSdkKey<'_>) -> Result<(String, SecretKey), sqlx::Error> {
        let id = new_id();
        let key = SecretKey::generate(KeyKind::Sdk, new.environment);
        sqlx::query(
            "INSERT INTO sdk_keys (id, org_id, workspace_id, name, scopes, key_digest, key_sealed,
                 key_prefix, key_last4, is_access_key, created_by, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&id)
        .bind(new.org_id)
        .bind(new.workspace_id)
        .bind(new.name)
        .bind(new.scopes.to_string())
        .bind(key.digest().to_hex())
        .bind(keys.seal(key.expose(), &id))
        .bind(key.prefix())
        .bind(key.last4())
        .bind(new.is_access_key)
        .bind(new.created_by)
        .bind(new.now)
        .execute(&mut *self)
        .await?;
        Ok((id, key))
    }
});

/// An SDK key row, without its sealed value.
#[derive(Debug, Clone, sqlx::FromRow)]
struct SdkKeyRow {
    id: String,
    workspace_id: Option<String>,
    name: String,
    scopes: String,
    key_prefix: String,
    key_last4: String,
    is_access_key: bool,
    created_at: i64,
    last_used_at: Option<i64>,
}

const SDK_KEY_COLUMNS: &str = "id, workspace_id, name, scopes, key_prefix, key_last4, \
     is_access_key, created_at, last_used_at";

impl TryFrom<SdkKeyRow> for SdkKey {
    type Error = StoreError;

    fn try_from(row: SdkKeyRow) -> StoreResult<SdkKey> {
        let scopes = SdkScopes::parse(&row.scopes)
            .map_err(|e| StoreError::Database(sqlx::Error::Decode(e.to_string().into())))?;
        Ok(SdkKey {
            id: row.id,
            name: row.name,
            scopes,
            workspace_id: row.workspace_id,
            masked: format!("{}_…{}", row.key_prefix, row.key_last4),
            prefix: row.key_prefix,
            last4: row.key_last4,
            is_access_key: row.is_access_key,
            created_at: Timestamp(row.created_at),
            last_used_at: row.last_used_at.map(Timestamp),
        })
    }
}

/// One key by a query binding `$1` and `$2`, or `NotFound(what)`.
async fn one(db: &Db, filter: &str, a: &str, b: &str, what: &'static str) -> StoreResult<SdkKey> {
    let sql = format!("SELECT {SDK_KEY_COLUMNS} FROM sdk_keys WHERE {filter}");
    let row: SdkKeyRow = row_by(db, &sql, &[a, b], what).await?;
    row.try_into()
}

/// The live access key of workspace `workspace_id` in organisation `org_id`.
pub async fn access_key(db: &Db, org_id: &str, workspace_id: &str) -> StoreResult<SdkKey> {
    let filter =
        "org_id = $1 AND workspace_id = $2 AND is_access_key = TRUE AND revoked_at IS NULL";
    one(db, filter, org_id, workspace_id, "SDK access key").await
}

/// A live organisation SDK key (not an access key) of `org_id`.
pub async fn org_key(db: &Db, org_id: &str, id: &str) -> StoreResult<SdkKey> {
    let filter = "id = $1 AND org_id = $2 AND is_access_key = FALSE AND revoked_at IS NULL";
    one(db, filter, id, org_id, "SDK key").await
}

/// The organisation's live SDK keys (not access keys), oldest first.
pub async fn list(db: &Db, org_id: &str) -> StoreResult<Vec<SdkKey>> {
    let sql = format!(
        "SELECT {SDK_KEY_COLUMNS} FROM sdk_keys
          WHERE org_id = $1 AND is_access_key = FALSE AND revoked_at IS NULL
          ORDER BY created_at, id"
    );
    let rows: Vec<SdkKeyRow> = rows_by_id(db, &sql, org_id).await?;
    rows.into_iter().map(SdkKey::try_from).collect()
}

/// Mints and stores an organisation SDK key with its audit row (`audit` gets the key as
/// target and its name, mask and scopes as detail). `NotFound("workspace")` if the bound
/// workspace was deleted in between.
pub async fn create(
    db: &Db,
    keys: &Keys,
    new: &NewSdkKey<'_>,
    audit: AuditEntry<'_>,
    client: &ClientInfo,
) -> StoreResult<(SdkKey, SecretKey)> {
    let (id, key) = write_tx!(db, |tx| {
        let (id, key) =
            tx.insert_sdk_key(keys, new)
                .await
                .map_err(|e| match is_missing_parent(&e) {
                    true => StoreError::NotFound("workspace"),
                    false => e.into(),
                })?;
        let detail =
            json!({ "name": new.name, "key": key.mask(), "scopes": new.scopes.to_string() });
        tx.record_audit(&audit.on(&id).with(detail), client).await?;
        (id, key)
    });
    Ok((org_key(db, new.org_id, &id).await?, key))
}

/// Revokes organisation SDK key `key` of `org_id` with its audit row (target and mask set
/// here). `NotFound` if it is no longer live.
pub async fn revoke(
    db: &Db,
    org_id: &str,
    key: &SdkKey,
    now: i64,
    audit: AuditEntry<'_>,
    client: &ClientInfo,
) -> StoreResult<()> {
    write_tx!(db, |tx| {
        let done = sqlx::query(
            "UPDATE sdk_keys SET revoked_at = $1
              WHERE id = $2 AND org_id = $3 AND is_access_key = FALSE AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(&key.id)
        .bind(org_id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Err(StoreError::NotFound("SDK key"));
        }
        let entry = audit.on(&key.id).with(json!({ "key": key.masked }));
        tx.record_audit(&entry, client).await?;
        Ok(())
    })
}

fn already_rotated() -> StoreError {
    StoreError::Conflict {
        reason: "KEY_ALREADY_ROTATED",
        message: "the SDK access key was rotated at the same moment; reload to see the current key"
            .into(),
    }
}

/// Replaces the workspace's SDK access key (`new` describes the new one; its scopes are the
/// old key's, or every scope if there was none) with its audit row (target, revoked and new
/// masks set here). `Conflict KEY_ALREADY_ROTATED` if a concurrent rotation won.
pub async fn rotate_access_key(
    db: &Db,
    keys: &Keys,
    new: NewSdkKey<'_>,
    audit: AuditEntry<'_>,
    client: &ClientInfo,
) -> StoreResult<(SdkKey, SecretKey)> {
    let workspace_id = new.workspace_id.unwrap_or_default();
    let (id, key) = with_db!(db, |pool| {
        let mut tx = pool.begin_write().await?;
        let old: Option<(String, String, String, String)> = sqlx::query_as(
            "SELECT id, scopes, key_prefix, key_last4 FROM sdk_keys
              WHERE org_id = $1 AND workspace_id = $2 AND is_access_key = TRUE AND revoked_at IS NULL",
        )
        .bind(new.org_id)
        .bind(workspace_id)
        .fetch_optional(&mut *tx)
        .await?;
        let mut new = new.clone();
        if let Some((old_id, scopes, _, _)) = &old {
            let done = sqlx::query(
                "UPDATE sdk_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
            )
            .bind(new.now)
            .bind(old_id)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() != 1 {
                return Err(already_rotated());
            }
            new.scopes = SdkScopes::parse(scopes)
                .map_err(|e| StoreError::Database(sqlx::Error::Decode(e.to_string().into())))?;
        }
        let (id, key) = tx
            .insert_sdk_key(keys, &new)
            .await
            .map_err(rotation_conflict)?;
        let revoked = old
            .as_ref()
            .map(|(id, _, p, l)| json!({ "id": id, "key": format!("{p}_…{l}") }));
        let detail = json!({ "revoked": revoked, "newKey": key.mask() });
        tx.record_audit(&audit.on(&id).with(detail), client).await?;
        tx.commit().await.map_err(rotation_conflict)?;
        (id, key)
    });
    // The row just made, by id: a rotation racing this one may already have replaced it.
    let filter = "id = $1 AND org_id = $2";
    Ok((
        one(db, filter, &id, new.org_id, "SDK access key").await?,
        key,
    ))
}

/// A second live access key for the workspace: a concurrent rotation won (or the workspace
/// went away under it).
fn rotation_conflict(e: sqlx::Error) -> StoreError {
    match violated(&e) {
        Some(c) if *c == SDK_ONE_ACCESS_KEY => already_rotated(),
        _ if is_missing_parent(&e) => already_rotated(),
        _ => e.into(),
    }
}

/// The sealed value of live SDK key `id` (any kind), for a verified reveal.
pub async fn sealed_value(db: &Db, id: &str) -> StoreResult<Option<String>> {
    Ok(with_db!(db, |pool| {
        sqlx::query_scalar("SELECT key_sealed FROM sdk_keys WHERE id = $1 AND revoked_at IS NULL")
            .bind(id)
            .fetch_optional(pool)
            .await
    })?)
}
