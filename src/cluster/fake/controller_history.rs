//! ControllerRevisions: the history a StatefulSet or DaemonSet controller keeps of its pod
//! templates, as `kubectl rollout history` lists it and `kubectl rollout undo` reads it.
//!
//! Each distinct template is one ControllerRevision named `<owner>-<hash>`, owned by the
//! workload (a controller owner reference), with a `revision` number and `data` holding the
//! template as the patch that restores it (`{"spec":{"template":{…,"$patch":"replace"}}}`).
//! When a template that has a revision comes back (a rollback), that revision is renumbered to
//! the newest instead of a copy being made, as the controllers' history does
//! (<https://kubernetes.io/docs/tasks/manage-daemon/rollback-daemon-set/#understanding-daemonset-revisions>).

use serde_json::{Value, json};

use super::simulator::{name_of, owner_reference, resource, template_hash};
use super::store::{ObjectKey, Store};

/// The label on a revision and on its pods naming the template's hash (a DaemonSet's pods) or
/// the revision (a StatefulSet's pods, through `status.updateRevision`).
pub(crate) const REVISION_HASH_LABEL: &str = "controller-revision-hash";

/// The revisions `owner` has, oldest first.
pub(super) fn revisions(store: &Store, owner: &Value) -> Vec<Value> {
    let uid = owner
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut owned: Vec<Value> = store
        .owned_by(uid)
        .into_iter()
        .filter(|o| o.get("kind").and_then(Value::as_str) == Some("ControllerRevision"))
        .collect();
    owned.sort_by_key(number);
    owned
}

fn number(revision: &Value) -> u64 {
    revision
        .get("revision")
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

/// The revision of `owner`'s current template, made or renumbered as needed.
pub(super) fn current_revision(store: &mut Store, owner: &Value, owner_kind: &str) -> Value {
    let namespace = owner
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let template = owner
        .pointer("/spec/template")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let hash = template_hash(&template);
    let name = format!("{}-{hash}", name_of(owner));
    let history = revisions(store, owner);
    let newest = history.last().map_or(0, number);
    let key = ObjectKey::new(resource("ControllerRevision"), &namespace, &name);
    let revision = match history.iter().find(|r| name_of(r) == name) {
        Some(existing) if number(existing) == newest => return existing.clone(),
        Some(existing) => {
            let mut renumbered = existing.clone();
            renumbered["revision"] = json!(newest + 1);
            renumbered
        }
        None => {
            let mut labels = template
                .pointer("/metadata/labels")
                .cloned()
                .unwrap_or_else(|| json!({}));
            if let Some(labels) = labels.as_object_mut() {
                labels.insert(REVISION_HASH_LABEL.into(), json!(hash));
            }
            let mut data_template = template.clone();
            if let Some(fields) = data_template.as_object_mut() {
                fields.insert("$patch".into(), json!("replace"));
            }
            json!({
                "apiVersion": "apps/v1",
                "kind": "ControllerRevision",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "labels": labels,
                    "ownerReferences": owner_reference(owner_kind, "apps/v1", owner),
                },
                "data": {"spec": {"template": data_template}},
                "revision": newest + 1,
            })
        }
    };
    store.put(key, revision)
}

/// The template hash a revision was made for.
pub(super) fn hash_of(revision: &Value) -> String {
    revision
        .pointer(&format!("/metadata/labels/{REVISION_HASH_LABEL}"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set_with_image(store: &mut Store, image: &str) -> Value {
        store.put(
            ObjectKey::new(resource("StatefulSet"), "ns", "db"),
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
                   "metadata": {"name": "db", "namespace": "ns"},
                   "spec": {"template": {"spec": {"containers": [{"name": "db", "image": image}]}}}}),
        )
    }

    #[test]
    fn a_template_that_comes_back_is_renumbered_not_copied() {
        let mut store = Store::new();
        let one = set_with_image(&mut store, "db:1");
        let first = current_revision(&mut store, &one, "StatefulSet");
        let two = set_with_image(&mut store, "db:2");
        let second = current_revision(&mut store, &two, "StatefulSet");
        let back = set_with_image(&mut store, "db:1");
        let third = current_revision(&mut store, &back, "StatefulSet");
        assert_eq!(
            (first["revision"].clone(), second["revision"].clone()),
            (json!(1), json!(2))
        );
        assert_eq!(name_of(&third), name_of(&first));
        assert_eq!(third["revision"], json!(3));
        assert_eq!(revisions(&store, &back).len(), 2);
        assert_eq!(
            third.pointer("/data/spec/template/$patch"),
            Some(&json!("replace"))
        );
    }
}
