//! Reconcile against a mocked API server (kube-rs `tower-test` pattern): a
//! scenario task receives every request in order, asserts its method, path,
//! query and body, and answers. When the reconciler is done the scenario
//! asserts that no further request was sent.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use banter_api::{BanterRegistry, BanterRegistrySpec, BanterRegistryStatus};
use banter_operator::Settings;
use banter_operator::children::{self, BuildInput, Child, ChildKind};
use banter_operator::events::{EventSink, RecordedEvent};
use banter_operator::metrics::Metrics;
use banter_operator::reconcile::{self, Context, RESYNC};
use banter_operator::settings::FINALIZER;
use banter_operator::status::{self, Observed};
use http::{Method, Request, Response};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Client;
use kube::client::Body;
use kube::runtime::controller::Action;
use serde_json::{Value, json};

const NS: &str = "banter";
const NAME: &str = "packs";
const UID: &str = "6f1c1c8e-0000-4000-8000-000000000001";
const TOKEN: &str = "test-token";

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// What the body of a request must be.
#[derive(Debug)]
enum BodyCheck {
    Any,
    Json(Value),
    /// A status apply: compared with every `lastTransitionTime` blanked
    /// unless the expectation pins it.
    Status(Value),
}

#[derive(Debug)]
struct Exp {
    method: Method,
    path: String,
    query: Vec<String>,
    body: BodyCheck,
    code: u16,
    response: Value,
}

fn exp(method: Method, path: String) -> Exp {
    Exp {
        method,
        path,
        query: vec![],
        body: BodyCheck::Any,
        code: 200,
        response: json!({}),
    }
}

fn collection(kind: ChildKind) -> String {
    let ar = kind.api_resource();
    if ar.group.is_empty() {
        format!("/api/{}/namespaces/{NS}/{}", ar.version, ar.plural)
    } else {
        format!("/apis/{}/{}/namespaces/{NS}/{}", ar.group, ar.version, ar.plural)
    }
}

fn registry_path() -> String {
    format!("/apis/banterpacks.io/v1alpha1/namespaces/{NS}/banterregistries/{NAME}")
}

fn discovery(served: bool) -> Exp {
    let mut e = exp(Method::GET, "/apis/monitoring.coreos.com/v1".into());
    if served {
        e.response = json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "monitoring.coreos.com/v1",
            "resources": [{"name": "servicemonitors", "singularName": "servicemonitor", "namespaced": true, "kind": "ServiceMonitor", "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]}]});
    } else {
        e.code = 404;
        e.response = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "the server could not find the requested resource"});
    }
    e
}

fn list(kind: ChildKind, items: &[Value]) -> Exp {
    let mut e = exp(Method::GET, collection(kind));
    e.query = vec![format!(
        "labelSelector={}",
        "app.kubernetes.io%2Fname%3Dbanter-registry%2Capp.kubernetes.io%2Finstance%3Dpacks%2Capp.kubernetes.io%2Fmanaged-by%3Dbanter-operator"
    )];
    e.response = json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "100"}, "items": items});
    e
}

/// The LISTs of one reconcile, `observed` served per kind.
fn lists(observed: &[Value], served: bool) -> Vec<Exp> {
    ChildKind::ALL
        .into_iter()
        .filter(|k| served || *k != ChildKind::ServiceMonitor)
        .map(|k| {
            let ar = k.api_resource();
            let items: Vec<Value> = observed
                .iter()
                .filter(|o| o["kind"] == ar.kind.as_str())
                .map(|o| {
                    // Like a real API server: items of a LIST of built-in
                    // kinds carry no apiVersion/kind (custom resources do).
                    let mut item = o.clone();
                    if !ar.group.contains('.')
                        && let Some(m) = item.as_object_mut()
                    {
                        m.remove("apiVersion");
                        m.remove("kind");
                    }
                    item
                })
                .collect();
            list(k, &items)
        })
        .collect()
}

fn apply(child: &Child) -> Exp {
    let mut e = exp(Method::PATCH, format!("{}/{}", collection(child.kind), child.name));
    e.query = vec!["fieldManager=banter-operator".into(), "force=true".into()];
    e.body = BodyCheck::Json(child.object.clone());
    e.response = server_side(&child.object);
    e
}

