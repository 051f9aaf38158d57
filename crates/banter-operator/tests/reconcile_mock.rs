//! Reconcile against a mocked API server (kube-rs `tower-test` pattern).
//!
//! The children a reconcile observes come from the watch caches, seeded here
//! the way the controller's watches fill them. A scenario task receives every
//! request in order, asserts its method, path, query and body, and answers;
//! when the reconciler is done it asserts no further request was sent.
//!
//! Expectations are independent of the builders under test: request bodies
//! are compared with reviewed golden files (`tests/golden/requests/`,
//! rewritten by `make golden`) or with literal JSON, and status bodies are
//! spelled out condition by condition.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use banter_api::{BanterRegistry, BanterRegistrySpec, BanterRegistryStatus};
use banter_operator::Settings;
use banter_operator::children::{self, BuildInput, Child, ChildKind};
use banter_operator::decode;
use banter_operator::discovery::{Discovery, OptionalApis};
use banter_operator::events::{EventSink, RecordedEvent};
use banter_operator::metrics::Metrics;
use banter_operator::reconcile::{self, AUTH_RECHECK, Context, RESYNC};
use banter_operator::settings::FINALIZER;
use banter_operator::status::{self, Observed};
use http::{Method, Request, Response};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Client;
use kube::client::Body;
use kube::core::DynamicObject;
use kube::runtime::controller::Action;
use kube::runtime::watcher::Event;
use serde_json::{Value, json};

const NS: &str = "banter";
const NAME: &str = "packs";
const UID: &str = "6f1c1c8e-0000-4000-8000-000000000001";
const OTHER_UID: &str = "0b0e0000-0000-4000-8000-00000000dead";
const TOKEN: &str = "test-token";
const ENDPOINT: &str = "http://packs.banter.svc";

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// What the body of a request must be.
#[derive(Debug)]
enum BodyCheck {
    Any,
    Json(Value),
    /// Equal to a reviewed file under `tests/golden/requests/`.
    Golden(String),
    /// These JSON pointers hold these values (`null`: the pointer is absent).
    Fields(Vec<(&'static str, Value)>),
    /// A status apply: compared with every `lastTransitionTime` blanked.
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

/// A server-side apply of `child`; answered with the object as stored.
fn apply(child: &Child, body: BodyCheck) -> Exp {
    let mut e = exp(Method::PATCH, format!("{}/{}", collection(child.kind), child.name));
    e.query = vec!["fieldManager=banter-operator".into(), "force=true".into()];
    e.body = body;
    e.response = server_side(&child.object);
    e
}

fn create(child: &Child, body: BodyCheck) -> Exp {
    let mut e = exp(Method::POST, collection(child.kind));
    e.body = body;
    e.code = 201;
    e.response = server_side(&child.object);
    e
}

/// The metadata GET of a Secret the operator reads by name (Secrets are not
/// watched); `found` or a 404.
fn secret_lookup(name: &str, found: bool) -> Exp {
    let mut e = exp(Method::GET, format!("{}/{name}", collection(ChildKind::Secret)));
    if found {
        e.response = json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": {"name": name, "namespace": NS}});
    } else {
        e = failure(e, 404, "NotFound", &format!("secrets \"{name}\" not found"));
    }
    e
}

/// The requests that write `c` when nothing of it is known: a create-only
/// child is looked up by name first, then created.
fn writes(c: &Child, body: BodyCheck) -> Vec<Exp> {
    if c.create_only {
        vec![secret_lookup(&c.name, false), create(c, body)]
    } else {
        vec![apply(c, body)]
    }
}

fn delete(kind: ChildKind, name: &str) -> Exp {
    let mut e = exp(Method::DELETE, format!("{}/{name}", collection(kind)));
    e.response = json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 200});
    e
}

/// The status in an expected status body as the API server stores it.
fn stored(body: &Value) -> Value {
    let mut stored = body["status"].clone();
    if let Some(conds) = stored.get_mut("conditions").and_then(Value::as_array_mut) {
        for c in conds {
            c["lastTransitionTime"] = json!("2026-01-01T00:00:00Z");
        }
    }
    stored
}

fn stored_status(body: &Value) -> BanterRegistryStatus {
    serde_json::from_value(stored(body)).expect("status")
}

fn status_apply(body: Value) -> Exp {
    let mut e = exp(Method::PATCH, format!("{}/status", registry_path()));
    e.query = vec!["fieldManager=banter-operator".into(), "force=true".into()];
    let stored = stored(&body);
    e.response = json!({"apiVersion": "banterpacks.io/v1alpha1", "kind": "BanterRegistry",
        "metadata": {"name": NAME, "namespace": NS, "uid": UID}, "spec": {}, "status": stored});
    e.body = BodyCheck::Status(body);
    e
}

fn failure(mut e: Exp, code: u16, reason: &str, message: &str) -> Exp {
    e.code = code;
    e.response = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "code": code, "message": message});
    e
}

/// One expected condition: type, status, reason, message.
type Cond<'a> = (&'a str, &'a str, &'a str, &'a str);

