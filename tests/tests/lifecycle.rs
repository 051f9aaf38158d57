//! End-to-end: the operator against a real cluster. Without one, every test
//! prints `SKIPPED: no reachable Kubernetes cluster (...)` and returns.
//! Nothing here waits for pods to become ready: a node-less cluster is valid.

use banter_api::{BanterRegistry, ConditionType};
use banter_e2e::{Environment, cluster_or_skip, install_crd, wait_for};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};

const CONFIG_HASH: &str = "banterpacks.io/config-hash";

fn api<K>(env: &Environment) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    Api::namespaced(env.client.clone(), &env.namespace)
}

async fn apply_registry(env: &Environment, name: &str, spec: Value) -> anyhow::Result<()> {
    let obj = json!({"apiVersion": "banterpacks.io/v1alpha1", "kind": "BanterRegistry",
        "metadata": {"name": name}, "spec": spec});
    api::<BanterRegistry>(env)
        .patch(name, &PatchParams::apply("banter-e2e").force(), &Patch::Apply(obj))
        .await?;
    Ok(())
}

async fn exists<K>(env: &Environment, name: &str) -> bool
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    matches!(api::<K>(env).get_opt(name).await, Ok(Some(_)))
}

async fn wait_exists<K>(env: &Environment, name: &str) -> anyhow::Result<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    wait_for(&format!("{} {name}", K::kind(&())), || async {
        api::<K>(env).get_opt(name).await.ok().flatten()
    })
    .await
}

async fn wait_gone<K>(env: &Environment, name: &str) -> anyhow::Result<()>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    wait_for(&format!("{} {name} to be gone", K::kind(&())), || async {
        match api::<K>(env).get_opt(name).await {
            Ok(None) => Some(()),
            // Only a PVC counts as gone once terminating: kube-controller-manager's
            // pvc-protection finalizer holds it while a (never running) pod uses it.
            // Anything else, a registry waiting on our finalizer above all, must be gone.
            Ok(Some(o)) if K::kind(&()) == "PersistentVolumeClaim" && o.meta().deletion_timestamp.is_some() => Some(()),
            _ => None,
        }
    })
    .await
}

/// Waits until the status reflects the current generation and reports every condition.
async fn wait_status(env: &Environment, name: &str, backend: &str) -> anyhow::Result<BanterRegistry> {
    wait_for(&format!("status of {name} ({backend})"), || async {
        let reg = api::<BanterRegistry>(env).get(name).await.ok()?;
        let st = reg.status.as_ref()?;
        let current = st.observed_generation == reg.metadata.generation;
        let all = ConditionType::ALL.iter().all(|t| st.condition(*t).is_some());
        let backend_ok = st.backend.map(|b| b.as_str()) == Some(backend);
        (current && all && backend_ok && st.endpoint.is_some()).then_some(reg)
    })
    .await
}

fn template_annotation(d: &Deployment, key: &str) -> Option<String> {
    d.spec
        .as_ref()?
        .template
        .metadata
        .as_ref()?
        .annotations
        .as_ref()?
        .get(key)
        .cloned()
}

async fn setup(test: &str) -> Option<Client> {
    let client = cluster_or_skip(test).await?;
    install_crd(&client).await.expect("CRD installs");
    Some(client)
}

