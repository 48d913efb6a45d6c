//! The HTTP contract: a named type for every request and response body.
//!
//! These types are plain data (serde and `utoipa::ToSchema`, no I/O): handlers in
//! `crate::http` take and return them, storage in `crate::store` builds them from rows, and
//! `/openapi.json` (and the dashboard's type check) is generated from them. A change here is
//! a change to the public API: add fields, never rename or remove one.

pub mod edge_sync;
pub mod workspace_scopes;

use serde::Serialize;
use utoipa::ToSchema;

/// A point in time: milliseconds since the Unix epoch inside, RFC 3339 (UTC, milliseconds)
/// on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, ToSchema)]
#[schema(value_type = String, format = DateTime, example = "2026-01-31T12:00:00.000Z")]
pub struct Timestamp(pub i64);

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::ids::rfc3339(self.0))
    }
}

/// Every error answer: `{"error": {...}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The error itself.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// The HTTP status, repeated.
    pub code: u16,
    /// A sentence for people. Never contains a secret or an echoed input value.
    pub message: String,
    /// Stable machine-readable reason (`NOT_FOUND`, `MISSING_SCOPE`, ...): match on this.
    pub reason: String,
}