/// The literal body of a status apply.
fn status_body(generation: i64, ready: i32, desired: i32, backend: &str, conds: &[Cond<'_>]) -> Value {
    // Exposure is asked for by few tests: not requested unless they say.
    let mut conds = conds.to_vec();
    if !conds.iter().any(|c| c.0 == "ExposureReady") {
        conds.push((
            "ExposureReady",
            "True",
            "NotRequested",
            "no Ingress or HTTPRoute requested",
        ));
    }
    let conditions: Vec<Value> = conds
        .iter()
        .map(|(t, s, r, m)| {
            json!({"type": t, "status": s, "reason": r, "message": m,
                   "observedGeneration": generation, "lastTransitionTime": "<t>"})
        })
        .collect();
    json!({"apiVersion": "banterpacks.io/v1alpha1", "kind": "BanterRegistry", "status": {
        "observedGeneration": generation, "conditions": conditions, "readyReplicas": ready,
        "replicas": format!("{ready}/{desired}"), "endpoint": ENDPOINT, "backend": backend}})
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
        ChildKind::Deployment => {
            o["metadata"]["generation"] = json!(1);
            o["status"] = json!({"observedGeneration": 1, "replicas": o["spec"]["replicas"],
                "updatedReplicas": o["spec"]["replicas"], "readyReplicas": o["spec"]["replicas"]});
        }
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

fn kind_of(o: &Value) -> ChildKind {
    ChildKind::ALL
        .into_iter()
        .find(|k| k.api_resource().kind == o["kind"].as_str().unwrap_or_default())
        .expect("known kind")
}

fn observed_map(objs: &[Value]) -> Observed {
    objs.iter()
        .map(|o| {
            let mut v = o.clone();
            banter_operator::cache::trim(kind_of(o), &mut v);
            (
                (
                    kind_of(o),
                    o["metadata"]["name"].as_str().unwrap_or_default().to_string(),
                ),
                v,
            )
        })
        .collect()
}

fn blank_times(mut v: Value) -> Value {
    if let Some(conds) = v.pointer_mut("/status/conditions").and_then(Value::as_array_mut) {
        for c in conds {
            c["lastTransitionTime"] = json!("<t>");
        }
    }
    v
}

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/golden/requests/{name}.json"))
}

fn check_golden(name: &str, body: &Value, what: &str) {
    let path = golden_path(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("golden dir");
        let text = serde_json::to_string_pretty(body).expect("json") + "\n";
        std::fs::write(&path, text).expect("write golden");
        return;
    }
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; create it with `make golden`", path.display()));
    let want: Value = serde_json::from_str(&text).expect("golden JSON");
    assert_eq!(
        body,
        &want,
        "{what}: body differs from {}; review, then `make golden`",
        path.display()
    );
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
        let what = format!("request #{i} {} {uri}", parts.method);
        match &e.body {
            BodyCheck::Any => {}
            BodyCheck::Json(want) => assert_eq!(&body, want, "{what}: body"),
            BodyCheck::Golden(name) => check_golden(name, &body, &what),
            BodyCheck::Fields(fields) => {
                for (pointer, want) in fields {
                    let got = body.pointer(pointer);
                    if want.is_null() {
                        assert_eq!(got, None, "{what}: {pointer} must be absent in {body}");
                    } else {
                        assert_eq!(got, Some(want), "{what}: {pointer} in {body}");
                    }
                }
            }
            BodyCheck::Status(want) => assert_eq!(
                blank_times(body.clone()),
                blank_times(want.clone()),
                "{what}: status body"
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
    /// A context whose caches hold `observed` (every kind listed), on a
    /// cluster that does (not) serve ServiceMonitors.
    fn new(observed: &[Value], served: bool, exps: Vec<Exp>) -> Self {
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, NS);
        let (sink, events) = EventSink::memory();
        let metrics = Arc::new(Metrics::default());
        let ctx = Context::new(client, Settings::default(), metrics.clone(), sink, || TOKEN.to_string())
            .with_discovery(Arc::new(Discovery::fixed(served)));
        seed(&ctx, observed);
        let task = tokio::spawn(scenario(handle, exps));
        Self {
            ctx: Some(Arc::new(ctx)),
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

/// Feeds `observed` to the cache as the initial list of every watch; the
/// Secrets in it (never watched) as seen by name within the resync period.
fn seed(ctx: &Context, observed: &[Value]) {
    for o in observed.iter().filter(|o| kind_of(o) == ChildKind::Secret) {
        ctx.remember(
            ChildKind::Secret,
            NS,
            o["metadata"]["name"].as_str().unwrap_or_default(),
        );
    }
    for kind in ChildKind::ALL.into_iter().filter(|k| k.watched()) {
        ctx.cache.handle(None, kind, &Event::Init);
        for o in observed.iter().filter(|o| kind_of(o) == kind) {
            let obj: DynamicObject = serde_json::from_value(o.clone()).expect("object");
            ctx.cache.handle(None, kind, &Event::InitApply(obj));
        }
        ctx.cache.handle(None, kind, &Event::InitDone);
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
    children::desired(&BuildInput::new(reg, &settings, OptionalApis::all(served), TOKEN).expect("input"))
        .expect("desired")
}

fn child<'a>(children: &'a [Child], kind: ChildKind, name: &str) -> &'a Child {
    children
        .iter()
        .find(|c| c.kind == kind && c.name == name)
        .expect("child")
}

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

fn old_time() -> Time {
    Time("2026-01-01T00:00:00Z".parse().expect("timestamp"))
}

/// Observed objects of a fully applied, rolled-out registry.
fn steady(reg: &BanterRegistry, served: bool) -> Vec<Value> {
    desired(reg, served).iter().map(observed_from).collect()
}

/// `reg` carrying the status the operator wrote for `old` (the spec before
/// an edit) when the cluster held `observed`: the input, not an expectation.
fn with_status_of(mut reg: BanterRegistry, old: &BanterRegistry, observed: &[Value], served: bool) -> BanterRegistry {
    let settings = Settings::default();
    let input = BuildInput::new(old, &settings, OptionalApis::all(served), TOKEN).expect("input");
    let urls = status::Urls {
        endpoint: children::endpoint(&input),
        external: children::external_url(&input, served),
    };
    let findings = status::Findings {
        apis: OptionalApis::all(served),
        missing_auth_secret: None,
    };
    let mut st = status::compute(old, &observed_map(observed), &findings, urls, &now());
    for c in &mut st.conditions {
        c.last_transition_time = old_time();
    }
    reg.status = Some(st);
    reg
}

fn with_status(reg: BanterRegistry, observed: &[Value], served: bool) -> BanterRegistry {
    let old = reg.clone();
    with_status_of(reg, &old, observed, served)
}

fn auth_secret(found: bool) -> Exp {
    let mut e = exp(Method::GET, format!("{}/mine", collection(ChildKind::Secret)));
    if found {
        e.response = json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": {"name": "mine", "namespace": NS}});
    } else {
        e = failure(e, 404, "NotFound", "secrets \"mine\" not found");
    }
    e
}

const STORAGE_PENDING: &str = "waiting for PersistentVolumeClaim packs-data to be bound";

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
    let h = Harness::new(&[], false, vec![add]);
    assert_eq!(h.reconcile(&reg).await.expect("ok"), Action::await_change());
    h.finish().await;

    // 2nd reconcile: the caches hold nothing, so every child is written,
    // each body as reviewed in its golden file; then the status.
    reg.metadata.finalizers = Some(vec![FINALIZER.into()]);
    let children = desired(&reg, false);
    let mut exps = Vec::new();
    for c in &children {
        let golden = BodyCheck::Golden(format!("create-sqlite/{:?}-{}", c.kind, c.name));
        exps.extend(writes(c, golden));
    }
    let names: Vec<String> = exps.iter().map(|e| format!("{} {}", e.method, e.path)).collect();
    assert_eq!(
        names,
        [
            "PATCH /api/v1/namespaces/banter/configmaps/packs-config",
            "GET /api/v1/namespaces/banter/secrets/packs-tokens",
            "POST /api/v1/namespaces/banter/secrets",
            "PATCH /api/v1/namespaces/banter/persistentvolumeclaims/packs-data",
            "PATCH /api/v1/namespaces/banter/services/packs",
            "PATCH /apis/apps/v1/namespaces/banter/deployments/packs",
        ]
    );
    exps.push(status_apply(status_body(
        2,
        0,
        1,
        "sqlite",
        &[
            (
                "Ready",
                "False",
                "PersistentVolumeClaimPending",
                "StorageReady: waiting for PersistentVolumeClaim packs-data to be bound",
            ),
            ("StorageReady", "False", "PersistentVolumeClaimPending", STORAGE_PENDING),
            ("RegistryReady", "False", "ReplicasNotReady", "0/1 replicas ready"),
            ("MonitoringReady", "True", "NotRequested", "no monitoring requested"),
        ],
    )));
    let h = Harness::new(&[], false, exps);
    assert_eq!(h.reconcile(&reg).await.expect("ok"), Action::requeue(RESYNC));
    let events = h.finish().await;
    let created: Vec<_> = events
        .iter()
        .filter(|e| e.reason == "Created")
        .map(|e| e.note.clone())
        .collect();
    assert_eq!(created.len(), 5, "{events:?}");
    assert!(created.iter().any(|n| n == "created Deployment packs"));
}

#[tokio::test]
async fn steady_state_sends_no_request_at_all() {
    for spec in [
        json!({}),
        json!({"replicas": 3, "storage": {"backend": "redis"}, "monitoring": {"serviceMonitor": {"enabled": true}, "grafanaDashboard": {"enabled": true}}}),
    ] {
        let reg = registry(spec);
        let observed = steady(&reg, true);
        let reg = with_status(reg, &observed, true);
        // No LIST, no GET, no PATCH, POST, DELETE or status write.
        let h = Harness::new(&observed, true, vec![]);
        assert_eq!(h.reconcile(&reg).await.expect("ok"), Action::requeue(RESYNC));
        let events = h.finish().await;
        assert!(events.is_empty(), "{events:?}");
    }
}

#[tokio::test]
async fn a_token_secret_that_exists_is_found_by_name_and_never_recreated() {
    // After an operator restart: the children are in the caches, the token
    // Secret (not watched) is not known yet.
    let reg = registry(json!({}));
    let observed: Vec<Value> = steady(&reg, false)
        .into_iter()
        .filter(|o| o["kind"] != "Secret")
        .collect();
    let reg = with_status(reg, &steady(&registry(json!({})), false), false);
    let h = Harness::new(&observed, false, vec![secret_lookup("packs-tokens", true)]);
    h.reconcile(&reg).await.expect("ok");
    // Remembered: the next pass sends nothing.
    h.reconcile(&reg).await.expect("ok");
    assert!(
        h.finish().await.is_empty(),
        "no Created event: the Secret is never overwritten"
    );
}

#[tokio::test]
async fn a_named_auth_secret_is_checked_once_then_remembered() {
    let reg = registry(json!({"auth": {"secretName": "mine"}}));
    let observed = steady(&reg, false);
    let reg = with_status(reg, &observed, false);
    let h = Harness::new(&observed, false, vec![auth_secret(true)]);
    h.reconcile(&reg).await.expect("ok");
    // Same context, next resync: nothing is sent.
    assert_eq!(h.reconcile(&reg).await.expect("ok"), Action::requeue(RESYNC));
    h.finish().await;
}

#[tokio::test]
async fn missing_auth_secret_is_reported_and_rechecked_soon() {
    let reg = registry(json!({"auth": {"secretName": "mine"}}));
    let observed = steady(&reg, false);
    let reg = with_status(reg, &observed, false);
    let msg = "Secret mine named by spec.auth.secretName does not exist; create it with the publish tokens under key `tokens`";
    let exps = vec![
        auth_secret(false),
        status_apply(status_body(
            2,
            1,
            1,
            "sqlite",
            &[
                ("Ready", "False", "AuthSecretMissing", &format!("RegistryReady: {msg}")),
                (
                    "StorageReady",
                    "True",
                    "PersistentVolumeClaimBound",
                    "SQLite volume is bound",
                ),
                ("RegistryReady", "False", "AuthSecretMissing", msg),
                ("MonitoringReady", "True", "NotRequested", "no monitoring requested"),
            ],
        )),
    ];
    let h = Harness::new(&observed, false, exps);
    // The user's Secret is not watched: the operator looks again soon.
    assert_eq!(h.reconcile(&reg).await.expect("ok"), Action::requeue(AUTH_RECHECK));
    h.finish().await;
}

#[tokio::test]
async fn canonicalised_quantities_read_back_are_not_drift() {
    let reg = registry(json!({"resources": {"requests": {"cpu": "0.5", "memory": "1024Mi"}, "limits": {"cpu": 1}}}));
    let mut observed = steady(&reg, false);
    // What the API server stores and watches return: canonical quantities.
    for o in &mut observed {
        if o["kind"] == "Deployment" {
            let res = &mut o["spec"]["template"]["spec"]["containers"][0]["resources"];
            assert_eq!(res["requests"]["cpu"], json!("0.5"), "the spec as written");
            *res = json!({"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "1"}});
        }
    }
    let reg = with_status(reg, &observed, false);
    let h = Harness::new(&observed, false, vec![]);
    h.reconcile(&reg).await.expect("ok");
    assert!(h.finish().await.is_empty(), "no write, no event");
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
    let deployment = child(&children, ChildKind::Deployment, "packs");
    let mut patch = apply(deployment, BodyCheck::Fields(vec![("/spec/replicas", json!(1))]));
    // The server answers with the repaired object, already rolled out.
    patch.response = observed_from(deployment);
    let h = Harness::new(&observed, false, vec![patch]);
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
    let deployment = child(&children, ChildKind::Deployment, "packs");
    let mut patch = apply(
        deployment,
        BodyCheck::Fields(vec![("/spec/template/spec/containers/0/resources/limits", Value::Null)]),
    );
    patch.response = observed_from(deployment);
    let h = Harness::new(&observed, false, vec![patch]);
    h.reconcile(&reg).await.expect("ok");
    h.finish().await;
}

/// The Deployment the API server returns for a patch that changed its pod
/// template: new generation, status not caught up yet.
fn patched_deployment(child: &Child, generation: i64, observed_generation: i64, updated: i64) -> Value {
    let mut d = server_side(&child.object);
    d["metadata"]["generation"] = json!(generation);
    d["status"] = json!({"observedGeneration": observed_generation, "replicas": 1,
        "updatedReplicas": updated, "readyReplicas": 1, "availableReplicas": 1});
    d
}

#[tokio::test]
async fn an_image_edit_is_not_ready_until_the_deployment_rolled_out() {
    let old = registry(json!({}));
    let observed = steady(&old, false);
    let mut reg = with_status_of(registry(json!({"image": "banter-registry:2"})), &old, &observed, false);
    reg.metadata.generation = Some(3);
    let children = desired(&reg, false);
    let deployment = child(&children, ChildKind::Deployment, "packs");
    let mut patch = apply(
        deployment,
        BodyCheck::Fields(vec![(
            "/spec/template/spec/containers/0/image",
            json!("banter-registry:2"),
        )]),
    );
    patch.response = patched_deployment(deployment, 2, 1, 1);
    let rolling = |updated: i64| {
        let progress = format!("{updated}/1 replicas run the current configuration");
        status_body(
            3,
            1,
            1,
            "sqlite",
            &[
                (
                    "Ready",
                    "False",
                    "RolloutInProgress",
                    &format!("RegistryReady: {progress}"),
                ),
                (
                    "StorageReady",
                    "True",
                    "PersistentVolumeClaimBound",
                    "SQLite volume is bound",
                ),
                ("RegistryReady", "False", "RolloutInProgress", &progress),
                ("MonitoringReady", "True", "NotRequested", "no monitoring requested"),
            ],
        )
    };
    // Never `observedGeneration: 3, Ready=True` computed from the
    // Deployment as it was before the patch.
    let h = Harness::new(&observed, false, vec![patch, status_apply(rolling(1))]);
    h.reconcile(&reg).await.expect("ok");
    h.finish().await;

    // The watch brings the Deployment with its new generation observed, a
    // new pod coming up and the old one still serving: still in progress.
    reg.status = Some(stored_status(&rolling(1)));
    let mut now_observed = observed.clone();
    for o in &mut now_observed {
        if o["kind"] == "Deployment" {
            *o = patched_deployment(deployment, 2, 2, 0);
            o["status"]["replicas"] = json!(2);
        }
    }
    let h = Harness::new(&now_observed, false, vec![status_apply(rolling(0))]);
    h.reconcile(&reg).await.expect("ok");
    h.finish().await;
    reg.status = Some(stored_status(&rolling(0)));

    // Caught up: observed generation and updated replicas. Ready again.
    for o in &mut now_observed {
        if o["kind"] == "Deployment" {
            *o = patched_deployment(deployment, 2, 2, 1);
        }
    }
    let ready = status_body(
        3,
        1,
        1,
        "sqlite",
        &[
            ("Ready", "True", "Available", "registry is serving"),
            (
                "StorageReady",
                "True",
                "PersistentVolumeClaimBound",
                "SQLite volume is bound",
            ),
            ("RegistryReady", "True", "ReplicasReady", "1/1 replicas ready"),
            ("MonitoringReady", "True", "NotRequested", "no monitoring requested"),
        ],
    );
    let h = Harness::new(&now_observed, false, vec![status_apply(ready)]);
    h.reconcile(&reg).await.expect("ok");
    h.finish().await;
}

#[tokio::test]
async fn an_admission_refusal_of_one_child_still_applies_the_others() {
    // One edit: a bigger volume (the StorageClass cannot expand) and a new image.
    let old = registry(json!({}));
    let observed = steady(&old, false);
    let reg = with_status_of(
        registry(json!({"image": "banter-registry:2", "storage": {"sqlite": {"size": "5Gi"}}})),
        &old,
        &observed,
        false,
    );
    let children = desired(&reg, false);
    let refused = "persistentvolumeclaims \"packs-data\" is forbidden: only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize";
    let pvc = failure(
        apply(
            child(&children, ChildKind::PersistentVolumeClaim, "packs-data"),
            BodyCheck::Fields(vec![("/spec/resources/requests/storage", json!("5Gi"))]),
        ),
        403,
        "Forbidden",
        refused,
    );
    let deployment = child(&children, ChildKind::Deployment, "packs");
    let mut dep = apply(
        deployment,
        BodyCheck::Fields(vec![(
            "/spec/template/spec/containers/0/image",
            json!("banter-registry:2"),
        )]),
    );
    dep.response = patched_deployment(deployment, 2, 1, 1);
    let message = format!("admission refused PersistentVolumeClaim packs-data: {refused}");
    let st = status_body(
        2,
        1,
        1,
        "sqlite",
        &[
            ("Ready", "False", "AdmissionRefused", &message),
            (
                "StorageReady",
                "True",
                "PersistentVolumeClaimBound",
                "SQLite volume is bound",
            ),
            (
                "RegistryReady",
                "False",
                "RolloutInProgress",
                "1/1 replicas run the current configuration",
            ),
            ("MonitoringReady", "True", "NotRequested", "no monitoring requested"),
        ],
    );
    let h = Harness::new(&observed, false, vec![pvc, dep, status_apply(st)]);
    assert_eq!(
        h.reconcile(&reg).await.expect("refusals are reported, not errors"),
        Action::await_change(),
        "retrying cannot help: waits for a change"
    );
    let events = h.finish().await;
    assert!(
        events
            .iter()
            .any(|e| e.warning && e.reason == "AdmissionRefused" && e.note == message),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e.reason == "Updated" && e.note == "updated Deployment packs")
    );
}

#[tokio::test]
async fn a_child_the_api_server_rejects_is_reported_and_not_retried() {
    let reg = registry(json!({}));
    let children = desired(&reg, false);
    let mut exps = vec![failure(
        apply(&children[0], BodyCheck::Any),
        422,
        "Invalid",
        "ConfigMap \"packs-config\" is invalid: injected",
    )];
    for c in &children[1..] {
        exps.extend(writes(c, BodyCheck::Any));
    }
    let message = "the API server rejected ConfigMap packs-config: ConfigMap \"packs-config\" is invalid: injected";
    exps.push(status_apply(status_body(
        2,
        0,
        1,
        "sqlite",
        &[
            ("Ready", "False", "InvalidSpec", message),
            ("StorageReady", "False", "PersistentVolumeClaimPending", STORAGE_PENDING),
            ("RegistryReady", "False", "ReplicasNotReady", "0/1 replicas ready"),
            ("MonitoringReady", "True", "NotRequested", "no monitoring requested"),
        ],
    )));
    let h = Harness::new(&[], false, exps);
    assert_eq!(
        h.reconcile(&reg).await.expect("a 422 is reported, not an error"),
        Action::await_change(),
        "no retry storm: waits for a spec change"
    );
    let events = h.finish().await;
    assert!(
        events
            .iter()
            .any(|e| e.warning && e.reason == "InvalidSpec" && e.note == message),
        "{events:?}"
    );
}

#[tokio::test]
async fn a_failed_apply_surfaces_on_the_object_and_backs_off() {
    let reg = registry(json!({}));
    let children = desired(&reg, false);
    // `retry`: the children written by the first round are remembered from
    // the API server's answers, so only the failed one is applied again.
    let round = |code: u16, reason: &str, retry: bool| {
        let mut exps = vec![failure(
            apply(&children[0], BodyCheck::Any),
            code,
            reason,
            &format!("injected {code}"),
        )];
        if !retry {
            for c in &children[1..] {
                exps.extend(writes(c, BodyCheck::Any));
            }
        }
        exps.push(status_apply(status_body(
            2,
            0,
            1,
            "sqlite",
            &[
                (
                    "Ready",
                    "False",
                    "ApplyFailed",
                    &format!("could not apply ConfigMap packs-config: injected {code}"),
                ),
                ("StorageReady", "False", "PersistentVolumeClaimPending", STORAGE_PENDING),
                ("RegistryReady", "False", "ReplicasNotReady", "0/1 replicas ready"),
                ("MonitoringReady", "True", "NotRequested", "no monitoring requested"),
            ],
        )));
        exps
    };
    let mut exps = round(409, "Conflict", false);
    exps.extend(round(500, "InternalError", true));
    let h = Harness::new(&[], false, exps);

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
    let golden = |c: &Child| BodyCheck::Golden(format!("to-redis/{:?}-{}", c.kind, c.name));
    let by = |k, n| child(&children, k, n);
    let exps = vec![
        apply(
            by(ChildKind::ConfigMap, "packs-config"),
            golden(by(ChildKind::ConfigMap, "packs-config")),
        ),
        // Token Secret exists: untouched. Registry Service unchanged: untouched.
        // The Redis password Secret is new: looked up by name, then created.
        secret_lookup("packs-redis-auth", false),
        create(
            by(ChildKind::Secret, "packs-redis-auth"),
            golden(by(ChildKind::Secret, "packs-redis-auth")),
        ),
        apply(
            by(ChildKind::Service, "packs-redis"),
            golden(by(ChildKind::Service, "packs-redis")),
        ),
        apply(
            by(ChildKind::StatefulSet, "packs-redis"),
            golden(by(ChildKind::StatefulSet, "packs-redis")),
        ),
        apply(
            by(ChildKind::Deployment, "packs"),
            golden(by(ChildKind::Deployment, "packs")),
        ),
        apply(
            by(ChildKind::NetworkPolicy, "packs-redis"),
            golden(by(ChildKind::NetworkPolicy, "packs-redis")),
        ),
        // Prune: the sqlite PVC is data and retainOnDelete is true: kept.
        status_apply(status_body(
            2,
            0,
            1,
            "redis",
            &[
                (
                    "Ready",
                    "False",
                    "RedisNotReady",
                    "StorageReady: waiting for StatefulSet packs-redis to be ready",
                ),
                (
                    "StorageReady",
                    "False",
                    "RedisNotReady",
                    "waiting for StatefulSet packs-redis to be ready",
                ),
                ("RegistryReady", "False", "ReplicasNotReady", "0/1 replicas ready"),
                ("MonitoringReady", "True", "NotRequested", "no monitoring requested"),
            ],
        )),
    ];
    let h = Harness::new(&observed, false, exps);
    h.reconcile(&reg).await.expect("ok");
    let events = h.finish().await;
    assert!(events.iter().all(|e| e.reason != "Pruned"), "{events:?}");
}

/// The PVC the StatefulSet creates from its claim template: template labels,
/// overwritten by the StatefulSet selector's (component becomes `redis`).
fn redis_claim_pvc(stamp: Option<&str>) -> Value {
    let mut v = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {
        "name": "data-packs-redis-0", "namespace": NS, "labels": {
            "app.kubernetes.io/name": "banter-registry", "app.kubernetes.io/instance": NAME,
            "app.kubernetes.io/component": "redis", "banterpacks.io/data": "redis",
            "app.kubernetes.io/managed-by": "banter-operator", "app.kubernetes.io/part-of": "banterpacks"}},
        "status": {"phase": "Bound"}});
    if let Some(uid) = stamp {
        v["metadata"]["labels"]["banterpacks.io/owner-uid"] = json!(uid);
    }
    v
}

#[tokio::test]
async fn switching_redis_to_sqlite_prunes_redis_children_and_this_registrys_data() {
    let old = registry(json!({"replicas": 3, "storage": {"backend": "redis", "retainOnDelete": false}}));
    let mut observed = steady(&old, false);
    observed.push(redis_claim_pvc(Some(UID)));
    let reg = with_status_of(
        registry(json!({"storage": {"backend": "sqlite", "retainOnDelete": false}})),
        &old,
        &observed,
        false,
    );
    let children = desired(&reg, false);
    let by = |k, n| child(&children, k, n);
    let pvc = by(ChildKind::PersistentVolumeClaim, "packs-data");
    let mut exps = vec![
        apply(by(ChildKind::ConfigMap, "packs-config"), BodyCheck::Any),
        apply(
            pvc,
            BodyCheck::Fields(vec![
                ("/metadata/labels/banterpacks.io~1owner-uid", json!(UID)),
                ("/metadata/labels/banterpacks.io~1data", json!("sqlite")),
            ]),
        ),
        apply(by(ChildKind::Deployment, "packs"), BodyCheck::Any),
    ];
    // Prune in kind order, then name order.
    exps.push(delete(ChildKind::PersistentVolumeClaim, "data-packs-redis-0"));
    exps.push(delete(ChildKind::Service, "packs-redis"));
    exps.push(delete(ChildKind::StatefulSet, "packs-redis"));
    exps.push(delete(ChildKind::PodDisruptionBudget, "packs"));
    exps.push(delete(ChildKind::NetworkPolicy, "packs-redis"));
    exps.push(status_apply(status_body(
        2,
        0,
        1,
        "sqlite",
        &[
            (
                "Ready",
                "False",
                "PersistentVolumeClaimPending",
                "StorageReady: waiting for PersistentVolumeClaim packs-data to be bound",
            ),
            ("StorageReady", "False", "PersistentVolumeClaimPending", STORAGE_PENDING),
            ("RegistryReady", "False", "ReplicasNotReady", "0/1 replicas ready"),
            ("MonitoringReady", "True", "NotRequested", "no monitoring requested"),
        ],
    )));
    let h = Harness::new(&observed, false, exps);
    h.reconcile(&reg).await.expect("ok");
    let events = h.finish().await;
    assert_eq!(events.iter().filter(|e| e.reason == "Pruned").count(), 5, "{events:?}");
}

#[tokio::test]
async fn a_volume_kept_by_an_earlier_registry_of_the_same_name_is_never_deleted() {
    // `packs` (SQLite) was deleted with retainOnDelete: its volume stays,
    // stamped with that registry's UID. A new `packs` on Redis without
    // retainOnDelete must leave it alone, in prune and in cleanup.
    let mut kept = observed_from(child(
        &desired(&registry(json!({})), false),
        ChildKind::PersistentVolumeClaim,
        "packs-data",
    ));
    kept["metadata"]["labels"]["banterpacks.io/owner-uid"] = json!(OTHER_UID);
    let reg = registry(json!({"storage": {"backend": "redis", "retainOnDelete": false}}));
    let mut observed = steady(&reg, false);
    observed.push(redis_claim_pvc(Some(UID)));
    observed.push(kept.clone());
    let reg = with_status(reg, &observed, false);
    let h = Harness::new(&observed, false, vec![]);
    h.reconcile(&reg).await.expect("ok");
    assert!(h.finish().await.is_empty(), "no delete, no write");

    // Deleting the new registry deletes only its own volume.
    let mut gone = reg.clone();
    gone.metadata.deletion_timestamp = Some(now());
    let h = Harness::new(
        &[redis_claim_pvc(Some(UID)), kept],
        false,
        vec![
            delete(ChildKind::PersistentVolumeClaim, "data-packs-redis-0"),
            finalizer_removal(),
        ],
    );
    assert_eq!(h.reconcile(&gone).await.expect("ok"), Action::await_change());
    let events = h.finish().await;
    let notes: Vec<_> = events.iter().map(|e| e.note.as_str()).collect();
    assert_eq!(notes, ["deleted PersistentVolumeClaim data-packs-redis-0"]);
}

#[tokio::test]
async fn redis_claim_volumes_are_stamped_once_and_never_pruned() {
    let reg = registry(json!({"storage": {"backend": "redis", "retainOnDelete": false}}));
    let mut observed = steady(&reg, false);
    observed.push(redis_claim_pvc(None));
    let reg = with_status(reg, &observed, false);
    let mut stamp = exp(
        Method::PATCH,
        format!("{}/data-packs-redis-0", collection(ChildKind::PersistentVolumeClaim)),
    );
    stamp.body = BodyCheck::Json(json!({"metadata": {"labels": {"banterpacks.io/owner-uid": UID}}}));
    stamp.response = redis_claim_pvc(Some(UID));
    let h = Harness::new(&observed, false, vec![stamp]);
    h.reconcile(&reg).await.expect("ok");
    assert!(h.finish().await.is_empty(), "no delete, no event");

    // Stamped: nothing to do.
    observed.pop();
    observed.push(redis_claim_pvc(Some(UID)));
    let h = Harness::new(&observed, false, vec![]);
    h.reconcile(&reg).await.expect("ok");
    h.finish().await;
}

/// A monitoring kind requested on a cluster that does not serve its CRD:
/// no object, `MonitoringReady=False` with `reason`, and the normal resync
/// (no error, so no backoff loop).
async fn crd_missing_is_a_condition_not_an_error(monitoring: Value, kind: ChildKind, reason: &str, message: &str) {
    let reg = registry(json!({ "monitoring": monitoring }));
    let children = desired(&reg, false);
    assert!(children.iter().all(|c| c.kind != kind));
    let observed = steady(&reg, false);
    // Its status from before monitoring was requested.
    let reg = with_status_of(reg, &registry(json!({})), &observed, false);
    let h = Harness::new(
        &observed,
        false,
        vec![status_apply(status_body(
            2,
            1,
            1,
            "sqlite",
            &[
                ("Ready", "True", "Available", "registry is serving"),
                (
                    "StorageReady",
                    "True",
                    "PersistentVolumeClaimBound",
                    "SQLite volume is bound",
                ),
                ("RegistryReady", "True", "ReplicasReady", "1/1 replicas ready"),
                ("MonitoringReady", "False", reason, message),
            ],
        ))],
    );
    assert_eq!(h.reconcile(&reg).await.expect("not an error"), Action::requeue(RESYNC));
    h.finish().await;
}

#[tokio::test]
async fn service_monitor_crd_missing_is_a_condition_not_an_error() {
    crd_missing_is_a_condition_not_an_error(
        json!({"serviceMonitor": {"enabled": true}}),
        ChildKind::ServiceMonitor,
        "ServiceMonitorCRDMissing",
        "spec.monitoring.serviceMonitor.enabled is true but the monitoring.coreos.com/v1 ServiceMonitor CRD is not served; install the Prometheus Operator CRDs",
    )
    .await;
}

#[tokio::test]
async fn prometheus_rule_crd_missing_is_a_condition_not_an_error() {
    crd_missing_is_a_condition_not_an_error(
        json!({"prometheusRule": {"enabled": true}}),
        ChildKind::PrometheusRule,
        "PrometheusRuleCRDMissing",
        "spec.monitoring.prometheusRule.enabled is true but the monitoring.coreos.com/v1 PrometheusRule CRD is not served; install the Prometheus Operator CRDs",
    )
    .await;
}

#[tokio::test]
async fn service_monitor_is_applied_when_the_crd_is_served() {
    let reg = registry(json!({"monitoring": {"serviceMonitor": {"enabled": true}}}));
    let observed = steady(&reg, false);
    let reg = with_status(reg, &observed, false);
    let children = desired(&reg, true);
    let sm = child(&children, ChildKind::ServiceMonitor, "packs");
    let exps = vec![
        apply(sm, BodyCheck::Golden("service-monitor/ServiceMonitor-packs".into())),
        status_apply(status_body(
            2,
            1,
            1,
            "sqlite",
            &[
                ("Ready", "True", "Available", "registry is serving"),
                (
                    "StorageReady",
                    "True",
                    "PersistentVolumeClaimBound",
                    "SQLite volume is bound",
                ),
                ("RegistryReady", "True", "ReplicasReady", "1/1 replicas ready"),
                ("MonitoringReady", "True", "Applied", "monitoring objects applied"),
            ],
        )),
    ];
    let h = Harness::new(&observed, true, exps);
    h.reconcile(&reg).await.expect("ok");
    h.finish().await;
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
    let deployment = child(&children, ChildKind::Deployment, "packs");
    let mut scale = apply(deployment, BodyCheck::Fields(vec![("/spec/replicas", json!(1))]));
    scale.response = observed_from(deployment);
    let exps = vec![
        scale,
        delete(ChildKind::ConfigMap, "packs-dashboards"),
        delete(ChildKind::PodDisruptionBudget, "packs"),
        status_apply(status_body(
            2,
            1,
            1,
            "redis",
            &[
                ("Ready", "True", "Available", "registry is serving"),
                ("StorageReady", "True", "RedisReady", "Redis is ready"),
                ("RegistryReady", "True", "ReplicasReady", "1/1 replicas ready"),
                ("MonitoringReady", "True", "NotRequested", "no monitoring requested"),
            ],
        )),
    ];
    let h = Harness::new(&observed, false, exps);
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
async fn a_prune_that_finds_the_object_gone_is_success() {
    let old = registry(json!({"replicas": 3, "storage": {"backend": "redis"}}));
    let observed = steady(&old, false);
    let reg = with_status_of(
        registry(json!({"replicas": 1, "storage": {"backend": "redis"}})),
        &old,
        &observed,
        false,
    );
    let children = desired(&reg, false);
    let deployment = child(&children, ChildKind::Deployment, "packs");
    let mut scale = apply(deployment, BodyCheck::Any);
    scale.response = observed_from(deployment);
    let gone = failure(
        delete(ChildKind::PodDisruptionBudget, "packs"),
        404,
        "NotFound",
        "poddisruptionbudgets.policy \"packs\" not found",
    );
    let mut st = status_apply(json!({}));
    st.body = BodyCheck::Any;
    st.response["status"] = json!({});
    let h = Harness::new(&observed, false, vec![scale, gone, st]);
    assert_eq!(h.reconcile(&reg).await.expect("ok"), Action::requeue(RESYNC));
    let events = h.finish().await;
    assert!(events.iter().all(|e| !e.warning), "{events:?}");
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
    let pvc = observed_from(child(
        &desired(&reg, false),
        ChildKind::PersistentVolumeClaim,
        "packs-data",
    ));
    assert!(
        pvc.pointer("/metadata/ownerReferences").is_none(),
        "a kept volume is never owned"
    );
    // Nothing to detach: the finalizer only reports the volume kept.
    let h = Harness::new(&[pvc], false, vec![finalizer_removal()]);
    assert_eq!(h.reconcile(&reg).await.expect("ok"), Action::await_change());
    let events = h.finish().await;
    assert_eq!(events[0].reason, "Retained");

    // A volume created while retainOnDelete was off still has its owner: detached.
    let owned = observed_from(child(
        &desired(&deleting(json!({"storage": {"retainOnDelete": false}})), false),
        ChildKind::PersistentVolumeClaim,
        "packs-data",
    ));
    assert!(owned.pointer("/metadata/ownerReferences/0").is_some());
    let mut detach = exp(
        Method::PATCH,
        format!("{}/packs-data", collection(ChildKind::PersistentVolumeClaim)),
    );
    detach.body = BodyCheck::Json(json!({"metadata": {"ownerReferences": null}}));
    detach.response = owned.clone();
    let h = Harness::new(&[owned], false, vec![detach, finalizer_removal()]);
    assert_eq!(h.reconcile(&reg).await.expect("ok"), Action::await_change());
    let events = h.finish().await;
    assert_eq!(events[0].reason, "Retained");
}

#[tokio::test]
async fn deletion_without_retain_deletes_the_volumes() {
    let reg = deleting(json!({"storage": {"retainOnDelete": false}}));
    let pvc = observed_from(child(
        &desired(&reg, false),
        ChildKind::PersistentVolumeClaim,
        "packs-data",
    ));
    let h = Harness::new(
        &[pvc],
        false,
        vec![
            delete(ChildKind::PersistentVolumeClaim, "packs-data"),
            finalizer_removal(),
        ],
    );
    assert_eq!(h.reconcile(&reg).await.expect("ok"), Action::await_change());
    let events = h.finish().await;
    assert_eq!(events[0].reason, "Deleted");
}

#[tokio::test]
async fn a_finished_deletion_is_not_a_failure() {
    // The object went away between the watch event and the finalizer patch.
    let reg = deleting(json!({}));
    let gone = failure(
        finalizer_removal(),
        404,
        "NotFound",
        "banterregistries.banterpacks.io \"packs\" not found",
    );
    let h = Harness::new(&[], false, vec![gone]);
    assert_eq!(h.reconcile(&reg).await.expect("success"), Action::await_change());
    let events = h.finish().await;
    assert!(events.is_empty(), "no ReconcileFailed Warning: {events:?}");
}

#[tokio::test]
async fn invalid_spec_reports_condition_and_waits_for_a_change() {
    let reg = registry(json!({"replicas": 3}));
    let body = json!({"apiVersion": "banterpacks.io/v1alpha1", "kind": "BanterRegistry", "status": {
        "observedGeneration": 2, "conditions": [{"type": "Ready", "status": "False", "reason": "InvalidSpec",
        "message": banter_api::SQLITE_REPLICAS_MESSAGE, "observedGeneration": 2, "lastTransitionTime": "<t>"}]}});
    let h = Harness::new(&[], false, vec![status_apply(body.clone())]);
    assert_eq!(h.reconcile(&reg).await.expect("not an error"), Action::await_change());
    let events = h.finish().await;
    assert_eq!(events.len(), 1);
    assert!(events[0].warning && events[0].reason == "InvalidSpec");

    // Reconciled again (e.g. resync) with that status: no request at all.
    let mut reg = reg;
    reg.status = Some(stored_status(&body));
    let h = Harness::new(&[], false, vec![]);
    assert_eq!(h.reconcile(&reg).await.expect("ok"), Action::await_change());
    assert!(h.finish().await.is_empty());
}

#[tokio::test]
async fn an_object_that_does_not_deserialize_is_reported_on_itself() {
    let obj: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "banterpacks.io/v1alpha1", "kind": "BanterRegistry",
        "metadata": {"name": NAME, "namespace": NS, "uid": UID, "generation": 4, "finalizers": [FINALIZER]},
        "spec": {"replicas": 1, "storage": {"backend": "sqlite", "retainOnDelete": "sometimes"}}}))
    .expect("object");
    let reg = decode::registry(obj);
    let message =
        "the spec cannot be read: spec.storage.retainOnDelete: invalid type: string \"sometimes\", expected a boolean";
    let body = json!({"apiVersion": "banterpacks.io/v1alpha1", "kind": "BanterRegistry", "status": {
        "observedGeneration": 4, "conditions": [{"type": "Ready", "status": "False", "reason": "InvalidSpec",
        "message": message, "observedGeneration": 4, "lastTransitionTime": "<t>"}]}});
    // Not one child is touched for a spec the operator cannot read.
    let h = Harness::new(&[], false, vec![status_apply(body)]);
    assert_eq!(h.reconcile(&reg).await.expect("not an error"), Action::await_change());
    let events = h.finish().await;
    assert!(
        events
            .iter()
            .any(|e| e.warning && e.reason == "InvalidSpec" && e.note == message),
        "{events:?}"
    );
}

