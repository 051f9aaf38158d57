//! Shared Redis backend, for registries running several replicas.
//!
//! Key layout (every key starts with the configured prefix `P`):
//!
//! | key | type | holds |
//! | --- | --- | --- |
//! | `P packs` | sorted set, all scores 0 | pack names (lexicographic listing) |
//! | `P pack:{name}:versions` | hash | version key (no build metadata) → version record JSON |
//! | `P pack:{name}:yanked` | set | version keys that are yanked |
//! | `P pack:{name}:tags` | hash | explicit tag → exact version |
//! | `P pack:{name}:order` | sorted set, all scores 0 | one member per version, in precedence order (see [`order_member`]) |
//! | `P blob:sha256:{hex}` | string | content bytes |
//! | `P stats` | hash | `versions`, `bytes` counters |
//!
//! Publishing is one Lua script: Redis runs it atomically and logs its writes
//! to the AOF as one MULTI/EXEC block, so after a crash or a lost connection
//! either the whole version exists (blob, record, pack entry, counters) or
//! none of it. See docs/storage.md.
//!
//! Every read of the serving path is one round trip whose cost does not
//! depend on the pack's history: a version is one hash field, a tag one
//! field plus the version's, and `latest` a walk down `order` from the top.
//! `order` was added after the first release: the scripts that read it
//! check that it has as many members as the pack has versions (two O(1)
//! counts) and rebuild it when not, so data written by an earlier release, or by
//! an older replica during a rolling upgrade, is indexed on first use.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use banter_pack::{Digest, PackName, version_key};
use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::Mutex;

use super::{
    BackendKind, NewVersion, PackRecord, PublishOutcome, Stats, Storage, StorageError, StorageResult, VersionRecord,
    VersionsPage, sort_versions,
};
use crate::metrics::Metrics;

/// Stores the version unless its key is taken; returns the existing record if it is.
const PUBLISH: &str = r"
local existing = redis.call('HGET', KEYS[1], ARGV[1])
if existing then return existing end
if redis.call('SETNX', KEYS[2], ARGV[3]) == 1 then
  redis.call('HINCRBY', KEYS[4], 'bytes', ARGV[5])
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if ARGV[6] == '1' then redis.call('SADD', KEYS[5], ARGV[1]) end
redis.call('ZADD', KEYS[3], 0, ARGV[4])
redis.call('HINCRBY', KEYS[4], 'versions', 1)
redis.call('ZADD', KEYS[6], 0, ARGV[7])
return false
";

/// The version an explicit tag points at, and whether it is yanked.
const TAGGED: &str = r"
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return false end
local key = string.match(v, '^[^+]*')
local record = redis.call('HGET', KEYS[2], key)
if not record then return false end
return {record, redis.call('SISMEMBER', KEYS[3], key)}
";

