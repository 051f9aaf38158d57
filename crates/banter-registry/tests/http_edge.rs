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
