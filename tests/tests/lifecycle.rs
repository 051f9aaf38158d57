//! End-to-end: the operator against a real cluster. Without one, every test
//! prints `SKIPPED: no reachable Kubernetes cluster (...)` and returns.
//! Nothing here waits for pods to become ready: a node-less cluster is valid.

use std::time::Duration;

use banter_api::{BanterRegistry, ConditionType};
use banter_e2e::{
    Environment, cluster_or_skip, events_about, install_crd, provide_volume, static_class, table_row, wait_for,
    wait_within,
};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
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
    let api = api::<BanterRegistry>(env);
    let (params, patch) = (PatchParams::apply("banter-e2e").force(), Patch::Apply(obj));
    let apply = api.patch(name, &params, &patch);
    tokio::time::timeout(banter_e2e::WAIT, apply)
        .await
        .map_err(|_| anyhow::anyhow!("applying BanterRegistry {name} timed out"))??;
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

/// Far below the operator's 5-minute resync: only a watch event explains it.
const PROMPTLY: Duration = Duration::from_secs(20);

fn condition(reg: &BanterRegistry, t: ConditionType) -> Option<(String, String, String)> {
    let c = reg.status.as_ref()?.condition(t)?;
    Some((c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Whether the Deployment has observed its latest spec and runs it everywhere.
fn rolled_out(d: &Deployment) -> bool {
    let (Some(spec), Some(st)) = (d.spec.as_ref(), d.status.as_ref()) else {
        return false;
    };
    let want = spec.replicas.unwrap_or(1);
    st.observed_generation >= d.metadata.generation
        && st.updated_replicas.unwrap_or(0) >= want
        && st.replicas.unwrap_or(0) <= want
}

/// Item 2: every status the operator writes for `generation` that says
/// Ready=True is backed by a Deployment that has rolled out. Watches the
/// registry until `until` holds for a status of that generation.
async fn ready_never_runs_ahead(
    env: &Environment,
    name: &str,
    generation: i64,
    until: impl Fn(&BanterRegistry) -> bool,
) -> anyhow::Result<BanterRegistry> {
    let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut events = watcher(api::<BanterRegistry>(env), cfg).applied_objects().boxed();
    let deadline = tokio::time::Instant::now() + banter_e2e::WAIT;
    loop {
        let next = tokio::time::timeout_at(deadline, events.next()).await;
        let reg = match next {
            Ok(Some(Ok(reg))) => reg,
            Ok(Some(Err(e))) => anyhow::bail!("watching {name}: {e}"),
            Ok(None) => anyhow::bail!("watch of {name} ended"),
            Err(_) => anyhow::bail!("timed out waiting for {name} at generation {generation}"),
        };
        let observed = reg.status.as_ref().and_then(|s| s.observed_generation);
        if observed != Some(generation) {
            continue;
        }
        if condition(&reg, ConditionType::Ready).is_some_and(|(s, _, _)| s == "True") {
            let d = api::<Deployment>(env).get(name).await?;
            anyhow::ensure!(
                rolled_out(&d),
                "Ready=True for generation {generation} while the Deployment has not rolled out: {:?}",
                d.status
            );
        }
        if until(&reg) {
            return Ok(reg);
        }
    }
}

/// Item 6: the printer columns show the Ready condition, ready/desired and
/// the Ready reason (a consistent snapshot: retried while status moves).
async fn columns_match_status(env: &Environment, name: &str) -> anyhow::Result<()> {
    let path = format!(
        "/apis/banterpacks.io/v1alpha1/namespaces/{}/banterregistries/{name}",
        env.namespace
    );
    wait_for("printer columns matching the status", || async {
        let before = api::<BanterRegistry>(env).get(name).await.ok()?;
        let row = table_row(&env.client, &path).await.ok()?;
        let after = api::<BanterRegistry>(env).get(name).await.ok()?;
        if before.metadata.resource_version != after.metadata.resource_version {
            return None;
        }
        let cell = |n: &str| row.iter().find(|(c, _)| c == n).map(|(_, v)| v.clone());
        let (ready, reason, _) = condition(&after, ConditionType::Ready)?;
        let replicas = after.status.as_ref()?.replicas.clone()?;
        assert_eq!(cell("Ready"), Some(json!(ready)), "Ready column: {row:?}");
        assert_eq!(cell("Replicas"), Some(json!(replicas)), "Replicas column: {row:?}");
        assert_eq!(cell("Reason"), Some(json!(reason)), "Reason column (-o wide): {row:?}");
        Some(())
    })
    .await
}

/// Item 4: nothing about `name` was reported as a failed reconcile.
async fn no_failed_reconciles(env: &Environment, name: &str) {
    // Give a late reconcile of the deleted object the chance to misreport.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let events = events_about(&env.client, &env.namespace, name).await.expect("events");
    let failed: Vec<_> = events
        .iter()
        .filter(|(_, reason, _)| reason == "ReconcileFailed")
        .collect();
    assert!(failed.is_empty(), "ReconcileFailed events for {name}: {failed:?}");
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
    let class = static_class(&env.namespace);
    let sqlite = |extra: Value| {
        let mut spec = json!({"storage": {"backend": "sqlite", "retainOnDelete": true,
            "sqlite": {"storageClassName": class}}});
        if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                s.insert(k.clone(), v.clone());
            }
        }
        spec
    };
    apply_registry(&env, name, sqlite(json!({}))).await.expect("apply");

    wait_exists::<ConfigMap>(&env, "packs-config").await.expect("config");
    wait_exists::<Secret>(&env, "packs-tokens").await.expect("tokens");
    let pvc = wait_exists::<PersistentVolumeClaim>(&env, "packs-data")
        .await
        .expect("pvc");
    let stamp = pvc
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("banterpacks.io/owner-uid").cloned());
    wait_exists::<Service>(&env, "packs").await.expect("service");
    let d0 = wait_exists::<Deployment>(&env, "packs").await.expect("deployment");
    let reg = wait_status(&env, name, "sqlite").await.expect("status");
    assert_eq!(stamp, reg.metadata.uid, "the volume is stamped with its registry's UID");
    let st = reg.status.clone().expect("status");
    assert_eq!(
        st.endpoint.as_deref(),
        Some(format!("http://packs.{}.svc", env.namespace).as_str())
    );
    assert_eq!(
        condition(&reg, ConditionType::StorageReady).map(|c| c.1),
        Some("PersistentVolumeClaimPending".to_string())
    );
    columns_match_status(&env, name).await.expect("columns while pending");

    // Item 3: the retained claim has no owner reference, yet its binding
    // reaches the operator at once.
    provide_volume(&env.client, &env.namespace, "packs-data")
        .await
        .expect("static volume");
    wait_within("StorageReady=True after the claim bound", PROMPTLY, || async {
        let reg = api::<BanterRegistry>(&env).get(name).await.ok()?;
        (condition(&reg, ConditionType::StorageReady)?.0 == "True").then_some(())
    })
    .await
    .expect("binding triggers a reconcile");
    columns_match_status(&env, name).await.expect("columns once bound");
    let token = api::<Secret>(&env).get("packs-tokens").await.expect("secret").data;

    // Item 2: edit the spec; a new image rolls the pods. No status of the
    // new generation says Ready before the Deployment rolled out.
    let image0 = d0
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .map(|p| p.containers[0].image.clone());
    apply_registry(
        &env,
        name,
        sqlite(json!({"image": "example.invalid/banter-registry:e2e"})),
    )
    .await
    .expect("edit");
    let generation = api::<BanterRegistry>(&env)
        .get(name)
        .await
        .expect("registry")
        .metadata
        .generation
        .expect("generation");
    wait_for("new image on the pod template", || async {
        let d = api::<Deployment>(&env).get("packs").await.ok()?;
        let image = d.spec.as_ref()?.template.spec.as_ref()?.containers[0].image.clone();
        (image != image0.clone().flatten() && image.as_deref() == Some("example.invalid/banter-registry:e2e"))
            .then_some(())
    })
    .await
    .expect("rollout");
    ready_never_runs_ahead(&env, name, generation, |reg| {
        // Settled: Ready=True, or a not-Ready reason other than the rollout
        // (pods of an image that does not exist never become ready).
        condition(reg, ConditionType::RegistryReady).is_some_and(|(s, r, _)| s == "True" || r != "RolloutInProgress")
    })
    .await
    .expect("status follows the rollout");

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

    // Delete with retain: registry gone, volume kept and detached, and the
    // finished deletion is not reported as a failure (item 4).
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
    no_failed_reconciles(&env, name).await;

    // Item 9: a new registry of the same name, on Redis and without
    // retainOnDelete, never deletes the volume the first one kept: not when
    // it prunes, not when it is deleted.
    apply_registry(
        &env,
        name,
        json!({"storage": {"backend": "redis", "retainOnDelete": false}}),
    )
    .await
    .expect("second registry");
    wait_status(&env, name, "redis").await.expect("second registry status");
    tokio::time::sleep(Duration::from_secs(15)).await;
    assert!(
        exists::<PersistentVolumeClaim>(&env, "packs-data").await,
        "a stranger's kept volume survives prune"
    );
    api::<BanterRegistry>(&env)
        .delete(name, &DeleteParams::default())
        .await
        .expect("delete the second registry");
    wait_gone::<BanterRegistry>(&env, name)
        .await
        .expect("second registry deleted");
    let kept = api::<PersistentVolumeClaim>(&env)
        .get_opt("packs-data")
        .await
        .expect("get");
    assert!(
        kept.is_some_and(|p| p.metadata.deletion_timestamp.is_none()),
        "a stranger's kept volume survives cleanup"
    );
    no_failed_reconciles(&env, name).await;
}

