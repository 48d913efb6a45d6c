//! Path parameters: one named type per route shape, used both as the handler's `Path<..>`
//! extractor and in its OpenAPI `params(..)`, so a parameter is described once.

use serde::Deserialize;
use utoipa::IntoParams;

/// `/workspace/{id}/...`: routes about one workspace.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct WorkspacePath {
    /// The workspace
    pub id: String,
}

/// `/workspace/{id}/api-key/{akid}...`: routes about one API key.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ApiKeyPath {
    /// The workspace
    pub id: String,
    /// The API key
    pub akid: String,
}

/// `/workspace/{id}/tokens/{tokenId}`: one workspace token.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
#[serde(rename_all = "camelCase")]
pub struct TokenPath {
    /// The workspace
    pub id: String,
    /// The token
    pub token_id: String,
}

/// `/workspace/{id}/publishable-key/blacklist/{ruleId}`: one blacklist rule.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
#[serde(rename_all = "camelCase")]
pub struct BlacklistRulePath {
    /// The workspace
    pub id: String,
    /// The rule
    pub rule_id: String,
}

/// `/sdk-keys/{id}...`: one organisation SDK key.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SdkKeyPath {
    /// The SDK key
    pub id: String,
}

/// `/members/{id}`: one member.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct MemberPath {
    /// The member
    pub id: String,
}
