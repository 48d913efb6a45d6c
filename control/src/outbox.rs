//! Moved to [`crate::store::outbox`]; re-exported here for the modules that still name
//! `crate::outbox` (remove once none does).

pub use crate::store::outbox::*;
