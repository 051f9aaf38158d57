//! Configuration shared by `serve`, `export` and `import`: flags, each also an
//! environment variable `BANTER_REGISTRY_*`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use banter_pack::Limits;
use clap::{Args, ValueEnum};

use crate::metrics::Metrics;
use crate::storage::redis::{RedisOptions, RedisStorage};
use crate::storage::sqlite::{SqliteOptions, SqliteStorage};
use crate::storage::{BackendKind, Instrumented, Storage, StorageError};

/// Where packs are stored.
#[derive(Debug, Clone, Args)]
pub struct StorageArgs {
    /// Storage backend: embedded SQLite (one replica) or shared Redis (many replicas).
    #[arg(long, env = banter_contract::env::BACKEND, value_enum, default_value_t = BackendKind::Sqlite)]
    pub backend: BackendKind,

    /// SQLite database file (created if missing), for --backend sqlite.
    #[arg(long, env = banter_contract::env::SQLITE_PATH, default_value = "data/registry.db")]
    pub sqlite_path: PathBuf,

    /// How long SQLite waits for a lock before answering 503 (e.g. 5s, 500ms).
    #[arg(long, env = "BANTER_REGISTRY_SQLITE_BUSY_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub sqlite_busy_timeout: Duration,

    /// Largest size in bytes the SQLite database may grow to (a quota); a
    /// publish past it answers 507 STORAGE_FULL, as a full disk does. Default: no cap.
    #[arg(long, env = "BANTER_REGISTRY_SQLITE_MAX_BYTES", value_parser = clap::value_parser!(u64).range(4096..))]
    pub sqlite_max_bytes: Option<u64>,

    /// Redis URL for --backend redis: redis://[user:password@]host:port/db, or rediss:// for TLS.
    #[arg(
        long,
        env = banter_contract::env::REDIS_URL,
        default_value = "redis://127.0.0.1:6379/0",
        hide_env_values = true
    )]
    pub redis_url: String,

    /// Prefix of every Redis key, so several registries can share one Redis.
    #[arg(long, env = banter_contract::env::REDIS_KEY_PREFIX, default_value = "banter:")]
    pub redis_key_prefix: String,

    /// PEM file of CA certificates to trust for rediss:// (default: the public web roots).
    #[arg(long, env = banter_contract::env::REDIS_CA_FILE)]
    pub redis_ca_file: Option<PathBuf>,

    /// File holding the Redis password (its first line; surrounding
    /// whitespace dropped). Overrides a password in --redis-url.
    #[arg(long, env = banter_contract::env::REDIS_PASSWORD_FILE)]
    pub redis_password_file: Option<PathBuf>,

    /// Bound on connecting to Redis (e.g. 2s).
    #[arg(long, env = "BANTER_REGISTRY_REDIS_CONNECT_TIMEOUT", default_value = "2s", value_parser = humantime::parse_duration)]
    pub redis_connect_timeout: Duration,

    /// Bound on one Redis command; past it the request answers 503 (e.g. 2s).
    #[arg(long, env = "BANTER_REGISTRY_REDIS_COMMAND_TIMEOUT", default_value = "2s", value_parser = humantime::parse_duration)]
    pub redis_command_timeout: Duration,
}

/// Size limits for packs.
#[derive(Debug, Clone, Args)]
pub struct LimitArgs {
    /// Largest pack document accepted, in bytes (larger bodies get 413).
    #[arg(long, env = "BANTER_REGISTRY_MAX_PACK_BYTES", default_value_t = Limits::default().max_pack_bytes)]
    pub max_pack_bytes: usize,

    /// Most lines one pack may hold.
    #[arg(long, env = "BANTER_REGISTRY_MAX_LINES", default_value_t = Limits::default().max_lines)]
    pub max_lines: usize,

    /// Most characters one line's text may hold.
    #[arg(long, env = "BANTER_REGISTRY_MAX_LINE_CHARS", default_value_t = Limits::default().max_line_chars)]
    pub max_line_chars: usize,
}

impl LimitArgs {
    /// The default limits.
    pub fn defaults() -> Self {
        let l = Limits::default();
        Self {
            max_pack_bytes: l.max_pack_bytes,
            max_lines: l.max_lines,
            max_line_chars: l.max_line_chars,
        }
    }

