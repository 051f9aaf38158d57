//! The HTTP edge against hostile clients, over raw TCP to the real binary.
#![allow(clippy::unwrap_used)]

mod support;

use support::*;

fn request_series(metrics: &str) -> Vec<String> {
    metrics
        .lines()
        .filter(|l| l.starts_with("banter_registry_http_requests_total{"))
        .map(|l| {
            l.rsplit_once(' ')
                .map(|(series, _)| series.to_string())
                .unwrap_or_default()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_methods_cannot_grow_the_metrics() {
    let f = fixture(Kind::Sqlite, &[]);
    let s = &f.server;
    // Two scrapes first, so the /metrics route's own series exists.
    s.get("/metrics").await.text().await.unwrap();
    let before = request_series(&s.get("/metrics").await.text().await.unwrap());

    let addr = s.addr();
    let long = "M".repeat(60_000);
    for i in 0..200u32 {
        // Random-looking tokens, a few of them very long.
        let method = if i % 50 == 0 {
            format!("{long}{i}")
        } else {
            format!("METH{:08x}", i.wrapping_mul(2_654_435_761))
        };
        let (status, _) = raw_request(
            &addr,
            &format!("{method} /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        );
        assert!(status >= 400 || status == 0 || status == 200, "{method:.20}: {status}");
    }

    let text = s.get("/metrics").await.text().await.unwrap();
    let after = request_series(&text);
    let new: Vec<&String> = after.iter().filter(|l| !before.contains(l)).collect();
    let shown: Vec<String> = new.iter().take(3).map(|l| l.chars().take(120).collect()).collect();
    assert!(new.len() <= 1, "{} new series, e.g. {shown:?}", new.len());
    assert!(new.iter().all(|l| l.contains("method=\"other\"")), "{shown:?}");
    assert!(!text.contains("METH"), "no raw method reaches a label");
    assert!(text.len() < 64 * 1024, "metrics stay small: {} bytes", text.len());
}

/// Replaces `path` the way the kubelet updates a mounted Secret: a whole new
/// file swapped in atomically.
fn swap_in(path: &std::path::Path, content: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

async fn publish_with(s: &Server, token: &str, version: &str) -> u16 {
    s.http
        .put(s.url(&format!("/v1/packs/rotate/versions/{version}")))
        .header("Authorization", format!("Bearer {token}"))
        .header("Content-Type", "application/json")
        .body(pack("rotate", version, 0))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_rotate_live_and_a_bad_file_keeps_the_old_set() {
    let f = fixture(Kind::Sqlite, &[]);
    let s = &f.server;
    let file = f.dir.path().join("tokens");
    assert_eq!(publish_with(s, TOKEN, "1.0.0").await, 201);

    // Rotate: the new token works within 10 s, the removed one stops.
    let new = "rotated-token-0123456789abcdef";
    swap_in(&file, &format!("# rotated\n{new}\n"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut status = 0;
    while std::time::Instant::now() < deadline {
        status = publish_with(s, new, "1.0.1").await;
        if status == 201 {
            break;
        }
        assert_eq!(status, 403, "before the reload the new token is refused");
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert_eq!(status, 201, "the new token publishes within 10 s: {}", s.logs());
    assert_eq!(
        publish_with(s, TOKEN, "1.0.2").await,
        403,
        "the removed token is revoked"
    );

    // An empty file (a bad rotation) keeps the previous set and says so.
    swap_in(&file, "");
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    assert_eq!(
        publish_with(s, new, "1.0.3").await,
        201,
        "the previous set stays in force"
    );
    let logs = s.logs();
    assert!(logs.contains("the previous tokens stay in force"), "{logs}");
    assert!(!logs.contains(new), "no token in the log");
    let metrics = s.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("banter_registry_token_reloads_total{result=\"ok\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("banter_registry_token_reloads_total{result=\"error\"} 1"),
        "{metrics}"
    );
}

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Waits until the peer closes `conn` (EOF or reset); `None` if still open after `limit`.
fn closed_within(conn: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    conn.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let mut buf = [0u8; 4096];
    while start.elapsed() < limit {
        match conn.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => continue,
            Err(_) => return Some(start.elapsed()),
        }
    }
    None
}

fn half_sent(addr: &str) -> TcpStream {
    let mut c = TcpStream::connect(addr).unwrap();
    c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").unwrap();
    c
}

fn idle_after_one_request(addr: &str) -> TcpStream {
    let mut c = TcpStream::connect(addr).unwrap();
    c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 1024];
    let n = c.read(&mut buf).unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
        "answered"
    );
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_connections_are_closed_by_the_header_timeout() {
    let f = fixture(Kind::Sqlite, &["--header-read-timeout", "1s"]);
    let addr = f.server.addr();
    let mut slow = half_sent(&addr);
    let took = closed_within(&mut slow, Duration::from_secs(5)).expect("a half-sent request is closed");
    assert!(took < Duration::from_secs(3), "{took:?}");
    let mut idle = idle_after_one_request(&addr);
    let took = closed_within(&mut idle, Duration::from_secs(5)).expect("an idle keep-alive connection is closed");
    assert!(took < Duration::from_secs(3), "{took:?}");
    // Oversized headers: 431, not a buffer that grows.
    let mut big = TcpStream::connect(&addr).unwrap();
    let header = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let _ = big.write_all(header.as_bytes());
    big.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut out = Vec::new();
    let _ = big.read_to_end(&mut out);
    assert!(
        String::from_utf8_lossy(&out).starts_with("HTTP/1.1 431"),
        "{}",
        String::from_utf8_lossy(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_idle_and_half_sent_connections_exits_at_once() {
    let mut f = fixture(Kind::Sqlite, &[]);
    let addr = f.server.addr();
    let idle: Vec<TcpStream> = (0..50).map(|_| idle_after_one_request(&addr)).collect();
    let half: Vec<TcpStream> = (0..50).map(|_| half_sent(&addr)).collect();
    // And one request in flight: its head sent, half of its body.
    let body = pack("drain", "1.0.0", 0);
    let (head, tail) = body.split_at(body.len() / 2);
    let mut inflight = TcpStream::connect(&addr).unwrap();
    write!(
        inflight,
        "PUT /v1/packs/drain/versions/1.0.0 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    inflight.write_all(head).unwrap();
    std::thread::sleep(Duration::from_millis(300));

    let started = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(f.server.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    inflight.write_all(tail).unwrap();
    let mut answer = String::new();
    inflight.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = inflight.read_to_string(&mut answer);
    assert!(
        answer.starts_with("HTTP/1.1 201"),
        "the in-flight request is answered: {answer}"
    );
    let status = f.server.child.wait().unwrap();
    let took = started.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(
        took < Duration::from_secs(2),
        "exited in {took:?} with 100 idle/half-sent connections open"
    );
    drop((idle, half));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_silent_connections_than_descriptors_neither_block_health_nor_spin_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, format!("{TOKEN}\n")).unwrap();
    let db = dir.path().join("registry.db");
    let mut cmd = std::process::Command::new("prlimit");
    cmd.arg("--nofile=128:128")
        .arg(bin())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--header-read-timeout",
            "2s",
            "--token-file",
        ])
        .arg(&tokens)
        .args(["--backend", "sqlite", "--sqlite-path"])
        .arg(&db)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let s = Server::spawn(cmd, Backend::Sqlite(db.clone()), dir.path());
    let addr = s.addr();
    // 150 connections that never send a byte (the registry keeps at most 64).
    let silent: Vec<TcpStream> = (0..150).filter_map(|_| TcpStream::connect(&addr).ok()).collect();
    assert!(silent.len() >= 100, "{} connected", silent.len());

    let start = Instant::now();
    let mut answered = Vec::new();
    for path in ["/healthz", "/readyz"] {
        loop {
            let ok = s
                .http
                .get(s.url(path))
                .timeout(Duration::from_secs(1))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200);
            if ok {
                answered.push((path, start.elapsed()));
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(8),
                "{path} unreachable: {}",
                s.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let logs = s.logs();
    let limit_lines = logs.matches("connection limit reached").count();
    let accept_lines = logs.matches("accept failed").count();
    assert!(
        limit_lines <= 2 && accept_lines <= 2,
        "the log spins: {limit_lines} + {accept_lines} lines\n{logs}"
    );
    assert!(
        logs.contains("\"max_connections\":64") || logs.contains("max_connections=64"),
        "{logs}"
    );
    drop(silent);
    eprintln!("answered: {answered:?}");
}
