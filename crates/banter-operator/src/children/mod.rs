//! Builders of every object a `BanterRegistry` owns. Pure functions: the
//! same code feeds `run` (server-side apply) and `render` (YAML output).

mod configmap;
mod dashboard;
mod deployment;
mod exposure;
mod hpa;
mod network_policy;
mod pdb;
mod placement;
mod prometheus_rule;
mod pvc;
mod redis;
mod secret;
mod service;
mod service_monitor;

use std::collections::BTreeMap;

use banter_api::{Backend, BanterRegistry};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;
use kube::core::{ApiResource, GroupVersionKind};
use serde::Serialize;
use sha2::{Digest, Sha256};

pub use configmap::{config_data, config_hash, configmap};
pub use dashboard::dashboard_configmap;
pub use deployment::{PRE_STOP_DELAY_SECONDS, deployment, termination_grace_period_seconds};
pub use exposure::{external_url, http_route, ingress};
pub use hpa::hpa;
pub use network_policy::{redis_network_policy, registry_network_policy};
pub use pdb::pdb;
pub use placement::{apply_placement, default_spread};
pub use prometheus_rule::{SCOPE, prometheus_rule, registry_rules};
pub use pvc::sqlite_pvc;
pub use redis::{redis_service, redis_statefulset, redis_url};
pub use secret::{TOKEN_KEY, redis_auth_secret_name, redis_password_secret, token_secret, token_secret_name};
pub use service::{endpoint, service};
pub use service_monitor::service_monitor;

use crate::discovery::OptionalApis;
use crate::labels::{self, Component};
use crate::{Error, Settings};

/// Annotation on every child: hash of what the operator last applied, so a
/// field removed from the desired object is noticed too.
pub const APPLIED_HASH_ANNOTATION: &str = "banterpacks.io/applied-hash";
/// Pod-template annotation: hash of the registry ConfigMap, rolls pods on change.
pub const CONFIG_HASH_ANNOTATION: &str = "banterpacks.io/config-hash";

/// Kinds of children the operator manages, in apply order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChildKind {
    /// core/v1 ConfigMap.
    ConfigMap,
    /// core/v1 Secret.
    Secret,
    /// core/v1 PersistentVolumeClaim.
    PersistentVolumeClaim,
    /// core/v1 Service.
    Service,
    /// apps/v1 StatefulSet.
    StatefulSet,
    /// apps/v1 Deployment.
    Deployment,
    /// autoscaling/v2 HorizontalPodAutoscaler.
    HorizontalPodAutoscaler,
    /// policy/v1 PodDisruptionBudget.
    PodDisruptionBudget,
    /// networking.k8s.io/v1 NetworkPolicy.
    NetworkPolicy,
    /// networking.k8s.io/v1 Ingress.
    Ingress,
    /// gateway.networking.k8s.io/v1 HTTPRoute.
    HttpRoute,
    /// monitoring.coreos.com/v1 ServiceMonitor.
    ServiceMonitor,
    /// monitoring.coreos.com/v1 PrometheusRule.
    PrometheusRule,
}

impl ChildKind {
    /// Every kind, in apply order.
    pub const ALL: [ChildKind; 13] = [
        Self::ConfigMap,
        Self::Secret,
        Self::PersistentVolumeClaim,
        Self::Service,
        Self::StatefulSet,
        Self::Deployment,
        Self::HorizontalPodAutoscaler,
        Self::PodDisruptionBudget,
        Self::NetworkPolicy,
        Self::Ingress,
        Self::HttpRoute,
        Self::ServiceMonitor,
        Self::PrometheusRule,
    ];

    /// Whether this kind is a custom resource of another project, served
    /// only where its CRD is installed (found by discovery).
    pub fn optional(self) -> bool {
        // Exactly the kinds a cluster serving none of them lacks.
        !OptionalApis::all(false).serves(self)
    }

