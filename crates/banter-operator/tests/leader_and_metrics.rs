//! Leader election against a mocked API server, and the metrics/health HTTP endpoints.

use std::sync::Arc;
use std::time::Duration;

use banter_operator::leader::{LeaderElector, expired_by_observation};
use banter_operator::metrics::{self, Metrics};
use http::{Method, Request, Response};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LEASE_PATH: &str = "/apis/coordination.k8s.io/v1/namespaces/ops/leases/banter-operator-leader";

fn lease(holder: &str, renewed: Timestamp) -> Value {
    lease_for(holder, renewed, 15)
}

fn lease_for(holder: &str, renewed: Timestamp, seconds: i32) -> Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "banter-operator-leader", "namespace": "ops", "resourceVersion": "7"},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": seconds,
                 "renewTime": renewed.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(), "leaseTransitions": 2}
    })
}

/// Serves `answers` in order, checking method and path; returns the bodies received.
async fn serve(
    mut handle: tower_test::mock::Handle<Request<Body>, Response<Body>>,
    answers: Vec<(Method, &'static str, u16, Value)>,
) -> Vec<Value> {
    let mut bodies = Vec::new();
    for (method, path, code, resp) in answers {
        let (req, send) = handle.next_request().await.expect("request");
        assert_eq!((req.method(), req.uri().path()), (&method, path));
        let bytes = req.into_body().collect_bytes().await.expect("body");
        bodies.push(if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("json")
        });
        send.send_response(
            Response::builder()
                .status(code)
                .body(Body::from(serde_json::to_vec(&resp).expect("json")))
                .expect("response"),
        );
    }
    assert!(handle.next_request().await.is_none(), "no further request");
    bodies
}

async fn elect(answers: Vec<(Method, &'static str, u16, Value)>) -> (bool, Vec<Value>) {
    let (svc, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let task = tokio::spawn(serve(handle, answers));
    let won = {
        let elector = elector(svc, Duration::from_secs(15));
        elector.try_acquire_or_renew().await.expect("request succeeds")
    };
    (won, task.await.expect("scenario"))
}

/// Two attempts by one elector, `pause` apart: expiry is judged by how long
/// this replica has seen the same record, not by the holder's clock.
async fn elect_twice(answers: Vec<(Method, &'static str, u16, Value)>, pause: Duration) -> ([bool; 2], Vec<Value>) {
    let (svc, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let task = tokio::spawn(serve(handle, answers));
    let won = {
        let elector = elector(svc, Duration::from_secs(15));
        let first = elector.try_acquire_or_renew().await.expect("request succeeds");
        tokio::time::sleep(pause).await;
        let second = elector.try_acquire_or_renew().await.expect("request succeeds");
        [first, second]
    };
    (won, task.await.expect("scenario"))
}

/// The elector under test: identity `me`, Lease `ops/banter-operator-leader`.
fn elector(svc: tower_test::mock::Mock<Request<Body>, Response<Body>>, lease_duration: Duration) -> LeaderElector {
    LeaderElector::new(
        Client::new(svc, "ops"),
        "ops",
        "banter-operator-leader",
        "me",
        lease_duration,
    )
}

fn not_found() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404})
}

fn conflict() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Conflict", "code": 409})
}

#[tokio::test]
async fn creates_the_lease_when_absent() {
    let (won, bodies) = elect(vec![
        (Method::GET, LEASE_PATH, 404, not_found()),
        (
            Method::POST,
            "/apis/coordination.k8s.io/v1/namespaces/ops/leases",
            201,
            lease("me", Timestamp::now()),
        ),
    ])
    .await;
    assert!(won);
    assert_eq!(bodies[1]["spec"]["holderIdentity"], "me");
    assert_eq!(bodies[1]["spec"]["leaseDurationSeconds"], 15);
}

