//! SQLite data PersistentVolumeClaim.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, PersistentVolumeClaimSpec, VolumeResourceRequirements};

use super::BuildInput;
use crate::labels::{self, Component, names};

/// The PVC the SQLite database lives on.
pub fn sqlite_pvc(input: &BuildInput<'_>) -> PersistentVolumeClaim {
    let sqlite = &input.registry.spec.storage.sqlite;
    PersistentVolumeClaim {
        metadata: {
            let mut meta = input.meta(names::sqlite_data(input.name()), Component::SqliteData);
            if let Some(l) = meta.labels.as_mut() {
                l.insert(labels::DATA_LABEL.into(), "sqlite".into());
                l.insert(labels::OWNER_UID_LABEL.into(), input.uid().to_string());
            }
            // A volume to keep carries no owner reference at all: with one, a
            // foreground (cascading) delete of the registry lets the garbage
            // collector delete it before the finalizer could detach it.
            if input.registry.spec.storage.retain_on_delete {
                meta.owner_references = None;
            }
            meta
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: sqlite.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_string(), sqlite.size.clone())])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    }
}
