//! SDK keys: the organisation's backend keys (`/api/v1/sdk-keys`) and each workspace's SDK
//! access key (`/api/v1/workspace/{id}/sdk-access-key`).
//!
//! An SDK key is created only from a dashboard session, never with another SDK key; its full
//! value appears once, in the creation (or rotation) response. Showing it again needs a
//! one-time code emailed to the signed-in user, bound to this key's id ([`crate::http::otp`]), and
//! every attempt, good or bad, is audited. Members can list keys but cannot create, reveal,
//! rotate or revoke them.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use keygate_shared::authz::Action;
use keygate_shared::key::Environment;
use keygate_shared::otp::Purpose;
use keygate_shared::scope::SdkScopes;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use zeroize::Zeroizing;

use crate::api::paths::{SdkKeyPath, WorkspacePath};
use crate::api::sdk_keys::{
    CreateSdkKey, RevealChallenge, SdkAccessKey, SdkAccessKeyWithValue, SdkKey, SdkKeyList,
    SdkKeyWithValue, VerifyReveal,
};
use crate::api::{ErrorBody, Timestamp};
use crate::error::{ApiError, ApiResult};
use crate::http::auth::CurrentUser;
use crate::http::otp;
use crate::http::user_workspace::UserWorkspace;
use crate::http::workspaces::find_workspace;
use crate::http::{validate, AppState, ClientInfo, JsonBody};
use crate::ids::now_ms;
use crate::store;
use crate::store::audit::{record_now, AuditEntry};
use crate::store::sdk_keys::{NewSdkKey, ACCESS_KEY_NAME};

/// The SDK-key routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_access_key))
        .routes(routes!(start_access_key_reveal))
        .routes(routes!(verify_access_key_reveal))
        .routes(routes!(rotate_access_key))
        .routes(routes!(list_sdk_keys, create_sdk_key))
        .routes(routes!(revoke_sdk_key))
        .routes(routes!(start_sdk_key_reveal))
        .routes(routes!(verify_sdk_key_reveal))
}

/// A live organisation SDK key (not an access key) of `org_id`, or 404.
async fn find_org_key(state: &AppState, org_id: &str, id: &str) -> ApiResult<SdkKey> {
    validate::id(id, "SDK key")?;
    Ok(store::sdk_keys::org_key(&state.db, org_id, id).await?)
}

/// The SDK access key of the user's workspace, once the user may do `action` there.
async fn workspace_access_key(
    state: &AppState,
    UserWorkspace { user, workspace }: &UserWorkspace,
    action: Action,
) -> ApiResult<SdkKey> {
    user.authorize(action)?;
    Ok(store::sdk_keys::access_key(&state.db, &user.org_id, &workspace.id).await?)
}

/// The audit entry of `action` on `key` by `user`, in the key's workspace if it has one.
fn audit_on<'a>(user: &'a CurrentUser, key: &'a SdkKey, action: &'a str) -> AuditEntry<'a> {
    AuditEntry {
        workspace_id: key.workspace_id.as_deref(),
        ..AuditEntry::by_user(user, action).on(&key.id)
    }
}

/// Emails a code that reveals `key`; the request and its outcome are audited.
async fn start_reveal(
    state: &AppState,
    user: &CurrentUser,
    key: &SdkKey,
    client: &ClientInfo,
) -> ApiResult<Json<RevealChallenge>> {
    let entry = audit_on(user, key, "sdk_key.reveal.request");
    let challenge = match otp::issue(state, Purpose::RevealSdkKey, user, &key.id, client).await {
        Ok(c) => c,
        Err(e) => {
            let detail = json!({ "key": key.masked, "reason": e.reason });
            record_now(&state.db, &entry.failed().with(detail), client).await?;
            return Err(e);
        }
    };
    let detail = json!({ "key": key.masked, "challengeId": challenge.id });
    record_now(&state.db, &entry.with(detail), client).await?;
    Ok(Json(RevealChallenge {
        challenge_id: challenge.id,
        expires_at: Timestamp(challenge.expires_at),
    }))
}

/// Redeems the reveal code and opens `key`'s sealed value; every outcome is audited.
async fn finish_reveal(
    state: &AppState,
    user: &CurrentUser,
    key: &SdkKey,
    body: &VerifyReveal,
    client: &ClientInfo,
) -> ApiResult<Zeroizing<String>> {
    let entry = audit_on(user, key, "sdk_key.reveal");
    let code = body.code.trim();
    // A verified reveal code also opens the session's step-up window.
    let redeemed = otp::redeem(
        state,
        &body.challenge_id,
        Purpose::RevealSdkKey,
        user,
        &key.id,
        code,
        client,
    )
    .await;
    if let Err(e) = redeemed {
        let detail = json!({ "key": key.masked, "reason": e.reason });
        record_now(&state.db, &entry.failed().with(detail), client).await?;
        return Err(e);
    }
    let sealed = store::sdk_keys::sealed_value(&state.db, &key.id).await?;
    let Some(value) = sealed.and_then(|s| state.keys.open(&s, &key.id)) else {
        let detail = json!({ "key": key.masked, "reason": "UNSEALABLE" });
        record_now(&state.db, &entry.failed().with(detail), client).await?;
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "KEY_UNAVAILABLE",
            "this key cannot be revealed (it was revoked, or the master key changed); rotate or create a new one",
        ));
    };
    record_now(&state.db, &entry.with(json!({ "key": key.masked })), client).await?;
    Ok(value)
}

