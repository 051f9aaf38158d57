//! Prometheus Operator PrometheusRule with the registry alerts of
//! `alerts/banter-registry.rules.yml`, scoped to one registry.

use serde_json::json;

use super::BuildInput;
use crate::labels::{Component, names};

/// The registry rules file, embedded at build time (one source of truth
/// with the plain rules file users load).
pub const REGISTRY_RULES: &str = include_str!("../../../../alerts/banter-registry.rules.yml");

/// The label scope every selector of the rules file carries; replaced by
/// the registry's own `namespace` and `job` (its Service name).
pub const SCOPE: &str = r#"namespace=~".*", job=~".*""#;

/// The rule groups scoped to `namespace`/`name`.
pub fn registry_rules(namespace: &str, name: &str) -> serde_json::Value {
    // Names and namespaces are DNS labels: nothing in them needs escaping.
    let scoped = REGISTRY_RULES.replace(SCOPE, &format!(r#"namespace="{namespace}", job="{name}""#));
    // The file is checked by promtool and by the builder tests; an
    // unparsable copy cannot ship.
    serde_norway::from_str(&scoped).unwrap_or_else(|_| json!({"groups": []}))
}

/// PrometheusRule holding the registry alerts for this registry only.
pub fn prometheus_rule(input: &BuildInput<'_>) -> serde_json::Value {
    let spec = &input.registry.spec.monitoring.prometheus_rule;
    let meta = input.meta_with_labels(names::registry(input.name()), Component::Registry, &spec.labels);
    json!({
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": meta,
        "spec": registry_rules(input.namespace(), input.name()),
    })
}
