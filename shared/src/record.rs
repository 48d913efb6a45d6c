//! Edge records: what the edge stores about one publishable key, keyed by its digest.
//!
//! The control plane writes one record per publishable key whenever anything the edge needs
//! changes, each with a `version` from a monotonic sequence (the outbox row's id). The edge
//! applies a record only if its version is newer than the one it holds ([`should_apply`]), so
//! retried, reordered or duplicated deliveries converge on the latest state.

use serde::{Deserialize, Serialize};

use crate::blacklist::{BlacklistPolicy, Rule};
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

/// One publishable key as the edge knows it. This is the JSON stored in KV.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EdgeRecord {
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
    /// Monotonic version; a record never replaces one with a higher version.
    pub version: u64,
}

impl EdgeRecord {
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

/// What the control plane sends to the edge's sync endpoint: records to store.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SyncBatch {
    /// Records, in outbox order.
    pub records: Vec<EdgeRecord>,
}

/// The edge's answer to a sync batch: how many records were applied and how many were
/// older than what it held (acknowledged, not applied).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncAck {
    /// Records stored.
    pub applied: u32,
    /// Records skipped because a newer version was already stored.
    pub skipped: u32,
}

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
#[serde(rename_all = "camelCase", deny_unknown_fields)]
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
        assert!(serde_json::from_str::<PullReply>(r#"{"record":null,"x":1}"#).is_err());
    }

    #[test]
    fn records_round_trip_json_and_refuse_unknown_fields() {
        let r = EdgeRecord {
            key_digest: crate::key::digest("pk_live_x"),
            workspace_id: "w1".into(),
            state: KeyState::Active,
            blacklist: vec![Rule::new("billing", "*").unwrap()],
            allowed_origins: vec!["https://a.example.com".into()],
            origin_url: Some("http://127.0.0.1:9000".into()),
            version: 7,
        };
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<EdgeRecord>(&json).unwrap(), r);
        let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
        v["extra"] = 1.into();
        assert!(serde_json::from_value::<EdgeRecord>(v).is_err());
    }
}
