//! The reconciler: desired children → compare → apply → prune → status.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use banter_api::{Backend, BanterRegistry};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::DynamicObject;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Error as FinalizerError, Event as Finalizer, finalizer};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

use crate::children::{self, BuildInput, Child, ChildKind};
use crate::events::EventSink;
use crate::labels;
use crate::metrics::Metrics;
use crate::settings::{FIELD_MANAGER, FINALIZER};
use crate::status::{self, Observed};
use crate::{Error, Settings};

/// How often a healthy registry is re-checked for drift without any event.
pub const RESYNC: Duration = Duration::from_secs(300);
/// First retry delay after a failure; doubles per consecutive failure.
pub const BACKOFF_BASE: Duration = Duration::from_secs(5);
/// Longest retry delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// Shared state of the reconciler.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// Default images.
    pub settings: Settings,
    /// Operator metrics.
    pub metrics: Arc<Metrics>,
    /// Event destination.
    pub events: EventSink,
    /// Makes the token of a generated Secret.
    pub token: fn() -> String,
    /// Consecutive failures per registry, for the retry backoff.
    pub failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    /// A context with an empty failure table.
    pub fn new(
        client: Client,
        settings: Settings,
        metrics: Arc<Metrics>,
        events: EventSink,
        token: fn() -> String,
    ) -> Self {
        Self {
            client,
            settings,
            metrics,
            events,
            token,
            failures: Mutex::new(HashMap::new()),
        }
    }
}

/// A random publish token: 32 bytes as hex.
pub fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn key(reg: &BanterRegistry) -> String {
    format!("{}/{}", reg.namespace().unwrap_or_default(), reg.name_any())
}

/// Entry point given to the controller.
pub async fn reconcile(reg: Arc<BanterRegistry>, ctx: Arc<Context>) -> Result<Action, Error> {
    let start = Instant::now();
    let ns = reg.namespace().ok_or(Error::MissingMetadata("metadata.namespace"))?;
    let api: Api<BanterRegistry> = Api::namespaced(ctx.client.clone(), &ns);
    let result = finalizer(&api, FINALIZER, reg.clone(), |event| async {
        match event {
            Finalizer::Apply(r) => apply(&r, &ctx).await,
            Finalizer::Cleanup(r) => cleanup(&r, &ctx).await,
        }
    })
    .await;
    let result = match result {
        // The object went away between our read and the finalizer patch:
        // the deletion is finished, which is what we were working towards.
        Err(
            FinalizerError::RemoveFinalizer(kube::Error::Api(s)) | FinalizerError::AddFinalizer(kube::Error::Api(s)),
        ) if s.code == 404 => {
            tracing::debug!(registry = %key(&reg), "registry is gone; nothing left to do");
            Ok(Action::await_change())
        }
        other => other.map_err(|e| Error::Finalizer(Box::new(e))),
    };
    ctx.metrics.reconciled(start.elapsed());
    match &result {
        Ok(_) => {
            if let Ok(mut f) = ctx.failures.lock() {
                f.remove(&key(&reg));
            }
        }
        Err(e) => {
            ctx.events
                .publish(&reg, true, "ReconcileFailed", "Reconcile", e.to_string())
                .await;
        }
    }
    result
}

/// Retry policy: count the error by reason and back off exponentially.
pub fn error_policy(reg: Arc<BanterRegistry>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.failed(err.reason());
    tracing::warn!(registry = %key(&reg), reason = err.reason(), error = %err, "reconcile failed");
    let n = match ctx.failures.lock() {
        Ok(mut f) => {
            let n = f.entry(key(&reg)).or_insert(0);
            *n = n.saturating_add(1);
            *n
        }
        Err(_) => 1,
    };
    Action::requeue(backoff(n))
}

/// Delay before retry number `n` (1-based).
pub fn backoff(n: u32) -> Duration {
    let factor = 2u32.saturating_pow(n.saturating_sub(1).min(16));
    BACKOFF_BASE.saturating_mul(factor).min(BACKOFF_MAX)
}

/// Whether `monitoring.coreos.com/v1` serves ServiceMonitors (discovery).
pub async fn service_monitor_served(client: &Client) -> Result<bool, Error> {
    match client.list_api_group_resources("monitoring.coreos.com/v1").await {
        Ok(list) => Ok(list.resources.iter().any(|r| r.name == "servicemonitors")),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
        Err(e) => Err(e.into()),
    }
}

