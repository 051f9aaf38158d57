//! Pure tests of the child builders: no cluster, no mock server.

use std::collections::BTreeMap;

use banter_api::{AuthSpec, Backend, BanterRegistry, BanterRegistrySpec};
use banter_operator::Settings;
use banter_operator::children::{self, APPLIED_HASH_ANNOTATION, BuildInput, CONFIG_HASH_ANNOTATION, Child, ChildKind};
use banter_operator::discovery::OptionalApis;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, PodSpec, Secret};
use serde_json::Value;

const UID: &str = "1b4e28ba-2fa1-11d2-883f-0016d3cca427";

fn registry(spec: BanterRegistrySpec) -> BanterRegistry {
    let mut r = BanterRegistry::new("packs", spec);
    r.metadata.namespace = Some("banter".into());
    r.metadata.uid = Some(UID.into());
    r
}

fn build(reg: &BanterRegistry, served: bool) -> Vec<Child> {
    let settings = Settings::default();
    let mut input = BuildInput::new(reg, &settings, OptionalApis::all(served), "tok-123").expect("input");
    input.generated_redis_password = "redis-pw-456";
    children::desired(&input).expect("builds")
}

fn sqlite() -> BanterRegistrySpec {
    serde_json::from_value(serde_json::json!({})).expect("defaults")
}

fn redis(replicas: i32) -> BanterRegistrySpec {
    serde_json::from_value(serde_json::json!({"replicas": replicas, "storage": {"backend": "redis"}})).expect("spec")
}

fn find<'a>(children: &'a [Child], kind: ChildKind, name: &str) -> &'a Child {
    children
        .iter()
        .find(|c| c.kind == kind && c.name == name)
        .unwrap_or_else(|| panic!("no {kind:?} {name} in {:?}", ids(children)))
}

fn ids(children: &[Child]) -> Vec<(ChildKind, String)> {
    children.iter().map(|c| (c.kind, c.name.clone())).collect()
}

fn typed<T: serde::de::DeserializeOwned>(c: &Child) -> T {
    serde_json::from_value(c.object.clone()).expect("typed")
}

fn deployment(children: &[Child]) -> Deployment {
    typed(find(children, ChildKind::Deployment, "packs"))
}

fn pod_spec(d: &Deployment) -> PodSpec {
    d.spec.clone().expect("spec").template.spec.expect("pod spec")
}

fn config_hash(children: &[Child]) -> String {
    deployment(children)
        .spec
        .expect("spec")
        .template
        .metadata
        .expect("meta")
        .annotations
        .expect("annotations")[CONFIG_HASH_ANNOTATION]
        .clone()
}

#[test]
fn sqlite_children_and_order() {
    let c = build(&registry(sqlite()), true);
    assert_eq!(
        ids(&c),
        vec![
            (ChildKind::ConfigMap, "packs-config".into()),
            (ChildKind::Secret, "packs-tokens".into()),
            (ChildKind::PersistentVolumeClaim, "packs-data".into()),
            (ChildKind::Service, "packs".into()),
            (ChildKind::Deployment, "packs".into()),
        ]
    );
    let d = deployment(&c);
    let spec = d.spec.clone().expect("spec");
    assert_eq!(spec.replicas, Some(1));
    let strategy = spec.strategy.expect("strategy");
    assert_eq!(strategy.type_.as_deref(), Some("Recreate"));
    assert!(
        strategy.rolling_update.is_none(),
        "rollingUpdate is invalid with Recreate"
    );
    let pod = pod_spec(&d);
    let vols: Vec<_> = pod
        .volumes
        .clone()
        .unwrap_or_default()
        .iter()
        .map(|v| v.name.clone())
        .collect();
    assert_eq!(vols, ["tokens", "tmp", "data"]);
    let data = pod
        .volumes
        .unwrap_or_default()
        .into_iter()
        .find(|v| v.name == "data")
        .expect("data");
    assert_eq!(data.persistent_volume_claim.expect("pvc").claim_name, "packs-data");
    let mounts: Vec<_> = pod.containers[0]
        .volume_mounts
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|m| (m.mount_path, m.read_only.unwrap_or(false)))
        .collect();
    assert_eq!(
        mounts,
        [
            ("/etc/banter-registry/tokens".to_string(), true),
            ("/tmp".to_string(), false),
            ("/data".to_string(), false)
        ]
    );
    let cm: ConfigMap = typed(find(&c, ChildKind::ConfigMap, "packs-config"));
    let data = cm.data.expect("data");
    assert_eq!(data["BANTER_REGISTRY_BACKEND"], "sqlite");
    assert_eq!(data["BANTER_REGISTRY_SQLITE_PATH"], "/data/registry.db");
    assert_eq!(data["BANTER_REGISTRY_LISTEN"], "0.0.0.0:8080");
    assert_eq!(data["BANTER_REGISTRY_TOKEN_FILE"], "/etc/banter-registry/tokens/tokens");
    assert_eq!(data["BANTER_REGISTRY_LOG_FORMAT"], "json");
    assert!(!data.contains_key("BANTER_REGISTRY_REDIS_URL"));
    let pvc = find(&c, ChildKind::PersistentVolumeClaim, "packs-data");
    assert_eq!(
        pvc.object.pointer("/spec/resources/requests/storage"),
        Some(&Value::from("1Gi"))
    );
    assert_eq!(
        pvc.object.pointer("/metadata/labels/banterpacks.io~1data"),
        Some(&Value::from("sqlite"))
    );
}

