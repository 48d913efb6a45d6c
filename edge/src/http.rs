//! Small helpers between the Workers runtime and the edge's pure modules: reading a bounded
//! body, answering JSON, reading the configuration and the clock. Compiled for wasm only.

use std::rc::Rc;

use futures_util::StreamExt;
use serde::Serialize;
use worker::{Env, Headers, Request, Response};

use crate::config::Config;
use crate::error::ApiError;

impl From<worker::Error> for ApiError {
    fn from(e: worker::Error) -> Self {
        worker::console_error!("keygate: runtime error: {e}");
        ApiError::new(500, "INTERNAL", "the edge failed to handle the request")
    }
}

/// Milliseconds since the Unix epoch (workerd advances it only across I/O).
pub fn now_ms() -> u64 {
    worker::Date::now().as_millis()
}

thread_local! {
    static CONFIG: std::cell::OnceCell<Rc<Config>> = const { std::cell::OnceCell::new() };
}

/// The configuration, read from the worker's bindings once per isolate (bindings cannot
/// change during an isolate's life; a new deployment starts new isolates).
pub fn config(env: &Env) -> Rc<Config> {
    CONFIG.with(|c| {
        c.get_or_init(|| {
            Rc::new(Config::from_lookup(|name| {
                env.var(name).ok().map(|v| v.to_string())
            }))
        })
        .clone()
    })
}

/// A request header, if present.
pub fn header(req: &Request, name: &str) -> Option<String> {
    req.headers().get(name).ok().flatten()
}

/// Reads the whole body, refusing more than `limit` bytes (by `Content-Length` up front, and
/// while streaming for chunked bodies).
pub async fn read_body(req: &mut Request, limit: usize) -> Result<Vec<u8>, ApiError> {
    if let Some(len) = header(req, "content-length") {
        let len = len
            .trim()
            .parse::<u64>()
            .map_err(|_| ApiError::new(400, "INVALID_CONTENT_LENGTH", "bad Content-Length"))?;
        if len > limit as u64 {
            return Err(ApiError::payload_too_large(limit));
        }
        if len == 0 {
            return Ok(Vec::new());
        }
        // Known and small: one `arrayBuffer()` is much cheaper than streaming chunks.
        let body = req.bytes().await?;
        if body.len() > limit {
            return Err(ApiError::payload_too_large(limit));
        }
        return Ok(body);
    }
    if req.inner().body().is_none() {
        return Ok(Vec::new());
    }
    let mut stream = req.stream()?;
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::payload_too_large(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Most unread request body drained after answering (see [`drain_unread_body`]): enough for
/// a body just over the largest limit (a sync push's 1 MiB), so a client that sends its body
/// before reading the answer sees the 413 rather than a reset connection.
const DRAIN_LIMIT: usize = 1536 * 1024;

/// Reads and drops a request body the handler did not read (a refused gateway call, an
/// error before the body was needed), up to [`DRAIN_LIMIT`]: the HTTP front end closes a
/// keep-alive connection whose request body was left unread, which clients see as a reset
/// on their next request. Bodies handed on to `fetch` (locked streams) are left alone.
pub async fn drain_unread_body(raw: &worker::web_sys::Request) {
    if raw.body_used() {
        return;
    }
    let Some(stream) = raw.body() else {
        return;
    };
    if stream.locked() {
        return;
    }
    let mut stream = worker::ByteStream::from(stream);
    let mut total = 0;
    while let Some(Ok(chunk)) = stream.next().await {
        total += chunk.len();
        if total > DRAIN_LIMIT {
            break;
        }
    }
}

/// A JSON answer with `status`; never cached by intermediaries.
pub fn json<T: Serialize>(status: u16, value: &T) -> Result<Response, ApiError> {
    let headers = Headers::new();
    headers.set("content-type", "application/json")?;
    headers.set("cache-control", "no-store")?;
    let body =
        serde_json::to_vec(value).map_err(|_| ApiError::new(500, "INTERNAL", "encoding failed"))?;
    Ok(Response::builder()
        .with_status(status)
        .with_headers(headers)
        .fixed(body))
}

/// The error answer for `e`.
pub fn error_response(e: &ApiError) -> Response {
    let headers = Headers::new();
    let _ = headers.set("content-type", "application/json");
    let _ = headers.set("cache-control", "no-store");
    Response::builder()
        .with_status(e.status)
        .with_headers(headers)
        .fixed(e.to_json().into_bytes())
}

/// Adds CORS headers echoing `origin` (when one is allowed) to a response we built.
pub fn with_cors(resp: Response, origin: Option<&str>) -> Result<Response, ApiError> {
    let Some(origin) = origin else {
        return Ok(resp);
    };
    let mut resp = resp;
    let h = resp.headers_mut();
    h.set("access-control-allow-origin", origin)?;
    h.append("vary", "Origin")?;
    Ok(resp)
}
