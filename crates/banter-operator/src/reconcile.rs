//! The reconciler: desired children → compare → apply → prune → status.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use banter_api::{Backend, BanterRegistry};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::core::DynamicObject;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Error as FinalizerError, Event as Finalizer, finalizer};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

use crate::cache::ChildCache;
use crate::children::{self, BuildInput, Child, ChildKind};
use crate::conditions::reasons;
use crate::decode::decode_error;
use crate::discovery::{Discovery, OptionalApis};
use crate::events::EventSink;
use crate::labels;
use crate::metrics::Metrics;
use crate::settings::{FIELD_MANAGER, FINALIZER, REPLICAS_HANDOFF_MANAGER};
use crate::status::{self, Findings, Observed};
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
    /// Children as the watches see them.
    pub cache: Arc<ChildCache>,
    /// Which optional APIs are served.
    pub discovery: Arc<Discovery>,
    /// Objects read by name (Secrets, which are not watched) seen to exist,
    /// and when; re-checked after `RESYNC`.
    seen: Mutex<HashMap<(ChildKind, String, String), Instant>>,
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
            cache: Arc::new(ChildCache::default()),
            discovery: Arc::new(Discovery::fixed(false)),
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// This context with the given discovery answers.
    pub fn with_discovery(mut self, discovery: Arc<Discovery>) -> Self {
        self.discovery = discovery;
        self
    }

    /// Records that `kind` `name` exists (after a create, a lookup, or in
    /// tests that start from a warm state).
    pub fn remember(&self, kind: ChildKind, ns: &str, name: &str) {
        if let Ok(mut m) = self.seen.lock() {
            m.insert((kind, ns.to_string(), name.to_string()), Instant::now());
        }
    }

    /// Whether `kind` `name` exists: from memory when seen within `RESYNC`,
    /// else one metadata GET. Secrets are never listed or watched (the
    /// operator's RBAC has no `list`/`watch` on them).
    async fn exists(&self, kind: ChildKind, ns: &str, name: &str) -> Result<bool, Error> {
        let fresh = self.seen.lock().is_ok_and(|m| {
            m.get(&(kind, ns.to_string(), name.to_string()))
                .is_some_and(|seen| seen.elapsed() < RESYNC)
        });
        if fresh {
            return Ok(true);
        }
        let found = dynamic_api(&self.client, ns, kind)
            .get_metadata_opt(name)
            .await?
            .is_some();
        if found {
            self.remember(kind, ns, name);
        }
        Ok(found)
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

/// How long `observe` waits for the watch caches' first list.
pub const CACHE_WAIT: Duration = Duration::from_secs(30);
/// Re-check delay while the Secret named by `spec.auth` is missing (it has
/// none of the operator's labels, so no watch would notice it appear).
pub const AUTH_RECHECK: Duration = Duration::from_secs(30);

fn dynamic_api(client: &Client, ns: &str, kind: ChildKind) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &kind.api_resource())
}

/// A registry whose spec passed validation, with the identity every later
/// stage needs.
pub struct ValidatedRegistry<'a> {
    /// The resource.
    pub registry: &'a BanterRegistry,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.uid`: stamped on data volumes.
    pub uid: String,
}

/// Stage 1: the spec as the operator can act on it, or why it cannot.
pub fn validate(reg: &BanterRegistry) -> Result<Result<ValidatedRegistry<'_>, String>, Error> {
    let name = reg
        .metadata
        .name
        .clone()
        .ok_or(Error::MissingMetadata("metadata.name"))?;
    let namespace = reg.namespace().ok_or(Error::MissingMetadata("metadata.namespace"))?;
    let uid = reg.metadata.uid.clone().ok_or(Error::MissingMetadata("metadata.uid"))?;
    if let Some(why) = decode_error(reg) {
        return Ok(Err(format!("the spec cannot be read: {why}")));
    }
    Ok(reg.spec.validate().map(|()| ValidatedRegistry {
        registry: reg,
        name,
        namespace,
        uid,
    }))
}

/// What stage 2 found: the children and the facts besides them.
pub struct Observation {
    /// Children as the watch caches hold them.
    pub children: Observed,
    /// Findings for the status.
    pub findings: Findings,
}

