#![warn(missing_docs)]
//! The `BanterRegistry` custom resource (`banterpacks.io/v1alpha1`).
//!
//! Every field carries a doc comment because the derived schema turns those
//! comments into `kubectl explain` output.

mod exposure;
mod placement;
mod spec;
mod status;

pub use exposure::{
    AutoscalingSpec, GatewaySpec, HOSTNAME_PATTERN, IP_HOST_MESSAGE, IngressSpec, IngressTlsSpec, PATH_PATTERN,
    ParentRef, UrlScheme, is_ipv4_host,
};
pub use placement::{PodPlacement, RESERVED_POD_LABEL_MESSAGE, RESERVED_POD_LABELS};

pub use spec::{
    AppendFsync, AuthSpec, Backend, BanterRegistry, BanterRegistrySpec, CIDR_PATTERN, ExternalRedisSpec,
    ExternalRedisTlsSpec, GrafanaDashboardSpec, MonitoringSpec, NetworkPolicySpec, QUANTITY_PATTERN,
    REDIS_HOST_PATTERN, RedisAuthSpec, RedisPersistence, RedisSpec, RedisTlsSpec, SecretKeyRef, ServiceMonitorSpec,
    ServiceSpec, ServiceType, SqliteSpec, StorageSpec, TrafficPolicy,
};
pub use status::{BanterRegistryStatus, ConditionType};

/// API group of the custom resource.
pub const GROUP: &str = "banterpacks.io";
/// API version of the custom resource.
pub const VERSION: &str = "v1alpha1";
/// Message of the CEL rule (and of the controller's `InvalidSpec` condition)
/// for an SQLite registry with more than one replica.
pub const SQLITE_REPLICAS_MESSAGE: &str = "spec.replicas must be 1 when spec.storage.backend is sqlite: SQLite is an embedded single-writer database; use the redis backend to run more replicas";
/// Message of the CEL rule (and of `validate`) for autoscaling on SQLite.
pub const SQLITE_AUTOSCALING_MESSAGE: &str = "spec.autoscaling needs spec.storage.backend redis: SQLite is an embedded single-writer database and runs exactly one replica";
/// Message of the CEL rule (and of `validate`) for an external Redis with
/// settings of the operator-managed one.
pub const EXTERNAL_REDIS_MESSAGE: &str = "spec.storage.redis.auth and tls configure the operator-managed Redis; with spec.storage.redis.external use external.passwordSecretRef and external.tls";