fn create(child: &Child) -> Exp {
    let mut e = exp(Method::POST, collection(child.kind));
    e.body = BodyCheck::Json(child.object.clone());
    e.code = 201;
    e.response = server_side(&child.object);
    e
}

fn delete(kind: ChildKind, name: &str) -> Exp {
    let mut e = exp(Method::DELETE, format!("{}/{name}", collection(kind)));
    e.response = json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 200});
    e
}

fn status_apply(expected: &BanterRegistryStatus) -> Exp {
    let mut e = exp(Method::PATCH, format!("{}/status", registry_path()));
    e.query = vec!["fieldManager=banter-operator".into(), "force=true".into()];
    e.body = BodyCheck::Status(status::status_patch(expected));
    e.response = json!({"apiVersion": "banterpacks.io/v1alpha1", "kind": "BanterRegistry",
        "metadata": {"name": NAME, "namespace": NS, "uid": UID}, "spec": {}, "status": expected});
    e
}

fn failure(mut e: Exp, code: u16, reason: &str) -> Exp {
    e.code = code;
    e.response = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "code": code, "message": format!("injected {code}")});
    e
}

/// What the API server would return for an applied object.
fn server_side(obj: &Value) -> Value {
    let mut o = obj.clone();
    o["metadata"]["resourceVersion"] = json!("101");
    o["metadata"]["uid"] = json!(format!("uid-{}", obj["metadata"]["name"].as_str().unwrap_or("x")));
    o
}

/// An observed object: applied by us earlier, with fields the server adds.
fn observed_from(child: &Child) -> Value {
    let mut o = server_side(&child.object);
    match child.kind {
        ChildKind::Service if o["spec"]["clusterIP"].is_null() => o["spec"]["clusterIP"] = json!("10.96.0.10"),
        ChildKind::Deployment => o["status"] = json!({"replicas": 1, "readyReplicas": 1}),
        ChildKind::PersistentVolumeClaim => o["status"] = json!({"phase": "Bound"}),
        ChildKind::StatefulSet => o["status"] = json!({"replicas": 1, "readyReplicas": 1}),
        ChildKind::Secret => {
            if let Some(m) = o.as_object_mut() {
                m.remove("stringData");
            }
            o["data"] = json!({"tokens": "c2VjcmV0"});
        }
        _ => {}
    }
    o
}

fn observed_map(objs: &[Value]) -> Observed {
    let mut m = Observed::new();
    for o in objs {
        let kind = ChildKind::ALL
            .into_iter()
            .find(|k| k.api_resource().kind == o["kind"].as_str().unwrap_or_default())
            .expect("known kind");
        m.insert(
            (kind, o["metadata"]["name"].as_str().unwrap_or_default().to_string()),
            o.clone(),
        );
    }
    m
}

fn blank_times(mut v: Value) -> Value {
    if let Some(conds) = v.pointer_mut("/status/conditions").and_then(Value::as_array_mut) {
        for c in conds {
            c["lastTransitionTime"] = json!("<t>");
        }
    }
    v
}

async fn scenario(mut handle: Handle, exps: Vec<Exp>) {
    for (i, e) in exps.into_iter().enumerate() {
        let Some((req, send)) = handle.next_request().await else {
            panic!("request #{i} never came: expected {} {}", e.method, e.path);
        };
        let (parts, body) = req.into_parts();
        let bytes = body.collect_bytes().await.expect("request body");
        let uri = parts.uri.clone();
        assert_eq!(
            (&parts.method, uri.path()),
            (&e.method, e.path.as_str()),
            "request #{i}: got {} {uri}, expected {} {}",
            parts.method,
            e.method,
            e.path
        );
        let query = uri.query().unwrap_or_default();
        for q in &e.query {
            assert!(query.contains(q.as_str()), "request #{i} {uri}: query lacks {q}");
        }
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("JSON body")
        };
        match &e.body {
            BodyCheck::Any => {}
            BodyCheck::Json(want) => {
                assert_eq!(&body, want, "request #{i} {} {uri}: body", parts.method)
            }
            BodyCheck::Status(want) => assert_eq!(
                blank_times(body.clone()),
                blank_times(want.clone()),
                "request #{i} {uri}: status body"
            ),
        }
        let resp = Response::builder()
            .status(e.code)
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(&e.response).expect("response JSON")))
            .expect("response");
        send.send_response(resp);
    }
    if let Some((req, _)) = handle.next_request().await {
        panic!("unexpected extra request: {} {}", req.method(), req.uri());
    }
}

