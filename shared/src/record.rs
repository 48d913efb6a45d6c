//! Edge records: what the edge stores about one publishable key, keyed by its digest.
//!
//! The control plane writes one record per publishable key whenever anything the edge needs
//! changes, each with a `version` from a hybrid logical clock ([`crate::clock`]) that never
//! goes backwards, not even across database restores. The edge applies a record only if it is
//! newer than the one it holds, and never turns a revoked key active again ([`should_apply`]),
//! so retried, reordered or duplicated deliveries converge on the latest state.
//!
//! ## Size limits
//!
//! A record is at most [`MAX_RECORD_BYTES`] of JSON and [`MAX_BLACKLIST_RULES`] rules
//! ([`EdgeRecord::check_limits`]); the control plane refuses a change that would exceed them
//! with a 4xx. Sync batches are cut at [`MAX_BATCH_BYTES`] and [`MAX_BATCH_RECORDS`]
//! ([`batch_len`]), so even a batch of the largest records stays far below the edge's limits
//! ([`EDGE_MAX_SYNC_BODY`], [`EDGE_MAX_SYNC_RECORDS`]).
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
use crate::route::{RouteBinding, RoutePolicy};

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
    /// The workspace's route map (empty: none); see [`crate::route`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RouteBinding>,
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
            routes: Vec::new(),
            version,
        }
    }

    /// Whether this edge understands the record's format (it is not newer than
    /// [`FORMAT_VERSION`]). A record in an unknown format must be refused, not guessed at.
    pub fn format_supported(&self) -> bool {
        (1..=FORMAT_VERSION).contains(&self.format)
    }

    /// The record's size as the edge receives it: its JSON, in bytes.
    pub fn encoded_len(&self) -> usize {
        serde_json::to_vec(self).map_or(usize::MAX, |v| v.len())
    }

    /// Whether the record is within [`MAX_BLACKLIST_RULES`] and [`MAX_RECORD_BYTES`].
    pub fn check_limits(&self) -> Result<(), RecordLimit> {
        if self.blacklist.len() > MAX_BLACKLIST_RULES {
            return Err(RecordLimit::TooManyRules(self.blacklist.len()));
        }
        match self.encoded_len() {
            n if n > MAX_RECORD_BYTES => Err(RecordLimit::TooLarge(n)),
            _ => Ok(()),
        }
    }

    /// Whether a record the edge refused may be set aside as a dead letter. A revocation never
    /// is (revoked is terminal and must arrive): it is retried with backoff instead, without
    /// holding up any other key.
    pub fn may_dead_letter(&self) -> bool {
        self.state != KeyState::Revoked
    }

    /// Compiles the record's policies for fast checks.
    pub fn compile(self) -> CompiledRecord {
        CompiledRecord {
            blacklist: BlacklistPolicy::compile(&self.blacklist),
            origins: OriginPolicy::compile(&self.allowed_origins),
            routes: RoutePolicy::compile(&self.routes),
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
    /// Its route map, compiled.
    pub routes: RoutePolicy,
}

/// Whether an incoming record should replace the stored one (`None`: nothing stored), given
/// each one's version and state.
///
/// The rules, in order:
/// - nothing stored: apply;
/// - **revoked is terminal**: once a digest is stored as revoked, nothing makes it active
///   again, whatever the incoming version; a newer revoked record still replaces an older one
///   (versions stay monotonic);
/// - a revocation of an active key always applies, even with a lower version: a key never
///   comes back from revocation, so a revoked record cannot be out of date, and a control plane
///   whose versions went backwards (restored database, fresh control plane) can still revoke;
/// - otherwise only a strictly newer version applies, so retried, reordered or duplicated
///   deliveries converge on the latest state.
///
/// The edge asks this for every pushed record (sync), for every change it learns from the
/// global change log, and when it merges what KV holds with what it learned.
pub fn should_apply(stored: Option<(u64, KeyState)>, incoming: (u64, KeyState)) -> bool {
    let Some((stored_version, stored_state)) = stored else {
        return true;
    };
    let (incoming_version, incoming_state) = incoming;
    match (stored_state, incoming_state) {
        (KeyState::Revoked, KeyState::Active) => false,
        (KeyState::Active, KeyState::Revoked) => true,
        _ => incoming_version > stored_version,
    }
}

impl EdgeRecord {
    /// This record's `(version, state)`, what [`should_apply`] compares.
    pub fn precedence(&self) -> (u64, KeyState) {
        (self.version, self.state)
    }
}

/// Most blacklist rules one publishable key may carry.
pub const MAX_BLACKLIST_RULES: usize = 1_000;

/// Largest record, in bytes of JSON. 1,000 rules of two 64-character names are about 160 KB;
/// 50 allowed origins and an origin URL add at most about 16 KB.
pub const MAX_RECORD_BYTES: usize = 192 * 1024;

/// Largest sync batch the control plane sends, in bytes of JSON (a batch always carries at
/// least one record, and a record is at most [`MAX_RECORD_BYTES`]).
pub const MAX_BATCH_BYTES: usize = 512 * 1024;

/// Most records in one sync batch the control plane sends.
pub const MAX_BATCH_RECORDS: usize = 100;

/// The edge's limit on a sync request body: larger pushes are refused with `413`.
pub const EDGE_MAX_SYNC_BODY: usize = 1024 * 1024;

/// The edge's limit on records per sync request.
pub const EDGE_MAX_SYNC_RECORDS: usize = 1_000;

/// A record over a size limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordLimit {
    /// More than [`MAX_BLACKLIST_RULES`] rules (how many).
    TooManyRules(usize),
    /// More than [`MAX_RECORD_BYTES`] bytes of JSON (how many).
    TooLarge(usize),
}

