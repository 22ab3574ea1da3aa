//! The kubelet half of the simulator: a pod's container statuses, logs and events, derived
//! from its age and the failure chosen for each container when the pod was created.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::FakeOptions;
use super::failure::Failure;
use super::simulator::{PodSim, SimState, events, name_of, pods};
use super::store::{ContainerLogs, ObjectKey, Store, now_rfc3339};

/// What one container is doing at a given age of its pod.
struct ContainerView {
    status: Value,
    ready: bool,
    running: bool,
    /// The failure reason the container shows now, if any.
    reported: Option<&'static str>,
    logs: ContainerLogs,
    events: Vec<(&'static str, &'static str, String)>,
    /// The exit code of a container that ran to completion (a Job's pod does not restart).
    exit: Option<i32>,
}

fn container_view(
    name: &str,
    image: &str,
    failure: Option<Failure>,
    age: Duration,
    options: &FakeOptions,
    runs_to_completion: bool,
) -> ContainerView {
    let start = options.start_delay;
    let tick = options.tick;
    let started_at = now_rfc3339();
    let waiting =
        |reason: &str, message: String| json!({"waiting": {"reason": reason, "message": message}});
    let base_status = |state: Value, ready: bool, restarts: u32, last: Value| {
        json!({
            "name": name,
            "image": image,
            "imageID": "",
            "ready": ready,
            "started": state.get("running").is_some(),
            "restartCount": restarts,
            "state": state,
            "lastState": last,
        })
    };
    let mut view = ContainerView {
        status: base_status(
            waiting("ContainerCreating", String::new()),
            false,
            0,
            json!({}),
        ),
        ready: false,
        running: false,
        reported: None,
        logs: ContainerLogs::default(),
        events: vec![("Normal", "Pulling", format!("Pulling image \"{image}\""))],
        exit: None,
    };
    if age < start {
        return view;
    }
    let running = json!({"running": {"startedAt": started_at}});
    let healthy_log = format!("starting {name}\nlistening on :8080\n");
    let crash_log = format!(
        "starting {name}\nError: connect ECONNREFUSED 10.0.4.12:5432\n    at TCPConnectWrap.afterConnect [as oncomplete] (node:net:1555:16)\nfatal: database unreachable, exiting\n"
    );
    let oom_log = format!("starting {name}\nloading fleet cache (2.1 GiB)...\n");
    let terminated = |reason: &str, code: i32| json!({"terminated": {"reason": reason, "exitCode": code, "startedAt": started_at, "finishedAt": started_at}});
    match failure {
        None if runs_to_completion => {
            view.events
                .push(("Normal", "Started", format!("Started container {name}")));
            if age < options.ready_delay {
                view.status = base_status(running, false, 0, json!({}));
                view.running = true;
                view.logs.current = format!("starting {name}\n");
            } else {
                view.status = base_status(terminated("Completed", 0), false, 0, json!({}));
                view.logs.current = format!("starting {name}\nmigrated 3 tables\ndone\n");
                view.exit = Some(0);
            }
        }
        Some(Failure::CrashLoopBackOff) if runs_to_completion => {
            // `restartPolicy: Never`: the container exits once and the pod fails with it.
            view.events
                .push(("Normal", "Started", format!("Started container {name}")));
            if age < start + tick * 2 {
                view.status = base_status(running, false, 0, json!({}));
                view.running = true;
                view.logs.current = format!("starting {name}\n");
            } else {
                view.status = base_status(terminated("Error", 1), false, 0, json!({}));
                view.logs.current = crash_log;
                view.exit = Some(1);
            }
        }
        None => {
            let ready = age >= options.ready_delay;
            view.status = base_status(running, ready, 0, json!({}));
            view.ready = ready;
            view.running = true;
            view.logs.current = healthy_log;
            view.events
                .push(("Normal", "Started", format!("Started container {name}")));
        }
        Some(Failure::Unready) => {
            view.status = base_status(running, false, 0, json!({}));
            view.running = true;
            view.reported = Some("Unready");
            view.logs.current =
                format!("starting {name}\nwarming up: waiting for upstream fleet-api\n");
            view.events
                .push(("Normal", "Started", format!("Started container {name}")));
            view.events.push((
                "Warning",
                "Unhealthy",
                "Readiness probe failed: HTTP probe failed with statuscode: 503".to_owned(),
            ));
        }
        Some(Failure::Unschedulable) => {
            // Never reaches a node: handled at the pod level.
        }
        Some(
            failure @ (Failure::ImagePullBackOff
            | Failure::ErrImagePull
            | Failure::InvalidImageName
            | Failure::CreateContainerConfigError),
        ) => {
            let message = match failure {
                Failure::ImagePullBackOff => format!("Back-off pulling image \"{image}\""),
                Failure::ErrImagePull => format!(
                    "failed to pull and unpack image \"{image}\": failed to resolve reference: not found"
                ),
                Failure::InvalidImageName => format!(
                    "Failed to apply default image tag \"{image}\": couldn't parse image name: invalid reference format"
                ),
                _ => "secret \"fleet-db-credentials\" not found".to_owned(),
            };
            view.status = base_status(
                waiting(failure.reason(), message.clone()),
                false,
                0,
                json!({}),
            );
            view.reported = Some(failure.reason());
            let event_reason = if failure == Failure::ImagePullBackOff {
                "BackOff"
            } else {
                "Failed"
            };
            view.events.push(("Warning", event_reason, message));
        }
        Some(Failure::CrashLoopBackOff) => {
            view.events
                .push(("Normal", "Started", format!("Started container {name}")));
            if age < start + tick * 2 {
                view.status = base_status(running, false, 0, json!({}));
                view.running = true;
                view.logs.current = format!("starting {name}\n");
            } else {
                let message = format!("back-off 10s restarting failed container={name}");
                view.status = base_status(
                    waiting("CrashLoopBackOff", message),
                    false,
                    1,
                    terminated("Error", 1),
                );
                view.reported = Some("CrashLoopBackOff");
                view.logs.previous = Some(crash_log);
                view.events.push((
                    "Warning",
                    "BackOff",
                    format!("Back-off restarting failed container {name}"),
                ));
            }
        }
        Some(Failure::OomKilled) => {
            view.events
                .push(("Normal", "Started", format!("Started container {name}")));
            view.logs.current = oom_log.clone();
            if age < start + tick * 2 {
                view.status = base_status(running, false, 0, json!({}));
                view.running = true;
            } else if age < start + tick * 4 {
                view.status = base_status(running, false, 1, terminated("OOMKilled", 137));
                view.running = true;
                view.logs.previous = Some(oom_log);
            } else {
                let message = format!("back-off 20s restarting failed container={name}");
                view.status = base_status(
                    waiting("CrashLoopBackOff", message),
                    false,
                    2,
                    terminated("OOMKilled", 137),
                );
                view.reported = Some("OOMKilled");
                view.logs.current = String::new();
                view.logs.previous = Some(oom_log);
                view.events.push((
                    "Warning",
                    "BackOff",
                    format!("Back-off restarting failed container {name}"),
                ));
            }
        }
    }
    view
}

