//! Who may do what: one table of role x action, the step-up rule, and SDK-key scope gating.
//!
//! Every control-plane handler names the [`Action`] it performs and asks [`decide`] (a
//! dashboard session) or [`decide_sdk`] (a backend holding an SDK key); no handler decides
//! by itself. The table ([`allows`]):
//!
//! | action | owner | admin | member | step-up |
//! |---|---|---|---|---|
//! | read workspaces, masked keys and tokens, publishable keys, blacklists, catalogue, API-key lists, usage, audit log, members | yes | yes | yes | |
//! | create or edit workspaces and their catalogue | yes | yes | no | |
//! | create workspace scopes | yes | yes | no | |
//! | create, edit, rotate, refill, delete customer API keys | yes | yes | no | |
//! | revoke (replace) the publishable key | yes | yes | no | |
//! | add a blacklist rule | yes | yes | no | |
//! | remove a blacklist rule | yes | yes | no | yes |
//! | change the origin URL or allowed origins | yes | yes | no | yes |
//! | create or revoke workspace tokens | yes | yes | no | |
//! | reveal an SDK key (its own emailed code) | yes | yes | no | |
//! | rotate the SDK access key | yes | yes | no | yes |
//! | create an SDK key | yes | yes | no | yes |
//! | revoke an SDK key | yes | yes | no | |
//! | read the gateway signing secret | yes | yes | no | yes |
//! | rotate the gateway signing secret | yes | yes | no | yes |
//! | invite a member | yes | yes | no | |
//! | invite or promote an admin | yes | yes | no | yes |
//! | invite or promote an owner | yes | no | no | yes |
//! | change the role of, or remove, a member or admin | yes | yes | no | |
//! | change the role of, or remove, an owner | yes | no | no | |
//!
//! ```
//! use keygate_shared::authz::{decide, Action, Denial, Role};
//! assert_eq!(decide(Role::Member, Action::ManageApiKeys, true), Err(Denial::RoleRequired));
//! assert_eq!(decide(Role::Admin, Action::CreateSdkKey, false), Err(Denial::StepUpRequired));
//! assert_eq!(decide(Role::Admin, Action::CreateSdkKey, true), Ok(()));
//! ```

use crate::scope::{Access, Permission, Resource, SdkScopes};

/// How long a verified code keeps a session's step-up window open.
pub const STEP_UP_WINDOW_SECS: i64 = 10 * 60;

/// A member's role in an organisation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, including owners and the organisation.
    Owner,
    /// Everything in every workspace, and members other than owners.
    Admin,
    /// Reads; never creates, rotates, revokes, deletes or reveals anything.
    Member,
}

impl Role {
    /// Every role, most powerful first.
    pub const ALL: [Role; 3] = [Role::Owner, Role::Admin, Role::Member];

    /// Stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }

    /// Parses a stored or wire name.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "owner" => Some(Role::Owner),
            "admin" => Some(Role::Admin),
            "member" => Some(Role::Member),
            _ => None,
        }
    }
}

/// Everything a caller can ask the control plane to do, one variant per row of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Read workspaces (backend scope `workspace` read).
    ReadWorkspaces,
    /// Read workspace scopes (backend scope `workspace_scopes` read).
    ReadWorkspaceScopes,
    /// Read customer API keys and usage (backend scope `api_keys` read).
    ReadApiKeys,
    /// Read what only the dashboard shows: masked SDK keys and tokens, publishable keys,
    /// blacklists, catalogue, members, the audit log.
    ReadDashboard,
    /// Create or edit a workspace or its catalogue (backend scope `workspace` write).
    ManageWorkspaces,
    /// Create workspace scopes (backend scope `workspace_scopes` write).
    ManageWorkspaceScopes,
    /// Create, edit, rotate, refill or delete customer API keys (backend scope `api_keys` write).
    ManageApiKeys,
    /// Revoke (replace) a workspace's publishable key.
    RevokePublishableKey,
    /// Add a blacklist rule.
    AddBlacklistRule,
    /// Remove a blacklist rule (re-opens access: step-up).
    RemoveBlacklistRule,
    /// Change a workspace's origin URL or allowed origins (redirects traffic: step-up).
    ChangeOrigins,
    /// Create or revoke workspace tokens and secrets.
    ManageTokens,
    /// Reveal an SDK key (the reveal sends its own code, so no window is needed).
    RevealSdkKey,
    /// Rotate a workspace's SDK access key (yields a secret: step-up).
    RotateSdkAccessKey,
    /// Create an organisation SDK key (yields a secret: step-up).
    CreateSdkKey,
    /// Revoke an SDK key.
    RevokeSdkKey,
    /// Read a workspace's gateway signing secret (step-up).
    ReadGatewaySecret,
    /// Rotate a workspace's gateway signing secret (step-up).
    RotateGatewaySecret,
    /// Invite someone as a member, or change someone's role to member.
    GrantMember,
    /// Invite someone as an admin, or promote someone to admin (widens access: step-up).
    GrantAdmin,
    /// Invite someone as an owner, or promote someone to owner (widens access: step-up).
    GrantOwner,
    /// Change the role of, or remove, someone who is a member or admin.
    ChangeMember,
    /// Change the role of, or remove, someone who is an owner.
    ChangeOwner,
}