const EXTERNAL_UNREACHABLE: &str = "no registry pod is ready, so none has confirmed the external Redis redis.example.com:6379 reachable (their readiness checks it; RegistryReady and the pod events say why no pod is ready)";

/// Operator-managed Redis → an external one: the Redis StatefulSet, its
/// Service and NetworkPolicy are pruned; its volume is deleted only
/// without retainOnDelete.
#[tokio::test]
async fn switching_to_an_external_redis_prunes_the_managed_one_and_honours_retain() {
    for retain in [false, true] {
        let old = registry(json!({"replicas": 3, "storage": {"backend": "redis", "retainOnDelete": retain}}));
        let mut observed = steady(&old, false);
        observed.push(redis_claim_pvc(Some(UID)));
        let reg = with_status_of(
            registry(
                json!({"replicas": 3, "storage": {"backend": "redis", "retainOnDelete": retain,
                "redis": {"external": {"host": "redis.example.com",
                                       "passwordSecretRef": {"name": "managed-redis", "key": "token"}}}}}),
            ),
            &old,
            &observed,
            false,
        );
        let children = desired(&reg, false);
        assert!(children.iter().all(|c| c.kind != ChildKind::StatefulSet));
        let by = |k, n| child(&children, k, n);
        let mut exps = vec![
            apply(
                by(ChildKind::ConfigMap, "packs-config"),
                BodyCheck::Fields(vec![
                    (
                        "/data/BANTER_REGISTRY_REDIS_URL",
                        json!("redis://redis.example.com:6379/0"),
                    ),
                    ("/data/BANTER_REGISTRY_REDIS_CA_FILE", Value::Null),
                ]),
            ),
            apply(
                by(ChildKind::Deployment, "packs"),
                BodyCheck::Fields(vec![
                    ("/spec/template/spec/volumes/2/name", json!("redis-auth")),
                    (
                        "/spec/template/spec/volumes/2/secret/secretName",
                        json!("managed-redis"),
                    ),
                    ("/spec/template/spec/volumes/2/secret/items/0/key", json!("token")),
                ]),
            ),
        ];
        // The old pods still use the operator's Redis: nothing is pruned
        // until the new ones serve.
        exps.push(status_apply(status_body(
            2,
            0,
            3,
            "redis",
            &[
                (
                    "Ready",
                    "False",
                    "ExternalRedisUnreachable",
                    &format!("StorageReady: {EXTERNAL_UNREACHABLE}"),
                ),
                (
                    "StorageReady",
                    "False",
                    "ExternalRedisUnreachable",
                    EXTERNAL_UNREACHABLE,
                ),
                ("RegistryReady", "False", "ReplicasNotReady", "0/3 replicas ready"),
                ("MonitoringReady", "True", "NotRequested", "no monitoring requested"),
            ],
        )));
        let h = Harness::new(&observed, false, exps);
        assert_eq!(h.reconcile(&reg).await.expect("ok"), Action::requeue(RESYNC));
        let events = h.finish().await;
        assert!(
            !events.iter().any(|e| e.reason == "Pruned"),
            "pruned before the rollout: {events:?}"
        );

        // The rollout finished on the external Redis: now the operator's
        // Redis goes, its volume only without retainOnDelete.
        let mut rolled: Vec<Value> = observed
            .iter()
            .filter(|o| !matches!(kind_of(o), ChildKind::Deployment | ChildKind::ConfigMap))
            .cloned()
            .collect();
        rolled.push(observed_from(by(ChildKind::ConfigMap, "packs-config")));
        rolled.push(observed_from(by(ChildKind::Deployment, "packs")));
        let reg = with_status(reg.clone(), &rolled, false);
        let mut exps = Vec::new();
        if !retain {
            exps.push(delete(ChildKind::PersistentVolumeClaim, "data-packs-redis-0"));
        }
        exps.push(delete(ChildKind::Service, "packs-redis"));
        exps.push(delete(ChildKind::StatefulSet, "packs-redis"));
        exps.push(delete(ChildKind::NetworkPolicy, "packs-redis"));
        let h = Harness::new(&rolled, false, exps);
        assert_eq!(h.reconcile(&reg).await.expect("ok"), Action::requeue(RESYNC));
        let events = h.finish().await;
        let pruned = events.iter().filter(|e| e.reason == "Pruned").count();
        assert_eq!(pruned, if retain { 3 } else { 4 }, "retain {retain}: {events:?}");
    }
}

