//! The customer portal's decisions: who the customer behind a link token is, what a
//! workspace's portal policy lets that customer create, which keys the customer may touch,
//! and which sites may frame the portal page.
//!
//! A portal request is made by a [`Customer`]: the (organisation, workspace, customer id) a
//! link token is bound to, and nothing else. It may act only on keys of that workspace whose
//! customer id is its own ([`Customer::owns`]); anything else is answered as if the key did
//! not exist. What it may create is bounded by the workspace's [`PortalPolicy`]
//! ([`may_create`]): scopes within the allowed set, an expiry no further than the maximum, a
//! usage allowance no larger than the maximum, and at most so many live keys.
//!
//! ```
//! use keygate_shared::portal::{may_create, CreateRequest, PortalPolicy, PortalRefusal};
//! let policy = PortalPolicy { max_live_keys: 1, ..PortalPolicy::default() };
//! let request = CreateRequest { scopes: &[], expires_at: None, usage: None, live_keys: 1, now: 0 };
//! assert_eq!(may_create(&policy, &request), Err(PortalRefusal::TooManyKeys));
//! ```

use crate::origin;
use crate::scope::{grants_cover, ApiKeyScope};

/// The longest key lifetime a policy may allow: 10 years.
pub const MAX_POLICY_EXPIRY_MS: i64 = 10 * 365 * 86_400_000;
/// The most live keys a policy may allow one customer.
pub const MAX_POLICY_LIVE_KEYS: u32 = 100;
/// The largest usage allowance a policy may allow.
pub const MAX_POLICY_USAGE: i64 = 1_000_000_000_000;
/// Longest grace period a customer may give a rotation: 7 days.
pub const MAX_PORTAL_GRACE_MS: i64 = 7 * 86_400_000;
/// Most changes (create, rotate, revoke) one link token may make in its lifetime.
pub const MAX_WRITES_PER_TOKEN: i64 = 100;

/// The customer a link token speaks for. Built only from a stored, unexpired token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Customer {
    /// The organisation of the token (tenant boundary).
    pub org_id: String,
    /// The one workspace the token is bound to.
    pub workspace_id: String,
    /// The platform's customer the token is bound to.
    pub customer_id: String,
}

impl Customer {
    /// Whether a key of `workspace_id` belonging to `key_customer` is this customer's own.
    /// A key without a customer belongs to nobody here.
    pub fn owns(&self, workspace_id: &str, key_customer: Option<&str>) -> bool {
        self.workspace_id == workspace_id && key_customer == Some(self.customer_id.as_str())
    }

    /// The audit actor: `customer:<customerId>`.
    pub fn actor(&self) -> String {
        format!("customer:{}", self.customer_id)
    }
}

/// What a workspace's admins let its customers create through the portal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortalPolicy {
    /// The scopes a customer's key may grant (rights included); a key's scopes must be
    /// covered by these.
    pub allowed_scopes: Vec<ApiKeyScope>,
    /// The longest lifetime of a customer's key, in ms; `None`: keys may never expire.
    pub max_expiry_ms: Option<i64>,
    /// The largest usage allowance of a customer's key; `None`: keys may be unlimited.
    pub max_usage: Option<i64>,
    /// How many live (not deleted) keys one customer may hold in the workspace.
    pub max_live_keys: u32,
}

impl Default for PortalPolicy {
    /// Until its admins say otherwise: keys without scopes, living at most 90 days, no usage
    /// bound, at most 5 per customer.
    fn default() -> Self {
        PortalPolicy {
            allowed_scopes: Vec::new(),
            max_expiry_ms: Some(90 * 86_400_000),
            max_usage: None,
            max_live_keys: 5,
        }
    }
}

/// Why a policy is refused when admins set it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyError {
    /// `maxExpiryMs` is not 1 ms to [`MAX_POLICY_EXPIRY_MS`].
    Expiry,
    /// `maxUsage` is not 0 to [`MAX_POLICY_USAGE`].
    Usage,
    /// `maxLiveKeys` is above [`MAX_POLICY_LIVE_KEYS`].
    LiveKeys,
}

impl PolicyError {
    /// The stable reason of the 400.
    pub fn reason(self) -> &'static str {
        match self {
            PolicyError::Expiry => "INVALID_MAX_EXPIRY",
            PolicyError::Usage => "INVALID_MAX_USAGE",
            PolicyError::LiveKeys => "INVALID_MAX_LIVE_KEYS",
        }
    }
}

/// Whether the bounds of `policy` are acceptable (its scopes are checked against the
/// workspace's by the caller).
pub fn check_policy(policy: &PortalPolicy) -> Result<(), PolicyError> {
    if policy
        .max_expiry_ms
        .is_some_and(|ms| !(1..=MAX_POLICY_EXPIRY_MS).contains(&ms))
    {
        return Err(PolicyError::Expiry);
    }
    if policy
        .max_usage
        .is_some_and(|n| !(0..=MAX_POLICY_USAGE).contains(&n))
    {
        return Err(PolicyError::Usage);
    }
    if policy.max_live_keys > MAX_POLICY_LIVE_KEYS {
        return Err(PolicyError::LiveKeys);
    }
    Ok(())
}

