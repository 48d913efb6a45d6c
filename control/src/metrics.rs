//! `/metrics` in Prometheus' text format (the `prometheus` crate): process counters plus
//! gauges read from the database at scrape time (so every replica reports the shared truth).

use std::sync::LazyLock;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use prometheus::{
    Encoder, Gauge, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

use crate::http::AppState;
use crate::store;

/// Every metric this replica serves.
pub struct Metrics {
    registry: Registry,
    /// HTTP responses by status class (`keygate_http_responses_total{class}`), one counter
    /// per class of [`CLASSES`], resolved once (a label lookup per response hashes and locks).
    by_class: [IntCounter; 3],
    /// Outbox rows the edge acknowledged (this replica).
    pub edge_delivered: IntCounter,
    /// Failed edge delivery attempts (this replica).
    pub edge_failures: IntCounter,
    /// Records the edge refused, set aside as dead letters (this replica).
    pub edge_dead_lettered: IntCounter,
    /// Records re-issued with a newer version because the edge held a newer one.
    pub edge_reissued: IntCounter,
    outbox_pending: IntGauge,
    outbox_lag_seconds: Gauge,
    dead_letters: IntGauge,
}

/// The metrics, registered on first use.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The status classes counted (every one is served, from 0).
const CLASSES: [&str; 3] = ["2xx", "4xx", "5xx"];

impl Metrics {
    fn new() -> Metrics {
        let registry = Registry::new();
        let counter = |name: &str, help: &str| registered(&registry, IntCounter::new(name, help));
        let gauge = |name: &str, help: &str| registered(&registry, IntGauge::new(name, help));
        let http_responses = registered(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "keygate_http_responses_total",
                    "HTTP responses by status class.",
                ),
                &["class"],
            ),
        );
        let by_class = CLASSES.map(|class| http_responses.with_label_values(&[class]));
        Metrics {
            by_class,
            edge_delivered: counter(
                "keygate_edge_delivered_total",
                "Edge updates acknowledged (this replica).",
            ),
            edge_failures: counter(
                "keygate_edge_delivery_failures_total",
                "Failed edge delivery attempts (this replica).",
            ),
            edge_dead_lettered: counter(
                "keygate_edge_dead_lettered_total",
                "Records set aside as dead letters (this replica).",
            ),
            edge_reissued: counter(
                "keygate_edge_reissued_total",
                "Records re-issued past a newer version the edge held (this replica).",
            ),
            outbox_pending: gauge(
                "keygate_edge_outbox_pending",
                "Edge updates not yet acknowledged by the edge.",
            ),
            outbox_lag_seconds: registered(
                &registry,
                Gauge::new(
                    "keygate_edge_outbox_lag_seconds",
                    "Age of the oldest undelivered edge update.",
                ),
            ),
            dead_letters: gauge(
                "keygate_edge_dead_letters",
                "Edge records refused by the edge and set aside (retry: keygate outbox retry).",
            ),
            registry,
        }
    }
}

/// `metric`, registered in `registry`. Names and help texts are constants, so failing here
/// is a programming error caught by every test that starts a server.
fn registered<M>(registry: &Registry, metric: prometheus::Result<M>) -> M
where
    M: prometheus::core::Collector + Clone + 'static,
{
    let metric = metric.expect("a valid metric");
    registry
        .register(Box::new(metric.clone()))
        .expect("metric names are unique");
    metric
}

/// Counts a response of `status` by its class.
pub fn count_response(status: axum::http::StatusCode) {
    let class = match status.as_u16() {
        200..=399 => 0,
        400..=499 => 1,
        _ => 2,
    };
    METRICS.by_class[class].inc();
}

/// Prometheus metrics.
#[utoipa::path(
    get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Metrics in Prometheus' text format", content_type = "text/plain", body = String)),
)]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let m = &*METRICS;
    match store::delivery::outbox_stats(&state.db).await {
        Ok(stats) => {
            m.outbox_pending.set(stats.pending);
            m.dead_letters.set(stats.dead);
            let lag = stats
                .oldest_pending_at
                .map(|t| (crate::ids::now_ms() - t).max(0) as f64 / 1000.0);
            m.outbox_lag_seconds.set(lag.unwrap_or(0.0));
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the outbox for /metrics");
            m.outbox_pending.set(-1);
            m.dead_letters.set(-1);
            m.outbox_lag_seconds.set(0.0);
        }
    }
    let encoder = TextEncoder::new();
    let mut body = Vec::new();
    if let Err(e) = encoder.encode(&m.registry.gather(), &mut body) {
        tracing::error!(error = %e, "cannot encode the metrics");
    }
    (
        [(header::CONTENT_TYPE, encoder.format_type().to_owned())],
        body,
    )
}
