//! Start-up work on the gateway signing secrets (the storage is
//! [`crate::store::gateway_secrets`], the routes [`crate::http::gateway_secrets`]).

use crate::crypto::Keys;
use crate::store::gateway_secrets::{backfill, reseal_for_edge as reseal};
use crate::store::{Db, StoreResult};

/// Run at start-up: gives every workspace that has none its own gateway secret (workspaces
/// made before each got one at creation), then makes sure every live secret's edge copy opens
/// with `edge_secret` (sealing it again if not, e.g. after the edge secret was set or changed)
/// and queues the affected records. Returns how many were sealed again.
pub async fn reseal_for_edge(
    db: &Db,
    keys: &Keys,
    edge_secret: Option<&str>,
) -> StoreResult<usize> {
    backfill(db, keys, edge_secret).await?;
    match edge_secret {
        Some(edge_secret) => reseal(db, keys, edge_secret).await,
        None => Ok(0),
    }
}
