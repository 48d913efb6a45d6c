//! This isolate's view of the global change log ([`crate::changes`]): what it learned, up to
//! which sequence, and how fresh that is.
//!
//! The view holds every change younger than the log's window (an overlay over KV): a record
//! read from KV is merged with it ([`View::merge`], by `should_apply`, so a stale KV copy never
//! wins over a newer change and a revocation is never undone), and each change learned is
//! also offered to the isolate cache at once.
//!
//! Freshness is what bounds staleness worldwide. `synced_at` is when the last completed refresh
//! was *sent* (the log answered with at least everything it held then), so after a change is
//! acknowledged at time `T`, any request answered with `synced_at > T` sees it. The router asks
//! [`View::freshness`] before every lookup:
//! - [`Freshness::Fresh`] (younger than `KEYGATE_CHANGES_POLL_MS`): nothing to do, no await;
//! - [`Freshness::Aging`] (younger than `KEYGATE_CHANGES_MAX_AGE_MS`): answer now, refresh in
//!   the background (`ctx.wait_until`), one refresh at a time per isolate;
//! - [`Freshness::Stale`] (older, e.g. the first request after idling): refresh first, then
//!   answer. If the log cannot be reached, the request goes on with KV and what the view holds
//!   (fail open to KV's own bound, see `edge/README.md`), unless `KEYGATE_CHANGES_FAIL=closed`.

use std::collections::HashMap;
use std::rc::Rc;

use keygate_shared::key::KeyDigest;
use keygate_shared::record::{should_apply, CompiledRecord};

use crate::changes::ChangesPage;

/// How far the view can be trusted now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freshness {
    /// Recent enough: nothing to do.
    Fresh,
    /// Still trusted, but a background refresh is due.
    Aging,
    /// Not trusted: refresh before answering.
    Stale,
}

/// The isolate's view.
#[derive(Debug, Default)]
pub struct View {
    epoch: Option<String>,
    cursor: u64,
    synced_at_ms: Option<u64>,
    /// When a blocking refresh last failed (stale requests then stop waiting for a while).
    failed_at_ms: Option<u64>,
    overlay: HashMap<KeyDigest, (u64, Rc<CompiledRecord>)>,
}

impl View {
    /// Freshness at `now_ms`.
    pub fn freshness(&self, now_ms: u64, poll_ms: u64, max_age_ms: u64) -> Freshness {
        match self.synced_at_ms {
            Some(at) if now_ms.saturating_sub(at) < poll_ms => Freshness::Fresh,
            Some(at) if now_ms.saturating_sub(at) < max_age_ms => Freshness::Aging,
            _ => Freshness::Stale,
        }
    }

    /// Whether a stale request should wait for a refresh: not within `retry_ms` of a failed
    /// one (the log is down; waiting would only add its timeout to every request).
    pub fn should_block(&self, now_ms: u64, retry_ms: u64) -> bool {
        self.failed_at_ms
            .is_none_or(|f| now_ms.saturating_sub(f) >= retry_ms)
    }

    /// The cursor and epoch to ask the log with.
    pub fn cursor(&self) -> (u64, Option<&str>) {
        (self.cursor, self.epoch.as_deref())
    }

    /// Takes one page of changes; returns the records that changed in the view (to offer to
    /// the isolate cache).
    pub fn absorb(&mut self, page: ChangesPage) -> Vec<Rc<CompiledRecord>> {
        if self.epoch.as_deref() != Some(page.epoch.as_str()) {
            // A new log (or the first answer): nothing learned before is positioned in it.
            self.overlay.clear();
            self.cursor = 0;
            self.epoch = Some(page.epoch);
        }
        let mut changed = Vec::new();
        for change in page.changes {
            self.cursor = self.cursor.max(change.seq);
            let digest = change.record.key_digest;
            match self.overlay.get_mut(&digest) {
                Some((seq, held))
                    if !should_apply(
                        Some(held.record.precedence()),
                        change.record.precedence(),
                    ) =>
                {
                    *seq = change.seq;
                }
                _ => {
                    let compiled = Rc::new(change.record.compile());
                    self.overlay.insert(digest, (change.seq, compiled.clone()));
                    changed.push(compiled);
                }
            }
        }
        if !page.more {
            // Everything up to the head was given (the gaps were superseded or pruned).
            self.cursor = self.cursor.max(page.head);
        }
        // What the log forgot is older than its window: every location's KV has it.
        let oldest = page.oldest;
        self.overlay.retain(|_, (seq, _)| *seq >= oldest);
        changed
    }