/// Writes a pod's status for its age; returns whether the pod is ready.
pub(super) fn advance_pod(
    store: &mut Store,
    sim: &mut SimState,
    options: &FakeOptions,
    now: Instant,
    mut pod: Value,
    key: &(String, String),
) -> bool {
    let namespace = key.0.clone();
    let pod_name = name_of(&pod);
    let sim_key = (namespace.clone(), pod_name.clone());
    if !sim.pods.contains_key(&sim_key) {
        // A pod from before a restart of the fake: treat it as new.
        sim.pods.insert(
            sim_key.clone(),
            PodSim {
                created: now,
                deployment: key.1.clone(),
                failures: Vec::new(),
                emitted: Vec::new(),
                runs_to_completion: false,
            },
        );
    }
    let Some(pod_sim) = sim.pods.get(&sim_key) else {
        return false;
    };
    let age = now.duration_since(pod_sim.created);
    let failures = pod_sim.failures.clone();
    let runs_to_completion = pod_sim.runs_to_completion;
    let containers = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let unschedulable = failures.contains(&Some(Failure::Unschedulable));

    let mut events: Vec<(&'static str, &'static str, String)> = Vec::new();
    let mut statuses = Vec::new();
    let mut all_ready = !containers.is_empty();
    let mut any_running = false;
    let mut reported = None;
    let mut pending_start = true;
    // Exit codes of the containers that ran to completion; `None` once one has not.
    let mut exits: Option<Vec<i32>> = Some(Vec::new());
    if unschedulable {
        events.push((
            "Warning",
            "FailedScheduling",
            "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.".to_owned(),
        ));
        all_ready = false;
    } else {
        events.push((
            "Normal",
            "Scheduled",
            format!(
                "Successfully assigned {namespace}/{pod_name} to {}",
                pod.pointer("/spec/nodeName")
                    .and_then(Value::as_str)
                    .unwrap_or("fake-node-1")
            ),
        ));
        for (index, container) in containers.iter().enumerate() {
            let name = container
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("app");
            let image = container
                .get("image")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let failure = failures.get(index).copied().flatten();
            let view = container_view(name, image, failure, age, options, runs_to_completion);
            all_ready &= view.ready;
            exits = exits.zip(view.exit).map(|(mut codes, code)| {
                codes.push(code);
                codes
            });
            // A container that has run once keeps its pod Running through restarts, as in a real
            // crash loop; one that never started (pull or config errors) leaves it Pending.
            let restarted = view.status["restartCount"].as_u64().unwrap_or(0) > 0;
            any_running |= view.running || restarted;
            pending_start &= age < options.start_delay;
            reported = reported.or(view.reported);
            events.extend(view.events);
            store.logs.insert(
                (namespace.clone(), pod_name.clone(), name.to_owned()),
                view.logs,
            );
            statuses.push(view.status);
        }
    }
    let now_text = now_rfc3339();
    let previous_start = pod
        .pointer("/status/startTime")
        .cloned()
        .unwrap_or_else(|| json!(now_text));
    let ready_text = if all_ready { "True" } else { "False" };
    let mut conditions = vec![json!({
        "type": "PodScheduled",
        "status": if unschedulable { "False" } else { "True" },
    })];
    if unschedulable {
        conditions[0]["reason"] = json!("Unschedulable");
        conditions[0]["message"] = json!("0/3 nodes are available: 3 Insufficient cpu.");
    } else {
        conditions.push(json!({"type": "Initialized", "status": "True"}));
        conditions.push(json!({"type": "ContainersReady", "status": ready_text}));
        conditions.push(json!({"type": "Ready", "status": ready_text}));
    }
    let finished = exits.filter(|codes| runs_to_completion && !codes.is_empty());
    let phase = if let Some(codes) = &finished {
        // A pod whose containers all ended: `Succeeded` if each exited 0, else `Failed`.
        if codes.iter().all(|code| *code == 0) {
            "Succeeded"
        } else {
            "Failed"
        }
    } else if any_running || (!pending_start && !unschedulable && reported.is_none()) {
        "Running"
    } else {
        "Pending"
    };
    // Keep the container timestamps stable across ticks so unchanged pods cause no events.
    let old_statuses = pod
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (new, old) in statuses.iter_mut().zip(old_statuses.iter()) {
        stabilize_timestamps(new, old);
    }
    let mut status = json!({
        "phase": phase,
        "conditions": conditions,
        "hostIP": "10.0.0.2",
        "podIP": "10.244.0.17",
        "startTime": previous_start,
        "qosClass": "BestEffort",
    });
    if !unschedulable {
        status["containerStatuses"] = Value::Array(statuses);
    }
    pod["status"] = status;
    store.put(ObjectKey::new(pods(), &namespace, &pod_name), pod.clone());

    if let Some(reason) = reported {
        sim.reported.entry(key.clone()).or_insert((reason, now));
    }
    emit_events(store, sim, &sim_key, &pod, events);
    all_ready
}

