//! `make bench-operator`: N `BanterRegistry` objects created at once, the
//! real `banter-operator` binary reconciling them against a stateful fake
//! API server over real HTTP on loopback. The fake keeps objects, resource
//! versions, an event log and open watch streams, answers server-side apply,
//! merge and JSON patches, and plays the built-in controllers (a Deployment,
//! StatefulSet or PVC written by the operator reports rolled-out / ready /
//! bound a moment later, as its own event).
//!
//! Reports time until every registry is `Ready=True` for its generation,
//! reconciles, requests by verb and per reconcile, and the operator's RSS;
//! then pokes every Deployment with a no-op change and counts what a
//! steady-state reconcile sends (goal: nothing).
//!
//! `scale [--registries N] [--operator PATH]`

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use bytes::Bytes;
use futures::channel::mpsc;
use serde_json::{Value, json};

const NS: &str = "bench";

/// group/version/plural of a resource path segment set.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Resource {
    prefix: String,
    plural: String,
}

/// A request path, taken apart.
struct Target {
    resource: Resource,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

fn parse(path: &str) -> Option<Target> {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (prefix, rest) = match segs.first() {
        Some(&"api") => (format!("/api/{}", segs.get(1)?), segs.get(2..)?),
        Some(&"apis") => (format!("/apis/{}/{}", segs.get(1)?, segs.get(2)?), segs.get(3..)?),
        _ => return None,
    };
    let (namespace, rest) = if rest.first() == Some(&"namespaces") && rest.len() >= 3 {
        (Some(rest[1].to_string()), &rest[2..])
    } else {
        (None, rest)
    };
    Some(Target {
        resource: Resource {
            prefix,
            plural: rest.first()?.to_string(),
        },
        namespace,
        name: rest.get(1).map(|s| s.to_string()),
        subresource: rest.get(2).map(|s| s.to_string()),
    })
}

fn query(q: &str, key: &str) -> Option<String> {
    q.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| {
            v.replace("%2F", "/")
                .replace("%3D", "=")
                .replace("%2C", ",")
                .replace("%21", "!")
        })
    })
}

fn matches_labels(obj: &Value, selector: Option<&str>) -> bool {
    let Some(sel) = selector.filter(|s| !s.is_empty()) else {
        return true;
    };
    sel.split(',').all(|term| match term.split_once('=') {
        Some((k, v)) => {
            obj.pointer("/metadata/labels")
                .and_then(|l| l.get(k))
                .and_then(Value::as_str)
                == Some(v)
        }
        None => true,
    })
}

struct Watch {
    resource: Resource,
    namespace: Option<String>,
    selector: Option<String>,
    tx: mpsc::UnboundedSender<Result<Bytes, Infallible>>,
}

#[derive(Default)]
struct State {
    objects: BTreeMap<(Resource, String, String), Value>,
    rv: u64,
    /// (resourceVersion, resource, event JSON) for watches that start late.
    log: Vec<(u64, Resource, Value)>,
    watches: Vec<Watch>,
    counts: BTreeMap<String, u64>,
}

impl State {
    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    fn emit(&mut self, resource: &Resource, kind: &str, obj: &Value) {
        let rv = obj["metadata"]["resourceVersion"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or(self.rv);
        let event = json!({"type": kind, "object": obj});
        self.log.push((rv, resource.clone(), event.clone()));
        let ns = obj["metadata"]["namespace"].as_str().unwrap_or_default().to_string();
        let line = Bytes::from(format!("{event}\n"));
        self.watches.retain(|w| {
            if w.resource != *resource
                || w.namespace.as_ref().is_some_and(|n| *n != ns)
                || !matches_labels(obj, w.selector.as_deref())
            {
                return !w.tx.is_closed();
            }
            w.tx.unbounded_send(Ok(line.clone())).is_ok()
        });
    }

    /// Stores `obj` with a new resourceVersion and emits its event.
    fn put(&mut self, resource: &Resource, ns: &str, name: &str, mut obj: Value, event: &str) -> Value {
        let rv = self.next_rv();
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        self.objects
            .insert((resource.clone(), ns.to_string(), name.to_string()), obj.clone());
        self.emit(resource, event, &obj);
        obj
    }

    fn count(&mut self, what: &str) {
        *self.counts.entry(what.to_string()).or_insert(0) += 1;
    }
}

type Shared = Arc<Mutex<State>>;

fn json_response(code: u16, v: &Value) -> Response {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(v).unwrap_or_default()))
        .unwrap_or_default()
}

