//! The registry Deployment.

use std::collections::BTreeMap;

use banter_api::Backend;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapEnvSource, Container, ContainerPort, EmptyDirVolumeSource, EnvFromSource, ExecAction,
    HTTPGetAction, KeyToPath, Lifecycle, LifecycleHandler, PersistentVolumeClaimVolumeSource, PodSecurityContext,
    PodSpec, PodTemplateSpec, Probe, SeccompProfile, SecretVolumeSource, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use banter_contract::{container, paths};

use super::configmap::REGISTRY_PORT;
use super::{BuildInput, CONFIG_HASH_ANNOTATION, token_secret_name};
use crate::labels::{self, Component, names};

/// uid and gid the registry image runs as.
pub const REGISTRY_UID: i64 = 65532;

/// Seconds the preStop hook waits before the registry gets SIGTERM: long
/// enough for the endpoints controller, kube-proxy and ingress controllers
/// to stop sending new connections.
pub const PRE_STOP_DELAY_SECONDS: i64 = 10;

/// Seconds a new registry pod must stay ready before it counts as available.
pub const MIN_READY_SECONDS: i32 = 5;

/// The pod's grace period: the preStop wait (when there is one), then the
/// registry's own drain (`BANTER_REGISTRY_SHUTDOWN_TIMEOUT`, set in the
/// ConfigMap), then a margin for the process to exit, so the kubelet never
/// kills a draining registry.
pub fn termination_grace_period_seconds(pre_stop: bool) -> i64 {
    let wait = if pre_stop { PRE_STOP_DELAY_SECONDS } else { 0 };
    wait + i64::from(super::configmap::SHUTDOWN_TIMEOUT_SECONDS) + 5
}

/// A Secret the registry reads Redis settings from, mounted as a directory.
struct RedisSecret {
    volume: &'static str,
    name: String,
    /// The one key to project as `file`; `None`: every key, as named.
    key: Option<String>,
    file: &'static str,
    dir: &'static str,
    mode: i32,
}

/// The password and CA Secrets of the Redis the registry connects to.
fn redis_secrets(input: &BuildInput<'_>) -> Vec<RedisSecret> {
    let storage = &input.registry.spec.storage;
    if storage.backend != Backend::Redis {
        return Vec::new();
    }
    let redis = &storage.redis;
    let password = |name: String, key: Option<String>| RedisSecret {
        volume: "redis-auth",
        name,
        key,
        file: paths::REDIS_PASSWORD_KEY,
        dir: paths::REDIS_AUTH_DIR,
        mode: 0o440,
    };
    // Only the CA certificate: a key never reaches the registry pod.
    let ca = |name: String, key: String| RedisSecret {
        volume: "redis-tls",
        name,
        key: Some(key),
        file: "ca.crt",
        dir: paths::REDIS_TLS_DIR,
        mode: 0o444,
    };
    let mut out = Vec::new();
    match &redis.external {
        Some(ext) => {
            if let Some(p) = &ext.password_secret_ref {
                out.push(password(p.name.clone(), Some(p.key.clone())));
            }
            if let Some(c) = ext.tls.as_ref().and_then(|t| t.ca_secret_ref.as_ref()) {
                out.push(ca(c.name.clone(), c.key.clone()));
            }
        }
        None => {
            out.push(password(super::redis_auth_secret_name(input), None));
            if let Some(tls) = &redis.tls {
                out.push(ca(tls.secret_name.clone(), "ca.crt".into()));
            }
        }
    }
    out
}

