//! Embedded SQLite backend: one writer connection, a pool of readers, WAL.
//!
//! Durability: `journal_mode=WAL` with `synchronous=FULL` — every commit is
//! fsynced before `publish` returns, so an acknowledged version survives a
//! process crash and a power loss (see docs/storage.md for the reasoning).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use banter_pack::{Digest, PackName, version_key};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::{
    BackendKind, ContentCached, Lookup, NewVersion, OwnedLookup, PackRecord, PublishOutcome, Stats, Storage,
    StorageError, StorageResult, VersionRecord, VersionsPage, sort_versions,
};

/// One forward-only schema step: SQL, or code where SQL cannot compute a value.
enum Migration {
    Sql(&'static str),
    Code(fn(&rusqlite::Transaction<'_>) -> rusqlite::Result<()>),
}

/// Forward-only schema migrations; index + 1 is the `user_version` after it.
const MIGRATIONS: &[Migration] = &[
    Migration::Sql(
        r#"
CREATE TABLE blobs (
    digest  TEXT PRIMARY KEY,
    size    INTEGER NOT NULL,
    content BLOB NOT NULL
);
CREATE TABLE packs (
    name       TEXT PRIMARY KEY,
    created_at TEXT NOT NULL
);
CREATE TABLE versions (
    name         TEXT NOT NULL REFERENCES packs(name),
    version      TEXT NOT NULL,
    version_key  TEXT NOT NULL,
    digest       TEXT NOT NULL REFERENCES blobs(digest),
    size         INTEGER NOT NULL,
    published_at TEXT NOT NULL,
    yanked       INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (name, version),
    UNIQUE (name, version_key)
);
CREATE TABLE tags (
    name       TEXT NOT NULL,
    tag        TEXT NOT NULL,
    version    TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (name, tag),
    FOREIGN KEY (name, version) REFERENCES versions(name, version)
);
"#,
    ),
    Migration::Sql(
        r#"
-- Counts kept by triggers in the same transaction as every write, so a
-- scrape reads one row instead of scanning three tables.
CREATE TABLE counters (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    packs    INTEGER NOT NULL,
    versions INTEGER NOT NULL,
    bytes    INTEGER NOT NULL
);
INSERT INTO counters VALUES (1,
    (SELECT count(*) FROM packs),
    (SELECT count(*) FROM versions),
    (SELECT coalesce(sum(size), 0) FROM blobs));
CREATE TRIGGER counters_packs_insert AFTER INSERT ON packs BEGIN
    UPDATE counters SET packs = packs + 1 WHERE id = 1; END;
CREATE TRIGGER counters_packs_delete AFTER DELETE ON packs BEGIN
    UPDATE counters SET packs = packs - 1 WHERE id = 1; END;
CREATE TRIGGER counters_versions_insert AFTER INSERT ON versions BEGIN
    UPDATE counters SET versions = versions + 1 WHERE id = 1; END;
CREATE TRIGGER counters_versions_delete AFTER DELETE ON versions BEGIN
    UPDATE counters SET versions = versions - 1 WHERE id = 1; END;
CREATE TRIGGER counters_blobs_insert AFTER INSERT ON blobs BEGIN
    UPDATE counters SET bytes = bytes + NEW.size WHERE id = 1; END;
CREATE TRIGGER counters_blobs_delete AFTER DELETE ON blobs BEGIN
    UPDATE counters SET bytes = bytes - OLD.size WHERE id = 1; END;
"#,
    ),
    // Reads whose cost does not grow with history: `latest` and pages of
    // versions by an index in precedence order, filled for existing rows.
    Migration::Code(add_order_keys),
];

/// Schema 3: `versions.order_key` ([`super::order_key`]) and its index, and
/// an index of tags by version (the tags of one page of versions).
fn add_order_keys(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch(
        "ALTER TABLE versions ADD COLUMN order_key TEXT;
         CREATE INDEX versions_in_order ON versions (name, order_key);
         CREATE INDEX tags_by_version ON tags (name, version);",
    )?;
    let rows: Vec<(String, String)> = tx
        .prepare("SELECT name, version FROM versions")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut update = tx.prepare("UPDATE versions SET order_key = ?3 WHERE name = ?1 AND version = ?2")?;
    for (name, version) in rows {
        let parsed = semver::Version::parse(&version)
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e)))?;
        update.execute(params![name, version, super::order_key(&parsed)])?;
    }
    Ok(())
}

