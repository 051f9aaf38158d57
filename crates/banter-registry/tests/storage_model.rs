//! The indexed lookups of both backends (`version`, `tagged`, `latest`,
//! `exists`, `versions_page`) agree with the rules applied to the whole pack index, over a
//! long pseudo-random history of publishes, yanks and tag moves; and data
//! written in the earlier Redis layout (no order index) is indexed on first
//! use, including versions an older replica publishes afterwards.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use banter_pack::{Digest, PackName, version_key};
use banter_registry::registry::latest;
use banter_registry::storage::redis::{RedisOptions, RedisStorage, order_member};
use banter_registry::storage::sqlite::{SqliteOptions, SqliteStorage};
use banter_registry::storage::{NewVersion, Storage};
use bytes::Bytes;
use support::Redis;

/// A small deterministic generator (no dependency, same history every run).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) as usize) % n
    }
}

/// Versions that exercise precedence: multi-digit parts, huge parts,
/// pre-releases, build metadata.
const POOL: &[&str] = &[
    "0.1.0",
    "0.9.0",
    "0.10.0",
    "1.0.0-alpha",
    "1.0.0-alpha.10",
    "1.0.0-alpha.2",
    "1.0.0-rc.1",
    "1.0.0",
    "1.0.1+build.7",
    "1.2.0",
    "1.10.0",
    "2.0.0-beta",
    "2.0.0",
    "9.9.9",
    "10.0.0",
    "18446744073709551615.0.0",
    "3.0.0-rc.1",
];

fn new_version(name: &PackName, version: &str) -> NewVersion {
    let bytes = Bytes::from(format!("{{\"v\":\"{version}\"}}"));
    NewVersion {
        name: name.clone(),
        version: semver::Version::parse(version).unwrap(),
        digest: Digest::of(&bytes),
        bytes,
        published_at: chrono::Utc::now(),
        yanked: false,
    }
}

/// Checks every lookup against the rules over `pack()`.
async fn agree(s: &dyn Storage, name: &PackName, step: usize) {
    let Some(record) = s.pack(name).await.unwrap() else {
        assert!(!s.exists(name).await.unwrap(), "step {step}: exists without versions");
        assert_eq!(s.latest(name).await.unwrap(), None, "step {step}");
        return;
    };
    assert!(s.exists(name).await.unwrap(), "step {step}");
    assert_eq!(
        s.latest(name).await.unwrap().as_ref(),
        latest(&record),
        "step {step}: latest of {:?} with tags {:?}",
        record
            .versions
            .iter()
            .map(|v| (&v.version, v.yanked))
            .collect::<Vec<_>>(),
        record.tags
    );
    for v in &record.versions {
        let key = version_key(&semver::Version::parse(&v.version).unwrap());
        assert_eq!(
            s.version(name, &key).await.unwrap().as_ref(),
            Some(v),
            "step {step}: {key}"
        );
    }
    for (tag, exact) in &record.tags {
        let expected = record.versions.iter().find(|v| &v.version == exact);
        assert_eq!(
            s.tagged(name, tag).await.unwrap().as_ref(),
            expected,
            "step {step}: tag {tag}"
        );
    }
    // Pages of 3 walk the versions in precedence order, each with the tags
    // pointing at its versions, and together give the whole index.
    let (mut paged, mut tags, mut after) = (Vec::new(), BTreeMap::new(), None::<semver::Version>);
    loop {
        let page = s.versions_page(name, after.as_ref(), 3).await.unwrap();
        let Some(last) = page.versions.last() else { break };
        assert!(page.versions.len() <= 3);
        for v in page.tags.values() {
            assert!(
                page.versions.iter().any(|r| &r.version == v),
                "step {step}: tag of another page"
            );
        }
        after = Some(semver::Version::parse(&last.version).unwrap());
        tags.extend(page.tags);
        paged.extend(page.versions);
    }
    assert_eq!(paged, record.versions, "step {step}: pages in precedence order");
    assert_eq!(tags, record.tags, "step {step}");
    assert_eq!(s.tagged(name, "never-set").await.unwrap(), None);
    assert_eq!(s.version(name, "77.0.0").await.unwrap(), None);
}

/// 400 random operations on one pack, checked after every one.
async fn random_history(s: Arc<dyn Storage>) {
    let name = PackName::parse("model").unwrap();
    agree(s.as_ref(), &name, 0).await;
    let mut rng = Lcg(7);
    let mut published: Vec<&str> = Vec::new();
    for step in 1..=400 {
        match rng.below(10) {
            0..=3 => {
                let v = POOL[rng.below(POOL.len())];
                s.publish(new_version(&name, v)).await.unwrap();
                if !published.contains(&v) {
                    published.push(v);
                }
            }
            4..=6 if !published.is_empty() => {
                let v = published[rng.below(published.len())];
                s.set_yanked(&name, v, rng.below(2) == 0).await.unwrap();
            }
            7..=9 if !published.is_empty() => {
                let v = published[rng.below(published.len())];
                let tag = ["latest", "stable", "beta"][rng.below(3)];
                s.set_tag(&name, tag, v).await.unwrap();
            }
            _ => continue,
        }
        agree(s.as_ref(), &name, step).await;
    }
    assert!(published.len() > 10, "the history covered the pool: {published:?}");
}

