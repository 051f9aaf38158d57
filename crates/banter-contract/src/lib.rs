#![warn(missing_docs)]
//! The contract between banter-operator and banter-registry, defined once:
//! the environment variables the operator writes into a registry's
//! ConfigMap (and the registry reads with clap), and the command, port,
//! probe paths and file paths of the registry container; and the
//! `/metrics` formats both serve.

pub mod exposition;

/// Environment variables of `banter-registry serve`.
pub mod env {
    /// Address to listen on.
    pub const LISTEN: &str = "BANTER_REGISTRY_LISTEN";
    /// Storage backend: `sqlite` or `redis`.
    pub const BACKEND: &str = "BANTER_REGISTRY_BACKEND";
    /// Path of the SQLite database file.
    pub const SQLITE_PATH: &str = "BANTER_REGISTRY_SQLITE_PATH";
    /// `redis://` or `rediss://` URL.
    pub const REDIS_URL: &str = "BANTER_REGISTRY_REDIS_URL";
    /// Prefix of every Redis key (several registries can share one Redis).
    pub const REDIS_KEY_PREFIX: &str = "BANTER_REGISTRY_REDIS_KEY_PREFIX";
    /// File of publish tokens, one per line.
    pub const TOKEN_FILE: &str = "BANTER_REGISTRY_TOKEN_FILE";
    /// File holding the Redis password.
    pub const REDIS_PASSWORD_FILE: &str = "BANTER_REGISTRY_REDIS_PASSWORD_FILE";
    /// PEM bundle of CAs trusted for `rediss://`.
    pub const REDIS_CA_FILE: &str = "BANTER_REGISTRY_REDIS_CA_FILE";
    /// Log format: `text` or `json`.
    pub const LOG_FORMAT: &str = "BANTER_REGISTRY_LOG_FORMAT";
    /// After SIGTERM, how long in-flight requests may take (a duration such as `25s`).
    pub const SHUTDOWN_TIMEOUT: &str = "BANTER_REGISTRY_SHUTDOWN_TIMEOUT";
    /// After SIGTERM, how long the registry keeps accepting while readiness
    /// already fails, before it stops listening.
    pub const SHUTDOWN_DELAY: &str = "BANTER_REGISTRY_SHUTDOWN_DELAY";

    /// Every variable the operator sets (the registry must accept each).
    pub const ALL: [&str; 10] = [
        LISTEN,
        BACKEND,
        SQLITE_PATH,
        REDIS_URL,
        REDIS_KEY_PREFIX,
        REDIS_PASSWORD_FILE,
        REDIS_CA_FILE,
        TOKEN_FILE,
        LOG_FORMAT,
        SHUTDOWN_TIMEOUT,
    ];
}

/// The registry container.
pub mod container {
    /// Executable in the image.
    pub const COMMAND: &str = "banter-registry";
    /// Subcommand that runs the server.
    pub const SERVE: &str = "serve";
    /// Subcommand that waits for a duration (the preStop hook: the image has no shell).
    pub const SLEEP: &str = "sleep";
    /// Port the server listens on.
    pub const PORT: u16 = 8080;
    /// Name of that port (probes and Services refer to it).
    pub const PORT_NAME: &str = "http";
    /// Liveness probe path.
    pub const HEALTHZ: &str = "/healthz";
    /// Readiness probe path (fails while the backend is unreachable).
    pub const READYZ: &str = "/readyz";
    /// Prometheus metrics path.
    pub const METRICS: &str = "/metrics";
}

/// Paths inside the registry container.
pub mod paths {
    /// Mount point of the SQLite volume.
    pub const DATA_DIR: &str = "/data";
    /// The SQLite database, on the data volume.
    pub const SQLITE_DB: &str = "/data/registry.db";
    /// Mount point of the token Secret (a directory mount, never `subPath`,
    /// so the kubelet's in-place updates reach the registry).
    pub const TOKEN_DIR: &str = "/etc/banter-registry/tokens";
    /// Key of the token Secret, and so the file name under `TOKEN_DIR`.
    pub const TOKEN_KEY: &str = "tokens";
    /// The token file.
    pub const TOKEN_FILE: &str = "/etc/banter-registry/tokens/tokens";
    /// Mount point of the Redis password Secret (a directory mount).
    pub const REDIS_AUTH_DIR: &str = "/etc/banter-registry/redis";
    /// Key of the Redis password Secret, and so the file name under `REDIS_AUTH_DIR`.
    pub const REDIS_PASSWORD_KEY: &str = "password";
    /// The Redis password file.
    pub const REDIS_PASSWORD_FILE: &str = "/etc/banter-registry/redis/password";
    /// Mount point of the Redis CA certificate (only `ca.crt` of the TLS Secret).
    pub const REDIS_TLS_DIR: &str = "/etc/banter-registry/redis-tls";
    /// The CA bundle trusted for `rediss://`.
    pub const REDIS_CA_FILE: &str = "/etc/banter-registry/redis-tls/ca.crt";
    /// Writable scratch space (the root filesystem is read-only).
    pub const TMP_DIR: &str = "/tmp";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_paths_agree() {
        assert_eq!(paths::TOKEN_FILE, format!("{}/{}", paths::TOKEN_DIR, paths::TOKEN_KEY));
        assert!(paths::SQLITE_DB.starts_with(&format!("{}/", paths::DATA_DIR)));
        assert_eq!(
            paths::REDIS_PASSWORD_FILE,
            format!("{}/{}", paths::REDIS_AUTH_DIR, paths::REDIS_PASSWORD_KEY)
        );
        assert!(env::ALL.iter().all(|v| v.starts_with("BANTER_REGISTRY_")));
    }
}