/// Kinds the caches hold in a cluster serving the optional kinds `served`.
fn kinds(served: OptionalApis) -> Vec<ChildKind> {
    ChildKind::ALL
        .into_iter()
        .filter(|k| k.watched() && served.serves(*k))
        .collect()
}

/// Stage 2: children from the caches; the auth Secret by name, remembered
/// while it exists.
async fn observe(ctx: &Context, v: &ValidatedRegistry<'_>) -> Result<Observation, Error> {
    let served = ctx.discovery.apis();
    let children = ctx
        .cache
        .observe(&v.namespace, &v.name, &kinds(served), CACHE_WAIT)
        .await?;
    let missing_auth_secret = match &v.registry.spec.auth {
        Some(auth) if !ctx.exists(ChildKind::Secret, &v.namespace, &auth.secret_name).await? => {
            Some(auth.secret_name.clone())
        }
        _ => None,
    };
    Ok(Observation {
        children,
        findings: Findings {
            apis: served,
            missing_auth_secret,
        },
    })
}

/// Whether a labelled PVC that is not a desired child may be deleted: only
/// a data volume of a backend no longer run here (`local`: the backend whose
/// data the operator keeps; none with an external Redis), only without
/// retainOnDelete, and only one this very registry stamped. The backend is read from the
/// `banterpacks.io/data` label because the StatefulSet controller overwrites
/// claim labels with its selector's.
fn prunable_volume(obj: &Value, local: Option<Backend>, retain: bool, uid: &str) -> bool {
    let label = |key: &str| {
        obj.pointer("/metadata/labels")
            .and_then(|l| l.get(key))
            .and_then(Value::as_str)
    };
    match label(labels::DATA_LABEL) {
        Some(b) if local.is_some_and(|l| l.as_str() == b) => false,
        Some(_) => !retain && stamped_by(obj, uid),
        // Not recognisably ours: never delete data.
        None => false,
    }
}

/// Whether `obj` was stamped by (or is owned by) the registry with `uid`.
fn stamped_by(obj: &Value, uid: &str) -> bool {
    let stamp = obj
        .pointer("/metadata/labels")
        .and_then(|l| l.get(labels::OWNER_UID_LABEL))
        .and_then(Value::as_str);
    match stamp {
        Some(s) => s == uid,
        // Volumes from before stamping: only an owner reference proves it.
        None => obj
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .is_some_and(|refs| refs.iter().any(|r| r.get("uid").and_then(Value::as_str) == Some(uid))),
    }
}

/// How a write the API server refused should be handled, least to most
/// severe (the most severe failure of a pass decides what happens).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Refusal {
    /// 422: the spec asks for something the server will never accept.
    Invalid,
    /// 403 from an admission plugin (quota, policy, webhook).
    Admission,
    /// Anything else: retried with backoff.
    Transient,
}

fn refusal(e: &Error) -> Refusal {
    match e {
        Error::Kube(kube::Error::Api(s)) if s.code == 422 => Refusal::Invalid,
        // RBAC's 403 reads `User "…" cannot patch resource …`: the operator's
        // own permissions, which an administrator may fix, so retried.
        Error::Kube(kube::Error::Api(s)) if s.code == 403 && !s.message.contains(" cannot ") => Refusal::Admission,
        _ => Refusal::Transient,
    }
}

/// One child that could not be applied or pruned.
struct Failure {
    what: String,
    error: Error,
}

/// Stage 4: applies every desired child (one failure never stops the rest),
/// stamps adopted volumes, then prunes when everything applied. Returns the
/// children as they are after these writes, and the failures.
async fn apply_all(
    ctx: &Context,
    v: &ValidatedRegistry<'_>,
    desired: &[Child],
    observed: &Observed,
) -> (Observed, Vec<Failure>) {
    let mut after = observed.clone();
    let mut failures = Vec::new();
    for child in desired {
        let key = (child.kind, child.name.clone());
        let kind = child.kind.api_resource().kind;
        match apply_child(ctx, v, child, observed.get(&key)).await {
            Ok(Some(live)) => {
                ctx.metrics.child_applied(&kind, "applied");
                ctx.cache.remember(child.kind, &live);
                after.insert(key, live);
            }
            Ok(None) => ctx.metrics.child_applied(&kind, "unchanged"),
            Err(error) => {
                ctx.metrics.child_applied(&kind, "failed");
                failures.push(Failure {
                    what: format!("{:?} {}", child.kind, child.name),
                    error,
                });
            }
        }
    }
    if let Err(f) = stamp_volumes(ctx, v, &mut after).await {
        failures.push(f);
    }
    // Removing the old before the new is in place could take the registry
    // down: prune only after a clean apply.
    if failures.is_empty() {
        failures.extend(prune(ctx, v, desired, &mut after).await);
    }
    (after, failures)
}