struct Harness {
    ctx: Option<Arc<Context>>,
    events: Arc<Mutex<Vec<RecordedEvent>>>,
    metrics: Arc<Metrics>,
    task: tokio::task::JoinHandle<()>,
}

impl Harness {
    fn new(exps: Vec<Exp>) -> Self {
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, NS);
        let (sink, events) = EventSink::memory();
        let metrics = Arc::new(Metrics::default());
        let ctx = Arc::new(Context::new(client, Settings::default(), metrics.clone(), sink, || {
            TOKEN.to_string()
        }));
        let task = tokio::spawn(scenario(handle, exps));
        Self {
            ctx: Some(ctx),
            events,
            metrics,
            task,
        }
    }

    fn ctx(&self) -> Arc<Context> {
        self.ctx.clone().expect("context alive")
    }

    async fn reconcile(&self, reg: &BanterRegistry) -> Result<Action, banter_operator::Error> {
        tokio::time::timeout(
            Duration::from_secs(10),
            reconcile::reconcile(Arc::new(reg.clone()), self.ctx()),
        )
        .await
        .expect("reconcile finished (a scenario assertion may have failed: see the panic)")
    }

    /// Drops the client and checks the scenario saw exactly its requests.
    async fn finish(mut self) -> Vec<RecordedEvent> {
        self.ctx = None;
        match tokio::time::timeout(Duration::from_secs(10), self.task).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Ok(Err(e)) => panic!("scenario task failed: {e}"),
            Err(_) => panic!("scenario did not finish"),
        }
        self.events.lock().expect("events").clone()
    }
}

fn registry(spec: Value) -> BanterRegistry {
    let spec: BanterRegistrySpec = serde_json::from_value(spec).expect("spec");
    let mut r = BanterRegistry::new(NAME, spec);
    r.metadata.namespace = Some(NS.into());
    r.metadata.uid = Some(UID.into());
    r.metadata.generation = Some(2);
    r.metadata.finalizers = Some(vec![FINALIZER.into()]);
    r
}

fn desired(reg: &BanterRegistry, served: bool) -> Vec<Child> {
    let settings = Settings::default();
    children::desired(&BuildInput {
        registry: reg,
        settings: &settings,
        service_monitor_served: served,
        generated_token: TOKEN,
    })
    .expect("desired")
}

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

fn old_time() -> Time {
    Time("2026-01-01T00:00:00Z".parse().expect("timestamp"))
}

fn endpoint(reg: &BanterRegistry) -> String {
    let settings = Settings::default();
    children::endpoint(&BuildInput {
        registry: reg,
        settings: &settings,
        service_monitor_served: false,
        generated_token: TOKEN,
    })
    .expect("endpoint")
}

fn expected_status(reg: &BanterRegistry, observed: &[Value], served: bool) -> BanterRegistryStatus {
    let findings = status::Findings {
        service_monitor_served: served,
        missing_auth_secret: None,
    };
    status::compute(reg, &observed_map(observed), &findings, endpoint(reg), &now())
}

fn auth_secret(found: bool) -> Exp {
    let mut e = exp(Method::GET, format!("{}/mine", collection(ChildKind::Secret)));
    if found {
        e.response = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "mine", "namespace": NS}, "data": {"tokens": "dA=="}});
    } else {
        e = failure(e, 404, "NotFound");
    }
    e
}

fn condition<'a>(
    st: &'a BanterRegistryStatus,
    t: &str,
) -> &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    st.conditions.iter().find(|c| c.type_ == t).expect("condition")
}

