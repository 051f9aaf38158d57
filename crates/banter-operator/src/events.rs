//! Kubernetes Events about a registry (created/updated/failed).

use std::sync::{Arc, Mutex};

use banter_api::BanterRegistry;
use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder};

/// One event as the operator meant to publish it (kept by [`EventSink::Memory`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedEvent {
    /// Warning instead of Normal.
    pub warning: bool,
    /// CamelCase reason.
    pub reason: String,
    /// CamelCase action.
    pub action: String,
    /// Human-readable note.
    pub note: String,
}

/// Where events go: the cluster, or memory (tests keep request sequences
/// free of event noise and assert on events separately).
#[derive(Clone)]
pub enum EventSink {
    /// Publish through kube's event recorder.
    Kube(Recorder),
    /// Keep in memory.
    Memory(Arc<Mutex<Vec<RecordedEvent>>>),
}

impl EventSink {
    /// A memory sink and a handle to read what was recorded.
    pub fn memory() -> (Self, Arc<Mutex<Vec<RecordedEvent>>>) {
        let store = Arc::new(Mutex::new(Vec::new()));
        (Self::Memory(store.clone()), store)
    }

    /// Publishes an event about `registry`; failures are logged, never fatal.
    pub async fn publish(&self, registry: &BanterRegistry, warning: bool, reason: &str, action: &str, note: String) {
        match self {
            Self::Kube(recorder) => {
                let ev = Event {
                    type_: if warning { EventType::Warning } else { EventType::Normal },
                    reason: reason.into(),
                    note: Some(note),
                    action: action.into(),
                    secondary: None,
                };
                if let Err(e) = recorder.publish(&ev, &registry.object_ref(&())).await {
                    tracing::warn!(error = %e, "publishing event failed");
                }
            }
            Self::Memory(store) => {
                if let Ok(mut events) = store.lock() {
                    events.push(RecordedEvent {
                        warning,
                        reason: reason.into(),
                        action: action.into(),
                        note,
                    });
                }
            }
        }
    }
}
