//! Recently resolved references (`name@version`, `name@tag`, `latest`) to
//! their version record, so a hot read does not load and parse the pack's
//! index on every request. An entry lives for a short time-to-live: that
//! bounds how stale a read can be after a write made by *another* replica
//! (a tag move, a yank, a publish changing `latest`). This replica's own
//! writes drop the pack's entries at once, and a read that was already in
//! flight when one of them landed cannot put its older answer back: every
//! write advances an epoch, and a resolution is kept only if no write
//! happened since its lookup began.
//!
//! An entry holds what a response needs, computed once: the record and the
//! text of its `Digest`, `ETag` and `Banter-Pack-Version` headers as shared
//! header values, so a hit allocates nothing and copies or checks no string.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::HeaderValue;

use crate::storage::VersionRecord;

/// A resolved reference and the header text its responses carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The version the reference resolved to.
    pub record: VersionRecord,
    /// Whether the reference was an exact version (else a tag).
    pub exact: bool,
    /// `sha256:<hex>`: the `Digest` header.
    pub digest: HeaderValue,
    /// `"sha256:<hex>"`: the `ETag` header.
    pub etag: HeaderValue,
    /// The exact version: the `Banter-Pack-Version` header.
    pub version: HeaderValue,
}

impl Resolved {
    /// The entry for `record`, resolved from an exact version or a tag.
    pub fn new(record: VersionRecord, exact: bool) -> Self {
        let (digest, etag) = digest_headers(&record.digest.to_string());
        Self {
            digest,
            etag,
            version: header_value(record.version.clone()),
            record,
            exact,
        }
    }
}

/// The `Digest` (`sha256:<hex>`) and `ETag` (`"sha256:<hex>"`) header values of `digest`.
pub fn digest_headers(digest: &str) -> (HeaderValue, HeaderValue) {
    (header_value(digest.to_owned()), header_value(format!("\"{digest}\"")))
}

/// `text` as a header value, checked once here so that every response
/// clones it without checking it again. Digests and versions are ASCII by
/// construction; anything else would be an empty value, never a panic.
fn header_value(text: String) -> HeaderValue {
    HeaderValue::from_maybe_shared(Bytes::from(text)).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Default time-to-live: the longest a write on another replica stays unseen.
pub const DEFAULT_TTL: Duration = Duration::from_secs(1);
/// Most entries held; beyond it the map starts over (entries are cheap to refill).
const MAX_ENTRIES: usize = 16_384;

/// A seeded hash that costs a fraction of the default SipHash on short keys.
/// Keys are pack names and references that resolved, which only a
/// publisher can create.
type Hasher = foldhash::quality::RandomState;

/// One pack's references: what each resolved to, and when.
type References = HashMap<String, (Arc<Resolved>, Instant), Hasher>;

/// Pack name → reference → what it resolved to, and when. By pack, so a
/// lookup borrows its key and a write forgets one pack in one step.
#[derive(Default)]
struct Inner {
    packs: HashMap<String, References, Hasher>,
    len: usize,
    /// Writes forgotten so far (see [`Epoch`]).
    epoch: u64,
}

/// When a lookup missed: a resolution made after it is kept only if no
/// write of this replica happened in between (the read may have seen the
/// storage before that write).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Epoch(u64);

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

    /// What `reference` of `name` resolved to, if resolved within the TTL;
    /// on a miss, the epoch to hand to [`Self::put`].
    pub fn get(&self, name: &str, reference: &str) -> Result<Arc<Resolved>, Epoch> {
        if self.ttl.is_zero() {
            return Err(Epoch(0));
        }
        let Ok(inner) = self.inner.lock() else {
            return Err(Epoch(u64::MAX)); // a poisoned cache keeps nothing
        };
        match inner.packs.get(name).and_then(|refs| refs.get(reference)) {
            Some((record, at)) if at.elapsed() < self.ttl => Ok(record.clone()),
            _ => Err(Epoch(inner.epoch)),
        }
    }

    /// Remembers a resolution made by a lookup that missed at `since`,
    /// unless this replica wrote to any pack after that.
    pub fn put(&self, name: &str, reference: &str, resolved: &Arc<Resolved>, since: Epoch) {
        if self.ttl.is_zero() {
            return;
        }
        let Ok(mut inner) = self.inner.lock() else { return };
        if inner.epoch != since.0 {
            return;
        }
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
        if let Ok(mut inner) = self.inner.lock() {
            inner.epoch = inner.epoch.wrapping_add(1);
            if let Some(refs) = inner.packs.remove(name) {
                inner.len -= refs.len();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use banter_pack::Digest;
    use chrono::Utc;

    fn resolved(version: &str) -> Arc<Resolved> {
        let record = VersionRecord {
            version: version.to_owned(),
            digest: Digest::of(version.as_bytes()),
            size: 1,
            published_at: Utc::now(),
            yanked: false,
        };
        Arc::new(Resolved::new(record, false))
    }

    #[test]
    fn a_resolution_is_kept_until_this_replica_writes_the_pack() {
        let cache = ResolveCache::new(Duration::from_secs(60));
        let since = cache.get("p", "stable").expect_err("empty cache");
        cache.put("p", "stable", &resolved("1.0.0"), since);
        let hit = cache.get("p", "stable").expect("kept");
        assert_eq!(hit.record.version, "1.0.0");
        assert_eq!(hit.version, "1.0.0");
        assert_eq!(hit.etag, format!("\"{}\"", hit.record.digest).as_str());
        cache.forget("p");
        assert!(cache.get("p", "stable").is_err(), "forgotten after a write");
    }

    #[test]
    fn a_read_in_flight_across_a_write_does_not_put_its_older_answer_back() {
        let cache = ResolveCache::new(Duration::from_secs(60));
        // The read misses and goes to storage; it sees 1.0.0 there.
        let since = cache.get("p", "stable").expect_err("empty cache");
        // Meanwhile this replica moves the tag and forgets the pack.
        cache.forget("p");
        // The read's answer predates the move: it must not be cached.
        cache.put("p", "stable", &resolved("1.0.0"), since);
        assert!(cache.get("p", "stable").is_err(), "the stale answer was cached");
        // A read that starts after the write caches its answer.
        let since = cache.get("p", "stable").expect_err("still empty");
        cache.put("p", "stable", &resolved("2.0.0"), since);
        assert_eq!(cache.get("p", "stable").expect("kept").record.version, "2.0.0");
    }

    #[test]
    fn entries_expire_after_the_ttl_and_a_zero_ttl_keeps_nothing() {
        let cache = ResolveCache::new(Duration::from_millis(20));
        let since = cache.get("p", "1.0.0").expect_err("empty cache");
        cache.put("p", "1.0.0", &resolved("1.0.0"), since);
        assert!(cache.get("p", "1.0.0").is_ok());
        std::thread::sleep(Duration::from_millis(40));
        assert!(cache.get("p", "1.0.0").is_err(), "expired");

        let off = ResolveCache::new(Duration::ZERO);
        let since = off.get("p", "1.0.0").expect_err("off");
        off.put("p", "1.0.0", &resolved("1.0.0"), since);
        assert!(off.get("p", "1.0.0").is_err());
    }
}
