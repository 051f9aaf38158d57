//! Redis backend: a one-pod StatefulSet with AOF persistence and its
//! headless Service.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource, ExecAction, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PodSpec, PodTemplateSpec, Probe, SecretKeySelector, SecretVolumeSource, Service,
    ServicePort, ServiceSpec, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::BuildInput;
use super::deployment::{restricted_container_security, restricted_pod_security};
use crate::labels::{self, Component, names};

/// Port Redis listens on.
pub const REDIS_PORT: i32 = 6379;
/// uid and gid of the `redis` user in the official alpine image.
pub const REDIS_UID: i64 = 999;

/// URL of the Redis the registry uses: an external one as given, else the
/// operator's Redis pod through its headless Service (stable DNS name).
pub fn redis_url(input: &BuildInput<'_>) -> String {
    if let Some(ext) = &input.registry.spec.storage.redis.external {
        let scheme = if ext.tls.is_some() { "rediss" } else { "redis" };
        // An IPv6 literal needs brackets in a URL.
        let host = if ext.host.contains(':') {
            format!("[{}]", ext.host)
        } else {
            ext.host.clone()
        };
        return format!("{scheme}://{host}:{}/{}", ext.port, ext.database);
    }
    let redis = names::redis(input.name());
    let scheme = if input.registry.spec.storage.redis.tls.is_some() {
        "rediss"
    } else {
        "redis"
    };
    format!("{scheme}://{redis}-0.{redis}.{}.svc:{REDIS_PORT}/0", input.namespace())
}

/// Where Redis reads its TLS Secret.
const REDIS_TLS_DIR: &str = "/tls";

