//! The storage boundary: what a backend must do, and nothing about HTTP.
//!
//! Backends store immutable, content-addressed blobs plus a small index
//! (versions, explicit tags, yank flags), and answer the read path by
//! indexed lookups (a version, a tag, `latest`) so a read's cost does not
//! grow with a pack's history. Digest verification and caching live above
//! this trait in [`crate::registry`]. What `latest` means is stated once,
//! over a whole index, in [`crate::registry::latest`]; each backend's
//! indexed `latest` is checked against it (`tests/storage_model.rs`).

mod instrumented;
pub mod redis;
pub mod sqlite;

use std::collections::BTreeMap;

use async_trait::async_trait;
use banter_pack::{Digest, PackName};
use bytes::Bytes;
use chrono::{DateTime, Utc};

pub use instrumented::Instrumented;

/// Which backend a registry runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// Embedded SQLite file (one replica).
    Sqlite,
    /// Shared Redis server (many replicas).
    Redis,
}

impl BackendKind {
    /// The lowercase name used in flags and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Redis => "redis",
        }
    }
}

/// A version to store: its bytes were validated and hashed by the caller.
#[derive(Debug, Clone)]
pub struct NewVersion {
    /// Pack name.
    pub name: PackName,
    /// Exact version as published.
    pub version: semver::Version,
    /// sha256 of `bytes`.
    pub digest: Digest,
    /// The pack document exactly as published.
    pub bytes: Bytes,
    /// Publication time (preserved by import).
    pub published_at: DateTime<Utc>,
    /// Yank state (set by import; a fresh publish is never yanked).
    pub yanked: bool,
}

/// What a publish did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishOutcome {
    /// A new version was stored.
    Created,
    /// The same bytes were already stored under this version. Stored bytes
    /// that no longer matched the digest were replaced by these (verified)
    /// ones, so re-publishing or importing repairs corrupt content.
    Identical,
    /// The version number is taken by different content.
    Conflict {
        /// The version already stored (may differ in build metadata).
        existing_version: String,
        /// Its digest.
        existing_digest: Digest,
    },
}

/// One stored version of a pack.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VersionRecord {
    /// Exact version as published.
    pub version: String,
    /// Content digest.
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
    /// Publication time.
    pub published_at: DateTime<Utc>,
    /// Whether the version is yanked.
    pub yanked: bool,
}

/// A pack's index: all versions and the tags a publisher set explicitly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackRecord {
    /// Pack name.
    pub name: PackName,
    /// Versions in semver precedence order, oldest first.
    pub versions: Vec<VersionRecord>,
    /// Explicit tags: tag → exact version.
    pub tags: BTreeMap<String, String>,
}

/// Which version a read asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// The version with this [`banter_pack::version_key`].
    Version(&'a str),
    /// The version an explicit tag points at.
    Tag(&'a str),
    /// What `latest` resolves to.
    Latest,
}

/// Whether the caller already holds the content of a digest (its cache).
pub type ContentCached = std::sync::Arc<dyn Fn(&Digest) -> bool + Send + Sync>;

/// A [`Lookup`] that owns its strings (to move into a blocking task).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OwnedLookup {
    Version(String),
    Tag(String),
    Latest,
}

impl Lookup<'_> {
    pub(crate) fn to_owned(self) -> OwnedLookup {
        match self {
            Self::Version(k) => OwnedLookup::Version(k.to_owned()),
            Self::Tag(t) => OwnedLookup::Tag(t.to_owned()),
            Self::Latest => OwnedLookup::Latest,
        }
    }
}

/// One page of a pack's versions, and the tags pointing at them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionsPage {
    /// Versions in precedence order.
    pub versions: Vec<VersionRecord>,
    /// Explicit tags whose version is on this page: tag → exact version.
    pub tags: BTreeMap<String, String>,
}

/// Totals over the whole registry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Stats {
    /// Number of packs.
    pub packs: u64,
    /// Number of versions over all packs.
    pub versions: u64,
    /// Bytes of stored pack content.
    pub bytes: u64,
}

