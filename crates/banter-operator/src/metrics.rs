//! Operator metrics and the `/metrics`, `/healthz`, `/readyz` endpoints.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use banter_contract::exposition;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of the error counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// Bounded error reason (e.g. Conflict, ServerError).
    pub reason: String,
}

/// Labels of the registries-by-condition gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConditionLabels {
    /// Condition type.
    pub condition: String,
    /// True, False or Unknown.
    pub status: String,
}

/// Labels of the child-apply counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApplyLabels {
    /// Child kind (Deployment, Service, …): a fixed set.
    pub kind: String,
    /// `applied` (written), `unchanged` (nothing to send) or `failed`.
    pub result: String,
}

/// Labels of the Kubernetes API request counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiLabels {
    /// get, list, watch, create, update, patch, delete or other.
    pub verb: String,
    /// Resource plural of the operator's own kinds, `discovery`, or `other`.
    pub resource: String,
    /// HTTP status code, or `transport` when no response arrived.
    pub code: String,
}

/// Labels naming one watched resource.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResourceLabels {
    /// Resource plural.
    pub resource: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
}

/// Condition types and statuses of `registries`, every pair present (at 0
/// when no registry is in that state), so "how many are not Ready" is a
/// number, never an empty result.
const CONDITIONS: &[&str] = &[
    "Ready",
    "StorageReady",
    "RegistryReady",
    "MonitoringReady",
    "ExposureReady",
];
const STATUSES: &[&str] = &["True", "False", "Unknown"];

/// Results of `child_applies_total`.
const APPLY_RESULTS: &[&str] = &["applied", "unchanged", "failed"];

/// Reasons `reconcile_errors_total` can carry, created at zero so a rate
/// and an alert see a series before the first failure.
pub const ERROR_REASONS: &[&str] = &[
    "Conflict",
    "NotFound",
    "Forbidden",
    "Invalid",
    "TooManyRequests",
    "ServerError",
    "ApiError",
    "Transport",
    "Finalizer",
    "Serialization",
    "MissingMetadata",
    "CacheNotSynced",
    "ReplicasHandOver",
];

/// Creates every condition/status pair of `registries` at 0.
fn zero_conditions(family: &Family<ConditionLabels, Gauge>) {
    for condition in CONDITIONS {
        for status in STATUSES {
            let _ = family.get_or_create(&ConditionLabels {
                condition: (*condition).to_string(),
                status: (*status).to_string(),
            });
        }
    }
}

/// Every metric the operator exports.
pub struct Metrics {
    registry: Registry,
    reconciliations: Counter,
    applies: Family<ApplyLabels, Counter>,
    api_requests: Family<ApiLabels, Counter>,
    api_errors: Family<ApiLabels, Counter>,
    watch_restarts: Family<ResourceLabels, Counter>,
    watch_errors: Family<ResourceLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    duration: Histogram,
    by_condition: Family<ConditionLabels, Gauge>,
    // Per registry (namespace/name): its condition statuses, from which the
    // gauge is recomputed so deleted registries drop out.
    conditions: Mutex<HashMap<String, Vec<(String, String)>>>,
    ready: AtomicBool,
    leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("banter_operator");
        let reconciliations = Counter::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let duration = Histogram::new(exponential_buckets(0.005, 2.0, 12));
        let by_condition = Family::<ConditionLabels, Gauge>::default();
        zero_conditions(&by_condition);
        registry.register("reconciliations", "Reconciliations started", reconciliations.clone());
        registry.register("reconcile_errors", "Failed reconciliations by reason", errors.clone());
        registry.register(
            "reconcile_duration_seconds",
            "Duration of reconciliations",
            duration.clone(),
        );
        registry.register(
            "registries",
            "BanterRegistries by condition and status",
            by_condition.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica holds the leader Lease (or runs without leader election)",
            leader.clone(),
        );
        let applies = Family::<ApplyLabels, Counter>::default();
        registry.register(
            "child_applies",
            "Child objects the reconciler handled, by kind and result (applied, unchanged, failed)",
            applies.clone(),
        );
        let api_requests = Family::<ApiLabels, Counter>::default();
        registry.register(
            "kube_api_requests",
            "Requests to the Kubernetes API server by verb, resource and status code",
            api_requests.clone(),
        );
        let api_errors = Family::<ApiLabels, Counter>::default();
        registry.register(
            "kube_api_errors",
            "Kubernetes API requests that failed (status >= 400 or no response), by verb, resource and code",
            api_errors.clone(),
        );
        let watch_restarts = Family::<ResourceLabels, Counter>::default();
        registry.register(
            "watch_restarts",
            "Watches that had to list again from scratch after their first list, by resource",
            watch_restarts.clone(),
        );
        let watch_errors = Family::<ResourceLabels, Counter>::default();
        registry.register(
            "watch_errors",
            "Errors of a watch stream (it backs off and resumes), by resource",
            watch_errors.clone(),
        );
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_owned(),
            })
            .set(1);
        registry.register("build_info", "Build information (always 1)", build);
        for kind in crate::children::ChildKind::ALL {
            for result in APPLY_RESULTS {
                let _ = applies.get_or_create(&ApplyLabels {
                    kind: kind.api_resource().kind,
                    result: (*result).to_string(),
                });
            }
        }
        for reason in ERROR_REASONS {
            let _ = errors.get_or_create(&ErrorLabels {
                reason: (*reason).to_string(),
            });
        }
        Self {
            leader,
            applies,
            api_requests,
            api_errors,
            watch_restarts,
            watch_errors,
            registry,
            reconciliations,
            errors,
            duration,
            by_condition,
            conditions: Mutex::new(HashMap::new()),
            ready: AtomicBool::new(false),
        }
    }
}

