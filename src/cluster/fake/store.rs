//! The fake cluster's object store: JSON objects by resource, namespace and name, a global
//! resource version, and the change history that watches replay.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::resources::ResourceType;

/// How many changes watches can resume from; older resource versions get `410 Gone`.
const HISTORY_LIMIT: usize = 5_000;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ObjectKey {
    pub(crate) resource: String,
    pub(crate) namespace: String,
    pub(crate) name: String,
}

impl ObjectKey {
    pub(crate) fn new(resource: &ResourceType, namespace: &str, name: &str) -> Self {
        Self {
            resource: resource.qualified_name(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ChangeKind {
    Added,
    Modified,
    Deleted,
}

impl ChangeKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Added => "ADDED",
            ChangeKind::Modified => "MODIFIED",
            ChangeKind::Deleted => "DELETED",
        }
    }
}

/// One change, as a watch delivers it.
#[derive(Clone, Debug)]
pub(crate) struct Change {
    pub(crate) resource_version: u64,
    pub(crate) key: ObjectKey,
    pub(crate) kind: ChangeKind,
    pub(crate) object: Value,
}

#[derive(Default, Clone, Debug)]
pub(crate) struct ContainerLogs {
    pub(crate) current: String,
    pub(crate) previous: Option<String>,
}

pub(crate) struct Store {
    resource_version: u64,
    uid_counter: u64,
    objects: BTreeMap<ObjectKey, Value>,
    /// Owner uid → the objects whose first owner reference names it (the simulator's lookups).
    owned: HashMap<String, BTreeSet<ObjectKey>>,
    history: VecDeque<Change>,
    changes: broadcast::Sender<Change>,
    /// Container logs by (namespace, pod, container).
    pub(crate) logs: HashMap<(String, String, String), ContainerLogs>,
}

impl Store {
    pub(crate) fn new() -> Self {
        let (changes, _) = broadcast::channel(4096);
        Self {
            resource_version: 1,
            uid_counter: 0,
            objects: BTreeMap::new(),
            owned: HashMap::new(),
            history: VecDeque::new(),
            changes,
            logs: HashMap::new(),
        }
    }

