//! `POST /api/v1/api-key/verify`: the hot path.
//!
//! Every status comes from [`keygate_shared::api_key::decide`]; this module authenticates
//! the caller (`crate::http::sdk_auth`), makes the one read
//! (`crate::store::api_keys::verify`), and applies the rate window; a usage-limited key's use
//! and billing usage are written by group commit ([`VerifyWriter`]: the answer waits for its
//! batch's commit). Unlimited keys without billing do no write on the hot path; every
//! verify's outcome and their uses are counted in memory and flushed each second
//! ([`VerifyStats`]).
//!
//! The answer is always 200 with the status in the body (Oneloop's client treats any 4xx as
//! an exception and retries 429s); only a bad caller (no or unknown SDK key, missing scope,
//! malformed body) gets an error.

use std::sync::Arc;

use axum::extract::State;
use axum::{Extension, Json};
use keygate_shared::api_key::{decide, RateWindow};
use keygate_shared::authz::{self, Action};
use keygate_shared::key::{self, KeyKind};
use keygate_shared::link_token::{self, MAX_BILLING_USAGE};
use keygate_shared::scope::SdkScopes;
use keygate_shared::verdict::Status;

use super::MAX_SCOPES;
use crate::api::api_keys::{
    RateLimitConfig, RateLimitState, VerifyApiKeyRequest, VerifyApiKeyResponse,
};
use crate::api::billing_usage::VerifyBilling;
use crate::api::ErrorBody;
use crate::error::{ApiError, ApiResult};
use crate::http::auth::denied;
use crate::http::billing_usage::check_billing_id;
use crate::http::sdk_auth::{unknown_sdk_key, Credential};
use crate::http::{AppState, JsonBody};
use crate::ids::now_ms;
use crate::jobs::verify_stats::{Subject, VerifyStats};
use crate::jobs::verify_writes::VerifyWriter;
use crate::store;
use crate::store::api_keys::verify::{Spent, VerifiableKey, VerifyConnections, VerifyWrite};
use crate::store::billing_usage::UsageSlot;
use crate::store::sdk_keys::SdkKeyCaller;

/// Longest `rateLimitConfig.id`.
const MAX_LIMIT_ID_LEN: usize = 128;

/// Verify a customer API key.
#[utoipa::path(
    post, path = "/api-key/verify", tag = "api keys",
    description = "VALID, EXPIRED, DISABLED, DELETED, RATE_LIMITED, USAGE_LIMITED, INVALID_SCOPES or INVALID, always with 200.",
    request_body = VerifyApiKeyRequest,
    responses(
        (status = 200, description = "The verdict", body = VerifyApiKeyResponse),
        (status = "4XX", description = "No or unknown SDK key, missing scope, or a malformed body", body = ErrorBody),
    ),
    security(("sdkKey" = ["api_keys:read"]), ("sdkKey" = ["api_keys:write"]), ("session" = [])),
)]
pub(super) async fn verify(
    State(state): State<AppState>,
    Extension(stats): Extension<Arc<VerifyStats>>,
    Extension(writer): Extension<Arc<VerifyWriter>>,
    Extension(conns): Extension<Arc<VerifyConnections>>,
    credential: Credential,
    JsonBody(req): JsonBody<VerifyApiKeyRequest>,
) -> ApiResult<Json<VerifyApiKeyResponse>> {
    check_request(&req)?;
    let charge = check_billing(req.billing.as_ref())?;
    // A malformed key (bad shape or checksum) is INVALID without a lookup of its own; the
    // caller is still authenticated by the same single read.
    let key_digest = key::parse_as(&req.key, KeyKind::ApiKey)
        .ok()
        .map(|p| p.digest().to_hex())
        .unwrap_or_default();
    let now = now_ms();
    let found = find_key(&state, &conns, credential, &key_digest, now).await?;
    let Some(key) = found.key else {
        if let Some(workspace_id) = found.bound_workspace.as_deref() {
            let subject = Subject::Unknown { workspace_id };
            stats.record(
                &state.db,
                &found.org_id,
                subject,
                Status::Invalid,
                now,
                false,
            );
        }
        return Ok(Json(VerifyApiKeyResponse::invalid(req.requested_scopes)));
    };
    let charge = charge.and_then(|c| billing_slot(found.org_id.clone(), &key, c, now));
    let verdict = judge(&state, &writer, &key, &req, charge, now).await?;
    let subject = Subject::Key {
        id: &key.id,
        workspace_id: &key.workspace_id,
    };
    let org_id = &found.org_id;
    stats.record(
        &state.db,
        org_id,
        subject,
        verdict.status,
        now,
        verdict.count_use,
    );
    Ok(Json(VerifyApiKeyResponse {
        api_key_id: Some(key.id),
        expires_at: key.expires_at,
        requested_scopes: req.requested_scopes,
        status: verdict.status,
        rate_limit: verdict.rate_limit,
        customer_id: key.customer_id,
        scopes: Some(key.scopes),
        total_usage_left: verdict.usage_left,
    }))
}