#[test]
fn redis_children_config_and_statefulset() {
    let c = build(&registry(redis(1)), true);
    assert_eq!(
        ids(&c),
        vec![
            (ChildKind::ConfigMap, "packs-config".into()),
            (ChildKind::Secret, "packs-tokens".into()),
            (ChildKind::Secret, "packs-redis-auth".into()),
            (ChildKind::Service, "packs-redis".into()),
            (ChildKind::Service, "packs".into()),
            (ChildKind::StatefulSet, "packs-redis".into()),
            (ChildKind::Deployment, "packs".into()),
            (ChildKind::NetworkPolicy, "packs-redis".into()),
        ]
    );
    let cm: ConfigMap = typed(find(&c, ChildKind::ConfigMap, "packs-config"));
    let data = cm.data.expect("data");
    assert_eq!(data["BANTER_REGISTRY_BACKEND"], "redis");
    assert_eq!(
        data["BANTER_REGISTRY_REDIS_PASSWORD_FILE"],
        "/etc/banter-registry/redis/password"
    );
    let secret = find(&c, ChildKind::Secret, "packs-redis-auth");
    assert!(secret.create_only, "generated once, never overwritten");
    // The password appears in its Secret and nowhere else.
    let password = secret.object["stringData"]["password"]
        .as_str()
        .expect("password")
        .to_string();
    for other in c.iter().filter(|o| o.name != "packs-redis-auth") {
        assert!(
            !other.object.to_string().contains(&password),
            "{:?} {}",
            other.kind,
            other.name
        );
    }
    let np = find(&c, ChildKind::NetworkPolicy, "packs-redis");
    assert_eq!(
        np.object["spec"],
        serde_json::json!({
            "podSelector": {"matchLabels": {"app.kubernetes.io/component": "redis",
                "app.kubernetes.io/instance": "packs", "app.kubernetes.io/name": "banter-registry"}},
            "policyTypes": ["Ingress"],
            "ingress": [{
                "from": [{"podSelector": {"matchLabels": {"app.kubernetes.io/component": "registry",
                    "app.kubernetes.io/instance": "packs", "app.kubernetes.io/name": "banter-registry"}}}],
                "ports": [{"port": 6379, "protocol": "TCP"}]
            }]
        })
    );
    assert_eq!(
        data["BANTER_REGISTRY_REDIS_URL"],
        "redis://packs-redis-0.packs-redis.banter.svc:6379/0"
    );
    assert_eq!(data["BANTER_REGISTRY_REDIS_KEY_PREFIX"], "banter:packs:");
    assert!(!data.contains_key("BANTER_REGISTRY_SQLITE_PATH"));

    let headless = find(&c, ChildKind::Service, "packs-redis");
    assert_eq!(headless.object.pointer("/spec/clusterIP"), Some(&Value::from("None")));

    let sts: StatefulSet = typed(find(&c, ChildKind::StatefulSet, "packs-redis"));
    let spec = sts.spec.expect("spec");
    assert_eq!(spec.service_name.as_deref(), Some("packs-redis"));
    let pod = spec.template.spec.expect("pod");
    let redis = &pod.containers[0];
    assert_eq!(redis.image.as_deref(), Some("redis:7.4-alpine"));
    let args = redis.args.clone().unwrap_or_default().join(" ");
    assert!(args.contains("--appendonly yes"), "{args}");
    // A password, always; never protected mode switched off.
    assert!(args.contains("--requirepass $(REDIS_PASSWORD)"), "{args}");
    assert!(!args.contains("protected-mode"), "{args}");
    let env = redis.env.clone().unwrap_or_default();
    for var in ["REDIS_PASSWORD", "REDISCLI_AUTH"] {
        let e = env.iter().find(|e| e.name == var).expect("password env");
        assert!(e.value.is_none(), "{var}: no literal value in the pod spec");
        let r = e
            .value_from
            .as_ref()
            .and_then(|v| v.secret_key_ref.as_ref())
            .expect("secret ref");
        assert_eq!((r.name.as_str(), r.key.as_str()), ("packs-redis-auth", "password"));
    }
    for probe in [&redis.liveness_probe, &redis.readiness_probe] {
        let cmd = probe
            .as_ref()
            .and_then(|p| p.exec.as_ref())
            .and_then(|e| e.command.clone());
        assert_eq!(cmd, Some(vec!["redis-cli".to_string(), "ping".to_string()]));
    }
    assert_restricted(&pod);
    let claims = spec.volume_claim_templates.expect("claim template");
    assert_eq!(claims[0].metadata.name.as_deref(), Some("data"));
    let claim_labels = claims[0].metadata.labels.clone().expect("labels");
    assert_eq!(claim_labels["banterpacks.io/data"], "redis");
    assert_eq!(claim_labels["app.kubernetes.io/instance"], "packs");

    let d = deployment(&c);
    let strategy = d.spec.clone().and_then(|s| s.strategy).expect("strategy");
    assert_eq!(strategy.type_.as_deref(), Some("RollingUpdate"));
    // Spelled out so a later switch to Recreate can drop it (server-side apply).
    let rolling = strategy.rolling_update.expect("rollingUpdate owned by the operator");
    assert_eq!(
        rolling.max_unavailable,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(0))
    );
    let vols: Vec<_> = pod_spec(&d)
        .volumes
        .unwrap_or_default()
        .into_iter()
        .map(|v| v.name)
        .collect();
    assert_eq!(
        vols,
        ["tokens", "tmp", "redis-auth"],
        "no data volume for redis; the password Secret mounted whole"
    );
}

#[test]
fn aof_off_is_honoured() {
    let spec: BanterRegistrySpec = serde_json::from_value(serde_json::json!({
        "storage": {"backend": "redis", "redis": {"persistence": {"aof": false}}}
    }))
    .expect("spec");
    let c = build(&registry(spec), true);
    let sts: StatefulSet = typed(find(&c, ChildKind::StatefulSet, "packs-redis"));
    let args = sts.spec.expect("spec").template.spec.expect("pod").containers[0]
        .args
        .clone()
        .unwrap_or_default()
        .join(" ");
    assert!(args.contains("--appendonly no"), "{args}");
}

#[test]
fn appendfsync_defaults_to_always_and_can_be_relaxed() {
    let args_for = |persistence: serde_json::Value| {
        let spec: BanterRegistrySpec = serde_json::from_value(serde_json::json!({
            "storage": {"backend": "redis", "redis": {"persistence": persistence}}
        }))
        .expect("spec");
        let c = build(&registry(spec), true);
        let sts: StatefulSet = typed(find(&c, ChildKind::StatefulSet, "packs-redis"));
        sts.spec.expect("spec").template.spec.expect("pod").containers[0]
            .args
            .clone()
            .unwrap_or_default()
            .join(" ")
    };
    let default = args_for(serde_json::json!({}));
    assert!(default.contains("--appendonly yes --appendfsync always"), "{default}");
    let relaxed = args_for(serde_json::json!({"appendfsync": "everysec"}));
    assert!(relaxed.contains("--appendfsync everysec"), "{relaxed}");
}

fn assert_restricted(pod: &PodSpec) {
    let psc = pod.security_context.clone().expect("pod security context");
    assert_eq!(psc.run_as_non_root, Some(true));
    assert_eq!(psc.seccomp_profile.map(|s| s.type_).as_deref(), Some("RuntimeDefault"));
    for c in &pod.containers {
        let sc = c.security_context.clone().expect("container security context");
        assert_eq!(sc.allow_privilege_escalation, Some(false), "{}", c.name);
        assert_eq!(sc.read_only_root_filesystem, Some(true), "{}", c.name);
        assert_eq!(sc.run_as_non_root, Some(true), "{}", c.name);
        assert_eq!(sc.capabilities.and_then(|c| c.drop), Some(vec!["ALL".to_string()]));
        assert_eq!(sc.seccomp_profile.map(|s| s.type_).as_deref(), Some("RuntimeDefault"));
    }
    assert_eq!(pod.automount_service_account_token, Some(false));
}

