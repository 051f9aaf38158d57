//! HorizontalPodAutoscaler of the registry Deployment (`spec.autoscaling`).

use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricSpec, MetricTarget,
    ResourceMetricSource,
};

use super::BuildInput;
use crate::labels::{Component, names};

/// The autoscaler, when `spec.autoscaling` is enabled.
pub fn hpa(input: &BuildInput<'_>) -> Option<HorizontalPodAutoscaler> {
    let a = input.registry.spec.autoscaling.as_ref().filter(|a| a.enabled)?;
    let utilization = |resource: &str, percent: i32| MetricSpec {
        type_: "Resource".into(),
        resource: Some(ResourceMetricSource {
            name: resource.into(),
            target: MetricTarget {
                type_: "Utilization".into(),
                average_utilization: Some(percent),
                ..MetricTarget::default()
            },
        }),
        ..MetricSpec::default()
    };
    let metrics = std::iter::once(utilization("cpu", a.target_cpu_utilization_percentage))
        .chain(a.target_memory_utilization_percentage.map(|p| utilization("memory", p)))
        .collect();
    Some(HorizontalPodAutoscaler {
        metadata: input.meta(names::registry(input.name()), Component::Registry),
        spec: Some(HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".into()),
                kind: "Deployment".into(),
                name: names::registry(input.name()),
            },
            min_replicas: Some(a.min_replicas),
            max_replicas: a.max_replicas,
            metrics: Some(metrics),
            behavior: None,
        }),
        ..HorizontalPodAutoscaler::default()
    })
}
