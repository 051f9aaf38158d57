//! Computing and writing `BanterRegistry.status`.

use std::collections::BTreeMap;

use banter_api::{Backend, BanterRegistry, BanterRegistryStatus, ConditionType};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource};
use serde_json::{Value, json};

use crate::Error;
use crate::children::ChildKind;
use crate::conditions::{ConditionUpdate, merge, reasons};
use crate::labels::names;
use crate::settings::FIELD_MANAGER;

/// Objects observed in the cluster, by kind and name.
pub type Observed = BTreeMap<(ChildKind, String), Value>;

fn int_at(v: Option<&Value>, pointer: &str) -> i64 {
    v.and_then(|v| v.pointer(pointer)).and_then(Value::as_i64).unwrap_or(0)
}

/// Whether the Deployment has observed its latest spec and every replica
/// runs it. A Deployment that reports no rollout fields (older observations)
/// is judged by readiness alone.
fn rolled_out(deployment: Option<&Value>, replicas: i32) -> bool {
    let Some(status) = deployment.and_then(|d| d.get("status")) else {
        return true;
    };
    let generation = int_at(deployment, "/metadata/generation");
    let observed = status.get("observedGeneration").and_then(Value::as_i64);
    let updated = status.get("updatedReplicas").and_then(Value::as_i64);
    let total = status.get("replicas").and_then(Value::as_i64).unwrap_or(0);
    let current = observed.is_none_or(|o| o >= generation);
    // Surplus old pods (total > replicas) mean the rollout is still replacing.
    let replaced = updated.is_none_or(|u| u >= i64::from(replicas) && total <= i64::from(replicas));
    current && replaced
}

/// Whether the Deployment serves on its current template: its status is
/// known, at least one pod is ready and the rollout has finished.
pub fn serving(deployment: Option<&Value>) -> bool {
    let wanted = deployment
        .and_then(|d| d.pointer("/spec/replicas"))
        .and_then(Value::as_i64)
        .and_then(|r| i32::try_from(r).ok())
        .unwrap_or(1);
    deployment.is_some_and(|d| d.get("status").is_some())
        && int_at(deployment, "/status/readyReplicas") >= 1
        && rolled_out(deployment, wanted)
}

/// What the reconciler found out besides the children themselves.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Findings {
    /// Which optional kinds (monitoring, Gateway API) are served.
    pub apis: crate::discovery::OptionalApis,
    /// The Secret named by `spec.auth.secretName`, when it does not exist.
    pub missing_auth_secret: Option<String>,
}

