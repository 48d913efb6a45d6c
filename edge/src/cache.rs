//! The per-isolate cache: compiled records by key digest, positive and negative, short TTL.
//!
//! A Worker isolate serves many requests one after another; keeping the compiled record (its
//! blacklist and origins already turned into hash sets) saves the KV read and the JSON parse
//! on every check after the first. Entries live `KEYGATE_CACHE_TTL_MS` (1 s by default), so a
//! revocation that reached KV is honoured by every isolate within that TTL; the isolate that
//! receives a sync push updates its own entries at once. A negative entry ("no such key")
//! stops a burst of checks with an unknown key from hammering KV and the control plane.
//!
//! Refresh ahead: a hit on a record in the last [`refresh_ahead_ms`] of its TTL claims the
//! entry's one re-read ([`IsolateCache::claim_refresh`]), which the worker runs in the
//! background; the answer does not wait. A key checked steadily then never expires, and no
//! request waits for KV once a TTL (without it, each expiry sent every request arriving during
//! the KV read to KV, the once-a-second stall of the half-load p99, see `edge/README.md`). No
//! entry is ever served past its TTL, so the staleness bound is unchanged.
//!
//! Worker isolates are single-threaded, so the cache is a thread-local behind a `RefCell`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use keygate_shared::key::KeyDigest;
use keygate_shared::record::{should_apply, CompiledRecord};

/// Most entries one isolate keeps; beyond it expired entries are dropped, then everything.
pub const MAX_ENTRIES: usize = 10_000;

/// What the cache knows about a digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cached {
    /// A record, still fresh.
    Found(Rc<CompiledRecord>),
    /// Known not to exist (fresh negative entry).
    Absent,
}

#[derive(Debug)]
struct Entry {
    value: Cached,
    expires_at_ms: u64,
    /// A background re-read was claimed for this entry (a new entry starts unclaimed).
    refreshing: bool,
}

/// How long before its expiry a record's entry is re-read in the background: a quarter of
/// the TTL.
pub fn refresh_ahead_ms(ttl_ms: u64) -> u64 {
    ttl_ms / 4
}

/// A TTL cache of compiled records, bounded in size.
#[derive(Debug, Default)]
pub struct IsolateCache {
    entries: HashMap<KeyDigest, Entry>,
}

impl IsolateCache {
    /// A fresh entry for `digest`, if any.
    pub fn get(&self, digest: &KeyDigest, now_ms: u64) -> Option<Cached> {
        self.entries
            .get(digest)
            .filter(|e| e.expires_at_ms > now_ms)
            .map(|e| e.value.clone())
    }

    /// Remembers `value` for `ttl_ms` (a zero TTL remembers nothing).
    pub fn put(&mut self, digest: KeyDigest, value: Cached, now_ms: u64, ttl_ms: u64) {
        if ttl_ms == 0 {
            self.entries.remove(&digest);
            return;
        }
        if self.entries.len() >= MAX_ENTRIES && !self.entries.contains_key(&digest) {
            self.entries.retain(|_, e| e.expires_at_ms > now_ms);
            if self.entries.len() >= MAX_ENTRIES {
                self.entries.clear();
            }
        }
        self.entries.insert(
            digest,
            Entry {
                value,
                expires_at_ms: now_ms.saturating_add(ttl_ms),
                refreshing: false,
            },
        );
    }

    /// Like [`IsolateCache::put`], but a fresh entry that `should_apply` prefers stays: a
    /// slow lookup that started before a sync push must not put the older record back, and a
    /// revoked record is never replaced by an active one. (A negative entry never hides a
    /// fresh record; an equal record refreshes the entry's TTL.)
    pub fn offer(&mut self, digest: KeyDigest, value: Cached, now_ms: u64, ttl_ms: u64) {
        if let Some(current) = self.get(&digest, now_ms) {
            let keep = match (&current, &value) {
                (Cached::Found(held), Cached::Found(new)) => {
                    let (held, new) = (held.record.precedence(), new.record.precedence());
                    held != new && !should_apply(Some(held), new)
                }
                (Cached::Found(_), Cached::Absent) => true,
                (Cached::Absent, _) => false,
            };
            if keep {
                return;
            }
        }
        self.put(digest, value, now_ms, ttl_ms);
    }

    /// Whether the caller should re-read `digest`'s record now, in the background: its entry
    /// is a fresh record expiring within `ahead_ms`, and no re-read was claimed for it yet
    /// (this call claims it; the entry [`IsolateCache::offer`] then stores starts unclaimed).
    pub fn claim_refresh(&mut self, digest: &KeyDigest, now_ms: u64, ahead_ms: u64) -> bool {
        match self.entries.get_mut(digest) {
            Some(e)
                if matches!(e.value, Cached::Found(_))
                    && !e.refreshing
                    && e.expires_at_ms > now_ms
                    && e.expires_at_ms - now_ms <= ahead_ms =>
            {
                e.refreshing = true;
                true
            }
            _ => false,
        }
    }