    /// As pack limits.
    pub fn limits(&self) -> Limits {
        Limits {
            max_pack_bytes: self.max_pack_bytes,
            max_lines: self.max_lines,
            max_line_chars: self.max_line_chars,
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `serve` flags.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port, printed on stdout).
    #[arg(long, env = banter_contract::env::LISTEN, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    #[command(flatten)]
    pub storage: StorageArgs,

    #[command(flatten)]
    pub limits: LimitArgs,

    /// File of publish tokens, one per line ('#' comments). Without it a token is
    /// generated into a 0600 file `publish-token` beside the SQLite database
    /// (with Redis: ./data/publish-token) and reused on later starts.
    #[arg(long, env = banter_contract::env::TOKEN_FILE)]
    pub token_file: Option<PathBuf>,

    /// Deadline for one whole request, body included (e.g. 30s).
    #[arg(long, env = "BANTER_REGISTRY_REQUEST_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,

    /// Requests served at once; beyond it the registry answers 429 with Retry-After.
    #[arg(long, env = "BANTER_REGISTRY_MAX_CONCURRENT_REQUESTS", default_value_t = 1024)]
    pub max_concurrent_requests: usize,

    /// Time a client has to send a request's headers; also the longest an
    /// idle keep-alive connection stays open (e.g. 10s).
    #[arg(long, env = "BANTER_REGISTRY_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_read_timeout: Duration,

    /// Largest request head (start line and headers) in bytes; larger gets 431.
    #[arg(long, env = "BANTER_REGISTRY_MAX_HEADER_BYTES", default_value_t = 16 * 1024, value_parser = clap::value_parser!(u32).range(1024..))]
    pub max_header_bytes: u32,

    /// Connections open at once (lowered to the file-descriptor limit minus
    /// 64); further ones are closed as they are accepted.
    #[arg(long, env = "BANTER_REGISTRY_MAX_CONNECTIONS", default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,

    /// After SIGTERM/SIGINT, how long in-flight requests may take to finish.
    #[arg(long, env = banter_contract::env::SHUTDOWN_TIMEOUT, default_value = "25s", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Duration,

    /// After SIGTERM/SIGINT, how long to keep accepting connections while
    /// /readyz already answers 503, so load balancers stop sending traffic
    /// before the listener closes (e.g. 5s; in Kubernetes the pod's preStop
    /// hook gives endpoints that time before the signal).
    #[arg(long, env = banter_contract::env::SHUTDOWN_DELAY, default_value = "0s", value_parser = humantime::parse_duration)]
    pub shutdown_delay: Duration,

    /// How long a resolved reference (version, tag, `latest`) is reused
    /// without reading the pack's index: the longest a tag move, yank or
    /// publish made through another replica stays unseen here (0s: never
    /// reused). This replica's own writes are seen at once.
    #[arg(long, env = "BANTER_REGISTRY_RESOLVE_TTL", default_value = "1s", value_parser = humantime::parse_duration)]
    pub resolve_ttl: Duration,

    /// How often the background scrub reads every stored blob and hashes it
    /// again (reads serve verified content without hashing); the first pass
    /// starts one interval after start-up. 0s turns it off.
    #[arg(long, env = "BANTER_REGISTRY_SCRUB_INTERVAL", default_value = "24h", value_parser = humantime::parse_duration)]
    pub scrub_interval: Duration,

    /// Rest between pages of 64 blobs during a scrub pass, bounding its
    /// share of CPU and storage I/O.
    #[arg(long, env = "BANTER_REGISTRY_SCRUB_PAUSE", default_value = "50ms", value_parser = humantime::parse_duration)]
    pub scrub_pause: Duration,

    /// Bytes of verified pack content kept in memory for reads (0 turns the
    /// cache off). Content is immutable, so entries never go stale.
    #[arg(long, env = "BANTER_REGISTRY_BLOB_CACHE_BYTES", default_value_t = crate::blob_cache::DEFAULT_BYTES)]
    pub blob_cache_bytes: u64,

    /// Publish every *.json pack in this directory at start-up (identical versions are skipped).
    #[arg(long, env = "BANTER_REGISTRY_SEED")]
    pub seed: Option<PathBuf>,
}

impl StorageArgs {
    /// Where a generated token file goes: beside the database.
    pub fn default_token_file(&self) -> PathBuf {
        let dir = match self.backend {
            BackendKind::Sqlite => self
                .sqlite_path
                .parent()
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(".")),
            BackendKind::Redis => PathBuf::from("data"),
        };
        dir.join("publish-token")
    }

    /// Opens the configured backend, instrumented.
    pub async fn open(&self, metrics: Metrics) -> Result<Arc<dyn Storage>, StorageError> {
        self.open_with(metrics, false).await
    }

    /// Opens the backend for reading only (`export`): an SQLite database
    /// must exist and is neither created, migrated nor written.
    pub async fn open_read_only(&self, metrics: Metrics) -> Result<Arc<dyn Storage>, StorageError> {
        self.open_with(metrics, true).await
    }

    async fn open_with(&self, metrics: Metrics, read_only: bool) -> Result<Arc<dyn Storage>, StorageError> {
        match self.backend {
            BackendKind::Sqlite => {
                let mut opts = SqliteOptions::new(&self.sqlite_path);
                opts.busy_timeout = self.sqlite_busy_timeout;
                opts.max_bytes = self.sqlite_max_bytes;
                let storage = tokio::task::spawn_blocking(move || {
                    if read_only {
                        SqliteStorage::open_read_only(&opts)
                    } else {
                        SqliteStorage::open(&opts)
                    }
                })
                .await
                .map_err(|e| StorageError::Internal(e.to_string()))??;
                metrics.set_backend(BackendKind::Sqlite.as_str());
                Ok(Arc::new(Instrumented::new(storage, metrics)))
            }
            BackendKind::Redis => {
                let ca_pem = match &self.redis_ca_file {
                    Some(p) => Some(std::fs::read(p).map_err(|e| {
                        StorageError::Internal(format!("reading --redis-ca-file {}: {e}", p.display()))
                    })?),
                    None => None,
                };
                let password = match &self.redis_password_file {
                    Some(p) => {
                        let text = std::fs::read_to_string(p).map_err(|e| {
                            StorageError::Internal(format!("reading --redis-password-file {}: {e}", p.display()))
                        })?;
                        let first = text.lines().next().unwrap_or_default().trim().to_string();
                        if first.is_empty() {
                            return Err(StorageError::Internal(format!(
                                "--redis-password-file {} is empty",
                                p.display()
                            )));
                        }
                        Some(first)
                    }
                    None => None,
                };
                let storage = RedisStorage::new(RedisOptions {
                    ca_pem,
                    password,
                    url: self.redis_url.clone(),
                    key_prefix: self.redis_key_prefix.clone(),
                    connect_timeout: self.redis_connect_timeout,
                    command_timeout: self.redis_command_timeout,
                })?
                .with_metrics(metrics.clone());
                metrics.set_backend(BackendKind::Redis.as_str());
                Ok(Arc::new(Instrumented::new(storage, metrics)))
            }
        }
    }
}