/// A customer's request to create a key, with what the caller counted.
#[derive(Clone, Copy, Debug)]
pub struct CreateRequest<'a> {
    /// The scopes asked for.
    pub scopes: &'a [ApiKeyScope],
    /// The expiry asked for, Unix ms; `None`: the longest the policy allows.
    pub expires_at: Option<i64>,
    /// The usage allowance asked for; `None`: the largest the policy allows.
    pub usage: Option<i64>,
    /// The customer's live keys in the workspace now.
    pub live_keys: u32,
    /// Now, Unix ms.
    pub now: i64,
}

/// What the key gets once [`may_create`] allows it: the expiry and allowance to store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Granted {
    /// Expiry, Unix ms, or never.
    pub expires_at: Option<i64>,
    /// Usage allowance, or unlimited.
    pub usage: Option<i64>,
}

/// Why the portal refuses a customer's request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortalRefusal {
    /// A scope (or right) outside the policy's allowed scopes.
    ScopeNotAllowed,
    /// An expiry in the past, or further away than the policy allows.
    ExpiryNotAllowed,
    /// A usage allowance below 0 or above the policy's maximum.
    UsageNotAllowed,
    /// The customer already holds the policy's number of live keys.
    TooManyKeys,
    /// A rotation grace period outside 0 to [`MAX_PORTAL_GRACE_MS`].
    GraceNotAllowed,
}

impl PortalRefusal {
    /// The stable reason of the 4xx.
    pub fn reason(self) -> &'static str {
        match self {
            PortalRefusal::ScopeNotAllowed => "SCOPE_NOT_ALLOWED",
            PortalRefusal::ExpiryNotAllowed => "EXPIRY_NOT_ALLOWED",
            PortalRefusal::UsageNotAllowed => "USAGE_NOT_ALLOWED",
            PortalRefusal::TooManyKeys => "TOO_MANY_KEYS",
            PortalRefusal::GraceNotAllowed => "GRACE_PERIOD_NOT_ALLOWED",
        }
    }

    /// Whether it is a conflict with the current state (409) rather than a bad request (400).
    pub fn is_conflict(self) -> bool {
        self == PortalRefusal::TooManyKeys
    }
}

/// Whether `policy` lets a customer create the key `request` describes; if so, the expiry
/// and allowance to store (an absent expiry or allowance becomes the policy's bound, so a
/// customer never gets more than the policy by leaving a field out).
pub fn may_create(
    policy: &PortalPolicy,
    request: &CreateRequest,
) -> Result<Granted, PortalRefusal> {
    if !grants_cover(&policy.allowed_scopes, request.scopes) {
        return Err(PortalRefusal::ScopeNotAllowed);
    }
    let latest = policy
        .max_expiry_ms
        .map(|ms| request.now.saturating_add(ms));
    let expires_at = match (request.expires_at, latest) {
        (Some(t), _) if t <= request.now => return Err(PortalRefusal::ExpiryNotAllowed),
        (Some(t), Some(latest)) if t > latest => return Err(PortalRefusal::ExpiryNotAllowed),
        (Some(t), _) => Some(t),
        (None, latest) => latest,
    };
    let usage = match (request.usage, policy.max_usage) {
        (Some(n), _) if n < 0 => return Err(PortalRefusal::UsageNotAllowed),
        (Some(n), Some(max)) if n > max => return Err(PortalRefusal::UsageNotAllowed),
        (Some(n), _) => Some(n),
        (None, max) => max,
    };
    if request.live_keys >= policy.max_live_keys {
        return Err(PortalRefusal::TooManyKeys);
    }
    Ok(Granted { expires_at, usage })
}

/// A rotation's grace period, 0 to [`MAX_PORTAL_GRACE_MS`] (default 0: the old value stops
/// at once).
pub fn check_grace(grace_ms: Option<i64>) -> Result<i64, PortalRefusal> {
    match grace_ms {
        None => Ok(0),
        Some(ms) if (0..=MAX_PORTAL_GRACE_MS).contains(&ms) => Ok(ms),
        Some(_) => Err(PortalRefusal::GraceNotAllowed),
    }
}

