#![warn(missing_docs)]
//! The `BanterRegistry` custom resource (`banterpacks.io/v1alpha1`).
//!
//! Every field carries a doc comment because the derived schema turns those
//! comments into `kubectl explain` output.

mod spec;
mod status;

pub use spec::{
    AppendFsync, AuthSpec, Backend, BanterRegistry, BanterRegistrySpec, GrafanaDashboardSpec, MonitoringSpec,
    NetworkPolicySpec, QUANTITY_PATTERN, RedisAuthSpec, RedisPersistence, RedisSpec, RedisTlsSpec, ServiceMonitorSpec,
    ServiceSpec, ServiceType, SqliteSpec, StorageSpec,
};
pub use status::{BanterRegistryStatus, ConditionType};

/// API group of the custom resource.
pub const GROUP: &str = "banterpacks.io";
/// API version of the custom resource.
pub const VERSION: &str = "v1alpha1";
/// Message of the CEL rule (and of the controller's `InvalidSpec` condition)
/// for an SQLite registry with more than one replica.
pub const SQLITE_REPLICAS_MESSAGE: &str = "spec.replicas must be 1 when spec.storage.backend is sqlite: SQLite is an embedded single-writer database; use the redis backend to run more replicas";