/// The bounds of the request that the types do not say.
fn check_request(req: &VerifyApiKeyRequest) -> ApiResult<()> {
    if req.requested_scopes.len() > MAX_SCOPES {
        return Err(ApiError::bad_request(
            "TOO_MANY_SCOPES",
            format!("ask for at most {MAX_SCOPES} scopes"),
        ));
    }
    if let Some(rl) = &req.rate_limit_config {
        if rl.id.is_empty() || rl.id.len() > MAX_LIMIT_ID_LEN || rl.limit < 0 {
            return Err(ApiError::bad_request(
                "INVALID_RATE_LIMIT",
                format!(
                    "rateLimitConfig is {{id: 1 to {MAX_LIMIT_ID_LEN} characters, limit: a whole number >= 0}}"
                ),
            ));
        }
    }
    Ok(())
}

/// A checked `billing` field: the units to add and where.
struct Charge {
    /// The explicit billing id.
    id: Option<String>,
    /// Charge the key's customer id instead, when it has one.
    use_customer_id: bool,
    /// Units to add.
    usage: i64,
}

/// `billing`, checked: `400 INVALID_BILLING_USAGE` unless `usage` is a whole number from 0
/// to 1,000,000,000; `400 INVALID_BILLING_ID` for an id of the wrong length. Neither an id
/// nor `useCustomerIdForBilling: true` is accepted and charges nothing (as Oneloop's client
/// may send it).
fn check_billing(billing: Option<&VerifyBilling>) -> ApiResult<Option<Charge>> {
    let Some(b) = billing else { return Ok(None) };
    let usage = link_token::check_usage(b.usage).map_err(|e| {
        ApiError::bad_request(
            e.reason(),
            format!("billing.usage is a whole number from 0 to {MAX_BILLING_USAGE}"),
        )
    })?;
    if let Some(id) = &b.id {
        check_billing_id(id)?;
    }
    Ok(Some(Charge {
        id: b.id.clone(),
        use_customer_id: b.use_customer_id_for_billing.unwrap_or(false),
        usage,
    }))
}

/// Where a VALID verify's billing usage goes (its billing id, today in UTC) and how much;
/// `None` when there is nothing to charge.
fn billing_slot(
    org_id: String,
    key: &VerifiableKey,
    charge: Charge,
    now: i64,
) -> Option<(UsageSlot, i64)> {
    let target = link_token::billing_target(
        charge.id.as_deref(),
        charge.use_customer_id,
        key.customer_id.as_deref(),
    );
    let billing_id = target.filter(|_| charge.usage > 0)?;
    let slot = UsageSlot {
        org_id,
        workspace_id: key.workspace_id.clone(),
        billing_id: billing_id.to_owned(),
        day: link_token::day_number(now),
    };
    Some((slot, charge.usage))
}

/// Who asks and what they found.
struct Found {
    /// The caller's organisation.
    org_id: String,
    /// The workspace the caller's SDK key is bound to, if any.
    bound_workspace: Option<String>,
    /// The API key in the caller's reach, if any.
    key: Option<VerifiableKey>,
}

