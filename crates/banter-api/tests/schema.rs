//! The CRD schema: CEL rule, defaults, enums, bounds and documentation.

use banter_api::{Backend, BanterRegistry, BanterRegistrySpec, SQLITE_REPLICAS_MESSAGE};
use kube::CustomResourceExt;
use serde_json::Value;

fn spec(yaml: &str) -> BanterRegistrySpec {
    serde_norway::from_str(yaml).expect("spec parses")
}

fn registry(spec: BanterRegistrySpec) -> BanterRegistry {
    BanterRegistry::new("packs", spec)
}

#[test]
fn cel_rule_rejects_sqlite_with_more_than_one_replica() {
    let bad = registry(spec("replicas: 3"));
    let err = kube::core::cel::validate_cel(&bad).expect_err("sqlite with 3 replicas is rejected");
    assert!(format!("{err:?}").contains("spec.replicas must be 1"), "{err:?}");
    assert_eq!(bad.spec.validate(), Err(SQLITE_REPLICAS_MESSAGE.to_string()));

    for ok in ["{}", "replicas: 1", "replicas: 3\nstorage: {backend: redis}"] {
        let r = registry(spec(ok));
        kube::core::cel::validate_cel(&r).unwrap_or_else(|e| panic!("{ok} must pass: {e:?}"));
        assert_eq!(r.spec.validate(), Ok(()));
    }
}

#[test]
fn defaults_of_an_empty_spec() {
    let s = spec("{}");
    assert_eq!(s.replicas, 1);
    assert_eq!(s.storage.backend, Backend::Sqlite);
    assert!(s.storage.retain_on_delete);
    assert!(s.storage.redis.persistence.aof);
    assert_eq!(s.storage.redis.persistence.appendfsync, banter_api::AppendFsync::Always);
    assert_eq!(s.storage.sqlite.size.0, "1Gi");
    assert_eq!(s.service.port, 80);
    assert!(!s.monitoring.service_monitor.enabled);
    assert_eq!(s.monitoring.service_monitor.interval, "30s");
    assert!(s.auth.is_none());
}

fn schema() -> Value {
    let crd = serde_json::to_value(BanterRegistry::crd()).expect("crd json");
    crd.pointer("/spec/versions/0/schema/openAPIV3Schema")
        .cloned()
        .expect("schema")
}

/// Every property of the schema, recursively, has a description (kubectl explain).
fn undocumented(v: &Value, path: &str, out: &mut Vec<String>) {
    if let Some(props) = v.get("properties").and_then(Value::as_object) {
        for (k, p) in props {
            let here = format!("{path}.{k}");
            // metadata and apiVersion/kind come from Kubernetes itself.
            if ["apiVersion", "kind", "metadata"].contains(&k.as_str()) && path.is_empty() {
                continue;
            }
            if p.get("description").is_none() {
                out.push(here.clone());
            }
            undocumented(p, &here, out);
        }
    }
    if let Some(items) = v.get("items") {
        undocumented(items, &format!("{path}[]"), out);
    }
}

#[test]
fn every_field_is_documented() {
    let mut missing = Vec::new();
    undocumented(&schema(), "", &mut missing);
    // Kubernetes' own types (ResourceRequirements internals) are documented
    // upstream; ours must all be.
    missing.retain(|p| !p.contains("resources.") && !p.contains("conditions[]"));
    assert!(missing.is_empty(), "fields without a doc comment: {missing:?}");
}

#[test]
fn enums_bounds_and_columns() {
    let s = schema();
    let backend = s
        .pointer("/properties/spec/properties/storage/properties/backend/enum")
        .expect("enum");
    assert_eq!(backend, &serde_json::json!(["sqlite", "redis"]));
    let svc_type = s
        .pointer("/properties/spec/properties/service/properties/type/enum")
        .expect("enum");
    assert_eq!(svc_type, &serde_json::json!(["ClusterIP", "NodePort", "LoadBalancer"]));
    let port = s
        .pointer("/properties/spec/properties/service/properties/port")
        .expect("port");
    assert_eq!(port["minimum"].as_f64(), Some(1.0));
    assert_eq!(port["maximum"].as_f64(), Some(65535.0));
    let replicas = s.pointer("/properties/spec/properties/replicas").expect("replicas");
    assert_eq!(replicas["minimum"].as_f64(), Some(0.0));

    let crd = BanterRegistry::crd();
    let version = &crd.spec.versions[0];
    let columns: Vec<_> = version
        .additional_printer_columns
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|c| (c.name, c.json_path, c.priority.unwrap_or(0)))
        .collect();
    let ready = r#".status.conditions[?(@.type=="Ready")]"#;
    let expected = [
        ("Backend", ".spec.storage.backend".to_string(), 0),
        ("Ready", format!("{ready}.status"), 0),
        ("Replicas", ".status.replicas".to_string(), 0),
        ("Reason", format!("{ready}.reason"), 1),
        ("Endpoint", ".status.endpoint".to_string(), 0),
        ("Age", ".metadata.creationTimestamp".to_string(), 0),
    ];
    let expected: Vec<_> = expected.into_iter().map(|(n, p, pr)| (n.to_string(), p, pr)).collect();
    assert_eq!(columns, expected);
    assert!(version.subresources.as_ref().and_then(|s| s.status.as_ref()).is_some());
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(crd.spec.group, "banterpacks.io");
}