/// Storage failures, typed so the API can answer each one correctly.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The backend cannot be reached or did not answer in time; retrying later may work.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The backend is out of space (disk full, a size cap, Redis `maxmemory`):
    /// nothing was written; it needs an operator, not a retry.
    #[error("storage full: {0}")]
    Full(String),
    /// The named pack does not exist.
    #[error("pack not found")]
    PackNotFound,
    /// The named version does not exist.
    #[error("version not found")]
    VersionNotFound,
    /// Anything else: a bug or corrupted data.
    #[error("storage error: {0}")]
    Internal(String),
}

/// Result of a storage operation.
pub type StorageResult<T> = Result<T, StorageError>;

/// A storage backend. Implementations must make `publish` atomic: after a
/// crash either the whole version (blob, index, pack entry) exists or none.
#[async_trait]
pub trait Storage: Send + Sync + 'static {
    /// Which backend this is.
    fn kind(&self) -> BackendKind;

    /// Checks the backend answers (readiness).
    async fn ping(&self) -> StorageResult<()>;

    /// Stores a version unless its number (ignoring build metadata) is taken.
    async fn publish(&self, version: NewVersion) -> StorageResult<PublishOutcome>;

    /// A pack's whole index, or `None` if it does not exist. Proportional to
    /// the pack's history: for listings and export, never on the read path.
    async fn pack(&self, name: &PackName) -> StorageResult<Option<PackRecord>>;

    /// Up to `limit` versions in precedence order, after `after` when given
    /// (by [`order_key`], so `after` need not be stored), with the explicit
    /// tags that point at them. An indexed range: a page costs the same
    /// wherever it is in the history.
    async fn versions_page(
        &self,
        name: &PackName,
        after: Option<&semver::Version>,
        limit: usize,
    ) -> StorageResult<VersionsPage>;

    /// Whether the pack has any version.
    async fn exists(&self, name: &PackName) -> StorageResult<bool>;

    /// The version stored under `key` ([`banter_pack::version_key`]: the
    /// number without build metadata), by one indexed lookup.
    async fn version(&self, name: &PackName, key: &str) -> StorageResult<Option<VersionRecord>>;

    /// The version an explicit tag points at, by one indexed lookup.
    async fn tagged(&self, name: &PackName, tag: &str) -> StorageResult<Option<VersionRecord>>;

    /// What `latest` resolves to: the explicit `latest` tag unless its version
    /// is yanked, else the highest release that is not yanked (pre-releases
    /// never implicitly). Reads an index ordered by [`order_key`], so the
    /// cost does not grow with the pack's history. Must agree with
    /// [`crate::registry::latest`] over [`Storage::pack`]; the storage model
    /// tests check that on both backends.
    async fn latest(&self, name: &PackName) -> StorageResult<Option<VersionRecord>>;

    /// A lookup and the version's stored bytes (unverified) together: the
    /// read path when neither is cached. Backends that can do both in one
    /// call override this (SQLite: one blocking-pool hop and one snapshot
    /// instead of two hops); the default makes the two calls.
    ///
    /// `cached` says whether the caller already holds a digest's content;
    /// then no bytes are read (`None`).
    async fn lookup_with_content(
        &self,
        name: &PackName,
        lookup: Lookup<'_>,
        cached: ContentCached,
    ) -> StorageResult<Option<(VersionRecord, Option<Bytes>)>> {
        let found = match lookup {
            Lookup::Version(key) => self.version(name, key).await?,
            Lookup::Tag(tag) => self.tagged(name, tag).await?,
            Lookup::Latest => self.latest(name).await?,
        };
        match found {
            None => Ok(None),
            Some(record) if cached(&record.digest) => Ok(Some((record, None))),
            Some(record) => {
                let bytes = self.blob(&record.digest).await?;
                Ok(Some((record, bytes)))
            }
        }
    }

    /// Raw blob bytes by digest, unverified (the caller verifies).
    async fn blob(&self, digest: &Digest) -> StorageResult<Option<Bytes>>;

    /// One page of stored blob digests for the scrub: start with an empty
    /// cursor and pass back the returned one until it is `None`. Pages may
    /// repeat a digest (Redis `SCAN`), never skip one that existed throughout.
    async fn scan_blobs(&self, cursor: &str, limit: usize) -> StorageResult<(Vec<Digest>, Option<String>)>;

    /// Pack names starting with `prefix`, strictly after `after`, in name order.
    async fn list(&self, prefix: &str, after: Option<&str>, limit: usize) -> StorageResult<Vec<String>>;

    /// Points `tag` at the exact stored `version`.
    async fn set_tag(&self, name: &PackName, tag: &str, version: &str) -> StorageResult<()>;

    /// Sets the yank flag of the exact stored `version`.
    async fn set_yanked(&self, name: &PackName, version: &str, yanked: bool) -> StorageResult<()>;

    /// Totals.
    async fn stats(&self) -> StorageResult<Stats>;
}