#[tokio::test]
async fn first_creation_adds_finalizer_then_creates_every_child() {
    let mut reg = registry(json!({}));
    reg.metadata.finalizers = None;

    // 1st reconcile: only the finalizer is added (the watch event of that
    // change triggers the next reconcile).
    let mut add = exp(Method::PATCH, registry_path());
    add.body = BodyCheck::Json(json!([
        {"op": "test", "path": "/metadata/finalizers", "value": null},
        {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]}
    ]));
    add.response = serde_json::to_value(&reg).expect("reg");
    let h = Harness::new(vec![add]);
    assert_eq!(h.reconcile(&reg).await.expect("ok"), Action::await_change());
    h.finish().await;

    // 2nd reconcile: discovery, lists (all empty), every child, status.
    reg.metadata.finalizers = Some(vec![FINALIZER.into()]);
    let children = desired(&reg, false);
    let mut exps = vec![discovery(false)];
    exps.extend(lists(&[], false));
    for c in &children {
        exps.push(if c.create_only { create(c) } else { apply(c) });
    }
    let st = expected_status(&reg, &[], false);
    assert_eq!(condition(&st, "Ready").status, "False");
    assert_eq!(condition(&st, "StorageReady").reason, "PersistentVolumeClaimPending");
    assert_eq!(st.endpoint.as_deref(), Some("http://packs.banter.svc"));
    exps.push(status_apply(&st));
    let h = Harness::new(exps);
    assert_eq!(h.reconcile(&reg).await.expect("ok"), Action::requeue(RESYNC));
    let events = h.finish().await;
    let created: Vec<_> = events
        .iter()
        .filter(|e| e.reason == "Created")
        .map(|e| e.note.clone())
        .collect();
    assert_eq!(created.len(), 5, "{events:?}");
    assert!(created.iter().any(|n| n.contains("Deployment packs")));
}

/// Observed objects of a fully applied registry.
fn steady(reg: &BanterRegistry, served: bool) -> Vec<Value> {
    desired(reg, served).iter().map(observed_from).collect()
}

fn with_status(reg: BanterRegistry, observed: &[Value], served: bool) -> BanterRegistry {
    let old = reg.clone();
    with_status_of(reg, &old, observed, served)
}

/// `reg` carrying the status the operator wrote for `old` (the spec before an edit).
fn with_status_of(mut reg: BanterRegistry, old: &BanterRegistry, observed: &[Value], served: bool) -> BanterRegistry {
    let mut st = expected_status(old, observed, served);
    for c in &mut st.conditions {
        c.last_transition_time = old_time();
    }
    reg.status = Some(st);
    reg
}

#[tokio::test]
async fn steady_state_sends_zero_writes() {
    for spec in [
        json!({}),
        json!({"replicas": 3, "auth": {"secretName": "mine"}, "storage": {"backend": "redis"}, "monitoring": {"serviceMonitor": {"enabled": true}, "grafanaDashboard": {"enabled": true}}}),
    ] {
        let reg = registry(spec);
        let observed = steady(&reg, true);
        let reg = with_status(reg, &observed, true);
        let mut exps = vec![discovery(true)];
        exps.extend(lists(&observed, true));
        if reg.spec.auth.is_some() {
            exps.push(auth_secret(true));
        }
        // Nothing else: no PATCH, no POST, no DELETE, no status write.
        let h = Harness::new(exps);
        assert_eq!(h.reconcile(&reg).await.expect("ok"), Action::requeue(RESYNC));
        let events = h.finish().await;
        assert!(events.is_empty(), "{events:?}");
    }
}

#[tokio::test]
async fn drift_of_a_child_is_repaired_with_one_apply() {
    let reg = registry(json!({}));
    let mut observed = steady(&reg, false);
    let reg = with_status(reg, &observed, false);
    // Someone scaled the Deployment by hand.
    for o in &mut observed {
        if o["kind"] == "Deployment" {
            o["spec"]["replicas"] = json!(5);
        }
    }
    let children = desired(&reg, false);
    let deployment = children
        .iter()
        .find(|c| c.kind == ChildKind::Deployment)
        .expect("deployment");
    let mut exps = vec![discovery(false)];
    exps.extend(lists(&observed, false));
    exps.push(apply(deployment));
    let h = Harness::new(exps);
    h.reconcile(&reg).await.expect("ok");
    let events = h.finish().await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].reason, "Updated");
    assert_eq!(events[0].note, "updated Deployment packs");
}