#[test]
fn storage_fields_that_kubernetes_cannot_change_are_immutable_per_backend() {
    let redis_1g = registry(spec("storage: {backend: redis, redis: {size: 1Gi}}"));
    let redis_5g = registry(spec("storage: {backend: redis, redis: {size: 5Gi}}"));
    let err = kube::core::cel::validate_cel_update(&redis_5g, &redis_1g).expect_err("resize refused");
    assert!(
        format!("{err:?}").contains("volume claim template is immutable"),
        "{err:?}"
    );

    // Switching backend, or editing the other backend's settings, is fine.
    let sqlite_5g = registry(spec("storage: {backend: sqlite, redis: {size: 5Gi}}"));
    let sqlite_1g = registry(spec("storage: {backend: sqlite, redis: {size: 1Gi}}"));
    kube::core::cel::validate_cel_update(&sqlite_5g, &redis_1g).expect("switch to sqlite");
    kube::core::cel::validate_cel_update(&sqlite_5g, &sqlite_1g).expect("redis settings while on sqlite");
    kube::core::cel::validate_cel_update(&redis_5g, &sqlite_1g).expect("switch to redis");

    let fast = registry(spec("storage: {backend: sqlite, sqlite: {storageClassName: fast}}"));
    let slow = registry(spec("storage: {backend: sqlite, sqlite: {storageClassName: slow}}"));
    let default_class = registry(spec("storage: {backend: sqlite}"));
    let err = kube::core::cel::validate_cel_update(&fast, &slow).expect_err("class change refused");
    assert!(format!("{err:?}").contains("storage class is immutable"), "{err:?}");
    kube::core::cel::validate_cel_update(&fast, &default_class).expect_err("setting a class later is a change too");
    kube::core::cel::validate_cel_update(&fast, &fast).expect("unchanged");
}

#[test]
fn scrape_interval_follows_the_prometheus_operator_duration_pattern() {
    let s = schema();
    let interval = s
        .pointer("/properties/spec/properties/monitoring/properties/serviceMonitor/properties/interval")
        .expect("interval");
    assert_eq!(interval["minLength"].as_u64(), Some(1), "an empty interval is rejected");
    let pattern = interval["pattern"].as_str().expect("pattern");
    let re = regex::Regex::new(pattern).expect("regex");
    for ok in ["30s", "1m30s", "1h", "500ms", "0", "1d2h"] {
        assert!(re.is_match(ok), "{ok} must be accepted");
    }
    for bad in ["30s5m", "1s1s", "10", "5 m", "1.5s"] {
        assert!(
            !re.is_match(bad),
            "{bad:?} must be rejected (the ServiceMonitor CRD would reject it)"
        );
    }
}

#[test]
fn sizes_are_never_null_and_follow_the_quantity_pattern() {
    assert_eq!(BanterRegistrySpec::default(), spec("{}"), "Default is the empty spec");
    let s = schema();
    // RE2 syntax, as the API server's Go regexp reads it.
    let re = regex::Regex::new(banter_api::QUANTITY_PATTERN).expect("pattern compiles");
    let re = |s: &str| re.is_match(s);
    for backend in ["sqlite", "redis"] {
        let size = &s["properties"]["spec"]["properties"]["storage"]["properties"][backend]["properties"]["size"];
        assert_eq!(size["nullable"], Value::Bool(false), "{backend}: {size}");
        assert_eq!(size["x-kubernetes-int-or-string"], Value::Bool(true));
        assert_eq!(size["pattern"].as_str(), Some(banter_api::QUANTITY_PATTERN));
    }
    for ok in ["1Gi", "500Mi", "1e3", "1.5G", "10"] {
        assert!(re(ok), "{ok} is a quantity");
    }
    for bad in ["", "-1Gi", "1 Gi", "1GiB", "lots", "1Gi\n"] {
        assert!(!re(bad), "{bad:?} is not a quantity");
    }
}

