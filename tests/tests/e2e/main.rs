//! The end-to-end tests (the real `keygate` binary, the real worker under workerd, Chromium),
//! one module per concern, in one test binary so that they share the machine's threads
//! (`cargo test -p keygate-tests --test e2e <module>` runs one module, e.g. `dashboard`).
//! The edge load benchmark (`edge_bench.rs`) stays a binary of its own.

mod browser;
mod dashboard;
mod delivery_faults;
mod edge_refresh_ahead;
mod edge_secret_rotation;
mod edge_trap;
mod edge_worker;
mod gateway_security;
mod locations;
mod oneloop_client;
mod portal;
mod route_map;
mod schemathesis;
mod system;
