//! A storage decorator that times every operation and counts failures.

use std::time::Instant;

use async_trait::async_trait;
use banter_pack::{Digest, PackName};
use bytes::Bytes;

use super::{
    BackendKind, ContentCached, Lookup, NewVersion, PackRecord, PublishOutcome, Stats, Storage, StorageError,
    StorageResult, VersionRecord, VersionsPage,
};
use crate::metrics::Metrics;

/// Wraps a backend so that every call is measured the same way, whichever backend it is.
pub struct Instrumented<S> {
    inner: S,
    metrics: Metrics,
}

impl<S: Storage> Instrumented<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, metrics: Metrics) -> Self {
        Self { inner, metrics }
    }

    async fn timed<T>(&self, op: &'static str, fut: impl Future<Output = StorageResult<T>>) -> StorageResult<T> {
        let start = Instant::now();
        let result = fut.await;
        let backend = self.inner.kind().as_str();
        self.metrics.observe_storage(backend, op, start.elapsed());
        if let Err(e) = &result
            && !matches!(e, StorageError::PackNotFound | StorageError::VersionNotFound)
        {
            self.metrics.storage_error(backend, op);
        }
        result
    }
}

#[async_trait]
impl<S: Storage> Storage for Instrumented<S> {
    fn kind(&self) -> BackendKind {
        self.inner.kind()
    }
    async fn ping(&self) -> StorageResult<()> {
        self.timed("ping", self.inner.ping()).await
    }
    async fn publish(&self, version: NewVersion) -> StorageResult<PublishOutcome> {
        self.timed("publish", self.inner.publish(version)).await
    }
    async fn pack(&self, name: &PackName) -> StorageResult<Option<PackRecord>> {
        self.timed("pack", self.inner.pack(name)).await
    }
    async fn versions_page(
        &self,
        name: &PackName,
        after: Option<&semver::Version>,
        limit: usize,
    ) -> StorageResult<VersionsPage> {
        self.timed("versions_page", self.inner.versions_page(name, after, limit))
            .await
    }
    async fn exists(&self, name: &PackName) -> StorageResult<bool> {
        self.timed("exists", self.inner.exists(name)).await
    }
    async fn version(&self, name: &PackName, key: &str) -> StorageResult<Option<VersionRecord>> {
        self.timed("version", self.inner.version(name, key)).await
    }
    async fn tagged(&self, name: &PackName, tag: &str) -> StorageResult<Option<VersionRecord>> {
        self.timed("tagged", self.inner.tagged(name, tag)).await
    }
    async fn latest(&self, name: &PackName) -> StorageResult<Option<VersionRecord>> {
        self.timed("latest", self.inner.latest(name)).await
    }
    async fn lookup_with_content(
        &self,
        name: &PackName,
        lookup: Lookup<'_>,
        cached: ContentCached,
    ) -> StorageResult<Option<(VersionRecord, Option<Bytes>)>> {
        self.timed(
            "lookup_with_content",
            self.inner.lookup_with_content(name, lookup, cached),
        )
        .await
    }
    async fn blob(&self, digest: &Digest) -> StorageResult<Option<Bytes>> {
        self.timed("blob", self.inner.blob(digest)).await
    }
    async fn scan_blobs(&self, cursor: &str, limit: usize) -> StorageResult<(Vec<Digest>, Option<String>)> {
        self.timed("scan_blobs", self.inner.scan_blobs(cursor, limit)).await
    }
    async fn list(&self, prefix: &str, after: Option<&str>, limit: usize) -> StorageResult<Vec<String>> {
        self.timed("list", self.inner.list(prefix, after, limit)).await
    }
    async fn set_tag(&self, name: &PackName, tag: &str, version: &str) -> StorageResult<()> {
        self.timed("set_tag", self.inner.set_tag(name, tag, version)).await
    }
    async fn set_yanked(&self, name: &PackName, version: &str, yanked: bool) -> StorageResult<()> {
        self.timed("set_yanked", self.inner.set_yanked(name, version, yanked))
            .await
    }
    async fn stats(&self) -> StorageResult<Stats> {
        self.timed("stats", self.inner.stats()).await
    }
}
