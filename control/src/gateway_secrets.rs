//! The start-up re-sealing of gateway secrets at the path tests call it by; the work is
//! [`crate::jobs::gateway_secrets`].

use crate::error::ApiError;
use crate::http::AppState;

/// [`crate::jobs::gateway_secrets::reseal_for_edge`] with the app's database, keys and edge
/// secret.
pub async fn reseal_for_edge(state: &AppState) -> Result<usize, ApiError> {
    let edge_secret = state.settings.edge_secret.as_deref();
    Ok(crate::jobs::gateway_secrets::reseal_for_edge(&state.db, &state.keys, edge_secret).await?)
}
