//! Scopes: what an SDK key may do on the backend API, and what a customer API key grants.
//!
//! SDK-key scopes are a small fixed set (`workspace`, `workspace_scopes`, `api_keys`, each
//! `read` and/or `write`); write does not imply read. Their JSON shape is
//! `{"workspace": ["read", "write"], "workspace_scopes": [], "api_keys": ["write"]}` and their
//! compact storage form `workspace:read workspace:write api_keys:write`.
//!
//! API-key scopes follow Oneloop's shape: a `representation` (the workspace scope's name) and
//! four booleans `create`, `read`, `update`, `del`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A part of the backend API an SDK key can be allowed to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resource {
    /// Workspaces (`/api/v1/workspace...`).
    Workspace,
    /// Workspace scopes (`/api/v1/workspace/{id}/scope(s)`).
    WorkspaceScopes,
    /// Customer API keys (`/api/v1/api-key...`).
    ApiKeys,
}

impl Resource {
    /// Every resource, in display order.
    pub const ALL: [Resource; 3] = [
        Resource::Workspace,
        Resource::WorkspaceScopes,
        Resource::ApiKeys,
    ];

    /// Stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Workspace => "workspace",
            Resource::WorkspaceScopes => "workspace_scopes",
            Resource::ApiKeys => "api_keys",
        }
    }

    fn from_name(s: &str) -> Option<Self> {
        Resource::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// Reading or changing a resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// GET calls.
    Read,
    /// POST, PATCH and DELETE calls.
    Write,
}

impl Access {
    /// `read` or `write`.
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
        }
    }

    fn from_name(s: &str) -> Option<Self> {
        match s {
            "read" => Some(Access::Read),
            "write" => Some(Access::Write),
            _ => None,
        }
    }
}

/// One (resource, access) pair: what a call requires.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Permission {
    /// The resource.
    pub resource: Resource,
    /// Read or write.
    pub access: Access,
}

impl Permission {
    /// Shorthand constructor.
    pub const fn new(resource: Resource, access: Access) -> Self {
        Permission { resource, access }
    }

    fn bit(self) -> u8 {
        let r = match self.resource {
            Resource::Workspace => 0,
            Resource::WorkspaceScopes => 1,
            Resource::ApiKeys => 2,
        };
        let a = match self.access {
            Access::Read => 0,
            Access::Write => 1,
        };
        1 << (r * 2 + a)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.resource.as_str(), self.access.as_str())
    }
}

/// Why a scope description was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScopeError(pub String);

impl fmt::Display for ScopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ScopeError {}

/// The set of permissions an SDK key holds.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct SdkScopes(u8);

impl SdkScopes {
    /// No permission at all.
    pub const fn empty() -> Self {
        SdkScopes(0)
    }

    /// Every permission.
    pub const fn all() -> Self {
        SdkScopes(0b11_1111)
    }

    /// This set plus one permission.
    #[must_use]
    pub fn with(self, p: Permission) -> Self {
        SdkScopes(self.0 | p.bit())
    }

    /// Whether a call requiring `required` is allowed.
    pub fn allows(self, required: Permission) -> bool {
        self.0 & required.bit() != 0
    }

    /// Whether no permission is held.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The held permissions, in a stable order.
    pub fn iter(self) -> impl Iterator<Item = Permission> {
        Resource::ALL
            .into_iter()
            .flat_map(|r| {
                [
                    Permission::new(r, Access::Read),
                    Permission::new(r, Access::Write),
                ]
            })
            .filter(move |p| self.allows(*p))
    }

    /// Parses the compact form (`workspace:read api_keys:write`, spaces or commas).
    pub fn parse(s: &str) -> Result<Self, ScopeError> {
        s.split([' ', ','])
            .filter(|t| !t.is_empty())
            .try_fold(SdkScopes::empty(), |acc, token| {
                let (r, a) = token
                    .split_once(':')
                    .ok_or_else(|| ScopeError(format!("`{token}` is not `resource:access`")))?;
                let resource = Resource::from_name(r)
                    .ok_or_else(|| ScopeError(format!("unknown scope resource `{r}`")))?;
                let access = Access::from_name(a)
                    .ok_or_else(|| ScopeError(format!("unknown scope access `{a}`")))?;
                Ok(acc.with(Permission::new(resource, access)))
            })
    }
}

impl fmt::Display for SdkScopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for p in self.iter() {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for SdkScopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SdkScopes({self})")
    }
}

/// The JSON object form, field per resource. camelCase aliases are accepted too.
#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ScopesObject {
    #[serde(default)]
    workspace: Vec<Access>,
    #[serde(default, alias = "workspaceScopes")]
    workspace_scopes: Vec<Access>,
    #[serde(default, alias = "apiKeys")]
    api_keys: Vec<Access>,
}

impl Serialize for SdkScopes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let list = |r: Resource| -> Vec<Access> {
            [Access::Read, Access::Write]
                .into_iter()
                .filter(|a| self.allows(Permission::new(r, *a)))
                .collect()
        };
        ScopesObject {
            workspace: list(Resource::Workspace),
            workspace_scopes: list(Resource::WorkspaceScopes),
            api_keys: list(Resource::ApiKeys),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for SdkScopes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let o = ScopesObject::deserialize(d)?;
        let mut scopes = SdkScopes::empty();
        for (r, list) in [
            (Resource::Workspace, o.workspace),
            (Resource::WorkspaceScopes, o.workspace_scopes),
            (Resource::ApiKeys, o.api_keys),
        ] {
            for a in list {
                scopes = scopes.with(Permission::new(r, a));
            }
        }
        Ok(scopes)
    }
}

