//! The operator's RBAC (one source: `charts/banter-operator/files/rbac-rules.yaml`,
//! rendered into the chart and the kustomize base) against the API requests
//! the controller code really sends.
//!
//! A permissive fake API server answers every request and records it; the
//! real code runs against it: the controller wiring (its watches, for all
//! namespaces and for one), reconciles that create, update, prune, find a
//! missing auth Secret, refuse an invalid spec, add and remove the finalizer,
//! retain and delete volumes, events through kube's recorder, and leader
//! election. Each request becomes (API group, resource[/subresource], verb) as
//! the API server's authorizer sees it. The test fails when a needed verb is
//! not granted, or when a granted verb is never needed (least privilege).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use banter_api::{BanterRegistry, BanterRegistrySpec};
use banter_operator::Settings;
use banter_operator::children::ChildKind;
use banter_operator::controller;
use banter_operator::discovery::Discovery;
use banter_operator::events::EventSink;
use banter_operator::leader::LeaderElector;
use banter_operator::metrics::Metrics;
use banter_operator::reconcile::{self, Context};
use banter_operator::settings::FINALIZER;
use http::{Method, Request, Response};
use kube::Client;
use kube::client::Body;
use kube::core::DynamicObject;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::watcher;
use serde_json::{Value, json};

const NS: &str = "banter";
const NAME: &str = "packs";
const UID: &str = "6f1c1c8e-0000-4000-8000-000000000001";
const LEASE_NS: &str = "banter-system";

/// (API group, resource or resource/subresource, verb).
type Perm = (String, String, String);

/// Granted but sent by no request: the OwnerReferencesPermissionEnforcement
/// admission plugin requires `update` on the owner's `finalizers`
/// subresource from whoever sets `blockOwnerDeletion: true` in an owner
/// reference, which every child of a BanterRegistry carries (checked below).
fn admission_only() -> BTreeSet<Perm> {
    [perm("banterpacks.io", "banterregistries/finalizers", "update")].into()
}

fn perm(g: &str, r: &str, v: &str) -> Perm {
    (g.to_string(), r.to_string(), v.to_string())
}

#[derive(Clone, Debug)]
struct Seen {
    method: Method,
    path: String,
    query: String,
    apply: bool,
    existed: bool,
    body: Value,
}

#[derive(Default)]
struct FakeServer {
    /// Objects by their URL path.
    store: BTreeMap<String, Value>,
    log: Vec<Seen>,
}

fn is_watch(query: &str) -> bool {
    query.split('&').any(|kv| kv == "watch=true" || kv == "watch=1")
}

/// (API group, namespace, resource, name, subresource) of a resource URL.
type Parsed = (String, Option<String>, String, Option<String>, Option<String>);

/// Splits an API path into its [`Parsed`] parts; `None` for non-resource URLs.
fn parse(path: &str) -> Option<Parsed> {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (group, rest) = match segs.first() {
        Some(&"api") => (String::new(), segs.get(2..)?),
        Some(&"apis") => (segs.get(1)?.to_string(), segs.get(3..)?),
        _ => return None,
    };
    let (ns, rest) = if rest.first() == Some(&"namespaces") && rest.len() >= 3 {
        (Some(rest[1].to_string()), &rest[2..])
    } else {
        (None, rest)
    };
    let resource = rest.first()?.to_string();
    Some((
        group,
        ns,
        resource,
        rest.get(1).map(|s| s.to_string()),
        rest.get(2).map(|s| s.to_string()),
    ))
}

impl Seen {
    /// What the authorizer checks for this request (empty: non-resource URL).
    fn perms(&self) -> Vec<Perm> {
        let Some((group, _ns, resource, name, sub)) = parse(&self.path) else {
            return vec![];
        };
        let resource = match sub {
            Some(s) => format!("{resource}/{s}"),
            None => resource,
        };
        let verbs: Vec<&str> = match (&self.method, name.is_some()) {
            (&Method::GET, false) if is_watch(&self.query) => vec!["watch"],
            (&Method::GET, false) => vec!["list"],
            (&Method::GET, true) => vec!["get"],
            (&Method::POST, _) => vec!["create"],
            (&Method::PUT, _) => vec!["update"],
            // A server-side apply that creates the object is authorized as
            // create as well.
            (&Method::PATCH, _) if self.apply && !self.existed => vec!["patch", "create"],
            (&Method::PATCH, _) => vec!["patch"],
            (&Method::DELETE, true) => vec!["delete"],
            (&Method::DELETE, false) => vec!["deletecollection"],
            _ => panic!("unexpected request {} {}", self.method, self.path),
        };
        verbs.into_iter().map(|v| perm(&group, &resource, v)).collect()
    }
}

