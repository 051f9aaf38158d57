//! `banter-operator run`: controller wiring, metrics server, leader election.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use banter_api::BanterRegistry;
use futures::{Stream, StreamExt, TryStreamExt};
use kube::core::{ApiResource, DynamicObject};
use kube::runtime::controller::Config;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{Controller, PredicateConfig, WatchStreamExt, reflector, watcher};
use kube::{Api, Client, Resource, ResourceExt};

use crate::Settings;
use crate::api_metrics::ApiMetricsLayer;
use crate::children::ChildKind;
use crate::cli::{LogFormat, RunArgs};
use crate::decode;
use crate::discovery::Discovery;
use crate::events::EventSink;
use crate::labels;
use crate::leader::LeaderElector;
use crate::metrics::{self, Metrics};
use crate::reconcile::{self, Context};
use crate::settings::FINALIZER;

/// Hash of what must trigger a reconcile of the main resource: the spec
/// (generation), our finalizer and deletion. Status writes change none of
/// these, so the operator does not re-trigger itself.
pub fn trigger_hash(reg: &BanterRegistry) -> Option<u64> {
    let meta = reg.meta();
    let mut h = DefaultHasher::new();
    meta.generation.hash(&mut h);
    meta.deletion_timestamp.is_some().hash(&mut h);
    meta.finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|x| x == FINALIZER))
        .hash(&mut h);
    Some(h.finish())
}

/// Runs the operator until a controller stops or leadership is lost.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    match args.log_format {
        LogFormat::Text => tracing_subscriber::fmt().with_env_filter(filter).init(),
        LogFormat::Json => tracing_subscriber::fmt().json().with_env_filter(filter).init(),
    }
    let config = kube::Config::infer()
        .await
        .context("reading the Kubernetes client configuration")?;
    let metrics = Arc::new(Metrics::default());
    // Counted inside the rate limit: what reaches the API server.
    let client = kube::client::ClientBuilder::try_from(config)
        .context("building the Kubernetes client")?
        .with_layer(&ApiMetricsLayer(metrics.clone()))
        .with_layer(&tower::limit::RateLimitLayer::new(
            args.kube_api_qps,
            Duration::from_secs(1),
        ))
        .build();
    let server = tokio::spawn(metrics::serve(args.metrics_listen, metrics.clone()));

    let identity = args
        .pod_name
        .clone()
        // Every container's PID is often 1: without POD_NAME, a random suffix
        // keeps two replicas from sharing one Lease identity.
        .unwrap_or_else(|| format!("banter-operator-{:08x}", rand::random::<u32>()));
    // Ready once the API server has answered, leader or not: a standby is a
    // healthy replica (rollouts, `helm --wait` and PDB drains count on it);
    // leadership is the `banter_operator_leader` metric and a log line.
    {
        let client = client.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            while client.apiserver_version().await.is_err() {
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            metrics.set_ready(true);
        });
    }
    let elector = if args.leader_election {
        let ns = args
            .leader_election_namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let elector = LeaderElector::new(
            client.clone(),
            &ns,
            &args.leader_election_name,
            &identity,
            Duration::from_secs(args.leader_election_lease_seconds.max(3)),
        );
        tracing::info!(lease = %args.leader_election_name, namespace = %ns, %identity, "waiting for leadership");
        tokio::select! {
            _ = elector.acquire() => {}
            _ = shutdown_signal() => {
                tracing::info!("stopping before leadership was acquired");
                return Ok(());
            }
        }
        tracing::info!("leadership acquired");
        Some(elector)
    } else {
        None
    };
    metrics.set_leader(true);

    let discovery = Arc::new(Discovery::fixed(false));
    if let Err(e) = discovery.refresh(&client).await {
        tracing::warn!(error = %e, "discovery failed; assuming no ServiceMonitor CRD until the next refresh");
    }
    tokio::spawn({
        let discovery = discovery.clone();
        let client = client.clone();
        async move { discovery.refresh_loop(client).await }
    });
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "banter-operator".into(),
            instance: Some(identity.clone()),
        },
    );
    let ctx = Arc::new(
        Context::new(
            client.clone(),
            Settings {
                registry_image: args.registry_image.clone(),
                redis_image: args.redis_image.clone(),
            },
            metrics.clone(),
            EventSink::Kube(recorder),
            reconcile::random_token,
        )
        .with_discovery(discovery),
    );

    let namespaces: Vec<Option<String>> = if args.namespaces.is_empty() {
        vec![None]
    } else {
        args.namespaces.iter().cloned().map(Some).collect()
    };
    let controllers = futures::future::join_all(
        namespaces
            .into_iter()
            .map(|ns| controller(client.clone(), ns, ctx.clone())),
    );
    tokio::select! {
        _ = controllers => tracing::info!("controllers stopped"),
        _ = async {
            match &elector {
                Some(e) => e.hold().await,
                None => futures::future::pending::<()>().await,
            }
        } => anyhow::bail!("leadership lost; exiting so another replica takes over"),
        r = server => {
            r.context("metrics server task")?.context("metrics server")?;
        }
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted"),
    }
    metrics.set_leader(false);
    if let Some(elector) = &elector {
        // Hand the Lease back so a standby takes over at once, not after a
        // whole lease duration; bounded, as the kubelet's grace period is.
        match tokio::time::timeout(Duration::from_secs(5), elector.release()).await {
            Ok(Ok(())) => tracing::info!("leadership released"),
            Ok(Err(e)) => tracing::warn!(error = %e, "releasing the lease failed"),
            Err(_) => tracing::warn!("releasing the lease timed out"),
        }
    }
    Ok(())
}

