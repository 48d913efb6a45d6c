//! `JsonBody<T>`: axum's JSON extractor with keygate's error shape. Malformed JSON, wrong
//! types, missing or unknown fields are 400s naming the problem; a missing content type is a
//! 415; an oversized body a 413. Values from the body are never echoed back (a secret pasted
//! into the wrong field must not come back in an error or a log line).

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON request body.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonBody<T>(pub T);

impl<T, S> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(JsonBody(v)),
            Err(rejection) => Err(map_rejection(rejection)),
        }
    }
}

fn map_rejection(r: JsonRejection) -> ApiError {
    match r {
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            "send the body as JSON with `Content-Type: application/json`",
        ),
        JsonRejection::JsonSyntaxError(e) => ApiError::bad_request(
            "MALFORMED_JSON",
            format!("the body is not valid JSON: {}", scrub(&e.body_text())),
        ),
        JsonRejection::JsonDataError(e) => ApiError::bad_request(
            "INVALID_BODY",
            format!(
                "the body does not have the expected fields: {}",
                scrub(&e.body_text())
            ),
        ),
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PAYLOAD_TOO_LARGE",
                format!("the body is larger than {} bytes", super::MAX_BODY_BYTES),
            )
        }
        other => ApiError::bad_request("INVALID_BODY", scrub(&other.body_text())),
    }
}

/// Removes quoted values (`"..."`) that serde quotes from the input, and bounds the length.
fn scrub(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(300));
    let mut in_quotes = false;
    for c in text.chars() {
        match c {
            '"' if !in_quotes => {
                in_quotes = true;
                out.push_str("\"…");
            }
            '"' => {
                in_quotes = false;
                out.push('"');
            }
            _ if in_quotes => {}
            _ => out.push(c),
        }
        if out.len() > 300 {
            out.push('…');
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::scrub;

    #[test]
    fn quoted_input_values_are_not_echoed() {
        let s = scrub(
            r#"Failed to deserialize: invalid type: string "sk_live_abc", expected u32 at line 1"#,
        );
        assert!(!s.contains("sk_live_abc"));
        assert!(s.contains("expected u32"));
        assert!(scrub("unknown field `foo`, expected `name`").contains("`foo`"));
    }
}
