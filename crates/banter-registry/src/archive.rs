//! `export` / `import`: a portable archive of every pack, version, tag and yank
//! state — backup, restore, and migration between backends.
//!
//! Format: a gzipped tar holding `index.json` first (packs, versions with
//! digest, size, publication time and yank flag, explicit tags), then one
//! `blobs/sha256/<hex>` file per distinct blob. Import verifies every digest.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};

use anyhow::{Context, bail};
use banter_pack::{Digest, PackName, parse_version, validate_pack};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::registry::{Registry, RegistryError};
use crate::storage::{NewVersion, VersionRecord};

const FORMAT: &str = "banter-registry-archive";
const FORMAT_VERSION: u32 = 1;
const INDEX: &str = "index.json";
/// Largest `index.json` read (about a million versions): an archive's sizes
/// are checked before anything is read, so a gzip bomb cannot exhaust memory.
pub const MAX_INDEX_BYTES: u64 = 256 * 1024 * 1024;

/// Reads one entry whole, refusing it before reading when its size exceeds `limit`.
fn read_bounded(entry: &mut impl Read, size: u64, limit: u64, what: &str) -> anyhow::Result<Vec<u8>> {
    if size > limit {
        bail!("archive entry {what} is {size} bytes, over the limit of {limit} bytes");
    }
    let mut buf = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    // The header's size bounds the read; take() guards it once more.
    entry.take(limit.saturating_add(1)).read_to_end(&mut buf)?;
    if buf.len() as u64 > limit {
        bail!("archive entry {what} is over the limit of {limit} bytes");
    }
    Ok(buf)
}

/// Whether an entry holds file content (directories, links and metadata
/// entries that plain `tar` adds are skipped).
fn is_file(entry: &tar::Entry<'_, impl Read>) -> bool {
    matches!(
        entry.header().entry_type(),
        tar::EntryType::Regular | tar::EntryType::Continuous
    )
}

/// The archive's index.
#[derive(Debug, Serialize, Deserialize)]
pub struct Index {
    /// Always `banter-registry-archive`.
    pub format: String,
    /// Format version (1).
    pub format_version: u32,
    /// When the export ran.
    pub exported_at: DateTime<Utc>,
    /// Every pack.
    pub packs: Vec<IndexPack>,
}

/// One pack in the index.
#[derive(Debug, Serialize, Deserialize)]
pub struct IndexPack {
    /// Pack name.
    pub name: String,
    /// Versions with their metadata.
    pub versions: Vec<VersionRecord>,
    /// Explicitly set tags (the computed `latest` is not stored).
    pub tags: BTreeMap<String, String>,
}

/// What an export or import did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Packs seen.
    pub packs: usize,
    /// Versions written (import) or exported.
    pub versions: usize,
    /// Versions already present with identical content (import).
    pub unchanged: usize,
    /// Tags set.
    pub tags: usize,
}

/// Writes every pack of `registry` to `out` as a gzipped tar.
pub async fn export(registry: &Registry, out: impl Write) -> anyhow::Result<Summary> {
    let storage = registry.storage();
    let mut packs = Vec::new();
    let mut last: Option<String> = None;
    loop {
        let page = storage.list("", last.as_deref(), 1000).await?;
        let Some(tail) = page.last().cloned() else { break };
        for name in page {
            let pack_name = PackName::parse(&name)?;
            if let Some(record) = storage.pack(&pack_name).await? {
                packs.push(IndexPack {
                    name,
                    versions: record.versions,
                    tags: record.tags,
                });
            }
        }
        last = Some(tail);
    }
    let index = Index {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        exported_at: Utc::now(),
        packs,
    };
    let mut summary = Summary {
        packs: index.packs.len(),
        ..Summary::default()
    };
    let gz = flate2::write::GzEncoder::new(out, flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    append(&mut tar, INDEX, &serde_json::to_vec_pretty(&index)?)?;
    let mut written = std::collections::HashSet::new();
    for pack in &index.packs {
        summary.tags += pack.tags.len();
        for v in &pack.versions {
            summary.versions += 1;
            if written.insert(v.digest.clone()) {
                let bytes = registry
                    .content(&v.digest)
                    .await
                    .with_context(|| format!("reading {}@{} ({})", pack.name, v.version, v.digest))?;
                append(&mut tar, &format!("blobs/sha256/{}", v.digest.hex()), &bytes)?;
            }
        }
    }
    tar.into_inner()?.finish()?.flush()?;
    Ok(summary)
}

fn append<W: Write>(tar: &mut tar::Builder<W>, path: &str, bytes: &[u8]) -> anyhow::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_cksum();
    tar.append_data(&mut header, path, bytes)?;
    Ok(())
}

