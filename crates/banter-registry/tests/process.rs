//! Whole-process behaviour on SQLite: durability across SIGKILL, graceful
//! shutdown on SIGTERM, generated tokens, seeding, the CLI, export/import.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use futures::future::join_all;
use serde_json::Value;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_publishes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::Sqlite(dir.path().join("registry.db"));
    let mut s = Server::start(backend.clone(), dir.path(), &[]);
    let bodies: Vec<(String, Vec<u8>)> = (0..40)
        .map(|i| (format!("1.0.{i}"), pack("durable", &format!("1.0.{i}"), i)))
        .collect();
    let acked = join_all(
        bodies
            .iter()
            .map(|(v, b)| async { s.publish("durable", v, b).await.status().as_u16() }),
    )
    .await;
    assert!(acked.iter().all(|st| *st == 201), "{acked:?}");
    s.kill9();

    let s = Server::start(backend, dir.path(), &[]);
    for (v, body) in &bodies {
        let r = s.get(&format!("/v1/packs/durable/versions/{v}")).await;
        assert_eq!(r.status(), 200, "{v} lost after SIGKILL");
        assert_eq!(
            r.bytes().await.unwrap().as_ref(),
            body.as_slice(),
            "{v} changed after SIGKILL"
        );
    }
    let stats: Value = s.get("/v1/stats").await.json().await.unwrap();
    assert_eq!(stats["versions"], 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_requests() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::Sqlite(dir.path().join("registry.db"));
    let mut s = Server::start(backend.clone(), dir.path(), &[]);
    let body = pack("inflight", "1.0.0", 0);
    let (head, tail) = body.split_at(body.len() / 2);
    let mut conn = std::net::TcpStream::connect(s.addr()).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        conn,
        "PUT /v1/packs/inflight/versions/1.0.0 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    conn.write_all(head).unwrap();
    std::thread::sleep(Duration::from_millis(200));

    // SIGTERM while the upload is half-way: the server must wait for it.
    let pid = nix::unistd::Pid::from_raw(s.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    // New connections stop being served (polled: a busy machine may take a moment
    // to deliver the signal), while the process stays up for the upload.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(s.addr()).is_ok() && !reqwest_fails(&s).await {
        assert!(
            std::time::Instant::now() < deadline,
            "still accepting new requests after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(s.child.try_wait().unwrap().is_none(), "exited with a request in flight");
    conn.write_all(tail).unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");
    let status = s.terminate();
    assert!(status.success(), "exit status {status:?}");
    assert!(s.logs().contains("shutting down"));

    let s = Server::start(backend, dir.path(), &[]);
    let got = s.get("/v1/packs/inflight/versions/1.0.0").await.bytes().await.unwrap();
    assert_eq!(got.as_ref(), body.as_slice());
}

/// With a shutdown delay, SIGTERM turns readiness to 503 at once while the
/// listener keeps answering (liveness, reads) until the delay is over; then
/// it closes and the process exits cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_fails_readiness_before_the_listener_closes() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::Sqlite(dir.path().join("registry.db"));
    let mut s = Server::start(backend, dir.path(), &["--shutdown-delay", "3s"]);
    assert_eq!(s.get("/readyz").await.status(), 200);
    let body = pack("draining", "1.0.0", 0);
    assert_eq!(s.publish("draining", "1.0.0", &body).await.status(), 201);

    let pid = nix::unistd::Pid::from_raw(s.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let signalled = std::time::Instant::now();
    // Polled: the signal reaches the process asynchronously.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let not_ready = loop {
        let r = s.get("/readyz").await;
        if r.status() == 503 {
            break r;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "readiness still {} after SIGTERM",
            r.status()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let err: Value = not_ready.json().await.unwrap();
    assert_eq!(err["errors"][0]["code"], "SHUTTING_DOWN", "{err}");
    // Still listening: a new connection is answered during the delay.
    let mut fresh = std::net::TcpStream::connect(s.addr()).unwrap();
    fresh.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(fresh, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    fresh.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let got = s.get("/v1/packs/draining/versions/1.0.0").await;
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.unwrap().as_ref(), body.as_slice());
    assert!(s.child.try_wait().unwrap().is_none(), "exited before the delay");
    // Then, with no further signal, the listener closes and the process
    // exits 0, no sooner than the delay.
    let exit_deadline = std::time::Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = s.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < exit_deadline,
            "still running long after the delay"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit status {status:?}");
    assert!(
        signalled.elapsed() >= Duration::from_secs(3),
        "exited after {:?}",
        signalled.elapsed()
    );
    assert!(
        std::net::TcpStream::connect(s.addr()).is_err(),
        "still listening after exit"
    );
    let logs = s.logs();
    assert!(logs.contains("readiness fails, still serving for the delay"), "{logs}");
}

/// A second SIGTERM during the delay stops the wait at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigterm_cuts_the_shutdown_delay_short() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::Sqlite(dir.path().join("registry.db"));
    let mut s = Server::start(backend, dir.path(), &["--shutdown-delay", "60s"]);
    let pid = nix::unistd::Pid::from_raw(s.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while s.get("/readyz").await.status() != 503 {
        assert!(std::time::Instant::now() < deadline, "readiness never failed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let started = std::time::Instant::now();
    let status = s.terminate();
    assert!(status.success(), "exit status {status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "waited {:?}",
        started.elapsed()
    );
    assert!(s.logs().contains("second signal"), "{}", s.logs());
}

#[tokio::test]
async fn sleep_waits_and_exits_zero() {
    let start = std::time::Instant::now();
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_banter-registry"))
        .args(["sleep", "300ms"])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(start.elapsed() >= Duration::from_millis(300));
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_banter-registry"))
        .args(["sleep", "soon"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid value 'soon'"));
}

/// A second `serve` fails before it touches any data: on a taken port it
/// creates no database; on a database another registry holds it neither
/// seeds nor migrates it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_start_refuses_before_touching_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("registry.db");
    let s = Server::start(Backend::Sqlite(db.clone()), dir.path(), &[]);
    let before: Value = s.get("/v1/stats").await.json().await.unwrap();
    let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/demo");

    let fresh = dir.path().join("other/registry.db");
    let (ok, _, stderr) = cli(&[
        "serve",
        "--listen",
        &s.addr(),
        "--sqlite-path",
        fresh.to_str().unwrap(),
        "--seed",
        demo,
    ]);
    assert!(!ok);
    assert!(
        stderr.contains("Address already in use") && stderr.contains("--listen"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("other").exists(),
        "a database was created for a start that failed"
    );

    let (ok, _, stderr) = cli(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--sqlite-path",
        db.to_str().unwrap(),
        "--seed",
        demo,
    ]);
    assert!(!ok);
    let pid = s.child.id().to_string();
    assert!(
        stderr.contains("in use by another banter-registry") && stderr.contains(&format!("pid {pid}")),
        "{stderr}"
    );
    let after: Value = s.get("/v1/stats").await.json().await.unwrap();
    assert_eq!(before, after, "the refused start changed the database");
}

async fn reqwest_fails(s: &Server) -> bool {
    s.http
        .get(s.url("/healthz"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .is_err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_token_is_private_and_never_logged() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("data/registry.db");
    let mut cmd = std::process::Command::new(bin());
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--sqlite-path"])
        .arg(&db)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let s = Server::spawn(cmd, Backend::Sqlite(db.clone()), dir.path());
    let token_file = dir.path().join("data/publish-token");
    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let token = std::fs::read_to_string(&token_file)
        .unwrap()
        .lines()
        .find(|l| !l.starts_with('#'))
        .unwrap()
        .to_owned();
    assert!(token.len() >= 32);
    let r = s
        .http
        .put(s.url("/v1/packs/tok/versions/1.0.0"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(pack("tok", "1.0.0", 0))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let logs = s.logs();
    assert!(
        logs.contains(&token_file.display().to_string()),
        "the log names the token file: {logs}"
    );
    assert!(!logs.contains(&token), "the token itself is never logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_configuration_fails_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short");
    std::fs::write(&short, "abc\n").unwrap();
    for (args, needle) in [
        (
            vec!["serve", "--token-file", short.to_str().unwrap()],
            "at least 16 characters",
        ),
        (
            vec!["serve", "--token-file", "/nonexistent/tokens"],
            "/nonexistent/tokens",
        ),
        (vec!["serve", "--listen", "not-an-address"], "invalid value"),
        (vec!["serve", "--backend", "mongo"], "invalid value"),
        (vec!["serve", "--max-pack-bytes=-1"], "invalid value"),
        (
            vec!["serve", "--backend", "redis", "--redis-url", "http://nope"],
            "Redis URL",
        ),
    ] {
        let mut full = args.clone();
        full.extend(["--listen", "127.0.0.1:0", "--sqlite-path"]);
        let db = dir.path().join("r.db");
        full.push(db.to_str().unwrap());
        if args.contains(&"--listen") {
            full = args.clone();
        }
        let (ok, _, stderr) = cli(&full);
        assert!(!ok, "{args:?} must fail");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
    // A missing token file: the OS error once, server or client.
    let pack_file = dir.path().join("p.json");
    std::fs::write(&pack_file, pack("once", "1.0.0", 0)).unwrap();
    let db = dir.path().join("r.db");
    for args in [
        vec![
            "serve",
            "--token-file",
            "/nonexistent/tokens",
            "--listen",
            "127.0.0.1:0",
            "--sqlite-path",
            db.to_str().unwrap(),
        ],
        vec![
            "publish",
            pack_file.to_str().unwrap(),
            "--token-file",
            "/nonexistent/tokens",
        ],
    ] {
        let (ok, _, stderr) = cli(&args);
        assert!(!ok, "{args:?} must fail");
        assert_eq!(
            stderr.matches("No such file or directory").count(),
            1,
            "{args:?}: {stderr}"
        );
        assert!(stderr.contains("/nonexistent/tokens"), "{stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeding_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::Sqlite(dir.path().join("registry.db"));
    let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/demo");
    let mut s = Server::start(backend.clone(), dir.path(), &["--seed", demo]);
    let first: Value = s.get("/v1/packs").await.json().await.unwrap();
    assert!(first["packs"].as_array().unwrap().len() >= 3);
    s.terminate();
    let s = Server::start(backend, dir.path(), &["--seed", demo]);
    let stats: Value = s.get("/v1/stats").await.json().await.unwrap();
    assert_eq!(stats["packs"], first["packs"].as_array().unwrap().len());
    assert_eq!(stats["versions"], stats["packs"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_publish_get_ls_tag_yank() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(Backend::Sqlite(dir.path().join("registry.db")), dir.path(), &[]);
    let tokens = dir.path().join("tokens");
    let reg = s.base.clone();
    let file = dir.path().join("p.json");
    std::fs::write(&file, pack("cli-pack", "1.0.0", 0)).unwrap();
    let common = ["--registry", reg.as_str(), "--token-file", tokens.to_str().unwrap()];
    let run = |args: &[&str]| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(common);
        cli(&all)
    };

    let (ok, out, err) = run(&["publish", file.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(out.starts_with("published cli-pack@1.0.0 sha256:"), "{out}");
    let (ok, out, _) = run(&["publish", file.to_str().unwrap()]);
    assert!(ok && out.contains("already published"), "{out}");
    std::fs::write(&file, pack("cli-pack", "1.1.0", 0)).unwrap();
    assert!(run(&["publish", file.to_str().unwrap()]).0);

    let (ok, out, _) = run(&["get", "cli-pack@1.0.0"]);
    assert!(ok);
    assert_eq!(out.as_bytes(), pack("cli-pack", "1.0.0", 0).as_slice());
    let dest = dir.path().join("out.json");
    assert!(run(&["get", "cli-pack", "-o", dest.to_str().unwrap()]).0);
    assert_eq!(std::fs::read(&dest).unwrap(), pack("cli-pack", "1.1.0", 0));

    let (ok, out, _) = run(&["ls"]);
    assert!(ok);
    assert_eq!(out.trim(), "cli-pack");
    assert!(run(&["tag", "cli-pack", "stable", "1.0.0"]).0);
    assert!(run(&["yank", "cli-pack@1.1.0"]).0);
    let (ok, out, _) = run(&["ls", "cli-pack"]);
    assert!(ok);
    assert!(
        out.contains("tag stable -> 1.0.0") && out.contains("tag latest -> 1.0.0"),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l.starts_with("1.1.0") && l.contains(" yes ")),
        "{out}"
    );
    assert!(run(&["yank", "--undo", "cli-pack@1.1.0"]).0);

    // Failures: non-zero exit and one readable line (plus violations for invalid packs).
    std::fs::write(
        &file,
        br#"{"name":"cli-pack","version":"2.0.0","personas":[],"lines":[]}"#,
    )
    .unwrap();
    let (ok, _, err) = run(&["publish", file.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        err.starts_with("error: ") && err.contains("PACK_INVALID") && err.contains("at /personas"),
        "{err}"
    );
    let (ok, _, err) = run(&["get", "absent@1.0.0"]);
    assert!(!ok && err.contains("404") && err.contains("NAME_UNKNOWN"), "{err}");
    let (ok, _, err) = run(&["yank", "cli-pack"]);
    assert!(!ok && err.contains("NAME@VERSION"), "{err}");
    let (ok, _, err) = cli(&["publish", file.to_str().unwrap(), "--registry", reg.as_str()]);
    assert!(!ok && err.contains("token"), "{err}");
    let (ok, _, err) = cli(&["ls", "--registry", "http://127.0.0.1:1"]);
    assert!(!ok && err.starts_with("error: "), "{err}");
    let (ok, _, err) = cli(&["ls", "--registry", "::not a url"]);
    assert!(!ok && err.contains("--registry"), "{err}");
    let (ok, _, err) = run(&["publish", "/nonexistent.json"]);
    assert!(!ok && err.contains("/nonexistent.json"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_then_import_reproduces_everything() {
    let dir = tempfile::tempdir().unwrap();
    let src_db = dir.path().join("src.db");
    let s = Server::start(Backend::Sqlite(src_db.clone()), dir.path(), &[]);
    publish_corpus(&s).await;
    let before = snapshot(&s).await;

    let archive = dir.path().join("backup.tar.gz");
    let (ok, out, err) = cli(&[
        "export",
        "-o",
        archive.to_str().unwrap(),
        "--sqlite-path",
        src_db.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("exported 8 packs, 40 versions"), "{out}");

    let dst_dir = tempfile::tempdir().unwrap();
    let dst_db = dst_dir.path().join("dst.db");
    let (ok, out, err) = cli(&[
        "import",
        archive.to_str().unwrap(),
        "--sqlite-path",
        dst_db.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("40 versions added"), "{out}");
    // Importing again changes nothing and succeeds.
    let (ok, out, err) = cli(&[
        "import",
        archive.to_str().unwrap(),
        "--sqlite-path",
        dst_db.to_str().unwrap(),
    ]);
    assert!(
        ok && out.contains("0 versions added, 40 already present"),
        "{out} {err}"
    );

    std::fs::copy(dir.path().join("tokens"), dst_dir.path().join("tokens")).unwrap();
    let d = Server::start(Backend::Sqlite(dst_db.clone()), dst_dir.path(), &[]);
    let after = snapshot(&d).await;
    assert_eq!(before.len(), after.len());
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(b, a, "differs after import: {}", b.0);
    }

    // A conflicting version in the target is reported, not overwritten.
    let other_dir = tempfile::tempdir().unwrap();
    let other_db = other_dir.path().join("o.db");
    let o = Server::start(Backend::Sqlite(other_db.clone()), other_dir.path(), &[]);
    o.publish("corpus-1", "1.0.0", &pack("corpus-1", "1.0.0", 99)).await;
    drop(o);
    let (ok, _, err) = cli(&[
        "import",
        archive.to_str().unwrap(),
        "--sqlite-path",
        other_db.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("corpus-1@1.0.0"), "{err}");
    let o = Server::start(Backend::Sqlite(other_db.clone()), other_dir.path(), &[]);
    let kept = o.get("/v1/packs/corpus-1/versions/1.0.0").await.bytes().await.unwrap();
    assert_eq!(
        kept.as_ref(),
        pack("corpus-1", "1.0.0", 99).as_slice(),
        "the target's bytes are kept"
    );
    let info: Value = o.get("/v1/packs/corpus-0").await.json().await.unwrap();
    assert!(
        info["tags"].get("stable").is_none(),
        "a failed import sets no tags: {info}"
    );
    drop(o);

    // A damaged archive is refused.
    let mut bytes = std::fs::read(&archive).unwrap();
    bytes.truncate(bytes.len() / 2);
    let broken = dir.path().join("broken.tar.gz");
    std::fs::write(&broken, bytes).unwrap();
    let fresh = dir.path().join("fresh.db");
    let (ok, _, err) = cli(&[
        "import",
        broken.to_str().unwrap(),
        "--sqlite-path",
        fresh.to_str().unwrap(),
    ]);
    assert!(!ok && err.starts_with("error: "), "{err}");
}

/// The content cache serves what it verified when it was filled, never
/// more than its bound; an evicted entry is read from storage again and
/// verified again, so rot that happened meanwhile is caught.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_content_is_bounded_and_an_evicted_entry_is_verified_again() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("registry.db");
    let a = pack("cache-a", "1.0.0", 0);
    let b = pack("cache-b", "1.0.0", 1);
    // Room for one of them only.
    let bound = a.len().max(b.len()) + 8;
    let s = Server::start(
        Backend::Sqlite(db.clone()),
        dir.path(),
        &["--blob-cache-bytes", &bound.to_string()],
    );
    assert_eq!(s.publish("cache-a", "1.0.0", &a).await.status(), 201);
    assert_eq!(s.publish("cache-b", "1.0.0", &b).await.status(), 201);
    let body = |path: &'static str| {
        let s = &s;
        async move { s.get(path).await.bytes().await.unwrap().to_vec() }
    };
    const A: &str = "/v1/packs/cache-a/versions/1.0.0";
    const B: &str = "/v1/packs/cache-b/versions/1.0.0";
    assert_eq!(body(A).await, a, "miss: read, verified, cached");
    assert_eq!(body(A).await, a, "hit");
    assert_eq!(body(B).await, b, "miss: cached, evicting a");
    // Rot under every stored row, behind the registry's back.
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn.execute("UPDATE blobs SET content = ?1", [b"{\"tampered\": true}".as_slice()])
        .unwrap();
    drop(conn);
    // b is cached: served exactly as it was verified.
    assert_eq!(body(B).await, b, "hit: the verified copy");
    // a was evicted: read from storage again and verified again.
    let (status, code, _) = error_code(s.get(A).await).await;
    assert_eq!((status, code.as_str()), (500, "CONTENT_CORRUPT"));
    // The rotten bytes were not cached: b is still held.
    assert_eq!(body(B).await, b);
    let metrics = s.get("/metrics").await.text().await.unwrap();
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing:\n{metrics}"))
    };
    assert_eq!(value("banter_registry_blob_cache_hits_total"), 3.0);
    assert_eq!(value("banter_registry_blob_cache_misses_total"), 3.0);
    assert_eq!(value("banter_registry_blob_cache_evictions_total"), 1.0);
    assert_eq!(value("banter_registry_blob_cache_bytes"), b.len() as f64);
    assert_eq!(value("banter_registry_blob_cache_capacity_bytes"), bound as f64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_content_is_detected_on_read() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("registry.db");
    let s = Server::start(Backend::Sqlite(db.clone()), dir.path(), &[]);
    let body = pack("rot", "1.0.0", 0);
    s.publish("rot", "1.0.0", &body).await;
    // Flip the stored bytes behind the registry's back (bit rot, a bad restore).
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn.execute("UPDATE blobs SET content = ?1", [b"{\"tampered\": true}".as_slice()])
        .unwrap();
    drop(conn);
    let digest = banter_pack::Digest::of(&body);
    for path in ["/v1/packs/rot/versions/1.0.0".to_owned(), format!("/v1/blobs/{digest}")] {
        let (status, code, _) = error_code(s.get(&path).await).await;
        assert_eq!((status, code.as_str()), (500, "CONTENT_CORRUPT"), "{path}");
    }
    assert!(s.logs().contains("failed digest verification"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_and_request_ids() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(
        Backend::Sqlite(dir.path().join("r.db")),
        dir.path(),
        &["--log-format", "json"],
    );
    let r = s
        .http
        .get(s.url("/v1/stats"))
        .header("x-request-id", "req-from-client-42")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["x-request-id"],
        "req-from-client-42",
        "a client's request id is kept"
    );
    let r = s.get("/v1/packs").await;
    let generated = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(generated.len(), 36, "a request without one gets a UUID: {generated}");
    let r = s
        .http
        .put(s.url("/v1/packs/logged/versions/1.0.0"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .header("x-request-id", "req-from-client-42")
        .body(pack("logged", "1.0.0", 0))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let logs = s.logs();
    let lines: Vec<Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let published = lines
        .iter()
        .find(|l| l["message"] == "published" && l["pack"] == "logged")
        .expect("a publish log line");
    assert!(
        published.to_string().contains("req-from-client-42"),
        "the request id is on the log line: {published}"
    );
}

/// Re-packs `archive` the way plain `tar` does (directory entries first,
/// `./` prefixes), optionally adding one more file entry.
fn repack(archive: &std::path::Path, out: &std::path::Path, extra: Option<(&str, u64)>) {
    let mut input = tar::Archive::new(flate2::read::GzDecoder::new(std::fs::File::open(archive).unwrap()));
    let gz = flate2::write::GzEncoder::new(std::fs::File::create(out).unwrap(), flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    let dir = |b: &mut tar::Builder<_>, path: &str| {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_size(0);
        h.set_mode(0o755);
        h.set_cksum();
        b.append_data(&mut h, path, std::io::empty()).unwrap();
    };
    dir(&mut b, "./");
    let mut first = true;
    for e in input.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        if !first && path.starts_with("blobs/") {
            dir(&mut b, "./blobs/");
            dir(&mut b, "./blobs/sha256/");
        }
        let mut bytes = Vec::new();
        e.read_to_end(&mut bytes).unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, format!("./{path}"), bytes.as_slice()).unwrap();
        first = false;
    }
    if let Some((path, size)) = extra {
        // Zeros compress to almost nothing: a small file that inflates hugely.
        let mut h = tar::Header::new_ustar();
        h.set_size(size);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, path, std::io::repeat(0).take(size)).unwrap();
    }
    b.into_inner().unwrap().finish().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_takes_plain_tar_repacks_and_refuses_oversized_entries_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let src_db = dir.path().join("src.db");
    let s = Server::start(Backend::Sqlite(src_db.clone()), dir.path(), &[]);
    s.publish("repack", "1.0.0", &pack("repack", "1.0.0", 1)).await;
    drop(s);
    let archive = dir.path().join("a.tar.gz");
    let (ok, _, err) = cli(&[
        "export",
        "-o",
        archive.to_str().unwrap(),
        "--sqlite-path",
        src_db.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");

    // Directory entries and ./ prefixes, as `tar czf` writes them: accepted.
    let plain = dir.path().join("plain.tar.gz");
    repack(&archive, &plain, None);
    let db = dir.path().join("plain.db");
    let (ok, out, err) = cli(&["import", plain.to_str().unwrap(), "--sqlite-path", db.to_str().unwrap()]);
    assert!(ok && out.contains("1 versions added"), "{out} {err}");

    // A blob entry declaring 64 MiB (64 KiB compressed): refused by
    // its header's size, before a byte of it is read.
    let bomb = dir.path().join("bomb.tar.gz");
    let hex = "ab".repeat(32);
    repack(&archive, &bomb, Some((&format!("blobs/sha256/{hex}"), 64 << 20)));
    assert!(std::fs::metadata(&bomb).unwrap().len() < 4 << 20);
    let db = dir.path().join("bomb.db");
    let started = std::time::Instant::now();
    let (ok, _, err) = cli(&["import", bomb.to_str().unwrap(), "--sqlite-path", db.to_str().unwrap()]);
    assert!(!ok, "refused");
    assert!(
        err.contains("over the limit of 1048576 bytes") && err.contains(&hex),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "refused without inflating it"
    );
}

/// Runs `export` with `dir` bind-mounted read-only in a private mount
/// namespace; `None` when such a mount cannot be made on this machine.
fn export_through_read_only_mount(
    dir: &std::path::Path,
    db: &std::path::Path,
    out: &std::path::Path,
) -> Option<(bool, String)> {
    let script = format!(
        "mount --bind '{d}' '{d}' && mount -o remount,ro,bind '{d}' || exit 97; touch '{d}/.probe' 2>/dev/null && exit 98; exec '{bin}' export -o '{out}' --sqlite-path '{db}'",
        d = dir.display(),
        bin = bin(),
        out = out.display(),
        db = db.display()
    );
    for prefix in [&["--mount"][..], &["--user", "--map-root-user", "--mount"][..]] {
        let Ok(o) = std::process::Command::new("unshare")
            .args(prefix)
            .args(["sh", "-c", &script])
            .output()
        else {
            return None;
        };
        match o.status.code() {
            Some(97) | Some(98) => continue,
            _ => {
                let text = format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                );
                return Some((o.status.success(), text));
            }
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_reads_only_and_never_creates_or_migrates() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("registry.db");
    let mut s = Server::start(Backend::Sqlite(db.clone()), dir.path(), &[]);
    s.publish("ro", "1.0.0", &pack("ro", "1.0.0", 0)).await;
    assert!(s.terminate().success());
    let digest = |p: &std::path::Path| banter_pack::Digest::of(&std::fs::read(p).unwrap()).to_string();
    let before = digest(&db);

    let out = dir.path().join("out.tar.gz");
    let (ok, stdout, err) = cli(&[
        "export",
        "-o",
        out.to_str().unwrap(),
        "--sqlite-path",
        db.to_str().unwrap(),
    ]);
    assert!(ok && stdout.contains("exported 1 packs"), "{stdout} {err}");
    assert_eq!(digest(&db), before, "the database is not written");

    // With a registry running (its writer holding the WAL): still a clean export.
    let s = Server::start(Backend::Sqlite(db.clone()), dir.path(), &[]);
    s.publish("ro", "1.0.1", &pack("ro", "1.0.1", 1)).await;
    let (ok, stdout, err) = cli(&[
        "export",
        "-o",
        out.to_str().unwrap(),
        "--sqlite-path",
        db.to_str().unwrap(),
    ]);
    assert!(ok && stdout.contains("exported 1 packs, 2 versions"), "{stdout} {err}");
    let mut s = s;
    assert!(s.terminate().success());

    // The directory mounted read-only (a private mount namespace, as the
    // backup Job's read-only volume): no -shm can be created there. Without
    // a registry running, and with one writing to the same files.
    let elsewhere = tempfile::tempdir().unwrap();
    let out2 = elsewhere.path().join("ro.tar.gz");
    match export_through_read_only_mount(dir.path(), &db, &out2) {
        None => eprintln!(
            "SKIPPED: cannot make a read-only mount here (unshare); export from a read-only volume not checked"
        ),
        Some((ok, text)) => assert!(
            ok && text.contains("exported 1 packs, 2 versions"),
            "stopped registry: {text}"
        ),
    }
    let running = Server::start(Backend::Sqlite(db.clone()), dir.path(), &[]);
    running.publish("ro", "1.0.2", &pack("ro", "1.0.2", 2)).await;
    if let Some((ok, text)) = export_through_read_only_mount(dir.path(), &db, &out2) {
        assert!(
            ok && text.contains("exported 1 packs, 3 versions"),
            "running registry: {text}"
        );
    }
    drop(running);

    // A mistyped path: refused, and nothing is created.
    let typo = dir.path().join("registy.db");
    let (ok, _, err) = cli(&[
        "export",
        "-o",
        out.to_str().unwrap(),
        "--sqlite-path",
        typo.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("no SQLite database at"), "{err}");
    assert!(!typo.exists(), "export never creates a database");

    // Another schema version: refused, never migrated.
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.pragma_update(None, "user_version", 0).unwrap();
    drop(conn);
    let (ok, _, err) = cli(&[
        "export",
        "-o",
        out.to_str().unwrap(),
        "--sqlite-path",
        db.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("schema version 0 differs"), "{err}");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let version: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(version, 0, "export ran no migration");
}

/// A pack of about `kib` KiB (many long lines).
fn big_pack(name: &str, version: &str, kib: usize) -> Vec<u8> {
    let mut v = pack_value(name, version, 0);
    let lines: Vec<Value> = (0..kib * 2)
        .map(|i| serde_json::json!({"id": format!("x{i}"), "event": "match.goal", "persona": "host", "text": "y".repeat(480)}))
        .collect();
    v["lines"] = Value::Array(lines);
    serde_json::to_vec(&v).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_database_answers_507_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("registry.db");
    let mut s = Server::start(
        Backend::Sqlite(db.clone()),
        dir.path(),
        &["--sqlite-max-bytes", "262144"],
    );
    assert_eq!(
        s.publish("small", "1.0.0", &pack("small", "1.0.0", 0)).await.status(),
        201
    );
    let mut acknowledged = vec![("small".to_string(), "1.0.0".to_string(), pack("small", "1.0.0", 0))];
    let mut full = None;
    for i in 0..64 {
        let version = format!("1.0.{i}");
        let body = big_pack("big", &version, 40);
        let r = s.publish("big", &version, &body).await;
        match r.status().as_u16() {
            201 => acknowledged.push(("big".into(), version, body)),
            _ => {
                full = Some((version, error_code(r).await));
                break;
            }
        }
    }
    let (version, (status, code, body)) = full.expect("the 256 KiB cap is reached");
    assert_eq!((status, code.as_str()), (507, "STORAGE_FULL"), "{body}");
    // Not acknowledged, not stored; what is stored still reads.
    let r = s.get(&format!("/v1/packs/big/versions/{version}")).await;
    assert_eq!(r.status(), 404, "a refused publish left nothing behind");
    assert_eq!(s.get("/v1/packs/small/versions/1.0.0").await.status(), 200);
    let metrics = s.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("banter_registry_storage_errors_total{backend=\"sqlite\",operation=\"publish\"}")),
        "counted: {metrics}"
    );
    assert!(s.logs().contains("storage full"), "{}", s.logs());

    // Space freed (here: a larger cap): the refused version now publishes,
    // and every acknowledged one is intact.
    assert!(s.terminate().success());
    let s = Server::start(
        Backend::Sqlite(db.clone()),
        dir.path(),
        &["--sqlite-max-bytes", "8388608"],
    );
    let body = big_pack("big", &version, 40);
    assert_eq!(s.publish("big", &version, &body).await.status(), 201);
    for (name, v, bytes) in &acknowledged {
        let got = s.get(&format!("/v1/packs/{name}/versions/{v}")).await;
        assert_eq!(got.status(), 200, "{name}@{v}");
        assert_eq!(got.bytes().await.unwrap().as_ref(), bytes.as_slice(), "{name}@{v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_reports_every_file_and_refuses_malformed_references() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(Backend::Sqlite(dir.path().join("registry.db")), dir.path(), &[]);
    let tokens = dir.path().join("tokens");
    let reg = s.base.clone();
    let common = ["--registry", reg.as_str(), "--token-file", tokens.to_str().unwrap()];
    let run = |args: &[&str]| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(common);
        cli(&all)
    };
    let a = dir.path().join("a.json");
    let bad = dir.path().join("bad.json");
    let c = dir.path().join("c.json");
    std::fs::write(&a, pack("multi-a", "1.0.0", 0)).unwrap();
    std::fs::write(&bad, "{ not json").unwrap();
    std::fs::write(&c, pack("multi-c", "1.0.0", 0)).unwrap();

    // The bad file in the middle: the others are still published, each
    // result is reported, and the command fails naming what failed.
    let (ok, out, err) = run(&[
        "publish",
        a.to_str().unwrap(),
        bad.to_str().unwrap(),
        c.to_str().unwrap(),
    ]);
    assert!(!ok, "a failure makes the command fail");
    assert!(
        out.contains("published multi-a@1.0.0") && out.contains("published multi-c@1.0.0"),
        "{out}"
    );
    assert!(err.contains(&format!("publishing {}", bad.display())), "{err}");
    assert!(err.contains("1 of 3 files failed"), "{err}");
    assert_eq!(
        s.get("/v1/packs/multi-c/versions/1.0.0").await.status(),
        200,
        "c.json was not skipped"
    );

    for malformed in ["multi-a@", "@1.0.0", "multi-a@1.0.0@x"] {
        let (ok, _, err) = run(&["get", malformed]);
        assert!(
            !ok && err.contains("expected NAME, NAME@VERSION or NAME@TAG"),
            "{malformed}: {err}"
        );
        let (ok, _, err) = run(&["yank", malformed]);
        assert!(!ok && err.contains("expected NAME@VERSION"), "{malformed}: {err}");
    }
}

/// The background scrub hashes every stored blob again: on both backends,
/// a blob changed behind the registry's back is counted as corrupt (and the
/// intact ones as verified), the corrupt one is never served, and a
/// re-publish of the same bytes repairs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scrub_finds_a_corrupt_blob_on_both_backends() {
    for kind in [Kind::Sqlite, Kind::Redis] {
        let f = fixture(
            kind,
            &[
                "--scrub-interval",
                "300ms",
                "--scrub-pause",
                "0s",
                "--blob-cache-bytes",
                "0",
            ],
        );
        let packs: Vec<Vec<u8>> = (0..70).map(|i| pack(&format!("scrub-{i}"), "1.0.0", i)).collect();
        for (i, p) in packs.iter().enumerate() {
            assert_eq!(f.publish(&format!("scrub-{i}"), "1.0.0", p).await.status(), 201);
        }
        let victim = banter_pack::Digest::of(&packs[3]);
        let tampered = b"{\"tampered\": true}";
        match kind {
            Kind::Sqlite => {
                let conn = rusqlite::Connection::open(f.dir.path().join("registry.db")).unwrap();
                conn.busy_timeout(Duration::from_secs(5)).unwrap();
                let changed = conn
                    .execute(
                        "UPDATE blobs SET content = ?1 WHERE digest = ?2",
                        rusqlite::params![tampered.as_slice(), victim.to_string()],
                    )
                    .unwrap();
                assert_eq!(changed, 1);
            }
            Kind::Redis => {
                let redis = f.redis.as_ref().unwrap();
                let mut c = redis::Client::open(redis.url()).unwrap().get_connection().unwrap();
                let _: () = redis::cmd("SET")
                    .arg(format!("test:blob:{victim}"))
                    .arg(tampered.as_slice())
                    .arg("XX")
                    .query(&mut c)
                    .unwrap();
            }
        }
        // A pass that started after the change reports it (passes repeat every 300 ms).
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let metric = |text: &str, name: &str| -> f64 {
            text.lines()
                .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{name} missing:\n{text}"))
        };
        loop {
            let text = f.get("/metrics").await.text().await.unwrap();
            if metric(&text, "banter_registry_scrub_corrupt_blobs") == 1.0 {
                assert!(metric(&text, "banter_registry_scrub_last_complete_timestamp_seconds") > 1.7e9);
                assert!(
                    metric(&text, "banter_registry_scrub_blobs_total{result=\"verified\"}") >= 69.0,
                    "{kind:?}: a pass over more than one page verified every intact blob:\n{text}"
                );
                assert!(metric(&text, "banter_registry_scrub_blobs_total{result=\"corrupt\"}") >= 1.0);
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{kind:?}: no pass found the corrupt blob:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            f.logs().contains("scrub: stored blob failed digest verification") && f.logs().contains(victim.hex()),
            "{}",
            f.logs()
        );
        let (status, code, _) = error_code(f.get("/v1/packs/scrub-3/versions/1.0.0").await).await;
        assert_eq!((status, code.as_str()), (500, "CONTENT_CORRUPT"), "{kind:?}");
        assert_eq!(f.get("/v1/packs/scrub-4/versions/1.0.0").await.status(), 200);

        // Re-publishing the same bytes (what an import of an export does) repairs it.
        assert_eq!(f.publish("scrub-3", "1.0.0", &packs[3]).await.status(), 200);
        let r = f.get("/v1/packs/scrub-3/versions/1.0.0").await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.bytes().await.unwrap().as_ref(), packs[3].as_slice());
        loop {
            let text = f.get("/metrics").await.text().await.unwrap();
            if metric(&text, "banter_registry_scrub_corrupt_blobs") == 0.0 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{kind:?}: the repair was not seen by a pass:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(f.logs().contains("corrupt stored content replaced"), "{}", f.logs());
    }
}

/// A read that finds neither its resolution nor its content cached costs
/// one storage call (one blocking-pool hop on SQLite): the record and the
/// bytes together; with the content cached, the bytes are not read again;
/// a conditional read asks for the record only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_read_is_one_storage_call() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(
        Backend::Sqlite(dir.path().join("registry.db")),
        dir.path(),
        &["--resolve-ttl", "0s"],
    );
    let body = pack("cold", "1.0.0", 0);
    assert_eq!(s.publish("cold", "1.0.0", &body).await.status(), 201);
    let calls = |text: &str, operation: &str| -> u64 {
        let name = format!(
            "banter_registry_storage_operation_duration_seconds_count{{backend=\"sqlite\",operation=\"{operation}\"}}"
        );
        text.lines()
            .find(|l| l.starts_with(&name))
            .and_then(|l| l.rsplit(' ').next())
            .map_or(0, |v| v.parse().unwrap())
    };
    let metrics = || async { s.get("/metrics").await.text().await.unwrap() };

    let r = s.get("/v1/packs/cold/versions/1.0.0").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), body.as_slice());
    let m = metrics().await;
    assert_eq!(
        (
            calls(&m, "lookup_with_content"),
            calls(&m, "blob"),
            calls(&m, "version")
        ),
        (1, 0, 0)
    );

    // Content cached now: the lookup skips the bytes, the cache serves them.
    let r = s.get("/v1/packs/cold/versions/latest").await;
    assert_eq!(r.bytes().await.unwrap().as_ref(), body.as_slice());
    let m = metrics().await;
    assert_eq!((calls(&m, "lookup_with_content"), calls(&m, "blob")), (2, 0));
    assert!(m.contains("banter_registry_blob_cache_hits_total 1"), "{m}");

    // A conditional read: the record only, answered 304.
    let etag = format!("\"{}\"", banter_pack::Digest::of(&body));
    let r = s
        .http
        .get(s.url("/v1/packs/cold/versions/1.0.0"))
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    let m = metrics().await;
    assert_eq!(
        (
            calls(&m, "lookup_with_content"),
            calls(&m, "version"),
            calls(&m, "blob")
        ),
        (2, 1, 0)
    );
}