    /// Whether the controller watches (and caches) this kind. Secrets are
    /// not watched: the operator reads the ones it needs by name, so it needs
    /// no `list`/`watch` on Secrets anywhere.
    pub fn watched(self) -> bool {
        self != Self::Secret
    }

    /// Group, version, kind and plural of this kind.
    pub fn api_resource(self) -> ApiResource {
        let (group, version, kind, plural) = match self {
            Self::ConfigMap => ("", "v1", "ConfigMap", "configmaps"),
            Self::Secret => ("", "v1", "Secret", "secrets"),
            Self::PersistentVolumeClaim => ("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims"),
            Self::Service => ("", "v1", "Service", "services"),
            Self::StatefulSet => ("apps", "v1", "StatefulSet", "statefulsets"),
            Self::Deployment => ("apps", "v1", "Deployment", "deployments"),
            Self::HorizontalPodAutoscaler => (
                "autoscaling",
                "v2",
                "HorizontalPodAutoscaler",
                "horizontalpodautoscalers",
            ),
            Self::PodDisruptionBudget => ("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets"),
            Self::NetworkPolicy => ("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies"),
            Self::Ingress => ("networking.k8s.io", "v1", "Ingress", "ingresses"),
            Self::HttpRoute => ("gateway.networking.k8s.io", "v1", "HTTPRoute", "httproutes"),
            Self::ServiceMonitor => ("monitoring.coreos.com", "v1", "ServiceMonitor", "servicemonitors"),
            Self::PrometheusRule => ("monitoring.coreos.com", "v1", "PrometheusRule", "prometheusrules"),
        };
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
    }
}

/// Requests for a container whose spec sets no `resources`: enough for the
/// scheduler to place it honestly (never BestEffort, first to be evicted),
/// no limits (a memory limit would turn a burst of large publishes into an
/// OOM kill). An explicit `resources`, even `{}`, replaces them entirely.
pub fn default_requests(cpu: &str, memory: &str) -> k8s_openapi::api::core::v1::ResourceRequirements {
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    k8s_openapi::api::core::v1::ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_string(), Quantity(cpu.to_string())),
            ("memory".to_string(), Quantity(memory.to_string())),
        ])),
        ..Default::default()
    }
}

/// Default requests of the registry container (cpu, memory).
pub const REGISTRY_REQUESTS: (&str, &str) = ("50m", "64Mi");
/// Default requests of the Redis container (cpu, memory).
pub const REDIS_REQUESTS: (&str, &str) = ("50m", "128Mi");

/// One desired child object.
#[derive(Clone, Debug, PartialEq)]
pub struct Child {
    /// Its kind.
    pub kind: ChildKind,
    /// Its name (namespace is the registry's).
    pub name: String,
    /// The full object as it is applied, `apiVersion` and `kind` included.
    pub object: serde_json::Value,
    /// Created once and never updated (the generated token Secret).
    pub create_only: bool,
}

impl Child {
    fn new<K>(kind: ChildKind, obj: &K) -> Result<Self, Error>
    where
        K: Resource<DynamicType = ()> + Serialize,
    {
        let name = obj.meta().name.clone().ok_or(Error::MissingMetadata("metadata.name"))?;
        let mut object = serde_json::to_value(obj)?;
        if let Some(map) = object.as_object_mut() {
            map.insert("apiVersion".into(), K::api_version(&()).into());
            map.insert("kind".into(), K::kind(&()).into());
        }
        Ok(Self::with_hash(kind, name, object, false))
    }

    fn with_hash(kind: ChildKind, name: String, object: serde_json::Value, create_only: bool) -> Self {
        let mut object = canonical(object);
        let hash = sha256_hex(object.to_string().as_bytes());
        if let Some(meta) = object.get_mut("metadata").and_then(|m| m.as_object_mut()) {
            let annotations = meta
                .entry("annotations")
                .or_insert_with(|| serde_json::Value::Object(Default::default()));
            if let Some(a) = annotations.as_object_mut() {
                a.insert(APPLIED_HASH_ANNOTATION.into(), hash[..16].to_string().into());
            }
        }
        Self {
            kind,
            name,
            object,
            create_only,
        }
    }
}

