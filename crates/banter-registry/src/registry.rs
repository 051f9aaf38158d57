//! The registry's rules, independent of HTTP and of the backend: parsing of
//! identifiers, validation, publish idempotency, reference resolution (with
//! its cache), yank semantics and digest verification of content read from
//! storage.

use std::collections::BTreeMap;
use std::sync::Arc;

use banter_pack::{
    Digest, Limits, NameError, PackError, PackName, Reference, TagName, VersionError, Violation, parse_version,
    validate_pack, version_key,
};
use bytes::Bytes;
use chrono::{SubsecRound, Utc};

use crate::metrics::Metrics;
use crate::resolve_cache::Resolved;
use crate::storage::{
    ContentCached, Lookup, NewVersion, PackRecord, PublishOutcome, Stats, Storage, StorageError, VersionRecord,
};

/// Why a registry operation failed; each variant maps to one HTTP status and code.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A pack name in the request is invalid.
    #[error(transparent)]
    NameInvalid(NameError),
    /// A tag in the request is invalid.
    #[error(transparent)]
    TagInvalid(NameError),
    /// A version in the request is invalid.
    #[error(transparent)]
    VersionInvalid(#[from] VersionError),
    /// A digest is malformed or does not match the content.
    #[error("{0}")]
    DigestInvalid(String),
    /// The pack is larger than the configured limit.
    #[error("pack is {size} bytes, over the limit of {limit} bytes")]
    TooLarge {
        /// Bytes received.
        size: usize,
        /// Configured limit.
        limit: usize,
    },
    /// The body is not JSON.
    #[error("{0}")]
    Malformed(String),
    /// An object in the body repeats a key (pointer of the second occurrence).
    #[error("duplicate key at {0}: every key may occur once per object")]
    DuplicateKey(String),
    /// The body is not a valid pack.
    #[error("the pack is invalid: {} violation(s)", .0.len())]
    Invalid(Vec<Violation>),
    /// The version number is taken by other content.
    #[error(
        "{name}@{existing_version} already exists with digest {existing_digest}; versions are immutable, publish a new version number"
    )]
    VersionExists {
        /// Pack name.
        name: String,
        /// The version stored.
        existing_version: String,
        /// Its digest.
        existing_digest: Digest,
    },
    /// No such pack.
    #[error("pack {0:?} not found")]
    PackNotFound(String),
    /// No such version or tag.
    #[error("{name}: no version or tag {reference:?}")]
    VersionNotFound {
        /// Pack name.
        name: String,
        /// What was asked for.
        reference: String,
    },
    /// No such blob.
    #[error("blob {0} not found")]
    BlobNotFound(Digest),
    /// Stored bytes no longer hash to their digest.
    #[error("stored content for {0} failed digest verification")]
    Corrupt(Digest),
    /// The backend failed.
    #[error(transparent)]
    Storage(StorageError),
}

impl From<StorageError> for RegistryError {
    fn from(e: StorageError) -> Self {
        Self::Storage(e)
    }
}

/// Result of a registry operation.
pub type RegistryResult<T> = Result<T, RegistryError>;

/// A publish that was accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// True for a new version, false for an identical re-publish.
    pub created: bool,
    /// Digest of the stored bytes.
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
}

/// A pack's versions and effective tags, as `GET /v1/packs/{name}` shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackInfo {
    /// Pack name.
    pub name: String,
    /// Versions, oldest first by semver precedence.
    pub versions: Vec<VersionRecord>,
    /// Effective tags (explicit ones plus the computed `latest`).
    pub tags: BTreeMap<String, String>,
}

/// The registry: rules over a storage backend.
#[derive(Clone)]
pub struct Registry {
    storage: Arc<dyn Storage>,
    metrics: Metrics,
    limits: Limits,
    cache: Arc<crate::blob_cache::BlobCache>,
    resolved: Arc<crate::resolve_cache::ResolveCache>,
}

/// Parses a pack name from a request.
pub fn parse_name(s: &str) -> RegistryResult<PackName> {
    PackName::parse(s).map_err(RegistryError::NameInvalid)
}

impl Registry {
    /// A registry over `storage`.
    pub fn new(storage: Arc<dyn Storage>, metrics: Metrics, limits: Limits) -> Self {
        let cache = Arc::new(crate::blob_cache::BlobCache::new(
            crate::blob_cache::DEFAULT_BYTES,
            metrics.clone(),
        ));
        Self {
            storage,
            metrics,
            limits,
            cache,
            resolved: Arc::new(crate::resolve_cache::ResolveCache::new(
                crate::resolve_cache::DEFAULT_TTL,
            )),
        }
    }

