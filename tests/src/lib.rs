//! End-to-end tests of the real control plane and the real worker together.

pub mod control;
pub mod edge;
pub mod system;