/// The workspace's SDK access key, masked.
#[utoipa::path(
    get, path = "/workspace/{id}/sdk-access-key", tag = "sdk keys",
    params(WorkspacePath),
    responses(
        (status = 200, description = "The access key, masked", body = SdkAccessKey),
    ),
    security(("session" = [])),
)]
async fn get_access_key(
    State(state): State<AppState>,
    access: UserWorkspace,
) -> ApiResult<Json<SdkAccessKey>> {
    let key = workspace_access_key(&state, &access, Action::ReadDashboard).await?;
    Ok(Json(SdkAccessKey {
        sdk_access_key: key,
    }))
}

/// Email a one-time code to reveal the workspace's SDK access key.
#[utoipa::path(
    post, path = "/workspace/{id}/sdk-access-key/reveal", tag = "sdk keys",
    description = "No request body. Emails a code to the signed-in user.",
    params(WorkspacePath),
    responses(
        (status = 200, description = "The challenge to answer", body = RevealChallenge),
        (status = "4XX", description = "Not allowed, too many codes, or no such workspace or key", body = ErrorBody),
    ),
    security(("session" = [])),
)]
async fn start_access_key_reveal(
    State(state): State<AppState>,
    access: UserWorkspace,
    client: ClientInfo,
) -> ApiResult<Json<RevealChallenge>> {
    let key = workspace_access_key(&state, &access, Action::RevealSdkKey).await?;
    start_reveal(&state, &access.user, &key, &client).await
}

/// Reveal the workspace's SDK access key with the emailed code.
#[utoipa::path(
    post, path = "/workspace/{id}/sdk-access-key/reveal/verify", tag = "sdk keys",
    params(WorkspacePath),
    request_body = VerifyReveal,
    responses(
        (status = 200, description = "The key's value", body = SdkAccessKeyWithValue),
        (status = "4XX", description = "Wrong or expired code, or no such workspace or key", body = ErrorBody),
    ),
    security(("session" = [])),
)]
async fn verify_access_key_reveal(
    State(state): State<AppState>,
    access: UserWorkspace,
    client: ClientInfo,
    JsonBody(body): JsonBody<VerifyReveal>,
) -> ApiResult<Json<SdkAccessKeyWithValue>> {
    let key = workspace_access_key(&state, &access, Action::RevealSdkKey).await?;
    let value = finish_reveal(&state, &access.user, &key, &body, &client).await?;
    Ok(Json(SdkAccessKeyWithValue {
        key: value.as_str().to_owned(),
        sdk_access_key: key,
    }))
}

/// Replace the workspace's SDK access key; the old one stops working.
#[utoipa::path(
    post, path = "/workspace/{id}/sdk-access-key/rotate", tag = "sdk keys",
    description = "No request body. Needs an open step-up window.",
    params(WorkspacePath),
    responses(
        (status = 200, description = "The new key, its value shown once", body = SdkAccessKeyWithValue),
        (status = 409, description = "`KEY_ALREADY_ROTATED`: a concurrent rotation won", body = ErrorBody),
    ),
    security(("session" = [])),
)]
async fn rotate_access_key(
    State(state): State<AppState>,
    UserWorkspace { user, workspace }: UserWorkspace,
    client: ClientInfo,
) -> ApiResult<Json<SdkAccessKeyWithValue>> {
    user.authorize(Action::RotateSdkAccessKey)?;
    let new = NewSdkKey {
        org_id: &user.org_id,
        workspace_id: Some(&workspace.id),
        name: ACCESS_KEY_NAME,
        scopes: SdkScopes::all(),
        environment: workspace.environment(),
        is_access_key: true,
        created_by: Some(&user.user_id),
        now: now_ms(),
    };
    let audit = AuditEntry::by_user(&user, "sdk_key.rotate").in_workspace(&workspace.id);
    let (row, key) =
        store::sdk_keys::rotate_access_key(&state.db, &state.keys, new, audit, &client).await?;
    tracing::info!(workspace = %workspace.id, key = %key.mask(), "SDK access key rotated");
    Ok(Json(SdkAccessKeyWithValue {
        key: key.expose().to_owned(),
        sdk_access_key: row,
    }))
}

/// The organisation's SDK keys, masked, with last use.
#[utoipa::path(
    get, path = "/sdk-keys", tag = "sdk keys",
    responses(
        (status = 200, description = "Live SDK keys, oldest first", body = SdkKeyList),
    ),
    security(("session" = [])),
)]
async fn list_sdk_keys(
    State(state): State<AppState>,
    user: CurrentUser,
) -> ApiResult<Json<SdkKeyList>> {
    user.authorize(Action::ReadDashboard)?;
    let sdk_keys = store::sdk_keys::list(&state.db, &user.org_id).await?;
    Ok(Json(SdkKeyList { sdk_keys }))
}

