//! `spec` of a `BanterRegistry`: what the user asks for.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::exposure::{AutoscalingSpec, GatewaySpec, IngressSpec};
use crate::placement::PodPlacement;
use crate::status::BanterRegistryStatus;

/// A pack registry for banter packs, reconciled by banter-operator into a
/// Deployment, its storage backend, a Service and optional monitoring.
// Several `printcolumn(...)` entries share keys; clippy mistakes them for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "banterpacks.io",
    version = "v1alpha1",
    kind = "BanterRegistry",
    plural = "banterregistries",
    shortname = "breg",
    category = "banterpacks",
    doc = "A Banter pack registry managed by banter-operator: storage backend (SQLite or Redis), registry Deployment and Service, optional ServiceMonitor and Grafana dashboard.",
    namespaced,
    status = "BanterRegistryStatus",
    printcolumn(
        name = "Backend",
        type_ = "string",
        json_path = ".spec.storage.backend",
        description = "Storage backend"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "The Ready condition"
    ),
    printcolumn(
        name = "Replicas",
        type_ = "string",
        json_path = ".status.replicas",
        description = "Registry pods ready / desired"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason",
        description = "Why the registry is (not) Ready",
        priority = 1
    ),
    printcolumn(
        name = "Endpoint",
        type_ = "string",
        json_path = ".status.endpoint",
        description = "In-cluster URL of the registry"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[x_kube(
    validation = kube::core::Rule::new("self.storage.backend != 'sqlite' || self.replicas <= 1").message(crate::SQLITE_REPLICAS_MESSAGE).reason(kube::core::Reason::FieldValueInvalid).field_path(".replicas"),
    validation = kube::core::Rule::new("self.storage.backend != 'sqlite' || !has(self.autoscaling) || !self.autoscaling.enabled").message(crate::SQLITE_AUTOSCALING_MESSAGE).reason(kube::core::Reason::FieldValueForbidden).field_path(".autoscaling"),
    validation = PodPlacement::pod_labels_rule()
)]
#[serde(rename_all = "camelCase")]
pub struct BanterRegistrySpec {
    /// Number of registry pods. The sqlite backend supports exactly 1; use
    /// the redis backend for more.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0, max = 50))]
    pub replicas: i32,

    /// Registry container image. Defaults to the image the operator was
    /// started with (`--registry-image`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,

    /// Compute resources (requests and limits) of the registry container.
    /// Absent: requests of 50m CPU and 64Mi memory, no limits. Given (even
    /// `{}`), it replaces those entirely.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// How the registry is exposed inside (or outside) the cluster.
    #[serde(default)]
    pub service: ServiceSpec,

    /// Where packs are stored.
    #[serde(default)]
    pub storage: StorageSpec,

    /// Publish tokens. When absent, the operator generates a Secret named
    /// `<name>-tokens` once and never overwrites it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthSpec>,

    /// Prometheus ServiceMonitor and Grafana dashboard.
    #[serde(default)]
    pub monitoring: MonitoringSpec,

    /// NetworkPolicies fencing the registry's Redis.
    #[serde(default)]
    pub network_policy: NetworkPolicySpec,

    /// Scheduling and metadata of the registry pods.
    #[serde(flatten)]
    pub placement: PodPlacement,

    /// An Ingress routing external traffic to the registry Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<IngressSpec>,

    /// A Gateway API HTTPRoute attaching the registry Service to Gateways.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<GatewaySpec>,

    /// A HorizontalPodAutoscaler for the registry pods (redis backend only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<AutoscalingSpec>,
}

fn default_replicas() -> i32 {
    1
}

/// The spec of `{}`: every field at its documented default.
impl Default for BanterRegistrySpec {
    fn default() -> Self {
        Self {
            replicas: default_replicas(),
            image: None,
            resources: None,
            service: ServiceSpec::default(),
            storage: StorageSpec::default(),
            auth: None,
            monitoring: MonitoringSpec::default(),
            network_policy: NetworkPolicySpec::default(),
            placement: PodPlacement::default(),
            ingress: None,
            gateway: None,
            autoscaling: None,
        }
    }
}

/// The Service in front of the registry pods.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[x_kube(
    validation = kube::core::Rule::new("!has(self.loadBalancerSourceRanges) || size(self.loadBalancerSourceRanges) == 0 || self.type == 'LoadBalancer'").message("spec.service.loadBalancerSourceRanges needs type LoadBalancer").reason(kube::core::Reason::FieldValueForbidden),
    validation = kube::core::Rule::new("!has(self.externalTrafficPolicy) || self.type != 'ClusterIP'").message("spec.service.externalTrafficPolicy needs type NodePort or LoadBalancer").reason(kube::core::Reason::FieldValueForbidden)
)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    /// Kubernetes Service type.
    #[serde(default, rename = "type")]
    pub type_: ServiceType,

    /// Port the Service listens on (the pods always listen on 8080).
    #[serde(default = "default_service_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,

    /// Annotations on the Service (cloud load balancer settings such as an
    /// internal scheme or a certificate).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,

    /// Extra labels on the Service; the operator's own cannot be replaced.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,

    /// Client CIDRs a LoadBalancer admits (type LoadBalancer only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(pattern(CIDR_PATTERN)))]
    #[schemars(length(max = 64))]
    pub load_balancer_source_ranges: Vec<String>,

    /// `Local` keeps the client source address and skips the second hop,
    /// `Cluster` spreads evenly (type NodePort or LoadBalancer only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_traffic_policy: Option<TrafficPolicy>,
}

