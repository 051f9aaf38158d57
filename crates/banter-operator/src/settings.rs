//! Operator-wide settings shared by `run` and `render`.

/// Field manager used for every server-side apply the operator sends.
pub const FIELD_MANAGER: &str = "banter-operator";
/// Field manager that co-owns a Deployment's `spec.replicas` while it is
/// handed to an autoscaler (see `reconcile::hand_replicas_over`).
pub const REPLICAS_HANDOFF_MANAGER: &str = "banter-operator-replicas-handoff";
/// Finalizer the operator puts on every `BanterRegistry`.
pub const FINALIZER: &str = "banterpacks.io/cleanup";
/// Default Redis image.
pub const DEFAULT_REDIS_IMAGE: &str = "redis:7.4-alpine";

/// Default registry image: the registry released together with this operator.
pub fn default_registry_image() -> String {
    format!("banterpacks/banter-registry:{}", env!("CARGO_PKG_VERSION"))
}

/// Settings that influence the objects the operator builds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Registry image used when `spec.image` is absent.
    pub registry_image: String,
    /// Redis image used when `spec.storage.redis.image` is absent.
    pub redis_image: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            registry_image: default_registry_image(),
            redis_image: DEFAULT_REDIS_IMAGE.to_string(),
        }
    }
}
