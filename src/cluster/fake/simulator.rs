//! The rollout simulator: on every tick it does what the deployment and replica set controllers
//! would do (a ReplicaSet per pod template, revisions, scaling, Deployment status and the
//! progress deadline); `kubelet.rs` moves the pods along.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::FakeOptions;
use super::failure::Failure;
use super::kubelet::advance_pod;
use super::resources::ResourceType;
use super::store::{ObjectKey, Store, ensure_object, now_rfc3339};

pub(crate) use crate::cluster::rollout_status::{REVISION_ANNOTATION, TEMPLATE_HASH_LABEL};

/// Simulation bookkeeping that is not part of any API object.
#[derive(Default)]
pub(crate) struct SimState {
    pub(super) pods: HashMap<(String, String), PodSim>,
    /// (namespace, deployment) → (template hash, when its rollout started).
    pub(super) progress: HashMap<(String, String), (String, Instant)>,
    /// (namespace, deployment) → (reason, when a pod or the deployment first reported it).
    pub(crate) reported: HashMap<(String, String), (&'static str, Instant)>,
    /// Failures injected per (namespace, deployment), applied to pods created afterwards.
    pub(crate) injected: HashMap<(String, String), Failure>,
    /// Deployments with nothing left to simulate until a change or a deadline: skipped.
    quiet: HashMap<(String, String), Quiet>,
    pub(super) counter: u64,
}

struct Quiet {
    /// The deployment's and its dependents' resource versions when it went quiet.
    versions: Vec<String>,
    until: Instant,
}

pub(super) struct PodSim {
    pub(super) created: Instant,
    pub(super) deployment: String,
    /// Per container, in spec order.
    pub(super) failures: Vec<Option<Failure>>,
    /// Event reasons already emitted for this pod, so each fires once.
    pub(super) emitted: Vec<String>,
    /// A Job's pod: its containers exit instead of serving, and are not restarted.
    pub(super) runs_to_completion: bool,
}

pub(super) fn resource(kind: &str) -> &'static ResourceType {
    match ResourceType::by_kind(kind) {
        Some(resource) => resource,
        None => unreachable!("`{kind}` is in the fake's resource table"),
    }
}

pub(crate) fn deployments() -> &'static ResourceType {
    resource("Deployment")
}

pub(crate) fn replica_sets() -> &'static ResourceType {
    resource("ReplicaSet")
}

pub(crate) fn pods() -> &'static ResourceType {
    resource("Pod")
}

pub(crate) fn events() -> &'static ResourceType {
    resource("Event")
}

