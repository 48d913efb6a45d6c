//! The edge's error answers: `{"error": {"code": <http>, "message": "...", "reason": "<CODE>"}}`.
//!
//! `reason` is stable and meant for programs; `message` is for people and never contains a
//! secret, a key or a signature. Verdicts (VALID, REVOKED, ...) are not errors: they come
//! from `keygate_shared::verdict`. These are for requests the edge could not judge at all.

use keygate_shared::signing::SignatureError;
use serde::Serialize;

/// A refused request: HTTP status, stable reason and a sentence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// Stable machine-readable code, e.g. `INVALID_JSON`.
    pub reason: &'static str,
    /// Human-readable explanation.
    pub message: String,
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: Body<'a>,
}

#[derive(Serialize)]
struct Body<'a> {
    code: u16,
    message: &'a str,
    reason: &'a str,
}

impl ApiError {
    /// An error with the given status, reason and message.
    pub fn new(status: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            reason,
            message: message.into(),
        }
    }

    /// No such route.
    pub fn not_found() -> Self {
        Self::new(404, "NOT_FOUND", "no such route on the keygate edge")
    }

    /// The route exists but not with this method.
    pub fn method_not_allowed(allowed: &str) -> Self {
        Self::new(
            405,
            "METHOD_NOT_ALLOWED",
            format!("this route accepts {allowed}"),
        )
    }

    /// The body is larger than the route accepts.
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            413,
            "PAYLOAD_TOO_LARGE",
            format!("the body must be at most {limit} bytes"),
        )
    }

    /// The body is not the JSON the route expects.
    pub fn invalid_json(detail: impl std::fmt::Display) -> Self {
        Self::new(
            400,
            "INVALID_JSON",
            format!("the body is not valid JSON: {detail}"),
        )
    }

    /// A required field is absent.
    pub fn missing_field(field: &str) -> Self {
        Self::new(400, "MISSING_FIELD", format!("`{field}` is required"))
    }

    /// A field has the wrong type or form.
    pub fn invalid_field(field: &str, expected: &str) -> Self {
        Self::new(
            400,
            "INVALID_FIELD",
            format!("`{field}` must be {expected}"),
        )
    }

    /// A signed message (sync push, pull reply) was refused.
    pub fn signature(e: SignatureError) -> Self {
        Self::new(401, e.code(), e.to_string())
    }

    /// The worker lacks configuration this route needs (e.g. the edge secret).
    pub fn not_configured(what: &str) -> Self {
        Self::new(
            503,
            "EDGE_NOT_CONFIGURED",
            format!("the edge is not configured: {what}"),
        )
    }

    /// Storage (KV) failed; the caller may retry.
    pub fn storage_unavailable() -> Self {
        Self::new(
            503,
            "STORAGE_UNAVAILABLE",
            "edge storage is unavailable; retry later",
        )
    }

    /// The workspace's origin could not be reached.
    pub fn origin_unreachable() -> Self {
        Self::new(
            502,
            "ORIGIN_UNREACHABLE",
            "the workspace's origin server could not be reached",
        )
    }

    /// The key is valid but its workspace has no origin URL to forward to.
    pub fn gateway_not_configured() -> Self {
        Self::new(
            404,
            "GATEWAY_NOT_CONFIGURED",
            "this workspace has no origin URL; use POST /v1/check instead",
        )
    }

    /// A gateway path that cannot be forwarded as is.
    pub fn invalid_path(why: &str) -> Self {
        Self::new(400, "INVALID_PATH", why.to_owned())
    }

    /// The JSON body of the error.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&Envelope {
            error: Body {
                code: self.status,
                message: &self.message,
                reason: self.reason,
            },
        })
        .unwrap_or_else(|_| String::from(r#"{"error":{"code":500,"reason":"INTERNAL"}}"#))
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.reason, self.message)
    }
}

impl std::error::Error for ApiError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_serialize_to_the_documented_shape() {
        let e = ApiError::missing_field("module");
        let v: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(v["error"]["code"], 400);
        assert_eq!(v["error"]["reason"], "MISSING_FIELD");
        assert_eq!(v["error"]["message"], "`module` is required");
    }

    #[test]
    fn signature_errors_keep_their_shared_codes() {
        let e = ApiError::signature(SignatureError::Replayed);
        assert_eq!((e.status, e.reason), (401, "SIGNATURE_REPLAYED"));
    }
}
