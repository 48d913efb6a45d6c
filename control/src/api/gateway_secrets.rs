//! A workspace's gateway signing secrets: what its origin uses to verify that a request came
//! through the edge (`x-keygate-gateway-signature`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Timestamp;

/// One secret, shown to owners and admins.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceGatewaySecret {
    /// Its key id, named in each signature (`v1=<kid>:<hex>`).
    pub kid: String,
    /// The secret: 64 hex characters. Configure it at the origin; never log it.
    pub secret: String,
    /// When it was made.
    pub created_at: Timestamp,
    /// When the edge stops signing with it (`null`: the current secret).
    pub retires_at: Option<Timestamp>,
}

/// `GET /api/v1/workspace/{id}/gateway-secret` and the rotation's answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewaySecrets {
    /// The secrets the edge signs with, newest (the current one) first.
    pub gateway_secrets: Vec<WorkspaceGatewaySecret>,
    /// The request header that carries the signatures.
    pub signature_header: String,
}

/// `POST /api/v1/workspace/{id}/gateway-secret/rotate` (optional body).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RotateGatewaySecret {
    /// How long the previous secrets stay live, in seconds: 0 to 2,592,000 (30 days);
    /// default 86,400.
    pub overlap_seconds: Option<u64>,
}