/// Once the registry pods are ready they have reached the external Redis:
/// StorageReady turns true from their readiness alone.
#[tokio::test]
async fn an_external_redis_is_ready_when_the_registry_pods_are() {
    let reg = registry(json!({"replicas": 2, "storage": {"backend": "redis",
        "redis": {"external": {"host": "redis.example.com"}}}}));
    let observed = steady(&reg, false);
    let reg = with_status_of(
        reg,
        &registry(json!({"replicas": 2, "storage": {"backend": "redis"}})),
        &[],
        false,
    );
    let h = Harness::new(
        &observed,
        false,
        vec![status_apply(status_body(
            2,
            2,
            2,
            "redis",
            &[
                ("Ready", "True", "Available", "registry is serving"),
                (
                    "StorageReady",
                    "True",
                    "ExternalRedisReachable",
                    "2 registry pods reach the external Redis redis.example.com:6379",
                ),
                ("RegistryReady", "True", "ReplicasReady", "2/2 replicas ready"),
                ("MonitoringReady", "True", "NotRequested", "no monitoring requested"),
            ],
        ))],
    );
    h.reconcile(&reg).await.expect("ok");
    h.finish().await;
}

/// `spec.gateway` on a cluster without the Gateway API: no HTTPRoute, a
/// condition saying why, the normal resync, and nothing more next time.
#[tokio::test]
async fn http_route_crd_missing_is_a_condition_not_an_error() {
    let reg = registry(json!({"gateway": {"parentRefs": [{"name": "edge"}], "hostnames": ["packs.example.com"]}}));
    assert!(desired(&reg, false).iter().all(|c| c.kind != ChildKind::HttpRoute));
    let observed = steady(&reg, false);
    let before = with_status_of(reg.clone(), &registry(json!({})), &observed, false);
    let body = status_body(
        2,
        1,
        1,
        "sqlite",
        &[
            ("Ready", "True", "Available", "registry is serving"),
            (
                "StorageReady",
                "True",
                "PersistentVolumeClaimBound",
                "SQLite volume is bound",
            ),
            ("RegistryReady", "True", "ReplicasReady", "1/1 replicas ready"),
            ("MonitoringReady", "True", "NotRequested", "no monitoring requested"),
            (
                "ExposureReady",
                "False",
                "HTTPRouteCRDMissing",
                "spec.gateway is set but the gateway.networking.k8s.io/v1 HTTPRoute CRD is not served; install the Gateway API CRDs",
            ),
        ],
    );
    let h = Harness::new(&observed, false, vec![status_apply(body)]);
    assert_eq!(
        h.reconcile(&before).await.expect("not an error"),
        Action::requeue(RESYNC)
    );
    h.finish().await;
    assert_eq!(h_metrics_failures(&reg, &observed).await, 0);
}