/// Tuning for the SQLite backend.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// Database file.
    pub path: PathBuf,
    /// How long a statement waits for a lock before failing with 503.
    pub busy_timeout: Duration,
    /// Reader connections.
    pub readers: u32,
    /// Largest size the database file may grow to (a quota); writes past it
    /// fail as `Full`. `None`: limited by the disk only.
    pub max_bytes: Option<u64>,
}

impl SqliteOptions {
    /// Defaults for `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            busy_timeout: Duration::from_secs(5),
            readers: 8,
            max_bytes: None,
        }
    }
}

/// The SQLite backend.
#[derive(Clone)]
pub struct SqliteStorage {
    writer: Arc<Mutex<Connection>>,
    readers: r2d2::Pool<SqliteConnectionManager>,
}

impl SqliteStorage {
    /// Opens (creating if needed) the database and applies pending migrations.
    pub fn open(opts: &SqliteOptions) -> StorageResult<Self> {
        if let Some(dir) = opts.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StorageError::Internal(format!("cannot create {}: {e}", dir.display())))?;
        }
        let mut writer = Connection::open(&opts.path).map_err(|e| open_error(&opts.path, e))?;
        writer.busy_timeout(opts.busy_timeout).map_err(internal)?;
        // WAL is persistent in the file, but setting it each open is harmless
        // and repairs a database created by another tool in rollback mode.
        let mode: String = writer
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(|e| open_error(&opts.path, e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StorageError::Internal(format!(
                "could not enable WAL (journal_mode={mode})"
            )));
        }
        writer
            .execute_batch("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")
            .map_err(internal)?;
        migrate(&mut writer)?;
        if let Some(max) = opts.max_bytes {
            let page: u64 = writer
                .query_row("PRAGMA page_size", [], |r| r.get(0))
                .map_err(internal)?;
            let pages = (max / page.max(1)).max(1);
            writer
                .query_row(&format!("PRAGMA max_page_count = {pages}"), [], |r| r.get::<_, u64>(0))
                .map_err(internal)?;
        }

        let busy = opts.busy_timeout;
        let manager = SqliteConnectionManager::file(&opts.path).with_init(move |c| {
            // Readers open read-write so they can use the WAL index, but
            // refuse writes: the single writer connection owns them.
            c.busy_timeout(busy)?;
            c.pragma_update(None, "query_only", true)
        });
        Self::with_readers(writer, manager, opts)
    }

    /// Opens an existing database for reading only (`export`): nothing is
    /// created, no migration runs, no write is possible. A database on a
    /// read-only volume is read with `mode=ro`; when that fails because
    /// SQLite cannot create its `-shm` file there and no `-wal` exists (no
    /// registry is running, the last one shut down cleanly), it is read as
    /// `immutable`.
    pub fn open_read_only(opts: &SqliteOptions) -> StorageResult<Self> {
        use rusqlite::OpenFlags;
        let path = &opts.path;
        if !path.is_file() {
            return Err(StorageError::Internal(format!(
                "no SQLite database at {}: check --sqlite-path (export never creates one)",
                path.display()
            )));
        }
        let uri = |params: &str| {
            let mut u = String::from("file:");
            for b in path.to_string_lossy().bytes() {
                match b {
                    b'?' | b'#' | b'%' => u.push_str(&format!("%{b:02X}")),
                    _ => u.push(char::from(b)),
                }
            }
            format!("{u}?{params}")
        };
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let busy = opts.busy_timeout;
        let open = move |params: &str| -> rusqlite::Result<Connection> {
            let c = Connection::open_with_flags(uri(params), flags)?;
            c.busy_timeout(busy)?;
            // Fails here, not at open, when the -shm file cannot be created.
            c.query_row("PRAGMA user_version", [], |r| r.get::<_, u32>(0))?;
            Ok(c)
        };
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let wal_present = std::fs::metadata(PathBuf::from(wal)).is_ok_and(|m| m.len() > 0);
        let (writer, params) = match open("mode=ro") {
            Ok(c) => (c, "mode=ro"),
            Err(e) if wal_present => return Err(open_error(path, e)),
            Err(_) => (open("immutable=1").map_err(|e| open_error(path, e))?, "immutable=1"),
        };
        let version: usize = writer
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(internal)?;
        if version != MIGRATIONS.len() {
            return Err(StorageError::Internal(format!(
                "database schema version {version} differs from this build's {}: export with the banter-registry version that serves this database (a newer one migrates it when `serve` starts)",
                MIGRATIONS.len()
            )));
        }
        let uri_for_pool = uri(params);
        let manager = SqliteConnectionManager::file(uri_for_pool)
            .with_flags(flags)
            .with_init(move |c| c.busy_timeout(busy));
        Self::with_readers(writer, manager, opts)
    }

    /// The storage around `writer`, with a pool of reader connections.
    fn with_readers(writer: Connection, manager: SqliteConnectionManager, opts: &SqliteOptions) -> StorageResult<Self> {
        let readers = r2d2::Pool::builder()
            .max_size(opts.readers.max(1))
            .connection_timeout(opts.busy_timeout)
            .build(manager)
            .map_err(|e| StorageError::Internal(format!("reader pool: {e}")))?;
        Ok(Self {
            writer: Arc::new(Mutex::new(writer)),
            readers,
        })
    }

    /// The schema version of an open database.
    pub fn schema_version(&self) -> StorageResult<u32> {
        let conn = self.writer.lock().map_err(|_| poisoned())?;
        conn.query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(internal)
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> StorageResult<T> {
        let pool = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let conn = pool
                .get()
                .map_err(|e| StorageError::Unavailable(format!("no reader connection: {e}")))?;
            f(&conn).map_err(classify)
        })
        .await
        .map_err(|e| StorageError::Internal(format!("storage task failed: {e}")))?
    }

    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> StorageResult<T> + Send + 'static,
    ) -> StorageResult<T> {
        let writer = self.writer.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = writer.lock().map_err(|_| poisoned())?;
            f(&mut conn)
        })
        .await
        .map_err(|e| StorageError::Internal(format!("storage task failed: {e}")))?
    }
}

