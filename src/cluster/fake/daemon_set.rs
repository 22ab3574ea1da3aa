//! The DaemonSet controller of the fake: one pod per node of the fake's three, labelled with
//! the template's `controller-revision-hash` and `pod-template-generation`, and the real
//! controller's rolling update
//! (<https://kubernetes.io/docs/tasks/manage-daemon/update-daemon-set/>): a pod of an old
//! template that is not available is replaced at once, an available one only while fewer
//! than `maxUnavailable` (default 1) nodes lack an available pod. Status as the controller
//! writes it: `desiredNumberScheduled`, `currentNumberScheduled`, `updatedNumberScheduled`,
//! `numberReady`, `numberAvailable`, `numberUnavailable`, `observedGeneration`.

use std::time::Instant;

use serde_json::{Value, json};

use super::FakeOptions;
use super::controller_history::{REVISION_HASH_LABEL, current_revision, hash_of};
use super::kubelet::advance_pod;
use super::simulator::{
    NewPod, SimState, delete_pod, identity_of, name_of, pod_suffix, resource, spawn_pod,
    with_pod_labels,
};
use super::store::{ObjectKey, Store};

/// The fake cluster's nodes, every one of which runs a DaemonSet's pod.
pub(crate) const NODES: [&str; 3] = ["fake-node-1", "fake-node-2", "fake-node-3"];

/// The label the DaemonSet controller puts the DaemonSet's generation in.
pub(crate) const TEMPLATE_GENERATION_LABEL: &str = "pod-template-generation";

struct NodePod {
    name: String,
    hash: String,
    ready: bool,
}

pub(super) fn reconcile(
    store: &mut Store,
    sim: &mut SimState,
    options: &FakeOptions,
    now: Instant,
    mut set: Value,
) {
    let (namespace, name, uid) = identity_of(&set);
    let generation = set
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let max_unavailable = set
        .pointer("/spec/updateStrategy/rollingUpdate/maxUnavailable")
        .and_then(Value::as_u64)
        .unwrap_or(1) as usize;
    let key = (namespace.clone(), name.clone());
    let revision = current_revision(store, &set, "DaemonSet");
    let hash = hash_of(&revision);
    if sim.progress.get(&key).map(|(h, _)| h) != Some(&hash) {
        sim.progress.insert(key.clone(), (hash.clone(), now));
        sim.reported.remove(&key);
    }

    let mut on_node: Vec<Vec<NodePod>> = NODES.iter().map(|_| Vec::new()).collect();
    for pod in store.owned_by(&uid) {
        if pod.get("kind").and_then(Value::as_str) != Some("Pod") {
            continue;
        }
        let node = pod
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .and_then(|n| NODES.iter().position(|known| *known == n));
        let pod_name = name_of(&pod);
        let pod_hash = pod
            .pointer(&format!("/metadata/labels/{REVISION_HASH_LABEL}"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let ready = advance_pod(store, sim, options, now, pod, &key);
        match node {
            Some(index) => on_node[index].push(NodePod {
                name: pod_name,
                hash: pod_hash,
                ready,
            }),
            None => delete_pod(store, sim, &namespace, &pod_name),
        }
    }

    // Old pods that are not available go at once; available ones within the budget.
    for pods_here in &mut on_node {
        let (gone, kept): (Vec<NodePod>, Vec<NodePod>) = std::mem::take(pods_here)
            .into_iter()
            .partition(|p| p.hash != hash && !p.ready);
        for pod in gone {
            delete_pod(store, sim, &namespace, &pod.name);
        }
        *pods_here = kept;
    }
    let unavailable = on_node
        .iter()
        .filter(|pods_here| !pods_here.iter().any(|p| p.ready))
        .count();
    if unavailable < max_unavailable
        && let Some(pods_here) = on_node
            .iter_mut()
            .find(|p| p.iter().any(|p| p.hash != hash))
        && let Some(index) = pods_here.iter().position(|p| p.hash != hash)
    {
        let pod = pods_here.remove(index);
        delete_pod(store, sim, &namespace, &pod.name);
    }
    for (index, pods_here) in on_node.iter_mut().enumerate() {
        if pods_here.is_empty() {
            sim.counter += 1;
            let pod_name = format!("{name}-{}", pod_suffix(sim.counter));
            let template = with_pod_labels(
                set.pointer("/spec/template").unwrap_or(&Value::Null),
                &[
                    (REVISION_HASH_LABEL, hash.clone()),
                    (TEMPLATE_GENERATION_LABEL, generation.to_string()),
                ],
            );
            spawn_pod(
                store,
                sim,
                now,
                NewPod {
                    name: &pod_name,
                    owner_kind: "DaemonSet",
                    owner: &set,
                    template: &template,
                    workload: &name,
                    key: &key,
                    node: Some(NODES[index]),
                    runs_to_completion: false,
                },
            );
            pods_here.push(NodePod {
                name: pod_name,
                hash: hash.clone(),
                ready: false,
            });
        }
    }

    let desired = NODES.len();
    let scheduled = on_node.iter().filter(|p| !p.is_empty()).count();
    let ready = on_node.iter().flatten().filter(|p| p.ready).count();
    let updated = on_node.iter().flatten().filter(|p| p.hash == hash).count();
    let mut status = json!({
        "observedGeneration": generation,
        "desiredNumberScheduled": desired,
        "currentNumberScheduled": scheduled,
        "numberMisscheduled": 0,
        "numberReady": ready,
        "numberAvailable": ready,
        "updatedNumberScheduled": updated,
    });
    if desired > ready {
        status["numberUnavailable"] = json!(desired - ready);
    }
    set["status"] = status;
    store.put(
        ObjectKey::new(resource("DaemonSet"), &namespace, &name),
        set,
    );
}
