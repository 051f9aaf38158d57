//! Typed `BanterRegistry` objects from an untyped watch. One object whose
//! spec does not deserialize must not fail the LIST for every other
//! registry (kube-rs#774); it becomes a placeholder that the reconciler
//! reports as `Ready=False InvalidSpec`.

use banter_api::{BanterRegistry, BanterRegistrySpec};
use kube::core::DynamicObject;
use kube::runtime::watcher::Event;
use serde_json::Value;

/// In-memory annotation on a placeholder: why its spec could not be read.
/// Never written to the cluster (the operator writes only status and its
/// finalizer); one a user sets is removed on decode.
pub const DECODE_ERROR_ANNOTATION: &str = "banterpacks.io/decode-error";

fn spec_from(value: Value) -> Result<BanterRegistrySpec, String> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        if path.is_empty() || path == "." {
            e.inner().to_string()
        } else {
            format!("spec.{path}: {}", e.inner())
        }
    })
}

/// The typed registry of `obj`; a placeholder with a default spec and the
/// reason in `DECODE_ERROR_ANNOTATION` when the spec does not deserialize.
pub fn registry(obj: DynamicObject) -> BanterRegistry {
    let mut metadata = obj.metadata;
    if let Some(a) = metadata.annotations.as_mut() {
        a.remove(DECODE_ERROR_ANNOTATION);
    }
    let mut data = obj.data;
    let spec_value = data
        .get_mut("spec")
        .map(Value::take)
        .unwrap_or(Value::Object(Default::default()));
    // A status that does not read is simply rewritten.
    let status = data
        .get_mut("status")
        .map(Value::take)
        .and_then(|s| serde_json::from_value(s).ok());
    let spec = match spec_from(spec_value) {
        Ok(spec) => spec,
        Err(message) => {
            metadata
                .annotations
                .get_or_insert_with(Default::default)
                .insert(DECODE_ERROR_ANNOTATION.into(), message);
            // Defaults are the safe reading: retainOnDelete keeps the data
            // if the object is deleted before it is fixed.
            BanterRegistrySpec::default()
        }
    };
    BanterRegistry { metadata, spec, status }
}

/// Why `reg` is a placeholder, if it is one.
pub fn decode_error(reg: &BanterRegistry) -> Option<&str> {
    reg.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DECODE_ERROR_ANNOTATION))
        .map(String::as_str)
}

/// A watch event of untyped registries as one of typed registries.
pub fn event(ev: Event<DynamicObject>) -> Event<BanterRegistry> {
    match ev {
        Event::Apply(o) => Event::Apply(registry(o)),
        Event::Delete(o) => Event::Delete(registry(o)),
        Event::InitApply(o) => Event::InitApply(registry(o)),
        Event::Init => Event::Init,
        Event::InitDone => Event::InitDone,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dynamic(spec: Value) -> DynamicObject {
        serde_json::from_value(
            json!({"apiVersion": "banterpacks.io/v1alpha1", "kind": "BanterRegistry",
            "metadata": {"name": "x", "namespace": "n", "annotations": {DECODE_ERROR_ANNOTATION: "forged"}},
            "spec": spec, "status": {"observedGeneration": 1}}),
        )
        .expect("object")
    }

    #[test]
    fn a_good_object_decodes_and_forged_markers_are_dropped() {
        let reg = registry(dynamic(json!({"replicas": 2})));
        assert_eq!(reg.spec.replicas, 2);
        assert_eq!(decode_error(&reg), None);
        assert_eq!(reg.status.and_then(|s| s.observed_generation), Some(1));
    }

    #[test]
    fn a_bad_object_becomes_a_placeholder_naming_the_field() {
        let reg = registry(dynamic(json!({"replicas": "three"})));
        let why = decode_error(&reg).expect("placeholder");
        assert!(why.starts_with("spec.replicas: invalid type"), "{why}");
        assert!(reg.spec.storage.retain_on_delete, "safe defaults");
        assert_eq!(reg.metadata.name.as_deref(), Some("x"));
    }
}
