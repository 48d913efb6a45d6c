//! Billing usage (Oneloop's verify `billing` field and `getBillingUsage`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Oneloop's `VerifyApiKeyRequestBilling`: what a VALID verify adds to a billing id.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VerifyBilling {
    /// The billing id to charge (1 to 256 characters). With neither an id nor
    /// `useCustomerIdForBilling: true`, nothing is charged.
    pub id: Option<String>,
    /// Charge the key's customer id instead of `id` (falls back to `id` when the key has no
    /// customer id).
    pub use_customer_id_for_billing: Option<bool>,
    /// Units to add: a whole number from 0 to 1,000,000,000 (`400 INVALID_BILLING_USAGE`
    /// otherwise).
    pub usage: f64,
}

/// One UTC day of one billing id (Oneloop's `GetBillingUsageResponseDataItem`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BillingUsageDay {
    /// The billing id.
    pub billing_id: String,
    /// The UTC day, `YYYY-MM-DD`.
    pub day: String,
    /// Units added on that day by VALID verifies.
    pub total_billing_usage: i64,
}

/// `GET /api/v1/usage/{billingId}` (Oneloop's `GetBillingUsageResponse`).
#[derive(Debug, Serialize, ToSchema)]
pub struct BillingUsage {
    /// The last 90 days with usage, newest first.
    pub data: Vec<BillingUsageDay>,
}