/// Everything the builders need besides the resource itself.
#[derive(Clone, Debug)]
pub struct BuildInput<'a> {
    /// The registry being reconciled.
    pub registry: &'a BanterRegistry,
    /// Operator settings (default images).
    pub settings: &'a Settings,
    /// Which optional kinds (monitoring, Gateway API) are served.
    pub apis: OptionalApis,
    /// Token written into the generated Secret when it is first created.
    pub generated_token: &'a str,
    /// Password written into the generated Redis auth Secret when it is
    /// first created (`BuildInput::new` sets it to `generated_token`;
    /// the reconciler gives it its own random value).
    pub generated_redis_password: &'a str,
    name: &'a str,
    namespace: &'a str,
    uid: &'a str,
}

impl<'a> BuildInput<'a> {
    /// The input for `registry`: fails once, here, when it lacks the name,
    /// namespace or uid every builder needs, so the builders cannot.
    pub fn new(
        registry: &'a BanterRegistry,
        settings: &'a Settings,
        apis: OptionalApis,
        generated_token: &'a str,
    ) -> Result<Self, Error> {
        let meta = &registry.metadata;
        Ok(Self {
            registry,
            settings,
            apis,
            generated_token,
            generated_redis_password: generated_token,
            name: meta.name.as_deref().ok_or(Error::MissingMetadata("metadata.name"))?,
            namespace: meta
                .namespace
                .as_deref()
                .ok_or(Error::MissingMetadata("metadata.namespace"))?,
            uid: meta.uid.as_deref().ok_or(Error::MissingMetadata("metadata.uid"))?,
        })
    }

