//! `crds/banterregistry.yaml` must be exactly what `banter-operator crd` prints.

use std::path::PathBuf;

#[test]
fn committed_crd_matches_the_rust_types() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../crds/banterregistry.yaml");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    let generated = banter_operator::crd::crd_yaml().expect("CRD serializes");
    assert!(
        committed == generated,
        "{} is stale or missing: regenerate it with `make crds` \
         (or `cargo run -p banter-operator -- crd > crds/banterregistry.yaml`)",
        path.display()
    );
}