    /// This registry keeping resolved references for `ttl` (zero: never):
    /// the bound on how long another replica's write can stay unseen.
    pub fn with_resolve_ttl(mut self, ttl: std::time::Duration) -> Self {
        self.resolved = Arc::new(crate::resolve_cache::ResolveCache::new(ttl));
        self
    }

    /// This registry with a content cache of `bytes` (0: none).
    pub fn with_blob_cache(mut self, bytes: u64) -> Self {
        self.cache = Arc::new(crate::blob_cache::BlobCache::new(bytes, self.metrics.clone()));
        self
    }

    /// The content cache.
    pub fn blob_cache(&self) -> &crate::blob_cache::BlobCache {
        &self.cache
    }

    /// The size limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The metrics handle.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The backend.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// Validates and stores `bytes` as `name@version`.
    pub async fn publish(
        &self,
        name: &str,
        version: &str,
        bytes: Bytes,
        expected_digest: Option<&str>,
    ) -> RegistryResult<Published> {
        let name = parse_name(name)?;
        let parsed = parse_version(version)?;
        // Hashing and validating a pack of up to the size limit is CPU work:
        // off the async workers, so reads on the same worker never wait for it.
        let (digest, validated) = {
            let (bytes, limits, name, version) = (bytes.clone(), self.limits, name.clone(), version.to_owned());
            tokio::task::spawn_blocking(move || {
                let digest = Digest::of(&bytes);
                let validated = validate_pack(&bytes, &limits, Some((name.as_str(), &version)));
                (digest, validated)
            })
            .await
            .map_err(|e| RegistryError::Storage(StorageError::Internal(format!("validation task failed: {e}"))))?
        };
        if let Some(expected) = expected_digest {
            let expected: Digest = expected
                .parse()
                .map_err(|e| RegistryError::DigestInvalid(format!("digest parameter {expected:?}: {e}")))?;
            if expected != digest {
                return Err(RegistryError::DigestInvalid(format!(
                    "body digest {digest} does not match the digest parameter {expected}"
                )));
            }
        }
        if let Err(e) = validated {
            self.metrics.validation_failure(match &e {
                PackError::TooLarge { .. } => "PACK_TOO_LARGE",
                PackError::Malformed(_) => "JSON_MALFORMED",
                PackError::Invalid(_) => "PACK_INVALID",
                PackError::DuplicateKey(_) => "DUPLICATE_KEY",
            });
            return Err(match e {
                PackError::TooLarge { size, limit } => RegistryError::TooLarge { size, limit },
                PackError::Malformed(m) => RegistryError::Malformed(m),
                PackError::Invalid(v) => RegistryError::Invalid(v),
                PackError::DuplicateKey(p) => RegistryError::DuplicateKey(p),
            });
        }
        self.store(NewVersion {
            name,
            version: parsed,
            digest,
            bytes,
            // Millisecond precision: what every backend stores, so a migration
            // between backends reproduces the same timestamps.
            published_at: Utc::now().trunc_subsecs(3),
            yanked: false,
        })
        .await
    }

    /// Stores an already-validated version (publish and import share this).
    pub async fn store(&self, v: NewVersion) -> RegistryResult<Published> {
        let (name, digest, size) = (v.name.to_string(), v.digest.clone(), v.bytes.len() as u64);
        let outcome = self.storage.publish(v).await;
        // `latest` may have moved: this replica sees it at once.
        self.resolved.forget(&name);
        match outcome? {
            PublishOutcome::Created => {
                self.metrics.publish("created");
                Ok(Published {
                    created: true,
                    digest,
                    size,
                })
            }
            PublishOutcome::Identical => {
                self.metrics.publish("identical");
                Ok(Published {
                    created: false,
                    digest,
                    size,
                })
            }
            PublishOutcome::Conflict {
                existing_version,
                existing_digest,
            } => {
                self.metrics.publish("conflict");
                Err(RegistryError::VersionExists {
                    name,
                    existing_version,
                    existing_digest,
                })
            }
        }
    }

    async fn record(&self, name: &PackName) -> RegistryResult<PackRecord> {
        self.storage
            .pack(name)
            .await?
            .ok_or_else(|| RegistryError::PackNotFound(name.to_string()))
    }

