//! The storage layer: the only code that names `sqlx`.
//!
//! One module per aggregate (`workspace_scopes`, ...) owns that aggregate's SQL, its
//! transactions, and the audit and outbox rows written with each change, so a handler makes
//! one storage call per request and a background job takes a [`Db`], never the HTTP state.
//! Storage calls fail with [`StoreError`]; `crate::error` maps it to HTTP in one place.
//!
//! The database: SQLite (default, embedded) or PostgreSQL (several replicas, scale).
//!
//! Queries are written once, as plain SQL with `$1` placeholders (both databases accept them),
//! next to their use. [`with_db!`] runs the same block against whichever pool is configured,
//! compiling it once per backend, so there is no `Any` driver and types decode natively.
//!
//! ```ignore
//! let name: Option<String> = with_db!(&state.db, |pool| {
//!     sqlx::query_scalar("SELECT name FROM workspaces WHERE id = $1")
//!         .bind(id)
//!         .fetch_optional(pool)
//!         .await
//! })?;
//! ```
//!
//! Transactions that read before they write must start with [`WriteTx::begin_write`]:
//! `BEGIN IMMEDIATE` on SQLite (a deferred transaction cannot upgrade to a writer under
//! concurrency) and a plain `BEGIN` on PostgreSQL. [`write_tx!`](crate::write_tx) runs a
//! block in one and commits it, so a change, its audit row and its outbox rows land together.

pub mod api_keys;
pub mod audit;
pub mod billing_usage;
pub mod constraints;
pub mod delivery;
pub mod gateway_secrets;
pub mod link_tokens;
pub mod master_key;
pub mod members;
pub mod organisations;
pub mod otp;
pub mod outbox;
pub mod portal;
pub mod publishable_keys;
pub mod retention;
pub mod sdk_keys;
pub mod sessions;
pub mod tokens;
pub mod workspace_scopes;
pub mod workspaces;

pub use constraints::Constraint;

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Postgres, Sqlite, Transaction};

/// A connection pool to one of the two supported databases.
#[derive(Clone, Debug)]
pub enum Db {
    /// Embedded SQLite (WAL mode).
    Sqlite(SqlitePool),
    /// PostgreSQL.
    Postgres(PgPool),
}

/// Runs a block with `pool` bound to the configured backend's pool (`&SqlitePool` or
/// `&PgPool`); the block is compiled for both. A `?` inside returns from the enclosing
/// function (a dropped transaction rolls back); for a block-local result write
/// `with_db!(db, |pool| async { ... }.await)`.
#[macro_export]
macro_rules! with_db {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $db {
            $crate::store::Db::Sqlite($pool) => $body,
            $crate::store::Db::Postgres($pool) => $body,
        }
    };
}

/// Runs a block in a write transaction ([`crate::store::WriteTx::begin_write`]) with `$tx`
/// bound to it, then commits: what the block writes (a change, its audit row, its outbox
/// rows) lands together or not at all. A `?` or `return Err(..)` inside returns from the
/// enclosing function and the dropped transaction rolls back. The value is the block's.
///
/// ```ignore
/// write_tx!(db, |tx| {
///     sqlx::query("DELETE FROM t WHERE id = $1").bind(id).execute(&mut *tx).await?;
///     tx.record_audit(&audit, client).await?;
/// });
/// ```
#[macro_export]
macro_rules! write_tx {
    ($db:expr, |$tx:ident| $body:block) => {
        $crate::with_db!($db, |pool| {
            let mut $tx = $crate::store::WriteTx::begin_write(pool).await?;
            let value = $body;
            $tx.commit().await?;
            value
        })
    };
}

static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl Db {
    /// Connects to `url` (`sqlite://path` or `postgres://...`), creating a SQLite file if needed.
    pub async fn connect(url: &str) -> Result<Db, sqlx::Error> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .connect(url)
                .await?;
            Ok(Db::Postgres(pool))
        } else if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(5))
                .foreign_keys(true);
            let pool = SqlitePoolOptions::new()
                .max_connections(8)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await?;
            Ok(Db::Sqlite(pool))
        } else {
            Err(sqlx::Error::Configuration(
                "the database URL must start with sqlite:// or postgres://".into(),
            ))
        }
    }

    /// Applies pending migrations.
    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        match self {
            Db::Sqlite(pool) => SQLITE_MIGRATOR.run(pool).await,
            Db::Postgres(pool) => POSTGRES_MIGRATOR.run(pool).await,
        }
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match self {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> bool {
        with_db!(self, |pool| sqlx::query("SELECT 1")
            .execute(pool)
            .await
            .is_ok())
    }

    /// Closes every connection.
    pub async fn close(&self) {
        with_db!(self, |pool| pool.close().await)
    }
}