#[test]
fn registry_pod_is_restricted_and_probed() {
    for spec in [sqlite(), redis(3)] {
        let c = build(&registry(spec), true);
        let pod = pod_spec(&deployment(&c));
        assert_restricted(&pod);
        let psc = pod.security_context.clone().expect("psc");
        assert_eq!(psc.run_as_user, Some(65532));
        assert_eq!(psc.run_as_group, Some(65532));
        let container = &pod.containers[0];
        assert_eq!(container.command, Some(vec!["banter-registry".to_string()]));
        assert_eq!(container.args, Some(vec!["serve".to_string()]));
        assert_eq!(container.image.as_deref(), Some("banterpacks/banter-registry:0.1.0"));
        let live = container
            .liveness_probe
            .clone()
            .and_then(|p| p.http_get)
            .expect("liveness");
        let ready = container
            .readiness_probe
            .clone()
            .and_then(|p| p.http_get)
            .expect("readiness");
        assert_eq!(live.path.as_deref(), Some("/healthz"));
        assert_eq!(ready.path.as_deref(), Some("/readyz"));
        let port = &container.ports.clone().expect("ports")[0];
        assert_eq!((port.name.as_deref(), port.container_port), (Some("http"), 8080));
        let env_from = container.env_from.clone().expect("envFrom");
        assert_eq!(
            env_from[0].config_map_ref.as_ref().map(|r| r.name.as_str()),
            Some("packs-config")
        );
    }
}

#[test]
fn every_child_has_labels_owner_reference_and_applied_hash() {
    let mut spec = redis(3);
    spec.monitoring.service_monitor.enabled = true;
    spec.monitoring.grafana_dashboard.enabled = true;
    for spec in [sqlite(), spec] {
        for child in build(&registry(spec), true) {
            let labels = child.object.pointer("/metadata/labels").expect("labels");
            for (k, v) in [
                ("app.kubernetes.io/name", "banter-registry"),
                ("app.kubernetes.io/instance", "packs"),
                ("app.kubernetes.io/managed-by", "banter-operator"),
                ("app.kubernetes.io/part-of", "banterpacks"),
            ] {
                assert_eq!(
                    labels.get(k),
                    Some(&Value::from(v)),
                    "{k} on {:?} {}",
                    child.kind,
                    child.name
                );
            }
            assert!(labels.get("app.kubernetes.io/component").is_some());
            if child.kind == ChildKind::PersistentVolumeClaim {
                // Kept data (retainOnDelete, the default) is never owned, so no
                // cascading delete of the registry can take it with it.
                assert!(
                    child.object.pointer("/metadata/ownerReferences").is_none(),
                    "{}",
                    child.name
                );
                continue;
            }
            let owner = child.object.pointer("/metadata/ownerReferences/0").expect("owner");
            assert_eq!(owner["kind"], "BanterRegistry");
            assert_eq!(owner["apiVersion"], "banterpacks.io/v1alpha1");
            assert_eq!(owner["uid"], UID);
            assert_eq!(owner["controller"], true);
            assert_eq!(
                child.object.pointer("/metadata/namespace"),
                Some(&Value::from("banter"))
            );
            let hashed = child
                .object
                .pointer("/metadata/annotations")
                .and_then(|a| a.get(APPLIED_HASH_ANNOTATION))
                .is_some();
            assert_eq!(hashed, !child.create_only, "{:?} {}", child.kind, child.name);
        }
    }
}

#[test]
fn monitoring_on_and_off() {
    let off = build(&registry(sqlite()), true);
    assert!(off.iter().all(|c| c.kind != ChildKind::ServiceMonitor));
    assert!(off.iter().all(|c| c.name != "packs-dashboards"));

    let mut spec = sqlite();
    spec.monitoring.service_monitor.enabled = true;
    spec.monitoring
        .service_monitor
        .labels
        .insert("release".into(), "prom".into());
    spec.monitoring.grafana_dashboard.enabled = true;
    spec.monitoring.grafana_dashboard.folder = Some("Banter".into());
    let on = build(&registry(spec.clone()), true);
    let sm = find(&on, ChildKind::ServiceMonitor, "packs");
    assert_eq!(sm.object["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(
        sm.object.pointer("/metadata/labels/release"),
        Some(&Value::from("prom"))
    );
    assert_eq!(sm.object.pointer("/spec/endpoints/0/port"), Some(&Value::from("http")));
    assert_eq!(
        sm.object.pointer("/spec/endpoints/0/path"),
        Some(&Value::from("/metrics"))
    );
    assert_eq!(
        sm.object.pointer("/spec/endpoints/0/interval"),
        Some(&Value::from("30s"))
    );
    let dash: ConfigMap = typed(find(&on, ChildKind::ConfigMap, "packs-dashboards"));
    assert_eq!(dash.metadata.labels.clone().expect("labels")["grafana_dashboard"], "1");
    assert_eq!(
        dash.metadata.annotations.clone().expect("annotations")["grafana_folder"],
        "Banter"
    );
    let json = &dash.data.expect("data")["banter-registry-banter-packs.json"];
    let mut parsed: Value = serde_json::from_str(json).expect("dashboard is JSON");
    assert_eq!(parsed["schemaVersion"], 39);
    // The file in dashboards/, but for the registry's uid, title and variables.
    let mut file: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../dashboards/banter-registry.json"
        ))
        .expect("dashboard file"),
    )
    .expect("file is JSON");
    for d in [&mut parsed, &mut file] {
        d["uid"] = Value::Null;
        d["title"] = Value::Null;
        for v in d["templating"]["list"].as_array_mut().expect("variables") {
            v["current"] = Value::Null;
        }
    }
    assert_eq!(parsed, file, "embedded dashboard is the file in dashboards/");

    // Custom labels replace the sidecar default.
    spec.monitoring
        .grafana_dashboard
        .labels
        .insert("team".into(), "stream".into());
    let custom: ConfigMap = typed(find(
        &build(&registry(spec.clone()), true),
        ChildKind::ConfigMap,
        "packs-dashboards",
    ));
    let labels = custom.metadata.labels.expect("labels");
    assert_eq!(labels["team"], "stream");
    assert!(!labels.contains_key("grafana_dashboard"));

    // ServiceMonitor CRD not served: no ServiceMonitor, the dashboard stays.
    let missing = build(&registry(spec), false);
    assert!(missing.iter().all(|c| c.kind != ChildKind::ServiceMonitor));
    assert!(missing.iter().any(|c| c.name == "packs-dashboards"));
}

#[test]
fn auth_given_or_generated() {
    let generated = build(&registry(sqlite()), true);
    let secret_child = find(&generated, ChildKind::Secret, "packs-tokens");
    assert!(secret_child.create_only, "generated Secret is never overwritten");
    let secret: Secret = typed(secret_child);
    assert_eq!(secret.string_data.expect("stringData")["tokens"], "tok-123\n");
    let vol = pod_spec(&deployment(&generated)).volumes.unwrap_or_default().remove(0);
    assert_eq!(vol.secret.and_then(|s| s.secret_name).as_deref(), Some("packs-tokens"));

    let mut spec = sqlite();
    spec.auth = Some(AuthSpec {
        secret_name: "my-tokens".into(),
    });
    let given = build(&registry(spec), true);
    assert!(
        given.iter().all(|c| c.kind != ChildKind::Secret),
        "user Secret is not managed"
    );
    let vol = pod_spec(&deployment(&given)).volumes.unwrap_or_default().remove(0);
    assert_eq!(vol.secret.and_then(|s| s.secret_name).as_deref(), Some("my-tokens"));
}