    /// Versions and effective tags of a pack: its whole index, at a cost
    /// proportional to its history (export; tests).
    pub async fn pack_info(&self, name: &str) -> RegistryResult<PackInfo> {
        let name = parse_name(name)?;
        let record = self.record(&name).await?;
        let tags = effective_tags(&record);
        Ok(PackInfo {
            name: name.to_string(),
            versions: record.versions,
            tags,
        })
    }

    /// One page of a pack's versions in precedence order, after `last`
    /// when given, at most `n`; its tags are the explicit tags pointing at
    /// those versions plus the effective `latest` (on every page). The flag
    /// says whether more versions follow. Two indexed reads, wherever the
    /// page is in the history.
    pub async fn pack_page(&self, name: &str, last: Option<&str>, n: usize) -> RegistryResult<(PackInfo, bool)> {
        let name = parse_name(name)?;
        let after = last.map(parse_version).transpose()?;
        let page = self
            .storage
            .versions_page(&name, after.as_ref(), n.saturating_add(1))
            .await?;
        if page.versions.is_empty() && !self.storage.exists(&name).await? {
            return Err(RegistryError::PackNotFound(name.to_string()));
        }
        let mut versions = page.versions;
        let more = versions.len() > n;
        versions.truncate(n);
        let mut tags: BTreeMap<String, String> = page
            .tags
            .into_iter()
            .filter(|(tag, v)| tag != TagName::LATEST && versions.iter().any(|r| &r.version == v))
            .collect();
        if let Some(l) = self.storage.latest(&name).await? {
            tags.insert(TagName::LATEST.to_owned(), l.version);
        }
        Ok((
            PackInfo {
                name: name.to_string(),
                versions,
                tags,
            },
            more,
        ))
    }

    /// Resolves `reference` (exact version or tag) to a stored version.
    pub async fn resolve(&self, name: &str, reference: &str) -> RegistryResult<Arc<Resolved>> {
        Ok(self.resolve_for_read(name, reference, false).await?.0)
    }

    /// Resolves `reference` and, with `content`, also returns the verified
    /// bytes when they had to be read: a read that finds neither the
    /// resolution nor the content cached costs one storage call (one
    /// blocking-pool hop on SQLite), not two. `None` bytes: take them from
    /// [`Self::content`] (cached, or not asked for).
    pub async fn resolve_for_read(
        &self,
        name: &str,
        reference: &str,
        content: bool,
    ) -> RegistryResult<(Arc<Resolved>, Option<Bytes>)> {
        // Only references that parsed and resolved are cached, so a hit
        // needs no parsing.
        let since = match self.resolved.get(name, reference) {
            Ok(hit) => return Ok((hit, None)),
            Err(since) => since,
        };
        let name = parse_name(name)?;
        let reference_parsed = match Reference::parse(reference) {
            Ok(r) => r,
            // Something that starts like a number was meant as a version:
            // say what is wrong with it as a version, not as a tag.
            Err(e) => {
                return Err(match parse_version(reference) {
                    Err(v) if looks_numeric(reference) => RegistryError::VersionInvalid(v),
                    _ => RegistryError::TagInvalid(e),
                });
            }
        };
        let key;
        let lookup = match &reference_parsed {
            Reference::Version(v) => {
                key = version_key(v);
                Lookup::Version(&key)
            }
            Reference::Tag(t) if t.is_latest() => Lookup::Latest,
            Reference::Tag(t) => Lookup::Tag(t.as_str()),
        };
        // One indexed lookup: the cost does not grow with the pack's history.
        let (found, bytes) = if content {
            let cache = self.cache.clone();
            let cached: ContentCached = Arc::new(move |d: &Digest| cache.contains(d.hex()));
            match self.storage.lookup_with_content(&name, lookup, cached).await? {
                Some((record, bytes)) => (Some(record), bytes),
                None => (None, None),
            }
        } else {
            let found = match lookup {
                Lookup::Version(key) => self.storage.version(&name, key).await?,
                Lookup::Latest => self.storage.latest(&name).await?,
                Lookup::Tag(tag) => self.storage.tagged(&name, tag).await?,
            };
            (found, None)
        };
        let Some(found) = found else {
            return Err(self.missing(&name, reference).await);
        };
        let bytes = match bytes {
            Some(bytes) => Some(self.verified(&found.digest, bytes)?),
            None => None,
        };
        let resolved = Arc::new(Resolved::new(found, matches!(reference_parsed, Reference::Version(_))));
        self.resolved.put(name.as_str(), reference, &resolved, since);
        Ok((resolved, bytes))
    }