impl RecordLimit {
    /// A stable machine-readable reason for the API's error body.
    pub fn reason(&self) -> &'static str {
        match self {
            RecordLimit::TooManyRules(_) => "BLACKLIST_TOO_LARGE",
            RecordLimit::TooLarge(_) => "EDGE_RECORD_TOO_LARGE",
        }
    }
}

impl core::fmt::Display for RecordLimit {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RecordLimit::TooManyRules(n) => write!(
                f,
                "a publishable key carries at most {MAX_BLACKLIST_RULES} blacklist rules (this change makes {n})"
            ),
            RecordLimit::TooLarge(n) => write!(
                f,
                "a publishable key's edge record is at most {MAX_RECORD_BYTES} bytes (this change makes {n}); remove rules or origins"
            ),
        }
    }
}

/// How many of the records whose JSON sizes are `sizes` (in delivery order) go into the next
/// batch: as many as fit in [`MAX_BATCH_BYTES`] and [`MAX_BATCH_RECORDS`], and always at
/// least one (an oversized single record is sent alone, and refused alone).
pub fn batch_len(sizes: &[usize]) -> usize {
    // `{"records":[` + `]}` and a comma between records.
    let mut total = 14usize;
    let mut n = 0;
    for size in sizes.iter().take(MAX_BATCH_RECORDS) {
        let next = total
            .saturating_add(*size)
            .saturating_add(usize::from(n > 0));
        if n > 0 && next > MAX_BATCH_BYTES {
            break;
        }
        total = next;
        n += 1;
    }
    n
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
    /// Among the skipped records, those for which the edge holds a strictly **newer** version
    /// than the one sent, with that version. The sender's clock is behind (a restored or fresh
    /// database): it catches up past these versions ([`crate::clock::catch_up`]) and re-issues
    /// the keys. Absent from edges that predate it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held_newer: Vec<HeldRecord>,
}

