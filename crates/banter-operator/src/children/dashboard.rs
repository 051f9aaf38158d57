//! Grafana dashboard ConfigMap, picked up by the Grafana sidecar.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;

use super::BuildInput;
use crate::dashboards::DASHBOARDS;
use crate::labels::{Component, names};

/// Annotation the Grafana sidecar reads to choose a folder.
pub const FOLDER_ANNOTATION: &str = "grafana_folder";

/// ConfigMap with every dashboard of `dashboards/`.
pub fn dashboard_configmap(input: &BuildInput<'_>) -> ConfigMap {
    let spec = &input.registry.spec.monitoring.grafana_dashboard;
    let mut meta = input.meta(names::dashboards(input.name()), Component::Dashboard);
    if let Some(l) = meta.labels.as_mut() {
        if spec.labels.is_empty() {
            l.insert("grafana_dashboard".into(), "1".into());
        }
        for (k, v) in &spec.labels {
            l.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    if let Some(folder) = &spec.folder {
        meta.annotations = Some(BTreeMap::from([(FOLDER_ANNOTATION.to_string(), folder.clone())]));
    }
    let data = DASHBOARDS
        .iter()
        .map(|(file, json)| ((*file).to_string(), (*json).to_string()))
        .collect();
    ConfigMap {
        metadata: meta,
        data: Some(data),
        ..ConfigMap::default()
    }
}