fn migrate(conn: &mut Connection) -> StorageResult<()> {
    let current: usize = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(internal)?;
    if current > MIGRATIONS.len() {
        return Err(StorageError::Internal(format!(
            "database schema version {current} is newer than this build supports ({}); upgrade banter-registry",
            MIGRATIONS.len()
        )));
    }
    for (i, step) in MIGRATIONS.iter().enumerate().skip(current) {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(classify)?;
        match step {
            Migration::Sql(sql) => tx.execute_batch(sql),
            Migration::Code(f) => f(&tx),
        }
        .map_err(|e| StorageError::Internal(format!("migrating the database to schema {}: {e}", i + 1)))?;
        tx.pragma_update(None, "user_version", i + 1).map_err(internal)?;
        tx.commit().map_err(classify)?;
    }
    Ok(())
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn open_error(path: &Path, e: rusqlite::Error) -> StorageError {
    StorageError::Internal(format!("cannot open SQLite database {}: {e}", path.display()))
}

/// What a failed SQLite call means for the client: out of space (507), the
/// file unavailable (503: read-only volume, I/O error, busy), or a bug.
fn internal(e: rusqlite::Error) -> StorageError {
    use rusqlite::ErrorCode as C;
    match e.sqlite_error_code() {
        Some(C::DiskFull) => StorageError::Full(format!("SQLite: {e}")),
        Some(C::ReadOnly | C::SystemIoFailure | C::CannotOpen | C::NotADatabase) => {
            StorageError::Unavailable(format!("SQLite cannot write its file: {e}"))
        }
        Some(C::DatabaseBusy | C::DatabaseLocked) => StorageError::Unavailable(format!("SQLite is busy: {e}")),
        _ => StorageError::Internal(e.to_string()),
    }
}

fn poisoned() -> StorageError {
    StorageError::Internal("SQLite writer lock poisoned by an earlier panic".into())
}

/// Lock contention past the busy timeout is a transient condition (503), the rest is internal.
fn classify(e: rusqlite::Error) -> StorageError {
    internal(e)
}

fn parse_time(s: &str) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e)))
}