#[tokio::test]
async fn removed_field_is_noticed_through_the_applied_hash() {
    // The observed Deployment still carries resources the spec no longer has.
    let with_resources = registry(json!({"resources": {"limits": {"memory": "128Mi"}}}));
    let observed = steady(&with_resources, false);
    let reg = with_status(registry(json!({})), &observed, false);
    let children = desired(&reg, false);
    let deployment = children
        .iter()
        .find(|c| c.kind == ChildKind::Deployment)
        .expect("deployment");
    let mut exps = vec![discovery(false)];
    exps.extend(lists(&observed, false));
    exps.push(apply(deployment));
    let h = Harness::new(exps);
    h.reconcile(&reg).await.expect("ok");
    h.finish().await;
}

#[tokio::test]
async fn switching_sqlite_to_redis_prunes_but_keeps_the_retained_volume() {
    let old = registry(json!({}));
    let observed = steady(&old, false);
    let reg = with_status_of(
        registry(json!({"storage": {"backend": "redis"}})),
        &old,
        &observed,
        false,
    );
    let children = desired(&reg, false);
    let by = |k: ChildKind, n: &str| children.iter().find(|c| c.kind == k && c.name == n).expect("child");
    let mut exps = vec![discovery(false)];
    exps.extend(lists(&observed, false));
    exps.push(apply(by(ChildKind::ConfigMap, "packs-config")));
    // Secret exists: untouched. Registry Service unchanged: untouched.
    exps.push(apply(by(ChildKind::Service, "packs-redis")));
    exps.push(apply(by(ChildKind::StatefulSet, "packs-redis")));
    exps.push(apply(by(ChildKind::Deployment, "packs")));
    // Prune: the sqlite PVC is data and retainOnDelete is true: kept.
    let st = expected_status(&reg, &observed, false);
    assert_eq!(st.backend, Some(banter_api::Backend::Redis));
    assert_eq!(condition(&st, "StorageReady").reason, "RedisNotReady");
    exps.push(status_apply(&st));
    let h = Harness::new(exps);
    h.reconcile(&reg).await.expect("ok");
    let events = h.finish().await;
    assert!(events.iter().all(|e| e.reason != "Pruned"), "{events:?}");
}

#[tokio::test]
async fn switching_redis_to_sqlite_prunes_redis_children_and_unretained_data() {
    let old = registry(json!({"replicas": 3, "storage": {"backend": "redis", "retainOnDelete": false}}));
    let mut observed = steady(&old, false);
    observed.push(redis_claim_pvc());
    let reg = with_status_of(
        registry(json!({"storage": {"backend": "sqlite", "retainOnDelete": false}})),
        &old,
        &observed,
        false,
    );
    let children = desired(&reg, false);
    let by = |k: ChildKind, n: &str| children.iter().find(|c| c.kind == k && c.name == n).expect("child");
    let mut exps = vec![discovery(false)];
    exps.extend(lists(&observed, false));
    exps.push(apply(by(ChildKind::ConfigMap, "packs-config")));
    exps.push(apply(by(ChildKind::PersistentVolumeClaim, "packs-data")));
    exps.push(apply(by(ChildKind::Deployment, "packs")));
    // Prune in kind order, then name order.
    exps.push(delete(ChildKind::PersistentVolumeClaim, "data-packs-redis-0"));
    exps.push(delete(ChildKind::Service, "packs-redis"));
    exps.push(delete(ChildKind::StatefulSet, "packs-redis"));
    exps.push(delete(ChildKind::PodDisruptionBudget, "packs"));
    exps.push(status_apply(&expected_status(&reg, &observed, false)));
    let h = Harness::new(exps);
    h.reconcile(&reg).await.expect("ok");
    let events = h.finish().await;
    assert_eq!(events.iter().filter(|e| e.reason == "Pruned").count(), 4, "{events:?}");
}