/// The reconcile after the condition was written sends nothing and fails nothing.
async fn h_metrics_failures(reg: &BanterRegistry, observed: &[Value]) -> usize {
    let settled = with_status(reg.clone(), observed, false);
    let h = Harness::new(observed, false, vec![]);
    assert_eq!(h.reconcile(&settled).await.expect("ok"), Action::requeue(RESYNC));
    let events = h.finish().await;
    events.iter().filter(|e| e.reason == "ReconcileFailed").count()
}

/// With the Gateway API served the HTTPRoute is applied and its host is
/// reported as `status.url`.
#[tokio::test]
async fn http_route_is_applied_and_its_url_reported() {
    let reg = registry(
        json!({"gateway": {"parentRefs": [{"name": "edge", "namespace": "gateway-system"}],
        "hostnames": ["packs.example.com"]}}),
    );
    let children = desired(&reg, true);
    let route = child(&children, ChildKind::HttpRoute, NAME);
    let observed: Vec<Value> = steady(&reg, true)
        .into_iter()
        .filter(|o| kind_of(o) != ChildKind::HttpRoute)
        .collect();
    let before = with_status_of(reg.clone(), &registry(json!({})), &observed, true);
    let mut body = status_body(
        2,
        1,
        1,
        "sqlite",
        &[
            ("Ready", "True", "Available", "registry is serving"),
            (
                "StorageReady",
                "True",
                "PersistentVolumeClaimBound",
                "SQLite volume is bound",
            ),
            ("RegistryReady", "True", "ReplicasReady", "1/1 replicas ready"),
            ("MonitoringReady", "True", "NotRequested", "no monitoring requested"),
            ("ExposureReady", "True", "Applied", "HTTPRoute applied"),
        ],
    );
    body["status"]["url"] = json!("https://packs.example.com");
    let h = Harness::new(
        &observed,
        true,
        vec![
            apply(route, BodyCheck::Golden("http-route/HTTPRoute-packs".into())),
            status_apply(body),
        ],
    );
    h.reconcile(&before).await.expect("ok");
    h.finish().await;
}

