//! The HTTP contract: a named type for every request and response body.
//!
//! These types are plain data (serde and `utoipa::ToSchema`, no I/O): handlers in
//! `crate::http` take and return them, storage in `crate::store` builds them from rows, and
//! `/openapi.json` (and the dashboard's type check) is generated from them. A change here is
//! a change to the public API: add fields, never rename or remove one.

pub mod api_keys;
pub mod audit;
pub mod billing_usage;
pub mod edge_sync;
pub mod gateway_secrets;
pub mod link_tokens;
pub mod members;
pub mod paths;
pub mod portal;
pub mod publishable_keys;
pub mod sdk_keys;
pub mod sessions;
pub mod tokens;
pub mod usage;
pub mod workspace_scopes;
pub mod workspaces;

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

/// `GET /healthz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`, or `unavailable` when the database does not answer.
    pub status: String,
    /// `sqlite` or `postgres`.
    pub database: String,
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

/// For PATCH bodies: deserializes a present field (even `null`) as `Some(..)`, so "leave as
/// is" (absent, `None`) differs from "clear" (`Some(None)`). Use with `#[serde(default,
/// deserialize_with = "present")]`. (Here rather than in `http::validate`, which re-exports
/// it, because contract types may not name the HTTP layer.)
pub fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    <Option<T> as serde::Deserialize>::deserialize(d).map(Some)
}
