//! Prometheus metrics of the registry (`banter_registry_*`, see docs/metrics.md).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};
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
    route: &'static str,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
    method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StorageLabels {
    backend: &'static str,
    operation: &'static str,
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
    backend: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabels {
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabels {
    action: String,
}

/// Storage operations (`operation` label), created at zero per backend so
/// error rates have a series before the first error.
pub const STORAGE_OPERATIONS: &[&str] = &[
    "ping",
    "publish",
    "pack",
    "versions_page",
    "exists",
    "version",
    "tagged",
    "latest",
    "lookup_with_content",
    "blob",
    "scan_blobs",
    "list",
    "set_tag",
    "set_yanked",
    "stats",
];

/// Error codes a rejected pack can carry (`validation_failures_total{code}`),
/// created at zero so rates and alerts have a series before the first one.
pub const VALIDATION_CODES: &[&str] = &["JSON_MALFORMED", "DUPLICATE_KEY", "PACK_INVALID", "PACK_TOO_LARGE"];

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
    validation_failures: Family<CodeLabels, Counter>,
    in_flight: Gauge,
    yanks: Family<ActionLabels, Counter>,
    tag_moves: Counter,
    blob_cache_hits: Counter,
    blob_cache_misses: Counter,
    blob_cache_evictions: Counter,
    blob_cache_bytes: Gauge,
    blob_cache_capacity: Gauge,
    redis_connected: Gauge,
    redis_connects: Family<ResultLabels, Counter>,
    redis_connection_errors: Counter,
    build: Family<BuildLabels, Gauge>,
    not_modified: Counter,
    scrubbed: Family<ResultLabels, Counter>,
    scrub_corrupt: Gauge,
    scrub_completed: Gauge,
    scrub_interval: Gauge,
    token_reloads: Family<ResultLabels, Counter>,
    storage_up: Family<BackendLabels, Gauge>,
    packs: Gauge,
    versions: Gauge,
    bytes: Gauge,
}

/// Decrements the in-flight gauge when the request is done (or dropped).
pub struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
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
        for result in ["created", "identical", "conflict"] {
            let _ = publishes.get_or_create(&ResultLabels {
                result: result.to_owned(),
            });
        }
        let validation_failures = Family::<CodeLabels, Counter>::default();
        for code in VALIDATION_CODES {
            let _ = validation_failures.get_or_create(&CodeLabels {
                code: (*code).to_owned(),
            });
        }
        let in_flight = Gauge::default();
        let yanks = Family::<ActionLabels, Counter>::default();
        for action in ["yank", "unyank"] {
            let _ = yanks.get_or_create(&ActionLabels {
                action: action.to_owned(),
            });
        }
        let tag_moves = Counter::default();
        let blob_cache_hits = Counter::default();
        let blob_cache_misses = Counter::default();
        let blob_cache_evictions = Counter::default();
        let blob_cache_bytes = Gauge::default();
        let blob_cache_capacity = Gauge::default();
        let redis_connected = Gauge::default();
        let redis_connects = Family::<ResultLabels, Counter>::default();
        let redis_connection_errors = Counter::default();
        let not_modified = Counter::default();
        let scrubbed = Family::<ResultLabels, Counter>::default();
        for result in ["verified", "corrupt"] {
            let _ = scrubbed.get_or_create(&ResultLabels { result: result.into() });
        }
        let scrub_corrupt = Gauge::default();
        let scrub_completed = Gauge::default();
        let scrub_interval = Gauge::default();
        let token_reloads = Family::<ResultLabels, Counter>::default();
        let storage_up = Family::<BackendLabels, Gauge>::default();
        let (packs, versions, bytes) = (Gauge::default(), Gauge::default(), Gauge::default());
        let build = Family::<BuildLabels, Gauge>::default();

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
            "Publishes rejected as malformed, oversized or invalid packs, by error code",
            validation_failures.clone(),
        );
        r.register(
            "banter_registry_http_requests_in_flight",
            "HTTP requests being served",
            in_flight.clone(),
        );
        r.register(
            "banter_registry_yanks",
            "Versions yanked or un-yanked, by action",
            yanks.clone(),
        );
        r.register("banter_registry_tag_moves", "Tags set or moved", tag_moves.clone());
        r.register(
            "banter_registry_blob_cache_hits",
            "Content reads served from the in-memory cache (no storage read, no hashing)",
            blob_cache_hits.clone(),
        );
        r.register(
            "banter_registry_blob_cache_misses",
            "Content reads that went to storage (then verified and cached)",
            blob_cache_misses.clone(),
        );
        r.register(
            "banter_registry_blob_cache_evictions",
            "Cached contents dropped to stay within the byte bound",
            blob_cache_evictions.clone(),
        );
        r.register(
            "banter_registry_blob_cache_bytes",
            "Bytes of content held in the cache",
            blob_cache_bytes.clone(),
        );
        r.register(
            "banter_registry_blob_cache_capacity_bytes",
            "The cache's byte bound (--blob-cache-bytes)",
            blob_cache_capacity.clone(),
        );
        r.register(
            "banter_registry_redis_connected",
            "Redis backend: 1 while the last command reached Redis, 0 after one failed on the connection",
            redis_connected.clone(),
        );
        r.register(
            "banter_registry_redis_connects",
            "Redis backend: new connections dialled (at first use and after a broken one was dropped), by result",
            redis_connects.clone(),
        );
        r.register(
            "banter_registry_redis_connection_errors",
            "Redis backend: commands that failed on a lost, refused or timed-out connection (it is re-dialled)",
            redis_connection_errors.clone(),
        );
        r.register(
            "banter_registry_not_modified",
            "Responses answered 304 Not Modified",
            not_modified.clone(),
        );
        r.register(
            "banter_registry_scrub_blobs",
            "Stored blobs read and hashed again by the background scrub, by result (verified, corrupt)",
            scrubbed.clone(),
        );
        r.register(
            "banter_registry_scrub_corrupt_blobs",
            "Blobs the last complete scrub pass found not matching their digest (0 before the first pass)",
            scrub_corrupt.clone(),
        );
        r.register(
            "banter_registry_scrub_last_complete_timestamp_seconds",
            "Unix time the last scrub pass over every stored blob completed (0: none yet)",
            scrub_completed.clone(),
        );
        r.register(
            "banter_registry_scrub_interval_seconds",
            "Time between the starts of two scrub passes, --scrub-interval (0: the scrub is off)",
            scrub_interval.clone(),
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
        r.register(
            "banter_registry_build_info",
            "Build information and storage backend (always 1)",
            build.clone(),
        );

        Self(Arc::new(Inner {
            registry,
            requests,
            request_duration,
            storage_duration,
            storage_errors,
            publishes,
            validation_failures,
            in_flight,
            yanks,
            tag_moves,
            blob_cache_hits,
            blob_cache_misses,
            blob_cache_evictions,
            blob_cache_bytes,
            blob_cache_capacity,
            redis_connected,
            redis_connects,
            redis_connection_errors,
            build,
            not_modified,
            scrubbed,
            scrub_corrupt,
            scrub_completed,
            scrub_interval,
            token_reloads,
            storage_up,
            packs,
            versions,
            bytes,
        }))
    }

    /// Counts one blob the scrub hashed again.
    pub fn scrubbed(&self, intact: bool) {
        self.0
            .scrubbed
            .get_or_create(&ResultLabels {
                result: if intact { "verified" } else { "corrupt" }.into(),
            })
            .inc();
    }

    /// Records the scrub's interval (zero: off), for the overdue alert.
    pub fn scrub_scheduled(&self, interval: Duration) {
        self.0
            .scrub_interval
            .set(i64::try_from(interval.as_secs()).unwrap_or(i64::MAX));
    }

    /// Records a complete scrub pass and what it found.
    pub fn scrub_completed(&self, corrupt: u64) {
        self.0.scrub_corrupt.set(i64::try_from(corrupt).unwrap_or(i64::MAX));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        self.0.scrub_completed.set(now);
    }

    /// Records one storage operation's latency.
    pub fn observe_storage(&self, backend: &'static str, operation: &'static str, elapsed: Duration) {
        self.0
            .storage_duration
            .get_or_create(&StorageLabels { backend, operation })
            .observe(elapsed.as_secs_f64());
    }

    /// Counts a failed storage operation.
    pub fn storage_error(&self, backend: &'static str, operation: &'static str) {
        self.0
            .storage_errors
            .get_or_create(&StorageLabels { backend, operation })
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

    /// Counts a rejected pack by its error code.
    pub fn validation_failure(&self, code: &'static str) {
        self.0
            .validation_failures
            .get_or_create(&CodeLabels { code: code.to_owned() })
            .inc();
    }

    /// Sets `build_info` for the backend this process serves, and creates
    /// its storage error series at zero.
    pub fn set_backend(&self, backend: &'static str) {
        for operation in STORAGE_OPERATIONS {
            let _ = self
                .0
                .storage_errors
                .get_or_create(&StorageLabels { backend, operation });
        }
        self.0.build.clear();
        self.0
            .build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_owned(),
                backend: backend.to_owned(),
            })
            .set(1);
    }

    /// Marks one request as being served until the guard drops.
    pub fn in_flight(&self) -> InFlight {
        self.0.in_flight.inc();
        InFlight(self.0.in_flight.clone())
    }

    /// Counts a yank (`true`) or un-yank.
    pub fn yank(&self, yanked: bool) {
        let action = if yanked { "yank" } else { "unyank" };
        self.0
            .yanks
            .get_or_create(&ActionLabels {
                action: action.to_owned(),
            })
            .inc();
    }

    /// Counts a tag set or moved.
    pub fn tag_moved(&self) {
        self.0.tag_moves.inc();
    }

    /// Redis backend: records whether the last command reached Redis.
    pub fn set_redis_connected(&self, connected: bool) {
        self.0.redis_connected.set(i64::from(connected));
    }

    /// Redis backend: counts a dial of a new connection.
    pub fn redis_connect(&self, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.0
            .redis_connects
            .get_or_create(&ResultLabels {
                result: result.to_owned(),
            })
            .inc();
        self.set_redis_connected(ok);
    }

    /// Redis backend: counts a command failed on the connection.
    pub fn redis_connection_error(&self) {
        self.0.redis_connection_errors.inc();
        self.set_redis_connected(false);
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

    /// Counts a content-cache lookup.
    pub fn blob_cache_lookup(&self, hit: bool) {
        if hit {
            self.0.blob_cache_hits.inc();
        } else {
            self.0.blob_cache_misses.inc();
        }
    }

    /// Counts contents evicted from the cache.
    pub fn blob_cache_evicted(&self, n: u64) {
        if n > 0 {
            self.0.blob_cache_evictions.inc_by(n);
        }
    }

    /// Records the cache's size and bound.
    pub fn set_blob_cache(&self, bytes: u64, capacity: u64) {
        self.0.blob_cache_bytes.set(i64::try_from(bytes).unwrap_or(i64::MAX));
        self.0
            .blob_cache_capacity
            .set(i64::try_from(capacity).unwrap_or(i64::MAX));
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

/// The `method` label values; any other method is `other` (a client chooses
/// the method freely: any token, of any length).
const METHODS: [&str; 7] = ["GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS", "other"];

/// The index of `method`'s label in [`METHODS`].
fn method_index(method: &http::Method) -> usize {
    use http::Method as M;
    match *method {
        M::GET => 0,
        M::HEAD => 1,
        M::PUT => 2,
        M::POST => 3,
        M::DELETE => 4,
        M::OPTIONS => 5,
        _ => 6,
    }
}

/// The `method` label of `method`: one of a fixed set, never the raw method.
pub fn method_label(method: &http::Method) -> &'static str {
    METHODS[method_index(method)]
}

/// Request count and latency by route template and method, each series
/// looked up once and then kept: a `Family` hashes its labels under a lock
/// on every use, and a request used three such lookups. Templates are the
/// router's own registered paths (a fixed, small set: never a raw path,
/// which would explode label cardinality), each leaked once per table as
/// the label (a server builds one router, and so one table).
pub struct RouteMetrics {
    metrics: Metrics,
    routes: RwLock<HashMap<Box<str>, Route, foldhash::fast::RandomState>>,
}

/// One route template's series, by method.
struct Route {
    label: &'static str,
    methods: [OnceLock<RouteSeries>; METHODS.len()],
}

/// One route and method: the latency histogram and a counter per status seen.
struct RouteSeries {
    labels: RouteLabels,
    duration: Histogram,
    statuses: RwLock<Vec<(u16, Counter)>>,
}

/// The route label of requests no route matched.
pub const UNMATCHED: &str = "unmatched";

impl RouteMetrics {
    /// An empty table over `metrics`.
    pub fn new(metrics: Metrics) -> Self {
        Self {
            metrics,
            routes: RwLock::new(HashMap::default()),
        }
    }

    /// Records one request of `template` (`None`: no route matched).
    pub fn observe(&self, template: Option<&str>, method: &http::Method, status: u16, elapsed: Duration) {
        let template = template.unwrap_or(UNMATCHED);
        let method = method_index(method);
        if let Ok(routes) = self.routes.read()
            && let Some(route) = routes.get(template)
        {
            self.series(route, method).observe(&self.metrics, status, elapsed);
            return;
        }
        // The template's first request: a poisoned table only means a
        // panic elsewhere, and its contents are still whole.
        let mut routes = self.routes.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let route = routes.entry(template.into()).or_insert_with(|| Route {
            label: Box::leak(template.to_owned().into_boxed_str()),
            methods: Default::default(),
        });
        self.series(route, method).observe(&self.metrics, status, elapsed);
    }

    fn series<'a>(&self, route: &'a Route, method: usize) -> &'a RouteSeries {
        route.methods[method].get_or_init(|| {
            let labels = RouteLabels {
                route: route.label,
                method: METHODS[method],
            };
            RouteSeries {
                duration: self.metrics.0.request_duration.get_or_create(&labels).clone(),
                labels,
                statuses: RwLock::default(),
            }
        })
    }
}

