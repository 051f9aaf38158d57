//! `app.kubernetes.io/*` labels and the names of the children.

use std::collections::BTreeMap;

/// `app.kubernetes.io/name` of everything the operator creates.
pub const APP_NAME: &str = "banter-registry";
/// `app.kubernetes.io/managed-by` of everything the operator creates.
pub const MANAGED_BY: &str = "banter-operator";
/// `app.kubernetes.io/part-of` of everything the operator creates.
pub const PART_OF: &str = "banterpacks";

/// Label keys.
pub mod keys {
    /// Kubernetes recommended label: application name.
    pub const NAME: &str = "app.kubernetes.io/name";
    /// Kubernetes recommended label: instance (the BanterRegistry name).
    pub const INSTANCE: &str = "app.kubernetes.io/instance";
    /// Kubernetes recommended label: component within the application.
    pub const COMPONENT: &str = "app.kubernetes.io/component";
    /// Kubernetes recommended label: tool managing the object.
    pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
    /// Kubernetes recommended label: higher-level application.
    pub const PART_OF: &str = "app.kubernetes.io/part-of";
}

/// Label on every data volume naming the backend it holds (`sqlite` or
/// `redis`); not part of any selector, so the StatefulSet controller keeps it.
pub const DATA_LABEL: &str = "banterpacks.io/data";

/// Label on every data volume: the UID of the registry that created (or
/// adopted) it. It survives detaching, so prune and cleanup delete only
/// volumes this very registry stamped, never one an earlier registry of the
/// same name deliberately kept.
pub const OWNER_UID_LABEL: &str = "banterpacks.io/owner-uid";

/// The component a child belongs to; also its `app.kubernetes.io/component`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Component {
    /// Registry Deployment, its Service, PDB and ServiceMonitor.
    Registry,
    /// Registry ConfigMap (environment of the registry container).
    Config,
    /// Generated publish-token Secret.
    Tokens,
    /// Redis password Secret and the NetworkPolicy fencing Redis.
    RedisAuth,
    /// SQLite data PVC.
    SqliteData,
    /// Redis StatefulSet and its headless Service.
    Redis,
    /// Grafana dashboard ConfigMap.
    Dashboard,
}

impl Component {
    /// Label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registry => "registry",
            Self::Config => "config",
            Self::Tokens => "tokens",
            Self::RedisAuth => "redis-auth",
            Self::SqliteData => "sqlite-data",
            Self::Redis => "redis",
            Self::Dashboard => "dashboard",
        }
    }

    /// Parses a label value.
    pub fn parse(value: &str) -> Option<Self> {
        [
            Self::Registry,
            Self::Config,
            Self::Tokens,
            Self::RedisAuth,
            Self::SqliteData,
            Self::Redis,
            Self::Dashboard,
        ]
        .into_iter()
        .find(|c| c.as_str() == value)
    }
}

/// The full label set of a child.
pub fn labels(instance: &str, component: Component) -> BTreeMap<String, String> {
    let mut labels = selector(instance, component);
    labels.insert(keys::MANAGED_BY.to_string(), MANAGED_BY.to_string());
    labels.insert(keys::PART_OF.to_string(), PART_OF.to_string());
    labels
}

/// The stable subset used in pod selectors (selectors are immutable, so
/// they must never grow).
pub fn selector(instance: &str, component: Component) -> BTreeMap<String, String> {
    BTreeMap::from([
        (keys::NAME.to_string(), APP_NAME.to_string()),
        (keys::INSTANCE.to_string(), instance.to_string()),
        (keys::COMPONENT.to_string(), component.as_str().to_string()),
    ])
}

/// Names of the children of the registry `instance`.
pub mod names {
    /// Registry Deployment, Service, PDB and ServiceMonitor.
    pub fn registry(instance: &str) -> String {
        instance.to_string()
    }
    /// Registry ConfigMap.
    pub fn config(instance: &str) -> String {
        format!("{instance}-config")
    }
    /// Generated Redis password Secret.
    pub fn redis_auth(instance: &str) -> String {
        format!("{instance}-redis-auth")
    }
    /// Generated token Secret.
    pub fn tokens(instance: &str) -> String {
        format!("{instance}-tokens")
    }
    /// SQLite PVC.
    pub fn sqlite_data(instance: &str) -> String {
        format!("{instance}-data")
    }
    /// Redis StatefulSet and headless Service.
    pub fn redis(instance: &str) -> String {
        format!("{instance}-redis")
    }
    /// Dashboard ConfigMap.
    pub fn dashboards(instance: &str) -> String {
        format!("{instance}-dashboards")
    }
}