fn stabilize_timestamps(new: &mut Value, old: &Value) {
    for field in ["state", "lastState"] {
        let same_apart_from_times = match (new.get(field), old.get(field)) {
            (Some(a), Some(b)) => without_times(a) == without_times(b),
            _ => false,
        };
        if same_apart_from_times && let Some(old_value) = old.get(field) {
            new[field] = old_value.clone();
        }
    }
}

fn without_times(state: &Value) -> Value {
    let mut state = state.clone();
    if let Value::Object(kinds) = &mut state {
        for detail in kinds.values_mut() {
            if let Value::Object(fields) = detail {
                fields.remove("startedAt");
                fields.remove("finishedAt");
            }
        }
    }
    state
}

fn emit_events(
    store: &mut Store,
    sim: &mut SimState,
    sim_key: &(String, String),
    pod: &Value,
    pending: Vec<(&'static str, &'static str, String)>,
) {
    let Some(pod_sim) = sim.pods.get_mut(sim_key) else {
        return;
    };
    for (kind, reason, message) in pending {
        let marker = format!("{reason}:{message}");
        if pod_sim.emitted.contains(&marker) {
            continue;
        }
        pod_sim.emitted.push(marker);
        sim.counter += 1;
        let name = format!("{}.{:x}", sim_key.1, 0x1800_0000_0000_u64 + sim.counter);
        let now = now_rfc3339();
        let event = json!({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": sim_key.0},
            "involvedObject": {
                "kind": "Pod",
                "apiVersion": "v1",
                "name": sim_key.1,
                "namespace": sim_key.0,
                "uid": pod.pointer("/metadata/uid").cloned().unwrap_or(Value::Null),
            },
            "reason": reason,
            "message": message,
            "type": kind,
            "count": 1,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "source": {"component": if reason == "FailedScheduling" { "default-scheduler" } else { "kubelet" }},
            "related": {"kind": "Deployment", "name": pod_sim.deployment},
        });
        store.put(ObjectKey::new(events(), &sim_key.0, &name), event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_loop_container_reports_after_its_first_crash() {
        let options = FakeOptions::default();
        let early = container_view(
            "app",
            "web:crashloop",
            Some(Failure::CrashLoopBackOff),
            options.start_delay,
            &options,
            false,
        );
        assert_eq!(early.reported, None);
        let late = container_view(
            "app",
            "web:crashloop",
            Some(Failure::CrashLoopBackOff),
            options.start_delay + options.tick * 3,
            &options,
            false,
        );
        assert_eq!(late.reported, Some("CrashLoopBackOff"));
        assert_eq!(late.status["restartCount"], json!(1));
        assert!(
            late.logs
                .previous
                .is_some_and(|l| l.contains("ECONNREFUSED"))
        );
    }
}