fn respond(code: u16, v: &Value) -> Response<Body> {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(v).expect("json")))
        .expect("response")
}

fn status(code: u16, reason: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": if code < 300 {"Success"} else {"Failure"},
           "reason": reason, "code": code})
}

fn with_server_fields(mut v: Value) -> Value {
    if v["metadata"]["resourceVersion"].is_null() {
        v["metadata"]["resourceVersion"] = json!("10");
    }
    if v["metadata"]["uid"].is_null() {
        v["metadata"]["uid"] = json!("uid-x");
    }
    v
}

/// The collection path of an object path (drops the trailing name).
fn collection_of(path: &str) -> &str {
    path.rsplit_once('/').map(|(c, _)| c).unwrap_or(path)
}

impl FakeServer {
    fn answer(&mut self, req: Seen) -> Response<Body> {
        let path = req.path.clone();
        self.log.push(req.clone());
        if path == "/apis/monitoring.coreos.com/v1" {
            return respond(
                200,
                &json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "monitoring.coreos.com/v1",
                "resources": [{"name": "servicemonitors", "singularName": "servicemonitor", "namespaced": true,
                               "kind": "ServiceMonitor", "verbs": ["get", "list", "watch", "create", "patch", "delete"]},
                              {"name": "prometheusrules", "singularName": "prometheusrule", "namespaced": true,
                               "kind": "PrometheusRule", "verbs": ["get", "list", "watch", "create", "patch", "delete"]}]}),
            );
        }
        if path == "/apis/gateway.networking.k8s.io/v1" {
            return respond(
                200,
                &json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "gateway.networking.k8s.io/v1",
                "resources": [{"name": "httproutes", "singularName": "httproute", "namespaced": true,
                               "kind": "HTTPRoute", "verbs": ["get", "list", "watch", "create", "patch", "delete"]}]}),
            );
        }
        let Some((_, ns, _, name, sub)) = parse(&path) else {
            return respond(404, &status(404, "NotFound"));
        };
        let object_path = match &sub {
            Some(s) => path.trim_end_matches(&format!("/{s}")).to_string(),
            None => path.clone(),
        };
        match (req.method.clone(), name) {
            (Method::GET, None) if is_watch(&req.query) => {
                // An empty watch stream: the watcher simply watches again.
                Response::builder()
                    .status(200)
                    .body(Body::from(Vec::new()))
                    .expect("response")
            }
            (Method::GET, None) => {
                let items: Vec<Value> = self
                    .store
                    .iter()
                    .filter(|(p, _)| {
                        collection_of(p) == path
                            || (ns.is_none() && {
                                // all-namespaces list: same group/resource anywhere
                                let tail = path.rsplit('/').next().unwrap_or_default();
                                collection_of(p).ends_with(&format!("/{tail}"))
                            })
                    })
                    .map(|(_, v)| v.clone())
                    .collect();
                respond(
                    200,
                    &json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "10"}, "items": items}),
                )
            }
            (Method::GET, Some(_)) => match self.store.get(&object_path) {
                Some(v) => respond(200, v),
                None => respond(404, &status(404, "NotFound")),
            },
            (Method::POST, _) => {
                let v = with_server_fields(req.body.clone());
                let name = v["metadata"]["name"].as_str().unwrap_or("generated").to_string();
                self.store.insert(format!("{path}/{name}"), v.clone());
                respond(201, &v)
            }
            (Method::PUT, Some(_)) => {
                let v = with_server_fields(req.body.clone());
                self.store.insert(object_path, v.clone());
                respond(200, &v)
            }
            (Method::PATCH, Some(_)) => {
                // Answer with the stored object (what a patch of it returns
                // is irrelevant to authorization); an apply that creates
                // answers with the applied object.
                let v = match self.store.get(&object_path) {
                    Some(v) => v.clone(),
                    None if req.body.is_object() => with_server_fields(req.body.clone()),
                    None => return respond(404, &status(404, "NotFound")),
                };
                respond(200, &v)
            }
            (Method::DELETE, Some(_)) => {
                self.store.remove(&object_path);
                respond(200, &status(200, "Deleted"))
            }
            _ => respond(405, &status(405, "MethodNotAllowed")),
        }
    }
}