/// Rebuilds the order index (KEYS[3]) from the versions hash (KEYS[1]) when
/// it does not hold exactly one member per version: data of an earlier
/// layout, or a version an older replica published. Prefixes the scripts
/// that read the index. `order_key` is [`super::order_key`] in Lua.
const REBUILD_ORDER: &str = r"
local function order_key(key)
  local a, b, c, pre = string.match(key, '^(%d+)%.(%d+)%.(%d+)%-?(.*)$')
  local pad = function(x) return string.rep('0', 20 - #x) .. x end
  local k = pad(a) .. '.' .. pad(b) .. '.' .. pad(c)
  if pre == '' then return k .. '~' end
  k = k .. '-'
  for id in string.gmatch(pre, '[^.]+') do
    if string.match(id, '^%d+$') then
      k = k .. '1' .. string.format('%05d', #id) .. id
    else
      k = k .. '2' .. id .. '!'
    end
  end
  return k .. '0'
end
if redis.call('ZCARD', KEYS[3]) ~= redis.call('HLEN', KEYS[1]) then
  redis.call('DEL', KEYS[3])
  for _, key in ipairs(redis.call('HKEYS', KEYS[1])) do
    redis.call('ZADD', KEYS[3], 0, order_key(key) .. '|' .. key)
  end
end
";

/// What `latest` resolves to (see [`crate::registry::latest`]): the
/// explicit tag (KEYS[4]) unless yanked (KEYS[2]), else the highest release
/// not yanked, walking the order index down from the top.
const LATEST: &str = r"
local v = redis.call('HGET', KEYS[4], 'latest')
if v then
  local key = string.match(v, '^[^+]*')
  if redis.call('SISMEMBER', KEYS[2], key) == 0 then
    local record = redis.call('HGET', KEYS[1], key)
    if record then return record end
  end
end
local offset = 0
while true do
  local page = redis.call('ZREVRANGEBYLEX', KEYS[3], '+', '-', 'LIMIT', offset, 32)
  if #page == 0 then return false end
  for _, member in ipairs(page) do
    local key = string.match(member, '|(.*)$')
    if string.sub(member, 63, 63) == '~' and redis.call('SISMEMBER', KEYS[2], key) == 0 then
      local record = redis.call('HGET', KEYS[1], key)
      if record then return record end
    end
  end
  offset = offset + #page
end
";

/// One page of versions in order after ARGV[1] (a ZRANGEBYLEX bound), at
/// most ARGV[2]: their records, yank flags, and the tags (KEYS[4]) pointing
/// at them.
const PAGE: &str = r"
local members = redis.call('ZRANGEBYLEX', KEYS[3], ARGV[1], '+', 'LIMIT', 0, tonumber(ARGV[2]))
local records, flags, tags, on_page = {}, {}, {}, {}
for _, member in ipairs(members) do
  local key = string.match(member, '|(.*)$')
  local record = redis.call('HGET', KEYS[1], key)
  if record then
    on_page[key] = true
    records[#records + 1] = record
    flags[#flags + 1] = redis.call('SISMEMBER', KEYS[2], key)
  end
end
if #records > 0 then
  local all = redis.call('HGETALL', KEYS[4])
  for i = 1, #all, 2 do
    if on_page[string.match(all[i + 1], '^[^+]*')] then
      tags[#tags + 1] = all[i]
      tags[#tags + 1] = all[i + 1]
    end
  end
end
return {records, flags, tags}
";

/// The member of `pack:{name}:order` for a version: its
/// [`super::order_key`], `|` and its version key. The `REBUILD_ORDER`
/// prelude builds the same strings.
pub fn order_member(v: &semver::Version) -> String {
    format!("{}|{}", super::order_key(v), version_key(v))
}

/// Replaces a blob's bytes when they differ from the given (verified) ones.
const REPAIR_BLOB: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
return 1
";

/// Sets a tag if the version exists.
const SET_TAG: &str = r"
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
return 1
";

/// Sets or clears the yank flag if the version exists.
const SET_YANKED: &str = r"
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
if ARGV[2] == '1' then redis.call('SADD', KEYS[2], ARGV[1]) else redis.call('SREM', KEYS[2], ARGV[1]) end
return 1
";

/// Connection settings for the Redis backend.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// `redis://[user:password@]host:port/db` or `rediss://` for TLS.
    pub url: String,
    /// Prefix of every key.
    pub key_prefix: String,
    /// Bound on establishing a connection.
    pub connect_timeout: Duration,
    /// Bound on one command's round trip.
    pub command_timeout: Duration,
    /// PEM bundle of CAs to trust for `rediss://` (instead of the public web roots).
    pub ca_pem: Option<Vec<u8>>,
    /// Password sent with AUTH, overriding one in the URL (read from a file,
    /// so it never appears in a URL, an argument or the environment).
    pub password: Option<String>,
}

/// The version record as stored in the versions hash.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredVersion {
    version: String,
    digest: Digest,
    size: u64,
    published_at: chrono::DateTime<chrono::Utc>,
}

/// The Redis backend.
#[derive(Clone)]
pub struct RedisStorage {
    client: redis::Client,
    opts: RedisOptions,
    conn: Arc<Mutex<Option<ConnectionManager>>>,
    publish: Arc<redis::Script>,
    set_tag: Arc<redis::Script>,
    set_yanked: Arc<redis::Script>,
    tagged: Arc<redis::Script>,
    latest: Arc<redis::Script>,
    page: Arc<redis::Script>,
    repair_blob: Arc<redis::Script>,
    metrics: Option<Metrics>,
}

impl RedisStorage {
    /// Validates the URL. The connection is made lazily, so the registry can
    /// start (and report not-ready) before Redis is reachable.
    pub fn new(opts: RedisOptions) -> StorageResult<Self> {
        use redis::IntoConnectionInfo;
        let mut info = opts
            .url
            .as_str()
            .into_connection_info()
            .map_err(|e| StorageError::Internal(format!("invalid Redis URL: {e}")))?;
        if let Some(password) = &opts.password {
            info.redis.password = Some(password.clone());
        }
        let client = match &opts.ca_pem {
            None => redis::Client::open(info),
            Some(pem) => redis::Client::build_with_tls(
                info,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.clone()),
                },
            ),
        }
        .map_err(|e| StorageError::Internal(format!("invalid Redis URL or CA bundle: {e}")))?;
        Ok(Self {
            client,
            opts,
            conn: Arc::new(Mutex::new(None)),
            publish: Arc::new(redis::Script::new(PUBLISH)),
            set_tag: Arc::new(redis::Script::new(SET_TAG)),
            set_yanked: Arc::new(redis::Script::new(SET_YANKED)),
            tagged: Arc::new(redis::Script::new(TAGGED)),
            latest: Arc::new(redis::Script::new(&format!("{REBUILD_ORDER}{LATEST}"))),
            page: Arc::new(redis::Script::new(&format!("{REBUILD_ORDER}{PAGE}"))),
            repair_blob: Arc::new(redis::Script::new(REPAIR_BLOB)),
            metrics: None,
        })
    }

    /// Reports connection state and dials to `metrics`.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    fn key(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.opts.key_prefix)
    }

    fn pack_key(&self, name: &PackName, what: &str) -> String {
        self.key(&format!("pack:{name}:{what}"))
    }

    /// KEYS of the scripts that read the order index (after `REBUILD_ORDER`).
    fn order_script_keys(&self, name: &PackName) -> [String; 4] {
        [
            self.pack_key(name, "versions"),
            self.pack_key(name, "yanked"),
            self.pack_key(name, "order"),
            self.pack_key(name, "tags"),
        ]
    }

    /// The shared auto-reconnecting connection, created on first use.
    async fn connection(&self) -> StorageResult<ConnectionManager> {
        // Waiters give up after the connect timeout rather than queue behind a
        // slow connect: a quick 503 beats a request that hangs until 408.
        let mut guard = tokio::time::timeout(self.opts.connect_timeout, self.conn.lock())
            .await
            .map_err(|_| StorageError::Unavailable("still connecting to Redis".into()))?;
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(self.opts.connect_timeout)
            .set_response_timeout(self.opts.command_timeout)
            .set_number_of_retries(1)
            .set_max_delay(500);
        let fut = self.client.get_connection_manager_with_config(config);
        let conn = tokio::time::timeout(self.opts.connect_timeout + self.opts.command_timeout, fut)
            .await
            .map_err(|_| StorageError::Unavailable("timed out connecting to Redis".into()))
            .and_then(|r| r.map_err(classify));
        if let Some(m) = &self.metrics {
            m.redis_connect(conn.is_ok());
        }
        let conn = conn?;
        *guard = Some(conn.clone());
        Ok(conn)
    }

    /// Runs one Redis interaction under the command deadline.
    async fn run<T>(&self, f: impl AsyncFnOnce(&mut ConnectionManager) -> redis::RedisResult<T>) -> StorageResult<T> {
        let mut conn = self.connection().await?;
        let result = match tokio::time::timeout(self.opts.command_timeout, f(&mut conn)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                if needs_new_connection(&e) {
                    // The manager only re-dials after I/O errors; a reconnect that
                    // failed its handshake (AUTH rejected, too many clients) would
                    // otherwise stick. Drop it so the next call dials afresh.
                    *self.conn.lock().await = None;
                }
                Err(classify(e))
            }
            Err(_) => Err(StorageError::Unavailable(format!(
                "Redis did not answer within {} ms",
                self.opts.command_timeout.as_millis()
            ))),
        };
        if let Some(m) = &self.metrics {
            match &result {
                Err(StorageError::Unavailable(_)) => m.redis_connection_error(),
                // Any answer (a script error, a full Redis) came over a live connection.
                _ => m.set_redis_connected(true),
            }
        }
        result
    }
}

