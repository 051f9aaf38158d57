//! Publish-token Secret, generated once when `spec.auth` names none.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;

use super::BuildInput;
use crate::labels::{Component, names};

/// Key of the token file inside the Secret.
pub const TOKEN_KEY: &str = banter_contract::paths::TOKEN_KEY;

/// Name of the Secret the registry mounts: the user's, or the generated one.
pub fn token_secret_name(input: &BuildInput<'_>) -> String {
    match &input.registry.spec.auth {
        Some(auth) => auth.secret_name.clone(),
        None => names::tokens(input.name()),
    }
}

/// The generated Secret holding one publish token.
pub fn token_secret(input: &BuildInput<'_>) -> Secret {
    Secret {
        metadata: input.meta(names::tokens(input.name()), Component::Tokens),
        type_: Some("Opaque".into()),
        string_data: Some(BTreeMap::from([(
            TOKEN_KEY.to_string(),
            format!("{}\n", input.generated_token),
        )])),
        ..Secret::default()
    }
}

/// Name of the Secret holding the Redis password: the user's, or the generated one.
pub fn redis_auth_secret_name(input: &BuildInput<'_>) -> String {
    match &input.registry.spec.storage.redis.auth {
        Some(auth) => auth.secret_name.clone(),
        None => names::redis_auth(input.name()),
    }
}

/// The generated Secret holding the Redis password (key `password`).
pub fn redis_password_secret(input: &BuildInput<'_>) -> Secret {
    Secret {
        metadata: input.meta(names::redis_auth(input.name()), Component::RedisAuth),
        type_: Some("Opaque".into()),
        string_data: Some(BTreeMap::from([(
            banter_contract::paths::REDIS_PASSWORD_KEY.to_string(),
            input.generated_redis_password.to_string(),
        )])),
        ..Secret::default()
    }
}
