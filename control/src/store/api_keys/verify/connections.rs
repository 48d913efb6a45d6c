//! Verify's own database connections, outside the shared pool.
//!
//! A query through a sqlx pool costs three round trips to the connection (SQLite: three hops
//! to its worker thread; PostgreSQL: three network round trips): a ping when an idle
//! connection is acquired, the query, and a ping in a task spawned when it is released. The
//! profile of the verify benchmark showed those pings and spawned tasks as the largest part
//! of verify's cost beyond the HTTP stack. [`Spare`] keeps a few connections of its own and
//! runs the one query on one of them: one round trip.
//!
//! The pings exist to catch a connection left mid-query by a cancelled future. A [`Lease`]
//! goes back only once its query has finished without error ([`Lease::settle`]); one dropped
//! mid-query (its request was cancelled) or after an error is closed instead, and a new one
//! is opened when next needed.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};

use sqlx::{ConnectOptions, Connection};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How many connections each [`Spare`] keeps open at most (the one read of a verify takes
/// tens of microseconds, so a few serve two cores).
pub const SPARE_CONNECTIONS: usize = 4;

/// Connections of one backend, opened on first use with the pool's options, at most
/// [`SPARE_CONNECTIONS`].
pub struct Spare<C> {
    idle: Mutex<Vec<C>>,
    permits: Arc<Semaphore>,
}

impl<C> Default for Spare<C> {
    fn default() -> Self {
        Spare {
            idle: Mutex::new(Vec::with_capacity(SPARE_CONNECTIONS)),
            permits: Arc::new(Semaphore::new(SPARE_CONNECTIONS)),
        }
    }
}

impl<C: Connection> Spare<C> {
    /// A connection for one query: an idle one, or a new one opened with `options`. Waits
    /// while all are in use.
    pub async fn lease(&self, options: &<C as Connection>::Options) -> sqlx::Result<Lease<'_, C>>
    where
        <C as Connection>::Options: ConnectOptions<Connection = C>,
    {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| sqlx::Error::PoolClosed)?;
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => options.connect().await?,
        };
        Ok(Lease {
            conn: Some(conn),
            spare: self,
            _permit: permit,
        })
    }
}

/// One connection of a [`Spare`], for one query. Dropped without [`Lease::settle`] (an
/// error, a cancelled request), the connection is closed rather than reused.
pub struct Lease<'a, C> {
    conn: Option<C>,
    spare: &'a Spare<C>,
    _permit: OwnedSemaphorePermit,
}

impl<C> Lease<'_, C> {
    /// Hands the connection back for the next query if `outcome` is a success; passes
    /// `outcome` on.
    pub fn settle<T, E>(mut self, outcome: Result<T, E>) -> Result<T, E> {
        if outcome.is_ok() {
            if let Some(conn) = self.conn.take() {
                self.spare
                    .idle
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(conn);
            }
        }
        outcome
    }
}

impl<C> Deref for Lease<'_, C> {
    type Target = C;
    fn deref(&self) -> &C {
        self.conn
            .as_ref()
            .expect("a lease holds its connection until settled")
    }
}

impl<C> DerefMut for Lease<'_, C> {
    fn deref_mut(&mut self) -> &mut C {
        self.conn
            .as_mut()
            .expect("a lease holds its connection until settled")
    }
}

/// Verify's spare connections, one set per backend (only the configured one is ever
/// opened). One per router (so per server); they close when it is dropped.
#[derive(Default)]
pub struct VerifyConnections {
    /// For a SQLite database.
    pub sqlite: Spare<sqlx::SqliteConnection>,
    /// For a PostgreSQL database.
    pub postgres: Spare<sqlx::PgConnection>,
}

/// The [`Spare`] for a pool's backend, so one block serves both in `with_db!`.
pub trait SpareFor {
    /// The backend's connection.
    type Conn: Connection;
    /// The spare connections for this backend.
    fn spare<'a>(&self, conns: &'a VerifyConnections) -> &'a Spare<Self::Conn>;
}

impl SpareFor for sqlx::SqlitePool {
    type Conn = sqlx::SqliteConnection;
    fn spare<'a>(&self, conns: &'a VerifyConnections) -> &'a Spare<Self::Conn> {
        &conns.sqlite
    }
}

impl SpareFor for sqlx::PgPool {
    type Conn = sqlx::PgConnection;
    fn spare<'a>(&self, conns: &'a VerifyConnections) -> &'a Spare<Self::Conn> {
        &conns.postgres
    }
}