/// Status for a valid spec, from the children as they are after this
/// reconcile's writes: a child patched in this pass counts as rolled out
/// only once its own status says so.
pub fn compute(
    registry: &BanterRegistry,
    observed: &Observed,
    findings: &Findings,
    urls: Urls,
    now: &Time,
) -> BanterRegistryStatus {
    let served = findings.apis;
    let name = registry.metadata.name.clone().unwrap_or_default();
    let spec = &registry.spec;
    let previous = registry.status.clone().unwrap_or_default();
    let deployment = observed.get(&(ChildKind::Deployment, names::registry(&name)));
    let ready_replicas = int_at(deployment, "/status/readyReplicas");
    let ready_replicas = i32::try_from(ready_replicas).unwrap_or(i32::MAX);

    let storage = match spec.storage.backend {
        Backend::Sqlite => {
            let pvc = observed.get(&(ChildKind::PersistentVolumeClaim, names::sqlite_data(&name)));
            let phase = pvc.and_then(|p| p.pointer("/status/phase")).and_then(Value::as_str);
            if phase == Some("Bound") {
                ConditionUpdate::new(
                    ConditionType::StorageReady,
                    true,
                    reasons::PVC_BOUND,
                    "SQLite volume is bound",
                )
            } else {
                ConditionUpdate::new(
                    ConditionType::StorageReady,
                    false,
                    reasons::PVC_PENDING,
                    format!(
                        "waiting for PersistentVolumeClaim {} to be bound",
                        names::sqlite_data(&name)
                    ),
                )
            }
        }
        Backend::Redis if spec.storage.redis.external.is_some() => {
            // The registry's readiness probe checks its backend: a ready pod
            // is one that reached the external Redis.
            let target = spec
                .storage
                .redis
                .external
                .as_ref()
                .map(|e| format!("{}:{}", e.host, e.port))
                .unwrap_or_default();
            if ready_replicas >= 1 {
                ConditionUpdate::new(
                    ConditionType::StorageReady,
                    true,
                    reasons::EXTERNAL_REDIS_REACHABLE,
                    format!("{ready_replicas} registry pods reach the external Redis {target}"),
                )
            } else {
                ConditionUpdate::new(
                    ConditionType::StorageReady,
                    false,
                    reasons::EXTERNAL_REDIS_UNREACHABLE,
                    format!(
                        "no registry pod is ready, so none has confirmed the external Redis {target} reachable (their readiness checks it; RegistryReady and the pod events say why no pod is ready)"
                    ),
                )
            }
        }
        Backend::Redis => {
            let sts = observed.get(&(ChildKind::StatefulSet, names::redis(&name)));
            if int_at(sts, "/status/readyReplicas") >= 1 {
                ConditionUpdate::new(
                    ConditionType::StorageReady,
                    true,
                    reasons::REDIS_READY,
                    "Redis is ready",
                )
            } else {
                ConditionUpdate::new(
                    ConditionType::StorageReady,
                    false,
                    reasons::REDIS_NOT_READY,
                    format!("waiting for StatefulSet {} to be ready", names::redis(&name)),
                )
            }
        }
    };

    // With an autoscaler: as many as it currently wants, and enough once
    // its minimum is ready (a scale-up in progress is not an outage).
    let (desired, enough) = match spec.autoscaling.as_ref().filter(|a| a.enabled) {
        Some(a) => {
            let wanted = deployment
                .and_then(|d| d.pointer("/spec/replicas"))
                .and_then(Value::as_i64)
                .and_then(|r| i32::try_from(r).ok())
                .unwrap_or(a.min_replicas);
            (wanted, a.min_replicas.min(wanted))
        }
        None => (spec.replicas, spec.replicas),
    };
    let registry_cond = if let Some(secret) = &findings.missing_auth_secret {
        ConditionUpdate::new(
            ConditionType::RegistryReady,
            false,
            reasons::AUTH_SECRET_MISSING,
            format!(
                "Secret {secret} named by spec.auth.secretName does not exist; create it with the publish tokens under key `tokens`"
            ),
        )
    } else if ready_replicas >= enough && !rolled_out(deployment, desired) {
        // Old pods can stay ready while new ones crash-loop: not ready until
        // the Deployment has observed the change and replaced every pod.
        ConditionUpdate::new(
            ConditionType::RegistryReady,
            false,
            reasons::ROLLOUT_IN_PROGRESS,
            format!(
                "{}/{} replicas run the current configuration",
                int_at(deployment, "/status/updatedReplicas"),
                desired
            ),
        )
    } else if ready_replicas >= enough {
        ConditionUpdate::new(
            ConditionType::RegistryReady,
            true,
            reasons::REPLICAS_READY,
            format!("{ready_replicas}/{desired} replicas ready"),
        )
    } else {
        ConditionUpdate::new(
            ConditionType::RegistryReady,
            false,
            reasons::REPLICAS_NOT_READY,
            format!("{ready_replicas}/{desired} replicas ready"),
        )
    };

    let mon = &spec.monitoring;
    let monitoring = if mon.service_monitor.enabled && !served.service_monitor {
        ConditionUpdate::new(
            ConditionType::MonitoringReady,
            false,
            reasons::SERVICE_MONITOR_CRD_MISSING,
            "spec.monitoring.serviceMonitor.enabled is true but the monitoring.coreos.com/v1 ServiceMonitor CRD is not served; install the Prometheus Operator CRDs",
        )
    } else if mon.prometheus_rule.enabled && !served.prometheus_rule {
        ConditionUpdate::new(
            ConditionType::MonitoringReady,
            false,
            reasons::PROMETHEUS_RULE_CRD_MISSING,
            "spec.monitoring.prometheusRule.enabled is true but the monitoring.coreos.com/v1 PrometheusRule CRD is not served; install the Prometheus Operator CRDs",
        )
    } else if mon.service_monitor.enabled || mon.grafana_dashboard.enabled || mon.prometheus_rule.enabled {
        ConditionUpdate::new(
            ConditionType::MonitoringReady,
            true,
            reasons::APPLIED,
            "monitoring objects applied",
        )
    } else {
        ConditionUpdate::new(
            ConditionType::MonitoringReady,
            true,
            reasons::NOT_REQUESTED,
            "no monitoring requested",
        )
    };

    let wants_route = spec.gateway.as_ref().is_some_and(|g| g.enabled);
    let wants_ingress = spec.ingress.as_ref().is_some_and(|i| i.enabled);
    let exposure = if wants_route && !served.http_route {
        ConditionUpdate::new(
            ConditionType::ExposureReady,
            false,
            reasons::HTTP_ROUTE_CRD_MISSING,
            "spec.gateway is set but the gateway.networking.k8s.io/v1 HTTPRoute CRD is not served; install the Gateway API CRDs",
        )
    } else if let Some(problem) = exposure_problem(observed, &name, wants_ingress, wants_route) {
        ConditionUpdate::new(ConditionType::ExposureReady, false, problem.0, problem.1)
    } else if wants_route || wants_ingress {
        ConditionUpdate::new(
            ConditionType::ExposureReady,
            true,
            reasons::APPLIED,
            match (wants_ingress, wants_route) {
                (true, true) => "Ingress and HTTPRoute applied",
                (true, false) => "Ingress applied",
                _ => "HTTPRoute applied",
            },
        )
    } else {
        ConditionUpdate::new(
            ConditionType::ExposureReady,
            true,
            reasons::NOT_REQUESTED,
            "no Ingress or HTTPRoute requested",
        )
    };

    // A URL is reported only for what actually exposes the registry.
    let external = urls.external.filter(|_| exposure.status);

    // Ready carries the reason of the first part that blocks it, so
    // `kubectl get -o wide` and alerts say what is wrong, not only that.
    let ready = match [&storage, &registry_cond].into_iter().find(|c| !c.status) {
        None => ConditionUpdate::new(ConditionType::Ready, true, reasons::AVAILABLE, "registry is serving"),
        Some(blocking) => ConditionUpdate::new(
            ConditionType::Ready,
            false,
            blocking.reason,
            format!("{}: {}", blocking.type_.as_str(), blocking.message),
        ),
    };

    let generation = registry.metadata.generation;
    BanterRegistryStatus {
        observed_generation: generation,
        conditions: merge(
            &previous.conditions,
            &[ready, storage, registry_cond, monitoring, exposure],
            generation,
            now,
        ),
        ready_replicas: Some(ready_replicas),
        replicas: Some(format!("{ready_replicas}/{desired}")),
        url: external.or_else(|| load_balancer_url(registry, observed)),
        endpoint: Some(urls.endpoint),
        backend: Some(spec.storage.backend),
    }
}