#[tokio::test]
async fn service_monitor_crd_missing_is_a_condition_not_an_error() {
    let reg = registry(json!({"monitoring": {"serviceMonitor": {"enabled": true}}}));
    let children = desired(&reg, false);
    assert!(children.iter().all(|c| c.kind != ChildKind::ServiceMonitor));
    let mut exps = vec![discovery(false)];
    exps.extend(lists(&[], false));
    for c in &children {
        exps.push(if c.create_only { create(c) } else { apply(c) });
    }
    let st = expected_status(&reg, &[], false);
    let mon = condition(&st, "MonitoringReady");
    assert_eq!(
        (mon.status.as_str(), mon.reason.as_str()),
        ("False", "ServiceMonitorCRDMissing")
    );
    exps.push(status_apply(&st));
    let h = Harness::new(exps);
    // Success with the normal resync: no error, so no backoff loop.
    assert_eq!(h.reconcile(&reg).await.expect("not an error"), Action::requeue(RESYNC));
    h.finish().await;
}

#[tokio::test]
async fn service_monitor_is_applied_when_the_crd_is_served() {
    let reg = registry(json!({"monitoring": {"serviceMonitor": {"enabled": true}}}));
    let observed: Vec<Value> = desired(&reg, false).iter().map(observed_from).collect();
    let reg = with_status(reg, &observed, false);
    let children = desired(&reg, true);
    let sm = children
        .iter()
        .find(|c| c.kind == ChildKind::ServiceMonitor)
        .expect("service monitor");
    let mut exps = vec![discovery(true)];
    exps.extend(lists(&observed, true));
    exps.push(apply(sm));
    let st = expected_status(&reg, &observed, true);
    assert_eq!(condition(&st, "MonitoringReady").reason, "Applied");
    // Only MonitoringReady flips: its time changes, the others keep theirs.
    let mut pinned = st.clone();
    for c in &mut pinned.conditions {
        if c.type_ != "MonitoringReady" {
            c.last_transition_time = old_time();
        }
    }
    exps.push(status_apply(&pinned));
    let h = Harness::new(exps);
    h.reconcile(&reg).await.expect("ok");
    h.finish().await;
}

fn deleting(spec: Value) -> BanterRegistry {
    let mut reg = registry(spec);
    reg.metadata.deletion_timestamp = Some(now());
    reg
}

fn finalizer_removal() -> Exp {
    let mut e = exp(Method::PATCH, registry_path());
    e.body = BodyCheck::Json(json!([
        {"op": "test", "path": "/metadata/finalizers/0", "value": FINALIZER},
        {"op": "remove", "path": "/metadata/finalizers/0"}
    ]));
    e.response = json!({"apiVersion": "banterpacks.io/v1alpha1", "kind": "BanterRegistry",
        "metadata": {"name": NAME, "namespace": NS, "uid": UID}, "spec": {}});
    e
}

#[tokio::test]
async fn deletion_with_retain_detaches_the_volumes() {
    let reg = deleting(json!({}));
    let pvc = observed_from(
        desired(&reg, false)
            .iter()
            .find(|c| c.kind == ChildKind::PersistentVolumeClaim)
            .expect("pvc"),
    );
    assert!(
        pvc.pointer("/metadata/ownerReferences").is_none(),
        "a kept volume is never owned"
    );
    // Nothing to detach: the finalizer only reports the volume kept.
    let h = Harness::new(vec![
        list(ChildKind::PersistentVolumeClaim, &[pvc]),
        finalizer_removal(),
    ]);
    assert_eq!(h.reconcile(&reg).await.expect("ok"), Action::await_change());
    let events = h.finish().await;
    assert_eq!(events[0].reason, "Retained");

    // A volume created while retainOnDelete was off still has its owner: detached.
    let owned = observed_from(
        desired(&deleting(json!({"storage": {"retainOnDelete": false}})), false)
            .iter()
            .find(|c| c.kind == ChildKind::PersistentVolumeClaim)
            .expect("pvc"),
    );
    assert!(owned.pointer("/metadata/ownerReferences/0").is_some());
    let mut detach = exp(
        Method::PATCH,
        format!("{}/packs-data", collection(ChildKind::PersistentVolumeClaim)),
    );
    detach.body = BodyCheck::Json(json!({"metadata": {"ownerReferences": null}}));
    detach.response = owned.clone();
    let h = Harness::new(vec![
        list(ChildKind::PersistentVolumeClaim, &[owned]),
        detach,
        finalizer_removal(),
    ]);
    assert_eq!(h.reconcile(&reg).await.expect("ok"), Action::await_change());
    let events = h.finish().await;
    assert_eq!(events[0].reason, "Retained");
}