impl Action {
    /// Every action, in table order.
    pub const ALL: [Action; 23] = [
        Action::ReadWorkspaces,
        Action::ReadWorkspaceScopes,
        Action::ReadApiKeys,
        Action::ReadDashboard,
        Action::ManageWorkspaces,
        Action::ManageWorkspaceScopes,
        Action::ManageApiKeys,
        Action::RevokePublishableKey,
        Action::AddBlacklistRule,
        Action::RemoveBlacklistRule,
        Action::ChangeOrigins,
        Action::ManageTokens,
        Action::RevealSdkKey,
        Action::RotateSdkAccessKey,
        Action::CreateSdkKey,
        Action::RevokeSdkKey,
        Action::ReadGatewaySecret,
        Action::RotateGatewaySecret,
        Action::GrantMember,
        Action::GrantAdmin,
        Action::GrantOwner,
        Action::ChangeMember,
        Action::ChangeOwner,
    ];

    /// Whether the action yields a secret able to act for the organisation, widens access or
    /// redirects traffic, and so needs an open step-up window.
    pub fn needs_step_up(self) -> bool {
        matches!(
            self,
            Action::RemoveBlacklistRule
                | Action::ChangeOrigins
                | Action::RotateSdkAccessKey
                | Action::CreateSdkKey
                | Action::ReadGatewaySecret
                | Action::RotateGatewaySecret
                | Action::GrantAdmin
                | Action::GrantOwner
        )
    }

    /// The SDK-key scope that lets a backend perform the action, or `None` when only a
    /// dashboard session may (SDK keys are made and revealed only from the dashboard).
    pub fn sdk_permission(self) -> Option<Permission> {
        let p = Permission::new;
        match self {
            Action::ReadWorkspaces => Some(p(Resource::Workspace, Access::Read)),
            Action::ManageWorkspaces => Some(p(Resource::Workspace, Access::Write)),
            Action::ReadWorkspaceScopes => Some(p(Resource::WorkspaceScopes, Access::Read)),
            Action::ManageWorkspaceScopes => Some(p(Resource::WorkspaceScopes, Access::Write)),
            Action::ReadApiKeys => Some(p(Resource::ApiKeys, Access::Read)),
            Action::ManageApiKeys => Some(p(Resource::ApiKeys, Access::Write)),
            _ => None,
        }
    }

    /// The action of granting `role` (inviting with it, or changing someone's role to it).
    pub fn grant(role: Role) -> Action {
        match role {
            Role::Owner => Action::GrantOwner,
            Role::Admin => Action::GrantAdmin,
            Role::Member => Action::GrantMember,
        }
    }

    /// The action of changing or removing someone who currently holds `role`.
    pub fn change(current: Role) -> Action {
        match current {
            Role::Owner => Action::ChangeOwner,
            Role::Admin | Role::Member => Action::ChangeMember,
        }
    }

    /// What changing someone's role from `from` to `to` takes: changing someone holding
    /// `from`, and granting `to` when it widens their access (a demotion grants nothing).
    pub fn role_change(from: Role, to: Role) -> [Action; 2] {
        let rank = |r: Role| match r {
            Role::Owner => 2,
            Role::Admin => 1,
            Role::Member => 0,
        };
        let second = if rank(to) > rank(from) {
            Action::grant(to)
        } else {
            Action::change(from)
        };
        [Action::change(from), second]
    }
}

/// Why a caller may not do something. Each maps to one stable reason code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Denial {
    /// The caller's role does not allow it (`403 ROLE_REQUIRED`).
    RoleRequired,
    /// Allowed, but only inside a step-up window (`403 STEP_UP_REQUIRED`).
    StepUpRequired,
    /// An SDK key lacking this scope (`403 MISSING_SCOPE`).
    MissingScope(Permission),
    /// Only a dashboard session may do it, never an SDK key (`403 DASHBOARD_ONLY`).
    DashboardOnly,
}

