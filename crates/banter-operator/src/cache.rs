//! The children as the controller's watches last saw them, indexed by the
//! registry they belong to. The `observe` stage reads here instead of
//! listing from the API server: a steady-state reconcile sends no request.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::RwLock;
use std::time::Duration;

use kube::ResourceExt;
use kube::core::DynamicObject;
use kube::runtime::watcher::Event;
use serde_json::Value;
use tokio::sync::Notify;

use crate::Error;
use crate::children::ChildKind;
use crate::labels;
use crate::status::Observed;

/// Namespace and `app.kubernetes.io/instance` of a child: the registry it belongs to.
type Owner = (String, String);
/// Kind, namespace and name: one object.
type ObjectKey = (ChildKind, String, String);
/// A watch's scope: one namespace, or the whole cluster (`None`).
type Scope = Option<String>;

/// One cached object, kept as compact JSON text: a parsed `Value` costs
/// several times the memory, and a reconcile parses only its own children.
struct Entry {
    resource_version: Option<u64>,
    json: Box<str>,
}

impl Entry {
    fn new(obj: &Value) -> Option<Self> {
        Some(Self {
            resource_version: numeric_rv(obj),
            json: serde_json::to_string(obj).ok()?.into_boxed_str(),
        })
    }
}

#[derive(Default)]
struct Inner {
    by_owner: HashMap<Owner, BTreeMap<(ChildKind, String), Entry>>,
    owner_of: HashMap<ObjectKey, Owner>,
    /// Objects of a relist in progress, swapped in at `InitDone`.
    relisting: HashMap<(Scope, ChildKind), Vec<Value>>,
    synced: HashSet<(Scope, ChildKind)>,
}

/// The watched children of every registry.
#[derive(Default)]
pub struct ChildCache {
    inner: RwLock<Inner>,
    changed: Notify,
}

/// Drops what the operator never reads, so memory stays proportional to
/// what matters: managed fields, client-side apply copies and secret data.
pub fn trim(kind: ChildKind, obj: &mut Value) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
        if let Some(a) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            a.remove("kubectl.kubernetes.io/last-applied-configuration");
        }
    }
    if kind == ChildKind::Secret
        && let Some(map) = obj.as_object_mut()
    {
        // Only the Secret's existence matters (it is create-only).
        map.remove("data");
        map.remove("stringData");
    }
}

/// Whether `new` is an older version than `cached`. Resource versions are
/// opaque; where both are integers (etcd revisions, as every API server
/// today) they order, otherwise nothing is assumed and `new` wins.
fn older(new: &Value, cached: Option<&Entry>) -> bool {
    match (numeric_rv(new), cached.and_then(|c| c.resource_version)) {
        (Some(n), Some(c)) => n < c,
        _ => false,
    }
}

fn numeric_rv(v: &Value) -> Option<u64> {
    v.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<u64>().ok())
}

fn owner_of(obj: &Value) -> Option<Owner> {
    let meta = obj.get("metadata")?;
    let ns = meta.get("namespace")?.as_str()?;
    let instance = meta.get("labels")?.get(labels::keys::INSTANCE)?.as_str()?;
    Some((ns.to_string(), instance.to_string()))
}

fn name_of(obj: &Value) -> Option<(String, String)> {
    let meta = obj.get("metadata")?;
    Some((
        meta.get("namespace")?.as_str()?.to_string(),
        meta.get("name")?.as_str()?.to_string(),
    ))
}

impl Inner {
    fn remove(&mut self, key: &ObjectKey) {
        if let Some(owner) = self.owner_of.remove(key) {
            let now_empty = match self.by_owner.get_mut(&owner) {
                Some(children) => {
                    children.remove(&(key.0, key.2.clone()));
                    children.is_empty()
                }
                None => false,
            };
            if now_empty {
                self.by_owner.remove(&owner);
            }
        }
    }

    /// The cached object of `key`, if any.
    fn get(&self, key: &ObjectKey) -> Option<&Entry> {
        let owner = self.owner_of.get(key)?;
        self.by_owner.get(owner)?.get(&(key.0, key.2.clone()))
    }

    fn insert(&mut self, kind: ChildKind, obj: Value) {
        let Some((ns, name)) = name_of(&obj) else { return };
        let key = (kind, ns, name.clone());
        // Relabelled objects move to their new owner.
        self.remove(&key);
        let Some(owner) = owner_of(&obj) else { return };
        let Some(entry) = Entry::new(&obj) else { return };
        self.by_owner
            .entry(owner.clone())
            .or_default()
            .insert((kind, name), entry);
        self.owner_of.insert(key, owner);
    }