/// The columns [`version_row`] reads, in its order.
const VERSION_COLUMNS: &str = "v.version, v.digest, v.size, v.published_at, v.yanked";

/// A `versions` row selected as [`VERSION_COLUMNS`].
fn version_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<VersionRecord> {
    Ok(VersionRecord {
        version: r.get(0)?,
        digest: parse_digest(&r.get::<_, String>(1)?)?,
        size: r.get::<_, i64>(2)?.try_into().unwrap_or(0),
        published_at: parse_time(&r.get::<_, String>(3)?)?,
        yanked: r.get(4)?,
    })
}

/// The version stored under `key`.
fn find_version(c: &Connection, name: &str, key: &str) -> rusqlite::Result<Option<VersionRecord>> {
    c.prepare_cached(&format!(
        "SELECT {VERSION_COLUMNS} FROM versions v WHERE v.name = ?1 AND v.version_key = ?2"
    ))?
    .query_row(params![name, key], version_row)
    .optional()
}

/// The version an explicit tag points at.
fn find_tagged(c: &Connection, name: &str, tag: &str) -> rusqlite::Result<Option<VersionRecord>> {
    c.prepare_cached(&format!(
        "SELECT {VERSION_COLUMNS} FROM tags t JOIN versions v ON v.name = t.name AND v.version = t.version
         WHERE t.name = ?1 AND t.tag = ?2"
    ))?
    .query_row(params![name, tag], version_row)
    .optional()
}

/// What `latest` resolves to; the caller holds a read transaction, so both
/// probes see one snapshot.
fn find_latest(c: &Connection, name: &str) -> rusqlite::Result<Option<VersionRecord>> {
    let explicit = c
        .prepare_cached(&format!(
            "SELECT {VERSION_COLUMNS} FROM tags t JOIN versions v ON v.name = t.name AND v.version = t.version
             WHERE t.name = ?1 AND t.tag = 'latest' AND v.yanked = 0"
        ))?
        .query_row(params![name], version_row)
        .optional()?;
    if explicit.is_some() {
        return Ok(explicit);
    }
    // Walks `versions_in_order` down from the top, skipping pre-releases
    // (byte 63 of the key is not `~`) and yanked rows.
    c.prepare_cached(&format!(
        "SELECT {VERSION_COLUMNS} FROM versions v INDEXED BY versions_in_order
         WHERE v.name = ?1 AND substr(v.order_key, 63, 1) = '~' AND v.yanked = 0
         ORDER BY v.order_key DESC LIMIT 1"
    ))?
    .query_row(params![name], version_row)
    .optional()
}

/// A blob's bytes by `sha256:<hex>`, unverified.
fn find_blob(c: &Connection, digest: &str) -> rusqlite::Result<Option<Bytes>> {
    c.prepare_cached("SELECT content FROM blobs WHERE digest = ?1")?
        .query_row(params![digest], |r| r.get::<_, Vec<u8>>(0))
        .optional()
        .map(|o| o.map(Bytes::from))
}

fn parse_digest(s: &str) -> rusqlite::Result<Digest> {
    s.parse()
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e)))
}

#[async_trait]
impl Storage for SqliteStorage {
    fn kind(&self) -> BackendKind {
        BackendKind::Sqlite
    }

    async fn ping(&self) -> StorageResult<()> {
        self.read(|c| c.query_row("SELECT count(*) FROM packs LIMIT 1", [], |_| Ok(())))
            .await
    }