/// Each CEL rule of the platform fields, run by the CEL interpreter on the
/// object as the API server would see it, and the controller's own check.
#[test]
fn cel_rules_of_the_platform_fields() {
    let refused = [
        (
            "autoscaling: {maxReplicas: 3}",
            "spec.autoscaling needs spec.storage.backend redis",
        ),
        (
            "storage: {backend: redis}\nautoscaling: {minReplicas: 4, maxReplicas: 3}",
            "minReplicas must not exceed maxReplicas",
        ),
        ("podLabels: {app.kubernetes.io/instance: other}", "podLabels cannot set"),
        (
            "storage: {backend: redis, redis: {podLabels: {app.kubernetes.io/name: x}}}",
            "podLabels cannot set",
        ),
        (
            "storage: {backend: redis, redis: {external: {host: r.example.com}, tls: {secretName: t}}}",
            "with spec.storage.redis.external use",
        ),
        (
            "storage: {backend: redis, redis: {external: {host: r.example.com}, auth: {secretName: a}}}",
            "with spec.storage.redis.external use",
        ),
        (
            "service: {loadBalancerSourceRanges: [10.0.0.0/8]}",
            "needs type LoadBalancer",
        ),
        (
            "service: {type: ClusterIP, externalTrafficPolicy: Local}",
            "needs type NodePort or LoadBalancer",
        ),
        ("ingress: {hosts: [10.0.0.1]}", "must be DNS names, not IP addresses"),
        (
            "gateway: {parentRefs: [{name: edge}], hostnames: [192.168.1.10]}",
            "must be DNS names, not IP addresses",
        ),
    ];
    for (yaml, message) in refused {
        let r = registry(spec(yaml));
        let err = kube::core::cel::validate_cel(&r).expect_err(yaml);
        assert!(format!("{err:?}").contains(message), "{yaml}: {err:?}");
        let why = r.spec.validate().expect_err(yaml);
        assert!(why.contains(message), "validate() of {yaml}: {why}");
    }
    let accepted = [
        "storage: {backend: redis}\nautoscaling: {maxReplicas: 3}",
        "autoscaling: {enabled: false, maxReplicas: 3}",
        "podLabels: {team: overlays, app.kubernetes.io/version: '1'}",
        "storage: {backend: redis, redis: {external: {host: r.example.com, tls: {}}}}",
        "service: {type: LoadBalancer, loadBalancerSourceRanges: [10.0.0.0/8], externalTrafficPolicy: Local}",
        "service: {type: NodePort, externalTrafficPolicy: Cluster}",
        "ingress: {hosts: [packs.example.com, '*.example.org']}\ngateway: {parentRefs: [{name: edge}]}",
    ];
    for yaml in accepted {
        let r = registry(spec(yaml));
        kube::core::cel::validate_cel(&r).unwrap_or_else(|e| panic!("{yaml} must pass: {e:?}"));
        assert_eq!(r.spec.validate(), Ok(()), "{yaml}");
    }
}

#[test]
fn switching_to_an_external_redis_is_not_a_volume_change() {
    let managed_1g = registry(spec("storage: {backend: redis, redis: {size: 1Gi}}"));
    let external = registry(spec(
        "storage: {backend: redis, redis: {size: 5Gi, external: {host: r.example.com}}}",
    ));
    kube::core::cel::validate_cel_update(&external, &managed_1g).expect("to external");
    kube::core::cel::validate_cel_update(&managed_1g, &external).expect("back to managed");
    let managed_5g = registry(spec("storage: {backend: redis, redis: {size: 5Gi}}"));
    kube::core::cel::validate_cel_update(&managed_5g, &managed_1g).expect_err("managed resize still refused");
}

#[test]
fn platform_field_patterns() {
    let schema = schema();
    let props = &schema["properties"]["spec"]["properties"];
    let re = |pointer: &str| {
        let p = props
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no {pointer}"));
        regex::Regex::new(p).expect("pattern compiles")
    };
    let host = re("/ingress/properties/hosts/items/pattern");
    for ok in ["packs.example.com", "*.example.com", "a"] {
        assert!(host.is_match(ok), "{ok}");
    }
    for bad in ["Packs.example.com", "packs.example.com.", "*", "a..b", "packs example"] {
        assert!(!host.is_match(bad), "{bad}");
    }
    let path = re("/ingress/properties/path/pattern");
    assert!(path.is_match("/") && path.is_match("/packs/v1"));
    assert!(!path.is_match("packs") && !path.is_match("/a b") && !path.is_match("/a?b"));
    let cidr = re("/service/properties/loadBalancerSourceRanges/items/pattern");
    for ok in ["203.0.113.0/24", "0.0.0.0/0", "2001:db8::/32", "::/0"] {
        assert!(cidr.is_match(ok), "{ok}");
    }
    for bad in ["203.0.113.0", "203.0.113.0/33", "example.com/8"] {
        assert!(!cidr.is_match(bad), "{bad}");
    }
    let redis_host = re("/storage/properties/redis/properties/external/properties/host/pattern");
    for ok in ["redis.example.com", "10.0.0.5", "fd00::10", "my-redis"] {
        assert!(redis_host.is_match(ok), "{ok}");
    }
    for bad in ["redis://x", "a b", "host:6379/0"] {
        assert!(!redis_host.is_match(bad), "{bad}");
    }
    let auto = &props["autoscaling"]["properties"];
    assert_eq!(auto["targetCPUUtilizationPercentage"]["default"], 70);
    assert_eq!(auto["minReplicas"]["default"], 2);
}
