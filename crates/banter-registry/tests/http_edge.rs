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
