//! Start-up work on the gateway signing secrets, and the paths other modules import them by.
//! The code lives in [`crate::store::gateway_secrets`] (storage) and
//! [`crate::http::gateway_secrets`] (the routes).

pub use crate::store::gateway_secrets::{GatewaySecretStore, StoredSecret};

use crate::error::ApiError;
use crate::http::AppState;
use crate::store::gateway_secrets::{backfill, reseal_for_edge as reseal};

/// Run at start-up: gives every workspace that has none its own gateway secret (workspaces
/// made before each got one at creation), then makes sure every live secret's edge copy opens
/// with the configured edge secret (sealing it again if not, e.g. after the edge secret was
/// set or changed) and queues the affected records. Returns how many were sealed again.
pub async fn reseal_for_edge(state: &AppState) -> Result<usize, ApiError> {
    let edge_secret = state.settings.edge_secret.as_deref();
    backfill(&state.db, &state.keys, edge_secret).await?;
    let Some(edge_secret) = edge_secret else {
        return Ok(0);
    };
    Ok(reseal(&state.db, &state.keys, edge_secret).await?)
}
