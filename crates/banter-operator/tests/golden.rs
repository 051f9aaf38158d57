//! `render` output of every example in manifests/examples/ matches its
//! golden file. `UPDATE_GOLDEN=1 cargo test -p banter-operator --test golden`
//! (or `make golden`) rewrites them.

use std::path::PathBuf;

use banter_operator::Settings;
use banter_operator::render::render;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn render_matches_golden_files() {
    let examples = root().join("manifests/examples");
    let golden_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut names: Vec<_> = std::fs::read_dir(&examples)
        .expect("manifests/examples exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    names.sort();
    assert!(names.len() >= 4, "expected the four examples, found {names:?}");
    let mut stale = Vec::new();
    for example in names {
        let input = std::fs::read_to_string(&example).expect("example readable");
        let rendered = render(&input, &Settings::default()).expect("example renders");
        let golden = golden_dir.join(example.file_name().expect("file name"));
        if update {
            std::fs::write(&golden, &rendered).expect("write golden");
        } else if std::fs::read_to_string(&golden).ok().as_deref() != Some(rendered.as_str()) {
            stale.push(golden.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "render output differs from {stale:?}; review, then regenerate with `make golden` (UPDATE_GOLDEN=1)"
    );
}

#[test]
fn render_rejects_sqlite_with_three_replicas() {
    let yaml = "apiVersion: banterpacks.io/v1alpha1\nkind: BanterRegistry\nmetadata: {name: x}\nspec: {replicas: 3}\n";
    let err = render(yaml, &Settings::default()).expect_err("must be rejected");
    assert!(err.to_string().contains("spec.replicas must be 1"), "{err}");
}
