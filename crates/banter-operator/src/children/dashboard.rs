//! Grafana dashboard ConfigMap, picked up by the Grafana sidecar.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;

use super::BuildInput;
use crate::dashboards::DASHBOARDS;
use crate::labels::{Component, names};

/// Annotation the Grafana sidecar reads to choose a folder.
pub const FOLDER_ANNOTATION: &str = "grafana_folder";

/// The uid of a registry's copy of a dashboard: stable, unique per
/// namespace and name, within Grafana's 40 characters.
pub fn dashboard_uid(namespace: &str, name: &str, file: &str) -> String {
    let digest = super::sha256_hex(format!("{namespace}/{name}/{file}").as_bytes());
    format!("breg-{}", &digest[..32])
}

/// One registry's copy of a dashboard: its own file name and uid (the
/// Grafana sidecar keys files by name, Grafana dashboards by uid, so N
/// registries give N dashboards and deleting one removes only its own), a
/// title naming the registry, and its variables preselected to it.
fn for_registry(namespace: &str, name: &str, file: &str, json: &str) -> (String, String) {
    let stem = file.strip_suffix(".json").unwrap_or(file);
    let key = format!("{stem}-{namespace}-{name}.json");
    let Ok(mut d) = serde_json::from_str::<serde_json::Value>(json) else {
        // The embedded files are checked by tests; never drop one.
        return (key, json.to_string());
    };
    d["uid"] = dashboard_uid(namespace, name, file).into();
    let title = d["title"].as_str().unwrap_or("Banter Registry").to_string();
    d["title"] = format!("{title}: {namespace}/{name}").into();
    if let Some(vars) = d.pointer_mut("/templating/list").and_then(|l| l.as_array_mut()) {
        for v in vars {
            // The ServiceMonitor's job label is the registry's Service: its name.
            let value = match v["name"].as_str() {
                Some("namespace") => namespace,
                Some("job") => name,
                _ => continue,
            };
            v["current"] = serde_json::json!({"selected": true, "text": [value], "value": [value]});
        }
    }
    let text = serde_json::to_string_pretty(&d).unwrap_or_else(|_| json.to_string());
    (key, text)
}

/// ConfigMap with every dashboard of `dashboards/`, made this registry's own.
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
        .map(|(file, json)| for_registry(input.namespace(), input.name(), file, json))
        .collect();
    ConfigMap {
        metadata: meta,
        data: Some(data),
        ..ConfigMap::default()
    }
}
