//! Members of an organisation: who may sign in to it, and with which role.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Timestamp;

/// One member.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    /// Their user id in this organisation.
    pub id: String,
    /// Their address, lower case.
    pub email: String,
    /// `owner`, `admin` or `member`.
    pub role: String,
    /// When they were invited (or founded the organisation).
    pub created_at: Timestamp,
    /// When they last signed in to this organisation; `null` if never.
    #[schema(required = true)]
    pub last_sign_in_at: Option<Timestamp>,
}

/// `GET /api/v1/members`.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberList {
    /// Oldest first.
    pub members: Vec<Member>,
}

/// `POST /api/v1/members`: invite an address (it can then sign in).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Invite {
    /// The address to invite.
    pub email: String,
    /// `owner`, `admin` or `member` (the default).
    #[serde(default = "default_role")]
    #[schema(default = "member")]
    pub role: String,
}

fn default_role() -> String {
    "member".into()
}

/// `PATCH /api/v1/members/{id}`: change a member's role.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleChange {
    /// `owner`, `admin` or `member`.
    pub role: String,
}

/// The member an invite or a role change answers with.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberAnswer {
    /// The member as stored now.
    pub member: Member,
}