/// Errors after which the cached connection manager cannot heal by itself.
fn needs_new_connection(e: &redis::RedisError) -> bool {
    let handled_by_manager = e.is_io_error() || e.is_connection_dropped() || e.is_timeout();
    let handshake = e.kind() == redis::ErrorKind::AuthenticationFailed
        || e.code().is_some_and(|c| matches!(c, "NOAUTH" | "WRONGPASS" | "NOPERM"))
        || e.to_string().contains("max number of clients");
    !handled_by_manager && handshake
}

/// Connection trouble and a Redis that is loading or failing over are
/// transient (503); anything else is a bug or bad data.
fn classify(e: redis::RedisError) -> StorageError {
    let transient = e.is_io_error()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.is_connection_dropped()
        || matches!(
            e.kind(),
            redis::ErrorKind::BusyLoadingError
                | redis::ErrorKind::TryAgain
                | redis::ErrorKind::MasterDown
                | redis::ErrorKind::ReadOnly
                | redis::ErrorKind::ClusterDown
        )
        || e.code().is_some_and(|c| matches!(c, "LOADING" | "BUSY" | "MISCONF"))
        || e.to_string().contains("max number of clients");
    if e.code() == Some("OOM") {
        // `maxmemory` reached with a no-eviction policy: out of space.
        StorageError::Full(format!("Redis: {e}"))
    } else if transient {
        StorageError::Unavailable(format!("Redis: {e}"))
    } else if e.kind() == redis::ErrorKind::AuthenticationFailed
        || e.code().is_some_and(|c| matches!(c, "NOAUTH" | "WRONGPASS" | "NOPERM"))
    {
        // A credentials problem is an operator's to fix; the registry stays up and not ready.
        StorageError::Unavailable(format!("Redis rejected the credentials: {e}"))
    } else {
        StorageError::Internal(format!("Redis: {e}"))
    }
}

