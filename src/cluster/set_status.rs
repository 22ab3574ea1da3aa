//! Rollout status of a StatefulSet or DaemonSet as a pure function of the object and its
//! pods. The counts follow kubectl's `rollout_status.go` (`StatefulSetStatusViewer`,
//! `DaemonSetStatusViewer`); the pods of the new revision are checked for the same failures a
//! Deployment's are (`rollout_status::pod_failure`), so a crash loop ends the wait in seconds
//! instead of never (neither kind has a progress deadline).

use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;

use super::rollout_status::{RolloutStatus, pod_failure};

/// The label a StatefulSet's pods carry with their revision's name (`status.updateRevision`).
pub const REVISION_HASH_LABEL: &str = "controller-revision-hash";
/// The label a DaemonSet's pods carry with the DaemonSet's generation that made them.
pub const TEMPLATE_GENERATION_LABEL: &str = "pod-template-generation";

fn label<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata.labels.as_ref()?.get(key).map(String::as_str)
}

/// The first failing pod among `pods` (by name, so the answer is stable).
fn first_failure(
    mut pods: Vec<&Pod>,
    now: Timestamp,
    readiness_timeout: Option<Duration>,
) -> Option<RolloutStatus> {
    pods.retain(|p| p.metadata.deletion_timestamp.is_none());
    pods.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    pods.into_iter()
        .find_map(|pod| pod_failure(pod, now, readiness_timeout))
        .map(RolloutStatus::Failed)
}

/// The pods a StatefulSet made from its current template.
pub fn stateful_set_current_pods<'a>(set: &StatefulSet, pods: &'a [Pod]) -> Vec<&'a Pod> {
    let update = set
        .status
        .as_ref()
        .and_then(|s| s.update_revision.as_deref());
    pods.iter()
        .filter(|pod| update.is_some() && label(pod, REVISION_HASH_LABEL) == update)
        .collect()
}

/// The pods a DaemonSet made from its current template.
pub fn daemon_set_current_pods<'a>(set: &DaemonSet, pods: &'a [Pod]) -> Vec<&'a Pod> {
    let generation = set.metadata.generation.map(|g| g.to_string());
    pods.iter()
        .filter(|pod| {
            generation.is_some() && label(pod, TEMPLATE_GENERATION_LABEL) == generation.as_deref()
        })
        .collect()
}

pub fn stateful_set_status(
    set: &StatefulSet,
    pods: &[Pod],
    now: Timestamp,
    readiness_timeout: Option<Duration>,
) -> RolloutStatus {
    let observed = "waiting for statefulset spec update to be observed".to_owned();
    let Some(status) = set.status.as_ref() else {
        return RolloutStatus::Progressing(observed);
    };
    let observed_generation = status.observed_generation.unwrap_or(0);
    if observed_generation == 0 || set.metadata.generation.unwrap_or(0) > observed_generation {
        return RolloutStatus::Progressing(observed);
    }
    if let Some(failure) =
        first_failure(stateful_set_current_pods(set, pods), now, readiness_timeout)
    {
        return failure;
    }
    let spec = set.spec.as_ref();
    let strategy = spec.and_then(|s| s.update_strategy.as_ref());
    if strategy
        .and_then(|s| s.type_.as_deref())
        .is_some_and(|t| t == "OnDelete")
    {
        // Nothing rolls until someone deletes pods: kubectl refuses to wait for it.
        return RolloutStatus::Complete;
    }
    let replicas = spec.and_then(|s| s.replicas).unwrap_or(1);
    let ready = status.ready_replicas.unwrap_or(0);
    if ready < replicas {
        return RolloutStatus::Progressing(format!(
            "Waiting for {} pods to be ready",
            replicas - ready
        ));
    }
    let updated = status.updated_replicas.unwrap_or(0);
    if let Some(partition) = strategy
        .and_then(|s| s.rolling_update.as_ref())
        .and_then(|r| r.partition)
    {
        if updated < replicas - partition {
            return RolloutStatus::Progressing(format!(
                "Waiting for partitioned roll out to finish: {updated} out of {} new pods have been updated",
                replicas - partition
            ));
        }
        return RolloutStatus::Complete;
    }
    if status.update_revision != status.current_revision {
        return RolloutStatus::Progressing(format!(
            "waiting for statefulset rolling update to complete {updated} pods at revision {}",
            status.update_revision.as_deref().unwrap_or_default()
        ));
    }
    RolloutStatus::Complete
}