    /// Name of the registry.
    pub fn name(&self) -> &'a str {
        self.name
    }

    /// Namespace of the registry.
    pub fn namespace(&self) -> &'a str {
        self.namespace
    }

    /// UID of the registry.
    pub fn uid(&self) -> &'a str {
        self.uid
    }

    /// Metadata of a child: name, namespace, labels and controller owner reference.
    pub fn meta(&self, name: String, component: Component) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace.to_string()),
            labels: Some(labels::labels(self.name, component)),
            owner_references: Some(vec![self.owner_reference()]),
            ..ObjectMeta::default()
        }
    }

    /// [`Self::meta`] plus user `extra` labels, which never replace the
    /// operator's own (its selectors rely on them).
    pub fn meta_with_labels(&self, name: String, component: Component, extra: &BTreeMap<String, String>) -> ObjectMeta {
        let mut meta = self.meta(name, component);
        placement::merge_under(&mut meta.labels, extra);
        meta
    }

    /// Whether the operator runs the Redis (redis backend, not external).
    pub fn managed_redis(&self) -> bool {
        let storage = &self.registry.spec.storage;
        storage.backend == Backend::Redis && storage.redis.external.is_none()
    }

    /// Whether more than one registry pod may run: `spec.replicas` above
    /// one, or an autoscaler allowed to go there.
    pub fn may_run_several(&self) -> bool {
        let spec = &self.registry.spec;
        match spec.autoscaling.as_ref().filter(|a| a.enabled) {
            Some(a) => a.max_replicas > 1,
            None => spec.replicas > 1,
        }
    }

    /// The controller owner reference pointing at the registry.
    pub fn owner_reference(&self) -> OwnerReference {
        OwnerReference {
            api_version: BanterRegistry::api_version(&()).into_owned(),
            kind: BanterRegistry::kind(&()).into_owned(),
            name: self.name.to_string(),
            uid: self.uid.to_string(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }
}

/// A generated Secret: created once and never updated, so it carries no
/// applied-hash annotation (nothing to compare, and no digest of its value
/// leaves the operator).
fn create_only_secret(secret: &k8s_openapi::api::core::v1::Secret) -> Result<Child, Error> {
    let mut child = Child::new(ChildKind::Secret, secret)?;
    child.create_only = true;
    if let Some(a) = child
        .object
        .pointer_mut("/metadata/annotations")
        .and_then(|a| a.as_object_mut())
    {
        a.remove(APPLIED_HASH_ANNOTATION);
        if a.is_empty()
            && let Some(m) = child.object.pointer_mut("/metadata").and_then(|m| m.as_object_mut())
        {
            m.remove("annotations");
        }
    }
    Ok(child)
}

/// Every child the registry should have right now, in apply order.
pub fn desired(input: &BuildInput<'_>) -> Result<Vec<Child>, Error> {
    let spec = &input.registry.spec;
    let mut out = Vec::new();
    let cm = configmap(input);
    let hash = config_hash(cm.data.as_ref().unwrap_or(&BTreeMap::new()));
    out.push(Child::new(ChildKind::ConfigMap, &cm)?);
    if spec.monitoring.grafana_dashboard.enabled {
        out.push(Child::new(ChildKind::ConfigMap, &dashboard_configmap(input))?);
    }
    if spec.auth.is_none() {
        out.push(create_only_secret(&token_secret(input))?);
    }
    match spec.storage.backend {
        Backend::Sqlite => {
            out.push(Child::new(ChildKind::PersistentVolumeClaim, &sqlite_pvc(input))?);
        }
        // An external Redis is someone else's: nothing to run or fence.
        Backend::Redis if spec.storage.redis.external.is_some() => {}
        Backend::Redis => {
            if spec.storage.redis.auth.is_none() {
                out.push(create_only_secret(&redis_password_secret(input))?);
            }
            out.push(Child::new(ChildKind::Service, &redis_service(input))?);
            out.push(Child::new(ChildKind::StatefulSet, &redis_statefulset(input))?);
        }
    }
    out.push(Child::new(ChildKind::Service, &service(input))?);
    out.push(Child::new(ChildKind::Deployment, &deployment(input, &hash))?);
    if let Some(hpa) = hpa(input) {
        out.push(Child::new(ChildKind::HorizontalPodAutoscaler, &hpa)?);
    }
    if input.may_run_several() {
        out.push(Child::new(ChildKind::PodDisruptionBudget, &pdb(input))?);
    }
    if let Some(ingress) = ingress(input) {
        out.push(Child::new(ChildKind::Ingress, &ingress)?);
    }
    if let Some(route) = http_route(input).filter(|_| input.apis.http_route) {
        out.push(Child::with_hash(
            ChildKind::HttpRoute,
            labels::names::registry(input.name()),
            route,
            false,
        ));
    }
    if let Some(from) = &spec.network_policy.registry_from {
        out.push(Child::new(
            ChildKind::NetworkPolicy,
            &registry_network_policy(input, from),
        )?);
    }
    if input.managed_redis() && spec.network_policy.enabled {
        out.push(Child::new(ChildKind::NetworkPolicy, &redis_network_policy(input))?);
    }
    if spec.monitoring.prometheus_rule.enabled && input.apis.prometheus_rule {
        out.push(Child::with_hash(
            ChildKind::PrometheusRule,
            labels::names::registry(input.name()),
            prometheus_rule(input),
            false,
        ));
    }
    if spec.monitoring.service_monitor.enabled && input.apis.service_monitor {
        let sm = service_monitor(input);
        out.push(Child::with_hash(
            ChildKind::ServiceMonitor,
            labels::names::registry(input.name()),
            sm,
            false,
        ));
    }
    out.sort_by_key(|c| c.kind);
    Ok(out)
}

/// `value` with every object's keys in sorted order, so hashes and rendered
/// YAML do not depend on serde_json's `preserve_order` feature being enabled
/// somewhere else in the build.
pub fn canonical(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<_> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            serde_json::Value::Object(entries.into_iter().map(|(k, v)| (k, canonical(v))).collect())
        }
        serde_json::Value::Array(items) => serde_json::Value::Array(items.into_iter().map(canonical).collect()),
        other => other,
    }
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
