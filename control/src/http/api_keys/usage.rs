//! Usage for the dashboard (`api_keys` read; a member may read): verifications per UTC day
//! by outcome per workspace and per API key, and billing usage per billing id of a
//! workspace, every day of the period present (zero-filled).

use std::collections::{BTreeMap, HashMap};

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::Json;
use keygate_shared::authz::Action;
use keygate_shared::link_token::{day_number, day_string};
use keygate_shared::verdict::Status;

use crate::api::paths::{ApiKeyPath, WorkspacePath};
use crate::api::usage::{
    BillingDay, BillingSeries, UsageQuery, VerificationDay, VerificationUsage,
    WorkspaceBillingUsage,
};
use crate::error::{ApiError, ApiResult};
use crate::http::auth::Principal;
use crate::http::workspaces::{reachable_workspace, ReachableWorkspace};
use crate::http::{validate, AppState};
use crate::ids::now_ms;
use crate::store;
use crate::store::retention::VERIFICATION_COUNT_DAYS;

/// Most billing ids one answer lists.
const MAX_BILLING_IDS: usize = 50;

/// The caller's reachable workspace and the period's first UTC day and length.
async fn period(
    state: &AppState,
    principal: &Principal,
    workspace_id: &str,
    query: Result<Query<UsageQuery>, QueryRejection>,
) -> ApiResult<(ReachableWorkspace, i64, i64)> {
    principal.authorize(Action::ReadApiKeys)?;
    let days = query
        .ok()
        .map(|Query(q)| q.days.unwrap_or(30))
        .filter(|d| (1..=VERIFICATION_COUNT_DAYS).contains(d))
        .ok_or_else(|| {
            ApiError::bad_request(
                "INVALID_QUERY",
                format!("the only query parameter is days, 1 to {VERIFICATION_COUNT_DAYS}"),
            )
        })?;
    let ws = reachable_workspace(state, principal, workspace_id).await?;
    Ok((ws, day_number(now_ms()) - days + 1, days))
}

/// Verifications per day by outcome of a workspace.
#[utoipa::path(
    get, path = "/workspace/{id}/usage", tag = "usage",
    description = "Verifications per UTC day by outcome (every API key of the workspace, and unknown keys asked about by SDK keys bound to it), the last `days` days, flushed about once a second.",
    params(WorkspacePath, UsageQuery),
    responses(
        (status = 200, description = "Every day of the period, oldest first", body = VerificationUsage),
    ),
    security(("session" = []), ("sdkKey" = ["api_keys:read"])),
)]
pub(super) async fn workspace_usage(
    State(state): State<AppState>,
    principal: Principal,
    Path(WorkspacePath { id: workspace_id }): Path<WorkspacePath>,
    query: Result<Query<UsageQuery>, QueryRejection>,
) -> ApiResult<Json<VerificationUsage>> {
    let (ws, from, days) = period(&state, &principal, &workspace_id, query).await?;
    let rows = store::api_keys::usage::daily_outcomes(&state.db, &ws.id, None, from).await?;
    Ok(Json(verification_series(rows, from, days)))
}

/// Verifications per day by outcome of one API key.
#[utoipa::path(
    get, path = "/workspace/{id}/api-key/{akid}/usage", tag = "usage",
    description = "Verifications of one API key per UTC day by outcome, the last `days` days.",
    params(ApiKeyPath, UsageQuery),
    responses(
        (status = 200, description = "Every day of the period, oldest first", body = VerificationUsage),
    ),
    security(("session" = []), ("sdkKey" = ["api_keys:read"])),
)]
pub(super) async fn key_usage(
    State(state): State<AppState>,
    principal: Principal,
    Path(ApiKeyPath {
        id: workspace_id,
        akid,
    }): Path<ApiKeyPath>,
    query: Result<Query<UsageQuery>, QueryRejection>,
) -> ApiResult<Json<VerificationUsage>> {
    let (ws, from, days) = period(&state, &principal, &workspace_id, query).await?;
    validate::id(&akid, "API key")?;
    let key = store::api_keys::get(&state.db, &ws.id, &akid).await?;
    let rows =
        store::api_keys::usage::daily_outcomes(&state.db, &ws.id, Some(&key.id), from).await?;
    Ok(Json(verification_series(rows, from, days)))
}

/// Billing usage per billing id of a workspace.
#[utoipa::path(
    get, path = "/workspace/{id}/billing-usage", tag = "usage",
    description = "The billing ids charged by VALID verifies of the workspace's keys, with their daily totals, the last `days` days.",
    params(WorkspacePath, UsageQuery),
    responses(
        (status = 200, description = "Billing ids, largest total first", body = WorkspaceBillingUsage),
    ),
    security(("session" = []), ("sdkKey" = ["api_keys:read"])),
)]
pub(super) async fn billing_usage(
    State(state): State<AppState>,
    principal: Principal,
    Path(WorkspacePath { id: workspace_id }): Path<WorkspacePath>,
    query: Result<Query<UsageQuery>, QueryRejection>,
) -> ApiResult<Json<WorkspaceBillingUsage>> {
    let (ws, from, days) = period(&state, &principal, &workspace_id, query).await?;
    let rows = store::billing_usage::by_workspace(&state.db, &ws.id, from).await?;
    let mut by_id: HashMap<String, Vec<i64>> = HashMap::new();
    for (billing_id, day, total) in rows {
        by_id
            .entry(billing_id)
            .or_insert_with(|| vec![0; days as usize])[(day - from) as usize] += total;
    }
    let mut billing_ids: Vec<BillingSeries> = by_id
        .into_iter()
        .map(|(billing_id, totals)| BillingSeries {
            billing_id,
            total: totals.iter().sum(),
            days: (from..)
                .zip(totals)
                .map(|(day, total)| BillingDay {
                    day: day_string(day),
                    total,
                })
                .collect(),
        })
        .collect();
    billing_ids.sort_by(|a, b| b.total.cmp(&a.total).then(a.billing_id.cmp(&b.billing_id)));
    let more = billing_ids.len().saturating_sub(MAX_BILLING_IDS) as i64;
    billing_ids.truncate(MAX_BILLING_IDS);
    Ok(Json(WorkspaceBillingUsage { billing_ids, more }))
}

/// `(day, outcome, count)` rows as every day from `from` on (`days` of them), each with
/// every outcome seen (`VALID` first, then in `Status::ALL` order).
fn verification_series(rows: Vec<(i64, String, i64)>, from: i64, days: i64) -> VerificationUsage {
    let rank = |o: &str| Status::from_wire(o).map_or(usize::MAX, |s| s as usize);
    let mut outcomes: Vec<String> = rows.iter().map(|(_, o, _)| o.clone()).collect();
    outcomes.sort_by(|a, b| rank(a).cmp(&rank(b)).then(a.cmp(b)));
    outcomes.dedup();
    let zero: BTreeMap<String, i64> = outcomes.iter().map(|o| (o.clone(), 0)).collect();
    let mut series: Vec<VerificationDay> = (from..from + days)
        .map(|day| VerificationDay {
            day: day_string(day),
            outcomes: zero.clone(),
        })
        .collect();
    for (day, outcome, n) in rows {
        if let Some(d) = series.get_mut((day - from) as usize) {
            *d.outcomes.entry(outcome).or_insert(0) += n;
        }
    }
    VerificationUsage {
        outcomes,
        days: series,
    }
}