impl Metrics {
    /// Counts a reconciliation.
    pub fn reconciled(&self, took: Duration) {
        self.reconciliations.inc();
        self.duration.observe(took.as_secs_f64());
    }

    /// Counts a failed reconciliation.
    pub fn failed(&self, reason: &str) {
        self.errors
            .get_or_create(&ErrorLabels {
                reason: reason.to_string(),
            })
            .inc();
    }

    /// Failed reconciliations counted so far for `reason`.
    pub fn failures(&self, reason: &str) -> u64 {
        self.errors
            .get_or_create(&ErrorLabels {
                reason: reason.to_string(),
            })
            .get()
    }

    /// Records the condition statuses of one registry (`None`: it is gone).
    pub fn set_conditions(&self, key: &str, conditions: Option<Vec<(String, String)>>) {
        let Ok(mut map) = self.conditions.lock() else {
            return;
        };
        match conditions {
            Some(c) => {
                map.insert(key.to_string(), c);
            }
            None => {
                map.remove(key);
            }
        }
        self.by_condition.clear();
        zero_conditions(&self.by_condition);
        for (condition, status) in map.values().flatten() {
            self.by_condition
                .get_or_create(&ConditionLabels {
                    condition: condition.clone(),
                    status: status.clone(),
                })
                .inc();
        }
    }

    /// Counts one child handled by a reconcile.
    pub fn child_applied(&self, kind: &str, result: &str) {
        self.applies
            .get_or_create(&ApplyLabels {
                kind: kind.to_string(),
                result: result.to_string(),
            })
            .inc();
    }

    /// Children of `kind` counted so far with `result`.
    pub fn child_applies(&self, kind: &str, result: &str) -> u64 {
        self.applies
            .get_or_create(&ApplyLabels {
                kind: kind.to_string(),
                result: result.to_string(),
            })
            .get()
    }

    /// Counts one request to the API server; `code` is `None` when no
    /// response arrived.
    pub fn kube_api_request(&self, verb: &'static str, resource: &'static str, code: Option<u16>) {
        let labels = ApiLabels {
            verb: verb.to_string(),
            resource: resource.to_string(),
            code: code.map_or_else(|| "transport".to_string(), |c| c.to_string()),
        };
        if code.is_none_or(|c| c >= 400) {
            self.api_errors.get_or_create(&labels).inc();
        }
        self.api_requests.get_or_create(&labels).inc();
    }

    /// Counts a watch that listed again after its first list.
    pub fn watch_restarted(&self, resource: &str) {
        self.watch_restarts
            .get_or_create(&ResourceLabels {
                resource: resource.to_string(),
            })
            .inc();
    }

    /// Counts an error of a watch stream.
    pub fn watch_failed(&self, resource: &str) {
        self.watch_errors
            .get_or_create(&ResourceLabels {
                resource: resource.to_string(),
            })
            .inc();
    }

    /// Creates the per-resource watch series at zero, so they exist before
    /// the first restart.
    pub fn watching(&self, resource: &str) {
        let labels = ResourceLabels {
            resource: resource.to_string(),
        };
        let _ = self.watch_restarts.get_or_create(&labels);
        let _ = self.watch_errors.get_or_create(&labels);
    }

    /// Records whether this replica leads (and so reconciles).
    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// Marks the operator ready (answers /readyz with 200).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// Prometheus text exposition of every metric.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// The HTTP router serving metrics and health.
pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(metrics)
}

async fn metrics_handler(State(m): State<Arc<Metrics>>, headers: axum::http::HeaderMap) -> impl IntoResponse {
    match m.encode() {
        Ok(text) => {
            let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
            let (text, content_type) = exposition::negotiate(accept, text);
            (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], text).into_response()
        }
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn readyz(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    if m.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

/// Serves [`router`] on `addr` until the process ends.
pub async fn serve(addr: SocketAddr, metrics: Arc<Metrics>) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, router(metrics)).await
}
