//! `status` of a `BanterRegistry`: what the operator observed.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::spec::Backend;

/// Observed state of a `BanterRegistry`, written by the operator.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BanterRegistryStatus {
    /// The `metadata.generation` this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Standard conditions: `Ready`, `StorageReady`, `RegistryReady`,
    /// `MonitoringReady` and `ExposureReady`, each with a machine-readable
    /// reason and a message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// Registry pods that pass their readiness probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,

    /// Ready and desired registry pods as `ready/desired` (the `Replicas`
    /// printer column; a JSONPath cannot join two fields).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<String>,

    /// In-cluster URL of the registry Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,

    /// External URL of the registry: from `spec.ingress` or `spec.gateway`
    /// when one names a host, else the address a LoadBalancer Service got.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,

    /// Storage backend currently deployed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<Backend>,
}

/// The condition types the operator reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConditionType {
    /// Everything the registry needs to serve is in place and ready.
    Ready,
    /// The storage backend (PVC or Redis StatefulSet) is in place and ready.
    StorageReady,
    /// The registry Deployment has its ready replicas.
    RegistryReady,
    /// ServiceMonitor and dashboard are in place, or not requested.
    MonitoringReady,
    /// Ingress and HTTPRoute are in place, or not requested.
    ExposureReady,
}

impl ConditionType {
    /// Every condition type, in the order the operator writes them.
    pub const ALL: [ConditionType; 5] = [
        Self::Ready,
        Self::StorageReady,
        Self::RegistryReady,
        Self::MonitoringReady,
        Self::ExposureReady,
    ];

    /// The `type` string of the condition.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "Ready",
            Self::StorageReady => "StorageReady",
            Self::RegistryReady => "RegistryReady",
            Self::MonitoringReady => "MonitoringReady",
            Self::ExposureReady => "ExposureReady",
        }
    }
}

impl BanterRegistryStatus {
    /// The condition of the given type, if reported.
    pub fn condition(&self, type_: ConditionType) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_.as_str())
    }
}