fn dynamic_api(client: &Client, ns: &str, kind: ChildKind) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &kind.api_resource())
}

/// Lists every object of the managed kinds that carries this registry's labels.
async fn observe(client: &Client, ns: &str, instance: &str, served: bool) -> Result<Observed, Error> {
    let lp = ListParams::default().labels(&labels::instance_selector(instance));
    let mut observed = Observed::new();
    for kind in ChildKind::ALL {
        if kind == ChildKind::ServiceMonitor && !served {
            continue;
        }
        for obj in dynamic_api(client, ns, kind).list(&lp).await? {
            let name = obj.name_any();
            observed.insert((kind, name), serde_json::to_value(&obj)?);
        }
    }
    Ok(observed)
}

/// Whether a labelled PVC that is not a desired child may be deleted. Only
/// data volumes of the other backend, and only without retainOnDelete; the
/// backend is read from the `banterpacks.io/data` label because the
/// StatefulSet controller overwrites claim labels with its selector's.
fn prunable_volume(obj: &Value, backend: Backend, retain: bool) -> bool {
    let data = obj
        .pointer("/metadata/labels")
        .and_then(|l| l.get(labels::DATA_LABEL))
        .and_then(Value::as_str);
    match data {
        Some(b) if b == backend.as_str() => false,
        Some(_) => !retain,
        // Not recognisably ours: never delete data.
        None => false,
    }
}

async fn apply(reg: &BanterRegistry, ctx: &Context) -> Result<Action, Error> {
    let ns = reg.namespace().ok_or(Error::MissingMetadata("metadata.namespace"))?;
    let name = reg.name_any();
    let api: Api<BanterRegistry> = Api::namespaced(ctx.client.clone(), &ns);
    let now = Time(k8s_openapi::jiff::Timestamp::now());

    if let Err(message) = reg.spec.validate() {
        let st = status::invalid(reg, &message, &now);
        if status::write_if_changed(&api, reg, &st).await? {
            ctx.events.publish(reg, true, "InvalidSpec", "Validate", message).await;
        }
        record_conditions(ctx, reg, &st);
        // Nothing will change until the user edits the spec.
        return Ok(Action::await_change());
    }

    let served = service_monitor_served(&ctx.client).await?;
    let token = (ctx.token)();
    let input = BuildInput {
        registry: reg,
        settings: &ctx.settings,
        service_monitor_served: served,
        generated_token: &token,
    };
    let desired = children::desired(&input)?;
    let observed = observe(&ctx.client, &ns, &name, served).await?;
    let auth_missing = match &reg.spec.auth {
        Some(auth) => Api::<Secret>::namespaced(ctx.client.clone(), &ns)
            .get_opt(&auth.secret_name)
            .await?
            .is_none()
            .then(|| auth.secret_name.clone()),
        None => None,
    };

    for child in &desired {
        match apply_child(ctx, reg, &ns, child, observed.get(&(child.kind, child.name.clone()))).await {
            Ok(()) => {}
            // 422: the API server refuses what the spec asks for (a PVC
            // shrink, a value its schema rejects). Retrying cannot help, so
            // report it like an invalid spec and wait for the user's change.
            Err(Error::Kube(kube::Error::Api(ae))) if ae.code == 422 => {
                let message = format!(
                    "the API server rejected {:?} {}: {}",
                    child.kind, child.name, ae.message
                );
                let st = status::invalid(reg, &message, &now);
                if status::write_if_changed(&api, reg, &st).await? {
                    ctx.events.publish(reg, true, "InvalidSpec", "Apply", message).await;
                }
                record_conditions(ctx, reg, &st);
                return Ok(Action::await_change());
            }
            Err(e) => return Err(e),
        }
    }
    prune(ctx, reg, &ns, &desired, &observed).await?;

    let st = status::compute(
        reg,
        &observed,
        &status::Findings {
            service_monitor_served: served,
            missing_auth_secret: auth_missing,
        },
        children::endpoint(&input)?,
        &now,
    );
    status::write_if_changed(&api, reg, &st).await?;
    record_conditions(ctx, reg, &st);
    Ok(Action::requeue(RESYNC))
}

