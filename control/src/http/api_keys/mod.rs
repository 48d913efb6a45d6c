//! Customer API keys, as HTTP sees them: the keys a platform (through its SDK key) gives its
//! own customers, in the shape of Oneloop's API so that `@oneloop-hq/oneloop-ts` 1.0.9 works
//! unchanged.
//!
//! - [`manage`]: create (the value is shown once), list, get, edit, delete, rotate (with
//!   keygate's optional grace period for the old value), refill;
//! - [`verify`]: `POST /api/v1/api-key/verify`, the hot path, every status decided by
//!   [`keygate_shared::api_key::decide`];
//! - [`usage`]: verifications per day by outcome (workspace, key) and billing usage per
//!   billing id, for the dashboard's charts.
//!
//! Every call needs the `api_keys` scope (read for GET, write otherwise; verify takes
//! either) and reaches only the caller's organisation, and only its own workspace for a
//! workspace-bound SDK key; anything else is a 404 (or `INVALID` for verify).

mod manage;
mod usage;
mod verify;

use std::sync::Arc;

use axum::Extension;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::AppState;
use crate::jobs::verify_stats::VerifyStats;
use crate::jobs::verify_writes::VerifyWriter;
use crate::store::api_keys::verify::VerifyConnections;

/// Longest key name accepted.
pub const MAX_NAME_LEN: usize = 200;
/// Longest customer id accepted.
pub const MAX_CUSTOMER_ID_LEN: usize = 256;
/// Most scopes one key may grant (and one verify may ask for).
pub const MAX_SCOPES: usize = 100;
/// Longest rotation grace period: 30 days.
pub const MAX_GRACE_MS: i64 = 30 * 24 * 60 * 60 * 1000;
/// Largest usage allowance or refill.
pub const MAX_USAGE: i64 = 1_000_000_000_000;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(manage::create))
        .routes(routes!(verify::verify))
        .routes(routes!(manage::list))
        .routes(routes!(manage::get_one, manage::edit, manage::delete))
        .routes(routes!(manage::rotate))
        .routes(routes!(manage::refill))
        .routes(routes!(usage::workspace_usage))
        .routes(routes!(usage::key_usage))
        .routes(routes!(usage::billing_usage))
        .layer(Extension(Arc::new(VerifyStats::default())))
        .layer(Extension(Arc::new(VerifyWriter::default())))
        .layer(Extension(Arc::new(VerifyConnections::default())))
}
