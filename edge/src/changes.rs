//! The global change log: a Durable Object that every location asks about recent record
//! changes, so no location trusts a KV copy older than what it could know.
//!
//! KV is the fast path, but a location may read a copy up to about a minute old. So the sync
//! handler, after writing KV and before acknowledging, appends every record it stored to this
//! log (one Durable Object, strongly consistent, global), and each isolate keeps a cursor into
//! it ([`crate::view`]). The log keeps only each key's newest record, and only for
//! `KEYGATE_CHANGES_WINDOW_MS` (120 s by default, twice KV's propagation delay): anything older
//! has reached every location's KV, so the log stays small whatever the number of keys.
//!
//! Sequence numbers order the log; a cursor is "the highest sequence seen". Each log has an
//! `epoch` (random, made once and stored with it): if the object's storage is ever reset, an
//! isolate sees another epoch and starts again from zero instead of trusting an old cursor.
//!
//! Routes of the object (reached only through its binding, never from the internet):
//! - `POST /apply` `{"records": [EdgeRecord...]}`: appends what `should_apply` accepts,
//!   answers `{"applied": n, "head": seq}` once it is stored;
//! - `GET /changes?after=<seq>&epoch=<epoch>`: a [`ChangesPage`] of the changes after `seq`
//!   (from zero when `epoch` is not the log's), at most [`PAGE_MAX_BYTES`] of records.

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use keygate_shared::key::KeyDigest;
use keygate_shared::record::{should_apply, EdgeRecord, KeyState};
use serde::{Deserialize, Serialize};

/// Binding name of the change log's Durable Object namespace.
pub const BINDING: &str = "KEYGATE_CHANGES";
/// The one object of the namespace every location talks to.
pub const OBJECT_NAME: &str = "global";
/// Most record bytes in one page (a page always carries at least one change).
pub const PAGE_MAX_BYTES: usize = 512 * 1024;

/// One change: a record with its place in the log and when the log took it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    /// Position in the log (1, 2, ...).
    pub seq: u64,
    /// When the log stored it (the object's clock, ms since the epoch).
    pub at_ms: u64,
    /// The key's record.
    pub record: EdgeRecord,
}

/// An answer to `GET /changes`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangesPage {
    /// The log's epoch.
    pub epoch: String,
    /// The lowest sequence still held (`head + 1` when the log is empty): a reader may forget
    /// what it learned below it, KV has it everywhere by now.
    pub oldest: u64,
    /// The highest sequence given so far.
    pub head: u64,
    /// The changes after the asked cursor, in order.
    pub changes: Vec<Change>,
    /// Whether more changes follow (ask again after the last one's `seq`).
    pub more: bool,
}

/// The body of `POST /apply`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyRequest {
    /// Records the sync handler stored.
    pub records: Vec<EdgeRecord>,
}

/// The answer to `POST /apply`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyReply {
    /// Records the log took (the others it already held, or something newer).
    pub applied: u32,
    /// Keys for which the log holds a record that wins over the one sent (see
    /// [`Applied::superseded`]).
    #[serde(default)]
    pub superseded: Vec<KeyDigest>,
    /// The log's head afterwards.
    pub head: u64,
}

#[derive(Clone, Debug)]
struct Entry {
    seq: u64,
    at_ms: u64,
    version: u64,
    state: KeyState,
    /// The change's JSON, made once: pages are built by concatenation.
    json: Rc<str>,
}

/// The log itself, pure: what the Durable Object holds in memory (and mirrors in storage).
#[derive(Debug)]
pub struct ChangeLog {
    epoch: String,
    head: u64,
    by_digest: HashMap<KeyDigest, Entry>,
    by_seq: BTreeMap<u64, KeyDigest>,
}

/// What [`ChangeLog::apply`] changed, for the object to persist.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// `(digest, change JSON)` to store.
    pub stored: Vec<(KeyDigest, String)>,
    /// Records the log refused because it holds a record for the key that wins over them
    /// (newer, or revoked): the sync handler must not write them to KV either.
    pub superseded: Vec<KeyDigest>,
}

impl ChangeLog {
    /// An empty log in `epoch` whose next sequence is `head + 1`.
    pub fn new(epoch: String, head: u64) -> Self {
        ChangeLog {
            epoch,
            head,
            by_digest: HashMap::new(),
            by_seq: BTreeMap::new(),
        }
    }

    /// The epoch.
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// The highest sequence given.
    pub fn head(&self) -> u64 {
        self.head
    }