impl Default for ServiceSpec {
    fn default() -> Self {
        Self {
            type_: ServiceType::default(),
            port: default_service_port(),
            annotations: BTreeMap::new(),
            labels: BTreeMap::new(),
            load_balancer_source_ranges: Vec::new(),
            external_traffic_policy: None,
        }
    }
}

/// An IPv4 or IPv6 CIDR such as `203.0.113.0/24` or `2001:db8::/32`.
pub const CIDR_PATTERN: &str = r"^((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}/([0-9]|[12][0-9]|3[0-2])|[0-9a-fA-F]*:[0-9a-fA-F]*:[0-9a-fA-F:]*/([0-9]|[1-9][0-9]|1[01][0-9]|12[0-8]))$";

/// `Service.spec.externalTrafficPolicy`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum TrafficPolicy {
    /// Any node forwards to any pod (client source address lost).
    Cluster,
    /// Only nodes running a registry pod receive traffic; the client source
    /// address is kept.
    Local,
}

impl TrafficPolicy {
    /// The spelling Kubernetes uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cluster => "Cluster",
            Self::Local => "Local",
        }
    }
}

fn default_service_port() -> i32 {
    80
}

/// Kubernetes Service type of the registry Service.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ServiceType {
    /// Reachable inside the cluster only.
    #[default]
    ClusterIP,
    /// Also exposed on a port of every node.
    NodePort,
    /// Also exposed through a cloud load balancer.
    LoadBalancer,
}

impl ServiceType {
    /// The spelling Kubernetes uses in `Service.spec.type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClusterIP => "ClusterIP",
            Self::NodePort => "NodePort",
            Self::LoadBalancer => "LoadBalancer",
        }
    }
}

