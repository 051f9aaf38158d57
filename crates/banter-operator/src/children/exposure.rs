//! Exposure outside the cluster: an Ingress and a Gateway API HTTPRoute
//! (no typed crate: built as JSON) in front of the registry Service.

use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule, IngressServiceBackend, IngressSpec,
    IngressTLS, ServiceBackendPort,
};
use serde_json::{Map, Value, json};

use super::BuildInput;
use crate::labels::{Component, names};

/// The Ingress, when `spec.ingress` is enabled.
pub fn ingress(input: &BuildInput<'_>) -> Option<Ingress> {
    let spec = &input.registry.spec;
    let ing = spec.ingress.as_ref().filter(|i| i.enabled)?;
    let http = HTTPIngressRuleValue {
        paths: vec![HTTPIngressPath {
            path: Some(ing.path.clone()),
            path_type: "Prefix".into(),
            backend: IngressBackend {
                service: Some(IngressServiceBackend {
                    name: names::registry(input.name()),
                    port: Some(ServiceBackendPort {
                        number: Some(spec.service.port),
                        name: None,
                    }),
                }),
                resource: None,
            },
        }],
    };
    // No hosts: one rule for every host the controller serves.
    let rules = if ing.hosts.is_empty() {
        vec![IngressRule {
            host: None,
            http: Some(http),
        }]
    } else {
        ing.hosts
            .iter()
            .map(|h| IngressRule {
                host: Some(h.clone()),
                http: Some(http.clone()),
            })
            .collect()
    };
    let mut metadata = input.meta(names::registry(input.name()), Component::Registry);
    if !ing.annotations.is_empty() {
        metadata.annotations = Some(ing.annotations.clone());
    }
    Some(Ingress {
        metadata,
        spec: Some(IngressSpec {
            ingress_class_name: ing.class_name.clone(),
            rules: Some(rules),
            tls: ing.tls.as_ref().map(|t| {
                vec![IngressTLS {
                    hosts: (!ing.hosts.is_empty()).then(|| ing.hosts.clone()),
                    secret_name: Some(t.secret_name.clone()),
                }]
            }),
            default_backend: None,
        }),
        ..Ingress::default()
    })
}

/// The HTTPRoute, when `spec.gateway` is enabled (applied only where its
/// CRD is served).
pub fn http_route(input: &BuildInput<'_>) -> Option<Value> {
    let spec = &input.registry.spec;
    let gw = spec.gateway.as_ref().filter(|g| g.enabled)?;
    let parents: Vec<Value> = gw
        .parent_refs
        .iter()
        .map(|p| {
            let mut r = Map::new();
            r.insert("name".into(), p.name.clone().into());
            if let Some(ns) = &p.namespace {
                r.insert("namespace".into(), ns.clone().into());
            }
            if let Some(section) = &p.section_name {
                r.insert("sectionName".into(), section.clone().into());
            }
            if let Some(port) = p.port {
                r.insert("port".into(), port.into());
            }
            Value::Object(r)
        })
        .collect();
    let mut rule = json!({
        "matches": [{ "path": { "type": "PathPrefix", "value": gw.path } }],
        "backendRefs": [{ "name": names::registry(input.name()), "port": spec.service.port }],
    });
    if !gw.path.trim_end_matches('/').is_empty() {
        // The registry serves its API at the root: strip the prefix.
        rule["filters"] = json!([{
            "type": "URLRewrite",
            "urlRewrite": { "path": { "type": "ReplacePrefixMatch", "replacePrefixMatch": "/" } },
        }]);
    }
    let mut route_spec = json!({
        "parentRefs": parents,
        "rules": [rule],
    });
    if !gw.hostnames.is_empty() {
        route_spec["hostnames"] = json!(gw.hostnames);
    }
    Some(json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": input.meta(names::registry(input.name()), Component::Registry),
        "spec": route_spec,
    }))
}

/// The external URL the spec configures: the Ingress's first host, else
/// the HTTPRoute's first host name (a wildcard names no one host: none).
/// Whether the HTTPRoute is served is the caller's concern.
pub fn external_url(input: &BuildInput<'_>, http_route_served: bool) -> Option<String> {
    let spec = &input.registry.spec;
    let from_ingress = spec.ingress.as_ref().filter(|i| i.enabled).and_then(|i| {
        let scheme = if i.tls.is_some() { "https" } else { "http" };
        url(scheme, i.hosts.first()?, &i.path)
    });
    from_ingress.or_else(|| {
        let g = spec.gateway.as_ref().filter(|g| g.enabled && http_route_served)?;
        url(g.scheme.as_str(), g.hostnames.first()?, &g.path)
    })
}

fn url(scheme: &str, host: &str, path: &str) -> Option<String> {
    if host.starts_with('*') {
        return None;
    }
    Some(format!("{scheme}://{host}{}", path.trim_end_matches('/')))
}
