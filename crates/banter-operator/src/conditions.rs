//! Standard `metav1.Condition` bookkeeping: lastTransitionTime moves only
//! when a condition's status flips.

use banter_api::ConditionType;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// Condition reasons the operator reports (the contract for alerts and docs).
pub mod reasons {
    /// The spec is rejected (e.g. sqlite with more than one replica).
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// Storage and registry are ready.
    pub const AVAILABLE: &str = "Available";
    /// Some part is still coming up.
    pub const PROGRESSING: &str = "Progressing";
    /// The SQLite PVC is bound.
    pub const PVC_BOUND: &str = "PersistentVolumeClaimBound";
    /// The SQLite PVC is not bound yet.
    pub const PVC_PENDING: &str = "PersistentVolumeClaimPending";
    /// The Redis pod is ready.
    pub const REDIS_READY: &str = "RedisReady";
    /// The Redis pod is not ready yet.
    pub const REDIS_NOT_READY: &str = "RedisNotReady";
    /// All registry replicas are ready.
    pub const REPLICAS_READY: &str = "ReplicasReady";
    /// Not all registry replicas are ready.
    pub const REPLICAS_NOT_READY: &str = "ReplicasNotReady";
    /// Enough pods are ready, but not all of them run the current pod template.
    pub const ROLLOUT_IN_PROGRESS: &str = "RolloutInProgress";
    /// A child could not be applied (the message names it); retried with backoff.
    pub const APPLY_FAILED: &str = "ApplyFailed";
    /// An admission plugin refused a child (quota, policy, webhook); waits for a change.
    pub const ADMISSION_REFUSED: &str = "AdmissionRefused";
    /// The Secret named by spec.auth does not exist.
    pub const AUTH_SECRET_MISSING: &str = "AuthSecretMissing";
    /// No monitoring was requested.
    pub const NOT_REQUESTED: &str = "NotRequested";
    /// Requested monitoring objects are applied.
    pub const APPLIED: &str = "Applied";
    /// A ServiceMonitor was requested but monitoring.coreos.com/v1 is not served.
    pub const SERVICE_MONITOR_CRD_MISSING: &str = "ServiceMonitorCRDMissing";
    /// A PrometheusRule was requested but monitoring.coreos.com/v1 does not serve it.
    pub const PROMETHEUS_RULE_CRD_MISSING: &str = "PrometheusRuleCRDMissing";
    /// An HTTPRoute was requested but gateway.networking.k8s.io/v1 does not serve it.
    pub const HTTP_ROUTE_CRD_MISSING: &str = "HTTPRouteCRDMissing";
    /// A requested Ingress or HTTPRoute is not in the cluster (its apply failed).
    pub const NOT_APPLIED: &str = "NotApplied";
    /// A parent Gateway reports the HTTPRoute `Accepted=False`.
    pub const HTTP_ROUTE_NOT_ACCEPTED: &str = "HTTPRouteNotAccepted";
    /// The external Redis answers the registry pods' readiness checks.
    pub const EXTERNAL_REDIS_REACHABLE: &str = "ExternalRedisReachable";
    /// No registry pod reports the external Redis reachable.
    pub const EXTERNAL_REDIS_UNREACHABLE: &str = "ExternalRedisUnreachable";
}

/// The new state of one condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConditionUpdate {
    /// Which condition.
    pub type_: ConditionType,
    /// True or False.
    pub status: bool,
    /// CamelCase reason.
    pub reason: &'static str,
    /// Human-readable message.
    pub message: String,
}

impl ConditionUpdate {
    /// Shorthand constructor.
    pub fn new(type_: ConditionType, status: bool, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            type_,
            status,
            reason,
            message: message.into(),
        }
    }
}

/// Applies `updates` to `previous`. Conditions not updated are kept as they
/// are; the result is in [`ConditionType::ALL`] order.
pub fn merge(
    previous: &[Condition],
    updates: &[ConditionUpdate],
    generation: Option<i64>,
    now: &Time,
) -> Vec<Condition> {
    let mut out = Vec::new();
    for type_ in ConditionType::ALL {
        let old = previous.iter().find(|c| c.type_ == type_.as_str());
        match updates.iter().find(|u| u.type_ == type_) {
            Some(u) => {
                let status = if u.status { "True" } else { "False" };
                let last_transition_time = match old {
                    Some(o) if o.status == status => o.last_transition_time.clone(),
                    _ => now.clone(),
                };
                out.push(Condition {
                    type_: type_.as_str().to_string(),
                    status: status.to_string(),
                    reason: u.reason.to_string(),
                    message: u.message.clone(),
                    observed_generation: generation,
                    last_transition_time,
                });
            }
            None => {
                if let Some(o) = old {
                    out.push(o.clone());
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(s: &str) -> Time {
        Time(s.parse().expect("timestamp"))
    }

    #[test]
    fn transition_time_moves_only_on_status_change() {
        let t0 = time("2026-01-01T00:00:00Z");
        let t1 = time("2026-01-02T00:00:00Z");
        let first = merge(
            &[],
            &[ConditionUpdate::new(
                ConditionType::Ready,
                false,
                reasons::PROGRESSING,
                "waiting",
            )],
            Some(1),
            &t0,
        );
        assert_eq!(first[0].last_transition_time, t0);

        // Same status, new reason and message: time kept, text updated.
        let same = merge(
            &first,
            &[ConditionUpdate::new(
                ConditionType::Ready,
                false,
                reasons::INVALID_SPEC,
                "bad",
            )],
            Some(2),
            &t1,
        );
        assert_eq!(same[0].last_transition_time, t0);
        assert_eq!(same[0].reason, "InvalidSpec");
        assert_eq!(same[0].observed_generation, Some(2));

        // Status flips: time moves.
        let flipped = merge(
            &same,
            &[ConditionUpdate::new(
                ConditionType::Ready,
                true,
                reasons::AVAILABLE,
                "ok",
            )],
            Some(3),
            &t1,
        );
        assert_eq!(flipped[0].last_transition_time, t1);
        assert_eq!(flipped[0].status, "True");
    }

    #[test]
    fn untouched_conditions_are_kept_in_canonical_order() {
        let t0 = time("2026-01-01T00:00:00Z");
        let all = merge(
            &[],
            &[
                ConditionUpdate::new(ConditionType::MonitoringReady, true, reasons::NOT_REQUESTED, ""),
                ConditionUpdate::new(ConditionType::Ready, true, reasons::AVAILABLE, ""),
            ],
            None,
            &t0,
        );
        let types: Vec<_> = all.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, ["Ready", "MonitoringReady"]);
        let only_ready = merge(
            &all,
            &[ConditionUpdate::new(
                ConditionType::Ready,
                false,
                reasons::INVALID_SPEC,
                "x",
            )],
            None,
            &t0,
        );
        assert_eq!(only_ready.len(), 2);
        assert_eq!(only_ready[1], all[1]);
    }
}