/// Storage backend selection and its settings.
///
/// The Redis volume claim template of a StatefulSet cannot change, and a
/// PVC's storage class cannot either: while a backend stays the same, those
/// fields are immutable (switching backend is allowed).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[x_kube(
    validation = kube::core::Rule::new("self.backend != 'redis' || oldSelf.backend != 'redis' || has(self.redis.external) || has(oldSelf.redis.external) || (self.redis.size == oldSelf.redis.size && (has(self.redis.storageClassName) ? self.redis.storageClassName : '') == (has(oldSelf.redis.storageClassName) ? oldSelf.redis.storageClassName : ''))").message("spec.storage.redis.size and storageClassName cannot change while the backend stays redis (the StatefulSet volume claim template is immutable)").reason(kube::core::Reason::FieldValueForbidden),
    validation = kube::core::Rule::new("self.backend != 'sqlite' || oldSelf.backend != 'sqlite' || (has(self.sqlite.storageClassName) ? self.sqlite.storageClassName : '') == (has(oldSelf.sqlite.storageClassName) ? oldSelf.sqlite.storageClassName : '')").message("spec.storage.sqlite.storageClassName cannot change while the backend stays sqlite (a PVC's storage class is immutable)").reason(kube::core::Reason::FieldValueForbidden)
)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// Which backend stores the packs: `sqlite` (embedded, one replica) or
    /// `redis` (shared, many replicas).
    #[serde(default)]
    pub backend: Backend,

    /// Settings of the sqlite backend (ignored for redis).
    #[serde(default)]
    pub sqlite: SqliteSpec,

    /// Settings of the redis backend (ignored for sqlite).
    #[serde(default)]
    pub redis: RedisSpec,

    /// Keep the data volumes when the registry is deleted or switches
    /// backend. Kept volumes lose their owner reference.
    #[serde(default = "default_true")]
    pub retain_on_delete: bool,
}

impl Default for StorageSpec {
    fn default() -> Self {
        Self {
            backend: Backend::default(),
            sqlite: SqliteSpec::default(),
            redis: RedisSpec::default(),
            retain_on_delete: true,
        }
    }
}

fn default_true() -> bool {
    true
}

/// Storage backend of the registry.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Embedded SQLite database on a PersistentVolumeClaim; one replica only.
    #[default]
    Sqlite,
    /// A Redis StatefulSet managed by the operator; any number of replicas.
    Redis,
}

impl Backend {
    /// The spelling used in the spec and in `BANTER_REGISTRY_BACKEND`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Redis => "redis",
        }
    }
}

/// Settings of the sqlite backend.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SqliteSpec {
    /// Size of the PersistentVolumeClaim holding the database.
    #[serde(default = "default_size", deserialize_with = "size_or_default")]
    #[schemars(schema_with = "quantity_schema")]
    pub size: Quantity,

    /// StorageClass of the PersistentVolumeClaim; the cluster default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
}

impl Default for SqliteSpec {
    fn default() -> Self {
        Self {
            size: default_size(),
            storage_class_name: None,
        }
    }
}

fn default_size() -> Quantity {
    Quantity("1Gi".to_string())
}

/// A volume size: an integer or a quantity string, never null (the CRD
/// keeps no `nullable` where null has no meaning), checked by the API server
/// with the pattern `resource.Quantity` parses.
fn quantity_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    // `pattern` applies to the string form only; an explicit `nullable:
    // false` keeps kube's schema rewrite from marking it nullable.
    schemars::json_schema!({
        "x-kubernetes-int-or-string": true,
        "pattern": QUANTITY_PATTERN,
        "nullable": false
    })
}

/// A non-negative `resource.Quantity` in its serialized forms (decimal,
/// binary or exponent suffix).
pub const QUANTITY_PATTERN: &str =
    r"^(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$";

/// `size: null` means "the default": one object stored with an explicit
/// null (older CRDs marked the field nullable, so the API server kept it)
/// must never fail the typed watch of every registry.
fn size_or_default<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Quantity, D::Error> {
    Ok(Option::<Quantity>::deserialize(d)?.unwrap_or_else(default_size))
}

/// Settings of the redis backend: an operator-managed Redis StatefulSet,
/// or an existing Redis given by `external`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[x_kube(
    validation = kube::core::Rule::new("!has(self.external) || (!has(self.auth) && !has(self.tls))").message(crate::EXTERNAL_REDIS_MESSAGE).reason(kube::core::Reason::FieldValueForbidden),
    validation = PodPlacement::pod_labels_rule()
)]
#[serde(rename_all = "camelCase")]
pub struct RedisSpec {
    /// Size of the Redis data volume.
    #[serde(default = "default_size", deserialize_with = "size_or_default")]
    #[schemars(schema_with = "quantity_schema")]
    pub size: Quantity,