/// The live Deployment of an autoscaled registry as the HPA left it.
fn scaled_by_hpa(observed: &mut [Value], replicas: i64) {
    let d = observed
        .iter_mut()
        .find(|o| kind_of(o) == ChildKind::Deployment)
        .expect("deployment");
    d["spec"]["replicas"] = json!(replicas);
    d["status"] = json!({"observedGeneration": 1, "replicas": replicas, "updatedReplicas": replicas,
        "readyReplicas": replicas});
}

/// The HPA changing the live Deployment's replicas is never reverted: the
/// next reconcile writes no child (only the status follows the count), and
/// once the status says so, nothing at all.
#[tokio::test]
async fn an_hpa_changing_replicas_leads_to_zero_writes() {
    let reg = registry(json!({"storage": {"backend": "redis"},
        "autoscaling": {"minReplicas": 2, "maxReplicas": 6}}));
    let mut observed = steady(&reg, true);
    scaled_by_hpa(&mut observed, 2);
    let before = with_status(reg.clone(), &observed, true);
    // The HPA scales to 5; the watch event triggers a reconcile.
    scaled_by_hpa(&mut observed, 5);
    let h = Harness::new(
        &observed,
        true,
        vec![status_apply(status_body(
            2,
            5,
            5,
            "redis",
            &[
                ("Ready", "True", "Available", "registry is serving"),
                ("StorageReady", "True", "RedisReady", "Redis is ready"),
                ("RegistryReady", "True", "ReplicasReady", "5/5 replicas ready"),
                ("MonitoringReady", "True", "NotRequested", "no monitoring requested"),
            ],
        ))],
    );
    h.reconcile(&before).await.expect("ok");
    h.finish().await;

    let settled = with_status(reg, &observed, true);
    let h = Harness::new(&observed, true, vec![]);
    assert_eq!(h.reconcile(&settled).await.expect("ok"), Action::requeue(RESYNC));
    assert!(h.finish().await.is_empty());
}