#[test]
fn replicas_one_and_three() {
    let one = build(&registry(redis(1)), true);
    assert!(one.iter().all(|c| c.kind != ChildKind::PodDisruptionBudget));
    assert_eq!(deployment(&one).spec.and_then(|s| s.replicas), Some(1));

    let three = build(&registry(redis(3)), true);
    let pdb = find(&three, ChildKind::PodDisruptionBudget, "packs");
    assert_eq!(pdb.object.pointer("/spec/maxUnavailable"), Some(&Value::from(1)));
    assert_eq!(
        pdb.object
            .pointer("/spec/selector/matchLabels/app.kubernetes.io~1component"),
        Some(&Value::from("registry"))
    );
    assert_eq!(deployment(&three).spec.and_then(|s| s.replicas), Some(3));
}

#[test]
fn retain_on_and_off() {
    for (retain, policy) in [(true, "Retain"), (false, "Delete")] {
        let mut spec = redis(1);
        spec.storage.retain_on_delete = retain;
        let c = build(&registry(spec), true);
        let sts = find(&c, ChildKind::StatefulSet, "packs-redis");
        assert_eq!(
            sts.object
                .pointer("/spec/persistentVolumeClaimRetentionPolicy/whenDeleted"),
            Some(&Value::from(policy))
        );
    }
    // SQLite: a volume to keep has no owner (a foreground delete cannot take
    // it); a disposable one is owned by the registry like every other child.
    for (retain, owned) in [(true, false), (false, true)] {
        let mut spec = sqlite();
        spec.storage.retain_on_delete = retain;
        let c = build(&registry(spec), true);
        let pvc = find(&c, ChildKind::PersistentVolumeClaim, "packs-data");
        let owner = pvc.object.pointer("/metadata/ownerReferences/0");
        assert_eq!(owner.is_some(), owned, "retainOnDelete={retain}");
        if let Some(owner) = owner {
            assert_eq!(owner["uid"], UID);
        }
    }
}

#[test]
fn config_hash_changes_when_and_only_when_config_changes() {
    let base = config_hash(&build(&registry(sqlite()), true));
    assert_eq!(base, config_hash(&build(&registry(sqlite()), true)), "deterministic");

    // Not part of the ConfigMap: hash unchanged.
    let mut spec = sqlite();
    spec.image = Some("example/registry:dev".into());
    spec.service.port = 9000;
    spec.monitoring.grafana_dashboard.enabled = true;
    assert_eq!(base, config_hash(&build(&registry(spec), true)));
    assert_eq!(
        config_hash(&build(&registry(redis(1)), true)),
        config_hash(&build(&registry(redis(3)), true)),
        "replicas are not configuration"
    );

    // Part of the ConfigMap: hash changes.
    assert_ne!(base, config_hash(&build(&registry(redis(1)), true)), "backend");
    let mut other_ns = registry(redis(1));
    other_ns.metadata.namespace = Some("elsewhere".into());
    assert_ne!(
        config_hash(&build(&registry(redis(1)), true)),
        config_hash(&build(&other_ns, true)),
        "redis URL"
    );
}

#[test]
fn applied_hash_tracks_the_desired_object() {
    let a = build(&registry(sqlite()), true);
    let mut spec = sqlite();
    spec.replicas = 0;
    let b = build(&registry(spec), true);
    let hash = |c: &[Child]| {
        find(c, ChildKind::Deployment, "packs").object["metadata"]["annotations"][APPLIED_HASH_ANNOTATION].clone()
    };
    assert_ne!(hash(&a), hash(&b));
    let svc = |c: &[Child]| find(c, ChildKind::Service, "packs").object.clone();
    assert_eq!(svc(&a), svc(&b));
}

#[test]
fn backend_is_default_sqlite() {
    assert_eq!(sqlite().storage.backend, Backend::Sqlite);
    assert!(sqlite().storage.retain_on_delete);
}

#[test]
fn containers_get_default_requests_unless_resources_are_given() {
    let container_resources = |children: &[Child], kind: ChildKind, name: &str| {
        find(children, kind, name).object["spec"]["template"]["spec"]["containers"][0]["resources"].clone()
    };
    // Never BestEffort by default; no limits.
    let d = build(&registry(redis(2)), false);
    assert_eq!(
        container_resources(&d, ChildKind::Deployment, "packs"),
        serde_json::json!({"requests": {"cpu": "50m", "memory": "64Mi"}})
    );
    assert_eq!(
        container_resources(&d, ChildKind::StatefulSet, "packs-redis"),
        serde_json::json!({"requests": {"cpu": "50m", "memory": "128Mi"}})
    );
    // Given, even empty, they replace the defaults entirely.
    let spec: BanterRegistrySpec = serde_json::from_value(serde_json::json!({
        "resources": {"limits": {"memory": "1Gi"}},
        "storage": {"backend": "redis", "redis": {"resources": {}}}
    }))
    .expect("spec");
    let d = build(&registry(spec), false);
    assert_eq!(
        container_resources(&d, ChildKind::Deployment, "packs"),
        serde_json::json!({"limits": {"memory": "1Gi"}})
    );
    assert_eq!(
        container_resources(&d, ChildKind::StatefulSet, "packs-redis"),
        serde_json::json!({})
    );
}

#[test]
fn tls_to_redis_serves_tls_only_and_gives_the_registry_only_the_ca() {
    let spec: BanterRegistrySpec = serde_json::from_value(serde_json::json!({
        "replicas": 2, "storage": {"backend": "redis", "redis": {"tls": {"secretName": "redis-cert"}}}
    }))
    .expect("spec");
    let c = build(&registry(spec), false);
    let cm: ConfigMap = typed(find(&c, ChildKind::ConfigMap, "packs-config"));
    let data = cm.data.expect("data");
    assert_eq!(
        data["BANTER_REGISTRY_REDIS_URL"],
        "rediss://packs-redis-0.packs-redis.banter.svc:6379/0"
    );
    assert_eq!(
        data["BANTER_REGISTRY_REDIS_CA_FILE"],
        "/etc/banter-registry/redis-tls/ca.crt"
    );

    let sts: StatefulSet = typed(find(&c, ChildKind::StatefulSet, "packs-redis"));
    let pod = sts.spec.expect("spec").template.spec.expect("pod");
    let redis = &pod.containers[0];
    let args = redis.args.clone().unwrap_or_default().join(" ");
    for want in [
        "--port 0",
        "--tls-port 6379",
        "--tls-cert-file /tls/tls.crt",
        "--tls-key-file /tls/tls.key",
        "--tls-ca-cert-file /tls/ca.crt",
    ] {
        assert!(args.contains(want), "{want} in {args}");
    }
    let probe = redis
        .readiness_probe
        .as_ref()
        .and_then(|p| p.exec.as_ref())
        .and_then(|e| e.command.clone());
    assert_eq!(
        probe.expect("probe")[..2],
        ["redis-cli".to_string(), "--tls".to_string()]
    );
    let tls_vol = pod
        .volumes
        .unwrap_or_default()
        .into_iter()
        .find(|v| v.name == "tls")
        .expect("tls volume");
    assert_eq!(
        tls_vol.secret.and_then(|s| s.secret_name).as_deref(),
        Some("redis-cert")
    );

    let d = deployment(&c);
    let vol = pod_spec(&d)
        .volumes
        .unwrap_or_default()
        .into_iter()
        .find(|v| v.name == "redis-tls")
        .expect("CA volume");
    let items = vol.secret.and_then(|s| s.items).expect("only listed keys");
    assert_eq!(items.len(), 1);
    assert_eq!((items[0].key.as_str(), items[0].path.as_str()), ("ca.crt", "ca.crt"));
}