type Shared = Arc<Mutex<FakeServer>>;

fn fake_client(server: Shared) -> Client {
    let (svc, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    tokio::spawn(async move {
        while let Some((req, send)) = handle.next_request().await {
            let (parts, body) = req.into_parts();
            let bytes = body.collect_bytes().await.expect("request body");
            let seen = Seen {
                method: parts.method.clone(),
                path: parts.uri.path().to_string(),
                query: parts.uri.query().unwrap_or_default().to_string(),
                apply: parts
                    .headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|ct| ct.starts_with("application/apply-patch")),
                existed: false,
                body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            };
            let resp = {
                let mut s = server.lock().expect("server");
                let mut seen = seen;
                if let Some((_, _, _, Some(_), sub)) = parse(&seen.path) {
                    let object_path = match &sub {
                        Some(x) => seen.path.trim_end_matches(&format!("/{x}")).to_string(),
                        None => seen.path.clone(),
                    };
                    seen.existed = s.store.contains_key(&object_path);
                }
                s.answer(seen)
            };
            send.send_response(resp);
        }
    });
    Client::new(svc, NS)
}

fn registry_path(ns: &str, name: &str) -> String {
    format!("/apis/banterpacks.io/v1alpha1/namespaces/{ns}/banterregistries/{name}")
}

fn child_path(kind: ChildKind, name: &str) -> String {
    let ar = kind.api_resource();
    if ar.group.is_empty() {
        format!("/api/{}/namespaces/{NS}/{}/{name}", ar.version, ar.plural)
    } else {
        format!("/apis/{}/{}/namespaces/{NS}/{}/{name}", ar.group, ar.version, ar.plural)
    }
}

fn registry(spec: Value, finalizer: bool) -> BanterRegistry {
    let spec: BanterRegistrySpec = serde_json::from_value(spec).expect("spec");
    let mut r = BanterRegistry::new(NAME, spec);
    r.metadata.namespace = Some(NS.into());
    r.metadata.uid = Some(UID.into());
    r.metadata.generation = Some(2);
    if finalizer {
        r.metadata.finalizers = Some(vec![FINALIZER.into()]);
    }
    r
}

fn labels(component: &str, data: Option<&str>) -> Value {
    let mut l = json!({
        "app.kubernetes.io/name": "banter-registry",
        "app.kubernetes.io/instance": NAME,
        "app.kubernetes.io/managed-by": "banter-operator",
        "app.kubernetes.io/component": component,
    });
    if let Some(d) = data {
        l["banterpacks.io/data"] = json!(d);
    }
    l
}

/// A labelled object of `kind` that no spec wants: pruning deletes it
/// (except Secrets, never pruned).
fn stray(kind: ChildKind, name: &str, data: Option<&str>) -> (String, Value) {
    let ar = kind.api_resource();
    let mut v = json!({
        "apiVersion": ar.api_version, "kind": ar.kind,
        "metadata": {"name": name, "namespace": NS, "resourceVersion": "5", "uid": format!("uid-{name}"),
                     "labels": labels("stray", data),
                     "ownerReferences": [{"apiVersion": "banterpacks.io/v1alpha1", "kind": "BanterRegistry",
                                           "name": NAME, "uid": UID, "controller": true, "blockOwnerDeletion": true}]},
    });
    if kind == ChildKind::ServiceMonitor {
        v["spec"] = json!({"selector": {}, "endpoints": []});
    }
    (child_path(kind, name), v)
}

