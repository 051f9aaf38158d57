#![warn(missing_docs)]
//! Helpers of the end-to-end suite: find a cluster (or skip), install the
//! CRD, run the operator binary against a throw-away namespace, poll.

use std::future::Future;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};
use banter_api::BanterRegistry;
use k8s_openapi::api::core::v1::{Namespace, PersistentVolume};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, Client, CustomResourceExt};

/// How long to wait for the API server before declaring "no cluster".
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait for the operator to produce an object or status.
pub const WAIT: Duration = Duration::from_secs(90);

/// A client for a reachable cluster, or `None` after printing the visible
/// `SKIPPED: ...` line the suite promises.
pub async fn cluster_or_skip(test: &str) -> Option<Client> {
    let reason = match try_cluster().await {
        Ok(client) => return Some(client),
        Err(e) => e,
    };
    // Written to the real stderr, not through eprintln!, which the test
    // harness captures: a skip must be visible in a plain `cargo test` run.
    use std::io::Write as _;
    let _ = writeln!(
        std::io::stderr().lock(),
        "SKIPPED: no reachable Kubernetes cluster ({reason:#}) [{test}]"
    );
    None
}

async fn try_cluster() -> anyhow::Result<Client> {
    let has_kubeconfig = std::env::var_os("KUBECONFIG").is_some()
        || std::env::var_os("HOME").is_some_and(|h| PathBuf::from(h).join(".kube/config").exists())
        || std::env::var_os("KUBERNETES_SERVICE_HOST").is_some();
    if !has_kubeconfig {
        bail!("no KUBECONFIG, ~/.kube/config or in-cluster environment");
    }
    let client = tokio::time::timeout(CONNECT_TIMEOUT, Client::try_default())
        .await
        .context("building the client timed out")?
        .context("building the client")?;
    let version = tokio::time::timeout(CONNECT_TIMEOUT, client.apiserver_version())
        .await
        .context("the API server did not answer in time")?
        .context("the API server did not answer")?;
    eprintln!("e2e: using Kubernetes {}.{}", version.major, version.minor);
    Ok(client)
}

/// Applies the operator's CRD and waits until it is established.
pub async fn install_crd(client: &Client) -> anyhow::Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = BanterRegistry::crd();
    let name = crd.metadata.name.clone().context("CRD name")?;
    api.patch(&name, &PatchParams::apply("banter-e2e").force(), &Patch::Apply(&crd))
        .await
        .context("applying the CRD")?;
    wait_for("CRD established", || async {
        let crd = api.get(&name).await.ok()?;
        let established = crd
            .status?
            .conditions?
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        established.then_some(())
    })
    .await
}

/// Polls `check` every second until it yields a value or [`WAIT`] passes.
pub async fn wait_for<T, F, Fut>(what: &str, check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    wait_within(what, WAIT, check).await
}

/// Polls `check` every half second until it yields a value or `limit` passes.
pub async fn wait_within<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        // The deadline bounds each check too: a hung request cannot outlive it.
        match tokio::time::timeout_at(deadline, check()).await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) if tokio::time::Instant::now() < deadline => {}
            _ => bail!("timed out after {limit:?} waiting for {what}"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Label on every PersistentVolume the suite creates: the namespace it
/// serves, so teardown deletes exactly those (PVs are cluster-scoped and
/// outlive the namespace).
pub const PV_LABEL: &str = "banterpacks.io/e2e-namespace";

/// StorageClass name used by the suite's claims: no such class exists, so
/// only the suite's own static PVs bind them (the same on clusters with or
/// without a provisioner), and a resize is refused by admission.
pub fn static_class(namespace: &str) -> String {
    format!("banter-e2e-static-{namespace}")
}

/// Creates a PersistentVolume pre-bound to claim `claim` in `namespace`
/// (class [`static_class`], 10Gi, hostPath that no container ever uses).
pub async fn provide_volume(client: &Client, namespace: &str, claim: &str) -> anyhow::Result<()> {
    let name = format!("e2e-{namespace}-{claim}");
    let pv: PersistentVolume = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": name, "labels": {PV_LABEL: namespace}},
        "spec": {
            "capacity": {"storage": "10Gi"},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": static_class(namespace),
            "claimRef": {"namespace": namespace, "name": claim},
            "hostPath": {"path": format!("/tmp/banter-e2e/{name}")}
        }
    }))?;
    Api::<PersistentVolume>::all(client.clone())
        .patch(&name, &PatchParams::apply("banter-e2e").force(), &Patch::Apply(&pv))
        .await
        .with_context(|| format!("creating PersistentVolume {name}"))?;
    Ok(())
}