    /// Number of keys held.
    pub fn len(&self) -> usize {
        self.by_digest.len()
    }

    /// Whether the log holds nothing.
    pub fn is_empty(&self) -> bool {
        self.by_digest.is_empty()
    }

    /// Puts back a change read from storage (at start). Unreadable ones are skipped.
    pub fn restore(&mut self, json: &str) {
        let Ok(change) = serde_json::from_str::<Change>(json) else {
            return;
        };
        self.head = self.head.max(change.seq);
        self.insert(change.record.key_digest, entry(&change, json.into()));
    }

    fn insert(&mut self, digest: KeyDigest, e: Entry) {
        if let Some(old) = self.by_digest.get(&digest) {
            self.by_seq.remove(&old.seq);
        }
        self.by_seq.insert(e.seq, digest);
        self.by_digest.insert(digest, e);
    }

    /// Appends the records that [`should_apply`] accepts over what the log holds for their
    /// key, and re-appends records equal to what it holds (each key keeps only its newest
    /// change); the others are reported as superseded.
    pub fn apply(&mut self, records: Vec<EdgeRecord>, now_ms: u64) -> Applied {
        let mut applied = Applied::default();
        for record in records {
            let digest = record.key_digest;
            let held = self.by_digest.get(&digest).map(|e| (e.version, e.state));
            // The same record again (a retried push) is stamped anew: the window must count
            // from the latest time a location may have written it to KV.
            if held != Some(record.precedence()) && !should_apply(held, record.precedence()) {
                applied.superseded.push(digest);
                continue;
            }
            self.head += 1;
            let change = Change {
                seq: self.head,
                at_ms: now_ms,
                record,
            };
            let json = serde_json::to_string(&change).unwrap_or_default();
            self.insert(digest, entry(&change, json.as_str().into()));
            applied.stored.push((digest, json));
        }
        applied
    }

    /// Forgets changes older than `window_ms`; returns the digests forgotten.
    pub fn prune(&mut self, now_ms: u64, window_ms: u64) -> Vec<KeyDigest> {
        let cutoff = now_ms.saturating_sub(window_ms);
        let mut gone = Vec::new();
        // In sequence order, which is time order: stop at the first young one.
        while let Some((&seq, &digest)) = self.by_seq.iter().next() {
            if self
                .by_digest
                .get(&digest)
                .is_some_and(|e| e.at_ms > cutoff)
            {
                break;
            }
            self.by_seq.remove(&seq);
            self.by_digest.remove(&digest);
            gone.push(digest);
        }
        gone
    }

    /// The lowest sequence held (`head + 1` if none).
    pub fn oldest(&self) -> u64 {
        self.by_seq.keys().next().copied().unwrap_or(self.head + 1)
    }

    /// The page of changes after `after` (from zero if `epoch` is not this log's), as JSON.
    pub fn page_json(&self, after: u64, epoch: Option<&str>, max_bytes: usize) -> String {
        let after = if epoch == Some(self.epoch.as_str()) {
            after
        } else {
            0
        };
        let mut out = String::from("{\"changes\":[");
        let mut bytes = 0;
        let mut more = false;
        let mut first = true;
        for digest in self.by_seq.range(after + 1..).map(|(_, d)| d) {
            let json = &self.by_digest[digest].json;
            if !first && bytes + json.len() > max_bytes {
                more = true;
                break;
            }
            if !first {
                out.push(',');
            }
            out.push_str(json);
            bytes += json.len();
            first = false;
        }
        // The epoch is hex (made by this log), so it needs no escaping.
        out.push_str(&format!(
            "],\"epoch\":\"{}\",\"oldest\":{},\"head\":{},\"more\":{}}}",
            self.epoch,
            self.oldest(),
            self.head,
            more
        ));
        out
    }
}

fn entry(change: &Change, json: Rc<str>) -> Entry {
    Entry {
        seq: change.seq,
        at_ms: change.at_ms,
        version: change.record.version,
        state: change.record.state,
        json,
    }
}

/// `after` and `epoch` from a `GET /changes?after=<seq>&epoch=<epoch>` URL (both optional;
/// an epoch is hex, so it needs no decoding).
pub fn parse_changes_query(url: &str) -> (u64, Option<&str>) {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    let mut after = 0;
    let mut epoch = None;
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("after", v)) => after = v.parse().unwrap_or(0),
            Some(("epoch", v)) if !v.is_empty() => epoch = Some(v),
            _ => {}
        }
    }
    (after, epoch)
}