/// Create an SDK key; its value is shown once.
#[utoipa::path(
    post, path = "/sdk-keys", tag = "sdk keys",
    request_body = CreateSdkKey,
    responses(
        (status = 201, description = "The new key, its value shown once", body = SdkKeyWithValue),
    ),
    security(("session" = [])),
)]
async fn create_sdk_key(
    State(state): State<AppState>,
    user: CurrentUser,
    client: ClientInfo,
    JsonBody(body): JsonBody<CreateSdkKey>,
) -> ApiResult<(StatusCode, Json<SdkKeyWithValue>)> {
    user.authorize(Action::CreateSdkKey)?;
    let name = validate::name(&body.name, "SDK key")?;
    if body.scopes.is_empty() {
        return Err(ApiError::bad_request(
            "EMPTY_SCOPES",
            "an SDK key needs at least one scope, e.g. {\"api_keys\": [\"read\", \"write\"]}",
        ));
    }
    let workspace = match body.workspace_id.as_deref() {
        Some(id) => Some(find_workspace(&state, &user.org_id, id).await?),
        None => None,
    };
    let workspace_id = workspace.as_ref().map(|w| w.id.as_str());
    let new = NewSdkKey {
        org_id: &user.org_id,
        workspace_id,
        name: &name,
        scopes: body.scopes,
        environment: workspace
            .as_ref()
            .map_or(Environment::Live, |w| w.environment()),
        is_access_key: false,
        created_by: Some(&user.user_id),
        now: now_ms(),
    };
    let audit = AuditEntry {
        workspace_id,
        ..AuditEntry::by_user(&user, "sdk_key.create")
    };
    let (row, key) = store::sdk_keys::create(&state.db, &state.keys, &new, audit, &client).await?;
    tracing::info!(key = %key.mask(), "SDK key created");
    Ok((
        StatusCode::CREATED,
        Json(SdkKeyWithValue {
            key: key.expose().to_owned(),
            sdk_key: row,
        }),
    ))
}

/// Revoke an SDK key.
#[utoipa::path(
    delete, path = "/sdk-keys/{id}", tag = "sdk keys",
    params(SdkKeyPath),
    responses(
        (status = 204, description = "Revoked; it stops working at once"),
    ),
    security(("session" = [])),
)]
async fn revoke_sdk_key(
    State(state): State<AppState>,
    user: CurrentUser,
    client: ClientInfo,
    Path(SdkKeyPath { id }): Path<SdkKeyPath>,
) -> ApiResult<StatusCode> {
    let key = find_org_key(&state, &user.org_id, &id).await?;
    user.authorize(Action::RevokeSdkKey)?;
    let audit = AuditEntry {
        workspace_id: key.workspace_id.as_deref(),
        ..AuditEntry::by_user(&user, "sdk_key.revoke")
    };
    store::sdk_keys::revoke(&state.db, &user.org_id, &key, now_ms(), audit, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Email a one-time code to reveal an SDK key.
#[utoipa::path(
    post, path = "/sdk-keys/{id}/reveal", tag = "sdk keys",
    description = "No request body. Emails a code to the signed-in user.",
    params(SdkKeyPath),
    responses(
        (status = 200, description = "The challenge to answer", body = RevealChallenge),
        (status = "4XX", description = "Not allowed, too many codes, or no such key", body = ErrorBody),
    ),
    security(("session" = [])),
)]
async fn start_sdk_key_reveal(
    State(state): State<AppState>,
    user: CurrentUser,
    client: ClientInfo,
    Path(SdkKeyPath { id }): Path<SdkKeyPath>,
) -> ApiResult<Json<RevealChallenge>> {
    let key = find_org_key(&state, &user.org_id, &id).await?;
    user.authorize(Action::RevealSdkKey)?;
    start_reveal(&state, &user, &key, &client).await
}

/// Reveal an SDK key with the emailed code.
#[utoipa::path(
    post, path = "/sdk-keys/{id}/reveal/verify", tag = "sdk keys",
    params(SdkKeyPath),
    request_body = VerifyReveal,
    responses(
        (status = 200, description = "The key's value", body = SdkKeyWithValue),
        (status = "4XX", description = "Wrong or expired code, or no such key", body = ErrorBody),
    ),
    security(("session" = [])),
)]
async fn verify_sdk_key_reveal(
    State(state): State<AppState>,
    user: CurrentUser,
    client: ClientInfo,
    Path(SdkKeyPath { id }): Path<SdkKeyPath>,
    JsonBody(body): JsonBody<VerifyReveal>,
) -> ApiResult<Json<SdkKeyWithValue>> {
    let key = find_org_key(&state, &user.org_id, &id).await?;
    user.authorize(Action::RevealSdkKey)?;
    let value = finish_reveal(&state, &user, &key, &body, &client).await?;
    Ok(Json(SdkKeyWithValue {
        key: value.as_str().to_owned(),
        sdk_key: key,
    }))
}
