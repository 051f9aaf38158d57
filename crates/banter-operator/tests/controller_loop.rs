//! The real controller wiring (`controller::controller`: watchers, `owns`,
//! the trigger predicate, reconcile) against a mocked API server that routes
//! by path and keeps watch streams open, so the test can push watch events.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use banter_operator::Settings;
use banter_operator::controller;
use banter_operator::events::EventSink;
use banter_operator::metrics::Metrics;
use banter_operator::reconcile::Context;
use banter_operator::settings::FINALIZER;
use bytes::Bytes;
use futures::StreamExt;
use futures::channel::mpsc;
use http::{Method, Request, Response};
use http_body::Frame;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};

type RespBody = BoxBody<Bytes, Infallible>;
type WatchSenders = Arc<Mutex<HashMap<String, mpsc::UnboundedSender<Bytes>>>>;

const REGISTRIES: &str = "/apis/banterpacks.io/v1alpha1/namespaces/banter/banterregistries";

fn full(v: &Value) -> RespBody {
    BodyExt::boxed(Full::new(Bytes::from(serde_json::to_vec(v).expect("json"))))
}

fn registry(generation: i64, status: Option<Value>) -> Value {
    let mut r = json!({
        "apiVersion": "banterpacks.io/v1alpha1", "kind": "BanterRegistry",
        "metadata": {"name": "packs", "namespace": "banter", "uid": "u-1", "generation": generation,
                     "resourceVersion": format!("{}", 10 + generation), "finalizers": [FINALIZER]},
        "spec": {}
    });
    if let Some(s) = status {
        r["status"] = s;
        r["metadata"]["resourceVersion"] = json!("99");
    }
    r
}

/// `size: null`, which the CRD's schema allows: read as the default size.
fn size_null() -> Value {
    let mut r = registry(1, None);
    r["metadata"]["name"] = json!("nullsize");
    r["metadata"]["uid"] = json!("u-2");
    r["spec"] = json!({"storage": {"sqlite": {"size": null}}});
    r
}

/// A spec the operator cannot deserialize (stored under an older schema).
fn unreadable() -> Value {
    let mut r = registry(1, None);
    r["metadata"]["name"] = json!("broken");
    r["metadata"]["uid"] = json!("u-3");
    r["spec"] = json!({"storage": {"backend": "mongodb"}});
    r
}

/// Answers every request by route; records non-watch requests as "METHOD path".
async fn api_server(
    mut handle: tower_test::mock::Handle<Request<Body>, Response<RespBody>>,
    log: mpsc::UnboundedSender<String>,
    watches: WatchSenders,
) {
    while let Some((req, send)) = handle.next_request().await {
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or_default().to_string();
        let body = req.into_body().collect_bytes().await.unwrap_or_default();
        let resp = if query.contains("watch=true") {
            let (tx, rx) = mpsc::unbounded::<Bytes>();
            if let Ok(mut w) = watches.lock() {
                w.insert(path.clone(), tx);
            }
            BodyExt::boxed(StreamBody::new(rx.map(|b| Ok::<_, Infallible>(Frame::data(b)))))
        } else {
            let _ = log.unbounded_send(format!("{method} {path}"));
            match method {
                Method::GET if path == REGISTRIES => full(&json!({
                    "apiVersion": "banterpacks.io/v1alpha1", "kind": "BanterRegistryList",
                    "metadata": {"resourceVersion": "11"}, "items": [registry(1, None), size_null(), unreadable()]})),
                Method::GET if path.starts_with("/apis/monitoring.coreos.com") || path.contains("/secrets/") => {
                    let r = Response::builder()
                        .status(404)
                        .body(full(&json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404, "reason": "NotFound"})))
                        .expect("response");
                    send.send_response(r);
                    continue;
                }
                Method::GET => full(
                    &json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "5"}, "items": []}),
                ),
                // Writes: echo what was sent (enough for the client to parse).
                _ => {
                    let mut v: Value = serde_json::from_slice(&body).unwrap_or(json!({}));
                    if v.get("metadata").is_none() {
                        v = registry(1, None);
                    }
                    full(&v)
                }
            }
        };
        send.send_response(Response::builder().status(200).body(resp).expect("response"));
    }
}

fn watch_event(kind: &str, obj: &Value) -> Bytes {
    Bytes::from(format!("{}\n", json!({"type": kind, "object": obj})))
}

/// Collects logged requests until `quiet` passes without a new one.
async fn drain(rx: &mut mpsc::UnboundedReceiver<String>, quiet: Duration) -> Vec<String> {
    let mut out = Vec::new();
    while let Ok(Some(line)) = tokio::time::timeout(quiet, rx.next()).await {
        out.push(line);
    }
    out
}