#[tokio::test]
async fn a_refused_child_does_not_stop_the_others() {
    let Some(client) = setup("a_refused_child_does_not_stop_the_others").await else {
        return;
    };
    let env = Environment::start(client, "banter-e2e-refused")
        .await
        .expect("environment");
    let name = "grow";
    let class = static_class(&env.namespace);
    apply_registry(
        &env,
        name,
        json!({"storage": {"backend": "sqlite", "sqlite": {"storageClassName": class, "size": "1Gi"}}}),
    )
    .await
    .expect("apply");
    wait_exists::<PersistentVolumeClaim>(&env, "grow-data")
        .await
        .expect("pvc");
    provide_volume(&env.client, &env.namespace, "grow-data")
        .await
        .expect("static volume");
    wait_for("the claim to bind", || async {
        let pvc = api::<PersistentVolumeClaim>(&env).get("grow-data").await.ok()?;
        (pvc.status?.phase.as_deref() == Some("Bound")).then_some(())
    })
    .await
    .expect("bound");

    // One edit: a resize the API server refuses (its StorageClass does not
    // exist, so it cannot expand) and a new image, which must still roll out.
    apply_registry(
        &env,
        name,
        json!({"image": "example.invalid/banter-registry:grown",
               "storage": {"backend": "sqlite", "sqlite": {"storageClassName": class, "size": "2Gi"}}}),
    )
    .await
    .expect("edit");
    wait_for("the new image despite the refused resize", || async {
        let d = api::<Deployment>(&env).get(name).await.ok()?;
        let image = d.spec?.template.spec?.containers.first()?.image.clone()?;
        (image == "example.invalid/banter-registry:grown").then_some(())
    })
    .await
    .expect("deployment applied");
    let generation = api::<BanterRegistry>(&env)
        .get(name)
        .await
        .expect("registry")
        .metadata
        .generation;
    let reg = wait_for("Ready=False naming the refused claim", || async {
        let reg = api::<BanterRegistry>(&env).get(name).await.ok()?;
        let (status, reason, message) = condition(&reg, ConditionType::Ready)?;
        let current = reg.status.as_ref()?.observed_generation == generation;
        (current && status == "False" && message.contains("PersistentVolumeClaim grow-data")).then_some((reg, reason))
    })
    .await
    .expect("the refusal is on the object");
    // 403 from the resize admission plugin for a bound claim (422 from
    // validation if it were not bound): both wait for a change.
    assert!(
        ["AdmissionRefused", "InvalidSpec"].contains(&reg.1.as_str()),
        "reason {}",
        reg.1
    );
    let events = events_about(&env.client, &env.namespace, name).await.expect("events");
    assert!(
        events.iter().any(|(t, r, _)| t == "Warning" && r == &reg.1),
        "a Warning event with the reason: {events:?}"
    );
}

