//! Conformance vectors: fixed inputs with the decisions keygate must make on them.
//!
//! `shared/testdata/vectors.json` holds keys, signatures, gateway signatures and check cases
//! with their expected outcomes. Native tests run them with [`run`]; the edge worker runs the
//! very same file inside workerd, so both targets are proven to decide identically.

use serde::{Deserialize, Serialize};

use crate::check::{check, CheckRequest};
use crate::record::EdgeRecord;
use crate::{gateway, key, signing};

/// The vectors file embedded at build time, for targets without a file system.
pub const VECTORS_JSON: &str = include_str!("../testdata/vectors.json");

/// The whole vectors file.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vectors {
    /// Key strings and what parsing them must give.
    pub keys: Vec<KeyVector>,
    /// Signed messages and whether they verify.
    pub signatures: Vec<SignatureVector>,
    /// Gateway signatures an origin must accept or refuse.
    pub gateway: Vec<GatewayVector>,
    /// Publishable-key checks and their statuses.
    pub checks: Vec<CheckVector>,
}

/// One key string.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyVector {
    /// The string.
    pub key: String,
    /// `None` if it must parse; else the error code.
    pub error: Option<String>,
    /// The kind, when it parses.
    pub kind: Option<key::KeyKind>,
    /// SHA-256 hex.
    pub digest: String,
    /// The display mask.
    pub mask: String,
}

/// One signed message.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureVector {
    /// `sync`, `pull` or `pull_reply`.
    pub purpose: String,
    /// The shared secret.
    pub secret: String,
    /// Claimed timestamp.
    pub timestamp: u64,
    /// Nonce.
    pub nonce: String,
    /// Body.
    pub body: String,
    /// Hex tag presented.
    pub tag: String,
    /// The receiver's clock.
    pub now: u64,
    /// `None` if it must verify; else the error code.
    pub error: Option<String>,
}

/// One gateway signature.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayVector {
    /// Edge secret.
    pub edge_secret: String,
    /// Workspace.
    pub workspace_id: String,
    /// The derived signing key (hex) expected.
    pub signing_key: String,
    /// Method.
    pub method: String,
    /// Path and query.
    pub path_and_query: String,
    /// Module.
    pub module: String,
    /// Functionality.
    pub functionality: String,
    /// Timestamp signed at.
    pub timestamp: u64,
    /// The header value expected.
    pub header: String,
}

/// One publishable-key check.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckVector {
    /// What the case is about.
    pub name: String,
    /// The key sent.
    pub key: String,
    /// Module.
    pub module: String,
    /// Functionality.
    pub functionality: String,
    /// Origin header.
    pub origin: Option<String>,
    /// What storage holds under the key's digest.
    pub record: Option<EdgeRecord>,
    /// The expected status wire name.
    pub status: String,
}

/// The outcome of running the vectors.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Vectors that gave the expected outcome.
    pub passed: usize,
    /// One line per vector that did not.
    pub failures: Vec<String>,
}

fn purpose(name: &str) -> Option<signing::Purpose> {
    match name {
        "sync" => Some(signing::Purpose::Sync),
        "pull" => Some(signing::Purpose::Pull),
        "pull_reply" => Some(signing::Purpose::PullReply),
        _ => None,
    }
}

/// Runs every vector of a vectors file; `Err` if the file does not parse.
pub fn run(json: &str) -> Result<Report, String> {
    let v: Vectors = serde_json::from_str(json).map_err(|e| format!("vectors file: {e}"))?;
    let mut report = Report::default();
    let mut expect = |ok: bool, what: String| {
        if ok {
            report.passed += 1;
        } else {
            report.failures.push(what);
        }
    };
    for k in &v.keys {
        let parsed = key::parse(&k.key);
        let error = parsed.as_ref().err().map(|e| e.code().to_owned());
        let kind = parsed.as_ref().ok().map(|p| p.kind());
        let digest = key::digest(&k.key).to_hex();
        let mask = key::mask(&k.key);
        expect(
            error == k.error && kind == k.kind && digest == k.digest && mask == k.mask,
            format!("key {}: got {error:?} {kind:?} {digest} {mask}", k.mask),
        );
    }
    for s in &v.signatures {
        let Some(p) = purpose(&s.purpose) else {
            expect(false, format!("signature: unknown purpose {}", s.purpose));
            continue;
        };
        let got = signing::verify(
            s.secret.as_bytes(),
            p,
            s.timestamp,
            &s.nonce,
            s.body.as_bytes(),
            &s.tag,
            s.now,
        )
        .err()
        .map(|e| e.code().to_owned());
        expect(
            got == s.error,
            format!("signature {}: got {got:?}", s.nonce),
        );
    }
    for g in &v.gateway {
        let key = gateway::workspace_signing_key(g.edge_secret.as_bytes(), &g.workspace_id);
        let req = gateway::ForwardedRequest {
            method: &g.method,
            path_and_query: &g.path_and_query,
            workspace_id: &g.workspace_id,
            module: &g.module,
            functionality: &g.functionality,
        };
        let header = gateway::sign(&key, g.timestamp, &req);
        expect(
            key == g.signing_key
                && header == g.header
                && gateway::verify(&key, &header, &req, g.timestamp),
            format!("gateway {}: got {header}", g.path_and_query),
        );
    }
    for c in &v.checks {
        let compiled = c.record.clone().map(EdgeRecord::compile);
        let req = CheckRequest {
            key: &c.key,
            module: &c.module,
            functionality: &c.functionality,
            origin: c.origin.as_deref(),
        };
        let got = check(&req, compiled.as_ref()).status;
        expect(
            got.as_str() == c.status,
            format!("check `{}`: got {got}", c.name),
        );
    }
    Ok(report)
}