    /// `bytes` read from storage for `digest`, once verified (and cached);
    /// the cached copy when there is one, which needs no hashing.
    fn verified(&self, digest: &Digest, bytes: Bytes) -> RegistryResult<Bytes> {
        let key = digest.hex();
        if let Some(cached) = self.cache.get(key) {
            return Ok(cached);
        }
        if !digest.matches(&bytes) {
            tracing::error!(%digest, "stored blob failed digest verification");
            return Err(RegistryError::Corrupt(digest.clone()));
        }
        self.cache.insert(key, bytes.clone());
        Ok(bytes)
    }

    /// Blob bytes by digest hex, verified against the digest.
    pub async fn blob(&self, hex: &str) -> RegistryResult<Bytes> {
        let digest = Digest::from_hex(hex).map_err(|e| RegistryError::DigestInvalid(e.to_string()))?;
        self.content(&digest).await
    }

    /// Stored bytes for `digest`, verified against it: from the content
    /// cache when there (verified when it was filled), else read from
    /// storage, verified, and cached.
    pub async fn content(&self, digest: &Digest) -> RegistryResult<Bytes> {
        let key = digest.hex();
        if let Some(bytes) = self.cache.get(key) {
            return Ok(bytes);
        }
        let bytes = self
            .storage
            .blob(digest)
            .await?
            .ok_or_else(|| RegistryError::BlobNotFound(digest.clone()))?;
        if !digest.matches(&bytes) {
            tracing::error!(%digest, "stored blob failed digest verification");
            return Err(RegistryError::Corrupt(digest.clone()));
        }
        self.cache.insert(key, bytes.clone());
        Ok(bytes)
    }

    /// One page of pack names; the flag says whether more remain.
    pub async fn list(&self, prefix: &str, last: Option<&str>, n: usize) -> RegistryResult<(Vec<String>, bool)> {
        if !prefix.is_empty()
            && !prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(RegistryError::NameInvalid(NameError::Pack(prefix.to_owned())));
        }
        if n == 0 {
            return Ok((Vec::new(), false));
        }
        let mut names = self.storage.list(prefix, last, n + 1).await?;
        let more = names.len() > n;
        names.truncate(n);
        Ok((names, more))
    }

    /// Points `tag` at `version` (matched ignoring build metadata). Returns the exact version.
    pub async fn set_tag(&self, name: &str, tag: &str, version: &str) -> RegistryResult<String> {
        let name = parse_name(name)?;
        let tag = TagName::parse(tag).map_err(RegistryError::TagInvalid)?;
        let exact = self.exact_version(&name, version).await?;
        let written = self.storage.set_tag(&name, tag.as_str(), &exact).await;
        self.resolved.forget(name.as_str());
        written.map_err(|e| self.not_found_as(e, &name, version))?;
        self.metrics.tag_moved();
        Ok(exact)
    }

    /// Yanks or un-yanks `version`. Returns the exact version.
    pub async fn set_yanked(&self, name: &str, version: &str, yanked: bool) -> RegistryResult<String> {
        let name = parse_name(name)?;
        let exact = self.exact_version(&name, version).await?;
        let written = self.storage.set_yanked(&name, &exact, yanked).await;
        self.resolved.forget(name.as_str());
        written.map_err(|e| self.not_found_as(e, &name, version))?;
        self.metrics.yank(yanked);
        Ok(exact)
    }

    async fn exact_version(&self, name: &PackName, version: &str) -> RegistryResult<String> {
        let wanted = parse_version(version)?;
        match self.storage.version(name, &version_key(&wanted)).await? {
            Some(found) => Ok(found.version),
            None => Err(self.missing(name, version).await),
        }
    }

    /// Why a lookup found nothing: no such pack, or no such version or tag
    /// in it (a second query, only on the miss path).
    async fn missing(&self, name: &PackName, reference: &str) -> RegistryError {
        match self.storage.exists(name).await {
            Ok(false) => RegistryError::PackNotFound(name.to_string()),
            Ok(true) => RegistryError::VersionNotFound {
                name: name.to_string(),
                reference: reference.to_owned(),
            },
            Err(e) => RegistryError::Storage(e),
        }
    }

    fn not_found_as(&self, e: StorageError, name: &PackName, version: &str) -> RegistryError {
        match e {
            StorageError::VersionNotFound | StorageError::PackNotFound => RegistryError::VersionNotFound {
                name: name.to_string(),
                reference: version.to_owned(),
            },
            other => RegistryError::Storage(other),
        }
    }

    /// Totals, also pushed into the gauges.
    pub async fn stats(&self) -> RegistryResult<Stats> {
        let stats = self.storage.stats().await?;
        self.metrics.set_stats(stats);
        Ok(stats)
    }

    /// Whether the backend answers; updates `banter_registry_storage_up`.
    pub async fn ready(&self) -> RegistryResult<()> {
        let result = self.storage.ping().await;
        self.metrics
            .set_storage_up(self.storage.kind().as_str(), result.is_ok());
        Ok(result?)
    }
}

