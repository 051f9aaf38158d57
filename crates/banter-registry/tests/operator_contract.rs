//! The operator ↔ registry contract, end to end. A registry's ConfigMap,
//! Secret and Deployment are built by the operator's own builders; the real
//! `banter-registry` binary is then started exactly as that pod spec says:
//! its command and args, an environment of nothing but the ConfigMap (as
//! `envFrom` gives it), every volume mount mapped to a directory of its own,
//! the token Secret written as the kubelet writes it (one file per key). It
//! must serve: both probe paths answer 200 on the named port's server, a
//! publish with the generated token is accepted and read back.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use banter_api::{BanterRegistry, BanterRegistrySpec};
use banter_contract::{container, env};
use banter_operator::Settings;
use banter_operator::children::{self, BuildInput, ChildKind};
use serde_json::{Value, json};
use support::*;

/// The rendered pod: container, ConfigMap data, every generated Secret's data by name, volumes.
struct Pod {
    container: Value,
    config: BTreeMap<String, String>,
    secrets: BTreeMap<String, BTreeMap<String, String>>,
    volumes: Vec<Value>,
}

fn render(spec: Value) -> Pod {
    let spec: BanterRegistrySpec = serde_json::from_value(spec).unwrap();
    let mut reg = BanterRegistry::new("packs", spec);
    reg.metadata.namespace = Some("banter".into());
    reg.metadata.uid = Some("uid-1".into());
    let settings = Settings::default();
    let desired = children::desired(
        &BuildInput::new(
            &reg,
            &settings,
            banter_operator::discovery::OptionalApis::all(false),
            TOKEN,
        )
        .unwrap(),
    )
    .unwrap();
    let object = |kind: ChildKind, name: &str| {
        desired
            .iter()
            .find(|c| c.kind == kind && c.name == name)
            .map(|c| c.object.clone())
            .unwrap_or_else(|| panic!("{kind:?} {name} is rendered"))
    };
    let deployment = object(ChildKind::Deployment, "packs");
    let pod = &deployment["spec"]["template"]["spec"];
    let containers = pod["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1);
    let container = containers[0].clone();
    // `envFrom` is the whole environment: no literal env, no other source.
    assert!(container.get("env").is_none(), "{container}");
    assert_eq!(
        container["envFrom"],
        json!([{"configMapRef": {"name": "packs-config"}}])
    );
    let config = serde_json::from_value(object(ChildKind::ConfigMap, "packs-config")["data"].clone()).unwrap();
    let secrets = desired
        .iter()
        .filter(|c| c.kind == ChildKind::Secret)
        .map(|c| {
            let data = serde_json::from_value(c.object["stringData"].clone()).unwrap();
            (c.name.clone(), data)
        })
        .collect();
    Pod {
        container,
        config,
        secrets,
        volumes: pod["volumes"].as_array().unwrap().clone(),
    }
}

/// Maps each mount path to a directory under `root` (populating Secret
/// volumes), and rewrites `value` when it names a path under a mount.
struct Mounts(Vec<(String, PathBuf)>);

impl Mounts {
    fn new(pod: &Pod, root: &Path) -> Self {
        let mut out = Vec::new();
        for m in pod.container["volumeMounts"].as_array().unwrap() {
            assert!(m.get("subPath").is_none(), "no subPath mounts: {m}");
            let name = m["name"].as_str().unwrap();
            let dir = root.join(name);
            std::fs::create_dir_all(&dir).unwrap();
            let volume = pod.volumes.iter().find(|v| v["name"] == name).unwrap();
            if volume.get("secret").is_some() {
                let name = volume["secret"]["secretName"].as_str().unwrap();
                let data = pod
                    .secrets
                    .get(name)
                    .unwrap_or_else(|| panic!("Secret {name} is rendered"));
                for (key, value) in data {
                    std::fs::write(dir.join(key), value).unwrap();
                }
            }
            out.push((m["mountPath"].as_str().unwrap().to_string(), dir));
        }
        // Longest mount first, as a path resolves to its deepest mount.
        out.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        Mounts(out)
    }

    fn map(&self, value: &str) -> String {
        for (mount, dir) in &self.0 {
            if let Some(rest) = value.strip_prefix(mount.as_str())
                && (rest.is_empty() || rest.starts_with('/'))
            {
                return format!("{}{rest}", dir.display());
            }
        }
        value.to_string()
    }
}

/// Starts the container as rendered; `redis` replaces the in-cluster Redis address.
fn start(pod: &Pod, dir: &Path, redis: Option<&Redis>) -> Server {
    assert_eq!(pod.container["command"], json!([container::COMMAND]));
    let port = &pod.container["ports"][0];
    assert_eq!(port["name"], container::PORT_NAME);
    assert_eq!(port["containerPort"], json!(container::PORT));
    let mounts = Mounts::new(pod, dir);
    let mut cmd = Command::new(bin());
    cmd.args(
        pod.container["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap()),
    );
    cmd.env_clear();
    for (key, value) in &pod.config {
        assert!(env::ALL.contains(&key.as_str()), "{key} is not part of the contract");
        let value = match key.as_str() {
            k if k == env::LISTEN => {
                assert_eq!(value, &format!("0.0.0.0:{}", container::PORT));
                "127.0.0.1:0".to_string()
            }
            k if k == env::REDIS_URL => {
                assert!(
                    value.starts_with("redis://packs-redis-0.packs-redis.banter.svc"),
                    "{value}"
                );
                redis.expect("a Redis for a Redis registry").url()
            }
            _ => mounts.map(value),
        };
        cmd.env(key, value);
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let backend = match pod.config.get(env::BACKEND).map(String::as_str) {
        Some("redis") => Backend::Redis {
            url: redis.unwrap().url(),
            prefix: pod.config[env::REDIS_KEY_PREFIX].clone(),
        },
        _ => Backend::Sqlite(PathBuf::from(mounts.map(&pod.config[env::SQLITE_PATH]))),
    };
    Server::spawn(cmd, backend, dir)
}

async fn serves(s: &Server, pod: &Pod) {
    for probe in ["livenessProbe", "readinessProbe"] {
        let path = pod.container[probe]["httpGet"]["path"].as_str().unwrap();
        assert_eq!(pod.container[probe]["httpGet"]["port"], container::PORT_NAME);
        let r = s.get(path).await;
        assert_eq!(r.status(), 200, "{probe} {path}: {}", s.logs());
    }
    let body = pack("contract", "1.0.0", 0);
    assert_eq!(
        s.publish("contract", "1.0.0", &body).await.status(),
        201,
        "{}",
        s.logs()
    );
    let got = s.get("/v1/packs/contract/versions/1.0.0").await;
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.unwrap().as_ref(), body.as_slice());
    assert_eq!(s.get(container::METRICS).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_pod_as_rendered_serves() {
    let dir = tempfile::tempdir().unwrap();
    let pod = render(json!({}));
    assert_eq!(pod.config[env::SQLITE_PATH], banter_contract::paths::SQLITE_DB);
    let s = start(&pod, dir.path(), None);
    serves(&s, &pod).await;
    assert!(
        dir.path().join("data/registry.db").exists(),
        "the database is on the data volume"
    );
    // JSON logs, as the ConfigMap asks.
    let first = s.logs().lines().next().map(str::to_string).unwrap_or_default();
    assert!(first.starts_with('{'), "json log line expected: {first}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_pod_as_rendered_serves() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(&dir.path().join("redis"), "always");
    let pod = render(json!({"replicas": 2, "storage": {"backend": "redis"}}));
    // Redis as the rendered StatefulSet runs it: with the generated password.
    let password = &pod.secrets["packs-redis-auth"]["password"];
    assert!(redis_command(redis.port, &["CONFIG", "SET", "requirepass", password]).starts_with("+OK"));
    let s = start(&pod, &dir.path().join("pod"), Some(&redis));
    serves(&s, &pod).await;
}