/// The registry Deployment; `config_hash` goes on the pod template so a
/// config change rolls the pods.
pub fn deployment(input: &BuildInput<'_>, config_hash: &str) -> Deployment {
    let name = input.name();
    let spec = &input.registry.spec;
    let sqlite = spec.storage.backend == Backend::Sqlite;
    let selector = labels::selector(name, Component::Registry);

    let mut volumes = vec![
        Volume {
            name: "tokens".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(token_secret_name(input)),
                default_mode: Some(0o440),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        },
        Volume {
            name: "tmp".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        },
    ];
    let mut mounts = vec![
        VolumeMount {
            name: "tokens".into(),
            mount_path: paths::TOKEN_DIR.into(),
            read_only: Some(true),
            ..VolumeMount::default()
        },
        VolumeMount {
            name: "tmp".into(),
            mount_path: paths::TMP_DIR.into(),
            ..VolumeMount::default()
        },
    ];
    for secret in redis_secrets(input) {
        volumes.push(Volume {
            name: secret.volume.into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret.name),
                default_mode: Some(secret.mode),
                items: secret.key.map(|key| {
                    vec![KeyToPath {
                        key,
                        path: secret.file.into(),
                        mode: None,
                    }]
                }),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
        mounts.push(VolumeMount {
            name: secret.volume.into(),
            mount_path: secret.dir.into(),
            read_only: Some(true),
            ..VolumeMount::default()
        });
    }
    if sqlite {
        volumes.push(Volume {
            name: "data".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: names::sqlite_data(name),
                read_only: None,
            }),
            ..Volume::default()
        });
        mounts.push(VolumeMount {
            name: "data".into(),
            mount_path: paths::DATA_DIR.into(),
            ..VolumeMount::default()
        });
    }

    let container = Container {
        name: "registry".into(),
        image: Some(
            spec.image
                .clone()
                .unwrap_or_else(|| input.settings.registry_image.clone()),
        ),
        command: Some(vec![container::COMMAND.into()]),
        args: Some(vec![container::SERVE.into()]),
        env_from: Some(vec![EnvFromSource {
            config_map_ref: Some(ConfigMapEnvSource {
                name: names::config(name),
                optional: None,
            }),
            ..EnvFromSource::default()
        }]),
        ports: Some(vec![ContainerPort {
            name: Some(container::PORT_NAME.into()),
            container_port: REGISTRY_PORT,
            protocol: Some("TCP".into()),
            ..ContainerPort::default()
        }]),
        liveness_probe: Some(http_probe(container::HEALTHZ, 10, 6)),
        // Endpoints and proxies drop a terminating pod asynchronously: keep
        // serving for a while before SIGTERM stops the listener. The image
        // has no shell, so the registry binary itself waits.
        // SQLite runs one pod, replaced with `Recreate`: there is no other
        // pod to move traffic to, so a wait would only lengthen the gap.
        lifecycle: (!sqlite).then(|| Lifecycle {
            pre_stop: Some(LifecycleHandler {
                exec: Some(ExecAction {
                    command: Some(vec![
                        container::COMMAND.into(),
                        container::SLEEP.into(),
                        format!("{PRE_STOP_DELAY_SECONDS}s"),
                    ]),
                }),
                ..LifecycleHandler::default()
            }),
            ..Lifecycle::default()
        }),
        readiness_probe: Some(http_probe(container::READYZ, 5, 3)),
        resources: Some(
            spec.resources
                .clone()
                .unwrap_or_else(|| super::default_requests(super::REGISTRY_REQUESTS.0, super::REGISTRY_REQUESTS.1)),
        ),
        security_context: Some(restricted_container_security()),
        volume_mounts: Some(mounts),
        ..Container::default()
    };

    let mut template = PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels::labels(name, Component::Registry)),
            annotations: Some(BTreeMap::from([(
                CONFIG_HASH_ANNOTATION.to_string(),
                config_hash.to_string(),
            )])),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            security_context: Some(restricted_pod_security(REGISTRY_UID)),
            termination_grace_period_seconds: Some(termination_grace_period_seconds(!sqlite)),
            containers: vec![container],
            volumes: Some(volumes),
            ..PodSpec::default()
        }),
    };
    // Always spread: with one pod it only scores nodes, and a template that
    // does not change with the replica count never restarts pods on a scale.
    let spread = super::default_spread(&selector);
    super::apply_placement(&mut template, &spec.placement, spread);

    Deployment {
        metadata: input.meta(names::registry(name), Component::Registry),
        spec: Some(DeploymentSpec {
            // Left out while an autoscaler owns it: server-side apply then
            // never resets what the autoscaler set.
            replicas: (!spec.autoscaled()).then_some(spec.replicas),
            // A pod must stay ready this long before the rollout moves on:
            // one that crashes right after its first probe stops it.
            min_ready_seconds: Some(MIN_READY_SECONDS),
            selector: LabelSelector {
                match_labels: Some(selector),
                ..LabelSelector::default()
            },
            strategy: Some(strategy(sqlite)),
            template,
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

/// SQLite: `Recreate`, the old pod must release the RWO volume and the
/// database lock before the new one starts. Redis: a surge rollout that never
/// goes below the wanted replicas. `rollingUpdate` is always spelled out so
/// this field manager owns it: server-side apply then removes it on a switch
/// to `Recreate` (a server-defaulted one would make that update invalid).
fn strategy(sqlite: bool) -> DeploymentStrategy {
    if sqlite {
        DeploymentStrategy {
            type_: Some("Recreate".into()),
            rolling_update: None,
        }
    } else {
        DeploymentStrategy {
            type_: Some("RollingUpdate".into()),
            rolling_update: Some(RollingUpdateDeployment {
                max_surge: Some(IntOrString::Int(1)),
                max_unavailable: Some(IntOrString::Int(0)),
            }),
        }
    }
}

fn http_probe(path: &str, period: i32, failure_threshold: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String(container::PORT_NAME.into()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(2),
        failure_threshold: Some(failure_threshold),
        ..Probe::default()
    }
}

/// Pod security context satisfying the `restricted` Pod Security Standard.
pub fn restricted_pod_security(uid: i64) -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(uid),
        run_as_group: Some(uid),
        fs_group: Some(uid),
        seccomp_profile: Some(runtime_default_seccomp()),
        ..PodSecurityContext::default()
    }
}

/// Container security context satisfying the `restricted` Pod Security Standard.
pub fn restricted_container_security() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            add: None,
        }),
        seccomp_profile: Some(runtime_default_seccomp()),
        ..SecurityContext::default()
    }
}

fn runtime_default_seccomp() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".into(),
        localhost_profile: None,
    }
}
