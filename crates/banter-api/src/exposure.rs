//! Exposure outside the cluster (Ingress, Gateway API) and autoscaling.

use std::collections::BTreeMap;

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A DNS name, optionally with one leading `*.` wildcard label, as Ingress
/// and HTTPRoute accept it.
pub const HOSTNAME_PATTERN: &str =
    r"^(\*\.)?[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$";

/// Message of the CEL rule (and of `validate`) for an IP address as a host:
/// Ingress and HTTPRoute take DNS names only.
pub const IP_HOST_MESSAGE: &str =
    "ingress hosts and gateway hostnames must be DNS names, not IP addresses (the API server refuses those)";

/// Whether `host` is a dotted-quad IPv4 address (the hostname pattern
/// otherwise admits one).
pub fn is_ipv4_host(host: &str) -> bool {
    let parts: Vec<&str> = host.split('.').collect();
    parts.len() == 4
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// An HTTP path prefix: `/`, or `/`-separated non-empty segments of URL
/// path characters (no `//`, whitespace, query or fragment), as Ingress and
/// HTTPRoute validation accept it.
pub const PATH_PATTERN: &str = r"^/([A-Za-z0-9._~!$&'()*+,;=:@%-]+(/[A-Za-z0-9._~!$&'()*+,;=:@%-]+)*/?)?$";

fn default_true() -> bool {
    true
}

fn default_path() -> String {
    "/".to_string()
}

/// An `networking.k8s.io/v1` Ingress in front of the registry Service.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[x_kube(validation = kube::core::Rule::new("!has(self.hosts) || self.hosts.all(h, !h.matches('^[0-9]+([.][0-9]+){3}$'))").message(IP_HOST_MESSAGE).reason(kube::core::Reason::FieldValueInvalid))]
#[serde(rename_all = "camelCase")]
pub struct IngressSpec {
    /// Create the Ingress (set false to remove it and keep the settings).
    #[serde(default = "default_true")]
    pub enabled: bool,

    /// IngressClass that serves it; the cluster's default class when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub class_name: Option<String>,

    /// Host names routed to the registry; empty: every host the controller
    /// serves. The first one is reported in `status.url`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(pattern(HOSTNAME_PATTERN)))]
    #[schemars(inner(length(max = 253)))]
    #[schemars(length(max = 32))]
    pub hosts: Vec<String>,

    /// Path prefix routed to the registry (the registry serves its API at
    /// `/v1/...` under any prefix only when the proxy strips it: keep `/`
    /// unless the ingress controller rewrites paths).
    #[serde(default = "default_path")]
    #[schemars(pattern(PATH_PATTERN), length(min = 1, max = 1024))]
    pub path: String,

    /// TLS termination at the ingress controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<IngressTlsSpec>,

    /// Annotations on the Ingress (controller settings such as body size
    /// limits or cert-manager issuers).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// TLS of the Ingress.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressTlsSpec {
    /// A `kubernetes.io/tls` Secret holding the certificate for every host
    /// (cert-manager can create it from an annotation).
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
}

/// A Gateway API `HTTPRoute` (`gateway.networking.k8s.io/v1`) attaching
/// the registry Service to existing Gateways.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[x_kube(validation = kube::core::Rule::new("!has(self.hostnames) || self.hostnames.all(h, !h.matches('^[0-9]+([.][0-9]+){3}$'))").message(IP_HOST_MESSAGE).reason(kube::core::Reason::FieldValueInvalid))]
#[serde(rename_all = "camelCase")]
pub struct GatewaySpec {
    /// Create the HTTPRoute (set false to remove it and keep the settings).
    /// Applied only when the HTTPRoute CRD is served; otherwise
    /// the `ExposureReady` condition reports `HTTPRouteCRDMissing`.
    #[serde(default = "default_true")]
    pub enabled: bool,

    /// Gateways (or listeners of them) the route attaches to.
    #[schemars(length(min = 1, max = 32))]
    pub parent_refs: Vec<ParentRef>,

    /// Host names of the route; empty: those of the Gateway listeners. The
    /// first one is reported in `status.url`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(pattern(HOSTNAME_PATTERN)))]
    #[schemars(inner(length(max = 253)))]
    #[schemars(length(max = 16))]
    pub hostnames: Vec<String>,

    /// Path prefix matched by the route; stripped before the request reaches
    /// the registry (which serves its API at the root).
    #[serde(default = "default_path")]
    #[schemars(pattern(PATH_PATTERN), length(min = 1, max = 1024))]
    pub path: String,

    /// Scheme of `status.url`: whether the Gateway listener terminates TLS
    /// for these host names (the operator does not read Gateways).
    #[serde(default)]
    pub scheme: UrlScheme,
}

/// Scheme of an external URL.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum UrlScheme {
    /// TLS terminated in front of the registry.
    #[default]
    Https,
    /// Plain HTTP.
    Http,
}

impl UrlScheme {
    /// `https` or `http`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Https => "https",
            Self::Http => "http",
        }
    }
}

/// A reference to a Gateway, as `HTTPRoute.spec.parentRefs[]` takes it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ParentRef {
    /// Name of the Gateway.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,

    /// Namespace of the Gateway; the registry's when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub namespace: Option<String>,

    /// One listener of the Gateway, by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub section_name: Option<String>,

    /// One listener of the Gateway, by port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
}

/// An `autoscaling/v2` HorizontalPodAutoscaler for the registry Deployment.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[x_kube(validation = kube::core::Rule::new("self.minReplicas <= self.maxReplicas").message("spec.autoscaling.minReplicas must not exceed maxReplicas").reason(kube::core::Reason::FieldValueInvalid))]
#[serde(rename_all = "camelCase")]
pub struct AutoscalingSpec {
    /// Create the HorizontalPodAutoscaler. While it exists the operator
    /// leaves `replicas` of the Deployment to it and ignores `spec.replicas`.
    #[serde(default = "default_true")]
    pub enabled: bool,

    /// Fewest registry pods.
    #[serde(default = "default_min_replicas")]
    #[schemars(range(min = 1, max = 50))]
    pub min_replicas: i32,

    /// Most registry pods.
    #[schemars(range(min = 1, max = 50))]
    pub max_replicas: i32,

    /// Average CPU use, as a percentage of the CPU request, the autoscaler
    /// aims for. Needs a CPU request (the default resources have one).
    #[serde(default = "default_cpu_target", rename = "targetCPUUtilizationPercentage")]
    #[schemars(range(min = 1, max = 100))]
    pub target_cpu_utilization_percentage: i32,

    /// Average memory use, as a percentage of the memory request, the
    /// autoscaler also aims for; absent: CPU only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub target_memory_utilization_percentage: Option<i32>,
}

fn default_min_replicas() -> i32 {
    2
}

fn default_cpu_target() -> i32 {
    70
}

impl AutoscalingSpec {
    /// Whether an autoscaler is asked for.
    pub fn active(spec: Option<&Self>) -> bool {
        spec.is_some_and(|a| a.enabled)
    }
}
