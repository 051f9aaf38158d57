//! One conformance suite — the same case functions — run against every backend
//! over real HTTP: SQLite on a real file, Redis on a real redis-server.
#![allow(clippy::unwrap_used)]

mod support;

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::cases::$case(super::support::Kind::Sqlite).await
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::cases::$case(super::support::Kind::Redis).await
                }
            )*
        }
    };
}

conformance!(
    publish_is_created_then_identical_then_conflict,
    get_serves_exact_bytes_with_digest_headers,
    conditional_get_answers_304,
    pack_listing_shows_versions_and_tags,
    pack_versions_come_in_pages,
    pagination_edges,
    pagination_clamps_large_n,
    tags_point_at_versions,
    yank_keeps_exact_fetch_but_leaves_latest,
    prerelease_and_build_metadata_rules,
    blobs_are_content_addressed,
    stats_count_packs_versions_bytes,
    schema_openapi_health_and_metrics,
    bad_inputs_get_typed_errors,
    auth_is_required_for_every_change,
    concurrent_identical_publishes_agree,
    concurrent_conflicting_publishes_have_one_winner,
    path_tricks_are_rejected,
    oversized_bodies_get_413,
    overload_gets_429_with_retry_after,
    slow_requests_time_out,
    duplicate_keys_are_refused_with_their_pointer,
);

mod cases {
    use std::collections::BTreeMap;

    use futures::future::join_all;
    use serde_json::{Value, json};

    use super::support::*;

    fn digest_of(bytes: &[u8]) -> String {
        banter_pack::Digest::of(bytes).to_string()
    }

    pub async fn publish_is_created_then_identical_then_conflict(kind: Kind) {
        let s = fixture(kind, &[]);
        let body = pack("alpha", "1.0.0", 1);
        let r = s.publish("alpha", "1.0.0", &body).await;
        assert_eq!(r.status(), 201);
        assert_eq!(r.headers()["location"], "/v1/packs/alpha/versions/1.0.0");
        assert_eq!(r.headers()["digest"].to_str().unwrap(), digest_of(&body));
        assert_eq!(
            r.headers()["etag"].to_str().unwrap(),
            format!("\"{}\"", digest_of(&body))
        );
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["created"], true);
        assert_eq!(v["digest"], digest_of(&body));
        assert_eq!(v["size"], body.len());