fn context(client: Client, metrics: Arc<Metrics>) -> Arc<Context> {
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "banter-operator".into(),
            instance: Some("banter-operator-0".into()),
        },
    );
    Arc::new(
        Context::new(client, Settings::default(), metrics, EventSink::Kube(recorder), || {
            "token".to_string()
        })
        .with_discovery(Arc::new(Discovery::fixed(true))),
    )
}

/// Fills the context's cache with what the fake server holds, as the
/// controller's watches would (a relist of every kind).
fn sync_cache(ctx: &Context, server: &Shared) {
    let store = server.lock().expect("server").store.clone();
    for kind in ChildKind::ALL {
        let ar = kind.api_resource();
        ctx.cache.handle(None, kind, &watcher::Event::Init);
        for (path, v) in &store {
            if v["kind"] == ar.kind.as_str()
                && v["apiVersion"] == ar.api_version.as_str()
                && path.contains(&format!("/{}/", ar.plural))
            {
                let obj: DynamicObject = serde_json::from_value(v.clone()).expect("object");
                ctx.cache.handle(None, kind, &watcher::Event::InitApply(obj));
            }
        }
        ctx.cache.handle(None, kind, &watcher::Event::InitDone);
    }
}

async fn reconcile_once(ctx: &Arc<Context>, server: &Shared, reg: BanterRegistry) {
    let ns = reg.metadata.namespace.clone().expect("ns");
    let name = reg.metadata.name.clone().expect("name");
    server
        .lock()
        .expect("server")
        .store
        .insert(registry_path(&ns, &name), serde_json::to_value(&reg).expect("registry"));
    sync_cache(ctx, server);
    let r = tokio::time::timeout(
        Duration::from_secs(20),
        reconcile::reconcile(Arc::new(reg), ctx.clone()),
    )
    .await
    .expect("reconcile finished");
    assert!(r.is_ok(), "reconcile failed against the permissive fake: {r:?}");
}

/// Every request the operator's code paths send, as recorded by the fake.
async fn exercise() -> Vec<Seen> {
    let server: Shared = Arc::default();
    let client = fake_client(server.clone());
    let metrics = Arc::new(Metrics::default());
    let ctx = context(client.clone(), metrics.clone());

    // 1. The controller wiring: watches of the main resource and every
    //    owned kind, for all namespaces and for one namespace.
    for ns in [None, Some("team-a".to_string())] {
        let task = tokio::spawn(controller::controller(client.clone(), ns, ctx.clone()));
        tokio::time::sleep(Duration::from_millis(1500)).await;
        task.abort();
        let _ = task.await;
    }

    // 2. A new registry: the finalizer is added first.
    reconcile_once(&ctx, &server, registry(json!({}), false)).await;

    // 3. SQLite with monitoring: every child created (token Secret with
    //    POST, the rest by apply), strays of every kind pruned, status
    //    written, events published. Twice, so repeated events are patched.
    {
        let mut s = server.lock().expect("server");
        for kind in ChildKind::ALL {
            let (p, v) = stray(kind, "packs-stray", None);
            s.store.insert(p, v);
        }
        // The other backend's data volume, retainOnDelete false: deleted.
        let (p, v) = stray(ChildKind::PersistentVolumeClaim, "data-packs-redis-0", Some("redis"));
        s.store.insert(p, v);
    }
    let monitored = json!({"storage": {"backend": "sqlite", "retainOnDelete": false},
        "monitoring": {"serviceMonitor": {"enabled": true}, "grafanaDashboard": {"enabled": true}, "prometheusRule": {"enabled": true}}});
    reconcile_once(&ctx, &server, registry(monitored.clone(), true)).await;
    reconcile_once(&ctx, &server, registry(monitored, true)).await;

    // 4. Redis with three replicas and a named auth Secret that is missing,
    //    then autoscaled (the replicas hand-over to the autoscaler) and
    //    exposed through an Ingress and an HTTPRoute.
    reconcile_once(
        &ctx,
        &server,
        registry(
            json!({"replicas": 3, "storage": {"backend": "redis"}, "auth": {"secretName": "mine"}}),
            true,
        ),
    )
    .await;
    reconcile_once(
        &ctx,
        &server,
        registry(
            json!({"storage": {"backend": "redis"}, "auth": {"secretName": "mine"},
                   "autoscaling": {"maxReplicas": 5},
                   "ingress": {"hosts": ["packs.example.com"]},
                   "gateway": {"parentRefs": [{"name": "edge"}]}}),
            true,
        ),
    )
    .await;

    // 5. An invalid spec (SQLite with two replicas): status and a Warning.
    reconcile_once(
        &ctx,
        &server,
        registry(json!({"replicas": 2, "storage": {"backend": "sqlite"}}), true),
    )
    .await;

    // 6. Deletion, retaining volumes (owner references removed) and deleting them.
    for retain in [true, false] {
        {
            let mut s = server.lock().expect("server");
            let (p, v) = stray(ChildKind::PersistentVolumeClaim, "packs-data", Some("sqlite"));
            s.store.insert(p, v);
        }
        let mut reg = registry(
            json!({"storage": {"backend": "sqlite", "retainOnDelete": retain}}),
            true,
        );
        reg.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::now(),
        ));
        reconcile_once(&ctx, &server, reg).await;
    }

    // 7. Leader election: create the Lease, then renew it (replace).
    let elector = LeaderElector::new(
        client.clone(),
        LEASE_NS,
        "banter-operator-leader",
        "banter-operator-0",
        Duration::from_secs(15),
    );
    for _ in 0..2 {
        assert!(elector.try_acquire_or_renew().await.expect("lease"));
    }

    server.lock().expect("server").log.clone()
}