pub fn daemon_set_status(
    set: &DaemonSet,
    pods: &[Pod],
    now: Timestamp,
    readiness_timeout: Option<Duration>,
) -> RolloutStatus {
    let name = set.metadata.name.as_deref().unwrap_or_default();
    let Some(status) = set.status.as_ref() else {
        return RolloutStatus::Progressing(
            "Waiting for daemon set spec update to be observed".into(),
        );
    };
    if set.metadata.generation.unwrap_or(0) > status.observed_generation.unwrap_or(0) {
        return RolloutStatus::Progressing(
            "Waiting for daemon set spec update to be observed".into(),
        );
    }
    if let Some(failure) = first_failure(daemon_set_current_pods(set, pods), now, readiness_timeout)
    {
        return failure;
    }
    let desired = status.desired_number_scheduled;
    let updated = status.updated_number_scheduled.unwrap_or(0);
    if updated < desired {
        return RolloutStatus::Progressing(format!(
            "Waiting for daemon set \"{name}\" rollout to finish: {updated} out of {desired} new pods have been updated"
        ));
    }
    let available = status.number_available.unwrap_or(0);
    if available < desired {
        return RolloutStatus::Progressing(format!(
            "Waiting for daemon set \"{name}\" rollout to finish: {available} of {desired} updated pods are available"
        ));
    }
    RolloutStatus::Complete
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::cluster::rollout_status::FailureReason;

    fn now() -> Timestamp {
        "2026-11-22T08:00:00Z".parse().expect("should succeed")
    }

    fn stateful_set(status: serde_json::Value) -> StatefulSet {
        serde_json::from_value(json!({
            "metadata": {"name": "db", "generation": 2},
            "spec": {"replicas": 2, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}}, "template": {},
                     "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}},
            "status": status,
        }))
        .expect("should succeed")
    }

    fn pod(name: &str, labels: serde_json::Value, waiting: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels},
            "status": {"containerStatuses": [{"name": "db", "image": "x", "imageID": "", "ready": false,
                "restartCount": 1, "state": {"waiting": {"reason": waiting}}}]},
        }))
        .expect("should succeed")
    }

    #[test]
    fn a_stateful_set_follows_kubectl_and_fails_on_its_new_pods_only() {
        let status = |ready: i32, updated: i32| {
            json!({"observedGeneration": 2, "replicas": 2, "readyReplicas": ready, "updatedReplicas": updated,
                   "currentRevision": "db-1", "updateRevision": "db-2"})
        };
        assert_eq!(
            stateful_set_status(&stateful_set(status(1, 1)), &[], now(), None),
            RolloutStatus::Progressing("Waiting for 1 pods to be ready".into())
        );
        assert_eq!(
            stateful_set_status(&stateful_set(status(2, 2)), &[], now(), None),
            RolloutStatus::Complete
        );
        let old = [pod(
            "db-0",
            json!({REVISION_HASH_LABEL: "db-1"}),
            "CrashLoopBackOff",
        )];
        assert!(matches!(
            stateful_set_status(&stateful_set(status(1, 1)), &old, now(), None),
            RolloutStatus::Progressing(_)
        ));
        let new = [pod(
            "db-1",
            json!({REVISION_HASH_LABEL: "db-2"}),
            "CrashLoopBackOff",
        )];
        let RolloutStatus::Failed(failure) =
            stateful_set_status(&stateful_set(status(1, 1)), &new, now(), None)
        else {
            panic!("expected a failure");
        };
        assert_eq!(failure.reason, FailureReason::CrashLoopBackOff);
        assert_eq!(failure.pod.as_deref(), Some("db-1"));
    }

    #[test]
    fn a_daemon_set_follows_kubectl() {
        let set = |updated: i32, available: i32| -> DaemonSet {
            serde_json::from_value(json!({
                "metadata": {"name": "agent", "generation": 3},
                "spec": {"selector": {}, "template": {}},
                "status": {"observedGeneration": 3, "desiredNumberScheduled": 3, "currentNumberScheduled": 3,
                           "numberMisscheduled": 0, "numberReady": available, "numberAvailable": available,
                           "updatedNumberScheduled": updated},
            }))
            .expect("should succeed")
        };
        assert_eq!(
            daemon_set_status(&set(1, 3), &[], now(), None),
            RolloutStatus::Progressing(
                "Waiting for daemon set \"agent\" rollout to finish: 1 out of 3 new pods have been updated".into()
            )
        );
        assert_eq!(
            daemon_set_status(&set(3, 2), &[], now(), None),
            RolloutStatus::Progressing(
                "Waiting for daemon set \"agent\" rollout to finish: 2 of 3 updated pods are available".into()
            )
        );
        assert_eq!(
            daemon_set_status(&set(3, 3), &[], now(), None),
            RolloutStatus::Complete
        );
        let pods = [pod(
            "agent-x",
            json!({TEMPLATE_GENERATION_LABEL: "3"}),
            "ImagePullBackOff",
        )];
        assert!(matches!(
            daemon_set_status(&set(3, 2), &pods, now(), None),
            RolloutStatus::Failed(_)
        ));
    }
}