fn looks_numeric(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_digit())
}

/// What `latest` means: an explicit, non-yanked `latest` tag, else the highest
/// non-yanked release (pre-releases never become `latest` implicitly). The
/// rule over a whole index: backends answer it by an indexed lookup
/// ([`Storage::latest`]) and are tested against this.
pub fn latest(record: &PackRecord) -> Option<&VersionRecord> {
    let explicit = record
        .tags
        .get(TagName::LATEST)
        .and_then(|v| record.versions.iter().find(|r| &r.version == v && !r.yanked));
    explicit.or_else(|| {
        record
            .versions
            .iter()
            .rev()
            .find(|r| !r.yanked && semver::Version::parse(&r.version).is_ok_and(|v| v.pre.is_empty()))
    })
}

/// Explicit tags plus the effective `latest`.
pub fn effective_tags(record: &PackRecord) -> BTreeMap<String, String> {
    let mut tags = record.tags.clone();
    tags.remove(TagName::LATEST);
    if let Some(l) = latest(record) {
        tags.insert(TagName::LATEST.to_owned(), l.version.clone());
    }
    tags
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(version: &str, yanked: bool) -> VersionRecord {
        VersionRecord {
            version: version.into(),
            digest: Digest::of(version.as_bytes()),
            size: 1,
            published_at: Utc::now(),
            yanked,
        }
    }

    fn record(versions: Vec<VersionRecord>, tags: &[(&str, &str)]) -> PackRecord {
        let mut versions = versions;
        crate::storage::sort_versions(&mut versions);
        PackRecord {
            name: PackName::parse("p").expect("name"),
            versions,
            tags: tags.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect(),
        }
    }

    fn latest_of(r: &PackRecord) -> Option<&str> {
        latest(r).map(|v| v.version.as_str())
    }

    #[test]
    fn latest_is_highest_release_not_yanked() {
        let r = record(
            vec![
                v("1.0.0", false),
                v("1.10.0", false),
                v("1.9.0", false),
                v("2.0.0-rc.1", false),
            ],
            &[],
        );
        assert_eq!(latest_of(&r), Some("1.10.0"));
        let r = record(vec![v("1.0.0", false), v("1.1.0", true)], &[]);
        assert_eq!(latest_of(&r), Some("1.0.0"));
        let r = record(vec![v("1.0.0-alpha", false)], &[]);
        assert_eq!(latest_of(&r), None);
        let r = record(vec![v("1.0.0", true)], &[]);
        assert_eq!(latest_of(&r), None);
    }

    #[test]
    fn explicit_latest_wins_unless_yanked() {
        let r = record(vec![v("1.0.0", false), v("2.0.0", false)], &[("latest", "1.0.0")]);
        assert_eq!(latest_of(&r), Some("1.0.0"));
        let r = record(vec![v("1.0.0", true), v("2.0.0", false)], &[("latest", "1.0.0")]);
        assert_eq!(latest_of(&r), Some("2.0.0"));
        assert_eq!(effective_tags(&r).get("latest").map(String::as_str), Some("2.0.0"));
    }

    #[test]
    fn prerelease_ordering_follows_semver() {
        let r = record(
            vec![
                v("1.0.0-rc.1", false),
                v("1.0.0-alpha.10", false),
                v("1.0.0-alpha.2", false),
                v("1.0.0", false),
            ],
            &[],
        );
        let order: Vec<_> = r.versions.iter().map(|v| v.version.as_str()).collect();
        assert_eq!(order, vec!["1.0.0-alpha.2", "1.0.0-alpha.10", "1.0.0-rc.1", "1.0.0"]);
    }
}