#[tokio::test]
async fn deletion_without_retain_deletes_the_volumes() {
    let reg = deleting(json!({"storage": {"retainOnDelete": false}}));
    let pvc = observed_from(
        desired(&reg, false)
            .iter()
            .find(|c| c.kind == ChildKind::PersistentVolumeClaim)
            .expect("pvc"),
    );
    let h = Harness::new(vec![
        list(ChildKind::PersistentVolumeClaim, &[pvc]),
        delete(ChildKind::PersistentVolumeClaim, "packs-data"),
        finalizer_removal(),
    ]);
    assert_eq!(h.reconcile(&reg).await.expect("ok"), Action::await_change());
    let events = h.finish().await;
    assert_eq!(events[0].reason, "Deleted");
}

#[tokio::test]
async fn conflict_and_server_error_requeue_with_growing_backoff() {
    let reg = registry(json!({}));
    let children = desired(&reg, false);
    let mut exps = vec![discovery(false)];
    exps.extend(lists(&[], false));
    exps.push(failure(apply(&children[0]), 409, "Conflict"));
    exps.push(discovery(false));
    exps.extend(lists(&[], false));
    exps.push(failure(apply(&children[0]), 500, "InternalError"));
    let h = Harness::new(exps);

    let err = h.reconcile(&reg).await.expect_err("409 fails the reconcile");
    assert_eq!(err.reason(), "Conflict");
    let first = reconcile::error_policy(Arc::new(reg.clone()), &err, h.ctx());
    assert_eq!(first, Action::requeue(Duration::from_secs(5)));

    let err = h.reconcile(&reg).await.expect_err("500 fails the reconcile");
    assert_eq!(err.reason(), "ServerError");
    let second = reconcile::error_policy(Arc::new(reg.clone()), &err, h.ctx());
    assert_eq!(second, Action::requeue(Duration::from_secs(10)), "backoff doubles");

    assert_eq!(h.metrics.failures("Conflict"), 1);
    assert_eq!(h.metrics.failures("ServerError"), 1);
    let text = h.metrics.encode().expect("metrics");
    assert!(
        text.contains("banter_operator_reconcile_errors_total{reason=\"Conflict\"} 1"),
        "{text}"
    );
    assert!(text.contains("banter_operator_reconciliations_total 2"), "{text}");
    let events = h.finish().await;
    let failed: Vec<_> = events
        .iter()
        .filter(|e| e.reason == "ReconcileFailed" && e.warning)
        .collect();
    assert_eq!(failed.len(), 2, "{events:?}");
}

#[tokio::test]
async fn invalid_spec_reports_condition_and_waits_for_a_change() {
    let reg = registry(json!({"replicas": 3}));
    let mut st = BanterRegistryStatus {
        observed_generation: Some(2),
        ..Default::default()
    };
    st.conditions
        .push(k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
            type_: "Ready".into(),
            status: "False".into(),
            reason: "InvalidSpec".into(),
            message: banter_api::SQLITE_REPLICAS_MESSAGE.into(),
            observed_generation: Some(2),
            last_transition_time: now(),
        });
    let h = Harness::new(vec![status_apply(&st)]);
    assert_eq!(h.reconcile(&reg).await.expect("not an error"), Action::await_change());
    let events = h.finish().await;
    assert_eq!(events.len(), 1);
    assert!(events[0].warning && events[0].reason == "InvalidSpec");

    // Reconciled again (e.g. resync) with that status: no request at all.
    let mut reg = reg;
    reg.status = Some(st);
    let h = Harness::new(vec![]);
    assert_eq!(h.reconcile(&reg).await.expect("ok"), Action::await_change());
    assert!(h.finish().await.is_empty());
}

#[tokio::test]
async fn missing_auth_secret_is_reported() {
    let reg = registry(json!({"auth": {"secretName": "mine"}}));
    let observed = steady(&reg, false);
    let reg = with_status(reg, &observed, false);
    let mut exps = vec![discovery(false)];
    exps.extend(lists(&observed, false));
    exps.push(auth_secret(false));
    let findings = status::Findings {
        service_monitor_served: false,
        missing_auth_secret: Some("mine".into()),
    };
    let st = status::compute(&reg, &observed_map(&observed), &findings, endpoint(&reg), &now());
    let cond = condition(&st, "RegistryReady");
    assert_eq!(
        (cond.status.as_str(), cond.reason.as_str()),
        ("False", "AuthSecretMissing")
    );
    assert!(cond.message.contains("Secret mine"));
    assert_eq!(condition(&st, "Ready").status, "False");
    exps.push(status_apply(&st));
    let h = Harness::new(exps);
    assert_eq!(h.reconcile(&reg).await.expect("ok"), Action::requeue(RESYNC));
    h.finish().await;
}