    /// Records that a refresh sent at `sent_at_ms` completed.
    pub fn synced(&mut self, sent_at_ms: u64) {
        self.synced_at_ms = Some(self.synced_at_ms.map_or(sent_at_ms, |s| s.max(sent_at_ms)));
        self.failed_at_ms = None;
    }

    /// Records that a refresh failed at `now_ms`.
    pub fn failed(&mut self, now_ms: u64) {
        self.failed_at_ms = Some(now_ms);
    }

    /// What the view holds for `digest`.
    pub fn get(&self, digest: &KeyDigest) -> Option<&Rc<CompiledRecord>> {
        self.overlay.get(digest).map(|(_, r)| r)
    }

    /// The record to trust for `digest` given what storage (KV or a pull) returned: the
    /// view's record if `should_apply` prefers it, else storage's.
    pub fn merge(
        &self,
        digest: &KeyDigest,
        stored: Option<Rc<CompiledRecord>>,
    ) -> Option<Rc<CompiledRecord>> {
        match (self.get(digest), stored) {
            (None, stored) => stored,
            (Some(learned), None) => Some(learned.clone()),
            (Some(learned), Some(stored)) => {
                if should_apply(
                    Some(stored.record.precedence()),
                    learned.record.precedence(),
                ) {
                    Some(learned.clone())
                } else {
                    Some(stored)
                }
            }
        }
    }

    /// Number of records held.
    pub fn len(&self) -> usize {
        self.overlay.len()
    }

    /// Whether the view holds no record.
    pub fn is_empty(&self) -> bool {
        self.overlay.is_empty()
    }
}

#[cfg(target_arch = "wasm32")]
pub use runtime::{before_lookup, with_view};

#[cfg(target_arch = "wasm32")]
mod runtime {
    use std::cell::{Cell, RefCell};
    use std::rc::Rc;
    use std::time::Duration;

    use futures_util::future::{select, Either, LocalBoxFuture};
    use worker::{Context, Delay, Env, Method, Request, RequestInit};

    use super::{Freshness, View};
    use crate::cache::{with_cache, Cached};
    use crate::changes::{ChangesPage, BINDING, OBJECT_NAME};
    use crate::config::Config;
    use crate::error::ApiError;
    use crate::http::{self, now_ms};

    /// Most pages one refresh reads (a full window after idling may span several).
    const MAX_PAGES: usize = 32;
    /// How often a stale request looks whether another request's refresh has finished.
    const WAIT_STEP_MS: u64 = 5;

    thread_local! {
        static VIEW: RefCell<View> = RefCell::new(View::default());
        /// Whether a refresh is running in this isolate. Requests never await another
        /// request's refresh (workerd binds I/O to the request that started it, and a task
        /// woken from another request's I/O would run in that request's context); they wait on
        /// their own timer instead.
        static REFRESHING: Cell<bool> = const { Cell::new(false) };
    }

    /// Runs `f` with this isolate's view.
    pub fn with_view<R>(f: impl FnOnce(&mut View) -> R) -> R {
        VIEW.with(|v| f(&mut v.borrow_mut()))
    }

