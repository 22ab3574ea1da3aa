//! The StatefulSet controller of the fake, with the real one's ordering and status
//! (<https://kubernetes.io/docs/concepts/workloads/controllers/statefulset/#rolling-updates>):
//! pods `<name>-0…` created one at a time, each after the one before is Running and Ready
//! (`OrderedReady`); a rolling update replaces pods from the highest ordinal down, one at a
//! time, waiting for each to be ready; `status.currentRevision` moves to
//! `status.updateRevision` once every pod runs the new template and is ready.
//!
//! Like the real controller it waits forever for a broken pod to become ready, even after the
//! template is reverted: the documented "forced rollback" case, where the pods made from the
//! bad template must be deleted by hand
//! (<https://kubernetes.io/docs/concepts/workloads/controllers/statefulset/#forced-rollback>,
//! kubernetes/kubernetes#67250).

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::{Value, json};

use super::FakeOptions;
use super::controller_history::{REVISION_HASH_LABEL, current_revision};
use super::kubelet::advance_pod;
use super::simulator::{
    NewPod, SimState, delete_pod, identity_of, name_of, pods, resource, spawn_pod, with_pod_labels,
};
use super::store::{ObjectKey, Store};

pub(super) fn reconcile(
    store: &mut Store,
    sim: &mut SimState,
    options: &FakeOptions,
    now: Instant,
    mut set: Value,
) {
    let text = |pointer: &str| {
        set.pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let (namespace, name, uid) = identity_of(&set);
    let replicas = set
        .pointer("/spec/replicas")
        .and_then(Value::as_u64)
        .unwrap_or(1);
    let key = (namespace.clone(), name.clone());
    let revision = current_revision(store, &set, "StatefulSet");
    let update_revision = name_of(&revision);
    if sim.progress.get(&key).map(|(r, _)| r) != Some(&update_revision) {
        sim.progress
            .insert(key.clone(), (update_revision.clone(), now));
        sim.reported.remove(&key);
    }

    // Every pod's kubelet moves on; then the controller decides on what it sees.
    let mut by_ordinal: BTreeMap<u64, (Value, bool)> = BTreeMap::new();
    for pod in store.owned_by(&uid) {
        if pod.get("kind").and_then(Value::as_str) != Some("Pod") {
            continue;
        }
        let pod_name = name_of(&pod);
        let Some(ordinal) = pod_name
            .strip_prefix(&format!("{name}-"))
            .and_then(|o| o.parse::<u64>().ok())
        else {
            continue;
        };
        let ready = advance_pod(store, sim, options, now, pod, &key);
        if let Some(pod) = store.get(&ObjectKey::new(pods(), &namespace, &pod_name)) {
            by_ordinal.insert(ordinal, (pod.clone(), ready));
        }
    }
    let revision_of = |pod: &Value| {
        pod.pointer(&format!("/metadata/labels/{REVISION_HASH_LABEL}"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };

    // Scale down from the highest ordinal; create and replace in order.
    let extra: Vec<u64> = by_ordinal.range(replicas..).map(|(o, _)| *o).collect();
    for ordinal in extra.into_iter().rev() {
        delete_pod(store, sim, &namespace, &format!("{name}-{ordinal}"));
        by_ordinal.remove(&ordinal);
    }
    let mut waiting = false;
    for ordinal in 0..replicas {
        match by_ordinal.get(&ordinal) {
            None => {
                create(store, sim, now, &set, &update_revision, ordinal, &key);
                waiting = true;
            }
            Some((_, false)) => waiting = true,
            Some(_) => {}
        }
        if waiting {
            break;
        }
    }
    if !waiting {
        let outdated = by_ordinal
            .iter()
            .rev()
            .find(|(_, (pod, _))| revision_of(pod) != update_revision)
            .map(|(ordinal, _)| *ordinal);
        if let Some(ordinal) = outdated {
            delete_pod(store, sim, &namespace, &format!("{name}-{ordinal}"));
            by_ordinal.remove(&ordinal);
        }
    }

    let count = |wanted: &dyn Fn(&Value, bool) -> bool| {
        by_ordinal
            .values()
            .filter(|(pod, ready)| wanted(pod, *ready))
            .count() as u64
    };
    let ready = count(&|_, ready| ready);
    let updated = count(&|pod, _| revision_of(pod) == update_revision);
    let total = by_ordinal.len() as u64;
    let previous_current = text("/status/currentRevision");
    let rolled = updated == replicas && ready == replicas && total == replicas;
    let current_revision = if rolled || previous_current.is_empty() {
        update_revision.clone()
    } else {
        previous_current
    };
    let current = count(&|pod, _| revision_of(pod) == current_revision);
    let generation = set
        .pointer("/metadata/generation")
        .cloned()
        .unwrap_or(json!(1));
    set["status"] = json!({
        "observedGeneration": generation,
        "replicas": total,
        "readyReplicas": ready,
        "availableReplicas": ready,
        "currentReplicas": current,
        "updatedReplicas": updated,
        "currentRevision": current_revision,
        "updateRevision": update_revision,
        "collisionCount": 0,
    });
    store.put(
        ObjectKey::new(resource("StatefulSet"), &namespace, &name),
        set,
    );
}

fn create(
    store: &mut Store,
    sim: &mut SimState,
    now: Instant,
    set: &Value,
    update_revision: &str,
    ordinal: u64,
    key: &(String, String),
) {
    let pod_name = format!("{}-{ordinal}", key.1);
    let template = with_pod_labels(
        set.pointer("/spec/template").unwrap_or(&Value::Null),
        &[
            (REVISION_HASH_LABEL, update_revision.to_owned()),
            ("statefulset.kubernetes.io/pod-name", pod_name.clone()),
            ("apps.kubernetes.io/pod-index", ordinal.to_string()),
        ],
    );
    spawn_pod(
        store,
        sim,
        now,
        NewPod {
            name: &pod_name,
            owner_kind: "StatefulSet",
            owner: set,
            template: &template,
            workload: &key.1,
            key,
            node: None,
            runs_to_completion: false,
        },
    );
}
