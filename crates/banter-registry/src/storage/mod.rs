//! The storage boundary: what a backend must do, and nothing about HTTP.
//!
//! Backends store immutable, content-addressed blobs plus a small index
//! (versions, explicit tags, yank flags). Everything derived — which version
//! `latest` means, digest verification on read — lives above this trait in
//! [`crate::registry`], so two backends cannot disagree about it.

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

    /// Whether the pack has any version.
    async fn exists(&self, name: &PackName) -> StorageResult<bool>;

    /// The version stored under `key` ([`banter_pack::version_key`]: the
    /// number without build metadata), by one indexed lookup.
    async fn version(&self, name: &PackName, key: &str) -> StorageResult<Option<VersionRecord>>;

    /// The version an explicit tag points at, by one indexed lookup.
    async fn tagged(&self, name: &PackName, tag: &str) -> StorageResult<Option<VersionRecord>>;

    /// What `latest` resolves to: the explicit `latest` tag unless its version
    /// is yanked, else the highest release that is not yanked (pre-releases
    /// never implicitly). Reads an index ordered by [`release_key`], so the
    /// cost does not grow with the pack's history. Must agree with
    /// [`crate::registry::latest`] over [`Storage::pack`]; the storage model
    /// tests check that on both backends.
    async fn latest(&self, name: &PackName) -> StorageResult<Option<VersionRecord>>;

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

/// The ordering key of a release (no pre-release part): each numeric part
/// zero-padded to 20 digits (a `u64` has at most 20), so byte order is
/// precedence order. `None` for a pre-release, which is never `latest`
/// implicitly. Build metadata does not take part, as in precedence.
pub fn release_key(v: &semver::Version) -> Option<String> {
    v.pre
        .is_empty()
        .then(|| format!("{:020}.{:020}.{:020}", v.major, v.minor, v.patch))
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
