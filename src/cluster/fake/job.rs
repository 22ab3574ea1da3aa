//! The Job controller of the fake
//! (<https://kubernetes.io/docs/concepts/workloads/controllers/job/>): pods that run to
//! completion, up to `parallelism` at a time until `completions` succeeded; a failed pod is
//! replaced until more than `backoffLimit` (default 6) have failed, when the Job gets the
//! `FailureTarget` and `Failed` conditions with reason `BackoffLimitExceeded`; enough
//! successes give `SuccessCriteriaMet` and `Complete`. Status: `active`, `ready`, `succeeded`,
//! `failed`, `startTime`, `completionTime`, `conditions`.
//!
//! Simplifications: the back-off between retries is the fake's start delay, not 10 s doubling;
//! `restartPolicy: OnFailure` also makes a new pod per failure.

use std::time::Instant;

use serde_json::{Value, json};

use super::FakeOptions;
use super::kubelet::advance_pod;
use super::simulator::{
    NewPod, SimState, condition, delete_pod, identity_of, name_of, pod_suffix, resource, spawn_pod,
};
use super::store::{ObjectKey, Store, now_rfc3339};

pub(super) fn reconcile(
    store: &mut Store,
    sim: &mut SimState,
    options: &FakeOptions,
    now: Instant,
    mut job: Value,
) {
    let (namespace, name, uid) = identity_of(&job);
    let number = |pointer: &str, default: u64| {
        job.pointer(pointer)
            .and_then(Value::as_u64)
            .unwrap_or(default)
    };
    let completions = number("/spec/completions", 1);
    let parallelism = number("/spec/parallelism", 1);
    let backoff_limit = number("/spec/backoffLimit", 6);
    let key = (namespace.clone(), name.clone());
    let conditions = job
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let finished = conditions.iter().any(|c| {
        matches!(
            c.get("type").and_then(Value::as_str),
            Some("Complete" | "Failed")
        ) && c.get("status").and_then(Value::as_str) == Some("True")
    });

    let (mut active, mut ready, mut succeeded, mut failed) = (Vec::new(), 0u64, 0u64, 0u64);
    let mut last_failure: Option<Instant> = None;
    for pod in store.owned_by(&uid) {
        if pod.get("kind").and_then(Value::as_str) != Some("Pod") {
            continue;
        }
        let pod_name = name_of(&pod);
        let is_ready = advance_pod(store, sim, options, now, pod, &key);
        let phase = store
            .get(&ObjectKey::new(resource("Pod"), &namespace, &pod_name))
            .and_then(|p| p.pointer("/status/phase"))
            .and_then(Value::as_str)
            .unwrap_or("Pending")
            .to_owned();
        match phase.as_str() {
            "Succeeded" => succeeded += 1,
            "Failed" => {
                failed += 1;
                let created = sim.pods.get(&(namespace.clone(), pod_name.clone()));
                last_failure = last_failure.max(created.map(|p| p.created));
            }
            _ => {
                ready += u64::from(is_ready);
                active.push(pod_name);
            }
        }
    }

    let mut new_conditions = conditions.clone();
    let mut completion_time = job.pointer("/status/completionTime").cloned();
    if !finished {
        if failed > backoff_limit {
            for pod_name in active.drain(..) {
                delete_pod(store, sim, &namespace, &pod_name);
            }
            let message = "Job has reached the specified backoff limit".to_owned();
            new_conditions = vec![
                condition(
                    &conditions,
                    "FailureTarget",
                    ("True", "BackoffLimitExceeded", message.clone()),
                ),
                condition(
                    &conditions,
                    "Failed",
                    ("True", "BackoffLimitExceeded", message),
                ),
            ];
            sim.reported
                .entry(key.clone())
                .or_insert(("BackoffLimitExceeded", now));
        } else if succeeded >= completions {
            let message = "Reached expected number of succeeded pods".to_owned();
            new_conditions = vec![
                condition(
                    &conditions,
                    "SuccessCriteriaMet",
                    ("True", "CompletionsReached", message.clone()),
                ),
                condition(
                    &conditions,
                    "Complete",
                    ("True", "CompletionsReached", message),
                ),
            ];
            completion_time = Some(json!(now_rfc3339()));
        } else {
            let wanted = parallelism.min(completions - succeeded) as usize;
            // The back-off before a failed pod is replaced.
            let backed_off =
                last_failure.is_none_or(|at| now.duration_since(at) >= options.start_delay * 2);
            while active.len() < wanted && backed_off {
                sim.counter += 1;
                let pod_name = format!("{name}-{}", pod_suffix(sim.counter));
                let template = job
                    .pointer("/spec/template")
                    .cloned()
                    .unwrap_or_else(|| json!({}));
                spawn_pod(
                    store,
                    sim,
                    now,
                    NewPod {
                        name: &pod_name,
                        owner_kind: "Job",
                        owner: &job,
                        template: &template,
                        workload: &name,
                        key: &key,
                        node: None,
                        runs_to_completion: true,
                    },
                );
                active.push(pod_name);
            }
        }
    }

    let start_time = job
        .pointer("/status/startTime")
        .cloned()
        .unwrap_or_else(|| json!(now_rfc3339()));
    let mut status = json!({
        "startTime": start_time,
        "ready": ready,
        "succeeded": succeeded,
        "failed": failed,
        "terminating": 0,
        "uncountedTerminatedPods": {},
    });
    if !active.is_empty() {
        status["active"] = json!(active.len());
    }
    if !new_conditions.is_empty() {
        status["conditions"] = Value::Array(new_conditions);
    }
    if let Some(at) = completion_time {
        status["completionTime"] = at;
    }
    job["status"] = status;
    store.put(ObjectKey::new(resource("Job"), &namespace, &name), job);
}
