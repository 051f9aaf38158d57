//! Embeds the registry dashboards of the repository's `dashboards/`
//! directory, so the dashboard ConfigMap and the files users import never
//! diverge.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::{env, fs};

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR is set by cargo"));
    let dir = manifest.join("../../dashboards");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .expect("dashboards/ exists at the repository root")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        // Registry dashboards only: the operator's own ships with the chart.
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("banter-registry"))
        })
        .collect();
    files.sort();
    let mut out = String::from(
        "/// Every dashboard of `dashboards/`: (file name, JSON text).\npub static DASHBOARDS: &[(&str, &str)] = &[\n",
    );
    for path in files {
        println!("cargo:rerun-if-changed={}", path.display());
        let name = path.file_name().and_then(|n| n.to_str()).expect("UTF-8 file name");
        let abs = fs::canonicalize(&path).expect("dashboard path resolves");
        writeln!(out, "    ({name:?}, include_str!({:?})),", abs.display().to_string()).expect("write to String");
    }
    out.push_str("];\n");
    let dest = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR is set by cargo")).join("dashboards.rs");
    fs::write(dest, out).expect("write generated dashboards.rs");
}