    /// StorageClass of the Redis data volume; the cluster default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,

    /// Redis container image. Defaults to the operator's `--redis-image`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,

    /// Redis persistence settings.
    #[serde(default)]
    pub persistence: RedisPersistence,

    /// Compute resources (requests and limits) of the Redis container.
    /// Absent: requests of 50m CPU and 128Mi memory, no limits. Given (even
    /// `{}`), it replaces those entirely.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Redis password. Redis always requires one: absent, the operator
    /// generates a Secret `<name>-redis-auth` once and never overwrites it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<RedisAuthSpec>,

    /// TLS between the registry and Redis: Redis then serves TLS only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<RedisTlsSpec>,

    /// Scheduling and metadata of the operator-managed Redis pod.
    #[serde(flatten)]
    pub placement: PodPlacement,

    /// An existing Redis (a managed service, or one run by another team):
    /// the operator runs no Redis, so the fields describing one (size,
    /// storageClassName, image, persistence, resources, placement) are
    /// ignored, and `auth` and `tls` are refused (use
    /// `external.passwordSecretRef` and `external.tls`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalRedisSpec>,
}

/// An existing Redis the registry connects to.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalRedisSpec {
    /// Host name or IP address of the Redis server.
    #[schemars(length(min = 1, max = 253), pattern(REDIS_HOST_PATTERN))]
    pub host: String,

    /// Port of the Redis server.
    #[serde(default = "default_redis_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,

    /// Redis logical database number.
    #[serde(default)]
    #[schemars(range(min = 0, max = 1023))]
    pub database: i32,

    /// Connect with TLS (`rediss://`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ExternalRedisTlsSpec>,

    /// The Secret key holding the Redis password; absent: no password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<SecretKeyRef>,

    /// Prefix of every key the registry writes, so several registries can
    /// share one Redis; absent: `banter:<namespace>:<registry name>:`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128), pattern(r"^[!-~]+$"))]
    pub key_prefix: Option<String>,
}

/// A DNS name, IPv4 address or bracket-free IPv6 address.
// IPv6 needs two colons at least, so `10.0.0.5:6379` (a port) is refused.
pub const REDIS_HOST_PATTERN: &str = r"^([a-zA-Z0-9]([-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?)*\.?|[0-9a-fA-F.]*:[0-9a-fA-F.]*:[0-9a-fA-F:.]*)$";

fn default_redis_port() -> i32 {
    6379
}

/// TLS to an external Redis.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalRedisTlsSpec {
    /// The Secret key holding the PEM CA bundle that signed the server's
    /// certificate; absent: the public roots built into the registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretKeyRef>,
}

/// One key of a Secret in the registry's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,

    /// Key within the Secret.
    #[schemars(length(min = 1, max = 253), pattern(r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

/// TLS for the operator-managed Redis.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedisTlsSpec {
    /// A `kubernetes.io/tls` Secret in the registry's namespace with
    /// `tls.crt`, `tls.key` and `ca.crt` (as cert-manager writes it). The
    /// certificate must name `<name>-redis-0.<name>-redis.<namespace>.svc`.
    /// Redis gets all three; the registry only `ca.crt`.
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
}

impl Default for RedisSpec {
    fn default() -> Self {
        Self {
            size: default_size(),
            storage_class_name: None,
            image: None,
            persistence: RedisPersistence::default(),
            resources: None,
            auth: None,
            tls: None,
            placement: PodPlacement::default(),
            external: None,
        }
    }
}

/// Where the Redis password comes from.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedisAuthSpec {
    /// Name of a Secret in the registry's namespace whose key `password`
    /// holds the Redis password. The operator never modifies it.
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
}

