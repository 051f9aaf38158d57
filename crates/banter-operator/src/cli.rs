//! Command line of `banter-operator`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::settings::{DEFAULT_REDIS_IMAGE, default_registry_image};

/// Kubernetes operator for BanterRegistry resources.
#[derive(Debug, Parser)]
#[command(name = "banter-operator", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the controller.
    Run(RunArgs),
    /// Print the BanterRegistry CRD as YAML.
    Crd,
    /// Print, without a cluster, the objects `run` would apply for a BanterRegistry.
    Render {
        /// BanterRegistry YAML file (`-` for standard input).
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// Registry image used when the spec names none.
        #[arg(long, default_value_t = default_registry_image())]
        registry_image: String,
        /// Redis image used when the spec names none.
        #[arg(long, default_value = DEFAULT_REDIS_IMAGE)]
        redis_image: String,
    },
}

/// Flags of `run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Namespace to watch; repeat for several. None: all namespaces.
    #[arg(long = "namespace", env = "WATCH_NAMESPACES", value_delimiter = ',')]
    pub namespaces: Vec<String>,
    /// Address serving /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub metrics_listen: SocketAddr,
    /// Ceiling on requests per second to the API server (watches count once,
    /// when they start); guards the API server against a runaway loop.
    #[arg(long, env = "KUBE_API_QPS", default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..))]
    pub kube_api_qps: u64,
    /// Elect a leader through a coordination.k8s.io/v1 Lease before reconciling.
    #[arg(long)]
    pub leader_election: bool,
    /// Name of the leader-election Lease.
    #[arg(long, default_value = "banter-operator-leader")]
    pub leader_election_name: String,
    /// Namespace of the leader-election Lease (default: POD_NAMESPACE, else `default`).
    #[arg(long, env = "POD_NAMESPACE")]
    pub leader_election_namespace: Option<String>,
    /// Lease duration in seconds: how long a silent leader keeps the lease.
    #[arg(long, default_value_t = 15)]
    pub leader_election_lease_seconds: u64,
    /// Identity of this replica in the Lease.
    #[arg(long, env = "POD_NAME")]
    pub pod_name: Option<String>,
    /// Registry image used when a BanterRegistry names none.
    #[arg(long, default_value_t = default_registry_image())]
    pub registry_image: String,
    /// Redis image used when a BanterRegistry names none.
    #[arg(long, default_value = DEFAULT_REDIS_IMAGE)]
    pub redis_image: String,
    /// Log format: `text` for people, `json` for log pipelines.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// Log output format of `run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}
