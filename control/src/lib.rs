//! keygate's control plane: the REST API (Oneloop-compatible backend API and the dashboard
//! API), email one-time passwords, the audit log, and the outbox that keeps the edge in sync.
//!
//! Every key and policy decision comes from `keygate-shared`; this crate is HTTP and storage
//! around it, in three layers: [`http`] (router, state, who is calling, one module per
//! resource), [`api`] (the contract types), [`store`] (SQLite or PostgreSQL storage, one module
//! per aggregate); then [`jobs`] (background work), [`config`] (settings) and [`error`] (the one
//! error type and its HTTP mapping).
#![forbid(unsafe_code)]

pub mod api;
pub mod config;
pub mod crypto;
pub mod error;
pub mod gateway_secrets;
pub mod http;
pub mod ids;
pub mod jobs;
pub mod mail;
pub mod master_key;
pub mod metrics;
pub mod openapi;
pub mod store;

/// The dashboard's static assets, at the path tests name them by.
pub use http::dashboard;

pub mod server;