/// A byte string whose order is semver precedence order (build metadata
/// takes no part, as in precedence), so an index over it gives versions in
/// order and `latest` by a walk from the top:
///
/// - the three numbers, each zero-padded to 20 digits (a `u64` has at most 20);
/// - then `~` for a release, which sorts after `-`, the start of a pre-release;
/// - a pre-release identifier is `1`, its length in 5 digits and its digits
///   when numeric (numeric identifiers compare by value), else `2`, the
///   identifier and `!` (below every identifier character, so a prefix sorts
///   first); `0` ends the list, so fewer identifiers sort first.
///
/// The Redis `order` index rebuilds the same strings in Lua
/// (`tests/storage_model.rs` checks they agree).
pub fn order_key(v: &semver::Version) -> String {
    let mut k = format!("{:020}.{:020}.{:020}", v.major, v.minor, v.patch);
    if v.pre.is_empty() {
        k.push('~');
        return k;
    }
    k.push('-');
    for id in v.pre.as_str().split('.') {
        if id.bytes().all(|b| b.is_ascii_digit()) {
            k.push_str(&format!("1{:05}{id}", id.len()));
        } else {
            k.push('2');
            k.push_str(id);
            k.push('!');
        }
    }
    k.push('0');
    k
}

/// Whether an [`order_key`] is a release's (its 63rd byte is `~`).
pub fn is_release_key(key: &str) -> bool {
    key.as_bytes().get(62) == Some(&b'~')
}

/// Sorts versions by semver precedence; equal precedence falls back to the string.
pub(crate) fn sort_versions(versions: &mut [VersionRecord]) {
    versions.sort_by(
        |a, b| match (semver::Version::parse(&a.version), semver::Version::parse(&b.version)) {
            (Ok(x), Ok(y)) => x.cmp_precedence(&y).then_with(|| a.version.cmp(&b.version)),
            _ => a.version.cmp(&b.version),
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Byte order of `order_key` is precedence order, over every pair of a
    /// set of versions built to hit each rule: numeric against
    /// alphanumeric identifiers, numbers of different lengths, prefixes,
    /// fewer identifiers, pre-release against release, huge numbers.
    #[test]
    fn order_keys_sort_as_semver_precedence() {
        let ids = [
            "0", "1", "2", "9", "10", "99", "100", "a", "a-b", "alpha", "alpha1", "b", "-", "Z", "rc",
        ];
        let mut pres: Vec<String> = vec![String::new()];
        for a in ids {
            pres.push(a.to_owned());
            for b in ids {
                pres.push(format!("{a}.{b}"));
            }
        }
        pres.push("1.2.3.4.5".into());
        let mut versions = Vec::new();
        for core in ["0.0.0", "1.0.0", "1.0.1", "1.10.0", "2.0.0", "18446744073709551615.0.0"] {
            for pre in &pres {
                let text = if pre.is_empty() {
                    core.to_owned()
                } else {
                    format!("{core}-{pre}")
                };
                versions.push(semver::Version::parse(&text).unwrap_or_else(|e| panic!("{text}: {e}")));
            }
        }
        let keys: Vec<String> = versions.iter().map(order_key).collect();
        for (a, ka) in versions.iter().zip(&keys) {
            assert_eq!(is_release_key(ka), a.pre.is_empty(), "{a}");
            for (b, kb) in versions.iter().zip(&keys) {
                assert_eq!(ka.cmp(kb), a.cmp_precedence(b), "{a} vs {b}");
            }
        }
    }
}