/// Stamps Redis claim volumes (made by the StatefulSet controller from a
/// template that cannot change) with this registry's UID.
async fn stamp_volumes(ctx: &Context, v: &ValidatedRegistry<'_>, after: &mut Observed) -> Result<(), Failure> {
    if v.registry.spec.storage.backend != Backend::Redis {
        return Ok(());
    }
    let unstamped: Vec<String> = after
        .iter()
        .filter(|((kind, _), obj)| {
            *kind == ChildKind::PersistentVolumeClaim
                && obj.pointer("/metadata/labels").and_then(|l| l.get(labels::DATA_LABEL)) == Some(&json!("redis"))
                && obj
                    .pointer("/metadata/labels")
                    .and_then(|l| l.get(labels::OWNER_UID_LABEL))
                    .is_none()
        })
        .map(|((_, name), _)| name.clone())
        .collect();
    let api = dynamic_api(&ctx.client, &v.namespace, ChildKind::PersistentVolumeClaim);
    for name in unstamped {
        let patch = json!({"metadata": {"labels": {labels::OWNER_UID_LABEL: v.uid}}});
        match api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(obj) => {
                let obj = live(ChildKind::PersistentVolumeClaim, &obj).map_err(|error| Failure {
                    what: format!("PersistentVolumeClaim {name}"),
                    error,
                })?;
                after.insert((ChildKind::PersistentVolumeClaim, name), obj);
            }
            Err(e) => {
                return Err(Failure {
                    what: format!("PersistentVolumeClaim {name}"),
                    error: e.into(),
                });
            }
        }
    }
    Ok(())
}

async fn apply(reg: &BanterRegistry, ctx: &Context) -> Result<Action, Error> {
    let api: Api<BanterRegistry> = Api::namespaced(
        ctx.client.clone(),
        &reg.namespace().ok_or(Error::MissingMetadata("metadata.namespace"))?,
    );
    let now = Time(k8s_openapi::jiff::Timestamp::now());

    // 1. validate
    let v = match validate(reg)? {
        Ok(v) => v,
        Err(message) => {
            let st = status::invalid(reg, &message, &now);
            if status::write_if_changed(&api, reg, &st).await? {
                ctx.events.publish(reg, true, "InvalidSpec", "Validate", message).await;
            }
            record_conditions(ctx, reg, &st);
            // Nothing will change until the user edits the spec.
            return Ok(Action::await_change());
        }
    };

    // 2. observe
    let observation = observe(ctx, &v).await?;

    // 3. build (pure)
    let token = (ctx.token)();
    let redis_password = (ctx.token)();
    let mut input = BuildInput::new(reg, &ctx.settings, observation.findings.apis, &token)?;
    input.generated_redis_password = &redis_password;
    let desired = children::desired(&input)?;
    let urls = status::Urls {
        endpoint: children::endpoint(&input),
        external: children::external_url(&input, observation.findings.apis.http_route),
    };

    // 4. apply and prune
    let (after, failures) = apply_all(ctx, &v, &desired, &observation.children).await;

    // 5. status, from the children as they are now
    let computed = status::compute(reg, &after, &observation.findings, urls, &now);
    if failures.is_empty() {
        status::write_if_changed(&api, reg, &computed).await?;
        record_conditions(ctx, reg, &computed);
        return Ok(if observation.findings.missing_auth_secret.is_some() {
            Action::requeue(AUTH_RECHECK)
        } else {
            Action::requeue(RESYNC)
        });
    }

    let worst = failures
        .iter()
        .map(|f| refusal(&f.error))
        .max()
        .unwrap_or(Refusal::Transient);
    let message = failures
        .iter()
        .map(|f| format!("{}: {}", f.what, api_message(&f.error)))
        .collect::<Vec<_>>()
        .join("; ");
    let (reason, message) = match worst {
        Refusal::Invalid => (reasons::INVALID_SPEC, format!("the API server rejected {message}")),
        Refusal::Admission => (reasons::ADMISSION_REFUSED, format!("admission refused {message}")),
        Refusal::Transient => (reasons::APPLY_FAILED, format!("could not apply {message}")),
    };
    let st = status::not_ready(computed, reg.metadata.generation, reason, &message, &now);
    let wrote = status::write_if_changed(&api, reg, &st).await;
    record_conditions(ctx, reg, &st);
    match worst {
        Refusal::Invalid | Refusal::Admission => {
            if wrote? {
                ctx.events.publish(reg, true, reason, "Apply", message).await;
            }
            // Retrying cannot help: wait for the user's change.
            Ok(Action::await_change())
        }
        Refusal::Transient => {
            if let Err(e) = wrote {
                tracing::warn!(registry = %key(reg), error = %e, "writing the ApplyFailed status failed");
            }
            // The first transient failure is the one retried and counted.
            let mut failures = failures;
            let first = failures
                .iter()
                .position(|f| refusal(&f.error) == Refusal::Transient)
                .unwrap_or(0);
            Err(failures.swap_remove(first).error)
        }
    }
}

