//! The worker and the control plane wired to each other over loopback: the worker pulls from
//! the control plane's port, the control plane delivers to the worker (ports chosen before
//! either starts).

use crate::control::{free_port, ControlOptions, Keygate};
use crate::edge::{Edge, EdgeOptions};

/// A worker with `secret` that pulls misses from a control plane on `control_port`.
pub fn edge_pulling_from(secret: &str, control_port: u16) -> Edge {
    Edge::start(EdgeOptions {
        secret: secret.into(),
        control_url: Some(format!("http://127.0.0.1:{control_port}")),
        ..EdgeOptions::default()
    })
}

/// A control plane on `port` with `secret`, delivering to `edge_url`.
pub fn control_delivering_to(secret: &str, port: u16, edge_url: &str) -> Keygate {
    Keygate::start(ControlOptions {
        port: Some(port),
        edge_url: Some(edge_url.to_owned()),
        edge_secret: Some(secret.into()),
        ..ControlOptions::default()
    })
}

/// A worker and a control plane sharing `secret`, each talking to the other.
pub fn wired(secret: &str) -> (Edge, Keygate) {
    let control_port = free_port();
    let edge = edge_pulling_from(secret, control_port);
    let control = control_delivering_to(secret, control_port, &edge.url);
    (edge, control)
}
