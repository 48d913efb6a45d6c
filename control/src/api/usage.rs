//! Usage for the dashboard: verifications per UTC day by outcome, per workspace and per API
//! key, and billing usage per billing id of a workspace.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// The query of the usage series.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// How many UTC days, today included: 1 to 400 (default 30).
    pub days: Option<i64>,
}

/// One UTC day of verifications.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerificationDay {
    /// The UTC day, `YYYY-MM-DD`.
    pub day: String,
    /// Verifications that day by outcome (`VALID`, `USAGE_LIMITED`, `RATE_LIMITED`,
    /// `EXPIRED`, `DISABLED`, `DELETED`, `INVALID_SCOPES`, `INVALID`): every outcome of
    /// [`VerificationUsage::outcomes`], zero when none.
    pub outcomes: BTreeMap<String, i64>,
}

/// `GET /api/v1/workspace/{id}/usage` and `.../api-key/{akid}/usage`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerificationUsage {
    /// The outcomes seen in the period, `VALID` first, then the refusals by wire name.
    pub outcomes: Vec<String>,
    /// Every day of the period, oldest first, today last (days without verifications too).
    pub days: Vec<VerificationDay>,
}

/// One UTC day of one billing id.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BillingDay {
    /// The UTC day, `YYYY-MM-DD`.
    pub day: String,
    /// Units added that day by VALID verifies.
    pub total: i64,
}

/// One billing id's usage in the period.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BillingSeries {
    /// The billing id.
    pub billing_id: String,
    /// Units added in the whole period.
    pub total: i64,
    /// Every day of the period, oldest first (zero on days without usage).
    pub days: Vec<BillingDay>,
}

/// `GET /api/v1/workspace/{id}/billing-usage`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceBillingUsage {
    /// The billing ids charged in the period, largest total first (at most 50; the rest
    /// are counted in `more`).
    pub billing_ids: Vec<BillingSeries>,
    /// How many more billing ids were charged in the period.
    pub more: i64,
}