fn decode(raw: &str) -> StorageResult<StoredVersion> {
    serde_json::from_str(raw).map_err(|e| StorageError::Internal(format!("corrupt version record in Redis: {e}")))
}

/// A version record from its stored JSON and yank flag.
fn record(raw: &str, yanked: bool) -> StorageResult<VersionRecord> {
    let s = decode(raw)?;
    Ok(VersionRecord {
        version: s.version,
        digest: s.digest,
        size: s.size,
        published_at: s.published_at,
        yanked,
    })
}

#[async_trait]
impl Storage for RedisStorage {
    fn kind(&self) -> BackendKind {
        BackendKind::Redis
    }

    async fn ping(&self) -> StorageResult<()> {
        self.run(async |c| redis::cmd("PING").query_async::<String>(c).await)
            .await
            .map(drop)
    }

    async fn publish(&self, v: NewVersion) -> StorageResult<PublishOutcome> {
        let key = version_key(&v.version);
        let exact = v.version.to_string();
        let record = serde_json::to_string(&StoredVersion {
            version: exact.clone(),
            digest: v.digest.clone(),
            size: v.bytes.len() as u64,
            published_at: v.published_at,
        })
        .map_err(|e| StorageError::Internal(e.to_string()))?;
        let keys = [
            self.pack_key(&v.name, "versions"),
            self.key(&format!("blob:{}", v.digest)),
            self.key("packs"),
            self.key("stats"),
            self.pack_key(&v.name, "yanked"),
            self.pack_key(&v.name, "order"),
        ];
        let member = order_member(&v.version);
        let script = self.publish.clone();
        let existing: Option<String> = self
            .run(async |c| {
                script
                    .key(&keys[..])
                    .arg(&key)
                    .arg(&record)
                    .arg(v.bytes.as_ref())
                    .arg(v.name.as_str())
                    .arg(v.bytes.len())
                    .arg(if v.yanked { "1" } else { "0" })
                    .arg(&member)
                    .invoke_async(c)
                    .await
            })
            .await?;
        let Some(existing) = existing else {
            return Ok(PublishOutcome::Created);
        };
        let existing = decode(&existing)?;
        Ok(if existing.version == exact && existing.digest == v.digest {
            // Same digest, so these bytes are the content; stored bytes that
            // differ are corrupt and are replaced.
            let script = self.repair_blob.clone();
            let blob_key = &keys[1];
            let repaired: i64 = self
                .run(async |c| script.key(blob_key).arg(v.bytes.as_ref()).invoke_async(c).await)
                .await?;
            if repaired == 1 {
                tracing::warn!(digest = %v.digest, "corrupt stored content replaced by a re-publish of the same bytes");
            }
            PublishOutcome::Identical
        } else {
            PublishOutcome::Conflict {
                existing_version: existing.version,
                existing_digest: existing.digest,
            }
        })
    }