    pub(crate) fn resource_version(&self) -> u64 {
        self.resource_version
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    /// Changes after `since`, or `None` when `since` is older than the kept history.
    pub(crate) fn changes_since(&self, since: u64) -> Option<Vec<Change>> {
        if let Some(oldest) = self.history.front()
            && since + 1 < oldest.resource_version
        {
            return None;
        }
        Some(
            self.history
                .iter()
                .filter(|c| c.resource_version > since)
                .cloned()
                .collect(),
        )
    }

    pub(crate) fn get(&self, key: &ObjectKey) -> Option<&Value> {
        self.objects.get(key)
    }

    /// Objects of one resource, in one namespace or in all.
    pub(crate) fn list(&self, resource: &ResourceType, namespace: Option<&str>) -> Vec<Value> {
        let qualified = resource.qualified_name();
        let start = ObjectKey {
            resource: qualified.clone(),
            namespace: namespace.unwrap_or_default().to_owned(),
            name: String::new(),
        };
        self.objects
            .range(start..)
            .take_while(|(key, _)| {
                key.resource == qualified && namespace.is_none_or(|ns| key.namespace == ns)
            })
            .map(|(_, value)| value.clone())
            .collect()
    }

    /// Objects whose controller (first owner reference) has this uid.
    pub(crate) fn owned_by(&self, owner_uid: &str) -> Vec<Value> {
        self.owned
            .get(owner_uid)
            .into_iter()
            .flatten()
            .filter_map(|key| self.objects.get(key).cloned())
            .collect()
    }

    /// The resource versions of an object's dependents and theirs in turn: it changes whenever
    /// any of them does.
    pub(crate) fn dependents_version(&self, owner_uid: &str) -> Vec<String> {
        let mut versions = Vec::new();
        for key in self.owned.get(owner_uid).into_iter().flatten() {
            let Some(object) = self.objects.get(key) else {
                continue;
            };
            let meta = |field: &str| {
                object
                    .pointer(&format!("/metadata/{field}"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            versions.push(meta("resourceVersion"));
            versions.extend(self.dependents_version(&meta("uid")));
        }
        versions
    }

    fn index_owner(&mut self, key: &ObjectKey, object: Option<&Value>, add: bool) {
        let Some(owner) = object
            .and_then(|o| o.pointer("/metadata/ownerReferences/0/uid"))
            .and_then(Value::as_str)
        else {
            return;
        };
        if add {
            self.owned
                .entry(owner.to_owned())
                .or_default()
                .insert(key.clone());
        } else if let Some(keys) = self.owned.get_mut(owner) {
            keys.remove(key);
            if keys.is_empty() {
                self.owned.remove(owner);
            }
        }
    }

    pub(crate) fn next_uid(&mut self) -> String {
        self.uid_counter += 1;
        format!("00000000-0000-4000-8000-{:012x}", self.uid_counter)
    }

    /// Stores an object, filling in server-owned metadata; a write that changes nothing is not
    /// a change (no new resource version, no watch event), as on a real API server.
    pub(crate) fn put(&mut self, key: ObjectKey, mut object: Value) -> Value {
        let existing = self.objects.get(&key).cloned();
        let kind = if existing.is_some() {
            ChangeKind::Modified
        } else {
            ChangeKind::Added
        };
        {
            let uid = match existing.as_ref().and_then(|e| e.pointer("/metadata/uid")) {
                Some(uid) => uid.clone(),
                None => Value::String(self.next_uid()),
            };
            let created = existing
                .as_ref()
                .and_then(|e| e.pointer("/metadata/creationTimestamp"))
                .cloned()
                .unwrap_or_else(|| Value::String(now_rfc3339()));
            let metadata = ensure_object(&mut object, "metadata");
            metadata.insert("name".into(), Value::String(key.name.clone()));
            if !key.namespace.is_empty() {
                metadata.insert("namespace".into(), Value::String(key.namespace.clone()));
            }
            metadata.insert("uid".into(), uid);
            metadata.insert("creationTimestamp".into(), created);
            if let Some(previous_rv) = existing
                .as_ref()
                .and_then(|e| e.pointer("/metadata/resourceVersion"))
            {
                metadata.insert("resourceVersion".into(), previous_rv.clone());
            }
        }
        if existing.as_ref() == Some(&object) {
            return object;
        }
        self.resource_version += 1;
        let rv = self.resource_version;
        ensure_object(&mut object, "metadata")
            .insert("resourceVersion".into(), Value::String(rv.to_string()));
        self.index_owner(&key, existing.as_ref(), false);
        self.index_owner(&key, Some(&object), true);
        self.objects.insert(key.clone(), object.clone());
        self.record(Change {
            resource_version: rv,
            key,
            kind,
            object: object.clone(),
        });
        object
    }

    pub(crate) fn remove(&mut self, key: &ObjectKey) -> Option<Value> {
        let mut object = self.objects.remove(key)?;
        self.index_owner(key, Some(&object), false);
        self.resource_version += 1;
        let rv = self.resource_version;
        ensure_object(&mut object, "metadata")
            .insert("resourceVersion".into(), Value::String(rv.to_string()));
        self.record(Change {
            resource_version: rv,
            key: key.clone(),
            kind: ChangeKind::Deleted,
            object: object.clone(),
        });
        Some(object)
    }

    fn record(&mut self, change: Change) {
        if self.history.len() >= HISTORY_LIMIT {
            self.history.pop_front();
        }
        self.history.push_back(change.clone());
        // No receivers is normal: nobody is watching.
        let _ = self.changes.send(change);
    }
}

/// `obj[field]` as a JSON object, created (or replaced, if it was not an object) when needed.
pub(crate) fn ensure_object<'v>(
    object: &'v mut Value,
    field: &str,
) -> &'v mut serde_json::Map<String, Value> {
    if !object.is_object() {
        *object = json!({});
    }
    let Value::Object(map) = object else {
        unreachable!("made an object above")
    };
    let entry = map
        .entry(field.to_owned())
        .or_insert_with(|| Value::Object(serde_json::Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(serde_json::Map::new());
    }
    match entry {
        Value::Object(inner) => inner,
        _ => unreachable!("made an object above"),
    }
}

pub(crate) fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// Whether an object's labels satisfy a `k=v,k2=v2` (or `k==v`, `k!=v`, `k`) selector.
pub(crate) fn matches_label_selector(object: &Value, selector: &str) -> bool {
    let labels = object.pointer("/metadata/labels");
    let label = |key: &str| labels.and_then(|l| l.get(key)).and_then(Value::as_str);
    selector
        .split(',')
        .map(str::trim)
        .filter(|term| !term.is_empty())
        .all(|term| {
            if let Some((key, value)) = term.split_once("!=") {
                label(key.trim()) != Some(value.trim())
            } else if let Some((key, value)) =
                term.split_once("==").or_else(|| term.split_once('='))
            {
                label(key.trim()) == Some(value.trim())
            } else if let Some(key) = term.strip_prefix('!') {
                label(key.trim()).is_none()
            } else {
                label(term).is_some()
            }
        })
}

/// Whether an object satisfies a field selector; only the fields kube clients commonly use.
pub(crate) fn matches_field_selector(object: &Value, selector: &str) -> bool {
    selector
        .split(',')
        .map(str::trim)
        .filter(|term| !term.is_empty())
        .all(|term| {
            let (path, expected, negate) = if let Some((p, v)) = term.split_once("!=") {
                (p, v, true)
            } else if let Some((p, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                (p, v, false)
            } else {
                return true;
            };
            let pointer = format!("/{}", path.trim().replace('.', "/"));
            let actual = object.pointer(&pointer).and_then(Value::as_str);
            (actual == Some(expected.trim())) != negate
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_selector_terms() {
        let pod = json!({"metadata": {"labels": {"app": "web", "tier": "front"}}});
        assert!(matches_label_selector(&pod, "app=web,tier=front"));
        assert!(matches_label_selector(&pod, "app==web"));
        assert!(!matches_label_selector(&pod, "app=api"));
        assert!(matches_label_selector(&pod, "app!=api"));
        assert!(matches_label_selector(&pod, "tier"));
        assert!(!matches_label_selector(&pod, "!tier"));
    }

    #[test]
    fn field_selector_on_name() {
        let object = json!({"metadata": {"name": "web", "namespace": "prod"}});
        assert!(matches_field_selector(&object, "metadata.name=web"));
        assert!(!matches_field_selector(&object, "metadata.name=api"));
        assert!(matches_field_selector(&object, "metadata.namespace!=dev"));
    }

    #[test]
    fn unchanged_write_is_not_a_change() {
        let mut store = Store::new();
        let key = ObjectKey {
            resource: "configmaps".into(),
            namespace: "ns".into(),
            name: "cm".into(),
        };
        let first = store.put(key.clone(), json!({"data": {"a": "1"}}));
        let rv = store.resource_version();
        let second = store.put(key.clone(), first.clone());
        assert_eq!(store.resource_version(), rv);
        assert_eq!(first, second);
        store.put(key, json!({"data": {"a": "2"}}));
        assert_eq!(store.resource_version(), rv + 1);
    }
}
