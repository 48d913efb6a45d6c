//! The schema's named constraints, and which one a failed write broke.
//!
//! PostgreSQL reports the constraint's name; SQLite reports only the columns of a UNIQUE
//! (`UNIQUE constraint failed: workspace_scopes.workspace_id, workspace_scopes.representation`)
//! or the name of a CHECK. Each [`Constraint`] names both, so storage code matches a violation
//! by name the same way on either database:
//!
//! ```ignore
//! .execute(&mut *tx).await
//! .map_err(SCOPE_REPRESENTATION.conflict("SCOPE_EXISTS", "this workspace already has ..."))?;
//! ```
//!
//! ([`violated`] itself, where a violation means something other than a plain conflict.)
//!
//! `control/tests/http/migrations.rs` checks that every constraint listed in [`ALL`] exists on
//! both databases.

use crate::store::StoreError;

/// A constraint both migrations define.
#[derive(Debug, PartialEq, Eq)]
pub struct Constraint {
    /// Its name on PostgreSQL (a constraint or a unique index).
    pub name: &'static str,
    /// The table it guards.
    pub table: &'static str,
    /// For a UNIQUE: the columns, as SQLite lists them in its message. Empty for a CHECK,
    /// which SQLite reports by name.
    pub columns: &'static [&'static str],
}

impl Constraint {
    /// For `.map_err(..)` on a write this constraint guards: its violation becomes
    /// `409 reason` with `message`; any other error stays a database error.
    pub fn conflict(
        &'static self,
        reason: &'static str,
        message: &'static str,
    ) -> impl Fn(sqlx::Error) -> StoreError {
        move |e| match violated(&e) {
            Some(c) if c == self => StoreError::Conflict {
                reason,
                message: message.into(),
            },
            _ => e.into(),
        }
    }
}

/// A workspace's scope representations are unique.
pub const SCOPE_REPRESENTATION: Constraint = Constraint {
    name: "workspace_scopes_unique_representation",
    table: "workspace_scopes",
    columns: &["workspace_id", "representation"],
};

/// A workspace has at most one live publishable key (a partial unique index).
pub const ONE_LIVE_PUBLISHABLE_KEY: Constraint = Constraint {
    name: "publishable_keys_one_live",
    table: "publishable_keys",
    columns: &["workspace_id"],
};

/// A workspace blacklists a (module, functionality) once.
pub const BLACKLIST_RULE_UNIQUE: Constraint = Constraint {
    name: "blacklist_rules_workspace_id_module_functionality_key",
    table: "blacklist_rules",
    columns: &["workspace_id", "module", "functionality"],
};

/// A workspace has at most one current gateway secret (a partial unique index).
pub const ONE_CURRENT_GATEWAY_SECRET: Constraint = Constraint {
    name: "gateway_secrets_one_current",
    table: "gateway_secrets",
    columns: &["workspace_id"],
};

/// A workspace has at most one live SDK access key.
pub const SDK_ONE_ACCESS_KEY: Constraint = Constraint {
    name: "sdk_keys_one_access_key",
    table: "sdk_keys",
    columns: &["workspace_id"],
};

/// An address is a member of an organisation at most once.
pub const USER_MEMBERSHIP: Constraint = Constraint {
    name: "users_one_membership",
    table: "users",
    columns: &["org_id", "email"],
};

/// Every constraint storage code matches on. Add new ones here (the migration test reads it).
pub const ALL: &[&Constraint] = &[
    &SCOPE_REPRESENTATION,
    &ONE_LIVE_PUBLISHABLE_KEY,
    &BLACKLIST_RULE_UNIQUE,
    &ONE_CURRENT_GATEWAY_SECRET,
    &SDK_ONE_ACCESS_KEY,
    &USER_MEMBERSHIP,
];

/// Whether `e` is a foreign-key violation: the row referred to (a workspace, say) was
/// deleted in between.
pub fn is_missing_parent(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_foreign_key_violation())
}

/// The constraint `e` violated, if it is a constraint violation of one listed in [`ALL`].
pub fn violated(e: &sqlx::Error) -> Option<&'static Constraint> {
    let sqlx::Error::Database(db) = e else {
        return None;
    };
    if let Some(name) = db.constraint() {
        return ALL.iter().copied().find(|c| c.name == name);
    }
    // SQLite: "UNIQUE constraint failed: t.a, t.b" or "CHECK constraint failed: name".
    let message = db.message();
    if let Some(cols) = message.strip_prefix("UNIQUE constraint failed: ") {
        let cols: Vec<&str> = cols.split(", ").collect();
        return ALL.iter().copied().find(|c| {
            c.columns.len() == cols.len()
                && c.columns
                    .iter()
                    .zip(&cols)
                    .all(|(col, got)| *got == format!("{}.{col}", c.table))
        });
    }
    if let Some(name) = message.strip_prefix("CHECK constraint failed: ") {
        return ALL.iter().copied().find(|c| c.name == name.trim());
    }
    None
}