#[tokio::test]
async fn sqlite_registry_edit_switch_to_redis_and_delete_with_retain() {
    let Some(client) = setup("sqlite_registry_edit_switch_to_redis_and_delete_with_retain").await else {
        return;
    };
    let env = Environment::start(client, "banter-e2e-sqlite")
        .await
        .expect("environment");
    let name = "packs";
    apply_registry(
        &env,
        name,
        json!({"storage": {"backend": "sqlite", "retainOnDelete": true}}),
    )
    .await
    .expect("apply");

    wait_exists::<ConfigMap>(&env, "packs-config").await.expect("config");
    wait_exists::<Secret>(&env, "packs-tokens").await.expect("tokens");
    wait_exists::<PersistentVolumeClaim>(&env, "packs-data")
        .await
        .expect("pvc");
    wait_exists::<Service>(&env, "packs").await.expect("service");
    let d0 = wait_exists::<Deployment>(&env, "packs").await.expect("deployment");
    let reg = wait_status(&env, name, "sqlite").await.expect("status");
    let st = reg.status.expect("status");
    assert_eq!(
        st.endpoint.as_deref(),
        Some(format!("http://packs.{}.svc", env.namespace).as_str())
    );
    let token = api::<Secret>(&env).get("packs-tokens").await.expect("secret").data;

    // Edit the spec: a new image rolls the pods (template changes).
    let image0 = d0
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .map(|p| p.containers[0].image.clone());
    apply_registry(
        &env,
        name,
        json!({"image": "example.invalid/banter-registry:e2e", "storage": {"backend": "sqlite"}}),
    )
    .await
    .expect("edit");
    wait_for("new image on the pod template", || async {
        let d = api::<Deployment>(&env).get("packs").await.ok()?;
        let image = d.spec.as_ref()?.template.spec.as_ref()?.containers[0].image.clone();
        (image != image0.clone().flatten() && image.as_deref() == Some("example.invalid/banter-registry:e2e"))
            .then_some(())
    })
    .await
    .expect("rollout");

    // Switch backend: config hash changes, Redis appears, the sqlite volume is retained.
    let hash0 = template_annotation(&d0, CONFIG_HASH).expect("config hash");
    apply_registry(&env, name, json!({"storage": {"backend": "redis"}}))
        .await
        .expect("switch");
    wait_exists::<StatefulSet>(&env, "packs-redis")
        .await
        .expect("redis statefulset");
    wait_exists::<Service>(&env, "packs-redis")
        .await
        .expect("redis service");
    wait_for("config hash to change", || async {
        let d = api::<Deployment>(&env).get("packs").await.ok()?;
        let h = template_annotation(&d, CONFIG_HASH)?;
        (h != hash0).then_some(())
    })
    .await
    .expect("config hash changed");
    wait_status(&env, name, "redis").await.expect("redis status");
    assert!(
        exists::<PersistentVolumeClaim>(&env, "packs-data").await,
        "retained sqlite volume"
    );
    let token_after = api::<Secret>(&env).get("packs-tokens").await.expect("secret").data;
    assert_eq!(token, token_after, "generated token never overwritten");

    // Delete with retain: registry gone, volume kept and detached.
    api::<BanterRegistry>(&env)
        .delete(name, &DeleteParams::default())
        .await
        .expect("delete");
    wait_gone::<BanterRegistry>(&env, name).await.expect("registry deleted");
    let pvc = api::<PersistentVolumeClaim>(&env)
        .get("packs-data")
        .await
        .expect("pvc kept");
    assert!(
        pvc.metadata.owner_references.as_ref().is_none_or(Vec::is_empty),
        "kept volume is detached: {:?}",
        pvc.metadata.owner_references
    );
}

#[tokio::test]
async fn redis_registry_switch_to_sqlite_and_delete_without_retain() {
    let Some(client) = setup("redis_registry_switch_to_sqlite_and_delete_without_retain").await else {
        return;
    };
    let env = Environment::start(client, "banter-e2e-redis")
        .await
        .expect("environment");
    let name = "ha";
    apply_registry(
        &env,
        name,
        json!({"replicas": 3, "storage": {"backend": "redis", "retainOnDelete": false}}),
    )
    .await
    .expect("apply");
    wait_exists::<ConfigMap>(&env, "ha-config").await.expect("config");
    wait_exists::<Service>(&env, "ha-redis")
        .await
        .expect("headless service");
    wait_exists::<StatefulSet>(&env, "ha-redis").await.expect("statefulset");
    wait_exists::<PodDisruptionBudget>(&env, "ha").await.expect("pdb");
    let d = wait_exists::<Deployment>(&env, "ha").await.expect("deployment");
    assert_eq!(d.spec.and_then(|s| s.replicas), Some(3));
    let reg = wait_status(&env, name, "redis").await.expect("status");
    let ready = reg
        .status
        .as_ref()
        .and_then(|s| s.condition(ConditionType::Ready))
        .expect("Ready");
    assert!(!ready.reason.is_empty());

    // Invalid edit is refused by the CRD's CEL rule.
    let refused = apply_registry(&env, name, json!({"replicas": 3, "storage": {"backend": "sqlite"}})).await;
    assert!(
        refused.is_err(),
        "sqlite with 3 replicas must be rejected by the API server"
    );

    // Switch to sqlite with one replica: redis children and the PDB are pruned.
    apply_registry(
        &env,
        name,
        json!({"replicas": 1, "storage": {"backend": "sqlite", "retainOnDelete": false}}),
    )
    .await
    .expect("switch");
    wait_gone::<StatefulSet>(&env, "ha-redis")
        .await
        .expect("statefulset pruned");
    wait_gone::<Service>(&env, "ha-redis")
        .await
        .expect("headless service pruned");
    wait_gone::<PodDisruptionBudget>(&env, "ha").await.expect("pdb pruned");
    wait_exists::<PersistentVolumeClaim>(&env, "ha-data")
        .await
        .expect("sqlite pvc");
    wait_status(&env, name, "sqlite").await.expect("sqlite status");

    // Delete without retain: the volume goes too.
    api::<BanterRegistry>(&env)
        .delete(name, &DeleteParams::default())
        .await
        .expect("delete");
    wait_gone::<BanterRegistry>(&env, name).await.expect("registry deleted");
    wait_gone::<PersistentVolumeClaim>(&env, "ha-data")
        .await
        .expect("volume deleted");
}
