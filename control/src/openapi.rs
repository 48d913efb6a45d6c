//! `GET /openapi.json`: an OpenAPI 3.1 description of every route, built from one table
//! ([`ROUTES`]) that a test checks against the live router, so the document cannot drift
//! from what the server answers. Request and response bodies are described in the README
//! ("Backend API", "Dashboard") and Oneloop's published types; this document lists paths, methods, auth and purpose.

use axum::Json;
use serde_json::{json, Map, Value};

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    /// Anyone.
    Public,
    /// A dashboard session cookie (plus `X-CSRF-Token` on writes).
    Session,
    /// An SDK key (`Authorization: Bearer sk_...`) or a dashboard session.
    SdkKeyOrSession,
    /// The edge worker's HMAC signature.
    EdgeSignature,
}

/// (method, path, auth, tag, summary).
pub const ROUTES: &[(&str, &str, Auth, &str, &str)] = &[
    ("get", "/healthz", Auth::Public, "operations", "Liveness and database reachability"),
    ("get", "/metrics", Auth::Public, "operations", "Prometheus metrics"),
    ("get", "/openapi.json", Auth::Public, "operations", "This document"),
    ("post", "/api/v1/auth/otp", Auth::Public, "sign-in", "Email a sign-in code (202 whether or not the address is known)"),
    ("post", "/api/v1/auth/session", Auth::Public, "sign-in", "Sign in with {email, code}: sets the session and CSRF cookies"),
    ("delete", "/api/v1/auth/session", Auth::Session, "sign-in", "Sign out (the session is revoked server-side)"),
    ("get", "/api/v1/me", Auth::Session, "sign-in", "The signed-in user, organisation, memberships, CSRF token and step-up window"),
    ("post", "/api/v1/auth/step-up", Auth::Session, "sign-in", "Email a code that opens this session's 10-minute step-up window"),
    ("delete", "/api/v1/auth/step-up", Auth::Session, "sign-in", "Close this session's step-up window now"),
    ("post", "/api/v1/auth/step-up/verify", Auth::Session, "sign-in", "Verify {challengeId, code}: opens the step-up window"),
    ("post", "/api/v1/auth/switch", Auth::Session, "sign-in", "Move to the same address's membership in another organisation {organisationId}"),
    ("get", "/api/v1/members", Auth::Session, "members", "List the organisation's members"),
    ("post", "/api/v1/members", Auth::Session, "members", "Invite {email, role} (owners and admins)"),
    ("patch", "/api/v1/members/{id}", Auth::Session, "members", "Change a member's role"),
    ("delete", "/api/v1/members/{id}", Auth::Session, "members", "Remove a member (their sessions end)"),
    ("get", "/api/v1/audit-events", Auth::Session, "audit", "Audit events, newest first (?workspaceId, action, before, limit)"),
    ("get", "/api/v1/workspace", Auth::SdkKeyOrSession, "workspaces", "List workspaces (scope workspace:read)"),
    ("post", "/api/v1/workspace", Auth::SdkKeyOrSession, "workspaces", "Create a workspace with its publishable key and SDK access key (workspace:write)"),
    ("get", "/api/v1/workspace/{id}", Auth::SdkKeyOrSession, "workspaces", "Get a workspace (workspace:read)"),
    ("patch", "/api/v1/workspace/{id}", Auth::SdkKeyOrSession, "workspaces", "Update a workspace's defaults (workspace:write)"),
    ("get", "/api/v1/workspace/{id}/modules", Auth::Session, "workspaces", "The module/functionality catalogue"),
    ("put", "/api/v1/workspace/{id}/modules", Auth::Session, "workspaces", "Replace the catalogue"),
    ("post", "/api/v1/workspace/{id}/routes/classify", Auth::Session, "workspaces", "Which action a method + path resolves to under the route map, and whether the publishable key may call it"),
    ("get", "/api/v1/workspace/{id}/scopes", Auth::SdkKeyOrSession, "workspace scopes", "List workspace scopes (workspace_scopes:read)"),
    ("post", "/api/v1/workspace/{id}/scope", Auth::SdkKeyOrSession, "workspace scopes", "Create a workspace scope (workspace_scopes:write)"),
    ("post", "/api/v1/api-key", Auth::SdkKeyOrSession, "api keys", "Create a customer API key; the value is shown once (api_keys:write)"),
    ("get", "/api/v1/workspace/{id}/api-key", Auth::SdkKeyOrSession, "api keys", "List a workspace's API keys (api_keys:read)"),
    ("get", "/api/v1/workspace/{id}/api-key/{akid}", Auth::SdkKeyOrSession, "api keys", "Get an API key (api_keys:read)"),
    ("patch", "/api/v1/workspace/{id}/api-key/{akid}", Auth::SdkKeyOrSession, "api keys", "Edit name, enabled, expiry, scopes, usage (api_keys:write)"),
    ("delete", "/api/v1/workspace/{id}/api-key/{akid}", Auth::SdkKeyOrSession, "api keys", "Delete an API key (api_keys:write)"),
    ("post", "/api/v1/workspace/{id}/api-key/{akid}/rotate", Auth::SdkKeyOrSession, "api keys", "New value, optional grace period for the old one (api_keys:write)"),
    ("post", "/api/v1/workspace/{id}/api-key/{akid}/refill", Auth::SdkKeyOrSession, "api keys", "Add usage allowance (api_keys:write)"),
    ("post", "/api/v1/api-key/verify", Auth::SdkKeyOrSession, "api keys", "Verify a customer API key: VALID, EXPIRED, DISABLED, DELETED, RATE_LIMITED, USAGE_LIMITED, INVALID_SCOPES or INVALID"),
    ("get", "/api/v1/workspace/{id}/publishable-key", Auth::Session, "publishable key", "The publishable key, blacklist, origins"),
    ("patch", "/api/v1/workspace/{id}/publishable-key", Auth::Session, "publishable key", "Set {allowedOrigins, originUrl, forwardCookies}"),
    ("post", "/api/v1/workspace/{id}/publishable-key/revoke", Auth::Session, "publishable key", "Replace the key; the old one stops working at once"),
    ("post", "/api/v1/workspace/{id}/publishable-key/blacklist", Auth::Session, "publishable key", "Add a {module, functionality} rule ('*' = whole module)"),
    ("delete", "/api/v1/workspace/{id}/publishable-key/blacklist/{ruleId}", Auth::Session, "publishable key", "Remove a rule"),
    ("get", "/api/v1/workspace/{id}/gateway-secret", Auth::Session, "gateway", "The workspace's gateway signing secrets, newest first (owners and admins; the first read creates one)"),
    ("post", "/api/v1/workspace/{id}/gateway-secret/rotate", Auth::Session, "gateway", "A new gateway signing secret; the previous ones stay live for {overlapSeconds} (default 86400)"),
    ("get", "/api/v1/workspace/{id}/sdk-access-key", Auth::Session, "sdk keys", "The workspace's SDK access key, masked"),
    ("post", "/api/v1/workspace/{id}/sdk-access-key/reveal", Auth::Session, "sdk keys", "Email a one-time code to reveal it: {challengeId}"),
    ("post", "/api/v1/workspace/{id}/sdk-access-key/reveal/verify", Auth::Session, "sdk keys", "{challengeId, code} -> {key}"),
    ("post", "/api/v1/workspace/{id}/sdk-access-key/rotate", Auth::Session, "sdk keys", "A new access key; the old one stops working"),
    ("get", "/api/v1/workspace/{id}/tokens", Auth::Session, "tokens", "Workspace tokens and secrets, masked"),
    ("post", "/api/v1/workspace/{id}/tokens", Auth::Session, "tokens", "Create a token or secret; the value is shown once"),
    ("delete", "/api/v1/workspace/{id}/tokens/{tokenId}", Auth::Session, "tokens", "Revoke a token"),
    ("get", "/api/v1/sdk-keys", Auth::Session, "sdk keys", "Organisation SDK keys, masked, with last use"),
    ("post", "/api/v1/sdk-keys", Auth::Session, "sdk keys", "Create {name, scopes, workspaceId?}; the value is shown once"),
    ("delete", "/api/v1/sdk-keys/{id}", Auth::Session, "sdk keys", "Revoke an SDK key"),
    ("post", "/api/v1/sdk-keys/{id}/reveal", Auth::Session, "sdk keys", "Email a one-time code to reveal it"),
    ("post", "/api/v1/sdk-keys/{id}/reveal/verify", Auth::Session, "sdk keys", "{challengeId, code} -> {key}"),
    ("get", "/api/v1/edge/records/{digest}", Auth::EdgeSignature, "edge", "The edge's signed pull of one publishable key's record"),
];