impl RouteSeries {
    fn observe(&self, metrics: &Metrics, status: u16, elapsed: Duration) {
        self.duration.observe(elapsed.as_secs_f64());
        let counted = self.statuses.read().ok().and_then(|statuses| {
            statuses.iter().find(|(s, _)| *s == status).map(|(_, counter)| {
                counter.inc();
            })
        });
        if counted.is_none() {
            let mut statuses = self.statuses.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some((_, counter)) = statuses.iter().find(|(s, _)| *s == status) {
                counter.inc();
            } else {
                let counter = metrics
                    .0
                    .requests
                    .get_or_create(&RequestLabels {
                        route: self.labels.route,
                        method: self.labels.method,
                        status,
                    })
                    .clone();
                counter.inc();
                statuses.push((status, counter));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Metrics, RouteMetrics, method_label};
    use http::Method;
    use std::time::Duration;

    #[test]
    fn methods_map_to_a_fixed_set() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::DELETE), "DELETE");
        assert_eq!(method_label(&Method::PATCH), "other");
        let custom = Method::from_bytes("X".repeat(60_000).as_bytes()).expect("a valid token");
        assert_eq!(method_label(&custom), "other");
    }

    #[test]
    fn route_series_are_the_families_own() {
        let metrics = Metrics::default();
        let routes = RouteMetrics::new(metrics.clone());
        let ms = Duration::from_millis(1);
        for _ in 0..3 {
            routes.observe(Some("/v1/packs/{name}"), &Method::GET, 200, ms);
        }
        routes.observe(Some("/v1/packs/{name}"), &Method::GET, 404, ms);
        routes.observe(
            Some("/v1/packs/{name}"),
            &Method::from_bytes(b"BREW").expect("a token"),
            405,
            ms,
        );
        routes.observe(None, &Method::GET, 404, ms);
        let text = metrics.encode().expect("the exposition encodes");
        let line = |series: &str| {
            text.lines()
                .find(|l| l.starts_with(series))
                .unwrap_or_else(|| panic!("{series} missing from\n{text}"))
                .rsplit(' ')
                .next()
                .map(str::to_owned)
        };
        let requests = "banter_registry_http_requests_total";
        let count = "banter_registry_http_request_duration_seconds_count";
        assert_eq!(
            line(&format!(
                "{requests}{{route=\"/v1/packs/{{name}}\",method=\"GET\",status=\"200\"}}"
            ))
            .as_deref(),
            Some("3")
        );
        assert_eq!(
            line(&format!(
                "{requests}{{route=\"/v1/packs/{{name}}\",method=\"GET\",status=\"404\"}}"
            ))
            .as_deref(),
            Some("1")
        );
        assert_eq!(
            line(&format!(
                "{requests}{{route=\"/v1/packs/{{name}}\",method=\"other\",status=\"405\"}}"
            ))
            .as_deref(),
            Some("1")
        );
        assert_eq!(
            line(&format!(
                "{requests}{{route=\"unmatched\",method=\"GET\",status=\"404\"}}"
            ))
            .as_deref(),
            Some("1")
        );
        assert_eq!(
            line(&format!("{count}{{route=\"/v1/packs/{{name}}\",method=\"GET\"}}")).as_deref(),
            Some("4")
        );
    }
}