/// Restores an archive into `registry`. Versions already present with the
/// same bytes are left exactly as they are (a yank made since the backup is
/// not undone); a version present with different bytes is a conflict: the
/// import fails, listing them, and sets no tags.
pub async fn import(registry: &Registry, input: impl Read) -> anyhow::Result<Summary> {
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(input));
    let mut entries = tar.entries().context("reading the archive")?;
    let index: Index = loop {
        let mut first = entries.next().context("the archive is empty")??;
        if !is_file(&first) {
            continue;
        }
        if first.path()?.to_string_lossy().trim_start_matches("./") != INDEX {
            bail!("not a banter-registry archive: the first file must be {INDEX}");
        }
        let size = first.size();
        let buf = read_bounded(&mut first, size, MAX_INDEX_BYTES, INDEX)?;
        break serde_json::from_slice(&buf).context("parsing index.json")?;
    };
    if index.format != FORMAT || index.format_version != FORMAT_VERSION {
        bail!(
            "unsupported archive format {:?} version {} (this build reads {FORMAT} version {FORMAT_VERSION})",
            index.format,
            index.format_version
        );
    }
    // Which versions each blob carries.
    let mut by_digest: HashMap<Digest, Vec<(&str, &VersionRecord)>> = HashMap::new();
    for pack in &index.packs {
        for v in &pack.versions {
            by_digest.entry(v.digest.clone()).or_default().push((&pack.name, v));
        }
    }
    let mut summary = Summary {
        packs: index.packs.len(),
        ..Summary::default()
    };
    let mut conflicts = Vec::new();
    let max_blob = registry.limits().max_pack_bytes as u64;
    for entry in entries {
        let mut entry = entry?;
        if !is_file(&entry) {
            continue;
        }
        let path = entry.path()?.to_string_lossy().trim_start_matches("./").to_owned();
        let Some(hex) = path.strip_prefix("blobs/sha256/") else {
            bail!("unexpected archive entry {path:?}");
        };
        let digest = Digest::from_hex(hex).with_context(|| format!("archive entry {path:?}"))?;
        let size = entry.size();
        let bytes = read_bounded(&mut entry, size, max_blob, &path)?;
        if !digest.matches(&bytes) {
            bail!("archive entry {path} does not match its digest: the archive is corrupt");
        }
        let bytes = bytes::Bytes::from(bytes);
        for (name, v) in by_digest.remove(&digest).unwrap_or_default() {
            validate_pack(&bytes, registry.limits(), Some((name, &v.version)))
                .map_err(|e| anyhow::anyhow!("{name}@{}: {e}", v.version))?;
            let new = NewVersion {
                name: PackName::parse(name)?,
                version: parse_version(&v.version)?,
                digest: digest.clone(),
                bytes: bytes.clone(),
                published_at: v.published_at,
                yanked: v.yanked,
            };
            match registry.store(new).await {
                Ok(p) if p.created => summary.versions += 1,
                Ok(_) => summary.unchanged += 1,
                Err(RegistryError::VersionExists { existing_digest, .. }) => {
                    conflicts.push(format!(
                        "{name}@{} (archive {digest}, stored {existing_digest})",
                        v.version
                    ));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    if let Some((digest, users)) = by_digest.iter().next() {
        let (name, v) = users[0];
        bail!(
            "the archive lacks blob {digest} for {name}@{}: it is truncated or corrupt",
            v.version
        );
    }
    // Tags last, and only onto versions known to be the archive's own bytes.
    if !conflicts.is_empty() {
        bail!(
            "{} version(s) already exist with different content and were not imported (no tags were set): {}",
            conflicts.len(),
            conflicts.join(", ")
        );
    }
    for pack in &index.packs {
        for (tag, version) in &pack.tags {
            registry.set_tag(&pack.name, tag, version).await?;
            summary.tags += 1;
        }
    }
    Ok(summary)
}
