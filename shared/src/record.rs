//! Edge records: what the edge stores about one publishable key, keyed by its digest.
//!
//! The control plane writes one record per publishable key whenever anything the edge needs
//! changes, each with a `version` from a monotonic sequence (the outbox row's id). The edge
//! applies a record only if its version is newer than the one it holds ([`should_apply`]), so
//! retried, reordered or duplicated deliveries converge on the latest state.
//!
//! ## Format evolution
//!
//! Every record names its [`EdgeRecord::format`]. Adding a field is **not** a format change:
//! new fields are optional (`#[serde(default)]`) and the edge ignores fields it does not know,
//! so a worker can always be deployed before the control plane that starts sending them.
//! Only a change an older edge would misread (a field whose meaning changes, a field an older
//! edge must not ignore) bumps [`FORMAT_VERSION`]; an edge refuses records whose format is
//! newer than the one it speaks ([`EdgeRecord::format_supported`]) instead of guessing.

use serde::{Deserialize, Serialize};

use crate::blacklist::{BlacklistPolicy, Rule};
use crate::gateway::SealedGatewaySecret;
use crate::key::KeyDigest;
use crate::origin::OriginPolicy;

/// Whether a publishable key is in service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    /// In service.
    Active,
    /// Replaced by a newer key; refused with `REVOKED`.
    Revoked,
}

/// The record format this crate writes and the newest it reads (see the module docs).
pub const FORMAT_VERSION: u16 = 1;

fn format_default() -> u16 {
    1
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// One publishable key as the edge knows it. This is the JSON stored in KV.
///
/// Unknown fields are ignored when reading, so newer control planes may add fields that this
/// edge does not know yet. Build one with [`EdgeRecord::new`] and set the optional fields, so
/// that adding a field does not change every caller.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EdgeRecord {
    /// Format of this record ([`FORMAT_VERSION`] when written by this crate; records written
    /// before formats were named read as `1`).
    #[serde(default = "format_default")]
    pub format: u16,
    /// SHA-256 of the key: the KV key and the lookup handle.
    pub key_digest: KeyDigest,
    /// The workspace that owns the key.
    pub workspace_id: String,
    /// In service or revoked.
    pub state: KeyState,
    /// Blocked (module, functionality) pairs.
    #[serde(default)]
    pub blacklist: Vec<Rule>,
    /// Browser origins allowed to use the key (empty: any).
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Where gateway requests are forwarded, if anywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin_url: Option<String>,
    /// Whether the gateway passes `Cookie` to the origin and `Set-Cookie` back (default: no;
    /// every workspace shares the edge's host).
    #[serde(default, skip_serializing_if = "is_false")]
    pub forward_cookies: bool,
    /// The workspace's live gateway signing secrets, sealed for the edge, newest first
    /// (empty: sign with the key derived from the edge secret, as before these existed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateway_secrets: Vec<SealedGatewaySecret>,
    /// Monotonic version; a record never replaces one with a higher version.
    pub version: u64,
}

impl EdgeRecord {
    /// An unrestricted record in the current format: no blacklist, any origin, no origin URL,
    /// no cookies forwarded, no gateway secrets of its own.
    pub fn new(key_digest: KeyDigest, workspace_id: String, state: KeyState, version: u64) -> Self {
        EdgeRecord {
            format: FORMAT_VERSION,
            key_digest,
            workspace_id,
            state,
            blacklist: Vec::new(),
            allowed_origins: Vec::new(),
            origin_url: None,
            forward_cookies: false,
            gateway_secrets: Vec::new(),
            version,
        }
    }

    /// Whether this edge understands the record's format (it is not newer than
    /// [`FORMAT_VERSION`]). A record in an unknown format must be refused, not guessed at.
    pub fn format_supported(&self) -> bool {
        (1..=FORMAT_VERSION).contains(&self.format)
    }

    /// Compiles the record's policies for fast checks.
    pub fn compile(self) -> CompiledRecord {
        CompiledRecord {
            blacklist: BlacklistPolicy::compile(&self.blacklist),
            origins: OriginPolicy::compile(&self.allowed_origins),
            record: self,
        }
    }
}

/// A record with its blacklist and origins compiled; what [`crate::check::check`] takes and
/// what the edge keeps in its isolate cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompiledRecord {
    /// The record as stored.
    pub record: EdgeRecord,
    /// Its blacklist, compiled.
    pub blacklist: BlacklistPolicy,
    /// Its allowed origins, compiled.
    pub origins: OriginPolicy,
}

/// Whether an incoming record version should replace the stored one (`None`: nothing stored).
pub fn should_apply(stored: Option<u64>, incoming: u64) -> bool {
    stored.is_none_or(|v| incoming > v)
}

/// What the control plane sends to the edge's sync endpoint: records to store. Unknown
/// fields are ignored, as in [`EdgeRecord`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncBatch {
    /// Records, in outbox order.
    pub records: Vec<EdgeRecord>,
}