impl Denial {
    /// The stable reason code sent in the error body.
    pub fn reason(self) -> &'static str {
        match self {
            Denial::RoleRequired => "ROLE_REQUIRED",
            Denial::StepUpRequired => "STEP_UP_REQUIRED",
            Denial::MissingScope(_) => "MISSING_SCOPE",
            Denial::DashboardOnly => "DASHBOARD_ONLY",
        }
    }
}

/// The table: whether `role` may perform `action` at all (step-up aside).
pub fn allows(role: Role, action: Action) -> bool {
    use Action::*;
    match action {
        ReadWorkspaces | ReadWorkspaceScopes | ReadApiKeys | ReadDashboard => true,
        GrantOwner | ChangeOwner => role == Role::Owner,
        ManageWorkspaces
        | ManageWorkspaceScopes
        | ManageApiKeys
        | RevokePublishableKey
        | AddBlacklistRule
        | RemoveBlacklistRule
        | ChangeOrigins
        | ManageTokens
        | RevealSdkKey
        | RotateSdkAccessKey
        | CreateSdkKey
        | RevokeSdkKey
        | ReadGatewaySecret
        | RotateGatewaySecret
        | GrantMember
        | GrantAdmin
        | ChangeMember => matches!(role, Role::Owner | Role::Admin),
    }
}

/// Whether a signed-in user with `role` may perform `action` now; `step_up_open` says whether
/// the session's step-up window is open. The role is checked first, so a member never learns
/// that a step-up would help.
pub fn decide(role: Role, action: Action, step_up_open: bool) -> Result<(), Denial> {
    if !allows(role, action) {
        Err(Denial::RoleRequired)
    } else if action.needs_step_up() && !step_up_open {
        Err(Denial::StepUpRequired)
    } else {
        Ok(())
    }
}

/// Whether a backend holding an SDK key with `scopes` may perform `action`.
pub fn decide_sdk(scopes: SdkScopes, action: Action) -> Result<(), Denial> {
    match action.sdk_permission() {
        None => Err(Denial::DashboardOnly),
        Some(p) if scopes.allows(p) => Ok(()),
        Some(p) => Err(Denial::MissingScope(p)),
    }
}

/// Whether a step-up window that closes at `open_until` (Unix ms; `None`: never opened) is
/// open at `now` (Unix ms).
pub fn step_up_open(open_until: Option<i64>, now: i64) -> bool {
    open_until.is_some_and(|until| now < until)
}