    /// Forgets `digest`.
    pub fn remove(&mut self, digest: &KeyDigest) {
        self.entries.remove(digest);
    }

    /// Number of entries, fresh or not.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

thread_local! {
    static CACHE: RefCell<IsolateCache> = RefCell::new(IsolateCache::default());
}

/// Runs `f` with this isolate's cache.
pub fn with_cache<R>(f: impl FnOnce(&mut IsolateCache) -> R) -> R {
    CACHE.with(|c| f(&mut c.borrow_mut()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use keygate_shared::key::digest;
    use keygate_shared::record::{EdgeRecord, KeyState};

    fn record(key: &str) -> Rc<CompiledRecord> {
        versioned(key, 1)
    }

    fn versioned(key: &str, version: u64) -> Rc<CompiledRecord> {
        Rc::new(EdgeRecord::new(digest(key), "w1".into(), KeyState::Active, version).compile())
    }

    #[test]
    fn entries_expire_after_their_ttl() {
        let mut c = IsolateCache::default();
        let d = digest("a");
        c.put(d, Cached::Found(record("a")), 1_000, 500);
        assert!(matches!(c.get(&d, 1_499), Some(Cached::Found(_))));
        assert_eq!(c.get(&d, 1_500), None);
    }

    #[test]
    fn negative_entries_are_remembered_and_zero_ttl_disables() {
        let mut c = IsolateCache::default();
        let d = digest("b");
        c.put(d, Cached::Absent, 0, 100);
        assert_eq!(c.get(&d, 50), Some(Cached::Absent));
        c.put(d, Cached::Absent, 0, 0);
        assert_eq!(c.get(&d, 50), None);
    }

    #[test]
    fn offers_never_replace_a_fresher_newer_record() {
        let mut c = IsolateCache::default();
        let d = digest("c");
        c.offer(d, Cached::Found(versioned("c", 5)), 0, 1_000);
        c.offer(d, Cached::Found(versioned("c", 4)), 10, 1_000);
        c.offer(d, Cached::Absent, 10, 1_000);
        assert_eq!(c.get(&d, 20), Some(Cached::Found(versioned("c", 5))));
        c.offer(d, Cached::Found(versioned("c", 6)), 10, 1_000);
        assert_eq!(c.get(&d, 20), Some(Cached::Found(versioned("c", 6))));
        // Once the newer entry expired, anything may take its place.
        c.offer(d, Cached::Absent, 2_000, 1_000);
        assert_eq!(c.get(&d, 2_001), Some(Cached::Absent));
    }

    #[test]
    fn offers_never_replace_a_revoked_record_and_a_revocation_always_replaces() {
        let mut c = IsolateCache::default();
        let d = digest("r");
        let revoked =
            |v| Rc::new(EdgeRecord::new(digest("r"), "w1".into(), KeyState::Revoked, v).compile());
        c.offer(d, Cached::Found(versioned("r", 900)), 0, 1_000);
        // A revocation from a control plane whose versions went backwards still lands.
        c.offer(d, Cached::Found(revoked(3)), 10, 1_000);
        assert_eq!(c.get(&d, 20), Some(Cached::Found(revoked(3))));
        c.offer(d, Cached::Found(versioned("r", 901)), 30, 1_000);
        assert_eq!(c.get(&d, 40), Some(Cached::Found(revoked(3))));
    }

    #[test]
    fn a_record_near_its_expiry_is_claimed_for_one_refresh() {
        let mut c = IsolateCache::default();
        let d = digest("h");
        c.put(d, Cached::Found(record("h")), 0, 1_000);
        let ahead = refresh_ahead_ms(1_000);
        assert!(!c.claim_refresh(&d, 700, ahead), "not yet due");
        assert!(c.claim_refresh(&d, 800, ahead));
        assert!(!c.claim_refresh(&d, 900, ahead), "claimed once");
        assert!(
            !c.claim_refresh(&d, 1_000, ahead),
            "expired: the next lookup reads"
        );
        // The re-read's answer is a new entry, due again a TTL later.
        c.offer(d, Cached::Found(record("h")), 950, 1_000);
        assert!(matches!(c.get(&d, 1_500), Some(Cached::Found(_))));
        assert!(!c.claim_refresh(&d, 1_500, ahead));
        assert!(c.claim_refresh(&d, 1_750, ahead));
        // Negative entries and unknown digests are never refreshed ahead.
        c.put(d, Cached::Absent, 0, 1_000);
        assert!(!c.claim_refresh(&d, 900, ahead));
        assert!(!c.claim_refresh(&digest("other"), 900, ahead));
    }

    #[test]
    fn size_stays_bounded() {
        let mut c = IsolateCache::default();
        for i in 0..(MAX_ENTRIES + 10) {
            c.put(digest(&i.to_string()), Cached::Absent, 0, 1_000);
        }
        assert!(c.len() <= MAX_ENTRIES);
    }
}