fn record_conditions(ctx: &Context, reg: &BanterRegistry, st: &banter_api::BanterRegistryStatus) {
    let conds = st
        .conditions
        .iter()
        .map(|c| (c.type_.clone(), c.status.clone()))
        .collect();
    ctx.metrics.set_conditions(&key(reg), Some(conds));
}

async fn apply_child(
    ctx: &Context,
    reg: &BanterRegistry,
    ns: &str,
    child: &Child,
    observed: Option<&Value>,
) -> Result<(), Error> {
    let api = dynamic_api(&ctx.client, ns, child.kind);
    let what = format!("{:?} {}", child.kind, child.name);
    if child.create_only {
        if observed.is_some() {
            return Ok(());
        }
        let obj: DynamicObject = serde_json::from_value(child.object.clone())?;
        match api.create(&PostParams::default(), &obj).await {
            Ok(_) => {
                ctx.events
                    .publish(reg, false, "Created", "Create", format!("created {what}"))
                    .await;
                Ok(())
            }
            // Exists without our labels: never overwritten.
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
            Err(e) => Err(e.into()),
        }
    } else {
        if !crate::drift::needs_apply(&child.object, observed) {
            return Ok(());
        }
        api.patch(
            &child.name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&child.object),
        )
        .await?;
        let (reason, action) = if observed.is_some() {
            ("Updated", "Update")
        } else {
            ("Created", "Create")
        };
        ctx.events
            .publish(reg, false, reason, action, format!("{} {what}", reason.to_lowercase()))
            .await;
        Ok(())
    }
}

/// Deletes what carries this registry's labels but is no longer desired.
/// Never deletes token Secrets; data volumes only when retainOnDelete is false.
async fn prune(
    ctx: &Context,
    reg: &BanterRegistry,
    ns: &str,
    desired: &[Child],
    observed: &Observed,
) -> Result<(), Error> {
    let wanted: BTreeSet<(ChildKind, &str)> = desired.iter().map(|c| (c.kind, c.name.as_str())).collect();
    let backend = reg.spec.storage.backend;
    for ((kind, name), obj) in observed {
        if wanted.contains(&(*kind, name.as_str())) {
            continue;
        }
        let keep = match kind {
            ChildKind::Secret => true,
            ChildKind::PersistentVolumeClaim => !prunable_volume(obj, backend, reg.spec.storage.retain_on_delete),
            _ => false,
        };
        if keep {
            continue;
        }
        dynamic_api(&ctx.client, ns, *kind)
            .delete(name, &DeleteParams::background())
            .await?;
        ctx.events
            .publish(
                reg,
                false,
                "Pruned",
                "Delete",
                format!("deleted {kind:?} {name}, no longer needed"),
            )
            .await;
    }
    Ok(())
}

/// Deletion: keep the data volumes (detached from the registry) or delete them.
async fn cleanup(reg: &BanterRegistry, ctx: &Context) -> Result<Action, Error> {
    let ns = reg.namespace().ok_or(Error::MissingMetadata("metadata.namespace"))?;
    let api = dynamic_api(&ctx.client, &ns, ChildKind::PersistentVolumeClaim);
    let lp = ListParams::default().labels(&labels::instance_selector(&reg.name_any()));
    for pvc in api.list(&lp).await? {
        let name = pvc.name_any();
        if reg.spec.storage.retain_on_delete {
            // Volumes built with retainOnDelete carry no owner reference; one
            // applied before retainOnDelete was switched on is detached here.
            if pvc.metadata.owner_references.as_ref().is_some_and(|r| !r.is_empty()) {
                api.patch(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"metadata": {"ownerReferences": null}})),
                )
                .await?;
            }
            ctx.events
                .publish(
                    reg,
                    false,
                    "Retained",
                    "Delete",
                    format!("kept PersistentVolumeClaim {name} (retainOnDelete)"),
                )
                .await;
        } else {
            api.delete(&name, &DeleteParams::background()).await?;
            ctx.events
                .publish(
                    reg,
                    false,
                    "Deleted",
                    "Delete",
                    format!("deleted PersistentVolumeClaim {name}"),
                )
                .await;
        }
    }
    ctx.metrics.set_conditions(&key(reg), None);
    Ok(Action::await_change())
}
