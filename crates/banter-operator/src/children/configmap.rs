//! Registry ConfigMap: the container's whole configuration as env vars.

use std::collections::BTreeMap;

use banter_api::Backend;
use k8s_openapi::api::core::v1::ConfigMap;

use super::{BuildInput, redis_url, sha256_hex};
use crate::labels::{Component, names};

use banter_contract::{container, env, paths};

/// Seconds the registry may spend finishing in-flight requests after SIGTERM
/// (the pod's grace period is derived from it).
pub const SHUTDOWN_TIMEOUT_SECONDS: u16 = 25;

/// Port the registry container listens on.
pub const REGISTRY_PORT: i32 = container::PORT as i32;

/// The environment of the registry container.
pub fn config_data(input: &BuildInput<'_>) -> BTreeMap<String, String> {
    let name = input.name();
    let spec = &input.registry.spec;
    let mut data = BTreeMap::new();
    data.insert(env::LISTEN.into(), format!("0.0.0.0:{}", container::PORT));
    data.insert(env::BACKEND.into(), spec.storage.backend.as_str().into());
    match spec.storage.backend {
        Backend::Sqlite => {
            data.insert(env::SQLITE_PATH.into(), paths::SQLITE_DB.into());
        }
        Backend::Redis => {
            let redis = &spec.storage.redis;
            let external = redis.external.as_ref();
            data.insert(env::REDIS_URL.into(), redis_url(input));
            // A shared external Redis may serve registries of the same name
            // in other namespaces: its default prefix names the namespace too.
            // The operator's own Redis keeps the prefix its data was written with.
            let prefix = match external {
                Some(e) => e
                    .key_prefix
                    .clone()
                    .unwrap_or_else(|| format!("banter:{}:{name}:", input.namespace())),
                None => format!("banter:{name}:"),
            };
            data.insert(env::REDIS_KEY_PREFIX.into(), prefix);
            let (password, ca) = match external {
                Some(e) => (
                    e.password_secret_ref.is_some(),
                    e.tls.as_ref().is_some_and(|t| t.ca_secret_ref.is_some()),
                ),
                None => (true, redis.tls.is_some()),
            };
            if password {
                data.insert(env::REDIS_PASSWORD_FILE.into(), paths::REDIS_PASSWORD_FILE.into());
            }
            if ca {
                data.insert(env::REDIS_CA_FILE.into(), paths::REDIS_CA_FILE.into());
            }
        }
    }
    data.insert(env::TOKEN_FILE.into(), paths::TOKEN_FILE.into());
    data.insert(env::LOG_FORMAT.into(), "json".into());
    data.insert(env::SHUTDOWN_TIMEOUT.into(), format!("{SHUTDOWN_TIMEOUT_SECONDS}s"));
    data
}

/// The registry ConfigMap.
pub fn configmap(input: &BuildInput<'_>) -> ConfigMap {
    ConfigMap {
        metadata: input.meta(names::config(input.name()), Component::Config),
        data: Some(config_data(input)),
        ..ConfigMap::default()
    }
}

/// Hash of the ConfigMap data; a BTreeMap iterates in key order, so equal
/// data always gives the same hash.
pub fn config_hash(data: &BTreeMap<String, String>) -> String {
    let mut text = String::new();
    for (k, v) in data {
        text.push_str(k);
        text.push('=');
        text.push_str(v);
        text.push('\n');
    }
    sha256_hex(text.as_bytes())
}