    async fn pack(&self, name: &PackName) -> StorageResult<Option<PackRecord>> {
        let (vk, yk, tk) = (
            self.pack_key(name, "versions"),
            self.pack_key(name, "yanked"),
            self.pack_key(name, "tags"),
        );
        // One MULTI/EXEC so versions, yank flags and tags are read at one instant.
        let (raw, yanked, tags): (HashMap<String, String>, HashSet<String>, BTreeMap<String, String>) = self
            .run(async |c| {
                redis::pipe()
                    .atomic()
                    .hgetall(&vk)
                    .smembers(&yk)
                    .hgetall(&tk)
                    .query_async(c)
                    .await
            })
            .await?;
        if raw.is_empty() {
            return Ok(None);
        }
        let mut versions = raw
            .iter()
            .map(|(key, json)| record(json, yanked.contains(key)))
            .collect::<StorageResult<Vec<_>>>()?;
        sort_versions(&mut versions);
        Ok(Some(PackRecord {
            name: name.clone(),
            versions,
            tags,
        }))
    }

    async fn versions_page(
        &self,
        name: &PackName,
        after: Option<&semver::Version>,
        limit: usize,
    ) -> StorageResult<VersionsPage> {
        let keys = self.order_script_keys(name);
        let min = after.map_or_else(|| "-".to_owned(), |v| format!("({}", order_member(v)));
        let script = self.page.clone();
        let (records, flags, tags): (Vec<String>, Vec<bool>, BTreeMap<String, String>) = self
            .run(async |c| script.key(&keys[..]).arg(&min).arg(limit).invoke_async(c).await)
            .await?;
        let versions = records
            .iter()
            .zip(flags)
            .map(|(raw, yanked)| record(raw, yanked))
            .collect::<StorageResult<_>>()?;
        Ok(VersionsPage { versions, tags })
    }

    async fn exists(&self, name: &PackName) -> StorageResult<bool> {
        let key = self.pack_key(name, "versions");
        self.run(async |c| redis::cmd("EXISTS").arg(&key).query_async::<bool>(c).await)
            .await
    }

    async fn version(&self, name: &PackName, key: &str) -> StorageResult<Option<VersionRecord>> {
        let (vk, yk) = (self.pack_key(name, "versions"), self.pack_key(name, "yanked"));
        let (raw, yanked): (Option<String>, bool) = self
            .run(async |c| {
                redis::pipe()
                    .atomic()
                    .hget(&vk, key)
                    .sismember(&yk, key)
                    .query_async(c)
                    .await
            })
            .await?;
        raw.map(|raw| record(&raw, yanked)).transpose()
    }

    async fn tagged(&self, name: &PackName, tag: &str) -> StorageResult<Option<VersionRecord>> {
        let keys = [
            self.pack_key(name, "tags"),
            self.pack_key(name, "versions"),
            self.pack_key(name, "yanked"),
        ];
        let script = self.tagged.clone();
        let found: Option<(String, bool)> = self
            .run(async |c| script.key(&keys[..]).arg(tag).invoke_async(c).await)
            .await?;
        found.map(|(raw, yanked)| record(&raw, yanked)).transpose()
    }

    async fn latest(&self, name: &PackName) -> StorageResult<Option<VersionRecord>> {
        let keys = self.order_script_keys(name);
        let script = self.latest.clone();
        let found: Option<String> = self.run(async |c| script.key(&keys[..]).invoke_async(c).await).await?;
        // The script returns only versions that are not yanked.
        found.map(|raw| record(&raw, false)).transpose()
    }