/// The server-side Table view of one object (what `kubectl get -o wide`
/// prints): column names and the cells of its row.
pub async fn table_row(client: &Client, path: &str) -> anyhow::Result<Vec<(String, serde_json::Value)>> {
    let req = http::Request::get(path)
        .header("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
        .body(Vec::new())
        .context("building the Table request")?;
    let table: serde_json::Value = client.request(req).await.context("GET as Table")?;
    let names: Vec<String> = table["columnDefinitions"]
        .as_array()
        .context("columnDefinitions")?
        .iter()
        .map(|c| c["name"].as_str().unwrap_or_default().to_string())
        .collect();
    let cells = table["rows"][0]["cells"].as_array().context("one row")?.clone();
    Ok(names.into_iter().zip(cells).collect())
}

/// Events in `namespace` about the object named `name`, as (type, reason, note).
pub async fn events_about(
    client: &Client,
    namespace: &str,
    name: &str,
) -> anyhow::Result<Vec<(String, String, String)>> {
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    let list = events.list(&Default::default()).await.context("listing events")?;
    Ok(list
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .map(|e| {
            (
                e.type_.unwrap_or_default(),
                e.reason.unwrap_or_default(),
                e.note.unwrap_or_default(),
            )
        })
        .collect())
}

/// A namespace of its own and an operator process watching only it; both
/// go away on drop.
pub struct Environment {
    /// Client of the cluster.
    pub client: Client,
    /// The throw-away namespace.
    pub namespace: String,
    operator: Option<Child>,
}

impl Environment {
    /// Creates the namespace and starts `banter-operator run` for it.
    pub async fn start(client: Client, prefix: &str) -> anyhow::Result<Self> {
        let mut env = Self::namespace_only(client, prefix).await?;
        env.operator = Some(spawn_operator(&env.namespace)?);
        Ok(env)
    }

    /// Creates the namespace only (for installing the chart into it).
    pub async fn namespace_only(client: Client, prefix: &str) -> anyhow::Result<Self> {
        let suffix: u32 = rand::random();
        let namespace = format!("{prefix}-{suffix:08x}");
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": namespace, "labels": {"banterpacks.io/e2e": "true"}}
        }))?;
        Api::<Namespace>::all(client.clone())
            .patch(&namespace, &PatchParams::apply("banter-e2e"), &Patch::Apply(&ns))
            .await
            .context("creating the test namespace")?;
        Ok(Self {
            client,
            namespace,
            operator: None,
        })
    }
}

impl Drop for Environment {
    fn drop(&mut self) {
        // Drop cannot be async, and the test's runtime is single-threaded:
        // the connection task of `self.client` lives on the thread that is
        // blocked here, so the helper thread builds a client of its own.
        // The namespace goes first, while the operator still runs, so it
        // can remove its finalizer from the registries inside it.
        let namespace = self.namespace.clone();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            // One deadline over the whole teardown: a hung request must not
            // keep a failed run from ending.
            let teardown = delete_namespace(&namespace);
            if rt.block_on(tokio::time::timeout(WAIT + WAIT, teardown)).is_err() {
                eprintln!("e2e: tearing down namespace {namespace} timed out");
            }
        })
        .join();
        if let Some(mut child) = self.operator.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Deletes `namespace` and waits (bounded by [`WAIT`]) until it is gone.
async fn delete_namespace(namespace: &str) {
    let client = match tokio::time::timeout(CONNECT_TIMEOUT, Client::try_default()).await {
        Ok(Ok(c)) => c,
        _ => {
            eprintln!("e2e: no client to delete namespace {namespace}");
            return;
        }
    };
    delete_namespace_and_wait(&client, namespace).await;
    // Static volumes are cluster-scoped: they go last, once nothing uses them.
    let pvs: Api<PersistentVolume> = Api::all(client);
    let lp = ListParams::default().labels(&format!("{PV_LABEL}={namespace}"));
    if let Err(e) = pvs.delete_collection(&DeleteParams::background(), &lp).await {
        eprintln!("e2e: deleting the PersistentVolumes of {namespace} failed: {e}");
    }
}

async fn delete_namespace_and_wait(client: &Client, namespace: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    if let Err(e) = api.delete(namespace, &DeleteParams::background()).await {
        eprintln!("e2e: deleting namespace {namespace} failed: {e}");
        return;
    }
    let gone = || async { matches!(api.get_opt(namespace).await, Ok(None)).then_some(()) };
    if let Err(e) = wait_for(&format!("namespace {namespace} to be gone"), gone).await {
        // The operator died or hung: drop its finalizer from what is left so
        // the namespace does not stay Terminating for ever.
        eprintln!("e2e: {e:#}; removing finalizers of the registries left in it");
        let registries: Api<BanterRegistry> = Api::namespaced(client.clone(), namespace);
        let left = registries
            .list(&Default::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default();
        for reg in left {
            let Some(name) = reg.metadata.name else { continue };
            let patch = Patch::Merge(serde_json::json!({"metadata": {"finalizers": null}}));
            if let Err(e) = registries.patch(&name, &PatchParams::default(), &patch).await {
                eprintln!("e2e: removing the finalizer of {name} failed: {e}");
            }
        }
        if let Err(e) = wait_for(&format!("namespace {namespace} to be gone"), gone).await {
            eprintln!("e2e: {e:#}");
        }
    }
}

/// Path of the operator binary, built on demand (same profile as the tests).
pub fn operator_binary() -> anyhow::Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "-p", "banter-operator", "--bin", "banter-operator"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .context("running cargo build for the operator")?;
    if !status.success() {
        bail!("building banter-operator failed");
    }
    // The test executable lives in target/<profile>/deps/.
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(|p| p.parent())
        .context("locating the target directory")?;
    let bin = dir.join("banter-operator");
    if !bin.exists() {
        bail!("{} not found after building", bin.display());
    }
    Ok(bin)
}

fn spawn_operator(namespace: &str) -> anyhow::Result<Child> {
    let bin = operator_binary()?;
    Command::new(bin)
        .args(["run", "--namespace", namespace, "--metrics-listen", "127.0.0.1:0"])
        .env("RUST_LOG", "info,banter_operator=debug")
        .stdin(Stdio::null())
        .spawn()
        .context("starting banter-operator run")
}