#[test]
fn the_registry_port_can_be_fenced_too() {
    let spec: BanterRegistrySpec = serde_json::from_value(serde_json::json!({
        "networkPolicy": {"registryFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}]}
    }))
    .expect("spec");
    let c = build(&registry(spec), false);
    let np = find(&c, ChildKind::NetworkPolicy, "packs");
    assert_eq!(
        np.object["spec"],
        serde_json::json!({
            "podSelector": {"matchLabels": {"app.kubernetes.io/component": "registry",
                "app.kubernetes.io/instance": "packs", "app.kubernetes.io/name": "banter-registry"}},
            "policyTypes": ["Ingress"],
            "ingress": [{
                "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}],
                "ports": [{"port": 8080, "protocol": "TCP"}]
            }]
        })
    );
    // SQLite: no Redis, so no Redis policy; absent registryFrom: none at all.
    assert!(c.iter().filter(|o| o.kind == ChildKind::NetworkPolicy).count() == 1);
    assert!(
        build(&registry(sqlite()), false)
            .iter()
            .all(|o| o.kind != ChildKind::NetworkPolicy)
    );
    let off: BanterRegistrySpec = serde_json::from_value(
        serde_json::json!({"storage": {"backend": "redis"}, "networkPolicy": {"enabled": false}}),
    )
    .expect("spec");
    assert!(
        build(&registry(off), false)
            .iter()
            .all(|o| o.kind != ChildKind::NetworkPolicy)
    );
}

#[test]
fn every_registry_gets_its_own_dashboard() {
    let spec = || -> BanterRegistrySpec {
        serde_json::from_value(serde_json::json!({"monitoring": {"grafanaDashboard": {"enabled": true}}}))
            .expect("spec")
    };
    let dashboards = |ns: &str, name: &str| -> (String, Value) {
        let mut r = BanterRegistry::new(name, spec());
        r.metadata.namespace = Some(ns.into());
        r.metadata.uid = Some(UID.into());
        let c = build(&r, false);
        let cm: ConfigMap = typed(find(&c, ChildKind::ConfigMap, &format!("{name}-dashboards")));
        let (key, json) = cm.data.expect("data").into_iter().next().expect("one dashboard");
        (key, serde_json::from_str(&json).expect("dashboard JSON"))
    };
    let (key_a, a) = dashboards("team-a", "packs");
    let (key_b, b) = dashboards("team-b", "packs");
    let (key_c, c) = dashboards("team-a", "other");
    assert_eq!(key_a, "banter-registry-team-a-packs.json");
    let uids = [&a, &b, &c].map(|d| d["uid"].as_str().expect("uid").to_string());
    assert!(uids.iter().all(|u| u.len() <= 40), "{uids:?}");
    assert!(
        uids[0] != uids[1] && uids[0] != uids[2] && uids[1] != uids[2],
        "{uids:?}"
    );
    assert!(key_a != key_b && key_a != key_c);
    assert_eq!(dashboards("team-a", "packs").1["uid"], a["uid"], "stable");
    assert_eq!(a["title"], "Banter Registry: team-a/packs");
    let current = |d: &Value, var: &str| {
        d["templating"]["list"]
            .as_array()
            .expect("variables")
            .iter()
            .find(|v| v["name"] == var)
            .map(|v| v["current"]["value"].clone())
            .expect("variable")
    };
    assert_eq!(current(&c, "namespace"), serde_json::json!(["team-a"]));
    assert_eq!(current(&c, "job"), serde_json::json!(["other"]));
}

#[test]
fn the_prometheus_rule_holds_the_registry_alerts_scoped_to_this_registry() {
    let spec: BanterRegistrySpec = serde_json::from_value(serde_json::json!({
        "monitoring": {"prometheusRule": {"enabled": true, "labels": {"release": "kube-prometheus-stack"}}}
    }))
    .expect("spec");
    let reg = registry(spec);
    // Not served: no object (MonitoringReady says why, see the status tests).
    assert!(!build(&reg, false).iter().any(|c| c.kind == ChildKind::PrometheusRule));
    let c = build(&reg, true);
    let rule = &find(&c, ChildKind::PrometheusRule, "packs").object;
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(rule["metadata"]["namespace"], "banter");
    assert_eq!(rule["metadata"]["labels"]["release"], "kube-prometheus-stack");
    assert_eq!(rule["metadata"]["labels"]["app.kubernetes.io/instance"], "packs");
    assert_eq!(rule["metadata"]["ownerReferences"][0]["uid"], UID);

    // The same alerts as the plain rules file, in the same order.
    let source: Value =
        serde_norway::from_str(&std::fs::read_to_string("../../alerts/banter-registry.rules.yml").expect("rules file"))
            .expect("YAML");
    let names = |groups: &Value| -> Vec<String> {
        groups["groups"]
            .as_array()
            .expect("groups")
            .iter()
            .flat_map(|g| g["rules"].as_array().expect("rules").iter())
            .map(|r| r["alert"].as_str().expect("alert").to_string())
            .collect()
    };
    let alerts = names(&rule["spec"]);
    assert_eq!(alerts, names(&source));
    assert!(alerts.len() >= 7, "{alerts:?}");

    // Every selector is this registry's: the scope is gone, and each metric
    // selector names namespace and job (the ServiceMonitor's job is the Service).
    let mut selectors = 0;
    for r in rule["spec"]["groups"][0]["rules"].as_array().expect("rules") {
        let expr = r["expr"].as_str().expect("expr");
        assert!(!expr.contains(children::SCOPE), "{expr}");
        for (i, _) in expr.match_indices('{') {
            // A selector follows a metric name; `{name}` in a route value does not.
            if !expr[..i].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
                continue;
            }
            let sel = &expr[i..expr[i..].find('}').map_or(expr.len(), |j| i + j)];
            selectors += 1;
            assert!(sel.contains(r#"namespace="banter", job="packs""#), "{sel} in {expr}");
        }
        let runbook = r["annotations"]["runbook_url"].as_str().expect("runbook_url");
        assert!(
            runbook.ends_with(&format!("#{}", r["alert"].as_str().expect("alert").to_lowercase())),
            "{runbook}"
        );
    }
    assert!(selectors >= 10, "{selectors} selectors");
    // Another registry gets its own scope.
    let other = children::registry_rules("team-b", "overlays");
    assert!(
        serde_json::to_string(&other)
            .expect("json")
            .contains(r#"namespace=\"team-b\", job=\"overlays\""#)
    );
}

/// The text of `manifests/examples/<file>`.
fn example(file: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../manifests/examples")
        .join(file);
    std::fs::read_to_string(path).expect("example")
}

fn spec(v: Value) -> BanterRegistrySpec {
    serde_json::from_value(v).expect("spec")
}

fn labels_of(meta: &Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>) -> BTreeMap<String, String> {
    meta.as_ref().and_then(|m| m.labels.clone()).unwrap_or_default()
}

#[test]
fn pod_labels_never_replace_the_labels_selectors_rely_on() {
    // Past validation (the CEL rule and `validate` refuse it), the builder
    // still keeps the operator's own values.
    let s = spec(serde_json::json!({"podLabels": {
        "app.kubernetes.io/instance": "hijack", "app.kubernetes.io/component": "x", "team": "overlays"}}));
    assert!(
        s.validate()
            .expect_err("reserved key refused")
            .contains("spec.podLabels[app.kubernetes.io/component]")
    );
    let d = deployment(&build(&registry(s), true));
    let template = labels_of(&d.spec.clone().expect("spec").template.metadata);
    let selector = d.spec.expect("spec").selector.match_labels.expect("selector");
    for (k, v) in &selector {
        assert_eq!(template.get(k), Some(v), "selector label {k} replaced");
    }
    assert_eq!(template["app.kubernetes.io/instance"], "packs");
    assert_eq!(template["team"], "overlays");
}

#[test]
fn placement_goes_to_the_registry_pods_and_separately_to_redis() {
    let example = example("placement.yaml");
    let reg: BanterRegistry = serde_norway::from_str(&example).expect("example parses");
    reg.spec.validate().expect("valid");
    let mut reg = registry(reg.spec);
    reg.metadata.name = Some("packs".into());
    let c = build(&reg, true);

    let d = deployment(&c);
    let template = d.spec.clone().expect("spec").template;
    let pod = pod_spec(&d);
    assert_eq!(pod.node_selector.expect("nodeSelector")["node-pool"], "web");
    let tol = pod.tolerations.expect("tolerations");
    assert_eq!(
        (tol[0].key.as_deref(), tol[0].value.as_deref()),
        (Some("dedicated"), Some("web"))
    );
    assert!(pod.affinity.expect("affinity").node_affinity.is_some());
    let spread = pod.topology_spread_constraints.expect("spread");
    assert_eq!(spread.len(), 1, "the spec's spread replaces the default");
    assert_eq!(spread[0].when_unsatisfiable, "DoNotSchedule");
    assert_eq!(pod.priority_class_name.as_deref(), Some("web-critical"));
    assert_eq!(
        pod.image_pull_secrets.expect("pull secrets")[0].name,
        "registry-example-com"
    );
    let meta = template.metadata.expect("meta");
    assert_eq!(meta.labels.as_ref().expect("labels")["team"], "overlays");
    let annotations = meta.annotations.expect("annotations");
    assert_eq!(annotations["prometheus.io/scrape"], "false");
    assert!(
        annotations.contains_key(CONFIG_HASH_ANNOTATION),
        "podAnnotations keep the config hash"
    );

    let sts: StatefulSet = typed(find(&c, ChildKind::StatefulSet, "packs-redis"));
    let redis_template = sts.spec.expect("spec").template;
    let redis_pod = redis_template.spec.expect("pod");
    assert_eq!(redis_pod.node_selector.expect("nodeSelector")["node-pool"], "storage");
    assert_eq!(
        redis_pod.tolerations.expect("tolerations")[0].value.as_deref(),
        Some("storage")
    );
    assert_eq!(redis_pod.priority_class_name.as_deref(), Some("storage-critical"));
    assert!(redis_pod.affinity.is_none(), "the registry's affinity is not Redis's");
    assert!(
        redis_pod.topology_spread_constraints.is_none(),
        "one Redis pod: no spread"
    );
    let redis_meta = redis_template.metadata.expect("meta");
    assert_eq!(
        redis_meta.annotations.expect("annotations")["backup.example.com/schedule"],
        "hourly"
    );
    assert_eq!(
        redis_meta.labels.expect("labels")["app.kubernetes.io/component"],
        "redis"
    );
}

#[test]
fn several_replicas_spread_across_nodes_and_zones_by_default() {
    let pod = pod_spec(&deployment(&build(&registry(redis(3)), true)));
    let spread = pod.topology_spread_constraints.expect("default spread");
    let keys: Vec<_> = spread.iter().map(|s| s.topology_key.as_str()).collect();
    assert_eq!(keys, ["kubernetes.io/hostname", "topology.kubernetes.io/zone"]);
    for s in &spread {
        assert_eq!((s.max_skew, s.when_unsatisfiable.as_str()), (1, "ScheduleAnyway"));
        let sel = s
            .label_selector
            .clone()
            .expect("selector")
            .match_labels
            .expect("labels");
        assert_eq!(sel["app.kubernetes.io/component"], "registry");
        assert_eq!(sel["app.kubernetes.io/instance"], "packs");
    }
    // One replica: the same spread, so scaling never changes the template
    // (and never restarts every pod). An explicit `[]`: no constraints.
    assert_eq!(
        deployment(&build(&registry(redis(1)), true)).spec.map(|s| s.template),
        deployment(&build(&registry(redis(3)), true)).spec.map(|s| s.template),
    );
    let none =
        spec(serde_json::json!({"replicas": 3, "storage": {"backend": "redis"}, "topologySpreadConstraints": []}));
    assert!(
        pod_spec(&deployment(&build(&registry(none), true)))
            .topology_spread_constraints
            .is_none()
    );
}

#[test]
fn service_metadata_source_ranges_and_traffic_policy() {
    let s = spec(serde_json::json!({"service": {"type": "LoadBalancer", "port": 443,
        "annotations": {"service.beta.kubernetes.io/aws-load-balancer-scheme": "internal"},
        "labels": {"exposure": "public", "app.kubernetes.io/component": "hijack"},
        "loadBalancerSourceRanges": ["203.0.113.0/24"], "externalTrafficPolicy": "Local"}}));
    s.validate().expect("valid");
    let svc: k8s_openapi::api::core::v1::Service = typed(find(&build(&registry(s), true), ChildKind::Service, "packs"));
    let meta = svc.metadata;
    assert_eq!(
        meta.annotations.expect("annotations")["service.beta.kubernetes.io/aws-load-balancer-scheme"],
        "internal"
    );
    let labels = meta.labels.expect("labels");
    assert_eq!(labels["exposure"], "public");
    assert_eq!(
        labels["app.kubernetes.io/component"], "registry",
        "own labels are never replaced"
    );
    let spec_ = svc.spec.expect("spec");
    assert_eq!(spec_.load_balancer_source_ranges.expect("ranges"), ["203.0.113.0/24"]);
    assert_eq!(spec_.external_traffic_policy.as_deref(), Some("Local"));

    // Refused where the type does not allow it.
    for bad in [
        serde_json::json!({"service": {"loadBalancerSourceRanges": ["203.0.113.0/24"]}}),
        serde_json::json!({"service": {"type": "ClusterIP", "externalTrafficPolicy": "Local"}}),
    ] {
        let s = spec(bad.clone());
        assert!(s.validate().is_err(), "{bad} accepted");
        let svc: k8s_openapi::api::core::v1::Service =
            typed(find(&build(&registry(s), true), ChildKind::Service, "packs"));
        let spec_ = svc.spec.expect("spec");
        assert!(spec_.load_balancer_source_ranges.is_none() && spec_.external_traffic_policy.is_none());
    }
}

#[test]
fn ingress_body_and_external_url() {
    let s = spec(
        serde_json::json!({"service": {"port": 8443}, "ingress": {"className": "nginx",
        "hosts": ["packs.example.com", "packs.example.org"], "path": "/",
        "tls": {"secretName": "packs-tls"}, "annotations": {"cert-manager.io/cluster-issuer": "le"}}}),
    );
    let reg = registry(s);
    let c = build(&reg, true);
    let ing = find(&c, ChildKind::Ingress, "packs");
    let backend = serde_json::json!({"service": {"name": "packs", "port": {"number": 8443}}});
    let rule = |host: &str| serde_json::json!({"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}});
    assert_eq!(ing.object["apiVersion"], "networking.k8s.io/v1");
    assert_eq!(
        ing.object["spec"],
        serde_json::json!({"ingressClassName": "nginx",
            "rules": [rule("packs.example.com"), rule("packs.example.org")],
            "tls": [{"hosts": ["packs.example.com", "packs.example.org"], "secretName": "packs-tls"}]})
    );
    assert_eq!(
        ing.object["metadata"]["annotations"]["cert-manager.io/cluster-issuer"],
        "le"
    );
    let settings = Settings::default();
    let input = BuildInput::new(&reg, &settings, OptionalApis::all(true), "t").expect("input");
    assert_eq!(
        children::external_url(&input, true).as_deref(),
        Some("https://packs.example.com")
    );

    // No hosts: one rule for any host, no URL to report; disabled: no Ingress.
    let any = registry(spec(serde_json::json!({"ingress": {"path": "/packs"}})));
    let c = build(&any, true);
    assert_eq!(
        find(&c, ChildKind::Ingress, "packs").object["spec"]["rules"],
        serde_json::json!([{"http": {"paths": [{"path": "/packs", "pathType": "Prefix",
            "backend": {"service": {"name": "packs", "port": {"number": 80}}}}]}}])
    );
    let input = BuildInput::new(&any, &settings, OptionalApis::all(true), "t").expect("input");
    assert_eq!(children::external_url(&input, true), None);
    let off = registry(spec(
        serde_json::json!({"ingress": {"enabled": false, "hosts": ["a.example.com"]}}),
    ));
    assert!(!build(&off, true).iter().any(|c| c.kind == ChildKind::Ingress));
}

#[test]
fn http_route_body_only_where_served() {
    let s = spec(serde_json::json!({"gateway": {
        "parentRefs": [{"name": "public", "namespace": "gateway-system", "sectionName": "https"}, {"name": "internal", "port": 8080}],
        "hostnames": ["packs.example.com"], "path": "/registry", "scheme": "http"}}));
    let reg = registry(s);
    let c = build(&reg, true);
    let route = find(&c, ChildKind::HttpRoute, "packs");
    assert_eq!(route.object["apiVersion"], "gateway.networking.k8s.io/v1");
    assert_eq!(route.object["kind"], "HTTPRoute");
    assert_eq!(
        route.object["spec"],
        serde_json::json!({
            "parentRefs": [{"name": "public", "namespace": "gateway-system", "sectionName": "https"},
                           {"name": "internal", "port": 8080}],
            "hostnames": ["packs.example.com"],
            "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/registry"}}],
                       // The registry serves at the root: the prefix is stripped.
                       "filters": [{"type": "URLRewrite", "urlRewrite": {"path": {
                           "type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}}}],
                       "backendRefs": [{"name": "packs", "port": 80}]}]})
    );
    assert_eq!(
        route.object["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "banter-operator"
    );
    let settings = Settings::default();
    let input = BuildInput::new(&reg, &settings, OptionalApis::all(true), "t").expect("input");
    assert_eq!(
        children::external_url(&input, true).as_deref(),
        Some("http://packs.example.com/registry")
    );
    // CRD not served: no object and no URL (ExposureReady says why).
    assert!(!build(&reg, false).iter().any(|c| c.kind == ChildKind::HttpRoute));
    assert_eq!(children::external_url(&input, false), None);
}

#[test]
fn autoscaling_leaves_replicas_to_the_hpa() {
    let s = spec(serde_json::json!({"replicas": 4, "storage": {"backend": "redis"},
        "autoscaling": {"minReplicas": 2, "maxReplicas": 8, "targetCPUUtilizationPercentage": 60,
                        "targetMemoryUtilizationPercentage": 75}}));
    s.validate().expect("valid");
    let c = build(&registry(s), true);
    let d = find(&c, ChildKind::Deployment, "packs");
    assert!(
        d.object["spec"].get("replicas").is_none(),
        "an autoscaled Deployment must not carry spec.replicas: {}",
        d.object["spec"]
    );
    let hpa = find(&c, ChildKind::HorizontalPodAutoscaler, "packs");
    assert_eq!(hpa.object["apiVersion"], "autoscaling/v2");
    assert_eq!(
        hpa.object["spec"],
        serde_json::json!({
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "packs"},
            "minReplicas": 2, "maxReplicas": 8,
            "metrics": [
                {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}},
                {"type": "Resource", "resource": {"name": "memory", "target": {"type": "Utilization", "averageUtilization": 75}}}]})
    );
    assert!(
        c.iter().any(|c| c.kind == ChildKind::PodDisruptionBudget),
        "may run several: a PDB"
    );
    assert!(
        pod_spec(&typed(d)).topology_spread_constraints.is_some(),
        "may run several: spread"
    );

    // Disabled: replicas back, no HPA.
    let off = spec(serde_json::json!({"replicas": 4, "storage": {"backend": "redis"},
        "autoscaling": {"enabled": false, "maxReplicas": 8}}));
    let c = build(&registry(off), true);
    assert_eq!(find(&c, ChildKind::Deployment, "packs").object["spec"]["replicas"], 4);
    assert!(!c.iter().any(|c| c.kind == ChildKind::HorizontalPodAutoscaler));

    // Refused: SQLite, min above max, CPU target without a CPU request.
    for (bad, why) in [
        (
            serde_json::json!({"autoscaling": {"maxReplicas": 3}}),
            "spec.autoscaling needs spec.storage.backend redis",
        ),
        (
            serde_json::json!({"storage": {"backend": "redis"}, "autoscaling": {"minReplicas": 5, "maxReplicas": 3}}),
            "must not exceed",
        ),
        (
            serde_json::json!({"storage": {"backend": "redis"}, "resources": {"requests": {"memory": "64Mi"}}, "autoscaling": {"maxReplicas": 3}}),
            "requests.cpu",
        ),
    ] {
        let err = spec(bad.clone()).validate().expect_err("refused");
        assert!(err.contains(why), "{bad}: {err}");
    }
    // A limit alone is the request too (Kubernetes copies it).
    let limits_only = spec(serde_json::json!({"storage": {"backend": "redis"},
        "resources": {"limits": {"cpu": "1", "memory": "256Mi"}},
        "autoscaling": {"maxReplicas": 3, "targetMemoryUtilizationPercentage": 80}}));
    assert_eq!(limits_only.validate(), Ok(()));
}

#[test]
fn external_redis_runs_nothing_and_mounts_the_given_secrets() {
    let example = example("external-redis.yaml");
    let parsed: BanterRegistry = serde_norway::from_str(&example).expect("example parses");
    parsed.spec.validate().expect("valid");
    let c = build(&registry(parsed.spec), true);
    for kind in [ChildKind::StatefulSet, ChildKind::NetworkPolicy] {
        assert!(!c.iter().any(|c| c.kind == kind), "external Redis: no {kind:?}");
    }
    assert!(
        !c.iter().any(|c| c.name.contains("redis")),
        "nothing Redis-named: {:?}",
        ids(&c)
    );
    let cm: ConfigMap = typed(find(&c, ChildKind::ConfigMap, "packs-config"));
    let data = cm.data.expect("data");
    assert_eq!(
        data["BANTER_REGISTRY_REDIS_URL"],
        "rediss://packs.abc123.cache.example.com:6380/2"
    );
    assert_eq!(data["BANTER_REGISTRY_REDIS_KEY_PREFIX"], "overlays:packs:");
    assert_eq!(
        data["BANTER_REGISTRY_REDIS_PASSWORD_FILE"],
        "/etc/banter-registry/redis/password"
    );
    assert_eq!(
        data["BANTER_REGISTRY_REDIS_CA_FILE"],
        "/etc/banter-registry/redis-tls/ca.crt"
    );
    let pod = pod_spec(&deployment(&c));
    let volumes = pod.volumes.expect("volumes");
    let secret = |name: &str| {
        volumes
            .iter()
            .find(|v| v.name == name)
            .and_then(|v| v.secret.clone())
            .unwrap_or_else(|| panic!("no secret volume {name}"))
    };
    let pw = secret("redis-auth");
    assert_eq!(pw.secret_name.as_deref(), Some("managed-redis"));
    let items = pw.items.expect("items");
    assert_eq!(
        (items[0].key.as_str(), items[0].path.as_str()),
        ("auth-token", "password")
    );
    let ca = secret("redis-tls");
    assert_eq!(ca.secret_name.as_deref(), Some("managed-redis-ca"));
    let items = ca.items.expect("items");
    assert_eq!((items[0].key.as_str(), items[0].path.as_str()), ("ca.pem", "ca.crt"));
    let mounts = pod.containers[0].volume_mounts.clone().expect("mounts");
    assert!(
        mounts
            .iter()
            .any(|m| m.name == "redis-tls" && m.mount_path == "/etc/banter-registry/redis-tls")
    );

    // No password and no TLS: plain URL, nothing mounted; an IPv6 host in brackets.
    let plain = spec(serde_json::json!({"storage": {"backend": "redis", "redis": {"external": {"host": "fd00::10"}}}}));
    let c = build(&registry(plain), true);
    let data = typed::<ConfigMap>(find(&c, ChildKind::ConfigMap, "packs-config"))
        .data
        .expect("data");
    assert_eq!(data["BANTER_REGISTRY_REDIS_URL"], "redis://[fd00::10]:6379/0");
    // Shared Redis: the default prefix names the namespace as well.
    assert_eq!(data["BANTER_REGISTRY_REDIS_KEY_PREFIX"], "banter:banter:packs:");
    assert!(!data.contains_key("BANTER_REGISTRY_REDIS_PASSWORD_FILE"));
    assert!(!data.contains_key("BANTER_REGISTRY_REDIS_CA_FILE"));
    let volumes = pod_spec(&deployment(&c)).volumes.expect("volumes");
    assert!(!volumes.iter().any(|v| v.name.starts_with("redis")));

    // The managed Redis's own settings are refused next to `external`.
    let both = spec(serde_json::json!({"storage": {"backend": "redis", "redis": {
        "external": {"host": "r.example.com"}, "tls": {"secretName": "t"}}}}));
    assert_eq!(both.validate(), Err(banter_api::EXTERNAL_REDIS_MESSAGE.to_string()));
}

#[test]
fn registry_pods_drain_before_they_stop() {
    for s in [sqlite(), redis(3)] {
        let c = build(&registry(s.clone()), true);
        let d = deployment(&c);
        let dspec = d.spec.clone().expect("spec");
        assert_eq!(dspec.min_ready_seconds, Some(5));
        let pod = pod_spec(&d);
        let sqlite = s.storage.backend == Backend::Sqlite;
        let hook = pod.containers[0]
            .lifecycle
            .clone()
            .and_then(|l| l.pre_stop)
            .and_then(|p| p.exec)
            .and_then(|e| e.command);
        if sqlite {
            // One pod, Recreate: nowhere to move traffic, so no wait.
            assert_eq!(hook, None);
        } else {
            assert_eq!(hook.expect("preStop exec"), ["banter-registry", "sleep", "10s"]);
        }
        let data = typed::<ConfigMap>(find(&c, ChildKind::ConfigMap, "packs-config"))
            .data
            .expect("data");
        assert_eq!(data["BANTER_REGISTRY_SHUTDOWN_TIMEOUT"], "25s");
        // The kubelet's grace covers the preStop wait and the whole drain.
        let grace = pod.termination_grace_period_seconds.expect("grace");
        assert!(grace > if sqlite { 25 } else { 10 + 25 }, "grace {grace}");
        assert_eq!(grace, children::termination_grace_period_seconds(!sqlite));
        if s.storage.backend == Backend::Redis {
            let rolling = dspec.strategy.expect("strategy").rolling_update.expect("rolling");
            use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
            assert_eq!(rolling.max_unavailable, Some(IntOrString::Int(0)));
            assert_eq!(rolling.max_surge, Some(IntOrString::Int(1)));
        }
    }
}