    async fn blob(&self, digest: &Digest) -> StorageResult<Option<Bytes>> {
        let key = self.key(&format!("blob:{digest}"));
        let bytes: Option<Vec<u8>> = self
            .run(async |c| redis::cmd("GET").arg(&key).query_async(c).await)
            .await?;
        Ok(bytes.map(Bytes::from))
    }

    async fn scan_blobs(&self, cursor: &str, limit: usize) -> StorageResult<(Vec<Digest>, Option<String>)> {
        let blob_prefix = self.key("blob:");
        // MATCH is a glob: the configured prefix is matched literally.
        let mut pattern = String::with_capacity(blob_prefix.len() + 8);
        for ch in blob_prefix.chars() {
            if matches!(ch, '*' | '?' | '[' | ']' | '\\') {
                pattern.push('\\');
            }
            pattern.push(ch);
        }
        pattern.push_str("sha256:*");
        let start = if cursor.is_empty() { "0" } else { cursor };
        let (next, keys): (String, Vec<String>) = self
            .run(async |c| {
                redis::cmd("SCAN")
                    .arg(start)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(limit)
                    .query_async(c)
                    .await
            })
            .await?;
        let digests = keys
            .iter()
            .filter_map(|k| k.strip_prefix(&blob_prefix)?.parse().ok())
            .collect();
        Ok((digests, (next != "0").then_some(next)))
    }

    async fn list(&self, prefix: &str, after: Option<&str>, limit: usize) -> StorageResult<Vec<String>> {
        // Names are ASCII, so "\u{7f}" sorts after every name with the prefix.
        let min = match after {
            Some(a) if a >= prefix => format!("({a}"),
            _ => format!("[{prefix}"),
        };
        let max = if prefix.is_empty() {
            "+".to_owned()
        } else {
            format!("[{prefix}\u{7f}")
        };
        let key = self.key("packs");
        self.run(async |c| {
            redis::cmd("ZRANGE")
                .arg(&key)
                .arg(&min)
                .arg(&max)
                .arg("BYLEX")
                .arg("LIMIT")
                .arg(0)
                .arg(limit)
                .query_async(c)
                .await
        })
        .await
    }

    async fn set_tag(&self, name: &PackName, tag: &str, version: &str) -> StorageResult<()> {
        let key = semver::Version::parse(version)
            .map(|v| version_key(&v))
            .map_err(|_| StorageError::VersionNotFound)?;
        let keys = [self.pack_key(name, "versions"), self.pack_key(name, "tags")];
        let script = self.set_tag.clone();
        let done: i64 = self
            .run(async |c| {
                script
                    .key(&keys[..])
                    .arg(&key)
                    .arg(tag)
                    .arg(version)
                    .invoke_async(c)
                    .await
            })
            .await?;
        if done == 1 {
            Ok(())
        } else {
            Err(StorageError::VersionNotFound)
        }
    }

    async fn set_yanked(&self, name: &PackName, version: &str, yanked: bool) -> StorageResult<()> {
        let key = semver::Version::parse(version)
            .map(|v| version_key(&v))
            .map_err(|_| StorageError::VersionNotFound)?;
        let keys = [self.pack_key(name, "versions"), self.pack_key(name, "yanked")];
        let script = self.set_yanked.clone();
        let flag = if yanked { "1" } else { "0" };
        let done: i64 = self
            .run(async |c| script.key(&keys[..]).arg(&key).arg(flag).invoke_async(c).await)
            .await?;
        if done == 1 {
            Ok(())
        } else {
            Err(StorageError::VersionNotFound)
        }
    }

    async fn stats(&self) -> StorageResult<Stats> {
        let (packs_key, stats_key) = (self.key("packs"), self.key("stats"));
        let (packs, versions, bytes): (u64, Option<u64>, Option<u64>) = self
            .run(async |c| {
                redis::pipe()
                    .atomic()
                    .zcard(&packs_key)
                    .hget(&stats_key, "versions")
                    .hget(&stats_key, "bytes")
                    .query_async(c)
                    .await
            })
            .await?;
        Ok(Stats {
            packs,
            versions: versions.unwrap_or(0),
            bytes: bytes.unwrap_or(0),
        })
    }
}