/// Runs `helm uninstall` when dropped (bounded by helm's own timeout).
struct HelmRelease {
    helm: std::path::PathBuf,
    release: String,
    namespace: String,
}

impl Drop for HelmRelease {
    fn drop(&mut self) {
        let _ = std::process::Command::new(&self.helm)
            .args(["uninstall", &self.release, "--namespace", &self.namespace])
            .args(["--wait", "--timeout", "60s"])
            .output();
    }
}

/// Item 5: `helm install` with default values succeeds when the CRD is
/// already there (applied from `crds/` here), leaves that CRD alone, and
/// `helm uninstall` does not delete it.
#[tokio::test]
async fn helm_install_over_an_existing_crd() {
    let Some(client) = setup("helm_install_over_an_existing_crd").await else {
        return;
    };
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let helm = ["helm", ".tools/bin/helm"]
        .iter()
        .map(|h| {
            if h.contains('/') {
                root.join(h)
            } else {
                std::path::PathBuf::from(h)
            }
        })
        .find(|h| {
            std::process::Command::new(h)
                .arg("version")
                .output()
                .is_ok_and(|o| o.status.success())
        });
    let Some(helm) = helm else {
        eprintln!("SKIPPED: no helm binary (run `make deps`) [helm_install_over_an_existing_crd]");
        return;
    };
    let env = Environment::namespace_only(client, "banter-e2e-helm")
        .await
        .expect("environment");
    let release = format!("e2e-{}", &env.namespace[env.namespace.len() - 8..]);
    // Uninstalled on every exit, a failed assertion included: the chart's
    // cluster-scoped objects would outlive the namespace.
    let installed = HelmRelease {
        helm: helm.clone(),
        release: release.clone(),
        namespace: env.namespace.clone(),
    };
    let run = |args: &[&str]| {
        let out = std::process::Command::new(&helm)
            .args(args)
            .args(["--timeout", "120s"])
            .current_dir(&root)
            .output()
            .expect("helm runs");
        assert!(
            out.status.success(),
            "helm {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "install",
        &release,
        "charts/banter-operator",
        "--namespace",
        &env.namespace,
    ]);
    run(&[
        "upgrade",
        &release,
        "charts/banter-operator",
        "--namespace",
        &env.namespace,
    ]);
    run(&["uninstall", &release, "--namespace", &env.namespace, "--wait"]);
    // Uninstalled above: nothing left for the guard.
    std::mem::forget(installed);
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(env.client.clone());
    let crd = crds
        .get("banterregistries.banterpacks.io")
        .await
        .expect("the CRD is still there");
    assert!(crd.metadata.deletion_timestamp.is_none(), "and not being deleted");
    let owner = crd
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("meta.helm.sh/release-name"))
        .cloned();
    assert_ne!(
        owner.as_deref(),
        Some(release.as_str()),
        "the release never took it over"
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
    let class = static_class(&env.namespace);
    apply_registry(
        &env,
        name,
        json!({"replicas": 1, "storage": {"backend": "sqlite", "retainOnDelete": false,
               "sqlite": {"storageClassName": class}}}),
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

/// Issue 9 on a real API server: the CEL rules of the platform fields, the
/// switch to an external Redis (managed Redis pruned), autoscaling (the
/// Deployment keeps its replicas through the hand-over, and what the
/// autoscaler sets is never reverted), an Ingress with `status.url`, and an
/// HTTPRoute or the condition saying its CRD is missing.
#[tokio::test]
async fn external_redis_autoscaling_and_exposure() {
    use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
    use k8s_openapi::api::networking::v1::Ingress;

    let Some(client) = setup("external_redis_autoscaling_and_exposure").await else {
        return;
    };
    let env = Environment::start(client, "banter-e2e-platform")
        .await
        .expect("environment");
    let name = "edge";
    apply_registry(
        &env,
        name,
        json!({"replicas": 3, "storage": {"backend": "redis", "retainOnDelete": false}}),
    )
    .await
    .expect("apply");
    wait_exists::<StatefulSet>(&env, "edge-redis")
        .await
        .expect("statefulset");
    let d = wait_exists::<Deployment>(&env, name).await.expect("deployment");
    assert_eq!(d.spec.and_then(|s| s.replicas), Some(3));

    // The CEL rules, evaluated by the API server.
    for (bad, message) in [
        (
            json!({"storage": {"backend": "sqlite"}, "autoscaling": {"maxReplicas": 3}}),
            "spec.autoscaling needs spec.storage.backend redis",
        ),
        (
            json!({"storage": {"backend": "redis"}, "podLabels": {"app.kubernetes.io/instance": "x"}}),
            "podLabels cannot set",
        ),
        (
            json!({"storage": {"backend": "redis", "redis": {"external": {"host": "r.example.com"}, "tls": {"secretName": "t"}}}}),
            "with spec.storage.redis.external use",
        ),
    ] {
        let err = apply_registry(&env, name, bad.clone()).await.expect_err("refused");
        assert!(format!("{err:#}").contains(message), "{bad}: {err:#}");
    }

    // Single requests, bounded like every wait here.
    let served = tokio::time::timeout(
        banter_e2e::WAIT,
        env.client.list_api_group_resources("gateway.networking.k8s.io/v1"),
    )
    .await
    .expect("discovery answered in time")
    .map(|l| l.resources.iter().any(|r| r.name == "httproutes"))
    .unwrap_or(false);
    apply_registry(
        &env,
        name,
        json!({"storage": {"backend": "redis", "retainOnDelete": false,
                           "redis": {"external": {"host": "redis.example.com"}}},
               "autoscaling": {"minReplicas": 2, "maxReplicas": 5},
               "ingress": {"hosts": ["packs.example.com"]},
               "gateway": {"parentRefs": [{"name": "edge"}], "hostnames": ["packs.example.org"]},
               "nodeSelector": {"kubernetes.io/os": "linux"}}),
    )
    .await
    .expect("external redis, autoscaling, exposure");
    wait_exists::<HorizontalPodAutoscaler>(&env, name).await.expect("hpa");
    wait_exists::<Ingress>(&env, name).await.expect("ingress");
    wait_gone::<StatefulSet>(&env, "edge-redis")
        .await
        .expect("statefulset pruned");
    wait_gone::<Service>(&env, "edge-redis")
        .await
        .expect("redis service pruned");
    let reg = wait_for("the status of the new spec", || async {
        let reg = api::<BanterRegistry>(&env).get(name).await.ok()?;
        let st = reg.status.as_ref()?;
        (st.observed_generation == reg.metadata.generation && st.url.is_some()).then_some(reg)
    })
    .await
    .expect("status");
    assert_eq!(
        reg.status.as_ref().and_then(|s| s.url.as_deref()),
        Some("http://packs.example.com")
    );
    let (_, storage_reason, _) = condition(&reg, ConditionType::StorageReady).expect("StorageReady");
    assert!(storage_reason.starts_with("ExternalRedis"), "{storage_reason}");
    let exposure = condition(&reg, ConditionType::ExposureReady).expect("ExposureReady");
    if served {
        assert_eq!(exposure.1, "Applied", "{exposure:?}");
    } else {
        assert_eq!(exposure.1, "HTTPRouteCRDMissing", "{exposure:?}");
    }

    // The hand-over kept the replicas (no reset to 1), and the operator no
    // longer owns the field.
    let d = wait_exists::<Deployment>(&env, name).await.expect("deployment");
    let replicas = d.spec.as_ref().and_then(|s| s.replicas);
    // Exactly the 3 from before: a reset to 1 would show as the HPA's 2.
    assert_eq!(replicas, Some(3), "replicas after the hand-over");
    let owners: Vec<(String, bool)> = d
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .map(|m| {
            let owns = m
                .fields_v1
                .as_ref()
                .is_some_and(|f| f.0.pointer("/f:spec/f:replicas").is_some());
            (m.manager.clone().unwrap_or_default(), owns)
        })
        .collect();
    assert!(
        !owners.iter().any(|(m, owns)| m == "banter-operator" && *owns),
        "the operator still owns spec.replicas: {owners:?}"
    );
    assert!(
        owners.iter().any(|(_, owns)| *owns),
        "nobody owns spec.replicas: {owners:?}"
    );
    let pod = d.spec.as_ref().and_then(|s| s.template.spec.clone()).expect("pod spec");
    assert_eq!(pod.node_selector.expect("nodeSelector")["kubernetes.io/os"], "linux");

    // What an autoscaler writes stays: scale to 4 through the scale
    // subresource, then give the operator's watch-triggered reconcile time.
    let deployments = api::<Deployment>(&env);
    tokio::time::timeout(
        banter_e2e::WAIT,
        deployments.patch_scale(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 4}})),
        ),
    )
    .await
    .expect("scale answered in time")
    .expect("scale");
    tokio::time::sleep(PROMPTLY).await;
    let d = tokio::time::timeout(banter_e2e::WAIT, deployments.get(name))
        .await
        .expect("get answered in time")
        .expect("deployment");
    assert_eq!(
        d.spec.and_then(|s| s.replicas),
        Some(4),
        "the operator reverted the autoscaler"
    );
    no_failed_reconciles(&env, name).await;

    tokio::time::timeout(
        banter_e2e::WAIT,
        api::<BanterRegistry>(&env).delete(name, &DeleteParams::default()),
    )
    .await
    .expect("delete answered in time")
    .expect("delete");
    wait_gone::<BanterRegistry>(&env, name).await.expect("registry deleted");
}
