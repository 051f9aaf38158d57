//! Prometheus Operator ServiceMonitor (no typed crate: built as JSON).

use serde_json::json;

use super::BuildInput;
use crate::labels::{self, Component, names};

/// ServiceMonitor scraping the registry Service's `http` port at `/metrics`.
pub fn service_monitor(input: &BuildInput<'_>) -> serde_json::Value {
    let sm = &input.registry.spec.monitoring.service_monitor;
    let meta = input.meta_with_labels(names::registry(input.name()), Component::Registry, &sm.labels);
    json!({
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": meta,
        "spec": {
            "selector": { "matchLabels": labels::selector(input.name(), Component::Registry) },
            "namespaceSelector": { "matchNames": [input.namespace()] },
            "endpoints": [{ "port": "http", "path": "/metrics", "interval": sm.interval }],
        }
    })
}