/// SIGTERM or SIGINT.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => futures::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = term => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// Reconciles running at once: enough to keep up, few enough that a
/// thousand registries created together do not flood the API server.
pub const CONCURRENCY: u16 = 8;

fn dynamic_api(client: &Client, ns: Option<&str>, ar: &ApiResource) -> Api<DynamicObject> {
    match ns {
        Some(ns) => Api::namespaced_with(client.clone(), ns, ar),
        None => Api::all_with(client.clone(), ar),
    }
}

/// The watch of one child kind: feeds the cache, and maps every event to
/// the registry named by the object's instance label. Labels, not owner
/// references, so retained volumes (which have no owner) trigger too.
fn child_events(
    client: &Client,
    ns: Option<&str>,
    kind: ChildKind,
    ctx: &Arc<Context>,
) -> impl Stream<Item = Result<DynamicObject, watcher::Error>> + Send + 'static {
    let api = dynamic_api(client, ns, &kind.api_resource());
    let cfg = watcher::Config::default()
        .labels(&format!("{}={}", labels::keys::MANAGED_BY, labels::MANAGED_BY))
        .any_semantic();
    let cache = ctx.cache.clone();
    let scope = ns.map(str::to_string);
    let discovery = ctx.discovery.clone();
    let metrics = ctx.metrics.clone();
    let resource = kind.api_resource().plural;
    let watch = move || {
        counted(watcher(api, cfg), metrics, resource)
            .default_backoff()
            .map_ok(move |ev| {
                cache.handle(scope.as_deref(), kind, &ev);
                ev
            })
            .touched_objects()
    };
    if kind.optional() {
        // Maybe not served yet: start watching when discovery sees the CRD.
        futures::stream::once(async move {
            discovery.appears(kind).await;
            watch()
        })
        .flatten()
        .boxed()
    } else {
        watch().boxed()
    }
}

/// A watch stream that counts its errors and every list after its first
/// (`banter_operator_watch_errors_total`, `…_watch_restarts_total`).
fn counted<K: Send + 'static>(
    stream: impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
    metrics: Arc<Metrics>,
    resource: String,
) -> impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static {
    metrics.watching(&resource);
    let mut listed = false;
    stream.inspect(move |item| match item {
        Ok(watcher::Event::Init) => {
            if listed {
                metrics.watch_restarted(&resource);
            }
            listed = true;
        }
        Ok(_) => {}
        Err(_) => metrics.watch_failed(&resource),
    })
}

/// The registry a child event belongs to.
fn owner_ref(obj: DynamicObject) -> Option<ObjectRef<BanterRegistry>> {
    let instance = obj.labels().get(labels::keys::INSTANCE)?.clone();
    let ns = obj.namespace()?;
    Some(ObjectRef::new(&instance).within(&ns))
}

/// One controller for `ns` (all namespaces when `None`), until shutdown.
pub async fn controller(client: Client, ns: Option<String>, ctx: Arc<Context>) {
    let ns = ns.as_deref();
    // Untyped, then decoded one by one: an object that does not deserialize
    // becomes an `InvalidSpec` placeholder instead of failing the list.
    let registries = dynamic_api(&client, ns, &ApiResource::erase::<BanterRegistry>(&()));
    let (reader, writer) = reflector::store();
    let main = counted(
        watcher(registries, watcher::Config::default().any_semantic()),
        ctx.metrics.clone(),
        "banterregistries".to_string(),
    )
    .default_backoff()
    // Managed fields are most of an object's size and never read.
    .modify(|o| o.metadata.managed_fields = None)
    .map_ok(decode::event)
    .reflect(writer)
    .applied_objects()
    .predicate_filter(trigger_hash, PredicateConfig::default());
    let mut c = Controller::for_stream(main, reader).with_config(Config::default().concurrency(CONCURRENCY));
    for kind in ChildKind::ALL.into_iter().filter(|k| k.watched()) {
        c = c.watches_stream_with(child_events(&client, ns, kind, &ctx), owner_ref, kind.api_resource());
    }
    c.shutdown_on_signal()
        .run(reconcile::reconcile, reconcile::error_policy, ctx)
        .for_each(|res| async move {
            match res {
                Ok((obj, _)) => tracing::debug!(registry = %obj.name, "reconciled"),
                Err(e) => tracing::debug!(error = %e, "reconcile error"),
            }
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use banter_api::{BanterRegistrySpec, BanterRegistryStatus};

    #[test]
    fn own_status_writes_do_not_retrigger_but_spec_finalizer_and_deletion_do() {
        let spec: BanterRegistrySpec = serde_json::from_str("{}").expect("spec");
        let mut reg = BanterRegistry::new("packs", spec);
        reg.metadata.generation = Some(1);
        let base = trigger_hash(&reg);

        let mut status_only = reg.clone();
        status_only.status = Some(BanterRegistryStatus {
            ready_replicas: Some(1),
            ..Default::default()
        });
        status_only.metadata.resource_version = Some("2".into());
        assert_eq!(trigger_hash(&status_only), base);

        let mut spec_edit = reg.clone();
        spec_edit.metadata.generation = Some(2);
        assert_ne!(trigger_hash(&spec_edit), base);

        let mut finalized = reg.clone();
        finalized.metadata.finalizers = Some(vec![FINALIZER.into()]);
        assert_ne!(trigger_hash(&finalized), base);

        let mut deleting = finalized.clone();
        deleting.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::now(),
        ));
        assert_ne!(trigger_hash(&deleting), trigger_hash(&finalized));
    }
}