/// NetworkPolicies the operator manages.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicySpec {
    /// A NetworkPolicy admitting only this registry's pods to its Redis
    /// (Redis backend). Needs a CNI that enforces NetworkPolicy.
    #[serde(default = "default_true")]
    pub enabled: bool,

    /// Also fence the registry's own port: a NetworkPolicy admitting only
    /// these peers (namespace or pod selectors, IP blocks) to the registry
    /// pods; an empty list admits every source to that port only. Absent:
    /// no policy for the registry pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_from: Option<Vec<k8s_openapi::api::networking::v1::NetworkPolicyPeer>>,
}

impl Default for NetworkPolicySpec {
    fn default() -> Self {
        Self {
            enabled: true,
            registry_from: None,
        }
    }
}

/// Redis persistence settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedisPersistence {
    /// Append-only file persistence (`appendonly yes`). Turning it off loses
    /// every publish on a Redis restart.
    #[serde(default = "default_true")]
    pub aof: bool,
    /// When Redis fsyncs the append-only file: `always` (before answering;
    /// an acknowledged publish survives a crash or power loss) or `everysec`
    /// (up to about one second of publishes can be lost on a host crash).
    #[serde(default)]
    pub appendfsync: AppendFsync,
}

impl Default for RedisPersistence {
    fn default() -> Self {
        Self {
            aof: true,
            appendfsync: AppendFsync::default(),
        }
    }
}

/// Redis `appendfsync` policy.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AppendFsync {
    /// fsync before every reply: nothing acknowledged is lost.
    #[default]
    Always,
    /// fsync once a second: faster writes, up to ~1 s of publishes at risk.
    Everysec,
}

impl AppendFsync {
    /// The value Redis takes on its command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Always => "always",
            Self::Everysec => "everysec",
        }
    }
}

/// Where the publish tokens come from.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthSpec {
    /// Name of a Secret in the registry's namespace whose key `tokens` holds
    /// one publish token per line. The operator never modifies it.
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
}

/// Monitoring integrations.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MonitoringSpec {
    /// Prometheus Operator ServiceMonitor scraping `/metrics`.
    #[serde(default)]
    pub service_monitor: ServiceMonitorSpec,

    /// Grafana dashboard ConfigMap for the Grafana sidecar.
    #[serde(default)]
    pub grafana_dashboard: GrafanaDashboardSpec,

    /// Prometheus Operator PrometheusRule with this registry's alerts.
    #[serde(default)]
    pub prometheus_rule: PrometheusRuleSpec,
}

/// Prometheus Operator PrometheusRule settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusRuleSpec {
    /// Create a PrometheusRule holding the registry alerts
    /// (alerts/banter-registry.rules.yml scoped to this registry), only when
    /// the monitoring.coreos.com/v1 CRD is served; otherwise MonitoringReady
    /// reports PrometheusRuleCRDMissing.
    #[serde(default)]
    pub enabled: bool,

    /// Extra labels on the PrometheusRule, typically what the Prometheus
    /// `ruleSelector` matches.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// Prometheus Operator ServiceMonitor settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceMonitorSpec {
    /// Create a ServiceMonitor (only when the monitoring.coreos.com/v1 CRD is
    /// served; otherwise MonitoringReady reports ServiceMonitorCRDMissing).
    #[serde(default)]
    pub enabled: bool,

    /// Scrape interval, a Prometheus duration such as `30s`.
    #[serde(default = "default_interval")]
    // The Prometheus Operator's own duration pattern (units in descending
    // order), so anything accepted here is accepted by the ServiceMonitor CRD.
    #[schemars(regex(
        pattern = r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
    ))]
    #[schemars(length(min = 1))]
    pub interval: String,

    /// Extra labels on the ServiceMonitor, typically what the Prometheus
    /// `serviceMonitorSelector` matches.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl Default for ServiceMonitorSpec {
    fn default() -> Self {
        Self {
            enabled: false,
            interval: default_interval(),
            labels: BTreeMap::new(),
        }
    }
}

fn default_interval() -> String {
    "30s".to_string()
}

