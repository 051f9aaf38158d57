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

/// Every metric the operator exports.
pub struct Metrics {
    registry: Registry,
    reconciliations: Counter,
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
        Self {
            leader,
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
        for (condition, status) in map.values().flatten() {
            self.by_condition
                .get_or_create(&ConditionLabels {
                    condition: condition.clone(),
                    status: status.clone(),
                })
                .inc();
        }
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

async fn metrics_handler(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    match m.encode() {
        Ok(text) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
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