/// The storage key of a key's change.
pub fn storage_key(digest: &KeyDigest) -> String {
    format!("c:{}", digest.to_hex())
}

#[cfg(target_arch = "wasm32")]
pub use runtime::{forward, RecentChanges};

// `#[durable_object]` generates public wasm-bindgen glue (constructor, fetch, alarm...) that
// carries no docs.
#[cfg(target_arch = "wasm32")]
#[allow(missing_docs)]
mod runtime {
    use std::cell::RefCell;

    use keygate_shared::key::KeyDigest;
    use keygate_shared::record::EdgeRecord;
    use worker::{
        durable_object, js_sys, Env, Headers, Method, Request, RequestInit, Response, State,
    };

    use super::{
        parse_changes_query, storage_key, ApplyReply, ApplyRequest, ChangeLog, BINDING,
        OBJECT_NAME, PAGE_MAX_BYTES,
    };
    use crate::error::ApiError;
    use crate::http::now_ms;

    const META_KEY: &str = "meta";
    /// Keys per storage call (the Durable Object storage API takes at most 128).
    const STORAGE_BATCH: usize = 100;

    /// Appends `records` (what a push is about to store in KV) to the change log and returns
    /// the keys for which the log holds a winning record (not to be written to KV); `Err`
    /// (503 `CHANGES_UNAVAILABLE`) when the log cannot be reached, so the push is not
    /// acknowledged and the control plane sends it again.
    pub async fn forward(env: &Env, records: Vec<EdgeRecord>) -> Result<Vec<KeyDigest>, ApiError> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let unavailable = |why: String| {
            worker::console_error!("keygate: change log unavailable: {why}");
            ApiError::new(
                503,
                "CHANGES_UNAVAILABLE",
                "the edge could not record the change globally; send it again",
            )
        };
        let stub = env
            .durable_object(BINDING)
            .and_then(|ns| ns.get_by_name(OBJECT_NAME))
            .map_err(|_| unavailable(format!("the {BINDING} binding is missing")))?;
        let body = serde_json::to_string(&ApplyRequest { records })
            .map_err(|e| unavailable(e.to_string()))?;
        let headers = Headers::new();
        headers
            .set("content-type", "application/json")
            .map_err(|e| unavailable(e.to_string()))?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_headers(headers)
            .with_body(Some(body.into()));
        let req = Request::new_with_init("https://changes/apply", &init)
            .map_err(|e| unavailable(e.to_string()))?;
        let mut resp = stub
            .fetch_with_request(req)
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        if resp.status_code() != 200 {
            return Err(unavailable(format!("status {}", resp.status_code())));
        }
        let bytes = resp.bytes().await.map_err(|e| unavailable(e.to_string()))?;
        serde_json::from_slice::<ApplyReply>(&bytes)
            .map(|r| r.superseded)
            .map_err(|e| unavailable(e.to_string()))
    }

    #[derive(serde::Serialize, serde::Deserialize)]
    struct Meta {
        epoch: String,
        head: u64,
    }

    /// The change log's Durable Object (class `RecentChanges` in `wrangler.toml`).
    #[durable_object(fetch)]
    pub struct RecentChanges {
        state: State,
        window_ms: u64,
        log: RefCell<Option<ChangeLog>>,
    }

    impl RecentChanges {
        /// Loads the log from storage the first time it is needed.
        async fn load(&self) -> worker::Result<()> {
            if self.log.borrow().is_some() {
                return Ok(());
            }
            let storage = self.state.storage();
            // Everything at once, as raw JS values: the object holds only `meta` and one
            // `c:<digest>` per key changed within the window (and the typed storage calls
            // would pull serde-wasm-bindgen into the wasm).
            let listed = storage.list().await?;
            let mut meta = None;
            let mut changes = Vec::new();
            for entry in listed.entries() {
                let pair = js_sys::Array::from(&entry?);
                let (Some(key), Some(value)) = (pair.get(0).as_string(), pair.get(1).as_string())
                else {
                    continue;
                };
                if key == META_KEY {
                    meta = serde_json::from_str::<Meta>(&value).ok();
                } else if key.starts_with("c:") {
                    changes.push(value);
                }
            }
            let meta = match meta {
                Some(m) => m,
                None => {
                    let m = Meta {
                        epoch: keygate_shared::random::hex_token(),
                        head: 0,
                    };
                    storage.put_raw(META_KEY, meta_json(&m)).await?;
                    m
                }
            };
            let mut log = ChangeLog::new(meta.epoch, meta.head);
            for json in &changes {
                log.restore(json);
            }
            // Another request may have loaded it meanwhile; keep the first.
            let mut slot = self.log.borrow_mut();
            if slot.is_none() {
                *slot = Some(log);
            }
            Ok(())
        }

        async fn apply(&self, mut req: Request) -> worker::Result<Response> {
            let bytes = req.bytes().await?;
            let Ok(body) = serde_json::from_slice::<ApplyRequest>(&bytes) else {
                return Response::error("bad apply body", 400);
            };
            self.load().await?;
            let now = now_ms();
            let (applied, gone, meta) = {
                let mut slot = self.log.borrow_mut();
                let log = slot.as_mut().expect("loaded");
                let applied = log.apply(body.records, now);
                let gone = log.prune(now, self.window_ms);
                let meta = Meta {
                    epoch: log.epoch().to_owned(),
                    head: log.head(),
                };
                (applied, gone, meta)
            };
            let storage = self.state.storage();
            // Writes of at most STORAGE_BATCH keys (the storage API's limit is 128), all
            // awaited: the answer (and so the sync ack) means "stored". `meta` goes last; if
            // the object dies between writes, `restore` takes the head from the changes.
            let mut writes: Vec<(String, &str)> = applied
                .stored
                .iter()
                .map(|(digest, json)| (storage_key(digest), json.as_str()))
                .collect();
            let meta_value = meta_json(&meta);
            writes.push((META_KEY.to_owned(), &meta_value));
            for chunk in writes.chunks(STORAGE_BATCH) {
                let values = js_sys::Object::new();
                for (key, json) in chunk {
                    js_sys::Reflect::set(&values, &key.as_str().into(), &(*json).into())?;
                }
                storage.put_multiple_raw(values).await?;
            }
            let forgotten: Vec<String> = gone
                .iter()
                .filter(|d| !applied.stored.iter().any(|(s, _)| s == *d))
                .map(storage_key)
                .collect();
            for chunk in forgotten.chunks(STORAGE_BATCH) {
                storage.delete_multiple(chunk.to_vec()).await?;
            }
            let reply = ApplyReply {
                applied: applied.stored.len() as u32,
                superseded: applied.superseded,
                head: meta.head,
            };
            let mut resp = Response::ok(serde_json::to_string(&reply).unwrap_or_default())?;
            resp.headers_mut().set("content-type", "application/json")?;
            Ok(resp)
        }

        async fn changes(&self, req: Request) -> worker::Result<Response> {
            // The raw URL string: `req.url()` would pull the `url` crate into the wasm.
            let url = req.inner().url();
            let (after, epoch) = parse_changes_query(&url);
            self.load().await?;
            let slot = self.log.borrow();
            let log = slot.as_ref().expect("loaded");
            let mut resp = Response::ok(log.page_json(after, epoch, PAGE_MAX_BYTES))?;
            resp.headers_mut().set("content-type", "application/json")?;
            Ok(resp)
        }
    }

    fn meta_json(meta: &Meta) -> String {
        serde_json::to_string(meta).unwrap_or_default()
    }

    impl worker::DurableObject for RecentChanges {
        fn new(state: State, env: Env) -> Self {
            let config = crate::http::config(&env);
            RecentChanges {
                state,
                window_ms: config.changes_window_ms,
                log: RefCell::new(None),
            }
        }

        async fn fetch(&self, req: Request) -> worker::Result<Response> {
            match (req.method(), req.path().as_str()) {
                (worker::Method::Post, "/apply") => self.apply(req).await,
                (worker::Method::Get, "/changes") => self.changes(req).await,
                _ => Response::error("not found", 404),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keygate_shared::key::digest;

    fn rec(key: &str, version: u64, state: KeyState) -> EdgeRecord {
        EdgeRecord::new(digest(key), "w1".into(), state, version)
    }

    fn page(log: &ChangeLog, after: u64) -> ChangesPage {
        let epoch = log.epoch().to_owned();
        serde_json::from_str(&log.page_json(after, Some(&epoch), PAGE_MAX_BYTES)).unwrap()
    }

    #[test]
    fn each_key_keeps_only_its_newest_change_in_sequence_order() {
        let mut log = ChangeLog::new("e1".into(), 0);
        let a = log.apply(
            vec![rec("a", 1, KeyState::Active), rec("b", 1, KeyState::Active)],
            1_000,
        );
        assert_eq!(a.stored.len(), 2);
        // An older record for a held key is superseded, not a change.
        let a = log.apply(vec![rec("a", 0, KeyState::Active)], 1_100);
        assert!(a.stored.is_empty());
        assert_eq!(a.superseded, vec![digest("a")]);
        // The same record again (a retried push) is stamped anew, at the end of the log.
        let a = log.apply(vec![rec("a", 1, KeyState::Active)], 1_150);
        assert_eq!(a.stored.len(), 1);
        log.apply(vec![rec("a", 2, KeyState::Revoked)], 1_200);
        let p = page(&log, 0);
        assert_eq!(p.head, 4);
        assert_eq!(p.oldest, 2);
        let seqs: Vec<_> = p
            .changes
            .iter()
            .map(|c| (c.seq, c.record.version))
            .collect();
        assert_eq!(seqs, vec![(2, 1), (4, 2)]);
        assert_eq!(page(&log, 2).changes.len(), 1);
        assert!(page(&log, 4).changes.is_empty());
    }

    #[test]
    fn revoked_stays_revoked_in_the_log() {
        let mut log = ChangeLog::new("e1".into(), 0);
        log.apply(vec![rec("a", 5, KeyState::Revoked)], 0);
        let a = log.apply(vec![rec("a", 9, KeyState::Active)], 10);
        assert!(a.stored.is_empty());
        assert_eq!(
            a.superseded,
            vec![digest("a")],
            "KV must not take it either"
        );
        // Sending what the log holds again is not "superseded" (a retried push): restamped.
        let again = log.apply(vec![rec("a", 5, KeyState::Revoked)], 20);
        assert_eq!(again.stored.len(), 1);
        assert!(again.superseded.is_empty());
        assert_eq!(page(&log, 0).changes[0].record.state, KeyState::Revoked);
    }

    #[test]
    fn old_changes_are_pruned_and_the_oldest_sequence_moves_up() {
        let mut log = ChangeLog::new("e1".into(), 0);
        log.apply(vec![rec("a", 1, KeyState::Active)], 1_000);
        log.apply(vec![rec("b", 1, KeyState::Active)], 5_000);
        assert_eq!(log.prune(6_000, 2_000), vec![digest("a")]);
        assert_eq!(log.len(), 1);
        let p = page(&log, 0);
        assert_eq!((p.oldest, p.head), (2, 2));
        assert!(log.prune(20_000, 2_000).len() == 1 && log.is_empty());
        assert_eq!(page(&log, 0).oldest, 3);
    }

    #[test]
    fn another_epoch_reads_from_the_start_and_pages_are_bounded() {
        let mut log = ChangeLog::new("e1".into(), 0);
        let records: Vec<_> = (0..10)
            .map(|i| rec(&i.to_string(), 1, KeyState::Active))
            .collect();
        log.apply(records, 0);
        let p: ChangesPage =
            serde_json::from_str(&log.page_json(8, Some("other"), 1 << 20)).unwrap();
        assert_eq!(p.changes.len(), 10, "a stale epoch starts again");
        let p: ChangesPage = serde_json::from_str(&log.page_json(0, Some("e1"), 300)).unwrap();
        assert!(p.more && !p.changes.is_empty() && p.changes.len() < 10);
        let p: ChangesPage = serde_json::from_str(&log.page_json(0, Some("e1"), 1)).unwrap();
        assert_eq!(p.changes.len(), 1, "a page always carries one change");
    }

    #[test]
    fn change_queries_are_parsed_without_a_url_crate() {
        assert_eq!(
            parse_changes_query("https://changes/changes?after=12&epoch=ab12"),
            (12, Some("ab12"))
        );
        assert_eq!(
            parse_changes_query("https://changes/changes?after=x&epoch="),
            (0, None)
        );
        assert_eq!(parse_changes_query("https://changes/changes"), (0, None));
    }

    #[test]
    fn a_restored_log_continues_where_it_was() {
        let mut log = ChangeLog::new("e1".into(), 0);
        let a = log.apply(
            vec![
                rec("a", 1, KeyState::Active),
                rec("b", 1, KeyState::Revoked),
            ],
            0,
        );
        let mut again = ChangeLog::new("e1".into(), 0);
        for (_, json) in &a.stored {
            again.restore(json);
        }
        again.restore("not json");
        assert_eq!(again.head(), 2);
        assert_eq!(page(&again, 0), page(&log, 0));
        again.apply(vec![rec("c", 1, KeyState::Active)], 0);
        assert_eq!(again.head(), 3);
    }
}
