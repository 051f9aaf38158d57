//! The background scrub: every stored blob is read and hashed again, at a
//! bounded pace, so content that rotted on disk (or was changed behind the
//! registry's back) is reported before a reader meets it. Reads never hash
//! cached content; they rely on verification when bytes enter (publish,
//! import, a cache fill from storage) and on this pass.
//!
//! A corrupt blob is logged with its digest and counted; it stays stored
//! (it is evidence, and an operator restores it from an export), and it is
//! never served: a cache fill re-verifies and answers 500 instead.

use std::time::Duration;

use banter_pack::Digest;

use crate::registry::Registry;

/// Blobs verified per page; the scrub sleeps [`Pace::pause`] between pages.
const PAGE: usize = 64;

/// How often and how fast the scrub runs.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Time from the start of one pass to the start of the next (zero: off).
    pub interval: Duration,
    /// Rest between pages of [`PAGE`] blobs, bounding the scrub's share of CPU and I/O.
    pub pause: Duration,
}

/// What one pass found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pass {
    /// Blobs whose bytes still hash to their digest.
    pub verified: u64,
    /// Blobs whose bytes do not.
    pub corrupt: u64,
}

/// The first pass starts this long after start-up (or `interval`, if
/// shorter): soon enough that a pod restarted more often than `interval`
/// still completes passes (and the corrupt-blob gauge, which a restart
/// resets, is set again), late enough that a crash loop does not hash
/// everything on every start.
const FIRST_PASS_AFTER: Duration = Duration::from_secs(10 * 60);
/// A pass the backend cut short is retried from the start this long after
/// (or `interval`, if shorter), not a whole interval later.
const RETRY_AFTER: Duration = Duration::from_secs(5 * 60);

/// Runs passes for ever (until the task is dropped): the first one
/// [`FIRST_PASS_AFTER`] after start, then one every `interval` from the
/// start of the last.
pub async fn run(registry: Registry, pace: Pace) {
    registry.metrics().scrub_scheduled(pace.interval);
    if pace.interval.is_zero() {
        return;
    }
    let mut wait = pace.interval.min(FIRST_PASS_AFTER);
    loop {
        tokio::time::sleep(wait).await;
        let started = tokio::time::Instant::now();
        wait = match pass(&registry, pace.pause).await {
            Ok(p) => {
                tracing::info!(verified = p.verified, corrupt = p.corrupt, "scrub pass complete");
                pace.interval.saturating_sub(started.elapsed())
            }
            // A backend outage is reported by readiness; the pass starts over.
            Err(e) => {
                tracing::warn!(error = %e, "scrub pass stopped: the backend failed");
                pace.interval.min(RETRY_AFTER)
            }
        };
    }
}

/// One pass over every stored blob.
pub async fn pass(registry: &Registry, pause: Duration) -> Result<Pass, crate::storage::StorageError> {
    let storage = registry.storage();
    let metrics = registry.metrics();
    let mut found = Pass::default();
    // A Redis SCAN may return a key twice: each corrupt blob counts once.
    let mut corrupt = std::collections::HashSet::new();
    let mut cursor = String::new();
    loop {
        let (digests, next) = storage.scan_blobs(&cursor, PAGE).await?;
        for digest in digests {
            let Some(bytes) = storage.blob(&digest).await? else {
                continue; // never deleted today; tolerated if it ever is
            };
            // Hashing a page of blobs is CPU work: off the async workers.
            let (digest, intact) = tokio::task::spawn_blocking(move || {
                let intact = digest.matches(&bytes);
                (digest, intact)
            })
            .await
            .map_err(|e| crate::storage::StorageError::Internal(format!("scrub task failed: {e}")))?;
            if intact {
                found.verified += 1;
            } else if corrupt.insert(digest.hex().to_owned()) {
                report_corrupt(&digest);
            }
            metrics.scrubbed(intact);
        }
        match next {
            Some(c) => cursor = c,
            None => break,
        }
        tokio::time::sleep(pause).await;
    }
    found.corrupt = corrupt.len() as u64;
    metrics.scrub_completed(found.corrupt);
    Ok(found)
}

fn report_corrupt(digest: &Digest) {
    tracing::error!(%digest, "scrub: stored blob failed digest verification; it is not served (reads answer 500), restore it from an export");
}