/// Longest workspace-scope representation accepted.
pub const MAX_REPRESENTATION_LEN: usize = 64;

/// Whether a workspace scope's representation (`billing`, `orders.read`) is acceptable:
/// 1 to 64 characters of letters, digits, `_`, `-`, `.`, `:` and `/`.
pub fn is_valid_representation(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_REPRESENTATION_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':' | b'/'))
}

/// One API-key scope in Oneloop's shape.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyScope {
    /// The workspace scope this grants rights on.
    pub representation: String,
    /// May create.
    #[serde(default)]
    pub create: bool,
    /// May read.
    #[serde(default)]
    pub read: bool,
    /// May update.
    #[serde(default)]
    pub update: bool,
    /// May delete.
    #[serde(default)]
    pub del: bool,
}

impl ApiKeyScope {
    /// Whether this grant covers every right `requested` asks for on the same representation.
    pub fn covers(&self, requested: &ApiKeyScope) -> bool {
        self.representation == requested.representation
            && (self.create || !requested.create)
            && (self.read || !requested.read)
            && (self.update || !requested.update)
            && (self.del || !requested.del)
    }
}

/// Whether `granted` covers every scope in `requested`. Rights may be spread over several
/// grants of the same representation; a request with no scopes is always covered.
pub fn grants_cover(granted: &[ApiKeyScope], requested: &[ApiKeyScope]) -> bool {
    requested.iter().all(|want| {
        let mut have = ApiKeyScope {
            representation: want.representation.clone(),
            create: false,
            read: false,
            update: false,
            del: false,
        };
        for g in granted
            .iter()
            .filter(|g| g.representation == want.representation)
        {
            have.create |= g.create;
            have.read |= g.read;
            have.update |= g.update;
            have.del |= g.del;
        }
        have.covers(want)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(r: Resource, a: Access) -> Permission {
        Permission::new(r, a)
    }

    #[test]
    fn write_does_not_imply_read() {
        let s = SdkScopes::empty().with(p(Resource::ApiKeys, Access::Write));
        assert!(s.allows(p(Resource::ApiKeys, Access::Write)));
        assert!(!s.allows(p(Resource::ApiKeys, Access::Read)));
        assert!(!s.allows(p(Resource::Workspace, Access::Write)));
    }

    #[test]
    fn compact_form_round_trips() {
        let s = SdkScopes::parse("workspace:read, api_keys:write").unwrap();
        assert_eq!(s.to_string(), "workspace:read api_keys:write");
        assert_eq!(SdkScopes::parse(&s.to_string()).unwrap(), s);
        assert_eq!(SdkScopes::parse("").unwrap(), SdkScopes::empty());
        assert!(SdkScopes::parse("workspace").is_err());
        assert!(SdkScopes::parse("billing:read").is_err());
        assert!(SdkScopes::parse("workspace:admin").is_err());
    }

    #[test]
    fn json_form_round_trips_and_refuses_unknown_fields() {
        let s: SdkScopes =
            serde_json::from_str(r#"{"workspace":["read","write"],"apiKeys":["write"]}"#).unwrap();
        assert_eq!(
            s.to_string(),
            "workspace:read workspace:write api_keys:write"
        );
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(
            json,
            r#"{"workspace":["read","write"],"workspace_scopes":[],"api_keys":["write"]}"#
        );
        assert!(serde_json::from_str::<SdkScopes>(r#"{"billing":["read"]}"#).is_err());
        assert!(serde_json::from_str::<SdkScopes>(r#"{"workspace":["admin"]}"#).is_err());
    }

    #[test]
    fn api_key_scopes_cover_subsets_only() {
        let grant = |c, r, u, d| ApiKeyScope {
            representation: "orders".into(),
            create: c,
            read: r,
            update: u,
            del: d,
        };
        let granted = vec![
            grant(false, true, false, false),
            grant(true, false, false, false),
        ];
        assert!(grants_cover(&granted, &[grant(true, true, false, false)]));
        assert!(!grants_cover(&granted, &[grant(false, false, false, true)]));
        assert!(grants_cover(&granted, &[]));
        let other = ApiKeyScope {
            representation: "billing".into(),
            ..grant(false, true, false, false)
        };
        assert!(!grants_cover(&granted, &[other]));
    }

    #[test]
    fn representations_are_validated() {
        assert!(is_valid_representation("orders.read"));
        assert!(!is_valid_representation(""));
        assert!(!is_valid_representation("has space"));
        assert!(!is_valid_representation(&"x".repeat(65)));
    }

    proptest! {
        #[test]
        fn every_subset_of_permissions_round_trips(bits in 0u8..64) {
            let s = SdkScopes(bits);
            prop_assert_eq!(SdkScopes::parse(&s.to_string()).unwrap(), s);
            let json = serde_json::to_string(&s).unwrap();
            prop_assert_eq!(serde_json::from_str::<SdkScopes>(&json).unwrap(), s);
        }
    }
}