/// The caller's organisation and the API key in the caller's reach, if any. An SDK key is
/// looked up together with the API key (one read), must hold `api_keys` read or write, and
/// has its use recorded.
async fn find_key(
    state: &AppState,
    conns: &VerifyConnections,
    credential: Credential,
    key_digest: &str,
    now: i64,
) -> ApiResult<Found> {
    match credential {
        Credential::SdkKey(presented) => {
            let found = store::api_keys::verify::caller_and_key(
                &state.db,
                conns,
                &presented.digest,
                key_digest,
            )
            .await?
            .ok_or_else(unknown_sdk_key)?;
            may_verify(&found.caller)?;
            store::sdk_keys::record_use(&state.db, &found.caller, now).await?;
            Ok(Found {
                org_id: found.caller.org_id,
                bound_workspace: found.caller.workspace_id,
                key: found.key,
            })
        }
        Credential::Session(user) => {
            let key =
                store::api_keys::verify::key_in_org(&state.db, conns, key_digest, &user.org_id)
                    .await?;
            Ok(Found {
                org_id: user.org_id,
                bound_workspace: None,
                key,
            })
        }
    }
}

/// An SDK key verifies with the `api_keys` scope, read or write (`403 MISSING_SCOPE` names
/// `api_keys:read`).
fn may_verify(caller: &SdkKeyCaller) -> ApiResult<()> {
    let scopes = SdkScopes::parse(&caller.scopes).map_err(ApiError::internal)?;
    authz::decide_sdk(scopes, Action::ReadApiKeys)
        .or_else(|denial| authz::decide_sdk(scopes, Action::ManageApiKeys).map_err(|_| denial))
        .map_err(denied)
}

/// The verdict on a found key and what it cost.
struct Verdict {
    status: Status,
    rate_limit: Option<RateLimitState>,
    usage_left: Option<i64>,
    /// A valid use not written by the group commit: counted by [`VerifyStats`].
    count_use: bool,
}

/// Decides (`keygate_shared::api_key::decide`), then, for a valid key, counts the call in
/// its rate window and, through the group commit ([`VerifyWriter`]), spends one use of a
/// usage-limited key and adds the billing usage; an unlimited key's use is left to
/// [`VerifyStats`] (`count_use`), so its group-commit write, if any, is the billing usage
/// alone.
async fn judge(
    state: &AppState,
    writer: &Arc<VerifyWriter>,
    key: &VerifiableKey,
    req: &VerifyApiKeyRequest,
    charge: Option<(UsageSlot, i64)>,
    now: i64,
) -> ApiResult<Verdict> {
    let mut verdict = Verdict {
        status: decide(&key.state(), now, &req.requested_scopes),
        rate_limit: None,
        usage_left: if key.limit_usage {
            key.usage_left
        } else {
            None
        },
        count_use: false,
    };
    if verdict.status != Status::Valid {
        return Ok(verdict);
    }
    if let Some(rl) = &req.rate_limit_config {
        let (allowed, window) = count_call(state, &key.id, rl, now).await?;
        verdict.rate_limit = Some(window);
        if !allowed {
            verdict.status = Status::RateLimited;
            return Ok(verdict);
        }
    }
    // A key without a limit has its use counted by `VerifyStats`, with or without billing
    // usage to write.
    verdict.count_use = !key.limit_usage;
    if verdict.count_use && charge.is_none() {
        return Ok(verdict);
    }
    let write = VerifyWrite {
        key_id: key.id.clone(),
        spend: key.limit_usage,
        charge,
        now,
    };
    let spent = writer
        .write(&state.db, write)
        .await
        .map_err(|e| ApiError::internal(e.0))?;
    match spent {
        Spent::Granted(left) => verdict.usage_left = left,
        Spent::Refused => {
            // Verifies ahead of this one took the last use since the read.
            verdict.status = Status::UsageLimited;
            verdict.usage_left = Some(0);
        }
    }
    Ok(verdict)
}

/// Counts the call in its per-second window: whether it is admitted, and the window.
async fn count_call(
    state: &AppState,
    api_key_id: &str,
    rl: &RateLimitConfig,
    now: i64,
) -> ApiResult<(bool, RateLimitState)> {
    let window = RateWindow::default();
    let start = window.start(now);
    let count =
        store::api_keys::verify::count_in_window(&state.db, api_key_id, &rl.id, start).await?;
    let (allowed, remaining) = window.admit(count, rl.limit);
    Ok((
        allowed,
        RateLimitState {
            remaining,
            reset_at: window.reset_at(now),
        },
    ))
}
