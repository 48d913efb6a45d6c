//! Verdicts: the one list of statuses a key check can end in, their wire names and HTTP
//! statuses, and the JSON body the edge and the control plane both answer with.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Every outcome of checking a key. Wire names are stable (`VALID`, `REVOKED`, ...); the
/// first eight are exactly Oneloop's verify statuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    /// The key may be used.
    Valid,
    /// Past its expiry.
    Expired,
    /// Switched off by its owner; may be switched on again.
    Disabled,
    /// Deleted for good.
    Deleted,
    /// Replaced by a new key (publishable keys).
    Revoked,
    /// Over its rate limit for now.
    RateLimited,
    /// Its usage allowance is spent.
    UsageLimited,
    /// It lacks a scope the call requires.
    InvalidScopes,
    /// Malformed, mistyped, unknown or never issued.
    Invalid,
    /// The module or functionality is on the key's blacklist.
    Blacklisted,
    /// The browser origin is not allowed to use the key.
    OriginNotAllowed,
}

impl Status {
    /// Every status.
    pub const ALL: [Status; 11] = [
        Status::Valid,
        Status::Expired,
        Status::Disabled,
        Status::Deleted,
        Status::Revoked,
        Status::RateLimited,
        Status::UsageLimited,
        Status::InvalidScopes,
        Status::Invalid,
        Status::Blacklisted,
        Status::OriginNotAllowed,
    ];

    /// The stable wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Valid => "VALID",
            Status::Expired => "EXPIRED",
            Status::Disabled => "DISABLED",
            Status::Deleted => "DELETED",
            Status::Revoked => "REVOKED",
            Status::RateLimited => "RATE_LIMITED",
            Status::UsageLimited => "USAGE_LIMITED",
            Status::InvalidScopes => "INVALID_SCOPES",
            Status::Invalid => "INVALID",
            Status::Blacklisted => "BLACKLISTED",
            Status::OriginNotAllowed => "ORIGIN_NOT_ALLOWED",
        }
    }

    /// Parses a wire name.
    pub fn from_wire(s: &str) -> Option<Self> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Whether the key may be used.
    pub fn is_valid(self) -> bool {
        self == Status::Valid
    }

    /// The HTTP status a check endpoint answers with: 200 for valid, 401 when the key itself
    /// is not usable, 403 when a usable key is not allowed this call, 429 when it is over a
    /// limit.
    pub fn http_status(self) -> u16 {
        match self {
            Status::Valid => 200,
            Status::Expired
            | Status::Disabled
            | Status::Deleted
            | Status::Revoked
            | Status::Invalid => 401,
            Status::InvalidScopes | Status::Blacklisted | Status::OriginNotAllowed => 403,
            Status::RateLimited | Status::UsageLimited => 429,
        }
    }

    /// A sentence for people reading the response.
    pub fn message(self) -> &'static str {
        match self {
            Status::Valid => "the key is valid",
            Status::Expired => "the key has expired",
            Status::Disabled => "the key is disabled",
            Status::Deleted => "the key was deleted",
            Status::Revoked => "the key was revoked and replaced by a new one",
            Status::RateLimited => "the key is over its rate limit; retry later",
            Status::UsageLimited => "the key has used up its allowance",
            Status::InvalidScopes => "the key lacks a scope this call requires",
            Status::Invalid => "the key is not a valid key",
            Status::Blacklisted => "this key may not use this module or functionality",
            Status::OriginNotAllowed => "this key may not be used from this origin",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of a publishable-key check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// What was decided.
    pub status: Status,
    /// The key's workspace, when the key was found.
    pub workspace_id: Option<String>,
}

impl Verdict {
    /// A verdict with no workspace (the key was not found or not well-formed).
    pub fn invalid() -> Self {
        Verdict {
            status: Status::Invalid,
            workspace_id: None,
        }
    }

    /// The HTTP status to answer with.
    pub fn http_status(&self) -> u16 {
        self.status.http_status()
    }

    /// The JSON body both the edge and the control plane answer a check with.
    pub fn response(&self) -> CheckResponse {
        CheckResponse {
            valid: self.status.is_valid(),
            status: self.status,
            workspace_id: if self.status.is_valid() {
                self.workspace_id.clone()
            } else {
                None
            },
            message: self.status.message().to_owned(),
        }
    }
}

/// `{"valid": true, "status": "VALID", "workspaceId": "...", "message": "..."}`.
/// The workspace is named only on a valid verdict, so a refused caller learns nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckResponse {
    /// Whether the key may be used for this call.
    pub valid: bool,
    /// The stable status.
    pub status: Status,
    /// The workspace (valid verdicts only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<String>,
    /// A human sentence.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip() {
        for s in Status::ALL {
            assert_eq!(Status::from_wire(s.as_str()), Some(s));
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
        assert_eq!(Status::from_wire("valid"), None);
    }

    #[test]
    fn only_valid_is_2xx() {
        for s in Status::ALL {
            assert_eq!(s.http_status() == 200, s.is_valid(), "{s}");
            assert!((200..500).contains(&s.http_status()));
        }
    }

    #[test]
    fn refused_responses_do_not_name_the_workspace() {
        let v = Verdict {
            status: Status::Blacklisted,
            workspace_id: Some("ws_1".into()),
        };
        let json = serde_json::to_value(v.response()).unwrap();
        assert_eq!(json["valid"], false);
        assert_eq!(json["status"], "BLACKLISTED");
        assert!(json.get("workspaceId").is_none());
        let ok = Verdict {
            status: Status::Valid,
            workspace_id: Some("ws_1".into()),
        };
        assert_eq!(
            serde_json::to_value(ok.response()).unwrap()["workspaceId"],
            "ws_1"
        );
    }
}
