//! Signing in with an emailed code, the session it opens, `/me`, step-up and switching
//! organisation.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Timestamp;

/// `POST /api/v1/auth/otp`: ask for a sign-in code.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeRequest {
    /// The address to send the code to (trimmed, compared in lower case).
    pub email: String,
}

/// `POST /api/v1/auth/otp`'s answer (202), the same whether or not the address may sign in.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CodeRequested {
    /// Always `sent`.
    pub status: &'static str,
    /// A sentence for people.
    pub message: &'static str,
    /// The challenge to send back with the code (`POST /api/v1/auth/session`).
    pub challenge_id: String,
}

/// `POST /api/v1/auth/session`: sign in with an emailed code.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignIn {
    /// The address the code went to.
    pub email: String,
    /// The 6-digit code.
    pub code: String,
    /// The `challengeId` of the code request this browser made. With it, wrong guesses count
    /// only against this browser's own challenge; without it (older clients), the newest
    /// pending challenge this client asked for is judged.
    pub challenge_id: Option<String>,
}

/// A signed-in user, as sign-in and `/me` describe them.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct SessionUser {
    /// Their user id (one per organisation they belong to).
    pub id: String,
    /// Their address, lower case.
    pub email: String,
    /// `owner`, `admin` or `member`.
    pub role: String,
}

/// The organisation a session is in.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct SessionOrganisation {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
}

/// `POST /api/v1/auth/session`'s answer (201, with the session and CSRF cookies set).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignedIn {
    /// Who signed in.
    pub user: SessionUser,
    /// The organisation the session is in.
    pub organisation: SessionOrganisation,
    /// The value to send as `X-CSRF-Token` on state-changing calls (also in the readable
    /// `keygate_csrf` cookie).
    pub csrf_token: String,
}

/// One organisation the signed-in address belongs to.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Membership {
    /// The organisation's id.
    pub id: String,
    /// The organisation's name.
    pub name: String,
    /// The address's role there: `owner`, `admin` or `member`.
    pub role: String,
}

/// `GET /api/v1/me`: the signed-in user and their session.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Me {
    /// The signed-in user.
    pub user: SessionUser,
    /// The organisation this session is in. The field is spelled `organisation` (never
    /// `organization` or `org`).
    pub organisation: SessionOrganisation,
    /// Every organisation the address belongs to, by name (for the switcher).
    pub organisations: Vec<Membership>,
    /// The value to send as `X-CSRF-Token` on state-changing calls.
    pub csrf_token: String,
    /// Until when this session's step-up window is open; `null` when it is closed.
    #[schema(required = true)]
    pub step_up_until: Option<Timestamp>,
}

/// `POST /api/v1/auth/step-up`'s answer: a code went to the signed-in address.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepUpChallenge {
    /// The challenge to send back with the code (`POST /api/v1/auth/step-up/verify`).
    pub challenge_id: String,
    /// When the code stops working.
    pub expires_at: Timestamp,
}

/// `POST /api/v1/auth/step-up/verify`, and the reveal-verify calls: a challenge and its code.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VerifyCode {
    /// The `challengeId` the code request answered.
    pub challenge_id: String,
    /// The 6-digit code.
    pub code: String,
}

/// `POST /api/v1/auth/step-up/verify`'s answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepUpOpened {
    /// Until when sensitive actions need no further code.
    pub step_up_until: Timestamp,
}

/// `POST /api/v1/auth/switch`: move to the same address's membership in another
/// organisation.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SwitchOrganisation {
    /// The organisation to move to (one of `/me`'s `organisations`).
    pub organisation_id: String,
}

/// An id, alone.
#[derive(Debug, Serialize, ToSchema)]
pub struct IdOnly {
    /// The id.
    pub id: String,
}

/// `POST /api/v1/auth/switch`'s answer (201, with new session and CSRF cookies set).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Switched {
    /// The address's user in the new organisation.
    pub user: IdOnly,
    /// The organisation the new session is in.
    pub organisation: IdOnly,
    /// The new session's CSRF token.
    pub csrf_token: String,
}