/// A key for which the edge holds a newer version than the one it was sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeldRecord {
    /// The record's key digest.
    pub key_digest: KeyDigest,
    /// The version the edge holds.
    pub version: u64,
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

    use proptest::prelude::*;

    const A: KeyState = KeyState::Active;
    const R: KeyState = KeyState::Revoked;

    #[test]
    fn only_newer_versions_apply_between_active_records() {
        assert!(should_apply(None, (1, A)));
        assert!(should_apply(Some((1, A)), (2, A)));
        assert!(!should_apply(Some((2, A)), (2, A)));
        assert!(!should_apply(Some((3, A)), (2, A)));
    }

    #[test]
    fn revoked_is_terminal_and_a_revocation_always_lands() {
        assert!(should_apply(None, (1, R)));
        // Nothing brings a revoked key back, not even a much newer active record.
        assert!(!should_apply(Some((5, R)), (6, A)));
        assert!(!should_apply(Some((5, R)), (u64::MAX, A)));
        // A revocation lands on an active key whatever its version (versions went backwards).
        assert!(should_apply(Some((9, A)), (3, R)));
        assert!(should_apply(Some((9, A)), (9, R)));
        // Between revoked records, versions still only move forward.
        assert!(should_apply(Some((5, R)), (6, R)));
        assert!(!should_apply(Some((5, R)), (5, R)));
        assert!(!should_apply(Some((5, R)), (4, R)));
    }

    fn state() -> impl Strategy<Value = KeyState> {
        prop_oneof![Just(A), Just(R)]
    }

    proptest! {
        /// Whatever records arrive, in whatever order, once a revoked one was applied the
        /// stored state stays revoked; and the stored version never decreases except when a
        /// revocation lands on an active key.
        #[test]
        fn applying_any_sequence_never_unrevokes(
            seq in proptest::collection::vec((0u64..20, state()), 1..40)
        ) {
            let mut stored: Option<(u64, KeyState)> = None;
            let mut seen_revoked = false;
            for incoming in seq {
                let before = stored;
                if should_apply(stored, incoming) {
                    stored = Some(incoming);
                }
                seen_revoked |= incoming.1 == R;
                if seen_revoked {
                    prop_assert_eq!(stored.map(|s| s.1), Some(R));
                }
                if let (Some(b), Some(a)) = (before, stored) {
                    if !(b.1 == A && a.1 == R) {
                        prop_assert!(a.0 >= b.0, "version went back from {:?} to {:?}", b, a);
                    }
                }
            }
        }

        /// The outcome does not depend on delivery order: any permutation of the same records
        /// ends in the same state (the set's newest revoked record if any is revoked, else its
        /// newest active record).
        #[test]
        fn the_final_state_does_not_depend_on_delivery_order(
            seq in proptest::collection::vec((0u64..20, state()), 1..12),
            seed in any::<u64>()
        ) {
            let apply_all = |records: &[(u64, KeyState)]| {
                records.iter().fold(None, |stored, &r| {
                    if should_apply(stored, r) { Some(r) } else { stored }
                })
            };
            let mut shuffled = seq.clone();
            let mut x = seed | 1;
            for i in (1..shuffled.len()).rev() {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                shuffled.swap(i, (x % (i as u64 + 1)) as usize);
            }
            let expected = seq.iter().filter(|r| r.1 == R).map(|r| r.0).max()
                .map(|v| (v, R))
                .or_else(|| seq.iter().map(|r| r.0).max().map(|v| (v, A)));
            prop_assert_eq!(apply_all(&seq), expected);
            prop_assert_eq!(apply_all(&shuffled), expected);
        }
    }

    #[test]
    fn limits_are_far_below_the_edge_and_fit_the_largest_catalogue() {
        const { assert!(MAX_BATCH_BYTES <= EDGE_MAX_SYNC_BODY / 2) };
        const { assert!(MAX_RECORD_BYTES <= MAX_BATCH_BYTES / 2) };
        const { assert!(MAX_BATCH_RECORDS <= EDGE_MAX_SYNC_RECORDS / 10) };
        // The worst allowed record: every rule with two 64-character names, 50 origins of the
        // longest form, a 2 KB origin URL.
        let name = |i: usize| format!("{i:0>64}");
        let r = EdgeRecord {
            blacklist: (0..MAX_BLACKLIST_RULES)
                .map(|i| Rule::new(&name(i), &name(i + 1)).unwrap())
                .collect(),
            allowed_origins: (0..50)
                .map(|i| format!("https://{}.example.com", "a".repeat(240 + i % 10)))
                .collect(),
            origin_url: Some(format!("https://example.com/{}", "p".repeat(2000))),
            ..sample()
        };
        assert_eq!(r.check_limits(), Ok(()), "{} bytes", r.encoded_len());
        assert!(
            r.encoded_len() > MAX_RECORD_BYTES * 3 / 4,
            "the limit is not loose"
        );
        let too_many = EdgeRecord {
            blacklist: (0..=MAX_BLACKLIST_RULES)
                .map(|i| Rule::new("m", &format!("f{i}")).unwrap())
                .collect(),
            ..sample()
        };
        let err = too_many.check_limits().unwrap_err();
        assert_eq!(err, RecordLimit::TooManyRules(MAX_BLACKLIST_RULES + 1));
        assert_eq!(err.reason(), "BLACKLIST_TOO_LARGE");
        let huge = EdgeRecord {
            allowed_origins: vec!["x".repeat(MAX_RECORD_BYTES)],
            ..sample()
        };
        assert_eq!(
            huge.check_limits().unwrap_err().reason(),
            "EDGE_RECORD_TOO_LARGE"
        );
    }

    #[test]
    fn batches_are_cut_by_bytes_and_count_and_never_empty() {
        assert_eq!(batch_len(&[]), 0);
        assert_eq!(
            batch_len(&[10 * MAX_BATCH_BYTES]),
            1,
            "an oversized record goes alone"
        );
        assert_eq!(batch_len(&[100; 500]), MAX_BATCH_RECORDS);
        let big = MAX_RECORD_BYTES;
        assert_eq!(batch_len(&[big, big, big, big]), 2);
        assert_eq!(batch_len(&[big, big, 10]), 3);
        // A batch the sizes allow really is within the byte limit once serialized.
        let records: Vec<EdgeRecord> = (0..200).map(|_| sample()).collect();
        let sizes: Vec<usize> = records.iter().map(EdgeRecord::encoded_len).collect();
        let n = batch_len(&sizes);
        let body = serde_json::to_vec(&SyncBatch {
            records: records[..n].to_vec(),
        })
        .unwrap();
        assert!(body.len() <= MAX_BATCH_BYTES);
        let exact: usize = 14 + sizes[..n].iter().sum::<usize>() + (n - 1);
        assert_eq!(body.len(), exact, "the size estimate is exact");
    }

    #[test]
    fn route_maps_travel_in_the_record_compile_and_count_towards_its_size() {
        use crate::route::{RouteBinding, RoutePolicy};
        let plain = sample();
        assert!(!serde_json::to_string(&plain).unwrap().contains("routes"));
        assert_eq!(plain.clone().compile().routes, RoutePolicy::None);
        let mut r = sample();
        r.routes = vec![RouteBinding {
            module: "billing".into(),
            functionality: "refund".into(),
            routes: vec!["POST /billing/refunds/*".into()],
        }];
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<EdgeRecord>(&json).unwrap(), r);
        assert!(r.encoded_len() > plain.encoded_len());
        assert!(matches!(r.clone().compile().routes, RoutePolicy::Mapped(_)));
        r.routes[0].routes = vec!["not a route".into()];
        assert_eq!(r.compile().routes, RoutePolicy::Broken, "fail closed");
    }

    #[test]
    fn revocations_are_never_dead_lettered() {
        let mut r = sample();
        assert!(r.may_dead_letter());
        r.state = KeyState::Revoked;
        assert!(!r.may_dead_letter());
    }

    #[test]
    fn acks_without_held_versions_still_parse_and_new_ones_round_trip() {
        let old: SyncAck = serde_json::from_str(r#"{"applied":1,"skipped":2}"#).unwrap();
        assert!(old.held_newer.is_empty());
        let ack = SyncAck {
            skipped: 1,
            held_newer: vec![HeldRecord {
                key_digest: crate::key::digest("pk_live_x"),
                version: 9,
            }],
            ..SyncAck::default()
        };
        let json = serde_json::to_string(&ack).unwrap();
        assert!(json.contains(r#""heldNewer":[{"keyDigest":"#), "{json}");
        assert_eq!(serde_json::from_str::<SyncAck>(&json).unwrap(), ack);
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