/// Grafana dashboard ConfigMap settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GrafanaDashboardSpec {
    /// Create a ConfigMap holding the registry dashboards.
    #[serde(default)]
    pub enabled: bool,

    /// Labels on the ConfigMap. When empty, `grafana_dashboard: "1"` (what
    /// the Grafana sidecar looks for by default).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,

    /// Grafana folder, set as the `grafana_folder` annotation read by the sidecar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folder: Option<String>,
}

impl BanterRegistrySpec {
    /// Controller-side check of what the CEL rule also rejects, for API
    /// servers that do not evaluate CEL and for `render`.
    pub fn validate(&self) -> Result<(), String> {
        let sqlite = self.storage.backend == Backend::Sqlite;
        if sqlite && self.replicas > 1 {
            return Err(crate::SQLITE_REPLICAS_MESSAGE.to_string());
        }
        if self.replicas < 0 {
            return Err("spec.replicas must not be negative".to_string());
        }
        if let Some(a) = self.autoscaling.as_ref().filter(|a| a.enabled) {
            if sqlite {
                return Err(crate::SQLITE_AUTOSCALING_MESSAGE.to_string());
            }
            if a.min_replicas > a.max_replicas {
                return Err("spec.autoscaling.minReplicas must not exceed maxReplicas".to_string());
            }
            // Utilization is a share of the request (a limit alone becomes
            // the request): without either the autoscaler never scales.
            let requested = |resource: &str| {
                self.resources.as_ref().is_none_or(|r| {
                    [&r.requests, &r.limits]
                        .into_iter()
                        .any(|q| q.as_ref().is_some_and(|q| q.contains_key(resource)))
                })
            };
            if !requested("cpu") {
                return Err(
                    "spec.autoscaling targets CPU utilization, so spec.resources.requests.cpu must be set".into(),
                );
            }
            if a.target_memory_utilization_percentage.is_some() && !requested("memory") {
                return Err(
                    "spec.autoscaling.targetMemoryUtilizationPercentage needs spec.resources.requests.memory".into(),
                );
            }
        }
        let redis = &self.storage.redis;
        if redis.external.is_some() && (redis.auth.is_some() || redis.tls.is_some()) {
            return Err(crate::EXTERNAL_REDIS_MESSAGE.to_string());
        }
        if !self.service.load_balancer_source_ranges.is_empty() && self.service.type_ != ServiceType::LoadBalancer {
            return Err("spec.service.loadBalancerSourceRanges needs type LoadBalancer".into());
        }
        if self.service.external_traffic_policy.is_some() && self.service.type_ == ServiceType::ClusterIP {
            return Err("spec.service.externalTrafficPolicy needs type NodePort or LoadBalancer".into());
        }
        let hosts = self.ingress.iter().flat_map(|i| i.hosts.iter());
        let hostnames = self.gateway.iter().flat_map(|g| g.hostnames.iter());
        if hosts.chain(hostnames).any(|h| crate::exposure::is_ipv4_host(h)) {
            return Err(crate::exposure::IP_HOST_MESSAGE.to_string());
        }
        self.placement.validate("spec")?;
        redis.placement.validate("spec.storage.redis")?;
        Ok(())
    }

    /// Whether a HorizontalPodAutoscaler owns the registry's replica count.
    pub fn autoscaled(&self) -> bool {
        AutoscalingSpec::active(self.autoscaling.as_ref())
    }
}

#[cfg(test)]
mod null_size_tests {
    use super::*;

    #[test]
    fn a_null_size_means_the_default_and_never_fails_the_watch() {
        let spec: BanterRegistrySpec = serde_json::from_str(
            r#"{"storage": {"backend": "sqlite", "sqlite": {"size": null}, "redis": {"size": null}}}"#,
        )
        .expect("size: null deserializes");
        assert_eq!(spec.storage.sqlite.size, Quantity("1Gi".into()));
        assert_eq!(spec.storage.redis.size, Quantity("1Gi".into()));
    }
}