fn rules_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../charts/banter-operator/files/rbac-rules.yaml")
}

fn expand(rules: &Value, section: &str) -> BTreeSet<Perm> {
    let mut out = BTreeSet::new();
    let list = rules[section]
        .as_array()
        .unwrap_or_else(|| panic!("rbac-rules.yaml: `{section}` must be a list of rules"));
    for rule in list {
        let strs = |k: &str| -> Vec<String> {
            rule[k]
                .as_array()
                .unwrap_or_else(|| panic!("rule {rule} lacks {k}"))
                .iter()
                .map(|v| v.as_str().expect("string").to_string())
                .collect()
        };
        let known: BTreeSet<&str> = ["apiGroups", "resources", "verbs"].into();
        for k in rule.as_object().expect("rule is a map").keys() {
            assert!(
                known.contains(k.as_str()),
                "rule field {k} not allowed (no resourceNames, no nonResourceURLs): {rule}"
            );
        }
        for g in strs("apiGroups") {
            for r in strs("resources") {
                for v in strs("verbs") {
                    assert!(g != "*" && r != "*" && v != "*", "wildcard in rbac-rules.yaml: {rule}");
                    assert!(
                        out.insert((g.clone(), r.clone(), v.clone())),
                        "duplicate grant {g} {r} {v}"
                    );
                }
            }
        }
    }
    out
}