/// Headless Service giving the Redis pod its stable DNS name.
pub fn redis_service(input: &BuildInput<'_>) -> Service {
    let name = input.name();
    Service {
        metadata: input.meta(names::redis(name), Component::Redis),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            selector: Some(labels::selector(name, Component::Redis)),
            ports: Some(vec![ServicePort {
                name: Some("redis".into()),
                port: REDIS_PORT,
                target_port: Some(IntOrString::String("redis".into())),
                protocol: Some("TCP".into()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// The Redis StatefulSet.
pub fn redis_statefulset(input: &BuildInput<'_>) -> StatefulSet {
    let name = input.name();
    let storage = &input.registry.spec.storage;
    let redis = &storage.redis;
    let aof = if redis.persistence.aof { "yes" } else { "no" };
    let tls = redis.tls.as_ref();
    // The probe talks to 127.0.0.1, which the certificate need not name.
    let cli: Vec<String> = match tls {
        Some(_) => ["redis-cli", "--tls", "--insecure", "ping"].map(String::from).to_vec(),
        None => ["redis-cli", "ping"].map(String::from).to_vec(),
    };
    let ping = || Probe {
        exec: Some(ExecAction {
            command: Some(cli.clone()),
        }),
        period_seconds: Some(10),
        timeout_seconds: Some(3),
        failure_threshold: Some(3),
        ..Probe::default()
    };
    let container = Container {
        name: "redis".into(),
        image: Some(
            redis
                .image
                .clone()
                .unwrap_or_else(|| input.settings.redis_image.clone()),
        ),
        args: Some(
            [
                "--appendonly",
                aof,
                "--appendfsync",
                redis.persistence.appendfsync.as_str(),
                "--dir",
                "/data",
                // Expanded by the kubelet from the Secret-backed env var:
                // the pod spec holds only the reference, never the value.
                "--requirepass",
                "$(REDIS_PASSWORD)",
            ]
            .into_iter()
            .map(String::from)
            .chain(tls.into_iter().flat_map(|_| {
                [
                    "--port".to_string(),
                    "0".into(),
                    "--tls-port".into(),
                    REDIS_PORT.to_string(),
                    "--tls-cert-file".into(),
                    format!("{REDIS_TLS_DIR}/tls.crt"),
                    "--tls-key-file".into(),
                    format!("{REDIS_TLS_DIR}/tls.key"),
                    "--tls-ca-cert-file".into(),
                    format!("{REDIS_TLS_DIR}/ca.crt"),
                    // Clients authenticate with the password, not a certificate.
                    "--tls-auth-clients".into(),
                    "no".into(),
                ]
            }))
            .collect(),
        ),
        command: Some(vec!["redis-server".into()]),
        env: Some(
            ["REDIS_PASSWORD", "REDISCLI_AUTH"]
                .into_iter()
                .map(|var| EnvVar {
                    name: var.into(),
                    value_from: Some(EnvVarSource {
                        secret_key_ref: Some(SecretKeySelector {
                            name: super::redis_auth_secret_name(input),
                            key: banter_contract::paths::REDIS_PASSWORD_KEY.into(),
                            optional: Some(false),
                        }),
                        ..EnvVarSource::default()
                    }),
                    ..EnvVar::default()
                })
                .collect(),
        ),
        ports: Some(vec![ContainerPort {
            name: Some("redis".into()),
            container_port: REDIS_PORT,
            protocol: Some("TCP".into()),
            ..ContainerPort::default()
        }]),
        liveness_probe: Some(ping()),
        readiness_probe: Some(ping()),
        // Loading a large AOF can take minutes; liveness waits for it.
        startup_probe: Some(Probe {
            failure_threshold: Some(60),
            ..ping()
        }),
        resources: Some(
            redis
                .resources
                .clone()
                .unwrap_or_else(|| super::default_requests(super::REDIS_REQUESTS.0, super::REDIS_REQUESTS.1)),
        ),
        security_context: Some(restricted_container_security()),
        volume_mounts: Some(
            vec![
                VolumeMount {
                    name: "data".into(),
                    mount_path: "/data".into(),
                    ..VolumeMount::default()
                },
                VolumeMount {
                    name: "tmp".into(),
                    mount_path: "/tmp".into(),
                    ..VolumeMount::default()
                },
            ]
            .into_iter()
            .chain(tls.map(|_| VolumeMount {
                name: "tls".into(),
                mount_path: REDIS_TLS_DIR.into(),
                read_only: Some(true),
                ..VolumeMount::default()
            }))
            .collect(),
        ),
        ..Container::default()
    };
    // Claim-template PVCs carry the instance labels and the data label so
    // pruning and deletion find them; they are owned by the StatefulSet's
    // retention policy, not by the registry.
    let mut claim_labels = labels::labels(name, Component::Redis);
    claim_labels.insert(labels::DATA_LABEL.into(), "redis".into());
    let claim = PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some("data".into()),
            labels: Some(claim_labels),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: redis.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_string(), redis.size.clone())])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    };
    let retention = if storage.retain_on_delete { "Retain" } else { "Delete" };
    let mut sts = StatefulSet {
        metadata: input.meta(names::redis(name), Component::Redis),
        spec: Some(StatefulSetSpec {
            replicas: Some(1),
            service_name: Some(names::redis(name)),
            selector: LabelSelector {
                match_labels: Some(labels::selector(name, Component::Redis)),
                ..LabelSelector::default()
            },
            persistent_volume_claim_retention_policy: Some(StatefulSetPersistentVolumeClaimRetentionPolicy {
                when_deleted: Some(retention.into()),
                when_scaled: Some("Retain".into()),
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels::labels(name, Component::Redis)),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    security_context: Some(restricted_pod_security(REDIS_UID)),
                    containers: vec![container],
                    volumes: Some(
                        std::iter::once(Volume {
                            name: "tmp".into(),
                            empty_dir: Some(EmptyDirVolumeSource::default()),
                            ..Volume::default()
                        })
                        .chain(tls.map(|t| Volume {
                            name: "tls".into(),
                            secret: Some(SecretVolumeSource {
                                secret_name: Some(t.secret_name.clone()),
                                default_mode: Some(0o440),
                                ..SecretVolumeSource::default()
                            }),
                            ..Volume::default()
                        }))
                        .collect(),
                    ),
                    ..PodSpec::default()
                }),
            },
            volume_claim_templates: Some(vec![claim]),
            ..StatefulSetSpec::default()
        }),
        ..StatefulSet::default()
    };
    if let Some(spec) = sts.spec.as_mut() {
        // One pod: no spread to default to.
        super::apply_placement(&mut spec.template, &redis.placement, Vec::new());
    }
    sts
}
