//! The control plane's one error type and its one mapping to HTTP.
//!
//! Every error leaves as `{"error": {"code": <status>, "message": "...", "reason": "CODE"}}`.
//! Handlers return `Result<_, ApiError>`; storage failures ([`crate::store::StoreError`])
//! convert with `?` in the one `From` impl below: refusals become their 4xx, database errors a
//! 500 whose detail is logged but never sent.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// A failed request: status, stable reason code, human message.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable reason (`NOT_FOUND`, `MISSING_SCOPE`, ...).
    pub reason: &'static str,
    /// A sentence for people. Never contains a secret.
    pub message: String,
    /// Seconds to wait, for 429s.
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// Any status.
    pub fn new(status: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            reason,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 400: the request is malformed.
    pub fn bad_request(reason: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, reason, message)
    }

    /// 401: not signed in, or the credential is not valid.
    pub fn unauthorized(reason: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, reason, message)
    }

    /// 403: signed in, but not allowed.
    pub fn forbidden(reason: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, reason, message)
    }

    /// 404 for a resource that does not exist *or belongs to someone else*: the caller must
    /// not learn which.
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("no such {what}"),
        )
    }

    /// 409: conflicts with the current state.
    pub fn conflict(reason: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, reason, message)
    }

    /// 429 with a `Retry-After`.
    pub fn too_many_requests(
        reason: &'static str,
        message: impl Into<String>,
        retry_after: u64,
    ) -> Self {
        ApiError {
            retry_after: Some(retry_after),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, reason, message)
        }
    }

    /// 500. `detail` is logged, never sent.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            "something went wrong on our side; it has been logged",
        )
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.reason,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "error": {
                "code": self.status.as_u16(),
                "message": self.message,
                "reason": self.reason,
            }
        });
        let mut res = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                res.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        res
    }
}

/// The one mapping from storage failures to HTTP.
impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::{Refusal, StoreError};
        match e {
            StoreError::NotFound(what) => ApiError::not_found(what),
            StoreError::Conflict { reason, message } => ApiError::conflict(reason, message),
            StoreError::Refused {
                kind,
                reason,
                message,
            } => match kind {
                Refusal::Invalid => ApiError::bad_request(reason, message),
                Refusal::Forbidden => ApiError::forbidden(reason, message),
                Refusal::Conflict => ApiError::conflict(reason, message),
                Refusal::Limited(retry_after) => {
                    ApiError::too_many_requests(reason, message, retry_after)
                }
            },
            StoreError::Database(e) => ApiError::internal(format_args!("database: {e}")),
        }
    }
}

/// A record the outbox refused: through [`crate::store::StoreError`], like every storage failure.
impl From<crate::store::outbox::OutboxError> for ApiError {
    fn from(e: crate::store::outbox::OutboxError) -> Self {
        crate::store::StoreError::from(e).into()
    }
}

/// Shorthand for handler results.
pub type ApiResult<T> = Result<T, ApiError>;