/// A stable short hash of a pod template, independent of key order.
pub(crate) fn template_hash(template: &Value) -> String {
    let mut canonical = String::new();
    write_canonical(template, &mut canonical);
    let digest = Sha256::digest(canonical.as_bytes());
    hex::encode(&digest[..5])
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<_> = map.keys().collect();
            keys.sort();
            out.push('{');
            for key in keys {
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(&map[key], out);
                out.push(',');
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for item in items {
                write_canonical(item, out);
                out.push(',');
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

pub(super) fn name_of(object: &Value) -> String {
    object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// `(namespace, name, uid)` from an object's metadata; empty where missing.
pub(super) fn identity_of(object: &Value) -> (String, String, String) {
    let text = |pointer: &str| {
        object
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    (
        text("/metadata/namespace"),
        text("/metadata/name"),
        text("/metadata/uid"),
    )
}

pub(super) fn revision_of(object: &Value) -> u64 {
    object
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(REVISION_ANNOTATION))
        .and_then(Value::as_str)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

pub(super) fn owner_reference(kind: &str, api_version: &str, owner: &Value) -> Value {
    json!([{
        "apiVersion": api_version,
        "kind": kind,
        "name": name_of(owner),
        "uid": owner.pointer("/metadata/uid").cloned().unwrap_or(Value::Null),
        "controller": true,
        "blockOwnerDeletion": true,
    }])
}

type Reconcile = fn(&mut Store, &mut SimState, &FakeOptions, Instant, Value);

/// One simulation step over every workload.
pub(crate) fn tick(store: &mut Store, sim: &mut SimState, options: &FakeOptions, now: Instant) {
    for deployment in store.list(deployments(), None) {
        let meta = |field: &str| {
            deployment
                .pointer(&format!("/metadata/{field}"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let key = (meta("namespace"), meta("name"));
        let mut versions = vec![meta("resourceVersion")];
        versions.extend(store.dependents_version(&meta("uid")));
        if sim
            .quiet
            .get(&key)
            .is_some_and(|q| q.versions == versions && now < q.until)
        {
            continue;
        }
        let before = store.resource_version();
        let settled_until = reconcile_deployment(store, sim, options, now, deployment);
        match settled_until {
            Some(until) if store.resource_version() == before => {
                sim.quiet.insert(key, Quiet { versions, until });
            }
            _ => {
                sim.quiet.remove(&key);
            }
        }
    }
    for (kind, reconcile) in [
        ("StatefulSet", super::stateful_set::reconcile as Reconcile),
        ("DaemonSet", super::daemon_set::reconcile),
        ("Job", super::job::reconcile),
    ] {
        for workload in store.list(resource(kind), None) {
            reconcile(store, sim, options, now, workload);
        }
    }
    // Pods whose deployment is gone are forgotten.
    sim.pods
        .retain(|(ns, name), _| store.get(&ObjectKey::new(pods(), ns, name)).is_some());
}

/// Moves one deployment's rollout on; returns until when it needs no further ticks, if it is
/// settled (every pod past its last timed transition).
fn reconcile_deployment(
    store: &mut Store,
    sim: &mut SimState,
    options: &FakeOptions,
    now: Instant,
    mut deployment: Value,
) -> Option<Instant> {
    let typed = serde_json::from_value::<Deployment>(deployment.clone()).ok()?;
    let spec = typed.spec.as_ref()?;
    let namespace = typed.metadata.namespace.clone().unwrap_or_default();
    let name = typed.metadata.name.clone().unwrap_or_default();
    let uid = typed.metadata.uid.clone()?;
    let desired = u64::try_from(spec.replicas.unwrap_or(1)).unwrap_or(0);
    let deadline = Duration::from_secs(
        u64::try_from(spec.progress_deadline_seconds.unwrap_or(600)).unwrap_or(600),
    );
    let template = deployment
        .pointer("/spec/template")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let hash = template_hash(&template);
    let key = (namespace.clone(), name.clone());

    // Replica sets: one per distinct template; the current one has the highest revision.
    let owned: Vec<Value> = store.owned_by(&uid);
    let max_revision = owned.iter().map(revision_of).max().unwrap_or(0);
    let new_rs_name = format!("{name}-{hash}");
    let mut new_rs = match owned.iter().find(|rs| name_of(rs) == new_rs_name) {
        Some(rs) if revision_of(rs) == max_revision => rs.clone(),
        Some(rs) => {
            // A template that was live before comes back (a rollback): it becomes the newest.
            let mut rs = rs.clone();
            ensure_object(&mut rs, "metadata");
            ensure_object(&mut rs["metadata"], "annotations").insert(
                REVISION_ANNOTATION.into(),
                json!((max_revision + 1).to_string()),
            );
            rs
        }
        None => {
            let mut rs_template = template.clone();
            ensure_object(&mut rs_template, "metadata");
            ensure_object(&mut rs_template["metadata"], "labels")
                .insert(TEMPLATE_HASH_LABEL.into(), json!(hash));
            let mut selector = deployment
                .pointer("/spec/selector")
                .cloned()
                .unwrap_or_else(|| json!({}));
            ensure_object(&mut selector, "matchLabels")
                .insert(TEMPLATE_HASH_LABEL.into(), json!(hash));
            json!({
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {
                    "name": new_rs_name,
                    "namespace": namespace,
                    "labels": rs_template.pointer("/metadata/labels").cloned().unwrap_or(Value::Null),
                    "annotations": {REVISION_ANNOTATION: (max_revision + 1).to_string()},
                    "ownerReferences": owner_reference("Deployment", "apps/v1", &deployment),
                },
                "spec": {"replicas": desired, "selector": selector, "template": rs_template},
            })
        }
    };
    new_rs["spec"]["replicas"] = json!(desired);
    let new_rs = store.put(
        ObjectKey::new(replica_sets(), &namespace, &new_rs_name),
        new_rs,
    );
    let revision = revision_of(&new_rs);

    let since = match sim.progress.get(&key) {
        Some((h, since)) if *h == hash => *since,
        _ => {
            sim.progress.insert(key.clone(), (hash.clone(), now));
            sim.reported.remove(&key);
            now
        }
    };

    // Pods of the new replica set: create what is missing, remove what is extra.
    let all_rs_names: Vec<String> = owned
        .iter()
        .map(name_of)
        .chain([new_rs_name.clone()])
        .collect();
    let owned_pods = |store: &Store| -> Vec<Value> {
        owned
            .iter()
            .chain([&new_rs])
            .filter_map(|rs| rs.pointer("/metadata/uid").and_then(Value::as_str))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .flat_map(|rs_uid| store.owned_by(rs_uid))
            .collect()
    };
    let deployment_pods = owned_pods(store);
    let is_new = |pod: &Value| {
        pod.pointer("/metadata/ownerReferences/0/name")
            .and_then(Value::as_str)
            == Some(new_rs_name.as_str())
    };
    let mut new_pod_names: Vec<String> = deployment_pods
        .iter()
        .filter(|p| is_new(p))
        .map(name_of)
        .collect();
    while (new_pod_names.len() as u64) < desired {
        let pod_name = create_pod(store, sim, now, &new_rs, &name, &key);
        new_pod_names.push(pod_name);
    }
    while (new_pod_names.len() as u64) > desired {
        if let Some(extra) = new_pod_names.pop() {
            delete_pod(store, sim, &namespace, &extra);
        }
    }

    // Advance every pod's lifecycle.
    let mut ready_new = 0u64;
    let mut ready_total = 0u64;
    let mut total = 0u64;
    let mut old_pods = Vec::new();
    for pod in owned_pods(store) {
        let pod_name = name_of(&pod);
        let owner = pod
            .pointer("/metadata/ownerReferences/0/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if !all_rs_names.contains(&owner) {
            continue;
        }
        total += 1;
        let ready = advance_pod(store, sim, options, now, pod, &key);
        if ready {
            ready_total += 1;
        }
        if owner == new_rs_name {
            if ready {
                ready_new += 1;
            }
        } else {
            old_pods.push(pod_name);
        }
    }

    // Old replica sets scale down once the new one is fully ready.
    let complete = ready_new >= desired;
    if complete {
        for pod_name in old_pods.drain(..) {
            delete_pod(store, sim, &namespace, &pod_name);
            total -= 1;
        }
        ready_total = ready_new;
    }
    for rs in owned.iter().filter(|rs| name_of(rs) != new_rs_name) {
        let mut rs = rs.clone();
        let old_count = if complete {
            0
        } else {
            old_pods
                .iter()
                .filter(|p| p.starts_with(&format!("{}-", name_of(&rs))))
                .count() as u64
        };
        rs["spec"]["replicas"] = json!(old_count);
        rs["status"] = json!({"replicas": old_count, "observedGeneration": 1});
        store.put(
            ObjectKey::new(replica_sets(), &namespace, &name_of(&rs)),
            rs,
        );
    }
    let mut new_rs = new_rs;
    new_rs["status"] = json!({
        "replicas": new_pod_names.len(),
        "readyReplicas": ready_new,
        "availableReplicas": ready_new,
        "fullyLabeledReplicas": new_pod_names.len(),
        "observedGeneration": 1,
    });
    store.put(
        ObjectKey::new(replica_sets(), &namespace, &new_rs_name),
        new_rs,
    );

    // Deployment status, as the deployment controller writes it.
    let deadline_exceeded = !complete && now.duration_since(since) > deadline;
    if deadline_exceeded {
        sim.reported
            .entry(key.clone())
            .or_insert(("ProgressDeadlineExceeded", now));
    }
    let previous_conditions = deployment
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let available = if ready_total >= desired {
        (
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.".to_owned(),
        )
    } else {
        (
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.".to_owned(),
        )
    };
    let progressing = if complete {
        (
            "True",
            "NewReplicaSetAvailable",
            format!("ReplicaSet \"{new_rs_name}\" has successfully progressed."),
        )
    } else if deadline_exceeded {
        (
            "False",
            "ProgressDeadlineExceeded",
            format!("ReplicaSet \"{new_rs_name}\" has timed out progressing."),
        )
    } else {
        (
            "True",
            "ReplicaSetUpdated",
            format!("ReplicaSet \"{new_rs_name}\" is progressing."),
        )
    };
    let conditions = vec![
        condition(&previous_conditions, "Available", available),
        condition(&previous_conditions, "Progressing", progressing),
    ];
    let generation = deployment
        .pointer("/metadata/generation")
        .cloned()
        .unwrap_or(json!(1));
    let mut status = json!({
        "observedGeneration": generation,
        "replicas": total,
        "updatedReplicas": new_pod_names.len(),
        "readyReplicas": ready_total,
        "availableReplicas": ready_total,
        "conditions": conditions,
    });
    if total > ready_total {
        status["unavailableReplicas"] = json!(total - ready_total);
    }
    deployment["status"] = status;
    ensure_object(&mut deployment, "metadata");
    ensure_object(&mut deployment["metadata"], "annotations")
        .insert(REVISION_ANNOTATION.into(), json!(revision.to_string()));
    store.put(ObjectKey::new(deployments(), &namespace, &name), deployment);

    // Pod stages follow age up to the last OOM kill; after that only the deadline moves.
    let settle_age =
        (options.start_delay + options.tick * 5).max(options.ready_delay + options.tick);
    let pods_settled = sim
        .pods
        .iter()
        .filter(|((ns, _), pod)| *ns == namespace && pod.deployment == name)
        .all(|(_, pod)| now.duration_since(pod.created) >= settle_age);
    let far = now + Duration::from_secs(3600);
    match (pods_settled, complete || deadline_exceeded) {
        (false, _) => None,
        (true, true) => Some(far),
        (true, false) => Some(since + deadline),
    }
}

/// A condition that keeps its timestamps while its status and reason stay the same.
pub(super) fn condition(
    previous: &[Value],
    kind: &str,
    (status, reason, message): (&str, &str, String),
) -> Value {
    let old = previous
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(kind));
    let unchanged = old.is_some_and(|c| {
        c.get("status").and_then(Value::as_str) == Some(status)
            && c.get("reason").and_then(Value::as_str) == Some(reason)
    });
    if unchanged && let Some(old) = old {
        return old.clone();
    }
    let now = now_rfc3339();
    json!({
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastUpdateTime": now,
        "lastTransitionTime": now,
    })
}

pub(super) fn pod_suffix(counter: u64) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut n = counter + 5_000_000;
    let mut suffix = String::new();
    for _ in 0..5 {
        suffix.push(char::from(ALPHABET[(n % ALPHABET.len() as u64) as usize]));
        n /= ALPHABET.len() as u64;
    }
    suffix
}

fn create_pod(
    store: &mut Store,
    sim: &mut SimState,
    now: Instant,
    rs: &Value,
    deployment: &str,
    key: &(String, String),
) -> String {
    sim.counter += 1;
    let pod_name = format!("{}-{}", name_of(rs), pod_suffix(sim.counter));
    let template = rs.pointer("/spec/template").cloned().unwrap_or_default();
    spawn_pod(
        store,
        sim,
        now,
        NewPod {
            name: &pod_name,
            owner_kind: "ReplicaSet",
            owner: rs,
            template: &template,
            workload: deployment,
            key,
            node: None,
            runs_to_completion: false,
        },
    );
    pod_name
}

/// A pod a controller is about to create.
pub(super) struct NewPod<'a> {
    pub(super) name: &'a str,
    /// The controller's kind (`ReplicaSet`, `StatefulSet`, `DaemonSet`, `Job`) and object.
    pub(super) owner_kind: &'a str,
    pub(super) owner: &'a Value,
    /// The pod template, with the labels the controller adds already in it.
    pub(super) template: &'a Value,
    /// The workload whose failures apply, for the (namespace, workload) `key`.
    pub(super) workload: &'a str,
    pub(super) key: &'a (String, String),
    /// `spec.nodeName` when the controller places the pod itself (a DaemonSet).
    pub(super) node: Option<&'a str>,
    pub(super) runs_to_completion: bool,
}

/// Stores a new pod and starts simulating it; its containers fail as their images or the
/// failure injected for the workload say.
pub(super) fn spawn_pod(store: &mut Store, sim: &mut SimState, now: Instant, new: NewPod<'_>) {
    let namespace = new.key.0.clone();
    let containers = new
        .template
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let injected = sim.injected.get(new.key).copied();
    let failures = containers
        .iter()
        .enumerate()
        .map(|(index, container)| {
            let from_image = container
                .get("image")
                .and_then(Value::as_str)
                .and_then(Failure::from_image);
            from_image.or(if index == 0 { injected } else { None })
        })
        .collect();
    let mut spec = new.template.get("spec").cloned().unwrap_or_default();
    if let (Some(node), Some(fields)) = (new.node, spec.as_object_mut()) {
        fields.insert("nodeName".into(), json!(node));
    }
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": new.name,
            "namespace": namespace,
            "labels": new.template.pointer("/metadata/labels").cloned().unwrap_or(Value::Null),
            "ownerReferences": owner_reference(new.owner_kind, &api_version_of(new.owner), new.owner),
        },
        "spec": spec,
        "status": {"phase": "Pending"},
    });
    store.put(ObjectKey::new(pods(), &namespace, new.name), pod);
    sim.pods.insert(
        (namespace, new.name.to_owned()),
        PodSim {
            created: now,
            deployment: new.workload.to_owned(),
            failures,
            emitted: Vec::new(),
            runs_to_completion: new.runs_to_completion,
        },
    );
}

/// A pod template with labels added, as a controller labels the pods it makes.
pub(super) fn with_pod_labels(template: &Value, labels: &[(&str, String)]) -> Value {
    let mut template = if template.is_object() {
        template.clone()
    } else {
        json!({})
    };
    let metadata = ensure_object(&mut template, "metadata");
    let existing = metadata.entry("labels").or_insert_with(|| json!({}));
    if !existing.is_object() {
        *existing = json!({});
    }
    if let Some(existing) = existing.as_object_mut() {
        for (key, value) in labels {
            existing.insert((*key).to_owned(), json!(value));
        }
    }
    template
}

fn api_version_of(object: &Value) -> String {
    object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("apps/v1")
        .to_owned()
}

pub(super) fn delete_pod(store: &mut Store, sim: &mut SimState, namespace: &str, name: &str) {
    store.remove(&ObjectKey::new(pods(), namespace, name));
    sim.pods.remove(&(namespace.to_owned(), name.to_owned()));
    store
        .logs
        .retain(|(ns, pod, _), _| !(ns == namespace && pod == name));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_hash_ignores_key_order() {
        let a = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"x": 1}});
        let b = json!({"spec": {"x": 1}, "metadata": {"labels": {"b": "2", "a": "1"}}});
        assert_eq!(template_hash(&a), template_hash(&b));
        assert_ne!(template_hash(&a), template_hash(&json!({"spec": {"x": 2}})));
        assert_eq!(template_hash(&a).len(), 10);
    }

    fn deployment_with_image(store: &mut Store, image: &str) {
        store.put(
            ObjectKey::new(deployments(), "ns", "web"),
            json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "ns", "generation": 1},
                "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                         "template": {"metadata": {"labels": {"app": "web"}},
                                      "spec": {"containers": [{"name": "app", "image": image}]}}},
            }),
        );
    }

    fn container_state(store: &Store) -> Value {
        let pods = store.list(pods(), Some("ns"));
        assert_eq!(pods.len(), 1);
        pods[0]["status"]["containerStatuses"][0]["state"].clone()
    }

    #[test]
    fn a_pull_failure_replaces_container_creating() {
        let mut store = Store::new();
        let mut sim = SimState::default();
        let options = FakeOptions::default();
        deployment_with_image(&mut store, "web:imagepullbackoff");
        let start = Instant::now();
        tick(&mut store, &mut sim, &options, start);
        assert_eq!(
            container_state(&store)["waiting"]["reason"],
            "ContainerCreating"
        );
        tick(&mut store, &mut sim, &options, start + options.start_delay);
        assert_eq!(
            container_state(&store)["waiting"]["reason"],
            "ImagePullBackOff"
        );
        let reported = sim.reported.get(&("ns".to_owned(), "web".to_owned()));
        assert_eq!(reported.map(|r| r.0), Some("ImagePullBackOff"));
    }

    #[test]
    fn a_healthy_rollout_completes_and_goes_quiet() {
        let mut store = Store::new();
        let mut sim = SimState::default();
        let options = FakeOptions::default();
        deployment_with_image(&mut store, "web:1");
        let start = Instant::now();
        tick(&mut store, &mut sim, &options, start);
        let later = start + options.ready_delay + options.tick * 6;
        tick(&mut store, &mut sim, &options, later);
        let deployment = store
            .get(&ObjectKey::new(deployments(), "ns", "web"))
            .cloned()
            .expect("should succeed");
        assert_eq!(deployment["status"]["availableReplicas"], 1);
        assert_eq!(
            deployment["metadata"]["annotations"][REVISION_ANNOTATION],
            "1"
        );
        let rv = store.resource_version();
        tick(&mut store, &mut sim, &options, later + options.tick);
        tick(&mut store, &mut sim, &options, later + options.tick * 2);
        assert_eq!(
            store.resource_version(),
            rv,
            "a settled rollout writes nothing"
        );
    }
}
