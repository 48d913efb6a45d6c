//! keygate's control plane: the REST API (Oneloop-compatible backend API and the dashboard
//! API), email one-time passwords, the audit log, and the outbox that keeps the edge in sync.
//!
//! Every key and policy decision comes from `keygate-shared`; this crate is HTTP and storage
//! around it. Layout: [`config`] (settings), [`db`] (SQLite or PostgreSQL), [`error`] (the one
//! error type and its HTTP mapping), [`http`] (router and state), [`auth`] (who is calling),
//! then one module per resource.
#![forbid(unsafe_code)]

pub mod api;
pub mod auth;
pub mod config;
pub mod crypto;
pub mod dashboard;
pub mod error;
pub mod gateway_secrets;
pub mod http;
pub mod ids;
pub mod jobs;
pub mod mail;
pub mod master_key;
pub mod metrics;
pub mod openapi;
pub mod otp;
pub mod store;

pub mod server;
