//! The Redis backend against a real redis-server that goes away, comes back,
//! is killed with SIGKILL, wants a password — and a migration from SQLite.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use futures::future::join_all;
use serde_json::Value;
use support::*;

// Tight enough to show bounded failures fast, loose enough for a busy 2-core CI machine.
const FAST: &[&str] = &["--redis-command-timeout", "1500ms", "--redis-connect-timeout", "500ms"];

fn redis_fixture(appendfsync: &'static str) -> (tempfile::TempDir, Redis, Server) {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(&dir.path().join("redis"), appendfsync);
    let backend = Backend::Redis {
        url: redis.url(),
        prefix: "faults:".into(),
    };
    let server = Server::start(backend, dir.path(), FAST);
    (dir, redis, server)
}

async fn wait_for(s: &Server, path: &str, status: u16, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let got = s
            .http
            .get(s.url(path))
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0);
        if got == status {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "{path} did not answer {status} within {within:?} (last {got})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_answers_503_and_recovers_without_restart() {
    let (_dir, mut redis, s) = redis_fixture("always");
    let body = pack("steady", "1.0.0", 0);
    assert_eq!(s.publish("steady", "1.0.0", &body).await.status(), 201);

    // Keep a load running across the outage and the recovery; record every status.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let statuses = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let load = {
        let (stop, statuses, http, url) = (
            stop.clone(),
            statuses.clone(),
            s.http.clone(),
            s.url("/v1/packs/steady/versions/latest"),
        );
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let start = Instant::now();
                let st = http.get(&url).send().await.map(|r| r.status().as_u16()).unwrap_or(0);
                statuses.lock().unwrap().push((st, start.elapsed()));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;

    redis.kill9();
    wait_for(&s, "/readyz", 503, Duration::from_secs(5)).await;
    assert_eq!(
        s.get("/healthz").await.status(),
        200,
        "liveness does not depend on Redis"
    );

    let start = Instant::now();
    let r = s.get("/v1/packs/steady/versions/1.0.0").await;
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "a read took {:?} while Redis was down",
        start.elapsed()
    );
    assert_eq!(r.headers()["retry-after"], "1");
    let (status, code, _) = error_code(r).await;
    assert_eq!((status, code.as_str()), (503, "STORAGE_UNAVAILABLE"));
    let start = Instant::now();
    let (status, code, _) = error_code(s.publish("steady", "2.0.0", &pack("steady", "2.0.0", 0)).await).await;
    assert_eq!((status, code.as_str()), (503, "STORAGE_UNAVAILABLE"));
    assert!(start.elapsed() < Duration::from_secs(3));
    for path in ["/v1/packs", "/v1/packs/steady", "/v1/stats"] {
        let (status, code, _) = error_code(s.get(path).await).await;
        assert_eq!((status, code.as_str()), (503, "STORAGE_UNAVAILABLE"), "{path}");
    }
    let metrics = s.get("/metrics").await;
    assert_eq!(metrics.status(), 200, "metrics are served while Redis is down");
    assert!(
        metrics
            .text()
            .await
            .unwrap()
            .contains("banter_registry_storage_up{backend=\"redis\"} 0")
    );

    redis.restart();
    let recovered = wait_for(&s, "/readyz", 200, Duration::from_secs(10)).await;
    eprintln!("readiness recovered {recovered:?} after Redis restarted");
    let r = s.get("/v1/packs/steady/versions/1.0.0").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), body.as_slice());
    // The first write after a restart may still meet the command bound
    // on a loaded machine (script reload, AOF fsync); a 503 with Retry-After is
    // then the right answer, and a client that retries as told must succeed.
    let body2 = pack("steady", "2.0.0", 0);
    let mut attempts = Vec::new();
    for _ in 0..20 {
        let status = s.publish("steady", "2.0.0", &body2).await.status().as_u16();
        attempts.push(status);
        if status != 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        attempts.last(),
        Some(&201),
        "publish after recovery: {attempts:?}\n{}",
        s.logs()
    );

    // The load recovers too: its latest answer is a 200 (polled: on a busy
    // machine a read may still meet the command bound once, answered 503).
    let deadline = Instant::now() + Duration::from_secs(10);
    while statuses.lock().unwrap().last().map(|(st, _)| *st) != Some(200) {
        assert!(Instant::now() < deadline, "the load did not recover");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    load.await.unwrap();
    let statuses = statuses.lock().unwrap().clone();
    assert!(statuses.iter().any(|(st, _)| *st == 503), "the load saw the outage");
    assert!(
        statuses.iter().rev().take(2).any(|(st, _)| *st == 200),
        "the load recovered: {:?}",
        &statuses[statuses.len().saturating_sub(5)..]
    );
    assert!(
        statuses.iter().all(|(st, _)| matches!(st, 200 | 503)),
        "only 200 or 503 under faults: {statuses:?}"
    );
    let slowest = statuses.iter().map(|(_, d)| *d).max().unwrap();
    assert!(slowest < Duration::from_secs(3), "a request hung for {slowest:?}");
    assert!(!s.logs().contains("panicked"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_publishes_survive_redis_sigkill_with_appendfsync_always() {
    let (_dir, mut redis, s) = redis_fixture("always");
    let bodies: Vec<(String, Vec<u8>)> = (0..60)
        .map(|i| (format!("3.0.{i}"), pack("aof", &format!("3.0.{i}"), i)))
        .collect();
    let acked = join_all(
        bodies
            .iter()
            .map(|(v, b)| async { s.publish("aof", v, b).await.status().as_u16() }),
    )
    .await;
    assert!(acked.iter().all(|st| *st == 201), "{acked:?}");
    assert_eq!(s.tag("aof", "stable", "3.0.7").await.status(), 200);
    assert_eq!(s.yank("aof", "3.0.59", true).await.status(), 200);

    redis.kill9();
    redis.restart();
    wait_for(&s, "/readyz", 200, Duration::from_secs(10)).await;
    for (v, body) in &bodies {
        let r = s.get(&format!("/v1/packs/aof/versions/{v}")).await;
        assert_eq!(r.status(), 200, "{v} lost");
        assert_eq!(r.bytes().await.unwrap().as_ref(), body.as_slice());
    }
    let info: Value = s.get("/v1/packs/aof").await.json().await.unwrap();
    assert_eq!(info["tags"]["stable"], "3.0.7");
    assert_eq!(info["tags"]["latest"], "3.0.58");
    let stats: Value = s.get("/v1/stats").await.json().await.unwrap();
    assert_eq!(stats["versions"], 60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_starts_before_redis_and_becomes_ready() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let backend = Backend::Redis {
        url: format!("redis://127.0.0.1:{port}/0"),
        prefix: "late:".into(),
    };
    let s = Server::start(backend, dir.path(), FAST);
    assert_eq!(s.get("/healthz").await.status(), 200);
    assert_eq!(s.get("/readyz").await.status(), 503);
    let _redis = Redis::start_on(&dir.path().join("redis"), "always", Some(port));
    wait_for(&s, "/readyz", 200, Duration::from_secs(10)).await;
    assert_eq!(
        s.publish("late", "1.0.0", &pack("late", "1.0.0", 0)).await.status(),
        201
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_prefixes_isolate_registries_sharing_one_redis() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(&dir.path().join("redis"), "everysec");
    let a = Server::start(
        Backend::Redis {
            url: redis.url(),
            prefix: "a:".into(),
        },
        dir.path(),
        FAST,
    );
    let b = Server::start(
        Backend::Redis {
            url: redis.url(),
            prefix: "b:".into(),
        },
        dir.path(),
        FAST,
    );
    assert_eq!(
        a.publish("shared", "1.0.0", &pack("shared", "1.0.0", 1)).await.status(),
        201
    );
    assert_eq!(
        b.publish("shared", "1.0.0", &pack("shared", "1.0.0", 2)).await.status(),
        201
    );
    let from_a = a.get("/v1/packs/shared/versions/1.0.0").await.bytes().await.unwrap();
    let from_b = b.get("/v1/packs/shared/versions/1.0.0").await.bytes().await.unwrap();
    assert_eq!(from_a.as_ref(), pack("shared", "1.0.0", 1).as_slice());
    assert_eq!(from_b.as_ref(), pack("shared", "1.0.0", 2).as_slice());
    let stats: Value = a.get("/v1/stats").await.json().await.unwrap();
    assert_eq!(stats["versions"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_and_acl_user_urls_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let port_arg = port.to_string();
    let _redis = redis_with(
        dir.path(),
        &[
            "--port",
            &port_arg,
            "--requirepass",
            "default-secret",
            "--user",
            "registry",
            "on",
            ">user-secret",
            "~*",
            "&*",
            "+@all",
        ],
    );
    for (url, ready) in [
        (format!("redis://:default-secret@127.0.0.1:{port}/0"), 200),
        (format!("redis://registry:user-secret@127.0.0.1:{port}/0"), 200),
        (format!("redis://registry:wrong@127.0.0.1:{port}/0"), 503),
        (format!("redis://127.0.0.1:{port}/0"), 503),
    ] {
        let s = Server::start(
            Backend::Redis {
                url: url.clone(),
                prefix: "auth:".into(),
            },
            dir.path(),
            FAST,
        );
        assert_eq!(s.get("/readyz").await.status(), ready, "{url}");
        assert!(
            !s.logs().contains("user-secret") && !s.logs().contains("default-secret"),
            "a password was logged"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_from_sqlite_to_redis_is_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let on_sqlite = Backend::Sqlite(dir.path().join("src.db"));
    let sqlite = Server::start(on_sqlite.clone(), dir.path(), &[]);
    publish_corpus(&sqlite).await;
    let before = snapshot(&sqlite).await;

    let redis = Redis::start(&dir.path().join("redis"), "always");
    let on_redis = Backend::Redis {
        url: redis.url(),
        prefix: "m:".into(),
    };
    let out = migrate(&dir.path().join("migrate.tar.gz"), &on_sqlite, &on_redis);
    assert!(out.contains("40 versions added"), "{out}");
    let after = snapshot(&Server::start(on_redis.clone(), dir.path(), &[])).await;
    assert_eq!(before.len(), after.len());
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(b, a, "differs after migration: {}", b.0);
    }

    // And back: Redis → SQLite round-trips too.
    let back = Backend::Sqlite(dir.path().join("back.db"));
    migrate(&dir.path().join("back.tar.gz"), &on_redis, &back);
    assert_eq!(snapshot(&Server::start(back, dir.path(), &[])).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_urls_verify_the_server_certificate() {
    let dir = tempfile::tempdir().unwrap();
    // A private CA and a server certificate it signs, as a cluster would have.
    let p = |f: &str| dir.path().join(f).to_str().unwrap().to_owned();
    std::fs::write(p("ext.cnf"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    for args in [
        vec![
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=banter-test-ca",
            "-keyout",
            &p("ca.key"),
            "-out",
            &p("ca.pem"),
        ],
        vec![
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            &p("key.pem"),
            "-out",
            &p("req.csr"),
        ],
        vec![
            "x509",
            "-req",
            "-in",
            &p("req.csr"),
            "-CA",
            &p("ca.pem"),
            "-CAkey",
            &p("ca.key"),
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            &p("ext.cnf"),
            "-out",
            &p("cert.pem"),
        ],
    ] {
        let ok = std::process::Command::new("openssl")
            .args(&args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl is installed by make deps");
        assert!(ok.success(), "openssl {args:?}");
    }
    let (cert, key, ca) = (
        dir.path().join("cert.pem"),
        dir.path().join("key.pem"),
        dir.path().join("ca.pem"),
    );
    let port = free_port();
    let port_arg = port.to_string();
    let _redis = redis_with(
        dir.path(),
        &[
            "--port",
            "0",
            "--tls-port",
            &port_arg,
            "--tls-auth-clients",
            "no",
            "--tls-cert-file",
            cert.to_str().unwrap(),
            "--tls-key-file",
            key.to_str().unwrap(),
        ],
    );
    let url = format!("rediss://127.0.0.1:{port}/0");
    let trusted = Server::start(
        Backend::Redis {
            url: url.clone(),
            prefix: "tls:".into(),
        },
        dir.path(),
        &[FAST, &["--redis-ca-file", ca.to_str().unwrap()]].concat(),
    );
    wait_for(&trusted, "/readyz", 200, Duration::from_secs(5)).await;
    assert_eq!(
        trusted
            .publish("secure", "1.0.0", &pack("secure", "1.0.0", 0))
            .await
            .status(),
        201
    );
    // Without the CA the self-signed certificate is refused: not ready, never insecure.
    let untrusted = Server::start(
        Backend::Redis {
            url,
            prefix: "tls:".into(),
        },
        dir.path(),
        FAST,
    );
    assert_eq!(untrusted.get("/readyz").await.status(), 503);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_from_redis_to_sqlite_is_byte_identical() {
    let (dir, redis, s) = redis_fixture("always");
    publish_corpus(&s).await;
    let before = snapshot(&s).await;
    let from = Backend::Redis {
        url: redis.url(),
        prefix: "faults:".into(),
    };
    let to = Backend::Sqlite(dir.path().join("to.db"));
    migrate(&dir.path().join("from-redis.tar.gz"), &from, &to);
    let on_sqlite = Server::start(to, dir.path(), &[]);
    assert_eq!(
        snapshot(&on_sqlite).await,
        before,
        "published_at, tags, yanks and bytes survive Redis -> SQLite"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_never_queue_behind_an_unreachable_redis() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::Redis {
        url: format!("redis://127.0.0.1:{}/0", free_port()),
        prefix: "none:".into(),
    };
    let s = Server::start(backend, dir.path(), FAST);
    let timings = join_all((0..20).map(|_| async {
        let start = Instant::now();
        let status = s.get("/v1/packs/any/versions/latest").await.status().as_u16();
        (status, start.elapsed())
    }))
    .await;
    for (status, took) in &timings {
        assert_eq!(*status, 503);
        assert!(
            *took < Duration::from_secs(3),
            "a request waited {took:?} for Redis: {timings:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovers_after_redis_comes_back_with_the_right_password() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port().to_string();
    let redis = redis_with(dir.path(), &["--port", &port, "--requirepass", "the-secret"]);
    let url = format!("redis://:the-secret@127.0.0.1:{port}/0");
    let s = Server::start(
        Backend::Redis {
            url,
            prefix: "rot:".into(),
        },
        dir.path(),
        FAST,
    );
    wait_for(&s, "/readyz", 200, Duration::from_secs(5)).await;
    assert_eq!(s.publish("rot", "1.0.0", &pack("rot", "1.0.0", 0)).await.status(), 201);

    // Redis comes back with another password: the reconnect's AUTH fails.
    drop(redis);
    let wrong = redis_with(dir.path(), &["--port", &port, "--requirepass", "rotated"]);
    wait_for(&s, "/readyz", 503, Duration::from_secs(10)).await;
    let (status, code, _) = error_code(s.get("/v1/packs/rot").await).await;
    assert_eq!((status, code.as_str()), (503, "STORAGE_UNAVAILABLE"));

    // Fixed: the registry dials again by itself.
    drop(wrong);
    let _fixed = redis_with(dir.path(), &["--port", &port, "--requirepass", "the-secret"]);
    wait_for(&s, "/readyz", 200, Duration::from_secs(10)).await;
    assert_eq!(s.publish("rot", "1.0.1", &pack("rot", "1.0.1", 0)).await.status(), 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_out_of_memory_answers_507_and_stores_nothing() {
    let (_dir, redis, s) = redis_fixture("always");
    assert_eq!(
        s.publish("kept", "1.0.0", &pack("kept", "1.0.0", 0)).await.status(),
        201
    );
    // maxmemory below what is used, with the default noeviction policy.
    assert!(redis_command(redis.port, &["CONFIG", "SET", "maxmemory", "1"]).starts_with("+OK"));
    let r = s.publish("refused", "1.0.0", &pack("refused", "1.0.0", 0)).await;
    let (status, code, body) = error_code(r).await;
    assert_eq!((status, code.as_str()), (507, "STORAGE_FULL"), "{body}");
    assert!(redis_command(redis.port, &["CONFIG", "SET", "maxmemory", "0"]).starts_with("+OK"));
    assert_eq!(
        s.get("/v1/packs/refused/versions/1.0.0").await.status(),
        404,
        "nothing stored"
    );
    assert_eq!(s.get("/v1/packs/kept/versions/1.0.0").await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_password_comes_from_a_file_and_never_reaches_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(&dir.path().join("redis"), "always");
    let secret = "s3cret-redis-password-0123456789";
    assert!(redis_command(redis.port, &["CONFIG", "SET", "requirepass", secret]).starts_with("+OK"));
    let backend = Backend::Redis {
        url: redis.url(),
        prefix: "pw:".into(),
    };
    let good = dir.path().join("password");
    std::fs::write(&good, format!("{secret}\n")).unwrap();
    let mut args: Vec<&str> = FAST.to_vec();
    args.extend(["--redis-password-file", good.to_str().unwrap()]);
    let s = Server::start(backend.clone(), dir.path(), &args);
    wait_for(&s, "/readyz", 200, Duration::from_secs(10)).await;
    assert_eq!(s.publish("pw", "1.0.0", &pack("pw", "1.0.0", 0)).await.status(), 201);
    assert!(!s.logs().contains(secret), "no password in the log");
    drop(s);

    // A wrong password: not ready, with a clear message and no secret.
    let other = tempfile::tempdir().unwrap();
    let wrong = other.path().join("password");
    std::fs::write(&wrong, "not-the-password\n").unwrap();
    let mut args: Vec<&str> = FAST.to_vec();
    args.extend(["--redis-password-file", wrong.to_str().unwrap()]);
    let s = Server::start(backend.clone(), other.path(), &args);
    wait_for(&s, "/readyz", 503, Duration::from_secs(10)).await;
    let logs = s.logs();
    assert!(logs.contains("Redis rejected the credentials"), "{logs}");
    assert!(!logs.contains("not-the-password") && !logs.contains(secret), "{logs}");
    drop(s);

    // No password at all: not ready either.
    let none = tempfile::tempdir().unwrap();
    let s = Server::start(backend, none.path(), FAST);
    wait_for(&s, "/readyz", 503, Duration::from_secs(10)).await;
    assert!(s.logs().contains("Redis rejected the credentials"), "{}", s.logs());
}

/// Two replicas on one Redis: a publish, a tag move and a yank made through
/// one are seen by the other within the resolution time-to-live (the
/// documented bound, here 1 s), and by the writer at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_through_one_replica_reach_the_other_within_the_resolve_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(&dir.path().join("redis"), "always");
    let backend = Backend::Redis {
        url: redis.url(),
        prefix: "replicas:".into(),
    };
    for d in ["a", "b"] {
        std::fs::create_dir_all(dir.path().join(d)).unwrap();
    }
    let a = Server::start(backend.clone(), &dir.path().join("a"), &["--resolve-ttl", "1s"]);
    let b = Server::start(backend, &dir.path().join("b"), &["--resolve-ttl", "1s"]);
    let version_at = |s: &Server, reference: &'static str| {
        let url = s.url(&format!("/v1/packs/rep/versions/{reference}"));
        let http = s.http.clone();
        async move {
            let r = http.get(url).send().await.unwrap();
            (
                r.status().as_u16(),
                r.headers()
                    .get("banter-pack-version")
                    .map(|v| v.to_str().unwrap().to_owned()),
            )
        }
    };
    // Within the bound plus scheduling slack; polled, so a fast machine
    // passes sooner.
    async fn until(what: &str, mut check: impl AsyncFnMut() -> bool) {
        let started = std::time::Instant::now();
        while !check().await {
            assert!(
                started.elapsed() < Duration::from_secs(4),
                "{what}: not seen within 1 s + slack"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    assert_eq!(a.publish("rep", "1.0.0", &pack("rep", "1.0.0", 0)).await.status(), 201);
    assert_eq!(version_at(&b, "latest").await, (200, Some("1.0.0".into())));
    // A publish through a: b's cached `latest` moves within the bound.
    assert_eq!(a.publish("rep", "1.1.0", &pack("rep", "1.1.0", 1)).await.status(), 201);
    assert_eq!(
        version_at(&a, "latest").await.1.as_deref(),
        Some("1.1.0"),
        "the writer sees it at once"
    );
    until("publish", async || {
        version_at(&b, "latest").await.1.as_deref() == Some("1.1.0")
    })
    .await;
    // A tag move.
    assert_eq!(a.tag("rep", "stable", "1.0.0").await.status(), 200);
    assert_eq!(version_at(&b, "stable").await.1.as_deref(), Some("1.0.0"));
    assert_eq!(a.tag("rep", "stable", "1.1.0").await.status(), 200);
    until("tag move", async || {
        version_at(&b, "stable").await.1.as_deref() == Some("1.1.0")
    })
    .await;
    // A yank: `latest` falls back, and the exact version says it is yanked.
    assert_eq!(a.yank("rep", "1.1.0", true).await.status(), 200);
    until("yank", async || {
        version_at(&b, "latest").await.1.as_deref() == Some("1.0.0")
    })
    .await;
    until("yank flag", async || {
        let r = b.http.get(b.url("/v1/packs/rep/versions/1.1.0")).send().await.unwrap();
        r.headers().get("banter-pack-yanked").is_some()
    })
    .await;
}