/// Where the registry is reached, as the spec configures it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Urls {
    /// In-cluster URL of the Service.
    pub endpoint: String,
    /// External URL from the Ingress or HTTPRoute settings, if any.
    pub external: Option<String>,
}

/// `http://<address>[:port]` of a LoadBalancer Service once the cloud
/// assigned one.
fn load_balancer_url(registry: &BanterRegistry, observed: &Observed) -> Option<String> {
    let svc = &registry.spec.service;
    if svc.type_ != banter_api::ServiceType::LoadBalancer {
        return None;
    }
    let name = registry.metadata.name.as_deref()?;
    let live = observed.get(&(ChildKind::Service, names::registry(name)))?;
    let first = live.pointer("/status/loadBalancer/ingress/0")?;
    let host = first
        .get("hostname")
        .and_then(Value::as_str)
        .or_else(|| first.get("ip").and_then(Value::as_str))?;
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    // 443 is TLS at the load balancer (a certificate annotation): https.
    Some(match svc.port {
        80 => format!("http://{host}"),
        443 => format!("https://{host}"),
        port => format!("http://{host}:{port}"),
    })
}

/// Why a requested Ingress or HTTPRoute does not expose the registry: not
/// in the cluster (its apply failed), or a Gateway refused the route.
fn exposure_problem(observed: &Observed, name: &str, ingress: bool, route: bool) -> Option<(&'static str, String)> {
    let get = |kind| observed.get(&(kind, names::registry(name)));
    if ingress && get(ChildKind::Ingress).is_none() {
        return Some((
            reasons::NOT_APPLIED,
            format!("Ingress {name} is not in the cluster yet"),
        ));
    }
    if !route {
        return None;
    }
    let Some(live) = get(ChildKind::HttpRoute) else {
        return Some((
            reasons::NOT_APPLIED,
            format!("HTTPRoute {name} is not in the cluster yet"),
        ));
    };
    let refused: Vec<String> = live
        .pointer("/status/parents")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let accepted = p
                .get("conditions")?
                .as_array()?
                .iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some("Accepted"))?;
            (accepted.get("status").and_then(Value::as_str) == Some("False")).then(|| {
                format!(
                    "{}: {}",
                    p.pointer("/parentRef/name").and_then(Value::as_str).unwrap_or("?"),
                    accepted
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("not accepted")
                )
            })
        })
        .collect();
    (!refused.is_empty()).then(|| {
        (
            reasons::HTTP_ROUTE_NOT_ACCEPTED,
            format!("HTTPRoute {name} is not accepted by {}", refused.join("; ")),
        )
    })
}

