//! PodDisruptionBudget of the registry pods (only with more than one replica).

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::BuildInput;
use crate::labels::{self, Component, names};

/// At most one registry pod voluntarily disrupted at a time.
pub fn pdb(input: &BuildInput<'_>) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: input.meta(names::registry(input.name()), Component::Registry),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(labels::selector(input.name(), Component::Registry)),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    }
}
