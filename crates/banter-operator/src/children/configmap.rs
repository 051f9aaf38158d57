//! Registry ConfigMap: the container's whole configuration as env vars.

use std::collections::BTreeMap;

use banter_api::Backend;
use k8s_openapi::api::core::v1::ConfigMap;

use super::{BuildInput, redis_url, sha256_hex};
use crate::Error;
use crate::labels::{Component, names};

/// Port the registry container listens on.
pub const REGISTRY_PORT: i32 = 8080;
/// Where the SQLite database lives inside the container.
pub const SQLITE_PATH: &str = "/data/registry.db";
/// Directory the token Secret is mounted at.
pub const TOKEN_DIR: &str = "/etc/banter-registry/tokens";

/// The environment of the registry container.
pub fn config_data(input: &BuildInput<'_>) -> Result<BTreeMap<String, String>, Error> {
    let name = input.name()?;
    let spec = &input.registry.spec;
    let mut data = BTreeMap::new();
    data.insert("BANTER_REGISTRY_LISTEN".into(), format!("0.0.0.0:{REGISTRY_PORT}"));
    data.insert("BANTER_REGISTRY_BACKEND".into(), spec.storage.backend.as_str().into());
    match spec.storage.backend {
        Backend::Sqlite => {
            data.insert("BANTER_REGISTRY_SQLITE_PATH".into(), SQLITE_PATH.into());
        }
        Backend::Redis => {
            data.insert("BANTER_REGISTRY_REDIS_URL".into(), redis_url(input)?);
            data.insert("BANTER_REGISTRY_REDIS_KEY_PREFIX".into(), format!("banter:{name}:"));
        }
    }
    data.insert(
        "BANTER_REGISTRY_TOKEN_FILE".into(),
        format!("{TOKEN_DIR}/{}", super::TOKEN_KEY),
    );
    data.insert("BANTER_REGISTRY_LOG_FORMAT".into(), "json".into());
    Ok(data)
}

/// The registry ConfigMap.
pub fn configmap(input: &BuildInput<'_>) -> Result<ConfigMap, Error> {
    Ok(ConfigMap {
        metadata: input.meta(names::config(input.name()?), Component::Config)?,
        data: Some(config_data(input)?),
        ..ConfigMap::default()
    })
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