#[tokio::test]
async fn a_fresh_lease_of_another_replica_is_respected() {
    let (won, _) = elect(vec![(Method::GET, LEASE_PATH, 200, lease("other", Timestamp::now()))]).await;
    assert!(!won, "no write, no leadership while another holder renews");
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_with_optimistic_concurrency() {
    let stale = Timestamp::now() - SignedDuration::from_secs(60);
    let (won, bodies) = elect_twice(
        vec![
            (Method::GET, LEASE_PATH, 200, lease_for("other", stale, 1)),
            (Method::GET, LEASE_PATH, 200, lease_for("other", stale, 1)),
            (Method::PUT, LEASE_PATH, 200, lease("me", Timestamp::now())),
        ],
        Duration::from_millis(1100),
    )
    .await;
    assert_eq!(won, [false, true], "first sight of a record starts its lease locally");
    assert_eq!(
        bodies[2]["metadata"]["resourceVersion"], "7",
        "replace carries the version read"
    );
    assert_eq!(bodies[2]["spec"]["holderIdentity"], "me");
    assert_eq!(bodies[2]["spec"]["leaseTransitions"], 3);
}

#[tokio::test]
async fn losing_the_race_means_not_leader() {
    let stale = Timestamp::now() - SignedDuration::from_secs(60);
    let (won, _) = elect_twice(
        vec![
            (Method::GET, LEASE_PATH, 200, lease_for("other", stale, 1)),
            (Method::GET, LEASE_PATH, 200, lease_for("other", stale, 1)),
            (Method::PUT, LEASE_PATH, 409, conflict()),
        ],
        Duration::from_millis(1100),
    )
    .await;
    assert_eq!(won, [false, false]);
}

#[tokio::test]
async fn a_holder_whose_clock_runs_ahead_is_taken_over_after_a_lease_of_silence() {
    // Its renewTime is an hour in our future: the holder's clock cannot keep
    // a lease it stopped renewing.
    let ahead = Timestamp::now() + SignedDuration::from_secs(3600);
    let (won, _) = elect_twice(
        vec![
            (Method::GET, LEASE_PATH, 200, lease_for("other", ahead, 1)),
            (Method::GET, LEASE_PATH, 200, lease_for("other", ahead, 1)),
            (Method::PUT, LEASE_PATH, 200, lease("me", Timestamp::now())),
        ],
        Duration::from_millis(1100),
    )
    .await;
    assert_eq!(won, [false, true]);
}

#[tokio::test]
async fn a_holder_that_keeps_renewing_is_respected_whatever_its_clock_says() {
    // Renewal times an hour in our past, but moving: the holder is alive.
    let behind = Timestamp::now() - SignedDuration::from_secs(3600);
    let (won, _) = elect_twice(
        vec![
            (Method::GET, LEASE_PATH, 200, lease_for("other", behind, 1)),
            (
                Method::GET,
                LEASE_PATH,
                200,
                lease_for("other", behind + SignedDuration::from_secs(1), 1),
            ),
        ],
        Duration::from_millis(1100),
    )
    .await;
    assert_eq!(won, [false, false]);
}

#[test]
fn observation_expiry() {
    let t0 = std::time::Instant::now();
    assert!(!expired_by_observation(t0, 15, t0 + Duration::from_secs(14)));
    assert!(expired_by_observation(t0, 15, t0 + Duration::from_secs(15)));
    assert!(
        !expired_by_observation(t0 + Duration::from_secs(5), 15, t0),
        "earlier now is not expiry"
    );
}

#[tokio::test]
async fn release_hands_the_lease_back() {
    let (svc, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let task = tokio::spawn(serve(
        handle,
        vec![
            (Method::GET, LEASE_PATH, 200, lease("me", Timestamp::now())),
            (Method::PUT, LEASE_PATH, 200, lease("", Timestamp::now())),
        ],
    ));
    {
        let elector = elector(svc, Duration::from_secs(15));
        elector.release().await.expect("released");
    }
    let bodies = task.await.expect("scenario");
    assert!(
        bodies[1]["spec"].get("holderIdentity").is_none_or(Value::is_null),
        "{}",
        bodies[1]
    );
    assert_eq!(bodies[1]["spec"]["leaseDurationSeconds"], 1);
}

async fn get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    out
}

#[tokio::test]
async fn metrics_and_health_endpoints() {
    let m = Arc::new(Metrics::default());
    m.reconciled(Duration::from_millis(20));
    m.failed("Conflict");
    m.set_conditions("banter/a", Some(vec![("Ready".into(), "True".into())]));
    m.set_conditions("banter/b", Some(vec![("Ready".into(), "False".into())]));
    m.set_conditions("banter/c", Some(vec![("Ready".into(), "True".into())]));
    m.set_conditions("banter/c", None);
    m.child_applied("Deployment", "applied");
    m.child_applied("Service", "unchanged");
    m.kube_api_request("patch", "deployments", Some(200));
    m.kube_api_request("get", "secrets", Some(404));
    m.kube_api_request("list", "services", None);
    m.watching("services");
    m.watch_restarted("services");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let router = metrics::router(m.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });

    let text = get(addr, "/metrics").await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    for line in [
        "banter_operator_reconciliations_total 1",
        "banter_operator_reconcile_errors_total{reason=\"Conflict\"} 1",
        "banter_operator_reconcile_duration_seconds_count 1",
        "banter_operator_registries{condition=\"Ready\",status=\"True\"} 1",
        "banter_operator_registries{condition=\"Ready\",status=\"False\"} 1",
        // Known reasons exist at zero before their first failure.
        "banter_operator_reconcile_errors_total{reason=\"ServerError\"} 0",
        "banter_operator_child_applies_total{kind=\"Deployment\",result=\"applied\"} 1",
        "banter_operator_child_applies_total{kind=\"Service\",result=\"unchanged\"} 1",
        "banter_operator_kube_api_requests_total{verb=\"patch\",resource=\"deployments\",code=\"200\"} 1",
        "banter_operator_kube_api_errors_total{verb=\"get\",resource=\"secrets\",code=\"404\"} 1",
        "banter_operator_kube_api_errors_total{verb=\"list\",resource=\"services\",code=\"transport\"} 1",
        "banter_operator_watch_restarts_total{resource=\"services\"} 1",
        "banter_operator_watch_errors_total{resource=\"services\"} 0",
        "banter_operator_leader 0",
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
    assert!(
        !text.contains("kube_api_errors_total{verb=\"patch\""),
        "a 200 is not an error\n{text}"
    );
    assert!(
        text.contains(&format!(
            "banter_operator_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )),
        "{text}"
    );
    promtool_check_metrics(text.split_once("\r\n\r\n").map_or(text.as_str(), |(_, body)| body));
    assert!(get(addr, "/healthz").await.starts_with("HTTP/1.1 200"));
    assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 503"));
    m.set_ready(true);
    assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn the_leader_steps_down_when_another_replica_holds_the_lease() {
    let (svc, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    // First renewal succeeds, then another replica shows up as holder.
    let task = tokio::spawn(serve(
        handle,
        vec![
            (Method::GET, LEASE_PATH, 200, lease("me", Timestamp::now())),
            (Method::PUT, LEASE_PATH, 200, lease("me", Timestamp::now())),
            (Method::GET, LEASE_PATH, 200, lease("other", Timestamp::now())),
        ],
    ));
    {
        let elector = elector(svc, Duration::from_secs(1));
        tokio::time::timeout(Duration::from_secs(5), elector.hold())
            .await
            .expect("hold returns once leadership is lost");
    }
    task.await.expect("scenario");
}

#[tokio::test]
async fn the_leader_steps_down_when_a_renewal_hangs() {
    let (svc, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    // An API server that accepts requests and never answers (failover, partition).
    let sink = tokio::spawn(async move {
        let mut pending = Vec::new();
        while let Some(exchange) = handle.next_request().await {
            pending.push(exchange);
        }
    });
    let elector = elector(svc, Duration::from_secs(1));
    let started = tokio::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(5), elector.hold())
        .await
        .expect("hold returns although the renewal never completes");
    // Steps down at 2/3 of the lease, before a standby may take it over.
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "stepped down after {:?}",
        started.elapsed()
    );
    drop(elector);
    sink.abort();
}

/// Lints the exposition with Prometheus's own `promtool check metrics`.
fn promtool_check_metrics(text: &str) {
    use std::io::Write as _;
    let bin = std::env::var("PROMTOOL").unwrap_or_else(|_| "promtool".into());
    let mut child = std::process::Command::new(&bin)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{bin} is not installed ({e}): run `make deps`"));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("promtool runs");
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
