//! Verified content in memory, by digest. Content is immutable (a digest
//! names one byte string for ever), so an entry never goes stale: it only
//! leaves when the byte bound needs room, least recently used first. Only
//! bytes that were just verified against their digest are inserted, so a
//! hit is served without hashing and a corrupted stored blob is never
//! cached (its next fill fails verification again).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use crate::metrics::Metrics;

/// Default bound of the cache, in bytes of content.
pub const DEFAULT_BYTES: u64 = 64 * 1024 * 1024;

struct Entry {
    key: Arc<str>,
    bytes: Bytes,
    /// Position in `order` (a logical clock: larger is more recent).
    used: u64,
}

/// Keys are shared between the map and the recency order, so a hit
/// allocates nothing.
#[derive(Default)]
struct Inner {
    entries: HashMap<Arc<str>, Entry>,
    /// Use clock → key, oldest first.
    order: BTreeMap<u64, Arc<str>>,
    clock: u64,
    size: u64,
}

/// A byte-bounded, least-recently-used map from digest to verified content.
pub struct BlobCache {
    capacity: u64,
    inner: Mutex<Inner>,
    metrics: Metrics,
}

impl BlobCache {
    /// A cache holding at most `capacity` bytes of content (0: disabled).
    pub fn new(capacity: u64, metrics: Metrics) -> Self {
        metrics.set_blob_cache(0, capacity);
        Self {
            capacity,
            inner: Mutex::new(Inner::default()),
            metrics,
        }
    }

    /// The content for `digest`, when cached (shared, never copied).
    pub fn get(&self, digest: &str) -> Option<Bytes> {
        let found = self.inner.lock().ok().and_then(|mut inner| {
            let inner = &mut *inner;
            inner.clock += 1;
            let now = inner.clock;
            let entry = inner.entries.get_mut(digest)?;
            inner.order.remove(&entry.used);
            entry.used = now;
            inner.order.insert(now, entry.key.clone());
            Some(entry.bytes.clone())
        });
        self.metrics.blob_cache_lookup(found.is_some());
        found
    }

    /// Keeps `bytes`, which the caller has just verified against `digest`.
    /// Content larger than the whole bound is not kept.
    pub fn insert(&self, digest: &str, bytes: Bytes) {
        let len = bytes.len() as u64;
        if len > self.capacity {
            return;
        }
        let Ok(mut inner) = self.inner.lock() else { return };
        let inner = &mut *inner;
        if inner.entries.contains_key(digest) {
            return;
        }
        let mut evicted = 0u64;
        while inner.size + len > self.capacity {
            let Some((_, oldest)) = inner.order.pop_first() else {
                break;
            };
            if let Some(e) = inner.entries.remove(&oldest) {
                inner.size -= e.bytes.len() as u64;
                evicted += 1;
            }
        }
        inner.clock += 1;
        let used = inner.clock;
        let key: Arc<str> = digest.into();
        inner.order.insert(used, key.clone());
        inner.entries.insert(key.clone(), Entry { key, bytes, used });
        inner.size += len;
        self.metrics.blob_cache_evicted(evicted);
        self.metrics.set_blob_cache(inner.size, self.capacity);
    }

    /// Bytes of content held now.
    pub fn size(&self) -> u64 {
        self.inner.lock().map(|i| i.size).unwrap_or(0)
    }

    /// Whether `digest` is held (no effect on recency or metrics): a storage
    /// read uses it to skip reading bytes already held.
    pub fn contains(&self, digest: &str) -> bool {
        self.inner.lock().is_ok_and(|i| i.entries.contains_key(digest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(n: usize, fill: u8) -> Bytes {
        Bytes::from(vec![fill; n])
    }

    #[test]
    fn never_exceeds_its_byte_bound_and_evicts_least_recently_used() {
        let cache = BlobCache::new(1000, Metrics::new());
        // Sizes that do not divide the bound, in an order that forces
        // evictions of several entries at once.
        let mut seed = 7u64;
        for i in 0..2000 {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let size = (seed >> 33) as usize % 400 + 1;
            cache.insert(&format!("d{i}"), blob(size, 1));
            assert!(cache.size() <= 1000, "size {} after insert {i}", cache.size());
            if i % 3 == 0 {
                let _ = cache.get(&format!("d{}", i / 2));
            }
        }
        let lru = BlobCache::new(300, Metrics::new());
        lru.insert("a", blob(100, 1));
        lru.insert("b", blob(100, 2));
        lru.insert("c", blob(100, 3));
        assert!(lru.get("a").is_some(), "a used: now the most recent");
        lru.insert("d", blob(100, 4));
        assert!(!lru.contains("b"), "b was the least recently used");
        assert!(lru.contains("a") && lru.contains("c") && lru.contains("d"));
        assert_eq!(lru.size(), 300);
        // Larger than the bound: not kept, nothing evicted for it.
        lru.insert("huge", blob(301, 5));
        assert!(!lru.contains("huge"));
        assert_eq!(lru.size(), 300);
        // Disabled.
        let off = BlobCache::new(0, Metrics::new());
        off.insert("a", blob(1, 1));
        assert!(off.get("a").is_none());
    }

    #[test]
    fn hits_share_the_bytes() {
        let cache = BlobCache::new(100, Metrics::new());
        let b = blob(10, 9);
        cache.insert("x", b.clone());
        let got = cache.get("x").expect("hit");
        assert_eq!(got.as_ptr(), b.as_ptr(), "served without a copy");
    }
}
