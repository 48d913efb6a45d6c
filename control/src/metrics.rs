//! `/metrics` in Prometheus' text format: a few process counters plus gauges read from the
//! database at scrape time (so every replica reports the shared truth).

use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::http::AppState;
use crate::with_db;

/// A monotonically increasing counter.
pub struct Counter(AtomicU64);

impl Counter {
    const fn new() -> Self {
        Counter(AtomicU64::new(0))
    }

    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Outbox rows the edge acknowledged (this replica).
pub static EDGE_DELIVERED: Counter = Counter::new();
/// Failed edge delivery attempts (this replica).
pub static EDGE_FAILURES: Counter = Counter::new();
/// Records the edge refused, set aside as dead letters (this replica).
pub static EDGE_DEAD_LETTERED: Counter = Counter::new();
/// Records re-issued with a newer version because the edge held a newer one (this replica).
pub static EDGE_REISSUED: Counter = Counter::new();
/// HTTP requests answered (this replica), by class.
pub static HTTP_2XX: Counter = Counter::new();
/// 4xx answers.
pub static HTTP_4XX: Counter = Counter::new();
/// 5xx answers.
pub static HTTP_5XX: Counter = Counter::new();

/// Counts responses by status class.
pub async fn count_responses(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let res = next.run(req).await;
    match res.status().as_u16() {
        200..=399 => HTTP_2XX.add(1),
        400..=499 => HTTP_4XX.add(1),
        _ => HTTP_5XX.add(1),
    }
    res
}

/// `GET /metrics`.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let pending: i64 = with_db!(&state.db, |pool| {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM edge_outbox WHERE delivered_at IS NULL AND dead_at IS NULL",
        )
        .fetch_one(pool)
        .await
    })
    .unwrap_or(-1);
    let oldest: Option<i64> = with_db!(&state.db, |pool| {
        sqlx::query_scalar(
            "SELECT MIN(created_at) FROM edge_outbox WHERE delivered_at IS NULL AND dead_at IS NULL",
        )
            .fetch_one(pool)
            .await
    })
    .unwrap_or(None);
    let dead: i64 = with_db!(&state.db, |pool| {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM edge_outbox WHERE dead_at IS NOT NULL AND delivered_at IS NULL",
        )
        .fetch_one(pool)
        .await
    })
    .unwrap_or(-1);
    let lag = oldest
        .map(|t| (crate::ids::now_ms() - t).max(0) as f64 / 1000.0)
        .unwrap_or(0.0);
    let body = format!(
        "# HELP keygate_http_responses_total HTTP responses by status class.\n\
         # TYPE keygate_http_responses_total counter\n\
         keygate_http_responses_total{{class=\"2xx\"}} {}\n\
         keygate_http_responses_total{{class=\"4xx\"}} {}\n\
         keygate_http_responses_total{{class=\"5xx\"}} {}\n\
         # HELP keygate_edge_outbox_pending Edge updates not yet acknowledged by the edge.\n\
         # TYPE keygate_edge_outbox_pending gauge\n\
         keygate_edge_outbox_pending {pending}\n\
         # HELP keygate_edge_outbox_lag_seconds Age of the oldest undelivered edge update.\n\
         # TYPE keygate_edge_outbox_lag_seconds gauge\n\
         keygate_edge_outbox_lag_seconds {lag:.3}\n\
         # HELP keygate_edge_dead_letters Edge records refused by the edge and set aside (retry: keygate outbox retry).\n\
         # TYPE keygate_edge_dead_letters gauge\n\
         keygate_edge_dead_letters {dead}\n\
         # HELP keygate_edge_dead_lettered_total Records set aside as dead letters (this replica).\n\
         # TYPE keygate_edge_dead_lettered_total counter\n\
         keygate_edge_dead_lettered_total {}\n\
         # HELP keygate_edge_reissued_total Records re-issued past a newer version the edge held (this replica).\n\
         # TYPE keygate_edge_reissued_total counter\n\
         keygate_edge_reissued_total {}\n\
         # HELP keygate_edge_delivered_total Edge updates acknowledged (this replica).\n\
         # TYPE keygate_edge_delivered_total counter\n\
         keygate_edge_delivered_total {}\n\
         # HELP keygate_edge_delivery_failures_total Failed edge delivery attempts (this replica).\n\
         # TYPE keygate_edge_delivery_failures_total counter\n\
         keygate_edge_delivery_failures_total {}\n",
        HTTP_2XX.get(),
        HTTP_4XX.get(),
        HTTP_5XX.get(),
        EDGE_DEAD_LETTERED.get(),
        EDGE_REISSUED.get(),
        EDGE_DELIVERED.get(),
        EDGE_FAILURES.get(),
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}