/// The CSP `frame-ancestors` source list for the portal page of a workspace with these
/// allowed origins: each valid entry in canonical form (wildcards such as
/// `https://*.example.com` kept), `'none'` when there is none. Entries that are not valid
/// origins are left out, so nothing but an origin ever reaches the header.
pub fn frame_ancestors<S: AsRef<str>>(allowed_origins: &[S]) -> String {
    let sources: Vec<String> = allowed_origins
        .iter()
        .filter_map(|o| origin::validate_entry(o.as_ref()).ok())
        .collect();
    if sources.is_empty() {
        "'none'".to_owned()
    } else {
        sources.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(r: &str, read: bool, create: bool) -> ApiKeyScope {
        ApiKeyScope {
            representation: r.into(),
            create,
            read,
            update: false,
            del: false,
        }
    }

    fn request(scopes: &[ApiKeyScope]) -> CreateRequest<'_> {
        CreateRequest {
            scopes,
            expires_at: None,
            usage: None,
            live_keys: 0,
            now: 1_000,
        }
    }

    fn policy() -> PortalPolicy {
        PortalPolicy {
            allowed_scopes: vec![scope("orders", true, false)],
            max_expiry_ms: Some(10_000),
            max_usage: Some(50),
            max_live_keys: 2,
        }
    }

    #[test]
    fn scopes_must_be_within_the_allowed_set() {
        let p = policy();
        assert!(may_create(&p, &request(&[scope("orders", true, false)])).is_ok());
        assert!(may_create(&p, &request(&[])).is_ok());
        for bad in [scope("orders", true, true), scope("billing", true, false)] {
            assert_eq!(
                may_create(&p, &request(&[bad])),
                Err(PortalRefusal::ScopeNotAllowed)
            );
        }
    }

    #[test]
    fn expiry_is_bounded_and_defaults_to_the_bound() {
        let p = policy();
        let at = |t| CreateRequest {
            expires_at: Some(t),
            ..request(&[])
        };
        assert_eq!(
            may_create(&p, &request(&[])).unwrap().expires_at,
            Some(11_000)
        );
        assert_eq!(
            may_create(&p, &at(11_000)).unwrap().expires_at,
            Some(11_000)
        );
        assert_eq!(
            may_create(&p, &at(11_001)),
            Err(PortalRefusal::ExpiryNotAllowed)
        );
        assert_eq!(
            may_create(&p, &at(1_000)),
            Err(PortalRefusal::ExpiryNotAllowed)
        );
        let open = PortalPolicy {
            max_expiry_ms: None,
            ..p
        };
        assert_eq!(may_create(&open, &request(&[])).unwrap().expires_at, None);
        assert_eq!(
            may_create(&open, &at(i64::MAX)).unwrap().expires_at,
            Some(i64::MAX)
        );
    }

    #[test]
    fn usage_is_bounded_and_defaults_to_the_bound() {
        let p = policy();
        let uses = |n| CreateRequest {
            usage: Some(n),
            ..request(&[])
        };
        assert_eq!(may_create(&p, &request(&[])).unwrap().usage, Some(50));
        assert_eq!(may_create(&p, &uses(50)).unwrap().usage, Some(50));
        assert_eq!(
            may_create(&p, &uses(51)),
            Err(PortalRefusal::UsageNotAllowed)
        );
        assert_eq!(
            may_create(&p, &uses(-1)),
            Err(PortalRefusal::UsageNotAllowed)
        );
    }

    #[test]
    fn live_keys_are_counted_against_the_policy() {
        let p = policy();
        let holding = |n| CreateRequest {
            live_keys: n,
            ..request(&[])
        };
        assert!(may_create(&p, &holding(1)).is_ok());
        assert_eq!(may_create(&p, &holding(2)), Err(PortalRefusal::TooManyKeys));
        assert!(PortalRefusal::TooManyKeys.is_conflict());
    }

    #[test]
    fn a_customer_owns_only_its_keys_in_its_workspace() {
        let c = Customer {
            org_id: "o".into(),
            workspace_id: "w1".into(),
            customer_id: "alice".into(),
        };
        assert!(c.owns("w1", Some("alice")));
        assert!(!c.owns("w1", Some("bob")));
        assert!(!c.owns("w2", Some("alice")));
        assert!(!c.owns("w1", None));
        assert_eq!(c.actor(), "customer:alice");
    }

    #[test]
    fn policies_are_bounded() {
        assert_eq!(check_policy(&PortalPolicy::default()), Ok(()));
        let bad_expiry = PortalPolicy {
            max_expiry_ms: Some(0),
            ..PortalPolicy::default()
        };
        assert_eq!(check_policy(&bad_expiry), Err(PolicyError::Expiry));
        let bad_usage = PortalPolicy {
            max_usage: Some(-1),
            ..PortalPolicy::default()
        };
        assert_eq!(check_policy(&bad_usage), Err(PolicyError::Usage));
        let bad_keys = PortalPolicy {
            max_live_keys: MAX_POLICY_LIVE_KEYS + 1,
            ..PortalPolicy::default()
        };
        assert_eq!(check_policy(&bad_keys), Err(PolicyError::LiveKeys));
    }

    #[test]
    fn grace_is_bounded() {
        assert_eq!(check_grace(None), Ok(0));
        assert_eq!(
            check_grace(Some(MAX_PORTAL_GRACE_MS)),
            Ok(MAX_PORTAL_GRACE_MS)
        );
        assert_eq!(check_grace(Some(-1)), Err(PortalRefusal::GraceNotAllowed));
    }

    #[test]
    fn frame_ancestors_lists_valid_origins_or_none() {
        assert_eq!(frame_ancestors::<&str>(&[]), "'none'");
        assert_eq!(
            frame_ancestors(&["https://App.example.com", "https://*.example.org"]),
            "https://app.example.com https://*.example.org"
        );
        assert_eq!(frame_ancestors(&["x; script-src *", "*"]), "'none'");
    }
}
