//! # keygate-shared
//!
//! Every decision keygate makes, in one crate with no I/O and no async runtime, so the control
//! plane (native) and the edge worker (`wasm32-unknown-unknown`) can never disagree:
//!
//! - [`key`]: minting, parsing (shape + checksum, no lookup), digests, masks;
//! - [`scope`]: SDK-key scopes and Oneloop-style API-key scopes;
//! - [`action`]: the canonical spelling of (module, functionality) that decisions use;
//! - [`blacklist`] and [`origin`]: what a publishable key may call, and from where, and
//!   which origin URLs the gateway may forward to;
//! - [`route`]: the gateway route map (method + path -> action);
//! - [`record`]: what the edge stores per publishable key, and the sync batch carrying it;
//! - [`clock`]: record versions from a hybrid logical clock that never goes backwards;
//! - [`check`]: the publishable-key verdict; [`verdict`]: statuses and their HTTP mapping;
//! - [`api_key`]: the verify decision for customer API keys;
//! - [`signing`] and [`gateway`]: HMAC-signed messages between the parts and to origins;
//! - [`otp`]: one-time passwords; [`conformance`]: the shared test vectors;
//! - [`portal`]: what a customer may do in the self-serve portal (policy, ownership, framing);
//! - [`authz`]: who may do what (role x action), step-up, SDK-key scope gating.
//!
//! ```
//! use keygate_shared::check::{check, CheckRequest};
//! use keygate_shared::key::{Environment, KeyKind, SecretKey};
//! use keygate_shared::record::{EdgeRecord, KeyState};
//! use keygate_shared::blacklist::Rule;
//!
//! let key = SecretKey::generate(KeyKind::Publishable, Environment::Live);
//! let record = EdgeRecord {
//!     blacklist: vec![Rule::new("billing", "refund").unwrap()],
//!     ..EdgeRecord::new(key.digest(), "ws_1".into(), KeyState::Active, 1)
//! }
//! .compile();
//! let req = |f| CheckRequest { key: key.expose(), module: "billing", functionality: f, origin: None };
//! assert_eq!(check(&req("charge"), Some(&record)).status.as_str(), "VALID");
//! assert_eq!(check(&req("refund"), Some(&record)).status.as_str(), "BLACKLISTED");
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod action;
pub mod api_key;
pub mod authz;
mod base62;
pub mod blacklist;
pub mod check;
pub mod clock;
pub mod conformance;
pub mod gateway;
pub mod key;
pub mod link_token;
pub mod origin;
pub mod otp;
pub mod portal;
pub mod random;
pub mod record;
pub mod route;
pub mod scope;
pub mod signing;
pub mod verdict;
