//! `make bench-operator` (first part): the cost of the reconcile path's pure
//! work for 1,000 registries — validation, the builders, and the
//! compare-before-apply check of every child against what the API server
//! returned — measured in process, allocations counted by the
//! `allocation-counter` crate's allocator, so the figures are exact and free
//! of network noise. Time comes from a separate, uncounted round (the
//! counting allocator's bookkeeping would inflate it).
//!
//! The registries cycle through `manifests/examples/*.yaml` (every feature
//! the examples show), each under its own name. "Live" objects are what the
//! operator's cache holds after its first apply: the desired object plus
//! the fields the API server adds, trimmed as the cache trims them. A
//! steady-state reconcile must then decide to apply nothing.
//!
//! `reconcile_cost [--registries N] [--rounds R]`

use std::time::Instant;

use banter_api::BanterRegistry;
use banter_operator::Settings;
use banter_operator::cache;
use banter_operator::children::{self, BuildInput};
use banter_operator::discovery::OptionalApis;
use banter_operator::drift::needs_apply;
use banter_operator::reconcile::validate;
use serde_json::{Value, json};

fn arg(name: &str, default: usize) -> anyhow::Result<usize> {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == name) {
        Some(i) => Ok(args
            .get(i + 1)
            .ok_or_else(|| anyhow::anyhow!("{name} needs a value"))?
            .parse()?),
        None => Ok(default),
    }
}

/// The example registries, each a parsed `BanterRegistry`.
fn examples() -> anyhow::Result<Vec<(String, BanterRegistry)>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../manifests/examples");
    let mut out = Vec::new();
    let mut paths: Vec<_> = std::fs::read_dir(&dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    paths.sort();
    for p in paths {
        let text = std::fs::read_to_string(&p)?;
        let reg: BanterRegistry = serde_norway::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
        out.push((p.file_name().unwrap_or_default().to_string_lossy().into_owned(), reg));
    }
    anyhow::ensure!(!out.is_empty(), "no examples in {}", dir.display());
    Ok(out)
}

/// What the API server returns for an applied object: the object plus
/// server-set metadata and a status, then trimmed as the cache trims it.
fn live(child: &children::Child, i: usize) -> Value {
    let mut obj = child.object.clone();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), json!(format!("{}", 1000 + i)));
        meta.insert("uid".into(), json!(format!("00000000-0000-0000-0000-{i:012}")));
        meta.insert("creationTimestamp".into(), json!("2026-12-03T00:00:00Z"));
        meta.insert(
            "managedFields".into(),
            json!([{"manager": "banter-operator", "operation": "Apply", "fieldsV1": {"f:spec": {}}}]),
        );
    }
    if let Some(map) = obj.as_object_mut() {
        map.insert("status".into(), json!({"observedGeneration": 1}));
    }
    cache::trim(child.kind, &mut obj);
    obj
}

fn main() -> anyhow::Result<()> {
    let n = arg("--registries", 1000)?;
    let rounds = arg("--rounds", 5)?.max(1);
    let settings = Settings::default();
    let examples = examples()?;
    let registries: Vec<BanterRegistry> = (0..n)
        .map(|i| {
            let (_, template) = &examples[i % examples.len()];
            let mut r = template.clone();
            r.metadata.name = Some(format!("reg-{i}"));
            r.metadata.namespace = Some(format!("team-{}", i % 20));
            r.metadata.uid = Some(format!("00000000-0000-0000-0000-{i:012}"));
            r.metadata.generation = Some(1);
            r
        })
        .collect();
    let apis = OptionalApis::all(true);

    // The cache after the first apply of every child.
    let mut observed: Vec<Vec<Value>> = Vec::with_capacity(n);
    for (i, reg) in registries.iter().enumerate() {
        let input = BuildInput::new(reg, &settings, apis, "token")?;
        let desired = children::desired(&input)?;
        observed.push(desired.iter().map(|c| live(c, i)).collect());
    }

    // One reconcile's pure work: validate, build, compare each child.
    let reconcile = |reg: &BanterRegistry, live: Option<&[Value]>| -> anyhow::Result<(usize, usize)> {
        let validated = validate(reg)?.map_err(|m| anyhow::anyhow!("{m}"))?;
        let input = BuildInput::new(validated.registry, &settings, apis, "token")?;
        let desired = children::desired(&input)?;
        let applies = desired
            .iter()
            .enumerate()
            .filter(|(j, c)| {
                let observed = live.and_then(|l| l.get(*j));
                // As `apply_one`: a create-only child that exists is left alone.
                if c.create_only {
                    observed.is_none()
                } else {
                    needs_apply(&c.object, observed)
                }
            })
            .count();
        Ok((desired.len(), applies))
    };

    let mut report = Vec::new();
    for (label, steady) in [
        ("first reconcile (nothing applied yet)", false),
        ("steady state (all applied)", true),
    ] {
        let run = || -> anyhow::Result<(usize, usize)> {
            let (mut children_total, mut applies_total) = (0, 0);
            for (i, reg) in registries.iter().enumerate() {
                let live = steady.then(|| observed[i].as_slice());
                let (c, a) = reconcile(reg, live)?;
                children_total += c;
                applies_total += a;
            }
            Ok((children_total, applies_total))
        };
        let mut result = Ok((0, 0));
        let counted = allocation_counter::measure(|| result = run());
        let (children_total, applies_total) = result?;
        let mut best = f64::INFINITY;
        for _ in 0..rounds {
            let started = Instant::now();
            run()?;
            best = best.min(started.elapsed().as_secs_f64());
        }
        if steady {
            anyhow::ensure!(
                applies_total == 0,
                "a steady-state reconcile would apply {applies_total} children"
            );
        }
        report.push((
            label,
            best,
            counted.count_total,
            counted.bytes_total,
            children_total,
            applies_total,
        ));
    }

    println!(
        "reconcile path, {n} registries cycling {} examples, best of {rounds} rounds (release build):",
        examples.len()
    );
    println!();
    println!(
        "| reconcile | children | applies decided | time per reconcile | allocations per reconcile | bytes allocated per reconcile | total for {n} |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (label, took, allocs, bytes, children, applies) in report {
        println!(
            "| {label} | {children} | {applies} | {:.1} µs | {:.0} | {:.1} KiB | {:.1} ms |",
            took * 1e6 / n as f64,
            allocs as f64 / n as f64,
            bytes as f64 / n as f64 / 1024.0,
            took * 1e3
        );
    }
    Ok(())
}
