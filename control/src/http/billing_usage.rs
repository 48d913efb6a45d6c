//! Billing usage (Oneloop's `getBillingUsage`): `GET /api/v1/usage/{billingId}`
//! (`api_keys:read`). Verify adds to it (`crate::http::api_keys`, through
//! `crate::jobs::verify_writes`).

use axum::extract::{Path, State};
use axum::Json;
use keygate_shared::authz::Action;
use keygate_shared::link_token::{self, day_number, day_string, BillingError, USAGE_DAYS};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::billing_usage::{BillingUsage, BillingUsageDay};
use crate::api::ErrorBody;
use crate::error::{ApiError, ApiResult};
use crate::http::auth::Principal;
use crate::http::AppState;
use crate::ids::now_ms;
use crate::store;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(usage))
}

/// `400 INVALID_BILLING_ID` unless the id is 1 to 256 characters.
pub fn check_billing_id(id: &str) -> ApiResult<()> {
    if link_token::is_valid_billing_id(id) {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            BillingError::Id.reason(),
            format!(
                "a billing id is 1 to {} characters",
                link_token::MAX_BILLING_ID_LEN
            ),
        ))
    }
}

/// Billing usage of one billing id.
#[utoipa::path(
    get, path = "/usage/{billingId}", tag = "billing usage",
    description = "Units added by VALID verifies, per UTC day, the last 90 days, newest first (a workspace-bound SDK key sees its workspace's usage only).",
    params(("billingId" = String, Path, description = "The billing id")),
    responses(
        (status = 200, description = "Daily totals", body = BillingUsage),
        (status = "4XX", description = "No or unknown SDK key, missing scope, or a malformed billing id", body = ErrorBody),
    ),
    security(("sdkKey" = ["api_keys:read"]), ("session" = [])),
)]
async fn usage(
    State(state): State<AppState>,
    principal: Principal,
    Path(billing_id): Path<String>,
) -> ApiResult<Json<BillingUsage>> {
    principal.authorize(Action::ReadApiKeys)?;
    check_billing_id(&billing_id)?;
    let today = day_number(now_ms());
    let days = store::billing_usage::daily(
        &state.db,
        principal.org_id(),
        principal.bound_workspace(),
        &billing_id,
        today - (USAGE_DAYS - 1),
    )
    .await?;
    let data = days
        .into_iter()
        .map(|(day, total)| BillingUsageDay {
            billing_id: billing_id.clone(),
            day: day_string(day),
            total_billing_usage: total,
        })
        .collect();
    Ok(Json(BillingUsage { data }))
}
