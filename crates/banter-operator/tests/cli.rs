//! The binary's subcommands, run as a user would.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_banter-operator");

fn root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn crd_prints_the_committed_file() {
    let out = Command::new(BIN).arg("crd").output().expect("runs");
    assert!(out.status.success());
    let committed = std::fs::read_to_string(root().join("crds/banterregistry.yaml")).expect("crd file");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        committed,
        "stale: run `make crds`"
    );
}

#[test]
fn render_prints_the_golden_output() {
    let out = Command::new(BIN)
        .args(["render", "-f"])
        .arg(root().join("manifests/examples/redis-ha.yaml"))
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let golden = std::fs::read_to_string(
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/redis-ha.yaml"),
    )
    .expect("golden");
    assert_eq!(String::from_utf8_lossy(&out.stdout), golden);
    let docs = golden.lines().filter(|l| *l == "---").count();
    assert_eq!(
        docs, 8,
        "ConfigMap, Redis password Secret, 2 Services, StatefulSet, Deployment, PDB, NetworkPolicy (auth given: no token Secret)"
    );
    // The Redis password is generated in the cluster, never rendered.
    assert!(golden.contains("password: <generated-once-in-cluster>"), "{golden}");
    assert!(!golden.contains("protected-mode"), "{golden}");
}

#[test]
fn render_with_image_overrides_and_invalid_input() {
    let out = Command::new(BIN)
        .args(["render", "--registry-image", "r:1", "--redis-image", "k:2", "-f"])
        .arg(root().join("manifests/examples/redis-ha.yaml"))
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("image: r:1") && text.contains("image: k:2"), "{text}");

    let dir = std::env::temp_dir().join(format!("banter-render-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: banterpacks.io/v1alpha1\nkind: BanterRegistry\nmetadata: {name: x}\nspec: {replicas: 2}\n",
    )
    .expect("write");
    let out = Command::new(BIN)
        .args(["render", "-f"])
        .arg(&bad)
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("spec.replicas must be 1"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn render_reads_standard_input() {
    use std::io::Write as _;
    let mut child = Command::new(BIN)
        .args(["render", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(
            b"apiVersion: banterpacks.io/v1alpha1\nkind: BanterRegistry\nmetadata: {name: s, namespace: n}\nspec: {}\n",
        )
        .expect("write");
    let out = child.wait_with_output().expect("output");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        // `n` is a YAML 1.1 boolean, so it is quoted for kubectl.
        text.contains("name: s-config") && text.contains("namespace: 'n'"),
        "{text}"
    );
}