/// Status for a spec the operator refuses: only `Ready` changes.
pub fn invalid(registry: &BanterRegistry, message: &str, now: &Time) -> BanterRegistryStatus {
    not_ready(
        registry.status.clone().unwrap_or_default(),
        registry.metadata.generation,
        reasons::INVALID_SPEC,
        message,
        now,
    )
}

/// `status` with `Ready=False` for `reason`: a failure of this reconcile
/// outranks whatever the children show.
pub fn not_ready(
    mut status: BanterRegistryStatus,
    generation: Option<i64>,
    reason: &'static str,
    message: &str,
    now: &Time,
) -> BanterRegistryStatus {
    status.observed_generation = generation;
    status.conditions = merge(
        &status.conditions,
        &[ConditionUpdate::new(ConditionType::Ready, false, reason, message)],
        generation,
        now,
    );
    status
}

/// The server-side apply body of a status write.
pub fn status_patch(status: &BanterRegistryStatus) -> Value {
    json!({
        "apiVersion": BanterRegistry::api_version(&()),
        "kind": BanterRegistry::kind(&()),
        "status": status,
    })
}

/// Writes `status` with server-side apply on the status subresource, only
/// when it differs from what the resource already shows. Returns whether
/// it wrote.
pub async fn write_if_changed(
    api: &Api<BanterRegistry>,
    registry: &BanterRegistry,
    status: &BanterRegistryStatus,
) -> Result<bool, Error> {
    if registry.status.as_ref() == Some(status) {
        return Ok(false);
    }
    let name = registry
        .metadata
        .name
        .as_deref()
        .ok_or(Error::MissingMetadata("metadata.name"))?;
    api.patch_status(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(status_patch(status)),
    )
    .await?;
    Ok(true)
}

#[cfg(test)]
mod rollout_tests {
    use super::rolled_out;
    use serde_json::json;

    #[test]
    fn a_stuck_rollout_is_not_rolled_out() {
        // Three old pods ready, the new ReplicaSet's pod crash-loops (surge 1).
        let stuck = json!({"metadata": {"generation": 4},
            "status": {"observedGeneration": 4, "replicas": 4, "updatedReplicas": 1, "readyReplicas": 3}});
        assert!(!rolled_out(Some(&stuck), 3));
        let unobserved = json!({"metadata": {"generation": 5},
            "status": {"observedGeneration": 4, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3}});
        assert!(!rolled_out(Some(&unobserved), 3));
        let done = json!({"metadata": {"generation": 5},
            "status": {"observedGeneration": 5, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3}});
        assert!(rolled_out(Some(&done), 3));
        assert!(rolled_out(None, 3), "no Deployment yet: readiness decides");
    }
}
