//! The `banter-registry` command line.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use crate::client::{Client, ClientArgs, split_ref};
use crate::config::{LimitArgs, LogFormat, ServeArgs, StorageArgs};
use crate::metrics::Metrics;
use crate::registry::Registry;

/// The banter-pack registry: serve packs over HTTP, or talk to a registry.
#[derive(Debug, Parser)]
#[command(name = "banter-registry", version, about, long_about = None, after_help = "\
Examples:
  banter-registry serve                                   # SQLite in ./data, http://127.0.0.1:8080
  banter-registry publish pack.json --token-file data/publish-token
  banter-registry get classic-duo@latest
  banter-registry ls
  banter-registry export -o backup.tar.gz && banter-registry import backup.tar.gz --backend redis")]
pub struct Cli {
    /// Log format.
    #[arg(long, env = banter_contract::env::LOG_FORMAT, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    /// Log filter (tracing env-filter syntax), e.g. info or banter_registry=debug.
    #[arg(long, env = "BANTER_REGISTRY_LOG", default_value = "info", global = true)]
    pub log: String,

    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the registry server.
    Serve(Box<ServeArgs>),
    /// Publish pack files (name and version are read from each file).
    Publish {
        /// Pack JSON files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Download a pack: NAME[@VERSION|@TAG] (default tag: latest).
    Get {
        /// NAME or NAME@REF.
        pack: String,
        /// Write to this file instead of standard output.
        #[arg(short, long)]
        output: Option<PathBuf>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List packs, or with a NAME, that pack's versions and tags.
    Ls {
        /// A pack name to show its versions.
        name: Option<String>,
        /// Only packs whose name starts with this.
        #[arg(long, default_value = "", conflicts_with = "name")]
        prefix: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Point a tag at a version: tag NAME TAG VERSION.
    Tag {
        /// Pack name.
        name: String,
        /// Tag (not a version), e.g. stable or latest.
        tag: String,
        /// Version the tag points at.
        version: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Yank NAME@VERSION (or un-yank with --undo).
    Yank {
        /// NAME@VERSION.
        pack: String,
        /// Un-yank instead.
        #[arg(long)]
        undo: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Write every pack, version, tag and yank state to an archive (reads the storage directly).
    Export {
        /// Archive file to write (.tar.gz).
        #[arg(short, long)]
        output: PathBuf,
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// Restore an archive into the storage (identical versions are skipped; conflicts fail).
    Import {
        /// Archive file written by export.
        input: PathBuf,
        #[command(flatten)]
        storage: StorageArgs,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Wait for a duration, then exit 0: the registry pod's preStop hook
    /// (the container image has no shell and no sleep).
    Sleep {
        /// How long, e.g. 10s.
        #[arg(value_parser = humantime::parse_duration)]
        duration: std::time::Duration,
    },
}

/// Runs the parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => crate::server::serve(*args).await,
        Command::Sleep { duration } => {
            tokio::time::sleep(duration).await;
            Ok(())
        }
        Command::Publish { files, client } => {
            let client = Client::new(&client)?;
            // Every file is tried and reported; one failure does not hide the rest.
            let mut failed = Vec::new();
            for file in &files {
                match client.publish(file).await {
                    Ok(r) => {
                        let what = if r.created {
                            "published"
                        } else {
                            "already published (identical)"
                        };
                        println!("{what} {}@{} {}", r.name, r.version, r.digest);
                    }
                    Err(e) => {
                        eprintln!("error: publishing {}: {e:#}", file.display());
                        failed.push(file.display().to_string());
                    }
                }
            }
            if !failed.is_empty() {
                bail!(
                    "{} of {} files failed: {}",
                    failed.len(),
                    files.len(),
                    failed.join(", ")
                );
            }
            Ok(())
        }
        Command::Get { pack, output, client } => {
            let (name, reference) = split_ref(&pack)?;
            let bytes = Client::new(&client)?.get(name, reference).await?;
            match output {
                Some(path) => std::fs::write(&path, &bytes).with_context(|| format!("writing {}", path.display()))?,
                None => std::io::stdout().write_all(&bytes)?,
            }
            Ok(())
        }
        Command::Ls { name, prefix, client } => {
            let client = Client::new(&client)?;
            match name {
                Some(name) => {
                    let p = client.pack(&name).await?;
                    println!(
                        "{:<24} {:<9} {:<7} {:<26} DIGEST",
                        "VERSION", "SIZE", "YANKED", "PUBLISHED"
                    );
                    for v in p.versions {
                        println!(
                            "{:<24} {:<9} {:<7} {:<26} {}",
                            v.version,
                            v.size,
                            if v.yanked { "yes" } else { "no" },
                            v.published_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                            v.digest
                        );
                    }
                    for (tag, version) in p.tags {
                        println!("tag {tag} -> {version}");
                    }
                }
                None => {
                    for n in client.list(&prefix).await? {
                        println!("{n}");
                    }
                }
            }
            Ok(())
        }
        Command::Tag {
            name,
            tag,
            version,
            client,
        } => {
            let r = Client::new(&client)?.tag(&name, &tag, &version).await?;
            println!("{}: {} -> {}", r.name, r.tag, r.version);
            Ok(())
        }
        Command::Yank { pack, undo, client } => {
            let (name, version) = pack
                .split_once('@')
                .filter(|(n, v)| !n.is_empty() && !v.is_empty() && !v.contains('@'))
                .with_context(|| format!("expected NAME@VERSION, got {pack:?}"))?;
            let r = Client::new(&client)?.yank(name, version, undo).await?;
            println!(
                "{}@{} {}",
                r.name,
                r.version,
                if r.yanked { "yanked" } else { "un-yanked" }
            );
            Ok(())
        }
        Command::Export { output, storage } => {
            let registry = offline_registry(&storage, &LimitArgs::defaults(), Access::ReadOnly).await?;
            let summary = write_atomically(&output, async |file| {
                crate::archive::export(&registry, std::io::BufWriter::new(file)).await
            })
            .await?;
            println!(
                "exported {} packs, {} versions, {} tags to {}",
                summary.packs,
                summary.versions,
                summary.tags,
                output.display()
            );
            Ok(())
        }
        Command::Import { input, storage, limits } => {
            let registry = offline_registry(&storage, &limits, Access::ReadWrite).await?;
            let file = std::fs::File::open(&input).with_context(|| format!("opening {}", input.display()))?;
            let summary = crate::archive::import(&registry, std::io::BufReader::new(file)).await?;
            println!(
                "imported {} packs: {} versions added, {} already present, {} tags set",
                summary.packs, summary.versions, summary.unchanged, summary.tags
            );
            Ok(())
        }
    }
}

/// Writes `path` through a temporary `<path>.partial` that is fsynced and then
/// renamed, so a failed or interrupted export never leaves a truncated archive.
async fn write_atomically<T>(
    path: &std::path::Path,
    write: impl AsyncFnOnce(&std::fs::File) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".partial");
    let tmp = PathBuf::from(tmp);
    let file = std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let result = match write(&file).await {
        Ok(v) => file.sync_all().map(|()| v).map_err(anyhow::Error::from),
        Err(e) => Err(e),
    };
    match result {
        Ok(v) => {
            std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::File::open(dir).and_then(|d| d.sync_all()).ok();
            }
            Ok(v)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// How an offline command opens the storage.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    /// `export`: read only, never created or migrated.
    ReadOnly,
    /// `import`: created and migrated if needed.
    ReadWrite,
}

async fn offline_registry(storage: &StorageArgs, limits: &LimitArgs, access: Access) -> anyhow::Result<Registry> {
    let metrics = Metrics::new();
    let backend = match access {
        Access::ReadOnly => storage.open_read_only(metrics.clone()).await,
        Access::ReadWrite => storage.open(metrics.clone()).await,
    }
    .with_context(|| format!("opening the {} backend", storage.backend.as_str()))?;
    Ok(Registry::new(backend, metrics, limits.limits()))
}
