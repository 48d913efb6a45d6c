//! SDK keys: the organisation's backend keys and each workspace's SDK access key, masked;
//! their full values only in the answers to create, rotate and a verified reveal.

use keygate_shared::scope::SdkScopes;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Timestamp;

/// An SDK key as lists show it: masked.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SdkKey {
    /// Its id.
    pub id: String,
    /// A name for people.
    pub name: String,
    /// What it may do: `{"workspace": ["read"], "workspace_scopes": [..], "api_keys": [..]}`.
    #[schema(value_type = Object)]
    pub scopes: SdkScopes,
    /// The workspace it is bound to; `null`: the whole organisation.
    pub workspace_id: Option<String>,
    /// `sk_live_…abcd`.
    pub masked: String,
    /// `sk_live` or `sk_test`.
    pub prefix: String,
    /// The value's last four characters.
    pub last4: String,
    /// Whether it is a workspace's SDK access key.
    pub is_access_key: bool,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it was last used (to the minute); `null`: never.
    pub last_used_at: Option<Timestamp>,
}

/// `GET /api/v1/sdk-keys`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SdkKeyList {
    /// The organisation's live SDK keys (not access keys), oldest first.
    pub sdk_keys: Vec<SdkKey>,
}

/// `POST /api/v1/sdk-keys`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateSdkKey {
    /// 1 to 100 characters (trimmed).
    pub name: String,
    /// At least one: `{"api_keys": ["read", "write"]}`.
    #[schema(value_type = Object)]
    pub scopes: SdkScopes,
    /// Bind it to this workspace; absent: the whole organisation.
    pub workspace_id: Option<String>,
}

/// An organisation SDK key with its full value: the answer to create and to a verified
/// reveal.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SdkKeyWithValue {
    /// The full value. Shown here only.
    pub key: String,
    /// The key, masked.
    pub sdk_key: SdkKey,
}

/// `GET /api/v1/workspace/{id}/sdk-access-key`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SdkAccessKey {
    /// The workspace's SDK access key, masked.
    pub sdk_access_key: SdkKey,
}

/// A workspace's SDK access key with its full value: the answer to rotate and to a verified
/// reveal.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SdkAccessKeyWithValue {
    /// The full value. Shown here only.
    pub key: String,
    /// The key, masked.
    pub sdk_access_key: SdkKey,
}

/// The answer to a reveal request: a code was emailed to the signed-in user.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevealChallenge {
    /// Send it back with the code.
    pub challenge_id: String,
    /// When the code stops working.
    pub expires_at: Timestamp,
}

/// `{challengeId, code}`: the emailed code that reveals a key.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VerifyReveal {
    /// From the reveal request's answer.
    pub challenge_id: String,
    /// The emailed code.
    pub code: String,
}
