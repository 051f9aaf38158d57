//! Prometheus metrics of the registry (`banter_registry_*`, see docs/metrics.md).

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::storage::Stats;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
    method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StorageLabels {
    backend: String,
    operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackendLabels {
    backend: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
}

fn latency_histogram() -> Histogram {
    // 100µs .. ~6.5s: covers a cached read on loopback up to a stuck backend.
    Histogram::new(exponential_buckets(0.0001, 2.0, 17))
}

struct Inner {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
    storage_duration: Family<StorageLabels, Histogram, fn() -> Histogram>,
    storage_errors: Family<StorageLabels, Counter>,
    publishes: Family<ResultLabels, Counter>,
    validation_failures: Counter,
    not_modified: Counter,
    token_reloads: Family<ResultLabels, Counter>,
    storage_up: Family<BackendLabels, Gauge>,
    packs: Gauge,
    versions: Gauge,
    bytes: Gauge,
}

/// Handle to the registry's metrics; cheap to clone.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let request_duration = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let storage_duration = Family::<StorageLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let storage_errors = Family::<StorageLabels, Counter>::default();
        let publishes = Family::<ResultLabels, Counter>::default();
        let validation_failures = Counter::default();
        let not_modified = Counter::default();
        let token_reloads = Family::<ResultLabels, Counter>::default();
        let storage_up = Family::<BackendLabels, Gauge>::default();
        let (packs, versions, bytes) = (Gauge::default(), Gauge::default(), Gauge::default());
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_owned(),
            })
            .set(1);

        let r = &mut registry;
        r.register(
            "banter_registry_http_requests",
            "HTTP requests by route template, method and status",
            requests.clone(),
        );
        r.register(
            "banter_registry_http_request_duration_seconds",
            "HTTP request latency by route template and method",
            request_duration.clone(),
        );
        r.register(
            "banter_registry_storage_operation_duration_seconds",
            "Storage operation latency by backend and operation",
            storage_duration.clone(),
        );
        r.register(
            "banter_registry_storage_errors",
            "Failed storage operations by backend and operation",
            storage_errors.clone(),
        );
        r.register(
            "banter_registry_publishes",
            "Publish attempts that reached storage, by result (created, identical, conflict)",
            publishes.clone(),
        );
        r.register(
            "banter_registry_validation_failures",
            "Publishes rejected as malformed or invalid packs",
            validation_failures.clone(),
        );
        r.register(
            "banter_registry_not_modified",
            "Responses answered 304 Not Modified",
            not_modified.clone(),
        );
        r.register(
            "banter_registry_token_reloads",
            "Reloads of the publish token file after it changed, by result (ok, error: the previous tokens stay in force)",
            token_reloads.clone(),
        );
        r.register(
            "banter_registry_storage_up",
            "1 when the storage backend answered the last readiness check",
            storage_up.clone(),
        );
        r.register("banter_registry_packs", "Packs stored", packs.clone());
        r.register("banter_registry_versions", "Versions stored", versions.clone());
        r.register("banter_registry_bytes", "Bytes of pack content stored", bytes.clone());
        r.register("banter_registry_build_info", "Build information (always 1)", build);

        Self(Arc::new(Inner {
            registry,
            requests,
            request_duration,
            storage_duration,
            storage_errors,
            publishes,
            validation_failures,
            not_modified,
            token_reloads,
            storage_up,
            packs,
            versions,
            bytes,
        }))
    }

    /// Records one HTTP request.
    pub fn observe_http(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        let labels = RouteLabels {
            route: route.to_owned(),
            method: method.to_owned(),
        };
        self.0
            .request_duration
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
        self.0
            .requests
            .get_or_create(&RequestLabels {
                route: labels.route,
                method: labels.method,
                status,
            })
            .inc();
    }

    /// Records one storage operation's latency.
    pub fn observe_storage(&self, backend: &str, operation: &str, elapsed: Duration) {
        self.0
            .storage_duration
            .get_or_create(&StorageLabels {
                backend: backend.to_owned(),
                operation: operation.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Counts a failed storage operation.
    pub fn storage_error(&self, backend: &str, operation: &str) {
        self.0
            .storage_errors
            .get_or_create(&StorageLabels {
                backend: backend.to_owned(),
                operation: operation.to_owned(),
            })
            .inc();
    }

    /// Counts a publish by result.
    pub fn publish(&self, result: &str) {
        self.0
            .publishes
            .get_or_create(&ResultLabels {
                result: result.to_owned(),
            })
            .inc();
    }

    /// Counts a rejected pack.
    pub fn validation_failure(&self) {
        self.0.validation_failures.inc();
    }

    /// Counts a reload of the token file (`ok` or `error`).
    pub fn token_reload(&self, result: &str) {
        self.0
            .token_reloads
            .get_or_create(&ResultLabels {
                result: result.to_owned(),
            })
            .inc();
    }

    /// Counts a 304.
    pub fn not_modified(&self) {
        self.0.not_modified.inc();
    }

    /// Records whether the backend answered its last check.
    pub fn set_storage_up(&self, backend: &str, up: bool) {
        self.0
            .storage_up
            .get_or_create(&BackendLabels {
                backend: backend.to_owned(),
            })
            .set(i64::from(up));
    }

    /// Updates the stored-content gauges.
    pub fn set_stats(&self, stats: Stats) {
        self.0.packs.set(i64::try_from(stats.packs).unwrap_or(i64::MAX));
        self.0.versions.set(i64::try_from(stats.versions).unwrap_or(i64::MAX));
        self.0.bytes.set(i64::try_from(stats.bytes).unwrap_or(i64::MAX));
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.0.registry)?;
        Ok(out)
    }
}
