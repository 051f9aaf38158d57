//! Deciding whether a child needs an apply: compare before writing, so a
//! steady-state reconcile sends no write at all.

use serde_json::Value;

use crate::children::APPLIED_HASH_ANNOTATION;

/// True when every field of `desired` is present in `observed` with the same
/// value. Fields only the server adds (defaults, status) are ignored.
pub fn is_subset(desired: &Value, observed: &Value) -> bool {
    match (desired, observed) {
        (Value::Object(d), Value::Object(o)) => d.iter().all(|(k, dv)| o.get(k).is_some_and(|ov| is_subset(dv, ov))),
        (Value::Array(d), Value::Array(o)) => d.len() == o.len() && d.iter().zip(o).all(|(dv, ov)| is_subset(dv, ov)),
        (Value::Number(d), Value::Number(o)) => d.as_f64() == o.as_f64(),
        // The API server re-emits quantities canonically (`0.5` → `500m`,
        // `1024Mi` → `1Gi`): equal amounts are not drift.
        (Value::String(d), Value::String(o)) => d == o || quantity(d).is_some_and(|q| quantity(o) == Some(q)),
        // A number in the spec (`cpu: 1`) comes back as a string quantity.
        (Value::Number(d), Value::String(o)) => d.as_f64().is_some_and(|d| quantity(o) == Some(d)),
        (d, o) => d == o,
    }
}

/// The amount a Kubernetes quantity string stands for (`500m`, `1Gi`,
/// `1e3`), or `None` for anything else.
pub fn quantity(s: &str) -> Option<f64> {
    const SUFFIXES: [(&str, f64); 15] = [
        ("Ki", 1024.0),
        ("Mi", 1_048_576.0),
        ("Gi", 1_073_741_824.0),
        ("Ti", 1_099_511_627_776.0),
        ("Pi", 1_125_899_906_842_624.0),
        ("Ei", 1_152_921_504_606_846_976.0),
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
    ];
    let s = s.trim();
    let (number, factor) = SUFFIXES
        .iter()
        .find_map(|(suffix, f)| s.strip_suffix(suffix).map(|n| (n, *f)))
        .unwrap_or((s, 1.0));
    // Only digits, one dot, a sign and a decimal exponent: never "inf" or "NaN".
    let plain = number
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | '+' | '-' | 'e' | 'E'));
    if number.is_empty() || !plain || !number.starts_with(|c: char| c.is_ascii_digit() || matches!(c, '.' | '+' | '-'))
    {
        return None;
    }
    let value: f64 = number.parse().ok()?;
    value.is_finite().then_some(value * factor)
}

fn applied_hash(v: &Value) -> Option<&str> {
    v.pointer("/metadata/annotations")
        .and_then(|a| a.get(APPLIED_HASH_ANNOTATION))
        .and_then(Value::as_str)
}

/// Whether `desired` must be applied over `observed` (absent: yes). The
/// applied-hash annotation catches fields removed from the desired object,
/// the subset check catches changes made by someone else. `apiVersion` and
/// `kind` are left out: items of a LIST of built-in kinds do not carry them.
pub fn needs_apply(desired: &Value, observed: Option<&Value>) -> bool {
    let Some(o) = observed else { return true };
    if applied_hash(desired) != applied_hash(o) {
        return true;
    }
    match desired.as_object() {
        Some(fields) => !fields
            .iter()
            .filter(|(k, _)| *k != "apiVersion" && *k != "kind")
            .all(|(k, dv)| o.get(k).is_some_and(|ov| is_subset(dv, ov))),
        None => !is_subset(desired, o),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn server_defaults_are_ignored_but_changes_are_not() {
        let desired = json!({"spec": {"ports": [{"port": 80}]}});
        let observed = json!({"spec": {"ports": [{"port": 80, "protocol": "TCP"}], "clusterIP": "10.0.0.1"}});
        assert!(is_subset(&desired, &observed));
        let changed = json!({"spec": {"ports": [{"port": 81, "protocol": "TCP"}]}});
        assert!(!is_subset(&desired, &changed));
        let longer = json!({"spec": {"ports": [{"port": 80}, {"port": 81}]}});
        assert!(!is_subset(&desired, &longer));
    }

    #[test]
    fn canonicalised_quantities_are_not_drift() {
        let desired = json!({"resources": {"requests": {"cpu": "0.5", "memory": "1024Mi"}, "limits": {"cpu": 1}}});
        let live = json!({"resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "1"}}});
        assert!(is_subset(&desired, &live));
        let changed = json!({"resources": {"requests": {"cpu": "600m", "memory": "1Gi"}, "limits": {"cpu": "1"}}});
        assert!(!is_subset(&desired, &changed));
        assert_eq!(quantity("1e3"), Some(1000.0));
        assert_eq!(quantity("2k"), Some(2000.0));
        assert_eq!(quantity("inf"), None);
        assert_eq!(quantity("nan"), None);
        assert_eq!(quantity("banter"), None);
        assert_eq!(quantity(""), None);
        // Ordinary strings still compare exactly.
        assert!(!is_subset(&json!("redis"), &json!("sqlite")));
    }

    #[test]
    fn hash_annotation_difference_forces_apply() {
        let desired = json!({"metadata": {"annotations": {APPLIED_HASH_ANNOTATION: "a"}}});
        let observed = json!({"metadata": {"annotations": {APPLIED_HASH_ANNOTATION: "b"}}});
        assert!(needs_apply(&desired, Some(&observed)));
        assert!(!needs_apply(&desired, Some(&desired)));
        assert!(needs_apply(&desired, None));
    }

    #[test]
    fn list_items_without_type_meta_are_not_drift() {
        let desired = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "v"}});
        let item = json!({"metadata": {"name": "a", "uid": "u"}, "data": {"k": "v"}});
        assert!(!needs_apply(&desired, Some(&item)));
        let changed = json!({"metadata": {"name": "a"}, "data": {"k": "w"}});
        assert!(needs_apply(&desired, Some(&changed)));
    }
}
