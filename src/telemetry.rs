//! Prometheus metrics of the reconciler, served at `/metrics` (text exposition format).

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::store::status::PassRecord;

type Labels = Vec<(&'static str, String)>;

pub struct Metrics {
    registry: Registry,
    reconcile_duration: Histogram,
    last_success: Gauge<f64, AtomicU64>,
    tenants: Family<Labels, Gauge>,
    drifted: Gauge,
    errors: Family<Labels, Counter>,
    /// Application requests refused over their key's rate limit.
    pub rate_limited: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("gatehouse");
        let reconcile_duration = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        let last_success = Gauge::<f64, AtomicU64>::default();
        let tenants = Family::<Labels, Gauge>::default();
        let drifted = Gauge::default();
        let errors = Family::<Labels, Counter>::default();
        let rate_limited = Counter::default();
        registry.register("reconcile_duration_seconds", "Duration of reconcile passes", reconcile_duration.clone());
        registry.register(
            "last_successful_sync_timestamp_seconds",
            "Unix time of the last pass that converged every tenant",
            last_success.clone(),
        );
        registry.register("tenants", "Tenants by sync state, as of the last pass", tenants.clone());
        registry.register("drifted_resources", "Resources drifted from Git, as of the last pass", drifted.clone());
        registry.register("reconcile_errors", "Failed reconcile passes by kind of error", errors.clone());
        registry.register(
            "api_key_rate_limited",
            "Application requests refused over their API key's rate limit",
            rate_limited.clone(),
        );
        Metrics { registry, reconcile_duration, last_success, tenants, drifted, errors, rate_limited }
    }
}

impl Metrics {
    pub fn pass_finished(&self, elapsed: Duration, succeeded: bool) {
        self.reconcile_duration.observe(elapsed.as_secs_f64());
        if succeeded {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            self.last_success.set(now.as_secs_f64());
        }
    }

    pub fn observe(&self, record: &PassRecord) {
        if let Some(counts) = record.counts.as_object() {
            for (state, count) in counts {
                self.tenants.get_or_create(&vec![("state", state.clone())]).set(count.as_i64().unwrap_or(0));
            }
        }
        let drifted = record.tenants.iter().flatten().map(|t| t.drift.as_array().map_or(0, Vec::len)).sum::<usize>();
        self.drifted.set(i64::try_from(drifted).unwrap_or(i64::MAX));
    }

    pub fn error(&self, kind: &'static str) {
        self.errors.get_or_create(&vec![("kind", kind.to_owned())]).inc();
    }

    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}
