//! The registry Service.

use banter_api::ServiceType;
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::BuildInput;
use crate::labels::{self, Component, names};

/// The Service in front of the registry pods.
pub fn service(input: &BuildInput<'_>) -> Service {
    let svc = &input.registry.spec.service;
    let mut metadata = input.meta_with_labels(names::registry(input.name()), Component::Registry, &svc.labels);
    if !svc.annotations.is_empty() {
        metadata.annotations = Some(svc.annotations.clone());
    }
    let external = svc.type_ != ServiceType::ClusterIP;
    let load_balancer = svc.type_ == ServiceType::LoadBalancer;
    Service {
        metadata,
        spec: Some(ServiceSpec {
            type_: Some(svc.type_.as_str().into()),
            load_balancer_source_ranges: (load_balancer && !svc.load_balancer_source_ranges.is_empty())
                .then(|| svc.load_balancer_source_ranges.clone()),
            external_traffic_policy: svc
                .external_traffic_policy
                .filter(|_| external)
                .map(|p| p.as_str().into()),
            selector: Some(labels::selector(input.name(), Component::Registry)),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: svc.port,
                target_port: Some(IntOrString::String("http".into())),
                protocol: Some("TCP".into()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// In-cluster URL of the registry (reported in `status.endpoint`).
pub fn endpoint(input: &BuildInput<'_>) -> String {
    let port = input.registry.spec.service.port;
    let host = format!("{}.{}.svc", names::registry(input.name()), input.namespace());
    if port == 80 {
        format!("http://{host}")
    } else {
        format!("http://{host}:{port}")
    }
}