    async fn publish(&self, v: NewVersion) -> StorageResult<PublishOutcome> {
        self.write(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(classify)?;
            let key = version_key(&v.version);
            let existing: Option<(String, String)> = tx
                .query_row(
                    "SELECT version, digest FROM versions WHERE name = ?1 AND version_key = ?2",
                    params![v.name.as_str(), key],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(classify)?;
            if let Some((version, digest)) = existing {
                let digest = parse_digest(&digest).map_err(internal)?;
                let outcome = if version == v.version.to_string() && digest == v.digest {
                    // Same digest, so these bytes are the content; stored
                    // bytes that differ are corrupt and are replaced.
                    let repaired = tx
                        .execute(
                            "UPDATE blobs SET content = ?2 WHERE digest = ?1 AND content != ?2",
                            params![v.digest.to_string(), v.bytes.as_ref()],
                        )
                        .map_err(classify)?;
                    if repaired > 0 {
                        tracing::warn!(digest = %v.digest, "corrupt stored content replaced by a re-publish of the same bytes");
                        tx.commit().map_err(classify)?;
                    }
                    PublishOutcome::Identical
                } else {
                    PublishOutcome::Conflict {
                        existing_version: version,
                        existing_digest: digest,
                    }
                };
                return Ok(outcome);
            }
            let published = v.published_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            tx.execute(
                "INSERT OR IGNORE INTO blobs (digest, size, content) VALUES (?1, ?2, ?3)",
                params![v.digest.to_string(), v.bytes.len() as i64, v.bytes.as_ref()],
            )
            .map_err(classify)?;
            tx.execute(
                "INSERT OR IGNORE INTO packs (name, created_at) VALUES (?1, ?2)",
                params![v.name.as_str(), published],
            )
            .map_err(classify)?;
            tx.execute(
                "INSERT INTO versions (name, version, version_key, digest, size, published_at, yanked, order_key)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    v.name.as_str(),
                    v.version.to_string(),
                    key,
                    v.digest.to_string(),
                    v.bytes.len() as i64,
                    published,
                    v.yanked,
                    super::order_key(&v.version)
                ],
            )
            .map_err(classify)?;
            tx.commit().map_err(classify)?;
            Ok(PublishOutcome::Created)
        })
        .await
    }

    async fn pack(&self, name: &PackName) -> StorageResult<Option<PackRecord>> {
        let name = name.clone();
        self.read(move |conn| {
            // One read transaction: versions and tags come from the same snapshot.
            let c = conn.unchecked_transaction()?;
            let mut stmt = c.prepare_cached(&format!("SELECT {VERSION_COLUMNS} FROM versions v WHERE v.name = ?1"))?;
            let mut versions = stmt
                .query_map(params![name.as_str()], version_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            if versions.is_empty() {
                return Ok(None);
            }
            sort_versions(&mut versions);
            let mut stmt = c.prepare_cached("SELECT tag, version FROM tags WHERE name = ?1")?;
            let tags = stmt
                .query_map(params![name.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            // Dropping the read-only transaction ends it; there is nothing to commit.
            Ok(Some(PackRecord { name, versions, tags }))
        })
        .await
    }

    async fn versions_page(
        &self,
        name: &PackName,
        after: Option<&semver::Version>,
        limit: usize,
    ) -> StorageResult<VersionsPage> {
        let name = name.clone();
        // Every key is longer than the empty string.
        let after = after.map(super::order_key).unwrap_or_default();
        let n = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |conn| {
            let c = conn.unchecked_transaction()?;
            let versions = c
                .prepare_cached(&format!(
                    "SELECT {VERSION_COLUMNS} FROM versions v
                     WHERE v.name = ?1 AND v.order_key > ?2 ORDER BY v.order_key LIMIT ?3"
                ))?
                .query_map(params![name.as_str(), after, n], version_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let tags = c
                .prepare_cached(
                    "SELECT t.tag, t.version FROM tags t WHERE t.name = ?1 AND t.version IN
                     (SELECT v.version FROM versions v WHERE v.name = ?1 AND v.order_key > ?2
                      ORDER BY v.order_key LIMIT ?3)",
                )?
                .query_map(params![name.as_str(), after, n], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            Ok(VersionsPage { versions, tags })
        })
        .await
    }

    async fn exists(&self, name: &PackName) -> StorageResult<bool> {
        let name = name.clone();
        self.read(move |c| {
            c.prepare_cached("SELECT EXISTS(SELECT 1 FROM packs WHERE name = ?1)")?
                .query_row(params![name.as_str()], |r| r.get(0))
        })
        .await
    }

    async fn version(&self, name: &PackName, key: &str) -> StorageResult<Option<VersionRecord>> {
        let (name, key) = (name.clone(), key.to_owned());
        self.read(move |c| find_version(c, name.as_str(), &key)).await
    }

    async fn tagged(&self, name: &PackName, tag: &str) -> StorageResult<Option<VersionRecord>> {
        let (name, tag) = (name.clone(), tag.to_owned());
        self.read(move |c| find_tagged(c, name.as_str(), &tag)).await
    }

    async fn latest(&self, name: &PackName) -> StorageResult<Option<VersionRecord>> {
        let name = name.clone();
        self.read(move |conn| {
            // One snapshot for both probes, as `pack` reads one.
            let c = conn.unchecked_transaction()?;
            find_latest(&c, name.as_str())
        })
        .await
    }

    async fn lookup_with_content(
        &self,
        name: &PackName,
        lookup: Lookup<'_>,
        cached: ContentCached,
    ) -> StorageResult<Option<(VersionRecord, Option<Bytes>)>> {
        let name = name.clone();
        let lookup = lookup.to_owned();
        // One blocking-pool hop and one snapshot for the record and its bytes.
        self.read(move |conn| {
            let c = conn.unchecked_transaction()?;
            let found = match &lookup {
                OwnedLookup::Version(key) => find_version(&c, name.as_str(), key)?,
                OwnedLookup::Tag(tag) => find_tagged(&c, name.as_str(), tag)?,
                OwnedLookup::Latest => find_latest(&c, name.as_str())?,
            };
            let Some(record) = found else { return Ok(None) };
            if cached(&record.digest) {
                return Ok(Some((record, None)));
            }
            let bytes = find_blob(&c, &record.digest.to_string())?;
            Ok(Some((record, bytes)))
        })
        .await
    }

    async fn blob(&self, digest: &Digest) -> StorageResult<Option<Bytes>> {
        let key = digest.to_string();
        self.read(move |c| find_blob(c, &key)).await
    }

    async fn scan_blobs(&self, cursor: &str, limit: usize) -> StorageResult<(Vec<Digest>, Option<String>)> {
        let after = cursor.to_owned();
        let n = i64::try_from(limit).unwrap_or(i64::MAX);
        let digests: Vec<Digest> = self
            .read(move |c| {
                c.prepare_cached("SELECT digest FROM blobs WHERE digest > ?1 ORDER BY digest LIMIT ?2")?
                    .query_map(params![after, n], |r| parse_digest(&r.get::<_, String>(0)?))?
                    .collect()
            })
            .await?;
        let next = (digests.len() == limit)
            .then(|| digests.last().map(ToString::to_string))
            .flatten();
        Ok((digests, next))
    }

    async fn list(&self, prefix: &str, after: Option<&str>, limit: usize) -> StorageResult<Vec<String>> {
        let prefix = prefix.to_owned();
        let after = after.unwrap_or("").to_owned();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |c| {
            c.prepare_cached(
                "SELECT name FROM packs WHERE substr(name, 1, length(?1)) = ?1 AND name > ?2 ORDER BY name LIMIT ?3",
            )?
            .query_map(params![prefix, after, limit], |r| r.get(0))?
            .collect()
        })
        .await
    }

    async fn set_tag(&self, name: &PackName, tag: &str, version: &str) -> StorageResult<()> {
        let (name, tag, version) = (name.clone(), tag.to_owned(), version.to_owned());
        self.write(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(classify)?;
            let exists: bool = tx
                .query_row(
                    "SELECT EXISTS(SELECT 1 FROM versions WHERE name = ?1 AND version = ?2)",
                    params![name.as_str(), version],
                    |r| r.get(0),
                )
                .map_err(classify)?;
            if !exists {
                return Err(StorageError::VersionNotFound);
            }
            tx.execute(
                "INSERT INTO tags (name, tag, version, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (name, tag) DO UPDATE SET version = excluded.version, updated_at = excluded.updated_at",
                params![name.as_str(), tag, version, now()],
            )
            .map_err(classify)?;
            tx.commit().map_err(classify)
        })
        .await
    }

    async fn set_yanked(&self, name: &PackName, version: &str, yanked: bool) -> StorageResult<()> {
        let (name, version) = (name.clone(), version.to_owned());
        self.write(move |conn| {
            let changed = conn
                .execute(
                    "UPDATE versions SET yanked = ?3 WHERE name = ?1 AND version = ?2",
                    params![name.as_str(), version, yanked],
                )
                .map_err(classify)?;
            if changed == 0 {
                return Err(StorageError::VersionNotFound);
            }
            Ok(())
        })
        .await
    }

    async fn stats(&self) -> StorageResult<Stats> {
        self.read(|c| {
            c.query_row("SELECT packs, versions, bytes FROM counters WHERE id = 1", [], |r| {
                Ok(Stats {
                    packs: r.get::<_, i64>(0)?.try_into().unwrap_or(0),
                    versions: r.get::<_, i64>(1)?.try_into().unwrap_or(0),
                    bytes: r.get::<_, i64>(2)?.try_into().unwrap_or(0),
                })
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_is_wal_with_full_sync() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = SqliteStorage::open(&SqliteOptions::new(dir.path().join("r.db"))).expect("open");
        let conn = s.writer.lock().expect("writer");
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).expect("mode");
        let sync: i64 = conn.query_row("PRAGMA synchronous", [], |r| r.get(0)).expect("sync");
        assert_eq!(mode, "wal");
        assert_eq!(sync, 2, "synchronous=FULL: an acknowledged commit is on disk");
    }

    #[test]
    fn migrations_set_the_schema_version_and_refuse_newer_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.db");
        let s = SqliteStorage::open(&SqliteOptions::new(&path)).expect("open");
        assert_eq!(s.schema_version().expect("version"), MIGRATIONS.len() as u32);
        drop(s);
        // Reopening is a no-op migration.
        let s = SqliteStorage::open(&SqliteOptions::new(&path)).expect("reopen");
        drop(s);
        let c = Connection::open(&path).expect("raw");
        c.pragma_update(None, "user_version", 99).expect("bump");
        drop(c);
        let err = SqliteStorage::open(&SqliteOptions::new(&path))
            .err()
            .expect("must refuse");
        assert!(err.to_string().contains("newer than this build"), "{err}");
    }

    #[test]
    fn counters_start_from_existing_rows_and_follow_every_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.db");
        // A database of schema 1 with data, as an earlier version left it.
        let mut c = Connection::open(&path).expect("raw");
        let Migration::Sql(schema1) = MIGRATIONS[0] else {
            panic!("schema 1 is SQL")
        };
        c.execute_batch(schema1).expect("schema 1");
        c.pragma_update(None, "user_version", 1).expect("v1");
        c.execute_batch(
            "INSERT INTO blobs VALUES ('a', 10, x'00'), ('b', 32, x'00');
             INSERT INTO packs VALUES ('p', 't');
             INSERT INTO versions VALUES ('p', '1.0.0', 'k1', 'a', 10, 't', 0),
                                         ('p', '1.0.1', 'k2', 'b', 32, 't', 0);",
        )
        .expect("rows");
        migrate(&mut c).expect("migrate to the latest schema");
        let counters = |c: &Connection| -> (i64, i64, i64) {
            c.query_row("SELECT packs, versions, bytes FROM counters", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .expect("counters")
        };
        assert_eq!(counters(&c), (1, 2, 42), "initialised from the rows");
        c.execute_batch(
            "INSERT INTO blobs VALUES ('c', 8, x'00');
             INSERT OR IGNORE INTO blobs VALUES ('a', 10, x'00');
             INSERT INTO packs VALUES ('q', 't');
             INSERT INTO versions (name, version, version_key, digest, size, published_at, yanked)
                VALUES ('q', '1.0.0', 'k1', 'c', 8, 't', 0);",
        )
        .expect("more rows");
        assert_eq!(counters(&c), (2, 3, 50), "an ignored duplicate blob counts nothing");
        c.execute_batch("DELETE FROM versions WHERE name = 'q'; DELETE FROM packs WHERE name = 'q'; DELETE FROM blobs WHERE digest = 'c';")
            .expect("deletes");
        assert_eq!(counters(&c), (1, 2, 42));
        let scanned: (i64, i64, i64) = c
            .query_row(
                "SELECT (SELECT count(*) FROM packs), (SELECT count(*) FROM versions), (SELECT sum(size) FROM blobs)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .expect("scan");
        assert_eq!(counters(&c), scanned);
    }

    #[tokio::test]
    async fn a_schema_2_database_gets_order_keys_and_serves_latest_from_the_index() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.db");
        // Rows as the previous release wrote them: schema 2, no release_key.
        let c = Connection::open(&path).expect("raw");
        for (i, step) in MIGRATIONS[..2].iter().enumerate() {
            let Migration::Sql(sql) = step else {
                panic!("schemas 1 and 2 are SQL")
            };
            c.execute_batch(sql).expect("schema");
            c.pragma_update(None, "user_version", i + 1).expect("version");
        }
        let d = Digest::of(b"x").to_string();
        c.execute("INSERT INTO blobs VALUES (?1, 1, x'78')", params![d])
            .expect("blob");
        c.execute("INSERT INTO packs VALUES ('p', 't')", []).expect("pack");
        for (v, k, yanked) in [
            ("1.0.0", "1.0.0", 0),
            ("1.10.0+b.1", "1.10.0", 0),
            ("9.0.0", "9.0.0", 1),
            ("10.0.0-rc.1", "10.0.0-rc.1", 0),
        ] {
            c.execute(
                "INSERT INTO versions VALUES ('p', ?1, ?2, ?3, 1, '2026-01-01T00:00:00.000Z', ?4)",
                params![v, k, d, yanked],
            )
            .expect("version");
        }
        drop(c);
        let s = SqliteStorage::open(&SqliteOptions::new(&path)).expect("migrate");
        assert_eq!(s.schema_version().expect("version"), 3);
        let keys: Vec<Option<String>> = {
            let conn = s.writer.lock().expect("writer");
            let mut stmt = conn
                .prepare("SELECT order_key FROM versions ORDER BY version_key")
                .expect("select");
            stmt.query_map([], |r| r.get(0))
                .expect("rows")
                .collect::<rusqlite::Result<_>>()
                .expect("keys")
        };
        let key = |v: &str| Some(super::super::order_key(&semver::Version::parse(v).expect("version")));
        assert_eq!(
            keys,
            vec![key("1.0.0"), key("1.10.0+b.1"), key("10.0.0-rc.1"), key("9.0.0")],
            "by version_key: 1.0.0, 1.10.0, 10.0.0-rc.1, 9.0.0"
        );
        let name = PackName::parse("p").expect("name");
        let latest = s.latest(&name).await.expect("latest").expect("some");
        assert_eq!(
            latest.version, "1.10.0+b.1",
            "9.0.0 is yanked, 10.0.0-rc.1 a pre-release"
        );
        // A page walks the index rather than scanning and sorting the pack's rows.
        let plan: String = {
            let conn = s.writer.lock().expect("writer");
            conn.query_row(
                "EXPLAIN QUERY PLAN SELECT version FROM versions v
                 WHERE v.name = 'p' AND v.order_key > '' ORDER BY v.order_key LIMIT 10",
                [],
                |r| r.get(3),
            )
            .expect("plan")
        };
        assert!(plan.contains("versions_in_order"), "{plan}");
    }
}