/// Starting a transaction that will write.
#[allow(async_fn_in_trait)]
pub trait WriteTx {
    /// The database.
    type Database: sqlx::Database;
    /// Begins a transaction holding the write lock from the start where that matters.
    async fn begin_write(&self) -> Result<WriteTransaction<Self::Database>, sqlx::Error>;
}

/// A write transaction. Dereferences to the connection (`&mut *tx` is an executor); `commit`
/// or drop (rollback) ends it.
///
/// On SQLite it also holds this process's turn to write: SQLite has one writer at a time, and
/// writers that wait inside SQLite's busy handler retry on a sleeping schedule in no order, so
/// under load one can wait a second while the lock is free. Queuing them here, first come
/// first served, before `BEGIN IMMEDIATE` keeps the wait as short as the writes ahead of it.
pub struct WriteTransaction<DB: sqlx::Database> {
    tx: Transaction<'static, DB>,
    _turn: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl<DB: sqlx::Database> WriteTransaction<DB> {
    /// Commits.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }

    /// Rolls back (dropping does the same).
    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.tx.rollback().await
    }
}

/// The connection, for store traits (`tx.as_mut().record_audit(..)`).
impl<DB: sqlx::Database> AsMut<DB::Connection> for WriteTransaction<DB> {
    fn as_mut(&mut self) -> &mut DB::Connection {
        &mut self.tx
    }
}

impl<DB: sqlx::Database> std::ops::Deref for WriteTransaction<DB> {
    type Target = DB::Connection;
    fn deref(&self) -> &DB::Connection {
        &self.tx
    }
}

impl<DB: sqlx::Database> std::ops::DerefMut for WriteTransaction<DB> {
    fn deref_mut(&mut self) -> &mut DB::Connection {
        &mut self.tx
    }
}

/// How long a writer waits for its turn before giving up (SQLite's own busy timeout is 5 s).
const WRITE_TURN_TIMEOUT: Duration = Duration::from_secs(10);

/// One queue of writers per SQLite file in this process.
fn sqlite_write_turns(pool: &SqlitePool) -> std::sync::Arc<tokio::sync::Semaphore> {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex, OnceLock};
    static TURNS: OnceLock<Mutex<HashMap<std::path::PathBuf, Arc<tokio::sync::Semaphore>>>> =
        OnceLock::new();
    let file = pool.connect_options().get_filename().to_path_buf();
    let mut map = TURNS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    map.entry(file)
        .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(1)))
        .clone()
}

impl WriteTx for SqlitePool {
    type Database = Sqlite;
    async fn begin_write(&self) -> Result<WriteTransaction<Sqlite>, sqlx::Error> {
        let turn =
            tokio::time::timeout(WRITE_TURN_TIMEOUT, sqlite_write_turns(self).acquire_owned())
                .await
                .map_err(|_| sqlx::Error::PoolTimedOut)?
                .map_err(|_| sqlx::Error::PoolClosed)?;
        Ok(WriteTransaction {
            tx: self.begin_with("BEGIN IMMEDIATE").await?,
            _turn: Some(turn),
        })
    }
}

impl WriteTx for PgPool {
    type Database = Postgres;
    async fn begin_write(&self) -> Result<WriteTransaction<Postgres>, sqlx::Error> {
        Ok(WriteTransaction {
            tx: self.begin().await?,
            _turn: None,
        })
    }
}

