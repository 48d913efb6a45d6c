//! The edge's signed pull (`GET /api/v1/edge/records/{digest}`): the reply's shape. The
//! reply is `keygate_shared::record::PullReply`, serialized once and signed over its exact
//! bytes; these types describe it for the OpenAPI document.

use serde::Serialize;
use utoipa::ToSchema;

/// The answer to a pull: the key's current record, or `null` if keygate issued none.
#[derive(Debug, Serialize, ToSchema)]
pub struct EdgePullReply {
    /// The key's edge record (`keygate_shared::record::EdgeRecord`: `format`, `keyDigest`,
    /// `workspaceId`, `state`, `blacklist`, `allowedOrigins`, `originUrl`,
    /// `forwardCookies`, `gatewaySecrets`, `routes`, `version`); `null` for an unknown key.
    #[schema(value_type = Option<Object>)]
    pub record: Option<serde_json::Value>,
}
