//! Where pods run and what metadata they carry: the same settings for the
//! registry pods (`spec.*`) and for the operator-managed Redis
//! (`spec.storage.redis.*`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, LocalObjectReference, Toleration, TopologySpreadConstraint};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Label keys the operator sets on every pod and selects by: `podLabels`
/// may not name them (a selector that stops matching orphans the pods).
pub const RESERVED_POD_LABELS: [&str; 5] = [
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/component",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/part-of",
];

/// Message of the CEL rule (and of `validate`) for a reserved `podLabels` key.
pub const RESERVED_POD_LABEL_MESSAGE: &str = "podLabels cannot set app.kubernetes.io/name, instance, component, managed-by or part-of: the operator's selectors rely on them";

/// Scheduling and metadata of a set of pods.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodPlacement {
    /// Node labels the pods must be scheduled onto (`pod.spec.nodeSelector`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,

    /// Taints the pods tolerate (`pod.spec.tolerations`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,

    /// Node and pod affinity rules (`pod.spec.affinity`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,

    /// How pods spread across failure domains. Absent: registry pods spread
    /// across nodes and zones with `whenUnsatisfiable: ScheduleAnyway` (Redis,
    /// one pod, gets none); given (even `[]`), replaces that.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology_spread_constraints: Option<Vec<TopologySpreadConstraint>>,

    /// PriorityClass of the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub priority_class_name: Option<String>,

    /// Extra labels on the pods. The operator's own `app.kubernetes.io/*`
    /// labels cannot be set here.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pod_labels: BTreeMap<String, String>,

    /// Extra annotations on the pods (service mesh, log shipping, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pod_annotations: BTreeMap<String, String>,

    /// Secrets used to pull the container image from a private registry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,
}

impl PodPlacement {
    /// The CEL rule refusing reserved `podLabels` keys.
    pub fn pod_labels_rule() -> kube::core::Rule {
        kube::core::Rule::new(
            // Key lookups, not a walk over the map: constant CEL cost.
            "!has(self.podLabels) || !('app.kubernetes.io/name' in self.podLabels || 'app.kubernetes.io/instance' in self.podLabels || 'app.kubernetes.io/component' in self.podLabels || 'app.kubernetes.io/managed-by' in self.podLabels || 'app.kubernetes.io/part-of' in self.podLabels)",
        )
        .message(RESERVED_POD_LABEL_MESSAGE)
        .reason(kube::core::Reason::FieldValueForbidden)
    }

    /// Controller-side check of the `podLabels` rule; `at` names the field.
    pub fn validate(&self, at: &str) -> Result<(), String> {
        match self
            .pod_labels
            .keys()
            .find(|k| RESERVED_POD_LABELS.contains(&k.as_str()))
        {
            Some(k) => Err(format!("{at}.podLabels[{k}]: {RESERVED_POD_LABEL_MESSAGE}")),
            None => Ok(()),
        }
    }
}
