//! Recently resolved references (`name@version`, `name@tag`, `latest`) to
//! their version record, so a hot read does not load and parse the pack's
//! index on every request. An entry lives for a short time-to-live: that
//! bounds how stale a read can be after a write made by *another* replica
//! (a tag move, a yank, a publish changing `latest`). This replica's own
//! writes drop the pack's entries at once.
//!
//! An entry holds what a response needs, computed once: the record and the
//! text of its `Digest`, `ETag` and `Banter-Pack-Version` headers as shared
//! bytes, so a hit allocates nothing and copies no string.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::storage::VersionRecord;

/// A resolved reference and the header text its responses carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The version the reference resolved to.
    pub record: VersionRecord,
    /// Whether the reference was an exact version (else a tag).
    pub exact: bool,
    /// `sha256:<hex>`: the `Digest` header.
    pub digest: Bytes,
    /// `"sha256:<hex>"`: the `ETag` header.
    pub etag: Bytes,
    /// The exact version: the `Banter-Pack-Version` header.
    pub version: Bytes,
}

impl Resolved {
    /// The entry for `record`, resolved from an exact version or a tag.
    pub fn new(record: VersionRecord, exact: bool) -> Self {
        let digest = record.digest.to_string();
        Self {
            etag: Bytes::from(format!("\"{digest}\"")),
            digest: Bytes::from(digest),
            version: Bytes::from(record.version.clone()),
            record,
            exact,
        }
    }
}

/// Default time-to-live: the longest a write on another replica stays unseen.
pub const DEFAULT_TTL: Duration = Duration::from_secs(1);
/// Most entries held; beyond it the map starts over (entries are cheap to refill).
const MAX_ENTRIES: usize = 16_384;

/// Pack name → reference → what it resolved to, and when. By pack, so a
/// lookup borrows its key and a write forgets one pack in one step.
#[derive(Default)]
struct Inner {
    packs: HashMap<String, HashMap<String, (Arc<Resolved>, Instant)>>,
    len: usize,
}

/// Resolved references, each valid for the time-to-live.
pub struct ResolveCache {
    ttl: Duration,
    inner: Mutex<Inner>,
}

impl ResolveCache {
    /// A cache keeping resolutions for `ttl` (zero: off).
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// What `reference` of `name` resolved to, if resolved within the TTL.
    pub fn get(&self, name: &str, reference: &str) -> Option<Arc<Resolved>> {
        if self.ttl.is_zero() {
            return None;
        }
        let inner = self.inner.lock().ok()?;
        let (record, at) = inner.packs.get(name)?.get(reference)?;
        (at.elapsed() < self.ttl).then(|| record.clone())
    }

    /// Remembers a resolution made just now.
    pub fn put(&self, name: &str, reference: &str, resolved: &Arc<Resolved>) {
        if self.ttl.is_zero() {
            return;
        }
        let Ok(mut inner) = self.inner.lock() else { return };
        if inner.len >= MAX_ENTRIES {
            *inner = Inner::default();
        }
        let added = inner
            .packs
            .entry(name.to_owned())
            .or_default()
            .insert(reference.to_owned(), (resolved.clone(), Instant::now()))
            .is_none();
        inner.len += usize::from(added);
    }

    /// Drops every resolution of `name` (after this replica wrote to it).
    pub fn forget(&self, name: &str) {
        if let Ok(mut inner) = self.inner.lock()
            && let Some(refs) = inner.packs.remove(name)
        {
            inner.len -= refs.len();
        }
    }
}