#[tokio::test]
async fn controller_reconciles_and_ignores_its_own_status_writes() {
    let (svc, handle) = tower_test::mock::pair::<Request<Body>, Response<RespBody>>();
    let (log_tx, mut log) = mpsc::unbounded();
    let watches: WatchSenders = Arc::default();
    tokio::spawn(api_server(handle, log_tx, watches.clone()));
    let client = Client::new(svc, "banter");
    let (sink, events) = EventSink::memory();
    let ctx = Arc::new(Context::new(
        client.clone(),
        Settings::default(),
        Arc::new(Metrics::default()),
        sink,
        || "tok".to_string(),
    ));
    let task = tokio::spawn(controller::controller(client, Some("banter".into()), ctx));

    // Startup: one LIST per watched kind, then every registry from the
    // initial LIST is reconciled once.
    let first = drain(&mut log, Duration::from_secs(2)).await;
    let writes: Vec<_> = first.iter().filter(|l| !l.starts_with("GET")).cloned().collect();
    let lists = first
        .iter()
        .filter(|l| l.starts_with("GET") && !l.contains("/secrets/"))
        .count();
    assert_eq!(
        lists, 10,
        "the registries and the nine built-in child kinds, listed once (Secrets are never listed): {first:?}"
    );
    for name in ["packs", "nullsize"] {
        let get = format!("GET /api/v1/namespaces/banter/secrets/{name}-tokens");
        assert_eq!(
            first.iter().filter(|l| **l == get).count(),
            1,
            "the token Secret is looked up by name, once: {first:?}"
        );
    }
    for name in ["packs", "nullsize"] {
        for expected in [
            format!("PATCH /api/v1/namespaces/banter/configmaps/{name}-config"),
            "POST /api/v1/namespaces/banter/secrets".to_string(),
            format!("PATCH /api/v1/namespaces/banter/persistentvolumeclaims/{name}-data"),
            format!("PATCH /api/v1/namespaces/banter/services/{name}"),
            format!("PATCH /apis/apps/v1/namespaces/banter/deployments/{name}"),
            format!("PATCH /apis/banterpacks.io/v1alpha1/namespaces/banter/banterregistries/{name}/status"),
        ] {
            assert!(writes.contains(&expected), "missing {expected} in {writes:?}");
        }
    }
    // The unreadable one breaks nothing: it only gets its InvalidSpec status.
    let broken: Vec<_> = writes.iter().filter(|w| w.contains("broken")).collect();
    assert_eq!(
        broken,
        ["PATCH /apis/banterpacks.io/v1alpha1/namespaces/banter/banterregistries/broken/status"],
        "{writes:?}"
    );
    let recorded = events.lock().expect("events").clone();
    assert!(recorded.iter().any(|e| e.reason == "Created"));
    assert!(
        recorded.iter().any(|e| e.warning
            && e.reason == "InvalidSpec"
            && e.note.contains("spec.storage.backend: unknown variant `mongodb`")),
        "{recorded:?}"
    );
    assert_eq!(
        writes.iter().filter(|w| w.ends_with("/status")).count(),
        3,
        "one status write per registry: {writes:?}"
    );

    // Our own status write comes back as a watch event: no reconcile.
    let registry_watch = watches
        .lock()
        .expect("watches")
        .get(REGISTRIES)
        .cloned()
        .expect("registry watch open");
    let status = json!({"observedGeneration": 1, "readyReplicas": 0});
    registry_watch
        .unbounded_send(watch_event("MODIFIED", &registry(1, Some(status.clone()))))
        .expect("push");
    let after_status = drain(&mut log, Duration::from_secs(2)).await;
    assert!(
        after_status.is_empty(),
        "status-only change re-triggered: {after_status:?}"
    );

    // A spec change (new generation) reconciles from the caches: no LIST,
    // no GET, only the writes the change needs (here: the status).
    registry_watch
        .unbounded_send(watch_event("MODIFIED", &registry(2, Some(status))))
        .expect("push");
    let after_spec = drain(&mut log, Duration::from_secs(2)).await;
    assert!(
        after_spec.iter().all(|l| !l.starts_with("GET")),
        "observed from the caches: {after_spec:?}"
    );
    assert!(
        after_spec.contains(
            &"PATCH /apis/banterpacks.io/v1alpha1/namespaces/banter/banterregistries/packs/status".to_string()
        ),
        "spec change must reconcile: {after_spec:?}"
    );

    // A child event reconciles the registry its instance label names, even
    // without an owner reference (a retained volume binding).
    let claims = watches
        .lock()
        .expect("watches")
        .get("/api/v1/namespaces/banter/persistentvolumeclaims")
        .cloned()
        .expect("claim watch open");
    let bound = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "packs-data", "namespace": "banter", "resourceVersion": "200",
            "labels": {"app.kubernetes.io/managed-by": "banter-operator", "app.kubernetes.io/instance": "packs",
                       "banterpacks.io/data": "sqlite"}},
        "spec": {},
        "status": {"phase": "Bound"}});
    claims.unbounded_send(watch_event("MODIFIED", &bound)).expect("push");
    let after_child = drain(&mut log, Duration::from_secs(2)).await;
    assert!(
        after_child.iter().all(|l| !l.starts_with("GET")),
        "observed from the caches: {after_child:?}"
    );
    assert!(
        after_child.contains(&"PATCH /api/v1/namespaces/banter/persistentvolumeclaims/packs-data".to_string()),
        "the claim's event reconciled its registry (and repaired the claim): {after_child:?}"
    );
    task.abort();
}