    /// Before a lookup: `None` when the view is fresh (nothing to await), or aging (a
    /// background refresh is started with `ctx.wait_until`); when it is stale, the refresh to
    /// await before answering (see the module docs for what happens when the log is
    /// unreachable).
    pub fn before_lookup(
        env: &Env,
        ctx: &Context,
    ) -> Option<LocalBoxFuture<'static, Result<(), ApiError>>> {
        let config = http::config(env);
        let now = now_ms();
        match with_view(|v| v.freshness(now, config.changes_poll_ms, config.changes_max_age_ms)) {
            Freshness::Fresh => None,
            Freshness::Aging => {
                if !REFRESHING.get() {
                    let (env, config) = (env.clone(), config.clone());
                    ctx.wait_until(async move {
                        refresh(&env, &config).await;
                    });
                }
                None
            }
            Freshness::Stale => Some(Box::pin(refresh_stale(env.clone(), config, now))),
        }
    }

    fn stale(config: &Config) -> bool {
        with_view(|v| v.freshness(now_ms(), config.changes_poll_ms, config.changes_max_age_ms))
            == Freshness::Stale
    }

    async fn refresh_stale(env: Env, config: Rc<Config>, now: u64) -> Result<(), ApiError> {
        let mut ok = false;
        if with_view(|v| v.should_block(now, config.changes_retry_ms)) {
            // Another request's refresh may be running: wait for it on our own timer, up to
            // the refresh timeout.
            let mut waited = 0;
            while REFRESHING.get() && waited < config.changes_timeout_ms {
                Delay::from(Duration::from_millis(WAIT_STEP_MS)).await;
                waited += WAIT_STEP_MS;
            }
            ok = !stale(&config);
            if !ok && !REFRESHING.get() {
                ok = refresh(&env, &config).await;
            }
        }
        if ok || !config.changes_fail_closed {
            Ok(())
        } else {
            Err(ApiError::new(
                503,
                "CHANGES_UNAVAILABLE",
                "the edge cannot confirm recent revocations right now; retry shortly",
            ))
        }
    }

    /// Reads the log from the view's cursor to its head; `true` when the view is now synced.
    async fn refresh(env: &Env, config: &Config) -> bool {
        /// Clears the flag however the refresh ends (a cancelled request drops its future).
        struct Running;
        impl Drop for Running {
            fn drop(&mut self) {
                REFRESHING.set(false);
            }
        }
        REFRESHING.set(true);
        let _running = Running;
        refresh_now(env, config).await
    }

    async fn refresh_now(env: &Env, config: &Config) -> bool {
        let sent_at = now_ms();
        let was_stale = with_view(|v| {
            v.freshness(sent_at, config.changes_poll_ms, config.changes_max_age_ms)
                == Freshness::Stale
        });
        let timeout = Delay::from(Duration::from_millis(config.changes_timeout_ms));
        let work = Box::pin(read_all(env));
        let ok = match select(work, timeout).await {
            Either::Left((Ok(()), _)) => true,
            Either::Left((Err(e), _)) => {
                worker::console_warn!("keygate: change log unreachable: {e}");
                false
            }
            Either::Right(_) => {
                worker::console_warn!("keygate: change log too slow");
                false
            }
        };
        with_view(|v| {
            if ok {
                v.synced(sent_at)
            } else if was_stale {
                // Only a failure that left requests waiting pauses the waiting; a failed
                // background refresh is simply tried again by the next stale request.
                v.failed(now_ms())
            }
        });
        ok
    }

    async fn read_all(env: &Env) -> Result<(), String> {
        let stub = env
            .durable_object(BINDING)
            .and_then(|ns| ns.get_by_name(OBJECT_NAME))
            .map_err(|_| format!("the {BINDING} binding is missing"))?;
        for _ in 0..MAX_PAGES {
            let url = with_view(|v| {
                let (after, epoch) = v.cursor();
                format!(
                    "https://changes/changes?after={after}&epoch={}",
                    epoch.unwrap_or("")
                )
            });
            let mut init = RequestInit::new();
            init.with_method(Method::Get);
            let req = Request::new_with_init(&url, &init).map_err(|e| e.to_string())?;
            let mut resp = stub
                .fetch_with_request(req)
                .await
                .map_err(|e| e.to_string())?;
            if resp.status_code() != 200 {
                return Err(format!("status {}", resp.status_code()));
            }
            let bytes = resp.bytes().await.map_err(|e| e.to_string())?;
            let page: ChangesPage = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
            let more = page.more;
            let changed = with_view(|v| v.absorb(page));
            if !changed.is_empty() {
                let ttl = http::config(env).cache_ttl_ms;
                let now = now_ms();
                with_cache(|c| {
                    for r in changed {
                        c.offer(r.record.key_digest, Cached::Found(r), now, ttl);
                    }
                });
            }
            if !more {
                return Ok(());
            }
        }
        // What was read is kept (the cursor moved); the next refresh goes on from there.
        Err(format!("more than {MAX_PAGES} pages of changes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::changes::{ChangeLog, PAGE_MAX_BYTES};
    use keygate_shared::key::digest;
    use keygate_shared::record::{EdgeRecord, KeyState};

    fn rec(key: &str, version: u64, state: KeyState) -> EdgeRecord {
        EdgeRecord::new(digest(key), "w1".into(), state, version)
    }

    fn sync(view: &mut View, log: &ChangeLog) -> Vec<Rc<CompiledRecord>> {
        let (after, epoch) = view.cursor();
        let json = log.page_json(after, epoch, PAGE_MAX_BYTES);
        view.absorb(serde_json::from_str(&json).unwrap())
    }

    #[test]
    fn freshness_moves_from_fresh_to_aging_to_stale() {
        let mut v = View::default();
        assert_eq!(
            v.freshness(0, 1_000, 1_500),
            Freshness::Stale,
            "never synced"
        );
        v.synced(10_000);
        assert_eq!(v.freshness(10_999, 1_000, 1_500), Freshness::Fresh);
        assert_eq!(v.freshness(11_000, 1_000, 1_500), Freshness::Aging);
        assert_eq!(v.freshness(11_500, 1_000, 1_500), Freshness::Stale);
        // A slow refresh sent earlier never moves the view back.
        v.synced(9_000);
        assert_eq!(v.freshness(10_999, 1_000, 1_500), Freshness::Fresh);
    }

    #[test]
    fn a_failed_refresh_stops_stale_requests_waiting_for_a_while() {
        let mut v = View::default();
        assert!(v.should_block(0, 1_000));
        v.failed(5_000);
        assert!(!v.should_block(5_500, 1_000));
        assert!(v.should_block(6_000, 1_000));
        v.synced(6_000);
        assert!(v.should_block(6_001, 1_000));
    }

    #[test]
    fn learned_changes_win_over_a_stale_kv_copy_and_revocations_stick() {
        let mut log = ChangeLog::new("e1".into(), 0);
        let mut v = View::default();
        log.apply(
            vec![
                rec("a", 2, KeyState::Revoked),
                rec("new", 3, KeyState::Active),
            ],
            0,
        );
        let changed = sync(&mut v, &log);
        assert_eq!(changed.len(), 2);
        let stale_kv = Some(Rc::new(rec("a", 1, KeyState::Active).compile()));
        let merged = v.merge(&digest("a"), stale_kv).unwrap();
        assert_eq!(merged.record.state, KeyState::Revoked);
        // Even a newer active copy in KV never brings the key back.
        let bogus = Some(Rc::new(rec("a", 9, KeyState::Active).compile()));
        assert_eq!(
            v.merge(&digest("a"), bogus).unwrap().record.state,
            KeyState::Revoked
        );
        // A key missing from KV is found in the view (no pull needed).
        assert_eq!(v.merge(&digest("new"), None).unwrap().record.version, 3);
        // A newer KV record wins over an older learned one.
        let newer = Some(Rc::new(rec("new", 4, KeyState::Active).compile()));
        assert_eq!(v.merge(&digest("new"), newer).unwrap().record.version, 4);
        assert!(v.merge(&digest("unknown"), None).is_none());
    }

    #[test]
    fn the_cursor_advances_and_only_new_changes_come_back() {
        let mut log = ChangeLog::new("e1".into(), 0);
        let mut v = View::default();
        log.apply(vec![rec("a", 1, KeyState::Active)], 0);
        assert_eq!(sync(&mut v, &log).len(), 1);
        assert!(sync(&mut v, &log).is_empty());
        log.apply(vec![rec("b", 1, KeyState::Active)], 0);
        let changed = sync(&mut v, &log);
        assert_eq!(changed.len(), 1);
        assert_eq!(changed[0].record.key_digest, digest("b"));
        assert_eq!(v.cursor().0, 2);
    }

    #[test]
    fn pruned_changes_leave_the_view_and_a_new_epoch_resets_it() {
        let mut log = ChangeLog::new("e1".into(), 0);
        let mut v = View::default();
        log.apply(vec![rec("a", 1, KeyState::Active)], 0);
        sync(&mut v, &log);
        log.apply(vec![rec("b", 1, KeyState::Active)], 200_000);
        log.prune(200_000, 120_000);
        sync(&mut v, &log);
        assert!(v.get(&digest("a")).is_none(), "KV has it by now");
        assert!(v.get(&digest("b")).is_some());
        let mut reset = ChangeLog::new("e2".into(), 0);
        reset.apply(vec![rec("c", 1, KeyState::Active)], 0);
        sync(&mut v, &reset);
        assert_eq!(v.cursor(), (1, Some("e2")));
        assert!(v.get(&digest("b")).is_none() && v.get(&digest("c")).is_some());
    }
}