fn show(set: &BTreeSet<Perm>) -> String {
    set.iter()
        .map(|(g, r, v)| format!("  {:>22} {:<30} {v}", if g.is_empty() { "\"\"" } else { g }, r))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_rules_are_exactly_what_the_controller_uses() {
    let text = std::fs::read_to_string(rules_file()).expect("rbac-rules.yaml");
    let rules: Value = serde_norway::from_str(&text).expect("rbac-rules.yaml parses");
    let watched = expand(&rules, "watched");
    let leader = expand(&rules, "leaderElection");

    let log = exercise().await;

    let mut needed_watched = BTreeSet::new();
    let mut needed_leader = BTreeSet::new();
    for seen in &log {
        let lease_ns = parse(&seen.path).and_then(|(_, ns, r, _, _)| (r == "leases").then_some(ns));
        for p in seen.perms() {
            if let Some(ns) = &lease_ns {
                assert_eq!(ns.as_deref(), Some(LEASE_NS), "Lease outside the operator's namespace");
                needed_leader.insert(p);
            } else {
                needed_watched.insert(p);
            }
        }
    }

    // The exercise really covered the code paths (or the comparison proves nothing).
    for must in [
        perm("banterpacks.io", "banterregistries", "watch"),
        perm("apps", "deployments", "watch"),
        perm("monitoring.coreos.com", "servicemonitors", "watch"),
        perm("monitoring.coreos.com", "prometheusrules", "watch"),
        perm("monitoring.coreos.com", "prometheusrules", "patch"),
        perm("banterpacks.io", "banterregistries", "patch"),
        perm("banterpacks.io", "banterregistries/status", "patch"),
        perm("", "secrets", "create"),
        perm("", "secrets", "get"),
        perm("apps", "statefulsets", "create"),
        perm("policy", "poddisruptionbudgets", "delete"),
        perm("autoscaling", "horizontalpodautoscalers", "patch"),
        perm("networking.k8s.io", "ingresses", "patch"),
        perm("gateway.networking.k8s.io", "httproutes", "watch"),
        perm("gateway.networking.k8s.io", "httproutes", "patch"),
        perm("", "persistentvolumeclaims", "delete"),
        perm("events.k8s.io", "events", "create"),
        perm("events.k8s.io", "events", "patch"),
    ] {
        assert!(
            needed_watched.contains(&must),
            "the exercise did not reach {must:?}; recorded:\n{}",
            show(&needed_watched)
        );
    }
    assert!(
        needed_leader.contains(&perm("coordination.k8s.io", "leases", "update")),
        "leader election not exercised"
    );
    // Children carry blockOwnerDeletion, which is why finalizers/update is granted.
    assert!(
        log.iter()
            .any(|s| s.apply && s.body.pointer("/metadata/ownerReferences/0/blockOwnerDeletion") == Some(&json!(true))),
        "no child with blockOwnerDeletion seen: the finalizers grant would be unjustified"
    );

    let missing: BTreeSet<Perm> = needed_watched.difference(&watched).cloned().collect();
    assert!(
        missing.is_empty(),
        "rbac-rules.yaml `watched` lacks permissions the controller uses:\n{}",
        show(&missing)
    );
    let unneeded: BTreeSet<Perm> = watched
        .difference(&needed_watched)
        .filter(|p| !admission_only().contains(*p))
        .cloned()
        .collect();
    assert!(
        unneeded.is_empty(),
        "rbac-rules.yaml `watched` grants permissions no code path uses:\n{}",
        show(&unneeded)
    );
    for p in admission_only() {
        assert!(watched.contains(&p), "admission-required grant missing: {p:?}");
    }
    assert_eq!(
        leader, needed_leader,
        "rbac-rules.yaml `leaderElection` differs from the Lease requests (granted vs needed)"
    );
}

#[test]
fn request_mapping_matches_the_authorizer() {
    let s = |m: Method, path: &str, query: &str, apply: bool, existed: bool| Seen {
        method: m,
        path: path.into(),
        query: query.into(),
        apply,
        existed,
        body: Value::Null,
    };
    assert_eq!(
        s(
            Method::GET,
            "/apis/apps/v1/deployments",
            "watch=true&resourceVersion=1",
            false,
            false
        )
        .perms(),
        vec![perm("apps", "deployments", "watch")]
    );
    assert_eq!(
        s(
            Method::GET,
            "/api/v1/namespaces/a/secrets",
            "labelSelector=x",
            false,
            false
        )
        .perms(),
        vec![perm("", "secrets", "list")]
    );
    assert_eq!(
        s(Method::PATCH, "/api/v1/namespaces/a/services/x", "", true, false).perms(),
        vec![perm("", "services", "patch"), perm("", "services", "create")]
    );
    assert_eq!(
        s(Method::PATCH, "/api/v1/namespaces/a/services/x", "", true, true).perms(),
        vec![perm("", "services", "patch")]
    );
    assert_eq!(
        s(
            Method::PATCH,
            &format!("{}/status", registry_path("a", "b")),
            "",
            true,
            true
        )
        .perms(),
        vec![perm("banterpacks.io", "banterregistries/status", "patch")]
    );
    assert_eq!(
        s(
            Method::PUT,
            "/apis/coordination.k8s.io/v1/namespaces/a/leases/l",
            "",
            false,
            true
        )
        .perms(),
        vec![perm("coordination.k8s.io", "leases", "update")]
    );
    assert!(
        s(Method::GET, "/apis/monitoring.coreos.com/v1", "", false, false)
            .perms()
            .is_empty()
    );
}
