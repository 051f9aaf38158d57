//! NetworkPolicies: Redis fenced to its registry's pods, and optionally the
//! registry port fenced to listed peers.

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::BuildInput;
use super::redis::REDIS_PORT;
use crate::labels::{self, Component, names};

fn pods_of(input: &BuildInput<'_>, component: Component) -> LabelSelector {
    LabelSelector {
        match_labels: Some(labels::selector(input.name(), component)),
        ..LabelSelector::default()
    }
}

/// Ingress to `component`'s pods on `port` only, from `from` (every source
/// when `None`).
fn ingress_only(
    input: &BuildInput<'_>,
    name: String,
    component: Component,
    port: i32,
    from: Option<Vec<NetworkPolicyPeer>>,
) -> NetworkPolicy {
    NetworkPolicy {
        metadata: input.meta(name, component),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(pods_of(input, component)),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from,
                ports: Some(vec![NetworkPolicyPort {
                    port: Some(IntOrString::Int(port)),
                    protocol: Some("TCP".into()),
                    ..NetworkPolicyPort::default()
                }]),
            }]),
            ..NetworkPolicySpec::default()
        }),
    }
}

/// Ingress to the Redis pods from the registry pods, on the Redis port only.
pub fn redis_network_policy(input: &BuildInput<'_>) -> NetworkPolicy {
    let registry_pods = NetworkPolicyPeer {
        pod_selector: Some(pods_of(input, Component::Registry)),
        ..NetworkPolicyPeer::default()
    };
    ingress_only(
        input,
        names::redis(input.name()),
        Component::Redis,
        REDIS_PORT,
        Some(vec![registry_pods]),
    )
}

/// Ingress to the registry pods on the registry port only, from the peers
/// `spec.networkPolicy.registryFrom` lists (every source when empty).
pub fn registry_network_policy(input: &BuildInput<'_>, from: &[NetworkPolicyPeer]) -> NetworkPolicy {
    ingress_only(
        input,
        names::registry(input.name()),
        Component::Registry,
        super::configmap::REGISTRY_PORT,
        (!from.is_empty()).then(|| from.to_vec()),
    )
}