/// Switching autoscaling on over a Deployment the operator scaled: a second
/// field manager first co-owns the live `spec.replicas`, so the apply that
/// leaves the field out cannot reset it; then the HPA is created.
#[tokio::test]
async fn turning_autoscaling_on_hands_replicas_over_without_resetting_them() {
    let old = registry(json!({"replicas": 3, "storage": {"backend": "redis"}}));
    let observed = steady(&old, true);
    let reg = with_status_of(
        registry(json!({"replicas": 3, "storage": {"backend": "redis"},
            "autoscaling": {"minReplicas": 2, "maxReplicas": 6}})),
        &old,
        &observed,
        true,
    );
    let children = desired(&reg, true);
    let deployment = child(&children, ChildKind::Deployment, NAME);
    let mut handoff = exp(Method::PATCH, format!("{}/{NAME}", collection(ChildKind::Deployment)));
    handoff.query = vec!["fieldManager=banter-operator-replicas-handoff".into()];
    handoff.body = BodyCheck::Json(json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": NAME}, "spec": {"replicas": 3}}));
    let mut live = observed_from(deployment);
    live["spec"]["replicas"] = json!(3);
    live["status"] = json!({"observedGeneration": 1, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3});
    handoff.response = live.clone();
    let mut apply_deployment = apply(deployment, BodyCheck::Fields(vec![("/spec/replicas", Value::Null)]));
    apply_deployment.response = live;
    let exps = vec![
        handoff,
        apply_deployment,
        apply(
            child(&children, ChildKind::HorizontalPodAutoscaler, NAME),
            BodyCheck::Golden("autoscaling-on/HorizontalPodAutoscaler-packs".into()),
        ),
        // The status already says 3/3 ready: nothing to write.
    ];
    let h = Harness::new(&observed, true, exps);
    h.reconcile(&reg).await.expect("ok");
    let events = h.finish().await;
    let created: Vec<_> = events
        .iter()
        .filter(|e| e.reason == "Created")
        .map(|e| e.note.as_str())
        .collect();
    assert_eq!(created, ["created HorizontalPodAutoscaler packs"]);
}

/// A LoadBalancer Service's assigned address is the external URL when no
/// Ingress or HTTPRoute names a host.
#[tokio::test]
async fn a_load_balancer_address_is_reported_as_the_url() {
    let reg = registry(json!({"service": {"type": "LoadBalancer", "port": 8080}}));
    let mut observed = steady(&reg, false);
    let before = with_status_of(reg.clone(), &reg, &observed, false);
    let svc = observed
        .iter_mut()
        .find(|o| kind_of(o) == ChildKind::Service)
        .expect("service");
    svc["status"] = json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}]}});
    let mut body = status_body(
        2,
        1,
        1,
        "sqlite",
        &[
            ("Ready", "True", "Available", "registry is serving"),
            (
                "StorageReady",
                "True",
                "PersistentVolumeClaimBound",
                "SQLite volume is bound",
            ),
            ("RegistryReady", "True", "ReplicasReady", "1/1 replicas ready"),
            ("MonitoringReady", "True", "NotRequested", "no monitoring requested"),
        ],
    );
    body["status"]["endpoint"] = json!("http://packs.banter.svc:8080");
    body["status"]["url"] = json!("http://203.0.113.7:8080");
    let h = Harness::new(&observed, false, vec![status_apply(body)]);
    h.reconcile(&before).await.expect("ok");
    h.finish().await;
}