    fn in_scope(scope: &Scope, ns: &str) -> bool {
        scope.as_deref().is_none_or(|s| s == ns)
    }
}

impl ChildCache {
    /// Applies one watch event of `kind` from a watch over `scope`.
    pub fn handle(&self, scope: Option<&str>, kind: ChildKind, event: &Event<DynamicObject>) {
        let scope: Scope = scope.map(str::to_string);
        let value = |obj: &DynamicObject| -> Option<Value> {
            let mut v = serde_json::to_value(obj).ok()?;
            trim(kind, &mut v);
            Some(v)
        };
        let Ok(mut inner) = self.inner.write() else { return };
        match event {
            Event::Apply(obj) => {
                if let Some(v) = value(obj) {
                    let key = (kind, obj.namespace().unwrap_or_default(), obj.name_any());
                    // Our own write may already be here (see `remember`).
                    if !older(&v, inner.get(&key)) {
                        inner.insert(kind, v);
                    }
                }
            }
            Event::Delete(obj) => {
                let key = (kind, obj.namespace().unwrap_or_default(), obj.name_any());
                inner.remove(&key);
            }
            Event::Init => {
                inner.relisting.insert((scope, kind), Vec::new());
            }
            Event::InitApply(obj) => {
                if let Some(v) = value(obj)
                    && let Some(buffer) = inner.relisting.get_mut(&(scope, kind))
                {
                    buffer.push(v);
                }
            }
            Event::InitDone => {
                // A relist is the truth: what it did not return is gone.
                let fresh = inner.relisting.remove(&(scope.clone(), kind)).unwrap_or_default();
                let stale: Vec<ObjectKey> = inner
                    .owner_of
                    .keys()
                    .filter(|(k, ns, _)| *k == kind && Inner::in_scope(&scope, ns))
                    .cloned()
                    .collect();
                for key in &stale {
                    inner.remove(key);
                }
                for v in fresh {
                    inner.insert(kind, v);
                }
                inner.synced.insert((scope, kind));
                drop(inner);
                self.changed.notify_waiters();
            }
        }
    }

    /// Records an object a write of ours returned, so the next reconcile
    /// does not act on the version before it (the watch event follows).
    pub fn remember(&self, kind: ChildKind, live: &Value) {
        let Ok(mut inner) = self.inner.write() else { return };
        if let Some((ns, name)) = name_of(live)
            && !older(live, inner.get(&(kind, ns, name)))
        {
            inner.insert(kind, live.clone());
        }
    }

    /// Whether every kind in `kinds` has been listed for namespace `ns`.
    pub fn synced(&self, ns: &str, kinds: &[ChildKind]) -> bool {
        let Ok(inner) = self.inner.read() else { return false };
        kinds
            .iter()
            .all(|k| inner.synced.contains(&(None, *k)) || inner.synced.contains(&(Some(ns.to_string()), *k)))
    }

