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
    /// Action labels and their canonical form (`None`: refused).
    #[serde(default)]
    pub labels: Vec<LabelVector>,
    /// Gateway `{rest}` paths and whether they are forwarded.
    #[serde(default)]
    pub rests: Vec<RestVector>,
    /// Origin URLs and whether the gateway may forward to them.
    #[serde(default)]
    pub forward_targets: Vec<ForwardTargetVector>,
    /// Gateway secrets sealed for the edge, and what they open to.
    #[serde(default)]
    pub sealed_secrets: Vec<SealedSecretVector>,
    /// Route maps and what requests classify to.
    #[serde(default)]
    pub routes: Vec<RouteVector>,
}

/// One route map and requests against it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteVector {
    /// The bindings.
    pub bindings: Vec<crate::route::RouteBinding>,
    /// `None` if the map compiles; else the [`crate::route::RouteError`] code.
    pub compile_error: Option<String>,
    /// Requests: method, path, and the outcome (`module/functionality`, `NOT_MAPPED`, or
    /// the path's [`crate::route::PathError`] code).
    pub cases: Vec<(String, String, String)>,
}

/// What a request classifies to under `map`, as [`RouteVector::cases`] spells it.
pub fn route_outcome(map: &crate::route::RouteMap, method: &str, path: &str) -> String {
    match crate::route::CanonicalPath::parse(path) {
        Err(e) => e.code().to_owned(),
        Ok(p) => map.classify(method, &p).map_or_else(
            || "NOT_MAPPED".to_owned(),
            |c| format!("{}/{}", c.module, c.functionality),
        ),
    }
}

/// One action label.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelVector {
    /// As sent.
    pub raw: String,
    /// Its canonical form, or `None` if refused.
    pub canonical: Option<String>,
}

/// One gateway `{rest}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestVector {
    /// The rest of the path.
    pub rest: String,
    /// `None` if forwarded; else the [`gateway::RestError`] code.
    pub error: Option<String>,
}

/// One origin URL as a forward target.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardTargetVector {
    /// The origin URL.
    pub url: String,
    /// `KEYGATE_ALLOW_PRIVATE_ORIGINS`.
    pub allow_private: bool,
    /// Whether the gateway may forward there.
    pub allowed: bool,
}

/// One sealed gateway secret.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealedSecretVector {
    /// The edge secret it was sealed with.
    pub edge_secret: String,
    /// The workspace it belongs to.
    pub workspace_id: String,
    /// As the record carries it.
    pub sealed: gateway::SealedGatewaySecret,
    /// What it opens to (`None`: must not open).
    pub secret: Option<String>,
    /// A request signed with it, by the edge's signer, at `sealed`'s time.
    pub path_and_query: String,
    /// Signing time.
    pub timestamp: u64,
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
    for l in &v.labels {
        let got = crate::action::canonical_label(&l.raw)
            .ok()
            .map(|c| c.into_owned());
        expect(
            got == l.canonical,
            format!("label {:?}: got {got:?}", l.raw),
        );
    }
    for r in &v.rests {
        let got = gateway::check_rest(&r.rest)
            .err()
            .map(|e| e.code().to_owned());
        expect(got == r.error, format!("rest {:?}: got {got:?}", r.rest));
    }
    for r in &v.routes {
        match crate::route::RouteMap::compile(&r.bindings) {
            Err(e) => expect(
                r.compile_error.as_deref() == Some(e.code),
                format!("route map {:?}: got {}", r.bindings, e.code),
            ),
            Ok(map) => {
                // One pass per vector (a map and all its requests), like every other kind.
                let wrong: Vec<String> = r
                    .cases
                    .iter()
                    .filter_map(|(method, path, outcome)| {
                        let got = route_outcome(&map, method, path);
                        (&got != outcome).then(|| format!("{method} {path}: got {got}"))
                    })
                    .collect();
                expect(
                    r.compile_error.is_none() && wrong.is_empty(),
                    format!("route map {:?}: compiled; {wrong:?}", r.bindings),
                );
            }
        }
    }
    for t in &v.forward_targets {
        let got = crate::origin::check_forward_target(&t.url, t.allow_private).is_ok();
        expect(
            got == t.allowed,
            format!("forward target {}: got {got}", t.url),
        );
    }
    for s in &v.sealed_secrets {
        let opened = gateway::open_at_edge(&[s.edge_secret.as_bytes()], &s.workspace_id, &s.sealed);
        let got = opened.as_ref().map(|g| g.expose().to_owned());
        let req = gateway::ForwardedRequest {
            method: "GET",
            path_and_query: &s.path_and_query,
            workspace_id: &s.workspace_id,
            module: "billing",
            functionality: "charge",
        };
        let signs = match (&opened, &s.secret) {
            (Some(g), Some(expected)) => {
                let origin = gateway::GatewaySecret::new(g.kid(), expected);
                let header = gateway::sign_with(std::slice::from_ref(g), s.timestamp, &req);
                origin.is_some_and(|o| gateway::verify_any(&[o], &header, &req, s.timestamp))
            }
            _ => true,
        };
        expect(
            got == s.secret && signs,
            format!("sealed secret {}: opened {}", s.sealed.kid, got.is_some()),
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
