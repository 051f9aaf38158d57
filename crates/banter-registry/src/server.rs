//! `banter-registry serve`: open storage, load tokens, seed, listen, shut down gracefully.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, bail};
use tokio::net::TcpListener;

use crate::api::{self, AppParts, AppState, HttpLimits};
use crate::config::ServeArgs;
use crate::listener;
use crate::metrics::Metrics;
use crate::registry::{Registry, RegistryError};
use crate::storage::StorageError;
use crate::tokens::{self, LiveTokens, Tokens};

/// Runs the registry until SIGTERM or SIGINT.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    // Claim the port, then the database, before anything touches the data:
    // a second start fails here and leaves the first one's data alone.
    let listener = TcpListener::bind(args.listen).await.map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::AddrInUse {
            " (another banter-registry, or another server, is listening there; stop it or pass --listen HOST:PORT)"
        } else {
            ""
        };
        anyhow::anyhow!("binding {}: {e}{hint}", args.listen)
    })?;
    let mut signals = ShutdownSignals::install()?;
    let _database_lock = match args.storage.backend {
        crate::storage::BackendKind::Sqlite => Some(lock_database(&args.storage.sqlite_path)?),
        crate::storage::BackendKind::Redis => None,
    };
    let metrics = Metrics::new();
    let storage = args
        .storage
        .open(metrics.clone())
        .await
        .with_context(|| format!("opening the {} backend", args.storage.backend.as_str()))?;
    let registry = Registry::new(storage, metrics, args.limits.limits())
        .with_blob_cache(args.blob_cache_bytes)
        .with_resolve_ttl(args.resolve_ttl);
    tokio::spawn(crate::scrub::run(
        registry.clone(),
        crate::scrub::Pace {
            interval: args.scrub_interval,
            pause: args.scrub_pause,
        },
    ));

    let token_file = match &args.token_file {
        Some(p) => p.clone(),
        None => {
            let p = args.storage.default_token_file();
            if tokens::ensure_generated(&p)? {
                tracing::info!(path = %p.display(), "generated a publish token (mode 0600); pass --token-file to use your own");
            } else {
                tracing::info!(path = %p.display(), "using the publish token generated earlier");
            }
            p
        }
    };
    let tokens = Arc::new(LiveTokens::new(Tokens::from_file(&token_file)?));
    tracing::info!(file = %token_file.display(), "publish tokens loaded: {tokens:?}");
    tokio::spawn(tokens::watch(
        token_file.clone(),
        tokens.clone(),
        registry.metrics().clone(),
        tokens::RELOAD_INTERVAL,
    ));

    if let Some(dir) = &args.seed {
        match seed(&registry, dir).await {
            Err(e)
                if e.chain().any(|c| {
                    matches!(
                        c.downcast_ref(),
                        Some(RegistryError::Storage(StorageError::Unavailable(_)))
                    )
                }) =>
            {
                tracing::warn!(error = %format!("{e:#}"), "seeding skipped: the backend is not reachable yet");
            }
            other => other?,
        }
    }
    // Fill the gauges before the first scrape; a slow backend must not block start-up.
    if let Err(e) = registry.ready().await {
        tracing::warn!(error = %e, "the storage backend is not reachable yet; serving and reporting not ready");
    } else if let Err(e) = registry.stats().await {
        tracing::warn!(error = %e, "could not read stats at start-up");
    }

    let draining = Arc::new(AtomicBool::new(false));
    let addr = listener.local_addr()?;
    let app = api::router(
        AppState::new(AppParts {
            registry,
            tokens,
            draining: draining.clone(),
        }),
        HttpLimits {
            request_timeout: args.request_timeout,
            max_concurrent_requests: args.max_concurrent_requests,
        },
    );
    tracing::info!(%addr, backend = args.storage.backend.as_str(), "listening");
    // Tests and scripts read the real address (useful with port 0) from stdout.
    println!("listening on http://{addr}");

    let fds = listener::fd_limit();
    let edge = listener::EdgeLimits {
        header_read_timeout: args.header_read_timeout,
        max_header_bytes: args.max_header_bytes as usize,
        max_connections: listener::connection_cap(args.max_connections as usize, fds),
    };
    tracing::info!(max_connections = edge.max_connections, fd_limit = ?fds, "connection limits");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let drain = args.shutdown_timeout;
    let server = tokio::spawn(listener::serve(
        listener,
        app,
        edge,
        async move {
            let _ = stop_rx.await;
        },
        drain,
    ));
    let signal = signals.next().await;
    // Readiness fails at once; the listener stays open for the delay so
    // whoever still routes here is answered, not refused.
    draining.store(true, Ordering::Release);
    if !args.shutdown_delay.is_zero() {
        tracing::info!(signal, delay = ?args.shutdown_delay, "shutting down: readiness fails, still serving for the delay");
        // A second signal cuts the delay short.
        tokio::select! {
            () = tokio::time::sleep(args.shutdown_delay) => {}
            second = signals.next() => {
                tracing::info!(signal = second, "second signal: not waiting for the rest of the delay");
            }
        }
    }
    tracing::info!(
        signal,
        "shutting down: closing idle connections, finishing in-flight requests"
    );
    let _ = stop_tx.send(());
    match server.await {
        Ok(true) => tracing::info!("stopped cleanly"),
        Ok(false) => tracing::warn!(
            timeout = ?args.shutdown_timeout,
            "in-flight requests did not finish in time; exiting (unacknowledged requests are not stored)"
        ),
        Err(e) => bail!("server task failed: {e}"),
    }
    Ok(())
}

/// An exclusive lock on `<database>.lock`, held while the server runs, so a
/// second `serve` of the same SQLite file refuses to start (SQLite itself
/// would let both write). The lock file holds the holder's PID.
fn lock_database(db: &Path) -> anyhow::Result<std::fs::File> {
    use std::io::{Read, Seek, Write};
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    let path = std::path::PathBuf::from(name);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("opening the lock file {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            let who = if holder.is_empty() {
                String::new()
            } else {
                format!(" (pid {holder})")
            };
            bail!(
                "the database {} is in use by another banter-registry{who}; stop it, or pass another --sqlite-path",
                db.display()
            );
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("locking {}", path.display()));
        }
    }
    file.set_len(0)?;
    file.rewind()?;
    write!(file, "{}", std::process::id())?;
    Ok(file)
}

/// SIGTERM and SIGINT, caught from the moment this exists: installed
/// before the listener is announced, so a signal sent as soon as the
/// registry says it listens starts a graceful shutdown instead of killing it.
struct ShutdownSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
        })
    }

    /// The next signal's name.
    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// Publishes every `*.json` in `dir`, in name order. Already-present identical
/// versions are fine; anything else is an error, since seed packs are ours.
pub async fn seed(registry: &Registry, dir: &Path) -> anyhow::Result<()> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading seed directory {}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    for file in files {
        let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
        let (name, version) =
            crate::client::name_and_version(&bytes).with_context(|| format!("seed pack {}", file.display()))?;
        match registry.publish(&name, &version, bytes.into(), None).await {
            Ok(p) => tracing::info!(pack = %name, %version, created = p.created, "seeded"),
            Err(RegistryError::VersionExists { .. }) => {
                tracing::warn!(pack = %name, %version, "seed skipped: a different {name}@{version} is already stored")
            }
            Err(e) => return Err(e).with_context(|| format!("seeding {}", file.display())),
        }
    }
    Ok(())
}