#[tokio::test]
async fn sqlite_lookups_agree_with_the_rules() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStorage::open(&SqliteOptions::new(dir.path().join("m.db"))).unwrap();
    random_history(Arc::new(s)).await;
}

fn redis_storage(redis: &Redis, prefix: &str) -> RedisStorage {
    RedisStorage::new(RedisOptions {
        url: redis.url(),
        key_prefix: prefix.into(),
        connect_timeout: Duration::from_secs(5),
        command_timeout: Duration::from_secs(5),
        ca_pem: None,
        password: None,
    })
    .unwrap()
}

#[tokio::test]
async fn redis_lookups_agree_with_the_rules() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path(), "everysec");
    random_history(Arc::new(redis_storage(&redis, "model:"))).await;
}

/// The publish script of the layout before the order index, verbatim: what
/// a database written by the previous release, or an older replica during
/// a rolling upgrade, holds and writes.
const PUBLISH_BEFORE_ORDER_INDEX: &str = r"
local existing = redis.call('HGET', KEYS[1], ARGV[1])
if existing then return existing end
if redis.call('SETNX', KEYS[2], ARGV[3]) == 1 then
  redis.call('HINCRBY', KEYS[4], 'bytes', ARGV[5])
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if ARGV[6] == '1' then redis.call('SADD', KEYS[5], ARGV[1]) end
redis.call('ZADD', KEYS[3], 0, ARGV[4])
redis.call('HINCRBY', KEYS[4], 'versions', 1)
return false
";

fn old_publish(redis: &Redis, prefix: &str, version: &str, yanked: bool) {
    let v = new_version(&PackName::parse("legacy").unwrap(), version);
    let record = serde_json::json!({
        "version": version,
        "digest": v.digest.to_string(),
        "size": v.bytes.len(),
        "published_at": v.published_at,
    })
    .to_string();
    let key = version_key(&v.version);
    let mut c = redis::Client::open(redis.url()).unwrap().get_connection().unwrap();
    let existing: Option<String> = redis::Script::new(PUBLISH_BEFORE_ORDER_INDEX)
        .key(format!("{prefix}pack:legacy:versions"))
        .key(format!("{prefix}blob:{}", v.digest))
        .key(format!("{prefix}packs"))
        .key(format!("{prefix}stats"))
        .key(format!("{prefix}pack:legacy:yanked"))
        .arg(&key)
        .arg(&record)
        .arg(v.bytes.as_ref())
        .arg("legacy")
        .arg(v.bytes.len())
        .arg(if yanked { "1" } else { "0" })
        .invoke(&mut c)
        .unwrap();
    assert_eq!(existing, None, "a new version");
}

fn order_index(redis: &Redis, prefix: &str) -> Vec<String> {
    let mut c = redis::Client::open(redis.url()).unwrap().get_connection().unwrap();
    redis::cmd("ZRANGE")
        .arg(format!("{prefix}pack:legacy:order"))
        .arg(0)
        .arg(-1)
        .query(&mut c)
        .unwrap()
}

#[tokio::test]
async fn redis_data_of_the_earlier_layout_is_indexed_on_first_use() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path(), "everysec");
    let prefix = "legacy:";
    let legacy = [
        ("1.0.0", false),
        ("1.10.0", false),
        ("2.0.0", true),
        ("2.1.0-rc.1", false),
        ("2.1.0-alpha.10.x-y", false),
        ("2.1.0-alpha.9", false),
        ("2.1.0-0.3.7", false),
    ];
    for (v, yanked) in legacy {
        old_publish(&redis, prefix, v, yanked);
    }
    assert!(
        order_index(&redis, prefix).is_empty(),
        "the earlier layout has no order index"
    );
    let s = redis_storage(&redis, prefix);
    let name = PackName::parse("legacy").unwrap();
    let l = s.latest(&name).await.unwrap().unwrap();
    assert_eq!(l.version, "1.10.0", "2.0.0 is yanked, the 2.1.0 ones are pre-releases");
    // The rebuilt index holds exactly what publishing through this release writes.
    let mut expected: Vec<String> = legacy
        .iter()
        .map(|(v, _)| order_member(&semver::Version::parse(v).unwrap()))
        .collect();
    expected.sort();
    assert_eq!(order_index(&redis, prefix), expected);
    agree(&s, &name, 1).await;

    // An older replica, still running during a rolling upgrade, publishes a
    // higher release without touching the index: the next lookup rebuilds it.
    old_publish(&redis, prefix, "3.0.0", false);
    assert_eq!(s.latest(&name).await.unwrap().unwrap().version, "3.0.0");
    assert_eq!(order_index(&redis, prefix).len(), legacy.len() + 1);
    agree(&s, &name, 2).await;

    // And a publish through this release keeps the index complete, so no rebuild is needed.
    s.publish(new_version(&name, "3.1.0")).await.unwrap();
    assert_eq!(order_index(&redis, prefix).len(), legacy.len() + 2);
    assert_eq!(s.latest(&name).await.unwrap().unwrap().version, "3.1.0");
}
