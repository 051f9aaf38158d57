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
        (d, o) => d == o,
    }
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