/// When a step-up window opened by a code verified at `now` (Unix ms) closes.
pub fn step_up_until(now: i64) -> i64 {
    now.saturating_add(STEP_UP_WINDOW_SECS * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The whole table, written out once more by hand: (action, owner, admin, member, step-up).
    const EXPECTED: [(Action, bool, bool, bool, bool); 23] = {
        use Action::*;
        [
            (ReadWorkspaces, true, true, true, false),
            (ReadWorkspaceScopes, true, true, true, false),
            (ReadApiKeys, true, true, true, false),
            (ReadDashboard, true, true, true, false),
            (ManageWorkspaces, true, true, false, false),
            (ManageWorkspaceScopes, true, true, false, false),
            (ManageApiKeys, true, true, false, false),
            (RevokePublishableKey, true, true, false, false),
            (AddBlacklistRule, true, true, false, false),
            (RemoveBlacklistRule, true, true, false, true),
            (ChangeOrigins, true, true, false, true),
            (ManageTokens, true, true, false, false),
            (RevealSdkKey, true, true, false, false),
            (RotateSdkAccessKey, true, true, false, true),
            (CreateSdkKey, true, true, false, true),
            (RevokeSdkKey, true, true, false, false),
            (ReadGatewaySecret, true, true, false, true),
            (RotateGatewaySecret, true, true, false, true),
            (GrantMember, true, true, false, false),
            (GrantAdmin, true, true, false, true),
            (GrantOwner, true, false, false, true),
            (ChangeMember, true, true, false, false),
            (ChangeOwner, true, false, false, false),
        ]
    };

    #[test]
    fn every_role_and_action_pair_matches_the_table() {
        assert_eq!(EXPECTED.len(), Action::ALL.len());
        for (i, (action, owner, admin, member, step_up)) in EXPECTED.into_iter().enumerate() {
            assert_eq!(Action::ALL[i], action, "ALL is in table order");
            for (role, allowed) in [
                (Role::Owner, owner),
                (Role::Admin, admin),
                (Role::Member, member),
            ] {
                assert_eq!(allows(role, action), allowed, "{role:?} x {action:?}");
                for open in [false, true] {
                    let expected = if !allowed {
                        Err(Denial::RoleRequired)
                    } else if step_up && !open {
                        Err(Denial::StepUpRequired)
                    } else {
                        Ok(())
                    };
                    assert_eq!(
                        decide(role, action, open),
                        expected,
                        "{role:?} x {action:?}, window open: {open}"
                    );
                }
            }
            assert_eq!(action.needs_step_up(), step_up, "{action:?}");
        }
    }

    #[test]
    fn members_never_create_rotate_revoke_delete_or_reveal() {
        for action in Action::ALL {
            let is_read = matches!(
                action,
                Action::ReadWorkspaces
                    | Action::ReadWorkspaceScopes
                    | Action::ReadApiKeys
                    | Action::ReadDashboard
            );
            assert_eq!(allows(Role::Member, action), is_read, "{action:?}");
            // An owner may do everything; an admin everything but touching owners.
            assert!(allows(Role::Owner, action));
            assert_eq!(
                allows(Role::Admin, action),
                !matches!(action, Action::GrantOwner | Action::ChangeOwner)
            );
        }
    }

    #[test]
    fn sdk_keys_need_the_matching_scope_and_never_reach_dashboard_actions() {
        for action in Action::ALL {
            match action.sdk_permission() {
                None => {
                    assert_eq!(
                        decide_sdk(SdkScopes::all(), action),
                        Err(Denial::DashboardOnly)
                    );
                    assert!(!matches!(
                        action,
                        Action::ReadWorkspaces | Action::ManageApiKeys | Action::ReadApiKeys
                    ));
                }
                Some(p) => {
                    assert_eq!(decide_sdk(SdkScopes::all(), action), Ok(()));
                    assert_eq!(decide_sdk(SdkScopes::empty().with(p), action), Ok(()));
                    let others = SdkScopes::all()
                        .iter()
                        .filter(|q| *q != p)
                        .fold(SdkScopes::empty(), SdkScopes::with);
                    assert_eq!(decide_sdk(others, action), Err(Denial::MissingScope(p)));
                    assert_eq!(Denial::MissingScope(p).reason(), "MISSING_SCOPE");
                }
            }
            // Nothing that needs a step-up is reachable with an SDK key.
            if action.needs_step_up() {
                assert_eq!(action.sdk_permission(), None, "{action:?}");
            }
        }
    }

    #[test]
    fn granting_and_changing_roles_map_to_their_actions() {
        assert_eq!(Action::grant(Role::Owner), Action::GrantOwner);
        assert_eq!(Action::grant(Role::Admin), Action::GrantAdmin);
        assert_eq!(Action::grant(Role::Member), Action::GrantMember);
        assert_eq!(Action::change(Role::Owner), Action::ChangeOwner);
        assert_eq!(Action::change(Role::Admin), Action::ChangeMember);
        assert_eq!(Action::change(Role::Member), Action::ChangeMember);
        use Action::*;
        assert_eq!(
            Action::role_change(Role::Member, Role::Admin),
            [ChangeMember, GrantAdmin]
        );
        assert_eq!(
            Action::role_change(Role::Admin, Role::Owner),
            [ChangeMember, GrantOwner]
        );
        assert_eq!(
            Action::role_change(Role::Owner, Role::Admin),
            [ChangeOwner, ChangeOwner]
        );
        assert_eq!(
            Action::role_change(Role::Admin, Role::Member),
            [ChangeMember, ChangeMember]
        );
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
            assert_eq!(Action::role_change(role, role)[1], Action::change(role));
        }
        assert_eq!(Role::parse("god"), None);
    }

    #[test]
    fn the_step_up_window_lasts_ten_minutes() {
        let now = 1_700_000_000_000;
        let until = step_up_until(now);
        assert_eq!(until - now, 600_000);
        assert!(step_up_open(Some(until), now));
        assert!(step_up_open(Some(until), until - 1));
        assert!(!step_up_open(Some(until), until));
        assert!(!step_up_open(None, now));
        assert_eq!(step_up_until(i64::MAX), i64::MAX);
        assert_eq!(Denial::StepUpRequired.reason(), "STEP_UP_REQUIRED");
        assert_eq!(Denial::RoleRequired.reason(), "ROLE_REQUIRED");
        assert_eq!(Denial::DashboardOnly.reason(), "DASHBOARD_ONLY");
    }
}