/// The API server's own message for an API error, the whole error otherwise.
fn api_message(e: &Error) -> String {
    match e {
        Error::Kube(kube::Error::Api(s)) => s.message.clone(),
        other => other.to_string(),
    }
}

fn record_conditions(ctx: &Context, reg: &BanterRegistry, st: &banter_api::BanterRegistryStatus) {
    let conds = st
        .conditions
        .iter()
        .map(|c| (c.type_.clone(), c.status.clone()))
        .collect();
    ctx.metrics.set_conditions(&key(reg), Some(conds));
}

/// The live object a write returned, trimmed like the cache's.
fn live(kind: ChildKind, obj: &DynamicObject) -> Result<Value, Error> {
    let mut v = serde_json::to_value(obj)?;
    crate::cache::trim(kind, &mut v);
    Ok(v)
}

/// Applies one child when it differs from what is observed; returns the
/// object the API server answered with, `None` when nothing was written.
async fn apply_child(
    ctx: &Context,
    v: &ValidatedRegistry<'_>,
    child: &Child,
    observed: Option<&Value>,
) -> Result<Option<Value>, Error> {
    let api = dynamic_api(&ctx.client, &v.namespace, child.kind);
    let what = format!("{:?} {}", child.kind, child.name);
    if child.create_only {
        if observed.is_some() || ctx.exists(child.kind, &v.namespace, &child.name).await? {
            return Ok(None);
        }
        let obj: DynamicObject = serde_json::from_value(child.object.clone())?;
        match api.create(&PostParams::default(), &obj).await {
            Ok(created) => {
                ctx.remember(child.kind, &v.namespace, &child.name);
                ctx.events
                    .publish(v.registry, false, "Created", "Create", format!("created {what}"))
                    .await;
                Ok(Some(live(child.kind, &created)?))
            }
            // Exists (made meanwhile, or without our labels): never overwritten.
            Err(kube::Error::Api(s)) if s.code == 409 => {
                ctx.remember(child.kind, &v.namespace, &child.name);
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    } else {
        if !crate::drift::needs_apply(&child.object, observed) {
            return Ok(None);
        }
        if child.kind == ChildKind::Deployment && v.registry.spec.autoscaled() {
            let live = observed
                .and_then(|o| o.pointer("/spec/replicas"))
                .and_then(Value::as_i64);
            if let Some(replicas) = live {
                hand_replicas_over(&api, &child.name, replicas).await?;
            }
        }
        let applied = api
            .patch(
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
            .publish(
                v.registry,
                false,
                reason,
                action,
                format!("{} {what}", reason.to_lowercase()),
            )
            .await;
        Ok(Some(live(child.kind, &applied)?))
    }
}

/// Makes a second field manager co-own the Deployment's current
/// `spec.replicas` before an apply that leaves the field out (autoscaling
/// on): server-side apply deletes a field its only owner stops applying,
/// which would reset the Deployment to one replica until the autoscaler
/// acts again. The autoscaler's next change takes the field over.
async fn hand_replicas_over(api: &Api<DynamicObject>, name: &str, replicas: i64) -> Result<(), Error> {
    let patch = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {"replicas": replicas},
    });
    match api
        .patch(
            name,
            &PatchParams::apply(REPLICAS_HANDOFF_MANAGER),
            &Patch::Apply(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        // Gone since the cache saw it: the apply creates it afresh, with
        // nothing to reset.
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(Error::ReplicasHandOver(e)),
    }
}

/// Deletes what carries this registry's labels but is no longer desired.
/// Never deletes token Secrets; data volumes only when retainOnDelete is
/// false and this registry stamped them.
async fn prune(ctx: &Context, v: &ValidatedRegistry<'_>, desired: &[Child], after: &mut Observed) -> Vec<Failure> {
    let wanted: BTreeSet<(ChildKind, &str)> = desired.iter().map(|c| (c.kind, c.name.as_str())).collect();
    let spec = &v.registry.spec;
    // Moving to an external Redis: the old pods still use the operator's
    // Redis until the new ones serve, so it goes only after the rollout.
    let keep_managed_redis = spec.storage.backend == Backend::Redis
        && spec.storage.redis.external.is_some()
        && !status::serving(after.get(&(ChildKind::Deployment, labels::names::registry(&v.name))));
    let deferred = |obj: &Value| {
        keep_managed_redis
            && matches!(
                obj.pointer("/metadata/labels")
                    .and_then(|l| l.get(labels::keys::COMPONENT))
                    .and_then(Value::as_str),
                Some("redis" | "redis-auth")
            )
    };
    let doomed: Vec<(ChildKind, String)> = after
        .iter()
        .filter(|((kind, name), obj)| {
            !wanted.contains(&(*kind, name.as_str()))
                && !deferred(obj)
                && match kind {
                    ChildKind::Secret => false,
                    ChildKind::PersistentVolumeClaim => {
                        let local = match spec.storage.backend {
                            Backend::Redis if spec.storage.redis.external.is_some() => None,
                            b => Some(b),
                        };
                        prunable_volume(obj, local, spec.storage.retain_on_delete, &v.uid)
                    }
                    _ => true,
                }
        })
        .map(|(k, _)| k.clone())
        .collect();
    let mut failures = Vec::new();
    for (kind, name) in doomed {
        match dynamic_api(&ctx.client, &v.namespace, kind)
            .delete(&name, &DeleteParams::background())
            .await
        {
            Ok(_) => {
                after.remove(&(kind, name.clone()));
                ctx.events
                    .publish(
                        v.registry,
                        false,
                        "Pruned",
                        "Delete",
                        format!("deleted {kind:?} {name}, no longer needed"),
                    )
                    .await;
            }
            // Already gone is what we wanted.
            Err(kube::Error::Api(s)) if s.code == 404 => {
                after.remove(&(kind, name.clone()));
            }
            Err(e) => failures.push(Failure {
                what: format!("{kind:?} {name}"),
                error: e.into(),
            }),
        }
    }
    failures
}

/// Deletion: keep the data volumes (detached from the registry) or delete
/// the ones this registry stamped.
async fn cleanup(reg: &BanterRegistry, ctx: &Context) -> Result<Action, Error> {
    let ns = reg.namespace().ok_or(Error::MissingMetadata("metadata.namespace"))?;
    let uid = reg.metadata.uid.clone().ok_or(Error::MissingMetadata("metadata.uid"))?;
    let api = dynamic_api(&ctx.client, &ns, ChildKind::PersistentVolumeClaim);
    let volumes = ctx
        .cache
        .observe(&ns, &reg.name_any(), &[ChildKind::PersistentVolumeClaim], CACHE_WAIT)
        .await?;
    for ((_, name), pvc) in &volumes {
        if !stamped_by(pvc, &uid) {
            // Kept by an earlier registry of the same name, or not ours.
            continue;
        }
        if reg.spec.storage.retain_on_delete {
            // Volumes built with retainOnDelete carry no owner reference; one
            // applied before retainOnDelete was switched on is detached here.
            let owned = pvc
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .is_some_and(|r| !r.is_empty());
            if owned {
                api.patch(
                    name,
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
            match api.delete(name, &DeleteParams::background()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => continue,
                Err(e) => return Err(e.into()),
            }
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