/// The edge's answer to a sync batch: how many records were applied, how many were older
/// than what it held (acknowledged, not applied), and which it refused (acknowledged, not
/// applied, and never worth resending as they are).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncAck {
    /// Records stored.
    pub applied: u32,
    /// Records skipped because a newer version was already stored.
    pub skipped: u32,
    /// Records this edge cannot apply (for instance a format newer than it speaks); the
    /// sender sets them aside instead of retrying the batch.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<RefusedRecord>,
}

/// One record the edge refused in a sync batch, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefusedRecord {
    /// The record's key digest.
    pub key_digest: KeyDigest,
    /// The record's version.
    pub version: u64,
    /// A stable machine-readable reason, e.g. [`REFUSED_UNSUPPORTED_FORMAT`].
    pub reason: String,
}

/// [`RefusedRecord::reason`] for a record whose [`EdgeRecord::format`] the edge does not speak.
pub const REFUSED_UNSUPPORTED_FORMAT: &str = "UNSUPPORTED_RECORD_FORMAT";

/// Path of the edge's sync endpoint.
///
/// The control plane `POST`s a [`SyncBatch`] (JSON) there, signed with
/// [`crate::signing::Purpose::Sync`] over the exact body bytes, the signature in the
/// [`crate::signing::HEADER_TIMESTAMP`], [`crate::signing::HEADER_NONCE`] and
/// [`crate::signing::HEADER_SIGNATURE`] headers. Every delivery attempt needs a fresh nonce and
/// timestamp: the edge refuses a nonce it has seen in the last
/// [`crate::signing::NONCE_TTL_SECS`]. A `200` answer carries a [`SyncAck`]; anything else
/// means nothing is acknowledged and the batch must be retried (applying is idempotent).
pub const SYNC_PATH: &str = "/__keygate/sync";

/// Prefix of the control plane's pull endpoint; [`pull_path`] appends the digest.
pub const PULL_PATH_PREFIX: &str = "/api/v1/edge/records/";

/// The path the edge `GET`s from the control plane when it holds no record for a key:
/// `/api/v1/edge/records/<64 hex digest>`.
///
/// The request is signed with [`crate::signing::Purpose::Pull`] over this path (as bytes, no
/// host, no query) in the three signing headers. The control plane answers `200` with a
/// [`PullReply`] body signed with [`crate::signing::Purpose::PullReply`] over the exact body
/// bytes, with its own timestamp and **the request's nonce echoed** in the nonce header, so a
/// reply cannot be replayed for another request.
pub fn pull_path(digest: &KeyDigest) -> String {
    format!("{PULL_PATH_PREFIX}{}", digest.to_hex())
}

/// The control plane's answer to a pull: the key's current record, or `null` when it knows
/// no publishable key with that digest. `{"record": {...}}` or `{"record": null}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PullReply {
    /// The record, if the key exists (active or revoked).
    pub record: Option<EdgeRecord>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_newer_versions_apply() {
        assert!(should_apply(None, 1));
        assert!(should_apply(Some(1), 2));
        assert!(!should_apply(Some(2), 2));
        assert!(!should_apply(Some(3), 2));
    }

    #[test]
    fn pull_paths_and_replies_have_the_documented_shape() {
        let d = crate::key::digest("pk_live_x");
        assert_eq!(
            pull_path(&d),
            format!("/api/v1/edge/records/{}", d.to_hex())
        );
        assert_eq!(
            serde_json::to_string(&PullReply { record: None }).unwrap(),
            r#"{"record":null}"#
        );
        // A newer control plane may add fields; this edge ignores them.
        assert_eq!(
            serde_json::from_str::<PullReply>(r#"{"record":null,"x":1}"#).unwrap(),
            PullReply { record: None }
        );
    }

    fn sample() -> EdgeRecord {
        let mut r = EdgeRecord::new(
            crate::key::digest("pk_live_x"),
            "w1".into(),
            KeyState::Active,
            7,
        );
        r.blacklist = vec![Rule::new("billing", "*").unwrap()];
        r.allowed_origins = vec!["https://a.example.com".into()];
        r.origin_url = Some("http://127.0.0.1:9000".into());
        r
    }

    #[test]
    fn records_round_trip_json_and_ignore_unknown_fields() {
        let r = sample();
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains(r#""format":1"#), "{json}");
        assert_eq!(serde_json::from_str::<EdgeRecord>(&json).unwrap(), r);
        let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
        v["aFieldFromTheFuture"] = serde_json::json!({"nested": [1, 2]});
        assert_eq!(serde_json::from_value::<EdgeRecord>(v.clone()).unwrap(), r);
        let batch = serde_json::json!({"records": [v], "batchFieldFromTheFuture": true});
        assert_eq!(
            serde_json::from_value::<SyncBatch>(batch).unwrap().records,
            vec![r]
        );
    }

    #[test]
    fn records_without_a_format_read_as_format_one_and_newer_formats_are_unsupported() {
        let mut v = serde_json::to_value(sample()).unwrap();
        v.as_object_mut().unwrap().remove("format");
        let legacy: EdgeRecord = serde_json::from_value(v).unwrap();
        assert_eq!(legacy.format, 1);
        assert!(legacy.format_supported());
        let mut future = sample();
        future.format = FORMAT_VERSION + 1;
        assert!(!future.format_supported());
        future.format = 0;
        assert!(!future.format_supported());
    }
}