/// Implements a trait for both `SqliteConnection` and `PgConnection` with one body, for
/// store functions that run inside a caller's transaction (`&mut *tx`).
///
/// ```ignore
/// pub trait AuditStore { async fn record_audit(&mut self, e: &AuditEntry<'_>) -> sqlx::Result<()>; }
/// impl_for_both_backends!(AuditStore {
///     async fn record_audit(&mut self, e: &AuditEntry<'_>) -> sqlx::Result<()> { ... }
/// });
/// ```
#[macro_export]
macro_rules! impl_for_both_backends {
    ($trait:path { $($body:tt)* }) => {
        impl $trait for sqlx::SqliteConnection { $($body)* }
        impl $trait for sqlx::PgConnection { $($body)* }
    };
}

/// A row type both backends decode (`#[derive(sqlx::FromRow)]` or a tuple).
pub trait DbRow:
    for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
    + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
    + Send
    + Unpin
{
}

impl<R> DbRow for R where
    R: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
        + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
        + Send
        + Unpin
{
}

/// Every row `sql` selects with `$1` bound to `id`, decoded as `R`: the read behind each
/// "the X of this organisation (or workspace)" list.
pub async fn rows_by_id<R: DbRow>(db: &Db, sql: &str, id: &str) -> StoreResult<Vec<R>> {
    rows_by(db, sql, &[id]).await
}

/// Every row `sql` selects with `$1`, `$2`, ... bound to `params`, decoded as `R`.
pub async fn rows_by<R: DbRow>(db: &Db, sql: &str, params: &[&str]) -> StoreResult<Vec<R>> {
    Ok(with_db!(db, |pool| {
        let mut query = sqlx::query_as(sql);
        for param in params {
            query = query.bind(*param);
        }
        query.fetch_all(pool).await
    })?)
}

/// The row `sql` selects with `$1`, `$2`, ... bound to `params`, or `NotFound(what)`: the
/// read behind each "this X of that organisation (or workspace)".
pub async fn row_by<R: DbRow>(
    db: &Db,
    sql: &str,
    params: &[&str],
    what: &'static str,
) -> StoreResult<R> {
    let row: Option<R> = with_db!(db, |pool| {
        let mut query = sqlx::query_as(sql);
        for param in params {
            query = query.bind(*param);
        }
        query.fetch_optional(pool).await
    })?;
    row.ok_or(StoreError::NotFound(what))
}

/// Why a storage call failed. Everything but [`StoreError::Database`] is the caller's to
/// fix and becomes a 4xx; `crate::error` holds the one mapping to HTTP.
#[derive(Debug)]
pub enum StoreError {
    /// No such row, or one in another tenant (callers must not learn which). Names the
    /// kind of thing, e.g. `"workspace"`.
    NotFound(&'static str),
    /// A named constraint of the schema refused the write (a duplicate, a value out of
    /// range): the change conflicts with what is stored. `reason` is the stable code.
    Conflict {
        /// Stable machine-readable reason, e.g. `SCOPE_EXISTS`.
        reason: &'static str,
        /// A sentence for people. Never contains a secret.
        message: String,
    },
    /// A rule checked inside the transaction refused the change (e.g. removing the last
    /// owner): stable reason, human message, and how the caller should read it.
    Refused {
        /// What kind of refusal, for the HTTP status.
        kind: Refusal,
        /// Stable machine-readable reason.
        reason: &'static str,
        /// A sentence for people. Never contains a secret.
        message: String,
    },
    /// The database failed (logged, answered as a 500 with no detail).
    Database(sqlx::Error),
}

/// The kinds of [`StoreError::Refused`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The request is invalid given the stored state (400).
    Invalid,
    /// The caller may not do this to this row (403).
    Forbidden,
    /// The row is not in a state that allows it (409).
    Conflict,
    /// Too many attempts; retry after this many seconds (429).
    Limited(u64),
}

impl StoreError {
    /// A refusal of `kind`.
    pub fn refused(kind: Refusal, reason: &'static str, message: impl Into<String>) -> Self {
        StoreError::Refused {
            kind,
            reason,
            message: message.into(),
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Database(e)
    }
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::NotFound(what) => write!(f, "no such {what}"),
            StoreError::Conflict { reason, message }
            | StoreError::Refused {
                reason, message, ..
            } => {
                write!(f, "{reason}: {message}")
            }
            StoreError::Database(e) => write!(f, "database: {e}"),
        }
    }
}

impl std::error::Error for StoreError {}

/// Shorthand for storage results.
pub type StoreResult<T> = Result<T, StoreError>;
