//! The NetworkPolicy fencing a registry's Redis: only that registry's pods
//! may connect, and only to the Redis port.

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::BuildInput;
use super::redis::REDIS_PORT;
use crate::labels::{self, Component, names};

/// Ingress to the Redis pods from the registry pods, on the Redis port only.
pub fn redis_network_policy(input: &BuildInput<'_>) -> NetworkPolicy {
    let name = input.name();
    NetworkPolicy {
        metadata: input.meta(names::redis(name), Component::Redis),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(labels::selector(name, Component::Redis)),
                ..LabelSelector::default()
            }),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: Some(vec![NetworkPolicyPeer {
                    pod_selector: Some(LabelSelector {
                        match_labels: Some(labels::selector(name, Component::Registry)),
                        ..LabelSelector::default()
                    }),
                    ..NetworkPolicyPeer::default()
                }]),
                ports: Some(vec![NetworkPolicyPort {
                    port: Some(IntOrString::Int(REDIS_PORT)),
                    protocol: Some("TCP".into()),
                    ..NetworkPolicyPort::default()
                }]),
            }]),
            ..NetworkPolicySpec::default()
        }),
    }
}

/// Ingress to the registry pods on the registry port only, from the peers
/// `spec.networkPolicy.registryFrom` lists (every source when empty).
pub fn registry_network_policy(input: &BuildInput<'_>, from: &[NetworkPolicyPeer]) -> NetworkPolicy {
    let name = input.name();
    NetworkPolicy {
        metadata: input.meta(names::registry(name), Component::Registry),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(labels::selector(name, Component::Registry)),
                ..LabelSelector::default()
            }),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: (!from.is_empty()).then(|| from.to_vec()),
                ports: Some(vec![NetworkPolicyPort {
                    port: Some(IntOrString::Int(super::configmap::REGISTRY_PORT)),
                    protocol: Some("TCP".into()),
                    ..NetworkPolicyPort::default()
                }]),
            }]),
            ..NetworkPolicySpec::default()
        }),
    }
}