        let r = s.publish("alpha", "1.0.0", &body).await;
        assert_eq!(r.status(), 200, "identical re-publish is idempotent");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["created"], false);
        assert_eq!(v["digest"], digest_of(&body));

        let other = pack("alpha", "1.0.0", 2);
        let (status, code, body_json) = error_code(s.publish("alpha", "1.0.0", &other).await).await;
        assert_eq!((status, code.as_str()), (409, "VERSION_EXISTS"));
        assert_eq!(body_json["errors"][0]["detail"]["existing_digest"], digest_of(&body));

        // The stored bytes are still the first ones.
        let got = s.get("/v1/packs/alpha/versions/1.0.0").await.bytes().await.unwrap();
        assert_eq!(got.as_ref(), body.as_slice());

        // A correct ?digest= is accepted.
        let b2 = pack("alpha", "1.0.1", 1);
        let r = s
            .http
            .put(s.url(&format!("/v1/packs/alpha/versions/1.0.1?digest={}", digest_of(&b2))))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(b2.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }

    pub async fn get_serves_exact_bytes_with_digest_headers(kind: Kind) {
        let s = fixture(kind, &[]);
        // Unusual but valid formatting must come back byte for byte.
        let body = format!("  {}\n\n", String::from_utf8(pack("bytes", "2.1.0", 7)).unwrap()).into_bytes();
        assert_eq!(s.publish("bytes", "2.1.0", &body).await.status(), 201);
        for reference in ["2.1.0", "latest"] {
            let r = s.get(&format!("/v1/packs/bytes/versions/{reference}")).await;
            assert_eq!(r.status(), 200);
            let h = r.headers().clone();
            assert_eq!(h["content-type"], "application/json");
            assert_eq!(h["digest"].to_str().unwrap(), digest_of(&body));
            assert_eq!(h["etag"].to_str().unwrap(), format!("\"{}\"", digest_of(&body)));
            assert_eq!(h["banter-pack-version"], "2.1.0");
            let cache = h["cache-control"].to_str().unwrap();
            if reference == "latest" {
                assert!(cache.contains("no-cache"), "{cache}");
            } else {
                assert_eq!(
                    cache, "public, max-age=300",
                    "exact versions are cached briefly (yank state can change)"
                );
            }
            assert_eq!(r.bytes().await.unwrap().as_ref(), body.as_slice());

            let head = s
                .http
                .head(s.url(&format!("/v1/packs/bytes/versions/{reference}")))
                .send()
                .await
                .unwrap();
            assert_eq!(head.status(), 200);
            assert_eq!(head.headers()["digest"], h["digest"]);
            assert_eq!(
                head.headers()["content-length"].to_str().unwrap(),
                body.len().to_string()
            );
            assert!(head.bytes().await.unwrap().is_empty());
        }
        let (status, code, _) = error_code(s.get("/v1/packs/bytes/versions/9.9.9").await).await;
        assert_eq!((status, code.as_str()), (404, "VERSION_UNKNOWN"));
        let (status, code, _) = error_code(s.get("/v1/packs/bytes/versions/nosuchtag").await).await;
        assert_eq!((status, code.as_str()), (404, "VERSION_UNKNOWN"));
        let (status, code, _) = error_code(s.get("/v1/packs/nope/versions/latest").await).await;
        assert_eq!((status, code.as_str()), (404, "NAME_UNKNOWN"));
    }

    pub async fn conditional_get_answers_304(kind: Kind) {
        let s = fixture(kind, &[]);
        let body = pack("cond", "1.0.0", 1);
        s.publish("cond", "1.0.0", &body).await;
        let etag = format!("\"{}\"", digest_of(&body));
        for inm in [
            etag.clone(),
            format!("W/{etag}"),
            format!("\"sha256:00\", {etag}"),
            "*".into(),
        ] {
            let r = s
                .http
                .get(s.url("/v1/packs/cond/versions/latest"))
                .header("if-none-match", &inm)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 304, "If-None-Match: {inm}");
            assert_eq!(r.headers()["etag"].to_str().unwrap(), etag);
            assert!(r.bytes().await.unwrap().is_empty());
        }
        let r = s
            .http
            .get(s.url("/v1/packs/cond/versions/1.0.0"))
            .header("if-none-match", "\"sha256:0000\"")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let metrics = s.get("/metrics").await.text().await.unwrap();
        assert!(metrics.contains("banter_registry_not_modified_total 4"), "{metrics}");
    }

    /// `GET /v1/packs/{name}?n=&last=`: versions in precedence order a page
    /// at a time, `Link` while more remain, each page with the tags that
    /// point at its versions and the effective `latest`.
    pub async fn pack_versions_come_in_pages(kind: Kind) {
        let s = fixture(kind, &[]);
        let all = [
            "0.9.0",
            "1.0.0-alpha.2",
            "1.0.0-alpha.10",
            "1.0.0",
            "1.2.0",
            "1.10.0",
            "2.0.0-rc.1",
        ];
        for v in all {
            assert_eq!(s.publish("paged", v, &pack("paged", v, 0)).await.status(), 201);
        }
        assert_eq!(s.tag("paged", "old", "0.9.0").await.status(), 200);
        assert_eq!(s.tag("paged", "next", "2.0.0-rc.1").await.status(), 200);
        let mut url = "/v1/packs/paged?n=3".to_owned();
        let mut seen = Vec::new();
        let mut pages = Vec::new();
        loop {
            let r = s.get(&url).await;
            assert_eq!(r.status(), 200, "{url}");
            let link = r.headers().get("link").map(|l| l.to_str().unwrap().to_owned());
            let page: Value = r.json().await.unwrap();
            let versions: Vec<String> = page["versions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["version"].as_str().unwrap().to_owned())
                .collect();
            assert_eq!(page["tags"]["latest"], "1.10.0", "latest on every page: {page}");
            pages.push((versions.clone(), page["tags"].clone()));
            seen.extend(versions);
            let Some(link) = link else { break };
            let next = link
                .strip_prefix('<')
                .and_then(|l| l.split_once('>'))
                .map(|(u, rest)| {
                    assert_eq!(rest, "; rel=\"next\"");
                    u.to_owned()
                })
                .unwrap();
            url = next;
        }
        assert_eq!(seen, all, "precedence order across pages");
        assert_eq!(pages.len(), 3);
        assert_eq!(pages[0].1, json!({"old": "0.9.0", "latest": "1.10.0"}));
        assert_eq!(pages[1].1, json!({"latest": "1.10.0"}));
        assert_eq!(pages[2].1, json!({"next": "2.0.0-rc.1", "latest": "1.10.0"}));
        // Without n: everything up to 1000, as before pages existed.
        let whole: Value = s.get("/v1/packs/paged").await.json().await.unwrap();
        assert_eq!(whole["versions"].as_array().unwrap().len(), all.len());
        // After the last version: an empty page, no Link.
        let r = s.get("/v1/packs/paged?last=2.0.0-rc.1").await;
        assert_eq!(r.status(), 200);
        assert!(r.headers().get("link").is_none());
        let empty: Value = r.json().await.unwrap();
        assert_eq!(empty["versions"], json!([]));
        // `last` need not be stored: the page starts after where it would sort.
        let r: Value = s.get("/v1/packs/paged?n=1&last=1.5.0").await.json().await.unwrap();
        assert_eq!(r["versions"][0]["version"], "1.10.0");
        let (status, code, _) = error_code(s.get("/v1/packs/paged?last=banana").await).await;
        assert_eq!((status, code.as_str()), (400, "VERSION_INVALID"));
        let (status, code, _) = error_code(s.get("/v1/packs/paged?n=-1").await).await;
        assert_eq!((status, code.as_str()), (400, "PAGINATION_NUMBER_INVALID"));
        let (status, code, _) = error_code(s.get("/v1/packs/nope?n=2").await).await;
        assert_eq!((status, code.as_str()), (404, "NAME_UNKNOWN"));
    }

    pub async fn pack_listing_shows_versions_and_tags(kind: Kind) {
        let s = fixture(kind, &[]);
        for v in ["1.0.0", "1.10.0", "1.2.0"] {
            assert_eq!(s.publish("multi", v, &pack("multi", v, 0)).await.status(), 201);
        }
        assert_eq!(s.tag("multi", "stable", "1.2.0").await.status(), 200);
        let info: Value = s.get("/v1/packs/multi").await.json().await.unwrap();
        assert_eq!(info["name"], "multi");
        let versions: Vec<&str> = info["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["version"].as_str().unwrap())
            .collect();
        assert_eq!(versions, ["1.0.0", "1.2.0", "1.10.0"], "semver order, not string order");
        let first = &info["versions"][0];
        assert_eq!(first["digest"], digest_of(&pack("multi", "1.0.0", 0)));
        assert_eq!(first["size"], pack("multi", "1.0.0", 0).len());
        assert_eq!(first["yanked"], false);
        assert!(first["published_at"].as_str().unwrap().ends_with('Z'));
        let tags: BTreeMap<String, String> = serde_json::from_value(info["tags"].clone()).unwrap();
        assert_eq!(
            tags,
            BTreeMap::from([("latest".into(), "1.10.0".into()), ("stable".into(), "1.2.0".into())])
        );
        let (status, code, _) = error_code(s.get("/v1/packs/absent").await).await;
        assert_eq!((status, code.as_str()), (404, "NAME_UNKNOWN"));
    }

    async fn page(s: &Server, query: &str) -> (Vec<String>, Option<String>) {
        let r = s.get(&format!("/v1/packs{query}")).await;
        assert_eq!(r.status(), 200, "{query}");
        let link = r.headers().get("link").map(|l| l.to_str().unwrap().to_owned());
        let v: Value = r.json().await.unwrap();
        (serde_json::from_value(v["packs"].clone()).unwrap(), link)
    }

    pub async fn pagination_edges(kind: Kind) {
        let s = fixture(kind, &[]);
        let mut names: Vec<String> = (0..12).map(|i| format!("pack-{i:02}")).collect();
        names.push("other".into());
        join_all(
            names
                .iter()
                .map(|n| s.publish(n, "1.0.0", Box::leak(pack(n, "1.0.0", 0).into_boxed_slice()))),
        )
        .await;
        names.sort();

        let (all, link) = page(&s, "").await;
        assert_eq!(all, names);
        assert!(link.is_none());

        // Walk pages of 5 through the Link header.
        let mut seen = Vec::new();
        let mut query = "?n=5".to_owned();
        loop {
            let (p, link) = page(&s, &query).await;
            assert!(p.len() <= 5);
            seen.extend(p);
            let Some(link) = link else { break };
            assert!(link.ends_with("rel=\"next\""), "{link}");
            let target = link.trim_start_matches('<').split('>').next().unwrap();
            query = target.trim_start_matches("/v1/packs").to_owned();
        }
        assert_eq!(seen, names);

        let (p, _) = page(&s, "?prefix=pack-0&n=100").await;
        assert_eq!(p.len(), 10);
        let (p, link) = page(&s, "?prefix=pack-&n=10").await;
        assert_eq!(p.len(), 10);
        assert!(link.as_deref().unwrap().contains("prefix=pack-"), "{link:?}");
        let (p, link) = page(&s, "?n=0").await;
        assert!(p.is_empty() && link.is_none(), "n=0 is an empty page");
        let (p, link) = page(&s, "?last=zzz").await;
        assert!(p.is_empty() && link.is_none(), "last past the end");
        let (p, _) = page(&s, "?last=pack-10").await;
        assert_eq!(
            p,
            ["pack-11", "other"]
                .iter()
                .filter(|n| **n > "pack-10")
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
        );
        let (p, link) = page(&s, "?n=13").await;
        assert_eq!(p.len(), 13);
        assert!(link.is_none(), "exactly the remaining count: no next page");
        for bad in ["?n=abc", "?n=-1", "?n=1.5"] {
            let (status, code, _) = error_code(s.get(&format!("/v1/packs{bad}")).await).await;
            assert_eq!((status, code.as_str()), (400, "PAGINATION_NUMBER_INVALID"), "{bad}");
        }
        let (status, code, _) = error_code(s.get("/v1/packs?prefix=UP").await).await;
        assert_eq!((status, code.as_str()), (400, "NAME_INVALID"));
    }

    pub async fn pagination_clamps_large_n(kind: Kind) {
        let f = fixture(kind, &[]);
        let s = &f.server;
        let names: Vec<String> = (0..1003).map(|i| format!("p{i:04}")).collect();
        for chunk in names.chunks(32) {
            let results = join_all(chunk.iter().map(|n| {
                let body = pack(n, "0.1.0", 0);
                async move { s.publish(n, "0.1.0", &body).await.status() }
            }))
            .await;
            assert!(results.iter().all(|st| *st == 201), "{results:?}");
        }
        let (p, link) = page(s, "?n=5000").await;
        assert_eq!(p.len(), 1000, "n is clamped to 1000");
        let link = link.expect("more remain");
        assert!(link.contains("n=1000") && link.contains("last=p0999"), "{link}");
        let (p, link) = page(s, "?n=5000&last=p0999").await;
        assert_eq!(p, ["p1000", "p1001", "p1002"]);
        assert!(link.is_none());
        // Past usize as well: still clamped, not refused.
        let (p, _) = page(s, "?n=99999999999999999999999").await;
        assert_eq!(p.len(), 1000, "an overflowing n is clamped too");
        // Junk is still refused, naming the parameter.
        let (status, code, body) = error_code(s.get("/v1/packs?n=-1").await).await;
        assert_eq!((status, code.as_str()), (400, "PAGINATION_NUMBER_INVALID"), "{body}");
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap_or_default()
                .starts_with("n must"),
            "{body}"
        );
    }

    pub async fn tags_point_at_versions(kind: Kind) {
        let s = fixture(kind, &[]);
        for v in ["1.0.0", "2.0.0"] {
            s.publish("tagged", v, &pack("tagged", v, 0)).await;
        }
        let r = s.tag("tagged", "stable", "1.0.0").await;
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v, json!({"name": "tagged", "tag": "stable", "version": "1.0.0"}));
        let r = s.get("/v1/packs/tagged/versions/stable").await;
        assert_eq!(r.headers()["banter-pack-version"], "1.0.0");
        // Moving a tag.
        assert_eq!(s.tag("tagged", "stable", "2.0.0").await.status(), 200);
        let r = s.get("/v1/packs/tagged/versions/stable").await;
        assert_eq!(r.headers()["banter-pack-version"], "2.0.0");
        // An explicit latest wins over the computed one.
        assert_eq!(s.tag("tagged", "latest", "1.0.0").await.status(), 200);
        let r = s.get("/v1/packs/tagged/versions/latest").await;
        assert_eq!(r.headers()["banter-pack-version"], "1.0.0");

        for (tag, version, want) in [
            ("1.0.0", "1.0.0", (400, "TAG_INVALID")),
            ("1", "1.0.0", (400, "TAG_INVALID")),
            ("x", "1.0.0", (400, "TAG_INVALID")),
            (".hidden", "1.0.0", (400, "TAG_INVALID")),
            ("ok", "3.0.0", (404, "VERSION_UNKNOWN")),
            ("ok", "not-semver", (400, "VERSION_INVALID")),
        ] {
            let (status, code, _) = error_code(s.tag("tagged", tag, version).await).await;
            assert_eq!((status, code.as_str()), want, "tag {tag} -> {version}");
        }
        let (status, code, _) = error_code(s.tag("absent", "ok", "1.0.0").await).await;
        assert_eq!((status, code.as_str()), (404, "NAME_UNKNOWN"));
        let r = s
            .http
            .put(s.url("/v1/packs/tagged/tags/ok"))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body("{\"versio\": \"1.0.0\"}")
            .send()
            .await
            .unwrap();
        let (status, code, _) = error_code(r).await;
        assert_eq!((status, code.as_str()), (400, "JSON_MALFORMED"));
    }

    pub async fn yank_keeps_exact_fetch_but_leaves_latest(kind: Kind) {
        let s = fixture(kind, &[]);
        for v in ["1.0.0", "1.1.0"] {
            s.publish("yanky", v, &pack("yanky", v, 0)).await;
        }
        let r = s.yank("yanky", "1.1.0", true).await;
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.json::<Value>().await.unwrap(),
            json!({"name": "yanky", "version": "1.1.0", "yanked": true})
        );
        assert_eq!(s.yank("yanky", "1.1.0", true).await.status(), 200, "yank is idempotent");
        let latest = s.get("/v1/packs/yanky/versions/latest").await;
        assert_eq!(latest.headers()["banter-pack-version"], "1.0.0");
        let exact = s.get("/v1/packs/yanky/versions/1.1.0").await;
        assert_eq!(exact.status(), 200, "a yanked version stays fetchable by exact version");
        assert_eq!(exact.headers()["banter-pack-yanked"], "true");
        let info: Value = s.get("/v1/packs/yanky").await.json().await.unwrap();
        assert_eq!(info["versions"][1]["yanked"], true);
        assert_eq!(info["tags"]["latest"], "1.0.0");

        // The version number is never reused, yanked or not.
        let (status, code, _) = error_code(s.publish("yanky", "1.1.0", &pack("yanky", "1.1.0", 9)).await).await;
        assert_eq!((status, code.as_str()), (409, "VERSION_EXISTS"));
        assert_eq!(
            s.publish("yanky", "1.1.0", &pack("yanky", "1.1.0", 0)).await.status(),
            200
        );

        // An explicit latest on a yanked version falls back to the computed one.
        assert_eq!(s.tag("yanky", "latest", "1.1.0").await.status(), 200);
        let latest = s.get("/v1/packs/yanky/versions/latest").await;
        assert_eq!(latest.headers()["banter-pack-version"], "1.0.0");

        assert_eq!(s.yank("yanky", "1.1.0", false).await.status(), 200);
        let latest = s.get("/v1/packs/yanky/versions/latest").await;
        assert_eq!(latest.headers()["banter-pack-version"], "1.1.0");

        // Everything yanked: latest resolves to nothing.
        s.yank("yanky", "1.0.0", true).await;
        s.yank("yanky", "1.1.0", true).await;
        let (status, code, _) = error_code(s.get("/v1/packs/yanky/versions/latest").await).await;
        assert_eq!((status, code.as_str()), (404, "VERSION_UNKNOWN"));

        let (status, code, _) = error_code(s.yank("yanky", "7.0.0", true).await).await;
        assert_eq!((status, code.as_str()), (404, "VERSION_UNKNOWN"));
        let (status, code, _) = error_code(s.yank("absent", "1.0.0", true).await).await;
        assert_eq!((status, code.as_str()), (404, "NAME_UNKNOWN"));
        let (status, code, _) = error_code(s.yank("yanky", "latest", true).await).await;
        assert_eq!((status, code.as_str()), (400, "VERSION_INVALID"));
    }

    pub async fn prerelease_and_build_metadata_rules(kind: Kind) {
        let s = fixture(kind, &[]);
        for v in ["1.0.0-alpha.2", "1.0.0-alpha.10", "1.0.0-rc.1"] {
            assert_eq!(s.publish("pre", v, &pack("pre", v, 0)).await.status(), 201);
        }
        let (status, code, _) = error_code(s.get("/v1/packs/pre/versions/latest").await).await;
        assert_eq!(
            (status, code.as_str()),
            (404, "VERSION_UNKNOWN"),
            "pre-releases never become latest implicitly"
        );
        assert_eq!(s.publish("pre", "0.9.0", &pack("pre", "0.9.0", 0)).await.status(), 201);
        let r = s.get("/v1/packs/pre/versions/latest").await;
        assert_eq!(r.headers()["banter-pack-version"], "0.9.0");
        let info: Value = s.get("/v1/packs/pre").await.json().await.unwrap();
        let order: Vec<&str> = info["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["version"].as_str().unwrap())
            .collect();
        assert_eq!(order, ["0.9.0", "1.0.0-alpha.2", "1.0.0-alpha.10", "1.0.0-rc.1"]);
        let r = s.get("/v1/packs/pre/versions/1.0.0-alpha.10").await;
        assert_eq!(r.status(), 200);

        // Build metadata does not make a new version number.
        assert_eq!(
            s.publish("build", "1.0.0+a", &pack("build", "1.0.0+a", 0))
                .await
                .status(),
            201
        );
        let (status, code, _) = error_code(s.publish("build", "1.0.0+b", &pack("build", "1.0.0+b", 0)).await).await;
        assert_eq!((status, code.as_str()), (409, "VERSION_EXISTS"));
        let r = s.get("/v1/packs/build/versions/1.0.0").await;
        assert_eq!(r.headers()["banter-pack-version"], "1.0.0+a");
    }

    pub async fn blobs_are_content_addressed(kind: Kind) {
        let s = fixture(kind, &[]);
        let body = pack("blobby", "1.0.0", 0);
        s.publish("blobby", "1.0.0", &body).await;
        let d = digest_of(&body);
        let r = s.get(&format!("/v1/blobs/{d}")).await;
        assert_eq!(r.status(), 200);
        assert!(r.headers()["cache-control"].to_str().unwrap().contains("immutable"));
        assert!(
            r.headers()["cache-control"]
                .to_str()
                .unwrap()
                .contains("max-age=31536000")
        );
        assert_eq!(r.headers()["digest"].to_str().unwrap(), d);
        assert_eq!(r.bytes().await.unwrap().as_ref(), body.as_slice());
        let r = s
            .http
            .get(s.url(&format!("/v1/blobs/{d}")))
            .header("if-none-match", format!("\"{d}\""))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 304);
        let unknown = digest_of(b"nothing stored");
        let (status, code, _) = error_code(s.get(&format!("/v1/blobs/{unknown}")).await).await;
        assert_eq!((status, code.as_str()), (404, "BLOB_UNKNOWN"));
        for bad in [
            "sha256:abc",
            "md5:0123",
            "sha256:ZZ",
            &d.to_uppercase(),
            &d.replace("sha256:", ""),
        ] {
            let (status, code, _) = error_code(s.get(&format!("/v1/blobs/{bad}")).await).await;
            assert_eq!((status, code.as_str()), (400, "DIGEST_INVALID"), "{bad}");
        }
    }

    pub async fn stats_count_packs_versions_bytes(kind: Kind) {
        let s = fixture(kind, &[]);
        let empty: Value = s.get("/v1/stats").await.json().await.unwrap();
        assert_eq!(empty, json!({"packs": 0, "versions": 0, "bytes": 0}));
        let a = pack("sa", "1.0.0", 0);
        let b = pack("sa", "1.1.0", 0);
        let c = pack("sb", "1.0.0", 0);
        for (n, v, body) in [("sa", "1.0.0", &a), ("sa", "1.1.0", &b), ("sb", "1.0.0", &c)] {
            s.publish(n, v, body).await;
        }
        s.publish("sa", "1.0.0", &a).await; // identical: changes nothing
        let stats: Value = s.get("/v1/stats").await.json().await.unwrap();
        assert_eq!(
            stats,
            json!({"packs": 2, "versions": 3, "bytes": a.len() + b.len() + c.len()})
        );
        let metrics = s.get("/metrics").await.text().await.unwrap();
        assert!(metrics.contains("banter_registry_versions 3"), "{metrics}");
        assert!(metrics.contains("banter_registry_packs 2"), "{metrics}");
    }

    pub async fn schema_openapi_health_and_metrics(kind: Kind) {
        let s = fixture(kind, &[]);
        let schema = s.get("/v1/schema/pack.json").await;
        assert_eq!(schema.status(), 200);
        assert_eq!(schema.text().await.unwrap(), banter_pack::SCHEMA_JSON);
        let openapi: Value = s.get("/openapi.json").await.json().await.unwrap();
        let paths = openapi["paths"].as_object().unwrap();
        for (path, methods) in [
            ("/v1/packs/{name}/versions/{version}", &["put", "get", "head"][..]),
            ("/v1/packs/{name}", &["get"]),
            ("/v1/packs", &["get"]),
            ("/v1/packs/{name}/tags/{tag}", &["put"]),
            ("/v1/packs/{name}/versions/{version}/yank", &["post", "delete"]),
            ("/v1/blobs/{digest}", &["get"]),
            ("/v1/stats", &["get"]),
            ("/v1/schema/pack.json", &["get"]),
            ("/healthz", &["get"]),
            ("/readyz", &["get"]),
            ("/metrics", &["get"]),
        ] {
            for m in methods {
                assert!(
                    paths.get(path).and_then(|p| p.get(*m)).is_some(),
                    "openapi lacks {m} {path}"
                );
                assert!(
                    paths[path][*m]["responses"].get("429").is_some(),
                    "{m} {path} lacks the 429 answer"
                );
            }
        }
        assert_eq!(s.get("/healthz").await.status(), 200);
        assert_eq!(s.get("/readyz").await.status(), 200);
        s.publish("m", "1.0.0", &pack("m", "1.0.0", 0)).await;
        s.publish("m", "1.0.0", b"{").await;
        s.get("/v1/packs/m/versions/latest").await;
        let metrics = s.get("/metrics").await;
        assert!(metrics.headers()["content-type"].to_str().unwrap().contains("text"));
        let text = metrics.text().await.unwrap();
        let backend = if kind == Kind::Sqlite { "sqlite" } else { "redis" };
        for needle in [
            "banter_registry_http_requests_total{route=\"/v1/packs/{name}/versions/{version}\",method=\"PUT\",status=\"201\"} 1".to_owned(),
            "banter_registry_http_request_duration_seconds_bucket{le=".to_owned(),
            format!("banter_registry_storage_operation_duration_seconds_count{{backend=\"{backend}\",operation=\"publish\"}}"),
            "banter_registry_publishes_total{result=\"created\"} 1".to_owned(),
            "banter_registry_validation_failures_total{code=\"JSON_MALFORMED\"} 1".to_owned(),
            "banter_registry_validation_failures_total{code=\"PACK_INVALID\"} 0".to_owned(),
            "banter_registry_http_requests_in_flight 1".to_owned(),
            format!("banter_registry_storage_up{{backend=\"{backend}\"}} 1"),
            "banter_registry_bytes ".to_owned(),
            format!("banter_registry_build_info{{version=\"{}\",backend=\"{backend}\"}} 1", env!("CARGO_PKG_VERSION")),
        ] {
            assert!(text.contains(&needle), "metrics lack {needle}\n{text}");
        }
        promtool_check_metrics(&text);
        // Unknown routes are counted under one label, not by raw path.
        s.get("/no/such/path/123").await;
        let text = s.get("/metrics").await.text().await.unwrap();
        assert!(text.contains("route=\"unmatched\""));
        assert!(!text.contains("/no/such/path"));
    }

    /// The bad-input table: each request and the status and code it must get.
    pub async fn duplicate_keys_are_refused_with_their_pointer(kind: Kind) {
        let s = fixture(kind, &[]);
        let good = serde_json::to_string(&pack_value("dup", "1.0.0", 0)).unwrap();
        assert!(good.starts_with('{') && good.contains("\"lines\":["), "{good}");
        // The second occurrence, at the top, in a nested object, in lines[].
        let cases = [
            (good.replacen('{', "{\"version\":\"9.9.9\",", 1), "/version"),
            (
                good.replacen("\"lines\":[{", "\"lines\":[{\"text\":\"never validated\",", 1),
                "/lines/0/text",
            ),
            (good.replacen('{', "{\"meta\":{\"k\":1,\"k\":2},", 1), "/meta/k"),
        ];
        for (body, pointer) in cases {
            let r = s.publish("dup", "1.0.0", body.as_bytes()).await;
            let (status, code, body) = error_code(r).await;
            assert_eq!((status, code.as_str()), (400, "DUPLICATE_KEY"), "{pointer}: {body}");
            assert_eq!(body["errors"][0]["detail"]["pointer"], pointer, "{body}");
        }
        // Nothing was stored: the clean document still publishes as new.
        let r = s.publish("dup", "1.0.0", good.as_bytes()).await;
        assert_eq!(r.status(), 201);
    }

    pub async fn bad_inputs_get_typed_errors(kind: Kind) {
        let s = fixture(kind, &[]);
        let good = pack_value("demo", "1.0.0", 0);
        let with = |f: &dyn Fn(&mut Value)| {
            let mut v = good.clone();
            f(&mut v);
            serde_json::to_vec(&v).unwrap()
        };
        let long_name = "a".repeat(64);
        // (what, path after /v1/packs/, content type, body, status, code)
        type Case<'a> = (&'a str, String, Option<&'a str>, Vec<u8>, u16, &'a str);
        let cases: Vec<Case> = vec![
            (
                "malformed JSON",
                "demo/versions/1.0.0".into(),
                Some("application/json"),
                b"{\"name\": ".to_vec(),
                400,
                "JSON_MALFORMED",
            ),
            (
                "not an object",
                "demo/versions/1.0.0".into(),
                Some("application/json"),
                b"[1,2]".to_vec(),
                422,
                "PACK_INVALID",
            ),
            (
                "empty body",
                "demo/versions/1.0.0".into(),
                Some("application/json"),
                Vec::new(),
                400,
                "JSON_MALFORMED",
            ),
            (
                "wrong content type",
                "demo/versions/1.0.0".into(),
                Some("text/plain"),
                pack("demo", "1.0.0", 0),
                415,
                "UNSUPPORTED_MEDIA_TYPE",
            ),
            (
                "no content type",
                "demo/versions/1.0.0".into(),
                None,
                pack("demo", "1.0.0", 0),
                415,
                "UNSUPPORTED_MEDIA_TYPE",
            ),
            (
                "unknown persona",
                "demo/versions/1.0.0".into(),
                Some("application/json"),
                with(&|v| v["lines"][0]["persona"] = json!("ghost")),
                422,
                "PACK_INVALID",
            ),
            (
                "duplicate line id",
                "demo/versions/1.0.0".into(),
                Some("application/json"),
                with(&|v| v["lines"][1]["id"] = json!("l1")),
                422,
                "PACK_INVALID",
            ),
            (
                "name mismatch",
                "other/versions/1.0.0".into(),
                Some("application/json"),
                pack("demo", "1.0.0", 0),
                422,
                "PACK_INVALID",
            ),
            (
                "version mismatch",
                "demo/versions/1.0.1".into(),
                Some("application/json"),
                pack("demo", "1.0.0", 0),
                422,
                "PACK_INVALID",
            ),
            // `..` and `%2e%2e` are normalised away by HTTP clients; path_tricks_are_rejected sends them raw.
            (
                "uppercase name",
                "Demo/versions/1.0.0".into(),
                Some("application/json"),
                pack("Demo", "1.0.0", 0),
                400,
                "NAME_INVALID",
            ),
            (
                "64-char name",
                format!("{long_name}/versions/1.0.0"),
                Some("application/json"),
                pack(&long_name, "1.0.0", 0),
                400,
                "NAME_INVALID",
            ),
            (
                "cyrillic look-alike",
                "dem%D0%BE/versions/1.0.0".into(),
                Some("application/json"),
                pack("demo", "1.0.0", 0),
                400,
                "NAME_INVALID",
            ),
            (
                "fullwidth look-alike",
                "%EF%BD%84emo/versions/1.0.0".into(),
                Some("application/json"),
                pack("demo", "1.0.0", 0),
                400,
                "NAME_INVALID",
            ),
            (
                "invalid semver",
                "demo/versions/1.0".into(),
                Some("application/json"),
                pack("demo", "1.0.0", 0),
                400,
                "VERSION_INVALID",
            ),
            (
                "leading v",
                "demo/versions/v1.0.0".into(),
                Some("application/json"),
                pack("demo", "1.0.0", 0),
                400,
                "VERSION_INVALID",
            ),
            (
                "bad digest param",
                "demo/versions/1.0.0?digest=sha256:abc".into(),
                Some("application/json"),
                pack("demo", "1.0.0", 0),
                400,
                "DIGEST_INVALID",
            ),
            (
                "wrong digest param",
                format!("demo/versions/1.0.0?digest={}", digest_of(b"x")),
                Some("application/json"),
                pack("demo", "1.0.0", 0),
                400,
                "DIGEST_INVALID",
            ),
        ];
        for (what, path, ctype, body, status, code) in cases {
            let mut req = s
                .http
                .put(s.url(&format!("/v1/packs/{path}")))
                .bearer_auth(TOKEN)
                .body(body);
            if let Some(c) = ctype {
                req = req.header("content-type", c);
            }
            let (got_status, got_code, json) = error_code(req.send().await.unwrap()).await;
            assert_eq!((got_status, got_code.as_str()), (status, code), "{what}: {json}");
            assert!(
                json["errors"][0]["message"].as_str().is_some_and(|m| !m.is_empty()),
                "{what}: no message"
            );
        }

        // Several schema violations at once: every one is listed with its pointer.
        let body = with(&|v| {
            v["name"] = json!("demo");
            v["lines"][0]["event"] = json!("goal");
            v["lines"][1]["cooldown_ms"] = json!(-5);
            v["personas"][0]["display_name"] = json!("");
            v["unexpected"] = json!(1);
        });
        let (status, code, json) = error_code(s.publish("demo", "1.0.0", &body).await).await;
        assert_eq!((status, code.as_str()), (422, "PACK_INVALID"));
        let pointers: Vec<&str> = json["errors"][0]["detail"]["violations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["pointer"].as_str().unwrap())
            .collect();
        // The property that is not allowed is pointed at, not the document.
        for p in [
            "/lines/0/event",
            "/lines/1/cooldown_ms",
            "/personas/0/display_name",
            "/unexpected",
        ] {
            assert!(pointers.contains(&p), "{p:?} missing in {pointers:?}");
        }
        // Nothing was stored by any of these.
        let stats: Value = s.get("/v1/stats").await.json().await.unwrap();
        assert_eq!(stats["versions"], 0);
    }

    pub async fn auth_is_required_for_every_change(kind: Kind) {
        let s = fixture(kind, &[]);
        s.publish("auth", "1.0.0", &pack("auth", "1.0.0", 0)).await;
        let requests = [
            ("PUT", "/v1/packs/auth/versions/2.0.0"),
            ("PUT", "/v1/packs/auth/tags/stable"),
            ("POST", "/v1/packs/auth/versions/1.0.0/yank"),
            ("DELETE", "/v1/packs/auth/versions/1.0.0/yank"),
        ];
        for (method, path) in requests {
            let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let body = if path.contains("tags") {
                b"{\"version\":\"1.0.0\"}".to_vec()
            } else {
                pack("auth", "2.0.0", 0)
            };
            let r = s
                .http
                .request(m.clone(), s.url(path))
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            let challenge = r
                .headers()
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap().to_owned());
            let (status, code, _) = error_code(r).await;
            assert_eq!((status, code.as_str()), (401, "UNAUTHORIZED"), "{method} {path}");
            assert!(
                challenge.is_some_and(|c| c.starts_with("Bearer")),
                "{method} {path}: no WWW-Authenticate"
            );
            for auth in ["Bearer wrong-token-wrong-token", "Basic dXNlcjpwYXNz", "Bearer "] {
                let r = s
                    .http
                    .request(m.clone(), s.url(path))
                    .header("authorization", auth)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap();
                let (status, code, _) = error_code(r).await;
                let expected = if auth == "Bearer wrong-token-wrong-token" {
                    (403, "DENIED")
                } else {
                    (401, "UNAUTHORIZED")
                };
                assert_eq!((status, code.as_str()), expected, "{method} {path} with {auth:?}");
            }
        }
        // The scheme name is case-insensitive.
        let r = s
            .http
            .post(s.url("/v1/packs/auth/versions/1.0.0/yank"))
            .header("authorization", format!("BEARER {TOKEN}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(s.yank("auth", "1.0.0", false).await.status(), 200);
        let info: Value = s.get("/v1/packs/auth").await.json().await.unwrap();
        assert_eq!(info["versions"].as_array().unwrap().len(), 1);
        assert_eq!(info["versions"][0]["yanked"], false);
        assert!(info["tags"].get("stable").is_none());
        assert!(!s.logs().contains(TOKEN), "the token must never be logged");
    }

    pub async fn concurrent_identical_publishes_agree(kind: Kind) {
        let s = fixture(kind, &[]);
        let body = pack("race", "1.0.0", 0);
        let results = join_all((0..32).map(|_| async {
            let r = s.publish("race", "1.0.0", &body).await;
            let status = r.status().as_u16();
            let v: Value = r.json().await.unwrap();
            (status, v["digest"].as_str().unwrap().to_owned())
        }))
        .await;
        assert_eq!(results.iter().filter(|(st, _)| *st == 201).count(), 1, "{results:?}");
        assert_eq!(results.iter().filter(|(st, _)| *st == 200).count(), 31, "{results:?}");
        assert!(results.iter().all(|(_, d)| *d == digest_of(&body)));
        let stats: Value = s.get("/v1/stats").await.json().await.unwrap();
        assert_eq!(stats, json!({"packs": 1, "versions": 1, "bytes": body.len()}));
    }

    pub async fn concurrent_conflicting_publishes_have_one_winner(kind: Kind) {
        let s = fixture(kind, &[]);
        let bodies: Vec<Vec<u8>> = (0..32).map(|i| pack("fight", "1.0.0", i)).collect();
        let results = join_all(
            bodies
                .iter()
                .map(|b| async { s.publish("fight", "1.0.0", b).await.status().as_u16() }),
        )
        .await;
        assert_eq!(results.iter().filter(|st| **st == 201).count(), 1, "{results:?}");
        assert_eq!(results.iter().filter(|st| **st == 409).count(), 31, "{results:?}");
        let winner = results.iter().position(|st| *st == 201).unwrap();
        let got = s.get("/v1/packs/fight/versions/1.0.0").await.bytes().await.unwrap();
        assert_eq!(
            got.as_ref(),
            bodies[winner].as_slice(),
            "the stored bytes are the winner's, whole"
        );
        let info: Value = s.get("/v1/packs/fight").await.json().await.unwrap();
        assert_eq!(info["versions"].as_array().unwrap().len(), 1);
        let stats: Value = s.get("/v1/stats").await.json().await.unwrap();
        assert_eq!(stats["bytes"], bodies[winner].len(), "no orphaned blobs of the losers");
    }

    pub async fn path_tricks_are_rejected(kind: Kind) {
        let s = fixture(kind, &[]);
        s.publish("safe", "1.0.0", &pack("safe", "1.0.0", 0)).await;
        let addr = s.addr();
        for (path, want) in [
            ("/v1/packs/../versions/1.0.0", 400),
            ("/v1/packs/%2e%2e/versions/1.0.0", 400),
            ("/v1/packs/%2E%2E", 400),
            ("/v1/packs/safe%2f..%2fx", 400),
            ("/v1/packs/%ff", 400),
            ("/v1/packs/safe/versions/..%2f1.0.0", 400),
            ("/v1/packs/safe/../safe", 404),
            ("/v1/blobs/sha256:..%2f..%2fetc", 400),
        ] {
            let (status, text) = raw_request(
                &addr,
                &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
            );
            assert_eq!(status, want, "{path}: {text}");
            assert!(text.contains("\"errors\""), "{path}: not an error body: {text}");
        }
        // Unknown route and wrong method are typed errors too.
        let (status, code, _) = error_code(s.get("/v2/anything").await).await;
        assert_eq!((status, code.as_str()), (404, "NOT_FOUND"));
        let r = s.http.patch(s.url("/v1/packs/safe")).send().await.unwrap();
        let (status, code, _) = error_code(r).await;
        assert_eq!((status, code.as_str()), (405, "METHOD_NOT_ALLOWED"));
    }

    pub async fn oversized_bodies_get_413(kind: Kind) {
        let s = fixture(kind, &["--max-pack-bytes", "2048"]);
        let mut v = pack_value("big", "1.0.0", 0);
        v["description"] = json!("x".repeat(3000));
        let body = serde_json::to_vec(&v).unwrap();
        let (status, code, json) = error_code(s.publish("big", "1.0.0", &body).await).await;
        assert_eq!((status, code.as_str()), (413, "PACK_TOO_LARGE"));
        assert!(
            json["errors"][0]["message"].as_str().unwrap().contains("2048"),
            "{json}"
        );
        // Without Content-Length (chunked), the limit still holds.
        let stream = futures::stream::iter(
            body.chunks(100)
                .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
                .collect::<Vec<_>>(),
        );
        let r = s
            .http
            .put(s.url("/v1/packs/big/versions/1.0.0"))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(reqwest::Body::wrap_stream(stream))
            .send()
            .await
            .unwrap();
        let (status, code, _) = error_code(r).await;
        assert_eq!((status, code.as_str()), (413, "PACK_TOO_LARGE"));
        // Line limits are violations with pointers.
        let s2 = fixture(kind, &["--max-lines", "1", "--max-line-chars", "5"]);
        let (status, code, json) = error_code(s2.publish("lim", "1.0.0", &pack("lim", "1.0.0", 0)).await).await;
        assert_eq!((status, code.as_str()), (422, "PACK_INVALID"));
        let text = json.to_string();
        assert!(
            text.contains("\"/lines\"") && text.contains("\"/lines/0/text\""),
            "{text}"
        );
    }

    pub async fn overload_gets_429_with_retry_after(kind: Kind) {
        let s = fixture(kind, &["--max-concurrent-requests", "1"]);
        // Hold the only slot with an upload that never finishes its body. If our
        // probe raced ahead of it, the upload itself was shed: start over.
        let mut got = None;
        let mut slow = None;
        for _ in 0..20 {
            let mut conn = std::net::TcpStream::connect(s.addr()).unwrap();
            std::io::Write::write_all(
                &mut conn,
                format!(
                    "PUT /v1/packs/slow/versions/1.0.0 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{"
                )
                .as_bytes(),
            )
            .unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            let r = s.get("/v1/stats").await;
            if r.status() == 429 {
                got = Some(r);
                slow = Some(conn);
                break;
            }
        }
        let r = got.expect("a second request is shed with 429");
        // Probes and scrapes never queue behind the limit.
        for path in ["/healthz", "/readyz", "/metrics"] {
            assert_eq!(s.get(path).await.status(), 200, "{path} while saturated");
        }
        assert_eq!(r.headers()["retry-after"], "1");
        let (_, code, _) = error_code(r).await;
        assert_eq!(code, "TOO_MANY_REQUESTS");
        drop(slow);
        // The slot frees once the slow client is gone.
        let mut ok = false;
        for _ in 0..100 {
            if s.get("/v1/stats").await.status() == 200 {
                ok = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(ok);
    }

    pub async fn slow_requests_time_out(kind: Kind) {
        let s = fixture(kind, &["--request-timeout", "500ms"]);
        let started = std::time::Instant::now();
        let (status, text) = raw_request(
            &s.addr(),
            &format!(
                "PUT /v1/packs/slow/versions/1.0.0 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n{{"
            ),
        );
        assert_eq!(status, 408, "{text}");
        assert!(text.contains("REQUEST_TIMEOUT"));
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        let stats: Value = s.get("/v1/stats").await.json().await.unwrap();
        assert_eq!(stats["versions"], 0);
    }
}
