//! Pod placement and metadata from the spec, applied to a pod template.

use std::collections::BTreeMap;

use banter_api::PodPlacement;
use k8s_openapi::api::core::v1::{PodTemplateSpec, TopologySpreadConstraint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// Node label of the node a pod runs on.
const HOSTNAME_KEY: &str = "kubernetes.io/hostname";
/// Node label of the zone a node is in.
const ZONE_KEY: &str = "topology.kubernetes.io/zone";

/// The spread used when the spec sets none: across nodes, then zones, as
/// a preference (`ScheduleAnyway`), so a small cluster still schedules
/// every replica.
pub fn default_spread(selector: &BTreeMap<String, String>) -> Vec<TopologySpreadConstraint> {
    [HOSTNAME_KEY, ZONE_KEY]
        .into_iter()
        .map(|key| TopologySpreadConstraint {
            max_skew: 1,
            topology_key: key.into(),
            when_unsatisfiable: "ScheduleAnyway".into(),
            label_selector: Some(LabelSelector {
                match_labels: Some(selector.clone()),
                ..LabelSelector::default()
            }),
            ..TopologySpreadConstraint::default()
        })
        .collect()
}

/// Applies `placement` to `template`. The template's own labels win over
/// `podLabels` (selectors rely on them), its own annotations over
/// `podAnnotations` (the config hash rolls the pods). `spread` is used when
/// the spec sets no `topologySpreadConstraints`.
pub fn apply_placement(
    template: &mut PodTemplateSpec,
    placement: &PodPlacement,
    spread: Vec<TopologySpreadConstraint>,
) {
    let meta = template.metadata.get_or_insert_with(Default::default);
    merge_under(&mut meta.labels, &placement.pod_labels);
    merge_under(&mut meta.annotations, &placement.pod_annotations);
    let Some(pod) = template.spec.as_mut() else {
        return;
    };
    if !placement.node_selector.is_empty() {
        pod.node_selector = Some(placement.node_selector.clone());
    }
    if !placement.tolerations.is_empty() {
        pod.tolerations = Some(placement.tolerations.clone());
    }
    pod.affinity = placement.affinity.clone();
    let spread = placement.topology_spread_constraints.clone().unwrap_or(spread);
    pod.topology_spread_constraints = (!spread.is_empty()).then_some(spread);
    pod.priority_class_name = placement.priority_class_name.clone();
    if !placement.image_pull_secrets.is_empty() {
        pod.image_pull_secrets = Some(placement.image_pull_secrets.clone());
    }
}

/// Adds `extra` entries to `map` without replacing any it has.
pub(super) fn merge_under(map: &mut Option<BTreeMap<String, String>>, extra: &BTreeMap<String, String>) {
    if extra.is_empty() {
        return;
    }
    let map = map.get_or_insert_with(BTreeMap::new);
    for (k, v) in extra {
        map.entry(k.clone()).or_insert_with(|| v.clone());
    }
}
