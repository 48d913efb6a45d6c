//! Small helpers between the Workers runtime and the edge's pure modules: reading a bounded
//! body, answering JSON, reading the configuration and the clock. Compiled for wasm only.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use futures_util::StreamExt;
use serde::Serialize;
use worker::wasm_bindgen::{self, prelude::wasm_bindgen, JsCast, JsValue};
use worker::{js_sys, web_sys, Env, Headers, Request, Response};

use crate::config::Config;
use crate::error::ApiError;

impl From<worker::Error> for ApiError {
    fn from(e: worker::Error) -> Self {
        worker::console_error!("keygate: runtime error: {e}");
        ApiError::new(500, "INTERNAL", "the edge failed to handle the request")
    }
}

/// Milliseconds since the Unix epoch (workerd advances it only across I/O). One call to the
/// static `Date.now()` (not `new Date().getTime()`, two calls and an object).
pub fn now_ms() -> u64 {
    js_sys::Date::now() as u64
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

#[wasm_bindgen]
extern "C" {
    /// A request's `Headers`, seen through [`get_named`] only.
    #[wasm_bindgen(js_name = Headers)]
    type NamedHeaders;

    /// `Headers.prototype.get` with the name already a JavaScript string (web-sys's `get`
    /// decodes the name from wasm memory on every call, and wraps the call in a catch it
    /// does not need for a valid name).
    #[wasm_bindgen(method, js_name = get)]
    fn get_named(this: &NamedHeaders, name: &JsValue) -> Option<String>;
}

thread_local! {
    /// The header names [`raw_header`] has read, as JavaScript strings.
    static HEADER_NAMES: RefCell<Vec<(&'static str, JsValue)>> = const { RefCell::new(Vec::new()) };
}

/// A header of the JavaScript request, if present. `name` is a valid lowercase header name.
pub fn raw_header(req: &web_sys::Request, name: &'static str) -> Option<String> {
    let name = HEADER_NAMES.with(|names| {
        if let Some((_, js)) = names.borrow().iter().find(|(n, _)| *n == name) {
            return js.clone();
        }
        let js = JsValue::from_str(name);
        names.borrow_mut().push((name, js.clone()));
        js
    });
    req.headers()
        .unchecked_into::<NamedHeaders>()
        .get_named(&name)
}

/// Reads the whole body, refusing more than `limit` bytes (by `Content-Length` up front, and
/// while streaming for chunked bodies).
pub async fn read_body(req: &mut Request, limit: usize) -> Result<Vec<u8>, ApiError> {
    read_raw_body(req.inner(), limit).await
}

/// [`read_body`] on the JavaScript request.
pub async fn read_raw_body(req: &web_sys::Request, limit: usize) -> Result<Vec<u8>, ApiError> {
    if let Some(len) = raw_header(req, "content-length") {
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
        let promise = req.array_buffer().map_err(worker::Error::from)?;
        let buffer = worker::wasm_bindgen_futures::JsFuture::from(promise)
            .await
            .map_err(worker::Error::from)?;
        let body = js_sys::Uint8Array::new(&buffer).to_vec();
        if body.len() > limit {
            return Err(ApiError::payload_too_large(limit));
        }
        return Ok(body);
    }
    let Some(stream) = req.body() else {
        return Ok(Vec::new());
    };
    let mut stream = worker::ByteStream::from(stream);
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

thread_local! {
    /// `{status, headers: {content-type: application/json, cache-control: no-store}}`, one
    /// per status answered so far: `new Response(body, init)` copies the headers, so one init
    /// serves every answer with that status.
    static JSON_INITS: RefCell<Vec<(u16, web_sys::ResponseInit)>> = const { RefCell::new(Vec::new()) };
}

/// `content-type: application/json`, `cache-control: no-store`, as a `Headers` object: what
/// the cached inits hold (the `Response` constructor copies a `Headers` object for less than
/// it takes to read a plain object's properties).
fn json_headers() -> web_sys::Headers {
    let headers = web_sys::Headers::new().expect("a Headers object");
    let _ = headers.set("content-type", "application/json");
    let _ = headers.set("cache-control", "no-store");
    headers
}

fn json_init(status: u16) -> web_sys::ResponseInit {
    JSON_INITS.with(|inits| {
        if let Some((_, init)) = inits.borrow().iter().find(|(s, _)| *s == status) {
            return init.clone();
        }
        let headers = json_headers();
        let init = web_sys::ResponseInit::new();
        init.set_status(status);
        init.set_headers(&headers);
        inits.borrow_mut().push((status, init.clone()));
        init
    })
}

/// A JSON answer with `status` as a JavaScript response, built with one call (same headers
/// as [`json`]: `content-type: application/json`, `cache-control: no-store`).
pub fn json_raw(status: u16, body: &str) -> Result<web_sys::Response, ApiError> {
    web_sys::Response::new_with_opt_str_and_init(Some(body), &json_init(status))
        .map_err(|e| ApiError::from(worker::Error::from(e)))
}

#[wasm_bindgen]
extern "C" {
    /// A `Response` made by [`PlainResponse::new_response`].
    #[wasm_bindgen(js_name = Response)]
    type PlainResponse;

    /// `new Response(body, init)` with the body already a JavaScript value and no catch
    /// wrapper: only for a valid status with headers that were already accepted (a cached
    /// init), where the constructor cannot throw.
    #[wasm_bindgen(constructor, js_class = "Response")]
    fn new_response(body: &JsValue, init: &web_sys::ResponseInit) -> PlainResponse;
}

thread_local! {
    /// `GET /healthz`'s body, as a JavaScript string.
    static HEALTH_BODY: JsValue = JsValue::from_str(r#"{"status":"ok"}"#);
}

/// `GET /healthz`'s answer: `{"status":"ok"}` with the JSON headers, from a cached body and
/// init.
pub fn health() -> web_sys::Response {
    HEALTH_BODY.with(|body| PlainResponse::new_response(body, &json_init(200)).unchecked_into())
}

/// Most distinct [`verdict_raw`] inits kept (status x lookup x allowed origin); past it the
/// cache starts over, so an isolate that sees many origins still uses bounded memory.
const MAX_VERDICT_INITS: usize = 256;

/// What a [`verdict_raw`] init depends on: status, lookup, allowed origin.
type VerdictShape = (u16, &'static str, Option<String>);

thread_local! {
    /// [`verdict_raw`]'s inits.
    static VERDICT_INITS: RefCell<HashMap<VerdictShape, web_sys::ResponseInit>> =
        RefCell::new(HashMap::new());
}

/// A check's JSON answer with its `lookup` header and, when an origin is allowed, the CORS
/// headers echoing it (`access-control-allow-origin`, `vary: Origin`): one
/// `new Response(body, init)` call, with the init (and its headers) made once per
/// combination and reused, since the constructor copies them.
pub fn verdict_raw(
    status: u16,
    body: &str,
    lookup: &'static str,
    origin: Option<&str>,
) -> Result<web_sys::Response, ApiError> {
    let key = (status, lookup, origin.map(str::to_owned));
    let init = VERDICT_INITS.with(|inits| {
        if let Some(init) = inits.borrow().get(&key) {
            return init.clone();
        }
        let headers = json_headers();
        let _ = headers.set(crate::check::HEADER_LOOKUP, lookup);
        if let Some(origin) = origin {
            let _ = headers.set("access-control-allow-origin", origin);
            let _ = headers.set("vary", "Origin");
        }
        let init = web_sys::ResponseInit::new();
        init.set_status(status);
        init.set_headers(&headers);
        let mut inits = inits.borrow_mut();
        if inits.len() >= MAX_VERDICT_INITS {
            inits.clear();
        }
        inits.insert(key, init.clone());
        init
    });
    // A verdict's status (200, 401, 403) and headers the init already accepted: the
    // constructor cannot throw.
    Ok(PlainResponse::new_response(&JsValue::from_str(body), &init).unchecked_into())
}

/// The error answer for `e`, as a JavaScript response.
pub fn error_raw(e: &ApiError) -> web_sys::Response {
    match web_sys::Response::new_with_opt_str_and_init(Some(&e.to_json()), &json_init(e.status)) {
        Ok(r) => r,
        // Only an invalid status could get here; answer a plain 500 rather than nothing.
        Err(_) => web_sys::Response::new_with_opt_str_and_init(None, &json_init(500))
            .unwrap_or_else(|e| e.unchecked_into()),
    }
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