    /// The children of registry `instance` in `ns`, once the watches of
    /// `kinds` have listed; `Error::CacheNotSynced` after `wait`.
    pub async fn observe(
        &self,
        ns: &str,
        instance: &str,
        kinds: &[ChildKind],
        wait: Duration,
    ) -> Result<Observed, Error> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.synced(ns, kinds) {
                break;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(Error::CacheNotSynced);
            }
        }
        let inner = self.inner.read().map_err(|_| Error::CacheNotSynced)?;
        let mut observed = Observed::new();
        if let Some(children) = inner.by_owner.get(&(ns.to_string(), instance.to_string())) {
            for ((kind, name), entry) in children {
                if kinds.contains(kind) {
                    observed.insert((*kind, name.clone()), serde_json::from_str(&entry.json)?);
                }
            }
        }
        Ok(observed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(kind: &str, ns: &str, name: &str, instance: &str) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": kind,
            "metadata": {"name": name, "namespace": ns, "labels": {labels::keys::INSTANCE: instance},
                "managedFields": [{"manager": "x"}]},
            "data": {"tokens": "c2VjcmV0"}
        }))
        .expect("object")
    }

    fn names(o: &Observed) -> Vec<String> {
        o.keys().map(|(k, n)| format!("{k:?}/{n}")).collect()
    }

    #[tokio::test]
    async fn relist_replaces_only_its_scope_and_kind() {
        let cache = ChildCache::default();
        let all = [ChildKind::ConfigMap, ChildKind::Secret];
        assert!(
            cache
                .observe("a", "packs", &all, Duration::from_millis(10))
                .await
                .is_err(),
            "not listed yet"
        );
        for (scope, ns) in [(Some("a"), "a"), (Some("b"), "b")] {
            for kind in all {
                cache.handle(scope, kind, &Event::Init);
                cache.handle(scope, kind, &Event::InitApply(obj("X", ns, "packs-config", "packs")));
                cache.handle(scope, kind, &Event::InitDone);
            }
        }
        let seen = cache.observe("a", "packs", &all, Duration::ZERO).await.expect("synced");
        assert_eq!(names(&seen), ["ConfigMap/packs-config", "Secret/packs-config"]);
        let secret = &seen[&(ChildKind::Secret, "packs-config".to_string())];
        assert!(secret.get("data").is_none(), "secret data is never cached");
        assert!(secret.pointer("/metadata/managedFields").is_none());

        // A relist of ConfigMaps in `a` that misses the object removes it
        // there, and only there.
        cache.handle(Some("a"), ChildKind::ConfigMap, &Event::Init);
        cache.handle(Some("a"), ChildKind::ConfigMap, &Event::InitDone);
        let a = cache.observe("a", "packs", &all, Duration::ZERO).await.expect("synced");
        assert_eq!(names(&a), ["Secret/packs-config"]);
        let b = cache.observe("b", "packs", &all, Duration::ZERO).await.expect("synced");
        assert_eq!(b.len(), 2);
    }

    #[tokio::test]
    async fn relabelled_and_deleted_objects_leave_their_owner() {
        let cache = ChildCache::default();
        let kinds = [ChildKind::ConfigMap];
        cache.handle(None, ChildKind::ConfigMap, &Event::Init);
        cache.handle(None, ChildKind::ConfigMap, &Event::InitDone);
        cache.handle(
            None,
            ChildKind::ConfigMap,
            &Event::Apply(obj("ConfigMap", "a", "c", "one")),
        );
        cache.handle(
            None,
            ChildKind::ConfigMap,
            &Event::Apply(obj("ConfigMap", "a", "c", "two")),
        );
        let one = cache.observe("a", "one", &kinds, Duration::ZERO).await.expect("synced");
        assert!(one.is_empty());
        let two = cache.observe("a", "two", &kinds, Duration::ZERO).await.expect("synced");
        assert_eq!(two.len(), 1);
        cache.handle(
            None,
            ChildKind::ConfigMap,
            &Event::Delete(obj("ConfigMap", "a", "c", "two")),
        );
        let two = cache.observe("a", "two", &kinds, Duration::ZERO).await.expect("synced");
        assert!(two.is_empty());
        let inner = cache.inner.read().expect("lock");
        assert!(
            inner.by_owner.is_empty() && inner.owner_of.is_empty(),
            "nothing left behind"
        );
    }

    #[tokio::test]
    async fn a_remembered_write_is_not_undone_by_an_older_event() {
        let cache = ChildCache::default();
        let kinds = [ChildKind::ConfigMap];
        cache.handle(None, ChildKind::ConfigMap, &Event::Init);
        cache.handle(None, ChildKind::ConfigMap, &Event::InitDone);
        let version = |rv: &str, data: &str| {
            let mut o = obj("ConfigMap", "a", "c", "one");
            o.metadata.resource_version = Some(rv.into());
            o.data["data"] = serde_json::json!({"k": data});
            o
        };
        let written = serde_json::to_value(version("12", "new")).expect("json");
        cache.remember(ChildKind::ConfigMap, &written);
        // The event of an earlier write arrives late: ignored.
        cache.handle(None, ChildKind::ConfigMap, &Event::Apply(version("11", "old")));
        let seen = cache.observe("a", "one", &kinds, Duration::ZERO).await.expect("synced");
        assert_eq!(seen[&(ChildKind::ConfigMap, "c".to_string())]["data"]["k"], "new");
        // Its own event, and later ones, apply.
        cache.handle(None, ChildKind::ConfigMap, &Event::Apply(version("13", "newer")));
        let seen = cache.observe("a", "one", &kinds, Duration::ZERO).await.expect("synced");
        assert_eq!(seen[&(ChildKind::ConfigMap, "c".to_string())]["data"]["k"], "newer");
    }

    #[tokio::test]
    async fn observe_waits_for_the_first_list() {
        let cache = std::sync::Arc::new(ChildCache::default());
        let waiter = {
            let cache = cache.clone();
            tokio::spawn(async move {
                cache
                    .observe("a", "x", &[ChildKind::Service], Duration::from_secs(5))
                    .await
            })
        };
        tokio::task::yield_now().await;
        cache.handle(None, ChildKind::Service, &Event::Init);
        cache.handle(None, ChildKind::Service, &Event::InitDone);
        let seen = waiter.await.expect("task").expect("synced while waiting");
        assert!(seen.is_empty());
    }
}