/// The PVC the StatefulSet creates from its claim template: template labels,
/// overwritten by the StatefulSet selector's (component becomes `redis`).
fn redis_claim_pvc() -> Value {
    json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {
        "name": "data-packs-redis-0", "namespace": NS, "labels": {
            "app.kubernetes.io/name": "banter-registry", "app.kubernetes.io/instance": NAME,
            "app.kubernetes.io/component": "redis", "banterpacks.io/data": "redis",
            "app.kubernetes.io/managed-by": "banter-operator", "app.kubernetes.io/part-of": "banterpacks"}},
        "status": {"phase": "Bound"}})
}

#[tokio::test]
async fn redis_volume_of_the_current_backend_is_never_pruned() {
    let reg = registry(json!({"storage": {"backend": "redis", "retainOnDelete": false}}));
    let mut observed = steady(&reg, false);
    observed.push(redis_claim_pvc());
    let reg = with_status(reg, &observed, false);
    let mut exps = vec![discovery(false)];
    exps.extend(lists(&observed, false));
    let h = Harness::new(exps);
    h.reconcile(&reg).await.expect("ok");
    assert!(h.finish().await.is_empty(), "no delete, no write");
}

#[tokio::test]
async fn scaling_down_and_disabling_the_dashboard_prune_pdb_and_configmap() {
    let old = registry(json!({"replicas": 3, "storage": {"backend": "redis"},
        "monitoring": {"grafanaDashboard": {"enabled": true}}}));
    let observed = steady(&old, false);
    let reg = with_status_of(
        registry(json!({"replicas": 1, "storage": {"backend": "redis"}})),
        &old,
        &observed,
        false,
    );
    let children = desired(&reg, false);
    let deployment = children
        .iter()
        .find(|c| c.kind == ChildKind::Deployment)
        .expect("deployment");
    let mut exps = vec![discovery(false)];
    exps.extend(lists(&observed, false));
    exps.push(apply(deployment));
    exps.push(delete(ChildKind::ConfigMap, "packs-dashboards"));
    exps.push(delete(ChildKind::PodDisruptionBudget, "packs"));
    exps.push(status_apply(&expected_status(&reg, &observed, false)));
    let h = Harness::new(exps);
    h.reconcile(&reg).await.expect("ok");
    let events = h.finish().await;
    let pruned: Vec<_> = events
        .iter()
        .filter(|e| e.reason == "Pruned")
        .map(|e| e.note.as_str())
        .collect();
    assert_eq!(
        pruned,
        [
            "deleted ConfigMap packs-dashboards, no longer needed",
            "deleted PodDisruptionBudget packs, no longer needed"
        ]
    );
}

#[tokio::test]
async fn a_child_the_api_server_rejects_is_reported_and_not_retried() {
    let reg = registry(json!({}));
    let children = desired(&reg, false);
    let mut exps = vec![discovery(false)];
    exps.extend(lists(&[], false));
    exps.push(failure(apply(&children[0]), 422, "Invalid"));
    let message = format!(
        "the API server rejected {:?} {}: injected 422",
        children[0].kind, children[0].name
    );
    let st = banter_operator::status::invalid(&reg, &message, &now());
    assert_eq!(condition(&st, "Ready").reason, "InvalidSpec");
    exps.push(status_apply(&st));
    let h = Harness::new(exps);
    assert_eq!(
        h.reconcile(&reg).await.expect("a 422 is reported, not an error"),
        Action::await_change(),
        "no retry storm: waits for a spec change"
    );
    let events = h.finish().await;
    assert!(
        events
            .iter()
            .any(|e| e.warning && e.reason == "InvalidSpec" && e.note.contains("injected 422")),
        "{events:?}"
    );
}