fn status(code: u16, reason: &str, message: &str) -> Response {
    json_response(
        code,
        &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "code": code, "message": message}),
    )
}

/// What the built-in controllers would report, a moment after a write.
fn simulated_status(plural: &str, obj: &Value) -> Option<Value> {
    match plural {
        "deployments" => {
            let replicas = obj["spec"]["replicas"].as_i64().unwrap_or(1);
            Some(
                json!({"observedGeneration": obj["metadata"]["generation"], "replicas": replicas,
                "updatedReplicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas}),
            )
        }
        "statefulsets" => Some(
            json!({"observedGeneration": obj["metadata"]["generation"], "replicas": 1,
            "readyReplicas": 1, "currentReplicas": 1, "updatedReplicas": 1}),
        ),
        "persistentvolumeclaims" => Some(json!({"phase": "Bound"})),
        _ => None,
    }
}

async fn handle(state: Shared, req: Request) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let q = req.uri().query().unwrap_or_default().to_string();
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = axum::body::to_bytes(req.into_body(), 64 << 20)
        .await
        .unwrap_or_default();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);

    if path == "/version" {
        return json_response(
            200,
            &json!({"major": "1", "minor": "32", "gitVersion": "v1.32.0-fake", "platform": "linux/amd64"}),
        );
    }
    let Some(t) = parse(&path) else {
        return status(404, "NotFound", "no such path");
    };
    if t.resource.plural.is_empty() || (t.resource.prefix.starts_with("/apis/monitoring.coreos.com")) {
        return status(404, "NotFound", "the server could not find the requested resource");
    }
    let watch = query(&q, "watch").is_some_and(|v| v == "true" || v == "1");
    let mut s = match state.lock() {
        Ok(s) => s,
        Err(_) => return status(500, "InternalError", "poisoned"),
    };
    let plural = t.resource.plural.clone();
    let verb = match (&method, t.name.is_some(), watch) {
        (&http::Method::GET, false, true) => "watch",
        (&http::Method::GET, false, false) => "list",
        (&http::Method::GET, true, _) => "get",
        (&http::Method::POST, _, _) => "create",
        (&http::Method::PATCH, _, _) if t.subresource.is_some() => "patch-status",
        (&http::Method::PATCH, _, _) => "patch",
        (&http::Method::DELETE, _, _) => "delete",
        _ => "other",
    };
    if plural == "events" {
        s.count("events");
    } else {
        s.count(verb);
        s.count(&format!("{verb} {plural}"));
    }
    let selector = query(&q, "labelSelector");

    match (verb, &t.name) {
        ("list", _) => {
            let items: Vec<Value> = s
                .objects
                .iter()
                .filter(|((r, ns, _), o)| {
                    *r == t.resource
                        && t.namespace.as_ref().is_none_or(|n| n == ns)
                        && matches_labels(o, selector.as_deref())
                })
                .map(|(_, o)| o.clone())
                .collect();
            json_response(
                200,
                &json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": s.rv.to_string()}, "items": items}),
            )
        }
        ("watch", _) => {
            let from: u64 = query(&q, "resourceVersion").and_then(|v| v.parse().ok()).unwrap_or(0);
            let (tx, rx) = mpsc::unbounded();
            for (rv, r, ev) in &s.log {
                if *rv > from
                    && *r == t.resource
                    && t.namespace
                        .as_ref()
                        .is_none_or(|n| ev["object"]["metadata"]["namespace"] == n.as_str())
                    && matches_labels(&ev["object"], selector.as_deref())
                {
                    let _ = tx.unbounded_send(Ok(Bytes::from(format!("{ev}\n"))));
                }
            }
            s.watches.push(Watch {
                resource: t.resource.clone(),
                namespace: t.namespace.clone(),
                selector,
                tx,
            });
            Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .body(Body::from_stream(rx))
                .unwrap_or_default()
        }
        ("get", Some(name)) => {
            let ns = t.namespace.clone().unwrap_or_default();
            match s.objects.get(&(t.resource.clone(), ns, name.clone())) {
                Some(o) => json_response(200, o),
                None => status(404, "NotFound", &format!("{plural} \"{name}\" not found")),
            }
        }
        ("create", None) => {
            if plural == "events" {
                return json_response(201, &body);
            }
            let ns = t.namespace.clone().unwrap_or_default();
            let name = body["metadata"]["name"].as_str().unwrap_or_default().to_string();
            if s.objects.contains_key(&(t.resource.clone(), ns.clone(), name.clone())) {
                return status(409, "AlreadyExists", &format!("{plural} \"{name}\" already exists"));
            }
            let mut obj = body;
            obj["metadata"]["uid"] = json!(format!("uid-{plural}-{name}"));
            obj["metadata"]["generation"] = json!(1);
            obj["metadata"]["creationTimestamp"] = json!("2026-12-02T00:00:00Z");
            let created = s.put(&t.resource, &ns, &name, obj, "ADDED");
            json_response(201, &created)
        }
        ("patch" | "patch-status", Some(name)) => {
            if plural == "events" {
                return json_response(200, &body);
            }
            let ns = t.namespace.clone().unwrap_or_default();
            let key = (t.resource.clone(), ns.clone(), name.clone());
            let old = s.objects.get(&key).cloned();
            let mut obj = match (&old, content_type.as_str()) {
                (None, ct) if ct.starts_with("application/apply-patch") && verb == "patch" => {
                    let mut o = body.clone();
                    o["metadata"]["uid"] = json!(format!("uid-{plural}-{name}"));
                    o["metadata"]["generation"] = json!(1);
                    o
                }
                (None, _) => return status(404, "NotFound", &format!("{plural} \"{name}\" not found")),
                (Some(old), ct) if ct.starts_with("application/apply-patch") => {
                    let mut o = old.clone();
                    if verb == "patch-status" {
                        o["status"] = body["status"].clone();
                    } else {
                        // Applied fields replace the stored ones (one field manager).
                        if let Some(fields) = body.as_object() {
                            for (k, v) in fields {
                                if k == "metadata" {
                                    for (mk, mv) in v.as_object().into_iter().flatten() {
                                        o["metadata"][mk] = mv.clone();
                                    }
                                } else if k != "status" {
                                    o[k] = v.clone();
                                }
                            }
                        }
                        if old.get("spec") != o.get("spec") {
                            let g = old["metadata"]["generation"].as_i64().unwrap_or(1);
                            o["metadata"]["generation"] = json!(g + 1);
                        }
                    }
                    o
                }
                (Some(old), ct) if ct.starts_with("application/merge-patch") => {
                    let mut o = old.clone();
                    json_patch::merge(&mut o, &body);
                    o
                }
                (Some(old), ct) if ct.starts_with("application/json-patch") => {
                    let mut o = old.clone();
                    // Like the API server's json-patch: `test` of an absent
                    // path against null succeeds.
                    let ops: Vec<Value> = body
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(|op| {
                            let absent = op["path"].as_str().is_some_and(|p| o.pointer(p).is_none());
                            !(op["op"] == "test" && op["value"].is_null() && absent)
                        })
                        .cloned()
                        .collect();
                    let Ok(p) = serde_json::from_value::<json_patch::Patch>(Value::Array(ops)) else {
                        return status(400, "BadRequest", "bad json patch");
                    };
                    if json_patch::patch(&mut o, &p).is_err() {
                        return status(422, "Invalid", "json patch test failed");
                    }
                    o
                }
                (Some(_), _) => return status(415, "UnsupportedMediaType", "content type"),
            };
            if obj["metadata"]["namespace"].is_null() && !ns.is_empty() {
                obj["metadata"]["namespace"] = json!(ns);
            }
            // Like the API server: a write that changes nothing keeps the
            // resourceVersion and sends no watch event.
            if let Some(old) = &old {
                let mut same = obj.clone();
                same["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
                if &same == old {
                    return json_response(200, old);
                }
            }
            let event = if old.is_some() { "MODIFIED" } else { "ADDED" };
            let stored = s.put(&t.resource, &ns, name, obj, event);
            // The built-in controller reports a moment later, as its own write.
            if verb == "patch"
                && let Some(st) = simulated_status(&plural, &stored)
                && stored.get("status") != Some(&st)
            {
                let state = state.clone();
                let resource = t.resource.clone();
                let name = name.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    if let Ok(mut s) = state.lock() {
                        let key = (resource.clone(), ns.clone(), name.clone());
                        if let Some(mut o) = s.objects.get(&key).cloned() {
                            o["status"] = simulated_status(&resource.plural, &o).unwrap_or(st);
                            s.put(&resource, &ns, &name, o, "MODIFIED");
                        }
                    }
                });
            }
            json_response(200, &stored)
        }
        ("delete", Some(name)) => {
            let ns = t.namespace.clone().unwrap_or_default();
            match s.objects.remove(&(t.resource.clone(), ns, name.clone())) {
                Some(mut o) => {
                    let rv = s.next_rv();
                    o["metadata"]["resourceVersion"] = json!(rv.to_string());
                    s.emit(&t.resource, "DELETED", &o);
                    json_response(
                        200,
                        &json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 200}),
                    )
                }
                None => status(404, "NotFound", &format!("{plural} \"{name}\" not found")),
            }
        }
        _ => status(405, "MethodNotAllowed", "unsupported"),
    }
}

fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn converged(s: &State, registries: &Resource) -> usize {
    s.objects
        .iter()
        .filter(|((r, _, _), o)| {
            r == registries
                && o.pointer("/status/observedGeneration") == o.pointer("/metadata/generation")
                && o.pointer("/status/conditions")
                    .and_then(Value::as_array)
                    .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
        })
        .count()
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

async fn operator_metrics(port: u16) -> String {
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return String::new();
    };
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let req = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    if stream.write_all(req.as_bytes()).await.is_err() {
        return String::new();
    }
    let mut out = String::new();
    let _ = stream.read_to_string(&mut out).await;
    out
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut n: usize = 1000;
    let mut operator = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--registries" => n = args.next().and_then(|v| v.parse().ok()).unwrap_or(n),
            "--operator" => operator = args.next(),
            other => anyhow::bail!("unknown argument {other}; usage: scale [--registries N] [--operator PATH]"),
        }
    }
    let operator = match operator {
        Some(p) => std::path::PathBuf::from(p),
        None => std::env::current_exe()?
            .parent()
            .and_then(|p| p.parent())
            .map(|p| p.join("banter-operator"))
            .ok_or_else(|| anyhow::anyhow!("cannot locate the operator binary"))?,
    };

    let state: Shared = Arc::default();
    let registries = Resource {
        prefix: "/apis/banterpacks.io/v1alpha1".into(),
        plural: "banterregistries".into(),
    };
    {
        let mut s = state.lock().map_err(|_| anyhow::anyhow!("lock"))?;
        for i in 0..n {
            let name = format!("reg-{i:04}");
            let spec = if i % 2 == 0 {
                json!({})
            } else {
                json!({"replicas": 2, "storage": {"backend": "redis"}})
            };
            let obj = json!({"apiVersion": "banterpacks.io/v1alpha1", "kind": "BanterRegistry",
                "metadata": {"name": name, "namespace": NS, "uid": format!("uid-reg-{i}"), "generation": 1,
                             "creationTimestamp": "2026-12-02T00:00:00Z"},
                "spec": spec});
            s.put(&registries, NS, &name, obj, "ADDED");
        }
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let api_port = listener.local_addr()?.port();
    let app = axum::Router::new().fallback({
        let state = state.clone();
        move |req: Request| handle(state.clone(), req)
    });
    tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = std::env::temp_dir().join(format!("banter-scale-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://127.0.0.1:{api_port}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: {NS}\ncurrent-context: fake\nusers:\n- name: fake\n  user: {{}}\n"
        ),
    )?;
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let start = Instant::now();
    let mut child = tokio::process::Command::new(&operator)
        .args(["run", "--metrics-listen", &format!("127.0.0.1:{metrics_port}")])
        .env("KUBECONFIG", &kubeconfig)
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| anyhow::anyhow!("starting {}: {e}", operator.display()))?;
    let pid = child.id().unwrap_or(0);

    let mut peak = 0;
    let limit = Duration::from_secs(600);
    let took = loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        peak = peak.max(rss_kib(pid, "VmRSS:"));
        let done = state.lock().map(|s| converged(&s, &registries)).unwrap_or(0);
        if done == n {
            break start.elapsed();
        }
        if start.elapsed() > limit || child.try_wait()?.is_some() {
            anyhow::bail!("not converged: {done}/{n} after {:?}", start.elapsed());
        }
    };
    // Let trailing status events settle, then read the counts.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let converge_counts = state.lock().map(|s| s.counts.clone()).unwrap_or_default();
    let text = operator_metrics(metrics_port).await;
    let reconciles = metric(&text, "banter_operator_reconciliations_total");
    let errors: f64 = text
        .lines()
        .filter(|l| l.starts_with("banter_operator_reconcile_errors_total{"))
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .sum();

    // Steady state: poke every Deployment (a label no one owns); each poke
    // reconciles its registry, which must find nothing to do.
    let poke_start = metric(
        &operator_metrics(metrics_port).await,
        "banter_operator_reconciliations_total",
    );
    let before = state.lock().map(|s| s.counts.clone()).unwrap_or_default();
    {
        let mut s = state.lock().map_err(|_| anyhow::anyhow!("lock"))?;
        let deployments: Vec<_> = s
            .objects
            .iter()
            .filter(|((r, _, _), _)| r.plural == "deployments")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for ((r, ns, name), mut o) in deployments {
            o["metadata"]["labels"]["bench/poke"] = json!("1");
            s.put(&r, &ns, &name, o, "MODIFIED");
        }
    }
    // Until the reconcile count has stood still for two seconds.
    let mut steady_reconciles = 0.0;
    let mut still = Instant::now();
    let settle = Instant::now();
    while still.elapsed() < Duration::from_secs(2) && settle.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = metric(
            &operator_metrics(metrics_port).await,
            "banter_operator_reconciliations_total",
        ) - poke_start;
        if now != steady_reconciles {
            steady_reconciles = now;
            still = Instant::now();
        }
    }
    let after = state.lock().map(|s| s.counts.clone()).unwrap_or_default();
    let rss_final = rss_kib(pid, "VmRSS:");
    let hwm = rss_kib(pid, "VmHWM:");
    let _ = child.start_kill();
    let _ = std::fs::remove_dir_all(&dir);

    let total = |c: &BTreeMap<String, u64>, k: &str| c.get(k).copied().unwrap_or(0);
    let verbs = ["list", "watch", "get", "create", "patch", "patch-status", "delete"];
    println!(
        "banter-operator scale benchmark: {n} BanterRegistry objects created at once (half SQLite, half Redis with 2 replicas), one namespace, fake API server over HTTP on loopback"
    );
    println!();
    println!("| measure | value |");
    println!("| --- | --- |");
    println!("| time until all Ready=True | {:.1} s |", took.as_secs_f64());
    println!(
        "| reconciles | {reconciles} ({:.2} per registry) |",
        reconciles / n as f64
    );
    println!("| reconcile errors | {} |", errors as u64);
    let requests: u64 = verbs.iter().map(|v| total(&converge_counts, v)).sum();
    println!(
        "| API requests (no events) | {requests} ({:.2} per reconcile) |",
        requests as f64 / reconciles.max(1.0)
    );
    for v in verbs {
        println!(
            "| — {v} | {} ({:.3} per reconcile) |",
            total(&converge_counts, v),
            total(&converge_counts, v) as f64 / reconciles.max(1.0)
        );
    }
    println!(
        "| Event writes (create or patch) | {} |",
        total(&converge_counts, "events")
    );
    println!(
        "| operator RSS, peak while converging (VmHWM) | {:.1} MiB |",
        hwm as f64 / 1024.0
    );
    println!(
        "| operator RSS, sampled peak / at the end | {:.1} / {:.1} MiB |",
        peak as f64 / 1024.0,
        rss_final as f64 / 1024.0
    );
    println!();
    let steady: HashMap<&str, u64> = verbs
        .iter()
        .map(|v| (*v, total(&after, v) - total(&before, v)))
        .collect();
    println!(
        "steady state: {steady_reconciles} reconciles after poking every Deployment sent list={} get={} create={} patch={} patch-status={} delete={} (new watches: {})",
        steady["list"],
        steady["get"],
        steady["create"],
        steady["patch"],
        steady["patch-status"],
        steady["delete"],
        steady["watch"]
    );
    let by_kind: Vec<String> = converge_counts
        .iter()
        .filter(|(k, _)| k.contains(' '))
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    println!(
        "requests while converging, by verb and resource: {}",
        by_kind.join(", ")
    );
    Ok(())
}
