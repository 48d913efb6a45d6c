//! The control plane's integration tests, one module per resource or concern, linked into one
//! test binary (one link of the whole crate instead of one per file; `cargo test -p
//! keygate-control --test http <module>` runs one module, e.g. `layering`).
//!
//! A new test file goes here as a module (`mod name;` below), not beside `common/`: each file
//! directly in `control/tests/` is a test binary of its own.

#[path = "../common/mod.rs"]
#[macro_use]
mod common;
mod keys_support;

mod api_keys;
mod edge_delivery;
mod garbage_in;
mod gateway;
mod layering;
mod link_tokens_and_billing;
mod master_key_rotation;
mod members_and_audit;
mod migrations;
mod openapi;
mod organisations;
mod otp_and_races;
mod portal;
mod publishable_keys;
mod retention;
mod roles;
mod sdk_keys;
mod security_headers;
mod sign_in;
mod smtp;
mod tenant_isolation;
mod tokens;
mod usage;
mod verify_exact;
mod workspaces;