fn security(auth: Auth) -> Value {
    match auth {
        Auth::Public => json!([]),
        Auth::Session => json!([{"session": []}]),
        Auth::SdkKeyOrSession => json!([{"sdkKey": []}, {"session": []}]),
        Auth::EdgeSignature => json!([{"edgeSignature": []}]),
    }
}

/// The document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for (method, path, auth, tag, summary) in ROUTES {
        let params: Vec<Value> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        entry[*method] = json!({
            "summary": summary,
            "tags": [tag],
            "security": security(*auth),
            "parameters": params,
            "responses": {
                "2XX": {"description": "success"},
                "4XX": {"description": "the caller's error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
            }
        });
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "keygate", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Issue, rotate and check keys. Backend routes follow Oneloop's API (@oneloop-hq/oneloop-ts 1.0.9)."},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": "keygate_session"},
                "sdkKey": {"type": "http", "scheme": "bearer", "description": "An SDK key, sk_live_... or sk_test_..."},
                "edgeSignature": {"type": "apiKey", "in": "header", "name": "x-keygate-signature"}
            },
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "object",
                    "required": ["code", "message", "reason"],
                    "properties": {"code": {"type": "integer"}, "message": {"type": "string"}, "reason": {"type": "string"}}}}}
            }
        }
    })
}

/// `GET /openapi.json`.
pub async fn serve() -> Json<Value> {
    Json(document())
}
