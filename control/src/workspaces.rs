//! Where other modules used to find workspace helpers; the code now lives in
//! [`crate::http::workspaces`] (handlers), [`crate::store::workspaces`] (storage) and
//! [`crate::api::workspaces`] (the contract). Remove once no caller uses these paths.

pub use crate::http::validate::name as validate_name;
pub use crate::http::workspaces::find_workspace;
pub use crate::store::workspaces::WorkspaceRow;
